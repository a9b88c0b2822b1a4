//! The outbox relay: moves recorded items from the store's outbox to Kafka.
//!
//! Order of durability (ARCHITECTURE.md): an item and its outbox rows are committed together by
//! intake; the relay counts an attempt (committed) before producing a row, and marks the row
//! delivered only from its delivery report. On start, and after a fatal producer error, rows
//! that were attempted but never marked are looked for on their topic (by `ce_id`, from the
//! last recorded offset) before anything is re-sent, so a crash between the broker's ack and
//! the store's mark does not put an envelope on Kafka twice.
//!
//! Failures: retriable ones leave the row pending and are retried after a back-off; permanent
//! ones (too large, not authorised) send the record to the dead-letter topic with the reason in
//! a header; a fatal producer error drops the producer and builds a new one.

use super::client::{BrokerHealth, KafkaContext, client_config, create_producer};
use super::topics::ensure_topics;
use super::wire::{DLQ_REASON, DLQ_TOPIC};
use crate::config::KafkaConfig;
use crate::metrics::{Metrics, TopicLabel};
use crate::store::{Delivered, OutboxRow, Store, blocking};
use futures::future::join_all;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How a failed delivery is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Leave the row pending and try again later.
    Retriable,
    /// Will never succeed as it is: dead-letter it.
    Permanent,
    /// The producer is unusable: build a new one.
    Fatal,
}

pub fn classify(e: &KafkaError) -> Failure {
    use RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(C::Fatal) => Failure::Fatal,
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::InvalidRecord
            | C::PolicyViolation
            | C::InvalidTopic,
        ) => Failure::Permanent,
        _ => Failure::Retriable,
    }
}

pub struct Relay {
    pub config: KafkaConfig,
    pub topics: Vec<String>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub health: Arc<BrokerHealth>,
    /// Intake pokes this after committing new rows, so the relay does not wait for its tick.
    pub wake: Arc<Notify>,
    /// Set once topics are verified and a producer exists: `/readyz`.
    pub ready: Arc<AtomicBool>,
}

enum Outcome {
    Delivered(Delivered),
    Failed(OutboxRow, KafkaError),
}

fn headers_of(row: &OutboxRow, extra: &[(&str, &str)]) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(row.headers.len() + extra.len());
    for (k, v) in row
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().copied())
    {
        h = h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    h
}

impl Relay {
    fn context(&self) -> KafkaContext {
        KafkaContext {
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        }
    }

    /// Runs until `input_done` fires and the outbox is empty, or `hard_stop` fires.
    pub async fn run(
        self,
        input_done: CancellationToken,
        hard_stop: CancellationToken,
    ) -> anyhow::Result<()> {
        if !self.verify_topics(&hard_stop).await? {
            return Ok(());
        }
        let mut producer = create_producer(&self.config, self.context())?;
        self.recover().await?;
        self.ready.store(true, Ordering::Relaxed);
        loop {
            if hard_stop.is_cancelled() {
                break;
            }
            let batch = self.config.relay_batch;
            let rows = blocking(&self.store, move |s| s.pending_outbox(batch)).await?;
            self.metrics
                .outbox_pending
                .set(blocking(&self.store, |s| s.pending_count()).await? as i64);
            if rows.is_empty() {
                if input_done.is_cancelled() {
                    tracing::info!("outbox drained");
                    break;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = input_done.cancelled() => {}
                    _ = hard_stop.cancelled() => break,
                }
                continue;
            }
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            blocking(&self.store, move |s| s.mark_attempted(&seqs)).await?;
            let Some(outcomes) = self.produce(&producer, rows, &hard_stop).await else {
                break;
            };
            let mut delivered = Vec::new();
            let (mut retry, mut fatal) = (false, false);
            for o in outcomes {
                match o {
                    Outcome::Delivered(d) => {
                        self.metrics
                            .delivered
                            .get_or_create(&TopicLabel {
                                topic: d.topic.clone(),
                            })
                            .inc();
                        delivered.push(d);
                    }
                    Outcome::Failed(row, e) => match classify(&e) {
                        Failure::Retriable => {
                            retry = true;
                            self.metrics.delivery_retries.inc();
                            tracing::warn!(item = %row.item_id, topic = %row.topic, error = %e, "delivery failed; will retry");
                            let (seq, msg) = (row.seq, e.to_string());
                            blocking(&self.store, move |s| s.mark_failed(seq, &msg)).await?;
                        }
                        Failure::Permanent => {
                            if !self.dead_letter(&producer, &row, &e).await? {
                                retry = true;
                            }
                        }
                        Failure::Fatal => fatal = true,
                    },
                }
            }
            if !delivered.is_empty() {
                self.health.set_up();
                blocking(&self.store, move |s| s.mark_delivered(&delivered)).await?;
            }
            if fatal || producer.client().fatal_error().is_some() {
                let why = producer
                    .client()
                    .fatal_error()
                    .map(|(c, s)| format!("{c}: {s}"));
                tracing::error!(reason = ?why, "fatal producer error; recreating the producer");
                self.metrics.producer_recreated.inc();
                drop(producer);
                producer = create_producer(&self.config, self.context())?;
                self.recover().await?;
            } else if retry {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.retry_backoff) => {}
                    _ = hard_stop.cancelled() => break,
                }
                // A failed delivery (a timeout, say) may still have reached the broker: look
                // before re-sending, as after a crash.
                self.recover().await?;
            }
        }
        let left = blocking(&self.store, |s| s.pending_count()).await?;
        self.metrics.outbox_pending.set(left as i64);
        if left > 0 {
            tracing::warn!(
                pending = left,
                "stopping with records still in the outbox; they are sent at next start"
            );
        }
        Ok(())
    }

    /// Returns false when stopped before the topics could be checked.
    async fn verify_topics(&self, hard_stop: &CancellationToken) -> anyhow::Result<bool> {
        let mut backoff = Duration::from_millis(500);
        loop {
            match ensure_topics(&self.config, &self.topics).await {
                Ok(()) => {
                    tracing::info!(topics = ?self.topics, "kafka topics verified");
                    return Ok(true);
                }
                Err(e) if e.is_retriable() => {
                    self.health.set_down(&e.to_string());
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = hard_stop.cancelled() => return Ok(false),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Produces rows and waits for every delivery report; `None` if stopped first.
    async fn produce(
        &self,
        producer: &FutureProducer<KafkaContext>,
        rows: Vec<OutboxRow>,
        hard_stop: &CancellationToken,
    ) -> Option<Vec<Outcome>> {
        let mut pending = Vec::with_capacity(rows.len());
        let mut outcomes = Vec::new();
        for row in rows {
            loop {
                let record = FutureRecord::to(&row.topic)
                    .key(&row.key)
                    .payload(&row.payload)
                    .headers(headers_of(&row, &[]));
                match producer.send_result(record) {
                    Ok(fut) => {
                        pending.push((row, fut));
                        break;
                    }
                    Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                            _ = hard_stop.cancelled() => return None,
                        }
                    }
                    Err((e, _)) => {
                        outcomes.push(Outcome::Failed(row, e));
                        break;
                    }
                }
            }
        }
        let (rows, futs): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
        let results = tokio::select! {
            r = join_all(futs) => r,
            _ = hard_stop.cancelled() => return None,
        };
        for (row, r) in rows.into_iter().zip(results) {
            outcomes.push(match r {
                Ok(Ok(d)) => Outcome::Delivered(Delivered {
                    seq: row.seq,
                    topic: row.topic,
                    partition: d.partition,
                    offset: d.offset,
                }),
                Ok(Err((e, _))) => Outcome::Failed(row, e),
                Err(_canceled) => Outcome::Failed(row, KafkaError::Canceled),
            });
        }
        Some(outcomes)
    }

    /// Sends a record that can never be delivered to the dead-letter topic and marks it dead.
    /// Returns false when the dead-letter topic could not take it either (row stays pending).
    async fn dead_letter(
        &self,
        producer: &FutureProducer<KafkaContext>,
        row: &OutboxRow,
        cause: &KafkaError,
    ) -> anyhow::Result<bool> {
        let reason = cause.to_string();
        tracing::error!(item = %row.item_id, topic = %row.topic, reason = %reason, "undeliverable record; sending to the dead-letter topic");
        let headers = headers_of(row, &[(DLQ_REASON, &reason), (DLQ_TOPIC, &row.topic)]);
        let dlq = &self.config.dead_letter_topic;
        let with_payload = FutureRecord::to(dlq)
            .key(&row.key)
            .payload(&row.payload)
            .headers(headers.clone());
        let mut result = producer.send(with_payload, Duration::from_secs(5)).await;
        if let Err((e, _)) = &result
            && classify(e) == Failure::Permanent
        {
            // Too large for the dead-letter topic too: send the headers alone; the payload
            // stays in the store's outbox row for replay.
            let bare: FutureRecord<'_, String, Vec<u8>> =
                FutureRecord::to(dlq).key(&row.key).headers(headers);
            result = producer.send(bare, Duration::from_secs(5)).await;
        }
        match result {
            Ok(_) => {
                self.metrics
                    .dead_lettered
                    .get_or_create(&TopicLabel {
                        topic: row.topic.clone(),
                    })
                    .inc();
                let seq = row.seq;
                blocking(&self.store, move |s| s.mark_dead(seq, &reason)).await?;
                Ok(true)
            }
            Err((e, _)) => {
                tracing::error!(item = %row.item_id, error = %e, "dead-letter topic refused the record; will retry");
                Ok(false)
            }
        }
    }

    /// Finds in-flight rows that already reached Kafka and marks them delivered.
    async fn recover(&self) -> anyhow::Result<()> {
        let rows = blocking(&self.store, |s| s.in_flight_outbox()).await?;
        if rows.is_empty() {
            return Ok(());
        }
        // A produce request the previous producer (or process) had already written to a
        // broker socket may still be applied after we look: give it a moment to land first,
        // so the scan sees it instead of us sending the record a second time.
        tokio::time::sleep(RECOVERY_SETTLE).await;
        let mut by_topic: HashMap<String, HashMap<String, i64>> = HashMap::new();
        for r in &rows {
            by_topic
                .entry(r.topic.clone())
                .or_default()
                .insert(r.ce_id.clone(), r.seq);
        }
        let mut found = Vec::new();
        for (topic, wanted) in by_topic {
            let positions: HashMap<i32, i64> = {
                let t = topic.clone();
                blocking(&self.store, move |s| s.topic_positions(&t))
                    .await?
                    .into_iter()
                    .collect()
            };
            let cfg = self.config.clone();
            let t = topic.clone();
            let hits =
                tokio::task::spawn_blocking(move || scan_topic(&cfg, &t, &positions, &wanted))
                    .await
                    .map_err(|e| anyhow::anyhow!("recovery scan panicked: {e}"))??;
            found.extend(hits);
        }
        let (n, total) = (found.len(), rows.len());
        self.metrics.recovered_in_flight.inc_by(n as u64);
        blocking(&self.store, move |s| s.mark_delivered(&found)).await?;
        tracing::info!(
            in_flight = total,
            already_on_kafka = n,
            "recovered in-flight outbox records"
        );
        Ok(())
    }
}

/// How long recovery waits, when there are in-flight rows, before reading the topics back.
const RECOVERY_SETTLE: Duration = Duration::from_millis(1500);

/// Reads `topic` from one batch before the recorded positions to the current end and returns
/// the rows whose `ce_id` is there.
fn scan_topic(
    cfg: &KafkaConfig,
    topic: &str,
    positions: &HashMap<i32, i64>,
    wanted: &HashMap<String, i64>,
) -> anyhow::Result<Vec<Delivered>> {
    let consumer: BaseConsumer = client_config(cfg)
        .set("group.id", "petitiond-recovery")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), cfg.request_timeout)?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, cfg.request_timeout)?;
        // From a batch before the highest offset recorded: cheap, and it covers an in-flight
        // record that sits below a delivered one (the highest is a max over all deliveries).
        let margin = cfg.relay_batch as i64;
        let start = positions
            .get(&p)
            .map_or(low, |at| at.saturating_sub(margin))
            .max(low);
        if start < high {
            tpl.add_partition_offset(topic, p, Offset::Offset(start))?;
            ends.insert(p, high);
        }
    }
    let mut hits = Vec::new();
    if ends.is_empty() {
        return Ok(hits);
    }
    consumer.assign(&tpl)?;
    let deadline = std::time::Instant::now() + cfg.request_timeout * 4;
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "recovery scan of `{topic}` did not reach the end of {} partition(s) in time",
                ends.len()
            );
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        let (p, off) = (m.partition(), m.offset());
        if let Some(h) = m.headers()
            && let Some(id) = h.iter().find(|h| h.key == "ce_id").and_then(|h| h.value)
            && let Some(seq) = std::str::from_utf8(id).ok().and_then(|id| wanted.get(id))
        {
            hits.push(Delivered {
                seq: *seq,
                topic: topic.to_string(),
                partition: p,
                offset: off,
            });
        }
        if ends.get(&p).is_some_and(|end| off + 1 >= *end) {
            ends.remove(&p);
        }
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_of_delivery_errors() {
        use RDKafkaErrorCode as C;
        let cases = [
            (C::MessageSizeTooLarge, Failure::Permanent),
            (C::TopicAuthorizationFailed, Failure::Permanent),
            (C::MessageTimedOut, Failure::Retriable),
            (C::BrokerTransportFailure, Failure::Retriable),
            (C::NotLeaderForPartition, Failure::Retriable),
            (C::UnknownTopicOrPartition, Failure::Retriable),
            (C::Fatal, Failure::Fatal),
        ];
        for (code, want) in cases {
            assert_eq!(
                classify(&KafkaError::MessageProduction(code)),
                want,
                "{code:?}"
            );
        }
    }
}
