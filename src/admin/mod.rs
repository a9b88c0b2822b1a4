//! Admin HTTP: `/healthz` (the process is up), `/readyz` (topics verified, brokers reachable;
//! `?verbose` adds the working-day calendar's coverage),
//! `/channels` (each HTTP source's last successful poll, last error, staleness; JSON),
//! `/metrics` (Prometheus text) and the SLA board (`/board`, `/board.json`: [`board`]). A
//! stale upstream does not make the daemon unready: restarting petitiond cannot fix another
//! organisation's server; the stale alert tells the operator. Everything here is read-only;
//! nothing here shows petitioner data.
//!
//! Closed by default ([`auth`]): everything but `/healthz`, `/readyz` and `/login` needs the
//! `admin.token`. Bounded: at most `admin.max_connections` open connections (more are closed
//! at once), request headers within `admin.request_timeout_secs`, each request answered (or
//! 503) within it, and bodies of at most `admin.max_body_bytes` (413).

pub mod auth;
pub mod board;
pub mod config;

use crate::kafka::client::BrokerHealth;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct AdminState {
    pub metrics: Metrics,
    pub health: Arc<BrokerHealth>,
    pub ready: Arc<AtomicBool>,
    pub channels: crate::channels::http::ChannelHealth,
    /// The board reads through it (its own read-only connection, on the blocking pool).
    pub store: std::sync::Arc<dyn crate::store::Store>,
    pub board: Arc<board::BoardConfig>,
    /// The token check (`admin.token`); no token: only the public paths answer.
    pub auth: Arc<auth::Auth>,
    pub limits: Limits,
    /// Several instances: which units this instance owns (`/readyz` lists them); `None`: the
    /// only instance.
    pub ownership: Option<crate::cluster::Ownership>,
}

/// What one client may ask of the admin server (`[admin]`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub request_timeout: Duration,
}

impl Limits {
    pub fn from_config(a: &config::AdminConfig) -> Limits {
        Limits {
            max_body_bytes: a.max_body_bytes,
            max_connections: a.max_connections,
            request_timeout: a.request_timeout,
        }
    }
}

impl FromRef<AdminState> for Arc<auth::Auth> {
    fn from_ref(s: &AdminState) -> Self {
        s.auth.clone()
    }
}

async fn channels(State(s): State<AdminState>) -> impl IntoResponse {
    let snapshot = s.channels.lock().map(|c| c.clone()).unwrap_or_default();
    axum::Json(snapshot)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(
    State(s): State<AdminState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> impl IntoResponse {
    let (code, text) = if !s.ready.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: kafka topics not verified yet\n",
        )
    } else if s.health.is_down() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "kafka brokers unreachable\n",
        )
    } else {
        (StatusCode::OK, "ready\n")
    };
    let mut text = text.to_string();
    // Several instances: which units this one runs (an operator moving a channel by hand
    // watches it here), one line per unit with its lease epoch.
    if let Some(o) = &s.ownership {
        text.push_str(&ownership_lines(o));
    }
    // `?verbose` adds the calendar coverage: detail, not unreadiness (a restart cannot fix a
    // missing notice).
    if q.contains_key("verbose") {
        let calendar = board::calendar_readiness(&s.board, jiff::Timestamp::now());
        return (code, format!("{text}{calendar}"));
    }
    (code, text)
}

/// `instance NAME owns N units` and a line per owned unit (`owns UNIT epoch E since T`).
fn ownership_lines(o: &crate::cluster::Ownership) -> String {
    let owned = o.owned();
    let mut out = format!("instance {} owns {} units\n", o.instance(), owned.len());
    for u in owned {
        out.push_str(&format!(
            "owns {} epoch {} since {}\n",
            u.unit, u.epoch, u.since
        ));
    }
    out
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

pub fn router(state: AdminState) -> Router {
    let (auth, limits) = (state.auth.clone(), state.limits.clone());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/login", get(auth::login_get).post(auth::login_post))
        .route("/channels", get(channels))
        .route("/metrics", get(metrics))
        .route("/board", get(board::board_html))
        .route("/board.json", get(board::board_json))
        // Innermost first: the token check, then the bounds around everything.
        .layer(axum::middleware::from_fn_with_state(auth, auth::require))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            limits.max_body_bytes,
        ))
        .with_state(state)
}

/// Binds first (so a port clash fails start-up), then serves until `stop`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves HTTP/1.1 until `stop`: at most `max_connections` connections at once (another is
/// closed on accept), request headers within `request_timeout` (a client that trickles them
/// is cut off), then a graceful stop of open connections (2 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let limits = state.limits.clone();
    let app = router(state);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait, never spin.
                    tracing::warn!(error = %e, "admin: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max_connections = limits.max_connections,
                "admin: too many connections; closing a new one"
            );
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let (stop, timeout) = (stop.clone(), limits.request_timeout);
        conns.spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
    conns.close();
    let _ = tokio::time::timeout(Duration::from_secs(3), conns.wait()).await;
    Ok(())
}

#[cfg(test)]
mod tests;
