//! Hot reload of the routing rules: on a change to the rules file, a dictionary or the
//! classifier model (polled),
//! and on SIGHUP. A new file is validated and compiled before it is swapped in; a bad one
//! keeps the old rules running, is logged with file and line, and raises an alert event on
//! the alerts topic. Every reload logs the old and new version hashes. Channels never stop.

use super::Router;
use super::config::RoutingConfig;
use crate::kafka::wire::{CONTENT_TYPE, SPEC_VERSION};
use crate::metrics::Metrics;
use crate::store::{NewOutbox, Store, blocking};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub const TYPE_RELOAD_FAILED: &str = "cn.gov.petition.rules.reload_failed.v1";

pub struct Reloader {
    /// `[routing]`: the files watched, the poll interval.
    pub routing: RoutingConfig,
    /// Where a failed reload is announced (`sla.alerts_topic`).
    pub alerts_topic: String,
    pub router: Arc<Router>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub relay_wake: Arc<Notify>,
}

/// What the files look like now: (path, modified, length) of the rules file, the model file
/// and every dictionary, so an edit, an added or a removed file is seen.
fn fingerprint(routing: &RoutingConfig) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let Some(r) = &routing.rules else {
        return Vec::new();
    };
    let mut paths = vec![r.rules_file.clone()];
    paths.extend(r.model_file.clone());
    if let Ok(dir) = std::fs::read_dir(&r.dictionaries_dir) {
        paths.extend(dir.flatten().map(|e| e.path()));
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let modified = m.as_ref().and_then(|m| m.modified().ok());
            let len = m.map_or(0, |m| m.len());
            (p, modified, len)
        })
        .collect()
}

impl Reloader {
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        let mut seen = fingerprint(&self.routing);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.routing.reload_interval) => {
                    let now = fingerprint(&self.routing);
                    if now != seen {
                        seen = now;
                        self.reload("file changed").await?;
                    }
                }
                _ = hup.recv() => {
                    seen = fingerprint(&self.routing);
                    // systemd (`systemctl reload`): RELOADING=1 ... READY=1, whatever the outcome.
                    crate::notify::reloading();
                    let reloaded = self.reload("SIGHUP").await;
                    crate::notify::reloaded("ready: routing rules re-read on SIGHUP");
                    reloaded?;
                }
                _ = stop.cancelled() => return Ok(()),
            }
        }
    }

    async fn reload(&self, why: &str) -> anyhow::Result<()> {
        let router = self.router.clone();
        let result = tokio::task::spawn_blocking(move || router.reload()).await?;
        match result {
            Ok((old, new)) => {
                self.metrics.rules_reloaded.inc();
                tracing::info!(trigger = why, old_version = %old, new_version = %new, "routing rules reloaded");
            }
            Err(d) => {
                self.metrics.rules_reload_failed.inc();
                let in_force = self.router.version();
                let errors: Vec<String> = d.errors.iter().map(|e| e.to_string()).collect();
                tracing::error!(trigger = why, version_in_force = %in_force, errors = ?errors, "routing rules reload failed; the previous rules stay in force");
                let id = uuid::Uuid::new_v4().to_string();
                let now = jiff::Timestamp::now();
                let file = self
                    .routing
                    .rules
                    .as_ref()
                    .map(|r| r.rules_file.display().to_string())
                    .unwrap_or_default();
                let payload = serde_json::json!({
                    "version": 1,
                    "kind": "rules_reload_failed",
                    "file": file,
                    "errors": errors,
                    "version_in_force": in_force,
                    "at": now.to_string(),
                });
                let record = NewOutbox {
                    topic: self.alerts_topic.clone(),
                    key: "routing-rules".into(),
                    ce_id: id.clone(),
                    headers: vec![
                        ("ce_specversion".into(), SPEC_VERSION.into()),
                        ("ce_id".into(), id),
                        ("ce_source".into(), "urn:petitiond:routing".into()),
                        ("ce_type".into(), TYPE_RELOAD_FAILED.into()),
                        ("ce_time".into(), now.to_string()),
                        ("ce_subject".into(), file),
                        ("content-type".into(), CONTENT_TYPE.into()),
                    ],
                    payload: serde_json::to_vec(&payload)?,
                };
                blocking(&self.store, move |s| s.enqueue("routing-rules", &record)).await?;
                self.relay_wake.notify_one();
            }
        }
        Ok(())
    }
}
