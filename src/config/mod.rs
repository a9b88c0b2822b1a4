//! Configuration: TOML in, validated types out, in two stages.
//!
//! Stage one (`raw`) is serde with `deny_unknown_fields`; stage two (`validate` here) checks
//! meaning and builds the types the rest of the daemon uses. Every error found in either stage
//! is reported at once, each with file, line and key path, so an operator fixes a file in one
//! pass. Secrets are never read from the TOML: it names an environment variable or a file.
//!
//! `config` is the composition: each component owns its section (raw shape, validated type,
//! checks: `petitiond_channels::config`, `routing::config`, `sla::config`, `alerts::config`,
//! `status::config`, `report::config`, `admin::config`), and this module, above them all,
//! composes [`Config`] from them, checks what crosses sections and cuts each task's inputs
//! (`inputs`). No component imports `config`.
//!
//! This module does not open sockets or files other than the config file and secret files.

mod inputs;
mod raw;
pub(crate) use petitiond_core::diag::toml_file;
mod validate;

/// `[reports]`, `[replies]` and `[routing]` are owned by their components (`report::config`,
/// `status::config`, `routing::config`); the old paths stay.
pub use crate::admin::config::{AdminConfig, MIN_ADMIN_TOKEN_CHARS};
pub use crate::alerts::config::{EmailConfig, SmtpTls};
pub use crate::report::config as reports;
pub use crate::routing::config::{self as routing, RoutingConfig};
pub use crate::sla::config::{SlaConfig, StatusSource, status_topics};
pub use crate::status::config as replies;
pub use petitiond_channels::config::{
    AfterCommit, HttpSourceConfig, ImapAuth, ImapConfig, ImapTls, MailboxConfig, MailboxKind, http,
    imap_names, url_for_log,
};
pub use petitiond_core::diag::{ConfigError, ConfigErrors, Secret};
use petitiond_core::diag::{PLAINTEXT_AUTH, Validator};
pub use petitiond_core::routing::{Department, RulesFiles};
pub use petitiond_kafka::KafkaConfig;
use raw::RawConfig;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    pub replies: petitiond_core::reply::ReplyChecker,
    /// The report schedule (`[reports]`); `None`: nothing scheduled.
    pub reports: Option<reports::ReportsConfig>,
    /// `[cluster]`: several instances share the upstreams; `None`: this is the only one.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// SQLite's database file (`backend = "sqlite"`).
    pub path: PathBuf,
    pub busy_timeout: Duration,
    pub backend: StoreBackend,
}

/// Which database holds the store (`store.backend`).
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// The embedded default: `path`, on this machine only.
    Sqlite,
    /// A PostgreSQL database shared by several instances.
    Postgres {
        url: Secret,
        pool_size: usize,
        connect_timeout: Duration,
    },
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
        let mut v = Validator::new(&toml, errors, base_dir);
        let config = raw.and_then(|raw| validate::validate(&mut v, raw));
        let mut errors = v.into_errors();
        match config {
            Some(c) if errors.is_empty() => Ok(c),
            _ => {
                if errors.is_empty() {
                    errors.push(ConfigError {
                        file: file.into(),
                        line: None,
                        path: String::new(),
                        message: "invalid configuration".into(),
                    });
                }
                errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
                Err(ConfigErrors(errors))
            }
        }
    }

    /// The topics status events are read from, each with whose events it carries.
    pub fn status_topics(&self) -> Vec<(String, StatusSource)> {
        status_topics(&self.departments, &self.sla)
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

#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
