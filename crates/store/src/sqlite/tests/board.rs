//! The SLA board, the summary, the ledger and the review queue, with their query plans.

use super::super::board::board_sql;
use super::*;
use crate::testing::Backend;

fn review_item(upstream: &str, lead: &str, decided: &str, review: bool) -> NewItem {
    use petitiond_core::envelope::{Candidate, Category, CategoryDecision, Routing};
    let mut it = item(upstream);
    it.decision.lead = lead.into();
    it.decision.decided_at = decided.parse().unwrap();
    it.envelope.routing = Some(Routing {
        lead: lead.into(),
        assists: vec![],
        rule_id: "unclassified".into(),
        rules_version: "v0".into(),
        decided_at: decided.parse().unwrap(),
        sla_add: vec![],
        sla_skip: vec![],
        classification: Some(CategoryDecision {
            source: "dictionary".into(),
            confidence: if review { 0.5 } else { 0.9 },
            candidates: vec![
                Candidate {
                    category: Category::Livelihood,
                    confidence: 0.5,
                },
                Candidate {
                    category: Category::Rights,
                    confidence: 0.5,
                },
            ],
            needs_review: review,
        }),
    });
    it
}

/// Issue 20: an item routing was unsure of waits on the board, oldest first, filtered by
/// its lead, until a status event is applied to it; a sure one never appears; a
/// redelivered event changes nothing.
#[test]
fn needs_review_items_wait_on_the_board_until_a_status_event() {
    each_backend(|s| {
        let ids: Vec<String> = [
            ("r1", "desk", "2026-03-02T01:00:02Z", true),
            ("r2", "desk", "2026-03-02T01:00:01Z", true),
            ("r3", "hrss", "2026-03-02T01:00:03Z", true),
            ("sure", "desk", "2026-03-02T01:00:00Z", false),
        ]
        .iter()
        .map(|(u, lead, at, review)| {
            let it = review_item(u, lead, at, *review);
            s.record_item(&it).unwrap();
            it.envelope.id.to_string()
        })
        .collect();
        let board = |dept: Option<&str>| s.board(&bq(dept, None)).unwrap();
        let listed =
            |d: &BoardData| -> Vec<String> { d.review.iter().map(|r| r.item_id.clone()).collect() };
        let all = board(None);
        assert_eq!(
            listed(&all),
            [ids[1].clone(), ids[0].clone(), ids[2].clone()],
            "oldest first"
        );
        assert_eq!(all.review_total, 3);
        let first = &all.review[0];
        assert_eq!(first.lead, "desk");
        assert_eq!(first.source, "dictionary");
        assert_eq!(
            first.decided_at,
            "2026-03-02T01:00:01Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(first.candidates.len(), 2);
        let hrss = board(Some("hrss"));
        assert_eq!(listed(&hrss), [ids[2].clone()]);
        assert_eq!(hrss.review_total, 1);
        // The limit bounds the list, not the total.
        let mut q = bq(None, None);
        q.limit = 1;
        let one = s.board(&q).unwrap();
        assert_eq!((one.review.len(), one.review_total), (1, 3));

        let ev = StatusRecord::new(
            "desk-took-it",
            &ids[1],
            "status_marked",
            Timestamp::UNIX_EPOCH,
        );
        let mut nothing = |_: &Envelope, _: &mut Vec<Clock>| ClockWrites::default();
        assert!(matches!(
            s.apply_status(&ev, &mut nothing).unwrap(),
            StatusOutcome::Applied(_)
        ));
        let after = board(None);
        assert_eq!(listed(&after), [ids[0].clone(), ids[2].clone()]);
        assert_eq!(after.review_total, 2);
        assert_eq!(
            s.apply_status(&ev, &mut nothing).unwrap(),
            StatusOutcome::Duplicate
        );
        assert_eq!(board(None).review_total, 2);
    });
}

/// A store recorded before the review queue existed (v10) shows its unsure items once
/// migrated, except those a status event has already touched.
#[test]
fn review_queue_migration_lists_unsure_items_already_recorded() {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    // Up to v10: the schema before the review queue (v11), whatever came after it.
    Migrations::from_slice(&migrations::MIGRATIONS[..10])
        .to_latest(&mut conn)
        .unwrap();
    let decision = |review: bool| {
        format!(
            r#"{{"source":"model","confidence":0.41,"candidates":[{{"category":"policy","confidence":0.41}},{{"category":"rights","confidence":0.3}}]{}}}"#,
            if review {
                r#","needs_review":true"#
            } else {
                ""
            }
        )
    };
    for (item, review, touched) in [
        ("unsure", true, false),
        ("sure", false, false),
        ("handled", true, true),
    ] {
        conn.execute(
            "INSERT INTO routing_decisions (item_id, rule_id, rules_version, lead, assists, decided_at, classification)
             VALUES (?1, 'unclassified', 'v0', 'desk', '[]', '2026-03-02T01:00:00.5Z', ?2)",
            params![item, decision(review)],
        )
        .unwrap();
        if touched {
            conn.execute(
                "INSERT INTO status_events (event_id, item_id, event, at) VALUES ('e', ?1, 'viewed', 'x')",
                [item],
            )
            .unwrap();
        }
    }
    conn.execute(
        "INSERT INTO routing_decisions (item_id, rule_id, rules_version, lead, assists, decided_at)
         VALUES ('old', 'default', 'v0', 'desk', '[]', '2026-03-02T01:00:00Z')",
        [],
    )
    .unwrap();
    Migrations::from_slice(migrations::MIGRATIONS)
        .to_latest(&mut conn)
        .unwrap();
    let rows: Vec<(String, i64)> = conn
        .prepare("SELECT item_id, decided_ms FROM review_queue")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let at = "2026-03-02T01:00:00.5Z".parse::<Timestamp>().unwrap();
    assert_eq!(rows, [("unsure".to_string(), at.as_millisecond())]);
}

/// Board fixtures straight into the tables (no item rows needed for the board's reads).
fn board_store() -> (tempfile::TempDir, SqliteStore) {
    let (d, s) = store();
    s.conn().execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    (d, s)
}

/// [`each_backend`] with the board's fixtures going straight into the tables: no item rows
/// (the foreign keys off in SQLite, the clocks' dropped in the test's PostgreSQL schema).
fn each_board_backend(f: impl Fn(&Backend)) {
    each_backend(|b| {
        if b.postgres().is_some() {
            b.execute("ALTER TABLE sla_clocks DROP CONSTRAINT sla_clocks_item_id_fkey");
        } else {
            b.execute("PRAGMA foreign_keys = OFF");
        }
        f(b)
    })
}

/// A clock row as the board reads it, in SQL both backends take.
fn put_clock(
    s: &Backend,
    item: &str,
    clock: &str,
    dept: &str,
    state: &str,
    due: &str,
    alerted: bool,
) {
    let last = if alerted {
        "'2026-03-02T00:10:00Z'"
    } else {
        "NULL"
    };
    let due_ms = due.parse::<Timestamp>().unwrap().as_millisecond();
    s.execute(&format!(
        "INSERT INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at, last_alert_at, due_ms, alerted)
         VALUES ('{item}', '{clock}', '{dept}', '{state}', '2026-03-02T00:00:00Z', '{due}', {last}, {due_ms}, {alerted})"
    ));
}

fn put_alert(s: &Backend, id: &str, item: &str, clock: &str, dept: &str) {
    s.execute(&format!(
        "INSERT INTO alerts (id, item_id, clock_id, kind, department, due_at, scheduled_at, fired_at, late)
         VALUES ('{id}', '{item}', '{clock}', 'breach', '{dept}', '2026-03-02T01:00:00Z', '2026-03-02T01:00:00Z', '2026-03-02T01:00:00Z', FALSE)"
    ));
}

fn bq(department: Option<&str>, clock: Option<&str>) -> BoardQuery {
    BoardQuery {
        department: department.map(Into::into),
        clock: clock.map(Into::into),
        now: "2026-03-02T02:00:00Z".parse().unwrap(),
        limit: 3,
        alerts_limit: 2,
        clock_ids: vec!["c.a".into(), "c.b".into()],
    }
}

fn ids(l: &[BoardClock]) -> Vec<&str> {
    l.iter().map(|c| c.item_id.as_str()).collect()
}

#[test]
fn board_counts_orders_filters_and_limits() {
    each_board_backend(|s| {
        // now = 02:00:00Z. Sub-second dues order by time, not by text ("…00Z" > "…00.5Z").
        put_clock(
            s,
            "o1",
            "c.a",
            "hrss",
            "running",
            "2026-03-02T01:00:00Z",
            true,
        );
        put_clock(
            s,
            "o2",
            "c.b",
            "hrss",
            "running",
            "2026-03-02T00:30:00Z",
            true,
        );
        put_clock(
            s,
            "o3",
            "c.a",
            "desk",
            "running",
            "2026-03-02T01:59:59.500Z",
            false,
        );
        put_clock(
            s,
            "o4",
            "c.a",
            "hrss",
            "running",
            "2026-03-02T02:00:00Z",
            false,
        ); // due = now
        put_clock(
            s,
            "u1",
            "c.a",
            "hrss",
            "running",
            "2026-03-02T02:00:00.5Z",
            true,
        ); // warned
        put_clock(
            s,
            "u2",
            "c.b",
            "desk",
            "running",
            "2026-03-02T02:10:00Z",
            false,
        );
        put_clock(
            s,
            "u3",
            "c.a",
            "hrss",
            "running",
            "2026-03-02T02:00:01Z",
            false,
        );
        put_clock(
            s,
            "u4",
            "c.b",
            "hrss",
            "running",
            "2026-03-02T03:00:00Z",
            false,
        );
        put_clock(
            s,
            "p1",
            "c.a",
            "hrss",
            "paused",
            "2026-03-02T01:00:00Z",
            false,
        );
        // Waiting for a calendar year: counted, never listed (it has no due instant yet).
        put_clock(
            s,
            "w1",
            "c.b",
            "hrss",
            "pending",
            "2026-03-02T01:00:00Z",
            false,
        );
        put_clock(
            s,
            "s1",
            "c.a",
            "hrss",
            "stopped",
            "2026-03-02T01:00:00Z",
            true,
        );

        let d = s.board(&bq(None, None)).unwrap();
        assert_eq!(
            d.counts,
            vec![
                BoardCount {
                    clock_id: "c.a".into(),
                    running: 5,
                    overdue: 3,
                    warning: 1,
                    paused: 1,
                    pending: 0
                },
                BoardCount {
                    clock_id: "c.b".into(),
                    running: 3,
                    overdue: 1,
                    warning: 0,
                    paused: 0,
                    pending: 1
                },
            ]
        );
        // Most overdue first, across clock ids; limited to 3; paused and stopped never listed.
        assert_eq!(ids(&d.overdue), vec!["o2", "o1", "o3"]);
        assert_eq!(ids(&d.upcoming), vec!["u1", "u3", "u2"]);
        assert_eq!(
            d.upcoming[0].due_at,
            "2026-03-02T02:00:00.5Z".parse::<Timestamp>().unwrap()
        );

        let d = s.board(&bq(Some("hrss"), None)).unwrap();
        assert_eq!(ids(&d.overdue), vec!["o2", "o1", "o4"]);
        assert_eq!(ids(&d.upcoming), vec!["u1", "u3", "u4"]);
        assert!(
            d.overdue
                .iter()
                .chain(&d.upcoming)
                .all(|c| c.department == "hrss")
        );
        assert_eq!(d.counts[0].running, 4);

        let d = s.board(&bq(None, Some("c.b"))).unwrap();
        assert_eq!(d.counts.len(), 1);
        assert_eq!(ids(&d.overdue), vec!["o2"]);
        assert_eq!(ids(&d.upcoming), vec!["u2", "u4"]);

        let d = s.board(&bq(Some("desk"), Some("c.a"))).unwrap();
        assert_eq!(ids(&d.overdue), vec!["o3"]);
        assert!(d.upcoming.is_empty());

        let d = s.board(&bq(Some("nobody"), Some("<x>"))).unwrap();
        assert_eq!(d, BoardData::default());
    });
}

/// The demo's closing table: items by channel, lead, assist, category and flag; clocks
/// open / stopped / warned / breached (an alert counted once per clock); quarantine by reason.
#[test]
fn summary_counts_items_clocks_alerts_and_quarantine() {
    each_board_backend(|s| {
        for (id, channel, env) in [
            (
                "i1",
                "hotline",
                r#"{"category":"rights","routing":{"lead":"hrss","assists":["health"]},"flags":["repeat_petition"]}"#,
            ),
            (
                "i2",
                "letter",
                r#"{"category":"policy","routing":{"lead":"policy-desk","assists":["hrss"]},"flags":[]}"#,
            ),
            (
                "i3",
                "letter",
                r#"{"routing":{"lead":"intake-desk","assists":[]},"flags":["needs_supplement","missing:contact"]}"#,
            ),
        ] {
            s.execute(&format!(
            "INSERT INTO items (id, channel, upstream_id, source, received_at, stage, envelope)
             VALUES ('{id}', '{channel}', '{id}', 'test', '2026-03-02T00:00:00Z', 'routed', '{env}')"
        ));
        }
        put_clock(
            s,
            "i1",
            "c.a",
            "hrss",
            "running",
            "2026-03-02T01:00:00Z",
            true,
        );
        put_clock(
            s,
            "i2",
            "c.a",
            "policy-desk",
            "stopped",
            "2026-03-02T01:00:00Z",
            false,
        );
        put_clock(
            s,
            "i3",
            "c.b",
            "intake-desk",
            "running",
            "2026-03-02T01:00:00Z",
            false,
        );
        put_alert(s, "a1", "i1", "c.a", "hrss");
        put_alert(s, "a2", "i3", "c.b", "intake-desk");
        s.execute("UPDATE alerts SET kind = 'warning_50' WHERE id = 'a2'");
        for reason in ["no_id", "no_id", "malformed_mime"] {
            s.execute(&format!(
                "INSERT INTO quarantine (source, reference, reason, detail, raw_ref, size)
             VALUES ('src', 'ref', '{reason}', '', 'raw', 1)"
            ));
        }
        let sum = s.summary().unwrap();
        let l = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        assert_eq!(sum.items, 3);
        assert_eq!(sum.by_channel, l(&[("hotline", 1), ("letter", 2)]));
        assert_eq!(
            sum.by_lead,
            l(&[("hrss", 1), ("intake-desk", 1), ("policy-desk", 1)])
        );
        assert_eq!(sum.by_assist, l(&[("health", 1), ("hrss", 1)]));
        assert_eq!(
            sum.by_category,
            l(&[("policy", 1), ("rights", 1), ("unclassified", 1)])
        );
        assert_eq!(
            sum.by_flag,
            l(&[
                ("missing:contact", 1),
                ("needs_supplement", 1),
                ("repeat_petition", 1)
            ])
        );
        assert_eq!(
            sum.clocks,
            vec![
                ClockSummary {
                    clock_id: "c.a".into(),
                    open: 1,
                    stopped: 1,
                    warned: 0,
                    breached: 1,
                },
                ClockSummary {
                    clock_id: "c.b".into(),
                    open: 1,
                    stopped: 0,
                    warned: 1,
                    breached: 0,
                },
            ]
        );
        assert_eq!(
            sum.quarantined,
            vec![
                ("src".to_string(), "malformed_mime".to_string(), 1),
                ("src".to_string(), "no_id".to_string(), 2),
            ]
        );
    });
}

#[test]
fn board_alerts_newest_first_with_filters() {
    each_board_backend(|s| {
        put_alert(s, "a1", "i1", "c.a", "hrss");
        put_alert(s, "a2", "i2", "c.b", "hrss");
        put_alert(s, "a3", "i3", "c.a", "desk");
        put_alert(s, "a4", "i4", "c.old", "hrss"); // a clock no longer configured
        put_alert(s, "a5", "i5", "c.a", "hrss");
        let items = |d: &BoardData| {
            d.alerts
                .iter()
                .map(|a| a.item_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(items(&s.board(&bq(None, None)).unwrap()), vec!["i5", "i4"]);
        assert_eq!(
            items(&s.board(&bq(None, Some("c.a"))).unwrap()),
            vec!["i5", "i3"]
        );
        // Department only: read per configured clock id and merged.
        assert_eq!(
            items(&s.board(&bq(Some("hrss"), None)).unwrap()),
            vec!["i5", "i2"]
        );
        assert_eq!(
            items(&s.board(&bq(Some("desk"), Some("c.a"))).unwrap()),
            vec!["i3"]
        );
    });
}

/// Clocks recorded before v5 get their `due_ms` and `alerted` from the migration, exact
/// to the millisecond whatever the number of fraction digits.
#[test]
fn board_migration_fills_due_ms_of_existing_clocks() {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    Migrations::from_slice(&migrations::MIGRATIONS[..4])
        .to_latest(&mut conn)
        .unwrap();
    let dues = [
        "2026-03-02T01:59:59.999Z",
        "2026-03-02T02:00:00Z",
        "2026-10-08T09:30:00.123456789Z",
        "2026-03-02T02:00:00.5Z",
    ];
    for (i, due) in dues.iter().enumerate() {
        conn.execute(
            "INSERT INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at, last_alert_at)
             VALUES (?1, 'c', 'd', 'running', '2026-03-01T00:00:00Z', ?2, ?3)",
            params![format!("i{i}"), due, (i % 2 == 0).then_some("2026-03-01T01:00:00Z")],
        )
        .unwrap();
    }
    Migrations::from_slice(migrations::MIGRATIONS)
        .to_latest(&mut conn)
        .unwrap();
    for (i, due) in dues.iter().enumerate() {
        let (got, alerted): (i64, bool) = conn
            .query_row(
                "SELECT due_ms, alerted FROM sla_clocks WHERE item_id = ?1",
                [format!("i{i}")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            got,
            due.parse::<Timestamp>().unwrap().as_millisecond(),
            "{due}"
        );
        assert_eq!(alerted, i % 2 == 0);
    }
}

/// Every board query is an index range: no table scan, no sort of the whole set.
#[test]
fn board_queries_use_the_board_indexes() {
    let (_d, s) = board_store();
    let conn = s.conn();
    let plan = |sql: &str| -> String {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = st.parameter_count();
        let rows = st
            .query_map(rusqlite::params_from_iter((0..n).map(|_| 1i64)), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.join(" | ")
    };
    let mut checked = 0;
    for dept in [false, true] {
        let want = if dept {
            "sla_clocks_board_department"
        } else {
            "sla_clocks_board_clock"
        };
        let p = plan(&board_sql::next_clock_id(dept));
        assert!(
            p.starts_with(&format!("SEARCH sla_clocks USING COVERING INDEX {want}")),
            "next clock id {dept}: {p}"
        );
        assert!(!p.contains("TEMP B-TREE"), "next clock id {dept}: {p}");
        for what in board_sql::COUNTS {
            let p = plan(&board_sql::count(dept, what));
            let want = match what {
                board_sql::Count::Warned => "sla_clocks_board_alerted",
                _ => want,
            };
            assert!(
                p.starts_with(&format!("SEARCH sla_clocks USING COVERING INDEX {want}")),
                "count {dept} {what:?}: {p}"
            );
            checked += 1;
        }
        for clock in [false, true] {
            // "Department only" is read per clock id (see `board_query`), never like this.
            let p = if dept && !clock {
                plan(&board_sql::alerts(true, true))
            } else {
                plan(&board_sql::alerts(dept, clock))
            };
            // Newest rowids first, filtered as read: stops after LIMIT matching rows. No
            // index on alerts: the timer engine's transactions would pay for it on every
            // alert (ARCHITECTURE.md, the SLA board).
            assert_eq!(p, "SCAN alerts", "alerts {dept} {clock}");
            assert!(!p.contains("TEMP B-TREE"), "alerts {dept} {clock}: {p}");
            checked += 1;
        }
        for overdue in [false, true] {
            let p = plan(&board_sql::clocks(dept, overdue));
            let want = if dept {
                "sla_clocks_board_department"
            } else {
                "sla_clocks_board_clock"
            };
            assert!(
                p.contains(&format!("SEARCH sla_clocks USING INDEX {want}")),
                "clocks {dept} {overdue}: {p}"
            );
            assert!(p.contains("due_ms"), "a range on due_ms: {p}");
            assert!(!p.contains("TEMP B-TREE"), "clocks {dept} {overdue}: {p}");
            checked += 1;
        }
    }
    for dept in [false, true] {
        let (list, count) = board_sql::review(dept);
        let want = if dept {
            "review_queue_lead"
        } else {
            "review_queue_decided"
        };
        let p = plan(&list);
        assert!(p.contains(want), "review list {dept}: {p}");
        assert!(!p.contains("TEMP B-TREE"), "review list {dept}: {p}");
        assert!(!plan(&count).contains("TEMP B-TREE"), "review count {dept}");
        checked += 1;
    }
    assert_eq!(checked, 20);
}

/// A million open clocks: the board's read stays well under a second. Run with
/// `cargo test --release --lib board_with_a_million -- --ignored --nocapture`.
#[test]
#[ignore = "slow: builds a million clocks"]
fn board_with_a_million_open_clocks() {
    let (_d, s) = board_store();
    {
        let mut conn = s.conn();
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at, last_alert_at, due_ms, alerted)
                     VALUES (?1, ?2, ?3, ?4, '2026-03-01T00:00:00Z', ?5, ?6, ?7, ?8)",
                )
                .unwrap();
            let clocks = [
                "hotline.view",
                "portal.sign_in",
                "letter.register",
                "intake.supplement",
                "rights.feedback",
                "statutory.accept",
                "statutory.handle",
            ];
            let base: Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
            for i in 0..1_000_000i64 {
                let due = base
                    .checked_add(jiff::SignedDuration::from_secs(i * 7 % 400_000))
                    .unwrap();
                let state = if i % 10 == 0 {
                    "paused"
                } else if i % 3 == 0 {
                    "stopped"
                } else {
                    "running"
                };
                st.execute(params![
                    format!("item-{i}"),
                    clocks[(i % 7) as usize],
                    format!("dept-{}", i % 40),
                    state,
                    due.to_string(),
                    (i % 4 == 0).then_some("2026-03-01T01:00:00Z"),
                    due.as_millisecond(),
                    i % 4 == 0,
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    for (dept, clock) in [
        (None, None),
        (Some("dept-7"), None),
        (None, Some("hotline.view")),
        (Some("dept-7"), Some("letter.register")),
    ] {
        let mut q = bq(dept, clock);
        q.limit = 50;
        q.alerts_limit = 50;
        let _ = s.board(&q).unwrap(); // warm the page cache, as a refreshing board does
        let t = std::time::Instant::now();
        let d = s.board(&q).unwrap();
        let ms = t.elapsed().as_millis();
        eprintln!(
            "board {dept:?} {clock:?}: {ms} ms, {} clock ids, {} overdue listed",
            d.counts.len(),
            d.overdue.len()
        );
        assert!(ms < 2000, "{ms} ms");
    }
}
