use super::*;
use crate::config::Config;

fn config() -> Config {
    Config::parse(
        "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[departments]]\nid = \"hrss\"\nname = \"hrss\"\ntopic = \"t.hrss\"\n[routing]\ndefault_lead = \"hrss\"\n",
        "t.toml",
        std::path::Path::new("."),
    )
    .unwrap()
}

/// The shipped 2026 calendar plus a made-up 2027 with one holiday (Jan 1), without
/// provisional years. Test data only: petitiond ships no calendar that the State Council
/// has not published.
fn with_2027(cfg: &mut Config) {
    use petitiond_core::sla::calendar::{Calendar, OfficeHours, YearCalendar};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("calendars");
    let y2026 = YearCalendar::read(&dir.join("cn-2026.toml")).unwrap();
    let y2027 =
        YearCalendar::parse(
        "year = 2027\nsource = \"test\"\n[[holiday]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-01\nnotice = \"test\"\n",
        "test-2027.toml",
    ).unwrap();
    let tz = cfg.sla.calendar.time_zone().clone();
    cfg.sla.calendar = Arc::new(
        Calendar::new(vec![y2026, y2027], Vec::new(), OfficeHours::default(), tz).unwrap(),
    );
}

/// The official 2026 file only, no provisional years: how every year beyond the
/// provisional range is answered (not at all), so clocks that need one go pending.
fn official_only(cfg: &mut Config) {
    cfg.sla.calendar = Arc::new(petitiond_core::sla::calendar::Calendar::builtin().unwrap());
}

fn stored(row: i64, clock: petitiond_core::sla::clock::Clock) -> StoredClock {
    StoredClock {
        row,
        clock,
        next: None,
        next_provisional: false,
    }
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Changed: pending is now only for years beyond the provisional range; the test keeps its
/// intent on a calendar without provisional years, and the computed clock is announced.
#[test]
fn a_pending_clock_waits_for_its_calendar_then_runs_from_its_start() {
    let mut cfg = config();
    official_only(&mut cfg);
    let policy = cfg.sla.clock("statutory.handle").unwrap().clone();
    let start: Timestamp = "2026-12-02T02:00:00Z".parse().unwrap();
    assert!(matches!(
        petitiond_core::sla::clock::Clock::start(&policy, "i", "hrss", start, &cfg.sla.calendar),
        Err(CalendarError::YearNotLoaded(2027))
    ));
    let pending = petitiond_core::sla::clock::Clock::pending(&policy, "i", "hrss", start);
    let at: Timestamp = "2026-12-06T02:00:00Z".parse().unwrap();
    let out = reconcile(
        &SlaInputs::from_config(&cfg),
        vec![stored(7, pending.clone())],
        false,
        at,
    );
    assert!(out.writes.is_empty());
    assert_eq!(out.still_pending, 1);

    with_2027(&mut cfg);
    let out = reconcile(
        &SlaInputs::from_config(&cfg),
        vec![stored(7, pending)],
        false,
        at,
    );
    assert_eq!(out.still_pending, 0);
    assert_eq!(out.computed, 1);
    let w = &out.writes[0];
    assert_eq!(w.row, 7);
    assert_eq!(w.clock.state, petitiond_core::sla::clock::State::Running);
    assert_eq!(
        w.clock.started_at, start,
        "from the item's arrival, not from now"
    );
    // 60 days after Wed 12-02 is Sun 2027-01-31 → the next working day, Mon 02-01, 17:30.
    assert_eq!(
        w.clock.due_at,
        "2027-02-01T09:30:00Z".parse::<Timestamp>().unwrap()
    );
    assert!(!w.clock.provisional);
    assert!(w.next.is_some());
    // One due-update record: pending → computed.
    let record = w.announce.as_ref().expect("announced");
    let value: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
    assert!(schema("due-update.v1.json").is_valid(&value), "{value}");
    assert_eq!(value["reason"], "pending_computed");
    assert_eq!(value["previous_state"], "pending");
    assert_eq!(value["previous_due_at"], serde_json::Value::Null);
    assert_eq!(value["due_at"], "2027-02-01T09:30:00Z");
    assert_eq!(value["provisional"], false);
    assert_eq!(record.topic, cfg.sla.alerts_topic);
    assert_eq!(record.key, "i");
}

/// Changed: on a calendar without provisional years, as before.
#[test]
fn a_clock_due_before_a_missing_year_still_warns_and_breaches() {
    let mut cfg = config();
    official_only(&mut cfg);
    let policy = cfg.sla.clock("statutory.accept").unwrap().clone();
    // Arrived Mon 12-14: due Tue 12-29; its reminders and escalation need 2027.
    let start: Timestamp = "2026-12-14T02:00:00Z".parse().unwrap();
    let clock =
        petitiond_core::sla::clock::Clock::start(&policy, "i", "hrss", start, &cfg.sla.calendar)
            .unwrap();
    let now: Timestamp = "2026-12-30T02:00:00Z".parse().unwrap();
    let fired = decide(&SlaInputs::from_config(&cfg), &Metrics::new(), &clock, now);
    let kinds: Vec<&str> = fired.alerts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["breach"], "warnings superseded, breach sent");
    // The first reminder needs 2027: looked at again when 2027 begins, not dropped.
    assert_eq!(
        fired.next,
        Some("2026-12-31T16:00:00Z".parse().unwrap()),
        "2027-01-01 00:00 in the office's zone"
    );
}

/// With provisional years (the daemon's calendar) the same clock's first reminder is
/// computed on provisional 2027 and marked so; its breach rests on 2026 only.
#[test]
fn a_reminder_in_a_provisional_year_is_computed_and_marked() {
    let cfg = config();
    let policy = cfg.sla.clock("statutory.accept").unwrap().clone();
    let start: Timestamp = "2026-12-14T02:00:00Z".parse().unwrap();
    let clock =
        petitiond_core::sla::clock::Clock::start(&policy, "i", "hrss", start, &cfg.sla.calendar)
            .unwrap();
    assert!(!clock.provisional, "due Tue 12-29 rests on 2026");
    let now: Timestamp = "2026-12-30T02:00:00Z".parse().unwrap();
    let fired = decide(&SlaInputs::from_config(&cfg), &Metrics::new(), &clock, now);
    assert_eq!(fired.alerts.len(), 1);
    assert!(!fired.alerts[0].provisional);
    let payload: serde_json::Value =
        serde_json::from_slice(&fired.alerts[0].record.payload).unwrap();
    assert!(schema("alert.v1.json").is_valid(&payload), "{payload}");
    assert_eq!(payload["provisional"], false);
    // 3 working days after Tue 12-29: Wed 12-30, Thu 12-31, (Fri 01-01 元旦) Mon 01-04.
    assert_eq!(
        fired.next,
        Some("2027-01-04T09:30:00Z".parse().unwrap()),
        "17:30 on Mon 2027-01-04"
    );
    assert!(fired.next_provisional);
    // When it fires, the reminder says it was computed provisionally.
    let mut c = clock.clone();
    c.last_alert_at = fired.last_alert_at;
    let fired = decide(
        &SlaInputs::from_config(&cfg),
        &Metrics::new(),
        &c,
        "2027-01-04T09:30:00.200Z".parse().unwrap(),
    );
    assert_eq!(fired.alerts[0].kind, "reminder_1");
    assert!(fired.alerts[0].provisional);
    let r = &fired.alerts[0].record;
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "ce_slaprov" && v == "true")
    );
}

/// An official file for a provisional year whose only difference is one extra day off.
fn official_2027_plus(cfg: &mut Config, extra: &str) {
    use petitiond_core::sla::calendar::{Calendar, OfficeHours, YearCalendar};
    let mut text = String::from("year = 2027\nsource = \"test\"\n");
    for (d, s) in petitiond_core::sla::provisional::special_days(2027).unwrap() {
        text.push_str(&format!("[[holiday]]\nname = \"{}\"\nfrom = {d}\n", s.name));
    }
    text.push_str(&format!("[[holiday]]\nname = \"test\"\nfrom = {extra}\n"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("calendars");
    let y2026 = YearCalendar::read(&dir.join("cn-2026.toml")).unwrap();
    let y2027 = YearCalendar::parse(&text, "test-2027.toml").unwrap();
    let tz = cfg.sla.calendar.time_zone().clone();
    cfg.sla.calendar = Arc::new(
        Calendar::with_provisional(vec![y2026, y2027], Vec::new(), OfficeHours::default(), tz)
            .unwrap(),
    );
}

/// Installing an official file for a provisional year recomputes every flagged clock and
/// announces exactly those whose due instant moved: a paused-and-resumed clock and an
/// unaffected one keep their due instants (replayed, not re-derived from a shifted start),
/// the affected one moves one working day.
#[test]
fn installing_an_official_file_announces_exactly_the_clocks_whose_due_moves() {
    use petitiond_core::sla::clock::Clock;
    use petitiond_core::sla::policy::EventKind;
    let mut cfg = config();
    let cal = cfg.sla.calendar.clone();
    let accept = cfg.sla.clock("statutory.accept").unwrap().clone();
    let rights = cfg.sla.clock("rights.feedback").unwrap().clone();
    let ts = |s: &str| s.parse::<Timestamp>().unwrap();
    // Mon 12-28 + 15 days = Tue 2027-01-12 (a working day in provisional 2027).
    let moves = Clock::start(&accept, "a", "hrss", ts("2026-12-28T02:00:00Z"), &cal).unwrap();
    assert_eq!(moves.due_at, ts("2027-01-12T09:30:00Z"));
    assert!(moves.provisional);
    // Mon 12-28 + 5 working days: 12-29, 12-30, 12-31, 01-04, 01-05.
    let stays = Clock::start(&rights, "b", "hrss", ts("2026-12-28T02:00:00Z"), &cal).unwrap();
    assert_eq!(stays.due_at, ts("2027-01-05T09:30:00Z"));
    assert!(stays.provisional);
    // Mon 12-21 + 15 = Tue 01-05; paused two days: due Thu 01-07 17:30 (a start shifted
    // by the pause, Wed 12-23 + 15 = Thu 01-07, would give the same only by chance).
    let mut paused = Clock::start(&accept, "c", "hrss", ts("2026-12-21T02:00:00Z"), &cal).unwrap();
    paused
        .apply(
            &accept,
            EventKind::Paused,
            ts("2026-12-22T02:00:00Z"),
            None,
            &cal,
        )
        .unwrap();
    paused
        .apply(
            &accept,
            EventKind::Resumed,
            ts("2026-12-24T02:00:00Z"),
            None,
            &cal,
        )
        .unwrap();
    assert_eq!(paused.due_at, ts("2027-01-07T09:30:00Z"));
    assert_eq!(paused.held, jiff::SignedDuration::from_hours(48));
    let candidates = vec![
        stored(1, moves.clone()),
        stored(2, stays.clone()),
        stored(3, paused.clone()),
    ];
    let at = ts("2027-01-02T02:00:00Z");
    // Same calendars: nothing to do.
    let out = reconcile(&SlaInputs::from_config(&cfg), candidates.clone(), false, at);
    assert!(out.writes.is_empty());

    official_2027_plus(&mut cfg, "2027-01-12");
    let out = reconcile(&SlaInputs::from_config(&cfg), candidates, true, at);
    let announced: Vec<&str> = out
        .writes
        .iter()
        .filter(|w| w.announce.is_some())
        .map(|w| w.clock.item_id.as_str())
        .collect();
    assert_eq!(announced, ["a"], "only the clock whose due moved");
    let a = &out.writes.iter().find(|w| w.row == 1).unwrap();
    assert_eq!(a.clock.due_at, ts("2027-01-13T09:30:00Z"));
    assert!(!a.clock.provisional);
    let value: serde_json::Value =
        serde_json::from_slice(&a.announce.as_ref().unwrap().payload).unwrap();
    assert!(schema("due-update.v1.json").is_valid(&value), "{value}");
    assert_eq!(value["reason"], "calendar_changed");
    assert_eq!(value["previous_due_at"], "2027-01-12T09:30:00Z");
    assert_eq!(value["previous_provisional"], true);
    assert_eq!(value["due_at"], "2027-01-13T09:30:00Z");
    assert_eq!(value["provisional_year"], serde_json::Value::Null);
    // The others are written (no longer provisional) with their due instants unchanged.
    for (row, was) in [(2, &stays), (3, &paused)] {
        let w = out.writes.iter().find(|w| w.row == row).unwrap();
        assert_eq!(w.clock.due_at, was.due_at, "row {row}");
        assert!(!w.clock.provisional, "row {row}");
        assert!(w.announce.is_none(), "row {row}");
    }
}

#[test]
fn timers_move_and_fall_due_in_order() {
    let mut t = Timers::default();
    t.set(Timer {
        clock_row: 1,
        at_ms: 300,
    });
    t.set(Timer {
        clock_row: 2,
        at_ms: 100,
    });
    t.set(Timer {
        clock_row: 3,
        at_ms: 200,
    });
    t.set(Timer {
        clock_row: 1,
        at_ms: 50,
    }); // moved earlier
    t.set(Timer {
        clock_row: 3,
        at_ms: i64::MIN,
    }); // stopped
    assert_eq!(t.len(), 2);
    assert_eq!(t.first(), Some(50));
    assert_eq!(t.take_due(150, 10), vec![(1, 50), (2, 100)]);
    assert!(t.is_empty());
}
