//! Content-addressed blob store: raw upstream records, scans and quarantined bytes.
//!
//! Envelopes carry claim checks (`sha256:<hex>`), never the bytes. A blob is written to a
//! temporary file, fsynced and renamed into `<dir>/<aa>/<hex>`, so a name that exists is a
//! complete blob; writing the same bytes twice is a no-op. Behind [`BlobStore`] so an object
//! store can follow. Blobs are scans and mails, so directories are created 0700 and files 0600
//! whatever the umask (`store::files`).
//!
//! Group commit: [`BlobStore::put_unsynced`] writes and renames without fsync, and the one who
//! commits a reference to such a blob calls [`BlobStore::sync`] first — one `syncfs(2)` of the
//! blob store's filesystem for a whole group of records instead of two fsyncs (file and
//! directory) per blob. Intake does so before every store commit; nothing else commits a
//! reference to an unsynced blob.

use super::files::{create_new_private, create_private_dir};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A stored blob's reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub sha256: String,
    pub size: u64,
}

impl BlobRef {
    /// The claim-check string carried in envelopes and quarantine rows.
    pub fn claim(&self) -> String {
        format!("sha256:{}", self.sha256)
    }
}

/// The reference `bytes` have in every blob store (their SHA-256), without storing them.
pub fn reference(bytes: &[u8]) -> BlobRef {
    BlobRef {
        sha256: hex::encode(Sha256::digest(bytes)),
        size: bytes.len() as u64,
    }
}

pub trait BlobStore: Send + Sync + 'static {
    /// Writes a blob durably (fsynced before it returns).
    fn put(&self, bytes: &[u8]) -> std::io::Result<BlobRef>;
    /// Writes a blob that becomes durable at the next [`BlobStore::sync`]: whoever commits a
    /// reference to it must call `sync` first.
    fn put_unsynced(&self, bytes: &[u8]) -> std::io::Result<BlobRef> {
        self.put(bytes)
    }
    /// [`BlobStore::put_unsynced`] of each blob, in order: a page of records writes once.
    fn put_unsynced_many(&self, blobs: &[Vec<u8>]) -> std::io::Result<Vec<BlobRef>> {
        blobs.iter().map(|b| self.put_unsynced(b)).collect()
    }
    /// Makes every blob written before the call durable.
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
    /// Streams a file in without holding it in memory (oversize inputs).
    fn put_file(&self, path: &Path) -> std::io::Result<BlobRef>;
    fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>>;
    /// The URI a consumer uses to fetch the blob (CloudEvents `dataref`).
    fn dataref(&self, r: &BlobRef) -> String;
}

pub struct FsBlobStore {
    dir: PathBuf,
    /// A blob was written unsynced since the last `sync`.
    dirty: AtomicBool,
}

impl FsBlobStore {
    /// Opens (creating) the store; temporary files left by a crash mid-write are removed —
    /// their blobs were never committed, so nothing refers to them.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        create_private_dir(&dir.join("tmp"))?;
        for e in std::fs::read_dir(dir.join("tmp"))?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            dirty: AtomicBool::new(false),
        })
    }

    fn path_of(&self, hex: &str) -> PathBuf {
        self.dir.join(&hex[..2]).join(hex)
    }

    fn commit(
        &self,
        tmp: &Path,
        file: std::fs::File,
        hex: String,
        size: u64,
        durable: bool,
    ) -> std::io::Result<BlobRef> {
        if durable {
            file.sync_all()?;
        }
        drop(file);
        let dest = self.path_of(&hex);
        if dest.exists() {
            std::fs::remove_file(tmp)?;
        } else {
            let parent = dest.parent().expect("blob path has a parent");
            create_private_dir(parent)?;
            std::fs::rename(tmp, &dest)?;
            if durable {
                std::fs::File::open(parent)?.sync_all()?;
            }
        }
        if !durable {
            // After the rename: a `sync` that sees the flag sees the blob.
            self.dirty.store(true, Ordering::Release);
        }
        Ok(BlobRef { sha256: hex, size })
    }

    fn tmp(&self) -> std::io::Result<(PathBuf, std::fs::File)> {
        let name = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let path = self.dir.join("tmp").join(name);
        let f = create_new_private(&path)?;
        Ok((path, f))
    }
}

impl FsBlobStore {
    fn put_bytes(&self, bytes: &[u8], durable: bool) -> std::io::Result<BlobRef> {
        let hex = hex::encode(Sha256::digest(bytes));
        if self.path_of(&hex).exists() {
            if durable {
                // It may have been written unsynced: make it durable before answering.
                self.sync()?;
            }
            return Ok(BlobRef {
                sha256: hex,
                size: bytes.len() as u64,
            });
        }
        let (tmp, mut f) = self.tmp()?;
        f.write_all(bytes)?;
        self.commit(&tmp, f, hex, bytes.len() as u64, durable)
    }
}

impl BlobStore for FsBlobStore {
    fn put(&self, bytes: &[u8]) -> std::io::Result<BlobRef> {
        self.put_bytes(bytes, true)
    }

    fn put_unsynced(&self, bytes: &[u8]) -> std::io::Result<BlobRef> {
        self.put_bytes(bytes, false)
    }

    fn sync(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        // One flush of the filesystem holding the blobs: data, inodes and the renames'
        // directory entries of every blob written before the swap above.
        let dir = std::fs::File::open(&self.dir)?;
        nix::unistd::syncfs(&dir).map_err(|e| {
            self.dirty.store(true, Ordering::Release);
            std::io::Error::from(e)
        })
    }

    fn put_file(&self, path: &Path) -> std::io::Result<BlobRef> {
        let mut src = std::fs::File::open(path)?;
        let (tmp, mut f) = self.tmp()?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            f.write_all(&buf[..n])?;
            size += n as u64;
        }
        self.commit(&tmp, f, hex::encode(hasher.finalize()), size, true)
    }

    fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a sha256 hex digest",
            ));
        }
        std::fs::read(self.path_of(sha256))
    }

    fn dataref(&self, r: &BlobRef) -> String {
        format!("urn:petitiond:blob:sha256:{}", r.sha256)
    }
}

/// Hashes and forgets: for `explain`, which must not write anything.
pub struct DryRunBlobStore;

impl BlobStore for DryRunBlobStore {
    fn put(&self, bytes: &[u8]) -> std::io::Result<BlobRef> {
        Ok(reference(bytes))
    }

    fn put_file(&self, path: &Path) -> std::io::Result<BlobRef> {
        self.put(&std::fs::read(path)?)
    }

    fn get(&self, _sha256: &str) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "dry run keeps no blobs",
        ))
    }

    fn dataref(&self, r: &BlobRef) -> String {
        format!("urn:petitiond:blob:sha256:{}", r.sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsBlobStore::open(dir.path()).unwrap();
        let a = s.put(b"scan bytes").unwrap();
        let b = s.put(b"scan bytes").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.size, 10);
        assert_eq!(s.get(&a.sha256).unwrap(), b"scan bytes");
        let f = dir.path().join("in.bin");
        std::fs::write(&f, b"scan bytes").unwrap();
        assert_eq!(s.put_file(&f).unwrap(), a);
        assert!(s.get("../../etc/passwd").is_err());
    }

    #[test]
    fn unsynced_blobs_are_readable_at_once_and_made_durable_by_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsBlobStore::open(dir.path()).unwrap();
        let a = s.put_unsynced(b"record one").unwrap();
        let b = s.put_unsynced(b"record two").unwrap();
        assert_eq!(s.get(&a.sha256).unwrap(), b"record one");
        assert_eq!(s.get(&b.sha256).unwrap(), b"record two");
        assert!(s.dirty.load(Ordering::Acquire));
        s.sync().unwrap();
        assert!(!s.dirty.load(Ordering::Acquire));
        // Nothing written since: a second sync has nothing to do.
        s.sync().unwrap();
        assert_eq!(
            s.put_unsynced(b"record one").unwrap(),
            a,
            "content-addressed"
        );
    }

    /// A durable `put` of bytes already written unsynced found the file and returned at once:
    /// the quarantine row referring to it could commit before the blob was durable.
    #[test]
    fn a_durable_put_of_a_blob_written_unsynced_syncs_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsBlobStore::open(dir.path()).unwrap();
        let a = s.put_unsynced(b"raw record").unwrap();
        assert!(s.dirty.load(Ordering::Acquire));
        assert_eq!(s.put(b"raw record").unwrap(), a);
        assert!(
            !s.dirty.load(Ordering::Acquire),
            "put must leave it durable"
        );
    }

    /// Blobs (scans, raw mails, quarantined bytes) were created with the umask's mode: 0644
    /// files in 0755 directories under the usual 022, readable by every local user.
    #[test]
    fn blobs_are_created_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("blobs");
        let s = FsBlobStore::open(&dir).unwrap();
        let a = s.put(b"scan bytes").unwrap();
        let f = root.path().join("in.bin");
        std::fs::write(&f, b"other scan").unwrap();
        let b = s.put_file(&f).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for d in [dir.clone(), dir.join("tmp"), dir.join(&a.sha256[..2])] {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
        }
        for r in [&a, &b] {
            assert_eq!(mode(&s.path_of(&r.sha256)), 0o600);
        }
    }
}
