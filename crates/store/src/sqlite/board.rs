//! The SLA board, the summary and the ledger: read-only queries on the board's own
//! connection, each an index range with a limit (see the query-plan test).

use super::clocks::ts;
use super::*;

/// The SLA board's SQL, as functions so that the query-plan test checks exactly what runs.
/// Named parameters: `:now` (ms), `:clock`, `:department`, `:limit`.
pub(super) mod board_sql {
    /// The review queue, oldest first (`review_queue_decided`, or `review_queue_lead` under a
    /// department filter), and its size under the same filter.
    pub fn review(department: bool) -> (String, String) {
        let cond = if department {
            " WHERE lead = :department"
        } else {
            ""
        };
        (
            format!(
                "SELECT item_id, lead, decided_ms, classification FROM review_queue{cond}
                 ORDER BY decided_ms, item_id LIMIT :limit"
            ),
            format!("SELECT COUNT(*) FROM review_queue{cond}"),
        )
    }

    fn dept(department: bool) -> &'static str {
        if department {
            " AND department = :department"
        } else {
            ""
        }
    }

    /// The next clock id with open clocks after `:after`: one index seek (a loose index scan
    /// in steps, where `SELECT DISTINCT` would read every open clock).
    pub fn next_clock_id(department: bool) -> String {
        format!(
            "SELECT clock_id FROM sla_clocks WHERE state <> 'stopped'{} AND clock_id > :after
             ORDER BY clock_id LIMIT 1",
            dept(department)
        )
    }

    /// What one count counts.
    #[derive(Debug, Clone, Copy)]
    pub enum Count {
        Running,
        Overdue,
        Warned,
        Paused,
        Pending,
    }

    pub const COUNTS: [Count; 5] = [
        Count::Running,
        Count::Overdue,
        Count::Warned,
        Count::Paused,
        Count::Pending,
    ];

    /// Open clocks of one clock id: `COUNT(*)` over a range of `sla_clocks_board_clock` (or
    /// `_department`; warned ones: `_alerted`), never the table. These are the only reads
    /// that grow with the number of open clocks.
    pub fn count(department: bool, what: Count) -> String {
        let cond = match what {
            Count::Running => "state = 'running'",
            Count::Overdue => "state = 'running' AND due_ms <= :now",
            // From `sla_clocks_board_alerted`: the state condition is its own, without the
            // `state <> 'stopped'` of the others (which would let the planner pick those).
            Count::Warned => {
                return format!(
                    "SELECT COUNT(*) FROM sla_clocks WHERE state = 'running' AND alerted = 1 \
                     AND clock_id = :clock AND due_ms > :now{}",
                    dept(department)
                );
            }
            Count::Paused => "state = 'paused'",
            Count::Pending => "state = 'pending'",
        };
        format!(
            "SELECT COUNT(*) FROM sla_clocks WHERE state <> 'stopped' AND clock_id = :clock{} AND {cond}",
            dept(department)
        )
    }

    /// Running clocks of one clock id, overdue (most overdue first) or not yet due (soonest
    /// first): an index range in due order, stopped by the LIMIT.
    pub fn clocks(department: bool, overdue: bool) -> String {
        let cmp = if overdue { "<=" } else { ">" };
        let dept = if department {
            " AND department = :department"
        } else {
            ""
        };
        format!(
            "SELECT item_id, clock_id, department, state, started_at, due_at, due_ms, provisional FROM sla_clocks
             WHERE state <> 'stopped' AND clock_id = :clock{dept} AND state = 'running' AND due_ms {cmp} :now
             ORDER BY due_ms LIMIT :limit"
        )
    }

    /// Newest alerts (rowid = insertion order), optionally within a clock id and department.
    pub fn alerts(department: bool, clock: bool) -> String {
        let mut w = Vec::new();
        if department {
            w.push("department = :department");
        }
        if clock {
            w.push("clock_id = :clock");
        }
        let w = if w.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", w.join(" AND "))
        };
        format!(
            "SELECT rowid, kind, clock_id, item_id, department, due_at, fired_at, late, provisional FROM alerts {w}
             ORDER BY rowid DESC LIMIT :limit"
        )
    }
}

/// `(label, count)` rows of a two-column query.
pub(super) fn label_counts(conn: &Connection, sql: &str) -> Result<Vec<(String, u64)>, StoreError> {
    let mut st = conn.prepare(sql)?;
    let rows = st
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// [`Store::summary`]: read from the envelopes' JSON (labels only: channel, category, lead,
/// assists, flags), the clocks, the alerts and the quarantine.
pub(super) fn summary_query(conn: &Connection) -> Result<Summary, StoreError> {
    let items: i64 = conn.query_row("SELECT count(*) FROM items", [], |r| r.get(0))?;
    let by_channel = label_counts(
        conn,
        "SELECT channel, count(*) FROM items GROUP BY channel ORDER BY channel",
    )?;
    let by_lead = label_counts(
        conn,
        "SELECT json_extract(envelope, '$.routing.lead') AS d, count(*) FROM items
         WHERE d IS NOT NULL GROUP BY d ORDER BY d",
    )?;
    let by_assist = label_counts(
        conn,
        "SELECT a.value, count(*) FROM items, json_each(items.envelope, '$.routing.assists') AS a
         GROUP BY a.value ORDER BY a.value",
    )?;
    let by_category = label_counts(
        conn,
        "SELECT coalesce(json_extract(envelope, '$.category'), 'unclassified') AS c, count(*)
         FROM items GROUP BY c ORDER BY c",
    )?;
    let by_flag = label_counts(
        conn,
        "SELECT f.value, count(*) FROM items, json_each(items.envelope, '$.flags') AS f
         GROUP BY f.value ORDER BY f.value",
    )?;
    let mut st = conn.prepare(
        "SELECT c.clock_id,
                sum(c.state != 'stopped'),
                sum(c.state = 'stopped'),
                sum(EXISTS (SELECT 1 FROM alerts a WHERE a.item_id = c.item_id
                            AND a.clock_id = c.clock_id AND a.kind LIKE 'warning%')),
                sum(EXISTS (SELECT 1 FROM alerts a WHERE a.item_id = c.item_id
                            AND a.clock_id = c.clock_id AND a.kind = 'breach'))
         FROM sla_clocks c GROUP BY c.clock_id ORDER BY c.clock_id",
    )?;
    let clocks = st
        .query_map([], |r| {
            Ok(ClockSummary {
                clock_id: r.get(0)?,
                open: r.get::<_, i64>(1)? as u64,
                stopped: r.get::<_, i64>(2)? as u64,
                warned: r.get::<_, i64>(3)? as u64,
                breached: r.get::<_, i64>(4)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut st = conn.prepare(
        "SELECT source, reason, count(*) FROM quarantine GROUP BY source, reason
         ORDER BY source, reason",
    )?;
    let quarantined = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Summary {
        items: items as u64,
        by_channel,
        by_lead,
        by_assist,
        by_category,
        by_flag,
        clocks,
        quarantined,
    })
}

/// The SLA board, read inside [`board`]'s one transaction: the counts per clock id, the
/// overdue and upcoming lists, the newest alerts and the review queue; each an index range.
pub(super) fn board_query(conn: &Connection, q: &BoardQuery) -> Result<BoardData, StoreError> {
    let counts = board_counts(conn, q)?;
    let overdue = board_clocks(conn, q, &counts, true)?;
    let upcoming = board_clocks(conn, q, &counts, false)?;
    let alerts = board_alerts(conn, q, &counts)?;
    let (review, review_total) = board_review(conn, q)?;
    Ok(BoardData {
        counts,
        overdue,
        upcoming,
        alerts,
        review,
        review_total,
    })
}

/// The clock ids with open clocks (under the department filter), ascending: the filter's
/// one, or read one at a time from the index.
fn open_clock_ids(conn: &Connection, q: &BoardQuery) -> Result<Vec<String>, StoreError> {
    use rusqlite::ToSql;
    if let Some(c) = &q.clock {
        return Ok(vec![c.clone()]);
    }
    let dept = q.department.as_deref();
    let mut st = conn.prepare_cached(&board_sql::next_clock_id(dept.is_some()))?;
    let mut ids: Vec<String> = Vec::new();
    loop {
        let after = ids.last().cloned().unwrap_or_default();
        let mut p: Vec<(&str, &dyn ToSql)> = vec![(":after", &after)];
        if let Some(d) = &dept {
            p.push((":department", d));
        }
        match st.query_row(p.as_slice(), |r| r.get(0)).optional()? {
            Some(id) => ids.push(id),
            None => break,
        }
    }
    Ok(ids)
}

/// Per clock id with open clocks: running, overdue, warned, paused and pending counts.
fn board_counts(conn: &Connection, q: &BoardQuery) -> Result<Vec<BoardCount>, StoreError> {
    use rusqlite::ToSql;
    let now = q.now.as_millisecond();
    let dept = q.department.as_deref();
    let clock_ids = open_clock_ids(conn, q)?;
    let mut stmts = Vec::new();
    for what in board_sql::COUNTS {
        stmts.push((
            conn.prepare_cached(&board_sql::count(dept.is_some(), what))?,
            what,
        ));
    }
    let mut counts = Vec::new();
    for clock_id in clock_ids {
        let mut n = [0u64; 5];
        for (i, (st, what)) in stmts.iter_mut().enumerate() {
            let mut p: Vec<(&str, &dyn ToSql)> = vec![(":clock", &clock_id)];
            if let Some(d) = &dept {
                p.push((":department", d));
            }
            if matches!(what, board_sql::Count::Overdue | board_sql::Count::Warned) {
                p.push((":now", &now));
            }
            n[i] = st.query_row(p.as_slice(), |r| r.get::<_, i64>(0))?.max(0) as u64;
        }
        if n[0] + n[3] + n[4] > 0 {
            counts.push(BoardCount {
                clock_id,
                running: n[0],
                overdue: n[1],
                warning: n[2],
                paused: n[3],
                pending: n[4],
            });
        }
    }
    Ok(counts)
}

/// The overdue (most overdue first) or upcoming (soonest first) list: read per clock id
/// (index order is due order within one), merged here.
fn board_clocks(
    conn: &Connection,
    q: &BoardQuery,
    counts: &[BoardCount],
    overdue: bool,
) -> Result<Vec<BoardClock>, StoreError> {
    use rusqlite::ToSql;
    let now = q.now.as_millisecond();
    let limit = q.limit as i64;
    let dept = q.department.as_deref();
    let sql = board_sql::clocks(dept.is_some(), overdue);
    let mut st = conn.prepare_cached(&sql)?;
    let mut all: Vec<(i64, BoardClock)> = Vec::new();
    for c in counts {
        let mut p: Vec<(&str, &dyn ToSql)> =
            vec![(":now", &now), (":clock", &c.clock_id), (":limit", &limit)];
        if let Some(d) = &dept {
            p.push((":department", d));
        }
        let rows = st.query_map(p.as_slice(), |r| {
            let state: String = r.get(3)?;
            Ok((
                r.get::<_, i64>(6)?,
                BoardClock {
                    item_id: r.get(0)?,
                    clock_id: r.get(1)?,
                    department: r.get(2)?,
                    state: State::parse(&state).unwrap_or(State::Running),
                    started_at: ts(Some(r.get(4)?))?.unwrap_or_default(),
                    due_at: ts(Some(r.get(5)?))?.unwrap_or_default(),
                    provisional: r.get(7)?,
                },
            ))
        })?;
        for row in rows {
            all.push(row?);
        }
    }
    all.sort_by_key(|a| a.0);
    all.truncate(q.limit);
    Ok(all.into_iter().map(|(_, c)| c).collect())
}

/// The newest alerts: one index range, except "department only", read per clock id and
/// merged.
fn board_alerts(
    conn: &Connection,
    q: &BoardQuery,
    counts: &[BoardCount],
) -> Result<Vec<BoardAlert>, StoreError> {
    use rusqlite::ToSql;
    let alerts_limit = q.alerts_limit as i64;
    let dept = q.department.as_deref();
    let per_clock: Vec<Option<String>> = match (&dept, &q.clock) {
        (Some(_), None) => {
            let mut ids: Vec<String> = q.clock_ids.clone();
            ids.extend(counts.iter().map(|c| c.clock_id.clone()));
            ids.sort();
            ids.dedup();
            ids.into_iter().map(Some).collect()
        }
        (_, c) => vec![c.clone()],
    };
    let sql = board_sql::alerts(
        dept.is_some(),
        per_clock.first().is_some_and(|c| c.is_some()),
    );
    let mut st = conn.prepare_cached(&sql)?;
    let mut alerts: Vec<(i64, BoardAlert)> = Vec::new();
    for clock in &per_clock {
        let mut p: Vec<(&str, &dyn ToSql)> = vec![(":limit", &alerts_limit)];
        if let Some(c) = clock {
            p.push((":clock", c));
        }
        if let Some(d) = &dept {
            p.push((":department", d));
        }
        let rows = st.query_map(p.as_slice(), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                BoardAlert {
                    kind: r.get(1)?,
                    clock_id: r.get(2)?,
                    item_id: r.get(3)?,
                    department: r.get(4)?,
                    due_at: ts(Some(r.get(5)?))?.unwrap_or_default(),
                    fired_at: ts(Some(r.get(6)?))?.unwrap_or_default(),
                    late: r.get(7)?,
                    provisional: r.get(8)?,
                },
            ))
        })?;
        for row in rows {
            alerts.push(row?);
        }
    }
    alerts.sort_by_key(|a| std::cmp::Reverse(a.0));
    alerts.truncate(q.alerts_limit);
    Ok(alerts.into_iter().map(|(_, a)| a).collect())
}

/// The review queue, oldest first, and its size: one index range each (by lead under a
/// department filter).
fn board_review(conn: &Connection, q: &BoardQuery) -> Result<(Vec<BoardReview>, u64), StoreError> {
    use rusqlite::ToSql;
    let limit = q.limit as i64;
    let dept = q.department.as_deref();
    let (list_sql, count_sql) = board_sql::review(dept.is_some());
    let mut p: Vec<(&str, &dyn ToSql)> = vec![(":limit", &limit)];
    if let Some(d) = &dept {
        p.push((":department", d));
    }
    let mut st = conn.prepare_cached(&list_sql)?;
    let rows = st.query_map(p.as_slice(), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut review = Vec::new();
    for row in rows {
        let (item_id, lead, decided_ms, classification) = row?;
        let c: petitiond_core::envelope::CategoryDecision = serde_json::from_str(&classification)?;
        review.push(BoardReview {
            item_id,
            lead,
            decided_at: Timestamp::from_millisecond(decided_ms).unwrap_or_default(),
            source: c.source,
            confidence: c.confidence,
            candidates: c.candidates,
        });
    }
    p.retain(|(k, _)| *k != ":limit");
    let total = conn
        .prepare_cached(&count_sql)?
        .query_row(p.as_slice(), |r| r.get::<_, i64>(0))?
        .max(0) as u64;
    Ok((review, total))
}

pub(super) fn board(store: &SqliteStore, q: &BoardQuery) -> Result<BoardData, StoreError> {
    let conn = store.read.lock().unwrap_or_else(|p| p.into_inner());
    // One read transaction: counts, lists and alerts come from the same snapshot.
    conn.execute_batch("BEGIN")?;
    let result = board_query(&conn, q);
    let _ = conn.execute_batch("COMMIT");
    result
}

pub(super) fn ledger(
    store: &SqliteStore,
    q: &LedgerQuery,
    f: &mut dyn FnMut(LedgerRow) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let conn = store.read.lock().unwrap_or_else(|p| p.into_inner());
    conn.execute_batch("BEGIN")?;
    let result = ledger::rows(&conn, q, f);
    let _ = conn.execute_batch("COMMIT");
    result
}

pub(super) fn summary(store: &SqliteStore) -> Result<Summary, StoreError> {
    let conn = store.read.lock().unwrap_or_else(|p| p.into_inner());
    conn.execute_batch("BEGIN")?;
    let result = summary_query(&conn);
    let _ = conn.execute_batch("COMMIT");
    result
}
