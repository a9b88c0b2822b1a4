//! The status write-back outbox in SQLite (table `writeback`, migration v10): queuing inside
//! the transactions of intake, the status consumer and the SLA engine's start-up
//! reconciliation, and the worker's reads and state changes.
//!
//! A row is queued only if its item came from the row's source (`items.source`): the SLA
//! engine does not know an item's channel when a due instant moves, so it offers a row per
//! source that writes that clock back and the store keeps the one that applies. Queuing the
//! same idempotency key again is a no-op (`INSERT OR IGNORE` on the unique key).

use super::super::{NewWriteback, StoreError, WritebackRow};
use rusqlite::{Connection, TransactionBehavior, params};

const COLS: &str = "w.id, w.item_id, i.upstream_id, w.source, w.kind, w.value, w.idem_key, w.body, w.state, w.attempts, w.next_attempt_ms, w.last_error, w.created_at, w.done_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WritebackRow> {
    Ok(WritebackRow {
        id: r.get(0)?,
        item_id: r.get(1)?,
        upstream_id: r.get(2)?,
        source: r.get(3)?,
        kind: r.get(4)?,
        value: r.get(5)?,
        key: r.get(6)?,
        body: r.get(7)?,
        state: r.get(8)?,
        attempts: r.get(9)?,
        next_attempt_ms: r.get(10)?,
        last_error: r.get(11)?,
        created_at: r.get(12)?,
        done_at: r.get(13)?,
    })
}

/// Queues write-backs inside the caller's transaction; returns how many were new.
pub(super) fn queue(tx: &rusqlite::Connection, rows: &[NewWriteback]) -> Result<usize, StoreError> {
    let mut n = 0;
    for w in rows {
        n += tx
            .prepare_cached(
                "INSERT OR IGNORE INTO writeback (item_id, source, kind, value, idem_key, body)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6
                 WHERE EXISTS (SELECT 1 FROM items WHERE id = ?1 AND source = ?2)",
            )?
            .execute(params![w.item_id, w.source, w.kind, w.value, w.key, w.body])?;
    }
    Ok(n)
}

/// The worker's read: pending rows due by `?2` in `writeback_due` order (no sort, however long
/// the queue), skipping any row with an older pending row of its item (`writeback_item`).
fn ready_sql() -> String {
    format!(
        "SELECT {COLS} FROM writeback w JOIN items i ON i.id = w.item_id
         WHERE w.source = ?1 AND w.state = 'pending' AND w.next_attempt_ms <= ?2
           AND NOT EXISTS (SELECT 1 FROM writeback e
                           WHERE e.item_id = w.item_id AND e.state = 'pending' AND e.id < w.id)
         ORDER BY w.next_attempt_ms, w.id LIMIT ?3"
    )
}

pub(super) fn ready(
    conn: &Connection,
    source: &str,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<WritebackRow>, StoreError> {
    let mut st = conn.prepare_cached(&ready_sql())?;
    let rows = st
        .query_map(params![source, now_ms, limit as i64], row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn pending(conn: &Connection, source: &str) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM writeback WHERE source = ?1 AND state = 'pending'")?
        .query_row([source], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// One seek on `writeback_due`.
pub(super) fn next_attempt(conn: &Connection, source: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT MIN(next_attempt_ms) FROM writeback WHERE source = ?1 AND state = 'pending'",
        )?
        .query_row([source], |r| r.get(0))?)
}

pub(super) fn attempted(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE writeback SET attempts = attempts + 1 WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

pub(super) fn delivered(conn: &Connection, id: i64, status: u16) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE writeback SET state = 'delivered', last_status = ?2, last_error = NULL,
         done_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1 AND state = 'pending'",
    )?
    .execute(params![id, status])?;
    Ok(())
}

pub(super) fn retry(
    conn: &Connection,
    id: i64,
    next_ms: i64,
    error: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE writeback SET next_attempt_ms = ?2, last_error = ?3 WHERE id = ?1 AND state = 'pending'",
    )?
    .execute(params![id, next_ms, error])?;
    Ok(())
}

pub(super) fn dead(conn: &Connection, id: i64, reason: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE writeback SET state = 'dead', last_error = ?2,
         done_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1 AND state = 'pending'",
    )?
    .execute(params![id, reason])?;
    Ok(())
}

pub(super) fn list(
    conn: &Connection,
    state: Option<&str>,
    limit: usize,
) -> Result<Vec<WritebackRow>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {COLS} FROM writeback w JOIN items i ON i.id = w.item_id
         WHERE ?1 IS NULL OR w.state = ?1 ORDER BY w.id DESC LIMIT ?2"
    ))?;
    let rows = st
        .query_map(params![state, limit as i64], row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn replay(conn: &mut Connection, ids: &[i64]) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut n = 0;
    {
        let mut st = tx.prepare_cached(
            "UPDATE writeback SET state = 'pending', attempts = 0, next_attempt_ms = 0, done_at = NULL
             WHERE id = ?1 AND state = 'dead'",
        )?;
        for id in ids {
            n += st.execute([id])?;
        }
    }
    tx.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use crate::*;
    use petitiond_core::envelope::{Channel, Envelope, Personal, Request, Upstream};
    use petitiond_core::sla::clock::{Clock, State};
    use std::time::Duration;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap();
        (dir, s)
    }

    fn clock(item: &str, id: &str) -> Clock {
        Clock {
            item_id: item.into(),
            clock_id: id.into(),
            department: "desk".into(),
            state: State::Running,
            started_at: "2026-03-02T01:00:00Z".parse().unwrap(),
            due_at: "2026-03-03T01:00:00Z".parse().unwrap(),
            paused_at: None,
            extended_days: 0,
            last_alert_at: None,
            provisional: false,
            held: jiff::SignedDuration::ZERO,
        }
    }

    fn wb(item: &str, source: &str, kind: &str, value: &str) -> NewWriteback {
        NewWriteback {
            item_id: item.into(),
            source: source.into(),
            kind: kind.into(),
            value: value.into(),
            key: format!("{item}:{kind}:{value}"),
            body: b"{}".to_vec(),
        }
    }

    /// Records an item of `source` with its clocks and write-backs; returns its id.
    fn record(
        s: &dyn Store,
        source: &str,
        upstream: &str,
        clocks: &[&str],
        writeback: &[(&str, &str, &str)],
    ) -> String {
        let env = Envelope::new(
            Channel::Portal,
            Upstream {
                id: upstream.into(),
                source: source.into(),
                raw_ref: "sha256:00".into(),
                ..Default::default()
            },
            "2026-03-02T01:00:00Z".parse().unwrap(),
            Request {
                title: None,
                content: Personal::new("x"),
            },
        );
        let id = env.id.to_string();
        let item = NewItem {
            outbox: vec![],
            decision: Decision {
                rule_id: "r".into(),
                rules_version: "v".into(),
                lead: "desk".into(),
                assists: vec![],
                decided_at: env.received_at,
            },
            clocks: clocks
                .iter()
                .map(|c| (clock(&id, c), Some("2026-03-02T13:00:00Z".parse().unwrap())))
                .collect(),
            writeback: writeback
                .iter()
                .map(|(src, k, v)| wb(&id, src, k, v))
                .collect(),
            envelope: env,
            version: Some("v1".into()),
            person_index: None,
        };
        assert!(matches!(s.record_item(&item).unwrap(), Recorded::New(_)));
        id
    }

    fn kinds(rows: &[WritebackRow]) -> Vec<(String, String)> {
        rows.iter()
            .map(|r| (r.upstream_id.clone(), r.kind.clone()))
            .collect()
    }

    #[test]
    fn rows_are_queued_for_their_own_source_once_and_sent_in_order_per_item() {
        crate::testing::each_backend(|s| {
            // A row offered for another source (the SLA engine offers one per source) is dropped;
            // the same key twice is queued once.
            let a = record(
                &**s,
                "portal",
                "A",
                &[],
                &[
                    ("portal", "acknowledged", "desk"),
                    ("hotline", "due", "x"),
                    ("portal", "due", "d1"),
                    ("portal", "due", "d1"),
                ],
            );
            let _b = record(
                &**s,
                "portal",
                "B",
                &[],
                &[("portal", "acknowledged", "desk")],
            );
            let _h = record(
                &**s,
                "hotline",
                "H",
                &[],
                &[("hotline", "acknowledged", "desk")],
            );
            assert_eq!(s.writeback_pending("portal").unwrap(), 3);
            assert_eq!(s.writeback_next_attempt("portal").unwrap(), Some(0));
            assert_eq!(s.writeback_pending("hotline").unwrap(), 1);
            assert_eq!(s.writeback_next_attempt("nowhere").unwrap(), None);
            // Per item, only the oldest pending row is ready: A's due waits for A's ack.
            let ready = s.writeback_ready("portal", 0, 10).unwrap();
            assert_eq!(
                kinds(&ready),
                [
                    ("A".to_string(), "acknowledged".to_string()),
                    ("B".into(), "acknowledged".into())
                ]
            );
            assert_eq!(ready[0].item_id, a);
            // A's ack fails and waits until t=1000: B goes on, A's due still waits behind it.
            s.writeback_attempted(ready[0].id).unwrap();
            s.writeback_retry(ready[0].id, 1000, "HTTP 503").unwrap();
            s.writeback_attempted(ready[1].id).unwrap();
            s.writeback_delivered(ready[1].id, 200).unwrap();
            assert!(s.writeback_ready("portal", 999, 10).unwrap().is_empty());
            assert_eq!(s.writeback_pending("portal").unwrap(), 2);
            assert_eq!(s.writeback_next_attempt("portal").unwrap(), Some(0));
            let again = s.writeback_ready("portal", 1000, 10).unwrap();
            assert_eq!(
                kinds(&again),
                [("A".to_string(), "acknowledged".to_string())]
            );
            assert_eq!(again[0].attempts, 1);
            assert_eq!(again[0].last_error.as_deref(), Some("HTTP 503"));
            // Dead: the next one of the item is free to go; replay puts it back, once.
            s.writeback_dead(again[0].id, "HTTP 404").unwrap();
            let next = s.writeback_ready("portal", 1000, 10).unwrap();
            assert_eq!(kinds(&next), [("A".to_string(), "due".to_string())]);
            let dead = s.writeback_list(Some("dead"), 10).unwrap();
            assert_eq!(dead.len(), 1);
            assert!(dead[0].done_at.is_some());
            assert_eq!(s.writeback_replay(&[dead[0].id, 999]).unwrap(), 1);
            let back = s.writeback_ready("portal", 0, 10).unwrap();
            assert_eq!(
                kinds(&back),
                [("A".to_string(), "acknowledged".to_string())]
            );
            assert_eq!(back[0].attempts, 0);
            assert_eq!(s.writeback_list(None, 10).unwrap().len(), 4);
            assert_eq!(s.writeback_list(Some("delivered"), 10).unwrap().len(), 1);
        });
    }

    #[test]
    fn the_workers_reads_use_the_pending_indexes() {
        let (dir, s) = store();
        record(
            &s as &dyn Store,
            "portal",
            "A",
            &[],
            &[("portal", "acknowledged", "desk")],
        );
        drop(s);
        let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        let plan = |sql: &str| -> String {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let n = st.parameter_count();
            st.query_map(rusqlite::params_from_iter((0..n).map(|_| 1i64)), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join(" | ")
        };
        let p = plan(&super::ready_sql());
        assert!(p.contains("USING INDEX writeback_due"), "{p}");
        assert!(p.contains("writeback_item"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        let p = plan(
            "SELECT MIN(next_attempt_ms) FROM writeback WHERE source = ?1 AND state = 'pending'",
        );
        assert!(p.contains("writeback_due"), "{p}");
    }

    #[test]
    fn a_supplement_stops_the_named_open_clocks_with_the_update_or_nothing() {
        crate::testing::each_backend(|s| {
            let id = record(
                &**s,
                "portal",
                "S",
                &["intake.supplement", "portal.sign_in"],
                &[],
            );
            let (env, version) = s.item_state(&id).unwrap().unwrap();
            let update = |expected: Option<String>| ItemUpdate {
                envelope: env.clone(),
                expected_version: expected,
                version: "v2".into(),
                outbox: vec![],
            };
            let sup = Supplement {
                clocks: vec!["intake.supplement".into()],
                at: "2026-03-02T02:00:00Z".parse().unwrap(),
            };
            let record = |clocks: &[Clock]| -> Vec<NewOutbox> {
                clocks
                    .iter()
                    .map(|c| NewOutbox {
                        topic: "t".into(),
                        key: c.item_id.clone(),
                        ce_id: format!("sup-{}", c.clock_id),
                        headers: vec![],
                        payload: b"{}".to_vec(),
                    })
                    .collect()
            };
            // A stale version: nothing written, no clock touched.
            let mut seen = Vec::new();
            let none = s
                .record_supplement(&update(Some("v0".into())), &sup, &mut |c: &[Clock]| {
                    seen.extend(c.iter().map(|c| c.clock_id.clone()));
                    record(c)
                })
                .unwrap();
            assert_eq!(none, None);
            assert!(seen.is_empty());
            assert_eq!(s.open_timers().unwrap().len(), 2);
            let timers = s
                .record_supplement(&update(version.clone()), &sup, &mut |c: &[Clock]| {
                    assert_eq!(c.len(), 1);
                    assert_eq!(c[0].state, State::Running, "as it was before the stop");
                    record(c)
                })
                .unwrap()
                .unwrap();
            assert_eq!(timers.len(), 1);
            assert_eq!(timers[0].at_ms, i64::MIN);
            let open = s.open_timers().unwrap();
            assert_eq!(open.len(), 1, "the other clock runs on");
            assert_ne!(open[0].clock_row, timers[0].clock_row);
            let rows = s.pending_outbox(10).unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].ce_id, "sup-intake.supplement");
            assert_eq!(s.item_version(&id).unwrap().as_deref(), Some("v2"));
            // A stopped clock is not passed again.
            let again = ItemUpdate {
                expected_version: Some("v2".into()),
                version: "v3".into(),
                ..update(None)
            };
            let t = s
                .record_supplement(&again, &sup, &mut |c: &[Clock]| {
                    assert!(c.is_empty());
                    vec![]
                })
                .unwrap();
            assert_eq!(t, Some(vec![]));
        });
    }
}
