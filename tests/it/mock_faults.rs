//! Fault injection a real broker cannot do on cue: librdkafka's mock cluster answers produce
//! requests with chosen errors. The relay must dead-letter permanent errors and retry the rest.

use petitiond::config::Config;
use petitiond::envelope::{Channel, Envelope, Personal, Request, Upstream};
use petitiond::kafka::client::BrokerHealth;
use petitiond::kafka::relay::Relay;
use petitiond::kafka::wire::{Role, routed_record};
use petitiond::metrics::Metrics;
use petitiond::store::{Decision, NewItem, SqliteStore, Store};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A mock cluster with every configured topic, and an empty store.
struct Fixture {
    mock: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    brokers: String,
    cfg: Config,
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
}

impl Fixture {
    fn new() -> Fixture {
        let mock = MockCluster::new(1).unwrap();
        let brokers = mock.bootstrap_servers();
        let cfg = config(&brokers);
        for t in cfg.topics() {
            mock.create_topic(&t, 1, 1).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("s.db"), Duration::from_secs(1)).unwrap());
        Fixture {
            mock,
            brokers,
            cfg,
            _dir: dir,
            store,
        }
    }
}

/// Collects the keys of what reached `topic`, sorted.
fn keys_on(brokers: &str, topic: &str) -> Vec<String> {
    let mut keys: Vec<String> = read(brokers, topic).into_iter().map(|r| r.0).collect();
    keys.sort();
    keys
}

fn ids(items: &[NewItem]) -> Vec<String> {
    let mut want: Vec<String> = items.iter().map(|i| i.envelope.id.to_string()).collect();
    want.sort();
    want
}

fn config(brokers: &str) -> Config {
    let text = format!(
        "[kafka]\nbrokers = \"{brokers}\"\npartitions = 1\nretry_backoff_ms = 50\ndead_letter_topic = \"dlq\"\n\n[[departments]]\nid = \"desk\"\nname = \"D\"\ntopic = \"desk\"\n\n[routing]\ndefault_lead = \"desk\"\n"
    );
    Config::parse(&text, "mock.toml", std::path::Path::new(".")).unwrap()
}

pub(crate) fn item(cfg: &Config, n: usize) -> NewItem {
    let env = Envelope::new(
        Channel::Hotline,
        Upstream {
            id: format!("order-{n}"),
            url: None,
            source: "hotline".into(),
            raw_ref: format!("sha256:{:064x}", n),
            ..Default::default()
        },
        "2026-03-02T01:00:00Z".parse().unwrap(),
        Request {
            title: None,
            content: Personal::new("内容"),
        },
    );
    NewItem {
        outbox: vec![routed_record(&env, &cfg.departments[0], Role::Lead)],
        decision: Decision {
            rule_id: "default".into(),
            rules_version: "t".into(),
            lead: "desk".into(),
            assists: vec![],
            decided_at: env.received_at,
        },
        clocks: vec![],
        envelope: env,
        version: None,
        person_index: None,
        writeback: vec![],
    }
}

pub(crate) async fn relay_until_drained(cfg: &Config, store: Arc<dyn Store>, metrics: Metrics) {
    let relay = relay(cfg, store, metrics);
    let input_done = CancellationToken::new();
    input_done.cancel();
    tokio::time::timeout(
        Duration::from_secs(60),
        relay.run(input_done, CancellationToken::new()),
    )
    .await
    .expect("relay drained in time")
    .unwrap();
}

fn read(brokers: &str, topic: &str) -> Vec<(String, Vec<(String, String)>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "mock-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < end {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let h = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((String::from_utf8_lossy(m.key().unwrap()).into_owned(), h));
        }
    }
    let text: String = out
        .iter()
        .map(|(k, h)| format!("record {topic} key={k} headers={h:?}\n"))
        .collect();
    crate::capture::write("kafka-headers", text.as_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_failure_is_dead_lettered_with_reason_and_later_items_flow() {
    let Fixture {
        mock,
        brokers,
        cfg,
        _dir,
        store,
    } = Fixture::new();
    let metrics = Metrics::new();

    let first = item(&cfg, 1);
    let first_id = first.envelope.id.to_string();
    store.record_item(&first).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    relay_until_drained(&cfg, store.clone(), metrics.clone()).await;

    let second = item(&cfg, 2);
    let second_id = second.envelope.id.to_string();
    store.record_item(&second).unwrap();
    relay_until_drained(&cfg, store.clone(), metrics.clone()).await;

    let dead = read(&brokers, "dlq");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, first_id);
    let reason = dead[0]
        .1
        .iter()
        .find(|(k, _)| k == "petitiond_dlq_reason")
        .unwrap();
    assert!(reason.1.contains("TopicAuthorizationFailed"), "{reason:?}");
    let routed = read(&brokers, "desk");
    assert_eq!(
        routed.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        vec![second_id]
    );
    assert_eq!(store.pending_count().unwrap(), 0);
    assert!(
        metrics
            .encode()
            .contains("petitiond_outbox_dead_lettered_total{topic=\"desk\"} 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_broker_errors_are_retried_until_delivered_once() {
    let Fixture {
        mock,
        brokers,
        cfg,
        _dir,
        store,
    } = Fixture::new();
    let items: Vec<NewItem> = (0..5).map(|n| item(&cfg, n)).collect();
    for i in &items {
        store.record_item(i).unwrap();
    }
    use RDKafkaRespErr::*;
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    relay_until_drained(&cfg, store.clone(), Metrics::new()).await;
    assert_eq!(
        keys_on(&brokers, "desk"),
        ids(&items),
        "each item delivered exactly once despite injected errors"
    );
    assert!(read(&brokers, "dlq").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_producer_error_recreates_the_producer_and_delivers_once() {
    let Fixture {
        mock,
        brokers,
        cfg,
        _dir,
        store,
    } = Fixture::new();
    let items: Vec<NewItem> = (0..3).map(|n| item(&cfg, n)).collect();
    for i in &items {
        store.record_item(i).unwrap();
    }
    // An idempotent producer refused its producer id is in a fatal state.
    mock.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED],
    );
    let metrics = Metrics::new();
    relay_until_drained(&cfg, store.clone(), metrics.clone()).await;
    let text = metrics.encode();
    assert!(
        text.contains("petitiond_producer_recreated_total 1"),
        "{text}"
    );
    assert_eq!(keys_on(&brokers, "desk"), ids(&items));
}

/// What the previous process did before it died: the row was counted as attempted and its
/// record reached the topic, but the delivery was never marked in the store.
pub(crate) fn produced_before_the_crash(
    brokers: &str,
    store: &Arc<dyn Store>,
    cfg: &Config,
    n: usize,
) {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    store.record_item(&item(cfg, n)).unwrap();
    let row = store.pending_outbox(100).unwrap().pop().unwrap();
    store.mark_attempted(&[row.seq]).unwrap();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut headers = OwnedHeaders::new();
    for (k, v) in &row.headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    p.send(
        BaseRecord::to(&row.topic)
            .key(&row.key)
            .payload(&row.payload)
            .headers(headers),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(store.in_flight_outbox().unwrap().len(), 1);
}

pub(crate) fn relay(cfg: &Config, store: Arc<dyn Store>, metrics: Metrics) -> Relay {
    Relay {
        config: cfg.kafka.clone(),
        topics: cfg.topics(),
        store,
        metrics,
        health: Arc::new(BrokerHealth::default()),
        wake: Arc::new(tokio::sync::Notify::new()),
        ready: Arc::new(Default::default()),
        alerts_topic: cfg.sla.alerts_topic.clone(),
        lease: None,
    }
}

/// A metadata answer that did not list the topic's partitions made the recovery scan read
/// nothing and conclude "not on Kafka": the in-flight record was sent a second time. Now the
/// topic is held (nothing sent to it), an alert is raised, and the scan is retried until the
/// metadata is sane; the record is then found and never re-sent. (The rows' topic is one the
/// relay does not verify at start — a department since removed from the config, or a dead
/// letter replayed to another topic — so the broken metadata meets the scan first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_metadata_error_holds_the_topic_and_never_resends_blind() {
    let Fixture {
        mock,
        brokers,
        cfg,
        _dir,
        store,
    } = Fixture::new();
    produced_before_the_crash(&brokers, &store, &cfg, 1);
    let metrics = Metrics::new();
    let mut r = relay(&cfg, store.clone(), metrics.clone());
    r.topics.retain(|t| t != "desk");
    mock.topic_error(
        "desk",
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    )
    .unwrap();
    let input_done = CancellationToken::new();
    input_done.cancel();
    let task = tokio::spawn(r.run(input_done, CancellationToken::new()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let text = metrics.encode();
    assert!(
        text.contains("petitiond_outbox_recovery_failures_total{topic=\"desk\"}"),
        "{text}"
    );
    assert!(text.contains("petitiond_outbox_held_topics 1"), "{text}");
    assert_eq!(
        store.in_flight_outbox().unwrap().len(),
        1,
        "still in flight"
    );
    mock.topic_error("desk", RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(90), task)
        .await
        .expect("relay drained in time")
        .unwrap()
        .unwrap();
    assert_eq!(keys_on(&brokers, "desk").len(), 1, "sent once, never twice");
    assert_eq!(store.pending_count().unwrap(), 0);
    let text = metrics.encode();
    assert!(
        text.contains("petitiond_recovered_in_flight_total 1"),
        "{text}"
    );
    assert!(text.contains("petitiond_outbox_held_topics 0"), "{text}");
    // The operator was told, on the alerts topic.
    let alerts = read(&brokers, &cfg.sla.alerts_topic);
    assert!(
        alerts.iter().any(|(_, h)| h
            .iter()
            .any(|(k, v)| k == "ce_type" && v == "cn.gov.petition.relay.recovery_failed.v1")),
        "{alerts:?}"
    );
}

/// A broker error during the recovery scan (here: offset queries refused) ended the relay
/// with an error, so the daemon exited — and, restarted by systemd, failed the same way again.
/// Now the topic is held and the scan retried; the relay keeps running and delivers once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_scan_broker_errors_hold_the_topic_instead_of_stopping_the_relay() {
    let Fixture {
        mock,
        brokers,
        cfg,
        _dir,
        store,
    } = Fixture::new();
    produced_before_the_crash(&brokers, &store, &cfg, 2);
    use RDKafkaRespErr::*;
    mock.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[
            RD_KAFKA_RESP_ERR_UNKNOWN,
            RD_KAFKA_RESP_ERR_UNKNOWN,
            RD_KAFKA_RESP_ERR_UNKNOWN,
        ],
    );
    let metrics = Metrics::new();
    relay_until_drained(&cfg, store.clone(), metrics.clone()).await;
    assert_eq!(keys_on(&brokers, "desk").len(), 1, "found, not re-sent");
    let text = metrics.encode();
    assert!(
        text.contains("petitiond_outbox_recovery_failures_total{topic=\"desk\"}"),
        "{text}"
    );
    assert!(
        text.contains("petitiond_recovered_in_flight_total 1"),
        "{text}"
    );
}

/// Any failure in the status consumer — here the dead-letter topic refusing a bad event —
/// ended its task, and a failed task stops the daemon (then systemd restarts it into the same
/// event). Now the failure is counted, reported once on the alerts topic, and the consumer
/// starts a new session after a back-off; the uncommitted event is read again and handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_consumer_failure_raises_an_alert_and_retries_instead_of_ending_the_daemon() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let Fixture {
        mock,
        brokers,
        cfg,
        _dir,
        store,
    } = Fixture::new();
    // Garbage on the shared status topic: a bad shape, dead-lettered whoever sent it.
    let status_topic = cfg.sla.status_topic.clone();
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    p.send(BaseRecord::to(&status_topic).key("x").payload("not json"))
        .map_err(|(e, _)| e)
        .unwrap();
    p.flush(Duration::from_secs(10)).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let metrics = Metrics::new();
    let (timers, _timers_rx) = tokio::sync::mpsc::unbounded_channel();
    let consumer = petitiond::status::StatusConsumer {
        inputs: Arc::new(petitiond::status::StatusInputs::from_config(&cfg)),
        store: store.clone(),
        metrics: metrics.clone(),
        health: Arc::new(BrokerHealth::default()),
        timers,
        topics_ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.run(stop.clone()));
    let t0 = std::time::Instant::now();
    let dead = loop {
        let dead = read(&brokers, "dlq");
        if !dead.is_empty() {
            break dead;
        }
        assert!(!task.is_finished(), "the status consumer ended");
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never dead-lettered"
        );
    };
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]
            .1
            .iter()
            .any(|(k, v)| k == "petitiond_dlq_reason" && v.starts_with("bad shape"))
    );
    assert!(!task.is_finished(), "still consuming");
    let text = metrics.encode();
    assert!(
        text.contains("petitiond_status_consumer_failures_total 1"),
        "{text}"
    );
    let alert = store
        .pending_outbox(100)
        .unwrap()
        .into_iter()
        .find(|r| r.topic == cfg.sla.alerts_topic)
        .expect("an alert for the operator");
    assert!(
        alert
            .headers
            .iter()
            .any(|(k, v)| k == "ce_type" && v == "cn.gov.petition.status.consumer_failed.v1"),
        "{alert:?}"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
