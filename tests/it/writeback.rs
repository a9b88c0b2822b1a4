//! Status write-back end to end (issue 14, point 6): the real daemon and broker, the portal
//! simulator (signed requests, its status API) in this process. Petitions are routed
//! (acknowledged), get their first-touch due time, and — after a department's `replied` on
//! the status topic — are completed upstream; the sim answers with 5xx, 429, lost answers
//! (applied, then a timeout) and the daemon is SIGKILLed while writes hang. Every write
//! reaches the portal once, in order per petition, each under one idempotency key.

use crate::helpers::{TestApp, broker, consume, unique};
use petitiond::envelope::{Channel, ItemId};
use petitiond_sim::Faults;
use petitiond_sim::portal::{PortalSim, PortalSimConfig, SigningSecret, WRITEBACK_TOML};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The portal with write-back and signed requests (the body signed too); returns the desk's
/// status topic (`departments[].status_topic`, default `<topic>.status`: the desk's system
/// reports there).
fn configure(app: &TestApp, portal: &str) -> String {
    std::fs::write(app.dir.path().join("portal.secret"), "it-secret-不要用\n").unwrap();
    let status = unique("it.status");
    app.append_config(&format!(
        r#"
[channels.portal]
protocol = "paged"
base_url = "{portal}"
allow_plaintext_auth = true
path = "/petitions"
updated_after_param = "updated_after"
items_pointer = "/data/items"
poll_interval_ms = 200
overlap_secs = 30
initial_lookback_hours = 1
backoff_initial_ms = 50
backoff_max_ms = 500
breaker_failures = 50
requests_per_second = 200

[channels.portal.pagination]
kind = "page"
page_size = 20

[channels.portal.mapping]
{mapping}

[channels.portal.auth]
kind = "hmac"
app_key = "petitiond-it"
secret = {{ file = "portal.secret" }}

[channels.portal.writeback]
canonical = "{{method}}\\n{{path}}\\n{{query}}\\n{{timestamp}}\\n{{nonce}}\\n{{body_sha256}}"
request_timeout_ms = 1500
backoff_initial_ms = 100
backoff_max_ms = 1000
max_attempts = 30
poll_interval_ms = 200
{writeback}
[sla]
alerts_topic = "{alerts}"
status_topic = "{status}"
consumer_group = "{group}"
"#,
        mapping = petitiond_sim::portal::MAPPING_TOML,
        writeback = WRITEBACK_TOML,
        alerts = unique("it.alerts"),
        group = unique("it.group"),
    ));
    format!("{}.status", app.topic)
}

fn send_replied(brokers: &str, topic: &str, items: &[String]) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for item in items {
        let body = serde_json::json!({
            "event_id": unique("ev"),
            "item_id": item,
            "event": "replied",
            "time": jiff::Timestamp::now().to_string(),
            "actor": {"department": "intake-desk"},
            // A reply that passes the check (a bounced one completes nothing).
            "payload": {"reply": "经调查核实，情况属实。依据《信访工作条例》第三十四条的规定，现已办结。如对本处理意见不服，可在30日内请求复查。"},
        })
        .to_string();
        rt.block_on(p.send(
            FutureRecord::to(topic).key(item).payload(&body),
            Duration::from_secs(10),
        ))
        .map_err(|(e, _)| e)
        .unwrap();
    }
}

/// Waits until every petition's status log has `want(petition)` states; panics after 120 s.
fn wait_for(portal: &PortalSim, petitions: &[String], want: impl Fn(&str) -> usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let short: Vec<_> = petitions
            .iter()
            .filter(|p| portal.status_log(p).len() < want(p))
            .collect();
        if short.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "write-backs missing for {short:?}: {:?}",
            short
                .iter()
                .map(|p| portal.status_log(p))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn write_backs_arrive_once_in_order_through_faults_and_a_sigkill() {
    let Some(brokers) = broker() else { return };
    let rt = runtime();
    let portal = rt
        .block_on(PortalSim::start(PortalSimConfig {
            signing: Some(SigningSecret {
                app_key: "petitiond-it".into(),
                secret: "it-secret-不要用".into(),
            }),
            ..PortalSimConfig::default()
        }))
        .unwrap();
    let petitions = portal.add_records(6);
    let mut app = TestApp::new(&brokers, "");
    let status_topic = configure(&app, &portal.base_url());
    // Every write is applied, then its answer hangs for 4 s (the daemon gives up after 1.5 s):
    // writes are in flight when the daemon is killed.
    portal.set_faults(Faults {
        lost_answer_every: Some(1),
        slow_ms: 4000,
        ..Faults::default()
    });
    app.start();
    // Routed (acknowledged, due) ...
    consume(
        &brokers,
        &app.topic,
        6,
        Duration::from_secs(60),
        Duration::from_millis(100),
    );
    // ... and departments reply to half of them: to be completed upstream.
    let replied: Vec<String> = petitions[..3].to_vec();
    let items: Vec<String> = replied
        .iter()
        .map(|p| ItemId::derive(Channel::Portal, p).to_string())
        .collect();
    send_replied(&brokers, &status_topic, &items);
    // Killed once all 15 writes are queued and some are in flight (their attempt counted,
    // applied upstream, the answer not yet back).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = app.petitiond(&["writeback", "list", "--state", "all"]);
        let queued = String::from_utf8_lossy(&out.stdout).lines().count();
        if queued == 15 && portal.status_requests().len() >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{queued} write-backs queued, {} sent\n{}",
            portal.status_requests().len(),
            app.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    app.kill();
    let before_kill = portal.status_requests().len();
    let out = app.petitiond(&["writeback", "list", "--state", "pending"]);
    let pending = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        pending.lines().any(|l| l.split('\t').nth(7) != Some("0")),
        "a write was in flight at the kill (attempted, not delivered):\n{pending}"
    );

    // Restart with other faults: 5xx, 429 with Retry-After, slow answers past the timeout.
    portal.set_faults(Faults {
        error_500_every: Some(3),
        rate_limit_every: Some(5),
        retry_after_secs: 1,
        slow_every: Some(7),
        slow_ms: 2000,
        lost_answer_every: Some(4),
        ..Faults::default()
    });
    app.start();
    wait_for(&portal, &petitions, |p| {
        if replied.iter().any(|r| r == p) { 3 } else { 2 }
    });
    // Applied upstream is not yet acknowledged here (a lost answer's retry may be waiting):
    // wait until nothing is pending, then look at what the portal saw.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = app.petitiond(&["writeback", "list", "--state", "pending"]);
        let pending = String::from_utf8_lossy(&out.stdout).to_string();
        if pending.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still pending:\n{pending}");
        std::thread::sleep(Duration::from_millis(200));
    }
    for p in &petitions {
        let log = portal.status_log(p);
        let states: Vec<&str> = log.iter().map(|a| a.state.as_str()).collect();
        let want: &[&str] = if replied.contains(p) {
            &["ACCEPTED", "TIME_LIMIT", "FINISHED"]
        } else {
            &["ACCEPTED", "TIME_LIMIT"]
        };
        assert_eq!(states, want, "{p}: once each, in order");
        assert_eq!(log[0].handle_dept.as_deref(), Some("信访接待科"));
        assert!(log[1].due_time.is_some());
    }
    let requests = portal.status_requests();
    assert!(requests.len() > before_kill);
    let mut keys: HashMap<(String, Vec<u8>), BTreeSet<String>> = HashMap::new();
    for r in &requests {
        keys.entry((r.petition.clone(), r.body.clone()))
            .or_default()
            .insert(r.key.clone());
    }
    for ((p, body), k) in &keys {
        assert_eq!(
            k.len(),
            1,
            "{p}: one write sent under several keys: {}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(
        requests.iter().any(|r| r.replayed),
        "retries of lost answers were recognised by their key"
    );
    // The CLI shows them delivered; nothing pending or dead.
    let out = app.petitiond(&["writeback", "list", "--state", "all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let states: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').nth(2).unwrap())
        .collect();
    assert_eq!(states.len(), 15, "{text}");
    assert!(states.iter().all(|s| *s == "delivered"), "{text}");
    let (_, metrics) = app.http_get("/metrics");
    for want in [
        "petitiond_writeback_requests_total{source=\"portal\",outcome=\"retry\"}",
        "petitiond_writeback_dead_total{source=\"portal\",kind=\"due\"} 0",
        "petitiond_writeback_pending{source=\"portal\"} 0",
    ] {
        assert!(metrics.contains(want), "{want} in:\n{metrics}");
    }
    app.kill();
    rt.block_on(portal.stop());
}
