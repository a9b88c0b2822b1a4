//! The HTTP channels' settings: `[channels.hotline]` and `[channels.portal]`.
//!
//! Both sections have one shape (an HTTP source): where the upstream is, how to ask it
//! (the Open311 GeoReport v2 dialect, or a generic paged JSON API), how to read its records
//! (a field mapping of JSON pointers), how to authenticate, and how patient to be. The raw
//! serde shape and the validated type live together here so the rest of `config` only calls
//! [`Validator::http_source`].

use super::raw::RawSecretRef;
use super::{Secret, Validator};
use crate::envelope::Channel;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

// ---- raw shape ----------------------------------------------------------------------------

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

// ---- validated ----------------------------------------------------------------------------

/// One HTTP upstream, validated.
#[derive(Debug, Clone)]
pub struct HttpSourceConfig {
    /// Source name: `hotline` or `portal` (the config section), used for cursors and metrics.
    pub name: String,
    pub channel: Channel,
    pub base_url: String,
    pub protocol: Protocol,
    pub mapping: Mapping,
    pub auth: Auth,
    pub attachments: AttachmentLimits,
    pub poll_interval: Duration,
    /// Each poll re-reads this far behind the cursor: records that became visible late
    /// upstream are still seen; records already known are recognised by id and version.
    pub overlap: Duration,
    /// Where a source with no cursor yet starts.
    pub initial_lookback: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub requests_per_second: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub stale_after: Duration,
    pub max_record_bytes: u64,
    pub max_body_bytes: u64,
    /// Every origin requests may go to, as `Url::origin().ascii_serialization()`: the base
    /// URL's first, then `allowed_origins`. Credentials go to the first only.
    pub origins: Vec<String>,
    pub allow_plaintext_auth: bool,
    /// A cursor never moves further than this past our clock.
    pub max_clock_skew: Duration,
    /// Status write-back to this upstream; `None`: not configured (or disabled).
    pub writeback: Option<WritebackConfig>,
}

/// What is written back, and how: `[channels.<name>.writeback]`, validated.
#[derive(Debug, Clone)]
pub struct WritebackConfig {
    pub method: reqwest::Method,
    /// Starts with `/`, holds `{id}` once.
    pub path: String,
    pub idempotency_header: String,
    /// Clock ids whose due instant is written back (resolved against `[[sla.clocks]]`).
    pub due_clocks: Vec<String>,
    pub completed_on: Vec<crate::sla::policy::EventKind>,
    /// `None`: RFC 3339 with the office's offset; else a strftime pattern in its zone.
    pub time_format: Option<String>,
    /// The signature's canonical template for write-back requests (HMAC auth only).
    pub canonical: Option<String>,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub request_timeout: Duration,
    pub poll_interval: Duration,
    pub requests_per_second: u32,
    /// The upstream's word per state; `None`: that state is not written back.
    pub acknowledged: Option<String>,
    pub due: Option<String>,
    pub completed: Option<String>,
    pub fields: WritebackFields,
}

/// Body field names; `None`: not written.
#[derive(Debug, Clone, Default)]
pub struct WritebackFields {
    pub state: Option<String>,
    pub department: Option<String>,
    pub department_name: Option<String>,
    pub due_at: Option<String>,
    pub clock: Option<String>,
    pub provisional: Option<String>,
    pub time: Option<String>,
    pub item_id: Option<String>,
}

impl HttpSourceConfig {
    /// This source as its write-back worker's client sees it: the write-back's timeout and
    /// rate limit, and its canonical string for HMAC signatures. `None` without write-back.
    pub fn for_writeback(&self) -> Option<HttpSourceConfig> {
        let wb = self.writeback.as_ref()?;
        let mut c = self.clone();
        c.request_timeout = wb.request_timeout;
        c.requests_per_second = wb.requests_per_second;
        if let (Auth::Hmac(h), Some(t)) = (&mut c.auth, &wb.canonical) {
            h.canonical = t.clone();
        }
        Some(c)
    }
}

impl HttpSourceConfig {
    /// The base URL's origin: the only one that gets credentials.
    pub fn base_origin(&self) -> &str {
        &self.origins[0]
    }
}

/// `scheme://host[:port]` of an http(s) URL (default ports left out); `None` for others.
pub fn origin_of(url: &reqwest::Url) -> Option<String> {
    matches!(url.scheme(), "http" | "https").then(|| url.origin().ascii_serialization())
}

#[derive(Debug, Clone)]
pub enum Protocol {
    Open311 {
        jurisdiction_id: Option<String>,
        api_key: Option<Secret>,
        /// Poll by `updated_after`/`updated_before` (sees updates) instead of
        /// `start_date`/`end_date` on the request time (sees only new records).
        updated_after: bool,
        max_per_response: usize,
        max_window: Duration,
    },
    Paged {
        method: reqwest::Method,
        path: String,
        query: Vec<(String, String)>,
        updated_after_param: Option<String>,
        /// Format of the `updated_after` value: RFC 3339, or a strftime pattern in local time.
        updated_after_format: Option<String>,
        items_pointer: String,
        pagination: Pagination,
    },
}

#[derive(Debug, Clone)]
pub enum Pagination {
    Page {
        page_param: String,
        size_param: String,
        page_size: u32,
        first_page: u32,
    },
    Cursor {
        cursor_param: String,
        size_param: String,
        page_size: u32,
        next_cursor_pointer: String,
    },
    Link {
        size_param: String,
        page_size: u32,
    },
}

/// JSON pointers (RFC 6901) into one upstream record. A field with several pointers takes
/// the non-empty values joined (e.g. Open311's `last_name` + `first_name`).
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    pub id: Vec<String>,
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub title: Vec<String>,
    pub content: Vec<String>,
    pub name: Vec<String>,
    pub id_number: Vec<String>,
    pub phone: Vec<String>,
    pub address: Vec<String>,
    pub region: Vec<String>,
    pub service_code: Vec<String>,
    pub status: Vec<String>,
    pub url: Vec<String>,
    /// Where the attachments are: a string URL, an array of URLs, or an array of objects
    /// read with `attachment_url` / `attachment_name`.
    pub attachments: Option<String>,
    pub attachment_url: String,
    pub attachment_name: Option<String>,
    pub time_format: Option<String>,
}

impl Mapping {
    /// Open311 GeoReport v2, plus the contact fields 12345 vendors add to it.
    pub fn open311() -> Self {
        let p = |s: &str| vec![s.to_string()];
        Self {
            id: p("/service_request_id"),
            created: p("/requested_datetime"),
            updated: p("/updated_datetime"),
            title: p("/service_name"),
            content: p("/description"),
            name: vec!["/last_name".into(), "/first_name".into()],
            id_number: p("/id_number"),
            phone: p("/phone"),
            address: p("/address"),
            region: p("/district"),
            service_code: p("/service_code"),
            status: p("/status"),
            url: vec![],
            attachments: Some("/media_url".into()),
            attachment_url: String::new(),
            attachment_name: None,
            time_format: None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Bearer(Secret),
    Basic { username: String, password: Secret },
    Hmac(HmacAuth),
}

/// The app-key + secret signature of Chinese government API gateways.
#[derive(Debug, Clone)]
pub struct HmacAuth {
    pub app_key: String,
    pub secret: Secret,
    /// The string to sign, with `{method}`, `{path}`, `{query}` (sorted, percent-encoded),
    /// `{timestamp}`, `{nonce}`, `{app_key}` and `\n` escapes.
    pub canonical: String,
    pub base64: bool,
    pub millis: bool,
    pub header_app_key: String,
    pub header_timestamp: String,
    pub header_nonce: String,
    pub header_signature: String,
}

pub const DEFAULT_CANONICAL: &str = "{method}\\n{path}\\n{query}\\n{timestamp}\\n{nonce}";

#[derive(Debug, Clone)]
pub struct AttachmentLimits {
    pub enabled: bool,
    pub max_bytes: u64,
    pub allowed_types: Vec<String>,
    pub max_per_item: usize,
    pub max_failed_polls: u32,
}

// ---- validation ---------------------------------------------------------------------------

impl Validator<'_> {
    /// Validates `[channels.<name>]`; pushes every error found.
    pub(super) fn http_source(
        &mut self,
        name: &str,
        channel: Channel,
        r: &RawHttpSource,
    ) -> Option<HttpSourceConfig> {
        let at = |k: &str| format!("channels.{name}.{k}");
        let base = reqwest::Url::parse(&r.base_url).ok();
        let base_origin = base.as_ref().and_then(origin_of);
        if base_origin.is_none() {
            self.err(
                &at("base_url"),
                format!(
                    "`{}` is not an http(s) URL",
                    super::url_for_log(&r.base_url)
                ),
            );
        }
        if base
            .as_ref()
            .is_some_and(|u| !u.username().is_empty() || u.password().is_some())
        {
            self.err(
                &at("base_url"),
                "must not carry a user or password (it would be logged): use `auth`",
            );
        }
        let mut origins = vec![base_origin.clone().unwrap_or_default()];
        for (i, o) in r.allowed_origins.iter().enumerate() {
            match reqwest::Url::parse(o).ok().filter(|u| {
                u.path() == "/"
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.username().is_empty()
                    && u.password().is_none()
            }) {
                Some(u) if origin_of(&u).is_some() => {
                    let o = origin_of(&u).unwrap_or_default();
                    if !origins.contains(&o) {
                        origins.push(o);
                    }
                }
                _ => self.err(
                    &format!("{}[{i}]", at("allowed_origins")),
                    format!("`{o}` is not an origin: expected http(s)://host[:port]"),
                ),
            }
        }
        let has_credentials = r.auth.as_ref().is_some_and(|a| a.kind != "none")
            || (r.protocol == "open311" && r.api_key.is_some());
        if base.as_ref().is_some_and(|u| u.scheme() == "http")
            && has_credentials
            && !r.allow_plaintext_auth
        {
            self.err(
                &at("base_url"),
                "plain http would send the credentials unencrypted: use https, or set allow_plaintext_auth = true",
            );
        }
        // A clamped cursor sits `skew` ahead of our clock; the next poll starts `overlap`
        // before it, so the overlap must exceed the skew or records written meanwhile (by
        // an upstream whose clock is right) would be skipped.
        let max_clock_skew_secs = match r.max_clock_skew_secs {
            None => (r.overlap_secs / 2).min(60),
            Some(s) if s > 0 && s >= r.overlap_secs => {
                self.err(
                    &at("max_clock_skew_secs"),
                    format!(
                        "{s} is not less than overlap_secs ({}): a clamped cursor would skip records written meanwhile",
                        r.overlap_secs
                    ),
                );
                r.overlap_secs / 2
            }
            Some(s) => s,
        };
        for (k, v) in [
            ("poll_interval_ms", r.poll_interval_ms),
            ("connect_timeout_ms", r.connect_timeout_ms),
            ("request_timeout_ms", r.request_timeout_ms),
            ("requests_per_second", r.requests_per_second as u64),
            ("backoff_initial_ms", r.backoff_initial_ms),
            ("backoff_max_ms", r.backoff_max_ms),
            ("breaker_failures", r.breaker_failures as u64),
            ("stale_after_secs", r.stale_after_secs),
            ("max_record_bytes", r.max_record_bytes),
            ("max_body_bytes", r.max_body_bytes),
        ] {
            self.positive(&at(k), v);
        }
        let protocol = match r.protocol.as_str() {
            "open311" => {
                let updated_after = match r.change_polling.as_str() {
                    "updated_after" => true,
                    "requested_window" => false,
                    other => {
                        self.err(
                            &at("change_polling"),
                            format!("`{other}`: expected `updated_after` or `requested_window`"),
                        );
                        true
                    }
                };
                self.positive(&at("max_per_response"), r.max_per_response as u64);
                self.positive(&at("max_window_days"), r.max_window_days);
                let api_key = r
                    .api_key
                    .as_ref()
                    .and_then(|k| self.secret(&at("api_key"), k));
                Some(Protocol::Open311 {
                    jurisdiction_id: r.jurisdiction_id.clone(),
                    api_key,
                    updated_after,
                    max_per_response: r.max_per_response,
                    max_window: Duration::from_secs(r.max_window_days * 86_400),
                })
            }
            "paged" => self.paged(name, r),
            other => {
                self.err(
                    &at("protocol"),
                    format!("`{other}`: expected `open311` or `paged`"),
                );
                None
            }
        };
        let mapping = self.mapping(name, &r.protocol, r.mapping.as_ref());
        let auth = match &r.auth {
            None => Auth::None,
            Some(a) => self.auth(name, a),
        };
        let writeback = r
            .writeback
            .as_ref()
            .filter(|w| w.enabled)
            .and_then(|w| self.writeback(name, r, w));
        let a = &r.attachments;
        self.positive(&at("attachments.max_bytes"), a.max_bytes);
        self.positive(
            &at("attachments.max_failed_polls"),
            u64::from(a.max_failed_polls),
        );
        Some(HttpSourceConfig {
            name: name.to_string(),
            channel,
            base_url: r.base_url.trim_end_matches('/').to_string(),
            protocol: protocol?,
            mapping,
            auth,
            attachments: AttachmentLimits {
                enabled: a.enabled,
                max_bytes: a.max_bytes,
                allowed_types: a.allowed_types.iter().map(|t| t.to_lowercase()).collect(),
                max_per_item: a.max_per_item,
                max_failed_polls: a.max_failed_polls.max(1),
            },
            poll_interval: Duration::from_millis(r.poll_interval_ms),
            overlap: Duration::from_secs(r.overlap_secs),
            initial_lookback: Duration::from_secs(r.initial_lookback_hours * 3600),
            connect_timeout: Duration::from_millis(r.connect_timeout_ms),
            request_timeout: Duration::from_millis(r.request_timeout_ms),
            requests_per_second: r.requests_per_second.max(1),
            backoff_initial: Duration::from_millis(r.backoff_initial_ms),
            backoff_max: Duration::from_millis(r.backoff_max_ms.max(r.backoff_initial_ms)),
            breaker_failures: r.breaker_failures.max(1),
            breaker_cooldown: Duration::from_millis(r.breaker_cooldown_ms),
            stale_after: Duration::from_secs(r.stale_after_secs),
            max_record_bytes: r.max_record_bytes,
            max_body_bytes: r.max_body_bytes,
            origins,
            allow_plaintext_auth: r.allow_plaintext_auth,
            max_clock_skew: Duration::from_secs(max_clock_skew_secs),
            writeback,
        })
    }

    /// `[channels.<name>.writeback]`. `due_clocks` is resolved later, against the validated
    /// clocks ([`Validator::writeback_clocks`]).
    fn writeback(
        &mut self,
        name: &str,
        r: &RawHttpSource,
        w: &RawWriteback,
    ) -> Option<WritebackConfig> {
        let at = |k: &str| format!("channels.{name}.writeback.{k}");
        if r.protocol == "open311" {
            self.err(
                &format!("channels.{name}.writeback"),
                "Open311 GeoReport v2 has no call that updates a request's status (GET reads requests, POST requests.json creates a new one): write-back needs the vendor's status API, read with protocol = \"paged\"",
            );
            return None;
        }
        let method = match w.method.to_uppercase().as_str() {
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            other => {
                self.err(
                    &at("method"),
                    format!("`{other}`: expected POST, PUT or PATCH"),
                );
                reqwest::Method::POST
            }
        };
        let path = match &w.path {
            None => {
                self.err(
                    &at("path"),
                    "required: where a state is written, e.g. \"/petitions/{id}/status\"",
                );
                return None;
            }
            Some(p) => {
                let p = if p.starts_with('/') {
                    p.clone()
                } else {
                    format!("/{p}")
                };
                if p.matches("{id}").count() != 1 {
                    self.err(
                        &at("path"),
                        format!("`{p}` must hold `{{id}}` (the item's upstream id) exactly once"),
                    );
                } else if p.replace("{id}", "").contains(['{', '}', '?', '#']) {
                    self.err(
                        &at("path"),
                        format!(
                            "`{p}`: `{{id}}` is the only placeholder, and no query or fragment"
                        ),
                    );
                }
                p
            }
        };
        if reqwest::header::HeaderName::from_bytes(w.idempotency_header.as_bytes()).is_err() {
            self.err(
                &at("idempotency_header"),
                format!("`{}` is not an HTTP header name", w.idempotency_header),
            );
        }
        let mut completed_on = Vec::new();
        for (i, e) in w.completed_on.iter().enumerate() {
            match crate::sla::policy::EventKind::parse(e) {
                Some(k) => completed_on.push(k),
                None => self.err(
                    &format!("{}[{i}]", at("completed_on")),
                    format!("`{e}` is not a status event"),
                ),
            }
        }
        let time_format = match w.time_format.as_str() {
            "rfc3339" => None,
            f => {
                let probe = jiff::civil::date(2026, 1, 2)
                    .at(3, 4, 5, 0)
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .ok()
                    .and_then(|z| jiff::fmt::strtime::format(f, &z).ok());
                if probe.is_none_or(|p| p.is_empty()) {
                    self.err(
                        &at("time_format"),
                        format!("`{f}`: expected `rfc3339` or a strftime pattern"),
                    );
                }
                Some(f.to_string())
            }
        };
        if let Some(c) = &w.canonical {
            if let Some(bad) = unknown_placeholder(c) {
                self.err(
                    &at("canonical"),
                    format!("unknown placeholder `{{{bad}}}` (known: {KNOWN_PLACEHOLDERS})"),
                );
            }
            if r.auth.as_ref().is_none_or(|a| a.kind != "hmac") {
                self.err(
                    &at("canonical"),
                    "only for HMAC-signed sources (auth.kind = \"hmac\")",
                );
            }
        }
        self.positive(&at("max_attempts"), u64::from(w.max_attempts));
        for (k, v) in [
            ("backoff_initial_ms", w.backoff_initial_ms),
            ("backoff_max_ms", w.backoff_max_ms),
            ("request_timeout_ms", w.request_timeout_ms),
            ("poll_interval_ms", w.poll_interval_ms),
            ("requests_per_second", u64::from(w.requests_per_second)),
        ] {
            self.positive(&at(k), v);
        }
        let word = |v: &str| (!v.trim().is_empty()).then(|| v.to_string());
        let states = &w.states;
        let (acknowledged, due, completed) = (
            word(&states.acknowledged),
            word(&states.due),
            word(&states.completed),
        );
        if acknowledged.is_none() && due.is_none() && completed.is_none() {
            self.err(
                &at("states"),
                "every state is left out: nothing would be written back (disable the section instead)",
            );
        }
        let f = &w.fields;
        let fields = WritebackFields {
            state: word(&f.state),
            department: word(&f.department),
            department_name: word(&f.department_name),
            due_at: word(&f.due_at),
            clock: word(&f.clock),
            provisional: word(&f.provisional),
            time: word(&f.time),
            item_id: word(&f.item_id),
        };
        if fields.state.is_none() {
            self.err(
                &at("fields.state"),
                "required: the field that names the state",
            );
        }
        if due.is_some() && fields.due_at.is_none() {
            self.err(
                &at("fields.due_at"),
                "required while states.due is written back",
            );
        }
        Some(WritebackConfig {
            method,
            path,
            idempotency_header: w.idempotency_header.clone(),
            due_clocks: w.due_clocks.clone().unwrap_or_default(),
            completed_on,
            time_format,
            canonical: w.canonical.clone(),
            max_attempts: w.max_attempts.max(1),
            backoff_initial: Duration::from_millis(w.backoff_initial_ms),
            backoff_max: Duration::from_millis(w.backoff_max_ms.max(w.backoff_initial_ms)),
            request_timeout: Duration::from_millis(w.request_timeout_ms),
            poll_interval: Duration::from_millis(w.poll_interval_ms),
            requests_per_second: w.requests_per_second.max(1),
            acknowledged,
            due,
            completed,
            fields,
        })
    }

    /// Resolves each source's write-back `due_clocks` against the validated clocks: named ones
    /// must exist; absent, they default to the clocks that start on arrival for this channel
    /// alone (its first-touch clock: `portal.sign_in`, `hotline.view`).
    pub(super) fn writeback_clocks(
        &mut self,
        raw: &super::raw::RawChannels,
        sources: &mut [HttpSourceConfig],
        clocks: &[crate::sla::policy::ClockPolicy],
    ) {
        for s in sources.iter_mut() {
            let Some(wb) = s.writeback.as_mut() else {
                continue;
            };
            let named = match s.name.as_str() {
                "hotline" => raw.hotline.as_ref(),
                _ => raw.portal.as_ref(),
            }
            .and_then(|r| r.writeback.as_ref())
            .and_then(|w| w.due_clocks.clone());
            match named {
                Some(ids) => {
                    for (i, id) in ids.iter().enumerate() {
                        if !clocks.iter().any(|c| &c.id == id) {
                            let known: Vec<&str> = clocks.iter().map(|c| c.id.as_str()).collect();
                            self.err(
                                &format!("channels.{}.writeback.due_clocks[{i}]", s.name),
                                format!(
                                    "`{id}` is not an SLA clock (configured: {})",
                                    known.join(", ")
                                ),
                            );
                        }
                    }
                    wb.due_clocks = ids;
                }
                None => {
                    wb.due_clocks = clocks
                        .iter()
                        .filter(|c| {
                            c.start == crate::sla::policy::Trigger::Received
                                && c.channels == [s.channel]
                        })
                        .map(|c| c.id.clone())
                        .collect();
                }
            }
        }
    }

    fn pointer(&mut self, path: &str, p: &str) {
        if !p.is_empty() && !p.starts_with('/') {
            self.err(
                path,
                format!("`{p}` is not a JSON pointer (RFC 6901: empty or starting with `/`)"),
            );
        }
    }

    fn paged(&mut self, name: &str, r: &RawHttpSource) -> Option<Protocol> {
        let at = |k: &str| format!("channels.{name}.{k}");
        let method = match r.method.to_uppercase().as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            other => {
                self.err(&at("method"), format!("`{other}`: expected GET or POST"));
                reqwest::Method::GET
            }
        };
        let Some(path) = r.path.clone() else {
            self.err(&at("path"), "required for protocol `paged`");
            return None;
        };
        let items_pointer = r.items_pointer.clone().unwrap_or_default();
        self.pointer(&at("items_pointer"), &items_pointer);
        let Some(p) = &r.pagination else {
            self.err(&at("pagination"), "required for protocol `paged`");
            return None;
        };
        self.positive(&at("pagination.page_size"), p.page_size as u64);
        let pagination = match p.kind.as_str() {
            "page" => Pagination::Page {
                page_param: p.page_param.clone(),
                size_param: p.size_param.clone(),
                page_size: p.page_size,
                first_page: p.first_page,
            },
            "cursor" => {
                let ptr = p.next_cursor_pointer.clone().unwrap_or_default();
                if ptr.is_empty() {
                    self.err(
                        &at("pagination.next_cursor_pointer"),
                        "required for pagination `cursor`",
                    );
                }
                self.pointer(&at("pagination.next_cursor_pointer"), &ptr);
                Pagination::Cursor {
                    cursor_param: p.cursor_param.clone(),
                    size_param: p.size_param.clone(),
                    page_size: p.page_size,
                    next_cursor_pointer: ptr,
                }
            }
            "link" => Pagination::Link {
                size_param: p.size_param.clone(),
                page_size: p.page_size,
            },
            other => {
                self.err(
                    &at("pagination.kind"),
                    format!("`{other}`: expected `page`, `cursor` or `link`"),
                );
                return None;
            }
        };
        let updated_after_format = match r.updated_after_format.as_str() {
            "rfc3339" => None,
            f => Some(f.to_string()),
        };
        Some(Protocol::Paged {
            method,
            path: if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            },
            query: r
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            updated_after_param: r.updated_after_param.clone(),
            updated_after_format,
            items_pointer,
            pagination,
        })
    }

    fn mapping(&mut self, name: &str, protocol: &str, m: Option<&RawMapping>) -> Mapping {
        let at = |k: &str| format!("channels.{name}.mapping.{k}");
        let mut out = if protocol == "open311" {
            Mapping::open311()
        } else {
            Mapping::default()
        };
        let Some(m) = m else {
            if protocol != "open311" {
                self.err(
                    &format!("channels.{name}.mapping"),
                    "required for protocol `paged`",
                );
            }
            return out;
        };
        let fields: [(&str, &Option<RawPointer>, &mut Vec<String>); 13] = [
            ("id", &m.id, &mut out.id),
            ("created", &m.created, &mut out.created),
            ("updated", &m.updated, &mut out.updated),
            ("title", &m.title, &mut out.title),
            ("content", &m.content, &mut out.content),
            ("name", &m.name, &mut out.name),
            ("id_number", &m.id_number, &mut out.id_number),
            ("phone", &m.phone, &mut out.phone),
            ("address", &m.address, &mut out.address),
            ("region", &m.region, &mut out.region),
            ("service_code", &m.service_code, &mut out.service_code),
            ("status", &m.status, &mut out.status),
            ("url", &m.url, &mut out.url),
        ];
        let mut bad = Vec::new();
        for (key, raw, slot) in fields {
            if let Some(r) = raw {
                let list = match r {
                    RawPointer::One(s) => vec![s.clone()],
                    RawPointer::Many(v) => v.clone(),
                };
                for p in &list {
                    if !p.is_empty() && !p.starts_with('/') {
                        bad.push((key, p.clone()));
                    }
                }
                *slot = list;
            }
        }
        for (key, p) in bad {
            self.pointer(&at(key), &p);
        }
        if let Some(a) = &m.attachments {
            self.pointer(&at("attachments"), a);
            out.attachments = Some(a.clone());
        }
        if let Some(a) = &m.attachment_url {
            self.pointer(&at("attachment_url"), a);
            out.attachment_url = a.clone();
        }
        if let Some(a) = &m.attachment_name {
            self.pointer(&at("attachment_name"), a);
            out.attachment_name = Some(a.clone());
        }
        if m.time_format.is_some() {
            out.time_format = m.time_format.clone();
        }
        if out.id.is_empty() {
            self.err(&at("id"), "required: the record's upstream id");
        }
        if out.content.is_empty() && out.title.is_empty() {
            self.err(
                &at("content"),
                "required: the record's text (content or title)",
            );
        }
        out
    }

    fn auth(&mut self, name: &str, a: &RawAuth) -> Auth {
        let at = |k: &str| format!("channels.{name}.auth.{k}");
        let need_secret = |v: &mut Self, key: &str, r: &Option<RawSecretRef>| -> Option<Secret> {
            match r {
                Some(r) => v.secret(&at(key), r),
                None => {
                    v.err(&at(key), format!("required for auth kind `{}`", a.kind));
                    None
                }
            }
        };
        match a.kind.as_str() {
            "none" => Auth::None,
            "bearer" => need_secret(self, "token", &a.token).map_or(Auth::None, Auth::Bearer),
            "basic" => {
                let password = need_secret(self, "password", &a.password);
                let Some(username) = a.username.clone() else {
                    self.err(&at("username"), "required for auth kind `basic`");
                    return Auth::None;
                };
                password.map_or(Auth::None, |password| Auth::Basic { username, password })
            }
            "hmac" => {
                let secret = need_secret(self, "secret", &a.secret);
                let Some(app_key) = a.app_key.clone() else {
                    self.err(&at("app_key"), "required for auth kind `hmac`");
                    return Auth::None;
                };
                let base64 = match a.signature_encoding.as_deref().unwrap_or("hex") {
                    "hex" => false,
                    "base64" => true,
                    other => {
                        self.err(
                            &at("signature_encoding"),
                            format!("`{other}`: expected `hex` or `base64`"),
                        );
                        false
                    }
                };
                let millis = match a.timestamp_unit.as_deref().unwrap_or("millis") {
                    "millis" => true,
                    "seconds" => false,
                    other => {
                        self.err(
                            &at("timestamp_unit"),
                            format!("`{other}`: expected `millis` or `seconds`"),
                        );
                        true
                    }
                };
                let canonical = a
                    .canonical
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CANONICAL.into());
                if let Some(bad) = unknown_placeholder(&canonical) {
                    self.err(
                        &at("canonical"),
                        format!("unknown placeholder `{{{bad}}}` (known: {KNOWN_PLACEHOLDERS})"),
                    );
                }
                let h = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
                secret.map_or(Auth::None, |secret| {
                    Auth::Hmac(HmacAuth {
                        app_key,
                        secret,
                        canonical,
                        base64,
                        millis,
                        header_app_key: h(&a.header_app_key, "X-App-Key"),
                        header_timestamp: h(&a.header_timestamp, "X-Timestamp"),
                        header_nonce: h(&a.header_nonce, "X-Nonce"),
                        header_signature: h(&a.header_signature, "X-Signature"),
                    })
                })
            }
            other => {
                self.err(
                    &at("kind"),
                    format!("`{other}`: expected `none`, `bearer`, `basic` or `hmac`"),
                );
                Auth::None
            }
        }
    }
}

/// The placeholders a canonical string may use.
const KNOWN_PLACEHOLDERS: &str = "method, path, query, timestamp, nonce, app_key, body_sha256";

fn unknown_placeholder(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        let name = &after[..end];
        if ![
            "method",
            "path",
            "query",
            "timestamp",
            "nonce",
            "app_key",
            "body_sha256",
        ]
        .contains(&name)
        {
            return Some(name.to_string());
        }
        rest = &after[end + 1..];
    }
    None
}
