//! The hotline and portal channels end to end: the simulators (in this test process) with
//! their faults switched on, the real daemon, the real broker.

use crate::helpers::{Record, TestApp, broker, consume};
use petitiond::envelope::{Channel, ItemId};
use petitiond_sim::Faults;
use petitiond_sim::hotline::{HotlineSim, HotlineSimConfig};
use petitiond_sim::portal::{Pagination, PortalSim, PortalSimConfig, SigningSecret};
use std::collections::HashMap;
use std::time::Duration;

const ROUTED: &str = "cn.gov.petition.item.routed.v1";
const UPDATED: &str = "cn.gov.petition.item.updated.v1";

pub(crate) fn runtime() -> tokio::runtime::Runtime {
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
pub(crate) fn channels(app: &TestApp, hotline: &str, portal: &str, extra: &str) {
    channels_paged(app, hotline, portal, extra, "cursor");
}

/// `channels` with the portal's pagination kind.
fn channels_paged(app: &TestApp, hotline: &str, portal: &str, extra: &str, pagination: &str) {
    let mapping = petitiond_sim::portal::MAPPING_TOML;
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
kind = "{pagination}"
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

pub(crate) fn sims(rt: &tokio::runtime::Runtime) -> (HotlineSim, PortalSim) {
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

pub(crate) fn expected_ids(hotline: &HotlineSim, portal: &PortalSim) -> Vec<String> {
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

pub(crate) fn assert_each_routed_once(records: &[Record], ids: &[String]) {
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

/// Issue 13 end to end, with the real daemon and broker: an Open311 server that ignores
/// `updated_before`, a signed portal paged by `Link`, files that always fail, records with
/// malformed optional fields and one dated a year ahead. Every record that can be an item is
/// routed once; the items with a failing file are quarantined (`attachment_failed`) after
/// their budget and the sources go on; each condition is alerted once on the alerts topic.
#[test]
fn partly_supporting_upstreams_never_halt_skip_or_stall_the_channels() {
    let Some(brokers) = broker() else { return };
    let rt = runtime();
    let hotline = rt
        .block_on(HotlineSim::start(HotlineSimConfig {
            jurisdiction_id: Some("hz.12345".into()),
            api_key: Some("it-api-key".into()),
            // As configured (`max_per_response = 100`): a client must not think the
            // server's cap larger than it is.
            max_per_response: 100,
            ignores_updated_before: true,
            media_every: Some(3),
            ..Default::default()
        }))
        .unwrap();
    let portal = rt
        .block_on(PortalSim::start(PortalSimConfig {
            pagination: Pagination::Link,
            signing: Some(SigningSecret {
                app_key: "petitiond-it".into(),
                secret: "it-secret-不要用".into(),
            }),
            media_every: Some(4),
            ..Default::default()
        }))
        .unwrap();
    let faults = Faults {
        error_500_every: Some(11),
        duplicate_records: true,
        malformed_optional_every: Some(7),
        broken_media_every: Some(5),
        ..Faults::default()
    };
    hotline.set_faults(faults.clone());
    portal.set_faults(faults);
    let now = jiff::Timestamp::now();
    hotline.add_records_between(300, now - jiff::SignedDuration::from_mins(10), now);
    portal.add_records_between(60, now - jiff::SignedDuration::from_mins(10), now);
    portal.add_record_at(now + jiff::SignedDuration::from_hours(24 * 365));
    let alerts = crate::helpers::unique("it.alerts");
    let mut app = TestApp::new(&brokers, "");
    channels_paged(
        &app,
        &hotline.base_url(),
        &portal.base_url(),
        "max_clock_skew_secs = 10",
        "link",
    );
    app.append_config(&format!(
        "\n[channels.hotline.attachments]\nmax_failed_polls = 2\n\n[channels.portal.attachments]\nmax_failed_polls = 2\n\n[sla]\nalerts_topic = \"{alerts}\"\n"
    ));
    app.start();

    // Records whose file always fails: they have media and a creation number that is a
    // multiple of 5 (no record is bad, so creation number n is record_ids()[n - 1]).
    let broken = |ids: Vec<String>, media_every: usize| {
        let (mut broken, mut ok) = (Vec::new(), Vec::new());
        for (i, id) in ids.into_iter().enumerate() {
            if (i + 1) % media_every == 0 && (i + 1) % 5 == 0 {
                broken.push(id);
            } else {
                ok.push(id);
            }
        }
        (broken, ok)
    };
    let (hotline_broken, hotline_ok) = broken(hotline.record_ids(), 3);
    let (portal_broken, portal_ok) = broken(portal.record_ids(), 4);
    assert_eq!((hotline_broken.len(), portal_broken.len()), (20, 3));
    let mut ids: Vec<String> = hotline_ok
        .iter()
        .map(|id| ItemId::derive(Channel::Hotline, id).to_string())
        .collect();
    ids.extend(
        portal_ok
            .iter()
            .map(|id| ItemId::derive(Channel::Portal, id).to_string()),
    );
    let records = consume(
        &brokers,
        &app.topic,
        ids.len(),
        Duration::from_secs(180),
        Duration::from_secs(3),
    );
    assert_each_routed_once(&records, &ids);

    // The held items end in quarantine with their file's reference, once their budget is
    // spent (two polls; give them a few seconds).
    let mut listing = String::new();
    for _ in 0..60 {
        let out = app.petitiond(&["quarantine", "list"]);
        listing = String::from_utf8_lossy(&out.stdout).into_owned();
        if listing.matches("attachment_failed").count() >= 23 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for id in hotline_broken.iter().chain(&portal_broken) {
        let line = listing
            .lines()
            .find(|l| l.contains(&format!("id={id}\t")))
            .unwrap_or_else(|| panic!("{id} not in quarantine:\n{listing}"));
        assert!(line.contains("attachment_failed"), "{line}");
    }
    assert!(
        !listing.contains("status=500"),
        "no URL query in quarantine"
    );

    // Each condition alerted once.
    let events = consume(
        &brokers,
        &alerts,
        2,
        Duration::from_secs(30),
        Duration::from_secs(3),
    );
    let kinds: Vec<(String, String)> = events
        .iter()
        .filter_map(|r| {
            let t = r.headers.get("ce_type")?;
            let v: serde_json::Value = serde_json::from_slice(&r.payload).ok()?;
            Some((t.clone(), v["source"].as_str()?.to_string()))
        })
        .filter(|(t, _)| t.contains(".channel."))
        .collect();
    for want in [
        ("cn.gov.petition.channel.bound_ignored.v1", "hotline"),
        ("cn.gov.petition.channel.cursor_clamped.v1", "portal"),
    ] {
        assert_eq!(
            kinds
                .iter()
                .filter(|(t, s)| t == want.0 && s == want.1)
                .count(),
            1,
            "{want:?} once: {kinds:?}"
        );
    }
    let (_, metrics) = app.http_get("/metrics");
    for source in ["hotline", "portal"] {
        assert!(
            metrics.contains(&format!(
                r#"petitiond_http_fields_dropped_total{{source="{source}",field="address"}}"#
            )),
            "{source}: {metrics}"
        );
    }
    assert_eq!(app.terminate(Duration::from_secs(30)), Some(0));
}
