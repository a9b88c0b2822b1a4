//! Fixtures for the store's tests and for the daemon's tests that drive the store with the
//! layers above it (feature `testing`; not part of a production build).

use crate::{Decision, NewItem, NewOutbox, PgStore, SqliteStore, Store};
use petitiond_core::envelope::{Channel, Envelope, Personal, Request, Upstream};
use petitiond_core::sla::clock::{Clock, State};
use std::sync::Arc;
use std::time::Duration;

/// A fresh store in a temporary directory (kept alive by the returned guard).
pub fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap();
    (dir, s)
}

/// A letter item `upstream` with one outbox row and one running clock `c` of `desk`.
pub fn item(upstream: &str) -> NewItem {
    let env = Envelope::new(
        Channel::Letter,
        Upstream {
            id: upstream.into(),
            url: None,
            source: "mailbox".into(),
            raw_ref: "sha256:00".into(),
            ..Default::default()
        },
        "2026-03-02T01:00:00Z".parse().unwrap(),
        Request {
            title: None,
            content: Personal::new("x"),
        },
    );
    NewItem {
        outbox: vec![NewOutbox {
            topic: "t".into(),
            key: env.id.to_string(),
            ce_id: format!("ce-{upstream}"),
            headers: vec![("ce_specversion".into(), "1.0".into())],
            payload: b"{}".to_vec(),
        }],
        decision: Decision {
            rule_id: "default".into(),
            rules_version: "v0".into(),
            lead: "desk".into(),
            assists: vec![],
            decided_at: "2026-03-02T01:00:00Z".parse().unwrap(),
        },
        clocks: vec![(
            Clock {
                item_id: env.id.to_string(),
                clock_id: "c".into(),
                department: "desk".into(),
                state: State::Running,
                started_at: env.received_at,
                due_at: "2026-03-02T02:00:00Z".parse().unwrap(),
                paused_at: None,
                extended_days: 0,
                last_alert_at: None,
                provisional: false,
                held: jiff::SignedDuration::ZERO,
            },
            Some("2026-03-02T01:30:00Z".parse().unwrap()),
        )],
        envelope: env,
        version: None,
        person_index: None,
        writeback: Vec::new(),
    }
}

/// The PostgreSQL server the store tests also run on (a URL), when set.
pub const POSTGRES_ENV: &str = "PETITIOND_TEST_POSTGRES";

/// A store backend under test, with what keeps its database alive; derefs to the store.
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<dyn Store>,
    raw: Raw,
}

enum Raw {
    Sqlite(Arc<SqliteStore>, #[allow(dead_code)] tempfile::TempDir),
    Postgres(Arc<PgStore>, #[allow(dead_code)] SchemaGuard),
}

impl std::ops::Deref for Backend {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        self.store.as_ref()
    }
}

/// A test's own schema in the test server, dropped with it.
struct PgSchema {
    admin: std::sync::Mutex<postgres::Client>,
    name: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let mut admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let _ = admin.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
    }
}

impl Backend {
    /// Runs one statement with literal values on the backend's database (a test's peek or
    /// poke below the trait, in SQL both dialects read); the rows changed.
    pub fn execute(&self, sql: &str) -> u64 {
        match &self.raw {
            Raw::Sqlite(s, _) => s.conn().execute(sql, []).unwrap() as u64,
            Raw::Postgres(s, _) => s.conn().unwrap().execute(sql, &[]).unwrap(),
        }
    }

    /// The first column of the one row `sql` returns, as an integer.
    pub fn query_i64(&self, sql: &str) -> i64 {
        match &self.raw {
            Raw::Sqlite(s, _) => s.conn().query_row(sql, [], |r| r.get(0)).unwrap(),
            Raw::Postgres(s, _) => s.conn().unwrap().query_one(sql, &[]).unwrap().get(0),
        }
    }

    /// The first column of the one row `sql` returns, as text.
    pub fn query_text(&self, sql: &str) -> Option<String> {
        match &self.raw {
            Raw::Sqlite(s, _) => s.conn().query_row(sql, [], |r| r.get(0)).unwrap(),
            Raw::Postgres(s, _) => s.conn().unwrap().query_one(sql, &[]).unwrap().get(0),
        }
    }

    /// The PostgreSQL store, on that backend.
    pub fn postgres(&self) -> Option<&Arc<PgStore>> {
        match &self.raw {
            Raw::Postgres(s, _) => Some(s),
            Raw::Sqlite(..) => None,
        }
    }
}

/// A fresh store on each backend: SQLite always; PostgreSQL when [`POSTGRES_ENV`] names a
/// server (each call gets its own schema there). Under `CI=true` a missing server is a
/// failure, not a skip: the suite must have run on both.
pub fn backends() -> Vec<Backend> {
    let (dir, s) = store();
    let s = Arc::new(s);
    let mut out = vec![Backend {
        name: "sqlite",
        store: s.clone(),
        raw: Raw::Sqlite(s, dir),
    }];
    if let Some(pg) = postgres_store() {
        out.push(pg);
    }
    out
}

/// Runs `f` on a fresh store of each backend (the backend's name is printed first, so a
/// failure says which).
pub fn each_backend(f: impl Fn(&Backend)) {
    for b in backends() {
        eprintln!("store backend: {}", b.name);
        f(&b);
    }
}

/// A schema of its own in the test server, dropped with this guard.
pub struct SchemaGuard(#[allow(dead_code)] Box<PgSchema>);

/// The test server's URL ([`POSTGRES_ENV`]), if set; under `CI=true` its absence fails.
fn postgres_env() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {POSTGRES_ENV} is not set: the store tests must run on PostgreSQL too \
                 (scripts/test.sh starts one)"
            );
            None
        }
    }
}

/// Creates a fresh schema in the test server: its connection settings (they use it) and the
/// guard that drops it.
fn postgres_schema() -> Option<(postgres::Config, String, SchemaGuard)> {
    let url = postgres_env()?;
    let mut config: postgres::Config = url
        .parse()
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}: {e}"));
    let mut admin = config
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV}: {e}"));
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .unwrap();
    config.options(&format!("-c search_path={name}"));
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}options=-csearch_path%3D{name}");
    let guard = SchemaGuard(Box::new(PgSchema {
        admin: std::sync::Mutex::new(admin),
        name,
    }));
    Some((config, url, guard))
}

/// A URL of the test server whose connections work in a fresh schema of their own (for the
/// daemon's tests that open a store from config), with the guard that drops the schema.
pub fn postgres_url() -> Option<(String, SchemaGuard)> {
    postgres_schema().map(|(_, url, guard)| (url, guard))
}

/// A fresh PostgreSQL store in its own schema, when [`POSTGRES_ENV`] is set.
pub fn postgres_store() -> Option<Backend> {
    let (config, _, guard) = postgres_schema()?;
    let s = Arc::new(PgStore::connect_config(config, 4, Duration::from_secs(10)).unwrap());
    Some(Backend {
        name: "postgres",
        store: s.clone(),
        raw: Raw::Postgres(s, guard),
    })
}
