//! The Kafka outbox in PostgreSQL (as `sqlite/outbox.rs`): rows queued in the transaction of
//! the change they announce, read by the relay in `seq` order, marked delivered with their
//! positions, retried or dead-lettered.
//!
//! `seq` is a sequence: a transaction that took a lower `seq` may commit after one with a
//! higher `seq`, so a reader can see a gap that fills later. The relay reads pending rows
//! each round (not "after the last seq seen"), so a late row is read in the next round.

use super::rows::{insert_outbox, ts};
use super::*;
use ::postgres::Row;

const OUTBOX_COLS: &str = "seq, item_id, topic, msg_key, ce_id, headers, payload, attempts";

fn row_to_outbox(r: &Row) -> Result<OutboxRow, StoreError> {
    let headers: String = r.try_get(5)?;
    Ok(OutboxRow {
        seq: r.try_get(0)?,
        item_id: r.try_get(1)?,
        topic: r.try_get(2)?,
        key: r.try_get(3)?,
        ce_id: r.try_get(4)?,
        headers: serde_json::from_str(&headers)?,
        payload: r.try_get(6)?,
        attempts: r.try_get(7)?,
    })
}

fn rows(rows: Vec<Row>) -> Result<Vec<OutboxRow>, StoreError> {
    rows.iter().map(row_to_outbox).collect()
}

pub(super) fn pending_outbox(store: &PgStore, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
    rows(store.conn()?.query(
        &format!("SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT $1"),
        &[&(limit as i64)],
    )?)
}

pub(super) fn in_flight_outbox(store: &PgStore) -> Result<Vec<OutboxRow>, StoreError> {
    rows(store.conn()?.query(
        &format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'pending' AND attempts > 0 ORDER BY seq"
        ),
        &[],
    )?)
}

pub(super) fn pending_outbox_except(
    store: &PgStore,
    limit: usize,
    held: &[String],
) -> Result<Vec<OutboxRow>, StoreError> {
    rows(store.conn()?.query(
        &format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'pending' AND topic <> ALL($1)
             ORDER BY seq LIMIT $2"
        ),
        &[&held, &(limit as i64)],
    )?)
}

pub(super) fn in_flight_since(
    store: &PgStore,
    topic: &str,
) -> Result<Option<Timestamp>, StoreError> {
    let row = store.conn()?.query_one(
        "SELECT min(created_at) FROM outbox WHERE state = 'pending' AND attempts > 0 AND topic = $1",
        &[&topic],
    )?;
    ts(row.try_get(0)?)
}

pub(super) fn mark_attempted(store: &PgStore, seqs: &[i64]) -> Result<(), StoreError> {
    store.conn()?.execute(
        "UPDATE outbox SET attempts = attempts + 1 WHERE seq = ANY($1)",
        &[&seqs],
    )?;
    Ok(())
}

pub(super) fn mark_delivered(store: &PgStore, d: &[Delivered]) -> Result<(), StoreError> {
    store.tx(|tx| {
        let st = tx.prepare(
            "UPDATE outbox SET state = 'delivered', \"partition\" = $2, \"offset\" = $3,
                 last_error = NULL, done_at = petitiond_now()
             WHERE seq = $1 AND state = 'pending'",
        )?;
        let pos = tx.prepare(
            "INSERT INTO topic_positions (topic, \"partition\", next_offset) VALUES ($1, $2, $3)
             ON CONFLICT (topic, \"partition\")
             DO UPDATE SET next_offset = greatest(topic_positions.next_offset, excluded.next_offset)",
        )?;
        for x in d {
            tx.execute(&st, &[&x.seq, &x.partition, &x.offset])?;
            tx.execute(&pos, &[&x.topic, &x.partition, &(x.offset + 1)])?;
        }
        Ok(())
    })
}

pub(super) fn mark_failed(store: &PgStore, seq: i64, error: &str) -> Result<(), StoreError> {
    store.conn()?.execute(
        "UPDATE outbox SET last_error = $2 WHERE seq = $1",
        &[&seq, &error],
    )?;
    Ok(())
}

pub(super) fn mark_dead(store: &PgStore, seq: i64, reason: &str) -> Result<(), StoreError> {
    store.conn()?.execute(
        "UPDATE outbox SET state = 'dead', last_error = $2, done_at = petitiond_now() WHERE seq = $1",
        &[&seq, &reason],
    )?;
    Ok(())
}

pub(super) fn enqueue(store: &PgStore, item_id: &str, o: &NewOutbox) -> Result<(), StoreError> {
    store.tx(|tx| insert_outbox(tx, item_id, o, false).map(drop))
}

pub(super) fn dead_letters(store: &PgStore, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
    let rows = store.conn()?.query(
        "SELECT seq, item_id, topic, ce_id, coalesce(last_error, ''), coalesce(done_at, '')
         FROM outbox WHERE state = 'dead' ORDER BY seq LIMIT $1",
        &[&(limit as i64)],
    )?;
    rows.iter()
        .map(|r| {
            Ok(DeadLetter {
                seq: r.try_get(0)?,
                item_id: r.try_get(1)?,
                topic: r.try_get(2)?,
                ce_id: r.try_get(3)?,
                reason: r.try_get(4)?,
                at: r.try_get(5)?,
            })
        })
        .collect()
}

pub(super) fn replay_dead(
    store: &PgStore,
    seqs: &[i64],
    topic: Option<&str>,
) -> Result<usize, StoreError> {
    let n = store.conn()?.execute(
        "UPDATE outbox SET state = 'pending', attempts = 0, done_at = NULL,
             topic = coalesce($2, topic)
         WHERE seq = ANY($1) AND state = 'dead'",
        &[&seqs, &topic],
    )?;
    Ok(n as usize)
}

pub(super) fn pending_count(store: &PgStore) -> Result<u64, StoreError> {
    let n: i64 = store
        .conn()?
        .query_one("SELECT count(*) FROM outbox WHERE state = 'pending'", &[])?
        .try_get(0)?;
    Ok(n as u64)
}

pub(super) fn oldest_pending_outbox(store: &PgStore) -> Result<Option<Timestamp>, StoreError> {
    let row = store.conn()?.query_opt(
        "SELECT created_at FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1",
        &[],
    )?;
    ts(row.map(|r| r.try_get(0)).transpose()?)
}

pub(super) fn topic_positions(store: &PgStore, topic: &str) -> Result<Vec<(i32, i64)>, StoreError> {
    let rows = store.conn()?.query(
        "SELECT \"partition\", next_offset FROM topic_positions WHERE topic = $1",
        &[&topic],
    )?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}
