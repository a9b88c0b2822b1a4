//! SLA clocks and alerts in PostgreSQL: the rows behind the timer engine (fire, compute
//! pending clocks, recompute when a calendar changes) and the calendar state remembered
//! between starts; ported from `sqlite/clocks.rs` with the same semantics.
//!
//! Several instances share these rows. Every write reads its clocks `FOR UPDATE` in the
//! transaction (ids in ascending order, so two writers never wait on each other in a cycle):
//! two SLA engines firing the same clock serialize on its row, the second sees what the first
//! wrote, and an alert is recorded once by its id (`rows::insert_alert`, whose Kafka record
//! and mail are queued only with the alert row). The row helpers shared with items and
//! status events are in `rows.rs`.

use super::rows::{CLOCK_COLS, insert_alert, insert_outbox, queue_writeback, row_to_clock};
use super::rows::{ms, update_clock, update_clock_marked};
use super::*;
use ::postgres::types::Type;
use petitiond_core::sla::clock::State;
use std::collections::HashMap;

pub(super) fn open_timers(store: &PgStore) -> Result<Vec<Timer>, StoreError> {
    let rows = store.conn()?.query(
        "SELECT id, next_alert_ms FROM sla_clocks WHERE next_alert_ms IS NOT NULL",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Timer {
                clock_row: r.try_get(0)?,
                at_ms: r.try_get(1)?,
            })
        })
        .collect()
}

pub(super) fn pending_clocks(store: &PgStore) -> Result<Vec<(i64, Clock)>, StoreError> {
    let rows = store.conn()?.query(
        &format!("SELECT {CLOCK_COLS} FROM sla_clocks WHERE state = 'pending' ORDER BY id"),
        &[],
    )?;
    rows.iter().map(row_to_clock).collect()
}

/// Locks the clock rows `ids` (ascending: a fixed order, no deadlock between writers) and
/// returns them by id with their `next_provisional` mark; a missing row is left out.
fn lock_clocks(
    tx: &mut Transaction<'_>,
    ids: &[i64],
) -> Result<HashMap<i64, (Clock, bool)>, StoreError> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    // Typed (one round trip instead of prepare + execute): the timer engine's path.
    let rows = tx.query_typed(
        &format!("SELECT {CLOCK_COLS} FROM sla_clocks WHERE id = ANY($1) ORDER BY id FOR UPDATE"),
        &[(&ids, Type::INT8_ARRAY)],
    )?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        let (id, clock) = row_to_clock(r)?;
        out.insert(id, (clock, r.try_get::<_, bool>(12)?));
    }
    Ok(out)
}

pub(super) fn compute_clocks(
    store: &PgStore,
    clocks: &[(i64, Clock, Option<Timestamp>)],
) -> Result<(), StoreError> {
    let ids: Vec<i64> = clocks.iter().map(|c| c.0).collect();
    store.tx(|tx| {
        let stored = lock_clocks(tx, &ids)?;
        for (row, clock, next) in clocks {
            // Stopped meanwhile (a status event): left alone.
            if stored
                .get(row)
                .is_some_and(|(c, _)| c.state == State::Pending)
            {
                update_clock(tx, *row, clock, *next)?;
            }
        }
        Ok(())
    })
}

pub(super) fn clocks_to_recompute(
    store: &PgStore,
    provisional: bool,
) -> Result<Vec<StoredClock>, StoreError> {
    let mut conn = store.conn()?;
    let mut out: Vec<StoredClock> = Vec::new();
    let mut conds = vec!["state = 'pending'"];
    if provisional {
        // As `sla_clocks_provisional`'s condition, so the planner reads that index.
        conds.push("state <> 'stopped' AND (provisional OR next_provisional)");
    }
    for cond in conds {
        let rows = conn.query(
            &format!("SELECT {CLOCK_COLS}, next_alert_ms FROM sla_clocks WHERE {cond} ORDER BY id"),
            &[],
        )?;
        for r in &rows {
            let (row, clock) = row_to_clock(r)?;
            if out.iter().any(|o| o.row == row) {
                continue;
            }
            let next: Option<i64> = r.try_get(13)?;
            out.push(StoredClock {
                row,
                clock,
                next: next.and_then(|ms| Timestamp::from_millisecond(ms).ok()),
                next_provisional: r.try_get(12)?,
            });
        }
    }
    Ok(out)
}

pub(super) fn recompute_clocks(
    store: &PgStore,
    clocks: &[Recomputed],
) -> Result<RecomputeResult, StoreError> {
    let ids: Vec<i64> = clocks.iter().map(|c| c.row).collect();
    store.tx(|tx| {
        let mut stored = lock_clocks(tx, &ids)?;
        let mut result = RecomputeResult::default();
        for c in clocks {
            // A status event changed the row since it was read: it computed the clock on
            // the same calendars and wins.
            if stored.get(&c.row).map(|(s, _)| s) != Some(&c.was) {
                result.skipped += 1;
                continue;
            }
            update_clock_marked(tx, c.row, &c.clock, c.next, c.next_provisional)?;
            stored.insert(c.row, (c.clock.clone(), c.next_provisional));
            result.timers.push(Timer {
                clock_row: c.row,
                at_ms: c.next.map_or(i64::MIN, |t| t.as_millisecond()),
            });
            if let Some(o) = &c.announce {
                result.announced += insert_outbox(tx, &c.clock.item_id, o, true)? as usize;
            }
            queue_writeback(tx, &c.writeback)?;
        }
        Ok(result)
    })
}

pub(super) fn open_provisional_clocks(store: &PgStore) -> Result<u64, StoreError> {
    let n: i64 = store
        .conn()?
        .query_one(
            "SELECT COUNT(*) FROM sla_clocks
             WHERE state <> 'stopped' AND (provisional OR next_provisional) AND provisional",
            &[],
        )?
        .try_get(0)?;
    Ok(n.max(0) as u64)
}

pub(super) fn calendar_state(store: &PgStore) -> Result<Vec<(i16, String, String)>, StoreError> {
    let rows = store.conn()?.query(
        "SELECT year, basis, digest FROM calendar_state ORDER BY year",
        &[],
    )?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

pub(super) fn set_calendar_state(
    store: &PgStore,
    years: &[(i16, String, String)],
) -> Result<(), StoreError> {
    store.tx(|tx| {
        // Two instances starting together replace it one after the other (a DELETE does not
        // see the other's uncommitted rows, so both would insert the same years).
        tx.batch_execute("LOCK TABLE calendar_state IN EXCLUSIVE MODE")?;
        tx.execute("DELETE FROM calendar_state", &[])?;
        for (year, basis, digest) in years {
            tx.execute(
                "INSERT INTO calendar_state (year, basis, digest) VALUES ($1, $2, $3)",
                &[year, basis, digest],
            )?;
        }
        Ok(())
    })
}

pub(super) fn fire(
    store: &PgStore,
    rows: &[i64],
    f: &mut dyn FnMut(&Clock) -> Fired,
) -> Result<FireResult, StoreError> {
    store.tx(|tx| {
        // Locked before `f` decides: another engine firing the same clock waits here and
        // then decides on what this one wrote.
        let mut stored = lock_clocks(tx, rows)?;
        let mut result = FireResult::default();
        for row in rows {
            let Some((clock, was_next_provisional)) = stored.get_mut(row) else {
                continue;
            };
            let fired = f(clock);
            for a in &fired.alerts {
                if insert_alert(tx, a)? {
                    result.alerts += 1;
                }
            }
            // `alerted` is set by the clock's first alert and stays set.
            let first = clock.last_alert_at.is_none() && fired.last_alert_at.is_some();
            tx.execute_typed(
                "UPDATE sla_clocks SET last_alert_at = $2, next_alert_ms = $3,
                     alerted = alerted OR $4, next_provisional = $5
                 WHERE id = $1",
                &[
                    (row, Type::INT8),
                    (&fired.last_alert_at.map(|t| t.to_string()), Type::TEXT),
                    (&ms(fired.next), Type::INT8),
                    (&first, Type::BOOL),
                    (&fired.next_provisional, Type::BOOL),
                ],
            )?;
            clock.last_alert_at = fired.last_alert_at;
            *was_next_provisional = fired.next_provisional;
            if let Some(t) = fired.next {
                result.timers.push(Timer {
                    clock_row: *row,
                    at_ms: t.as_millisecond(),
                });
            }
        }
        Ok(result)
    })
}

pub(super) fn alerts_for(
    store: &PgStore,
    item_id: &str,
) -> Result<Vec<(String, String, bool)>, StoreError> {
    let rows = store.conn()?.query(
        "SELECT clock_id, kind, late FROM alerts WHERE item_id = $1 ORDER BY scheduled_at, seq",
        &[&item_id],
    )?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}
