//! Configuration: TOML in, validated types out, in two stages.
//!
//! Stage one (`raw`) is serde with `deny_unknown_fields`; stage two (`validate` here) checks
//! meaning and builds the types the rest of the daemon uses. Every error found in either stage
//! is reported at once, each with file, line and key path, so an operator fixes a file in one
//! pass. Secrets are never read from the TOML: it names an environment variable or a file.
//!
//! This module does not open sockets or files other than the config file and secret files.

pub mod http;
mod raw;
pub mod replies;
pub mod reports;
pub mod routing;
pub(crate) use petitiond_core::diag::toml_file;

use crate::envelope::Channel;
pub use http::HttpSourceConfig;
pub use petitiond_core::diag::{ConfigError, ConfigErrors, Secret};
pub use petitiond_core::routing::Department;
use raw::{RawConfig, RawSecretRef};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A URL as logs and error messages may show it: without user and password, query string and
/// fragment (where tokens, keys and signatures travel). Text that does not parse as a URL is
/// cut at its first `?` or `#`, and whatever comes before its last `@` (after a `scheme://`)
/// becomes `…`.
pub fn url_for_log(url: &str) -> String {
    if let Ok(mut u) = reqwest::Url::parse(url)
        && u.has_host()
    {
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.set_query(None);
        u.set_fragment(None);
        return u.to_string();
    }
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..cut];
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    match rest.rfind('@') {
        Some(at) => format!("{scheme}…{}", &rest[at..]),
        None => format!("{scheme}{rest}"),
    }
}

/// Why a password with a plaintext transport is refused (config errors).
const PLAINTEXT_AUTH: &str = "the password would cross the network in clear text; use TLS, or set `allow_plaintext_auth = true` (loopback or a trusted network only)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub data_dir: PathBuf,
    /// Start even when group or others can read the data directory (`app::check_private_dirs`).
    pub allow_shared_data_dir: bool,
    pub shutdown_deadline: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub admin_listen: Option<std::net::SocketAddr>,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub blobs_dir: PathBuf,
    pub kafka: KafkaConfig,
    pub departments: Vec<Department>,
    pub routing: RoutingConfig,
    pub mailbox: Option<MailboxConfig>,
    /// The HTTP channels (hotline, portal) that are enabled.
    pub http_sources: Vec<HttpSourceConfig>,
    pub sla: SlaConfig,
    /// Alert e-mail; `None` when not configured.
    pub email: Option<EmailConfig>,
    /// `[replies]`: the reply quality check (`status::reply`).
    pub replies: crate::status::reply::ReplyChecker,
    /// The report schedule (`[reports]`); `None`: nothing scheduled.
    pub reports: Option<reports::ReportsConfig>,
}

/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// `[admin]` besides the address: who may read it and how much one client may ask of it.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Required (as `Authorization: Bearer`, or the login cookie) on everything but
    /// `/healthz`, `/readyz` and `/login`; `None`: those are all the admin API serves.
    pub token: Option<Secret>,
    pub max_body_bytes: usize,
    /// Open connections at once (HTTP/1: one request at a time each); more are closed.
    pub max_connections: usize,
    /// Per request, and for a client to send its request headers.
    pub request_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub busy_timeout: Duration,
}

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

/// Whose status events a status topic carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusSource {
    /// A department's own topic: every event on it is that department's.
    Department(String),
    /// The shared `sla.status_topic`: the event's `actor.department`, accepted only for
    /// `sla.shared_status_departments`.
    Shared,
}

/// SLA settings: the calendar, the clock policies and the topics of the closed loop.
#[derive(Debug, Clone)]
pub struct SlaConfig {
    pub calendar: std::sync::Arc<crate::sla::calendar::Calendar>,
    pub clocks: Vec<crate::sla::policy::ClockPolicy>,
    /// The shared status topic: events there count only for `shared_status_departments`
    /// (by `actor.department`); departments report on their own `status_topic`.
    pub status_topic: String,
    pub shared_status_departments: Vec<String>,
    /// Events dated further in the future than this are rejected (dead-lettered).
    pub status_max_future_skew: Duration,
    /// Alerts are produced here (CloudEvents).
    pub alerts_topic: String,
    pub consumer_group: String,
    pub supervisors: Vec<String>,
}

impl SlaConfig {
    pub fn clock(&self, id: &str) -> Option<&crate::sla::policy::ClockPolicy> {
        self.clocks.iter().find(|c| c.id == id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Tls,
    None,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub timeout: Duration,
    pub digest_threshold: usize,
    pub poll_interval: Duration,
    /// The operator accepts the password in clear with `tls = "none"`.
    pub allow_plaintext_auth: bool,
}

#[derive(Debug, Clone)]
pub struct RoutingConfig {
    pub default_lead: String,
    /// Rules file and dictionaries directory; `None`: every item to `default_lead`.
    pub rules: Option<RulesFiles>,
    pub reload_interval: Duration,
    /// Where incomplete items go (`routing.intake_desk`, default `default_lead`).
    pub intake_desk: String,
    /// The incomplete-item check; `None`: disabled.
    pub completeness: Option<crate::routing::completeness::Completeness>,
    /// Repeat-petition linking; `None`: disabled.
    pub repeat: Option<routing::RepeatConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RulesFiles {
    pub rules_file: PathBuf,
    pub dictionaries_dir: PathBuf,
    /// The classifier model (`routing.model_file`); `None`: dictionaries only.
    pub model_file: Option<PathBuf>,
    /// Below this confidence an item is not classified but flagged `needs_review`.
    pub review_threshold: f32,
}

#[derive(Debug, Clone)]
pub struct MailboxConfig {
    pub kind: MailboxKind,
    pub poll_interval: Duration,
    pub max_message_bytes: u64,
    pub max_parts: usize,
    pub max_nesting_depth: usize,
    pub max_decoded_bytes: u64,
    /// Finds the letter's reference (barcode) number in the subject or body.
    pub letter_reference: Option<regex::Regex>,
}

/// Where the scanned letters come from.
#[derive(Debug, Clone)]
pub enum MailboxKind {
    Maildir { path: PathBuf },
    Imap(ImapConfig),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapTls {
    /// Plain TCP (loopback or a trusted network only).
    None,
    StartTls,
    /// Implicit TLS (imaps, port 993).
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapAuth {
    /// The LOGIN command.
    Login,
    /// AUTHENTICATE PLAIN (SASL).
    Plain,
}

/// What to do on the server with a mail once intake has it durably. Cosmetic for humans; the
/// cursor in the store is what decides what is read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterCommit {
    None,
    /// Sets this flag or keyword (e.g. `$PetitiondRecorded`).
    Flag(String),
    /// Moves the mail to this folder.
    Move(String),
}

#[derive(Debug, Clone)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub tls: ImapTls,
    /// Extra CA certificates (PEM) trusted besides the system's.
    pub tls_ca_file: Option<PathBuf>,
    pub username: String,
    pub password: Secret,
    /// Folder name as a person writes it (UTF-8); encoded to modified UTF-7 on the wire.
    pub mailbox: String,
    pub auth: ImapAuth,
    pub after_commit: AfterCommit,
    /// Use IDLE when the server offers it; otherwise poll every `poll_interval`.
    pub idle: bool,
    /// Connect, TLS handshake and every command.
    pub timeout: Duration,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// The operator accepts the password in clear with `tls = "none"`.
    pub allow_plaintext_auth: bool,
}

impl Config {
    /// Reads, parses and validates a config file; every error at once.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: None,
                path: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::parse(&text, &file, &base)
    }

    /// Parses and validates config text. Relative paths resolve against `base_dir` (the config
    /// file's directory), so a config file and its data can move together.
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let toml = toml_file::TomlFile::parse(file, text).map_err(|e| ConfigErrors(vec![e]))?;
        let mut errors = Vec::new();
        let raw: Option<RawConfig> = toml.deserialize_repaired(&mut errors);
        // serde quotes the offending value ("invalid type: string \"...\""): never a secret's.
        for e in &mut errors {
            let key = e.path.rsplit('.').next().unwrap_or_default();
            let secret_key = ["password", "token", "secret"]
                .iter()
                .any(|s| key.contains(s))
                || key == "key"
                || key == "api_key";
            if secret_key || e.path.starts_with("kafka.secret_properties") {
                e.message = "must be `{ env = \"VAR\" }`, `{ file = \"PATH\" }` or `{ credential = \"NAME\" }` (the value given is not shown)".into();
            }
        }
        let mut cx = Validator {
            toml: &toml,
            errors,
            base_dir,
        };
        let config = raw.and_then(|raw| cx.validate(raw));
        match config {
            Some(c) if cx.errors.is_empty() => Ok(c),
            _ => {
                if cx.errors.is_empty() {
                    cx.errors.push(ConfigError {
                        file: file.into(),
                        line: None,
                        path: String::new(),
                        message: "invalid configuration".into(),
                    });
                }
                cx.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
                Err(ConfigErrors(cx.errors))
            }
        }
    }

    /// The topics status events are read from, each with whose events it carries.
    pub fn status_topics(&self) -> Vec<(String, StatusSource)> {
        let mut t: Vec<(String, StatusSource)> = self
            .departments
            .iter()
            .map(|d| {
                (
                    d.status_topic.clone(),
                    StatusSource::Department(d.id.clone()),
                )
            })
            .collect();
        t.push((self.sla.status_topic.clone(), StatusSource::Shared));
        t
    }

    pub fn department(&self, id: &str) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }

    /// Every topic the daemon produces to or consumes from; verified or created at start-up.
    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self.departments.iter().map(|d| d.topic.clone()).collect();
        t.extend(self.status_topics().into_iter().map(|(topic, _)| topic));
        t.push(self.kafka.dead_letter_topic.clone());
        t.push(self.sla.alerts_topic.clone());
        t.push(self.sla.status_topic.clone());
        if let Some(r) = &self.reports {
            t.push(r.topic.clone());
        }
        t.sort();
        t.dedup();
        t
    }
}

/// Stage two: meaning, cross-references, secrets. Pushes every error it finds.
struct Validator<'a> {
    toml: &'a toml_file::TomlFile<'a>,
    errors: Vec<ConfigError>,
    base_dir: &'a Path,
}

impl Validator<'_> {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        let e = self.toml.err(path, message);
        self.errors.push(e);
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn positive(&mut self, path: &str, v: u64) {
        if v == 0 {
            self.err(path, "must be greater than 0");
        }
    }

    fn topic_name(&mut self, path: &str, t: &str) {
        let ok = !t.is_empty()
            && t.len() <= 249
            && t != "."
            && t != ".."
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok {
            self.err(
                path,
                format!("`{t}` is not a valid Kafka topic name (1-249 of [a-zA-Z0-9._-])"),
            );
        }
    }

    fn secret(&mut self, path: &str, r: &RawSecretRef) -> Option<Secret> {
        if let Some(name) = &r.credential {
            if r.env.is_some() || r.file.is_some() {
                self.err(path, "give exactly one of `env`, `file` or `credential`");
                return None;
            }
            return self.credential(path, name);
        }
        match (&r.env, &r.file) {
            (Some(var), None) => match std::env::var(var) {
                Ok(v) => Some(Secret::new(v)),
                Err(_) => {
                    self.err(path, format!("environment variable `{var}` is not set"));
                    None
                }
            },
            (None, Some(f)) => {
                let p = self.path(f);
                match std::fs::read_to_string(&p) {
                    Ok(v) => Some(Secret::new(v.trim_end_matches(['\n', '\r']).to_string())),
                    Err(e) => {
                        self.err(
                            path,
                            format!("cannot read secret file {}: {e}", p.display()),
                        );
                        None
                    }
                }
            }
            _ => {
                self.err(path, "give exactly one of `env`, `file` or `credential`");
                None
            }
        }
    }

    /// A systemd credential: `$CREDENTIALS_DIRECTORY/NAME`, which systemd fills from the
    /// unit's `LoadCredential=NAME[:PATH]` (readable by the service's user only, on a private
    /// mount). Also works with any runtime that puts one file per secret in a directory and
    /// exports its path (e.g. `CREDENTIALS_DIRECTORY=/run/secrets` with compose secrets).
    fn credential(&mut self, path: &str, name: &str) -> Option<Secret> {
        let valid = !name.is_empty()
            && name.len() <= 255
            && name != "."
            && name != ".."
            && !name.contains(['/', '\0']);
        if !valid {
            self.err(
                path,
                format!("`{name}` is not a credential name (a file name: no `/`, not `.` or `..`)"),
            );
            return None;
        }
        let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) else {
            self.err(
                path,
                format!(
                    "credential `{name}`: $CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with `LoadCredential={name}`; run `petitiond check` as `systemd-run -P -p LoadCredential={name} ...` or set it to the directory holding the file)"
                ),
            );
            return None;
        };
        let p = Path::new(&dir).join(name);
        match std::fs::read_to_string(&p) {
            Ok(v) => Some(Secret::new(v.trim_end_matches(['\n', '\r']).to_string())),
            Err(e) => {
                self.err(
                    path,
                    format!("cannot read credential `{name}` ({}): {e}", p.display()),
                );
                None
            }
        }
    }

    fn validate(&mut self, raw: RawConfig) -> Option<Config> {
        let d = &raw.daemon;
        self.positive("daemon.shutdown_deadline_secs", d.shutdown_deadline_secs);
        let log_format = match d.log_format.as_str() {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => {
                self.err(
                    "daemon.log_format",
                    format!("`{other}` is not one of auto, json, pretty"),
                );
                LogFormat::Auto
            }
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&d.log_filter) {
            self.err("daemon.log_filter", format!("not a valid filter: {e}"));
        }

        let admin_listen = if raw.admin.enabled {
            match raw.admin.listen.parse() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.err(
                        "admin.listen",
                        format!(
                            "`{}` is not an address like 127.0.0.1:9464",
                            raw.admin.listen
                        ),
                    );
                    None
                }
            }
        } else {
            None
        };
        let admin = self.admin(&raw.admin, admin_listen);

        let k = &raw.kafka;
        if k.brokers.trim().is_empty() {
            self.err("kafka.brokers", "must list at least one host:port");
        }
        if k.partitions < 1 {
            self.err("kafka.partitions", "must be at least 1");
        }
        if k.replication_factor < 1 {
            self.err("kafka.replication_factor", "must be at least 1");
        }
        self.positive("kafka.request_timeout_secs", k.request_timeout_secs);
        self.positive("kafka.relay_batch", k.relay_batch as u64);
        self.positive("kafka.retry_backoff_ms", k.retry_backoff_ms);
        self.positive(
            "kafka.recovery_scan_max_records",
            k.recovery_scan_max_records,
        );
        self.topic_name("kafka.dead_letter_topic", &k.dead_letter_topic);
        // Keys the daemon sets itself for its guarantees; an operator must not turn them off.
        const OWNED: [&str; 9] = [
            "bootstrap.servers",
            "acks",
            "enable.idempotence",
            "message.timeout.ms",
            "delivery.timeout.ms",
            // Consumers: petitiond commits after the work is durable and never skips records.
            "group.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
            "auto.offset.reset",
        ];
        for key in k.properties.keys() {
            let path = format!("kafka.properties.{}", toml_file::quote_key(key));
            if OWNED.contains(&key.as_str()) {
                self.err(&path, "is set by petitiond itself (acks=all, idempotence, timeouts, consumer offsets); use the kafka.* and sla.* keys");
            } else if ["password", "secret", "key.pem", "token"]
                .iter()
                .any(|s| key.contains(s))
            {
                self.err(&path, "looks like a secret: move it to [kafka.secret_properties] with `env`, `file` or `credential`");
            }
        }
        let mut secret_properties = BTreeMap::new();
        for (key, r) in &k.secret_properties {
            if let Some(s) = self.secret(
                &format!("kafka.secret_properties.{}", toml_file::quote_key(key)),
                r,
            ) {
                secret_properties.insert(key.clone(), s);
            }
        }
        let tls = k
            .properties
            .get("security.protocol")
            .is_some_and(|p| p.eq_ignore_ascii_case("sasl_ssl") || p.eq_ignore_ascii_case("ssl"));
        // sasl.password, sasl.oauthbearer.client.secret...: sent to the broker. Only for a
        // secret that resolved: a key whose reference is wrong already has its error.
        for key in secret_properties.keys() {
            if key.starts_with("sasl.") && !tls && !k.allow_plaintext_auth {
                self.err(
                    &format!("kafka.secret_properties.{}", toml_file::quote_key(key)),
                    format!(
                        "with security.protocol other than SASL_SSL {PLAINTEXT_AUTH} in [kafka]"
                    ),
                );
            }
        }

        let mut ids = HashSet::new();
        let mut departments = Vec::new();
        if raw.departments.is_empty() {
            self.err(
                "departments",
                "at least one [[departments]] entry is required",
            );
        }
        for (i, dep) in raw.departments.iter().enumerate() {
            if dep.id.trim().is_empty() {
                self.err(&format!("departments[{i}].id"), "must not be empty");
            } else if !ids.insert(dep.id.clone()) {
                self.err(
                    &format!("departments[{i}].id"),
                    format!("duplicate department id `{}`", dep.id),
                );
            }
            self.topic_name(&format!("departments[{i}].topic"), &dep.topic);
            if dep.topic == k.dead_letter_topic {
                self.err(
                    &format!("departments[{i}].topic"),
                    "must differ from kafka.dead_letter_topic",
                );
            }
            for (j, m) in dep.alert_emails.iter().enumerate() {
                self.email_address(&format!("departments[{i}].alert_emails[{j}]"), m);
            }
            let status_topic = dep
                .status_topic
                .clone()
                .unwrap_or_else(|| format!("{}.status", dep.topic));
            self.topic_name(&format!("departments[{i}].status_topic"), &status_topic);
            departments.push(Department {
                id: dep.id.clone(),
                name: dep.name.clone(),
                topic: dep.topic.clone(),
                status_topic,
                alert_emails: dep.alert_emails.clone(),
            });
        }
        // Every status topic is one department's (or the shared one): a topic read as two
        // sources, or also written by petitiond, would blur who sent an event.
        let mut seen: HashSet<&str> = [
            k.dead_letter_topic.as_str(),
            raw.sla.alerts_topic.as_str(),
            raw.sla.status_topic.as_str(),
        ]
        .into_iter()
        .chain(departments.iter().map(|d| d.topic.as_str()))
        .collect();
        for (i, d) in departments.iter().enumerate() {
            if !seen.insert(d.status_topic.as_str()) {
                let key = if raw.departments[i].status_topic.is_some() {
                    format!("departments[{i}].status_topic")
                } else {
                    format!("departments[{i}].topic")
                };
                self.err(
                    &key,
                    format!(
                        "status topic `{}` is also another topic of this config (each department's status topic must be its own)",
                        d.status_topic
                    ),
                );
            }
        }
        for (j, id) in raw.sla.shared_status_departments.iter().enumerate() {
            if !ids.contains(id) {
                self.err(
                    &format!("sla.shared_status_departments[{j}]"),
                    format!("department `{id}` is not defined in [[departments]]"),
                );
            }
        }
        if !ids.contains(&raw.routing.default_lead) {
            self.err(
                "routing.default_lead",
                format!(
                    "department `{}` is not defined in [[departments]]",
                    raw.routing.default_lead
                ),
            );
        }

        let intake_desk = raw
            .routing
            .intake_desk
            .clone()
            .unwrap_or_else(|| raw.routing.default_lead.clone());
        if raw.routing.intake_desk.is_some() && !ids.contains(&intake_desk) {
            self.err(
                "routing.intake_desk",
                format!("department `{intake_desk}` is not defined in [[departments]]"),
            );
        }
        let completeness = self.completeness(&raw.routing.completeness);
        let repeat = self.repeat(&raw.routing.repeat);

        let mailbox = match &raw.channels.mailbox {
            Some(m) if m.enabled => self.mailbox(m),
            _ => None,
        };

        let mut http_sources = Vec::new();
        for (name, channel, section) in [
            ("hotline", Channel::Hotline, &raw.channels.hotline),
            ("portal", Channel::Portal, &raw.channels.portal),
        ] {
            if let Some(s) = section.as_ref().filter(|s| s.enabled)
                && let Some(c) = self.http_source(name, channel, s)
            {
                http_sources.push(c);
            }
        }

        let sla = self.sla(&raw.sla, &k.dead_letter_topic);
        if let Some(sla) = &sla {
            self.writeback_clocks(&raw.channels, &mut http_sources, &sla.clocks);
        }
        let rules = raw.routing.rules_file.as_ref().map(|f| RulesFiles {
            rules_file: self.path(f),
            dictionaries_dir: self.path(
                raw.routing
                    .dictionaries_dir
                    .as_deref()
                    .unwrap_or("dictionaries"),
            ),
            model_file: raw.routing.model_file.as_deref().map(|m| self.path(m)),
            review_threshold: raw.routing.review_threshold as f32,
        });
        if !(0.0..=1.0).contains(&raw.routing.review_threshold) {
            self.err(
                "routing.review_threshold",
                "must be between 0 and 1 (a probability)",
            );
        }
        if let Some(r) = &rules {
            // The rules are part of the configuration: `check` reports their errors too.
            // Clock ids in `sla_overrides` are checked only against an SLA section that is
            // itself valid (its errors are reported on their own).
            let loaded = match &sla {
                Some(sla) => crate::routing::load_rules(r, &departments, &sla.clocks).map(|_| ()),
                None => crate::routing::rules::RuleSet::load(
                    &r.rules_file,
                    &r.dictionaries_dir,
                    &departments,
                )
                .map(|_| ()),
            };
            if let Err(d) = loaded {
                self.errors.extend(d.errors);
            }
        }
        let replies = self.replies(&raw.replies);
        let email = raw
            .alerts
            .email
            .as_ref()
            .filter(|e| e.enabled)
            .map(|e| self.email(e));

        let data_dir = self.path(&raw.daemon.data_dir);
        let reports = raw
            .reports
            .as_ref()
            .filter(|r| r.enabled)
            .and_then(|r| self.reports(r, &data_dir, &raw.sla.alerts_topic, email.is_some()));
        let resolve_data = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                data_dir.join(p)
            }
        };
        Some(Config {
            source: self.base_dir.to_path_buf(),
            shutdown_deadline: Duration::from_secs(d.shutdown_deadline_secs),
            log_format,
            log_filter: d.log_filter.clone(),
            admin_listen,
            admin,
            store: StoreConfig {
                path: resolve_data(&raw.store.path),
                busy_timeout: Duration::from_millis(raw.store.busy_timeout_ms),
            },
            blobs_dir: resolve_data(&raw.blobs.dir),
            data_dir: data_dir.clone(),
            allow_shared_data_dir: d.allow_shared_data_dir,
            kafka: KafkaConfig {
                brokers: k.brokers.clone(),
                client_id: k.client_id.clone(),
                create_topics: k.create_topics,
                partitions: k.partitions,
                replication_factor: k.replication_factor,
                delivery_timeout: (k.delivery_timeout_secs > 0)
                    .then(|| Duration::from_secs(k.delivery_timeout_secs)),
                request_timeout: Duration::from_secs(k.request_timeout_secs),
                relay_batch: k.relay_batch,
                retry_backoff: Duration::from_millis(k.retry_backoff_ms),
                recovery_scan_max_records: k.recovery_scan_max_records,
                recovery_time_margin: Duration::from_secs(k.recovery_time_margin_secs),
                dead_letter_topic: k.dead_letter_topic.clone(),
                properties: k.properties.clone(),
                secret_properties,
            },
            departments,
            routing: RoutingConfig {
                default_lead: raw.routing.default_lead.clone(),
                rules,
                reload_interval: Duration::from_millis(raw.routing.reload_interval_ms.max(100)),
                intake_desk,
                completeness,
                repeat,
            },
            mailbox,
            http_sources,
            sla: sla?,
            email,
            replies: replies?,
            reports,
        })
    }

    fn mailbox(&mut self, m: &raw::RawMailbox) -> Option<MailboxConfig> {
        const AT: &str = "channels.mailbox";
        let at = |k: &str| format!("{AT}.{k}");
        self.positive(&at("poll_interval_ms"), m.poll_interval_ms);
        self.positive(&at("max_message_bytes"), m.max_message_bytes);
        self.positive(&at("max_parts"), m.max_parts as u64);
        self.positive(&at("max_nesting_depth"), m.max_nesting_depth as u64);
        if let Some(d) = m.max_decoded_bytes {
            self.positive(&at("max_decoded_bytes"), d);
        }
        let letter_reference = m.letter_reference_pattern.as_ref().and_then(|p| {
            match regex::RegexBuilder::new(p).size_limit(1 << 20).build() {
                Ok(r) => Some(r),
                Err(e) => {
                    self.err(
                        &at("letter_reference_pattern"),
                        format!("not a valid regex: {e}"),
                    );
                    None
                }
            }
        });
        let imap_keys: [(&str, bool); 16] = [
            ("allow_plaintext_auth", m.allow_plaintext_auth.is_some()),
            ("host", m.host.is_some()),
            ("port", m.port.is_some()),
            ("tls", m.tls.is_some()),
            ("tls_ca_file", m.tls_ca_file.is_some()),
            ("username", m.username.is_some()),
            ("password", m.password.is_some()),
            ("mailbox", m.mailbox.is_some()),
            ("auth", m.auth.is_some()),
            ("after_commit", m.after_commit.is_some()),
            ("commit_flag", m.commit_flag.is_some()),
            ("move_to", m.move_to.is_some()),
            ("idle", m.idle.is_some()),
            ("timeout_secs", m.timeout_secs.is_some()),
            ("reconnect_initial_ms", m.reconnect_initial_ms.is_some()),
            ("reconnect_max_ms", m.reconnect_max_ms.is_some()),
        ];
        let kind = match m.kind.as_str() {
            "maildir" => {
                for (k, set) in imap_keys {
                    if set {
                        self.err(
                            &at(k),
                            "is an IMAP key; this mailbox has kind = \"maildir\"",
                        );
                    }
                }
                match &m.path {
                    Some(p) => Some(MailboxKind::Maildir { path: self.path(p) }),
                    None => {
                        self.err(&at("path"), "kind = \"maildir\" needs `path`");
                        None
                    }
                }
            }
            "imap" => {
                if m.path.is_some() {
                    self.err(
                        &at("path"),
                        "is a Maildir key; this mailbox has kind = \"imap\"",
                    );
                }
                self.imap(m).map(MailboxKind::Imap)
            }
            other => {
                self.err(
                    &at("kind"),
                    format!("`{other}` is not one of maildir, imap"),
                );
                None
            }
        };
        Some(MailboxConfig {
            kind: kind?,
            poll_interval: Duration::from_millis(m.poll_interval_ms),
            max_message_bytes: m.max_message_bytes,
            max_parts: m.max_parts,
            max_nesting_depth: m.max_nesting_depth,
            max_decoded_bytes: m.max_decoded_bytes.unwrap_or(m.max_message_bytes),
            letter_reference,
        })
    }

    fn imap(&mut self, m: &raw::RawMailbox) -> Option<ImapConfig> {
        let at = |k: &str| format!("channels.mailbox.{k}");
        let tls = match m.tls.as_deref().unwrap_or("tls") {
            "none" => ImapTls::None,
            "starttls" => ImapTls::StartTls,
            "tls" => ImapTls::Tls,
            other => {
                self.err(
                    &at("tls"),
                    format!("`{other}` is not one of none, starttls, tls"),
                );
                ImapTls::Tls
            }
        };
        let auth = match m.auth.as_deref().unwrap_or("login") {
            "login" => ImapAuth::Login,
            "plain" => ImapAuth::Plain,
            other => {
                self.err(&at("auth"), format!("`{other}` is not one of login, plain"));
                ImapAuth::Login
            }
        };
        let host = m.host.clone().unwrap_or_default();
        if host.trim().is_empty() {
            self.err(&at("host"), "kind = \"imap\" needs `host`");
        }
        let username = m.username.clone().unwrap_or_default();
        if username.is_empty() {
            self.err(&at("username"), "kind = \"imap\" needs `username`");
        }
        let password = match &m.password {
            Some(r) => self.secret(&at("password"), r),
            None => {
                self.err(
                    &at("password"),
                    "kind = \"imap\" needs `password = { env = \"VAR\" }`, `{ file = \"PATH\" }` or `{ credential = \"NAME\" }`",
                );
                None
            }
        };
        let mailbox = m.mailbox.clone().unwrap_or_else(|| "INBOX".into());
        if let Err(e) = crate::channels::imap::mailbox_name(&mailbox) {
            self.err(&at("mailbox"), e);
        }
        let after_commit = match m.after_commit.as_deref().unwrap_or("none") {
            "none" => AfterCommit::None,
            "flag" => {
                let f = m
                    .commit_flag
                    .clone()
                    .unwrap_or_else(|| "$PetitiondRecorded".into());
                if let Err(e) = crate::channels::imap::flag_name(&f) {
                    self.err(&at("commit_flag"), e);
                }
                AfterCommit::Flag(f)
            }
            "move" => match &m.move_to {
                Some(t) => {
                    if let Err(e) = crate::channels::imap::mailbox_name(t) {
                        self.err(&at("move_to"), e);
                    } else if *t == mailbox {
                        self.err(&at("move_to"), "must differ from `mailbox`");
                    }
                    AfterCommit::Move(t.clone())
                }
                None => {
                    self.err(&at("move_to"), "after_commit = \"move\" needs `move_to`");
                    AfterCommit::None
                }
            },
            other => {
                self.err(
                    &at("after_commit"),
                    format!("`{other}` is not one of none, flag, move"),
                );
                AfterCommit::None
            }
        };
        if m.commit_flag.is_some() && !matches!(after_commit, AfterCommit::Flag(_)) {
            self.err(&at("commit_flag"), "only used with after_commit = \"flag\"");
        }
        if m.move_to.is_some() && !matches!(after_commit, AfterCommit::Move(_)) {
            self.err(&at("move_to"), "only used with after_commit = \"move\"");
        }
        let timeout_secs = m.timeout_secs.unwrap_or(60);
        self.positive(&at("timeout_secs"), timeout_secs);
        let initial = m.reconnect_initial_ms.unwrap_or(1000);
        let max = m.reconnect_max_ms.unwrap_or(60_000);
        self.positive(&at("reconnect_initial_ms"), initial);
        if max < initial {
            self.err(
                &at("reconnect_max_ms"),
                "must be at least reconnect_initial_ms",
            );
        }
        if m.port == Some(0) {
            self.err(&at("port"), "must be greater than 0");
        }
        let tls_ca_file = m.tls_ca_file.as_ref().map(|f| self.path(f));
        if let Some(p) = &tls_ca_file
            && !p.is_file()
        {
            self.err(
                &at("tls_ca_file"),
                format!("{} is not a readable file", p.display()),
            );
        }
        if tls == ImapTls::None && m.allow_plaintext_auth != Some(true) {
            self.err(&at("tls"), format!("`none`: {PLAINTEXT_AUTH}"));
        }
        if tls_ca_file.is_some() && tls == ImapTls::None {
            self.err(
                &at("tls_ca_file"),
                "only used with tls = \"starttls\" or \"tls\"",
            );
        }
        Some(ImapConfig {
            host,
            port: m
                .port
                .unwrap_or(if tls == ImapTls::Tls { 993 } else { 143 }),
            tls,
            tls_ca_file,
            username,
            password: password?,
            mailbox,
            auth,
            after_commit,
            idle: m.idle.unwrap_or(true),
            timeout: Duration::from_secs(timeout_secs),
            reconnect_initial: Duration::from_millis(initial),
            reconnect_max: Duration::from_millis(max),
            allow_plaintext_auth: m.allow_plaintext_auth == Some(true),
        })
    }

    /// `[admin]`: the token and the bounds. Off loopback the token is required: the admin
    /// API shows item ids, departments and metrics, and is closed without it.
    fn admin(&mut self, a: &raw::RawAdmin, listen: Option<std::net::SocketAddr>) -> AdminConfig {
        let token = a.token.as_ref().and_then(|r| self.secret("admin.token", r));
        if let Some(t) = &token
            && t.expose().trim().chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            self.err(
                "admin.token",
                format!(
                    "too short: use at least {MIN_ADMIN_TOKEN_CHARS} random characters (e.g. `openssl rand -hex 32`)"
                ),
            );
        }
        if let Some(addr) = listen
            && !addr.ip().is_loopback()
            && a.token.is_none()
        {
            self.err(
                "admin.listen",
                format!(
                    "`{addr}` is not a loopback address: set admin.token (`{{ file = ... }}`, `{{ env = ... }}` or `{{ credential = ... }}`) before opening the admin API to the network"
                ),
            );
        }
        self.positive("admin.max_body_bytes", a.max_body_bytes as u64);
        self.positive("admin.max_connections", a.max_connections as u64);
        self.positive("admin.request_timeout_secs", a.request_timeout_secs);
        AdminConfig {
            token,
            max_body_bytes: a.max_body_bytes,
            max_connections: a.max_connections,
            request_timeout: Duration::from_secs(a.request_timeout_secs),
        }
    }

    fn email_address(&mut self, path: &str, m: &str) {
        let ok = m.split_once('@').is_some_and(|(u, d)| {
            !u.is_empty() && d.contains('.') && !m.contains(char::is_whitespace)
        });
        if !ok {
            self.err(path, format!("`{m}` is not an e-mail address"));
        }
    }

    fn email(&mut self, e: &raw::RawEmail) -> EmailConfig {
        let tls = match e.tls.as_str() {
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                self.err(
                    "alerts.email.tls",
                    format!("`{other}` is not one of starttls, tls, none"),
                );
                SmtpTls::StartTls
            }
        };
        if e.smtp_host.trim().is_empty() {
            self.err("alerts.email.smtp_host", "must not be empty");
        }
        self.email_address("alerts.email.from", &e.from);
        self.positive("alerts.email.timeout_secs", e.timeout_secs);
        self.positive("alerts.email.digest_threshold", e.digest_threshold as u64);
        self.positive("alerts.email.poll_interval_ms", e.poll_interval_ms);
        let password = e
            .password
            .as_ref()
            .and_then(|r| self.secret("alerts.email.password", r));
        if e.password.is_some() && tls == SmtpTls::None && !e.allow_plaintext_auth {
            self.err(
                "alerts.email.tls",
                format!("`none` with a password: {PLAINTEXT_AUTH}"),
            );
        }
        if password.is_some() != e.username.is_some() {
            self.err(
                "alerts.email.username",
                "give both `username` and `password`, or neither",
            );
        }
        EmailConfig {
            host: e.smtp_host.clone(),
            port: e.smtp_port,
            tls,
            username: e.username.clone(),
            password,
            from: e.from.clone(),
            timeout: Duration::from_secs(e.timeout_secs),
            digest_threshold: e.digest_threshold,
            poll_interval: Duration::from_millis(e.poll_interval_ms),
            allow_plaintext_auth: e.allow_plaintext_auth,
        }
    }

    fn event_kinds(&mut self, path: &str, names: &[String]) -> Vec<crate::sla::policy::EventKind> {
        let mut out = Vec::new();
        for (i, n) in names.iter().enumerate() {
            match crate::sla::policy::EventKind::parse(n) {
                Some(k) => out.push(k),
                None => self.err(
                    &format!("{path}[{i}]"),
                    format!("`{n}` is not a status event"),
                ),
            }
        }
        out
    }

    /// `[[sla.clocks]].verdicts`: known verdicts of the starting event (a reply's for
    /// `replied`, an evaluation's for `evaluated`; no other event has one).
    fn clock_verdicts(
        &mut self,
        path: &str,
        start: &crate::sla::policy::Trigger,
        verdicts: &[String],
    ) {
        use crate::sla::policy::{EventKind, Trigger};
        if verdicts.is_empty() {
            return;
        }
        let allowed: &[&str] = match start {
            Trigger::Event(EventKind::Replied) => &crate::status::reply::VERDICTS[..2],
            Trigger::Event(EventKind::Evaluated) => &crate::status::reply::VERDICTS[2..],
            _ => {
                self.err(
                    path,
                    "only a clock with start_on = \"replied\" or \"evaluated\" can filter on the event's verdict",
                );
                return;
            }
        };
        for (i, v) in verdicts.iter().enumerate() {
            if !allowed.contains(&v.as_str()) {
                self.err(
                    &format!("{path}[{i}]"),
                    format!("`{v}` is not one of {}", allowed.join(", ")),
                );
            }
        }
    }

    fn sla(&mut self, s: &raw::RawSla, dlq: &str) -> Option<SlaConfig> {
        use crate::sla::calendar::{Calendar, OfficeHours};
        use crate::sla::policy::{ClockPolicy, Trigger};
        self.topic_name("sla.status_topic", &s.status_topic);
        self.topic_name("sla.alerts_topic", &s.alerts_topic);
        if s.alerts_topic == dlq || s.status_topic == dlq || s.alerts_topic == s.status_topic {
            self.err(
                "sla.alerts_topic",
                "alerts, status and dead-letter topics must all differ",
            );
        }
        if s.consumer_group.trim().is_empty() {
            self.err("sla.consumer_group", "must not be empty");
        }
        for (i, m) in s.supervisors.iter().enumerate() {
            self.email_address(&format!("sla.supervisors[{i}]"), m);
        }
        let mut hours = Vec::new();
        for (i, h) in s.office_hours.iter().enumerate() {
            let parsed = h.split_once('-').and_then(|(a, b)| {
                Some((
                    a.trim().parse::<jiff::civil::Time>().ok()?,
                    b.trim().parse::<jiff::civil::Time>().ok()?,
                ))
            });
            match parsed {
                Some(p) => hours.push(p),
                None => self.err(
                    &format!("sla.office_hours[{i}]"),
                    format!("`{h}` is not an interval like 08:30-12:00"),
                ),
            }
        }
        let calendar = match OfficeHours::new(hours) {
            Err(e) => {
                self.err("sla.office_hours", e.to_string());
                None
            }
            Ok(hours) => {
                // Years without an official file get a provisional calendar (sla::provisional).
                let built = if s.calendar_files.is_empty() {
                    Calendar::builtin_with_provisional(s.overrides.clone(), hours, &s.time_zone)
                } else {
                    let files: Vec<PathBuf> =
                        s.calendar_files.iter().map(|f| self.path(f)).collect();
                    Calendar::load_with_provisional(
                        &files,
                        s.overrides.clone(),
                        hours,
                        &s.time_zone,
                    )
                };
                match built {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.err("sla.calendar_files", e.to_string());
                        None
                    }
                }
            }
        };
        let clocks = match &s.clocks {
            None => crate::sla::policy::defaults(),
            Some(raw) => {
                let mut ids = HashSet::new();
                let mut out = Vec::new();
                for (i, c) in raw.iter().enumerate() {
                    let at = |k: &str| format!("sla.clocks[{i}].{k}");
                    if !ids.insert(c.id.clone()) {
                        self.err(&at("id"), format!("duplicate clock id `{}`", c.id));
                    }
                    if let Err(e) = c.rule.validate() {
                        self.err(&at("rule"), e);
                    }
                    let start = if c.start_on == "received" {
                        Trigger::Received
                    } else {
                        match crate::sla::policy::EventKind::parse(&c.start_on) {
                            Some(k) => Trigger::Event(k),
                            None => {
                                self.err(
                                    &at("start_on"),
                                    format!(
                                        "`{}` is neither `received` nor a status event",
                                        c.start_on
                                    ),
                                );
                                Trigger::Received
                            }
                        }
                    };
                    let mut channels = Vec::new();
                    for (j, ch) in c.channels.iter().enumerate() {
                        match serde_json::from_value(serde_json::Value::String(ch.clone())) {
                            Ok(v) => channels.push(v),
                            Err(_) => self.err(
                                &format!("sla.clocks[{i}].channels[{j}]"),
                                format!("`{ch}` is not one of hotline, portal, letter"),
                            ),
                        }
                    }
                    let mut categories = Vec::new();
                    for (j, ca) in c.categories.iter().enumerate() {
                        match serde_json::from_value(serde_json::Value::String(ca.clone())) {
                            Ok(v) => categories.push(v),
                            Err(_) => self.err(
                                &format!("sla.clocks[{i}].categories[{j}]"),
                                format!(
                                    "`{ca}` is not one of livelihood, rights, policy, historical"
                                ),
                            ),
                        }
                    }
                    self.clock_verdicts(&at("verdicts"), &start, &c.verdicts);
                    if c.warn_at_percent.iter().any(|p| *p == 0 || *p >= 100) {
                        self.err(
                            &at("warn_at_percent"),
                            "each warning point must be between 1 and 99",
                        );
                    }
                    if c.stop_on.is_empty() {
                        self.err(
                            &at("stop_on"),
                            "a clock needs at least one event that stops it",
                        );
                    }
                    if c.citation.trim().is_empty() {
                        self.err(
                            &at("citation"),
                            "say where the deadline comes from (plan, regulation article)",
                        );
                    }
                    let policy = ClockPolicy {
                        id: c.id.clone(),
                        rule: c.rule,
                        start,
                        channels,
                        categories,
                        flags: c.flags.clone(),
                        verdicts: c.verdicts.clone(),
                        stop_on: self.event_kinds(&at("stop_on"), &c.stop_on),
                        pause_on: self.event_kinds(&at("pause_on"), &c.pause_on),
                        resume_on: self.event_kinds(&at("resume_on"), &c.resume_on),
                        extend_on: self.event_kinds(&at("extend_on"), &c.extend_on),
                        max_extension_days: c.max_extension_days,
                        warn_at_percent: c.warn_at_percent.clone(),
                        remind_every_working_days: c.remind_every_working_days,
                        escalate_after_working_days: c.escalate_after_working_days,
                        citation: c.citation.clone(),
                    };
                    out.push(policy);
                }
                out
            }
        };
        Some(SlaConfig {
            calendar: std::sync::Arc::new(calendar?),
            clocks,
            status_topic: s.status_topic.clone(),
            shared_status_departments: s.shared_status_departments.clone(),
            status_max_future_skew: Duration::from_secs(s.status_max_future_skew_secs),
            alerts_topic: s.alerts_topic.clone(),
            consumer_group: s.consumer_group.clone(),
            supervisors: s.supervisors.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
