//! Private files: everything petitiond writes under its data directory holds personal data
//! (envelopes, scans, quarantined mail, the repeat-petition key), so it is created owner-only —
//! directories 0700, files 0600 — with the mode given at creation, whatever the process umask.
//!
//! Owns the creation helpers the store, the blob store and the key use, the start-up check
//! that refuses a data directory others can read ([`check_private`]), and the daemon's umask
//! (0077, set before any thread starts: [`restrict_umask`]) that covers files created by code
//! that does not use these helpers (SQLite's journal files, the IMAP spool).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every directory petitiond creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file petitiond creates.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents with mode 0700 (an existing directory is left as it
/// is; [`check_private`] judges it).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Opens `path` for writing, creating it with mode 0600 if it does not exist.
pub fn open_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
}

/// Creates a new file (it must not exist) with mode 0600: for temporary files that are
/// renamed into place, so a stale file with a wider mode can never be reused.
pub fn create_new_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// A directory holding personal data that others may read.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} has mode {mode:04o}: group or others can read petitioners' data there. Fix: `chmod 700 {}` (and check who was given access), or start with --allow-shared-data-dir / set daemon.allow_shared_data_dir = true if the wider mode is deliberate",
    path.display(),
    path.display()
)]
pub struct SharedDir {
    pub path: PathBuf,
    pub mode: u32,
}

/// `Ok` when `dir` does not exist yet (it will be created 0700) or only its owner has any
/// access to it; otherwise the mode found.
pub fn check_private(dir: &Path) -> Result<(), SharedDir> {
    match std::fs::metadata(dir) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(SharedDir {
                    path: dir.to_path_buf(),
                    mode,
                });
            }
            Ok(())
        }
        Err(_) => Ok(()),
    }
}

/// Sets the process umask to 0077 so that every file and directory created afterwards, by any
/// code (SQLite's `-wal`/`-shm`, spool files), is owner-only. Call before threads start.
pub fn restrict_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_private_and_shared_dirs_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let f = dir.join("f");
        drop(open_private(&f).unwrap());
        assert_eq!(mode(&f), 0o600);
        assert!(create_new_private(&f).is_err(), "never reuses a file");
        assert!(check_private(&dir).is_ok());
        assert!(check_private(&root.path().join("missing")).is_ok());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let e = check_private(&dir).unwrap_err();
        assert_eq!(e.mode, 0o750);
        let text = e.to_string();
        assert!(text.contains(&dir.display().to_string()), "{text}");
        assert!(text.contains("chmod 700"), "{text}");
        assert!(text.contains("--allow-shared-data-dir"), "{text}");
    }
}
