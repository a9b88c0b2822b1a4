//! Wiring: builds every part from the config, runs them as tasks, and stops them in order.
//!
//! Tasks: the channels (edge: watch the shutdown token), intake (ends when the channels drop
//! their senders), the outbox relay (ends when intake is done and the outbox is empty), and the
//! admin server. Stop order: stop polling → intake drains → relay flushes → exit. If that takes
//! longer than `daemon.shutdown_deadline_secs`, the relay is cut off; undelivered records stay
//! in the outbox for the next start. A task that fails stops the daemon with an error.

use crate::admin::{self, AdminState};
use crate::channels::http::{ChannelHealth, HttpChannel};
use crate::channels::imap::ImapChannel;
use crate::channels::mailbox::MaildirChannel;
use crate::config::{Config, MailboxKind};
use crate::envelope::Channel;
use crate::intake::Intake;
use crate::kafka::client::BrokerHealth;
use crate::kafka::relay::Relay;
use crate::metrics::Metrics;
use crate::sla::engine::Engine;
use crate::status::StatusConsumer;
use crate::store::blobs::FsBlobStore;
use crate::store::{SqliteStore, Store};
use anyhow::Context;
use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Capacity of the channel → intake queue: small, so a slow store pushes back on polling.
const INTAKE_QUEUE: usize = 64;

pub struct Application {
    /// Held for the process's life: one daemon per data dir (the store, the Maildir cursor and
    /// the outbox assume a single writer).
    _lock: std::fs::File,
    config: Arc<Config>,
    store: Arc<dyn Store>,
    blobs: Arc<FsBlobStore>,
    metrics: Metrics,
    admin: Option<tokio::net::TcpListener>,
    /// Repeat-petition linking with its key (read or generated under the data-dir lock).
    repeat: Option<Arc<crate::routing::repeat::Repeat>>,
}

impl Application {
    /// Opens the store and blob store and binds the admin port. No network calls to Kafka
    /// here: the relay verifies topics when it starts, retrying while brokers are down.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        check_private_dirs(&config)?;
        crate::store::files::create_private_dir(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let lock_path = config.data_dir.join("petitiond.lock");
        let lock = crate::store::files::open_private(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        lock.try_lock().map_err(|_| {
            anyhow::anyhow!(
                "another petitiond is running with data dir {} (lock {} is held)",
                config.data_dir.display(),
                lock_path.display()
            )
        })?;
        for w in crate::sla::calendar_warnings(&config.sla, jiff::Timestamp::now()) {
            tracing::warn!("{w}");
        }
        let store = SqliteStore::open(&config.store.path, config.store.busy_timeout)
            .with_context(|| format!("opening store {}", config.store.path.display()))?;
        let blobs = FsBlobStore::open(&config.blobs_dir)
            .with_context(|| format!("opening blob store {}", config.blobs_dir.display()))?;
        let repeat = match &config.routing.repeat {
            Some(r) => Some(Arc::new(
                crate::routing::repeat::Repeat::load(r, &config.data_dir)
                    .context("repeat-petition key")?,
            )),
            None => None,
        };
        let admin = match config.admin_listen {
            Some(addr) => Some(
                admin::bind(addr)
                    .await
                    .with_context(|| format!("binding admin listener {addr}"))?,
            ),
            None => None,
        };
        Ok(Self {
            _lock: lock,
            config: Arc::new(config),
            store: Arc::new(store),
            blobs: Arc::new(blobs),
            metrics: Metrics::new(),
            admin,
            repeat,
        })
    }

    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs until `shutdown` fires (then drains within the deadline) or a task fails.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let cfg = self.config.clone();
        let health = Arc::new(BrokerHealth::default());
        let ready = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let intake_done = CancellationToken::new();
        let hard_stop = CancellationToken::new();
        let admin_stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (fail_tx, mut fail_rx) = mpsc::unbounded_channel::<(&'static str, anyhow::Error)>();

        let spawn =
            |name: &'static str,
             fut: std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>| {
                let fail = fail_tx.clone();
                tracker.spawn(async move {
                    let result = match AssertUnwindSafe(fut).catch_unwind().await {
                        Ok(r) => r,
                        Err(_) => Err(anyhow::anyhow!("task panicked")),
                    };
                    if let Err(e) = result {
                        let _ = fail.send((name, e));
                    }
                })
            };

        let (tx, rx) = mpsc::channel(INTAKE_QUEUE);
        if let Some(mb) = &cfg.mailbox {
            match &mb.kind {
                MailboxKind::Maildir { path } => {
                    let ch = MaildirChannel {
                        source: "mailbox".into(),
                        path: path.clone(),
                        config: mb.clone(),
                        intake: tx.clone(),
                    };
                    spawn("mailbox", Box::pin(ch.run(shutdown.clone())));
                }
                MailboxKind::Imap(imap) => {
                    // The spool holds whole mails: created owner-only here, whatever the
                    // channel does with it (the umask covers its files).
                    let spool = cfg.data_dir.join("imap-spool");
                    crate::store::files::create_private_dir(&spool)
                        .with_context(|| format!("creating {}", spool.display()))?;
                    let ch = ImapChannel {
                        source: "mailbox".into(),
                        imap: imap.clone(),
                        max_message_bytes: mb.max_message_bytes,
                        poll_interval: mb.poll_interval,
                        spool,
                        intake: tx.clone(),
                        store: self.store.clone(),
                        metrics: self.metrics.clone(),
                    };
                    spawn("mailbox", Box::pin(ch.run(shutdown.clone())));
                }
            }
        }
        let channel_health = ChannelHealth::default();
        for source in &cfg.http_sources {
            let ch = HttpChannel {
                config: Arc::new(source.clone()),
                tz: cfg.sla.calendar.time_zone().clone(),
                store: self.store.clone(),
                blobs: self.blobs.clone(),
                intake: tx.clone(),
                metrics: self.metrics.clone(),
                health: channel_health.clone(),
                alerts_topic: cfg.sla.alerts_topic.clone(),
                relay_wake: wake.clone(),
            };
            let name = match source.channel {
                Channel::Hotline => "hotline",
                _ => "portal",
            };
            spawn(name, Box::pin(ch.run(shutdown.clone())));
        }
        drop(tx);

        // The relay drains once every producer of outbox rows (intake, the SLA engine, the
        // status consumer) has finished.
        let producers = Arc::new(AtomicUsize::new(3));
        let producer_done = {
            let (producers, intake_done) = (producers.clone(), intake_done.clone());
            move || {
                if producers.fetch_sub(1, Ordering::SeqCst) == 1 {
                    intake_done.cancel();
                }
            }
        };
        let (timers_tx, timers_rx) = mpsc::unbounded_channel();
        let router = Arc::new(
            crate::routing::Router::new(cfg.clone())
                .map_err(|d| anyhow::anyhow!("routing rules:\n{d}"))?,
        );
        tracing::info!(rules_version = %router.version(), "routing rules in force");
        if cfg.routing.rules.is_some() {
            let reloader = crate::routing::reload::Reloader {
                config: cfg.clone(),
                router: router.clone(),
                store: self.store.clone(),
                metrics: self.metrics.clone(),
                relay_wake: wake.clone(),
            };
            spawn("rules-reload", Box::pin(reloader.run(shutdown.clone())));
        }
        let intake = Intake {
            router,
            config: cfg.clone(),
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            metrics: self.metrics.clone(),
            relay_wake: wake.clone(),
            timers: timers_tx.clone(),
            repeat: self.repeat.clone(),
        };
        let done = producer_done.clone();
        spawn(
            "intake",
            Box::pin(async move {
                let r = intake.run(rx).await;
                done();
                r
            }),
        );

        let engine = Engine {
            config: cfg.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            relay_wake: wake.clone(),
            input: timers_rx,
        };
        let (done, stop) = (producer_done.clone(), shutdown.clone());
        spawn(
            "sla-engine",
            Box::pin(async move {
                let r = engine.run(stop).await;
                done();
                r
            }),
        );

        let status = StatusConsumer {
            config: cfg.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            health: health.clone(),
            timers: timers_tx,
            topics_ready: ready.clone(),
        };
        let (done, stop) = (producer_done, shutdown.clone());
        spawn(
            "status",
            Box::pin(async move {
                let r = status.run(stop).await;
                done();
                r
            }),
        );

        if let Some(email) = &cfg.email {
            let mailer = crate::alerts::mail::Mailer {
                config: email.clone(),
                store: self.store.clone(),
                metrics: self.metrics.clone(),
            };
            spawn("mailer", Box::pin(mailer.run(shutdown.clone())));
        }

        let relay = Relay {
            config: cfg.kafka.clone(),
            topics: cfg.topics(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            health: health.clone(),
            wake,
            ready: ready.clone(),
            alerts_topic: cfg.sla.alerts_topic.clone(),
        };
        spawn(
            "relay",
            Box::pin(relay.run(intake_done.clone(), hard_stop.clone())),
        );

        let admin_task = self.admin.map(|listener| {
            let state = AdminState {
                metrics: self.metrics.clone(),
                health,
                ready,
                channels: channel_health,
                store: self.store.clone(),
                board: Arc::new(admin::board::BoardConfig::from_config(&cfg)),
                auth: Arc::new(admin::auth::Auth::new(cfg.admin.token.as_ref())),
                limits: admin::Limits::from_config(&cfg.admin),
            };
            tokio::spawn(admin::serve(listener, state, admin_stop.clone()))
        });
        drop(fail_tx);

        let failure = tokio::select! {
            _ = shutdown.cancelled() => {
                tracing::info!("shutdown requested: stopping channels, draining");
                None
            }
            f = fail_rx.recv() => f,
        };
        if let Some((name, e)) = &failure {
            tracing::error!(
                task = name,
                error = format!("{e:#}"),
                "task failed; stopping"
            );
        }
        shutdown.cancel();
        if failure.is_some() {
            // A failed task cannot drain in order; stop the relay too.
            intake_done.cancel();
        }
        tracker.close();
        if tokio::time::timeout(cfg.shutdown_deadline, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                deadline_secs = cfg.shutdown_deadline.as_secs(),
                "shutdown deadline reached; cutting off the relay"
            );
            hard_stop.cancel();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tracker.wait()).await;
        }
        admin_stop.cancel();
        if let Some(t) = admin_task {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
        }
        let failure = failure.or_else(|| fail_rx.try_recv().ok());
        match failure {
            Some((name, e)) => Err(e.context(format!("task `{name}` failed"))),
            None => {
                tracing::info!("stopped cleanly");
                Ok(())
            }
        }
    }
}

/// Refuses directories holding personal data (the data dir, the store's directory, the blob
/// store) that group or others can read, unless `daemon.allow_shared_data_dir` (or
/// `--allow-shared-data-dir`) says the wider mode is deliberate; then it only warns. Used by
/// `run` at start and by `check`. Directories not created yet pass (they are created 0700).
pub fn check_private_dirs(config: &Config) -> anyhow::Result<()> {
    let mut dirs = vec![config.data_dir.clone(), config.blobs_dir.clone()];
    if let Some(d) = config.store.path.parent() {
        dirs.push(d.to_path_buf());
    }
    // `dir/.` and `dir` are one directory: compare normalised components.
    let mut dirs: Vec<std::path::PathBuf> = dirs.iter().map(|d| d.components().collect()).collect();
    dirs.sort();
    dirs.dedup();
    let problems: Vec<String> = dirs
        .iter()
        .filter_map(|d| crate::store::files::check_private(d).err())
        .map(|e| e.to_string())
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    if config.allow_shared_data_dir {
        for p in &problems {
            tracing::warn!("allowed by allow_shared_data_dir: {p}");
        }
        return Ok(());
    }
    anyhow::bail!("{}", problems.join("\n"))
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "signal received"),
        }
        t.cancel();
    });
    Ok(token)
}
