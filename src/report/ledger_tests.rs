//! The ledger over a real store: what the store records, the ledger lists and writes.

use super::{Format, write};
use crate::store::testing::{item, store};
use crate::store::{ClockWrites, LedgerQuery, NewCorrection, StatusRecord, Store};
use jiff::Timestamp;
use petitiond_core::sla::clock::State;

/// The ledger lists every item from `since` on (exactly: an item half a second before a
/// whole-second bound is out, though its text sorts after it), oldest first, with the
/// re-routed lead, the assists, the staff member last named, the completion clock's due
/// instant and state, the last event and the reply and evaluation verdicts; `--department`
/// keeps the items it leads or assists; CSV and JSON say the same.
#[test]
fn the_ledger_shows_stage_department_person_and_expected_completion_per_item() {
    let (_d, s) = store();
    let at = |t: &str| t.parse::<Timestamp>().unwrap();
    let mut ids = vec![];
    for (up, received, lead, assists) in [
        ("l1", "2026-03-01T15:59:59.5Z", "desk", vec![]),
        (
            "l2",
            "2026-03-02T01:00:00Z",
            "hrss",
            vec!["housing".to_string()],
        ),
        ("l3", "2026-03-03T01:00:00.25Z", "health", vec![]),
    ] {
        let mut it = item(up);
        it.envelope.received_at = at(received);
        it.decision.lead = lead.into();
        it.decision.assists = assists;
        it.clocks[0].0.clock_id = "statutory.accept".into();
        it.clocks[0].0.department = lead.into();
        it.clocks[0].0.started_at = at(received);
        s.record_item(&it).unwrap();
        ids.push(it.envelope.id.to_string());
    }
    let ev =
        |id: &str, n: &str, event: &str, t: &str, person: Option<&str>, verdict: Option<&str>| {
            let mut r = StatusRecord::new(n, id, event, at(t));
            r.person = person.map(String::from);
            r.verdict = verdict.map(String::from);
            r.stage = petitiond_core::sla::policy::stage_after(
                petitiond_core::sla::policy::EventKind::parse(event).unwrap(),
            );
            let stop = event == "accepted";
            s.apply_status(&r, &mut |_, clocks| {
                if stop {
                    clocks[0].state = State::Stopped;
                    ClockWrites {
                        updated: vec![(0, None)],
                        ..Default::default()
                    }
                } else {
                    ClockWrites::default()
                }
            })
            .unwrap();
        };
    ev(
        &ids[1],
        "e1",
        "accepted",
        "2026-03-02T02:00:00Z",
        Some("staff-1"),
        None,
    );
    ev(
        &ids[1],
        "e2",
        "replied",
        "2026-03-05T02:00:00Z",
        Some("staff-2"),
        Some("ok"),
    );
    ev(
        &ids[1],
        "e3",
        "evaluated",
        "2026-03-06T02:00:00Z",
        None,
        Some("dissatisfied"),
    );
    ev(&ids[2], "e4", "viewed", "2026-03-03T02:00:00Z", None, None);
    s.record_correction(&NewCorrection {
        event_id: "e4".into(),
        item_id: ids[2].clone(),
        at: at("2026-03-03T02:00:00Z"),
        actor: Some("desk".into()),
        category: None,
        department: Some("civil".into()),
    })
    .unwrap();

    let list = |q: LedgerQuery| {
        let mut rows = vec![];
        let n = s
            .ledger(&q, &mut |r| {
                rows.push(r);
                Ok(())
            })
            .unwrap();
        assert_eq!(n as usize, rows.len());
        rows
    };
    let all = list(LedgerQuery::default());
    assert_eq!(
        all.iter().map(|r| r.item_id.clone()).collect::<Vec<_>>(),
        ids
    );
    let r = &all[1];
    assert_eq!(r.stage, petitiond_core::envelope::Stage::Evaluated);
    assert_eq!(r.lead.as_deref(), Some("hrss"));
    assert_eq!(r.assists, vec!["housing".to_string()]);
    assert_eq!(r.person.as_deref(), Some("staff-2"));
    assert_eq!(r.expected_completion, Some(at("2026-03-02T02:00:00Z")));
    assert_eq!(r.clocks[0].state, "stopped");
    assert_eq!(
        r.last_event,
        Some(("evaluated".into(), at("2026-03-06T02:00:00Z")))
    );
    assert_eq!(r.reply.as_deref(), Some("ok"));
    assert_eq!(r.evaluation.as_deref(), Some("dissatisfied"));
    assert_eq!(all[0].stage, petitiond_core::envelope::Stage::Received);
    assert_eq!((all[0].person.clone(), all[0].reply.clone()), (None, None));
    // Re-routed: the correction's department is the lead now.
    assert_eq!(all[2].lead.as_deref(), Some("civil"));
    assert_eq!(all[2].stage, petitiond_core::envelope::Stage::Accepted);

    // `since` is exact: l1 (15:59:59.5Z) is before 16:00:00Z though its text sorts after.
    let since = list(LedgerQuery {
        since: Some(at("2026-03-01T16:00:00Z")),
        department: None,
    });
    assert_eq!(since.len(), 2, "{since:?}");
    let since = list(LedgerQuery {
        since: Some(at("2026-03-01T15:59:59Z")),
        department: None,
    });
    assert_eq!(since.len(), 3);
    let dept = |d: &str| {
        list(LedgerQuery {
            since: None,
            department: Some(d.into()),
        })
        .into_iter()
        .map(|r| r.item_id)
        .collect::<Vec<_>>()
    };
    assert_eq!(dept("housing"), vec![ids[1].clone()]);
    assert_eq!(dept("civil"), vec![ids[2].clone()]);
    assert!(dept("health").is_empty(), "re-routed away from health");

    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let mut csv = vec![];
    write(&s, &LedgerQuery::default(), Format::Csv, &tz, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("item_id,channel,category,received_at,stage,stage_zh,lead"));
    assert!(
        lines[2]
            .contains(",evaluated,评价,hrss,housing,staff-2,2026-03-02T10:00:00+08:00,stopped,"),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].ends_with(",evaluated,2026-03-06T10:00:00+08:00,ok,dissatisfied"),
        "{}",
        lines[2]
    );
    let mut json = vec![];
    write(&s, &LedgerQuery::default(), Format::Json, &tz, &mut json).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert_eq!(json[1]["stage_zh"], "评价");
    assert_eq!(json[1]["expected_completion"], "2026-03-02T10:00:00+08:00");
    assert_eq!(json[1]["clocks"][0]["clock"], "statutory.accept");
    let mut empty = vec![];
    let none = LedgerQuery {
        since: Some(at("2027-01-01T00:00:00Z")),
        department: None,
    };
    write(&s, &none, Format::Json, &tz, &mut empty).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&empty).unwrap(),
        serde_json::json!([])
    );
}
