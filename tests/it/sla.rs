//! SLA end to end: the real daemon, the real broker, short clocks.

use crate::helpers::*;
use std::time::Duration;

pub(crate) struct Sla {
    pub alerts: String,
    /// The shared status topic (trusted for no department by default).
    status: String,
    /// The intake desk's own status topic (`<its topic>.status`): where it reports.
    desk_status: String,
}

/// Adds an `[sla]` section with fresh topics and the given clocks to the app's config.
pub(crate) fn with_sla(app: &TestApp, clocks: &str) -> Sla {
    let sla = Sla {
        alerts: unique("it.alerts"),
        status: unique("it.status"),
        desk_status: format!("{}.status", app.topic),
    };
    let mut cfg = std::fs::read_to_string(&app.config).unwrap();
    cfg.push_str(&format!(
        "\n[sla]\nalerts_topic = \"{}\"\nstatus_topic = \"{}\"\nconsumer_group = \"{}\"\n{clocks}",
        sla.alerts,
        sla.status,
        unique("it.group")
    ));
    std::fs::write(&app.config, cfg).unwrap();
    sla
}

pub(crate) fn letter_clock(seconds: u32) -> String {
    format!(
        "[[sla.clocks]]\nid = \"letter.test\"\nrule = {{ kind = \"wall_clock_seconds\", seconds = {seconds} }}\nchannels = [\"letter\"]\nstop_on = [\"registered\"]\nwarn_at_percent = [50]\nremind_every_working_days = 0\ncitation = \"test\"\n"
    )
}

fn alerts_of(records: &[Record], item: &str) -> Vec<serde_json::Value> {
    records
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap())
        .filter(|a| a["item_id"] == item)
        .collect()
}

fn ts(v: &serde_json::Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

fn alert_schema() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/alert.v1.json"))
            .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// An item nobody touches gets its warning and its breach on time, as CloudEvents.
#[test]
fn untouched_item_gets_warning_and_breach_on_time() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let sla = with_sla(&app, &letter_clock(6));
    app.start();
    // Maildir time "now", so the clock starts now.
    let item = app.deliver_now(&letter(1));
    let alerts = consume(
        &brokers,
        &sla.alerts,
        2,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let mine = alerts_of(&alerts, &item);
    let kinds: Vec<&str> = mine.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["warning_50", "breach"], "{mine:?}");
    let schema = alert_schema();
    for (a, r) in mine.iter().zip(&alerts) {
        assert!(
            schema.is_valid(a),
            "alert does not match schema/alert.v1.json: {a}"
        );
        assert_eq!(a["late"], false);
        // Fired within one second of its instant.
        let lateness = ts(&a["fired_at"]).duration_since(ts(&a["scheduled_at"]));
        assert!(lateness.as_millis() < 1000, "fired {lateness:?} late");
        assert_eq!(r.headers["ce_type"], "cn.gov.petition.sla.alert.v1");
        assert_eq!(r.headers["ce_clock"], "letter.test");
        assert_eq!(r.key, item);
    }
    let breach = &mine[1];
    assert_eq!(breach["scheduled_at"], breach["due_at"]);
    assert_eq!(breach["department"], "intake-desk");
    let text = String::from_utf8_lossy(&alerts[1].payload).to_string();
    assert!(
        !text.contains("13812345678") && !text.contains("供暖"),
        "petitioner data in an alert: {text}"
    );
}

/// A status event stops the clock and no alert follows; duplicates, out-of-order and bad
/// events are harmless, and the bad ones are dead-lettered with their reason.
#[test]
fn status_event_stops_the_clock_and_bad_events_are_dead_lettered() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let sla = with_sla(&app, &letter_clock(8));
    app.start();
    let stopped = app.deliver_now(&letter(1));
    let running = app.deliver_now(&letter(2));
    consume(
        &brokers,
        &app.topic,
        2,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    let now = jiff::Timestamp::now().to_string();
    let event = |id: &str, kind: &str| {
        serde_json::json!({"event_id": id, "item_id": stopped, "event": kind, "time": now,
                           "actor": {"department": "intake-desk", "person": "clerk-1"}})
    };
    send_status(
        &brokers,
        &sla.desk_status,
        &stopped,
        event("e1", "registered"),
    );
    send_status(
        &brokers,
        &sla.desk_status,
        &stopped,
        event("e1", "registered"),
    ); // duplicate
    send_status(&brokers, &sla.desk_status, &stopped, event("e2", "resumed")); // out of order
    send_status(
        &brokers,
        &sla.desk_status,
        &stopped,
        serde_json::json!({"nonsense": true}),
    );
    send_status(
        &brokers,
        &sla.desk_status,
        "x",
        serde_json::json!({"event_id": "e3", "item_id": "no-such-item", "event": "viewed", "time": now}),
    );

    let alerts = consume(
        &brokers,
        &sla.alerts,
        2,
        Duration::from_secs(60),
        Duration::from_secs(3),
    );
    assert!(
        alerts_of(&alerts, &stopped).is_empty(),
        "a stopped clock alerted: {:?}",
        alerts_of(&alerts, &stopped)
    );
    let kinds: Vec<String> = alerts_of(&alerts, &running)
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["warning_50", "breach"]);

    let dead = consume(
        &brokers,
        &app.dlq,
        2,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    let reasons: Vec<&str> = dead
        .iter()
        .map(|r| r.headers["petitiond_dlq_reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("bad shape")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("unknown item `no-such-item`")),
        "{reasons:?}"
    );
    assert!(
        dead.iter()
            .all(|r| r.headers["petitiond_dlq_topic"] == sla.desk_status)
    );
}

/// On the one shared status topic any producer could stop any item's clock, with any time.
/// Now an event from a department the item is not routed to, one on the shared topic (trusted
/// for nobody by default), one dated in the future and one dated before the item arrived are
/// all dead-lettered with their reason, and the clock runs on to its breach.
#[test]
fn status_events_from_the_wrong_department_or_with_bad_times_are_dead_lettered() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let hrss = unique("it.hrss");
    app.append_config(&format!(
        "\n[[departments]]\nid = \"hrss\"\nname = \"人社局\"\ntopic = \"{hrss}\"\n"
    ));
    let sla = with_sla(&app, &letter_clock(8));
    app.start();
    let item = app.deliver_now(&letter(1));
    let routed = consume(
        &brokers,
        &app.topic,
        1,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    let env: serde_json::Value = serde_json::from_slice(&routed[0].payload).unwrap();
    let received = ts(&env["received_at"]);
    let now = jiff::Timestamp::now();
    let at = |t: jiff::Timestamp| t.to_string();
    let event = |id: &str, time: String| serde_json::json!({"event_id": id, "item_id": item, "event": "registered", "time": time});
    let hrss_status = format!("{hrss}.status");
    send_status(&brokers, &hrss_status, &item, event("w1", at(now)));
    send_status(
        &brokers,
        &sla.status,
        &item,
        serde_json::json!({"event_id": "w2", "item_id": item, "event": "registered",
                           "time": at(now), "actor": {"department": "intake-desk"}}),
    );
    let later = now
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    send_status(&brokers, &sla.desk_status, &item, event("w3", at(later)));
    let before = received
        .checked_sub(jiff::SignedDuration::from_secs(1))
        .unwrap();
    send_status(&brokers, &sla.desk_status, &item, event("w4", at(before)));

    let dead = consume(
        &brokers,
        &app.dlq,
        4,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let reason = |topic: &str| -> String {
        dead.iter()
            .find(|r| r.headers["petitiond_dlq_topic"] == topic)
            .map(|r| r.headers["petitiond_dlq_reason"].clone())
            .unwrap_or_else(|| panic!("nothing dead-lettered from {topic}: {dead:?}"))
    };
    assert!(
        reason(&hrss_status).contains("is not routed to department `hrss`"),
        "{}",
        reason(&hrss_status)
    );
    assert!(reason(&sla.status).contains("shared status topic is not trusted"));
    let desk: Vec<&str> = dead
        .iter()
        .filter(|r| r.headers["petitiond_dlq_topic"] == sla.desk_status)
        .map(|r| r.headers["petitiond_dlq_reason"].as_str())
        .collect();
    assert!(desk.iter().any(|r| r.contains("in the future")), "{desk:?}");
    assert!(
        desk.iter().any(|r| r.contains("before the item arrived")),
        "{desk:?}"
    );
    // None of them stopped the clock: it breaches.
    let alerts = consume(
        &brokers,
        &sla.alerts,
        2,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let kinds: Vec<String> = alerts_of(&alerts, &item)
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["warning_50", "breach"]);
    let (_, metrics) = app.http_get("/metrics");
    for reason in [
        "not_routed",
        "untrusted_topic",
        "future_time",
        "before_arrival",
    ] {
        assert!(
            metrics.contains(&format!(
                "petitiond_status_events_total{{event=\"{reason}\",outcome=\"dead_lettered\"}} 1"
            )),
            "{reason}: {metrics}"
        );
    }
}

/// A paused clock resumes with the time it had left.
#[test]
fn paused_clock_resumes_with_the_remaining_time() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let sla = with_sla(&app, &letter_clock(10));
    app.start();
    let item = app.deliver_now(&letter(1));
    let routed = consume(
        &brokers,
        &app.topic,
        1,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    let env: serde_json::Value = serde_json::from_slice(&routed[0].payload).unwrap();
    let start = ts(&env["received_at"]);
    let due = ts(&env["sla"][0]["due_at"]);
    assert_eq!(due.duration_since(start).as_secs(), 10);
    let at = |s: i64| {
        start
            .checked_add(jiff::SignedDuration::from_secs(s))
            .unwrap()
            .to_string()
    };
    // Paused 1 s after start (before the 50% warning), resumed 5 s later: 9 s were left.
    send_status(
        &brokers,
        &sla.desk_status,
        &item,
        serde_json::json!({"event_id": "p", "item_id": item, "event": "paused", "time": at(1)}),
    );
    send_status(
        &brokers,
        &sla.desk_status,
        &item,
        serde_json::json!({"event_id": "r", "item_id": item, "event": "resumed", "time": at(6)}),
    );
    let alerts = consume(
        &brokers,
        &sla.alerts,
        2,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let mine = alerts_of(&alerts, &item);
    let breach = mine.iter().find(|a| a["kind"] == "breach").expect("breach");
    assert_eq!(
        ts(&breach["due_at"]),
        due.checked_add(jiff::SignedDuration::from_secs(5)).unwrap()
    );
}

/// Alerts that fell due while the daemon was down fire at once after a restart, marked late.
#[test]
fn restart_catches_up_on_missed_alerts_marked_late() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let sla = with_sla(&app, &letter_clock(4));
    app.start();
    let item = app.deliver_now(&letter(1));
    consume(
        &brokers,
        &app.topic,
        1,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    app.kill();
    std::thread::sleep(Duration::from_secs(6));
    app.start();
    let alerts = consume(
        &brokers,
        &sla.alerts,
        1,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    let mine = alerts_of(&alerts, &item);
    let breach = mine
        .iter()
        .find(|a| a["kind"] == "breach")
        .unwrap_or_else(|| panic!("no breach: {mine:?}"));
    assert_eq!(breach["late"], true, "{breach}");
    assert_eq!(mine.iter().filter(|a| a["kind"] == "breach").count(), 1);
}

/// Alerts reach the department's and the supervisors' mailboxes through a real SMTP server,
/// one mail per alert, without petitioner data.
#[test]
fn alerts_are_mailed_to_the_department_and_supervisors() {
    let Some(brokers) = broker() else { return };
    let Some(python) = crate::mail::smtpd_python() else {
        return;
    };
    let sdir = tempfile::tempdir().unwrap();
    let mut smtpd = crate::mail::Smtpd::new(&python, sdir.path());
    smtpd.up();
    let mut app = TestApp::new(&brokers, "");
    // The department gets an alert address; mail goes to a plain-SMTP server on loopback.
    let cfg = std::fs::read_to_string(&app.config).unwrap().replace(
        "name = \"信访接待科\"",
        "name = \"信访接待科\"\nalert_emails = [\"desk@xfj.example.gov.cn\"]",
    );
    std::fs::write(&app.config, cfg).unwrap();
    let clocks = format!(
        "supervisors = [\"boss@xfj.example.gov.cn\"]\n{}\n[alerts.email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\nfrom = \"petitiond@xfj.example.gov.cn\"\npoll_interval_ms = 200\n",
        letter_clock(4),
        smtpd.port
    );
    let sla = with_sla(&app, &clocks);
    app.start();
    let item = app.deliver_now(&letter(3));
    consume(
        &brokers,
        &sla.alerts,
        2,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mails = loop {
        let got = smtpd.received();
        if got.len() >= 2 || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        smtpd.received().len(),
        2,
        "one mail per alert, no duplicates: {mails:?}"
    );
    for m in &mails {
        assert!(
            m.subject.contains("letter.test") && m.subject.contains(&item),
            "{}",
            m.subject
        );
        assert!(
            m.rcpt_to.contains("desk@xfj.example.gov.cn")
                && m.rcpt_to.contains("boss@xfj.example.gov.cn"),
            "{}",
            m.rcpt_to
        );
        assert!(
            !m.body.contains("13812345678") && !m.body.contains("供暖"),
            "petitioner data in a mail"
        );
    }
    assert!(
        mails
            .iter()
            .any(|m| m.body.contains("breach") || m.subject.contains("超期")),
        "{mails:?}"
    );
    let (_, metrics) = app.http_get("/metrics");
    assert!(
        metrics.contains("petitiond_alert_mail_sent_total 2"),
        "{metrics}"
    );
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Delivers a letter whose Maildir name says it arrived at `at` (its clocks start then).
fn deliver_at(app: &mut TestApp, n: usize, at: &str) -> String {
    let secs = at.parse::<jiff::Timestamp>().unwrap().as_second();
    let raw = letter(n);
    let dir = app.config.parent().unwrap().join("mail");
    let name = format!("{secs}.M{n}P9.test");
    std::fs::write(dir.join("tmp").join(&name), &raw).unwrap();
    std::fs::rename(dir.join("tmp").join(&name), dir.join("new").join(&name)).unwrap();
    petitiond::envelope::ItemId::derive(
        petitiond::envelope::Channel::Letter,
        &petitiond::channels::mailbox::parse::upstream_id(&raw),
    )
    .to_string()
}

/// A calendar file for `year`: the provisional derivation's days off plus `extra` ones, as
/// an official file would look if the State Council's notice differed only there.
fn official_file(dir: &std::path::Path, year: i16, extra: &[&str]) -> std::path::PathBuf {
    let mut text = format!("year = {year}\nsource = \"test notice\"\n");
    for (d, s) in petitiond::sla::provisional::special_days(year).unwrap() {
        text.push_str(&format!("[[holiday]]\nname = \"{}\"\nfrom = {d}\n", s.name));
    }
    for d in extra {
        text.push_str(&format!("[[holiday]]\nname = \"test\"\nfrom = {d}\n"));
    }
    let path = dir.join(format!("cn-{year}-test.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn set_calendar_files(app: &TestApp, files: &[&std::path::Path]) {
    let list: Vec<String> = files
        .iter()
        .map(|f| format!("{:?}", f.display().to_string()))
        .collect();
    let cfg = std::fs::read_to_string(&app.config).unwrap();
    let start = cfg.find("calendar_files = [").unwrap();
    let end = start + cfg[start..].find('\n').unwrap();
    let cfg = format!(
        "{}calendar_files = [{}]{}",
        &cfg[..start],
        list.join(", "),
        &cfg[end..]
    );
    std::fs::write(&app.config, cfg).unwrap();
}

/// Reads the alerts topic until `n` due-update records are among its records (other alerts
/// may come first, depending on today's date), then for `settle` more.
fn with_due_updates(brokers: &str, topic: &str, n: usize, settle: Duration) -> Vec<Record> {
    let mut expected = n;
    loop {
        let records = consume(brokers, topic, expected, Duration::from_secs(60), settle);
        if due_updates(&records).len() >= n {
            return records;
        }
        expected = records.len() + 1;
    }
}

fn due_updates(records: &[Record]) -> Vec<(&Record, serde_json::Value)> {
    records
        .iter()
        .filter(|r| {
            r.headers.get("ce_type").map(String::as_str)
                == Some("cn.gov.petition.sla.due_updated.v1")
        })
        .map(|r| (r, serde_json::from_slice(&r.payload).unwrap()))
        .collect()
}

/// Issue 14, end to end on a real broker. Clocks whose span crosses into 2027 (no official
/// file) run on the provisional calendar and are marked so on the envelope, its headers and
/// the board; a clock that needs 2101 (beyond the provisional range) waits as pending.
/// Installing official files for 2027 and 2101 and restarting re-announces exactly the
/// clock whose due instant moved and the one that was pending, once each (its sibling due
/// within 2100 and the unmoved 2027 one send nothing): a further restart sends nothing more.
#[test]
fn installing_official_calendars_re_announces_exactly_the_moved_due_times() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let official_2026 =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("calendars/cn-2026.toml");
    let clocks = format!(
        "calendar_files = [{:?}]\n\
         [[sla.clocks]]\nid = \"t.accept\"\nrule = {{ kind = \"calendar_days\", days = 15 }}\nchannels = [\"letter\"]\nstop_on = [\"registered\"]\nremind_every_working_days = 0\ncitation = \"test\"\n\
         [[sla.clocks]]\nid = \"t.rights\"\nrule = {{ kind = \"working_days\", days = 5 }}\nchannels = [\"letter\"]\nstop_on = [\"registered\"]\nremind_every_working_days = 0\ncitation = \"test\"\n",
        official_2026.display().to_string()
    );
    let sla = with_sla(&app, &clocks);
    app.start();
    // Mon 2026-12-28: t.accept due Tue 2027-01-12, t.rights due Tue 2027-01-05 (provisional).
    let crossing = deliver_at(&mut app, 1, "2026-12-28T10:00:00+08:00");
    // Tue 2026-12-01: both due in December, on the official file.
    let official = deliver_at(&mut app, 2, "2026-12-01T10:00:00+08:00");
    // 2100-12-20: t.accept needs 2101, beyond the provisional range: pending.
    let pending = deliver_at(&mut app, 3, "2100-12-20T10:00:00+08:00");
    let routed = consume(
        &brokers,
        &app.topic,
        3,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    let envelope = |item: &str| {
        let r = routed.iter().find(|r| r.key == item).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        (r, v)
    };
    let (r, v) = envelope(&crossing);
    assert_eq!(r.headers["ce_slaprov"], "true", "{:?}", r.headers);
    assert_eq!(r.headers["ce_sladue"], "2027-01-05T09:30:00Z");
    for c in v["sla"].as_array().unwrap() {
        assert_eq!(c["provisional"], true, "{c}");
    }
    let (r, v) = envelope(&official);
    assert_eq!(r.headers["ce_slaprov"], "false");
    for c in v["sla"].as_array().unwrap() {
        assert_eq!(c["provisional"], false, "{c}");
    }
    let (_, v) = envelope(&pending);
    assert!(
        v["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "sla_pending:t.accept"),
        "{v}"
    );
    // The board marks the provisional due times.
    let (_, board) = app.http_get("/board.json?clock=t.accept&limit=500");
    let board: serde_json::Value = serde_json::from_str(&board).unwrap();
    let on_board = |board: &serde_json::Value, item: &str| -> serde_json::Value {
        ["upcoming", "overdue"]
            .iter()
            .flat_map(|l| board[l].as_array().unwrap().iter())
            .find(|c| c["item_id"] == item)
            .cloned()
            .unwrap_or_else(|| panic!("{item} not on the board: {board}"))
    };
    let c = on_board(&board, &crossing);
    assert_eq!(c["due_at"], "2027-01-12T17:30:00+08:00");
    assert_eq!(c["provisional"], true);
    assert_eq!(on_board(&board, &official)["provisional"], false);
    // Readiness: the plain body is unchanged; `?verbose` adds the calendar's coverage.
    assert_eq!(app.http_get("/readyz"), (200, "ready\n".to_string()));
    let (code, body) = app.http_get("/readyz?verbose");
    assert_eq!(code, 200);
    assert!(body.starts_with("ready\ncalendar: "), "{body}");
    assert_eq!(app.terminate(Duration::from_secs(30)), Some(0));

    // The State Council's (test) notices: 2027 as derived plus Tue 01-12 off; 2101 as derived.
    let dir = app.config.parent().unwrap().to_path_buf();
    let f2027 = official_file(&dir, 2027, &["2027-01-12"]);
    let f2101 = official_file(&dir, 2101, &[]);
    set_calendar_files(&app, &[&official_2026, &f2027, &f2101]);
    app.start();
    let records = with_due_updates(&brokers, &sla.alerts, 2, Duration::from_secs(3));
    let updates = due_updates(&records);
    let mut got: Vec<(String, String, String)> = updates
        .iter()
        .map(|(_, v)| {
            (
                v["item_id"].as_str().unwrap().to_string(),
                v["clock"].as_str().unwrap().to_string(),
                v["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (
            crossing.clone(),
            "t.accept".to_string(),
            "calendar_changed".to_string(),
        ),
        (
            pending.clone(),
            "t.accept".to_string(),
            "pending_computed".to_string(),
        ),
    ];
    want.sort();
    assert_eq!(got, want, "exactly the moved and the pending clocks");
    let validator = schema("due-update.v1.json");
    for (r, v) in &updates {
        assert!(validator.is_valid(v), "not schema/due-update.v1.json: {v}");
        assert_eq!(r.headers["ce_id"], v["update_id"].as_str().unwrap());
        assert_eq!(r.headers["ce_sladue"], v["due_at"].as_str().unwrap());
        assert_eq!(r.key, v["item_id"].as_str().unwrap());
    }
    let moved = &updates
        .iter()
        .find(|(_, v)| v["item_id"] == crossing.as_str())
        .unwrap()
        .1;
    assert_eq!(moved["previous_due_at"], "2027-01-12T09:30:00Z");
    assert_eq!(moved["due_at"], "2027-01-13T09:30:00Z");
    assert_eq!(moved["provisional"], false);
    // The board shows the new time, no longer provisional.
    let (_, board) = app.http_get("/board.json?clock=t.accept&limit=500");
    let board: serde_json::Value = serde_json::from_str(&board).unwrap();
    let c = on_board(&board, &crossing);
    assert_eq!(c["due_at"], "2027-01-13T17:30:00+08:00");
    assert_eq!(c["provisional"], false);
    let (_, metrics) = app.http_get("/metrics");
    assert!(
        metrics.contains("petitiond_sla_due_updates_total 2"),
        "{metrics}"
    );

    // Same calendars again: nothing recomputed, nothing announced.
    assert_eq!(app.terminate(Duration::from_secs(30)), Some(0));
    app.start();
    let records = with_due_updates(&brokers, &sla.alerts, 2, Duration::from_secs(5));
    assert_eq!(due_updates(&records).len(), 2, "no record twice");
}
