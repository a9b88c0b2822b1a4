//! SLA clocks and status events: pending clocks, firing, recomputing on calendar changes.

use super::*;

#[test]
fn a_pending_clock_is_kept_and_computed_once_unless_stopped_meanwhile() {
    let (_d, s) = store();
    let mut it = item("p");
    let pending = |id: &str, clock: &str| Clock {
        item_id: id.into(),
        clock_id: clock.into(),
        department: "desk".into(),
        state: State::Pending,
        started_at: "2026-12-02T01:00:00Z".parse().unwrap(),
        due_at: "2026-12-02T01:00:00Z".parse().unwrap(),
        paused_at: None,
        extended_days: 0,
        last_alert_at: None,
        provisional: false,
        held: jiff::SignedDuration::ZERO,
    };
    let id = it.envelope.id.to_string();
    it.clocks = vec![(pending(&id, "a"), None), (pending(&id, "b"), None)];
    let Recorded::New(timers) = s.record_item(&it).unwrap() else {
        panic!("not new")
    };
    assert!(timers.is_empty(), "a pending clock has no timer");
    let found = s.pending_clocks().unwrap();
    assert_eq!(found.len(), 2);
    assert!(s.open_timers().unwrap().is_empty());
    // "b" is stopped by a status event before the calendar arrives.
    s.conn()
        .execute(
            "UPDATE sla_clocks SET state = 'stopped' WHERE clock_id = 'b'",
            [],
        )
        .unwrap();
    let computed: Vec<(i64, Clock, Option<Timestamp>)> = found
        .into_iter()
        .map(|(row, mut c)| {
            c.state = State::Running;
            c.due_at = "2027-02-01T09:30:00Z".parse().unwrap();
            (row, c, Some("2027-01-01T00:00:00Z".parse().unwrap()))
        })
        .collect();
    s.compute_clocks(&computed).unwrap();
    assert!(s.pending_clocks().unwrap().is_empty());
    let timers = s.open_timers().unwrap();
    assert_eq!(timers.len(), 1, "only the clock still pending was computed");
    let states: Vec<String> = s
        .conn()
        .prepare("SELECT state FROM sla_clocks ORDER BY clock_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(states, ["running", "stopped"]);
}

#[test]
fn clocks_fire_once_and_status_events_apply_once() {
    let (_d, s) = store();
    let it = item("a");
    let id = it.envelope.id.to_string();
    s.record_item(&it).unwrap();
    let timers = s.open_timers().unwrap();
    assert_eq!(timers.len(), 1);
    let row = timers[0].clock_row;
    let alert = |n: &str| FiredAlert {
        id: n.into(),
        item_id: id.clone(),
        clock_id: "c".into(),
        kind: "warning_50".into(),
        department: "desk".into(),
        due_at: Timestamp::UNIX_EPOCH,
        scheduled_at: Timestamp::UNIX_EPOCH,
        fired_at: Timestamp::UNIX_EPOCH,
        late: false,
        record: NewOutbox {
            ce_id: n.into(),
            ..it.outbox[0].clone()
        },
        mail: Some(NewMail {
            recipients: vec!["a@b.cn".into()],
            subject: "s".into(),
            body: "b".into(),
        }),
        provisional: false,
    };
    let mut fired = |_: &Clock| Fired {
        alerts: vec![alert("al-1")],
        last_alert_at: Some(Timestamp::UNIX_EPOCH),
        next: Some("2026-03-02T02:00:00Z".parse().unwrap()),
        next_provisional: false,
    };
    // Firing the same alert twice (a crash between fire and the engine's bookkeeping)
    // records it once: one alert, one extra outbox row, one mail.
    assert_eq!(s.fire(&[row], &mut fired).unwrap().alerts, 1);
    let again = s.fire(&[row], &mut fired).unwrap();
    assert_eq!(again.alerts, 0);
    assert_eq!(
        again.timers[0].at_ms,
        "2026-03-02T02:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_millisecond()
    );
    assert_eq!(s.pending_mail(10).unwrap().len(), 1);
    assert_eq!(
        s.alerts_for(&id).unwrap(),
        vec![("c".into(), "warning_50".into(), false)]
    );

    let ev = StatusRecord::new("e1", &id, "viewed", Timestamp::UNIX_EPOCH);
    let mut stop = |_: &Envelope, clocks: &mut Vec<Clock>| {
        clocks[0].state = State::Stopped;
        ClockWrites {
            updated: vec![(0, None)],
            ..Default::default()
        }
    };
    let StatusOutcome::Applied(t) = s.apply_status(&ev, &mut stop).unwrap() else {
        panic!("not applied")
    };
    assert_eq!(
        t,
        vec![Timer {
            clock_row: row,
            at_ms: i64::MIN
        }]
    );
    assert_eq!(
        s.apply_status(&ev, &mut stop).unwrap(),
        StatusOutcome::Duplicate
    );
    assert!(s.open_timers().unwrap().is_empty());
    let unknown = StatusRecord {
        item_id: "nope".into(),
        ..ev
    };
    assert_eq!(
        s.apply_status(&unknown, &mut stop).unwrap(),
        StatusOutcome::UnknownItem
    );
}

/// The closed loop's record of an event: whose it was, who handles the item, what it
/// said; the item's stage only moves forward (a late `accepted` after `replied` leaves it
/// at replied); the event's own records are queued in its transaction, once.
#[test]
fn status_events_keep_department_person_verdict_and_the_stage_only_advances() {
    let (_d, s) = store();
    let it = item("a");
    s.record_item(&it).unwrap();
    let id = it.envelope.id.to_string();
    let stage = || -> (String, i64) {
        s.conn()
            .query_row(
                "SELECT stage, stage_rank FROM items WHERE id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    assert_eq!(stage(), ("received".into(), 0));
    let at = |m: i64| Timestamp::from_millisecond(m).unwrap();
    let mut replied = StatusRecord::new("r1", &id, "replied", at(2_000));
    replied.department = Some("hrss".into());
    replied.person = Some("staff-7".into());
    replied.verdict = Some("ok".into());
    replied.stage = Some(petitiond_core::envelope::Stage::Replied);
    let notice = NewOutbox {
        topic: "petitiond.hrss".into(),
        key: id.clone(),
        ce_id: "bounce-1".into(),
        headers: vec![],
        payload: b"{}".to_vec(),
    };
    let mut with_notice = |_: &Envelope, _: &mut Vec<Clock>| ClockWrites {
        outbox: vec![notice.clone()],
        ..Default::default()
    };
    let pending = s.pending_count().unwrap();
    s.apply_status(&replied, &mut with_notice).unwrap();
    assert_eq!(stage(), ("replied".into(), 3));
    assert_eq!(s.pending_count().unwrap(), pending + 1);
    let mut late = StatusRecord::new("a1", &id, "accepted", at(1_000));
    late.stage = Some(petitiond_core::envelope::Stage::Handling);
    s.apply_status(&late, &mut |_, _| ClockWrites::default())
        .unwrap();
    assert_eq!(stage(), ("replied".into(), 3));
    let row: (String, String, String) = s
        .conn()
        .query_row(
            "SELECT department, person, verdict FROM status_events WHERE event_id = 'r1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, ("hrss".into(), "staff-7".into(), "ok".into()));
    // A redelivery queues nothing again.
    assert_eq!(
        s.apply_status(&replied, &mut with_notice).unwrap(),
        StatusOutcome::Duplicate
    );
    assert_eq!(s.pending_count().unwrap(), pending + 1);
}

#[test]
fn recompute_candidates_come_from_the_provisional_index() {
    let (_d, s) = store();
    let conn = s.conn();
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT rowid FROM sla_clocks WHERE state <> 'stopped' AND (provisional = 1 OR next_provisional = 1)",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().any(|p| p.contains("sla_clocks_provisional")),
        "{plan:?}"
    );
}

#[test]
fn calendar_state_is_replaced_whole() {
    let (_d, s) = store();
    assert!(s.calendar_state().unwrap().is_empty());
    let a = vec![
        (2026, "official".to_string(), "d1".to_string()),
        (2027, "provisional".to_string(), "d2".to_string()),
    ];
    s.set_calendar_state(&a).unwrap();
    assert_eq!(s.calendar_state().unwrap(), a);
    let b = vec![(2027, "official".to_string(), "d3".to_string())];
    s.set_calendar_state(&b).unwrap();
    assert_eq!(s.calendar_state().unwrap(), b);
}
