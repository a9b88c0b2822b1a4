//! Blobs in PostgreSQL: the [`BlobStore`] of the shared store, so an instance that takes a
//! channel over reads the scans and raw records another instance wrote.
//!
//! Content-addressed by the same SHA-256 as `FsBlobStore` (same claim checks, same
//! `dataref`), the bytes in chunks of [`CHUNK`] in `blob_chunks` so a large scan is streamed in
//! and never one huge value. A blob's row and its chunks commit in one transaction: a blob
//! that exists is complete; writing the same bytes again, from any instance, is a no-op
//! (`ON CONFLICT DO NOTHING` waits for a concurrent writer of the same digest). A commit is
//! durable, so `put_unsynced` is `put` and `sync` has nothing to do.

use super::PgStore;
use crate::StoreError;
use crate::blobs::{BlobRef, BlobStore};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Takes a chunk of a blob's bytes, in order.
type Emit<'a> = dyn FnMut(&[u8]) -> Result<(), StoreError> + 'a;
/// Hands a blob's bytes to an [`Emit`], chunk by chunk.
type Chunks<'a> = dyn FnMut(&mut Emit<'_>) -> Result<(), StoreError> + 'a;

/// Bytes per stored chunk.
pub(super) const CHUNK: usize = 1 << 20;

pub struct PgBlobStore {
    store: Arc<PgStore>,
}

impl PgBlobStore {
    /// Blobs in `store`'s database, through its pool.
    pub fn new(store: Arc<PgStore>) -> Self {
        PgBlobStore { store }
    }

    /// Stores the blob `hex` of `size` bytes, its chunks read from `chunks` (called again
    /// from the start if the transaction is retried).
    fn insert(&self, hex: &str, size: u64, chunks: &mut Chunks<'_>) -> std::io::Result<BlobRef> {
        self.store
            .tx(|tx| {
                let fresh = tx.execute(
                    "INSERT INTO blobs (sha256, size) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&hex, &(size as i64)],
                )?;
                if fresh == 0 {
                    return Ok(());
                }
                let st =
                    tx.prepare("INSERT INTO blob_chunks (sha256, n, bytes) VALUES ($1, $2, $3)")?;
                let mut n = 0i64;
                chunks(&mut |bytes| {
                    tx.execute(&st, &[&hex, &n, &bytes])?;
                    n += 1;
                    Ok(())
                })
            })
            .map_err(std::io::Error::other)?;
        Ok(BlobRef {
            sha256: hex.to_string(),
            size,
        })
    }
}

impl BlobStore for PgBlobStore {
    fn put(&self, bytes: &[u8]) -> std::io::Result<BlobRef> {
        let hex = hex::encode(Sha256::digest(bytes));
        self.insert(&hex, bytes.len() as u64, &mut |emit| {
            bytes.chunks(CHUNK).try_for_each(&mut *emit)
        })
    }

    fn put_file(&self, path: &Path) -> std::io::Result<BlobRef> {
        // Two passes: the digest first (the key), then the chunks; never the whole file in
        // memory.
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; CHUNK];
        let mut f = std::fs::File::open(path)?;
        loop {
            let n = read_full(&mut f, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let hex = hex::encode(hasher.finalize());
        self.insert(&hex, size, &mut |emit| {
            let mut f = std::fs::File::open(path).map_err(io_store)?;
            loop {
                let n = read_full(&mut f, &mut buf).map_err(io_store)?;
                if n == 0 {
                    return Ok(());
                }
                emit(&buf[..n])?;
            }
        })
    }

    fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a sha256 hex digest",
            ));
        }
        let rows = (|| -> Result<_, StoreError> {
            let mut conn = self.store.conn()?;
            let size = conn.query_opt("SELECT size FROM blobs WHERE sha256 = $1", &[&sha256])?;
            let Some(size) = size else { return Ok(None) };
            let size: i64 = size.try_get(0)?;
            let chunks = conn.query(
                "SELECT bytes FROM blob_chunks WHERE sha256 = $1 ORDER BY n",
                &[&sha256],
            )?;
            let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            for c in &chunks {
                out.extend_from_slice(c.try_get::<_, &[u8]>(0)?);
            }
            Ok(Some(out))
        })()
        .map_err(std::io::Error::other)?;
        rows.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no blob sha256:{sha256}"),
            )
        })
    }

    fn dataref(&self, r: &BlobRef) -> String {
        format!("urn:petitiond:blob:sha256:{}", r.sha256)
    }
}

/// Reads until `buf` is full or the file ends (so chunks are whole, whatever `read` returns).
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn io_store(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("reading the blob's file: {e}"))
}
