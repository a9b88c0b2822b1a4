//! Corrections end to end: the intake desk re-routes an item with a status event; the daemon
//! records it once (the same event twice: one correction), dead-letters a re-route naming no
//! category, and `petitiond rules corrections export` writes it as labelled training data,
//! readable by the owner only.

use crate::capture::Captured;
use crate::helpers::*;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

#[test]
fn a_re_route_is_recorded_once_and_exported_as_training_data() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let status = unique("it.status");
    let mut cfg = std::fs::read_to_string(&app.config).unwrap();
    cfg.push_str(&format!(
        "\n[sla]\nalerts_topic = \"{}\"\nstatus_topic = \"{status}\"\nconsumer_group = \"{}\"\n",
        unique("it.alerts"),
        unique("it.group")
    ));
    std::fs::write(&app.config, &cfg).unwrap();
    app.start();
    // The intake desk reports on its own status topic (`<topic>.status` by default): the
    // shared one trusts no department unless configured to.
    let desk_status = format!("{}.status", app.topic);
    let item = app.deliver_now(&letter(1));
    consume(
        &brokers,
        &app.topic,
        1,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    let now = jiff::Timestamp::now().to_string();
    let reroute = serde_json::json!({"event_id": "r1", "item_id": item, "event": "status_marked",
        "time": now, "actor": {"department": "intake-desk"},
        "payload": {"category": "rights", "department": "intake-desk"}});
    send_status(&brokers, &desk_status, &item, reroute.clone());
    send_status(&brokers, &desk_status, &item, reroute); // redelivered: recorded once
    send_status(
        &brokers,
        &desk_status,
        &item,
        serde_json::json!({"event_id": "r2", "item_id": item, "event": "status_marked",
            "time": now, "payload": {"category": "sports"}}),
    );
    let dead = consume(
        &brokers,
        &app.dlq,
        1,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert!(
        dead.iter()
            .any(|r| r.headers["petitiond_dlq_reason"].contains("payload.category `sports`")),
        "{:?}",
        dead.iter()
            .map(|r| &r.headers["petitiond_dlq_reason"])
            .collect::<Vec<_>>()
    );
    // r1 was consumed before r2 was dead-lettered (one partition, in order): export now.
    let dir = tempfile::tempdir().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (out, text) = loop {
        let out = dir
            .path()
            .join(format!("c{}.jsonl", deadline.elapsed().as_millis()));
        let run = std::process::Command::new(BIN)
            .args(["rules", "corrections", "export", "--config"])
            .arg(&app.config)
            .arg("--out")
            .arg(&out)
            .output()
            .captured();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(&out).unwrap();
        if !text.is_empty() || Instant::now() > deadline {
            break (out, text);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["category"], "rights");
    assert_eq!(v["item_id"], item.as_str());
    assert_eq!(v["department"], "intake-desk");
    assert!(v["content"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the export holds petition text");
    // The export refuses to overwrite.
    let again = std::process::Command::new(BIN)
        .args(["rules", "corrections", "export", "--config"])
        .arg(&app.config)
        .arg("--out")
        .arg(&out)
        .output()
        .captured();
    assert!(!again.status.success());
}
