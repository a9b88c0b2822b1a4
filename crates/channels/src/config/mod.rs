//! The channels' config sections, both stages: `[channels.mailbox]` (a Maildir or IMAP
//! mailbox), `[channels.hotline]` and `[channels.portal]` (HTTP sources, `http`). The serde
//! shape ([`RawChannels`]), the validated types and their validation, as functions over the
//! core's [`Validator`] (file, line and key path of every error). The daemon's `config` calls
//! them while composing its `Config`; what crosses sections (write-back clocks against the SLA
//! section) takes the other section's validated values as arguments.
//!
//! Nothing here opens a socket; paths and secrets resolve through the `Validator`.

pub mod http;
pub mod imap_names;
mod mailbox;

pub use http::{HttpSourceConfig, http_source, writeback_clocks};
pub use mailbox::mailbox;
use petitiond_core::diag::{PLAINTEXT_AUTH, RawSecretRef, Secret, Validator};
use petitiond_core::envelope::Channel;
use serde::Deserialize;
use std::path::PathBuf;
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannels {
    pub mailbox: Option<RawMailbox>,
    pub hotline: Option<http::RawHttpSource>,
    pub portal: Option<http::RawHttpSource>,
}

fn default_poll_ms() -> u64 {
    1000
}
fn default_max_message_bytes() -> u64 {
    25 * 1024 * 1024
}
fn default_max_parts() -> usize {
    200
}
fn default_maildir_kind() -> String {
    "maildir".into()
}

fn default_max_nesting_depth() -> usize {
    10
}

/// `[channels.mailbox]`: the keys of both kinds side by side; [`mailbox`] rejects the keys
/// that do not belong to the chosen `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailbox {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_maildir_kind")]
    pub kind: String,
    /// Maildir only.
    pub path: Option<String>,
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    #[serde(default = "default_max_parts")]
    pub max_parts: usize,
    /// Multipart and message/rfc822 levels a mail may nest.
    #[serde(default = "default_max_nesting_depth")]
    pub max_nesting_depth: usize,
    /// Decoded bytes of all parts together; absent = `max_message_bytes`.
    pub max_decoded_bytes: Option<u64>,
    /// Regex that finds the letter's reference (barcode) number in the subject or body.
    pub letter_reference_pattern: Option<String>,
    // IMAP only, below.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// none | starttls | tls
    pub tls: Option<String>,
    /// PEM file of extra CA certificates (an office CA), besides the system's.
    pub tls_ca_file: Option<String>,
    pub username: Option<String>,
    pub password: Option<RawSecretRef>,
    /// The IMAP folder to read (default INBOX).
    pub mailbox: Option<String>,
    /// login | plain
    pub auth: Option<String>,
    /// none | flag | move
    pub after_commit: Option<String>,
    pub commit_flag: Option<String>,
    pub move_to: Option<String>,
    pub idle: Option<bool>,
    pub timeout_secs: Option<u64>,
    pub reconnect_initial_ms: Option<u64>,
    pub reconnect_max_ms: Option<u64>,
    /// `tls = "none"` sends the password in clear: refused unless this is true.
    pub allow_plaintext_auth: Option<bool>,
}

/// The enabled HTTP channels (`[channels.hotline]`, `[channels.portal]`).
pub fn http_sources(v: &mut Validator<'_>, channels: &RawChannels) -> Vec<HttpSourceConfig> {
    let mut http_sources = Vec::new();
    for (name, channel, section) in [
        ("hotline", Channel::Hotline, &channels.hotline),
        ("portal", Channel::Portal, &channels.portal),
    ] {
        if let Some(s) = section.as_ref().filter(|s| s.enabled)
            && let Some(c) = http_source(v, name, channel, s)
        {
            http_sources.push(c);
        }
    }
    http_sources
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

fn default_true() -> bool {
    true
}
