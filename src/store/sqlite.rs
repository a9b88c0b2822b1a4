//! SQLite implementation of [`Store`]: the embedded default.
//!
//! One connection behind a mutex (SQLite serialises writers anyway); WAL journal with
//! `synchronous=FULL` so a committed transaction survives power loss; schema by
//! `rusqlite_migration` (versioned through `PRAGMA user_version`).

use super::*;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const MIGRATIONS: &[M<'static>] = &[M::up(
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
)];

pub struct SqliteStore {
    // One connection: SQLite has one writer at a time; a pool would only add lock waits.
    conn: Mutex<Connection>,
}

impl SqliteStore {
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Migrations::from_slice(MIGRATIONS).to_latest(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half transaction (rusqlite rolls back
        // on drop), so a poisoned lock is still a usable connection.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
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

const OUTBOX_COLS: &str = "seq, item_id, topic, msg_key, ce_id, headers, payload, attempts";

impl Store for SqliteStore {
    fn record_item(&self, item: &NewItem) -> Result<Recorded, StoreError> {
        let e = &item.envelope;
        let envelope = serde_json::to_string(e)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO items (id, channel, upstream_id, source, received_at, category, stage, envelope)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                e.id.as_str(),
                e.channel.as_str(),
                e.upstream.id,
                e.upstream.source,
                e.received_at.to_string(),
                e.category.map(|c| c.as_str()),
                serde_json::to_value(e.stage)?.as_str().unwrap_or("received"),
                envelope,
            ],
        )?;
        if inserted == 0 {
            return Ok(Recorded::Duplicate);
        }
        let d = &item.decision;
        tx.execute(
            "INSERT INTO routing_decisions (item_id, rule_id, rules_version, lead, assists, decided_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                e.id.as_str(),
                d.rule_id,
                d.rules_version,
                d.lead,
                serde_json::to_string(&d.assists)?,
                d.decided_at.to_string()
            ],
        )?;
        for o in &item.outbox {
            tx.execute(
                "INSERT INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.id.as_str(), o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload],
            )?;
        }
        for c in &e.sla {
            tx.execute(
                "INSERT INTO sla_clocks (item_id, clock_id, state, started_at, due_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.id.as_str(), c.clock, c.state, e.received_at.to_string(), c.due_at.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(Recorded::New)
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

    fn quarantine(&self, q: &Quarantined) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO quarantine (source, reference, reason, detail, raw_ref, size) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![q.source, q.reference, q.reason, q.detail, q.raw_ref, q.size as i64],
        )?;
        Ok(conn.last_insert_rowid())
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

    fn pending_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM outbox WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
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
            envelope: env,
        }
    }

    #[test]
    fn record_is_idempotent_by_item_id() {
        let (_d, s) = store();
        assert_eq!(s.record_item(&item("a")).unwrap(), Recorded::New);
        assert_eq!(s.record_item(&item("a")).unwrap(), Recorded::Duplicate);
        assert_eq!(s.pending_count().unwrap(), 1);
    }

    #[test]
    fn outbox_lifecycle_and_positions() {
        let (_d, s) = store();
        s.record_item(&item("a")).unwrap();
        s.record_item(&item("b")).unwrap();
        let rows = s.pending_outbox(10).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(s.in_flight_outbox().unwrap().is_empty());
        s.mark_attempted(&[rows[0].seq]).unwrap();
        assert_eq!(s.in_flight_outbox().unwrap()[0].ce_id, "ce-a");
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
        Migrations::from_slice(MIGRATIONS).validate().unwrap();
    }
}
