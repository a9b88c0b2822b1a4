//! Intake with the shipped routing rules and a real SQLite store (no Kafka: intake never talks
//! to it): the incomplete-item check and repeat-petition linking, end to end through
//! `record`.
use crate::config::Config;

use super::*;
use crate::store::SqliteStore;
use crate::store::blobs::FsBlobStore;
use petitiond_core::envelope::{Channel, Personal, Request, Upstream};
use std::path::Path;
use std::time::Duration;

const DEPARTMENTS: [&str; 8] = [
    "intake-desk",
    "hrss",
    "housing",
    "natural-resources",
    "health",
    "civil-affairs",
    "policy-desk",
    "key-cases",
];

struct H {
    _dir: tempfile::TempDir,
    intake: Intake,
    store: Arc<SqliteStore>,
    timers: mpsc::UnboundedReceiver<Vec<Timer>>,
}

/// The test config: the eight departments, `rules_file`, the shipped dictionaries, `extra`.
fn config_text(rules_file: &Path, extra: &str) -> String {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut text = String::from("[kafka]\nbrokers = \"127.0.0.1:9\"\n");
    for d in DEPARTMENTS {
        text.push_str(&format!(
            "\n[[departments]]\nid = \"{d}\"\nname = \"{d}\"\ntopic = \"t.{d}\"\n"
        ));
    }
    text.push_str(&format!(
        "\n[routing]\ndefault_lead = \"intake-desk\"\nrules_file = \"{}\"\ndictionaries_dir = \"{}\"\n{extra}",
        rules_file.display(),
        shipped.join("dictionaries").display()
    ));
    text
}

/// An intake over a fresh store; `rules`: a rules file's text, or `None` for the shipped one.
fn harness(rules: Option<&str>, extra: &str) -> H {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let rules_file = match rules {
        Some(text) => {
            let p = dir.path().join("rules.toml");
            std::fs::write(&p, text).unwrap();
            p
        }
        None => shipped.join("rules.toml"),
    };
    let text = config_text(&rules_file, extra);
    let cfg =
        Arc::new(Config::parse(&text, "test.toml", dir.path()).unwrap_or_else(|e| panic!("{e}")));
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("p.db"), Duration::from_secs(5)).unwrap());
    let (tx, timers) = mpsc::unbounded_channel();
    let repeat = cfg
        .routing
        .repeat
        .clone()
        .map(|r| Arc::new(routing::repeat::Repeat::with_key(r, "k".repeat(32))));
    let intake = Intake {
        router: Arc::new(routing::Router::new(routing::RouterInputs::from_config(&cfg)).unwrap()),
        inputs: Arc::new(IntakeInputs::from_config(&cfg)),
        store: store.clone(),
        blobs: Arc::new(FsBlobStore::open(&dir.path().join("b")).unwrap()),
        metrics: Metrics::new(),
        relay_wake: Arc::new(Notify::new()),
        timers: tx,
        repeat,
    };
    H {
        _dir: dir,
        intake,
        store,
        timers,
    }
}

/// A new item from `channel` received `day` days after 2026-03-02 08:00 (+08:00).
fn item(channel: Channel, upstream: &str, day: i64, phone: &str, content: &str) -> Envelope {
    let t0: jiff::Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
    let mut e = Envelope::new(
        channel,
        Upstream {
            id: upstream.into(),
            source: channel.as_str().into(),
            raw_ref: format!("sha256:{}", "0".repeat(64)),
            ..Default::default()
        },
        t0 + jiff::SignedDuration::from_hours(24 * day),
        Request {
            title: None,
            content: Personal::new(content),
        },
    );
    if !phone.is_empty() {
        e.petitioner.phone = Some(Personal::new(phone));
    }
    e
}

impl H {
    /// Records `env` as its channel would hand it over (a letter as a parsed mail, the others
    /// as upstream records); returns the stored envelope.
    async fn record(&self, env: Envelope) -> (Disposition, Envelope) {
        let id = env.id.to_string();
        let d = if env.channel == Channel::Letter {
            self.intake.one_now_envelope(env).await
        } else {
            let payload = Payload::Record {
                envelope: Box::new(env),
                version: "v1".into(),
            };
            self.intake
                .one_now("test".into(), id.clone(), payload)
                .await
        }
        .unwrap();
        let stored = self.store.item_envelope(&id).unwrap().expect("recorded");
        (d, stored)
    }

    fn outbox_topics(&self, id: &str) -> Vec<String> {
        let mut t: Vec<String> = self
            .store
            .pending_outbox(1000)
            .unwrap()
            .into_iter()
            .filter(|r| r.item_id == id)
            .map(|r| r.topic)
            .collect();
        t.sort();
        t
    }

    fn counter(&self, name: &str) -> String {
        self.intake
            .metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with(name))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn has(e: &Envelope, flag: &str) -> bool {
    e.flags.iter().any(|f| f == flag)
}

const WAGES: &str = "本人在某建筑公司务工，公司拖欠工资三个月共计两万余元，多次讨要无果。";

#[tokio::test]
async fn a_hotline_item_without_phone_or_address_needs_supplement_and_goes_to_the_desk() {
    let mut h = harness(None, "");
    let (d, e) = h.record(item(Channel::Hotline, "h-1", 0, "", WAGES)).await;
    assert!(matches!(d, Disposition::Recorded(_)), "{d:?}");
    assert!(has(&e, "needs_supplement"), "{:?}", e.flags);
    assert!(has(&e, "missing:contact"), "{:?}", e.flags);
    assert!(!has(&e, "missing:content"), "{:?}", e.flags);
    assert!(
        has(&e, "suggested_lead:hrss"),
        "the rules' lead stays visible: {:?}",
        e.flags
    );
    let r = e.routing.as_ref().unwrap();
    assert_eq!(
        (r.lead.as_str(), r.rule_id.as_str()),
        ("intake-desk", "needs-supplement")
    );
    assert!(r.assists.is_empty());
    assert_eq!(
        e.category,
        Some(petitiond_core::envelope::Category::Rights),
        "still classified"
    );
    // The flag was there before the clocks started: the 24-hour supplement clock runs, from
    // arrival, alongside the hotline's own.
    let clocks: Vec<&str> = e.sla.iter().map(|c| c.clock.as_str()).collect();
    assert!(clocks.contains(&"intake.supplement"), "{clocks:?}");
    assert!(clocks.contains(&"hotline.view"), "{clocks:?}");
    let sup = e
        .sla
        .iter()
        .find(|c| c.clock == "intake.supplement")
        .unwrap();
    assert_eq!(
        sup.due_at,
        e.received_at + jiff::SignedDuration::from_hours(24)
    );
    assert!(
        !h.timers.try_recv().unwrap().is_empty(),
        "timers handed to the engine"
    );
    // Only the intake desk is told.
    assert_eq!(h.outbox_topics(e.id.as_str()), ["t.intake-desk"]);
    assert!(
        h.counter("petitiond_items_needs_supplement_total")
            .contains("channel=\"hotline\"} 1")
    );

    // With a phone, the same item goes to its department and starts no supplement clock.
    let (_, ok) = h
        .record(item(Channel::Hotline, "h-2", 0, "138 0013 8000", WAGES))
        .await;
    assert!(!has(&ok, "needs_supplement"), "{:?}", ok.flags);
    assert_eq!(ok.routing.as_ref().unwrap().lead, "hrss");
    assert!(!ok.sla.iter().any(|c| c.clock == "intake.supplement"));
    // A scanned letter is the registering clerk's to judge.
    let (_, letter) = h.record(item(Channel::Letter, "l-1", 0, "", WAGES)).await;
    assert!(!has(&letter, "needs_supplement"), "{:?}", letter.flags);
}

#[tokio::test]
async fn the_third_item_of_one_phone_on_one_matter_is_a_repeat_petition() {
    let h = harness(None, "");
    // The same mobile written three ways, through three channels; all about unpaid wages.
    let (_, first) = h
        .record(item(Channel::Hotline, "h-1", 0, "138 0013 8000", WAGES))
        .await;
    let (_, second) = h
        .record(item(Channel::Portal, "p-1", 10, "+86-13800138000", WAGES))
        .await;
    let letter = format!("{WAGES}联系电话：１３８００１３８０００");
    let (_, third) = h
        .record(item(Channel::Letter, "l-1", 20, "", &letter))
        .await;

    assert!(first.related.is_empty());
    assert!(!has(&first, "repeat_petition"));
    assert_eq!(second.related, std::slice::from_ref(&first.id));
    assert!(
        !has(&second, "repeat_petition"),
        "the second time links only"
    );
    assert_eq!(third.related, [first.id.clone(), second.id.clone()]);
    assert!(has(&third, "repeat_petition"), "{:?}", third.flags);
    // Routed with the flag set: the shipped `repeat-petition` rule raised priority and tagged
    // it; the subject rule still chose the lead.
    assert!(has(&third, "priority:high"), "{:?}", third.flags);
    assert!(has(&third, "tag:repeat-petition"), "{:?}", third.flags);
    assert_eq!(third.routing.as_ref().unwrap().lead, "hrss");
    assert!(!has(&second, "tag:repeat-petition"));
    // The envelope on the wire carries the links and validates against the schema.
    let wire = crate::kafka::wire::envelope_v1(&third);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/envelope.v1.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&wire)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(wire["related"].as_array().unwrap().len(), 2);

    // The third re-delivered is a duplicate and does not count again: a fourth links to
    // exactly three.
    let again = h
        .record(item(Channel::Letter, "l-1", 20, "", &letter))
        .await
        .0;
    assert!(matches!(again, Disposition::Duplicate(_)), "{again:?}");
    let (_, fourth) = h
        .record(item(Channel::Hotline, "h-2", 30, "13800138000", WAGES))
        .await;
    assert_eq!(fourth.related, [first.id, second.id, third.id]);
    assert!(has(&fourth, "repeat_petition"));

    let m = h.intake.metrics.encode();
    assert!(
        m.contains("petitiond_repeat_petitions_total{channel=\"letter\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("petitiond_repeat_petitions_total{channel=\"hotline\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("petitiond_items_linked_total{channel=\"portal\"} 1"),
        "{m}"
    );
    assert!(!m.contains("13800138000"));
    // The index holds hashes only.
    let db = h._dir.path().join("p.db");
    let c = rusqlite::Connection::open(db).unwrap();
    let keys: Vec<String> = c
        .prepare("SELECT DISTINCT person_key || ' ' || matter FROM person_items")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(keys.len(), 1, "one person, one matter: {keys:?}");
    assert!(keys[0].ends_with(" rights/hrss"), "{keys:?}");
    assert!(!keys[0].contains("13800138000"));
}

#[tokio::test]
async fn another_matter_or_an_old_item_does_not_make_a_repeat() {
    let h = harness(None, "");
    let medical = "在市医院住院的医保报销比例与政策规定不符，请核实处理。";
    let (_, a) = h
        .record(item(Channel::Hotline, "a", 0, "13800138000", WAGES))
        .await;
    let (_, b) = h
        .record(item(Channel::Hotline, "b", 10, "13800138000", WAGES))
        .await;
    // Same person, a different matter (another department): neither linked nor flagged.
    let (_, c) = h
        .record(item(Channel::Hotline, "c", 20, "13800138000", medical))
        .await;
    assert_eq!(c.routing.as_ref().unwrap().lead, "health");
    assert!(c.related.is_empty(), "{:?}", c.related);
    assert!(!has(&c, "repeat_petition"));
    // Same matter, but the first item is older than the window (180 days): linked to the
    // second only, not flagged.
    let (_, d) = h
        .record(item(Channel::Hotline, "d", 185, "13800138000", WAGES))
        .await;
    assert_eq!(d.related, std::slice::from_ref(&b.id));
    assert!(!has(&d, "repeat_petition"));
    // Another person on the same matter is not linked at all.
    let (_, e) = h
        .record(item(Channel::Hotline, "e", 20, "13900001111", WAGES))
        .await;
    assert!(e.related.is_empty());
    // A mistyped number (landline-length, not a mobile) is no key.
    let (_, f) = h
        .record(item(Channel::Hotline, "f", 21, "1380013800", WAGES))
        .await;
    assert!(f.related.is_empty());
    assert!(!d.related.contains(&a.id), "outside the window");
}

#[tokio::test]
async fn a_rule_on_the_repeat_flag_can_change_the_lead_without_changing_the_matter() {
    let rules = r#"
[[rule]]
id = "repeat-to-key-cases"
when.repeat_petition = true
then.lead = "key-cases"
then.continue = true

[[rule]]
id = "wages"
when.keywords_any = ["拖欠工资"]
then.lead = "hrss"

[[rule]]
id = "default"
then.lead = "intake-desk"
"#;
    let h = harness(Some(rules), "");
    let mut ids = Vec::new();
    let mut last = None;
    for (i, day) in [0, 5, 10, 15].into_iter().enumerate() {
        let (_, e) = h
            .record(item(
                Channel::Hotline,
                &format!("x{i}"),
                day,
                "13800138000",
                WAGES,
            ))
            .await;
        assert_eq!(e.related, ids, "item {i}");
        ids.push(e.id.clone());
        last = Some(e);
    }
    let e = last.unwrap();
    let r = e.routing.as_ref().unwrap();
    assert_eq!(
        (r.lead.as_str(), r.rule_id.as_str()),
        ("key-cases", "repeat-to-key-cases")
    );
    assert_eq!(r.assists, ["hrss"], "the subject department assists");
    assert!(has(&e, "repeat_petition"));
    // The fourth still found all three: the matter is the one routed without the flag.
    assert_eq!(e.related.len(), 3);
}

#[tokio::test]
async fn both_checks_can_be_switched_off() {
    let h = harness(
        None,
        "\n[routing.completeness]\nenabled = false\n\n[routing.repeat]\nenabled = false\n",
    );
    assert!(h.intake.repeat.is_none());
    let mut last = None;
    for i in 0..3 {
        let (_, e) = h
            .record(item(
                Channel::Hotline,
                &format!("o{i}"),
                i,
                "13800138000",
                "拖欠工资",
            ))
            .await;
        last = Some(e);
    }
    let e = last.unwrap();
    assert!(
        e.flags.iter().all(|f| !f.starts_with("missing:")),
        "{:?}",
        e.flags
    );
    assert!(!has(&e, "needs_supplement"));
    assert!(e.related.is_empty());
}

/// The rules' `sla_overrides` decide which clocks start: the shipped `safety-risk` rule adds
/// the 24-hour contact clock to a complete item, and a rule can skip a channel's own clock.
#[tokio::test]
async fn rule_sla_overrides_add_and_skip_clocks() {
    let h = harness(None, "");
    let danger = "公司拖欠工资三个月，再不解决我就去跳楼。";
    let (_, e) = h
        .record(item(Channel::Hotline, "s-1", 0, "138 0013 8000", danger))
        .await;
    assert!(!has(&e, "needs_supplement"), "{:?}", e.flags);
    let clocks: Vec<&str> = e.sla.iter().map(|c| c.clock.as_str()).collect();
    assert!(clocks.contains(&"intake.supplement"), "added: {clocks:?}");
    assert!(clocks.contains(&"hotline.view"), "{clocks:?}");
    assert_eq!(
        e.routing.as_ref().unwrap().sla_add,
        ["intake.supplement"],
        "kept with the item for clocks started later"
    );

    let rules = r#"
[[rule]]
id = "no-view-clock"
when.keywords_any = ["测试工单"]
then.lead = "hrss"
then.sla_overrides = { skip = ["hotline.view"] }

[[rule]]
id = "default"
then.lead = "intake-desk"
"#;
    let h = harness(Some(rules), "");
    let (_, e) = h
        .record(item(
            Channel::Hotline,
            "s-2",
            0,
            "138 0013 8000",
            "这是测试工单，请忽略。",
        ))
        .await;
    assert!(
        !e.sla.iter().any(|c| c.clock == "hotline.view"),
        "skipped: {:?}",
        e.sla
    );
    let (_, other) = h
        .record(item(Channel::Hotline, "s-3", 0, "138 0013 8000", WAGES))
        .await;
    assert!(other.sla.iter().any(|c| c.clock == "hotline.view"));
}

/// A clock id in `sla_overrides` that no `[[sla.clocks]]` defines is a config error naming the
/// rules file and the rule's line, not a silent no-op.
#[test]
fn an_unknown_clock_in_sla_overrides_is_an_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let rules = "\n[[rule]]\nid = \"x\"\nwhen.keywords_any = [\"拆迁\"]\nthen.lead = \"hrss\"\nthen.sla_overrides = { add = [\"hotline.veiw\"] }\n\n[[rule]]\nid = \"default\"\nthen.lead = \"intake-desk\"\n";
    let p = dir.path().join("rules.toml");
    std::fs::write(&p, rules).unwrap();
    let text = config_text(&p, "");
    let Err(err) = Config::parse(&text, "test.toml", dir.path()) else {
        panic!("an unknown clock id must be refused");
    };
    let err = err.to_string();
    assert!(err.contains("rules.toml:2"), "{err}");
    assert!(err.contains("`hotline.veiw` is not an SLA clock"), "{err}");
}

/// A blob store that panics on a scan whose bytes start with `%PDF-PANIC` (a bug in code that
/// handles one mail) and fails on one starting with `%PDF-EIO` (the disk failing).
struct TrapBlobs(FsBlobStore);

impl BlobStore for TrapBlobs {
    fn put(&self, bytes: &[u8]) -> std::io::Result<crate::store::blobs::BlobRef> {
        if bytes.starts_with(b"%PDF-PANIC") {
            // As std's own panics do: the message quotes the data.
            panic!("cannot handle {}", String::from_utf8_lossy(bytes));
        }
        if bytes.starts_with(b"%PDF-EIO") {
            return Err(std::io::Error::other("disk failing"));
        }
        self.0.put(bytes)
    }
    fn put_file(&self, path: &Path) -> std::io::Result<crate::store::blobs::BlobRef> {
        self.0.put_file(path)
    }
    fn get(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        self.0.get(sha256)
    }
    fn dataref(&self, r: &crate::store::blobs::BlobRef) -> String {
        self.0.dataref(r)
    }
}

/// A letter whose one scan has `scan` as its bytes.
fn letter_with_scan(n: u32, scan: &[u8]) -> Vec<u8> {
    use base64::Engine;
    format!(
        "From: scanner@xfj.example.gov.cn\r\nDate: Mon, 2 Mar 2026 09:15:00 +0800\r\nSubject: 来信{n}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n张三反映拖欠工资。\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        base64::engine::general_purpose::STANDARD.encode(scan)
    )
    .into_bytes()
}

fn mail(raw: &[u8]) -> Payload {
    Payload::Mail {
        raw: raw.to_vec(),
        arrival: "2026-03-02T01:16:00Z".parse().unwrap(),
    }
}

/// Item boundary: a panic while one mail is normalized quarantines that mail (reason `panic`,
/// its original bytes, counted) without the panic's message, and the next mail is recorded.
#[tokio::test]
async fn a_panic_while_normalizing_one_mail_quarantines_it_and_the_next_is_recorded() {
    let mut h = harness(None, "");
    let dir = tempfile::tempdir().unwrap();
    h.intake.blobs = Arc::new(TrapBlobs(FsBlobStore::open(dir.path()).unwrap()));
    let bad = letter_with_scan(1, b"%PDF-PANIC 13812345678");
    let good = letter_with_scan(2, b"%PDF-1.4 fine");
    let d = h
        .intake
        .one_now("mailbox".into(), "1.M1.test".into(), mail(&bad))
        .await
        .unwrap();
    let Disposition::Quarantined(qid) = d else {
        panic!("{d:?}")
    };
    let d = h
        .intake
        .one_now("mailbox".into(), "2.M2.test".into(), mail(&good))
        .await
        .unwrap();
    assert!(matches!(d, Disposition::Recorded(_)), "{d:?}");

    let rows = h.store.list_quarantine(10).unwrap();
    assert_eq!(rows.len(), 1);
    let q = &rows[0];
    assert_eq!((q.id, q.entry.reason.as_str()), (qid, PANIC_REASON));
    assert_eq!(q.entry.reference, "1.M1.test");
    assert!(
        q.entry.detail.contains("normalization"),
        "{}",
        q.entry.detail
    );
    assert!(
        !q.entry.detail.contains("13812345678"),
        "{}",
        q.entry.detail
    );
    let sha = q.entry.raw_ref.strip_prefix("sha256:").unwrap();
    assert_eq!(h.intake.blobs.get(sha).unwrap(), bad, "the original bytes");
    assert!(
        h.counter("petitiond_quarantined_total")
            .contains("petitiond_quarantined_total{source=\"mailbox\",reason=\"panic\"} 1"),
        "{}",
        h.counter("petitiond_quarantined_total")
    );
}

/// The blob store failing is not the mail's fault: an error (the channel keeps the mail and
/// retries), never a quarantine.
#[tokio::test]
async fn a_failing_blob_store_is_an_error_not_a_quarantine() {
    let mut h = harness(None, "");
    let dir = tempfile::tempdir().unwrap();
    h.intake.blobs = Arc::new(TrapBlobs(FsBlobStore::open(dir.path()).unwrap()));
    let raw = letter_with_scan(3, b"%PDF-EIO");
    let r = h
        .intake
        .one_now("mailbox".into(), "3.M3.test".into(), mail(&raw))
        .await;
    assert!(r.is_err(), "{r:?}");
    assert!(h.store.list_quarantine(10).unwrap().is_empty());
}

// ---- supplements (issue 14, point 5) ------------------------------------------------------

impl H {
    /// Hands `env` over as a new upstream version of its record.
    async fn update(&self, env: Envelope, version: &str) -> (Disposition, Envelope) {
        let id = env.id.to_string();
        let payload = Payload::Record {
            envelope: Box::new(env),
            version: version.into(),
        };
        let d = self
            .intake
            .one_now("test".into(), id.clone(), payload)
            .await
            .unwrap();
        (d, self.store.item_envelope(&id).unwrap().unwrap())
    }

    /// The item's outbox rows as (topic, ce_type, payload).
    fn records(&self, id: &str) -> Vec<(String, String, serde_json::Value)> {
        self.store
            .pending_outbox(1000)
            .unwrap()
            .into_iter()
            .filter(|r| r.item_id == id)
            .map(|r| {
                let t = r
                    .headers
                    .iter()
                    .find(|(k, _)| k == "ce_type")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (r.topic, t, serde_json::from_slice(&r.payload).unwrap())
            })
            .collect()
    }

    /// Whether the item's stored `intake.supplement` clock is open (running), as the SLA
    /// board reads the store.
    fn supplement_open(&self, id: &str) -> bool {
        let q = crate::store::BoardQuery {
            department: None,
            clock: Some("intake.supplement".into()),
            now: "2000-01-01T00:00:00Z".parse().unwrap(),
            limit: 500,
            alerts_limit: 0,
            clock_ids: vec![],
        };
        let b = self.store.board(&q).unwrap();
        b.upcoming.iter().chain(&b.overdue).any(|c| c.item_id == id)
    }
}

const SUPPLEMENTED: &str = "cn.gov.petition.item.supplemented.v1";

/// An incomplete hotline item whose upstream record later gains the phone: the flag clears,
/// the 24-hour supplement clock stops (its timer is removed from the engine), the desk is told
/// with one `item.supplemented.v1` record, and the item stays with the desk, which forwards
/// it to the suggested lead.
#[tokio::test]
async fn an_upstream_update_that_supplies_the_contact_clears_the_flag_and_stops_the_clock() {
    let mut h = harness(None, "");
    let (_, e) = h.record(item(Channel::Hotline, "h-9", 0, "", WAGES)).await;
    assert!(has(&e, "needs_supplement"), "{:?}", e.flags);
    let id = e.id.to_string();
    assert!(h.supplement_open(&id));
    let first_timers = h.timers.try_recv().unwrap();
    // The same record at a new version, still without a contact: an ordinary update.
    let mut same = item(Channel::Hotline, "h-9", 0, "", WAGES);
    same.upstream.status = Some("处理中".into());
    let (d, e) = h.update(same, "v2").await;
    assert!(matches!(d, Disposition::Updated(_)), "{d:?}");
    assert!(has(&e, "needs_supplement"));
    assert!(h.timers.try_recv().is_err(), "no clock touched");

    let (d, e) = h
        .update(
            item(Channel::Hotline, "h-9", 0, "138 0013 8000", WAGES),
            "v3",
        )
        .await;
    assert!(matches!(d, Disposition::Updated(_)), "{d:?}");
    assert!(!has(&e, "needs_supplement"), "{:?}", e.flags);
    assert!(
        !e.flags.iter().any(|f| f.starts_with("missing:")),
        "{:?}",
        e.flags
    );
    assert!(
        has(&e, "suggested_lead:hrss"),
        "kept for the desk: {:?}",
        e.flags
    );
    let r = e.routing.as_ref().unwrap();
    assert_eq!(r.lead, "intake-desk", "not re-routed: the desk forwards it");
    let sup = e
        .sla
        .iter()
        .find(|c| c.clock == "intake.supplement")
        .unwrap();
    assert_eq!(sup.state, "stopped");
    // The store's clock stopped and its timer removed; the hotline's own clock still runs.
    assert!(!h.supplement_open(&id), "no longer open");
    let removed = h.timers.try_recv().unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].at_ms, i64::MIN);
    assert!(
        first_timers
            .iter()
            .any(|t| t.clock_row == removed[0].clock_row)
    );
    assert!(
        h.store
            .open_timers()
            .unwrap()
            .iter()
            .all(|t| t.clock_row != removed[0].clock_row)
    );
    // To the desk: routed, updated (v2), updated (v3), supplemented — in that order.
    let recs = h.records(&id);
    let types: Vec<&str> = recs.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "cn.gov.petition.item.routed.v1",
            "cn.gov.petition.item.updated.v1",
            "cn.gov.petition.item.updated.v1",
            SUPPLEMENTED
        ]
    );
    assert!(recs.iter().all(|(t, _, _)| t == "t.intake-desk"));
    let (_, _, p) = &recs[3];
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schema/item-supplemented.v1.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(
        validator.is_valid(p),
        "not schema/item-supplemented.v1.json: {p}"
    );
    assert_eq!(p["supplied"], serde_json::json!(["contact"]));
    assert_eq!(p["suggested_lead"], "hrss");
    assert_eq!(p["lead"], "intake-desk");
    assert_eq!(p["upstream"]["version"], "v3");
    assert_eq!(p["clocks_stopped"][0]["clock"], "intake.supplement");
    assert_eq!(p["clocks_stopped"][0]["state"], "running");
    let text = p.to_string();
    assert!(
        !text.contains("13800138000") && !text.contains("0013"),
        "no personal data"
    );
    // The updated envelope says the flag is gone.
    let flags = &recs[2].2["flags"];
    assert!(
        !flags
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "needs_supplement")
    );
    assert!(
        h.counter("petitiond_items_supplemented_total")
            .contains("channel=\"hotline\"} 1")
    );
    // Later updates are ordinary ones: nothing is supplemented twice.
    let (_, _) = h
        .update(
            item(Channel::Hotline, "h-9", 0, "138 0013 8001", WAGES),
            "v4",
        )
        .await;
    assert_eq!(
        h.records(&id)
            .iter()
            .filter(|(_, t, _)| t == SUPPLEMENTED)
            .count(),
        1
    );
}

/// A supplement that gives the phone but not the facts of a wage claim: the `missing:*` flags
/// are brought up to date, the flag and the clock stay. The facts follow: cleared then.
#[tokio::test]
async fn a_partial_supplement_keeps_the_clock_and_updates_what_is_missing() {
    let facts = "\n[routing.completeness]\n[[routing.completeness.facts]]\nname = \"employer\"\ntags = [\"wage-arrears\"]\nkeywords_any = [\"公司\", \"老板\", \"工地\"]\n";
    let mut h = harness(None, facts);
    let vague = "欠我们三个月工钱，一直拖着，没人管，请帮帮我们。";
    let (_, e) = h.record(item(Channel::Portal, "p-7", 0, "", vague)).await;
    let missing: Vec<&str> = e
        .flags
        .iter()
        .filter_map(|f| f.strip_prefix("missing:"))
        .collect();
    assert!(
        missing.contains(&"contact") && missing.contains(&"employer"),
        "{missing:?}"
    );
    let id = e.id.to_string();
    let _ = h.timers.try_recv();
    let (_, e) = h
        .update(item(Channel::Portal, "p-7", 0, "13800138000", vague), "v2")
        .await;
    assert!(has(&e, "needs_supplement"));
    assert!(!has(&e, "missing:contact"), "{:?}", e.flags);
    assert!(has(&e, "missing:employer"), "{:?}", e.flags);
    assert!(h.timers.try_recv().is_err(), "the clock runs on");
    assert!(h.supplement_open(&id));
    assert!(!h.records(&id).iter().any(|(_, t, _)| t == SUPPLEMENTED));
    let (_, e) = h
        .update(item(Channel::Portal, "p-7", 0, "13800138000", WAGES), "v3")
        .await;
    assert!(!has(&e, "needs_supplement"), "{:?}", e.flags);
    let sup: Vec<_> = h
        .records(&id)
        .into_iter()
        .filter(|(_, t, _)| t == SUPPLEMENTED)
        .collect();
    assert_eq!(sup.len(), 1);
    let supplied = sup[0].2["supplied"].as_array().unwrap().clone();
    assert!(supplied.iter().any(|s| s == "employer"), "{supplied:?}");
    assert!(
        !supplied.iter().any(|s| s == "contact"),
        "supplied before: {supplied:?}"
    );
}

/// The desk already marked the item (a status event stopped the supplement clock): the
/// supplement still clears the flag and says so, stopping nothing.
#[tokio::test]
async fn a_supplement_after_the_clock_was_stopped_stops_nothing_more() {
    let mut h = harness(None, "");
    let (_, e) = h.record(item(Channel::Hotline, "h-5", 0, "", WAGES)).await;
    let id = e.id.to_string();
    let _ = h.timers.try_recv();
    let ev = crate::store::StatusRecord::new(
        "ev-1",
        &id,
        "status_marked",
        e.received_at + jiff::SignedDuration::from_mins(10),
    );
    let (inputs, metrics) = (h.intake.inputs.clone(), h.intake.metrics.clone());
    let applied = h
        .store
        .apply_status(&ev, &mut |env, clocks| {
            crate::status::clock_writes(
                &inputs.clocks,
                &metrics,
                env,
                clocks,
                petitiond_core::sla::policy::EventKind::StatusMarked,
                None,
                ev.at,
                None,
            )
        })
        .unwrap();
    assert!(matches!(applied, crate::store::StatusOutcome::Applied(_)));
    let (_, e) = h
        .update(item(Channel::Hotline, "h-5", 0, "13800138000", WAGES), "v2")
        .await;
    assert!(!has(&e, "needs_supplement"));
    assert!(h.timers.try_recv().is_err(), "no timer to remove");
    let sup: Vec<_> = h
        .records(&id)
        .into_iter()
        .filter(|(_, t, _)| t == SUPPLEMENTED)
        .collect();
    assert_eq!(sup.len(), 1);
    assert_eq!(sup[0].2["clocks_stopped"], serde_json::json!([]));
}

/// Queues `items` as their channel would (all waiting before intake looks), runs intake to the
/// end and returns each item's answer, in order, with the intake's metrics text.
async fn run_queued(h: H, items: Vec<(Envelope, &str)>) -> (Vec<Disposition>, String, H2) {
    let (tx, rx) = mpsc::channel(256);
    let mut answers = Vec::new();
    for (env, version) in items {
        let (done, answer) = oneshot::channel();
        let inc = Incoming {
            source: "test".into(),
            reference: env.upstream.id.clone(),
            payload: Payload::Record {
                envelope: Box::new(env),
                version: version.into(),
            },
            done,
        };
        tx.send(inc).await.unwrap();
        answers.push(answer);
    }
    drop(tx);
    let H {
        _dir,
        intake,
        store,
        timers,
    } = h;
    let metrics = intake.metrics.clone();
    intake.run(rx).await.unwrap();
    let mut out = Vec::new();
    for a in answers {
        out.push(a.await.unwrap().unwrap());
    }
    (
        out,
        metrics.encode(),
        H2 {
            _dir,
            store,
            timers,
        },
    )
}

/// What is left of a harness after its intake ran.
struct H2 {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    timers: mpsc::UnboundedReceiver<Vec<Timer>>,
}

fn metric_line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

#[tokio::test]
async fn a_backlog_is_made_durable_in_one_transaction_and_each_item_answered() {
    let h = harness(None, "");
    let items: Vec<(Envelope, &str)> = (0..40)
        .map(|i| {
            let phone = format!("1390000{i:04}");
            (
                item(Channel::Hotline, &format!("h-{i}"), 0, &phone, WAGES),
                "v1",
            )
        })
        .collect();
    let ids: Vec<String> = items.iter().map(|(e, _)| e.id.to_string()).collect();
    let (answers, m, mut rest) = run_queued(h, items).await;
    for (a, id) in answers.iter().zip(&ids) {
        assert_eq!(a, &Disposition::Recorded(id.clone()));
        assert!(rest.store.item_envelope(id).unwrap().is_some(), "{id}");
    }
    // All forty were waiting: one commit, not forty.
    assert_eq!(
        metric_line(&m, "petitiond_intake_group_size_count"),
        "petitiond_intake_group_size_count 1"
    );
    assert_eq!(
        metric_line(&m, "petitiond_intake_group_size_sum"),
        "petitiond_intake_group_size_sum 40.0"
    );
    assert!(
        m.contains("petitiond_items_received_total{channel=\"hotline\"} 40"),
        "{m}"
    );
    // Every item's clocks reached the SLA engine.
    let mut clocks = 0;
    while let Ok(t) = rest.timers.try_recv() {
        clocks += t.len();
    }
    assert!(clocks >= 40, "{clocks}");
}

#[tokio::test]
async fn an_update_queued_behind_its_new_item_in_one_group_is_not_lost() {
    let h = harness(None, "");
    let first = item(Channel::Portal, "p-7", 0, "13900001111", WAGES);
    let mut changed = item(Channel::Portal, "p-7", 0, "13900001111", WAGES);
    changed.request.content = Personal::new(format!("{WAGES}补充：拖欠四个月。"));
    let other = item(Channel::Portal, "p-8", 0, "13900002222", WAGES);
    let id = first.id.to_string();
    let (answers, m, rest) =
        run_queued(h, vec![(first, "v1"), (other, "v1"), (changed, "v2")]).await;
    assert_eq!(answers[0], Disposition::Recorded(id.clone()));
    assert!(matches!(answers[1], Disposition::Recorded(_)));
    assert_eq!(
        answers[2],
        Disposition::Updated(id.clone()),
        "the update must see its item"
    );
    let (stored, version) = rest.store.item_state(&id).unwrap().unwrap();
    assert_eq!(version.as_deref(), Some("v2"));
    assert!(stored.request.content.expose().contains("四个月"));
    // The update flushed the group (its item and the one queued between) before it looked;
    // the update itself commits on its own.
    assert_eq!(
        metric_line(&m, "petitiond_intake_group_size_count"),
        "petitiond_intake_group_size_count 1"
    );
    assert_eq!(
        metric_line(&m, "petitiond_intake_group_size_sum"),
        "petitiond_intake_group_size_sum 2.0"
    );
}

#[tokio::test]
async fn items_of_one_petitioner_in_one_group_still_link_and_count_as_a_repeat() {
    let h = harness(None, "");
    let mut items = Vec::new();
    for i in 0..3 {
        items.push((
            item(
                Channel::Hotline,
                &format!("same-{i}"),
                i,
                "13800138000",
                WAGES,
            ),
            "v1",
        ));
        items.push((
            item(
                Channel::Hotline,
                &format!("else-{i}"),
                i,
                &format!("1370000000{i}"),
                WAGES,
            ),
            "v1",
        ));
    }
    let ids: Vec<_> = items.iter().map(|(e, _)| e.id.clone()).collect();
    let (answers, _, rest) = run_queued(h, items).await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Disposition::Recorded(_))),
        "{answers:?}"
    );
    let third = rest.store.item_envelope(ids[4].as_str()).unwrap().unwrap();
    assert_eq!(third.related, [ids[0].clone(), ids[2].clone()]);
    assert!(has(&third, "repeat_petition"), "{:?}", third.flags);
    let other = rest.store.item_envelope(ids[5].as_str()).unwrap().unwrap();
    assert!(other.related.is_empty());
}

#[tokio::test]
async fn the_same_id_twice_in_one_group_is_recorded_once() {
    let h = harness(None, "");
    let a = item(Channel::Hotline, "twice", 0, "13900003333", WAGES);
    let again = a.clone();
    let id = a.id.to_string();
    let (answers, m, _rest) = run_queued(h, vec![(a, "v1"), (again, "v1")]).await;
    assert_eq!(
        answers,
        [
            Disposition::Recorded(id.clone()),
            Disposition::Duplicate(id)
        ]
    );
    assert!(
        m.contains("petitiond_items_received_total{channel=\"hotline\"} 1"),
        "{m}"
    );
}

/// The batch's stored states are read in one call; an id the batch holds twice is left out,
/// so its second record reads what the first one wrote.
#[tokio::test]
async fn a_batch_reads_its_known_items_at_once_but_not_an_id_it_holds_twice() {
    let h = harness(None, "");
    let known = item(Channel::Portal, "known", 0, "13900004444", WAGES);
    h.record(known.clone()).await;
    let fresh = item(Channel::Portal, "fresh", 0, "13900005555", WAGES);
    let twice = item(Channel::Portal, "twice", 0, "13900006666", WAGES);
    let batch: Vec<Incoming> = [&known, &fresh, &twice, &twice]
        .into_iter()
        .map(|env| Incoming {
            source: "test".into(),
            reference: env.upstream.id.clone(),
            payload: Payload::Record {
                envelope: Box::new(env.clone()),
                version: "v1".into(),
            },
            done: oneshot::channel().0,
        })
        .collect();
    let states = h.intake.prefetch(&batch).await;
    assert_eq!(states.len(), 2, "{:?}", states.keys().collect::<Vec<_>>());
    let (stored, version) = states[known.id.as_str()].clone().expect("known");
    assert_eq!(stored.id, known.id);
    assert_eq!(version.as_deref(), Some("v1"));
    assert!(states[fresh.id.as_str()].is_none(), "not stored yet");
    assert!(!states.contains_key(twice.id.as_str()));
}

/// Prefetched states answer as the one-by-one reads did: a known item at its version is a
/// duplicate, at a new version an update, a new one is recorded — all waiting in one batch.
#[tokio::test]
async fn known_items_in_a_batch_are_told_apart_by_their_prefetched_version() {
    let h = harness(None, "");
    let same = item(Channel::Portal, "same", 0, "13900007777", WAGES);
    let moved = item(Channel::Portal, "moved", 0, "13900008888", WAGES);
    h.record(same.clone()).await;
    h.record(moved.clone()).await;
    let mut changed = moved.clone();
    changed.request.content = Personal::new(format!("{WAGES}补充：拖欠五个月。"));
    let new = item(Channel::Portal, "new", 0, "13900009999", WAGES);
    let ids = [
        same.id.to_string(),
        moved.id.to_string(),
        new.id.to_string(),
    ];
    let (answers, _, rest) = run_queued(h, vec![(same, "v1"), (changed, "v2"), (new, "v1")]).await;
    assert_eq!(
        answers,
        [
            Disposition::Duplicate(ids[0].clone()),
            Disposition::Updated(ids[1].clone()),
            Disposition::Recorded(ids[2].clone()),
        ]
    );
    let (stored, version) = rest.store.item_state(&ids[1]).unwrap().unwrap();
    assert_eq!(version.as_deref(), Some("v2"));
    assert!(stored.request.content.expose().contains("五个月"));
}
