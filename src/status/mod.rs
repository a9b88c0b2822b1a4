//! The status consumer: department systems report what they did (viewed, signed in,
//! accepted, replied, ...) on the status topic; each event stops, starts, pauses, resumes or
//! extends the item's SLA clocks.
//!
//! At-least-once and idempotent: an event is applied in one store transaction keyed by its
//! `event_id` (a redelivered event changes nothing), and its offset is committed only after
//! that. Events that do not apply in a clock's state (a resume while running, anything after
//! a stop) change nothing, so out-of-order delivery is harmless. An event with a bad shape, an
//! unknown event name or an unknown item goes to the dead-letter topic with its reason.
//! Schema for department system builders: `schema/status-event.v1.json`.
//!
//! An event also queues, in its transaction, the status write-backs it causes for an item
//! whose upstream has a status API (`channels::http::writeback`): a due instant set or moved,
//! a completion.

use crate::config::Config;
use crate::kafka::client::{BrokerHealth, KafkaContext, client_config, create_producer};
use crate::kafka::wire::{DLQ_REASON, DLQ_TOPIC};
use crate::metrics::{Metrics, StatusLabels};
use crate::sla::clock::{Change, Clock};
use crate::sla::policy::{EventKind, Trigger};
use crate::store::{ClockWrites, StatusOutcome, StatusRecord, Store, Timer, blocking};
use jiff::Timestamp;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A department status event, as department systems send it (JSON value of the record).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusEvent {
    /// Unique per event: the idempotence key.
    pub event_id: String,
    pub item_id: String,
    pub event: String,
    pub time: Timestamp,
    #[serde(default)]
    pub actor: Option<Actor>,
    #[serde(default)]
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub department: String,
    #[serde(default)]
    pub person: Option<String>,
}

/// Why an event was dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("bad shape: {0}")]
    Shape(String),
    #[error("unknown status event `{0}`")]
    UnknownEvent(String),
    #[error("unknown item `{0}`")]
    UnknownItem(String),
}

impl Rejected {
    fn label(&self) -> &'static str {
        match self {
            Rejected::Shape(_) => "bad_shape",
            Rejected::UnknownEvent(_) => "unknown_event",
            Rejected::UnknownItem(_) => "unknown_item",
        }
    }
}

/// Parses a record value into an event and its kind.
pub fn parse(payload: &[u8]) -> Result<(StatusEvent, EventKind), Rejected> {
    let ev: StatusEvent =
        serde_json::from_slice(payload).map_err(|e| Rejected::Shape(e.to_string()))?;
    if ev.event_id.trim().is_empty() || ev.item_id.trim().is_empty() {
        return Err(Rejected::Shape(
            "event_id and item_id must not be empty".into(),
        ));
    }
    let kind =
        EventKind::parse(&ev.event).ok_or_else(|| Rejected::UnknownEvent(ev.event.clone()))?;
    Ok((ev, kind))
}

/// The clock changes one event causes (pure; called inside the store's transaction).
pub fn clock_writes(
    config: &Config,
    metrics: &Metrics,
    envelope: &crate::envelope::Envelope,
    clocks: &mut [Clock],
    kind: EventKind,
    at: Timestamp,
    extend_days: Option<u32>,
) -> ClockWrites {
    let cal = &config.sla.calendar;
    let mut writes = ClockWrites::default();
    let dues_before: Vec<Timestamp> = clocks.iter().map(|c| c.due_at).collect();
    for (i, clock) in clocks.iter_mut().enumerate() {
        let Some(policy) = config.sla.clock(&clock.clock_id) else {
            continue;
        };
        let result = clock
            .apply(policy, kind, at, extend_days, cal)
            .and_then(|change| Ok((change, clock.next_alert(policy, cal)?)));
        match result {
            Ok((Change::Unchanged, _)) => {}
            Ok((change, next)) => {
                tracing::info!(item = %clock.item_id, clock = %clock.clock_id, event = %kind, ?change, due_at = %clock.due_at, "clock changed");
                writes.updated.push((i, next.map(|(_, t)| t)));
            }
            Err(e) => {
                metrics
                    .clock_errors
                    .get_or_create(&crate::metrics::ClockLabel {
                        clock: clock.clock_id.clone(),
                    })
                    .inc();
                tracing::error!(item = %clock.item_id, clock = %clock.clock_id, error = %e, "cannot apply status event to clock");
            }
        }
    }
    let mut env = envelope.clone();
    for (clock, next) in
        crate::intake::start_clocks(config, metrics, &mut env, &Trigger::Event(kind), at)
    {
        if !clocks.iter().any(|c| c.clock_id == clock.clock_id) {
            writes.started.push((clock, next));
        }
    }
    // Status write-back (sources with one): a due instant set or moved, a completion.
    let moved: Vec<&Clock> = writes
        .updated
        .iter()
        .map(|(i, _)| *i)
        .filter(|i| clocks[*i].due_at != dues_before[*i])
        .map(|i| &clocks[i])
        .chain(writes.started.iter().map(|(c, _)| c))
        .collect();
    let mut writeback = crate::channels::http::writeback::dues(config, envelope, &moved, at);
    writeback.extend(crate::channels::http::writeback::completed(
        config, envelope, kind, at,
    ));
    writes.writeback = writeback;
    writes
}

pub struct StatusConsumer {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub health: Arc<BrokerHealth>,
    pub timers: mpsc::UnboundedSender<Vec<Timer>>,
    /// Set by the relay once topics are verified: subscribing to a topic that does not exist
    /// yet would leave the consumer waiting for a metadata refresh.
    pub topics_ready: Arc<std::sync::atomic::AtomicBool>,
}

impl StatusConsumer {
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        while !self.topics_ready.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.cancelled() => return Ok(()),
            }
        }
        let ctx = KafkaContext {
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        };
        let consumer: StreamConsumer<KafkaContext> = client_config(&self.config.kafka)
            .set("group.id", &self.config.sla.consumer_group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(ctx.clone())?;
        consumer.subscribe(&[&self.config.sla.status_topic])?;
        let dlq = create_producer(&self.config.kafka, ctx)?;
        tracing::info!(topic = %self.config.sla.status_topic, group = %self.config.sla.consumer_group, "status consumer subscribed");
        loop {
            let m = tokio::select! {
                m = consumer.recv() => m,
                _ = stop.cancelled() => break,
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "status consumer error");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let (label, outcome) = match self.handle(&m).await? {
                Ok(label) => (label, "applied"),
                Err(rejected) => {
                    tracing::warn!(partition = m.partition(), offset = m.offset(), reason = %rejected, "status event rejected; dead-lettering");
                    self.dead_letter(&dlq, &m, &rejected).await?;
                    (rejected.label().to_string(), "dead_lettered")
                }
            };
            self.metrics
                .status_events
                .get_or_create(&StatusLabels {
                    event: label,
                    outcome: outcome.into(),
                })
                .inc();
            consumer.commit_message(&m, CommitMode::Async)?;
        }
        tracing::info!("status consumer stopped");
        Ok(())
    }

    /// Applies one record; `Ok(Ok(event name))` when applied or a duplicate.
    async fn handle(&self, m: &BorrowedMessage<'_>) -> anyhow::Result<Result<String, Rejected>> {
        let (ev, kind) = match parse(m.payload().unwrap_or_default()) {
            Ok(x) => x,
            Err(r) => return Ok(Err(r)),
        };
        let extend_days = ev
            .payload
            .as_ref()
            .and_then(|p| p.get("extend_days"))
            .and_then(|v| v.as_u64())
            .map(|d| d.min(u32::MAX as u64) as u32);
        let record = StatusRecord {
            event_id: ev.event_id.clone(),
            item_id: ev.item_id.clone(),
            event: kind.as_str().into(),
            at: ev.time,
        };
        let (cfg, metrics) = (self.config.clone(), self.metrics.clone());
        let outcome = blocking(&self.store, move |s| {
            s.apply_status(&record, &mut |env, clocks| {
                clock_writes(&cfg, &metrics, env, clocks, kind, record.at, extend_days)
            })
        })
        .await?;
        match outcome {
            StatusOutcome::Applied(timers) => {
                if !timers.is_empty() {
                    let _ = self.timers.send(timers);
                }
                Ok(Ok(kind.as_str().into()))
            }
            StatusOutcome::Duplicate => {
                tracing::debug!(event_id = %ev.event_id, "duplicate status event ignored");
                Ok(Ok(kind.as_str().into()))
            }
            StatusOutcome::UnknownItem => Ok(Err(Rejected::UnknownItem(ev.item_id))),
        }
    }

    async fn dead_letter(
        &self,
        producer: &rdkafka::producer::FutureProducer<KafkaContext>,
        m: &BorrowedMessage<'_>,
        why: &Rejected,
    ) -> anyhow::Result<()> {
        let reason = why.to_string();
        let mut headers = OwnedHeaders::new();
        if let Some(h) = m.headers() {
            for x in h.iter() {
                headers = headers.insert(Header {
                    key: x.key,
                    value: x.value,
                });
            }
        }
        headers = headers
            .insert(Header {
                key: DLQ_REASON,
                value: Some(reason.as_bytes()),
            })
            .insert(Header {
                key: DLQ_TOPIC,
                value: Some(m.topic().as_bytes()),
            });
        let mut rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.config.kafka.dead_letter_topic).headers(headers);
        if let Some(k) = m.key() {
            rec = rec.key(k);
        }
        if let Some(p) = m.payload() {
            rec = rec.payload(p);
        }
        // Wait for the dead-letter topic to take it before the offset is committed.
        producer
            .send(rec, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("dead-lettering a status event failed: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_events_are_rejected_with_a_reason() {
        let cases: [(&str, &str); 5] = [
            ("not json", "bad_shape"),
            (
                r#"{"event_id":"e","item_id":"i","event":"viewed"}"#,
                "bad_shape",
            ),
            (
                r#"{"event_id":"e","item_id":"i","event":"viewed","time":"yesterday"}"#,
                "bad_shape",
            ),
            (
                r#"{"event_id":"e","item_id":"i","event":"teleported","time":"2026-03-02T01:00:00Z"}"#,
                "unknown_event",
            ),
            (
                r#"{"event_id":"","item_id":"i","event":"viewed","time":"2026-03-02T01:00:00Z"}"#,
                "bad_shape",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text.as_bytes()).unwrap_err().label(), want, "{text}");
        }
        let (ev, kind) = parse(
            br#"{"event_id":"e1","item_id":"i","event":"extended","time":"2026-03-02T09:00:00+08:00","actor":{"department":"hrss","person":"A123"},"payload":{"extend_days":30}}"#,
        )
        .unwrap();
        assert_eq!(kind, EventKind::Extended);
        assert_eq!(
            ev.time,
            "2026-03-02T01:00:00Z".parse::<Timestamp>().unwrap()
        );
    }
}
