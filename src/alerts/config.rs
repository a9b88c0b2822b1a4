//! `[alerts]`: alert e-mail (`[alerts.email]`: the SMTP server, its TLS and credentials, the
//! digest threshold), in both stages — the raw serde shape, the validated [`EmailConfig`] and
//! its checks — beside the mailer that uses it; the daemon's `config` calls [`email`].

use petitiond_core::diag::{PLAINTEXT_AUTH, RawSecretRef, Secret, Validator};
use serde::Deserialize;
use std::time::Duration;

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub email: Option<RawEmail>,
}

fn default_true() -> bool {
    true
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

/// Validates `[alerts.email]` (enabled); pushes every error found.
pub fn email(v: &mut Validator<'_>, e: &RawEmail) -> EmailConfig {
    let tls = match e.tls.as_str() {
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Tls,
        "none" => SmtpTls::None,
        other => {
            v.err(
                "alerts.email.tls",
                format!("`{other}` is not one of starttls, tls, none"),
            );
            SmtpTls::StartTls
        }
    };
    if e.smtp_host.trim().is_empty() {
        v.err("alerts.email.smtp_host", "must not be empty");
    }
    v.email_address("alerts.email.from", &e.from);
    v.positive("alerts.email.timeout_secs", e.timeout_secs);
    v.positive("alerts.email.digest_threshold", e.digest_threshold as u64);
    v.positive("alerts.email.poll_interval_ms", e.poll_interval_ms);
    let password = e
        .password
        .as_ref()
        .and_then(|r| v.secret("alerts.email.password", r));
    if e.password.is_some() && tls == SmtpTls::None && !e.allow_plaintext_auth {
        v.err(
            "alerts.email.tls",
            format!("`none` with a password: {PLAINTEXT_AUTH}"),
        );
    }
    if password.is_some() != e.username.is_some() {
        v.err(
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
