//! The SLA board and the summary in PostgreSQL, ported from `sqlite/board.rs`: each call reads
//! one snapshot ([`snapshot`]: a read-only REPEATABLE READ transaction, which takes no locks,
//! so an operator's refresh never holds up a writer), every list an index range with a limit.
//!
//! The counts are two grouped queries over the open clocks (`sla_clocks_board_clock` or
//! `_department`, and `sla_clocks_board_alerted` for the warned ones) instead of SQLite's loose
//! index scan and five counts per clock id: PostgreSQL counts several conditions in one pass
//! (`FILTER`). The lists are read per clock id in due order (`LIMIT`) and merged, as in SQLite.

use super::rows::ts;
use super::*;
use ::postgres::types::ToSql;
use ::postgres::{IsolationLevel, Row};
use petitiond_core::sla::clock::State;

/// Runs `f` in one read-only REPEATABLE READ transaction: every statement sees the same
/// snapshot (the board's counts and lists, a report's queries, a ledger export).
pub(super) fn snapshot<T>(
    store: &PgStore,
    f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut conn = store.conn()?;
    let mut tx = conn
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let v = f(&mut tx)?;
    tx.commit()?;
    Ok(v)
}

/// The board's SQL, as functions so that the plan test checks exactly what runs. Parameters
/// at fixed places, named in each function's docs.
pub(super) mod sql {
    fn and(cond: bool, sql: &str) -> &str {
        if cond { sql } else { "" }
    }

    /// The counts per clock id (running, overdue, paused, pending) and the warned counts
    /// (`sla_clocks_board_alerted`): `$1` now, then the clock id (with `clock`), then the
    /// department (with `department`).
    pub fn counts(clock: bool, department: bool) -> (String, String) {
        let dept_p = if clock { "$3" } else { "$2" };
        let cond = format!(
            "{}{}",
            and(clock, " AND clock_id = $2"),
            if department {
                format!(" AND department = {dept_p}")
            } else {
                String::new()
            }
        );
        (
            format!(
                "SELECT clock_id,
                        COUNT(*) FILTER (WHERE state = 'running'),
                        COUNT(*) FILTER (WHERE state = 'running' AND due_ms <= $1),
                        COUNT(*) FILTER (WHERE state = 'paused'),
                        COUNT(*) FILTER (WHERE state = 'pending')
                 FROM sla_clocks WHERE state <> 'stopped'{cond}
                 GROUP BY clock_id"
            ),
            format!(
                "SELECT clock_id, COUNT(*) FROM sla_clocks
                 WHERE state = 'running' AND alerted AND due_ms > $1{cond}
                 GROUP BY clock_id"
            ),
        )
    }

    /// Running clocks of one clock id, overdue (most overdue first) or not yet due (soonest
    /// first): `$1` clock id, `$2` now, `$3` limit, `$4` department (with `department`).
    pub fn clocks(department: bool, overdue: bool) -> String {
        let cmp = if overdue { "<=" } else { ">" };
        let dept = and(department, " AND department = $4");
        format!(
            "SELECT item_id, clock_id, department, state, started_at, due_at, due_ms, provisional
             FROM sla_clocks
             WHERE state <> 'stopped' AND clock_id = $1{dept} AND state = 'running' AND due_ms {cmp} $2
             ORDER BY due_ms LIMIT $3"
        )
    }

    /// The newest alerts (`seq`: insertion order): `$1` limit, `$2` department (with
    /// `department`), then the clock id (with `clock`).
    pub fn alerts(department: bool, clock: bool) -> String {
        let mut w = Vec::new();
        if department {
            w.push("department = $2".to_string());
        }
        if clock {
            w.push(format!("clock_id = ${}", if department { 3 } else { 2 }));
        }
        let w = if w.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", w.join(" AND "))
        };
        format!(
            "SELECT seq, kind, clock_id, item_id, department, due_at, fired_at, late, provisional
             FROM alerts {w} ORDER BY seq DESC LIMIT $1"
        )
    }

    /// The review queue, oldest first (`$1` limit, `$2` department), and its size (`$1`
    /// department), with `department`: by the lead.
    pub fn review(department: bool) -> (String, String) {
        (
            format!(
                "SELECT item_id, lead, decided_ms, classification FROM review_queue{}
                 ORDER BY decided_ms, item_id LIMIT $1",
                and(department, " WHERE lead = $2")
            ),
            format!(
                "SELECT COUNT(*) FROM review_queue{}",
                and(department, " WHERE lead = $1")
            ),
        )
    }
}

fn count(r: &Row, i: usize) -> Result<u64, StoreError> {
    Ok(r.try_get::<_, i64>(i)?.max(0) as u64)
}

/// Per clock id with open clocks (under the filters): running, overdue, warned, paused and
/// pending counts, by clock id.
fn board_counts(tx: &mut Transaction<'_>, q: &BoardQuery) -> Result<Vec<BoardCount>, StoreError> {
    let now = q.now.as_millisecond();
    let mut p: Vec<&(dyn ToSql + Sync)> = vec![&now];
    if let Some(c) = &q.clock {
        p.push(c);
    }
    if let Some(d) = &q.department {
        p.push(d);
    }
    let (counts_sql, warned_sql) = sql::counts(q.clock.is_some(), q.department.is_some());
    let rows = tx.query(&counts_sql, &p)?;
    let warned = tx.query(&warned_sql, &p)?;
    let mut counts = Vec::with_capacity(rows.len());
    for r in &rows {
        let clock_id: String = r.try_get(0)?;
        let mut warning = 0;
        for w in &warned {
            if w.try_get::<_, &str>(0)? == clock_id {
                warning = count(w, 1)?;
            }
        }
        counts.push(BoardCount {
            running: count(r, 1)?,
            overdue: count(r, 2)?,
            warning,
            paused: count(r, 3)?,
            pending: count(r, 4)?,
            clock_id,
        });
    }
    // Rust's order (bytes), whatever the database's collation.
    counts.sort_by(|a, b| a.clock_id.cmp(&b.clock_id));
    Ok(counts)
}

/// The overdue (most overdue first) or upcoming (soonest first) list: read per clock id
/// (index order is due order within one), merged here.
fn board_clocks(
    tx: &mut Transaction<'_>,
    q: &BoardQuery,
    counts: &[BoardCount],
    overdue: bool,
) -> Result<Vec<BoardClock>, StoreError> {
    let now = q.now.as_millisecond();
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let sql = sql::clocks(q.department.is_some(), overdue);
    let st = tx.prepare(&sql)?;
    let mut all: Vec<(i64, BoardClock)> = Vec::new();
    for c in counts {
        let mut p: Vec<&(dyn ToSql + Sync)> = vec![&c.clock_id, &now, &limit];
        if let Some(d) = &q.department {
            p.push(d);
        }
        for r in tx.query(&st, &p)? {
            let state: String = r.try_get(3)?;
            all.push((
                r.try_get(6)?,
                BoardClock {
                    item_id: r.try_get(0)?,
                    clock_id: r.try_get(1)?,
                    department: r.try_get(2)?,
                    state: State::parse(&state).unwrap_or(State::Running),
                    started_at: ts(Some(r.try_get(4)?))?.unwrap_or_default(),
                    due_at: ts(Some(r.try_get(5)?))?.unwrap_or_default(),
                    provisional: r.try_get(7)?,
                },
            ));
        }
    }
    all.sort_by_key(|a| a.0);
    all.truncate(q.limit);
    Ok(all.into_iter().map(|(_, c)| c).collect())
}

/// The newest alerts (by `seq`, insertion order, read backwards and filtered as read); with a
/// department filter alone, read per clock id (configured or open) and merged.
fn board_alerts(
    tx: &mut Transaction<'_>,
    q: &BoardQuery,
    counts: &[BoardCount],
) -> Result<Vec<BoardAlert>, StoreError> {
    let limit = i64::try_from(q.alerts_limit).unwrap_or(i64::MAX);
    let per_clock: Vec<Option<String>> = match (&q.department, &q.clock) {
        (Some(_), None) => {
            let mut ids: Vec<String> = q.clock_ids.clone();
            ids.extend(counts.iter().map(|c| c.clock_id.clone()));
            ids.sort();
            ids.dedup();
            ids.into_iter().map(Some).collect()
        }
        (_, c) => vec![c.clone()],
    };
    let mut alerts: Vec<(i64, BoardAlert)> = Vec::new();
    for clock in &per_clock {
        let mut p: Vec<&(dyn ToSql + Sync)> = vec![&limit];
        if let Some(d) = &q.department {
            p.push(d);
        }
        if let Some(c) = clock {
            p.push(c);
        }
        let rows = tx.query(&sql::alerts(q.department.is_some(), clock.is_some()), &p)?;
        for r in &rows {
            alerts.push((
                r.try_get(0)?,
                BoardAlert {
                    kind: r.try_get(1)?,
                    clock_id: r.try_get(2)?,
                    item_id: r.try_get(3)?,
                    department: r.try_get(4)?,
                    due_at: ts(Some(r.try_get(5)?))?.unwrap_or_default(),
                    fired_at: ts(Some(r.try_get(6)?))?.unwrap_or_default(),
                    late: r.try_get(7)?,
                    provisional: r.try_get(8)?,
                },
            ));
        }
    }
    alerts.sort_by_key(|a| std::cmp::Reverse(a.0));
    alerts.truncate(q.alerts_limit);
    Ok(alerts.into_iter().map(|(_, a)| a).collect())
}

/// The review queue, oldest first, and its size: one index range each (by lead under a
/// department filter).
fn board_review(
    tx: &mut Transaction<'_>,
    q: &BoardQuery,
) -> Result<(Vec<BoardReview>, u64), StoreError> {
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let (list_sql, count_sql) = sql::review(q.department.is_some());
    let mut p: Vec<&(dyn ToSql + Sync)> = vec![&limit];
    if let Some(d) = &q.department {
        p.push(d);
    }
    let rows = tx.query(&list_sql, &p)?;
    let total = count(&tx.query_one(&count_sql, &p[1..])?, 0)?;
    let mut review = Vec::with_capacity(rows.len());
    for r in &rows {
        let classification: String = r.try_get(3)?;
        let c: petitiond_core::envelope::CategoryDecision = serde_json::from_str(&classification)?;
        review.push(BoardReview {
            item_id: r.try_get(0)?,
            lead: r.try_get(1)?,
            decided_at: Timestamp::from_millisecond(r.try_get(2)?).unwrap_or_default(),
            source: c.source,
            confidence: c.confidence,
            candidates: c.candidates,
        });
    }
    Ok((review, total))
}

pub(super) fn board(store: &PgStore, q: &BoardQuery) -> Result<BoardData, StoreError> {
    snapshot(store, |tx| {
        let counts = board_counts(tx, q)?;
        let overdue = board_clocks(tx, q, &counts, true)?;
        let upcoming = board_clocks(tx, q, &counts, false)?;
        let alerts = board_alerts(tx, q, &counts)?;
        let (review, review_total) = board_review(tx, q)?;
        Ok(BoardData {
            counts,
            overdue,
            upcoming,
            alerts,
            review,
            review_total,
        })
    })
}

/// `(label, count)` rows of a two-column query, sorted by label as Rust sorts (bytes).
fn label_counts(tx: &mut Transaction<'_>, sql: &str) -> Result<Vec<(String, u64)>, StoreError> {
    let mut out = tx
        .query(sql, &[])?
        .iter()
        .map(|r| Ok((r.try_get(0)?, count(r, 1)?)))
        .collect::<Result<Vec<(String, u64)>, StoreError>>()?;
    out.sort();
    Ok(out)
}

/// [`Store::summary`]: read from the envelopes' JSON (labels only: channel, category, lead,
/// assists, flags), the clocks, the alerts and the quarantine.
pub(super) fn summary(store: &PgStore) -> Result<Summary, StoreError> {
    snapshot(store, |tx| {
        let items = count(&tx.query_one("SELECT COUNT(*) FROM items", &[])?, 0)?;
        let by_channel = label_counts(tx, "SELECT channel, COUNT(*) FROM items GROUP BY 1")?;
        let by_lead = label_counts(
            tx,
            "SELECT d, COUNT(*) FROM (SELECT envelope::jsonb -> 'routing' ->> 'lead' AS d FROM items) l
             WHERE d IS NOT NULL GROUP BY 1",
        )?;
        let by_assist = label_counts(
            tx,
            "SELECT a, COUNT(*) FROM items,
                 jsonb_array_elements_text(envelope::jsonb -> 'routing' -> 'assists') AS a
             GROUP BY 1",
        )?;
        let by_category = label_counts(
            tx,
            "SELECT COALESCE(envelope::jsonb ->> 'category', 'unclassified'), COUNT(*)
             FROM items GROUP BY 1",
        )?;
        let by_flag = label_counts(
            tx,
            "SELECT f, COUNT(*) FROM items, jsonb_array_elements_text(envelope::jsonb -> 'flags') AS f
             GROUP BY 1",
        )?;
        let mut clocks = tx
            .query(
                "SELECT c.clock_id,
                        COUNT(*) FILTER (WHERE c.state <> 'stopped'),
                        COUNT(*) FILTER (WHERE c.state = 'stopped'),
                        COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM alerts a
                            WHERE a.item_id = c.item_id AND a.clock_id = c.clock_id
                              AND a.kind LIKE 'warning%')),
                        COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM alerts a
                            WHERE a.item_id = c.item_id AND a.clock_id = c.clock_id
                              AND a.kind = 'breach'))
                 FROM sla_clocks c GROUP BY c.clock_id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(ClockSummary {
                    clock_id: r.try_get(0)?,
                    open: count(r, 1)?,
                    stopped: count(r, 2)?,
                    warned: count(r, 3)?,
                    breached: count(r, 4)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        clocks.sort_by(|a, b| a.clock_id.cmp(&b.clock_id));
        let mut quarantined = tx
            .query(
                "SELECT source, reason, COUNT(*) FROM quarantine GROUP BY source, reason",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, count(r, 2)?)))
            .collect::<Result<Vec<(String, String, u64)>, StoreError>>()?;
        quarantined.sort();
        Ok(Summary {
            items,
            by_channel,
            by_lead,
            by_assist,
            by_category,
            by_flag,
            clocks,
            quarantined,
        })
    })
}

/// The plan PostgreSQL chooses for `sql` with `params` (EXPLAIN's lines, joined), on a
/// fresh connection of the store.
#[cfg(test)]
pub(super) fn plan(store: &PgStore, sql: &str, params: &[&(dyn ToSql + Sync)]) -> String {
    let rows = store
        .conn()
        .unwrap()
        .query(&format!("EXPLAIN {sql}"), params)
        .unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With open clocks a minority of the table (as they become: stopped ones accumulate),
    /// every board read is a range of the board's partial indexes, and the newest alerts a
    /// backward scan of `alerts.seq`: never a sequential scan of `sla_clocks` or `alerts`.
    #[test]
    fn board_reads_use_the_board_indexes() {
        let Some(b) = crate::testing::postgres_store() else {
            return;
        };
        let s = b.postgres().unwrap();
        b.execute("ALTER TABLE sla_clocks DROP CONSTRAINT sla_clocks_item_id_fkey");
        b.execute(
            "INSERT INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at,
                 due_ms, alerted)
             SELECT 'i' || n, 'c' || (n % 7), 'd' || (n % 40),
                    CASE WHEN n % 100 = 0 THEN 'paused' WHEN n % 100 < 4 THEN 'running'
                         WHEN n % 100 = 4 THEN 'pending' ELSE 'stopped' END,
                    '2026-03-01T00:00:00Z', '2026-03-02T00:00:00Z', n * 1000, n % 4 = 1
             FROM generate_series(1, 100000) n",
        );
        b.execute(
            "INSERT INTO alerts (id, item_id, clock_id, kind, department, due_at, scheduled_at,
                 fired_at, late)
             SELECT 'a' || n, 'i' || n, 'c' || (n % 7), 'breach', 'd' || (n % 40), 'x', 'x', 'x',
                    FALSE
             FROM generate_series(1, 50000) n",
        );
        b.execute("VACUUM ANALYZE");
        let (now, clock, dept, limit) = (50_000_000i64, "c3".to_string(), "d7".to_string(), 50i64);
        for (c, d) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut p: Vec<&(dyn ToSql + Sync)> = vec![&now];
            if c {
                p.push(&clock);
            }
            if d {
                p.push(&dept);
            }
            let (counts, warned) = sql::counts(c, d);
            let got = plan(s, &counts, &p);
            assert!(got.contains("sla_clocks_board_"), "counts {c} {d}:\n{got}");
            assert!(!got.contains("Seq Scan"), "counts {c} {d}:\n{got}");
            let got = plan(s, &warned, &p);
            assert!(
                got.contains("sla_clocks_board_alerted"),
                "warned {c} {d}:\n{got}"
            );
            assert!(!got.contains("Seq Scan"), "warned {c} {d}:\n{got}");
        }
        for d in [false, true] {
            for overdue in [false, true] {
                let mut p: Vec<&(dyn ToSql + Sync)> = vec![&clock, &now, &limit];
                if d {
                    p.push(&dept);
                }
                let got = plan(s, &sql::clocks(d, overdue), &p);
                let want = if d {
                    "sla_clocks_board_department"
                } else {
                    "sla_clocks_board_clock"
                };
                assert!(got.contains(want), "clocks {d} {overdue}:\n{got}");
                // A range of the index (PostgreSQL may sort a small one rather than walk it in
                // due order).
                assert!(!got.contains("Seq Scan"), "{got}");
            }
            for c in [false, true] {
                let mut p: Vec<&(dyn ToSql + Sync)> = vec![&limit];
                if d {
                    p.push(&dept);
                }
                if c {
                    p.push(&clock);
                }
                let got = plan(s, &sql::alerts(d, c), &p);
                assert!(
                    got.contains("Index Scan Backward using alerts_seq_key"),
                    "{got}"
                );
            }
        }
    }
}
