//! The outbox relay: moves recorded items from the store's outbox to Kafka.
//!
//! Order of durability (ARCHITECTURE.md): an item and its outbox rows are committed together by
//! intake; the relay counts an attempt (committed) before producing a row, and marks the row
//! delivered only from its delivery report. On start, and after a fatal producer error, rows
//! that were attempted but never marked are looked for on their topic (by `ce_id`) before
//! anything is re-sent, so a crash between the broker's ack and the store's mark does not put
//! an envelope on Kafka twice.
//!
//! The recovery scan degrades; it never loses, re-sends blind or stops the relay. It is
//! bounded: per partition it reads from the first record written `recovery_time_margin`
//! before the oldest in-flight row was created (`offsets_for_times`), or from one relay batch
//! before the highest offset recorded, whichever is earlier, and never more than
//! `recovery_scan_max_records`. When it cannot run — a metadata error, a broker error, a read
//! that stalls — the topic is **held**: none of its rows is sent, other topics flow, an alert
//! goes to the alerts topic, and the scan is retried with back-off until it succeeds.
//!
//! Failures: retriable ones leave the row pending and are retried after a back-off; permanent
//! ones (too large, not authorised) send the record to the dead-letter topic with the reason in
//! a header; a fatal producer error drops the producer and builds a new one.

use super::client::{BrokerHealth, KafkaContext, create_producer};
use super::topics::ensure_topics;
use super::wire::{DLQ_REASON, DLQ_TOPIC, TYPE_RECOVERY_FAILED, ops_event};
use crate::KafkaConfig;
use futures::future::join_all;
use petitiond_metrics::{Metrics, TopicLabel};
use petitiond_store::{Delivered, OutboxRow, Store, blocking};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

mod scan;
pub use scan::{Scan, scan_start, scan_topic};

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

#[derive(Clone)]
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
    /// Where an unresolved recovery is reported (`sla.alerts_topic`).
    pub alerts_topic: String,
    /// Several instances: the relay unit's lease. Checked before every batch is claimed; once
    /// a newer owner took the unit, the relay stops with [`StoreError::Fenced`] and sends
    /// nothing more. `None`: the only instance.
    pub lease: Option<petitiond_store::Lease>,
}

/// Topics whose in-flight rows could not be checked against Kafka yet: nothing is sent to them
/// (a blind re-send could duplicate) until a scan succeeds; retried with back-off.
#[derive(Debug)]
struct Held {
    topics: BTreeSet<String>,
    retry_at: Instant,
    backoff: Duration,
}

const HELD_BACKOFF_MIN: Duration = Duration::from_secs(1);
const HELD_BACKOFF_MAX: Duration = Duration::from_secs(60);

impl Default for Held {
    fn default() -> Self {
        Held {
            topics: BTreeSet::new(),
            retry_at: Instant::now(),
            backoff: HELD_BACKOFF_MIN,
        }
    }
}

impl Held {
    fn list(&self) -> Vec<String> {
        self.topics.iter().cloned().collect()
    }

    fn due(&self) -> bool {
        !self.topics.is_empty() && Instant::now() >= self.retry_at
    }

    /// After a round of scans: nothing held resets the back-off; otherwise the next retry is
    /// one back-off away and the back-off doubles, up to [`HELD_BACKOFF_MAX`].
    fn reschedule(&mut self) {
        if self.topics.is_empty() {
            self.backoff = HELD_BACKOFF_MIN;
        } else {
            self.retry_at = Instant::now() + self.backoff;
            self.backoff = (self.backoff * 2).min(HELD_BACKOFF_MAX);
        }
    }
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
    /// Fails with [`StoreError::Fenced`] when a newer owner took the relay unit (several
    /// instances). Between this check and the batch's production a frozen relay could still
    /// send one batch: a broker without transactions cannot fence a producer, so its records
    /// would come twice, never be lost (ARCHITECTURE.md, "Several instances").
    async fn check_lease(&self) -> anyhow::Result<()> {
        let Some(lease) = self.lease.clone() else {
            return Ok(());
        };
        let l = lease.clone();
        if blocking(&self.store, move |s| s.lease_holds(&l)).await? {
            return Ok(());
        }
        Err(petitiond_store::StoreError::Fenced {
            unit: lease.unit,
            epoch: lease.epoch,
        }
        .into())
    }

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
        // Ready once topics are verified and a producer exists: a topic held by recovery does
        // not stop the others.
        self.ready.store(true, Ordering::Relaxed);
        let mut held = Held::default();
        self.recover(&mut held, None).await?;
        while !hard_stop.is_cancelled() {
            if held.due() {
                let retry = held.topics.clone();
                self.recover(&mut held, Some(&retry)).await?;
            }
            self.check_lease().await?;
            let rows = self.next_batch(&held).await?;
            if rows.is_empty() {
                if input_done.is_cancelled() && held.topics.is_empty() {
                    tracing::info!("outbox drained");
                    break;
                }
                if !self.idle(&held, &input_done, &hard_stop).await {
                    break;
                }
                continue;
            }
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            blocking(&self.store, move |s| s.mark_attempted(&seqs)).await?;
            let Some(outcomes) = self.produce(&producer, rows, &hard_stop).await else {
                break;
            };
            let (retry, fatal) = self.settle(&producer, outcomes).await?;
            if fatal || producer.client().fatal_error().is_some() {
                let why = producer
                    .client()
                    .fatal_error()
                    .map(|(c, s)| format!("{c}: {s}"));
                tracing::error!(reason = ?why, "fatal producer error; recreating the producer");
                self.metrics.producer_recreated.inc();
                drop(producer);
                producer = create_producer(&self.config, self.context())?;
                self.recover(&mut held, None).await?;
            } else if retry {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.retry_backoff) => {}
                    _ = hard_stop.cancelled() => break,
                }
                // A failed delivery (a timeout, say) may still have reached the broker: look
                // before re-sending, as after a crash.
                self.recover(&mut held, None).await?;
            }
        }
        self.report_left(&held).await
    }

    /// The next pending rows of the topics not held, at most one relay batch; the pending
    /// gauge updated.
    async fn next_batch(&self, held: &Held) -> anyhow::Result<Vec<OutboxRow>> {
        let batch = self.config.relay_batch;
        let except = held.list();
        let rows = blocking(&self.store, move |s| {
            s.pending_outbox_except(batch, &except)
        })
        .await?;
        self.metrics
            .outbox_pending
            .set(blocking(&self.store, |s| s.pending_count()).await? as i64);
        Ok(rows)
    }

    /// Waits, with nothing to send, for intake's poke, a second (less when a held topic's
    /// retry comes sooner) or the end of input; false when `hard_stop` fires.
    async fn idle(
        &self,
        held: &Held,
        input_done: &CancellationToken,
        hard_stop: &CancellationToken,
    ) -> bool {
        let wait = if held.topics.is_empty() {
            Duration::from_secs(1)
        } else {
            held.retry_at
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1))
        };
        tokio::select! {
            _ = self.wake.notified() => true,
            _ = tokio::time::sleep(wait) => true,
            _ = input_done.cancelled(), if !input_done.is_cancelled() => true,
            _ = hard_stop.cancelled() => false,
        }
    }

    /// Records a batch's outcomes: delivered rows marked and counted, a retriable failure
    /// marked failed, a permanent one dead-lettered. Returns (retry, fatal): whether to back
    /// off and look again before re-sending, whether the producer must be rebuilt.
    async fn settle(
        &self,
        producer: &FutureProducer<KafkaContext>,
        outcomes: Vec<Outcome>,
    ) -> anyhow::Result<(bool, bool)> {
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
                        if !self.dead_letter(producer, &row, &e).await? {
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
        Ok((retry, fatal))
    }

    /// On stopping: the pending gauge set, and a warning when rows are left for the next start.
    async fn report_left(&self, held: &Held) -> anyhow::Result<()> {
        let left = blocking(&self.store, |s| s.pending_count()).await?;
        self.metrics.outbox_pending.set(left as i64);
        if left > 0 {
            tracing::warn!(
                pending = left,
                held_topics = ?held.topics,
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

    /// Finds in-flight rows that already reached Kafka and marks them delivered; the rest are
    /// sent again by the loop. `only`: retry these held topics (else every topic with
    /// in-flight rows). A topic whose scan fails is held (see [`Held`]); only a store error
    /// is returned.
    async fn recover(
        &self,
        held: &mut Held,
        only: Option<&BTreeSet<String>>,
    ) -> anyhow::Result<()> {
        let rows = blocking(&self.store, |s| s.in_flight_outbox()).await?;
        let mut by_topic: HashMap<String, HashMap<String, i64>> = HashMap::new();
        for r in rows
            .iter()
            .filter(|r| only.is_none_or(|o| o.contains(&r.topic)))
        {
            by_topic
                .entry(r.topic.clone())
                .or_default()
                .insert(r.ce_id.clone(), r.seq);
        }
        // A held topic whose in-flight rows are gone (replayed elsewhere, say) is free again.
        held.topics
            .retain(|t| by_topic.contains_key(t) || only.is_some_and(|o| !o.contains(t)));
        if by_topic.is_empty() {
            self.metrics
                .outbox_held_topics
                .set(held.topics.len() as i64);
            return Ok(());
        }
        if only.is_none() {
            // A produce request the previous producer (or process) had already written to a
            // broker socket may still be applied after we look: give it a moment to land
            // first, so the scan sees it instead of us sending the record a second time.
            tokio::time::sleep(RECOVERY_SETTLE).await;
        }
        let total: usize = by_topic.values().map(HashMap::len).sum();
        let mut found = Vec::new();
        for (topic, wanted) in by_topic {
            match self.scan_one(&topic, wanted).await? {
                Ok(scan) => {
                    self.metrics.recovery_scanned.inc_by(scan.scanned);
                    if scan.capped {
                        self.metrics
                            .recovery_capped
                            .get_or_create(&TopicLabel {
                                topic: topic.clone(),
                            })
                            .inc();
                        tracing::warn!(topic = %topic, max_records = self.config.recovery_scan_max_records, "recovery scan capped: in-flight records older than the newest max_records are not looked for, and are re-sent if not found (consumers de-duplicate by ce_id)");
                    }
                    if held.topics.remove(&topic) {
                        tracing::info!(topic = %topic, "recovery scan succeeded; the topic is no longer held");
                    }
                    found.extend(scan.hits);
                }
                Err(e) => {
                    self.metrics
                        .recovery_failures
                        .get_or_create(&TopicLabel {
                            topic: topic.clone(),
                        })
                        .inc();
                    tracing::error!(topic = %topic, error = format!("{e:#}"), retry_in_secs = held.backoff.as_secs(), "recovery scan failed: nothing is sent to this topic until its in-flight records are checked");
                    if held.topics.insert(topic.clone()) {
                        self.alert_held(&topic, &e).await?;
                    }
                }
            }
        }
        held.reschedule();
        self.metrics
            .outbox_held_topics
            .set(held.topics.len() as i64);
        let n = found.len();
        self.metrics.recovered_in_flight.inc_by(n as u64);
        blocking(&self.store, move |s| s.mark_delivered(&found)).await?;
        tracing::info!(
            in_flight = total,
            already_on_kafka = n,
            held_topics = ?held.topics,
            "recovered in-flight outbox records"
        );
        Ok(())
    }

    /// Scans `topic` for the `wanted` rows (`ce_id` → seq) from the positions the store
    /// recorded. The outer error is the store's; the inner one the scan's (the topic is held).
    async fn scan_one(
        &self,
        topic: &str,
        wanted: HashMap<String, i64>,
    ) -> anyhow::Result<anyhow::Result<Scan>> {
        let t = topic.to_string();
        let (positions, since) = blocking(&self.store, move |s| {
            Ok((
                s.topic_positions(&t)?
                    .into_iter()
                    .collect::<HashMap<_, _>>(),
                s.in_flight_since(&t)?,
            ))
        })
        .await?;
        let cfg = self.config.clone();
        let t = topic.to_string();
        Ok(
            tokio::task::spawn_blocking(move || scan_topic(&cfg, &t, &positions, since, &wanted))
                .await
                .map_err(|e| anyhow::anyhow!("recovery scan panicked: {e}"))
                .and_then(|r| r),
        )
    }

    /// Puts a `relay.recovery_failed` event on the alerts topic (once per holding).
    async fn alert_held(&self, topic: &str, e: &anyhow::Error) -> anyhow::Result<()> {
        let mut extra = serde_json::Map::new();
        extra.insert("topic".into(), serde_json::json!(topic));
        let record = ops_event(
            &self.alerts_topic,
            TYPE_RECOVERY_FAILED,
            "urn:petitiond:relay",
            topic,
            "relay_recovery_failed",
            &format!("{e:#}"),
            extra,
        );
        blocking(&self.store, move |s| s.enqueue("relay", &record)).await?;
        Ok(())
    }
}

/// How long recovery waits, when there are in-flight rows, before reading the topics back.
const RECOVERY_SETTLE: Duration = Duration::from_millis(1500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_topic_is_retried_after_a_doubling_back_off_that_resets_once_nothing_is_held() {
        let mut held = Held::default();
        held.topics.insert("t".into());
        let mut waits = Vec::new();
        for _ in 0..8 {
            let before = Instant::now();
            let backoff = held.backoff;
            held.reschedule();
            assert!(held.retry_at >= before + backoff && !held.due());
            waits.push(backoff.as_secs());
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        held.topics.clear();
        held.reschedule();
        assert_eq!(held.backoff, HELD_BACKOFF_MIN);
    }

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
