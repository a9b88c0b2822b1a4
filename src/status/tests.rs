use super::*;
use crate::config::Config;

// The pure steps take the sections they read; these take a whole test config.
fn closing(
    cfg: &Config,
    kind: EventKind,
    payload: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Closing, Rejected> {
    super::closing(&cfg.replies, kind, payload)
}

#[allow(clippy::too_many_arguments)]
fn event_writes(
    cfg: &Config,
    metrics: &Metrics,
    envelope: &Envelope,
    clocks: &mut [Clock],
    kind: EventKind,
    event_id: &str,
    department: &str,
    closing: &Closing,
    at: Timestamp,
    now: Timestamp,
    extend_days: Option<u32>,
) -> ClockWrites {
    super::event_writes(
        &SlaInputs::from_config(cfg),
        metrics,
        envelope,
        clocks,
        kind,
        event_id,
        department,
        closing,
        at,
        now,
        extend_days,
    )
}

#[test]
fn bad_events_are_rejected_with_a_reason() {
    let cases: [(&str, &str); 5] = [
        ("not json", "bad_shape"),
        (
            r#"{"event_id":"e","item_id":"i","event":"viewed"}"#,
            "bad_shape",
        ),
        (
            r#"{"event_id":"e","item_id":"i","event":"viewed","time":"yesterday"}"#,
            "bad_shape",
        ),
        (
            r#"{"event_id":"e","item_id":"i","event":"teleported","time":"2026-03-02T01:00:00Z"}"#,
            "unknown_event",
        ),
        (
            r#"{"event_id":"","item_id":"i","event":"viewed","time":"2026-03-02T01:00:00Z"}"#,
            "bad_shape",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text.as_bytes()).unwrap_err().label(), want, "{text}");
    }
    let (ev, kind) = parse(
        br#"{"event_id":"e1","item_id":"i","event":"extended","time":"2026-03-02T09:00:00+08:00","actor":{"department":"hrss","person":"A123"},"payload":{"extend_days":30}}"#,
    )
    .unwrap();
    assert_eq!(kind, EventKind::Extended);
    assert_eq!(
        ev.time,
        "2026-03-02T01:00:00Z".parse::<Timestamp>().unwrap()
    );
}

fn routed_item(lead: &str, assists: &[&str], received: &str) -> Envelope {
    let mut env = Envelope::new(
        petitiond_core::envelope::Channel::Hotline,
        petitiond_core::envelope::Upstream {
            id: "o-1".into(),
            source: "hotline".into(),
            raw_ref: "sha256:00".into(),
            ..Default::default()
        },
        received.parse().unwrap(),
        petitiond_core::envelope::Request {
            title: None,
            content: petitiond_core::envelope::Personal::new("x"),
        },
    );
    env.routing = Some(petitiond_core::envelope::Routing {
        lead: lead.into(),
        assists: assists.iter().map(|a| a.to_string()).collect(),
        rule_id: "r".into(),
        rules_version: "v".into(),
        decided_at: env.received_at,
        sla_add: vec![],
        sla_skip: vec![],
        classification: None,
    });
    env
}

/// Any producer on the one shared status topic could stop any item's clocks, with any
/// time: a department could close another department's items, or stop a clock with a time
/// before the item even arrived. Now the topic says whose event it is, the item must be
/// routed to that department, and the time must be sane.
#[test]
fn status_events_move_only_their_departments_items_at_sane_times() {
    let env = routed_item("hrss", &["housing"], "2026-03-02T01:00:00Z");
    let now: Timestamp = "2026-03-02T02:00:00Z".parse().unwrap();
    let skew = Duration::from_secs(300);
    let ev = |actor: Option<&str>, time: &str| StatusEvent {
        event_id: "e".into(),
        item_id: env.id.to_string(),
        event: "accepted".into(),
        time: time.parse().unwrap(),
        actor: actor.map(|d| Actor {
            department: d.into(),
            person: None,
        }),
        payload: None,
    };
    let dept = |d: &str| StatusSource::Department(d.into());
    let trusted = vec!["office".to_string()];
    let ok = "2026-03-02T01:30:00Z";
    let cases: Vec<(StatusSource, StatusEvent, Result<&str, &str>)> = vec![
        // The lead and an assist, with or without actor.
        (dept("hrss"), ev(None, ok), Ok("hrss")),
        (dept("hrss"), ev(Some("hrss"), ok), Ok("hrss")),
        (dept("housing"), ev(None, ok), Ok("housing")),
        // Another department's topic: not routed to it.
        (dept("health"), ev(None, ok), Err("not_routed")),
        (dept("health"), ev(Some("health"), ok), Err("not_routed")),
        // An actor that is not the topic's department.
        (dept("health"), ev(Some("hrss"), ok), Err("actor_mismatch")),
        // The shared topic: only trusted departments, by actor, and still routed.
        (
            StatusSource::Shared,
            ev(Some("hrss"), ok),
            Err("untrusted_topic"),
        ),
        (StatusSource::Shared, ev(None, ok), Err("untrusted_topic")),
        (
            StatusSource::Shared,
            ev(Some("office"), ok),
            Err("not_routed"),
        ),
        // Times: up to the skew ahead is fine, beyond is not; before arrival is not.
        (dept("hrss"), ev(None, "2026-03-02T02:04:59Z"), Ok("hrss")),
        (
            dept("hrss"),
            ev(None, "2026-03-02T02:05:01Z"),
            Err("future_time"),
        ),
        (dept("hrss"), ev(None, "2026-03-02T01:00:00Z"), Ok("hrss")),
        (
            dept("hrss"),
            ev(None, "2026-03-02T00:59:59Z"),
            Err("before_arrival"),
        ),
    ];
    for (source, e, want) in cases {
        let got = authorise(&source, &trusted, &e, &env, now, skew);
        match (got, want) {
            (Ok(d), Ok(w)) => assert_eq!(d, w, "{source:?} {:?}", e.actor),
            (Err(r), Err(w)) => assert_eq!(r.label(), w, "{source:?} {:?}: {r}", e.actor),
            (got, want) => panic!(
                "{source:?} {:?} {}: {got:?}, want {want:?}",
                e.actor, e.time
            ),
        }
    }
    let office = routed_item("office", &[], "2026-03-02T01:00:00Z");
    let mut e = ev(Some("office"), ok);
    e.item_id = office.id.to_string();
    assert_eq!(
        authorise(&StatusSource::Shared, &trusted, &e, &office, now, skew).unwrap(),
        "office"
    );
    // The reasons say what is wrong, for the dead-letter header.
    let r = authorise(&dept("health"), &trusted, &ev(None, ok), &env, now, skew).unwrap_err();
    assert!(
        r.to_string().contains("not routed to department `health`"),
        "{r}"
    );
    let unrouted = {
        let mut e = env.clone();
        e.routing = None;
        e
    };
    assert_eq!(
        authorise(&dept("hrss"), &trusted, &ev(None, ok), &unrouted, now, skew)
            .unwrap_err()
            .label(),
        "not_routed"
    );
}

const LOOP_CONFIG: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"

[[departments]]
id = "hrss"
name = "人社局"
topic = "t.hrss"
alert_emails = ["hrss@example.gov.cn"]

[[departments]]
id = "housing"
name = "住建局"
topic = "t.housing"

[routing]
default_lead = "hrss"

[sla]
supervisors = ["duban@example.gov.cn"]

[alerts.email]
smtp_host = "smtp.example.gov.cn"
from = "petitiond@example.gov.cn"
"#;

fn loop_config() -> Config {
    Config::parse(LOOP_CONFIG, "t.toml", std::path::Path::new("/cfg")).unwrap()
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn payload(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

/// An item routed to hrss (assist housing) with its statutory.handle clock running.
fn handling(cfg: &Config) -> (Envelope, Vec<Clock>) {
    let env = routed_item("hrss", &["housing"], "2026-03-02T01:00:00Z");
    let policy = cfg.sla.clock("statutory.handle").unwrap();
    let clock = Clock::start(
        policy,
        env.id.as_str(),
        "hrss",
        "2026-03-03T01:00:00Z".parse().unwrap(),
        &cfg.sla.calendar,
    )
    .unwrap();
    (env, vec![clock])
}

const VAGUE: &str = "张某某（身份证11010519491231002X）反映的问题我们正在协调，将尽快处理。";
const GOOD: &str = "经调查核实，情况属实。依据《保障农民工工资支付条例》第三十条的规定，现已责令该公司支付拖欠工资。如对本处理意见不服，可在30日内请求复查。";

/// The reply names no facts, basis, result or remedy and hedges: the statutory clock keeps
/// running, nothing stops, the department hears what is missing on its own topic and an
/// alert goes to the alerts topic and by mail — and none of them carries the reply's text.
#[test]
fn a_bounced_reply_leaves_the_clock_running_and_queues_a_notice_and_an_alert() {
    let cfg = loop_config();
    let metrics = Metrics::new();
    let (env, mut clocks) = handling(&cfg);
    let at: Timestamp = "2026-03-20T02:00:00Z".parse().unwrap();
    let closing = closing(
        &cfg,
        EventKind::Replied,
        Some(&payload(serde_json::json!({ "reply": VAGUE }))),
    )
    .unwrap();
    assert!(closing.bounced());
    assert_eq!(closing.verdict(), Some("bounced"));
    let w = event_writes(
        &cfg,
        &metrics,
        &env,
        &mut clocks,
        EventKind::Replied,
        "ev-9",
        "hrss",
        &closing,
        at,
        at,
        None,
    );
    assert!(w.updated.is_empty() && w.started.is_empty() && w.writeback.is_empty());
    assert_eq!(clocks[0].state, petitiond_core::sla::clock::State::Running);

    assert_eq!(w.outbox.len(), 1);
    let notice = &w.outbox[0];
    assert_eq!(notice.topic, "t.hrss");
    assert_eq!(notice.key, env.id.as_str());
    let h = |k: &str| {
        notice
            .headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(h("ce_type"), Some(crate::kafka::wire::TYPE_REPLY_BOUNCED));
    assert_eq!(h("ce_id"), Some(notice.ce_id.as_str()));
    let p: serde_json::Value = serde_json::from_slice(&notice.payload).unwrap();
    assert!(schema("reply-bounced.v1.json").is_valid(&p), "{p}");
    assert_eq!(
        p["missing"],
        serde_json::json!(["facts", "policy", "result", "remedy"])
    );
    assert_eq!(p["banned"], serde_json::json!(["正在协调", "尽快处理"]));
    assert_eq!(p["clocks_running"][0]["clock"], "statutory.handle");
    assert_eq!(p["clocks_running"][0]["state"], "running");

    assert_eq!(w.alerts.len(), 1);
    let a = &w.alerts[0];
    assert_eq!(
        (a.kind.as_str(), a.clock_id.as_str()),
        ("reply_bounced", "statutory.handle")
    );
    assert_eq!(a.record.topic, cfg.sla.alerts_topic);
    let ap: serde_json::Value = serde_json::from_slice(&a.record.payload).unwrap();
    assert!(schema("alert.v1.json").is_valid(&ap), "{ap}");
    assert_eq!(ap["event_id"], "ev-9");
    let mail = a.mail.as_ref().unwrap();
    assert_eq!(
        mail.recipients,
        vec!["duban@example.gov.cn", "hrss@example.gov.cn"]
    );
    assert!(
        mail.body.contains("事实认定") && mail.body.contains("正在协调"),
        "{}",
        mail.body
    );
    // Never the reply's text, nor the personal data in it.
    for text in [
        String::from_utf8_lossy(&notice.payload).to_string(),
        String::from_utf8_lossy(&a.record.payload).to_string(),
        mail.subject.clone(),
        mail.body.clone(),
        format!("{:?}", notice.headers),
    ] {
        assert!(
            !text.contains("张某某") && !text.contains("11010519491231002X"),
            "{text}"
        );
        assert!(!text.contains("将尽快处理"), "{text}");
    }
    // The same event again: the same ids (recorded once by the store).
    let mut again = clocks.clone();
    let w2 = event_writes(
        &cfg,
        &metrics,
        &env,
        &mut again,
        EventKind::Replied,
        "ev-9",
        "hrss",
        &closing,
        at,
        at,
        None,
    );
    assert_eq!(w2.outbox[0].ce_id, notice.ce_id);
    assert_eq!(w2.alerts[0].id, a.id);
}

/// A reply that passes stops the clock as before and queues nothing more; a reply event
/// without text is bounced ("no reply text"), also from an assist, to its own topic.
#[test]
fn a_passing_reply_stops_the_clock_and_a_missing_text_bounces() {
    let cfg = loop_config();
    let metrics = Metrics::new();
    let (env, mut clocks) = handling(&cfg);
    let at: Timestamp = "2026-03-20T02:00:00Z".parse().unwrap();
    let ok = closing(
        &cfg,
        EventKind::Replied,
        Some(&payload(serde_json::json!({ "reply": GOOD }))),
    )
    .unwrap();
    assert_eq!(ok.verdict(), Some("ok"));
    let w = event_writes(
        &cfg,
        &metrics,
        &env,
        &mut clocks,
        EventKind::Replied,
        "ev-1",
        "hrss",
        &ok,
        at,
        at,
        None,
    );
    assert_eq!(w.updated.len(), 1);
    assert_eq!(clocks[0].state, petitiond_core::sla::clock::State::Stopped);
    assert!(w.alerts.is_empty() && w.outbox.is_empty());

    let (_, mut clocks) = handling(&cfg);
    let empty = closing(&cfg, EventKind::Replied, None).unwrap();
    assert_eq!(empty.verdict(), Some("bounced"));
    let w = event_writes(
        &cfg,
        &metrics,
        &env,
        &mut clocks,
        EventKind::Replied,
        "ev-2",
        "housing",
        &empty,
        at,
        at,
        None,
    );
    assert_eq!(clocks[0].state, petitiond_core::sla::clock::State::Running);
    assert_eq!(w.outbox[0].topic, "t.housing");
    let p: serde_json::Value = serde_json::from_slice(&w.outbox[0].payload).unwrap();
    assert_eq!(p["no_text"], true);
    assert!(schema("reply-bounced.v1.json").is_valid(&p), "{p}");
    // Only a clock that names `bounced` starts on a bounced reply.
    let cfg = Config::parse(
        &format!(
            "{LOOP_CONFIG}\n[[sla.clocks]]\nid = \"handle\"\nrule = {{ kind = \"working_days\", days = 60 }}\nstart_on = \"accepted\"\nstop_on = [\"replied\"]\ncitation = \"t\"\n\n[[sla.clocks]]\nid = \"resubmit\"\nrule = {{ kind = \"working_days\", days = 5 }}\nstart_on = \"replied\"\nverdicts = [\"bounced\"]\nstop_on = [\"replied\"]\ncitation = \"t\"\n\n[[sla.clocks]]\nid = \"after_reply\"\nrule = {{ kind = \"working_days\", days = 5 }}\nstart_on = \"replied\"\nstop_on = [\"evaluated\"]\ncitation = \"t\"\n"
        ),
        "t.toml",
        std::path::Path::new("/cfg"),
    )
    .unwrap();
    let w = event_writes(
        &cfg,
        &metrics,
        &env,
        &mut [],
        EventKind::Replied,
        "ev-3",
        "hrss",
        &empty,
        at,
        at,
        None,
    );
    let started: Vec<&str> = w.started.iter().map(|(c, _)| c.clock_id.as_str()).collect();
    assert_eq!(started, vec!["resubmit"]);
    let w = event_writes(
        &cfg,
        &metrics,
        &env,
        &mut [],
        EventKind::Replied,
        "ev-4",
        "hrss",
        &ok,
        at,
        at,
        None,
    );
    let started: Vec<&str> = w.started.iter().map(|(c, _)| c.clock_id.as_str()).collect();
    assert_eq!(started, vec!["after_reply"]);
    // A reply that is not text is a bad event.
    assert_eq!(
        closing(
            &cfg,
            EventKind::Replied,
            Some(&payload(serde_json::json!({ "reply": 3 })))
        )
        .unwrap_err()
        .label(),
        "bad_shape"
    );
}

/// 不满意 starts the revisit clock (the default `[[sla.clocks]]` entry filtered on the
/// verdict) and raises a revisit alert to the lead department and the supervisors; other
/// evaluations record their verdict and start nothing.
#[test]
fn a_dissatisfied_evaluation_starts_the_revisit_clock_and_raises_a_revisit_alert() {
    let cfg = loop_config();
    let metrics = Metrics::new();
    let (env, _) = handling(&cfg);
    let at: Timestamp = "2026-04-20T02:00:00Z".parse().unwrap();
    let eval = |word: &str| {
        closing(
            &cfg,
            EventKind::Evaluated,
            Some(&payload(serde_json::json!({ "satisfaction": word }))),
        )
    };
    let bad = eval("不满意").unwrap();
    assert_eq!(bad.verdict(), Some("dissatisfied"));
    let w = event_writes(
        &cfg,
        &metrics,
        &env,
        &mut [],
        EventKind::Evaluated,
        "ev-e",
        "housing",
        &bad,
        at,
        at,
        None,
    );
    let started: Vec<&str> = w.started.iter().map(|(c, _)| c.clock_id.as_str()).collect();
    assert_eq!(started, vec!["revisit"]);
    assert_eq!(w.started[0].0.department, "hrss");
    assert_eq!(w.alerts.len(), 1);
    let a = &w.alerts[0];
    assert_eq!(
        (a.kind.as_str(), a.clock_id.as_str(), a.department.as_str()),
        ("revisit", "revisit", "hrss")
    );
    let ap: serde_json::Value = serde_json::from_slice(&a.record.payload).unwrap();
    assert!(schema("alert.v1.json").is_valid(&ap), "{ap}");
    assert_eq!(ap["verdict"], "dissatisfied");
    assert_eq!(
        a.mail.as_ref().unwrap().recipients,
        vec!["duban@example.gov.cn", "hrss@example.gov.cn"]
    );
    for (word, verdict) in [
        ("满意", "satisfied"),
        ("basically_satisfied", "basically_satisfied"),
    ] {
        let c = eval(word).unwrap();
        assert_eq!(c.verdict(), Some(verdict));
        let w = event_writes(
            &cfg,
            &metrics,
            &env,
            &mut [],
            EventKind::Evaluated,
            "ev-e",
            "hrss",
            &c,
            at,
            at,
            None,
        );
        assert!(w.started.is_empty() && w.alerts.is_empty(), "{word}");
    }
    assert_eq!(
        closing(&cfg, EventKind::Evaluated, None).unwrap().verdict(),
        None
    );
    assert_eq!(eval("还行").unwrap_err().label(), "bad_shape");
    // Other events have no verdict; a reply is not checked with [replies] disabled.
    assert_eq!(
        closing(&cfg, EventKind::Accepted, None).unwrap(),
        Closing::Nothing
    );
    let off = Config::parse(
        &format!("{LOOP_CONFIG}\n[replies]\nenabled = false\n"),
        "t.toml",
        std::path::Path::new("/cfg"),
    )
    .unwrap();
    assert_eq!(
        closing(&off, EventKind::Replied, None).unwrap(),
        Closing::Nothing
    );
}

/// The bounce alert names what the reply lacked, in English and Chinese, and the banned phrases
/// found — fields only, never the reply's text.
#[test]
fn the_bounce_alert_names_the_missing_elements_in_both_languages_and_the_banned_phrases() {
    use petitiond_core::reply::Element;
    let check = ReplyCheck {
        no_text: false,
        missing: vec![Element::Policy, Element::Remedy],
        banned: vec!["尽快处理".into()],
    };
    assert_eq!(
        serde_json::Value::Object(bounce_alert_extra(&check)),
        serde_json::json!({
            "missing": ["policy", "remedy"],
            "missing_zh": ["政策依据", "救济途径"],
            "banned": ["尽快处理"],
            "no_text": false,
        })
    );
}
