//! SLA clocks and alerts: the rows behind the timer engine (insert, update, fire, recompute
//! when a calendar changes) and the calendar state remembered between starts.

use super::*;

pub(super) fn ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.as_millisecond())
}

pub(super) fn ts(s: Option<String>) -> rusqlite::Result<Option<Timestamp>> {
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
pub(super) fn next_provisional(c: &Clock, next: Option<Timestamp>) -> bool {
    next.is_some_and(|t| c.provisional || t > c.due_at)
}

pub(super) fn insert_clock(
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

pub(super) fn update_clock(
    tx: &rusqlite::Transaction<'_>,
    row: i64,
    c: &Clock,
    next: Option<Timestamp>,
) -> Result<(), StoreError> {
    update_clock_marked(tx, row, c, next, next_provisional(c, next))
}

/// [`update_clock`] with the next instant's provisional mark known exactly (the engine's).
pub(super) fn update_clock_marked(
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
pub(super) fn record_fired(
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

pub(super) const CLOCK_COLS: &str = "rowid, item_id, clock_id, department, state, started_at, due_at, paused_at, extended_days, last_alert_at, provisional, held_ns, next_provisional";

pub(super) fn row_to_clock(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Clock)> {
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

pub(super) fn insert_alert(
    tx: &rusqlite::Transaction<'_>,
    a: &FiredAlert,
) -> Result<bool, StoreError> {
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

pub(super) fn open_timers(store: &SqliteStore) -> Result<Vec<Timer>, StoreError> {
    let conn = store.conn();
    let mut st = conn
        .prepare("SELECT rowid, next_alert_ms FROM sla_clocks WHERE next_alert_ms IS NOT NULL")?;
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

pub(super) fn pending_clocks(store: &SqliteStore) -> Result<Vec<(i64, Clock)>, StoreError> {
    let conn = store.conn();
    let mut st = conn.prepare(&format!(
        "SELECT {CLOCK_COLS} FROM sla_clocks WHERE state = 'pending'"
    ))?;
    let rows = st
        .query_map([], row_to_clock)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn compute_clocks(
    store: &SqliteStore,
    clocks: &[(i64, Clock, Option<Timestamp>)],
) -> Result<(), StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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

pub(super) fn clocks_to_recompute(
    store: &SqliteStore,
    provisional: bool,
) -> Result<Vec<StoredClock>, StoreError> {
    let conn = store.conn();
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

pub(super) fn recompute_clocks(
    store: &SqliteStore,
    clocks: &[Recomputed],
) -> Result<RecomputeResult, StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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

pub(super) fn open_provisional_clocks(store: &SqliteStore) -> Result<u64, StoreError> {
    let conn = store.read.lock().unwrap_or_else(|p| p.into_inner());
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sla_clocks
         WHERE state <> 'stopped' AND (provisional = 1 OR next_provisional = 1) AND provisional = 1",
        [],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

pub(super) fn calendar_state(
    store: &SqliteStore,
) -> Result<Vec<(i16, String, String)>, StoreError> {
    let conn = store.conn();
    let mut st = conn.prepare("SELECT year, basis, digest FROM calendar_state ORDER BY year")?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn set_calendar_state(
    store: &SqliteStore,
    years: &[(i16, String, String)],
) -> Result<(), StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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

pub(super) fn fire(
    store: &SqliteStore,
    rows: &[i64],
    f: &mut dyn FnMut(&Clock) -> Fired,
) -> Result<FireResult, StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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
                (fired.next_provisional != was_next_provisional).then_some(fired.next_provisional),
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

pub(super) fn alerts_for(
    store: &SqliteStore,
    item_id: &str,
) -> Result<Vec<(String, String, bool)>, StoreError> {
    let conn = store.conn();
    let mut st = conn.prepare(
        "SELECT clock_id, kind, late FROM alerts WHERE item_id = ?1 ORDER BY scheduled_at",
    )?;
    let rows = st
        .query_map([item_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
