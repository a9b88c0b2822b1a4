//! The monthly report's and the key-case list's reads in PostgreSQL (`Store::report_*`,
//! `key_case_rows`), ported from `sqlite/report.rs`: each call reads one snapshot
//! (`board::snapshot`), so a report never holds up intake.
//!
//! Times as in SQLite: `items.received_at` and `status_events.at` are RFC 3339 text in UTC,
//! bounded by whole-second text without the zone letter ([`bound`]), which is exact for
//! whole-second bounds; `person_items` and `sla_clocks` are read by their `*_ms` columns. The
//! indexes are SQLite's (`items_month`, `status_events_event`, `person_items_item`,
//! `alerts_escalation`, `items_unreplied`, the board's).

use super::board::snapshot;
use super::*;
use crate::report::{ClockSpan, Evaluation, ItemCount, KeyCaseQuery, KeyCaseRow, PersonItem};

/// The month's items per (channel, category, lead); one decision per item in practice, the
/// latest if there were more.
const ITEMS_BY_LEAD: &str = "SELECT i.channel, i.category,
        (SELECT d.lead FROM routing_decisions d WHERE d.item_id = i.id
         ORDER BY d.decided_at DESC LIMIT 1) AS lead,
        COUNT(*)
    FROM items i WHERE i.received_at >= $1 AND i.received_at < $2
    GROUP BY 1, 2, 3";
/// The month's items per (channel, category).
const ITEMS: &str = "SELECT channel, category, NULL::text, COUNT(*) FROM items
    WHERE received_at >= $1 AND received_at < $2 GROUP BY 1, 2";
/// The repeat-index rows of the month's (person, matter) pairs.
const PERSON_ITEMS: &str = "WITH m AS (
        SELECT DISTINCT p.person_key, p.matter FROM items i
        JOIN person_items p ON p.item_id = i.id
        WHERE i.received_at >= $2 AND i.received_at < $3)
    SELECT p.person_key, p.matter, p.item_id, p.received_ms FROM m
    JOIN person_items p ON p.person_key = m.person_key AND p.matter = m.matter
         AND p.received_ms >= $1 AND p.received_ms < $4";
/// Open clocks due before the end (the board's partial index).
const OPEN_CLOCKS: &str = "SELECT item_id, department, started_at, due_at FROM sla_clocks
    WHERE clock_id = $1 AND state <> 'stopped' AND state <> 'pending' AND due_ms < $2";
/// Stopped clocks from their stop events (`$5`: the stop events), each at the item's first
/// stop event that is not a bounced reply.
const STOPPED_CLOCKS: &str = "SELECT DISTINCT ON (c.item_id)
        c.item_id, c.department, c.started_at, c.due_at, e.at
    FROM status_events e
    JOIN sla_clocks c ON c.item_id = e.item_id AND c.clock_id = $1 AND c.state = 'stopped'
    WHERE e.event = ANY($5) AND e.at >= $2
      AND (e.at < $3 OR c.due_ms < $4)
      AND (e.verdict IS NULL OR e.verdict <> 'bounced')
      AND e.at = (SELECT MIN(f.at) FROM status_events f
                  WHERE f.item_id = e.item_id AND f.event = ANY($5)
                    AND (f.verdict IS NULL OR f.verdict <> 'bounced'))
    ORDER BY c.item_id";
/// The month's evaluations, with the item's first evaluation and whether a reply bounced
/// (ordered by instant and event id in Rust).
const EVALUATIONS: &str = "SELECT e.item_id, e.at, e.verdict,
        (SELECT f.verdict FROM status_events f
         WHERE f.item_id = e.item_id AND f.event = 'evaluated'
         ORDER BY f.at, f.event_id LIMIT 1),
        EXISTS (SELECT 1 FROM status_events b
                WHERE b.item_id = e.item_id AND b.event = 'replied'
                  AND b.verdict = 'bounced'),
        e.event_id
    FROM status_events e
    WHERE e.event = 'evaluated' AND e.at >= $1 AND e.at < $2";
/// Key-case candidates among the items not yet replied (`items_unreplied`); escalations from
/// `alerts_escalation` (the kind a literal, as in the partial index's condition).
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
                AND c.clock_id = $4 AND c.state IN ('running', 'paused')) AS deadline,
               i.received_at, i.category,
               i.envelope::jsonb ->> 'upstream_created_at' AS created
        FROM items i WHERE i.stage_rank < 3) k
    WHERE received_at < $1 OR category = $3 OR esc OR first_ms <= $2 OR created < $5";

/// `t` floored to its second, as text without the zone letter (see the module docs).
fn bound(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

fn parse_ts(s: &str) -> Result<Timestamp, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("report: stored instant {s:?}: {e}")))
}

pub(super) fn items(
    store: &PgStore,
    start: Timestamp,
    end: Timestamp,
    by_lead: bool,
) -> Result<Vec<ItemCount>, StoreError> {
    let sql = if by_lead { ITEMS_BY_LEAD } else { ITEMS };
    snapshot(store, |tx| {
        tx.query(sql, &[&bound(start), &bound(end)])?
            .iter()
            .map(|r| {
                Ok(ItemCount {
                    channel: r.try_get(0)?,
                    category: r.try_get(1)?,
                    lead: r.try_get(2)?,
                    items: r.try_get::<_, i64>(3)?.max(0) as u64,
                })
            })
            .collect()
    })
}

pub(super) fn person_items(
    store: &PgStore,
    window_start: Timestamp,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<PersonItem>, StoreError> {
    snapshot(store, |tx| {
        let mut rows = tx
            .query(
                PERSON_ITEMS,
                &[
                    &window_start.as_millisecond(),
                    &bound(start),
                    &bound(end),
                    &end.as_millisecond(),
                ],
            )?
            .iter()
            .map(|r| {
                Ok(PersonItem {
                    person_key: r.try_get(0)?,
                    matter: r.try_get(1)?,
                    item_id: r.try_get(2)?,
                    received_ms: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Rust's (byte) order whatever the database's collation.
        rows.sort_by(|a, b| {
            (&a.person_key, &a.matter, a.received_ms, &a.item_id).cmp(&(
                &b.person_key,
                &b.matter,
                b.received_ms,
                &b.item_id,
            ))
        });
        Ok(rows)
    })
}

pub(super) fn clocks(
    store: &PgStore,
    clock_id: &str,
    stop_on: &[String],
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<ClockSpan>, StoreError> {
    let span = |r: &::postgres::Row, stopped: bool| -> Result<ClockSpan, StoreError> {
        Ok(ClockSpan {
            item_id: r.try_get(0)?,
            clock_id: clock_id.to_string(),
            department: r.try_get(1)?,
            started_at: parse_ts(r.try_get(2)?)?,
            due_at: parse_ts(r.try_get(3)?)?,
            stopped_at: if stopped {
                Some(parse_ts(r.try_get(4)?)?)
            } else {
                None
            },
        })
    };
    snapshot(store, |tx| {
        let mut out = Vec::new();
        for r in tx.query(OPEN_CLOCKS, &[&clock_id, &end.as_millisecond()])? {
            let c = span(&r, false)?;
            if c.started_at < end {
                out.push(c);
            }
        }
        if stop_on.is_empty() {
            return Ok(out);
        }
        let rows = tx.query(
            STOPPED_CLOCKS,
            &[
                &clock_id,
                &bound(start),
                &bound(end),
                &end.as_millisecond(),
                &stop_on,
            ],
        )?;
        for r in &rows {
            out.push(span(r, true)?);
        }
        Ok(out)
    })
}

pub(super) fn evaluations(
    store: &PgStore,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<Evaluation>, StoreError> {
    snapshot(store, |tx| {
        let mut rows = tx
            .query(EVALUATIONS, &[&bound(start), &bound(end)])?
            .iter()
            .map(|r| {
                let at: &str = r.try_get(1)?;
                Ok((
                    r.try_get::<_, String>(5)?,
                    Evaluation {
                        item_id: r.try_get(0)?,
                        at: parse_ts(at)?,
                        verdict: r.try_get(2)?,
                        first_verdict: r.try_get(3)?,
                        bounced: r.try_get(4)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.sort_by(|a, b| (a.1.at, &a.0).cmp(&(b.1.at, &b.0)));
        Ok(rows.into_iter().map(|(_, e)| e).collect())
    })
}

pub(super) fn key_cases(store: &PgStore, q: &KeyCaseQuery) -> Result<Vec<KeyCaseRow>, StoreError> {
    // The prefilter is a superset at whole seconds (`bound` of the next second); figures
    // decides exactly on the parsed instants.
    let received_by = bound(q.received_by + jiff::SignedDuration::from_secs(1));
    let matter_by_ms = q.matter_by.as_millisecond();
    let created_by = bound(q.matter_by + jiff::SignedDuration::from_secs(1));
    snapshot(store, |tx| {
        let rows = tx.query(
            KEY_CASES,
            &[
                &received_by,
                &matter_by_ms,
                &q.key_category,
                &q.deadline_clock,
                &created_by,
            ],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let envelope: &str = r.try_get(0)?;
            let assists: Option<&str> = r.try_get(2)?;
            let first_ms: Option<i64> = r.try_get(4)?;
            let deadline: Option<&str> = r.try_get(5)?;
            out.push((
                parse_ts(r.try_get(6)?)?,
                KeyCaseRow {
                    envelope: serde_json::from_str(envelope)?,
                    lead: r.try_get(1)?,
                    assists: assists
                        .map(serde_json::from_str)
                        .transpose()?
                        .unwrap_or_default(),
                    escalation_alert: r.try_get(3)?,
                    first_on_matter: first_ms
                        .map(|m| {
                            Timestamp::from_millisecond(m).map_err(|e| {
                                StoreError::Corrupt(format!("report: received_ms {m}: {e}"))
                            })
                        })
                        .transpose()?,
                    deadline: deadline.map(parse_ts).transpose()?,
                },
            ));
        }
        // Oldest first, by instant (text order is not time order within one second).
        out.sort_by_key(|(received, _)| *received);
        Ok(out.into_iter().map(|(_, k)| k).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::super::board::plan;
    use super::*;
    use ::postgres::types::ToSql;

    /// On four years of items, most of them replied (as they become), each report query reads
    /// index ranges (`items_month`, `status_events_event`, `status_events_item`,
    /// `person_items_item`, `items_unreplied`), never a sequential scan of a large table.
    #[test]
    fn report_queries_use_their_indexes() {
        let Some(b) = crate::testing::postgres_store() else {
            return;
        };
        let s = b.postgres().unwrap();
        b.execute(
            "INSERT INTO items (id, channel, upstream_id, source, received_at, stage, envelope,
                 stage_rank, category)
             SELECT 'i' || n, 'hotline', 'u' || n, 's',
                    to_char(timestamp '2022-01-01' + n * interval '30 minutes',
                            'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    'replied', '{}', CASE WHEN n % 50 = 0 THEN 1 ELSE 4 END, 'rights'
             FROM generate_series(1, 80000) n",
        );
        b.execute(
            "INSERT INTO routing_decisions (item_id, rule_id, rules_version, lead, assists, decided_at)
             SELECT id, 'r', 'v', 'desk', '[]', received_at FROM items",
        );
        b.execute(
            "INSERT INTO status_events (event_id, item_id, event, at, verdict)
             SELECT 'e' || n || '-' || k, 'i' || n,
                    (ARRAY['accepted', 'replied', 'evaluated', 'viewed'])[k],
                    to_char(timestamp '2022-01-02' + n * interval '30 minutes',
                            'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'ok'
             FROM generate_series(1, 80000) n, generate_series(1, 4) k",
        );
        b.execute(
            "INSERT INTO person_items (person_key, item_id, matter, received_ms)
             SELECT 'p' || (n % 30000), 'i' || n, 'm', n::bigint * 1800000 FROM generate_series(1, 80000) n",
        );
        b.execute("ALTER TABLE sla_clocks DROP CONSTRAINT sla_clocks_item_id_fkey");
        b.execute(
            "INSERT INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at, due_ms)
             SELECT 'i' || n, 'statutory.accept', 'desk',
                    CASE WHEN n % 50 = 0 THEN 'running' ELSE 'stopped' END, 'x', 'x', n
             FROM generate_series(1, 80000) n",
        );
        b.execute("VACUUM ANALYZE");
        let (start, end) = (
            "2026-10-01T00:00:00".to_string(),
            "2026-11-01T00:00:00".to_string(),
        );
        let (ms, clock) = (1_000_000i64, "statutory.accept".to_string());
        let (window_ms, end_ms) = (0i64, 150_000_000_000i64);
        let stop_on = vec!["accepted".to_string()];
        let no_scan = |name: &str, sql: &str, p: &[&(dyn ToSql + Sync)], want: &[&str]| {
            let got = plan(s, sql, p);
            for w in want {
                assert!(got.contains(w), "{w} not in the plan of {name}:\n{got}");
            }
            for t in ["items ", "status_events ", "person_items ", "sla_clocks "] {
                assert!(
                    !got.contains(&format!("Seq Scan on {t}")),
                    "{name} scans {t}:\n{got}"
                );
            }
        };
        no_scan("items", ITEMS, &[&start, &end], &["items_month"]);
        no_scan(
            "items by lead",
            ITEMS_BY_LEAD,
            &[&start, &end],
            &["items_month"],
        );
        no_scan(
            "person items",
            PERSON_ITEMS,
            &[&window_ms, &start, &end, &end_ms],
            &["items_month", "person_items"],
        );
        no_scan(
            "stopped clocks",
            STOPPED_CLOCKS,
            &[&clock, &start, &end, &ms, &stop_on],
            &["status_events_event", "status_events_item"],
        );
        no_scan(
            "evaluations",
            EVALUATIONS,
            &[&start, &end],
            &["status_events_event", "status_events_item"],
        );
        let category = "historical".to_string();
        no_scan(
            "key cases",
            KEY_CASES,
            &[&start, &ms, &category, &clock, &start],
            &["items_unreplied"],
        );
    }
}
