//! Applying a department's status event: once per event id, in one transaction with the clock
//! changes, stage, review-queue exit, records and write-backs it causes.

use super::clocks::{CLOCK_COLS, insert_alert, insert_clock, row_to_clock, update_clock};
use super::*;

pub(super) fn apply_status(
    store: &SqliteStore,
    ev: &StatusRecord,
    f: &mut dyn FnMut(&Envelope, &mut Vec<Clock>) -> ClockWrites,
) -> Result<StatusOutcome, StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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
