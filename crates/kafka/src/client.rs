//! Every Kafka client is configured here, in one place, from `KafkaConfig`.
//!
//! The producer's guarantees (acks=all, idempotence, no silent drop on timeout) are set here
//! and cannot be overridden from config. The client context turns librdkafka's error and log
//! callbacks into tracing events, metrics and the broker-health flag.

use crate::KafkaConfig;
use petitiond_metrics::Metrics;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared view of whether the brokers are reachable, for logs and `/readyz`.
#[derive(Debug, Default)]
pub struct BrokerHealth {
    down: AtomicBool,
}

impl BrokerHealth {
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Marks the brokers down; logs once per outage.
    pub fn set_down(&self, reason: &str) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::error!(
                reason,
                "kafka brokers unreachable; items stay in the outbox until they return"
            );
        }
    }

    /// Marks the brokers up after a successful request; logs the recovery once.
    pub fn set_up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("kafka brokers reachable again; outbox relay resumed");
        }
    }
}

#[derive(Clone)]
pub struct KafkaContext {
    pub metrics: Metrics,
    pub health: Arc<BrokerHealth>,
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{log_message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{log_message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics.kafka_client_errors.inc();
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => self.health.set_down(reason),
            Some(RDKafkaErrorCode::BrokerTransportFailure) => {
                tracing::warn!(error = %error, reason, "kafka broker connection failed")
            }
            _ => tracing::error!(error = %error, reason, "kafka client error"),
        }
    }
}

/// The status consumer uses the same context; rebalances need nothing special (offsets are
/// committed per record after it is applied).
impl rdkafka::consumer::ConsumerContext for KafkaContext {}

/// Base client config: brokers, client id, operator properties and secrets.
pub fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("client.id", &k.client_id)
        .set(
            "socket.timeout.ms",
            k.request_timeout.as_millis().to_string(),
        )
        .set("log.connection.close", "false");
    for (key, v) in &k.properties {
        c.set(key, v);
    }
    for (key, s) in &k.secret_properties {
        c.set(key, s.expose());
    }
    c
}

/// Producer config with the delivery guarantees petitiond relies on.
pub fn producer_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = client_config(k);
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("max.in.flight.requests.per.connection", "5")
        // 0 = infinite: librdkafka keeps retrying; nothing is dropped on a timer.
        .set(
            "message.timeout.ms",
            k.delivery_timeout.map_or(0, |d| d.as_millis()).to_string(),
        )
        .set("linger.ms", "5");
    c
}

/// Where a consumer starts when it has no committed offset, or its offset is gone (retention).
/// Always set explicitly: librdkafka's default (`latest`) would skip everything not yet read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

impl OffsetReset {
    fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// Config of every consumer petitiond runs: the base config, the group, no automatic offset
/// commit or store (offsets are committed after the work is durable), and `auto.offset.reset`.
pub fn consumer_config(k: &KafkaConfig, group: &str, reset: OffsetReset) -> ClientConfig {
    let mut c = client_config(k);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", reset.as_str());
    c
}

/// The status consumer: a department's events are never skipped, so a new group (or one whose
/// offsets expired) starts at the beginning of what the topic still holds.
pub fn status_consumer_config(k: &KafkaConfig, group: &str) -> ClientConfig {
    consumer_config(k, group, OffsetReset::Earliest)
}

/// The relay's recovery scan assigns explicit offsets; if one is gone (retention), it reads
/// from the earliest record still there, never from the end.
pub fn recovery_consumer_config(k: &KafkaConfig) -> ClientConfig {
    consumer_config(k, "petitiond-recovery", OffsetReset::Earliest)
}

pub fn create_producer(
    k: &KafkaConfig,
    ctx: KafkaContext,
) -> Result<FutureProducer<KafkaContext>, KafkaError> {
    producer_config(k).create_with_context(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `[kafka]` as the config validates it from `brokers` and `[kafka.properties]` alone
    /// (every other key at its default).
    fn config(brokers: &str, properties: &[(&str, &str)]) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            client_id: "petitiond".into(),
            create_topics: false,
            partitions: 1,
            replication_factor: 1,
            delivery_timeout: None,
            request_timeout: Duration::from_secs(30),
            relay_batch: 100,
            retry_backoff: Duration::from_millis(500),
            recovery_scan_max_records: 10_000,
            recovery_time_margin: Duration::from_secs(300),
            dead_letter_topic: "petition.dlq".into(),
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            secret_properties: Default::default(),
        }
    }

    #[test]
    fn producer_guarantees_are_set_last_and_not_overridable() {
        let c = config("b1:9092,b2:9092", &[("security.protocol", "ssl")]);
        let p = producer_config(&c);
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("message.timeout.ms"), Some("0"));
        assert_eq!(p.get("bootstrap.servers"), Some("b1:9092,b2:9092"));
        assert_eq!(p.get("security.protocol"), Some("ssl"));
    }

    /// The recovery scan's consumer had no `auto.offset.reset`: librdkafka's default (`latest`)
    /// jumps to the end when an assigned offset has been deleted by retention, so the scan
    /// missed records and re-sent them. Every consumer now sets it, and no auto-commit.
    #[test]
    fn every_consumer_sets_auto_offset_reset_explicitly() {
        let c = config("b:9092", &[("fetch.wait.max.ms", "100")]);
        for (what, cfg) in [
            ("status", status_consumer_config(&c, "g")),
            ("recovery", recovery_consumer_config(&c)),
        ] {
            assert_eq!(cfg.get("auto.offset.reset"), Some("earliest"), "{what}");
            assert_eq!(cfg.get("enable.auto.commit"), Some("false"), "{what}");
            assert_eq!(cfg.get("fetch.wait.max.ms"), Some("100"), "{what}");
        }
        assert_eq!(
            consumer_config(&c, "g", OffsetReset::Latest).get("auto.offset.reset"),
            Some("latest")
        );
    }
}
