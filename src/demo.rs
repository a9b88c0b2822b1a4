//! `petitiond demo`: the whole path on embedded defaults, no services needed.
//!
//! An in-process Kafka-protocol broker (librdkafka's mock cluster, on a loopback port that real
//! clients such as kcat can use), a Maildir that a pretend scanner fills with sample letters
//! (one of them damaged, to show quarantine), the hotline and portal simulators on loopback
//! ports (with a few 500s, one bad record and, after a few seconds, an upstream status change),
//! SQLite under a data dir. A consumer prints every
//! routed envelope — personal fields masked — and where it went.

use crate::app::{Application, shutdown_on_signals};
use crate::channels::mailbox::deliver;
use crate::config::Config;
use crate::envelope::Envelope;
use crate::sim::Faults;
use crate::sim::hotline::{HotlineSim, HotlineSimConfig};
use crate::sim::portal::{Pagination, PortalSim, PortalSimConfig, SigningSecret};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CONFIG: &str = include_str!("../demo/petitiond-demo.toml");
/// The simulators' credentials: demo values, written to files the config names.
const DEMO_API_KEY: &str = "demo-api-key";
const DEMO_PORTAL_SECRET: &str = "demo-portal-secret";

/// The pretend scanner's mails: (file, bytes, should route).
const LETTERS: [(&str, &[u8], bool); 5] = [
    (
        "01-letter.eml",
        include_bytes!("../demo/letters/01-letter.eml"),
        true,
    ),
    (
        "02-letter.eml",
        include_bytes!("../demo/letters/02-letter.eml"),
        true,
    ),
    (
        "03-letter.eml",
        include_bytes!("../demo/letters/03-letter.eml"),
        true,
    ),
    (
        "04-letter.eml",
        include_bytes!("../demo/letters/04-letter.eml"),
        true,
    ),
    (
        "05-damaged.eml",
        include_bytes!("../demo/letters/05-damaged.eml"),
        false,
    ),
];

pub async fn run(data_dir: Option<PathBuf>, exit_when_done: bool) -> anyhow::Result<()> {
    let dir = data_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("petitiond-demo-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let mock = MockCluster::new(1)?;
    let brokers = mock.bootstrap_servers();
    let hotline = HotlineSim::start(HotlineSimConfig {
        jurisdiction_id: Some("demo.12345".into()),
        api_key: Some(DEMO_API_KEY.into()),
        ..Default::default()
    })
    .await?;
    let portal = PortalSim::start(PortalSimConfig {
        pagination: Pagination::Cursor,
        signing: Some(SigningSecret {
            app_key: "petitiond-demo".into(),
            secret: DEMO_PORTAL_SECRET.into(),
        }),
        ..Default::default()
    })
    .await?;
    hotline.set_faults(Faults {
        error_500_every: Some(4),
        bad_record_every: Some(4),
        ..Default::default()
    });
    hotline.add_records(4);
    portal.add_records(3);
    // The admin API is closed without a token: the demo makes one and prints a sign-in link.
    let admin_token = uuid::Uuid::new_v4().simple().to_string();
    std::fs::write(dir.join("admin.token"), &admin_token)?;
    std::fs::write(dir.join("hotline.key"), DEMO_API_KEY)?;
    std::fs::write(dir.join("portal.secret"), DEMO_PORTAL_SECRET)?;
    let text = CONFIG
        .replace("{brokers}", &brokers)
        .replace("{hotline_url}", &hotline.base_url())
        .replace("{portal_url}", &portal.base_url());
    let config_path = dir.join("petitiond.toml");
    std::fs::write(&config_path, &text)?;
    let config = Config::load(&config_path).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let store_path = config.store.path.clone();
    let topics: Vec<String> = config.departments.iter().map(|d| d.topic.clone()).collect();
    // The demo plays the intake desk: it reports on that department's own status topic.
    let (alerts_topic, status_topic) = (
        config.sla.alerts_topic.clone(),
        config
            .department("intake-desk")
            .map(|d| d.status_topic.clone())
            .ok_or_else(|| anyhow::anyhow!("the demo config needs the intake-desk department"))?,
    );
    let mailbox = match config.mailbox.clone().map(|m| m.kind) {
        Some(crate::config::MailboxKind::Maildir { path }) => path,
        _ => anyhow::bail!("the demo config needs a Maildir mailbox"),
    };
    // An operator would create topics on a real cluster; the mock cluster gets them here.
    for t in config.topics() {
        mock.create_topic(&t, config.kafka.partitions, 1)?;
    }

    let app = Application::build(config).await?;
    println!("petitiond demo");
    println!("  data dir      {}", dir.display());
    println!("  config        {}", config_path.display());
    println!(
        "  kafka broker  {brokers}   (embedded; try: kcat -b {brokers} -C -t {} -f '%k %h\\n%s\\n\\n')",
        topics[0]
    );
    if let Some(a) = app.admin_addr() {
        println!(
            "  admin         http://{a}/login?token={admin_token}  (SLA board; /metrics wants `Authorization: Bearer <token in admin.token>`)"
        );
    }
    println!(
        "  maildir       {}  (drop .eml files into new/ to route more)",
        mailbox.display()
    );
    println!(
        "  hotline       {}/requests.json  (Open311 simulator)",
        hotline.base_url()
    );
    println!(
        "  portal        {}/petitions  (signed, cursor-paged simulator)",
        portal.base_url()
    );
    println!();

    for (i, (name, bytes, _)) in LETTERS.iter().enumerate() {
        deliver(&mailbox, i as u64, bytes)?;
        println!("scanner delivered {name}");
    }
    let expected = LETTERS.iter().filter(|l| l.2).count()
        + hotline.record_ids().len()
        + portal.record_ids().len();
    println!(
        "hotline has {} order(s) ({} bad), portal {} petition(s)",
        hotline.record_count(),
        hotline.record_count() - hotline.record_ids().len(),
        portal.record_count()
    );

    let stop = shutdown_on_signals()?;
    let printer = {
        let (brokers, stop, done) = (brokers.clone(), stop.clone(), exit_when_done);
        let watch = Watch {
            topics,
            alerts_topic,
            status_topic,
            expected,
        };
        tokio::task::spawn_blocking(move || print_routed(&brokers, &watch, &stop, done))
    };
    // An upstream change a few seconds in: it reaches the department as an update event.
    let changed = hotline.record_ids().first().cloned();
    let upstream = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        if let Some(id) = changed
            && hotline.update_record(&id)
        {
            println!("\nupstream: the hotline changed the status of order {id}");
        }
        hotline
    });
    let result = app.run_until_stopped(stop.clone()).await;
    let hotline = upstream.await?;
    hotline.stop().await;
    portal.stop().await;
    stop.cancel();
    let seen = printer.await??;
    let q = crate::store::SqliteStore::open(&store_path, Duration::from_secs(5))?;
    let quarantined = crate::store::Store::list_quarantine(&q, 100)?;
    println!();
    println!(
        "routed {seen} envelope(s); quarantined {} input(s):",
        quarantined.len()
    );
    for r in &quarantined {
        println!(
            "  #{} {} {}: {} ({})",
            r.id, r.entry.source, r.entry.reference, r.entry.reason, r.entry.detail
        );
    }
    println!(
        "inspect with: petitiond quarantine list --config {}",
        config_path.display()
    );
    drop(mock);
    result
}

/// What the demo's printer watches.
struct Watch {
    topics: Vec<String>,
    alerts_topic: String,
    status_topic: String,
    /// Letters that should be routed.
    expected: usize,
}

fn header(m: &rdkafka::message::BorrowedMessage<'_>, k: &str) -> String {
    m.headers()
        .and_then(|h| h.iter().find(|h| h.key == k).and_then(|h| h.value))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// Consumes the department and alert topics and prints each envelope (masked) and alert. Plays
/// a department: the first letter routed is registered at once (a status event), so its clock
/// stops; the others breach. With `exit_when_done`, cancels `stop` once every letter is routed
/// and every unregistered one has breached. Returns how many envelopes it saw.
fn print_routed(
    brokers: &str,
    w: &Watch,
    stop: &CancellationToken,
    exit_when_done: bool,
) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "petitiond-demo-printer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let department: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let mut seen = HashSet::new();
    let mut registered = HashSet::new();
    let mut breached = HashSet::new();
    let mut assigned = false;
    let watched: Vec<&String> = w
        .topics
        .iter()
        .chain(std::iter::once(&w.alerts_topic))
        .collect();
    while !stop.is_cancelled() {
        if !assigned {
            // Topics appear once the relay has verified them.
            let mut tpl = TopicPartitionList::new();
            for t in &watched {
                if let Ok(md) = consumer.fetch_metadata(Some(t), Duration::from_secs(2)) {
                    for p in md.topics().iter().flat_map(|t| t.partitions()) {
                        tpl.add_partition_offset(t, p.id(), Offset::Beginning)?;
                    }
                }
            }
            if tpl.count() == 0 {
                std::thread::sleep(Duration::from_millis(300));
                continue;
            }
            consumer.assign(&tpl)?;
            assigned = true;
        }
        department.poll(Duration::ZERO);
        let Some(m) = consumer.poll(Duration::from_millis(300)) else {
            continue;
        };
        let m = m?;
        if m.topic() == w.alerts_topic {
            let a: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default())?;
            println!(
                "\nSLA alert → {}: {} {} for item {} (department {}, due {}{})",
                m.topic(),
                a["kind"].as_str().unwrap_or_default(),
                a["clock"].as_str().unwrap_or_default(),
                a["item_id"].as_str().unwrap_or_default(),
                a["department"].as_str().unwrap_or_default(),
                a["due_at"].as_str().unwrap_or_default(),
                if a["late"].as_bool() == Some(true) {
                    ", late"
                } else {
                    ""
                },
            );
            if a["kind"] == "breach" {
                breached.insert(a["item_id"].as_str().unwrap_or_default().to_string());
            }
        } else {
            let env: Envelope = serde_json::from_slice(m.payload().unwrap_or_default())?;
            println!(
                "\nrouted → {} [partition {} offset {}] role={} ce_type={} ce_id={} ce_sladue={}",
                m.topic(),
                m.partition(),
                m.offset(),
                header(&m, "ce_role"),
                header(&m, "ce_type"),
                header(&m, "ce_id"),
                header(&m, "ce_sladue"),
            );
            println!("{}", serde_json::to_string_pretty(&env.redacted())?);
            let id = env.id.to_string();
            if registered.is_empty() {
                let event = serde_json::json!({
                    "event_id": format!("demo-registered-{id}"),
                    "item_id": id,
                    "event": "registered",
                    "time": jiff::Timestamp::now().to_string(),
                    "actor": { "department": "intake-desk", "person": "clerk-07" },
                })
                .to_string();
                department
                    .send(BaseRecord::to(&w.status_topic).key(&id).payload(&event))
                    .map_err(|(e, _)| e)?;
                department.flush(Duration::from_secs(5))?;
                println!(
                    "\nstatus → {}: the intake desk registered item {id}; its clock stops",
                    w.status_topic
                );
                registered.insert(id.clone());
            }
            seen.insert(id);
        }
        let unregistered = seen.len() - registered.len();
        if exit_when_done && seen.len() >= w.expected && breached.len() >= unregistered {
            stop.cancel();
        }
    }
    Ok(seen.len())
}
