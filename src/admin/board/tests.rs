use super::*;
use crate::store::{
    BoardCount, BoardReview, Decision, FiredAlert, NewItem, NewOutbox, SqliteStore, Store,
};
use petitiond_core::envelope::{Channel, Envelope, Personal, Request, Upstream};
use petitiond_core::sla::clock::{Clock, State as ClockState};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn shanghai() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap()
}

fn cfg() -> BoardConfig {
    BoardConfig {
        tz: shanghai(),
        clock_ids: vec!["hotline.view".into(), "letter.register".into()],
        departments: vec![
            ("hrss".into(), "人社局".into()),
            ("intake-desk".into(), "信访接待科".into()),
        ],
        refresh_secs: 15,
        calendar: None,
    }
}

fn params(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn clock(item: &str, clock: &str, dept: &str, started: &str, due: &str) -> BoardClock {
    BoardClock {
        item_id: item.into(),
        clock_id: clock.into(),
        department: dept.into(),
        state: ClockState::Running,
        started_at: ts(started),
        due_at: ts(due),
        provisional: false,
    }
}

#[test]
fn escapes_every_special_character() {
    assert_eq!(
        esc(r#"<script>alert('x')</script> & "q""#),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
    );
    assert_eq!(esc("hotline.view 人社局"), "hotline.view 人社局");
}

#[test]
fn durations_read_as_two_units() {
    for (secs, text) in [
        (0, "0s"),
        (45, "45s"),
        (60, "1m 00s"),
        (725, "12m 05s"),
        (3600, "1h 00m"),
        (11_220, "3h 07m"),
        (86_400, "1d 0h"),
        (187_200, "2d 4h"),
    ] {
        assert_eq!(human(secs), text, "{secs}");
    }
}

#[test]
fn filters_are_optional_bounded_and_validated() {
    let f = parse_filter(&params(&[])).unwrap();
    assert_eq!(
        f,
        Filter {
            department: None,
            clock: None,
            limit: DEFAULT_LIMIT
        }
    );
    // An empty select ("all") is no filter.
    let f = parse_filter(&params(&[
        ("department", "hrss"),
        ("clock", ""),
        ("limit", "5"),
        ("other", "ignored"),
    ]))
    .unwrap();
    assert_eq!(f.department.as_deref(), Some("hrss"));
    assert_eq!(f.clock, None);
    assert_eq!(f.limit, 5);
    for bad in ["0", "501", "-1", "ten"] {
        assert!(parse_filter(&params(&[("limit", bad)])).is_err(), "{bad}");
    }
    let long = "x".repeat(129);
    assert!(parse_filter(&params(&[("clock", &long)])).is_err());
}

#[test]
fn overdue_and_due_in_are_computed_from_now_in_the_office_zone() {
    let now = ts("2026-03-02T02:00:00Z"); // 10:00 in Shanghai
    let data = BoardData {
        counts: vec![BoardCount {
            clock_id: "hotline.view".into(),
            running: 10,
            overdue: 3,
            warning: 2,
            paused: 4,
            pending: 1,
        }],
        overdue: vec![
            clock(
                "a",
                "hotline.view",
                "hrss",
                "2026-03-02T00:00:00Z",
                "2026-03-02T01:00:00Z",
            ),
            // Due exactly now: overdue (the store's rule too: due_ms <= now).
            clock(
                "b",
                "hotline.view",
                "hrss",
                "2026-03-02T01:30:00Z",
                "2026-03-02T02:00:00Z",
            ),
        ],
        upcoming: vec![clock(
            "c",
            "hotline.view",
            "hrss",
            "2026-03-02T01:50:00Z",
            "2026-03-02T02:12:04.500Z",
        )],
        alerts: vec![BoardAlert {
            kind: "breach".into(),
            clock_id: "hotline.view".into(),
            item_id: "a".into(),
            department: "hrss".into(),
            due_at: ts("2026-03-02T01:00:00Z"),
            fired_at: ts("2026-03-02T01:00:00.250Z"),
            late: false,
            provisional: false,
        }],
        ..BoardData::default()
    };
    let f = parse_filter(&params(&[])).unwrap();
    let v = view(&data, &f, now, &shanghai());
    assert_eq!(v.generated_at, "2026-03-02T10:00:00+08:00");
    assert_eq!(v.time_zone, "Asia/Shanghai");
    assert_eq!(
        v.counts[0],
        CountView {
            clock_id: "hotline.view".into(),
            within: 5,
            warning: 2,
            overdue: 3,
            running: 10,
            paused: 4,
            pending: 1,
            open: 15
        }
    );
    let a = &v.overdue[0];
    assert_eq!(a.due_at, "2026-03-02T09:00:00+08:00");
    assert_eq!(a.started_at, "2026-03-02T08:00:00+08:00");
    assert!(a.overdue);
    assert_eq!(a.due_in_secs, -3600);
    assert_eq!(a.due_in, "1h 00m overdue");
    assert!(v.overdue[1].overdue);
    assert_eq!(v.overdue[1].due_in, "0s overdue");
    let c = &v.upcoming[0];
    assert!(!c.overdue);
    assert_eq!(c.due_in_secs, 724);
    assert_eq!(c.due_in, "in 12m 05s", "rounded up: it is not due yet");
    assert_eq!(c.due_at, "2026-03-02T10:12:04+08:00");
    assert_eq!(v.alerts[0].fired_at, "2026-03-02T09:00:00+08:00");

    let html = render_html(&v, &cfg());
    assert!(html.contains("data-item=\"a\" data-clock=\"hotline.view\" data-department=\"hrss\" data-state=\"running\" data-due=\"2026-03-02T09:00:00+08:00\""));
    assert!(html.contains("<td data-col=\"due\"><time datetime=\"2026-03-02T09:00:00+08:00\">2026-03-02 09:00:00</time></td>"));
    assert!(html.contains("<td class=\"n\" data-count=\"within\">5</td>"));
    assert!(html.contains("<td class=\"n overdue\" data-count=\"overdue\">3</td>"));
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"15\">"));
    assert!(!html.contains("<script"), "the page has no script");
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["overdue"][0]["due_in_secs"], -3600);
    assert_eq!(json["upcoming"][0]["due_at"], "2026-03-02T10:12:04+08:00");
    assert_eq!(json["filter"]["department"], serde_json::Value::Null);
}

fn review(item: &str, lead: &str, decided: &str) -> BoardReview {
    use petitiond_core::envelope::{Candidate, Category};
    BoardReview {
        item_id: item.into(),
        lead: lead.into(),
        decided_at: ts(decided),
        source: "model".into(),
        confidence: 0.4449,
        candidates: vec![
            Candidate {
                category: Category::Policy,
                confidence: 0.4449,
            },
            Candidate {
                category: Category::Rights,
                confidence: 0.305,
            },
        ],
    }
}

/// Issue 20: the board lists the items routing was unsure of, with how long they have waited,
/// whose opinion it was, and the two best candidates; the total counts beyond the limit.
#[test]
fn needs_review_items_show_with_their_two_candidates() {
    let now = ts("2026-03-02T02:00:00Z");
    let data = BoardData {
        review: vec![review("i-1", "intake-desk", "2026-03-02T01:47:55Z")],
        review_total: 7,
        ..BoardData::default()
    };
    let v = view(
        &data,
        &parse_filter(&params(&[])).unwrap(),
        now,
        &shanghai(),
    );
    let r = &v.review[0];
    assert_eq!(r.decided_at, "2026-03-02T09:47:55+08:00");
    assert_eq!((r.waiting_secs, r.waiting.as_str()), (725, "12m 05s"));
    assert_eq!(r.confidence_percent, 44);
    assert_eq!(
        r.candidates,
        [
            CandidateView {
                category: "policy",
                percent: 44
            },
            CandidateView {
                category: "rights",
                percent: 31
            }
        ]
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["review_total"], 7);
    assert_eq!(json["review"][0]["candidates"][1]["category"], "rights");
    let html = render_html(&v, &cfg());
    assert!(
        html.contains("Needs review (<span id=\"review-total\">7</span>)"),
        "{html}"
    );
    assert!(html.contains("data-item=\"i-1\" data-department=\"intake-desk\" data-source=\"model\" data-confidence=\"44\" data-candidates=\"policy rights\""), "{html}");
    assert!(html.contains(">policy 44%, rights 31%</td>"), "{html}");
    assert!(html.contains(">2026-03-02 09:47:55</time>"));

    let empty = render_html(
        &view(&BoardData::default(), &v.filter, now, &shanghai()),
        &cfg(),
    );
    assert!(empty.contains("id=\"review-empty\""), "{empty}");
    assert!(!empty.contains("<table id=\"review\""));
}

#[test]
fn hostile_values_are_escaped_everywhere() {
    let evil = "<img src=x onerror=alert(1)>\"'&";
    let data = BoardData {
        counts: vec![BoardCount {
            clock_id: evil.into(),
            running: 1,
            ..Default::default()
        }],
        overdue: vec![],
        upcoming: vec![clock(
            evil,
            evil,
            evil,
            "2026-03-02T01:00:00Z",
            "2026-03-02T03:00:00Z",
        )],
        alerts: vec![BoardAlert {
            kind: evil.into(),
            clock_id: evil.into(),
            item_id: evil.into(),
            department: evil.into(),
            due_at: ts("2026-03-02T03:00:00Z"),
            fired_at: ts("2026-03-02T01:30:00Z"),
            late: true,
            provisional: false,
        }],
        review: vec![BoardReview {
            source: evil.into(),
            ..review(evil, evil, "2026-03-02T01:00:00Z")
        }],
        review_total: 1,
    };
    let f = parse_filter(&params(&[("department", evil), ("clock", evil)])).unwrap();
    let v = view(&data, &f, ts("2026-03-02T02:00:00Z"), &shanghai());
    let mut c = cfg();
    c.departments.push((evil.into(), evil.into()));
    let html = render_html(&v, &c);
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("\"'&"), "an unescaped quote or ampersand");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"));
    // The JSON link percent-encodes the filter.
    assert!(html.contains("/board.json?department=%3Cimg%20src%3Dx"));
}

#[test]
fn the_filter_form_shows_the_current_filter() {
    let f = parse_filter(&params(&[("department", "hrss"), ("clock", "old.clock")])).unwrap();
    let v = view(
        &BoardData::default(),
        &f,
        ts("2026-03-02T02:00:00Z"),
        &shanghai(),
    );
    let html = render_html(&v, &cfg());
    assert!(html.contains("<option value=\"hrss\" selected>hrss — 人社局</option>"));
    assert!(html.contains("<option value=\"intake-desk\">intake-desk — 信访接待科</option>"));
    // A clock id the config no longer lists stays selected.
    assert!(html.contains("<option value=\"old.clock\" selected>old.clock</option>"));
    assert!(html.contains("id=\"counts-empty\""));
    assert!(html.contains("id=\"overdue-empty\""));
    assert!(html.contains("id=\"alerts-empty\""));
}

/// A letter with every personal field filled, recorded with its clocks and an alert: none of
/// its personal values reach the page or the JSON, only ids, clocks, departments and times.
#[test]
fn no_personal_field_reaches_the_board() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(&dir.path().join("t.db"), std::time::Duration::from_secs(1)).unwrap();
    let personal = [
        "张三丰",
        "11010519491231002X",
        "13812345678",
        "北京市东城区某街道1号",
        "关于拖欠工资的投诉",
        "来信人反映某公司拖欠工资三个月",
        "scanner-01@xfj.example.gov.cn",
    ];
    let mut env = Envelope::new(
        Channel::Letter,
        Upstream {
            id: "u-1".into(),
            source: "mailbox".into(),
            raw_ref: "sha256:00".into(),
            sender: Some(Personal::new(personal[6])),
            ..Default::default()
        },
        ts("2026-03-02T01:00:00Z"),
        Request {
            title: Some(Personal::new(personal[4])),
            content: Personal::new(personal[5]),
        },
    );
    env.petitioner.name = Some(Personal::new(personal[0]));
    env.petitioner.id_number = Some(Personal::new(personal[1]));
    env.petitioner.phone = Some(Personal::new(personal[2]));
    env.petitioner.address = Some(Personal::new(personal[3]));
    let id = env.id.to_string();
    let mk = |clock_id: &str, due: &str| Clock {
        item_id: id.clone(),
        clock_id: clock_id.into(),
        department: "hrss".into(),
        state: ClockState::Running,
        started_at: ts("2026-03-02T01:00:00Z"),
        due_at: ts(due),
        paused_at: None,
        extended_days: 0,
        last_alert_at: None,
        provisional: false,
        held: jiff::SignedDuration::ZERO,
    };
    store
        .record_item(&NewItem {
            outbox: vec![],
            decision: Decision {
                rule_id: "default".into(),
                rules_version: "v0".into(),
                lead: "hrss".into(),
                assists: vec![],
                decided_at: ts("2026-03-02T01:00:00Z"),
            },
            clocks: vec![
                (mk("letter.register", "2026-03-02T09:30:00Z"), None),
                (mk("hotline.view", "2026-03-02T01:30:00Z"), None),
            ],
            envelope: env,
            version: None,
            person_index: None,
            writeback: vec![],
        })
        .unwrap();
    let fired = crate::store::Fired {
        alerts: vec![FiredAlert {
            id: "a-1".into(),
            item_id: id.clone(),
            clock_id: "hotline.view".into(),
            kind: "breach".into(),
            department: "hrss".into(),
            due_at: ts("2026-03-02T01:30:00Z"),
            scheduled_at: ts("2026-03-02T01:30:00Z"),
            fired_at: ts("2026-03-02T01:30:01Z"),
            late: false,
            record: NewOutbox {
                topic: "alerts".into(),
                key: id.clone(),
                ce_id: "ce-a-1".into(),
                headers: vec![],
                payload: b"{}".to_vec(),
            },
            mail: None,
            provisional: false,
        }],
        last_alert_at: Some(ts("2026-03-02T01:30:00Z")),
        next: None,
        next_provisional: false,
    };
    store.fire(&[2], &mut |_| fired.clone()).unwrap();
    let now = ts("2026-03-02T02:00:00Z");
    let data = store
        .board(&BoardQuery {
            department: None,
            clock: None,
            now,
            limit: 50,
            alerts_limit: 50,
            clock_ids: cfg().clock_ids,
        })
        .unwrap();
    assert_eq!(data.overdue.len(), 1);
    assert_eq!(data.upcoming.len(), 1);
    assert_eq!(data.alerts.len(), 1);
    let v = view(
        &data,
        &parse_filter(&params(&[])).unwrap(),
        now,
        &shanghai(),
    );
    let html = render_html(&v, &cfg());
    let json = serde_json::to_string(&v).unwrap();
    assert!(html.contains(&id) && json.contains(&id));
    for value in personal {
        assert!(!html.contains(value), "{value} on the page");
        assert!(!json.contains(value), "{value} in the JSON");
    }
}

/// Issue 14: a due time computed on a provisional calendar carries a visible marker on the
/// page and `provisional: true` in the JSON; an official one carries neither.
#[test]
fn provisional_due_times_are_marked() {
    let now = ts("2026-12-21T02:00:00Z");
    let mut prov = clock(
        "p",
        "statutory.accept",
        "hrss",
        "2026-12-20T02:00:00Z",
        "2027-01-04T09:30:00Z",
    );
    prov.provisional = true;
    let official = clock(
        "o",
        "statutory.accept",
        "hrss",
        "2026-12-01T02:00:00Z",
        "2026-12-16T09:30:00Z",
    );
    let data = BoardData {
        upcoming: vec![prov],
        overdue: vec![official],
        ..BoardData::default()
    };
    let f = parse_filter(&params(&[])).unwrap();
    let v = view(&data, &f, now, &shanghai());
    assert!(v.upcoming[0].provisional);
    assert!(!v.overdue[0].provisional);
    let html = render_html(&v, &cfg());
    assert!(html.contains("data-item=\"p\""), "{html}");
    let row = |id: &str| {
        let at = html.find(&format!("data-item=\"{id}\"")).unwrap();
        html[at..at + html[at..].find("</tr>").unwrap()].to_string()
    };
    assert!(row("p").contains("data-provisional=\"true\""));
    assert!(row("p").contains(">provisional</span>"));
    assert!(row("o").contains("data-provisional=\"false\""));
    assert!(!row("o").contains(">provisional</span>"));
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["upcoming"][0]["provisional"], true);
    assert_eq!(json["overdue"][0]["provisional"], false);
}

/// From 60 days before the official calendars end (and after), the board and
/// `/readyz?verbose` say which year's file to add; before that, nothing (and `ok` there).
#[test]
fn the_calendar_notice_shows_from_sixty_days_before_the_end() {
    let cal = std::sync::Arc::new(
        petitiond_core::sla::calendar::Calendar::builtin_with_provisional(
            Vec::new(),
            petitiond_core::sla::calendar::OfficeHours::default(),
            "Asia/Shanghai",
        )
        .unwrap(),
    );
    let cfg = BoardConfig {
        calendar: Some(cal),
        ..cfg()
    };
    assert_eq!(calendar_detail(&cfg, ts("2026-10-31T02:00:00Z")), None);
    let n = calendar_detail(&cfg, ts("2026-11-01T02:00:00Z")).unwrap();
    assert!(
        n.contains("end on 2026-12-31 (60 days") && n.contains("2027 file"),
        "{n}"
    );
    let n = calendar_detail(&cfg, ts("2027-01-05T02:00:00Z")).unwrap();
    assert!(
        n.contains("no official working-day calendar for 2027") && n.contains("provisional"),
        "{n}"
    );
    let mut v = view(
        &BoardData::default(),
        &parse_filter(&params(&[])).unwrap(),
        ts("2026-12-06T02:00:00Z"),
        &shanghai(),
    );
    assert_eq!(
        calendar_readiness(&cfg, ts("2026-06-01T02:00:00Z")),
        "calendar: ok: official through 2026-12-31\n"
    );
    assert!(
        calendar_readiness(&cfg, ts("2026-12-06T02:00:00Z")).starts_with(
            "calendar: warning: the official working-day calendars end on 2026-12-31 (25 days"
        )
    );
    v.calendar_notice = calendar_detail(&cfg, ts("2026-12-06T02:00:00Z"));
    let html = render_html(&v, &cfg);
    assert!(html.contains("id=\"calendar-notice\""), "{html}");
    assert!(html.contains("(25 days from today)"), "{html}");
}

/// Several instances: the board says which instance runs each unit, times in the office's
/// zone, names escaped; a single instance shows no such table.
#[test]
fn the_board_shows_which_instance_owns_each_unit() {
    let data = crate::store::BoardData::default();
    let filter = parse_filter(&HashMap::new()).unwrap();
    let mut v = view(&data, &filter, ts("2026-03-02T01:00:00Z"), &shanghai());
    assert!(!render_html(&v, &cfg()).contains("id=\"owners\""));
    v.owners = owners(
        vec![
            crate::store::LeaseRow {
                unit: "hotline".into(),
                epoch: 3,
                instance: "a<b>".into(),
                since: "2026-03-02T00:30:00Z".into(),
            },
            crate::store::LeaseRow {
                unit: "task:relay".into(),
                epoch: 1,
                instance: "b".into(),
                since: "not a time".into(),
            },
        ],
        &shanghai(),
    );
    let html = render_html(&v, &cfg());
    assert!(html.contains("id=\"owners\""), "{html}");
    assert!(
        html.contains("data-unit=\"hotline\" data-instance=\"a&lt;b&gt;\""),
        "{html}"
    );
    assert!(html.contains("2026-03-02T08:30:00+08:00"), "{html}");
    assert!(html.contains("data-unit=\"task:relay\""), "{html}");
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["owners"][0]["epoch"], 3);
}
