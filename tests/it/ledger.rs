//! `petitiond ledger` against a running daemon: the real broker, status events on the desk's
//! status topic, the ledger read from the store the daemon writes.

use crate::helpers::*;
use std::time::Duration;

fn ledger_json(app: &TestApp, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["ledger", "--format", "json"];
    args.extend_from_slice(extra);
    let out = app.petitiond(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The ledger follows an item through the loop as the department reports: registered moves
/// it to 受理 with the clerk named and its clock stopped; an item nobody touched stays at
/// 登记 with its clock running; the filters and bad arguments answer as documented.
#[test]
fn the_ledger_follows_items_through_status_events() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let desk_status = format!("{}.status", app.topic);
    app.append_config(&format!(
        "\n[sla]\nalerts_topic = \"{}\"\nstatus_topic = \"{}\"\nconsumer_group = \"{}\"\n\
         [[sla.clocks]]\nid = \"letter.register\"\nrule = {{ kind = \"wall_clock\", minutes = 600 }}\n\
         channels = [\"letter\"]\nstop_on = [\"registered\"]\ncitation = \"test\"\n",
        unique("it.alerts"),
        unique("it.status"),
        unique("it.group")
    ));
    app.start();
    let touched = app.deliver_now(&letter(1));
    let untouched = app.deliver_now(&letter(2));
    consume(
        &brokers,
        &app.topic,
        2,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    send_status(
        &brokers,
        &desk_status,
        &touched,
        serde_json::json!({"event_id": unique("ev"), "item_id": touched, "event": "registered",
                           "time": jiff::Timestamp::now().to_string(),
                           "actor": {"department": "intake-desk", "person": "clerk-1"}}),
    );
    let mut rows = serde_json::Value::Null;
    for _ in 0..120 {
        rows = ledger_json(&app, &[]);
        if rows
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["item_id"] == touched && r["stage"] == "accepted")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = |id: &str| rows.iter().find(|r| r["item_id"] == id).unwrap().clone();
    let t = row(&touched);
    assert_eq!(t["stage"], "accepted", "{t}");
    assert_eq!(t["stage_zh"], "受理");
    assert_eq!(t["lead"], "intake-desk");
    assert_eq!(t["person"], "clerk-1");
    assert_eq!(t["last_event"], "registered");
    assert_eq!(t["clocks"][0]["clock"], "letter.register");
    assert_eq!(t["clocks"][0]["state"], "stopped");
    let u = row(&untouched);
    assert_eq!(u["stage"], "received", "{u}");
    assert_eq!(u["stage_zh"], "登记");
    assert_eq!(u["clocks"][0]["state"], "running");
    assert!(u["person"].is_null());
    // The expected completion is the latest due of its clocks here (no statutory clock),
    // written in the office's time zone.
    assert!(
        u["expected_completion"]
            .as_str()
            .unwrap()
            .ends_with("+08:00"),
        "{u}"
    );

    assert_eq!(
        ledger_json(&app, &["--since", "2099-01-01"]),
        serde_json::json!([])
    );
    assert_eq!(
        ledger_json(&app, &["--department", "intake-desk"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let csv = app.petitiond(&["ledger"]);
    assert!(csv.status.success());
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("item_id,channel,category,received_at,stage,stage_zh,"));

    for (args, says) in [
        (
            vec!["ledger", "--since", "last tuesday"],
            "--since `last tuesday`",
        ),
        (
            vec!["ledger", "--department", "nosuch"],
            "--department `nosuch`",
        ),
    ] {
        let out = app.petitiond(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
