//! `[admin]`: where the admin API listens, its token and its bounds, in both stages — the raw
//! serde shape, the validated [`AdminConfig`] and its checks — beside the server that uses
//! them; the daemon's `config` calls [`admin_listen`] and [`admin`].

use petitiond_core::diag::{RawSecretRef, Secret, Validator};
use serde::Deserialize;
use std::time::Duration;

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

/// `admin.listen`, when the admin server is enabled.
pub fn admin_listen(v: &mut Validator<'_>, a: &RawAdmin) -> Option<std::net::SocketAddr> {
    if !a.enabled {
        return None;
    }
    match a.listen.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            v.err(
                "admin.listen",
                format!("`{}` is not an address like 127.0.0.1:9464", a.listen),
            );
            None
        }
    }
}

/// `[admin]`: the token and the bounds. Off loopback the token is required: the admin
/// API shows item ids, departments and metrics, and is closed without it.
pub fn admin(
    v: &mut Validator<'_>,
    a: &RawAdmin,
    listen: Option<std::net::SocketAddr>,
) -> AdminConfig {
    let token = a.token.as_ref().and_then(|r| v.secret("admin.token", r));
    if let Some(t) = &token
        && t.expose().trim().chars().count() < MIN_ADMIN_TOKEN_CHARS
    {
        v.err(
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
        v.err(
            "admin.listen",
            format!(
                "`{addr}` is not a loopback address: set admin.token (`{{ file = ... }}`, `{{ env = ... }}` or `{{ credential = ... }}`) before opening the admin API to the network"
            ),
        );
    }
    v.positive("admin.max_body_bytes", a.max_body_bytes as u64);
    v.positive("admin.max_connections", a.max_connections as u64);
    v.positive("admin.request_timeout_secs", a.request_timeout_secs);
    AdminConfig {
        token,
        max_body_bytes: a.max_body_bytes,
        max_connections: a.max_connections,
        request_timeout: Duration::from_secs(a.request_timeout_secs),
    }
}
