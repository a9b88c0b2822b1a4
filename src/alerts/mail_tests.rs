use super::*;
use crate::config::Config;
use petitiond_core::sla::clock::State;
use std::path::Path;

const PII_NAME: &str = "张三";
const PII_ID: &str = "11010519491231002X";
const PII_PHONE: &str = "13800138000";

fn config() -> Config {
    let text = r#"
[kafka]
brokers = "127.0.0.1:9092"

[[departments]]
id = "hrss"
name = "人社局"
topic = "t.hrss"
alert_emails = ["hrss@example.gov.cn"]

[routing]
default_lead = "hrss"

[alerts.email]
smtp_host = "127.0.0.1"
from = "petitiond@example.gov.cn"
"#;
    Config::parse(text, "t.toml", Path::new("/cfg")).unwrap_or_else(|e| panic!("{e}"))
}

fn clock(cfg: &Config) -> (ClockPolicy, Clock) {
    let p = cfg.sla.clock("statutory.accept").unwrap().clone();
    let c = Clock {
        item_id: "item-7f3a".into(),
        clock_id: p.id.clone(),
        department: "hrss".into(),
        state: State::Running,
        started_at: "2025-03-03T01:00:00Z".parse().unwrap(),
        due_at: "2025-03-18T09:30:00Z".parse().unwrap(),
        paused_at: None,
        extended_days: 0,
        last_alert_at: None,
        provisional: false,
        held: jiff::SignedDuration::ZERO,
    };
    (p, c)
}

fn row(id: &str, rcpt: &[&str]) -> MailRow {
    MailRow {
        alert_id: id.into(),
        recipients: rcpt.iter().map(|s| s.to_string()).collect(),
        subject: format!("s {id}"),
        body: format!("b {id}"),
        attempts: 0,
    }
}

#[test]
fn plan_groups_by_recipients_and_digests_above_threshold() {
    let a = ["a@x.cn", "sup@x.cn"];
    let a_reordered = ["sup@x.cn", "a@x.cn"];
    let b = ["b@x.cn"];
    // (rows, threshold, expected mails as (ids, digest))
    type Case = (Vec<MailRow>, usize, Vec<(Vec<&'static str>, bool)>);
    let cases: Vec<Case> = vec![
        (vec![], 5, vec![]),
        (vec![row("1", &a)], 5, vec![(vec!["1"], false)]),
        (
            vec![row("1", &a), row("2", &a)],
            5,
            vec![(vec!["1"], false), (vec!["2"], false)],
        ),
        // exactly the threshold: still one mail each
        (
            (1..=5).map(|i| row(&i.to_string(), &a)).collect(),
            5,
            (1..=5)
                .map(|i| (vec![["1", "2", "3", "4", "5"][i - 1]], false))
                .collect(),
        ),
        // one more than the threshold: one digest
        (
            (1..=6).map(|i| row(&i.to_string(), &a)).collect(),
            5,
            vec![(vec!["1", "2", "3", "4", "5", "6"], true)],
        ),
        // recipient order does not split a group
        (
            vec![row("1", &a), row("2", &a_reordered), row("3", &b)],
            1,
            vec![(vec!["1", "2"], true), (vec!["3"], false)],
        ),
        // groups are decided separately
        (
            vec![row("1", &a), row("2", &b), row("3", &a), row("4", &a)],
            2,
            vec![(vec!["1", "3", "4"], true), (vec!["2"], false)],
        ),
    ];
    for (i, (rows, threshold, want)) in cases.into_iter().enumerate() {
        let got: Vec<(Vec<String>, bool)> = plan(rows, threshold)
            .into_iter()
            .map(|o| (o.alert_ids(), o.digest))
            .collect();
        let want: Vec<(Vec<String>, bool)> = want
            .into_iter()
            .map(|(ids, d)| (ids.into_iter().map(String::from).collect(), d))
            .collect();
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn plan_sorts_and_dedups_recipients() {
    let out = plan(vec![row("1", &["b@x.cn", "a@x.cn", "b@x.cn"])], 5);
    assert_eq!(out[0].recipients, vec!["a@x.cn", "b@x.cn"]);
}

#[test]
fn message_ids_are_deterministic() {
    let one = vec!["abc".to_string()];
    assert_eq!(message_id(&one, "x.cn"), "<abc.alert@x.cn>");
    let d1 = message_id(&["b".into(), "a".into(), "c".into()], "x.cn");
    let d2 = message_id(&["c".into(), "a".into(), "b".into()], "x.cn");
    assert_eq!(d1, d2);
    assert!(d1.ends_with(".digest@x.cn>") && d1.starts_with('<'), "{d1}");
    assert_ne!(d1, message_id(&["a".into(), "b".into()], "x.cn"));
}

#[test]
fn subject_names_kind_clock_item_and_lateness() {
    let cases = [
        (AlertKind::Warning(80), "80%", "warning"),
        (AlertKind::Breach, "已超期", "breached"),
        (AlertKind::Reminder(2), "第 2 次催办", "reminder 2"),
        (AlertKind::Escalation, "升级督办", "escalation"),
    ];
    for (kind, zh, en) in cases {
        let s = subject("statutory.accept", kind, "item-7f3a", false);
        assert!(s.contains(zh) && s.contains(en), "{s}");
        assert!(
            s.contains("statutory.accept") && s.contains("item-7f3a"),
            "{s}"
        );
        assert!(s.find(zh) < s.find(en), "Chinese first: {s}");
        assert!(!s.contains("late"), "{s}");
        assert!(subject("c", kind, "i", true).contains("补发 late"));
    }
}

#[test]
fn body_names_clock_citation_kind_item_department_and_local_times() {
    let cfg = config();
    let (p, c) = clock(&cfg);
    let at: Timestamp = "2025-03-18T09:30:00Z".parse().unwrap();
    let now: Timestamp = "2025-03-18T09:45:00Z".parse().unwrap();
    let b = body(
        &AlertSections::of(&cfg),
        &p,
        &c,
        AlertKind::Breach,
        at,
        now,
        true,
    );
    for want in [
        "item-7f3a",
        "statutory.accept",
        &p.citation,
        "已超期",
        "deadline breached",
        "人社局 (hrss)",
        // due 09:30Z shown in Asia/Shanghai
        "2025-03-18 17:30:00 +08:00 Asia/Shanghai",
        "2025-03-18 17:45:00 +08:00",
        "fired on catch-up",
    ] {
        assert!(b.contains(want), "missing {want:?} in:\n{b}");
    }
    let on_time = body(
        &AlertSections::of(&cfg),
        &p,
        &c,
        AlertKind::Warning(50),
        at,
        at,
        false,
    );
    assert!(!on_time.contains("catch-up"), "{on_time}");
    assert!(on_time.contains("50%"), "{on_time}");
}

#[test]
fn texts_carry_no_petitioner_data() {
    // The texts are built from ids, the clock and config only; nothing from a petition can
    // reach them. Check with an item whose petition would have held these values.
    let cfg = config();
    let (p, c) = clock(&cfg);
    let at: Timestamp = "2025-03-18T09:30:00Z".parse().unwrap();
    for kind in [
        AlertKind::Warning(50),
        AlertKind::Breach,
        AlertKind::Reminder(1),
        AlertKind::Escalation,
    ] {
        let texts = [
            subject(&c.clock_id, kind, &c.item_id, true),
            body(&AlertSections::of(&cfg), &p, &c, kind, at, at, true),
        ];
        for t in texts {
            for pii in [PII_NAME, PII_ID, PII_PHONE] {
                assert!(!t.contains(pii), "{pii} in {t}");
            }
        }
    }
}

#[test]
fn digest_lists_every_alert() {
    let rows: Vec<MailRow> = (1..=7)
        .map(|i| row(&format!("id-{i}"), &["a@x.cn"]))
        .collect();
    let (s, b) = digest_text(&rows);
    assert!(s.contains("7 条") && s.contains("7 alerts"), "{s}");
    for r in &rows {
        assert!(b.contains(&r.alert_id) && b.contains(&r.body), "{b}");
    }
}

/// Secrets stay secret: no SMTP password over a connection without TLS unless the
/// operator allowed it.
#[test]
fn a_password_without_tls_needs_allow_plaintext_auth() {
    let mut e = config().email.unwrap();
    e.tls = SmtpTls::None;
    assert!(transport(&e).is_ok(), "no password: fine");
    e.username = Some("u".into());
    e.password = Some(petitiond_core::diag::Secret::from("hunter2"));
    let Err(err) = transport(&e) else {
        panic!("a password without TLS was accepted")
    };
    let err = err.to_string();
    assert!(
        err.contains("allow_plaintext_auth") && !err.contains("hunter2"),
        "{err}"
    );
    e.allow_plaintext_auth = true;
    assert!(transport(&e).is_ok());
    e.allow_plaintext_auth = false;
    e.tls = SmtpTls::StartTls;
    assert!(transport(&e).is_ok());
}

#[test]
fn backoff_doubles_and_is_capped() {
    let poll = Duration::from_millis(100);
    assert_eq!(backoff(poll, 1), Duration::from_millis(100));
    assert_eq!(backoff(poll, 2), Duration::from_millis(200));
    assert_eq!(backoff(poll, 4), Duration::from_millis(800));
    assert_eq!(backoff(poll, 60), MAX_BACKOFF);
    assert_eq!(
        backoff(Duration::from_secs(600), 3),
        Duration::from_secs(600)
    );
}
