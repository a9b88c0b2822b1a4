//! The Kafka outbox: rows queued in the transaction of the change they announce, read by the
//! producer in order, marked delivered with their positions, retried or dead-lettered.

use super::clocks::ts;
use super::*;

pub(super) const OUTBOX_COLS: &str =
    "seq, item_id, topic, msg_key, ce_id, headers, payload, attempts";

pub(super) fn row_to_outbox(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
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

pub(super) fn pending_outbox(
    store: &SqliteStore,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let conn = store.conn();
    let mut st = conn.prepare_cached(&format!(
        "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT ?1"
    ))?;
    let rows = st
        .query_map([limit as i64], row_to_outbox)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn in_flight_outbox(store: &SqliteStore) -> Result<Vec<OutboxRow>, StoreError> {
    let conn = store.conn();
    let mut st = conn.prepare(&format!(
        "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'pending' AND attempts > 0 ORDER BY seq"
    ))?;
    let rows = st
        .query_map([], row_to_outbox)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn pending_outbox_except(
    store: &SqliteStore,
    limit: usize,
    held: &[String],
) -> Result<Vec<OutboxRow>, StoreError> {
    if held.is_empty() {
        return store.pending_outbox(limit);
    }
    let marks = vec!["?"; held.len()].join(", ");
    let conn = store.conn();
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

pub(super) fn in_flight_since(
    store: &SqliteStore,
    topic: &str,
) -> Result<Option<Timestamp>, StoreError> {
    let at: Option<String> = store.conn().query_row(
        "SELECT min(created_at) FROM outbox WHERE state = 'pending' AND attempts > 0 AND topic = ?1",
        [topic],
        |r| r.get(0),
    )?;
    ts(at).map_err(StoreError::from)
}

pub(super) fn mark_attempted(store: &SqliteStore, seqs: &[i64]) -> Result<(), StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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

pub(super) fn mark_delivered(store: &SqliteStore, d: &[Delivered]) -> Result<(), StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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

pub(super) fn mark_failed(store: &SqliteStore, seq: i64, error: &str) -> Result<(), StoreError> {
    store.conn().execute(
        "UPDATE outbox SET last_error = ?2 WHERE seq = ?1",
        params![seq, error],
    )?;
    Ok(())
}

pub(super) fn mark_dead(store: &SqliteStore, seq: i64, reason: &str) -> Result<(), StoreError> {
    store.conn().execute(
        "UPDATE outbox SET state = 'dead', last_error = ?2, done_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE seq = ?1",
        params![seq, reason],
    )?;
    Ok(())
}

pub(super) fn enqueue(store: &SqliteStore, item_id: &str, o: &NewOutbox) -> Result<(), StoreError> {
    store.conn().execute(
        "INSERT INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![item_id, o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload],
    )?;
    Ok(())
}

pub(super) fn dead_letters(
    store: &SqliteStore,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let conn = store.conn();
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

pub(super) fn replay_dead(
    store: &SqliteStore,
    seqs: &[i64],
    topic: Option<&str>,
) -> Result<usize, StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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

pub(super) fn pending_count(store: &SqliteStore) -> Result<u64, StoreError> {
    let n: i64 = store.conn().query_row(
        "SELECT count(*) FROM outbox WHERE state = 'pending'",
        [],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

pub(super) fn oldest_pending_outbox(store: &SqliteStore) -> Result<Option<Timestamp>, StoreError> {
    // The lowest pending seq is the oldest enqueued (seq grows with time); the partial
    // index `outbox_pending` makes this one seek however long the backlog is.
    let created: Option<String> = store
        .conn()
        .query_row(
            "SELECT created_at FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(ts(created)?)
}

pub(super) fn topic_positions(
    store: &SqliteStore,
    topic: &str,
) -> Result<Vec<(i32, i64)>, StoreError> {
    let conn = store.conn();
    let mut st =
        conn.prepare("SELECT partition, next_offset FROM topic_positions WHERE topic = ?1")?;
    let rows = st
        .query_map([topic], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
