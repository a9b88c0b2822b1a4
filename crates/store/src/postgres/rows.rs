//! Row helpers shared by the PostgreSQL modules: instants as stored, clock rows (inserted
//! with an item or a status event, updated by events and the timer engine), alerts with their
//! records and mail, outbox rows and queued write-backs, each inside the caller's transaction.
//! The statements on intake's path are typed (`execute_typed`: parameters with their types,
//! one round trip, where an untyped statement is prepared first: two).

use super::*;
use ::postgres::Row;
use ::postgres::types::Type;
use petitiond_core::sla::clock::State;

pub(crate) fn ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.as_millisecond())
}

/// A stored RFC 3339 instant.
pub(crate) fn ts(s: Option<String>) -> Result<Option<Timestamp>, StoreError> {
    s.map(|s| {
        s.parse::<Timestamp>()
            .map_err(|e| StoreError::Corrupt(format!("instant {s:?}: {e}")))
    })
    .transpose()
}

/// Whether a next alert instant written without the engine's knowledge may rest on a
/// provisional calendar year (as `sqlite::clocks::next_provisional`).
pub(crate) fn next_provisional(c: &Clock, next: Option<Timestamp>) -> bool {
    next.is_some_and(|t| c.provisional || t > c.due_at)
}

fn held_ns(c: &Clock) -> i64 {
    i64::try_from(c.held.as_nanos()).unwrap_or(i64::MAX)
}

/// Inserts a clock unless the item has it already (a status event started it before: that
/// one is kept); its timer when it has a next alert.
pub(crate) fn insert_clock(
    tx: &mut Transaction<'_>,
    c: &Clock,
    next: Option<Timestamp>,
) -> Result<Option<Timer>, StoreError> {
    let row = tx.query_typed_opt(
        "INSERT INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at, paused_at,
             extended_days, last_alert_at, next_alert_ms, due_ms, alerted, provisional,
             next_provisional, held_ns)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (item_id, clock_id) DO NOTHING RETURNING id",
        &[
            (&c.item_id, Type::TEXT),
            (&c.clock_id, Type::TEXT),
            (&c.department, Type::TEXT),
            (&c.state.as_str(), Type::TEXT),
            (&c.started_at.to_string(), Type::TEXT),
            (&c.due_at.to_string(), Type::TEXT),
            (&c.paused_at.map(|t| t.to_string()), Type::TEXT),
            (&i64::from(c.extended_days), Type::INT8),
            (&c.last_alert_at.map(|t| t.to_string()), Type::TEXT),
            (&ms(next), Type::INT8),
            (&c.due_at.as_millisecond(), Type::INT8),
            (&c.last_alert_at.is_some(), Type::BOOL),
            (&c.provisional, Type::BOOL),
            (&next_provisional(c, next), Type::BOOL),
            (&held_ns(c), Type::INT8),
        ],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = row.get(0);
    Ok(next.map(|t| Timer {
        clock_row: id,
        at_ms: t.as_millisecond(),
    }))
}

pub(crate) fn update_clock(
    tx: &mut Transaction<'_>,
    row: i64,
    c: &Clock,
    next: Option<Timestamp>,
) -> Result<(), StoreError> {
    update_clock_marked(tx, row, c, next, next_provisional(c, next))
}

/// [`update_clock`] with the next instant's provisional mark known exactly (the engine's).
pub(crate) fn update_clock_marked(
    tx: &mut Transaction<'_>,
    row: i64,
    c: &Clock,
    next: Option<Timestamp>,
    next_provisional: bool,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE sla_clocks SET state = $2, started_at = $3, due_at = $4, paused_at = $5,
             extended_days = $6, last_alert_at = $7, next_alert_ms = $8, due_ms = $9,
             alerted = $10, provisional = $11, next_provisional = $12, held_ns = $13
         WHERE id = $1",
        &[
            &row,
            &c.state.as_str(),
            &c.started_at.to_string(),
            &c.due_at.to_string(),
            &c.paused_at.map(|t| t.to_string()),
            &i64::from(c.extended_days),
            &c.last_alert_at.map(|t| t.to_string()),
            &ms(next),
            &c.due_at.as_millisecond(),
            &c.last_alert_at.is_some(),
            &c.provisional,
            &next_provisional,
            &held_ns(c),
        ],
    )?;
    Ok(())
}

/// The columns [`row_to_clock`] reads, in its order.
pub(crate) const CLOCK_COLS: &str = "id, item_id, clock_id, department, state, started_at, due_at, paused_at, extended_days, last_alert_at, provisional, held_ns, next_provisional";

/// A clock row read with [`CLOCK_COLS`]: its id and the clock.
pub(crate) fn row_to_clock(r: &Row) -> Result<(i64, Clock), StoreError> {
    let state: String = r.try_get(4)?;
    let extended: i64 = r.try_get(8)?;
    Ok((
        r.try_get(0)?,
        Clock {
            item_id: r.try_get(1)?,
            clock_id: r.try_get(2)?,
            department: r.try_get(3)?,
            state: State::parse(&state).unwrap_or(State::Stopped),
            started_at: ts(Some(r.try_get(5)?))?.unwrap_or_default(),
            due_at: ts(Some(r.try_get(6)?))?.unwrap_or_default(),
            paused_at: ts(r.try_get(7)?)?,
            extended_days: u32::try_from(extended)
                .map_err(|_| StoreError::Corrupt(format!("extended_days {extended}")))?,
            last_alert_at: ts(r.try_get(9)?)?,
            provisional: r.try_get(10)?,
            held: jiff::SignedDuration::from_nanos(r.try_get(11)?),
        },
    ))
}

/// Queues an outbox row; `ignore`: a row with the same (topic, CloudEvents id) is kept and
/// this one dropped (SQLite's `INSERT OR IGNORE`), else such a row is an error.
pub(crate) fn insert_outbox(
    tx: &mut Transaction<'_>,
    item_id: &str,
    o: &NewOutbox,
    ignore: bool,
) -> Result<u64, StoreError> {
    let sql = if ignore {
        "INSERT INTO outbox (item_id, topic, msg_key, ce_id, headers, payload)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
    } else {
        "INSERT INTO outbox (item_id, topic, msg_key, ce_id, headers, payload)
         VALUES ($1, $2, $3, $4, $5, $6)"
    };
    let headers = serde_json::to_string(&o.headers)?;
    Ok(tx.execute_typed(
        sql,
        &[
            (&item_id, Type::TEXT),
            (&o.topic, Type::TEXT),
            (&o.key, Type::TEXT),
            (&o.ce_id, Type::TEXT),
            (&headers, Type::TEXT),
            (&o.payload, Type::BYTEA),
        ],
    )?)
}

/// Queues a mail unless one with its id is queued already.
pub(crate) fn insert_mail(
    tx: &mut Transaction<'_>,
    id: &str,
    m: &NewMail,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO mail_outbox (alert_id, recipients, subject, body) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        &[
            &id,
            &serde_json::to_string(&m.recipients)?,
            &m.subject,
            &m.body,
        ],
    )?;
    Ok(())
}

/// Records an alert once (by id) with its Kafka record and its mail; `false` when it was
/// recorded before (nothing queued).
pub(crate) fn insert_alert(tx: &mut Transaction<'_>, a: &FiredAlert) -> Result<bool, StoreError> {
    let n = tx.execute(
        "INSERT INTO alerts (id, item_id, clock_id, kind, department, due_at, scheduled_at,
             fired_at, late, provisional)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        &[
            &a.id,
            &a.item_id,
            &a.clock_id,
            &a.kind,
            &a.department,
            &a.due_at.to_string(),
            &a.scheduled_at.to_string(),
            &a.fired_at.to_string(),
            &a.late,
            &a.provisional,
        ],
    )?;
    if n == 0 {
        return Ok(false);
    }
    insert_outbox(tx, &a.item_id, &a.record, false)?;
    if let Some(m) = &a.mail {
        insert_mail(tx, &a.id, m)?;
    }
    Ok(true)
}

/// Queues write-backs inside the caller's transaction, each only if its item came from its
/// source; the same idempotency key again is a no-op. Returns how many were new.
pub(crate) fn queue_writeback(
    tx: &mut Transaction<'_>,
    rows: &[NewWriteback],
) -> Result<usize, StoreError> {
    let mut n = 0;
    for w in rows {
        n += tx.execute_typed(
            "INSERT INTO writeback (item_id, source, kind, value, idem_key, body)
             SELECT $1, $2, $3, $4, $5, $6
             WHERE EXISTS (SELECT 1 FROM items WHERE id = $1 AND source = $2)
             ON CONFLICT DO NOTHING",
            &[
                (&w.item_id, Type::TEXT),
                (&w.source, Type::TEXT),
                (&w.kind, Type::TEXT),
                (&w.value, Type::TEXT),
                (&w.key, Type::TEXT),
                (&w.body, Type::BYTEA),
            ],
        )? as usize;
    }
    Ok(n)
}
