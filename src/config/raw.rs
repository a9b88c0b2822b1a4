//! Stage one of configuration: the TOML file's shape, as serde sees it.
//!
//! Every struct denies unknown fields so a misspelled key is an error, never silently ignored.
//! Defaults live next to the key they belong to: here for `[daemon]`, `[store]`, `[blobs]`,
//! `[kafka]` and `[[departments]]`, with their component for the sections components own
//! (`RawChannels`, `RawRouting`, `RawSla`, `RawAlerts`, `RawAdmin`, `RawReplies`, `RawReports`,
//! `RawCluster`). Nothing here checks meaning; that is `config::validate` and the components'
//! checks.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub blobs: RawBlobs,
    pub kafka: RawKafka,
    #[serde(default)]
    pub departments: Vec<RawDepartment>,
    pub routing: RawRouting,
    #[serde(default)]
    pub channels: RawChannels,
    #[serde(default)]
    pub sla: RawSla,
    #[serde(default)]
    pub alerts: RawAlerts,
    #[serde(default)]
    pub replies: crate::status::config::RawReplies,
    /// `None`: no report schedule.
    #[serde(default)]
    pub reports: Option<crate::report::config::RawReports>,
    /// Several instances (`cluster`); absent: one instance.
    #[serde(default)]
    pub cluster: crate::cluster::RawCluster,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDaemon {
    pub data_dir: String,
    pub shutdown_deadline_secs: u64,
    pub log_format: String,
    pub log_filter: String,
    /// Start even when group or others can read the data directory (default: refuse).
    pub allow_shared_data_dir: bool,
}

impl Default for RawDaemon {
    fn default() -> Self {
        Self {
            data_dir: "data".into(),
            shutdown_deadline_secs: 30,
            log_format: "auto".into(),
            log_filter: "info".into(),
            allow_shared_data_dir: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// `sqlite` (embedded, the default) or `postgres` (shared by several instances).
    pub backend: String,
    pub path: String,
    pub busy_timeout_ms: u64,
    /// PostgreSQL's connection URL (a secret: it may hold the password).
    pub url: Option<RawSecretRef>,
    pub pool_size: u64,
    pub connect_timeout_secs: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            backend: "sqlite".into(),
            path: "petitiond.db".into(),
            busy_timeout_ms: 5000,
            url: None,
            pool_size: 8,
            connect_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBlobs {
    pub dir: String,
}

impl Default for RawBlobs {
    fn default() -> Self {
        Self {
            dir: "blobs".into(),
        }
    }
}

pub use crate::admin::config::RawAdmin;
pub use crate::alerts::config::RawAlerts;
pub use crate::routing::config::RawRouting;
pub use crate::sla::config::RawSla;
pub use petitiond_channels::config::RawChannels;
pub use petitiond_core::diag::RawSecretRef;

fn default_partitions() -> i32 {
    3
}
fn default_rf() -> i32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_client_id() -> String {
    "petitiond".into()
}
fn default_dlq() -> String {
    "petitiond.dead-letter".into()
}
fn default_request_timeout() -> u64 {
    30
}
fn default_relay_batch() -> usize {
    500
}
fn default_retry_backoff_ms() -> u64 {
    1000
}
fn default_recovery_scan_max_records() -> u64 {
    100_000
}
fn default_recovery_time_margin_secs() -> u64 {
    600
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    pub brokers: String,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(default = "default_true")]
    pub create_topics: bool,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_rf")]
    pub replication_factor: i32,
    #[serde(default)]
    pub delivery_timeout_secs: u64,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    #[serde(default = "default_relay_batch")]
    pub relay_batch: usize,
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    #[serde(default = "default_recovery_scan_max_records")]
    pub recovery_scan_max_records: u64,
    #[serde(default = "default_recovery_time_margin_secs")]
    pub recovery_time_margin_secs: u64,
    #[serde(default = "default_dlq")]
    pub dead_letter_topic: String,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub secret_properties: BTreeMap<String, RawSecretRef>,
    /// SASL credentials over a connection without TLS (`security.protocol` not `SASL_SSL`)
    /// are refused unless this is true.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDepartment {
    pub id: String,
    pub name: String,
    pub topic: String,
    /// Where this department's system reports status events; absent = `<topic>.status`.
    pub status_topic: Option<String>,
    /// Who is mailed when one of this department's clocks warns or breaches.
    #[serde(default)]
    pub alert_emails: Vec<String>,
}
