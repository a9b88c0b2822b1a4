//! The hotline and portal channels end to end: the simulators (in this test process) with
//! their faults switched on, the real daemon, the real broker.

use crate::helpers::{Record, TestApp, broker, consume};
use petitiond::envelope::{Channel, ItemId};
use petitiond::sim::Faults;
use petitiond::sim::hotline::{HotlineSim, HotlineSimConfig};
use petitiond::sim::portal::{Pagination, PortalSim, PortalSimConfig, SigningSecret};
use std::collections::HashMap;
use std::time::Duration;

const ROUTED: &str = "cn.gov.petition.item.routed.v1";
const UPDATED: &str = "cn.gov.petition.item.updated.v1";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn every_fault() -> Faults {
    Faults {
        error_500_every: Some(7),
        rate_limit_every: Some(11),
        retry_after_secs: 1,
        slow_every: Some(13),
        slow_ms: 300,
        truncate_every: Some(5),
        garbage_every: Some(9),
        duplicate_records: true,
        out_of_order: true,
        bad_record_every: Some(25),
        malformed_optional_every: Some(17),
        ..Faults::default()
    }
}

/// The channel sections for the two simulators. Secrets come from files, as in production.
fn channels(app: &TestApp, hotline: &str, portal: &str, extra: &str) {
    let mapping = petitiond::sim::portal::MAPPING_TOML;
    std::fs::write(app.dir.path().join("hotline.key"), "it-api-key\n").unwrap();
    std::fs::write(app.dir.path().join("portal.secret"), "it-secret-不要用\n").unwrap();
    app.append_config(&format!(
        r#"
[channels.hotline]
protocol = "open311"
base_url = "{hotline}"
# The simulators listen on loopback over plain http.
allow_plaintext_auth = true
jurisdiction_id = "hz.12345"
api_key = {{ file = "hotline.key" }}
max_per_response = 100
poll_interval_ms = 200
overlap_secs = 30
initial_lookback_hours = 1
backoff_initial_ms = 50
backoff_max_ms = 500
breaker_failures = 20
breaker_cooldown_ms = 500
requests_per_second = 200
{extra}

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
breaker_failures = 20
breaker_cooldown_ms = 500
requests_per_second = 200
{extra}

[channels.portal.pagination]
kind = "cursor"
page_size = 20
next_cursor_pointer = "/data/next_cursor"

[channels.portal.mapping]
{mapping}

[channels.portal.auth]
kind = "hmac"
app_key = "petitiond-it"
secret = {{ file = "portal.secret" }}
"#
    ));
}

fn sims(rt: &tokio::runtime::Runtime) -> (HotlineSim, PortalSim) {
    let hotline = rt
        .block_on(HotlineSim::start(HotlineSimConfig {
            jurisdiction_id: Some("hz.12345".into()),
            api_key: Some("it-api-key".into()),
            max_per_response: 100,
            ..Default::default()
        }))
        .unwrap();
    let portal = rt
        .block_on(PortalSim::start(PortalSimConfig {
            pagination: Pagination::Cursor,
            signing: Some(SigningSecret {
                app_key: "petitiond-it".into(),
                secret: "it-secret-不要用".into(),
            }),
            ..Default::default()
        }))
        .unwrap();
    (hotline, portal)
}

fn expected_ids(hotline: &HotlineSim, portal: &PortalSim) -> Vec<String> {
    let mut ids: Vec<String> = hotline
        .record_ids()
        .iter()
        .map(|id| ItemId::derive(Channel::Hotline, id).to_string())
        .collect();
    ids.extend(
        portal
            .record_ids()
            .iter()
            .map(|id| ItemId::derive(Channel::Portal, id).to_string()),
    );
    ids
}

/// Counts records per (item id, CloudEvents type).
fn by_type(records: &[Record]) -> HashMap<(String, String), usize> {
    let mut m = HashMap::new();
    for r in records {
        let t = r.headers.get("ce_type").cloned().unwrap_or_default();
        *m.entry((r.key.clone(), t)).or_default() += 1;
    }
    m
}

fn assert_each_routed_once(records: &[Record], ids: &[String]) {
    let counts = by_type(records);
    let routed: Vec<_> = counts.iter().filter(|((_, t), _)| t == ROUTED).collect();
    let dups: Vec<_> = routed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "routed twice: {dups:?}");
    let missing: Vec<_> = ids
        .iter()
        .filter(|id| !counts.contains_key(&((*id).clone(), ROUTED.to_string())))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} lost: {missing:?}",
        missing.len(),
        ids.len()
    );
    assert_eq!(routed.len(), ids.len(), "unexpected extra items");
}

#[test]
fn every_fault_on_both_channels_each_record_once_and_updates_as_updates() {
    let Some(brokers) = broker() else { return };
    let rt = runtime();
    let (hotline, portal) = sims(&rt);
    hotline.set_faults(every_fault());
    portal.set_faults(every_fault());
    // Spread over ten minutes: the hotline's 100-record cap forces window splits (a server's
    // one-second resolution cannot split records of the same second).
    let now = jiff::Timestamp::now();
    hotline.add_records_between(260, now - jiff::SignedDuration::from_mins(10), now);
    portal.add_records(130);
    let mut app = TestApp::new(&brokers, "");
    channels(&app, &hotline.base_url(), &portal.base_url(), "");
    app.start();

    let ids = expected_ids(&hotline, &portal);
    assert_eq!(
        ids.len(),
        260 + 130 - 10 - 5,
        "the sims made some records bad"
    );
    let records = consume(
        &brokers,
        &app.topic,
        ids.len(),
        Duration::from_secs(240),
        Duration::from_secs(3),
    );
    assert_each_routed_once(&records, &ids);
    // Every record is schema-valid CloudEvents data with the channel header.
    for r in &records {
        assert!(matches!(
            r.headers.get("ce_channel").map(String::as_str),
            Some("hotline" | "portal")
        ));
    }

    // Upstream updates to old records arrive as updates, once each, never as new items.
    let mut updated: Vec<String> = hotline
        .update_random(8)
        .iter()
        .map(|id| ItemId::derive(Channel::Hotline, id).to_string())
        .collect();
    updated.extend(
        portal
            .update_random(4)
            .iter()
            .map(|id| ItemId::derive(Channel::Portal, id).to_string()),
    );
    assert_eq!(updated.len(), 12);
    let records = consume(
        &brokers,
        &app.topic,
        ids.len() + updated.len(),
        Duration::from_secs(120),
        Duration::from_secs(3),
    );
    assert_each_routed_once(&records, &ids);
    let counts = by_type(&records);
    for id in &updated {
        assert_eq!(
            counts.get(&(id.clone(), UPDATED.to_string())),
            Some(&1),
            "update of {id}"
        );
    }
    assert_eq!(records.len(), ids.len() + updated.len());

    // Quarantine holds each bad record that has an id, by name, with its reason.
    let out = app.petitiond(&["quarantine", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    for id in hotline
        .bad_record_ids()
        .iter()
        .chain(portal.bad_record_ids().iter())
    {
        assert!(
            listing.contains(&format!("id={id}")),
            "{id} not in quarantine:\n{listing}"
        );
    }
    let (_, metrics) = app.http_get("/metrics");
    for (source, reason) in [
        ("hotline", "no_id"),
        ("hotline", "bad_time"),
        ("hotline", "not_an_object"),
        ("hotline", "oversize"),
        ("portal", "bad_time"),
        ("portal", "no_id"),
    ] {
        assert!(
            metrics.contains(&format!(
                r#"petitiond_quarantined_total{{source="{source}",reason="{reason}"}}"#
            )),
            "{source}/{reason} not counted:\n{metrics}"
        );
    }
    for outcome in ["http_5xx", "http_429", "bad_body"] {
        assert!(
            metrics.contains(&format!(r#"source="hotline",outcome="{outcome}""#)),
            "{outcome}"
        );
    }
    let (status, health) = app.http_get("/channels");
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["hotline"]["stale"], false);
    assert_eq!(health["portal"]["channel"], "portal");
    assert_eq!(app.terminate(Duration::from_secs(30)), Some(0));
}

/// The daemon is SIGKILLed mid-page again and again while both upstreams keep adding records;
/// after a last clean run every record is on Kafka exactly once.
#[test]
fn sigkill_mid_page_repeatedly_loses_nothing_and_duplicates_nothing() {
    let Some(brokers) = broker() else { return };
    let rt = runtime();
    let (hotline, portal) = sims(&rt);
    // Slow pages so kills land mid-page, with some faults still on.
    let faults = Faults {
        slow_every: Some(1),
        slow_ms: 40,
        error_500_every: Some(13),
        duplicate_records: true,
        ..Default::default()
    };
    hotline.set_faults(faults.clone());
    portal.set_faults(faults);
    let mut app = TestApp::new(&brokers, "");
    channels(&app, &hotline.base_url(), &portal.base_url(), "");
    for (round, wait_ms) in [300u64, 900, 1500, 600, 1200].into_iter().enumerate() {
        // New records carry times within the overlap (30 s) behind now: a record that shows up
        // upstream with a time older than the cursor minus the overlap is, by design, not
        // re-read (the overlap must cover the upstream's visibility lag).
        let now = jiff::Timestamp::now();
        hotline.add_records_between(120, now - jiff::SignedDuration::from_secs(20), now);
        portal.add_records(60);
        app.start();
        std::thread::sleep(Duration::from_millis(wait_ms));
        app.kill();
        eprintln!("round {round}: killed after {wait_ms} ms");
    }
    app.start();
    let ids = expected_ids(&hotline, &portal);
    assert_eq!(ids.len(), 5 * 180);
    let records = consume(
        &brokers,
        &app.topic,
        ids.len(),
        Duration::from_secs(240),
        Duration::from_secs(3),
    );
    assert_each_routed_once(&records, &ids);
    assert_eq!(records.len(), ids.len());
    assert_eq!(app.terminate(Duration::from_secs(30)), Some(0));
}
