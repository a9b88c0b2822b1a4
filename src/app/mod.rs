//! Wiring: builds every part from the config, runs them as tasks, and stops them in order.
//!
//! Tasks: the channels and their status write-back workers, the report scheduler (edge: watch
//! the shutdown token),
//! intake (ends when the channels drop their senders), the outbox relay (ends when intake is
//! done and the outbox is empty), and the admin server. Stop order: stop polling → intake
//! drains → relay flushes → exit. If that takes longer than `daemon.shutdown_deadline_secs`,
//! the relay is cut off; undelivered records stay in the outbox for the next start. A task
//! that fails stops the daemon with an error.

mod units;
use crate::admin::{self, AdminState};
use crate::channels::Incoming;
use crate::cluster::Ownership;
use crate::config::{Config, MailboxKind};
use crate::intake::Intake;
use crate::kafka::client::BrokerHealth;
use crate::kafka::relay::Relay;
use crate::metrics::Metrics;
use crate::sla::engine::Engine;
use crate::status::StatusConsumer;
use crate::store::Store;
use crate::store::blobs::BlobStore;
use anyhow::Context;
use futures::FutureExt;
use petitiond_core::envelope::Channel;
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
    blobs: Arc<dyn BlobStore>,
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
        // Off the runtime: the PostgreSQL client blocks on a runtime of its own.
        let (store_config, blobs_dir) = (config.store.clone(), config.blobs_dir.clone());
        let (store, blobs) = tokio::task::spawn_blocking(move || {
            crate::storage::open_store(&store_config, &blobs_dir)
        })
        .await
        .context("opening the store")??;
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
            store,
            blobs,
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
        // Before any task runs: a task's first value (an IMAP session up) must not be
        // overwritten by the initial zero.
        self.metrics
            .sla_calendar_end
            .set(calendar_end(&cfg.sla.calendar, jiff::Timestamp::now()).unwrap_or(0));
        init_series(&self.metrics, &cfg);
        let stops = Stops::default();
        let (fail_tx, mut fail_rx) = mpsc::unbounded_channel();
        let tasks = Tasks {
            tracker: TaskTracker::new(),
            fail: fail_tx,
            shutdown: shutdown.clone(),
            health: Arc::new(BrokerHealth::default()),
            ready: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(Notify::new()),
        };

        let (tx, rx) = mpsc::channel(INTAKE_QUEUE);
        let (mut units, channel_health) = self.channel_units(&tasks, tx)?;
        self.spawn_producers(&tasks, rx, &stops.intake_done)?;
        let ownership = match &cfg.cluster {
            None => {
                // The only instance: every unit at once, the relay draining in order.
                for (name, run) in units.start_all(&tasks.shutdown) {
                    tasks.spawn(name, run);
                }
                self.spawn_mailer_and_reports(&tasks);
                self.spawn_relay(&tasks, &stops);
                None
            }
            Some(cluster) => {
                self.singleton_units(&tasks, &mut units);
                let ownership = Ownership::new(&cluster.instance);
                self.spawn_cluster(&tasks, cluster, units, ownership.clone());
                Some(ownership)
            }
        };
        let admin_task = self.admin.map(|listener| {
            let state = AdminState {
                metrics: self.metrics.clone(),
                health: tasks.health.clone(),
                ready: tasks.ready.clone(),
                channels: channel_health,
                store: self.store.clone(),
                board: Arc::new(admin::board::BoardConfig::from_config(&cfg)),
                auth: Arc::new(admin::auth::Auth::new(cfg.admin.token.as_ref())),
                limits: admin::Limits::from_config(&cfg.admin),
                ownership,
            };
            tokio::spawn(admin::serve(listener, state, stops.admin.clone()))
        });
        // From here only the tasks hold the failure channel: it closes when they have all ended.
        let Tasks {
            tracker,
            fail,
            health,
            ready,
            ..
        } = tasks;
        drop(fail);

        let sampler = Sampler {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            health,
            ready: ready.clone(),
        };
        tracker.spawn(sampler.run(shutdown.clone()));

        let failure = supervise(&shutdown, &mut fail_rx, &ready).await;
        stop_in_order(
            &cfg,
            &shutdown,
            &stops,
            failure,
            &tracker,
            admin_task,
            &mut fail_rx,
        )
        .await
    }

    /// The tasks that write outbox rows — intake (reading `rx`), the SLA engine and the status
    /// consumer — and the rules reloader. `intake_done` is cancelled once all three producers
    /// have finished: then the relay drains.
    fn spawn_producers(
        &self,
        tasks: &Tasks,
        rx: mpsc::Receiver<Incoming>,
        intake_done: &CancellationToken,
    ) -> anyhow::Result<()> {
        let cfg = &self.config;
        let shutdown = &tasks.shutdown;
        let producers = Arc::new(AtomicUsize::new(3));
        let producer_done = {
            let intake_done = intake_done.clone();
            move || {
                if producers.fetch_sub(1, Ordering::SeqCst) == 1 {
                    intake_done.cancel();
                }
            }
        };
        let (timers_tx, timers_rx) = mpsc::unbounded_channel();
        let router = Arc::new(
            crate::routing::Router::new(crate::routing::RouterInputs::from_config(cfg))
                .map_err(|d| anyhow::anyhow!("routing rules:\n{d}"))?,
        );
        tracing::info!(rules_version = %router.version(), "routing rules in force");
        if cfg.routing.rules.is_some() {
            let reloader = crate::routing::reload::Reloader {
                routing: cfg.routing.clone(),
                alerts_topic: cfg.sla.alerts_topic.clone(),
                router: router.clone(),
                store: self.store.clone(),
                metrics: self.metrics.clone(),
                relay_wake: tasks.wake.clone(),
            };
            tasks.spawn("rules-reload", reloader.run(shutdown.clone()));
        } else {
            // SIGHUP (`systemctl reload`) must not kill the daemon when there is nothing to
            // reload: its default action is to terminate.
            tasks.spawn("sighup", acknowledge_sighup(shutdown.clone()));
        }
        let intake = Intake {
            router,
            inputs: Arc::new(crate::intake::IntakeInputs::from_config(cfg)),
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            metrics: self.metrics.clone(),
            relay_wake: tasks.wake.clone(),
            timers: timers_tx.clone(),
            repeat: self.repeat.clone(),
        };
        let done = producer_done.clone();
        tasks.spawn("intake", async move {
            let r = intake.run(rx).await;
            done();
            r
        });

        let engine = Engine {
            inputs: Arc::new(crate::sla::SlaInputs::from_config(cfg)),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            relay_wake: tasks.wake.clone(),
            input: timers_rx,
            clock: petitiond_core::sla::time::system(),
        };
        let (done, stop) = (producer_done.clone(), shutdown.clone());
        tasks.spawn("sla-engine", async move {
            let r = engine.run(stop).await;
            done();
            r
        });

        let status = StatusConsumer {
            inputs: Arc::new(crate::status::StatusInputs::from_config(cfg)),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            health: tasks.health.clone(),
            timers: timers_tx,
            topics_ready: tasks.ready.clone(),
        };
        let (done, stop) = (producer_done, shutdown.clone());
        tasks.spawn("status", async move {
            let r = status.run(stop).await;
            done();
            r
        });
        Ok(())
    }

    /// The mailer and the report scheduler, when configured.
    fn spawn_mailer_and_reports(&self, tasks: &Tasks) {
        let cfg = &self.config;
        if let Some(email) = &cfg.email {
            let mailer = crate::alerts::mail::Mailer {
                config: email.clone(),
                store: self.store.clone(),
                metrics: self.metrics.clone(),
            };
            tasks.spawn("mailer", mailer.run(tasks.shutdown.clone()));
        }
        if cfg.reports.is_some() {
            // Edge task: watches the shutdown token; what it queues is in the store, so the
            // relay and the mailer send it whether or not this task is still running.
            let scheduler = crate::report::schedule::Scheduler::new(
                Arc::new(crate::report::schedule::ReportInputs::from_config(cfg)),
                self.store.clone(),
                tasks.wake.clone(),
            );
            tasks.spawn("reports", scheduler.run(tasks.shutdown.clone()));
        }
    }

    /// The outbox relay: verifies the topics (then sets `ready`), delivers until the
    /// producers are done and the outbox is empty, or until the hard stop.
    fn spawn_relay(&self, tasks: &Tasks, stops: &Stops) {
        let cfg = &self.config;
        let relay = Relay {
            config: cfg.kafka.clone(),
            topics: cfg.topics(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            health: tasks.health.clone(),
            wake: tasks.wake.clone(),
            ready: tasks.ready.clone(),
            alerts_topic: cfg.sla.alerts_topic.clone(),
            lease: None,
        };
        tasks.spawn(
            "relay",
            relay.run(stops.intake_done.clone(), stops.hard_stop.clone()),
        );
    }
}

/// The daemon's task group: every task is tracked (the shutdown deadline waits for them) and
/// reports its error or panic on `fail`; and what the tasks share.
struct Tasks {
    tracker: TaskTracker,
    fail: mpsc::UnboundedSender<(String, anyhow::Error)>,
    /// The edge tasks watch it; inner stages end when their input closes.
    shutdown: CancellationToken,
    health: Arc<BrokerHealth>,
    /// Set by the relay once the topics are verified.
    ready: Arc<AtomicBool>,
    /// Wakes the relay when rows are queued.
    wake: Arc<Notify>,
}

impl Tasks {
    /// Spawns a tracked task; an error or a panic is sent on `fail` with the task's name.
    fn spawn(
        &self,
        name: impl Into<String>,
        fut: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let fail = self.fail.clone();
        let name = name.into();
        self.tracker.spawn(async move {
            let result = match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("task panicked")),
            };
            if let Err(e) = result {
                let _ = fail.send((name, e));
            }
        });
    }
}

/// The tokens of the ordered stop, after the shutdown token: the relay drains once the
/// producers are done (`intake_done`), is cut off at the deadline (`hard_stop`); the admin
/// server stops last (`admin`).
#[derive(Default)]
struct Stops {
    intake_done: CancellationToken,
    hard_stop: CancellationToken,
    admin: CancellationToken,
}

/// The supervisor loop: reports readiness to systemd once the relay has verified the topics
/// (the store is open and the channels were started before), and feeds the watchdog. It ticks
/// only while this task is scheduled, so a wedged runtime stops the WATCHDOG=1 messages and
/// systemd restarts the daemon. Returns the first task failure, or `None` on shutdown.
async fn supervise(
    shutdown: &CancellationToken,
    fail_rx: &mut mpsc::UnboundedReceiver<(String, anyhow::Error)>,
    ready: &AtomicBool,
) -> Option<(String, anyhow::Error)> {
    crate::notify::status("starting: waiting for Kafka to verify the topics");
    let watchdog = crate::notify::watchdog_interval();
    let mut beat = tokio::time::interval(watchdog.unwrap_or(std::time::Duration::from_secs(3600)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ready_poll = tokio::time::interval(std::time::Duration::from_millis(100));
    let mut ready_sent = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                tracing::info!("shutdown requested: stopping channels, draining");
                break None;
            }
            f = fail_rx.recv() => break f,
            _ = beat.tick(), if watchdog.is_some() => crate::notify::watchdog(),
            _ = ready_poll.tick(), if !ready_sent => {
                if ready.load(Ordering::Relaxed) {
                    ready_sent = true;
                    tracing::info!("ready: topics verified, store open, channels running");
                    crate::notify::ready("ready: topics verified, store open, channels running");
                }
            }
        }
    }
}

/// The ordered stop: the edge tasks stop, the inner stages drain (or, after a failure, the
/// relay stops too), all within the shutdown deadline, after which the relay is cut off; then
/// the admin server. The first failure, if any, is the daemon's error.
async fn stop_in_order(
    cfg: &Config,
    shutdown: &CancellationToken,
    stops: &Stops,
    failure: Option<(String, anyhow::Error)>,
    tracker: &TaskTracker,
    admin_task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    fail_rx: &mut mpsc::UnboundedReceiver<(String, anyhow::Error)>,
) -> anyhow::Result<()> {
    crate::notify::stopping();
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
        stops.intake_done.cancel();
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
        stops.hard_stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tracker.wait()).await;
    }
    stops.admin.cancel();
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

/// A token cancelled on SIGTERM or SIGINT. Also takes SIGHUP from its default action
/// (terminate) before the admin port opens: the reload task that answers it starts later, and
/// a `systemctl reload` in between must not kill the daemon (tokio keeps the handler installed
/// once registered; a SIGHUP before the reload task listens is simply not acted on).
pub fn shutdown_on_signals() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    drop(signal(SignalKind::hangup())?);
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

/// Answers SIGHUP when no routing rules file is configured: nothing is reloaded (the config
/// file itself is read at start only), but systemd's reload job completes.
async fn acknowledge_sighup(stop: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                crate::notify::reloading();
                tracing::info!("SIGHUP: no routing rules file configured, nothing to reload (other settings need a restart)");
                crate::notify::reloaded("ready: nothing to reload");
            }
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

/// The first instant not covered by the loaded working-day calendars, counting years without a
/// gap from the year of `now` (in the office's zone): the `sla_calendar_end` gauge, which the
/// "calendar running out" alert compares with the time. `now`'s own year not loaded: the start
/// of that year (already past, so the alert fires). Counts what `Calendar::years()` returns,
/// which must be the official years (files from a State Council notice): a year derived
/// without one must not count as covered (`calendar_end_counts_only_the_years_of_files` holds
/// this for the calendar the config builds).
pub fn calendar_end(
    cal: &petitiond_core::sla::calendar::Calendar,
    now: jiff::Timestamp,
) -> Option<i64> {
    let loaded: std::collections::BTreeSet<i16> = cal.years().collect();
    let mut year = cal.local_date(now).year();
    while loaded.contains(&year) {
        year += 1;
    }
    let first = jiff::civil::date(year, 1, 1)
        .to_zoned(cal.time_zone().clone())
        .ok()?;
    Some(first.timestamp().as_second())
}

/// Creates, at zero, the labelled series that the shipped alert rules and dashboard
/// (`deploy/`) watch and whose label values the config determines. A series that first
/// appears at 1 is invisible to `increase()` (there is no earlier sample), so without this
/// the first SLA breach after a start would never alert; and "stale == 1" needs a 0 first
/// to mean anything on a dashboard. Labels are config names only, never item data.
fn init_series(m: &Metrics, cfg: &Config) {
    use crate::metrics::{AlertLabels, ChannelLabel, ClockLabel, SourceLabel, TopicLabel};
    let mut channels = Vec::new();
    if let Some(mb) = &cfg.mailbox {
        channels.push(Channel::Letter);
        if matches!(mb.kind, MailboxKind::Imap(_)) {
            m.mailbox_connected
                .get_or_create(&SourceLabel {
                    source: "mailbox".into(),
                })
                .set(0);
        }
    }
    for source in &cfg.http_sources {
        channels.push(source.channel);
        m.channel_stale
            .get_or_create(&SourceLabel {
                source: source.name.clone(),
            })
            .set(0);
        if source.writeback.is_some() {
            use crate::channels::http::writeback::{ACKNOWLEDGED, COMPLETED, DUE};
            use crate::metrics::{SourceKind, SourceOutcome};
            for kind in [ACKNOWLEDGED, DUE, COMPLETED] {
                m.writeback_dead
                    .get_or_create(&SourceKind {
                        source: source.name.clone(),
                        kind: kind.into(),
                    })
                    .inc_by(0);
            }
            for outcome in ["delivered", "retry", "dead"] {
                m.writeback_requests
                    .get_or_create(&SourceOutcome {
                        source: source.name.clone(),
                        outcome: outcome.into(),
                    })
                    .inc_by(0);
            }
            m.writeback_pending
                .get_or_create(&SourceLabel {
                    source: source.name.clone(),
                })
                .set(0);
        }
    }
    for channel in channels {
        let label = ChannelLabel {
            channel: channel.as_str().into(),
        };
        m.items_received.get_or_create(&label).inc_by(0);
        m.items_duplicate.get_or_create(&label).inc_by(0);
        m.items_updated.get_or_create(&label).inc_by(0);
        m.items_supplemented.get_or_create(&label).inc_by(0);
    }
    for topic in cfg.topics() {
        let label = TopicLabel { topic };
        m.delivered.get_or_create(&label).inc_by(0);
        m.dead_lettered.get_or_create(&label).inc_by(0);
    }
    for clock in &cfg.sla.clocks {
        m.clock_errors
            .get_or_create(&ClockLabel {
                clock: clock.id.clone(),
            })
            .inc_by(0);
        let mut kinds: Vec<String> = clock
            .warn_at_percent
            .iter()
            .map(|p| format!("warning_{p}"))
            .collect();
        kinds.push("breach".into());
        if clock.escalate_after_working_days.is_some() {
            kinds.push("escalation".into());
        }
        for kind in kinds {
            for late in ["false", "true"] {
                m.alerts
                    .get_or_create(&AlertLabels {
                        clock: clock.id.clone(),
                        kind: kind.clone(),
                        late: late.into(),
                    })
                    .inc_by(0);
            }
        }
    }
}

/// Samples what no task reports by itself, every few seconds: readiness as `/readyz` sees it
/// and the age of the oldest undelivered outbox record. A failed read is logged and the gauge
/// keeps its last value; the sampler never stops the daemon.
struct Sampler {
    store: Arc<dyn Store>,
    metrics: Metrics,
    health: Arc<BrokerHealth>,
    ready: Arc<AtomicBool>,
}

impl Sampler {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Self::EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let ready = self.ready.load(Ordering::Relaxed) && !self.health.is_down();
            self.metrics.ready.set(i64::from(ready));
            match crate::store::blocking(&self.store, |s| s.oldest_pending_outbox()).await {
                Ok(oldest) => {
                    let age = oldest.map_or(0, |t| {
                        (jiff::Timestamp::now().as_second() - t.as_second()).max(0)
                    });
                    self.metrics.outbox_oldest_pending_age.set(age);
                }
                Err(e) => tracing::warn!(error = %e, "sampling the outbox's oldest record failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petitiond_core::sla::calendar::Calendar;

    /// The calendar the daemon runs on (built by the config, not `Calendar::builtin`): with
    /// only the 2026 file, coverage ends at 2027-01-01 in Shanghai, however later years are
    /// answered.
    #[test]
    fn calendar_end_counts_only_the_years_of_files() {
        let cfg = Config::parse(
            "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[departments]]\nid = \"d\"\nname = \"d\"\ntopic = \"t.d\"\n[routing]\ndefault_lead = \"d\"\n",
            "t.toml",
            std::path::Path::new("."),
        )
        .unwrap();
        let end = calendar_end(&cfg.sla.calendar, "2026-06-01T00:00:00Z".parse().unwrap());
        assert_eq!(
            end,
            Some(
                "2026-12-31T16:00:00Z"
                    .parse::<jiff::Timestamp>()
                    .unwrap()
                    .as_second()
            )
        );
    }

    #[test]
    fn calendar_end_is_the_first_instant_of_the_first_missing_year() {
        let cal = Calendar::builtin().unwrap();
        let years: Vec<i16> = cal.years().collect();
        assert_eq!(
            years,
            vec![2026],
            "the shipped calendars changed: update this test"
        );
        // 2027-01-01T00:00 in Shanghai.
        let end = jiff::Timestamp::from_second(
            calendar_end(&cal, "2026-06-01T00:00:00Z".parse().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            end,
            "2026-12-31T16:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        // New Year's Eve at 17:00 UTC is already 2027 in Shanghai: not covered from there.
        let end = calendar_end(&cal, "2026-12-31T17:00:00Z".parse().unwrap()).unwrap();
        assert_eq!(
            end,
            "2026-12-31T16:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second()
        );
        // A year before the first loaded one: its own start.
        let end = calendar_end(&cal, "2025-06-01T00:00:00Z".parse().unwrap()).unwrap();
        assert_eq!(
            end,
            "2024-12-31T16:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second()
        );
    }
}
