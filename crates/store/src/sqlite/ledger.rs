//! The electronic ledger (电子跟踪台账) in SQLite: one pass over `items` in received order
//! (index `items_month`, migrations v12 and v14), each row's routing, re-route, clocks and last
//! events from correlated look-ups on their primary keys or `status_events_item`. Rows go to
//! the caller one at a time.
//!
//! `received_at` is RFC 3339 text in UTC with a varying number of fraction digits, so text
//! order is time order except within one second; the `since` bound is applied exactly, on the
//! parsed instant, after a text pre-filter one second wider.

use super::super::{LedgerClock, LedgerQuery, LedgerRow, StoreError};
use jiff::Timestamp;
use petitiond_core::envelope::Stage;
use rusqlite::Connection;

/// Clocks whose due instant is the item's expected completion, in order of preference.
const COMPLETION_CLOCKS: [&str; 2] = ["statutory.handle", "statutory.accept"];

const SQL: &str = "
SELECT i.id, i.channel, i.category, i.received_at, i.stage,
  (SELECT json_array(d.lead, d.assists) FROM routing_decisions d
    WHERE d.item_id = i.id ORDER BY d.decided_at DESC LIMIT 1),
  (SELECT c.department FROM corrections c
    WHERE c.item_id = i.id AND c.department IS NOT NULL ORDER BY c.at DESC LIMIT 1),
  (SELECT e.person FROM status_events e
    WHERE e.item_id = i.id AND e.person IS NOT NULL ORDER BY e.at DESC LIMIT 1),
  (SELECT json_group_array(json_array(k.clock_id, k.state, k.due_at, k.provisional))
    FROM sla_clocks k WHERE k.item_id = i.id),
  (SELECT json_array(e.event, e.at) FROM status_events e
    WHERE e.item_id = i.id ORDER BY e.at DESC LIMIT 1),
  (SELECT e.verdict FROM status_events e
    WHERE e.item_id = i.id AND e.event = 'replied' ORDER BY e.at DESC LIMIT 1),
  (SELECT e.verdict FROM status_events e
    WHERE e.item_id = i.id AND e.event = 'evaluated' ORDER BY e.at DESC LIMIT 1)
FROM items i
WHERE ?1 IS NULL OR i.received_at >= ?1
ORDER BY i.received_at, i.id";

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("ledger: {what}: {e}"))
}

fn ts(s: &str) -> Result<Timestamp, StoreError> {
    s.parse().map_err(|e| bad("a stored instant", e))
}

pub(super) fn rows(
    conn: &Connection,
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
    let mut st = conn.prepare(SQL)?;
    let mut rs = st.query([pre])?;
    let mut n = 0;
    while let Some(r) = rs.next()? {
        let received_at = ts(&r.get::<_, String>(3)?)?;
        if q.since.is_some_and(|s| received_at < s) {
            continue;
        }
        let routing: Option<String> = r.get(5)?;
        let (mut lead, assists) = match routing {
            Some(j) => {
                let (lead, assists): (String, String) =
                    serde_json::from_str(&j).map_err(|e| bad("routing", e))?;
                let assists: Vec<String> =
                    serde_json::from_str(&assists).map_err(|e| bad("assists", e))?;
                (Some(lead), assists)
            }
            None => (None, vec![]),
        };
        if let Some(rerouted) = r.get::<_, Option<String>>(6)? {
            lead = Some(rerouted);
        }
        if let Some(d) = &q.department
            && lead.as_ref() != Some(d)
            && !assists.contains(d)
        {
            continue;
        }
        let clocks: Vec<(String, String, String, i64)> =
            serde_json::from_str(&r.get::<_, String>(8)?).map_err(|e| bad("clocks", e))?;
        let clocks = clocks
            .into_iter()
            .map(|(clock, state, due, provisional)| {
                Ok(LedgerClock {
                    clock,
                    state,
                    due_at: ts(&due)?,
                    provisional: provisional != 0,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let expected_completion = COMPLETION_CLOCKS
            .iter()
            .find_map(|id| clocks.iter().find(|c| c.clock == *id))
            .map(|c| c.due_at)
            .or_else(|| clocks.iter().map(|c| c.due_at).max());
        let last_event = match r.get::<_, Option<String>>(9)? {
            Some(j) => {
                let (event, at): (String, String) =
                    serde_json::from_str(&j).map_err(|e| bad("last event", e))?;
                Some((event, ts(&at)?))
            }
            None => None,
        };
        let stage: String = r.get(4)?;
        f(LedgerRow {
            item_id: r.get(0)?,
            channel: r.get(1)?,
            category: r.get(2)?,
            received_at,
            stage: Stage::parse(&stage).ok_or_else(|| bad("stage", &stage))?,
            lead,
            assists,
            person: r.get(7)?,
            expected_completion,
            clocks,
            last_event,
            reply: r.get(10)?,
            evaluation: r.get(11)?,
        })?;
        n += 1;
    }
    Ok(n)
}
