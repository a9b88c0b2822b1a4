//! Admin HTTP: `/healthz` (the process is up), `/readyz` (topics verified, brokers reachable;
//! `?verbose` adds the working-day calendar's coverage),
//! `/channels` (each HTTP source's last successful poll, last error, staleness; JSON),
//! `/metrics` (Prometheus text) and the SLA board (`/board`, `/board.json`: [`board`]). A
//! stale upstream does not make the daemon unready: restarting petitiond cannot fix another
//! organisation's server; the stale alert tells the operator. Everything here is read-only;
//! nothing here shows petitioner data.

pub mod board;

use crate::kafka::client::BrokerHealth;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    // `?verbose` adds the calendar coverage: detail, not unreadiness (a restart cannot fix a
    // missing notice).
    if q.contains_key("verbose") {
        let calendar = board::calendar_readiness(&s.board, jiff::Timestamp::now());
        return (code, format!("{text}{calendar}"));
    }
    (code, text.to_string())
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
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/channels", get(channels))
        .route("/metrics", get(metrics))
        .route("/board", get(board::board_html))
        .route("/board.json", get(board::board_json))
        .with_state(state)
}

/// Binds first (so a port clash fails start-up), then serves until `stop`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
}
