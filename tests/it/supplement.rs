//! Supplements end to end (issue 14, point 5): the real daemon, the real broker, the portal
//! simulator in this process. An incomplete petition is flagged `needs_supplement` and routed
//! to the intake desk with the (short) `intake.supplement` clock; the petitioner then adds a
//! phone and an address upstream; the flag clears, the clock stops — no alert of it follows,
//! while an incomplete petition nobody supplements gets its breach — and the desk is told
//! with an `item.supplemented.v1` record. The item stays with the desk (not re-routed).

use crate::helpers::{Record, TestApp, broker, consume, unique};
use petitiond::envelope::{Channel, ItemId};
use petitiond_sim::portal::{PortalSim, PortalSimConfig};
use std::time::Duration;

const SUPPLEMENTED: &str = "cn.gov.petition.item.supplemented.v1";
const ROUTED: &str = "cn.gov.petition.item.routed.v1";
const UPDATED: &str = "cn.gov.petition.item.updated.v1";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn json(r: &Record) -> serde_json::Value {
    serde_json::from_slice(&r.payload).unwrap()
}

fn of_type<'a>(records: &'a [Record], item: &str, t: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.key == item && r.headers.get("ce_type").map(String::as_str) == Some(t))
        .collect()
}

/// The app's config with a second department (`hrss`, the rules' lead for portal items), a
/// rules file, the portal pointed at `portal`, fresh SLA topics and a 15-second supplement
/// clock; returns (hrss topic, alerts topic).
fn configure(app: &TestApp, portal: &str) -> (String, String) {
    let hrss = unique("it.hrss");
    let alerts = unique("it.alerts");
    let rules = app.dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nid = \"portal-to-hrss\"\nwhen.channel = [\"portal\"]\nthen.lead = \"hrss\"\n\n[[rule]]\nid = \"default\"\nthen.lead = \"intake-desk\"\n",
    )
    .unwrap();
    let dictionaries = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dictionaries");
    let text = std::fs::read_to_string(&app.config).unwrap().replace(
        "[routing]\ndefault_lead = \"intake-desk\"\n",
        &format!(
            "[[departments]]\nid = \"hrss\"\nname = \"人社局\"\ntopic = \"{hrss}\"\n\n[routing]\ndefault_lead = \"intake-desk\"\nrules_file = \"rules.toml\"\ndictionaries_dir = \"{}\"\n",
            dictionaries.display()
        ),
    );
    assert!(text.contains("rules_file"), "the harness's [routing] moved");
    std::fs::write(&app.config, text).unwrap();
    app.append_config(&format!(
        r#"
[channels.portal]
protocol = "paged"
base_url = "{portal}"
path = "/petitions"
updated_after_param = "updated_after"
items_pointer = "/data/items"
poll_interval_ms = 200
overlap_secs = 30
initial_lookback_hours = 1
backoff_initial_ms = 50
backoff_max_ms = 500
requests_per_second = 200

[channels.portal.pagination]
kind = "page"
page_size = 20

[channels.portal.mapping]
{mapping}

[sla]
alerts_topic = "{alerts}"
status_topic = "{status}"
consumer_group = "{group}"

[[sla.clocks]]
id = "portal.sign_in"
rule = {{ kind = "wall_clock", minutes = 120 }}
channels = ["portal"]
stop_on = ["signed_in"]
citation = "test"

[[sla.clocks]]
id = "intake.supplement"
rule = {{ kind = "wall_clock_seconds", seconds = 15 }}
flags = ["needs_supplement"]
stop_on = ["status_marked"]
warn_at_percent = [90]
remind_every_working_days = 0
citation = "test"
"#,
        mapping = petitiond_sim::portal::MAPPING_TOML,
        status = unique("it.status"),
        group = unique("it.group"),
    ));
    (hrss, alerts)
}

#[test]
fn a_supplemented_item_clears_its_flag_stops_its_clock_and_says_so() {
    let Some(brokers) = broker() else { return };
    let rt = runtime();
    let portal = rt
        .block_on(PortalSim::start(PortalSimConfig::default()))
        .unwrap();
    let mut app = TestApp::new(&brokers, "");
    let (hrss_topic, alerts_topic) = configure(&app, &portal.base_url());
    // Two petitions without a contact, one complete.
    let supplied = portal.add_incomplete_record();
    let left = portal.add_incomplete_record();
    let complete = portal.add_records(1).remove(0);
    let id = |upstream: &str| ItemId::derive(Channel::Portal, upstream).to_string();
    let (supplied_id, left_id, complete_id) = (id(&supplied), id(&left), id(&complete));
    app.start();

    // Both incomplete ones reach the desk, flagged, with the rules' lead as a suggestion.
    let desk = consume(
        &brokers,
        &app.topic,
        2,
        Duration::from_secs(60),
        Duration::from_millis(200),
    );
    for item in [&supplied_id, &left_id] {
        let routed = of_type(&desk, item, ROUTED);
        assert_eq!(routed.len(), 1, "{item}: {desk:?}");
        let env = json(routed[0]);
        let flags: Vec<&str> = env["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        for f in ["needs_supplement", "missing:contact", "suggested_lead:hrss"] {
            assert!(flags.contains(&f), "{item}: {flags:?}");
        }
        assert_eq!(env["routing"]["lead"], "intake-desk");
        let clocks: Vec<&str> = env["sla"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["clock"].as_str().unwrap())
            .collect();
        assert!(clocks.contains(&"intake.supplement"), "{clocks:?}");
    }
    // The complete one went to its department.
    let h = consume(
        &brokers,
        &hrss_topic,
        1,
        Duration::from_secs(30),
        Duration::from_millis(200),
    );
    assert_eq!(of_type(&h, &complete_id, ROUTED).len(), 1);

    // The petitioner adds a phone and an address upstream.
    assert!(portal.supplement_record(&supplied));
    let desk = consume(
        &brokers,
        &app.topic,
        4,
        Duration::from_secs(30),
        Duration::from_millis(500),
    );
    let updated = of_type(&desk, &supplied_id, UPDATED);
    assert_eq!(updated.len(), 1, "{desk:?}");
    let env = json(updated[0]);
    let flags = env["flags"].as_array().unwrap();
    assert!(
        !flags
            .iter()
            .any(|f| f == "needs_supplement" || f.as_str().unwrap().starts_with("missing:")),
        "{flags:?}"
    );
    assert!(
        env["petitioner"]["phone"]
            .as_str()
            .is_some_and(|p| !p.is_empty())
    );
    let sup = of_type(&desk, &supplied_id, SUPPLEMENTED);
    assert_eq!(sup.len(), 1, "{desk:?}");
    let p = json(sup[0]);
    assert!(
        schema("item-supplemented.v1.json").is_valid(&p),
        "not schema/item-supplemented.v1.json: {p}"
    );
    assert_eq!(p["supplied"], serde_json::json!(["contact"]));
    assert_eq!(p["suggested_lead"], "hrss");
    assert_eq!(p["lead"], "intake-desk", "not re-routed");
    assert_eq!(p["clocks_stopped"][0]["clock"], "intake.supplement");
    assert_eq!(sup[0].headers["ce_department"], "intake-desk");
    assert_eq!(sup[0].headers["ce_role"], "lead");
    let text = String::from_utf8_lossy(&sup[0].payload).to_string();
    let phone = env["petitioner"]["phone"].as_str().unwrap();
    assert!(!text.contains(phone), "no personal data in the event");
    // The record follows the update on the item's partition, in order.
    let pos = |t: &str| {
        desk.iter()
            .position(|r| r.key == supplied_id && r.headers["ce_type"] == t)
            .unwrap()
    };
    assert!(pos(UPDATED) < pos(SUPPLEMENTED));
    assert!(of_type(&desk, &left_id, SUPPLEMENTED).is_empty());

    // The item nobody supplemented breaches its 15-second clock; the supplemented one gets
    // no alert from it, before or after that instant.
    let alerts = consume(
        &brokers,
        &alerts_topic,
        2,
        Duration::from_secs(40),
        Duration::from_secs(4),
    );
    let kinds = |item: &str| -> Vec<String> {
        alerts
            .iter()
            .filter(|r| r.key == item)
            .map(|r| {
                let a = json(r);
                format!(
                    "{}:{}",
                    a["clock"].as_str().unwrap(),
                    a["kind"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        kinds(&left_id),
        ["intake.supplement:warning_90", "intake.supplement:breach"]
    );
    assert!(kinds(&supplied_id).is_empty(), "{:?}", kinds(&supplied_id));
    let (_, metrics) = app.http_get("/metrics");
    assert!(
        metrics.contains("petitiond_items_supplemented_total{channel=\"portal\"} 1"),
        "{metrics}"
    );
    // Nothing more reaches the desk: no second supplement, no stray update.
    let desk = consume(
        &brokers,
        &app.topic,
        4,
        Duration::from_secs(10),
        Duration::from_secs(2),
    );
    assert_eq!(desk.len(), 4, "{desk:?}");
    app.kill();
    rt.block_on(portal.stop());
}
