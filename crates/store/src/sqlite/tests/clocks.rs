//! SLA clocks and status events: pending clocks, firing, recomputing on calendar changes.

use super::*;

#[test]
fn a_pending_clock_is_kept_and_computed_once_unless_stopped_meanwhile() {
    each_backend(|s| {
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
        s.execute("UPDATE sla_clocks SET state = 'stopped' WHERE clock_id = 'b'");
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
        let state = |c: &str| {
            s.query_text(&format!(
                "SELECT state FROM sla_clocks WHERE clock_id = '{c}'"
            ))
            .unwrap()
        };
        assert_eq!(
            (state("a"), state("b")),
            ("running".into(), "stopped".into())
        );
    });
}

#[test]
fn clocks_fire_once_and_status_events_apply_once() {
    each_backend(|s| {
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
    });
}

/// The closed loop's record of an event: whose it was, who handles the item, what it
/// said; the item's stage only moves forward (a late `accepted` after `replied` leaves it
/// at replied); the event's own records are queued in its transaction, once.
#[test]
fn status_events_keep_department_person_verdict_and_the_stage_only_advances() {
    each_backend(|s| {
        let it = item("a");
        s.record_item(&it).unwrap();
        let id = it.envelope.id.to_string();
        let stage = || -> (String, i64) {
            (
                s.query_text(&format!("SELECT stage FROM items WHERE id = '{id}'"))
                    .unwrap(),
                s.query_i64(&format!("SELECT stage_rank FROM items WHERE id = '{id}'")),
            )
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
        let col = |c: &str| {
            s.query_text(&format!(
                "SELECT {c} FROM status_events WHERE event_id = 'r1'"
            ))
            .unwrap()
        };
        assert_eq!(
            (col("department"), col("person"), col("verdict")),
            ("hrss".into(), "staff-7".into(), "ok".into())
        );
        // A redelivery queues nothing again.
        assert_eq!(
            s.apply_status(&replied, &mut with_notice).unwrap(),
            StatusOutcome::Duplicate
        );
        assert_eq!(s.pending_count().unwrap(), pending + 1);
    });
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
    each_backend(|s| {
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
    });
}

/// Two SLA engines (two instances on one PostgreSQL) firing the same clock at once: the
/// second waits for the first's lock on the clock row and decides on what the first wrote;
/// the alert, its Kafka record and its mail exist once.
#[test]
fn two_engines_firing_one_clock_serialize_on_it_and_record_the_alert_once() {
    let Some(b) = crate::testing::postgres_store() else {
        return;
    };
    let first = b.postgres().unwrap().clone();
    let second = Arc::new(
        PgStore::connect_config(first.config().clone(), 2, Duration::from_secs(10)).unwrap(),
    );
    let it = item("a");
    let id = it.envelope.id.to_string();
    first.record_item(&it).unwrap();
    let row = first.open_timers().unwrap()[0].clock_row;
    let pending = first.pending_count().unwrap();
    let fired_at: Timestamp = "2026-03-02T01:30:00Z".parse().unwrap();
    let alert = FiredAlert {
        id: "al-once".into(),
        item_id: id.clone(),
        clock_id: "c".into(),
        kind: "warning_50".into(),
        department: "desk".into(),
        due_at: fired_at,
        scheduled_at: fired_at,
        fired_at,
        late: false,
        record: NewOutbox {
            ce_id: "al-once".into(),
            ..it.outbox[0].clone()
        },
        mail: Some(NewMail {
            recipients: vec!["a@b.cn".into()],
            subject: "s".into(),
            body: "b".into(),
        }),
        provisional: false,
    };
    let seen = Mutex::new(Vec::new());
    let barrier = std::sync::Barrier::new(2);
    let recorded: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = [&first, &second]
            .into_iter()
            .map(|s| {
                let (seen, barrier, alert) = (&seen, &barrier, &alert);
                sc.spawn(move || {
                    barrier.wait();
                    s.fire(&[row], &mut |c: &Clock| {
                        seen.lock().unwrap().push(c.last_alert_at);
                        // Long enough for the other engine to reach the row meanwhile.
                        std::thread::sleep(Duration::from_millis(300));
                        Fired {
                            alerts: vec![alert.clone()],
                            last_alert_at: Some(fired_at),
                            next: Some("2026-03-02T02:00:00Z".parse().unwrap()),
                            next_provisional: false,
                        }
                    })
                    .unwrap()
                    .alerts
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(recorded, 1);
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    assert_eq!(
        seen,
        [None, Some(fired_at)],
        "the second saw the first's write"
    );
    assert_eq!(second.alerts_for(&id).unwrap().len(), 1);
    assert_eq!(second.pending_mail(10).unwrap().len(), 1);
    assert_eq!(second.pending_count().unwrap(), pending + 1);
}

/// When the calendars change: the open clocks resting on a provisional year are found (with
/// the pending ones); a recomputed clock is written with its announcement (queued once by its
/// CloudEvents id) and its write-back (for its own source only), unless a status event changed
/// the row since it was read — then it is skipped and left as the event wrote it.
#[test]
fn recomputed_clocks_are_written_with_their_announcement_unless_changed_meanwhile() {
    each_backend(|s| {
        let mut it = item("r");
        let id = it.envelope.id.to_string();
        let due: Timestamp = "2027-01-04T01:00:00Z".parse().unwrap();
        let mut prov = it.clocks[0].0.clone();
        prov.clock_id = "prov".into();
        prov.due_at = due;
        prov.provisional = true;
        let mut other = prov.clone();
        other.clock_id = "other".into();
        it.clocks = vec![(prov, Some(due)), (other, Some(due))];
        // A third clock that no calendar change concerns.
        let mut plain = it.clocks[0].0.clone();
        plain.clock_id = "plain".into();
        plain.provisional = false;
        it.clocks.push((plain, None));
        s.record_item(&it).unwrap();
        assert_eq!(s.open_provisional_clocks().unwrap(), 2);
        assert!(s.clocks_to_recompute(false).unwrap().is_empty());
        let found = s.clocks_to_recompute(true).unwrap();
        let mut ids: Vec<&str> = found.iter().map(|c| c.clock.clock_id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["other", "prov"]);
        // A status event extends "other" after it was read.
        s.execute("UPDATE sla_clocks SET extended_days = 5 WHERE clock_id = 'other'");
        let official: Timestamp = "2027-01-05T01:00:00Z".parse().unwrap();
        let pending = s.pending_count().unwrap();
        let writes: Vec<Recomputed> = found
            .iter()
            .map(|c| {
                let mut clock = c.clock.clone();
                clock.due_at = official;
                clock.provisional = false;
                Recomputed {
                    row: c.row,
                    was: c.clock.clone(),
                    clock,
                    next: Some(official),
                    next_provisional: false,
                    announce: Some(NewOutbox {
                        ce_id: format!("due-{}", c.clock.clock_id),
                        ..it.outbox[0].clone()
                    }),
                    writeback: vec![
                        NewWriteback {
                            item_id: id.clone(),
                            source: "mailbox".into(),
                            kind: "due".into(),
                            value: official.to_string(),
                            key: format!("due-{}", c.clock.clock_id),
                            body: b"{}".to_vec(),
                        },
                        NewWriteback {
                            item_id: id.clone(),
                            source: "portal".into(),
                            kind: "due".into(),
                            value: official.to_string(),
                            key: format!("portal-due-{}", c.clock.clock_id),
                            body: b"{}".to_vec(),
                        },
                    ],
                }
            })
            .collect();
        let r = s.recompute_clocks(&writes).unwrap();
        assert_eq!((r.announced, r.skipped), (1, 1));
        assert_eq!(r.timers.len(), 1);
        assert_eq!(r.timers[0].at_ms, official.as_millisecond());
        assert_eq!(s.pending_count().unwrap(), pending + 1);
        assert_eq!(s.writeback_pending("mailbox").unwrap(), 1);
        assert_eq!(
            s.writeback_pending("portal").unwrap(),
            0,
            "not the item's source"
        );
        let ms = |c: &str| {
            s.query_i64(&format!(
                "SELECT due_ms FROM sla_clocks WHERE clock_id = '{c}'"
            ))
        };
        assert_eq!(ms("prov"), official.as_millisecond());
        assert_eq!(ms("other"), due.as_millisecond(), "the event's row is kept");
        assert_eq!(s.open_provisional_clocks().unwrap(), 1);
        // The same recompute again: the row no longer holds what it was computed from.
        let again = s.recompute_clocks(&writes).unwrap();
        assert_eq!((again.announced, again.skipped), (0, 2));
        assert_eq!(s.pending_count().unwrap(), pending + 1);
    });
}

/// Two instances starting together both replace the calendar state: one after the other, so
/// neither fails (without the table lock, the second's DELETE missed the first's new rows and
/// its INSERT hit their keys) and the state is one of the two whole.
#[test]
fn instances_replacing_the_calendar_state_at_once_both_succeed() {
    let Some(b) = crate::testing::postgres_store() else {
        return;
    };
    let first = b.postgres().unwrap().clone();
    let second = Arc::new(
        PgStore::connect_config(first.config().clone(), 2, Duration::from_secs(10)).unwrap(),
    );
    let state = |digest: &str| -> Vec<(i16, String, String)> {
        (2026..2030)
            .map(|y| (y, "official".to_string(), format!("{digest}{y}")))
            .collect()
    };
    let (a, c) = (state("a"), state("c"));
    std::thread::scope(|sc| {
        let one = sc.spawn(|| {
            for _ in 0..30 {
                first.set_calendar_state(&a).unwrap();
            }
        });
        let two = sc.spawn(|| {
            for _ in 0..30 {
                second.set_calendar_state(&c).unwrap();
            }
        });
        one.join().unwrap();
        two.join().unwrap();
    });
    let got = first.calendar_state().unwrap();
    assert!(got == a || got == c, "{got:?}");
}
