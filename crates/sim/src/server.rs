//! Server start and stop: binding a listener and running an axum app until stopped.

use axum::Router;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A bound listener and the origin clients reach it at.
pub(crate) struct Listener {
    listener: tokio::net::TcpListener,
    /// `http://127.0.0.1:PORT` (an unspecified bind address is reached over loopback).
    pub origin: String,
}

pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut local = listener.local_addr()?;
    if local.ip().is_unspecified() {
        local.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Ok(Listener {
        listener,
        origin: format!("http://{local}"),
    })
}

/// A running server task; stopping (or dropping) it ends the accept loop.
pub(crate) struct Server {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn spawn(bound: Listener, app: Router) -> Server {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(bound.listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await });
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "simulator server ended");
            }
        });
        Server {
            stop,
            task: Some(task),
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to two seconds, then aborts.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
