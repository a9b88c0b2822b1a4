//! Applying a department's status event in PostgreSQL (as `sqlite/status.rs`): once per event
//! id, in one transaction with the clock changes, stage, review-queue exit, records and
//! write-backs it causes. The item's row is locked first (`FOR UPDATE`): two events of one
//! item, or an event and an upstream update, apply one after the other, each on the clocks
//! the other left.

use super::rows::{
    CLOCK_COLS, insert_alert, insert_clock, insert_outbox, queue_writeback, row_to_clock,
    update_clock,
};
use super::*;

pub(super) fn apply_status(
    store: &PgStore,
    ev: &StatusRecord,
    f: &mut dyn FnMut(&Envelope, &mut Vec<Clock>) -> ClockWrites,
) -> Result<StatusOutcome, StoreError> {
    store.tx(|tx| {
        let envelope = tx.query_opt(
            "SELECT envelope FROM items WHERE id = $1 FOR UPDATE",
            &[&ev.item_id],
        )?;
        let Some(envelope) = envelope else {
            return Ok(StatusOutcome::UnknownItem);
        };
        let envelope: String = envelope.try_get(0)?;
        let fresh = tx.execute(
            "INSERT INTO status_events (event_id, item_id, event, at, department, person, verdict)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                &ev.event_id,
                &ev.item_id,
                &ev.event,
                &ev.at.to_string(),
                &ev.department,
                &ev.person,
                &ev.verdict,
            ],
        )?;
        if fresh == 0 {
            return Ok(StatusOutcome::Duplicate);
        }
        // The desk (or a department) has acted on the item: it no longer waits for review.
        tx.execute(
            "DELETE FROM review_queue WHERE item_id = $1",
            &[&ev.item_id],
        )?;
        let envelope: Envelope = serde_json::from_str(&envelope)?;
        let loaded = tx
            .query(
                &format!(
                    "SELECT {CLOCK_COLS} FROM sla_clocks WHERE item_id = $1 ORDER BY clock_id"
                ),
                &[&ev.item_id],
            )?
            .iter()
            .map(row_to_clock)
            .collect::<Result<Vec<_>, _>>()?;
        let (rows, mut clocks): (Vec<i64>, Vec<Clock>) = loaded.into_iter().unzip();
        let writes = f(&envelope, &mut clocks);
        let mut timers = Vec::new();
        for (i, next) in writes.updated {
            update_clock(tx, rows[i], &clocks[i], next)?;
            timers.push(Timer {
                clock_row: rows[i],
                at_ms: next.map_or(i64::MIN, |t| t.as_millisecond()),
            });
        }
        for (c, next) in &writes.started {
            timers.extend(insert_clock(tx, c, *next)?);
        }
        queue_writeback(tx, &writes.writeback)?;
        for a in &writes.alerts {
            insert_alert(tx, a)?;
        }
        for o in &writes.outbox {
            insert_outbox(tx, &ev.item_id, o, true)?;
        }
        if let Some(stage) = ev.stage {
            tx.execute(
                "UPDATE items SET stage = $2, stage_rank = $3 WHERE id = $1 AND stage_rank < $3",
                &[&ev.item_id, &stage.as_str(), &i64::from(stage.rank())],
            )?;
        }
        Ok(StatusOutcome::Applied(timers))
    })
}
