//! Blobs of the SQLite store: raw upstream records in the database, large files beside it.
//!
//! The HTTP channels write every record's raw bytes (and each attachment) unsynced
//! ([`BlobStore::put_unsynced`]) and intake makes them durable once per group commit
//! ([`BlobStore::sync`]). One file per record made that the drain's largest cost (inode
//! allocation, rename, directory locks: BENCHMARKS.md, "Where the HTTP drain's CPU goes"),
//! and a pack of segment files needed an index of every blob in memory. Here an unsynced blob
//! of up to [`MAX_IN_DATABASE`] bytes is a row of the store's `blobs` table: its B-tree is the
//! persisted index, nothing is rebuilt at start, and the row is committed with
//! `synchronous=NORMAL` (written to the WAL, not fsynced). [`BlobStore::sync`] fsyncs the WAL
//! once: every frame written before — the blobs' commits — is then durable. (The group's own
//! commit fsyncs the same WAL after them as well; the explicit sync keeps the trait's promise
//! for whoever commits a reference elsewhere.)
//!
//! Durable puts (scanned letters, mails, quarantined bytes), streamed files and unsynced
//! blobs over the limit stay files in the directory ([`FsBlobStore`]); `get` reads the table
//! first, then the files, so blobs written before this store existed are still found. Same
//! claim checks and `dataref` as the other blob stores. The table lives in the database file,
//! which is private (0600) like the files.

use super::SqliteStore;
use crate::StoreError;
use crate::blobs::{BlobRef, BlobStore, FsBlobStore, reference};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Largest unsynced blob kept in the database; larger ones (attachments) are files.
pub const MAX_IN_DATABASE: usize = 256 * 1024;

pub struct SqliteBlobStore {
    store: Arc<SqliteStore>,
    files: FsBlobStore,
    /// The store's write-ahead log: fsynced by `sync`.
    wal: PathBuf,
    /// A blob row was committed without fsync since the last `sync`.
    dirty: AtomicBool,
}

fn io(e: StoreError) -> std::io::Error {
    std::io::Error::other(e)
}

impl SqliteBlobStore {
    /// Blobs in `store`'s database, and files in `dir` (created if missing).
    pub fn open(store: Arc<SqliteStore>, dir: &Path) -> std::io::Result<Self> {
        let mut wal = store.path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Self {
            files: FsBlobStore::open(dir)?,
            wal: PathBuf::from(wal),
            store,
            dirty: AtomicBool::new(false),
        })
    }

    /// Inserts the rows (a digest already there is a no-op) and commits them, in one
    /// transaction, without fsync.
    fn insert(&self, rows: &[(&str, &[u8])]) -> Result<(), StoreError> {
        let mut conn = self.store.conn();
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let inserted = insert_rows(&mut conn, rows);
        // Whatever the insert did: every other commit on this connection stays FULL.
        let restored = conn.pragma_update(None, "synchronous", "FULL");
        inserted?;
        restored?;
        // After the commit: a `sync` that sees the flag sees the rows.
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Small blobs as rows in one transaction, large ones as files; all durable at `sync`.
    fn unsynced(&self, blobs: &[&[u8]]) -> std::io::Result<Vec<BlobRef>> {
        let refs: Vec<BlobRef> = blobs.iter().map(|b| reference(b)).collect();
        let mut rows = Vec::with_capacity(blobs.len());
        for (b, r) in blobs.iter().zip(&refs) {
            if b.len() > MAX_IN_DATABASE {
                self.files.put_unsynced(b)?;
            } else {
                rows.push((r.sha256.as_str(), *b));
            }
        }
        if !rows.is_empty() {
            self.insert(&rows).map_err(io)?;
        }
        Ok(refs)
    }

    /// Reads run on the look-ups' read-only connection: only committed rows are asked for,
    /// and they need not wait for the writer.
    fn row(&self, hex: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.store.lookup();
        let bytes = conn
            .prepare_cached("SELECT bytes FROM blobs WHERE sha256 = ?1")?
            .query_row([hex], |r| r.get(0))
            .optional()?;
        Ok(bytes)
    }

    fn has_row(&self, hex: &str) -> Result<bool, StoreError> {
        let conn = self.store.lookup();
        let found = conn
            .prepare_cached("SELECT 1 FROM blobs WHERE sha256 = ?1")?
            .query_row([hex], |_| Ok(()))
            .optional()?;
        Ok(found.is_some())
    }
}

fn insert_rows(conn: &mut Connection, rows: &[(&str, &[u8])]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut st =
            tx.prepare_cached("INSERT OR IGNORE INTO blobs (sha256, bytes) VALUES (?1, ?2)")?;
        for (hex, bytes) in rows {
            st.execute(params![hex, bytes])?;
        }
    }
    tx.commit()
}

impl BlobStore for SqliteBlobStore {
    fn put(&self, bytes: &[u8]) -> std::io::Result<BlobRef> {
        let r = reference(bytes);
        if self.has_row(&r.sha256).map_err(io)? {
            // Written unsynced before (a record now quarantined): durable before answering.
            self.sync()?;
            return Ok(r);
        }
        self.files.put(bytes)
    }

    fn put_unsynced(&self, bytes: &[u8]) -> std::io::Result<BlobRef> {
        Ok(self.unsynced(&[bytes])?.remove(0))
    }

    fn put_unsynced_many(&self, blobs: &[Vec<u8>]) -> std::io::Result<Vec<BlobRef>> {
        let blobs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        self.unsynced(&blobs)
    }

    fn sync(&self) -> std::io::Result<()> {
        if self.dirty.swap(false, Ordering::AcqRel) {
            // The WAL holds every commit since the last checkpoint, and a checkpoint fsyncs
            // the database before it reuses the log: one fdatasync covers every blob row.
            let synced = std::fs::File::open(&self.wal).and_then(|f| f.sync_data());
            if let Err(e) = synced {
                self.dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        self.files.sync()
    }

    fn put_file(&self, path: &Path) -> std::io::Result<BlobRef> {
        self.files.put_file(path)
    }

    fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a sha256 hex digest",
            ));
        }
        match self.row(&sha256.to_ascii_lowercase()).map_err(io)? {
            Some(bytes) => Ok(bytes),
            None => self.files.get(sha256),
        }
    }

    fn dataref(&self, r: &BlobRef) -> String {
        self.files.dataref(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::time::Duration;

    fn open(dir: &Path) -> SqliteBlobStore {
        let store = SqliteStore::open(&dir.join("db.sqlite"), Duration::from_secs(1)).unwrap();
        SqliteBlobStore::open(Arc::new(store), &dir.join("blobs")).unwrap()
    }

    /// Files under `dir`, recursively.
    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            files_in(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    #[test]
    fn unsynced_records_are_rows_readable_at_once_and_made_durable_by_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let a = s.put_unsynced(b"record one").unwrap();
        let b = s.put_unsynced(b"record two").unwrap();
        assert_eq!(a.sha256, hex::encode(Sha256::digest(b"record one")));
        assert_eq!(s.get(&a.sha256).unwrap(), b"record one");
        assert_eq!(s.get(&b.sha256).unwrap(), b"record two");
        assert_eq!(files_in(&dir.path().join("blobs")), 0, "no file per record");
        assert!(s.dirty.load(Ordering::Acquire));
        s.sync().unwrap();
        assert!(!s.dirty.load(Ordering::Acquire));
        assert_eq!(
            s.put_unsynced(b"record one").unwrap(),
            a,
            "content-addressed"
        );
        // The connection is back to FULL for every other commit.
        let sync: i64 = s
            .store
            .conn()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[test]
    fn rows_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let a = {
            let s = open(dir.path());
            let a = s.put_unsynced(b"raw record").unwrap();
            s.sync().unwrap();
            a
        };
        let s = open(dir.path());
        assert_eq!(s.get(&a.sha256).unwrap(), b"raw record");
        assert_eq!(s.get(&a.sha256.to_uppercase()).unwrap(), b"raw record");
    }

    #[test]
    fn large_blobs_and_durable_puts_are_files_and_found_by_get() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let big = vec![7u8; MAX_IN_DATABASE + 1];
        let a = s.put_unsynced(&big).unwrap();
        assert!(!s.has_row(&a.sha256).unwrap());
        let scan = s.put(b"scanned letter").unwrap();
        assert!(!s.has_row(&scan.sha256).unwrap());
        let f = dir.path().join("in.bin");
        std::fs::write(&f, b"streamed").unwrap();
        let streamed = s.put_file(&f).unwrap();
        s.sync().unwrap();
        assert_eq!(s.get(&a.sha256).unwrap(), big);
        assert_eq!(s.get(&scan.sha256).unwrap(), b"scanned letter");
        assert_eq!(s.get(&streamed.sha256).unwrap(), b"streamed");
        assert!(s.get("../../etc/passwd").is_err());
        assert!(s.get(&"0".repeat(64)).is_err(), "unknown digest");
    }

    #[test]
    fn a_page_of_records_is_written_in_one_call_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let big = vec![1u8; MAX_IN_DATABASE + 1];
        let page = vec![
            b"one".to_vec(),
            big.clone(),
            b"two".to_vec(),
            b"one".to_vec(),
        ];
        let refs = s.put_unsynced_many(&page).unwrap();
        assert_eq!(refs.len(), 4);
        for (r, b) in refs.iter().zip(&page) {
            assert_eq!(*r, reference(b));
            assert_eq!(s.get(&r.sha256).unwrap(), *b);
        }
        assert!(s.has_row(&refs[0].sha256).unwrap() && !s.has_row(&refs[1].sha256).unwrap());
        assert_eq!(
            files_in(&dir.path().join("blobs")),
            1,
            "only the large one is a file"
        );
        s.sync().unwrap();
    }

    /// The quarantine's durable put of a record already written unsynced must leave it durable.
    #[test]
    fn a_durable_put_of_a_row_written_unsynced_syncs_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let a = s.put_unsynced(b"raw record").unwrap();
        assert!(s.dirty.load(Ordering::Acquire));
        assert_eq!(s.put(b"raw record").unwrap(), a);
        assert!(
            !s.dirty.load(Ordering::Acquire),
            "put must leave it durable"
        );
        assert_eq!(files_in(&dir.path().join("blobs")), 0, "not written twice");
    }
}
