//! What the relay's recovery scan asks of the broker, checked against the real test broker
//! (tansu 0.6), and the scan holding where the broker's answers are coarse or wrong.
//!
//! Found chasing the duplicate of issue 16: after a batch of several records, tansu reports a
//! high watermark of the batch's base offset + 1 until the next batch arrives, and answers
//! `offsets_for_times` with the partition's first offset whatever the time. The second only
//! makes the scan longer; the first made it stop short of in-flight records and re-send them.

use crate::helpers::*;
use petitiond::kafka::relay::scan_topic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh one-partition topic.
fn topic(rt: &tokio::runtime::Runtime, brokers: &str) -> String {
    let topic = unique("it.batch");
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let r = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
    topic
}

/// Sends `ce_ids.len()` records as ONE batch (linger) to partition 0, with the relay's
/// producer settings (acks=all, idempotence), timestamps one second apart; returns t0.
fn send_batch(rt: &tokio::runtime::Runtime, brokers: &str, topic: &str, ce_ids: &[&str]) -> i64 {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "300")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let t0 = jiff::Timestamp::now().as_millisecond() - 10_000;
    let futs: Vec<_> = ce_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            p.send_result(
                FutureRecord::to(topic)
                    .partition(0)
                    .key("k")
                    .payload("v")
                    .timestamp(t0 + i as i64 * 1000)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "ce_id",
                        value: Some(*id),
                    })),
            )
            .map_err(|(e, _)| e)
            .unwrap()
        })
        .collect();
    for (i, f) in futs.into_iter().enumerate() {
        let d = rt.block_on(f).unwrap().map_err(|(e, _)| e).unwrap();
        assert_eq!((d.partition, d.offset), (0, i as i64));
    }
    t0
}

/// The broker's answers the scan must not depend on. If this fails after a tansu upgrade, the
/// broker got them right: keep the scan as it is, and update this record of its behaviour.
#[test]
fn tansu_understates_the_high_watermark_after_a_multi_record_batch() {
    let Some(brokers) = broker() else { return };
    let rt = runtime();
    let topic = topic(&rt, &brokers);
    let t0 = send_batch(&rt, &brokers, &topic, &["a", "b", "c"]);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("it.times"))
        .create()
        .unwrap();
    let hw = c
        .fetch_watermarks(&topic, 0, Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        hw,
        (0, 1),
        "three records at 0..=2, high watermark 1 (base offset + 1)"
    );
    let mut got = Vec::new();
    for at in [t0 - 600_000, t0 + 1500, t0 + 5000] {
        let mut q = TopicPartitionList::new();
        q.add_partition_offset(&topic, 0, Offset::Offset(at))
            .unwrap();
        let r = c.offsets_for_times(q, Duration::from_secs(5)).unwrap();
        got.push(r.elements()[0].offset());
    }
    // Kafka would answer 0, 2 and End: tansu answers the first offset for any time.
    assert_eq!(got, [Offset::Offset(0); 3]);
}

/// Issue 16's duplicate: a crash right after a batch of several records reached the broker
/// leaves them in flight; recovery must find every one of them, or it re-sends them.
#[test]
fn recovery_scan_finds_every_record_of_the_newest_batch_past_the_reported_high_watermark() {
    let Some(brokers) = broker() else { return };
    let rt = runtime();
    let topic = topic(&rt, &brokers);
    send_batch(&rt, &brokers, &topic, &["a", "b", "c"]);
    let cfg = petitiond::config::Config::parse(
        &format!(
            "[kafka]\nbrokers = \"{brokers}\"\n[[departments]]\nid = \"d\"\nname = \"D\"\ntopic = \"{topic}\"\n[routing]\ndefault_lead = \"d\"\n"
        ),
        "t.toml",
        std::path::Path::new("."),
    )
    .unwrap();
    let wanted: HashMap<String, i64> = [("a", 1), ("b", 2), ("c", 3), ("never-sent", 4)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    // As after a crash on a fresh topic: no position recorded; the time bound from the broker.
    let since = Some(jiff::Timestamp::now());
    let scan = scan_topic(&cfg.kafka, &topic, &HashMap::new(), since, &wanted).unwrap();
    let mut found: Vec<(i64, i64)> = scan.hits.iter().map(|d| (d.seq, d.offset)).collect();
    found.sort();
    assert_eq!(
        found,
        [(1, 0), (2, 1), (3, 2)],
        "every in-flight record on the topic"
    );
    assert_eq!(scan.scanned, 3);
}
