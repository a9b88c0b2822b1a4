//! The electronic ledger (电子跟踪台账) in PostgreSQL, ported from `sqlite/ledger.rs`: one pass
//! over `items` in received order (`items_month`), each row's routing, re-route, clocks and
//! last events from look-ups on their keys or `status_events_item`. Read in one snapshot
//! (`board::snapshot`) through a portal, [`BATCH`] rows at a time: a million items never sit in
//! memory, on the server's side of the socket either.
//!
//! `received_at` is RFC 3339 text with a varying number of fraction digits, so text order is
//! time order except within one second; the `since` bound is applied exactly, on the parsed
//! instant, after a text pre-filter one second wider (as in SQLite).

use super::board::snapshot;
use super::*;
use petitiond_core::envelope::Stage;

/// Clocks whose due instant is the item's expected completion, in order of preference.
const COMPLETION_CLOCKS: [&str; 2] = ["statutory.handle", "statutory.accept"];

/// Rows fetched from the portal at a time.
const BATCH: i32 = 500;

const SQL: &str = "
SELECT i.id, i.channel, i.category, i.received_at, i.stage, d.lead, d.assists,
  (SELECT c.department FROM corrections c
    WHERE c.item_id = i.id AND c.department IS NOT NULL ORDER BY c.at DESC LIMIT 1),
  (SELECT e.person FROM status_events e
    WHERE e.item_id = i.id AND e.person IS NOT NULL ORDER BY e.at DESC LIMIT 1),
  (SELECT json_agg(json_build_array(k.clock_id, k.state, k.due_at, k.provisional)
                   ORDER BY k.clock_id)::text
    FROM sla_clocks k WHERE k.item_id = i.id),
  l.event, l.at,
  (SELECT e.verdict FROM status_events e
    WHERE e.item_id = i.id AND e.event = 'replied' ORDER BY e.at DESC LIMIT 1),
  (SELECT e.verdict FROM status_events e
    WHERE e.item_id = i.id AND e.event = 'evaluated' ORDER BY e.at DESC LIMIT 1)
FROM items i
LEFT JOIN LATERAL (SELECT r.lead, r.assists FROM routing_decisions r
    WHERE r.item_id = i.id ORDER BY r.decided_at DESC LIMIT 1) d ON TRUE
LEFT JOIN LATERAL (SELECT e.event, e.at FROM status_events e
    WHERE e.item_id = i.id ORDER BY e.at DESC LIMIT 1) l ON TRUE
WHERE $1::text IS NULL OR i.received_at >= $1
ORDER BY i.received_at, i.id";

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("ledger: {what}: {e}"))
}

fn ts(s: &str) -> Result<Timestamp, StoreError> {
    s.parse().map_err(|e| bad("a stored instant", e))
}

pub(super) fn ledger(
    store: &PgStore,
    q: &LedgerQuery,
    f: &mut dyn FnMut(LedgerRow) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let pre = q
        .since
        .map(|t| {
            t.saturating_sub(jiff::SignedDuration::from_secs(1))
                .map(|t| t.to_string())
        })
        .transpose()
        .map_err(|e| bad("the since bound", e))?;
    snapshot(store, |tx| {
        let portal = tx.bind(SQL, &[&pre])?;
        let mut n = 0;
        loop {
            let rows = tx.query_portal(&portal, BATCH)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                if let Some(row) = ledger_row(r, q)? {
                    f(row)?;
                    n += 1;
                }
            }
        }
        Ok(n)
    })
}

/// One item's ledger row; `None` when the query's exact bounds leave it out.
fn ledger_row(r: &::postgres::Row, q: &LedgerQuery) -> Result<Option<LedgerRow>, StoreError> {
    let received_at = ts(r.try_get(3)?)?;
    if q.since.is_some_and(|s| received_at < s) {
        return Ok(None);
    }
    let mut lead: Option<String> = r.try_get(5)?;
    let assists: Vec<String> = match r.try_get::<_, Option<&str>>(6)? {
        Some(a) => serde_json::from_str(a).map_err(|e| bad("assists", e))?,
        None => vec![],
    };
    if let Some(rerouted) = r.try_get::<_, Option<String>>(7)? {
        lead = Some(rerouted);
    }
    if let Some(d) = &q.department
        && lead.as_ref() != Some(d)
        && !assists.contains(d)
    {
        return Ok(None);
    }
    let clocks: Vec<(String, String, String, bool)> = match r.try_get::<_, Option<&str>>(9)? {
        Some(j) => serde_json::from_str(j).map_err(|e| bad("clocks", e))?,
        None => vec![],
    };
    let clocks = clocks
        .into_iter()
        .map(|(clock, state, due, provisional)| {
            Ok(LedgerClock {
                clock,
                state,
                due_at: ts(&due)?,
                provisional,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let expected_completion = COMPLETION_CLOCKS
        .iter()
        .find_map(|id| clocks.iter().find(|c| c.clock == *id))
        .map(|c| c.due_at)
        .or_else(|| clocks.iter().map(|c| c.due_at).max());
    let last_event = match (
        r.try_get::<_, Option<String>>(10)?,
        r.try_get::<_, Option<&str>>(11)?,
    ) {
        (Some(event), Some(at)) => Some((event, ts(at)?)),
        _ => None,
    };
    let stage: &str = r.try_get(4)?;
    Ok(Some(LedgerRow {
        item_id: r.try_get(0)?,
        channel: r.try_get(1)?,
        category: r.try_get(2)?,
        received_at,
        stage: Stage::parse(stage).ok_or_else(|| bad("stage", stage))?,
        lead,
        assists,
        person: r.try_get(8)?,
        expected_completion,
        clocks,
        last_event,
        reply: r.try_get(12)?,
        evaluation: r.try_get(13)?,
    }))
}
