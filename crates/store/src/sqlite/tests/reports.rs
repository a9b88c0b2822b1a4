//! The monthly report's reads, the key-case list, the ledger, the board and the summary over
//! one history written through the store API: known answers on every backend, and the same
//! answers on PostgreSQL as on SQLite (whose reads `report::figures`' tests check in depth).

use super::*;
use crate::report::KeyCaseQuery;
use crate::testing::backends;
use petitiond_core::envelope::{Category, Channel};
use petitiond_core::sla::policy::{EventKind, stage_after};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// What the history does to an item after it is recorded.
struct Event {
    item: usize,
    id: String,
    event: &'static str,
    at: Timestamp,
    verdict: Option<&'static str>,
    escalate: bool,
}

/// Forty items from September to November 2026 (some within a second of a month's start),
/// every channel, three leads, repeat-index rows, an acceptance clock each, and their events:
/// accepted (stops the clock), replied `ok` or `bounced`, evaluated, escalations, re-routes.
fn history() -> (Vec<NewItem>, Vec<Event>, Vec<NewCorrection>) {
    let base = at("2026-09-20T00:00:00Z");
    let channels = [Channel::Hotline, Channel::Portal, Channel::Letter];
    let categories = [
        Some(Category::Livelihood),
        Some(Category::Rights),
        None,
        Some(Category::Historical),
    ];
    let leads = ["hrss", "desk", "health"];
    let mut items = Vec::new();
    let mut events = Vec::new();
    let mut corrections = Vec::new();
    for n in 0..40usize {
        let mut it = item(&format!("h{n}"));
        let received = match n {
            // Half a second before and after October's start: text order is not time order.
            7 => at("2026-09-30T23:59:59.5Z"),
            8 => at("2026-10-01T00:00:00.25Z"),
            _ => base + jiff::SignedDuration::from_millis(n as i64 * 37 * 3_600_000 + 123),
        };
        let id = it.envelope.id.to_string();
        it.envelope.channel = channels[n % 3];
        it.envelope.received_at = received;
        it.envelope.category = categories[n % 4];
        if n % 5 == 2 {
            it.envelope.upstream_created_at = Some(at("2019-05-01T00:00:00Z"));
        }
        it.decision.lead = leads[n % 3].into();
        it.decision.assists = if n % 2 == 0 {
            vec!["housing".into()]
        } else {
            vec![]
        };
        it.decision.decided_at = received;
        let due = received + jiff::SignedDuration::from_hours(15 * 24);
        it.clocks[0].0.clock_id = "statutory.accept".into();
        it.clocks[0].0.department = leads[n % 3].into();
        it.clocks[0].0.started_at = received;
        it.clocks[0].0.due_at = due;
        it.clocks[0].1 = Some(due);
        it.person_index = Some(PersonIndex {
            person_keys: vec![format!("p{}", n % 7)],
            matter: format!("m{}", n % 3),
        });
        let mut ev = |k: &str, event: &'static str, hours: i64, verdict, escalate| {
            events.push(Event {
                item: n,
                id: format!("{k}-{n}"),
                event,
                at: received + jiff::SignedDuration::from_hours(hours),
                verdict,
                escalate,
            })
        };
        if n % 4 == 0 {
            ev("acc", "accepted", 40, None, false);
        }
        if n % 4 == 1 {
            ev(
                "rep",
                "replied",
                70,
                Some(if n % 8 == 1 { "bounced" } else { "ok" }),
                false,
            );
        }
        if n % 5 == 0 {
            let verdict = ["satisfied", "basically_satisfied", "dissatisfied"][n % 3];
            ev("ev", "evaluated", 120, Some(verdict), false);
            ev("ev2", "evaluated", 150, Some("satisfied"), false);
        }
        if n % 6 == 0 {
            ev("esc", "viewed", 20, None, true);
        }
        if n % 9 == 0 {
            corrections.push(NewCorrection {
                event_id: format!("cor{n}"),
                item_id: id.clone(),
                at: received + jiff::SignedDuration::from_hours(1),
                actor: Some("desk".into()),
                category: None,
                department: Some("civil".into()),
            });
        }
        items.push(it);
    }
    (items, events, corrections)
}

/// Writes the history into `s`.
fn write(s: &dyn Store, items: &[NewItem], events: &[Event], corrections: &[NewCorrection]) {
    for it in items {
        assert!(matches!(s.record_item(it).unwrap(), Recorded::New(_)));
    }
    for e in events {
        let it = &items[e.item];
        let item_id = it.envelope.id.to_string();
        let mut r = StatusRecord::new(&e.id, &item_id, e.event, e.at);
        r.verdict = e.verdict.map(String::from);
        r.department = Some(it.decision.lead.clone());
        r.person = Some(format!("staff-{}", e.item % 4));
        r.stage = stage_after(EventKind::parse(e.event).unwrap());
        let stop = e.event == "accepted";
        let escalation = e.escalate.then(|| FiredAlert {
            id: format!("al-{}", e.id),
            item_id: item_id.clone(),
            clock_id: "statutory.accept".into(),
            kind: "escalation".into(),
            department: it.decision.lead.clone(),
            due_at: it.clocks[0].0.due_at,
            scheduled_at: e.at,
            fired_at: e.at,
            late: false,
            record: NewOutbox {
                ce_id: format!("al-{}", e.id),
                ..it.outbox[0].clone()
            },
            mail: None,
            provisional: false,
        });
        let out = s
            .apply_status(&r, &mut |_, clocks| {
                let mut w = ClockWrites {
                    alerts: escalation.clone().into_iter().collect(),
                    ..Default::default()
                };
                if stop && let Some(i) = clocks.iter().position(|c| c.state == State::Running) {
                    clocks[i].state = State::Stopped;
                    w.updated.push((i, None));
                }
                w
            })
            .unwrap();
        assert!(matches!(out, StatusOutcome::Applied(_)), "{}", e.id);
    }
    for c in corrections {
        assert!(s.record_correction(c).unwrap());
    }
}

/// Everything the reads answer, in a form both backends can be compared on (key-case rows
/// by their ids and fields; unordered groups sorted).
fn answers(s: &dyn Store) -> Vec<String> {
    let mut out = Vec::new();
    let months = [
        ("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z"),
        ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"),
        ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
    ];
    for (start, end) in months {
        let (start, end) = (at(start), at(end));
        for by_lead in [false, true] {
            let mut rows = s.report_items(start, end, by_lead).unwrap();
            rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            out.push(format!("items {start} {by_lead}: {rows:?}"));
        }
        let window = at("2026-01-01T00:00:00Z");
        let rows = s.report_person_items(window, start, end).unwrap();
        out.push(format!("persons {start}: {rows:?}"));
        for stop_on in [vec![], vec!["accepted".to_string(), "rejected".to_string()]] {
            let mut rows = s
                .report_clocks("statutory.accept", &stop_on, start, end)
                .unwrap();
            rows.sort_by(|a, b| (&a.item_id, a.stopped_at).cmp(&(&b.item_id, b.stopped_at)));
            out.push(format!("clocks {start} {stop_on:?}: {rows:?}"));
        }
        let rows = s.report_evaluations(start, end).unwrap();
        out.push(format!("evaluations {start}: {rows:?}"));
    }
    let q = KeyCaseQuery {
        received_by: at("2026-10-05T00:00:00Z"),
        matter_by: at("2021-01-01T00:00:00Z"),
        key_category: "historical".into(),
        deadline_clock: "statutory.accept".into(),
    };
    for k in s.key_case_rows(&q).unwrap() {
        out.push(format!(
            "key case {} {:?} {:?} {} {:?} {:?}",
            k.envelope.id, k.lead, k.assists, k.escalation_alert, k.first_on_matter, k.deadline
        ));
    }
    for q in [
        LedgerQuery::default(),
        LedgerQuery {
            since: Some(at("2026-10-01T00:00:00Z")),
            department: None,
        },
        LedgerQuery {
            since: None,
            department: Some("housing".into()),
        },
    ] {
        let mut rows = Vec::new();
        let n = s
            .ledger(&q, &mut |r| {
                rows.push(format!("{r:?}"));
                Ok(())
            })
            .unwrap();
        assert_eq!(n as usize, rows.len());
        out.push(format!("ledger {q:?}: {}", rows.join("\n")));
    }
    out.push(format!("summary: {:?}", s.summary().unwrap()));
    for dept in [None, Some("hrss".to_string())] {
        let q = BoardQuery {
            department: dept,
            clock: None,
            now: at("2026-10-20T00:00:00Z"),
            limit: 5,
            alerts_limit: 5,
            clock_ids: vec!["statutory.accept".into()],
        };
        out.push(format!("board: {:?}", s.board(&q).unwrap()));
    }
    out
}

/// Known answers on every backend, and PostgreSQL's answers equal SQLite's line by line.
#[test]
fn reports_ledger_board_and_summary_read_the_same_history_alike_on_every_backend() {
    let (items, events, corrections) = history();
    let mut reference: Option<Vec<String>> = None;
    for b in backends() {
        eprintln!("store backend: {}", b.name);
        write(&*b, &items, &events, &corrections);
        let s: &dyn Store = &*b;
        // Known answers: October's items, exact at the half-second around its start.
        let oct = s
            .report_items(
                at("2026-10-01T00:00:00Z"),
                at("2026-11-01T00:00:00Z"),
                false,
            )
            .unwrap();
        let in_oct = items
            .iter()
            .filter(|i| {
                i.envelope.received_at >= at("2026-10-01T00:00:00Z")
                    && i.envelope.received_at < at("2026-11-01T00:00:00Z")
            })
            .count() as u64;
        assert_eq!(oct.iter().map(|c| c.items).sum::<u64>(), in_oct);
        let mut ledger = Vec::new();
        s.ledger(&LedgerQuery::default(), &mut |r| {
            ledger.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(ledger.len(), items.len());
        assert!(
            ledger
                .windows(2)
                .all(|w| w[0].received_at <= w[1].received_at)
        );
        let rerouted = ledger
            .iter()
            .find(|r| r.item_id == items[9].envelope.id.to_string())
            .unwrap();
        assert_eq!(rerouted.lead.as_deref(), Some("civil"));
        let mut since = 0;
        s.ledger(
            &LedgerQuery {
                since: Some(at("2026-10-01T00:00:00Z")),
                department: None,
            },
            &mut |r| {
                assert!(r.received_at >= at("2026-10-01T00:00:00Z"));
                since += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            since,
            items.len() - 8,
            "the half second before October is out"
        );
        let evals = s
            .report_evaluations(at("2026-09-01T00:00:00Z"), at("2026-12-01T00:00:00Z"))
            .unwrap();
        assert_eq!(evals.len(), 16);
        assert!(evals.windows(2).all(|w| w[0].at <= w[1].at));
        let stopped = s
            .report_clocks(
                "statutory.accept",
                &["accepted".into()],
                at("2026-09-01T00:00:00Z"),
                at("2026-12-01T00:00:00Z"),
            )
            .unwrap();
        // Accepted: every fourth item. Open: the others due before December.
        assert_eq!(
            stopped.iter().filter(|c| c.stopped_at.is_some()).count(),
            10
        );
        let open = (0..items.len())
            .filter(|n| n % 4 != 0 && items[*n].clocks[0].0.due_at < at("2026-12-01T00:00:00Z"))
            .count();
        assert_eq!(open, 27);
        assert_eq!(
            stopped.iter().filter(|c| c.stopped_at.is_none()).count(),
            open
        );
        let key = s
            .key_case_rows(&KeyCaseQuery {
                received_by: at("2026-10-05T00:00:00Z"),
                matter_by: at("2021-01-01T00:00:00Z"),
                key_category: "historical".into(),
                deadline_clock: "statutory.accept".into(),
            })
            .unwrap();
        assert!(key.iter().any(|k| k.escalation_alert));
        assert!(key.iter().any(|k| k.deadline.is_some()));
        assert!(key.iter().all(|k| k.first_on_matter.is_some()));
        assert_eq!(s.summary().unwrap().items, items.len() as u64);
        let got = answers(s);
        match &reference {
            None => reference = Some(got),
            Some(want) => {
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(want) {
                    assert_eq!(g, w, "{} differs from sqlite", b.name);
                }
            }
        }
    }
}

/// The ledger hands over every item once, however many fetches it takes (PostgreSQL reads
/// it through a portal, 500 rows at a time).
#[test]
fn the_ledger_hands_over_every_item_once_past_one_fetch() {
    each_backend(|s| {
        let items: Vec<NewItem> = (0..1_234).map(|n| item(&format!("l{n}"))).collect();
        for r in s.record_items(&items).unwrap() {
            assert!(matches!(r.unwrap(), Recorded::New(_)));
        }
        let mut seen = std::collections::BTreeSet::new();
        let n = s
            .ledger(&LedgerQuery::default(), &mut |r| {
                assert!(seen.insert(r.item_id), "handed over twice");
                Ok(())
            })
            .unwrap();
        assert_eq!((n, seen.len()), (1_234, 1_234));
        // The callback's error stops the export and is returned.
        let mut calls = 0;
        let err = s
            .ledger(&LedgerQuery::default(), &mut |_| {
                calls += 1;
                Err(StoreError::Corrupt("disk full".into()))
            })
            .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(calls, 1);
    });
}
