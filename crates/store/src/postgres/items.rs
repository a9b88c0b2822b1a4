//! Items in PostgreSQL: recording a new item with everything that comes with it (decision,
//! review entry, outbox rows, clocks, person index, write-backs) in one transaction, upstream
//! updates and supplements, the repeat-petition look-up, channel cursors and the intake desk's
//! corrections (as `sqlite/items.rs`).

use super::rows::{
    CLOCK_COLS, insert_clock, insert_outbox, queue_writeback, row_to_clock, update_clock,
};
use super::*;
use ::postgres::types::Type;
use petitiond_core::sla::clock::State;

/// Writes one item's rows inside `tx`; nothing when its id is already known.
fn insert_item(tx: &mut Transaction<'_>, item: &NewItem) -> Result<Recorded, StoreError> {
    let e = &item.envelope;
    let envelope = serde_json::to_string(e)?;
    let stage = serde_json::to_value(e.stage)?;
    let inserted = tx.execute_typed(
        "INSERT INTO items (id, channel, upstream_id, source, received_at, category, stage,
             envelope, upstream_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        &[
            (&e.id.as_str(), Type::TEXT),
            (&e.channel.as_str(), Type::TEXT),
            (&e.upstream.id, Type::TEXT),
            (&e.upstream.source, Type::TEXT),
            (&e.received_at.to_string(), Type::TEXT),
            (&e.category.map(|c| c.as_str()), Type::TEXT),
            (&stage.as_str().unwrap_or("received"), Type::TEXT),
            (&envelope, Type::TEXT),
            (&item.version, Type::TEXT),
        ],
    )?;
    if inserted == 0 {
        return Ok(Recorded::Duplicate);
    }
    let d = &item.decision;
    let classification = e.routing.as_ref().and_then(|r| r.classification.as_ref());
    tx.execute_typed(
        "INSERT INTO routing_decisions (item_id, rule_id, rules_version, lead, assists,
             decided_at, classification)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            (&e.id.as_str(), Type::TEXT),
            (&d.rule_id, Type::TEXT),
            (&d.rules_version, Type::TEXT),
            (&d.lead, Type::TEXT),
            (&serde_json::to_string(&d.assists)?, Type::TEXT),
            (&d.decided_at.to_string(), Type::TEXT),
            (
                &classification.map(serde_json::to_string).transpose()?,
                Type::TEXT,
            ),
        ],
    )?;
    if let Some(c) = classification.filter(|c| c.needs_review) {
        tx.execute(
            "INSERT INTO review_queue (item_id, lead, decided_ms, classification)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (item_id) DO UPDATE SET lead = excluded.lead,
                 decided_ms = excluded.decided_ms, classification = excluded.classification",
            &[
                &e.id.as_str(),
                &d.lead,
                &d.decided_at.as_millisecond(),
                &serde_json::to_string(c)?,
            ],
        )?;
    }
    for o in &item.outbox {
        insert_outbox(tx, e.id.as_str(), o, false)?;
    }
    let mut timers = Vec::new();
    for (c, next) in &item.clocks {
        timers.extend(insert_clock(tx, c, *next)?);
    }
    if let Some(p) = &item.person_index {
        // One statement for every key.
        tx.execute_typed(
            "INSERT INTO person_items (person_key, item_id, matter, received_ms)
             SELECT k, $2, $3, $4 FROM unnest($1::text[]) AS k ON CONFLICT DO NOTHING",
            &[
                (&p.person_keys, Type::TEXT_ARRAY),
                (&e.id.as_str(), Type::TEXT),
                (&p.matter, Type::TEXT),
                (&e.received_at.as_millisecond(), Type::INT8),
            ],
        )?;
    }
    queue_writeback(tx, &item.writeback)?;
    Ok(Recorded::New(timers))
}

pub(super) fn record_item(store: &PgStore, item: &NewItem) -> Result<Recorded, StoreError> {
    store.tx(|tx| insert_item(tx, item))
}

pub(super) fn record_items(
    store: &PgStore,
    items: &[NewItem],
) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
    store.tx(|tx| {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            // A savepoint per item: one that fails leaves nothing behind, the others commit.
            let mut sp = tx.transaction()?;
            match insert_item(&mut sp, item) {
                Ok(r) => {
                    sp.commit()?;
                    out.push(Ok(r));
                }
                // A conflict with a concurrent transaction fails the whole group, so that
                // `tx` retries it (a savepoint cannot cure it).
                Err(e) if super::retryable(&e) => return Err(e),
                Err(e) => {
                    sp.rollback()?;
                    out.push(Err(e));
                }
            }
        }
        Ok(out)
    })
}

pub(super) fn related_items(
    store: &PgStore,
    person_keys: &[String],
    matter: &str,
    since: Timestamp,
    except: &str,
) -> Result<Vec<String>, StoreError> {
    let keys = &person_keys[..person_keys.len().min(MAX_LOOKUP_KEYS)];
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = store.conn()?.query(
        "SELECT item_id, min(received_ms) AS r FROM person_items
         WHERE person_key = ANY($1) AND matter = $2 AND received_ms >= $3 AND item_id <> $4
         GROUP BY item_id ORDER BY r DESC, item_id DESC LIMIT $5",
        &[
            &keys,
            &matter,
            &since.as_millisecond(),
            &except,
            &(MAX_RELATED_ITEMS as i64),
        ],
    )?;
    let mut found = rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    found.reverse();
    Ok(found)
}

pub(super) fn item_state(
    store: &PgStore,
    id: &str,
) -> Result<Option<(Envelope, Option<String>)>, StoreError> {
    let row = store.conn()?.query_opt(
        "SELECT envelope, upstream_version FROM items WHERE id = $1",
        &[&id],
    )?;
    let Some(row) = row else { return Ok(None) };
    let json: String = row.try_get(0)?;
    Ok(Some((serde_json::from_str(&json)?, row.try_get(1)?)))
}

pub(super) fn item_version(store: &PgStore, id: &str) -> Result<Option<String>, StoreError> {
    let row = store
        .conn()?
        .query_opt("SELECT upstream_version FROM items WHERE id = $1", &[&id])?;
    Ok(match row {
        Some(r) => r.try_get(0)?,
        None => None,
    })
}

/// Every id's version in one query.
pub(super) fn item_versions(
    store: &PgStore,
    ids: &[String],
) -> Result<Vec<Option<String>>, StoreError> {
    let rows = store.conn()?.query(
        "SELECT id, upstream_version FROM items WHERE id = ANY($1)",
        &[&ids],
    )?;
    let mut known = std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        known.insert(
            r.try_get::<_, String>(0)?,
            r.try_get::<_, Option<String>>(1)?,
        );
    }
    Ok(ids
        .iter()
        .map(|id| known.get(id).cloned().flatten())
        .collect())
}

pub(super) fn item_envelope(store: &PgStore, id: &str) -> Result<Option<Envelope>, StoreError> {
    let row = store
        .conn()?
        .query_opt("SELECT envelope FROM items WHERE id = $1", &[&id])?;
    let Some(row) = row else { return Ok(None) };
    let json: String = row.try_get(0)?;
    Ok(Some(serde_json::from_str(&json)?))
}

/// Builds the records that announce a supplement from the clocks it stops.
type SupplementRecords<'a> = dyn FnMut(&[Clock]) -> Vec<NewOutbox> + 'a;

/// An upstream update (compare-and-set on the version), and with a supplement its clocks
/// stopped and its records queued, in one transaction. `None`: the version moved.
fn update_item(
    store: &PgStore,
    u: &ItemUpdate,
    mut supplement: Option<(&Supplement, &mut SupplementRecords<'_>)>,
) -> Result<Option<Vec<Timer>>, StoreError> {
    let e = &u.envelope;
    let envelope = serde_json::to_string(e)?;
    store.tx(|tx| {
        // The UPDATE takes the item's row lock: a status event on the item (which locks the
        // row first too) waits, so the clocks read below are the ones this update stops.
        let changed = tx.execute(
            "UPDATE items SET envelope = $2, upstream_version = $3
             WHERE id = $1 AND upstream_version IS NOT DISTINCT FROM $4",
            &[&e.id.as_str(), &envelope, &u.version, &u.expected_version],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        for o in &u.outbox {
            insert_outbox(tx, e.id.as_str(), o, true)?;
        }
        let mut timers = Vec::new();
        if let Some((s, f)) = supplement.as_mut() {
            let rows = tx.query(
                &format!(
                    "SELECT {CLOCK_COLS} FROM sla_clocks WHERE item_id = $1 ORDER BY clock_id"
                ),
                &[&e.id.as_str()],
            )?;
            let mut open = Vec::new();
            for r in &rows {
                let (row, c) = row_to_clock(r)?;
                if s.clocks.contains(&c.clock_id) && c.state != State::Stopped {
                    open.push((row, c));
                }
            }
            let clocks: Vec<Clock> = open.iter().map(|(_, c)| c.clone()).collect();
            let records = f(&clocks);
            for (row, mut c) in open {
                c.state = State::Stopped;
                c.paused_at = None;
                update_clock(tx, row, &c, None)?;
                timers.push(Timer {
                    clock_row: row,
                    at_ms: i64::MIN,
                });
            }
            for o in &records {
                insert_outbox(tx, e.id.as_str(), o, true)?;
            }
        }
        Ok(Some(timers))
    })
}

pub(super) fn record_update(store: &PgStore, u: &ItemUpdate) -> Result<bool, StoreError> {
    Ok(update_item(store, u, None)?.is_some())
}

pub(super) fn record_supplement(
    store: &PgStore,
    u: &ItemUpdate,
    s: &Supplement,
    f: &mut dyn FnMut(&[Clock]) -> Vec<NewOutbox>,
) -> Result<Option<Vec<Timer>>, StoreError> {
    update_item(store, u, Some((s, f)))
}

pub(super) fn record_correction(store: &PgStore, c: &NewCorrection) -> Result<bool, StoreError> {
    let n = store.conn()?.execute(
        "INSERT INTO corrections
             (event_id, item_id, at, actor, from_category, from_lead, category, department)
         SELECT $1::text, i.id, $3::text, $4::text, i.category,
                (SELECT lead FROM routing_decisions d WHERE d.item_id = i.id
                 ORDER BY d.decided_at DESC LIMIT 1),
                $5::text, $6::text
         FROM items i WHERE i.id = $2
         ON CONFLICT DO NOTHING",
        &[
            &c.event_id,
            &c.item_id,
            &c.at.to_string(),
            &c.actor,
            &c.category.map(|x| x.as_str()),
            &c.department,
        ],
    )?;
    Ok(n > 0)
}

pub(super) fn corrections(
    store: &PgStore,
) -> Result<Vec<petitiond_core::routing::corrections::Correction>, StoreError> {
    let rows = store.conn()?.query(
        "SELECT c.event_id, c.item_id, c.at, c.actor, c.from_category, c.from_lead,
                c.category, c.department, i.envelope
         FROM corrections c LEFT JOIN items i ON i.id = c.item_id
         ORDER BY c.recorded_at, c.event_id",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            let envelope: Option<String> = r.try_get(8)?;
            Ok(petitiond_core::routing::corrections::Correction {
                event_id: r.try_get(0)?,
                item_id: r.try_get(1)?,
                at: r.try_get(2)?,
                actor: r.try_get(3)?,
                from_category: r.try_get(4)?,
                from_lead: r.try_get(5)?,
                category: r
                    .try_get::<_, Option<String>>(6)?
                    .and_then(|c| petitiond_core::routing::classify::parse_category(&c)),
                department: r.try_get(7)?,
                envelope: envelope.map(|e| serde_json::from_str(&e)).transpose()?,
            })
        })
        .collect()
}

pub(super) fn cursor(store: &PgStore, source: &str) -> Result<Option<String>, StoreError> {
    let row = store
        .conn()?
        .query_opt("SELECT value FROM cursors WHERE source = $1", &[&source])?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

pub(super) fn set_cursor(store: &PgStore, source: &str, value: &str) -> Result<(), StoreError> {
    store.conn()?.execute(
        "INSERT INTO cursors (source, value) VALUES ($1, $2)
         ON CONFLICT (source) DO UPDATE SET value = excluded.value, updated_at = petitiond_now()",
        &[&source, &value],
    )?;
    Ok(())
}
