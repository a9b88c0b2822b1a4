//! The monthly report's and the key-case list's reads (`Store::report_*`, `key_case_rows`),
//! on the read-only connection, each in one read transaction.
//!
//! Times: `items.received_at` and `status_events.at` are RFC 3339 text in UTC (`Z`) with a
//! varying number of fraction digits, so a range is bounded by whole-second text WITHOUT the
//! `Z` ([`bound`]): `'2026-10-01T00:00:00'` sorts before every instant of that second (it is
//! their prefix) and after every instant of the second before, which makes `>=`/`<` exact for
//! whole-second bounds (month starts are). `person_items` and `sla_clocks` are read by their
//! `*_ms` columns. Indexes (migration v14): `items_month` (received_at, channel, category)
//! covers the month's counts; `status_events_event` (event, at) finds the month's stops and
//! evaluations; `person_items_item` goes from an item to its repeat-index rows;
//! `alerts_escalation` (partial: escalations only) and `items_unreplied` (partial: stage
//! before `replied`) bound the key-case list.

use super::super::StoreError;
use super::super::report::*;
use jiff::Timestamp;
use rusqlite::{Connection, params_from_iter, types::Value};

/// The month's items per (channel, category, lead): `items_month` (covering; the id finds
/// the decision).
const ITEMS_BY_LEAD: &str =
    // One decision per item in practice; the latest if there were more.
    "SELECT i.channel, i.category,
                (SELECT d.lead FROM routing_decisions d WHERE d.item_id = i.id
                 ORDER BY d.decided_at DESC LIMIT 1) AS lead,
                COUNT(*)
         FROM items i WHERE i.received_at >= ?1 AND i.received_at < ?2
         GROUP BY i.channel, i.category, lead";
/// The months' items per (channel, category): `items_month` alone.
const ITEMS: &str = "SELECT channel, category, NULL, COUNT(*) FROM items
         WHERE received_at >= ?1 AND received_at < ?2 GROUP BY channel, category";
/// The repeat-index rows of the month's (person, matter) pairs.
const PERSON_ITEMS: &str = "WITH m AS (
             SELECT DISTINCT p.person_key, p.matter FROM items i
             JOIN person_items p ON p.item_id = i.id
             WHERE i.received_at >= ?2 AND i.received_at < ?3)
         SELECT p.person_key, p.matter, p.item_id, p.received_ms FROM m
         JOIN person_items p ON p.person_key = m.person_key AND p.matter = m.matter
              AND p.received_ms >= ?1 AND p.received_ms < ?4
         ORDER BY p.person_key, p.matter, p.received_ms, p.item_id";
/// Open clocks due before the end: the board's partial index (`state <> 'stopped'` spelled
/// as in its definition, or SQLite does not see that the index holds every row asked for).
const OPEN_CLOCKS: &str = "SELECT item_id, department, started_at, due_at FROM sla_clocks
             WHERE clock_id = ?1 AND state <> 'stopped' AND state <> 'pending' AND due_ms < ?2";
/// The month's evaluations: `status_events_event`; the item's other events from
/// `status_events_item` (the unary `+` keeps the planner off the event index, which would
/// read every evaluation of every item for each row).
const EVALUATIONS: &str = "SELECT e.item_id, e.at, e.verdict,
                (SELECT f.verdict FROM status_events f
                 WHERE f.item_id = e.item_id AND +f.event = 'evaluated'
                 ORDER BY f.at, f.event_id LIMIT 1),
                EXISTS (SELECT 1 FROM status_events b
                        WHERE b.item_id = e.item_id AND +b.event = 'replied'
                          AND b.verdict = 'bounced')
         FROM status_events e
         WHERE e.event = 'evaluated' AND e.at >= ?1 AND e.at < ?2
         ORDER BY e.at, e.event_id";
/// Key-case candidates: `items_unreplied`; escalations from `alerts_escalation` (the kind
/// is a literal: a parameter would not match the partial index's condition).
const KEY_CASES: &str = "SELECT * FROM (
             SELECT i.envelope,
                    (SELECT d.lead FROM routing_decisions d WHERE d.item_id = i.id
                     ORDER BY d.decided_at DESC LIMIT 1) AS lead,
                    (SELECT d.assists FROM routing_decisions d WHERE d.item_id = i.id
                     ORDER BY d.decided_at DESC LIMIT 1) AS assists,
                    EXISTS (SELECT 1 FROM alerts a WHERE a.item_id = i.id AND a.kind = 'escalation') AS esc,
                    (SELECT MIN(o.received_ms) FROM person_items p
                     JOIN person_items o ON o.person_key = p.person_key AND o.matter = p.matter
                     WHERE p.item_id = i.id) AS first_ms,
                    (SELECT c.due_at FROM sla_clocks c WHERE c.item_id = i.id
                     AND c.clock_id = ?5 AND c.state IN ('running', 'paused')) AS deadline,
                    i.received_at, i.category,
                    json_extract(i.envelope, '$.upstream_created_at') AS created
             FROM items i WHERE i.stage_rank < 3)
         WHERE received_at < ?1 OR category = ?3 OR esc
            OR first_ms <= ?2 OR created < ?6
         ORDER BY received_at";

/// Stopped clocks from their stop events (`status_events_event`), each at the item's first
/// stop event (`status_events_item`: the unary `+` keeps the planner off the event index,
/// which with one stop event, an equality, it took, reading every such event for each row:
/// 90 s for 20,000 items in benches/report.rs); `marks`: the stop events' parameters.
fn stopped_clocks(marks: &str) -> String {
    format!(
        "SELECT c.item_id, c.department, c.started_at, c.due_at, e.at
         FROM status_events e
         JOIN sla_clocks c ON c.item_id = e.item_id AND c.clock_id = ?1 AND c.state = 'stopped'
         WHERE e.event IN ({marks}) AND e.at >= ?2
           AND (e.at < ?3 OR c.due_ms < ?4)
           AND (e.verdict IS NULL OR e.verdict <> 'bounced')
           AND e.at = (SELECT MIN(f.at) FROM status_events f
                       WHERE f.item_id = e.item_id AND +f.event IN ({marks})
                         AND (f.verdict IS NULL OR f.verdict <> 'bounced'))
         GROUP BY c.item_id"
    )
}

/// `t` floored to its second, as text without the zone letter (see the module docs).
pub(super) fn bound(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

fn parse_ts(s: &str, col: usize) -> rusqlite::Result<Timestamp> {
    s.parse::<Timestamp>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn ms_ts(ms: i64, col: usize) -> rusqlite::Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Integer, Box::new(e))
    })
}

/// Runs `f` in one read transaction on `conn`.
pub(super) fn snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN")?;
    let result = f(conn);
    let _ = conn.execute_batch("COMMIT");
    result
}

pub(super) fn items(
    conn: &Connection,
    start: Timestamp,
    end: Timestamp,
    by_lead: bool,
) -> Result<Vec<ItemCount>, StoreError> {
    let sql = if by_lead { ITEMS_BY_LEAD } else { ITEMS };
    let mut st = conn.prepare_cached(sql)?;
    let rows = st
        .query_map([bound(start), bound(end)], |r| {
            Ok(ItemCount {
                channel: r.get(0)?,
                category: r.get(1)?,
                lead: r.get(2)?,
                items: r.get::<_, i64>(3)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn person_items(
    conn: &Connection,
    window_start: Timestamp,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<PersonItem>, StoreError> {
    let mut st = conn.prepare_cached(PERSON_ITEMS)?;
    let rows = st
        .query_map(
            rusqlite::params![
                window_start.as_millisecond(),
                bound(start),
                bound(end),
                end.as_millisecond()
            ],
            |r| {
                Ok(PersonItem {
                    person_key: r.get(0)?,
                    matter: r.get(1)?,
                    item_id: r.get(2)?,
                    received_ms: r.get(3)?,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn clocks(
    conn: &Connection,
    clock_id: &str,
    stop_on: &[String],
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<ClockSpan>, StoreError> {
    let mut out = Vec::new();
    // Open now: the board's partial index of open clocks (clock_id, state, due_ms).
    {
        let mut st = conn.prepare_cached(OPEN_CLOCKS)?;
        let rows = st.query_map(rusqlite::params![clock_id, end.as_millisecond()], |r| {
            Ok(ClockSpan {
                item_id: r.get(0)?,
                clock_id: clock_id.to_string(),
                department: r.get(1)?,
                started_at: parse_ts(&r.get::<_, String>(2)?, 2)?,
                due_at: parse_ts(&r.get::<_, String>(3)?, 3)?,
                stopped_at: None,
            })
        })?;
        for r in rows {
            let c = r?;
            if c.started_at < end {
                out.push(c);
            }
        }
    }
    if stop_on.is_empty() {
        return Ok(out);
    }
    // Stopped: from the stop events at or after `start` (status_events_event), each the
    // item's first stop event (the MIN over its events, status_events_item).
    let marks = (5..5 + stop_on.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = stopped_clocks(&marks);
    let mut args: Vec<Value> = vec![
        Value::Text(clock_id.to_string()),
        Value::Text(bound(start)),
        Value::Text(bound(end)),
        Value::Integer(end.as_millisecond()),
    ];
    // ?5.. : the stop events (the subquery names the same parameters).
    args.extend(stop_on.iter().map(|s| Value::Text(s.clone())));
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(args), |r| {
        Ok(ClockSpan {
            item_id: r.get(0)?,
            clock_id: clock_id.to_string(),
            department: r.get(1)?,
            started_at: parse_ts(&r.get::<_, String>(2)?, 2)?,
            due_at: parse_ts(&r.get::<_, String>(3)?, 3)?,
            stopped_at: Some(parse_ts(&r.get::<_, String>(4)?, 4)?),
        })
    })?;
    for r in rows {
        out.push(r?);
    }
    Ok(out)
}

pub(super) fn evaluations(
    conn: &Connection,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<Evaluation>, StoreError> {
    let mut st = conn.prepare_cached(EVALUATIONS)?;
    let rows = st
        .query_map([bound(start), bound(end)], |r| {
            Ok(Evaluation {
                item_id: r.get(0)?,
                at: parse_ts(&r.get::<_, String>(1)?, 1)?,
                verdict: r.get(2)?,
                first_verdict: r.get(3)?,
                bounced: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn key_cases(
    conn: &Connection,
    q: &KeyCaseQuery,
) -> Result<Vec<KeyCaseRow>, StoreError> {
    // The prefilter is a superset at whole seconds (`bound` of the next second); figures
    // decides exactly on the parsed instants.
    let received_by = bound(q.received_by + jiff::SignedDuration::from_secs(1));
    let matter_by_ms = q.matter_by.as_millisecond();
    let created_by = bound(q.matter_by + jiff::SignedDuration::from_secs(1));
    let mut st = conn.prepare_cached(KEY_CASES)?;
    let rows = st
        .query_map(
            rusqlite::params![
                received_by,
                matter_by_ms,
                q.key_category,
                rusqlite::types::Null,
                q.deadline_clock,
                created_by
            ],
            |r| {
                let envelope: String = r.get(0)?;
                let assists: Option<String> = r.get(2)?;
                Ok((
                    envelope,
                    r.get::<_, Option<String>>(1)?,
                    assists,
                    r.get::<_, bool>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (envelope, lead, assists, esc, first_ms, deadline) in rows {
        out.push(KeyCaseRow {
            envelope: serde_json::from_str(&envelope)?,
            lead,
            assists: assists
                .map(|a| serde_json::from_str(&a))
                .transpose()?
                .unwrap_or_default(),
            escalation_alert: esc,
            first_on_matter: first_ms.map(|m| ms_ts(m, 4)).transpose()?,
            deadline: deadline.map(|d| parse_ts(&d, 5)).transpose()?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = st.parameter_count();
        let rows: Vec<String> = st
            .query_map(params_from_iter(std::iter::repeat_n(Value::Null, n)), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.join("\n")
    }

    /// Every report query reads an index range (migration v14's indexes, the board's), never
    /// a scan of items, status events or the repeat index: the benchmark's 1,000,000 items.
    #[test]
    fn report_queries_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        drop(super::super::SqliteStore::open(&path, std::time::Duration::from_secs(1)).unwrap());
        let conn = Connection::open(&path).unwrap();
        let no_scan = |sql: &str, want: &[&str]| {
            let p = plan(&conn, sql);
            for w in want {
                assert!(p.contains(w), "{w} not in the plan of {sql}:\n{p}");
            }
            // A scan is of an index (a partial one, or a covering range), or of the month's
            // (person, matter) pairs or a subquery's rows: never of a whole table.
            for line in p.lines().filter(|l| l.contains("SCAN ")) {
                assert!(
                    line.contains("USING") || line.contains("SCAN m") || line.contains("subquery"),
                    "{line} in the plan of {sql}:\n{p}"
                );
            }
        };
        no_scan(ITEMS, &["items_month"]);
        no_scan(ITEMS_BY_LEAD, &["items_month"]);
        no_scan(
            PERSON_ITEMS,
            &["items_month", "person_items_item", "person_items_matter"],
        );
        no_scan(OPEN_CLOCKS, &["sla_clocks_board_clock"]);
        for marks in ["?5", "?5, ?6"] {
            no_scan(
                &stopped_clocks(marks),
                &["status_events_event", "status_events_item"],
            );
        }
        no_scan(EVALUATIONS, &["status_events_event", "status_events_item"]);
        no_scan(
            KEY_CASES,
            &["items_unreplied", "alerts_escalation", "person_items_item"],
        );
    }
}
