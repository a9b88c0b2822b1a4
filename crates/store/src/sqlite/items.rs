//! Items: recording a new item with everything that comes with it (decision, review entry,
//! outbox rows, clocks, person index, write-backs) in one transaction, upstream updates and
//! supplements, the repeat-petition look-up, channel cursors and the intake desk's corrections.

use super::clocks::{CLOCK_COLS, insert_clock, row_to_clock, update_clock};
use super::*;

/// Writes one item's rows (the item, its routing decision, review entry, outbox rows, clocks,
/// person index, write-backs) inside `tx`; nothing when its id is already known.
pub(super) fn insert_item(
    tx: &rusqlite::Connection,
    item: &NewItem,
) -> Result<Recorded, StoreError> {
    let e = &item.envelope;
    let envelope = serde_json::to_string(e)?;
    let inserted = tx.prepare_cached("INSERT OR IGNORE INTO items (id, channel, upstream_id, source, received_at, category, stage, envelope, upstream_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?.execute(
            params![
                e.id.as_str(),
                e.channel.as_str(),
                e.upstream.id,
                e.upstream.source,
                e.received_at.to_string(),
                e.category.map(|c| c.as_str()),
                serde_json::to_value(e.stage)?.as_str().unwrap_or("received"),
                envelope,
                item.version,
            ],
        )?;
    if inserted == 0 {
        return Ok(Recorded::Duplicate);
    }
    let d = &item.decision;
    let classification = e
        .routing
        .as_ref()
        .and_then(|r| r.classification.as_ref())
        .map(serde_json::to_string)
        .transpose()?;
    tx.prepare_cached("INSERT INTO routing_decisions (item_id, rule_id, rules_version, lead, assists, decided_at, classification)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(
            params![
                e.id.as_str(),
                d.rule_id,
                d.rules_version,
                d.lead,
                serde_json::to_string(&d.assists)?,
                d.decided_at.to_string(),
                classification
            ],
        )?;
    if let Some(c) = e
        .routing
        .as_ref()
        .and_then(|r| r.classification.as_ref())
        .filter(|c| c.needs_review)
    {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO review_queue (item_id, lead, decided_ms, classification)
                 VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            e.id.as_str(),
            d.lead,
            d.decided_at.as_millisecond(),
            serde_json::to_string(c)?
        ])?;
    }
    for o in &item.outbox {
        tx.prepare_cached("INSERT INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(
                params![e.id.as_str(), o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload],
            )?;
    }
    let mut timers = Vec::new();
    for (c, next) in &item.clocks {
        timers.push(insert_clock(tx, c, *next)?);
    }
    if let Some(p) = &item.person_index {
        let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO person_items (person_key, item_id, matter, received_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
        for k in &p.person_keys {
            st.execute(params![
                k,
                e.id.as_str(),
                p.matter,
                e.received_at.as_millisecond()
            ])?;
        }
    }
    writeback::queue(tx, &item.writeback)?;
    Ok(Recorded::New(timers.into_iter().flatten().collect()))
}

impl SqliteStore {
    /// An upstream update (compare-and-set on the version), and with a supplement its clocks
    /// stopped and its records queued, in one transaction. `None`: the version moved.
    pub(super) fn update_item(
        &self,
        u: &ItemUpdate,
        supplement: Option<(&Supplement, &mut SupplementRecords<'_>)>,
    ) -> Result<Option<Vec<Timer>>, StoreError> {
        let e = &u.envelope;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE items SET envelope = ?2, upstream_version = ?3
             WHERE id = ?1 AND upstream_version IS ?4",
            params![
                e.id.as_str(),
                serde_json::to_string(e)?,
                u.version,
                u.expected_version
            ],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        let insert = |o: &NewOutbox| -> Result<(), StoreError> {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![e.id.as_str(), o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload])?;
            Ok(())
        };
        for o in &u.outbox {
            insert(o)?;
        }
        let mut timers = Vec::new();
        if let Some((s, f)) = supplement {
            let open: Vec<(i64, Clock)> = tx
                .prepare_cached(&format!(
                    "SELECT {CLOCK_COLS} FROM sla_clocks WHERE item_id = ?1"
                ))?
                .query_map([e.id.as_str()], row_to_clock)?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|(_, c)| s.clocks.contains(&c.clock_id) && c.state != State::Stopped)
                .collect();
            let clocks: Vec<Clock> = open.iter().map(|(_, c)| c.clone()).collect();
            let records = f(&clocks);
            for (row, mut c) in open {
                c.state = State::Stopped;
                c.paused_at = None;
                update_clock(&tx, row, &c, None)?;
                timers.push(Timer {
                    clock_row: row,
                    at_ms: i64::MIN,
                });
            }
            for o in &records {
                insert(o)?;
            }
        }
        tx.commit()?;
        Ok(Some(timers))
    }
}

pub(super) fn record_item(store: &SqliteStore, item: &NewItem) -> Result<Recorded, StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let recorded = insert_item(&tx, item)?;
    tx.commit()?;
    Ok(recorded)
}

pub(super) fn record_items(
    store: &SqliteStore,
    items: &[NewItem],
) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
    let mut conn = store.conn();
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        // A savepoint per item: one that fails leaves nothing behind, the others commit.
        let mut sp = tx.savepoint()?;
        match insert_item(&sp, item) {
            Ok(r) => {
                sp.commit()?;
                out.push(Ok(r));
            }
            Err(e) => {
                sp.rollback()?;
                drop(sp);
                out.push(Err(e));
            }
        }
    }
    tx.commit()?;
    Ok(out)
}

pub(super) fn related_items(
    store: &SqliteStore,
    person_keys: &[String],
    matter: &str,
    since: Timestamp,
    except: &str,
) -> Result<Vec<String>, StoreError> {
    // One statement over a bounded set of keys, distinct items by SQL, newest first with a
    // LIMIT: the cost no longer grows with keys × rows (it was a query per key and a
    // linear search per row found).
    let keys = &person_keys[..person_keys.len().min(MAX_LOOKUP_KEYS)];
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; keys.len()].join(", ");
    let conn = store.conn();
    let mut st = conn.prepare_cached(&format!(
        "SELECT item_id, min(received_ms) AS r FROM person_items
         WHERE person_key IN ({marks}) AND matter = ? AND received_ms >= ? AND item_id <> ?
         GROUP BY item_id ORDER BY r DESC, item_id DESC LIMIT ?"
    ))?;
    let mut args: Vec<&dyn rusqlite::ToSql> = keys.iter().map(|k| k as _).collect();
    let (since_ms, limit) = (since.as_millisecond(), MAX_RELATED_ITEMS as i64);
    args.extend([&matter as &dyn rusqlite::ToSql, &since_ms, &except, &limit]);
    let mut found = st
        .query_map(args.as_slice(), |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    found.reverse();
    Ok(found)
}

pub(super) fn item_state(
    store: &SqliteStore,
    id: &str,
) -> Result<Option<(Envelope, Option<String>)>, StoreError> {
    Ok(item_states(store, std::slice::from_ref(&id.to_string()))?.remove(0))
}

/// Every id's envelope and version under one lock, through one prepared statement, on the
/// look-ups' connection.
pub(super) fn item_states(
    store: &SqliteStore,
    ids: &[String],
) -> Result<Vec<Option<ItemState>>, StoreError> {
    let conn = store.lookup();
    let mut st =
        conn.prepare_cached("SELECT envelope, upstream_version FROM items WHERE id = ?1")?;
    ids.iter()
        .map(|id| {
            let row: Option<(String, Option<String>)> = st
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(match row {
                Some((j, v)) => Some((serde_json::from_str(&j)?, v)),
                None => None,
            })
        })
        .collect()
}

pub(super) fn item_version(store: &SqliteStore, id: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .conn()
        .prepare_cached("SELECT upstream_version FROM items WHERE id = ?1")?
        .query_row([id], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// Every id's version under one lock, through one prepared statement, on the look-ups'
/// connection.
pub(super) fn item_versions(
    store: &SqliteStore,
    ids: &[String],
) -> Result<Vec<Option<String>>, StoreError> {
    let conn = store.lookup();
    let mut st = conn.prepare_cached("SELECT upstream_version FROM items WHERE id = ?1")?;
    ids.iter()
        .map(|id| {
            Ok(st
                .query_row([id], |r| r.get::<_, Option<String>>(0))
                .optional()?
                .flatten())
        })
        .collect()
}

pub(super) fn record_update(store: &SqliteStore, u: &ItemUpdate) -> Result<bool, StoreError> {
    Ok(store.update_item(u, None)?.is_some())
}

pub(super) fn record_supplement(
    store: &SqliteStore,
    u: &ItemUpdate,
    s: &Supplement,
    f: &mut dyn FnMut(&[Clock]) -> Vec<NewOutbox>,
) -> Result<Option<Vec<Timer>>, StoreError> {
    store.update_item(u, Some((s, f)))
}

pub(super) fn item_envelope(store: &SqliteStore, id: &str) -> Result<Option<Envelope>, StoreError> {
    let json: Option<String> = store
        .conn()
        .query_row("SELECT envelope FROM items WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(match json {
        Some(j) => Some(serde_json::from_str(&j)?),
        None => None,
    })
}

pub(super) fn record_correction(
    store: &SqliteStore,
    c: &NewCorrection,
) -> Result<bool, StoreError> {
    let conn = store.conn();
    let n = conn.execute(
        "INSERT OR IGNORE INTO corrections
             (event_id, item_id, at, actor, from_category, from_lead, category, department)
         SELECT ?1, i.id, ?3, ?4, i.category,
                (SELECT lead FROM routing_decisions d WHERE d.item_id = i.id
                 ORDER BY d.decided_at DESC LIMIT 1),
                ?5, ?6
         FROM items i WHERE i.id = ?2",
        params![
            c.event_id,
            c.item_id,
            c.at.to_string(),
            c.actor,
            c.category.map(|x| x.as_str()),
            c.department
        ],
    )?;
    Ok(n > 0)
}

pub(super) fn corrections(
    store: &SqliteStore,
) -> Result<Vec<petitiond_core::routing::corrections::Correction>, StoreError> {
    let conn = store.conn();
    let mut st = conn.prepare(
        "SELECT c.event_id, c.item_id, c.at, c.actor, c.from_category, c.from_lead,
                c.category, c.department, i.envelope
         FROM corrections c LEFT JOIN items i ON i.id = c.item_id
         ORDER BY c.recorded_at, c.event_id",
    )?;
    let rows = st
        .query_map([], |r| {
            Ok((
                petitiond_core::routing::corrections::Correction {
                    event_id: r.get(0)?,
                    item_id: r.get(1)?,
                    at: r.get(2)?,
                    actor: r.get(3)?,
                    from_category: r.get(4)?,
                    from_lead: r.get(5)?,
                    category: r
                        .get::<_, Option<String>>(6)?
                        .and_then(|c| petitiond_core::routing::classify::parse_category(&c)),
                    department: r.get(7)?,
                    envelope: None,
                },
                r.get::<_, Option<String>>(8)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(mut c, env)| {
            c.envelope = env.map(|e| serde_json::from_str(&e)).transpose()?;
            Ok(c)
        })
        .collect()
}

pub(super) fn cursor(store: &SqliteStore, source: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .conn()
        .query_row(
            "SELECT value FROM cursors WHERE source = ?1",
            [source],
            |r| r.get(0),
        )
        .optional()?)
}

pub(super) fn set_cursor(store: &SqliteStore, source: &str, value: &str) -> Result<(), StoreError> {
    store.conn().execute(
        "INSERT INTO cursors (source, value) VALUES (?1, ?2)
         ON CONFLICT (source) DO UPDATE SET value = excluded.value, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
        params![source, value],
    )?;
    Ok(())
}
