//! Tests of the SQLite store, by concern; the shared fixtures live here.

use super::*;
use petitiond_core::envelope::Envelope;

mod board;
mod clocks;
mod concurrency;
mod intake;
mod items;
mod leases;
mod reports;

use crate::testing::{each_backend, item, store};

/// The database and its WAL were created with the umask's mode (0644 under the usual
/// 022): every local user could read the envelopes.
#[test]
fn store_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("data/sub/t.db");
    let s = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
    s.record_item(&item("a")).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root.path().join("data")), 0o700);
    assert_eq!(mode(&root.path().join("data/sub")), 0o700);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&root.path().join("data/sub/t.db-wal")), 0o600);
    assert_eq!(mode(&root.path().join("data/sub/t.db-shm")), 0o600);
    drop(s);
    // An older store created 0644 is narrowed when opened.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _s = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn reopening_keeps_data_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let s = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
        s.record_item(&item("a")).unwrap();
        s.set_cursor("src", "42").unwrap();
    }
    let s = SqliteStore::open(&path, Duration::from_secs(1)).unwrap();
    assert_eq!(s.cursor("src").unwrap().as_deref(), Some("42"));
    assert_eq!(s.pending_count().unwrap(), 1);
}

#[test]
fn migrations_are_valid() {
    Migrations::from_slice(migrations::MIGRATIONS)
        .validate()
        .unwrap();
}
