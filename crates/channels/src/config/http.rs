//! The HTTP channels' settings: `[channels.hotline]` and `[channels.portal]`.
//!
//! Both sections have one shape (an HTTP source): where the upstream is, how to ask it
//! (the Open311 GeoReport v2 dialect, or a generic paged JSON API), how to read its records
//! (a field mapping of JSON pointers), how to authenticate, and how patient to be. The raw
//! serde shape and the validated type live together here; the daemon's config calls
//! [`http_source`] (through `config::http_sources`) and [`writeback_clocks`].

use petitiond_core::diag::RawSecretRef;
use petitiond_core::diag::{Secret, Validator};
use petitiond_core::envelope::Channel;
use std::time::Duration;

mod raw;
mod writeback;

pub use raw::*;
use writeback::writeback;
pub use writeback::writeback_clocks;

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
    pub completed_on: Vec<petitiond_core::sla::policy::EventKind>,
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

/// Validates `[channels.<name>]`; pushes every error found.
pub fn http_source(
    v: &mut Validator<'_>,
    name: &str,
    channel: Channel,
    r: &RawHttpSource,
) -> Option<HttpSourceConfig> {
    let at = |k: &str| format!("channels.{name}.{k}");
    let (base, origins) = http_origins(v, name, r);
    http_plaintext_credentials(v, name, r, base.as_ref());
    let max_clock_skew_secs = max_clock_skew_secs(v, name, r);
    for (k, n) in [
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
        v.positive(&at(k), n);
    }
    let protocol = match r.protocol.as_str() {
        "open311" => open311(v, name, r),
        "paged" => paged(v, name, r),
        other => {
            v.err(
                &at("protocol"),
                format!("`{other}`: expected `open311` or `paged`"),
            );
            None
        }
    };
    let mapping = mapping(v, name, &r.protocol, r.mapping.as_ref());
    let auth = match &r.auth {
        None => Auth::None,
        Some(a) => auth(v, name, a),
    };
    let writeback = r
        .writeback
        .as_ref()
        .filter(|w| w.enabled)
        .and_then(|w| writeback(v, name, r, w));
    let a = &r.attachments;
    v.positive(&at("attachments.max_bytes"), a.max_bytes);
    v.positive(
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

/// `base_url` (an http(s) URL without user or password) and `allowed_origins`: returns the
/// parsed base URL and every origin requests may go to, the base URL's first.
fn http_origins(
    v: &mut Validator<'_>,
    name: &str,
    r: &RawHttpSource,
) -> (Option<reqwest::Url>, Vec<String>) {
    let at = |k: &str| format!("channels.{name}.{k}");
    let base = reqwest::Url::parse(&r.base_url).ok();
    let base_origin = base.as_ref().and_then(origin_of);
    if base_origin.is_none() {
        v.err(
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
        v.err(
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
            _ => v.err(
                &format!("{}[{i}]", at("allowed_origins")),
                format!("`{o}` is not an origin: expected http(s)://host[:port]"),
            ),
        }
    }
    (base, origins)
}

/// Credentials over plain http only with `allow_plaintext_auth`.
fn http_plaintext_credentials(
    v: &mut Validator<'_>,
    name: &str,
    r: &RawHttpSource,
    base: Option<&reqwest::Url>,
) {
    let at = |k: &str| format!("channels.{name}.{k}");
    let has_credentials = r.auth.as_ref().is_some_and(|a| a.kind != "none")
        || (r.protocol == "open311" && r.api_key.is_some());
    if base.is_some_and(|u| u.scheme() == "http") && has_credentials && !r.allow_plaintext_auth {
        v.err(
            &at("base_url"),
            "plain http would send the credentials unencrypted: use https, or set allow_plaintext_auth = true",
        );
    }
}

/// `max_clock_skew_secs`: below `overlap_secs` (default: half of it, at most 60 s).
fn max_clock_skew_secs(v: &mut Validator<'_>, name: &str, r: &RawHttpSource) -> u64 {
    let at = |k: &str| format!("channels.{name}.{k}");
    // A clamped cursor sits `skew` ahead of our clock; the next poll starts `overlap`
    // before it, so the overlap must exceed the skew or records written meanwhile (by
    // an upstream whose clock is right) would be skipped.
    match r.max_clock_skew_secs {
        None => (r.overlap_secs / 2).min(60),
        Some(s) if s > 0 && s >= r.overlap_secs => {
            v.err(
                &at("max_clock_skew_secs"),
                format!(
                    "{s} is not less than overlap_secs ({}): a clamped cursor would skip records written meanwhile",
                    r.overlap_secs
                ),
            );
            r.overlap_secs / 2
        }
        Some(s) => s,
    }
}

/// `protocol = "open311"`: change polling, response and window limits, the API key.
fn open311(v: &mut Validator<'_>, name: &str, r: &RawHttpSource) -> Option<Protocol> {
    let at = |k: &str| format!("channels.{name}.{k}");
    let updated_after = match r.change_polling.as_str() {
        "updated_after" => true,
        "requested_window" => false,
        other => {
            v.err(
                &at("change_polling"),
                format!("`{other}`: expected `updated_after` or `requested_window`"),
            );
            true
        }
    };
    v.positive(&at("max_per_response"), r.max_per_response as u64);
    v.positive(&at("max_window_days"), r.max_window_days);
    let api_key = r.api_key.as_ref().and_then(|k| v.secret(&at("api_key"), k));
    Some(Protocol::Open311 {
        jurisdiction_id: r.jurisdiction_id.clone(),
        api_key,
        updated_after,
        max_per_response: r.max_per_response,
        max_window: Duration::from_secs(r.max_window_days * 86_400),
    })
}

fn pointer(v: &mut Validator<'_>, path: &str, p: &str) {
    if !p.is_empty() && !p.starts_with('/') {
        v.err(
            path,
            format!("`{p}` is not a JSON pointer (RFC 6901: empty or starting with `/`)"),
        );
    }
}

fn paged(v: &mut Validator<'_>, name: &str, r: &RawHttpSource) -> Option<Protocol> {
    let at = |k: &str| format!("channels.{name}.{k}");
    let method = match r.method.to_uppercase().as_str() {
        "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        other => {
            v.err(&at("method"), format!("`{other}`: expected GET or POST"));
            reqwest::Method::GET
        }
    };
    let Some(path) = r.path.clone() else {
        v.err(&at("path"), "required for protocol `paged`");
        return None;
    };
    let items_pointer = r.items_pointer.clone().unwrap_or_default();
    pointer(v, &at("items_pointer"), &items_pointer);
    let Some(p) = &r.pagination else {
        v.err(&at("pagination"), "required for protocol `paged`");
        return None;
    };
    v.positive(&at("pagination.page_size"), p.page_size as u64);
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
                v.err(
                    &at("pagination.next_cursor_pointer"),
                    "required for pagination `cursor`",
                );
            }
            pointer(v, &at("pagination.next_cursor_pointer"), &ptr);
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
            v.err(
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

fn mapping(v: &mut Validator<'_>, name: &str, protocol: &str, m: Option<&RawMapping>) -> Mapping {
    let at = |k: &str| format!("channels.{name}.mapping.{k}");
    let mut out = if protocol == "open311" {
        Mapping::open311()
    } else {
        Mapping::default()
    };
    let Some(m) = m else {
        if protocol != "open311" {
            v.err(
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
        pointer(v, &at(key), &p);
    }
    if let Some(a) = &m.attachments {
        pointer(v, &at("attachments"), a);
        out.attachments = Some(a.clone());
    }
    if let Some(a) = &m.attachment_url {
        pointer(v, &at("attachment_url"), a);
        out.attachment_url = a.clone();
    }
    if let Some(a) = &m.attachment_name {
        pointer(v, &at("attachment_name"), a);
        out.attachment_name = Some(a.clone());
    }
    if m.time_format.is_some() {
        out.time_format = m.time_format.clone();
    }
    if out.id.is_empty() {
        v.err(&at("id"), "required: the record's upstream id");
    }
    if out.content.is_empty() && out.title.is_empty() {
        v.err(
            &at("content"),
            "required: the record's text (content or title)",
        );
    }
    out
}

fn auth(v: &mut Validator<'_>, name: &str, a: &RawAuth) -> Auth {
    let at = |k: &str| format!("channels.{name}.auth.{k}");
    let need_secret =
        |v: &mut Validator<'_>, key: &str, r: &Option<RawSecretRef>| -> Option<Secret> {
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
        "bearer" => need_secret(v, "token", &a.token).map_or(Auth::None, Auth::Bearer),
        "basic" => {
            let password = need_secret(v, "password", &a.password);
            let Some(username) = a.username.clone() else {
                v.err(&at("username"), "required for auth kind `basic`");
                return Auth::None;
            };
            password.map_or(Auth::None, |password| Auth::Basic { username, password })
        }
        "hmac" => {
            let secret = need_secret(v, "secret", &a.secret);
            let Some(app_key) = a.app_key.clone() else {
                v.err(&at("app_key"), "required for auth kind `hmac`");
                return Auth::None;
            };
            let base64 = match a.signature_encoding.as_deref().unwrap_or("hex") {
                "hex" => false,
                "base64" => true,
                other => {
                    v.err(
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
                    v.err(
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
                v.err(
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
            v.err(
                &at("kind"),
                format!("`{other}`: expected `none`, `bearer`, `basic` or `hmac`"),
            );
            Auth::None
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
