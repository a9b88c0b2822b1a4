//! The closed loop end to end (issue 17 points 2-3): the real daemon and broker. A reply that
//! fails the quality check is bounced to its department's topic and alerted while the clock
//! waiting for it runs on to its breach; a good reply stops it; a 不满意 evaluation raises a
//! revisit alert and starts the revisit clock, which then alerts like any clock.

use crate::helpers::*;
use std::time::Duration;

fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

const VAGUE: &str = "您反映的问题我们正在协调，将尽快处理。联系人王某某 13912345678。";
const GOOD: &str = "经调查核实，您反映的情况属实。依据《信访工作条例》第三十四条的规定，现已责令有关单位整改完毕。如对本处理意见不服，可在收到之日起30日内请求复查。";

#[test]
fn a_bad_reply_is_bounced_and_alerted_while_its_clock_runs_and_dissatisfaction_opens_a_revisit() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let alerts_topic = unique("it.alerts");
    app.append_config(&format!(
        r#"
[sla]
alerts_topic = "{alerts_topic}"
status_topic = "{}"
consumer_group = "{}"
supervisors = ["duban@example.gov.cn"]

[[sla.clocks]]
id = "handle.test"
rule = {{ kind = "wall_clock_seconds", seconds = 10 }}
start_on = "accepted"
stop_on = ["replied"]
warn_at_percent = [50]
remind_every_working_days = 0
citation = "test"

[[sla.clocks]]
id = "revisit"
rule = {{ kind = "wall_clock_seconds", seconds = 10 }}
start_on = "evaluated"
verdicts = ["dissatisfied"]
stop_on = ["replied"]
warn_at_percent = [50]
remind_every_working_days = 0
citation = "test"
"#,
        unique("it.status"),
        unique("it.group")
    ));
    app.start();
    let desk_status = format!("{}.status", app.topic);
    let bad = app.deliver_now(&letter(1));
    let good = app.deliver_now(&letter(2));
    consume(
        &brokers,
        &app.topic,
        2,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    let event = |id: &str, item: &str, kind: &str, payload: serde_json::Value| {
        serde_json::json!({"event_id": id, "item_id": item, "event": kind,
            "time": jiff::Timestamp::now().to_string(),
            "actor": {"department": "intake-desk", "person": "clerk-1"}, "payload": payload})
    };
    for item in [&bad, &good] {
        send_status(
            &brokers,
            &desk_status,
            item,
            event(
                &format!("acc-{item}"),
                item,
                "accepted",
                serde_json::json!({}),
            ),
        );
    }
    send_status(
        &brokers,
        &desk_status,
        &bad,
        event(
            "rep-bad",
            &bad,
            "replied",
            serde_json::json!({ "reply": VAGUE }),
        ),
    );
    send_status(
        &brokers,
        &desk_status,
        &good,
        event(
            "rep-good",
            &good,
            "replied",
            serde_json::json!({ "reply": GOOD }),
        ),
    );
    send_status(
        &brokers,
        &desk_status,
        &good,
        event(
            "eval-good",
            &good,
            "evaluated",
            serde_json::json!({ "satisfaction": "不满意" }),
        ),
    );

    // The bounce notice, on the department's topic after the two routed records.
    let dept = consume(
        &brokers,
        &app.topic,
        3,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let notices: Vec<&Record> = dept
        .iter()
        .filter(|r| r.headers["ce_type"] == "cn.gov.petition.reply.bounced.v1")
        .collect();
    assert_eq!(
        notices.len(),
        1,
        "{:?}",
        dept.iter()
            .map(|r| &r.headers["ce_type"])
            .collect::<Vec<_>>()
    );
    let n = notices[0];
    assert_eq!(n.key, bad);
    let p: serde_json::Value = serde_json::from_slice(&n.payload).unwrap();
    assert!(schema("reply-bounced.v1.json").is_valid(&p), "{p}");
    assert_eq!(p["event_id"], "rep-bad");
    assert_eq!(
        p["missing"],
        serde_json::json!(["facts", "policy", "result", "remedy"])
    );
    assert_eq!(p["banned"], serde_json::json!(["正在协调", "尽快处理"]));
    assert_eq!(p["clocks_running"][0]["clock"], "handle.test");

    // Alerts: the bounce, then the bad item's clock still warns and breaches; the good item's
    // clock is stopped (no alert of it), its revisit alert and the revisit clock's alerts.
    let alerts = consume(
        &brokers,
        &alerts_topic,
        6,
        Duration::from_secs(90),
        Duration::from_secs(2),
    );
    let of = |item: &str| -> Vec<(String, String)> {
        alerts
            .iter()
            .map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap())
            .filter(|a| a["item_id"] == item)
            .map(|a| {
                (
                    a["kind"].as_str().unwrap().to_string(),
                    a["clock"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let pair = |k: &str, c: &str| (k.to_string(), c.to_string());
    assert_eq!(
        of(&bad),
        vec![
            pair("reply_bounced", "handle.test"),
            pair("warning_50", "handle.test"),
            pair("breach", "handle.test"),
        ]
    );
    assert_eq!(
        of(&good),
        vec![
            pair("revisit", "revisit"),
            pair("warning_50", "revisit"),
            pair("breach", "revisit"),
        ]
    );
    let alert_schema = schema("alert.v1.json");
    for r in &alerts {
        let a: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert!(alert_schema.is_valid(&a), "{a}");
        let text = String::from_utf8_lossy(&r.payload);
        assert!(
            !text.contains("13912345678")
                && !text.contains("王某某")
                && !text.contains("将尽快处理"),
            "reply text in an alert: {text}"
        );
    }
    let n_text = String::from_utf8_lossy(&n.payload);
    assert!(
        !n_text.contains("13912345678") && !n_text.contains("将尽快处理"),
        "{n_text}"
    );

    // The store: verdicts for the ledger, stages, and the clocks' states.
    let db = rusqlite::Connection::open(app.dir.path().join("data/petitiond.db")).unwrap();
    let verdict = |event: &str| -> Option<String> {
        db.query_row(
            "SELECT verdict FROM status_events WHERE event_id = ?1",
            [event],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(verdict("rep-bad").as_deref(), Some("bounced"));
    assert_eq!(verdict("rep-good").as_deref(), Some("ok"));
    assert_eq!(verdict("eval-good").as_deref(), Some("dissatisfied"));
    assert_eq!(verdict(&format!("acc-{bad}")), None);
    let stage = |item: &str| -> String {
        db.query_row("SELECT stage FROM items WHERE id = ?1", [item], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert_eq!(stage(&bad), "handling", "a bounced reply is not a reply");
    assert_eq!(stage(&good), "evaluated");
    let state = |item: &str, clock: &str| -> String {
        db.query_row(
            "SELECT state FROM sla_clocks WHERE item_id = ?1 AND clock_id = ?2",
            [item, clock],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(state(&bad, "handle.test"), "running");
    assert_eq!(state(&good, "handle.test"), "stopped");
    assert_eq!(state(&good, "revisit"), "running");
    let logs = app.logs();
    assert!(logs.contains("reply bounced"), "no bounce log line");
    assert!(
        !logs.contains("13912345678") && !logs.contains("将尽快处理"),
        "reply text in the logs"
    );
    let (_, metrics) = app.http_get("/metrics");
    assert!(
        metrics.contains("petitiond_reply_checks_total{result=\"bounced\"} 1")
            && metrics.contains("petitiond_reply_checks_total{result=\"ok\"} 1")
            && metrics.contains("petitiond_evaluations_total{verdict=\"dissatisfied\"} 1"),
        "{metrics}"
    );
}
