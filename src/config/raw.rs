//! Stage one of configuration: the TOML file's shape, as serde sees it.
//!
//! Every struct denies unknown fields so a misspelled key is an error, never silently ignored.
//! Defaults live here, next to the key they belong to. Nothing here checks meaning; that is
//! `config::validate`.

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
pub struct RawAdmin {
    pub enabled: bool,
    pub listen: String,
    /// Bearer token required on everything but /healthz and /readyz.
    pub token: Option<RawSecretRef>,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub request_timeout_secs: u64,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:9464".into(),
            token: None,
            max_body_bytes: 16 * 1024,
            max_connections: 32,
            request_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    pub path: String,
    pub busy_timeout_ms: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            path: "petitiond.db".into(),
            busy_timeout_ms: 5000,
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

pub use crate::routing::config::RawRouting;
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

fn default_tz() -> String {
    "Asia/Shanghai".into()
}
fn default_office_hours() -> Vec<String> {
    vec!["08:30-12:00".into(), "14:00-17:30".into()]
}
fn default_status_topic() -> String {
    "petitiond.status".into()
}
fn default_alerts_topic() -> String {
    "petitiond.alerts".into()
}
fn default_consumer_group() -> String {
    "petitiond-status".into()
}
fn default_status_max_future_skew_secs() -> u64 {
    300
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSla {
    #[serde(default = "default_tz")]
    pub time_zone: String,
    /// Calendar data files, one per year; empty = the shipped 2026 calendar.
    #[serde(default)]
    pub calendar_files: Vec<String>,
    #[serde(default = "default_office_hours")]
    pub office_hours: Vec<String>,
    #[serde(default)]
    pub overrides: Vec<petitiond_core::sla::calendar::Override>,
    #[serde(default = "default_status_topic")]
    pub status_topic: String,
    #[serde(default = "default_alerts_topic")]
    pub alerts_topic: String,
    #[serde(default = "default_consumer_group")]
    pub consumer_group: String,
    /// Departments whose events are accepted on the shared `status_topic` (by
    /// `actor.department`); default none.
    #[serde(default)]
    pub shared_status_departments: Vec<String>,
    /// How far in the future an event's `time` may be (clock skew) before it is rejected.
    #[serde(default = "default_status_max_future_skew_secs")]
    pub status_max_future_skew_secs: u64,
    /// Mailed on every alert, in addition to the department's recipients.
    #[serde(default)]
    pub supervisors: Vec<String>,
    /// Clock policies; absent = the plan's defaults.
    pub clocks: Option<Vec<RawClock>>,
}

impl Default for RawSla {
    fn default() -> Self {
        Self {
            time_zone: default_tz(),
            calendar_files: Vec::new(),
            office_hours: default_office_hours(),
            overrides: Vec::new(),
            status_topic: default_status_topic(),
            alerts_topic: default_alerts_topic(),
            consumer_group: default_consumer_group(),
            shared_status_departments: Vec::new(),
            status_max_future_skew_secs: default_status_max_future_skew_secs(),
            supervisors: Vec::new(),
            clocks: None,
        }
    }
}

fn default_start() -> String {
    "received".into()
}
fn default_pause() -> Vec<String> {
    vec!["paused".into()]
}
fn default_resume() -> Vec<String> {
    vec!["resumed".into()]
}
fn default_extend() -> Vec<String> {
    vec!["extended".into()]
}
fn default_warn() -> Vec<u8> {
    vec![50, 80]
}
fn default_remind() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClock {
    pub id: String,
    pub rule: petitiond_core::sla::due::DueRule,
    /// `received` or a status event name.
    #[serde(default = "default_start")]
    pub start_on: String,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    /// Start only when the starting event's verdict is one of these (empty: any).
    #[serde(default)]
    pub verdicts: Vec<String>,
    pub stop_on: Vec<String>,
    #[serde(default = "default_pause")]
    pub pause_on: Vec<String>,
    #[serde(default = "default_resume")]
    pub resume_on: Vec<String>,
    #[serde(default = "default_extend")]
    pub extend_on: Vec<String>,
    #[serde(default)]
    pub max_extension_days: u32,
    #[serde(default = "default_warn")]
    pub warn_at_percent: Vec<u8>,
    #[serde(default = "default_remind")]
    pub remind_every_working_days: u32,
    #[serde(default)]
    pub escalate_after_working_days: Option<u32>,
    #[serde(default)]
    pub citation: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub email: Option<RawEmail>,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_tls() -> String {
    "starttls".into()
}
fn default_smtp_timeout() -> u64 {
    30
}
fn default_digest() -> usize {
    5
}

fn default_poll_ms() -> u64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub smtp_host: String,
    #[serde(default = "default_smtp_port")]
    pub smtp_port: u16,
    /// starttls | tls | none
    #[serde(default = "default_smtp_tls")]
    pub tls: String,
    pub username: Option<String>,
    pub password: Option<RawSecretRef>,
    pub from: String,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
    /// When more alerts than this wait for the same recipients, they go as one digest mail.
    #[serde(default = "default_digest")]
    pub digest_threshold: usize,
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// A password with `tls = "none"` is refused unless this is true.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
}
