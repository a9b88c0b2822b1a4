//! Kafka: client configuration, topic checks, the CloudEvents wire form, and the outbox
//! relay that is the only producer of routed records. Owns `[kafka]`'s validated type
//! ([`KafkaConfig`]); imports only the core, the store and the metrics.

pub mod client;
pub mod lease;
pub mod relay;
pub mod topics;
pub mod wire;

use petitiond_core::diag::Secret;
use std::collections::BTreeMap;
use std::time::Duration;

/// `[kafka]`, validated (by the daemon's config).
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub client_id: String,
    pub create_topics: bool,
    pub partitions: i32,
    pub replication_factor: i32,
    /// `None`: librdkafka retries until the broker acknowledges (never drops on timeout).
    pub delivery_timeout: Option<Duration>,
    pub request_timeout: Duration,
    pub relay_batch: usize,
    pub retry_backoff: Duration,
    /// The recovery scan reads at most this many records per partition (the newest).
    pub recovery_scan_max_records: u64,
    /// The recovery scan starts at records written this long before the oldest in-flight row
    /// was created (clock skew between this host and the brokers).
    pub recovery_time_margin: Duration,
    pub dead_letter_topic: String,
    /// Extra librdkafka properties, secrets already resolved.
    pub properties: BTreeMap<String, String>,
    pub secret_properties: BTreeMap<String, Secret>,
}
