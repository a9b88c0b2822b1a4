//! The status write-back outbox in PostgreSQL (table `writeback`): the worker's reads and
//! state changes, ported from `sqlite/writeback.rs` with the same semantics. Queuing inside
//! the transactions of intake, status events and recomputes is `rows::queue_writeback`.
//!
//! A source's worker runs on the instance that holds the source's lease, so the reads need no
//! row locks; each state change is one conditional statement (`AND state = 'pending'`), so a
//! late worker that lost its lease cannot move a row out of `delivered` or `dead`.

use super::*;
use ::postgres::Row;

const COLS: &str = "w.id, w.item_id, i.upstream_id, w.source, w.kind, w.value, w.idem_key, w.body, w.state, w.attempts, w.next_attempt_ms, w.last_error, w.created_at, w.done_at";

fn row(r: &Row) -> Result<WritebackRow, StoreError> {
    Ok(WritebackRow {
        id: r.try_get(0)?,
        item_id: r.try_get(1)?,
        upstream_id: r.try_get(2)?,
        source: r.try_get(3)?,
        kind: r.try_get(4)?,
        value: r.try_get(5)?,
        key: r.try_get(6)?,
        body: r.try_get(7)?,
        state: r.try_get(8)?,
        attempts: r.try_get(9)?,
        next_attempt_ms: r.try_get(10)?,
        last_error: r.try_get(11)?,
        created_at: r.try_get(12)?,
        done_at: r.try_get(13)?,
    })
}

/// The worker's read: pending rows due by `$2` in `writeback_due` order, skipping any row with
/// an older pending row of its item (`writeback_item`).
fn ready_sql() -> String {
    format!(
        "SELECT {COLS} FROM writeback w JOIN items i ON i.id = w.item_id
         WHERE w.source = $1 AND w.state = 'pending' AND w.next_attempt_ms <= $2
           AND NOT EXISTS (SELECT 1 FROM writeback e
                           WHERE e.item_id = w.item_id AND e.state = 'pending' AND e.id < w.id)
         ORDER BY w.next_attempt_ms, w.id LIMIT $3"
    )
}

pub(super) fn ready(
    store: &PgStore,
    source: &str,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<WritebackRow>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = store
        .conn()?
        .query(&ready_sql(), &[&source, &now_ms, &limit])?;
    rows.iter().map(row).collect()
}

pub(super) fn pending(store: &PgStore, source: &str) -> Result<u64, StoreError> {
    let n: i64 = store
        .conn()?
        .query_one(
            "SELECT COUNT(*) FROM writeback WHERE source = $1 AND state = 'pending'",
            &[&source],
        )?
        .try_get(0)?;
    Ok(n.max(0) as u64)
}

/// One seek on `writeback_due`.
pub(super) fn next_attempt(store: &PgStore, source: &str) -> Result<Option<i64>, StoreError> {
    Ok(store
        .conn()?
        .query_one(
            "SELECT MIN(next_attempt_ms) FROM writeback WHERE source = $1 AND state = 'pending'",
            &[&source],
        )?
        .try_get(0)?)
}

pub(super) fn attempted(store: &PgStore, id: i64) -> Result<(), StoreError> {
    store.conn()?.execute(
        "UPDATE writeback SET attempts = attempts + 1 WHERE id = $1",
        &[&id],
    )?;
    Ok(())
}

pub(super) fn delivered(store: &PgStore, id: i64, status: u16) -> Result<(), StoreError> {
    store.conn()?.execute(
        "UPDATE writeback SET state = 'delivered', last_status = $2, last_error = NULL,
             done_at = petitiond_now()
         WHERE id = $1 AND state = 'pending'",
        &[&id, &i64::from(status)],
    )?;
    Ok(())
}

pub(super) fn retry(store: &PgStore, id: i64, next_ms: i64, error: &str) -> Result<(), StoreError> {
    store.conn()?.execute(
        "UPDATE writeback SET next_attempt_ms = $2, last_error = $3
         WHERE id = $1 AND state = 'pending'",
        &[&id, &next_ms, &error],
    )?;
    Ok(())
}

pub(super) fn dead(store: &PgStore, id: i64, reason: &str) -> Result<(), StoreError> {
    store.conn()?.execute(
        "UPDATE writeback SET state = 'dead', last_error = $2, done_at = petitiond_now()
         WHERE id = $1 AND state = 'pending'",
        &[&id, &reason],
    )?;
    Ok(())
}

pub(super) fn list(
    store: &PgStore,
    state: Option<&str>,
    limit: usize,
) -> Result<Vec<WritebackRow>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = store.conn()?.query(
        &format!(
            "SELECT {COLS} FROM writeback w JOIN items i ON i.id = w.item_id
             WHERE $1::text IS NULL OR w.state = $1 ORDER BY w.id DESC LIMIT $2"
        ),
        &[&state, &limit],
    )?;
    rows.iter().map(row).collect()
}

pub(super) fn replay(store: &PgStore, ids: &[i64]) -> Result<usize, StoreError> {
    let n = store.conn()?.execute(
        "UPDATE writeback SET state = 'pending', attempts = 0, next_attempt_ms = 0, done_at = NULL
         WHERE id = ANY($1) AND state = 'dead'",
        &[&ids],
    )?;
    Ok(n as usize)
}
