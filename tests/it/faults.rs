use crate::capture::Captured;
use crate::helpers::*;
use std::time::Duration;

/// The `quarantine list` line containing `needle`, and the bytes its claim check points to in
/// the content-addressed blob store.
fn quarantined(app: &TestApp, needle: &str) -> (String, Vec<u8>) {
    let out = app.petitiond(&["quarantine", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("not quarantined: {text}"))
        .to_string();
    let claim = line.split('\t').find(|f| f.starts_with("sha256:")).unwrap();
    let hex = &claim["sha256:".len()..];
    let kept = std::fs::read(app.dir.path().join("data/blobs").join(&hex[..2]).join(hex)).unwrap();
    (line, kept)
}

/// The daemon is SIGKILLed again and again while mails stream in; after a last clean run every
/// item is on the topic exactly once.
#[test]
fn sigkill_mid_stream_repeatedly_loses_nothing_and_duplicates_nothing() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let mut ids = Vec::new();
    let mut n = 0;
    // Kill points spread from "still starting" to "mid-batch".
    for (round, wait_ms) in [150u64, 400, 700, 250, 1000, 550].into_iter().enumerate() {
        for _ in 0..30 {
            ids.push(app.deliver(&letter(n)));
            n += 1;
        }
        app.start();
        std::thread::sleep(Duration::from_millis(wait_ms));
        app.kill();
        eprintln!("round {round}: killed after {wait_ms} ms");
    }
    app.start();
    let records = consume(
        &brokers,
        &app.topic,
        ids.len(),
        Duration::from_secs(120),
        Duration::from_secs(3),
    );
    assert_exactly_once(&records, &ids);
    assert_eq!(
        std::fs::read_dir(app.maildir.join("new")).unwrap().count(),
        0
    );
    assert_eq!(app.terminate(Duration::from_secs(30)), Some(0));
}

/// The broker goes away mid-stream and comes back (tansu on SQLite storage): nothing lost,
/// nothing twice, the outage logged, and the daemon recovers without a restart.
#[test]
fn broker_outage_is_survived_without_restart() {
    let Some(bin) = tansu_bin() else { return };
    let bdir = tempfile::tempdir().unwrap();
    let mut b = OwnBroker::start(&bin, bdir.path());
    let mut app = TestApp::new(&b.addr, "");
    app.start();
    let mut ids: Vec<String> = (0..10).map(|i| app.deliver(&letter(i))).collect();
    consume(
        &b.addr,
        &app.topic,
        10,
        Duration::from_secs(60),
        Duration::ZERO,
    );

    b.down();
    ids.extend((10..25).map(|i| app.deliver(&letter(i))));
    std::thread::sleep(Duration::from_secs(8));
    assert!(app.is_running(), "petitiond must ride out a broker outage");
    let (status, _) = app.http_get("/readyz");
    assert_eq!(status, 503, "not ready while the brokers are down");
    // Items keep being recorded and committed while Kafka is down.
    assert_eq!(
        std::fs::read_dir(app.maildir.join("new")).unwrap().count(),
        0
    );

    b.up(&bin);
    let records = consume(
        &b.addr,
        &app.topic,
        ids.len(),
        Duration::from_secs(120),
        Duration::from_secs(3),
    );
    assert_exactly_once(&records, &ids);
    assert!(app.is_running());
    let logs = app.logs();
    assert!(
        logs.contains("kafka brokers unreachable"),
        "outage not logged:\n{logs}"
    );
    assert!(
        logs.contains("kafka brokers reachable again"),
        "recovery not logged:\n{logs}"
    );
    assert_eq!(app.terminate(Duration::from_secs(30)), Some(0));
}

/// A malformed mail is quarantined with its bytes and reason, counted, and the next mail flows.
#[test]
fn malformed_mail_is_quarantined_and_the_next_one_flows() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    app.start();
    let garbage: &[u8] = b"\x00\x1f\x8b\x08 scanner transfer interrupted \xff\xfe";
    app.deliver(garbage);
    let good = app.deliver(&letter(7));
    let records = consume(
        &brokers,
        &app.topic,
        1,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    assert_exactly_once(&records, &[good]);

    let (line, kept) = quarantined(&app, "\tmalformed_mime\t");
    assert!(
        line.contains("mailbox") && line.contains(".M1P1.test"),
        "{line}"
    );
    assert_eq!(kept, garbage, "the original bytes are kept");
    let (_, metrics) = app.http_get("/metrics");
    assert!(
        metrics.contains(
            "petitiond_quarantined_total{source=\"mailbox\",reason=\"malformed_mime\"} 1"
        ),
        "{metrics}"
    );
}

/// A record the broker can never take goes to the dead-letter topic with the reason in a
/// header; the rest keep flowing.
#[test]
fn permanently_undeliverable_record_goes_to_the_dead_letter_topic() {
    let Some(brokers) = broker() else { return };
    // The producer refuses records over 4000 bytes: a permanent error for a long letter.
    let mut app = TestApp::new(
        &brokers,
        "[kafka.properties]\n\"message.max.bytes\" = \"4000\"\n",
    );
    app.start();
    let long = String::from_utf8(letter(1))
        .unwrap()
        .replace("供暖不足", &"供暖不足".repeat(600));
    let big = app.deliver(long.as_bytes());
    let small = app.deliver(&letter(2));
    let routed = consume(
        &brokers,
        &app.topic,
        1,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    assert_exactly_once(&routed, std::slice::from_ref(&small));
    let dead = consume(
        &brokers,
        &app.dlq,
        1,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key, big);
    assert_eq!(dead[0].headers["petitiond_dlq_topic"], app.topic);
    assert!(
        dead[0].headers["petitiond_dlq_reason"].contains("too large"),
        "{:?}",
        dead[0].headers
    );
    assert_eq!(dead[0].headers["ce_subject"], big);
    let (_, metrics) = app.http_get("/metrics");
    assert!(
        metrics.contains("petitiond_outbox_dead_lettered_total"),
        "{metrics}"
    );
}

/// On a locked-down cluster (topic creation not allowed) a missing topic stops start-up with
/// an error naming it.
#[test]
fn missing_topic_with_creation_disabled_is_a_clear_start_up_error() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "create_topics = false");
    app.start();
    let code = app.wait_exit(Duration::from_secs(60));
    assert_ne!(code, Some(0));
    let logs = app.logs();
    assert!(
        logs.contains("kafka topics missing and kafka.create_topics = false"),
        "{logs}"
    );
    assert!(
        logs.contains(&app.topic),
        "the missing topic is named: {logs}"
    );
}

/// A mail over the size limit is not read into memory: it is streamed into quarantine with
/// its bytes intact, and the next mail flows.
#[test]
fn oversize_mail_is_quarantined_with_its_bytes() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    // [channels.mailbox] is the config's last table: append the limit to it.
    let mut cfg = std::fs::read_to_string(&app.config).unwrap();
    cfg.push_str("max_message_bytes = 3000\n");
    std::fs::write(&app.config, cfg).unwrap();
    app.start();
    let big = String::from_utf8(letter(1))
        .unwrap()
        .replace("供暖不足", &"供暖不足".repeat(300));
    app.deliver(big.as_bytes());
    let good = app.deliver(&letter(2));
    let records = consume(
        &brokers,
        &app.topic,
        1,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    assert_exactly_once(&records, &[good]);
    let (line, kept) = quarantined(&app, "\toversize\t");
    assert!(line.contains(&format!("{} bytes", big.len())), "{line}");
    assert_eq!(kept, big.as_bytes());
}

/// Two daemons on one data dir would break the outbox and the Maildir cursor: the second
/// refuses to start, naming the lock.
#[test]
fn a_second_daemon_on_the_same_data_dir_refuses_to_start() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    app.start();
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&app.config)
        .output()
        .captured();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another petitiond is running"), "{err}");
    assert!(app.is_running(), "the first daemon is unaffected");
}

/// Under a permissive umask the data dir, the store (and its WAL), blobs (scans, quarantined
/// mail), the repeat-petition key and the lock were created readable — and writable — by
/// every local user. Every file petitiond writes in its data dir is now 0600 and every
/// directory 0700, whatever the umask.
#[test]
fn data_files_are_private_even_under_umask_000() {
    use std::os::unix::fs::PermissionsExt;
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    app.start_with_umask(Some("000"));
    app.deliver(b"\x00\x1f\x8b\x08 not a mail \xff\xfe");
    let good = app.deliver(&letter(3));
    let records = consume(
        &brokers,
        &app.topic,
        1,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert_exactly_once(&records, &[good]);
    let data = app.dir.path().join("data");
    let mut seen = Vec::new();
    let mut stack = vec![data.clone()];
    while let Some(p) = stack.pop() {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        if p.is_dir() {
            assert_eq!(mode, 0o700, "{}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        seen.push(p.strip_prefix(&data).unwrap().display().to_string());
    }
    for f in [
        "petitiond.db",
        "petitiond.db-wal",
        "petitiond.lock",
        "repeat-petition.key",
        "blobs/tmp",
    ] {
        assert!(seen.iter().any(|s| s == f), "{f} not found in {seen:?}");
    }
    assert!(
        seen.iter().filter(|s| s.starts_with("blobs/")).count() >= 4,
        "scan, raw mails and the quarantined bytes: {seen:?}"
    );
    assert_eq!(app.terminate(Duration::from_secs(30)), Some(0));
}

/// A config for an in-process relay on the test broker: one partition, unique topics.
fn relay_config(brokers: &str, extra_kafka: &str) -> petitiond::config::Config {
    let text = format!(
        "[kafka]\nbrokers = \"{brokers}\"\npartitions = 1\nretry_backoff_ms = 200\ndead_letter_topic = \"{}\"\n{extra_kafka}\n\n[[departments]]\nid = \"desk\"\nname = \"D\"\ntopic = \"{}\"\n\n[routing]\ndefault_lead = \"desk\"\n\n[sla]\nalerts_topic = \"{}\"\nstatus_topic = \"{}\"\n",
        unique("it.dlq"),
        unique("it.desk"),
        unique("it.alerts"),
        unique("it.status"),
    );
    petitiond::config::Config::parse(&text, "relay.toml", std::path::Path::new(".")).unwrap()
}

/// Fills the department's topic with `n` records nobody is looking for (years of retention).
fn fill(brokers: &str, topic: &str, n: usize) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .create()
        .unwrap();
    for i in 0..n {
        let key = format!("old-{i}");
        loop {
            match p.send(BaseRecord::to(topic).key(&key).payload("{}")) {
                Ok(()) => break,
                Err(_) => {
                    p.poll(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

fn scanned(metrics: &petitiond::metrics::Metrics) -> u64 {
    let text = metrics.encode();
    text.lines()
        .find_map(|l| l.strip_prefix("petitiond_outbox_recovery_scanned_records_total "))
        .unwrap_or_else(|| panic!("no scanned count:\n{text}"))
        .parse()
        .unwrap()
}

/// With nothing recorded for a partition (a new store, a restored one) the recovery scan read
/// the topic from its first record: on a topic that keeps years of records the scan outran its
/// deadline and the relay stopped — at every restart. It now starts at the records written
/// shortly before the in-flight row was created, and still finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_scan_of_a_long_retention_topic_starts_at_the_rows_age() {
    let Some(brokers) = broker() else { return };
    let cfg = relay_config(&brokers, "recovery_time_margin_secs = 1");
    petitiond::kafka::topics::ensure_topics(&cfg.kafka, &cfg.topics())
        .await
        .unwrap();
    let topic = cfg.departments[0].topic.clone();
    fill(&brokers, &topic, 3000);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn petitiond::store::Store> = std::sync::Arc::new(
        petitiond::store::SqliteStore::open(&dir.path().join("s.db"), Duration::from_secs(1))
            .unwrap(),
    );
    crate::mock_faults::produced_before_the_crash(&brokers, &store, &cfg, 1);
    let metrics = petitiond::metrics::Metrics::new();
    crate::mock_faults::relay_until_drained(&cfg, store.clone(), metrics.clone()).await;
    let n = scanned(&metrics);
    assert!(n < 100, "read {n} records of 3001");
    assert!(
        metrics
            .encode()
            .contains("petitiond_recovered_in_flight_total 1")
    );
    let records = consume(
        &brokers,
        &topic,
        3001,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let id = crate::mock_faults::item(&cfg, 1).envelope.id.to_string();
    assert_eq!(
        records.iter().filter(|r| r.key == id).count(),
        1,
        "never re-sent"
    );
}

/// Where the time bound does not help (the rows are older than the records around them),
/// the scan still reads at most `kafka.recovery_scan_max_records` per partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_scan_is_capped_at_max_records() {
    let Some(brokers) = broker() else { return };
    let cfg = relay_config(&brokers, "recovery_scan_max_records = 500");
    petitiond::kafka::topics::ensure_topics(&cfg.kafka, &cfg.topics())
        .await
        .unwrap();
    let topic = cfg.departments[0].topic.clone();
    fill(&brokers, &topic, 3000);
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn petitiond::store::Store> = std::sync::Arc::new(
        petitiond::store::SqliteStore::open(&dir.path().join("s.db"), Duration::from_secs(1))
            .unwrap(),
    );
    crate::mock_faults::produced_before_the_crash(&brokers, &store, &cfg, 2);
    let metrics = petitiond::metrics::Metrics::new();
    crate::mock_faults::relay_until_drained(&cfg, store.clone(), metrics.clone()).await;
    let n = scanned(&metrics);
    assert!(n <= 500, "read {n} records");
    let text = metrics.encode();
    assert!(
        text.contains("petitiond_recovered_in_flight_total 1"),
        "{text}"
    );
    assert!(
        text.contains("petitiond_outbox_recovery_capped_total{topic="),
        "{text}"
    );
    let records = consume(
        &brokers,
        &topic,
        3001,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let id = crate::mock_faults::item(&cfg, 2).envelope.id.to_string();
    assert_eq!(
        records.iter().filter(|r| r.key == id).count(),
        1,
        "never re-sent"
    );
}
