//! PostgreSQL-only behaviour: schema versioning, the pool, the blocking pool, blobs. Run
//! when `PETITIOND_TEST_POSTGRES` names a server (a failure under `CI=true` without one).

use super::*;
use crate::blobs::BlobStore;
use crate::testing::postgres_store;

/// A second store on the test's schema (another instance, or a restart).
fn reopen(s: &PgStore, pool: usize, timeout: Duration) -> Result<PgStore, StoreError> {
    PgStore::connect_config(s.config().clone(), pool, timeout)
}

#[test]
fn reconnecting_migrates_nothing_and_keeps_data() {
    let Some(b) = postgres_store() else { return };
    let s = b.postgres().unwrap();
    s.set_cursor("src", "42").unwrap();
    let again = reopen(s, 2, Duration::from_secs(5)).unwrap();
    assert_eq!(again.cursor("src").unwrap().as_deref(), Some("42"));
    assert_eq!(
        b.query_i64("SELECT version FROM schema_version"),
        migrations::MIGRATIONS.len() as i64
    );
    assert_eq!(b.query_i64("SELECT COUNT(*) FROM schema_version"), 1);
}

/// An older binary started on a database a newer one migrated would misread it: refused.
#[test]
fn a_schema_newer_than_the_build_is_refused() {
    let Some(b) = postgres_store() else { return };
    b.execute("UPDATE schema_version SET version = 99");
    let err = reopen(b.postgres().unwrap(), 1, Duration::from_secs(5))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("version 99"), "{err}");
}

/// Instances starting together migrate once (the advisory lock), none fails.
#[test]
fn instances_starting_together_migrate_once() {
    let Some(b) = postgres_store() else { return };
    let s = b.postgres().unwrap();
    // Start from an empty schema: drop what the fixture's store created.
    let tables = b.query_text(
        "SELECT string_agg(tablename, ', ') FROM pg_tables WHERE schemaname = current_schema()",
    );
    b.execute(&format!("DROP TABLE {} CASCADE", tables.unwrap()));
    b.execute("DROP FUNCTION petitiond_now()");
    std::thread::scope(|sc| {
        let starts: Vec<_> = (0..4)
            .map(|_| sc.spawn(|| reopen(s, 1, Duration::from_secs(10)).map(drop)))
            .collect();
        for h in starts {
            h.join().unwrap().unwrap();
        }
    });
    assert_eq!(
        b.query_i64("SELECT version FROM schema_version"),
        migrations::MIGRATIONS.len() as i64
    );
}

/// The synchronous client runs its own runtime, which cannot start on a thread that runs
/// async tasks ("Cannot start a runtime from within a runtime": the daemon panicked at start
/// and at exit). The store opens from async code (`Application::build`), runs its calls on
/// tokio's blocking pool (`store::blocking`) and drops on a runtime thread (the daemon's last
/// handle goes there when it stops).
#[test]
fn the_store_opens_runs_and_drops_from_async_code() {
    let Some(b) = postgres_store() else { return };
    let store: Arc<dyn Store> =
        Arc::new(reopen(b.postgres().unwrap(), 2, Duration::from_secs(5)).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let again = b.postgres().unwrap().config().clone();
    let got = rt.block_on(async move {
        // Opening from async code (as `Application::build` does) works too.
        let opened = PgStore::connect_config(again, 1, Duration::from_secs(5)).unwrap();
        drop(opened);
        crate::blocking(&store, |s| s.set_cursor("portal", "7"))
            .await
            .unwrap();
        let got = crate::blocking(&store, |s| s.cursor("portal"))
            .await
            .unwrap();
        drop(store);
        got
    });
    assert_eq!(got.as_deref(), Some("7"));
}

/// A caller waits for a free connection at most the timeout, then gets a retryable error
/// naming the pool; a returned connection is reused.
#[test]
fn the_pool_bounds_connections_and_waits() {
    let Some(b) = postgres_store() else { return };
    let s = reopen(b.postgres().unwrap(), 1, Duration::from_millis(300)).unwrap();
    let held = s.conn().unwrap();
    let t = Instant::now();
    let err = s.cursor("x").unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    drop(held);
    assert_eq!(s.cursor("x").unwrap(), None);
}

/// A connection the server closed (restart, idle timeout) is replaced: a transaction
/// notices before it commits and runs again on a new connection; a one-statement call fails
/// at most once.
#[test]
fn a_connection_closed_by_the_server_is_replaced() {
    let Some(b) = postgres_store() else { return };
    let s = reopen(b.postgres().unwrap(), 1, Duration::from_secs(5)).unwrap();
    let kill = || {
        let pid: i32 = s
            .conn()
            .unwrap()
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        b.postgres()
            .unwrap()
            .conn()
            .unwrap()
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
    };
    s.set_cursor("a", "1").unwrap();
    kill();
    let lease = s.acquire_lease("hotline", "a").unwrap_or_else(|_| {
        // A one-statement call on the dead connection: it fails, and the next gets a new one.
        s.acquire_lease("hotline", "a").unwrap()
    });
    kill();
    s.set_cursor_leased("hotline", "2", &lease).unwrap();
    assert_eq!(s.cursor("hotline").unwrap().as_deref(), Some("2"));
}

/// Blobs are content-addressed rows: the same bytes once, a file streamed in chunks (here
/// more than two), readable by another instance; a bad or unknown digest is an error.
#[test]
fn blobs_are_shared_content_addressed_and_chunked() {
    let Some(b) = postgres_store() else { return };
    let s = b.postgres().unwrap().clone();
    let blobs = PgBlobStore::new(s.clone());
    let a = blobs.put(b"scan bytes").unwrap();
    assert_eq!(blobs.put_unsynced(b"scan bytes").unwrap(), a);
    blobs.sync().unwrap();
    assert_eq!(a.size, 10);
    assert_eq!(blobs.get(&a.sha256).unwrap(), b"scan bytes");
    let big: Vec<u8> = (0..(5 * super::blobs::CHUNK / 2))
        .map(|i| (i % 251) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("scan.tif");
    std::fs::write(&f, &big).unwrap();
    let r = blobs.put_file(&f).unwrap();
    assert_eq!(r, blobs.put(&big).unwrap(), "the same digest either way");
    assert_eq!(
        b.query_i64(&format!(
            "SELECT COUNT(*) FROM blob_chunks WHERE sha256 = '{}'",
            r.sha256
        )),
        3
    );
    let other = PgBlobStore::new(Arc::new(reopen(&s, 1, Duration::from_secs(5)).unwrap()));
    assert_eq!(other.get(&r.sha256).unwrap(), big);
    assert_eq!(
        other.dataref(&r),
        format!("urn:petitiond:blob:sha256:{}", r.sha256)
    );
    assert_eq!(
        other.get(&"0".repeat(64)).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    assert_eq!(
        other.get("../../etc/passwd").unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}
