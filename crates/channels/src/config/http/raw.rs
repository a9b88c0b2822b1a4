//! The HTTP channels' raw serde shape (stage one): `[channels.<name>]` and its `writeback`,
//! `pagination`, `mapping`, `auth` and `attachments` tables, with their defaults.

use petitiond_core::diag::RawSecretRef;
use serde::Deserialize;
use std::collections::BTreeMap;

fn default_true() -> bool {
    true
}
fn d_poll() -> u64 {
    5000
}
fn d_overlap() -> u64 {
    300
}
fn d_lookback() -> u64 {
    72
}
fn d_connect() -> u64 {
    3000
}
fn d_request() -> u64 {
    15000
}
fn d_rps() -> u32 {
    5
}
fn d_backoff_initial() -> u64 {
    500
}
fn d_backoff_max() -> u64 {
    60_000
}
fn d_breaker_failures() -> u32 {
    5
}
fn d_breaker_cooldown() -> u64 {
    30_000
}
fn d_stale() -> u64 {
    900
}
fn d_max_record() -> u64 {
    256 * 1024
}
fn d_max_body() -> u64 {
    64 * 1024 * 1024
}
fn d_max_per_response() -> usize {
    1000
}
fn d_max_window_days() -> u64 {
    90
}
fn d_change_polling() -> String {
    "updated_after".into()
}
fn d_method() -> String {
    "GET".into()
}
fn d_updated_after_format() -> String {
    "rfc3339".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpSource {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `open311` (GeoReport v2) or `paged` (generic JSON with pagination and a mapping).
    pub protocol: String,
    pub base_url: String,
    // Open311
    pub jurisdiction_id: Option<String>,
    pub api_key: Option<RawSecretRef>,
    #[serde(default = "d_change_polling")]
    pub change_polling: String,
    #[serde(default = "d_max_per_response")]
    pub max_per_response: usize,
    #[serde(default = "d_max_window_days")]
    pub max_window_days: u64,
    // Paged
    #[serde(default = "d_method")]
    pub method: String,
    pub path: Option<String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    pub updated_after_param: Option<String>,
    #[serde(default = "d_updated_after_format")]
    pub updated_after_format: String,
    pub items_pointer: Option<String>,
    pub pagination: Option<RawPagination>,
    // Common
    pub mapping: Option<RawMapping>,
    #[serde(default)]
    pub auth: Option<RawAuth>,
    #[serde(default)]
    pub attachments: RawAttachments,
    #[serde(default = "d_poll")]
    pub poll_interval_ms: u64,
    #[serde(default = "d_overlap")]
    pub overlap_secs: u64,
    #[serde(default = "d_lookback")]
    pub initial_lookback_hours: u64,
    #[serde(default = "d_connect")]
    pub connect_timeout_ms: u64,
    #[serde(default = "d_request")]
    pub request_timeout_ms: u64,
    #[serde(default = "d_rps")]
    pub requests_per_second: u32,
    #[serde(default = "d_backoff_initial")]
    pub backoff_initial_ms: u64,
    #[serde(default = "d_backoff_max")]
    pub backoff_max_ms: u64,
    #[serde(default = "d_breaker_failures")]
    pub breaker_failures: u32,
    #[serde(default = "d_breaker_cooldown")]
    pub breaker_cooldown_ms: u64,
    #[serde(default = "d_stale")]
    pub stale_after_secs: u64,
    #[serde(default = "d_max_record")]
    pub max_record_bytes: u64,
    #[serde(default = "d_max_body")]
    pub max_body_bytes: u64,
    /// Origins (`scheme://host[:port]`) besides `base_url`'s that attachment URLs, `Link`
    /// targets and redirects may point to. Credentials never go to them.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Send credentials (auth, Open311 `api_key`) over plain `http`: only when set.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
    /// How far ahead of our clock an upstream time may move the cursor; further is clamped
    /// (and alerted). Less than `overlap_secs`; default: the smaller of 60 and half of it.
    pub max_clock_skew_secs: Option<u64>,
    /// Status write-back to this upstream (a vendor status API; not Open311).
    pub writeback: Option<RawWriteback>,
}

fn d_wb_method() -> String {
    "POST".into()
}
fn d_wb_header() -> String {
    "Idempotency-Key".into()
}
fn d_wb_attempts() -> u32 {
    12
}
fn d_wb_backoff_initial() -> u64 {
    1000
}
fn d_wb_backoff_max() -> u64 {
    600_000
}
fn d_wb_timeout() -> u64 {
    10_000
}
fn d_wb_poll() -> u64 {
    1000
}
fn d_wb_rps() -> u32 {
    5
}
fn d_wb_completed_on() -> Vec<String> {
    vec!["replied".into()]
}
fn d_wb_time_format() -> String {
    "rfc3339".into()
}

/// `[channels.<name>.writeback]`: item states written back to the upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWriteback {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "d_wb_method")]
    pub method: String,
    /// Appended to `base_url`; `{id}` is the item's upstream id (percent-encoded).
    pub path: Option<String>,
    #[serde(default = "d_wb_header")]
    pub idempotency_header: String,
    /// The clocks whose due instant is written back (default: the clocks that start on
    /// arrival for this channel only — its first-touch clock).
    pub due_clocks: Option<Vec<String>>,
    /// Status events that complete an item upstream.
    #[serde(default = "d_wb_completed_on")]
    pub completed_on: Vec<String>,
    /// `rfc3339` or a strftime pattern, in the office's time zone.
    #[serde(default = "d_wb_time_format")]
    pub time_format: String,
    /// The string to sign for write-back requests (default: `auth.canonical`); may use
    /// `{body_sha256}`.
    pub canonical: Option<String>,
    #[serde(default = "d_wb_attempts")]
    pub max_attempts: u32,
    #[serde(default = "d_wb_backoff_initial")]
    pub backoff_initial_ms: u64,
    #[serde(default = "d_wb_backoff_max")]
    pub backoff_max_ms: u64,
    #[serde(default = "d_wb_timeout")]
    pub request_timeout_ms: u64,
    #[serde(default = "d_wb_poll")]
    pub poll_interval_ms: u64,
    #[serde(default = "d_wb_rps")]
    pub requests_per_second: u32,
    #[serde(default)]
    pub states: RawWritebackStates,
    #[serde(default)]
    pub fields: RawWritebackFields,
}

fn d_state_ack() -> String {
    "acknowledged".into()
}
fn d_state_due() -> String {
    "due".into()
}
fn d_state_completed() -> String {
    "completed".into()
}

/// The upstream's word for each state; `""` leaves that state out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWritebackStates {
    #[serde(default = "d_state_ack")]
    pub acknowledged: String,
    #[serde(default = "d_state_due")]
    pub due: String,
    #[serde(default = "d_state_completed")]
    pub completed: String,
}

impl Default for RawWritebackStates {
    fn default() -> Self {
        Self {
            acknowledged: d_state_ack(),
            due: d_state_due(),
            completed: d_state_completed(),
        }
    }
}

fn d_f_state() -> String {
    "state".into()
}
fn d_f_department() -> String {
    "department".into()
}
fn d_f_due_at() -> String {
    "due_at".into()
}
fn d_f_time() -> String {
    "time".into()
}

/// The body's field names; `""` leaves a field out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWritebackFields {
    #[serde(default = "d_f_state")]
    pub state: String,
    /// The lead department's id (acknowledged).
    #[serde(default = "d_f_department")]
    pub department: String,
    /// The lead department's name (acknowledged).
    #[serde(default)]
    pub department_name: String,
    /// The due instant (due).
    #[serde(default = "d_f_due_at")]
    pub due_at: String,
    /// The clock id (due).
    #[serde(default)]
    pub clock: String,
    /// Whether the due instant rests on a provisional calendar (due).
    #[serde(default)]
    pub provisional: String,
    /// When the state was reached (all).
    #[serde(default = "d_f_time")]
    pub time: String,
    /// petitiond's item id (all).
    #[serde(default)]
    pub item_id: String,
}

impl Default for RawWritebackFields {
    fn default() -> Self {
        Self {
            state: d_f_state(),
            department: d_f_department(),
            department_name: String::new(),
            due_at: d_f_due_at(),
            clock: String::new(),
            provisional: String::new(),
            time: d_f_time(),
            item_id: String::new(),
        }
    }
}

fn d_page_param() -> String {
    "page".into()
}
fn d_size_param() -> String {
    "page_size".into()
}
fn d_page_size() -> u32 {
    100
}
fn d_first_page() -> u32 {
    1
}
fn d_cursor_param() -> String {
    "cursor".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagination {
    /// `page` (number + size), `cursor` (token from the body), `link` (RFC 8288 rel="next").
    pub kind: String,
    #[serde(default = "d_page_param")]
    pub page_param: String,
    #[serde(default = "d_size_param")]
    pub size_param: String,
    #[serde(default = "d_page_size")]
    pub page_size: u32,
    #[serde(default = "d_first_page")]
    pub first_page: u32,
    #[serde(default = "d_cursor_param")]
    pub cursor_param: String,
    pub next_cursor_pointer: Option<String>,
}

/// A field's source: one JSON pointer, or several whose values are joined.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawPointer {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMapping {
    pub id: Option<RawPointer>,
    pub created: Option<RawPointer>,
    pub updated: Option<RawPointer>,
    pub title: Option<RawPointer>,
    pub content: Option<RawPointer>,
    pub name: Option<RawPointer>,
    pub id_number: Option<RawPointer>,
    pub phone: Option<RawPointer>,
    pub address: Option<RawPointer>,
    pub region: Option<RawPointer>,
    pub service_code: Option<RawPointer>,
    pub status: Option<RawPointer>,
    pub url: Option<RawPointer>,
    pub attachments: Option<String>,
    pub attachment_url: Option<String>,
    pub attachment_name: Option<String>,
    /// Format of time fields without an offset: `rfc3339` tolerant (default) or a strftime
    /// pattern such as `%Y-%m-%d %H:%M:%S`; either way, no offset means the office's time zone.
    pub time_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `none`, `bearer`, `basic` or `hmac`.
    pub kind: String,
    pub token: Option<RawSecretRef>,
    pub username: Option<String>,
    pub password: Option<RawSecretRef>,
    pub app_key: Option<String>,
    pub secret: Option<RawSecretRef>,
    pub canonical: Option<String>,
    pub signature_encoding: Option<String>,
    pub timestamp_unit: Option<String>,
    pub header_app_key: Option<String>,
    pub header_timestamp: Option<String>,
    pub header_nonce: Option<String>,
    pub header_signature: Option<String>,
}

fn d_att_max() -> u64 {
    20 * 1024 * 1024
}
fn d_att_types() -> Vec<String> {
    [
        "image/jpeg",
        "image/png",
        "image/tiff",
        "image/gif",
        "application/pdf",
    ]
    .map(String::from)
    .to_vec()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttachments {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "d_att_max")]
    pub max_bytes: u64,
    #[serde(default = "d_att_types")]
    pub allowed_types: Vec<String>,
    #[serde(default = "d_att_per_item")]
    pub max_per_item: usize,
    /// Polls in which an item's attachment may fail transiently (network, timeout, 5xx)
    /// before the item is quarantined as `attachment_failed`.
    #[serde(default = "d_att_failed_polls")]
    pub max_failed_polls: u32,
}

fn d_att_per_item() -> usize {
    10
}

fn d_att_failed_polls() -> u32 {
    5
}

impl Default for RawAttachments {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: d_att_max(),
            allowed_types: d_att_types(),
            max_per_item: d_att_per_item(),
            max_failed_polls: d_att_failed_polls(),
        }
    }
}
