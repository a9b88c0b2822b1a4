//! SQLite implementation of [`Store`]: the embedded default.
//!
//! One connection behind a mutex (SQLite serialises writers anyway); WAL journal with
//! `synchronous=FULL` so a committed transaction survives power loss; schema by
//! `rusqlite_migration` (versioned through `PRAGMA user_version`).

use super::*;
use crate::sla::clock::{Clock, State};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MIGRATIONS: &[M<'static>] = &[
    M::up(
        r#"
CREATE TABLE items (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at TEXT NOT NULL,
    category TEXT,
    stage TEXT NOT NULL,
    envelope TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE cursors (
    source TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE routing_decisions (
    item_id TEXT NOT NULL REFERENCES items(id),
    rule_id TEXT NOT NULL,
    rules_version TEXT NOT NULL,
    lead TEXT NOT NULL,
    assists TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (item_id, decided_at)
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    msg_key TEXT NOT NULL,
    ce_id TEXT NOT NULL,
    headers TEXT NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','delivered','dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    partition INTEGER,
    offset INTEGER,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    done_at TEXT,
    UNIQUE (topic, ce_id)
);
CREATE INDEX outbox_pending ON outbox(seq) WHERE state = 'pending';
CREATE TABLE topic_positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE sla_clocks (
    item_id TEXT NOT NULL REFERENCES items(id),
    clock_id TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    due_at TEXT NOT NULL,
    paused_at TEXT,
    remaining_secs INTEGER,
    PRIMARY KEY (item_id, clock_id)
);
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    reference TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw_ref TEXT NOT NULL,
    size INTEGER NOT NULL,
    at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
"#,
    ),
    M::up(
        r#"
ALTER TABLE sla_clocks ADD COLUMN department TEXT NOT NULL DEFAULT '';
ALTER TABLE sla_clocks ADD COLUMN extended_days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sla_clocks ADD COLUMN last_alert_at TEXT;
ALTER TABLE sla_clocks ADD COLUMN next_alert_ms INTEGER;
CREATE INDEX sla_clocks_next ON sla_clocks(next_alert_ms) WHERE next_alert_ms IS NOT NULL;
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    clock_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    department TEXT NOT NULL,
    due_at TEXT NOT NULL,
    scheduled_at TEXT NOT NULL,
    fired_at TEXT NOT NULL,
    late INTEGER NOT NULL
);
CREATE TABLE mail_outbox (
    alert_id TEXT PRIMARY KEY,
    recipients TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sending','sent','unknown','failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    sent_at TEXT
);
CREATE TABLE status_events (
    event_id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    at TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
"#,
    ),
    // v3: the upstream version of an item (HTTP channels), to tell an update from a re-poll.
    M::up(
        r#"
ALTER TABLE items ADD COLUMN upstream_version TEXT;
CREATE INDEX quarantine_source_raw ON quarantine(source, raw_ref);
"#,
    ),
    // v4: the repeat-petition index. person_key is a keyed hash (HMAC-SHA256, hex) of a
    // normalised ID number or mobile, never the value; one row per (key, item).
    M::up(
        r#"
CREATE TABLE person_items (
    person_key TEXT NOT NULL,
    item_id TEXT NOT NULL REFERENCES items(id),
    matter TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (person_key, item_id)
);
CREATE INDEX person_items_matter ON person_items(person_key, matter, received_ms);
"#,
    ),
    // v5: the SLA board. `due_ms` (the due instant in ms: exact order, where RFC 3339 text
    // with a varying number of fraction digits is not) and `alerted` (`last_alert_at` is set)
    // are plain columns written with every clock (SQLite does not treat an index on virtual
    // generated columns as covering, and the counts must not touch the table); existing rows
    // are filled here from the same values. The partial indexes hold open clocks only
    // (stopped ones, the majority over time, cost nothing) and cover the board's counts; the
    // clock lists are read per clock id from them, so every read is an index range + LIMIT.
    // Alerts are read newest first by rowid (insertion order), filtered as read: no index on
    // alerts, which the timer engine would maintain on every alert.
    M::up(
        r#"
ALTER TABLE sla_clocks ADD COLUMN due_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sla_clocks ADD COLUMN alerted INTEGER NOT NULL DEFAULT 0;
UPDATE sla_clocks SET
    due_ms = CAST(round((julianday(due_at) - 2440587.5) * 86400000.0) AS INTEGER),
    alerted = (last_alert_at IS NOT NULL);
CREATE INDEX sla_clocks_board_clock
    ON sla_clocks(clock_id, state, due_ms, department, alerted) WHERE state <> 'stopped';
CREATE INDEX sla_clocks_board_department
    ON sla_clocks(department, clock_id, state, due_ms, alerted) WHERE state <> 'stopped';
"#,
    ),
    // v6: clocks waiting for a calendar year (state 'pending') are found at start without a
    // scan of every clock.
    M::up(
        r#"
CREATE INDEX sla_clocks_pending ON sla_clocks(state) WHERE state = 'pending';
"#,
    ),
    // v7: `alerted` leaves the board's two indexes over every open clock. Firing a clock's
    // first alert sets it, and SQLite rewrites every index holding a column of the SET list:
    // with a million open clocks that was a delete and an insert in two large indexes per
    // alert, on random pages: the likely cause of benches/sla_timers.rs's max lateness going
    // from 0.6 s to 0.8-2.4 s with the board (not yet re-measured since). The warned count reads a partial index of the alerted running clocks instead,
    // which the first alert enters once (one insert into a small index); firing later alerts
    // touches only `sla_clocks_next`.
    M::up(
        r#"
DROP INDEX sla_clocks_board_clock;
DROP INDEX sla_clocks_board_department;
CREATE INDEX sla_clocks_board_clock
    ON sla_clocks(clock_id, state, due_ms, department) WHERE state <> 'stopped';
CREATE INDEX sla_clocks_board_department
    ON sla_clocks(department, clock_id, state, due_ms) WHERE state <> 'stopped';
CREATE INDEX sla_clocks_board_alerted
    ON sla_clocks(clock_id, due_ms, department) WHERE state = 'running' AND alerted = 1;
"#,
    ),
    // v8: provisional calendars (issue 14). `provisional`: the due instant rests on a year
    // without an official calendar file; `next_provisional`: so may the stored next alert
    // instant (a reminder counted in such a year); `held_ns`: time held by pauses (exact, in ns), to replay
    // the due instant on the official file. The partial index holds the open clocks to look
    // at again when a calendar changes (few: those whose span crosses into such a year).
    // `calendar_state` remembers each year's day kinds as clocks were last computed, so that
    // a start with the same calendars recomputes nothing. Alerts keep their provisional mark.
    M::up(
        r#"
ALTER TABLE sla_clocks ADD COLUMN provisional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sla_clocks ADD COLUMN next_provisional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sla_clocks ADD COLUMN held_ns INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sla_clocks_provisional ON sla_clocks(state, provisional)
    WHERE state <> 'stopped' AND (provisional = 1 OR next_provisional = 1);
ALTER TABLE alerts ADD COLUMN provisional INTEGER NOT NULL DEFAULT 0;
CREATE TABLE calendar_state (
    year INTEGER PRIMARY KEY,
    basis TEXT NOT NULL,
    digest TEXT NOT NULL
);
"#,
    ),
    // v9: how each decision's category was decided (JSON: source, confidence, candidates,
    // needs_review), and the intake desk's corrections (a status event re-routing an item),
    // keyed by the event id so a redelivered event is recorded once. Corrections hold ids,
    // categories and department ids; the text stays in `items`.
    M::up(
        r#"
ALTER TABLE routing_decisions ADD COLUMN classification TEXT;
CREATE TABLE corrections (
    event_id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL REFERENCES items(id),
    at TEXT NOT NULL,
    actor TEXT,
    from_category TEXT,
    from_lead TEXT,
    category TEXT,
    department TEXT,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
"#,
    ),
    // v10: status write-back to upstreams (issue 14): one row per request, queued in the
    // transaction of the change that causes it (`writeback.rs`). `idem_key` is the
    // Idempotency-Key sent with every attempt; the partial indexes hold pending rows only:
    // the worker's look-up by source and time, and the per-item order check.
    M::up(
        r#"
CREATE TABLE writeback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL REFERENCES items(id),
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    idem_key TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','delivered','dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    done_at TEXT
);
CREATE INDEX writeback_due ON writeback(source, next_attempt_ms) WHERE state = 'pending';
CREATE INDEX writeback_item ON writeback(item_id, id) WHERE state = 'pending';
"#,
    ),
    // v11: the intake desk's review queue for the SLA board (issue 20): an item whose
    // routing was unsure of its category (`needs_review`) waits here, inserted in the
    // transaction that records the item, until a status event is applied to it (the desk
    // has taken it in hand), deleted in the transaction that applies the event. Ids,
    // categories and numbers only. Filled from the decisions already recorded.
    M::up(
        r#"
CREATE TABLE review_queue (
    item_id TEXT PRIMARY KEY REFERENCES items(id),
    lead TEXT NOT NULL,
    decided_ms INTEGER NOT NULL,
    classification TEXT NOT NULL
);
CREATE INDEX review_queue_decided ON review_queue(decided_ms, item_id);
CREATE INDEX review_queue_lead ON review_queue(lead, decided_ms, item_id);
INSERT OR REPLACE INTO review_queue (item_id, lead, decided_ms, classification)
SELECT d.item_id, d.lead,
       CAST(ROUND((julianday(d.decided_at) - 2440587.5) * 86400000) AS INTEGER),
       d.classification
FROM routing_decisions d
WHERE json_valid(d.classification)
  AND json_extract(d.classification, '$.needs_review') = 1
  AND d.item_id NOT IN (SELECT item_id FROM status_events)
ORDER BY d.decided_at;
"#,
    ),
    // v12: the closed loop (issue 17). A status event keeps whose it is (`department`), who
    // handles the item (`person`, a staff id) and what it said where the loop needs it
    // (`verdict`: a reply's check, an evaluation); `items.stage` advances with the events
    // (`stage_rank` orders it). The ledger and the monthly report read these.
    M::up(
        r#"
ALTER TABLE status_events ADD COLUMN department TEXT;
ALTER TABLE status_events ADD COLUMN person TEXT;
ALTER TABLE status_events ADD COLUMN verdict TEXT;
ALTER TABLE items ADD COLUMN stage_rank INTEGER NOT NULL DEFAULT 0;
CREATE INDEX status_events_item ON status_events(item_id, at);
CREATE INDEX items_received ON items(received_at);
"#,
    ),
    // v13: report runs (issue 17): one row per scheduled report and period that was queued
    // (`monthly`/`2026-10`, `key_case_reminder`/`2026-12-07T09:00`), so that a restart neither
    // sends a report twice nor misses one (see `report::schedule`).
    M::up(
        r#"
CREATE TABLE report_runs (
    kind TEXT NOT NULL,
    period TEXT NOT NULL,
    ran_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    PRIMARY KEY (kind, period)
) WITHOUT ROWID;
"#,
    ),
    // v14: the monthly report and the key-case list (issue 17, `sqlite/report.rs`).
    // `items_month` covers the month's counts by channel, category and (through the id)
    // lead, and the join to the repeat index (it replaces
    // `items_received`, its prefix); `status_events_event` finds a month's stops and
    // evaluations; `person_items_item` goes from the month's items to their repeat-index
    // rows; `alerts_escalation` holds escalations only (the timer engine's other alerts do not
    // enter it); `items_unreplied` holds items before `replied` only (each leaves it once).
    M::up(
        r#"
CREATE INDEX items_month ON items(received_at, channel, category, id);
DROP INDEX items_received;
CREATE INDEX status_events_event ON status_events(event, at);
CREATE INDEX person_items_item ON person_items(item_id);
CREATE INDEX alerts_escalation ON alerts(item_id) WHERE kind = 'escalation';
CREATE INDEX items_unreplied ON items(received_at) WHERE stage_rank < 3;
"#,
    ),
];

mod ledger;
mod report;
mod writeback;

pub struct SqliteStore {
    // One connection: SQLite has one writer at a time; a pool would only add lock waits.
    conn: Mutex<Connection>,
    // Read-only connection for the SLA board: WAL lets it read a snapshot while the writer
    // commits, so an operator's refresh never holds the writers' mutex (alerts stay on time).
    read: Mutex<Connection>,
    // Tells the checkpoint thread to stop when the store is dropped.
    stop: Arc<AtomicBool>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Checkpoints the WAL from its own connection, off the writers' path: automatic checkpoints
/// inside a commit (copying pages into the database file and fsyncing it) made bursts of
/// alerts late (benches/sla_timers.rs). PASSIVE never blocks the writer.
fn checkpointer(path: PathBuf, stop: Arc<AtomicBool>) {
    let Ok(conn) = Connection::open(&path) else {
        return;
    };
    let _ = conn.busy_timeout(Duration::from_secs(1));
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "WAL checkpoint skipped");
        }
    }
}

/// Builds the records that announce a supplement from the clocks it stops.
type SupplementRecords<'a> = dyn FnMut(&[Clock]) -> Vec<NewOutbox> + 'a;

/// Each connection's page cache: up to 64 MiB (`PRAGMA cache_size` in KiB when negative).
const CACHE_SIZE: i64 = -65536;

impl SqliteStore {
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let io = |e: std::io::Error| {
            StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            super::files::create_private_dir(dir).map_err(io)?;
        }
        make_private(path).map_err(io)?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A burst of alerts updates clocks spread over the whole table and its indexes: with
        // the default 2 MiB cache, pages were evicted (and dirty ones spilled to the WAL)
        // within one transaction (benches/sla_timers.rs).
        conn.pragma_update(None, "cache_size", CACHE_SIZE)?;
        // Group commit takes a savepoint per item: its statement journal (every page the item
        // touches, more than SQLite's 64 KiB in-memory spill size) went to a temporary file
        // created, written and unlinked per item. Journals of one transaction fit in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
        let read = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        read.busy_timeout(busy_timeout)?;
        // The board's counts walk the open-clock index: keep its pages in this connection's
        // cache (up to 64 MiB; a million open clocks' index is about 40 MB).
        read.pragma_update(None, "cache_size", CACHE_SIZE)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (p, st) = (path.to_path_buf(), stop.clone());
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpointer(p, st))
            .map_err(|e| {
                StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            })?;
        Ok(Self {
            conn: Mutex::new(conn),
            read: Mutex::new(read),
            stop,
        })
    }

    /// An upstream update (compare-and-set on the version), and with a supplement its clocks
    /// stopped and its records queued, in one transaction. `None`: the version moved.
    fn update_item(
        &self,
        u: &ItemUpdate,
        supplement: Option<(&Supplement, &mut SupplementRecords<'_>)>,
    ) -> Result<Option<Vec<Timer>>, StoreError> {
        let e = &u.envelope;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE items SET envelope = ?2, upstream_version = ?3
             WHERE id = ?1 AND upstream_version IS ?4",
            params![
                e.id.as_str(),
                serde_json::to_string(e)?,
                u.version,
                u.expected_version
            ],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        let insert = |o: &NewOutbox| -> Result<(), StoreError> {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![e.id.as_str(), o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload])?;
            Ok(())
        };
        for o in &u.outbox {
            insert(o)?;
        }
        let mut timers = Vec::new();
        if let Some((s, f)) = supplement {
            let open: Vec<(i64, Clock)> = tx
                .prepare_cached(&format!(
                    "SELECT {CLOCK_COLS} FROM sla_clocks WHERE item_id = ?1"
                ))?
                .query_map([e.id.as_str()], row_to_clock)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|(_, c)| s.clocks.contains(&c.clock_id) && c.state != State::Stopped)
                .collect();
            let clocks: Vec<Clock> = open.iter().map(|(_, c)| c.clone()).collect();
            let records = f(&clocks);
            for (row, mut c) in open {
                c.state = State::Stopped;
                c.paused_at = None;
                update_clock(&tx, row, &c, None)?;
                timers.push(Timer {
                    clock_row: row,
                    at_ms: i64::MIN,
                });
            }
            for o in &records {
                insert(o)?;
            }
        }
        tx.commit()?;
        Ok(Some(timers))
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half transaction (rusqlite rolls back
        // on drop), so a poisoned lock is still a usable connection.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates the database file 0600 before SQLite opens it (SQLite would create it with the
/// umask's mode, and gives its `-wal` and `-shm` files the database file's mode), and narrows
/// an existing database or journal file that others could read.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    drop(super::files::open_private(path)?);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if let Ok(m) = std::fs::metadata(&p)
            && m.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(super::files::FILE_MODE))?;
            tracing::warn!(file = %p.display(), "store file was readable by others; now 0600");
        }
    }
    Ok(())
}

fn row_to_outbox(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    let headers: String = r.get(5)?;
    Ok(OutboxRow {
        seq: r.get(0)?,
        item_id: r.get(1)?,
        topic: r.get(2)?,
        key: r.get(3)?,
        ce_id: r.get(4)?,
        headers: serde_json::from_str(&headers).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(e))
        })?,
        payload: r.get(6)?,
        attempts: r.get(7)?,
    })
}

fn ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.as_millisecond())
}

fn ts(s: Option<String>) -> rusqlite::Result<Option<Timestamp>> {
    s.map(|s| {
        s.parse::<Timestamp>().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

/// Whether a next alert instant written without the engine's knowledge may rest on a
/// provisional calendar year: the clock's due does, or the instant comes after the due (a
/// reminder or escalation, counted in working days). Conservative: such a clock is looked at
/// again when a calendar changes; the engine writes the exact answer when it fires.
fn next_provisional(c: &Clock, next: Option<Timestamp>) -> bool {
    next.is_some_and(|t| c.provisional || t > c.due_at)
}

fn insert_clock(
    tx: &rusqlite::Connection,
    c: &Clock,
    next: Option<Timestamp>,
) -> Result<Option<Timer>, StoreError> {
    let inserted = tx.prepare_cached(
        "INSERT OR IGNORE INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at, paused_at, extended_days, last_alert_at, next_alert_ms, due_ms, alerted, provisional, next_provisional, held_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
            c.item_id,
            c.clock_id,
            c.department,
            c.state.as_str(),
            c.started_at.to_string(),
            c.due_at.to_string(),
            c.paused_at.map(|t| t.to_string()),
            c.extended_days,
            c.last_alert_at.map(|t| t.to_string()),
            ms(next),
            c.due_at.as_millisecond(),
            c.last_alert_at.is_some(),
            c.provisional,
            next_provisional(c, next),
            i64::try_from(c.held.as_nanos()).unwrap_or(i64::MAX),
        ])?;
    if inserted == 0 {
        // The item already has this clock (a status event started it before): keep that one.
        return Ok(None);
    }
    let row = tx.last_insert_rowid();
    Ok(next.map(|t| Timer {
        clock_row: row,
        at_ms: t.as_millisecond(),
    }))
}

fn update_clock(
    tx: &rusqlite::Transaction<'_>,
    row: i64,
    c: &Clock,
    next: Option<Timestamp>,
) -> Result<(), StoreError> {
    update_clock_marked(tx, row, c, next, next_provisional(c, next))
}

/// [`update_clock`] with the next instant's provisional mark known exactly (the engine's).
fn update_clock_marked(
    tx: &rusqlite::Transaction<'_>,
    row: i64,
    c: &Clock,
    next: Option<Timestamp>,
    next_provisional: bool,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE sla_clocks SET state = ?2, started_at = ?3, due_at = ?4, paused_at = ?5, extended_days = ?6,
         last_alert_at = ?7, next_alert_ms = ?8, due_ms = ?9, alerted = ?10, provisional = ?11,
         next_provisional = ?12, held_ns = ?13 WHERE rowid = ?1",
    )?
    .execute(params![
            row,
            c.state.as_str(),
            c.started_at.to_string(),
            c.due_at.to_string(),
            c.paused_at.map(|t| t.to_string()),
            c.extended_days,
            c.last_alert_at.map(|t| t.to_string()),
            ms(next),
            c.due_at.as_millisecond(),
            c.last_alert_at.is_some(),
            c.provisional,
            next_provisional,
            i64::try_from(c.held.as_nanos()).unwrap_or(i64::MAX),
        ])?;
    Ok(())
}

/// Firing changes a clock's `last_alert_at` and next instant only. The UPDATE names just those
/// columns (and `alerted` on the clock's first alert): SQLite rewrites every index that holds
/// a column in the SET list, changed or not, so the full `update_clock` would also rewrite the
/// board's indexes over open clocks on every alert.
fn record_fired(
    tx: &rusqlite::Transaction<'_>,
    row: i64,
    was: Option<Timestamp>,
    last_alert_at: Option<Timestamp>,
    next: Option<Timestamp>,
    next_provisional: Option<bool>,
) -> Result<(), StoreError> {
    let last = last_alert_at.map(|t| t.to_string());
    if let Some(p) = next_provisional {
        // Only when the mark changes: the column is in the provisional clocks' index.
        tx.prepare_cached("UPDATE sla_clocks SET next_provisional = ?2 WHERE rowid = ?1")?
            .execute(params![row, p])?;
    }
    if was.is_none() && last_alert_at.is_some() {
        tx.prepare_cached(
            "UPDATE sla_clocks SET last_alert_at = ?2, next_alert_ms = ?3, alerted = 1 WHERE rowid = ?1",
        )?
        .execute(params![row, last, ms(next)])?;
    } else {
        tx.prepare_cached(
            "UPDATE sla_clocks SET last_alert_at = ?2, next_alert_ms = ?3 WHERE rowid = ?1",
        )?
        .execute(params![row, last, ms(next)])?;
    }
    Ok(())
}

const CLOCK_COLS: &str = "rowid, item_id, clock_id, department, state, started_at, due_at, paused_at, extended_days, last_alert_at, provisional, held_ns, next_provisional";

fn row_to_clock(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Clock)> {
    let state: String = r.get(4)?;
    Ok((
        r.get(0)?,
        Clock {
            item_id: r.get(1)?,
            clock_id: r.get(2)?,
            department: r.get(3)?,
            state: State::parse(&state).unwrap_or(State::Stopped),
            started_at: ts(Some(r.get(5)?))?.unwrap_or_default(),
            due_at: ts(Some(r.get(6)?))?.unwrap_or_default(),
            paused_at: ts(r.get(7)?)?,
            extended_days: r.get(8)?,
            last_alert_at: ts(r.get(9)?)?,
            provisional: r.get(10)?,
            held: jiff::SignedDuration::from_nanos(r.get(11)?),
        },
    ))
}

fn insert_alert(tx: &rusqlite::Transaction<'_>, a: &FiredAlert) -> Result<bool, StoreError> {
    let n = tx.prepare_cached(
        "INSERT OR IGNORE INTO alerts (id, item_id, clock_id, kind, department, due_at, scheduled_at, fired_at, late, provisional)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![a.id, a.item_id, a.clock_id, a.kind, a.department, a.due_at.to_string(), a.scheduled_at.to_string(), a.fired_at.to_string(), a.late, a.provisional])?;
    if n == 0 {
        return Ok(false);
    }
    let o = &a.record;
    tx.prepare_cached(
        "INSERT INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![a.item_id, o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload])?;
    if let Some(m) = &a.mail {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO mail_outbox (alert_id, recipients, subject, body) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![a.id, serde_json::to_string(&m.recipients)?, m.subject, m.body])?;
    }
    Ok(true)
}

/// The SLA board's SQL, as functions so that the query-plan test checks exactly what runs.
/// Named parameters: `:now` (ms), `:clock`, `:department`, `:limit`.
mod board_sql {
    /// The review queue, oldest first (`review_queue_decided`, or `review_queue_lead` under a
    /// department filter), and its size under the same filter.
    pub fn review(department: bool) -> (String, String) {
        let cond = if department {
            " WHERE lead = :department"
        } else {
            ""
        };
        (
            format!(
                "SELECT item_id, lead, decided_ms, classification FROM review_queue{cond}
                 ORDER BY decided_ms, item_id LIMIT :limit"
            ),
            format!("SELECT COUNT(*) FROM review_queue{cond}"),
        )
    }

    fn dept(department: bool) -> &'static str {
        if department {
            " AND department = :department"
        } else {
            ""
        }
    }

    /// The next clock id with open clocks after `:after`: one index seek (a loose index scan
    /// in steps, where `SELECT DISTINCT` would read every open clock).
    pub fn next_clock_id(department: bool) -> String {
        format!(
            "SELECT clock_id FROM sla_clocks WHERE state <> 'stopped'{} AND clock_id > :after
             ORDER BY clock_id LIMIT 1",
            dept(department)
        )
    }

    /// What one count counts.
    #[derive(Debug, Clone, Copy)]
    pub enum Count {
        Running,
        Overdue,
        Warned,
        Paused,
        Pending,
    }

    pub const COUNTS: [Count; 5] = [
        Count::Running,
        Count::Overdue,
        Count::Warned,
        Count::Paused,
        Count::Pending,
    ];

    /// Open clocks of one clock id: `COUNT(*)` over a range of `sla_clocks_board_clock` (or
    /// `_department`; warned ones: `_alerted`), never the table. These are the only reads
    /// that grow with the number of open clocks.
    pub fn count(department: bool, what: Count) -> String {
        let cond = match what {
            Count::Running => "state = 'running'",
            Count::Overdue => "state = 'running' AND due_ms <= :now",
            // From `sla_clocks_board_alerted`: the state condition is its own, without the
            // `state <> 'stopped'` of the others (which would let the planner pick those).
            Count::Warned => {
                return format!(
                    "SELECT COUNT(*) FROM sla_clocks WHERE state = 'running' AND alerted = 1 \
                     AND clock_id = :clock AND due_ms > :now{}",
                    dept(department)
                );
            }
            Count::Paused => "state = 'paused'",
            Count::Pending => "state = 'pending'",
        };
        format!(
            "SELECT COUNT(*) FROM sla_clocks WHERE state <> 'stopped' AND clock_id = :clock{} AND {cond}",
            dept(department)
        )
    }

    /// Running clocks of one clock id, overdue (most overdue first) or not yet due (soonest
    /// first): an index range in due order, stopped by the LIMIT.
    pub fn clocks(department: bool, overdue: bool) -> String {
        let cmp = if overdue { "<=" } else { ">" };
        let dept = if department {
            " AND department = :department"
        } else {
            ""
        };
        format!(
            "SELECT item_id, clock_id, department, state, started_at, due_at, due_ms, provisional FROM sla_clocks
             WHERE state <> 'stopped' AND clock_id = :clock{dept} AND state = 'running' AND due_ms {cmp} :now
             ORDER BY due_ms LIMIT :limit"
        )
    }

    /// Newest alerts (rowid = insertion order), optionally within a clock id and department.
    pub fn alerts(department: bool, clock: bool) -> String {
        let mut w = Vec::new();
        if department {
            w.push("department = :department");
        }
        if clock {
            w.push("clock_id = :clock");
        }
        let w = if w.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", w.join(" AND "))
        };
        format!(
            "SELECT rowid, kind, clock_id, item_id, department, due_at, fired_at, late, provisional FROM alerts {w}
             ORDER BY rowid DESC LIMIT :limit"
        )
    }
}

/// `(label, count)` rows of a two-column query.
fn label_counts(conn: &Connection, sql: &str) -> Result<Vec<(String, u64)>, StoreError> {
    let mut st = conn.prepare(sql)?;
    let rows = st
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// [`Store::summary`]: read from the envelopes' JSON (labels only: channel, category, lead,
/// assists, flags), the clocks, the alerts and the quarantine.
fn summary_query(conn: &Connection) -> Result<Summary, StoreError> {
    let items: i64 = conn.query_row("SELECT count(*) FROM items", [], |r| r.get(0))?;
    let by_channel = label_counts(
        conn,
        "SELECT channel, count(*) FROM items GROUP BY channel ORDER BY channel",
    )?;
    let by_lead = label_counts(
        conn,
        "SELECT json_extract(envelope, '$.routing.lead') AS d, count(*) FROM items
         WHERE d IS NOT NULL GROUP BY d ORDER BY d",
    )?;
    let by_assist = label_counts(
        conn,
        "SELECT a.value, count(*) FROM items, json_each(items.envelope, '$.routing.assists') AS a
         GROUP BY a.value ORDER BY a.value",
    )?;
    let by_category = label_counts(
        conn,
        "SELECT coalesce(json_extract(envelope, '$.category'), 'unclassified') AS c, count(*)
         FROM items GROUP BY c ORDER BY c",
    )?;
    let by_flag = label_counts(
        conn,
        "SELECT f.value, count(*) FROM items, json_each(items.envelope, '$.flags') AS f
         GROUP BY f.value ORDER BY f.value",
    )?;
    let mut st = conn.prepare(
        "SELECT c.clock_id,
                sum(c.state != 'stopped'),
                sum(c.state = 'stopped'),
                sum(EXISTS (SELECT 1 FROM alerts a WHERE a.item_id = c.item_id
                            AND a.clock_id = c.clock_id AND a.kind LIKE 'warning%')),
                sum(EXISTS (SELECT 1 FROM alerts a WHERE a.item_id = c.item_id
                            AND a.clock_id = c.clock_id AND a.kind = 'breach'))
         FROM sla_clocks c GROUP BY c.clock_id ORDER BY c.clock_id",
    )?;
    let clocks = st
        .query_map([], |r| {
            Ok(ClockSummary {
                clock_id: r.get(0)?,
                open: r.get::<_, i64>(1)? as u64,
                stopped: r.get::<_, i64>(2)? as u64,
                warned: r.get::<_, i64>(3)? as u64,
                breached: r.get::<_, i64>(4)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut st = conn.prepare(
        "SELECT source, reason, count(*) FROM quarantine GROUP BY source, reason
         ORDER BY source, reason",
    )?;
    let quarantined = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Summary {
        items: items as u64,
        by_channel,
        by_lead,
        by_assist,
        by_category,
        by_flag,
        clocks,
        quarantined,
    })
}

fn board_query(conn: &Connection, q: &BoardQuery) -> Result<BoardData, StoreError> {
    use rusqlite::ToSql;
    let now = q.now.as_millisecond();
    let limit = q.limit as i64;
    let alerts_limit = q.alerts_limit as i64;
    let dept = q.department.as_deref();
    let mut data = BoardData::default();

    {
        // The clock ids with open clocks (under the department filter), ascending.
        let clock_ids: Vec<String> = match &q.clock {
            Some(c) => vec![c.clone()],
            None => {
                let mut st = conn.prepare_cached(&board_sql::next_clock_id(dept.is_some()))?;
                let mut ids: Vec<String> = Vec::new();
                loop {
                    let after = ids.last().cloned().unwrap_or_default();
                    let mut p: Vec<(&str, &dyn ToSql)> = vec![(":after", &after)];
                    if let Some(d) = &dept {
                        p.push((":department", d));
                    }
                    match st.query_row(p.as_slice(), |r| r.get(0)).optional()? {
                        Some(id) => ids.push(id),
                        None => break,
                    }
                }
                ids
            }
        };
        let mut stmts = Vec::new();
        for what in board_sql::COUNTS {
            stmts.push((
                conn.prepare_cached(&board_sql::count(dept.is_some(), what))?,
                what,
            ));
        }
        for clock_id in clock_ids {
            let mut n = [0u64; 5];
            for (i, (st, what)) in stmts.iter_mut().enumerate() {
                let mut p: Vec<(&str, &dyn ToSql)> = vec![(":clock", &clock_id)];
                if let Some(d) = &dept {
                    p.push((":department", d));
                }
                if matches!(what, board_sql::Count::Overdue | board_sql::Count::Warned) {
                    p.push((":now", &now));
                }
                n[i] = st.query_row(p.as_slice(), |r| r.get::<_, i64>(0))?.max(0) as u64;
            }
            if n[0] + n[3] + n[4] > 0 {
                data.counts.push(BoardCount {
                    clock_id,
                    running: n[0],
                    overdue: n[1],
                    warning: n[2],
                    paused: n[3],
                    pending: n[4],
                });
            }
        }
    }

    // The lists: per clock id (index order is due order within one), merged here.
    for overdue in [true, false] {
        let sql = board_sql::clocks(dept.is_some(), overdue);
        let mut st = conn.prepare_cached(&sql)?;
        let mut all: Vec<(i64, BoardClock)> = Vec::new();
        for c in &data.counts {
            let mut p: Vec<(&str, &dyn ToSql)> =
                vec![(":now", &now), (":clock", &c.clock_id), (":limit", &limit)];
            if let Some(d) = &dept {
                p.push((":department", d));
            }
            let rows = st.query_map(p.as_slice(), |r| {
                let state: String = r.get(3)?;
                Ok((
                    r.get::<_, i64>(6)?,
                    BoardClock {
                        item_id: r.get(0)?,
                        clock_id: r.get(1)?,
                        department: r.get(2)?,
                        state: State::parse(&state).unwrap_or(State::Running),
                        started_at: ts(Some(r.get(4)?))?.unwrap_or_default(),
                        due_at: ts(Some(r.get(5)?))?.unwrap_or_default(),
                        provisional: r.get(7)?,
                    },
                ))
            })?;
            for row in rows {
                all.push(row?);
            }
        }
        all.sort_by_key(|a| a.0);
        all.truncate(q.limit);
        let list = all.into_iter().map(|(_, c)| c).collect();
        if overdue {
            data.overdue = list;
        } else {
            data.upcoming = list;
        }
    }

    // Alerts: one index range, except "department only", read per clock id and merged.
    let per_clock: Vec<Option<String>> = match (&dept, &q.clock) {
        (Some(_), None) => {
            let mut ids: Vec<String> = q.clock_ids.clone();
            ids.extend(data.counts.iter().map(|c| c.clock_id.clone()));
            ids.sort();
            ids.dedup();
            ids.into_iter().map(Some).collect()
        }
        (_, c) => vec![c.clone()],
    };
    let sql = board_sql::alerts(
        dept.is_some(),
        per_clock.first().is_some_and(|c| c.is_some()),
    );
    let mut st = conn.prepare_cached(&sql)?;
    let mut alerts: Vec<(i64, BoardAlert)> = Vec::new();
    for clock in &per_clock {
        let mut p: Vec<(&str, &dyn ToSql)> = vec![(":limit", &alerts_limit)];
        if let Some(c) = clock {
            p.push((":clock", c));
        }
        if let Some(d) = &dept {
            p.push((":department", d));
        }
        let rows = st.query_map(p.as_slice(), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                BoardAlert {
                    kind: r.get(1)?,
                    clock_id: r.get(2)?,
                    item_id: r.get(3)?,
                    department: r.get(4)?,
                    due_at: ts(Some(r.get(5)?))?.unwrap_or_default(),
                    fired_at: ts(Some(r.get(6)?))?.unwrap_or_default(),
                    late: r.get(7)?,
                    provisional: r.get(8)?,
                },
            ))
        })?;
        for row in rows {
            alerts.push(row?);
        }
    }
    alerts.sort_by_key(|a| std::cmp::Reverse(a.0));
    alerts.truncate(q.alerts_limit);
    data.alerts = alerts.into_iter().map(|(_, a)| a).collect();

    // The review queue: oldest first, one index range (by lead under a department filter).
    let (list_sql, count_sql) = board_sql::review(dept.is_some());
    let mut p: Vec<(&str, &dyn ToSql)> = vec![(":limit", &limit)];
    if let Some(d) = &dept {
        p.push((":department", d));
    }
    let mut st = conn.prepare_cached(&list_sql)?;
    let rows = st.query_map(p.as_slice(), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (item_id, lead, decided_ms, classification) = row?;
        let c: crate::envelope::CategoryDecision = serde_json::from_str(&classification)?;
        data.review.push(BoardReview {
            item_id,
            lead,
            decided_at: Timestamp::from_millisecond(decided_ms).unwrap_or_default(),
            source: c.source,
            confidence: c.confidence,
            candidates: c.candidates,
        });
    }
    p.retain(|(k, _)| *k != ":limit");
    data.review_total = conn
        .prepare_cached(&count_sql)?
        .query_row(p.as_slice(), |r| r.get::<_, i64>(0))?
        .max(0) as u64;
    Ok(data)
}

/// Writes one item's rows (the item, its routing decision, review entry, outbox rows, clocks,
/// person index, write-backs) inside `tx`; nothing when its id is already known.
fn insert_item(tx: &rusqlite::Connection, item: &NewItem) -> Result<Recorded, StoreError> {
    let e = &item.envelope;
    let envelope = serde_json::to_string(e)?;
    let inserted = tx.execute(
            "INSERT OR IGNORE INTO items (id, channel, upstream_id, source, received_at, category, stage, envelope, upstream_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                e.id.as_str(),
                e.channel.as_str(),
                e.upstream.id,
                e.upstream.source,
                e.received_at.to_string(),
                e.category.map(|c| c.as_str()),
                serde_json::to_value(e.stage)?.as_str().unwrap_or("received"),
                envelope,
                item.version,
            ],
        )?;
    if inserted == 0 {
        return Ok(Recorded::Duplicate);
    }
    let d = &item.decision;
    let classification = e
        .routing
        .as_ref()
        .and_then(|r| r.classification.as_ref())
        .map(serde_json::to_string)
        .transpose()?;
    tx.execute(
            "INSERT INTO routing_decisions (item_id, rule_id, rules_version, lead, assists, decided_at, classification)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                e.id.as_str(),
                d.rule_id,
                d.rules_version,
                d.lead,
                serde_json::to_string(&d.assists)?,
                d.decided_at.to_string(),
                classification
            ],
        )?;
    if let Some(c) = e
        .routing
        .as_ref()
        .and_then(|r| r.classification.as_ref())
        .filter(|c| c.needs_review)
    {
        tx.execute(
            "INSERT OR REPLACE INTO review_queue (item_id, lead, decided_ms, classification)
                 VALUES (?1, ?2, ?3, ?4)",
            params![
                e.id.as_str(),
                d.lead,
                d.decided_at.as_millisecond(),
                serde_json::to_string(c)?
            ],
        )?;
    }
    for o in &item.outbox {
        tx.execute(
                "INSERT INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.id.as_str(), o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload],
            )?;
    }
    let mut timers = Vec::new();
    for (c, next) in &item.clocks {
        timers.push(insert_clock(tx, c, *next)?);
    }
    if let Some(p) = &item.person_index {
        let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO person_items (person_key, item_id, matter, received_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
        for k in &p.person_keys {
            st.execute(params![
                k,
                e.id.as_str(),
                p.matter,
                e.received_at.as_millisecond()
            ])?;
        }
    }
    writeback::queue(tx, &item.writeback)?;
    Ok(Recorded::New(timers.into_iter().flatten().collect()))
}

const OUTBOX_COLS: &str = "seq, item_id, topic, msg_key, ce_id, headers, payload, attempts";

impl Store for SqliteStore {
    fn record_item(&self, item: &NewItem) -> Result<Recorded, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let recorded = insert_item(&tx, item)?;
        tx.commit()?;
        Ok(recorded)
    }

    fn record_items(
        &self,
        items: &[NewItem],
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        let mut conn = self.conn();
        let mut tx = conn.transaction()?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            // A savepoint per item: one that fails leaves nothing behind, the others commit.
            let mut sp = tx.savepoint()?;
            match insert_item(&sp, item) {
                Ok(r) => {
                    sp.commit()?;
                    out.push(Ok(r));
                }
                Err(e) => {
                    sp.rollback()?;
                    drop(sp);
                    out.push(Err(e));
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn related_items(
        &self,
        person_keys: &[String],
        matter: &str,
        since: Timestamp,
        except: &str,
    ) -> Result<Vec<String>, StoreError> {
        // One statement over a bounded set of keys, distinct items by SQL, newest first with a
        // LIMIT: the cost no longer grows with keys × rows (it was a query per key and a
        // linear search per row found).
        let keys = &person_keys[..person_keys.len().min(MAX_LOOKUP_KEYS)];
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; keys.len()].join(", ");
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT item_id, min(received_ms) AS r FROM person_items
             WHERE person_key IN ({marks}) AND matter = ? AND received_ms >= ? AND item_id <> ?
             GROUP BY item_id ORDER BY r DESC, item_id DESC LIMIT ?"
        ))?;
        let mut args: Vec<&dyn rusqlite::ToSql> = keys.iter().map(|k| k as _).collect();
        let (since_ms, limit) = (since.as_millisecond(), MAX_RELATED_ITEMS as i64);
        args.extend([&matter as &dyn rusqlite::ToSql, &since_ms, &except, &limit]);
        let mut found = st
            .query_map(args.as_slice(), |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        found.reverse();
        Ok(found)
    }

    fn item_state(&self, id: &str) -> Result<Option<(Envelope, Option<String>)>, StoreError> {
        let row: Option<(String, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT envelope, upstream_version FROM items WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((j, v)) => Some((serde_json::from_str(&j)?, v)),
            None => None,
        })
    }

    fn item_version(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT upstream_version FROM items WHERE id = ?1",
                [id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    fn record_update(&self, u: &ItemUpdate) -> Result<bool, StoreError> {
        Ok(self.update_item(u, None)?.is_some())
    }

    fn record_supplement(
        &self,
        u: &ItemUpdate,
        s: &Supplement,
        f: &mut dyn FnMut(&[Clock]) -> Vec<NewOutbox>,
    ) -> Result<Option<Vec<Timer>>, StoreError> {
        self.update_item(u, Some((s, f)))
    }

    fn item_envelope(&self, id: &str) -> Result<Option<Envelope>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row("SELECT envelope FROM items WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(match json {
            Some(j) => Some(serde_json::from_str(&j)?),
            None => None,
        })
    }

    fn quarantine(&self, q: &Quarantined) -> Result<(i64, bool), StoreError> {
        let conn = self.conn();
        let known: Option<i64> = conn
            .query_row(
                "SELECT id FROM quarantine WHERE source = ?1 AND raw_ref = ?2 ORDER BY id LIMIT 1",
                params![q.source, q.raw_ref],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = known {
            return Ok((id, false));
        }
        conn.execute(
            "INSERT INTO quarantine (source, reference, reason, detail, raw_ref, size) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![q.source, q.reference, q.reason, q.detail, q.raw_ref, q.size as i64],
        )?;
        Ok((conn.last_insert_rowid(), true))
    }

    fn list_quarantine(&self, limit: usize) -> Result<Vec<QuarantineRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, at, source, reference, reason, detail, raw_ref, size FROM quarantine ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st
            .query_map([limit as i64], |r| {
                Ok(QuarantineRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    entry: Quarantined {
                        source: r.get(2)?,
                        reference: r.get(3)?,
                        reason: r.get(4)?,
                        detail: r.get(5)?,
                        raw_ref: r.get(6)?,
                        size: r.get::<_, i64>(7)? as u64,
                    },
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT ?1"
        ))?;
        let rows = st
            .query_map([limit as i64], row_to_outbox)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn in_flight_outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'pending' AND attempts > 0 ORDER BY seq"
        ))?;
        let rows = st
            .query_map([], row_to_outbox)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn pending_outbox_except(
        &self,
        limit: usize,
        held: &[String],
    ) -> Result<Vec<OutboxRow>, StoreError> {
        if held.is_empty() {
            return self.pending_outbox(limit);
        }
        let marks = vec!["?"; held.len()].join(", ");
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'pending' AND topic NOT IN ({marks})
             ORDER BY seq LIMIT ?"
        ))?;
        let limit = limit as i64;
        let mut args: Vec<&dyn rusqlite::ToSql> = held.iter().map(|t| t as _).collect();
        args.push(&limit);
        let rows = st
            .query_map(args.as_slice(), row_to_outbox)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn in_flight_since(&self, topic: &str) -> Result<Option<Timestamp>, StoreError> {
        let at: Option<String> = self.conn().query_row(
            "SELECT min(created_at) FROM outbox WHERE state = 'pending' AND attempts > 0 AND topic = ?1",
            [topic],
            |r| r.get(0),
        )?;
        ts(at).map_err(StoreError::from)
    }

    fn mark_attempted(&self, seqs: &[i64]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut st =
                tx.prepare_cached("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?1")?;
            for s in seqs {
                st.execute([s])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn mark_delivered(&self, d: &[Delivered]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE outbox SET state = 'delivered', partition = ?2, offset = ?3, last_error = NULL,
                 done_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE seq = ?1 AND state = 'pending'",
            )?;
            let mut pos = tx.prepare_cached(
                "INSERT INTO topic_positions (topic, partition, next_offset) VALUES (?1, ?2, ?3)
                 ON CONFLICT (topic, partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
            )?;
            for x in d {
                st.execute(params![x.seq, x.partition, x.offset])?;
                pos.execute(params![x.topic, x.partition, x.offset + 1])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn mark_failed(&self, seq: i64, error: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outbox SET last_error = ?2 WHERE seq = ?1",
            params![seq, error],
        )?;
        Ok(())
    }

    fn mark_dead(&self, seq: i64, reason: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outbox SET state = 'dead', last_error = ?2, done_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE seq = ?1",
            params![seq, reason],
        )?;
        Ok(())
    }

    fn report_ran(&self, kind: &str, period: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM report_runs WHERE kind = ?1 AND period = ?2",
                params![kind, period],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn record_report_run(
        &self,
        kind: &str,
        period: &str,
        mails: &[(String, NewMail)],
        records: &[NewOutbox],
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO report_runs (kind, period) VALUES (?1, ?2)",
            params![kind, period],
        )?;
        if n == 0 {
            return Ok(false);
        }
        let item = format!("report:{kind}");
        for o in records {
            tx.execute(
                "INSERT INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![item, o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload],
            )?;
        }
        for (id, m) in mails {
            tx.execute(
                "INSERT OR IGNORE INTO mail_outbox (alert_id, recipients, subject, body) VALUES (?1, ?2, ?3, ?4)",
                params![id, serde_json::to_string(&m.recipients)?, m.subject, m.body],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn enqueue(&self, item_id: &str, o: &NewOutbox) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![item_id, o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload],
        )?;
        Ok(())
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT seq, item_id, topic, ce_id, coalesce(last_error, ''), coalesce(done_at, '') FROM outbox
             WHERE state = 'dead' ORDER BY seq LIMIT ?1",
        )?;
        let rows = st
            .query_map([limit as i64], |r| {
                Ok(DeadLetter {
                    seq: r.get(0)?,
                    item_id: r.get(1)?,
                    topic: r.get(2)?,
                    ce_id: r.get(3)?,
                    reason: r.get(4)?,
                    at: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn replay_dead(&self, seqs: &[i64], topic: Option<&str>) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0;
        {
            let mut st = tx.prepare_cached(
                "UPDATE outbox SET state = 'pending', attempts = 0, done_at = NULL,
                 topic = coalesce(?2, topic) WHERE seq = ?1 AND state = 'dead'",
            )?;
            for s in seqs {
                n += st.execute(params![s, topic])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    fn pending_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM outbox WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>, StoreError> {
        // The lowest pending seq is the oldest enqueued (seq grows with time); the partial
        // index `outbox_pending` makes this one seek however long the backlog is.
        let created: Option<String> = self
            .conn()
            .query_row(
                "SELECT created_at FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(ts(created)?)
    }

    fn topic_positions(&self, topic: &str) -> Result<Vec<(i32, i64)>, StoreError> {
        let conn = self.conn();
        let mut st =
            conn.prepare("SELECT partition, next_offset FROM topic_positions WHERE topic = ?1")?;
        let rows = st
            .query_map([topic], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn open_timers(&self) -> Result<Vec<Timer>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT rowid, next_alert_ms FROM sla_clocks WHERE next_alert_ms IS NOT NULL",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(Timer {
                    clock_row: r.get(0)?,
                    at_ms: r.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn pending_clocks(&self) -> Result<Vec<(i64, Clock)>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {CLOCK_COLS} FROM sla_clocks WHERE state = 'pending'"
        ))?;
        let rows = st
            .query_map([], row_to_clock)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn compute_clocks(&self, clocks: &[(i64, Clock, Option<Timestamp>)]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (row, clock, next) in clocks {
            let still: Option<String> = tx
                .query_row(
                    "SELECT state FROM sla_clocks WHERE rowid = ?1",
                    [row],
                    |r| r.get(0),
                )
                .optional()?;
            if still.as_deref() == Some(State::Pending.as_str()) {
                update_clock(&tx, *row, clock, *next)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn clocks_to_recompute(&self, provisional: bool) -> Result<Vec<StoredClock>, StoreError> {
        let conn = self.conn();
        let mut out: Vec<StoredClock> = Vec::new();
        let mut conds = vec!["state = 'pending'"];
        if provisional {
            conds.push("state <> 'stopped' AND (provisional = 1 OR next_provisional = 1)");
        }
        for cond in conds {
            let mut st = conn.prepare(&format!(
                "SELECT {CLOCK_COLS}, next_alert_ms FROM sla_clocks WHERE {cond}"
            ))?;
            let rows = st.query_map([], |r| {
                let (row, clock) = row_to_clock(r)?;
                let next: Option<i64> = r.get(13)?;
                Ok(StoredClock {
                    row,
                    clock,
                    next: next.and_then(|ms| Timestamp::from_millisecond(ms).ok()),
                    next_provisional: r.get(12)?,
                })
            })?;
            for c in rows {
                let c = c?;
                if !out.iter().any(|o| o.row == c.row) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    fn recompute_clocks(&self, clocks: &[Recomputed]) -> Result<RecomputeResult, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut result = RecomputeResult::default();
        {
            let mut get = tx.prepare_cached(&format!(
                "SELECT {CLOCK_COLS} FROM sla_clocks WHERE rowid = ?1"
            ))?;
            for c in clocks {
                let stored = get.query_row([c.row], row_to_clock).optional()?;
                if stored.map(|(_, s)| s).as_ref() != Some(&c.was) {
                    result.skipped += 1;
                    continue;
                }
                update_clock_marked(&tx, c.row, &c.clock, c.next, c.next_provisional)?;
                result.timers.push(Timer {
                    clock_row: c.row,
                    at_ms: c.next.map_or(i64::MIN, |t| t.as_millisecond()),
                });
                if let Some(o) = &c.announce {
                    let n = tx.prepare_cached(
                        "INSERT OR IGNORE INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![c.clock.item_id, o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload])?;
                    result.announced += n;
                }
                writeback::queue(&tx, &c.writeback)?;
            }
        }
        tx.commit()?;
        Ok(result)
    }

    fn open_provisional_clocks(&self) -> Result<u64, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sla_clocks
             WHERE state <> 'stopped' AND (provisional = 1 OR next_provisional = 1) AND provisional = 1",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    fn calendar_state(&self) -> Result<Vec<(i16, String, String)>, StoreError> {
        let conn = self.conn();
        let mut st =
            conn.prepare("SELECT year, basis, digest FROM calendar_state ORDER BY year")?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn set_calendar_state(&self, years: &[(i16, String, String)]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM calendar_state", [])?;
        for (year, basis, digest) in years {
            tx.execute(
                "INSERT INTO calendar_state (year, basis, digest) VALUES (?1, ?2, ?3)",
                params![year, basis, digest],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn fire(
        &self,
        rows: &[i64],
        f: &mut dyn FnMut(&Clock) -> Fired,
    ) -> Result<FireResult, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut result = FireResult::default();
        {
            let mut get = tx.prepare_cached(&format!(
                "SELECT {CLOCK_COLS} FROM sla_clocks WHERE rowid = ?1"
            ))?;
            for row in rows {
                let Some(((_, mut clock), was_next_provisional)) = get
                    .query_row([row], |r| Ok((row_to_clock(r)?, r.get::<_, bool>(12)?)))
                    .optional()?
                else {
                    continue;
                };
                let fired = f(&clock);
                for a in &fired.alerts {
                    if insert_alert(&tx, a)? {
                        result.alerts += 1;
                    }
                }
                record_fired(
                    &tx,
                    *row,
                    clock.last_alert_at,
                    fired.last_alert_at,
                    fired.next,
                    (fired.next_provisional != was_next_provisional)
                        .then_some(fired.next_provisional),
                )?;
                clock.last_alert_at = fired.last_alert_at;
                if let Some(t) = fired.next {
                    result.timers.push(Timer {
                        clock_row: *row,
                        at_ms: t.as_millisecond(),
                    });
                }
            }
        }
        tx.commit()?;
        Ok(result)
    }

    fn apply_status(
        &self,
        ev: &StatusRecord,
        f: &mut dyn FnMut(&Envelope, &mut Vec<Clock>) -> ClockWrites,
    ) -> Result<StatusOutcome, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let envelope: Option<String> = tx
            .query_row(
                "SELECT envelope FROM items WHERE id = ?1",
                [&ev.item_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(envelope) = envelope else {
            return Ok(StatusOutcome::UnknownItem);
        };
        let fresh = tx.execute(
            "INSERT OR IGNORE INTO status_events (event_id, item_id, event, at, department, person, verdict)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![ev.event_id, ev.item_id, ev.event, ev.at.to_string(), ev.department, ev.person, ev.verdict],
        )?;
        if fresh == 0 {
            return Ok(StatusOutcome::Duplicate);
        }
        // The desk (or a department) has acted on the item: it no longer waits for review.
        tx.execute("DELETE FROM review_queue WHERE item_id = ?1", [&ev.item_id])?;
        let envelope: Envelope = serde_json::from_str(&envelope)?;
        let loaded: Vec<(i64, Clock)> = {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {CLOCK_COLS} FROM sla_clocks WHERE item_id = ?1"
            ))?;
            st.query_map([&ev.item_id], row_to_clock)?
                .collect::<Result<Vec<_>, _>>()?
        };
        let (rows, mut clocks): (Vec<i64>, Vec<Clock>) = loaded.into_iter().unzip();
        let writes = f(&envelope, &mut clocks);
        let mut timers = Vec::new();
        for (i, next) in writes.updated {
            update_clock(&tx, rows[i], &clocks[i], next)?;
            timers.push(Timer {
                clock_row: rows[i],
                at_ms: next.map_or(i64::MIN, |t| t.as_millisecond()),
            });
        }
        for (c, next) in &writes.started {
            if let Some(t) = insert_clock(&tx, c, *next)? {
                timers.push(t);
            }
        }
        writeback::queue(&tx, &writes.writeback)?;
        for a in &writes.alerts {
            insert_alert(&tx, a)?;
        }
        for o in &writes.outbox {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![ev.item_id, o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload])?;
        }
        if let Some(stage) = ev.stage {
            tx.execute(
                "UPDATE items SET stage = ?2, stage_rank = ?3 WHERE id = ?1 AND stage_rank < ?3",
                params![ev.item_id, stage.as_str(), stage.rank()],
            )?;
        }
        tx.commit()?;
        Ok(StatusOutcome::Applied(timers))
    }

    fn record_correction(&self, c: &NewCorrection) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n = conn.execute(
            "INSERT OR IGNORE INTO corrections
                 (event_id, item_id, at, actor, from_category, from_lead, category, department)
             SELECT ?1, i.id, ?3, ?4, i.category,
                    (SELECT lead FROM routing_decisions d WHERE d.item_id = i.id
                     ORDER BY d.decided_at DESC LIMIT 1),
                    ?5, ?6
             FROM items i WHERE i.id = ?2",
            params![
                c.event_id,
                c.item_id,
                c.at.to_string(),
                c.actor,
                c.category.map(|x| x.as_str()),
                c.department
            ],
        )?;
        Ok(n > 0)
    }

    fn corrections(&self) -> Result<Vec<crate::routing::corrections::Correction>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT c.event_id, c.item_id, c.at, c.actor, c.from_category, c.from_lead,
                    c.category, c.department, i.envelope
             FROM corrections c LEFT JOIN items i ON i.id = c.item_id
             ORDER BY c.recorded_at, c.event_id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    crate::routing::corrections::Correction {
                        event_id: r.get(0)?,
                        item_id: r.get(1)?,
                        at: r.get(2)?,
                        actor: r.get(3)?,
                        from_category: r.get(4)?,
                        from_lead: r.get(5)?,
                        category: r
                            .get::<_, Option<String>>(6)?
                            .and_then(|c| crate::routing::classify::parse_category(&c)),
                        department: r.get(7)?,
                        envelope: None,
                    },
                    r.get::<_, Option<String>>(8)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(mut c, env)| {
                c.envelope = env.map(|e| serde_json::from_str(&e)).transpose()?;
                Ok(c)
            })
            .collect()
    }

    fn pending_mail(&self, limit: usize) -> Result<Vec<MailRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT alert_id, recipients, subject, body, attempts FROM mail_outbox WHERE state = 'pending' ORDER BY created_at, alert_id LIMIT ?1",
        )?;
        let rows = st
            .query_map([limit as i64], |r| {
                let rcpt: String = r.get(1)?;
                Ok(MailRow {
                    alert_id: r.get(0)?,
                    recipients: serde_json::from_str(&rcpt).unwrap_or_default(),
                    subject: r.get(2)?,
                    body: r.get(3)?,
                    attempts: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn mark_mail(
        &self,
        alert_ids: &[String],
        state: MailState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE mail_outbox SET state = ?2, last_error = ?3,
                 attempts = attempts + (?2 = 'sending'),
                 sent_at = CASE WHEN ?2 = 'sent' THEN strftime('%Y-%m-%dT%H:%M:%fZ','now') ELSE sent_at END
                 WHERE alert_id = ?1",
            )?;
            for id in alert_ids {
                st.execute(params![id, state.as_str(), error])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn settle_interrupted_mail(&self) -> Result<u64, StoreError> {
        let n = self.conn().execute(
            "UPDATE mail_outbox SET state = 'unknown', last_error = 'interrupted while sending: not re-sent, to avoid a duplicate' WHERE state = 'sending'",
            [],
        )?;
        Ok(n as u64)
    }

    fn alerts_for(&self, item_id: &str) -> Result<Vec<(String, String, bool)>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT clock_id, kind, late FROM alerts WHERE item_id = ?1 ORDER BY scheduled_at",
        )?;
        let rows = st
            .query_map([item_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn board(&self, q: &BoardQuery) -> Result<BoardData, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        // One read transaction: counts, lists and alerts come from the same snapshot.
        conn.execute_batch("BEGIN")?;
        let result = board_query(&conn, q);
        let _ = conn.execute_batch("COMMIT");
        result
    }

    fn ledger(
        &self,
        q: &LedgerQuery,
        f: &mut dyn FnMut(LedgerRow) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute_batch("BEGIN")?;
        let result = ledger::rows(&conn, q, f);
        let _ = conn.execute_batch("COMMIT");
        result
    }

    fn summary(&self) -> Result<Summary, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute_batch("BEGIN")?;
        let result = summary_query(&conn);
        let _ = conn.execute_batch("COMMIT");
        result
    }

    fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM cursors WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_cursor(&self, source: &str, value: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO cursors (source, value) VALUES (?1, ?2)
             ON CONFLICT (source) DO UPDATE SET value = excluded.value, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
            params![source, value],
        )?;
        Ok(())
    }

    fn writeback_ready(
        &self,
        source: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<WritebackRow>, StoreError> {
        writeback::ready(&self.conn(), source, now_ms, limit)
    }

    fn writeback_pending(&self, source: &str) -> Result<u64, StoreError> {
        writeback::pending(&self.conn(), source)
    }

    fn writeback_next_attempt(&self, source: &str) -> Result<Option<i64>, StoreError> {
        writeback::next_attempt(&self.conn(), source)
    }

    fn writeback_attempted(&self, id: i64) -> Result<(), StoreError> {
        writeback::attempted(&self.conn(), id)
    }

    fn writeback_delivered(&self, id: i64, status: u16) -> Result<(), StoreError> {
        writeback::delivered(&self.conn(), id, status)
    }

    fn writeback_retry(&self, id: i64, next_ms: i64, error: &str) -> Result<(), StoreError> {
        writeback::retry(&self.conn(), id, next_ms, error)
    }

    fn writeback_dead(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        writeback::dead(&self.conn(), id, reason)
    }

    fn writeback_list(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WritebackRow>, StoreError> {
        writeback::list(&self.conn(), state, limit)
    }

    fn writeback_replay(&self, ids: &[i64]) -> Result<usize, StoreError> {
        writeback::replay(&mut self.conn(), ids)
    }

    fn report_items(
        &self,
        start: Timestamp,
        end: Timestamp,
        by_lead: bool,
    ) -> Result<Vec<super::report::ItemCount>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        report::snapshot(&conn, |c| report::items(c, start, end, by_lead))
    }

    fn report_person_items(
        &self,
        window_start: Timestamp,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<super::report::PersonItem>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        report::snapshot(&conn, |c| report::person_items(c, window_start, start, end))
    }

    fn report_clocks(
        &self,
        clock_id: &str,
        stop_on: &[String],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<super::report::ClockSpan>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        report::snapshot(&conn, |c| report::clocks(c, clock_id, stop_on, start, end))
    }

    fn report_evaluations(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<super::report::Evaluation>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        report::snapshot(&conn, |c| report::evaluations(c, start, end))
    }

    fn key_case_rows(
        &self,
        q: &super::report::KeyCaseQuery,
    ) -> Result<Vec<super::report::KeyCaseRow>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        report::snapshot(&conn, |c| report::key_cases(c, q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Channel, Envelope, Personal, Request, Upstream};

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap();
        (dir, s)
    }

    fn item(upstream: &str) -> NewItem {
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

    /// A re-route is recorded once per event id (a redelivered status event after a crash
    /// does not record it twice), with what routing had decided, and comes back with the
    /// item's envelope; an unknown item records nothing. The decision's classification is
    /// kept in routing_decisions.
    #[test]
    fn corrections_are_recorded_once_with_what_routing_decided() {
        let (_d, s) = store();
        let mut it = item("c1");
        it.envelope.category = Some(crate::envelope::Category::Policy);
        it.envelope.routing = Some(crate::envelope::Routing {
            lead: "desk".into(),
            assists: vec![],
            rule_id: "default".into(),
            rules_version: "v0".into(),
            decided_at: "2026-03-02T01:00:00Z".parse().unwrap(),
            sla_add: vec![],
            sla_skip: vec![],
            classification: Some(crate::envelope::CategoryDecision {
                source: "model".into(),
                confidence: 0.42,
                candidates: vec![],
                needs_review: true,
            }),
        });
        let id = it.envelope.id.to_string();
        s.record_item(&it).unwrap();
        let stored: String = s
            .conn()
            .query_row(
                "SELECT classification FROM routing_decisions WHERE item_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .unwrap();
        assert!(stored.contains("\"needs_review\":true"), "{stored}");
        let c = NewCorrection {
            event_id: "e1".into(),
            item_id: id.clone(),
            at: "2026-03-02T02:00:00Z".parse().unwrap(),
            actor: Some("intake-desk".into()),
            category: Some(crate::envelope::Category::Rights),
            department: Some("hrss".into()),
        };
        assert!(s.record_correction(&c).unwrap());
        assert!(!s.record_correction(&c).unwrap(), "the same event again");
        let unknown = NewCorrection {
            event_id: "e2".into(),
            item_id: "nope".into(),
            ..c.clone()
        };
        assert!(!s.record_correction(&unknown).unwrap());
        let all = s.corrections().unwrap();
        assert_eq!(all.len(), 1);
        let got = &all[0];
        assert_eq!(got.from_category.as_deref(), Some("policy"));
        assert_eq!(got.from_lead.as_deref(), Some("desk"));
        assert_eq!(got.category, Some(crate::envelope::Category::Rights));
        assert_eq!(got.department.as_deref(), Some("hrss"));
        assert_eq!(got.actor.as_deref(), Some("intake-desk"));
        assert_eq!(got.envelope.as_ref().unwrap().id.to_string(), id);
        let line = crate::routing::corrections::export_line(got).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["category"], "rights");
        assert_eq!(v["content"], "x");
        assert_eq!(v["from_category"], "policy");
        // The export is read back as labelled data by `rules eval` / `rules train`.
        let items = crate::routing::eval::parse_corpus("c.jsonl", &line, true).unwrap();
        assert_eq!(items[0].category, crate::envelope::Category::Rights);
    }

    #[test]
    fn a_pending_clock_is_kept_and_computed_once_unless_stopped_meanwhile() {
        let (_d, s) = store();
        let mut it = item("p");
        let pending = |id: &str, clock: &str| Clock {
            item_id: id.into(),
            clock_id: clock.into(),
            department: "desk".into(),
            state: State::Pending,
            started_at: "2026-12-02T01:00:00Z".parse().unwrap(),
            due_at: "2026-12-02T01:00:00Z".parse().unwrap(),
            paused_at: None,
            extended_days: 0,
            last_alert_at: None,
            provisional: false,
            held: jiff::SignedDuration::ZERO,
        };
        let id = it.envelope.id.to_string();
        it.clocks = vec![(pending(&id, "a"), None), (pending(&id, "b"), None)];
        let Recorded::New(timers) = s.record_item(&it).unwrap() else {
            panic!("not new")
        };
        assert!(timers.is_empty(), "a pending clock has no timer");
        let found = s.pending_clocks().unwrap();
        assert_eq!(found.len(), 2);
        assert!(s.open_timers().unwrap().is_empty());
        // "b" is stopped by a status event before the calendar arrives.
        s.conn()
            .execute(
                "UPDATE sla_clocks SET state = 'stopped' WHERE clock_id = 'b'",
                [],
            )
            .unwrap();
        let computed: Vec<(i64, Clock, Option<Timestamp>)> = found
            .into_iter()
            .map(|(row, mut c)| {
                c.state = State::Running;
                c.due_at = "2027-02-01T09:30:00Z".parse().unwrap();
                (row, c, Some("2027-01-01T00:00:00Z".parse().unwrap()))
            })
            .collect();
        s.compute_clocks(&computed).unwrap();
        assert!(s.pending_clocks().unwrap().is_empty());
        let timers = s.open_timers().unwrap();
        assert_eq!(timers.len(), 1, "only the clock still pending was computed");
        let states: Vec<String> = s
            .conn()
            .prepare("SELECT state FROM sla_clocks ORDER BY clock_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(states, ["running", "stopped"]);
    }

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
    fn record_is_idempotent_by_item_id() {
        let (_d, s) = store();
        let Recorded::New(timers) = s.record_item(&item("a")).unwrap() else {
            panic!("not new")
        };
        assert_eq!(timers.len(), 1);
        assert_eq!(s.record_item(&item("a")).unwrap(), Recorded::Duplicate);
        assert_eq!(s.pending_count().unwrap(), 1);
    }

    #[test]
    fn related_items_by_person_matter_and_window() {
        let (_d, s) = store();
        // (upstream, received, keys, matter)
        let rows: &[(&str, &str, &[&str], &str)] = &[
            ("a", "2026-01-10T00:00:00Z", &["k1"], "rights/hrss"),
            ("b", "2026-03-01T00:00:00Z", &["k2", "k1"], "rights/hrss"),
            ("c", "2026-03-02T00:00:00Z", &["k1"], "livelihood/health"),
            ("d", "2026-03-03T00:00:00Z", &["k3"], "rights/hrss"),
            ("e", "2026-02-01T00:00:00.500Z", &["k2"], "rights/hrss"),
        ];
        let mut ids = std::collections::HashMap::new();
        for (up, at, keys, matter) in rows {
            let mut it = item(up);
            it.envelope.received_at = at.parse().unwrap();
            it.person_index = Some(PersonIndex {
                person_keys: keys.iter().map(|k| k.to_string()).collect(),
                matter: matter.to_string(),
            });
            ids.insert(*up, it.envelope.id.to_string());
            assert!(matches!(s.record_item(&it).unwrap(), Recorded::New(_)));
            // A re-delivery of the same item adds nothing.
            assert_eq!(s.record_item(&it).unwrap(), Recorded::Duplicate);
        }
        let keys = |v: &[&str]| v.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let since: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let got = s
            .related_items(&keys(&["k1", "k2"]), "rights/hrss", since, "new")
            .unwrap();
        // b is found by both keys but listed once; oldest first (sub-second times compare
        // as numbers, not text); c is another matter, d another person.
        assert_eq!(
            got,
            vec![ids["a"].clone(), ids["e"].clone(), ids["b"].clone()]
        );
        // The window, and the item itself, are left out.
        let since: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        let got = s
            .related_items(&keys(&["k1", "k2"]), "rights/hrss", since, &ids["b"])
            .unwrap();
        assert_eq!(got, vec![ids["e"].clone()]);
        assert!(
            s.related_items(&[], "rights/hrss", since, "x")
                .unwrap()
                .is_empty()
        );
        // Only hashes are stored.
        let conn = s.conn();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM person_items", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 6);
    }

    /// A petitioner with hundreds of earlier items (or an item with many keys) cost a query per
    /// key and a linear search per row found, and linked every earlier item. Now one query,
    /// at most `MAX_RELATED_ITEMS` ids (the newest, listed oldest first).
    #[test]
    fn related_items_are_bounded_whatever_the_history() {
        let (_d, s) = store();
        let keys: Vec<String> = (0..MAX_LOOKUP_KEYS + 5).map(|k| format!("k{k}")).collect();
        let n = MAX_RELATED_ITEMS + 20;
        let mut ids = Vec::new();
        for i in 0..n {
            let mut it = item(&format!("u{i}"));
            it.envelope.received_at = Timestamp::from_second(1_772_000_000 + i as i64).unwrap();
            it.person_index = Some(PersonIndex {
                person_keys: keys[..3].to_vec(),
                matter: "rights/hrss".into(),
            });
            ids.push(it.envelope.id.to_string());
            s.record_item(&it).unwrap();
        }
        let got = s
            .related_items(&keys, "rights/hrss", Timestamp::UNIX_EPOCH, "x")
            .unwrap();
        assert_eq!(got.len(), MAX_RELATED_ITEMS);
        assert_eq!(
            got,
            ids[n - MAX_RELATED_ITEMS..],
            "the newest, oldest first"
        );
    }

    #[test]
    fn outbox_lifecycle_and_positions() {
        let (_d, s) = store();
        s.record_item(&item("a")).unwrap();
        s.record_item(&item("b")).unwrap();
        let rows = s.pending_outbox(10).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(s.in_flight_outbox().unwrap().is_empty());
        assert!(s.in_flight_since("t").unwrap().is_none());
        s.mark_attempted(&[rows[0].seq]).unwrap();
        assert_eq!(s.in_flight_outbox().unwrap()[0].ce_id, "ce-a");
        let since = s.in_flight_since("t").unwrap().unwrap();
        assert!(
            (Timestamp::now() - since).get_seconds().abs() < 60,
            "{since}"
        );
        assert!(s.in_flight_since("other").unwrap().is_none());
        // A held topic's rows are left out; others still come.
        assert!(
            s.pending_outbox_except(10, &["t".into()])
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.pending_outbox_except(10, &["x".into()]).unwrap().len(), 2);
        s.mark_delivered(&[Delivered {
            seq: rows[0].seq,
            topic: "t".into(),
            partition: 1,
            offset: 41,
        }])
        .unwrap();
        assert!(s.in_flight_outbox().unwrap().is_empty());
        assert_eq!(s.topic_positions("t").unwrap(), vec![(1, 42)]);
        s.mark_dead(rows[1].seq, "too large").unwrap();
        assert_eq!(s.pending_count().unwrap(), 0);
    }

    #[test]
    fn oldest_pending_outbox_is_the_first_undelivered_row() {
        let (_d, s) = store();
        assert_eq!(s.oldest_pending_outbox().unwrap(), None);
        s.record_item(&item("a")).unwrap();
        s.record_item(&item("b")).unwrap();
        let rows = s.pending_outbox(10).unwrap();
        for (row, at) in rows
            .iter()
            .zip(["2026-03-02T01:00:00.250Z", "2026-03-02T01:05:00.000Z"])
        {
            s.conn()
                .execute(
                    "UPDATE outbox SET created_at = ?1 WHERE seq = ?2",
                    params![at, row.seq],
                )
                .unwrap();
        }
        let first: Timestamp = "2026-03-02T01:00:00.250Z".parse().unwrap();
        assert_eq!(s.oldest_pending_outbox().unwrap(), Some(first));
        // An attempted row is still undelivered.
        s.mark_attempted(&[rows[0].seq]).unwrap();
        assert_eq!(s.oldest_pending_outbox().unwrap(), Some(first));
        s.mark_delivered(&[Delivered {
            seq: rows[0].seq,
            topic: "t".into(),
            partition: 0,
            offset: 0,
        }])
        .unwrap();
        let second: Timestamp = "2026-03-02T01:05:00Z".parse().unwrap();
        assert_eq!(s.oldest_pending_outbox().unwrap(), Some(second));
        s.mark_dead(rows[1].seq, "too large").unwrap();
        assert_eq!(s.oldest_pending_outbox().unwrap(), None);
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
    fn clocks_fire_once_and_status_events_apply_once() {
        let (_d, s) = store();
        let it = item("a");
        let id = it.envelope.id.to_string();
        s.record_item(&it).unwrap();
        let timers = s.open_timers().unwrap();
        assert_eq!(timers.len(), 1);
        let row = timers[0].clock_row;
        let alert = |n: &str| FiredAlert {
            id: n.into(),
            item_id: id.clone(),
            clock_id: "c".into(),
            kind: "warning_50".into(),
            department: "desk".into(),
            due_at: Timestamp::UNIX_EPOCH,
            scheduled_at: Timestamp::UNIX_EPOCH,
            fired_at: Timestamp::UNIX_EPOCH,
            late: false,
            record: NewOutbox {
                ce_id: n.into(),
                ..it.outbox[0].clone()
            },
            mail: Some(NewMail {
                recipients: vec!["a@b.cn".into()],
                subject: "s".into(),
                body: "b".into(),
            }),
            provisional: false,
        };
        let mut fired = |_: &Clock| Fired {
            alerts: vec![alert("al-1")],
            last_alert_at: Some(Timestamp::UNIX_EPOCH),
            next: Some("2026-03-02T02:00:00Z".parse().unwrap()),
            next_provisional: false,
        };
        // Firing the same alert twice (a crash between fire and the engine's bookkeeping)
        // records it once: one alert, one extra outbox row, one mail.
        assert_eq!(s.fire(&[row], &mut fired).unwrap().alerts, 1);
        let again = s.fire(&[row], &mut fired).unwrap();
        assert_eq!(again.alerts, 0);
        assert_eq!(
            again.timers[0].at_ms,
            "2026-03-02T02:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_millisecond()
        );
        assert_eq!(s.pending_mail(10).unwrap().len(), 1);
        assert_eq!(
            s.alerts_for(&id).unwrap(),
            vec![("c".into(), "warning_50".into(), false)]
        );

        let ev = StatusRecord::new("e1", &id, "viewed", Timestamp::UNIX_EPOCH);
        let mut stop = |_: &Envelope, clocks: &mut Vec<Clock>| {
            clocks[0].state = State::Stopped;
            ClockWrites {
                updated: vec![(0, None)],
                ..Default::default()
            }
        };
        let StatusOutcome::Applied(t) = s.apply_status(&ev, &mut stop).unwrap() else {
            panic!("not applied")
        };
        assert_eq!(
            t,
            vec![Timer {
                clock_row: row,
                at_ms: i64::MIN
            }]
        );
        assert_eq!(
            s.apply_status(&ev, &mut stop).unwrap(),
            StatusOutcome::Duplicate
        );
        assert!(s.open_timers().unwrap().is_empty());
        let unknown = StatusRecord {
            item_id: "nope".into(),
            ..ev
        };
        assert_eq!(
            s.apply_status(&unknown, &mut stop).unwrap(),
            StatusOutcome::UnknownItem
        );
    }

    /// The closed loop's record of an event: whose it was, who handles the item, what it
    /// said; the item's stage only moves forward (a late `accepted` after `replied` leaves it
    /// at replied); the event's own records are queued in its transaction, once.
    #[test]
    fn status_events_keep_department_person_verdict_and_the_stage_only_advances() {
        let (_d, s) = store();
        let it = item("a");
        s.record_item(&it).unwrap();
        let id = it.envelope.id.to_string();
        let stage = || -> (String, i64) {
            s.conn()
                .query_row(
                    "SELECT stage, stage_rank FROM items WHERE id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
        };
        assert_eq!(stage(), ("received".into(), 0));
        let at = |m: i64| Timestamp::from_millisecond(m).unwrap();
        let mut replied = StatusRecord::new("r1", &id, "replied", at(2_000));
        replied.department = Some("hrss".into());
        replied.person = Some("staff-7".into());
        replied.verdict = Some("ok".into());
        replied.stage = Some(crate::envelope::Stage::Replied);
        let notice = NewOutbox {
            topic: "petitiond.hrss".into(),
            key: id.clone(),
            ce_id: "bounce-1".into(),
            headers: vec![],
            payload: b"{}".to_vec(),
        };
        let mut with_notice = |_: &Envelope, _: &mut Vec<Clock>| ClockWrites {
            outbox: vec![notice.clone()],
            ..Default::default()
        };
        let pending = s.pending_count().unwrap();
        s.apply_status(&replied, &mut with_notice).unwrap();
        assert_eq!(stage(), ("replied".into(), 3));
        assert_eq!(s.pending_count().unwrap(), pending + 1);
        let mut late = StatusRecord::new("a1", &id, "accepted", at(1_000));
        late.stage = Some(crate::envelope::Stage::Handling);
        s.apply_status(&late, &mut |_, _| ClockWrites::default())
            .unwrap();
        assert_eq!(stage(), ("replied".into(), 3));
        let row: (String, String, String) = s
            .conn()
            .query_row(
                "SELECT department, person, verdict FROM status_events WHERE event_id = 'r1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, ("hrss".into(), "staff-7".into(), "ok".into()));
        // A redelivery queues nothing again.
        assert_eq!(
            s.apply_status(&replied, &mut with_notice).unwrap(),
            StatusOutcome::Duplicate
        );
        assert_eq!(s.pending_count().unwrap(), pending + 1);
    }

    /// The ledger lists every item from `since` on (exactly: an item half a second before a
    /// whole-second bound is out, though its text sorts after it), oldest first, with the
    /// re-routed lead, the assists, the staff member last named, the completion clock's due
    /// instant and state, the last event and the reply and evaluation verdicts; `--department`
    /// keeps the items it leads or assists; CSV and JSON say the same.
    #[test]
    fn the_ledger_shows_stage_department_person_and_expected_completion_per_item() {
        let (_d, s) = store();
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let mut ids = vec![];
        for (up, received, lead, assists) in [
            ("l1", "2026-03-01T15:59:59.5Z", "desk", vec![]),
            (
                "l2",
                "2026-03-02T01:00:00Z",
                "hrss",
                vec!["housing".to_string()],
            ),
            ("l3", "2026-03-03T01:00:00.25Z", "health", vec![]),
        ] {
            let mut it = item(up);
            it.envelope.received_at = at(received);
            it.decision.lead = lead.into();
            it.decision.assists = assists;
            it.clocks[0].0.clock_id = "statutory.accept".into();
            it.clocks[0].0.department = lead.into();
            it.clocks[0].0.started_at = at(received);
            s.record_item(&it).unwrap();
            ids.push(it.envelope.id.to_string());
        }
        let ev = |id: &str,
                  n: &str,
                  event: &str,
                  t: &str,
                  person: Option<&str>,
                  verdict: Option<&str>| {
            let mut r = StatusRecord::new(n, id, event, at(t));
            r.person = person.map(String::from);
            r.verdict = verdict.map(String::from);
            r.stage =
                crate::status::stage_after(crate::sla::policy::EventKind::parse(event).unwrap());
            let stop = event == "accepted";
            s.apply_status(&r, &mut |_, clocks| {
                if stop {
                    clocks[0].state = State::Stopped;
                    ClockWrites {
                        updated: vec![(0, None)],
                        ..Default::default()
                    }
                } else {
                    ClockWrites::default()
                }
            })
            .unwrap();
        };
        ev(
            &ids[1],
            "e1",
            "accepted",
            "2026-03-02T02:00:00Z",
            Some("staff-1"),
            None,
        );
        ev(
            &ids[1],
            "e2",
            "replied",
            "2026-03-05T02:00:00Z",
            Some("staff-2"),
            Some("ok"),
        );
        ev(
            &ids[1],
            "e3",
            "evaluated",
            "2026-03-06T02:00:00Z",
            None,
            Some("dissatisfied"),
        );
        ev(&ids[2], "e4", "viewed", "2026-03-03T02:00:00Z", None, None);
        s.record_correction(&NewCorrection {
            event_id: "e4".into(),
            item_id: ids[2].clone(),
            at: at("2026-03-03T02:00:00Z"),
            actor: Some("desk".into()),
            category: None,
            department: Some("civil".into()),
        })
        .unwrap();

        let list = |q: LedgerQuery| {
            let mut rows = vec![];
            let n = s
                .ledger(&q, &mut |r| {
                    rows.push(r);
                    Ok(())
                })
                .unwrap();
            assert_eq!(n as usize, rows.len());
            rows
        };
        let all = list(LedgerQuery::default());
        assert_eq!(
            all.iter().map(|r| r.item_id.clone()).collect::<Vec<_>>(),
            ids
        );
        let r = &all[1];
        assert_eq!(r.stage, crate::envelope::Stage::Evaluated);
        assert_eq!(r.lead.as_deref(), Some("hrss"));
        assert_eq!(r.assists, vec!["housing".to_string()]);
        assert_eq!(r.person.as_deref(), Some("staff-2"));
        assert_eq!(r.expected_completion, Some(at("2026-03-02T02:00:00Z")));
        assert_eq!(r.clocks[0].state, "stopped");
        assert_eq!(
            r.last_event,
            Some(("evaluated".into(), at("2026-03-06T02:00:00Z")))
        );
        assert_eq!(r.reply.as_deref(), Some("ok"));
        assert_eq!(r.evaluation.as_deref(), Some("dissatisfied"));
        assert_eq!(all[0].stage, crate::envelope::Stage::Received);
        assert_eq!((all[0].person.clone(), all[0].reply.clone()), (None, None));
        // Re-routed: the correction's department is the lead now.
        assert_eq!(all[2].lead.as_deref(), Some("civil"));
        assert_eq!(all[2].stage, crate::envelope::Stage::Accepted);

        // `since` is exact: l1 (15:59:59.5Z) is before 16:00:00Z though its text sorts after.
        let since = list(LedgerQuery {
            since: Some(at("2026-03-01T16:00:00Z")),
            department: None,
        });
        assert_eq!(since.len(), 2, "{since:?}");
        let since = list(LedgerQuery {
            since: Some(at("2026-03-01T15:59:59Z")),
            department: None,
        });
        assert_eq!(since.len(), 3);
        let dept = |d: &str| {
            list(LedgerQuery {
                since: None,
                department: Some(d.into()),
            })
            .into_iter()
            .map(|r| r.item_id)
            .collect::<Vec<_>>()
        };
        assert_eq!(dept("housing"), vec![ids[1].clone()]);
        assert_eq!(dept("civil"), vec![ids[2].clone()]);
        assert!(dept("health").is_empty(), "re-routed away from health");

        use crate::report::ledger::{Format, write};
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let mut csv = vec![];
        write(&s, &LedgerQuery::default(), Format::Csv, &tz, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4, "{csv}");
        assert!(lines[0].starts_with("item_id,channel,category,received_at,stage,stage_zh,lead"));
        assert!(
            lines[2].contains(
                ",evaluated,评价,hrss,housing,staff-2,2026-03-02T10:00:00+08:00,stopped,"
            ),
            "{}",
            lines[2]
        );
        assert!(
            lines[2].ends_with(",evaluated,2026-03-06T10:00:00+08:00,ok,dissatisfied"),
            "{}",
            lines[2]
        );
        let mut json = vec![];
        write(&s, &LedgerQuery::default(), Format::Json, &tz, &mut json).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 3);
        assert_eq!(json[1]["stage_zh"], "评价");
        assert_eq!(json[1]["expected_completion"], "2026-03-02T10:00:00+08:00");
        assert_eq!(json[1]["clocks"][0]["clock"], "statutory.accept");
        let mut empty = vec![];
        let none = LedgerQuery {
            since: Some(at("2027-01-01T00:00:00Z")),
            department: None,
        };
        write(&s, &none, Format::Json, &tz, &mut empty).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&empty).unwrap(),
            serde_json::json!([])
        );
    }

    #[test]
    fn interrupted_mail_is_not_sent_again() {
        let (_d, s) = store();
        let it = item("a");
        s.record_item(&it).unwrap();
        let row = s.open_timers().unwrap()[0].clock_row;
        let mut fired = |_: &Clock| Fired {
            alerts: vec![FiredAlert {
                id: "al".into(),
                item_id: it.envelope.id.to_string(),
                clock_id: "c".into(),
                kind: "breach".into(),
                department: "desk".into(),
                due_at: Timestamp::UNIX_EPOCH,
                scheduled_at: Timestamp::UNIX_EPOCH,
                fired_at: Timestamp::UNIX_EPOCH,
                late: true,
                record: NewOutbox {
                    ce_id: "al".into(),
                    ..it.outbox[0].clone()
                },
                mail: Some(NewMail {
                    recipients: vec!["a@b.cn".into()],
                    subject: "s".into(),
                    body: "b".into(),
                }),
                provisional: false,
            }],
            ..Fired::default()
        };
        s.fire(&[row], &mut fired).unwrap();
        s.mark_mail(&["al".into()], MailState::Sending, None)
            .unwrap();
        assert_eq!(s.settle_interrupted_mail().unwrap(), 1);
        assert!(s.pending_mail(10).unwrap().is_empty());
    }

    fn review_item(upstream: &str, lead: &str, decided: &str, review: bool) -> NewItem {
        use crate::envelope::{Candidate, Category, CategoryDecision, Routing};
        let mut it = item(upstream);
        it.decision.lead = lead.into();
        it.decision.decided_at = decided.parse().unwrap();
        it.envelope.routing = Some(Routing {
            lead: lead.into(),
            assists: vec![],
            rule_id: "unclassified".into(),
            rules_version: "v0".into(),
            decided_at: decided.parse().unwrap(),
            sla_add: vec![],
            sla_skip: vec![],
            classification: Some(CategoryDecision {
                source: "dictionary".into(),
                confidence: if review { 0.5 } else { 0.9 },
                candidates: vec![
                    Candidate {
                        category: Category::Livelihood,
                        confidence: 0.5,
                    },
                    Candidate {
                        category: Category::Rights,
                        confidence: 0.5,
                    },
                ],
                needs_review: review,
            }),
        });
        it
    }

    /// Issue 20: an item routing was unsure of waits on the board, oldest first, filtered by
    /// its lead, until a status event is applied to it; a sure one never appears; a
    /// redelivered event changes nothing.
    #[test]
    fn needs_review_items_wait_on_the_board_until_a_status_event() {
        let (_d, s) = store();
        let ids: Vec<String> = [
            ("r1", "desk", "2026-03-02T01:00:02Z", true),
            ("r2", "desk", "2026-03-02T01:00:01Z", true),
            ("r3", "hrss", "2026-03-02T01:00:03Z", true),
            ("sure", "desk", "2026-03-02T01:00:00Z", false),
        ]
        .iter()
        .map(|(u, lead, at, review)| {
            let it = review_item(u, lead, at, *review);
            s.record_item(&it).unwrap();
            it.envelope.id.to_string()
        })
        .collect();
        let board = |dept: Option<&str>| s.board(&bq(dept, None)).unwrap();
        let listed =
            |d: &BoardData| -> Vec<String> { d.review.iter().map(|r| r.item_id.clone()).collect() };
        let all = board(None);
        assert_eq!(
            listed(&all),
            [ids[1].clone(), ids[0].clone(), ids[2].clone()],
            "oldest first"
        );
        assert_eq!(all.review_total, 3);
        let first = &all.review[0];
        assert_eq!(first.lead, "desk");
        assert_eq!(first.source, "dictionary");
        assert_eq!(
            first.decided_at,
            "2026-03-02T01:00:01Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(first.candidates.len(), 2);
        let hrss = board(Some("hrss"));
        assert_eq!(listed(&hrss), [ids[2].clone()]);
        assert_eq!(hrss.review_total, 1);
        // The limit bounds the list, not the total.
        let mut q = bq(None, None);
        q.limit = 1;
        let one = s.board(&q).unwrap();
        assert_eq!((one.review.len(), one.review_total), (1, 3));

        let ev = StatusRecord::new(
            "desk-took-it",
            &ids[1],
            "status_marked",
            Timestamp::UNIX_EPOCH,
        );
        let mut nothing = |_: &Envelope, _: &mut Vec<Clock>| ClockWrites::default();
        assert!(matches!(
            s.apply_status(&ev, &mut nothing).unwrap(),
            StatusOutcome::Applied(_)
        ));
        let after = board(None);
        assert_eq!(listed(&after), [ids[0].clone(), ids[2].clone()]);
        assert_eq!(after.review_total, 2);
        assert_eq!(
            s.apply_status(&ev, &mut nothing).unwrap(),
            StatusOutcome::Duplicate
        );
        assert_eq!(board(None).review_total, 2);
    }

    /// A store recorded before the review queue existed (v10) shows its unsure items once
    /// migrated, except those a status event has already touched.
    #[test]
    fn review_queue_migration_lists_unsure_items_already_recorded() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        // Up to v10: the schema before the review queue (v11), whatever came after it.
        Migrations::from_slice(&MIGRATIONS[..10])
            .to_latest(&mut conn)
            .unwrap();
        let decision = |review: bool| {
            format!(
                r#"{{"source":"model","confidence":0.41,"candidates":[{{"category":"policy","confidence":0.41}},{{"category":"rights","confidence":0.3}}]{}}}"#,
                if review {
                    r#","needs_review":true"#
                } else {
                    ""
                }
            )
        };
        for (item, review, touched) in [
            ("unsure", true, false),
            ("sure", false, false),
            ("handled", true, true),
        ] {
            conn.execute(
                "INSERT INTO routing_decisions (item_id, rule_id, rules_version, lead, assists, decided_at, classification)
                 VALUES (?1, 'unclassified', 'v0', 'desk', '[]', '2026-03-02T01:00:00.5Z', ?2)",
                params![item, decision(review)],
            )
            .unwrap();
            if touched {
                conn.execute(
                    "INSERT INTO status_events (event_id, item_id, event, at) VALUES ('e', ?1, 'viewed', 'x')",
                    [item],
                )
                .unwrap();
            }
        }
        conn.execute(
            "INSERT INTO routing_decisions (item_id, rule_id, rules_version, lead, assists, decided_at)
             VALUES ('old', 'default', 'v0', 'desk', '[]', '2026-03-02T01:00:00Z')",
            [],
        )
        .unwrap();
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .unwrap();
        let rows: Vec<(String, i64)> = conn
            .prepare("SELECT item_id, decided_ms FROM review_queue")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let at = "2026-03-02T01:00:00.5Z".parse::<Timestamp>().unwrap();
        assert_eq!(rows, [("unsure".to_string(), at.as_millisecond())]);
    }

    #[test]
    fn migrations_are_valid() {
        Migrations::from_slice(MIGRATIONS).validate().unwrap();
    }

    fn sla_config() -> crate::config::Config {
        crate::config::Config::parse(
            "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[departments]]\nid = \"desk\"\nname = \"desk\"\ntopic = \"t.desk\"\n[routing]\ndefault_lead = \"desk\"\n",
            "t.toml",
            Path::new("."),
        )
        .unwrap()
    }

    fn due_updates(s: &SqliteStore) -> Vec<(String, serde_json::Value)> {
        s.pending_outbox(100)
            .unwrap()
            .into_iter()
            .filter(|r| {
                r.headers
                    .iter()
                    .any(|(k, v)| k == "ce_type" && v == crate::kafka::wire::TYPE_DUE_UPDATED)
            })
            .map(|r| (r.ce_id, serde_json::from_slice(&r.payload).unwrap()))
            .collect()
    }

    /// Issue 14: a pending clock that gets its due instant sends exactly one due-update
    /// record, committed with the clock; a second reconciliation, or the same write replayed
    /// (a crash after the commit), sends nothing more.
    #[test]
    fn pending_to_computed_sends_one_due_update() {
        let (_d, s) = store();
        let cfg = sla_config();
        let policy = cfg.sla.clock("statutory.handle").unwrap().clone();
        let mut it = item("p");
        let id = it.envelope.id.to_string();
        let start: Timestamp = "2026-12-02T01:00:00Z".parse().unwrap();
        it.clocks = vec![(Clock::pending(&policy, &id, "desk", start), None)];
        s.record_item(&it).unwrap();
        let at: Timestamp = "2026-12-06T01:00:00Z".parse().unwrap();

        let candidates = s.clocks_to_recompute(true).unwrap();
        assert_eq!(candidates.len(), 1);
        let out = crate::sla::engine::reconcile(&cfg, candidates, false, at);
        assert_eq!(out.computed, 1);
        let r = s.recompute_clocks(&out.writes).unwrap();
        assert_eq!(r.announced, 1);
        assert_eq!(r.timers.len(), 1);
        let updates = due_updates(&s);
        assert_eq!(updates.len(), 1, "{updates:?}");
        let v = &updates[0].1;
        assert_eq!(v["reason"], "pending_computed");
        assert_eq!(v["item_id"], id);
        // 60 days after Wed 12-02 is Sun 2027-01-31 → Mon 02-01 by provisional 2027.
        assert_eq!(v["due_at"], "2027-02-01T09:30:00Z");
        assert_eq!(v["provisional"], true);
        assert_eq!(v["provisional_year"], 2027);

        // The clock is running, provisional, with a timer: flagged for the next calendar change.
        let again = s.clocks_to_recompute(true).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].clock.state, State::Running);
        assert!(again[0].clock.provisional);
        assert!(again[0].next.is_some());
        assert_eq!(s.open_provisional_clocks().unwrap(), 1);
        // Same calendars: nothing to do, nothing sent.
        let out2 = crate::sla::engine::reconcile(&cfg, again, false, at);
        assert!(out2.writes.is_empty());
        // The first write replayed: the row no longer holds the pending clock.
        let r = s.recompute_clocks(&out.writes).unwrap();
        assert_eq!((r.announced, r.skipped), (0, 1));
        assert_eq!(due_updates(&s).len(), 1);
    }

    /// Regression: the time a clock was held by a pause was stored in milliseconds, so a
    /// hold with a fraction of a millisecond replayed to a due instant a fraction of a
    /// millisecond off, and a calendar change that did not move it still announced it.
    #[test]
    fn a_hold_with_a_fraction_of_a_millisecond_is_replayed_exactly() {
        use crate::sla::policy::EventKind;
        let (_d, s) = store();
        let cfg = sla_config();
        let cal = cfg.sla.calendar.clone();
        let policy = cfg.sla.clock("statutory.accept").unwrap().clone();
        let mut it = item("h");
        let id = it.envelope.id.to_string();
        let t = |x: &str| x.parse::<Timestamp>().unwrap();
        let mut c = Clock::start(&policy, &id, "desk", t("2026-12-21T02:00:00Z"), &cal).unwrap();
        c.apply(
            &policy,
            EventKind::Paused,
            t("2026-12-22T02:00:00.000000001Z"),
            None,
            &cal,
        )
        .unwrap();
        c.apply(
            &policy,
            EventKind::Resumed,
            t("2026-12-24T02:00:00.987654321Z"),
            None,
            &cal,
        )
        .unwrap();
        assert!(c.provisional);
        let next = c.next_alert(&policy, &cal).unwrap().map(|(_, t)| t);
        it.clocks = vec![(c.clone(), next)];
        s.record_item(&it).unwrap();
        let candidates = s.clocks_to_recompute(true).unwrap();
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].clock, c, "stored exactly");
        // A calendar change elsewhere (same days for this clock): recomputed, not announced.
        let out = crate::sla::engine::reconcile(&cfg, candidates, true, t("2026-12-25T02:00:00Z"));
        assert!(
            out.writes.iter().all(|w| w.announce.is_none()),
            "{:?}",
            out.writes
        );
    }

    #[test]
    fn recompute_candidates_come_from_the_provisional_index() {
        let (_d, s) = store();
        let conn = s.conn();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT rowid FROM sla_clocks WHERE state <> 'stopped' AND (provisional = 1 OR next_provisional = 1)",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("sla_clocks_provisional")),
            "{plan:?}"
        );
    }

    #[test]
    fn calendar_state_is_replaced_whole() {
        let (_d, s) = store();
        assert!(s.calendar_state().unwrap().is_empty());
        let a = vec![
            (2026, "official".to_string(), "d1".to_string()),
            (2027, "provisional".to_string(), "d2".to_string()),
        ];
        s.set_calendar_state(&a).unwrap();
        assert_eq!(s.calendar_state().unwrap(), a);
        let b = vec![(2027, "official".to_string(), "d3".to_string())];
        s.set_calendar_state(&b).unwrap();
        assert_eq!(s.calendar_state().unwrap(), b);
    }

    /// Board fixtures straight into the tables (no item rows needed for the board's reads).
    fn board_store() -> (tempfile::TempDir, SqliteStore) {
        let (d, s) = store();
        s.conn().execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        (d, s)
    }

    fn put_clock(
        s: &SqliteStore,
        item: &str,
        clock: &str,
        dept: &str,
        state: &str,
        due: &str,
        alerted: bool,
    ) {
        s.conn()
            .execute(
                "INSERT INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at, last_alert_at, due_ms, alerted)
                 VALUES (?1, ?2, ?3, ?4, '2026-03-02T00:00:00Z', ?5, ?6, ?7, ?8)",
                params![
                    item,
                    clock,
                    dept,
                    state,
                    due,
                    alerted.then_some("2026-03-02T00:10:00Z"),
                    due.parse::<Timestamp>().unwrap().as_millisecond(),
                    alerted
                ],
            )
            .unwrap();
    }

    fn put_alert(s: &SqliteStore, id: &str, item: &str, clock: &str, dept: &str) {
        s.conn()
            .execute(
                "INSERT INTO alerts (id, item_id, clock_id, kind, department, due_at, scheduled_at, fired_at, late)
                 VALUES (?1, ?2, ?3, 'breach', ?4, '2026-03-02T01:00:00Z', '2026-03-02T01:00:00Z', '2026-03-02T01:00:00Z', 0)",
                params![id, item, clock, dept],
            )
            .unwrap();
    }

    fn bq(department: Option<&str>, clock: Option<&str>) -> BoardQuery {
        BoardQuery {
            department: department.map(Into::into),
            clock: clock.map(Into::into),
            now: "2026-03-02T02:00:00Z".parse().unwrap(),
            limit: 3,
            alerts_limit: 2,
            clock_ids: vec!["c.a".into(), "c.b".into()],
        }
    }

    fn ids(l: &[BoardClock]) -> Vec<&str> {
        l.iter().map(|c| c.item_id.as_str()).collect()
    }

    #[test]
    fn board_counts_orders_filters_and_limits() {
        let (_d, s) = board_store();
        // now = 02:00:00Z. Sub-second dues order by time, not by text ("…00Z" > "…00.5Z").
        put_clock(
            &s,
            "o1",
            "c.a",
            "hrss",
            "running",
            "2026-03-02T01:00:00Z",
            true,
        );
        put_clock(
            &s,
            "o2",
            "c.b",
            "hrss",
            "running",
            "2026-03-02T00:30:00Z",
            true,
        );
        put_clock(
            &s,
            "o3",
            "c.a",
            "desk",
            "running",
            "2026-03-02T01:59:59.500Z",
            false,
        );
        put_clock(
            &s,
            "o4",
            "c.a",
            "hrss",
            "running",
            "2026-03-02T02:00:00Z",
            false,
        ); // due = now
        put_clock(
            &s,
            "u1",
            "c.a",
            "hrss",
            "running",
            "2026-03-02T02:00:00.5Z",
            true,
        ); // warned
        put_clock(
            &s,
            "u2",
            "c.b",
            "desk",
            "running",
            "2026-03-02T02:10:00Z",
            false,
        );
        put_clock(
            &s,
            "u3",
            "c.a",
            "hrss",
            "running",
            "2026-03-02T02:00:01Z",
            false,
        );
        put_clock(
            &s,
            "u4",
            "c.b",
            "hrss",
            "running",
            "2026-03-02T03:00:00Z",
            false,
        );
        put_clock(
            &s,
            "p1",
            "c.a",
            "hrss",
            "paused",
            "2026-03-02T01:00:00Z",
            false,
        );
        // Waiting for a calendar year: counted, never listed (it has no due instant yet).
        put_clock(
            &s,
            "w1",
            "c.b",
            "hrss",
            "pending",
            "2026-03-02T01:00:00Z",
            false,
        );
        put_clock(
            &s,
            "s1",
            "c.a",
            "hrss",
            "stopped",
            "2026-03-02T01:00:00Z",
            true,
        );

        let d = s.board(&bq(None, None)).unwrap();
        assert_eq!(
            d.counts,
            vec![
                BoardCount {
                    clock_id: "c.a".into(),
                    running: 5,
                    overdue: 3,
                    warning: 1,
                    paused: 1,
                    pending: 0
                },
                BoardCount {
                    clock_id: "c.b".into(),
                    running: 3,
                    overdue: 1,
                    warning: 0,
                    paused: 0,
                    pending: 1
                },
            ]
        );
        // Most overdue first, across clock ids; limited to 3; paused and stopped never listed.
        assert_eq!(ids(&d.overdue), vec!["o2", "o1", "o3"]);
        assert_eq!(ids(&d.upcoming), vec!["u1", "u3", "u2"]);
        assert_eq!(
            d.upcoming[0].due_at,
            "2026-03-02T02:00:00.5Z".parse::<Timestamp>().unwrap()
        );

        let d = s.board(&bq(Some("hrss"), None)).unwrap();
        assert_eq!(ids(&d.overdue), vec!["o2", "o1", "o4"]);
        assert_eq!(ids(&d.upcoming), vec!["u1", "u3", "u4"]);
        assert!(
            d.overdue
                .iter()
                .chain(&d.upcoming)
                .all(|c| c.department == "hrss")
        );
        assert_eq!(d.counts[0].running, 4);

        let d = s.board(&bq(None, Some("c.b"))).unwrap();
        assert_eq!(d.counts.len(), 1);
        assert_eq!(ids(&d.overdue), vec!["o2"]);
        assert_eq!(ids(&d.upcoming), vec!["u2", "u4"]);

        let d = s.board(&bq(Some("desk"), Some("c.a"))).unwrap();
        assert_eq!(ids(&d.overdue), vec!["o3"]);
        assert!(d.upcoming.is_empty());

        let d = s.board(&bq(Some("nobody"), Some("<x>"))).unwrap();
        assert_eq!(d, BoardData::default());
    }

    /// The demo's closing table: items by channel, lead, assist, category and flag; clocks
    /// open / stopped / warned / breached (an alert counted once per clock); quarantine by reason.
    #[test]
    fn summary_counts_items_clocks_alerts_and_quarantine() {
        let (_d, s) = board_store();
        for (id, channel, env) in [
            (
                "i1",
                "hotline",
                r#"{"category":"rights","routing":{"lead":"hrss","assists":["health"]},"flags":["repeat_petition"]}"#,
            ),
            (
                "i2",
                "letter",
                r#"{"category":"policy","routing":{"lead":"policy-desk","assists":["hrss"]},"flags":[]}"#,
            ),
            (
                "i3",
                "letter",
                r#"{"routing":{"lead":"intake-desk","assists":[]},"flags":["needs_supplement","missing:contact"]}"#,
            ),
        ] {
            s.conn()
                .execute(
                    "INSERT INTO items (id, channel, upstream_id, source, received_at, stage, envelope)
                     VALUES (?1, ?2, ?1, 'test', '2026-03-02T00:00:00Z', 'routed', ?3)",
                    params![id, channel, env],
                )
                .unwrap();
        }
        put_clock(
            &s,
            "i1",
            "c.a",
            "hrss",
            "running",
            "2026-03-02T01:00:00Z",
            true,
        );
        put_clock(
            &s,
            "i2",
            "c.a",
            "policy-desk",
            "stopped",
            "2026-03-02T01:00:00Z",
            false,
        );
        put_clock(
            &s,
            "i3",
            "c.b",
            "intake-desk",
            "running",
            "2026-03-02T01:00:00Z",
            false,
        );
        put_alert(&s, "a1", "i1", "c.a", "hrss");
        put_alert(&s, "a2", "i3", "c.b", "intake-desk");
        s.conn()
            .execute("UPDATE alerts SET kind = 'warning_50' WHERE id = 'a2'", [])
            .unwrap();
        for reason in ["no_id", "no_id", "malformed_mime"] {
            s.conn()
                .execute(
                    "INSERT INTO quarantine (source, reference, reason, detail, raw_ref, size)
                     VALUES ('src', 'ref', ?1, '', 'raw', 1)",
                    [reason],
                )
                .unwrap();
        }
        let sum = s.summary().unwrap();
        let l = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        assert_eq!(sum.items, 3);
        assert_eq!(sum.by_channel, l(&[("hotline", 1), ("letter", 2)]));
        assert_eq!(
            sum.by_lead,
            l(&[("hrss", 1), ("intake-desk", 1), ("policy-desk", 1)])
        );
        assert_eq!(sum.by_assist, l(&[("health", 1), ("hrss", 1)]));
        assert_eq!(
            sum.by_category,
            l(&[("policy", 1), ("rights", 1), ("unclassified", 1)])
        );
        assert_eq!(
            sum.by_flag,
            l(&[
                ("missing:contact", 1),
                ("needs_supplement", 1),
                ("repeat_petition", 1)
            ])
        );
        assert_eq!(
            sum.clocks,
            vec![
                ClockSummary {
                    clock_id: "c.a".into(),
                    open: 1,
                    stopped: 1,
                    warned: 0,
                    breached: 1,
                },
                ClockSummary {
                    clock_id: "c.b".into(),
                    open: 1,
                    stopped: 0,
                    warned: 1,
                    breached: 0,
                },
            ]
        );
        assert_eq!(
            sum.quarantined,
            vec![
                ("src".to_string(), "malformed_mime".to_string(), 1),
                ("src".to_string(), "no_id".to_string(), 2),
            ]
        );
    }

    #[test]
    fn board_alerts_newest_first_with_filters() {
        let (_d, s) = board_store();
        put_alert(&s, "a1", "i1", "c.a", "hrss");
        put_alert(&s, "a2", "i2", "c.b", "hrss");
        put_alert(&s, "a3", "i3", "c.a", "desk");
        put_alert(&s, "a4", "i4", "c.old", "hrss"); // a clock no longer configured
        put_alert(&s, "a5", "i5", "c.a", "hrss");
        let items = |d: &BoardData| {
            d.alerts
                .iter()
                .map(|a| a.item_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(items(&s.board(&bq(None, None)).unwrap()), vec!["i5", "i4"]);
        assert_eq!(
            items(&s.board(&bq(None, Some("c.a"))).unwrap()),
            vec!["i5", "i3"]
        );
        // Department only: read per configured clock id and merged.
        assert_eq!(
            items(&s.board(&bq(Some("hrss"), None)).unwrap()),
            vec!["i5", "i2"]
        );
        assert_eq!(
            items(&s.board(&bq(Some("desk"), Some("c.a"))).unwrap()),
            vec!["i3"]
        );
    }

    /// Clocks recorded before v5 get their `due_ms` and `alerted` from the migration, exact
    /// to the millisecond whatever the number of fraction digits.
    #[test]
    fn board_migration_fills_due_ms_of_existing_clocks() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        Migrations::from_slice(&MIGRATIONS[..4])
            .to_latest(&mut conn)
            .unwrap();
        let dues = [
            "2026-03-02T01:59:59.999Z",
            "2026-03-02T02:00:00Z",
            "2026-10-08T09:30:00.123456789Z",
            "2026-03-02T02:00:00.5Z",
        ];
        for (i, due) in dues.iter().enumerate() {
            conn.execute(
                "INSERT INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at, last_alert_at)
                 VALUES (?1, 'c', 'd', 'running', '2026-03-01T00:00:00Z', ?2, ?3)",
                params![format!("i{i}"), due, (i % 2 == 0).then_some("2026-03-01T01:00:00Z")],
            )
            .unwrap();
        }
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .unwrap();
        for (i, due) in dues.iter().enumerate() {
            let (got, alerted): (i64, bool) = conn
                .query_row(
                    "SELECT due_ms, alerted FROM sla_clocks WHERE item_id = ?1",
                    [format!("i{i}")],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(
                got,
                due.parse::<Timestamp>().unwrap().as_millisecond(),
                "{due}"
            );
            assert_eq!(alerted, i % 2 == 0);
        }
    }

    /// Every board query is an index range: no table scan, no sort of the whole set.
    #[test]
    fn board_queries_use_the_board_indexes() {
        let (_d, s) = board_store();
        let conn = s.conn();
        let plan = |sql: &str| -> String {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let n = st.parameter_count();
            let rows = st
                .query_map(rusqlite::params_from_iter((0..n).map(|_| 1i64)), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            rows.join(" | ")
        };
        let mut checked = 0;
        for dept in [false, true] {
            let want = if dept {
                "sla_clocks_board_department"
            } else {
                "sla_clocks_board_clock"
            };
            let p = plan(&board_sql::next_clock_id(dept));
            assert!(
                p.starts_with(&format!("SEARCH sla_clocks USING COVERING INDEX {want}")),
                "next clock id {dept}: {p}"
            );
            assert!(!p.contains("TEMP B-TREE"), "next clock id {dept}: {p}");
            for what in board_sql::COUNTS {
                let p = plan(&board_sql::count(dept, what));
                let want = match what {
                    board_sql::Count::Warned => "sla_clocks_board_alerted",
                    _ => want,
                };
                assert!(
                    p.starts_with(&format!("SEARCH sla_clocks USING COVERING INDEX {want}")),
                    "count {dept} {what:?}: {p}"
                );
                checked += 1;
            }
            for clock in [false, true] {
                // "Department only" is read per clock id (see `board_query`), never like this.
                let p = if dept && !clock {
                    plan(&board_sql::alerts(true, true))
                } else {
                    plan(&board_sql::alerts(dept, clock))
                };
                // Newest rowids first, filtered as read: stops after LIMIT matching rows. No
                // index on alerts: the timer engine's transactions would pay for it on every
                // alert (ARCHITECTURE.md, the SLA board).
                assert_eq!(p, "SCAN alerts", "alerts {dept} {clock}");
                assert!(!p.contains("TEMP B-TREE"), "alerts {dept} {clock}: {p}");
                checked += 1;
            }
            for overdue in [false, true] {
                let p = plan(&board_sql::clocks(dept, overdue));
                let want = if dept {
                    "sla_clocks_board_department"
                } else {
                    "sla_clocks_board_clock"
                };
                assert!(
                    p.contains(&format!("SEARCH sla_clocks USING INDEX {want}")),
                    "clocks {dept} {overdue}: {p}"
                );
                assert!(p.contains("due_ms"), "a range on due_ms: {p}");
                assert!(!p.contains("TEMP B-TREE"), "clocks {dept} {overdue}: {p}");
                checked += 1;
            }
        }
        for dept in [false, true] {
            let (list, count) = board_sql::review(dept);
            let want = if dept {
                "review_queue_lead"
            } else {
                "review_queue_decided"
            };
            let p = plan(&list);
            assert!(p.contains(want), "review list {dept}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "review list {dept}: {p}");
            assert!(!plan(&count).contains("TEMP B-TREE"), "review count {dept}");
            checked += 1;
        }
        assert_eq!(checked, 20);
    }

    /// A million open clocks: the board's read stays well under a second. Run with
    /// `cargo test --release --lib board_with_a_million -- --ignored --nocapture`.
    #[test]
    #[ignore = "slow: builds a million clocks"]
    fn board_with_a_million_open_clocks() {
        let (_d, s) = board_store();
        {
            let mut conn = s.conn();
            conn.pragma_update(None, "synchronous", "OFF").unwrap();
            let tx = conn.transaction().unwrap();
            {
                let mut st = tx
                    .prepare(
                        "INSERT INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at, last_alert_at, due_ms, alerted)
                         VALUES (?1, ?2, ?3, ?4, '2026-03-01T00:00:00Z', ?5, ?6, ?7, ?8)",
                    )
                    .unwrap();
                let clocks = [
                    "hotline.view",
                    "portal.sign_in",
                    "letter.register",
                    "intake.supplement",
                    "rights.feedback",
                    "statutory.accept",
                    "statutory.handle",
                ];
                let base: Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
                for i in 0..1_000_000i64 {
                    let due = base
                        .checked_add(jiff::SignedDuration::from_secs(i * 7 % 400_000))
                        .unwrap();
                    let state = if i % 10 == 0 {
                        "paused"
                    } else if i % 3 == 0 {
                        "stopped"
                    } else {
                        "running"
                    };
                    st.execute(params![
                        format!("item-{i}"),
                        clocks[(i % 7) as usize],
                        format!("dept-{}", i % 40),
                        state,
                        due.to_string(),
                        (i % 4 == 0).then_some("2026-03-01T01:00:00Z"),
                        due.as_millisecond(),
                        i % 4 == 0,
                    ])
                    .unwrap();
                }
            }
            tx.commit().unwrap();
        }
        for (dept, clock) in [
            (None, None),
            (Some("dept-7"), None),
            (None, Some("hotline.view")),
            (Some("dept-7"), Some("letter.register")),
        ] {
            let mut q = bq(dept, clock);
            q.limit = 50;
            q.alerts_limit = 50;
            let _ = s.board(&q).unwrap(); // warm the page cache, as a refreshing board does
            let t = std::time::Instant::now();
            let d = s.board(&q).unwrap();
            let ms = t.elapsed().as_millis();
            eprintln!(
                "board {dept:?} {clock:?}: {ms} ms, {} clock ids, {} overdue listed",
                d.counts.len(),
                d.overdue.len()
            );
            assert!(ms < 2000, "{ms} ms");
        }
    }
}
