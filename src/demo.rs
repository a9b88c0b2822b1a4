//! `petitiond demo`: the whole path on embedded defaults, no services needed.
//!
//! An in-process Kafka-protocol broker (librdkafka's mock cluster, on a loopback port that real
//! clients such as kcat can use), a Maildir that a pretend scanner fills with sample letters
//! (one of them damaged, to show quarantine), SQLite under a data dir. A consumer prints every
//! routed envelope — personal fields masked — and where it went.

use crate::app::{Application, shutdown_on_signals};
use crate::channels::mailbox::deliver;
use crate::config::Config;
use crate::envelope::Envelope;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CONFIG: &str = include_str!("../demo/petitiond-demo.toml");

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
    let text = CONFIG.replace("{brokers}", &brokers);
    let config_path = dir.join("petitiond.toml");
    std::fs::write(&config_path, &text)?;
    let config = Config::load(&config_path).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let topics: Vec<String> = config.departments.iter().map(|d| d.topic.clone()).collect();
    let mailbox = config
        .mailbox
        .clone()
        .expect("demo config has a mailbox")
        .path;
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
        println!("  admin         http://{a}/metrics  http://{a}/readyz");
    }
    println!(
        "  maildir       {}  (drop .eml files into new/ to route more)",
        mailbox.display()
    );
    println!();

    for (i, (name, bytes, _)) in LETTERS.iter().enumerate() {
        deliver(&mailbox, i as u64, bytes)?;
        println!("scanner delivered {name}");
    }
    let expected = LETTERS.iter().filter(|l| l.2).count();

    let stop = shutdown_on_signals()?;
    let printer = {
        let (brokers, stop, done) = (brokers.clone(), stop.clone(), exit_when_done);
        tokio::task::spawn_blocking(move || print_routed(&brokers, &topics, expected, &stop, done))
    };
    let result = app.run_until_stopped(stop.clone()).await;
    stop.cancel();
    let seen = printer.await??;
    let q = crate::store::SqliteStore::open(&dir.join("petitiond.db"), Duration::from_secs(5))?;
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

/// Consumes the department topics and prints each envelope (masked). Returns how many it saw;
/// with `exit_when_done`, cancels `stop` once `expected` distinct items have arrived.
fn print_routed(
    brokers: &str,
    topics: &[String],
    expected: usize,
    stop: &CancellationToken,
    exit_when_done: bool,
) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "petitiond-demo-printer")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut seen = HashSet::new();
    let mut assigned = false;
    while !stop.is_cancelled() {
        if !assigned {
            // Topics appear once the relay has created them.
            let mut tpl = TopicPartitionList::new();
            for t in topics {
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
        let Some(m) = consumer.poll(Duration::from_millis(300)) else {
            continue;
        };
        let m = m?;
        let header = |k: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == k).and_then(|h| h.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let env: Envelope = serde_json::from_slice(m.payload().unwrap_or_default())?;
        println!(
            "\nrouted → {} [partition {} offset {}] role={} ce_type={} ce_id={}",
            m.topic(),
            m.partition(),
            m.offset(),
            header("ce_role"),
            header("ce_type"),
            header("ce_id")
        );
        println!("{}", serde_json::to_string_pretty(&env.redacted())?);
        seen.insert(env.id.to_string());
        if exit_when_done && seen.len() >= expected {
            stop.cancel();
        }
    }
    Ok(seen.len())
}
