//! The timer engine: fires every SLA alert on time.
//!
//! In memory it keeps one entry per clock with an alert to come: a `BTreeSet` of
//! (instant in ms, clock row) ordered by time, plus the row → instant index to move an entry
//! (the shape of mini-redis's expiry set). It sleeps until the first instant or until intake or
//! the status consumer send new timers. When entries fall due it hands them to the store in one
//! transaction, which records each alert (alerts table, outbox row on the alerts topic, mail
//! row) and the clock's next instant; the relay then produces the alerts.
//!
//! On start it loads every open timer from the store; what fell due while the daemon was down
//! fires at once and is marked late. The store, not this structure, is the source of truth.
//!
//! Before that, it reconciles the clocks with the calendars now loaded ([`reconcile`]): pending
//! clocks get their due instant, and — when a year's calendar changed since the last start
//! (an official file installed for a provisional year) — every open clock whose due instant
//! or next alert rested on a provisional year is recomputed; each due instant that moves (or
//! appears) is announced by a due-update record on the alerts topic, committed with the clock.
//! Every minute it refreshes the provisional-clock gauge, and from 60 days before the last
//! official calendar day it logs the calendar notice once a day.
//!
//! Time is injected ([`petitiond_core::sla::time`]): every "now" comes from `Engine::clock`, a wall
//! clock (the system's in production, [`PausedClock`] in tests). Timers are due at wall-clock
//! instants; the waits between them are tokio sleeps (monotonic), each at most
//! [`MAX_SLEEP`], after which the wall clock is read again. So a wall-clock step forward
//! fires what it skipped within [`MAX_SLEEP`], a step back delays nothing already fired, and
//! a step is logged when wall and monotonic elapsed time disagree by more than [`STEP_LOG`].

use super::SlaInputs;
use crate::alerts;
use crate::metrics::{AlertLabels, Metrics};
use crate::store::{Fired, Recomputed, Store, StoredClock, Timer, blocking};
use jiff::Timestamp;
use petitiond_core::sla::calendar::CalendarError;
use petitiond_core::sla::clock::{State, worth_sending};
use petitiond_core::sla::time::{SharedClock, WallClock};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// Most clocks handled in one store transaction.
const FIRE_BATCH: usize = 2000;

/// Longest monotonic wait before the wall clock is read again: bounds how late a timer fires
/// after a wall-clock step forward.
pub const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(60);

/// Disagreement between wall and monotonic elapsed time logged as a wall-clock step.
pub const STEP_LOG: jiff::SignedDuration = jiff::SignedDuration::from_secs(2);

/// A wall clock that follows tokio's clock: `start` plus the tokio time elapsed since it was
/// made, plus any [`PausedClock::step`]. Under `tokio::time::pause()` it moves only when
/// tokio's time does (`advance`, or auto-advance to the next timer), so engine tests run on
/// paused time and finish in milliseconds. Tests use it; the daemon runs on
/// [`petitiond_core::sla::time::SystemClock`]. Daemon side (it needs tokio), unlike the trait.
#[derive(Debug)]
pub struct PausedClock {
    start: Timestamp,
    base: tokio::time::Instant,
    stepped_ms: std::sync::atomic::AtomicI64,
}

impl PausedClock {
    /// A clock that reads `start` now (call it inside the runtime, after `pause()`).
    pub fn starting_at(start: Timestamp) -> Arc<PausedClock> {
        Arc::new(PausedClock {
            start,
            base: tokio::time::Instant::now(),
            stepped_ms: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// Steps the wall clock by `by` without moving tokio's (monotonic) time: what NTP or an
    /// operator setting the date does.
    pub fn step(&self, by: jiff::SignedDuration) {
        self.stepped_ms
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl WallClock for PausedClock {
    fn now(&self) -> Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.base.elapsed()).unwrap_or_default();
        let stepped = jiff::SignedDuration::from_millis(
            self.stepped_ms.load(std::sync::atomic::Ordering::SeqCst),
        );
        self.start + elapsed + stepped
    }
}

/// How far the wall clock moved beyond the monotonic clock between two readings: `None`
/// within [`STEP_LOG`].
pub fn wall_step(
    wall_before: Timestamp,
    wall_now: Timestamp,
    mono_elapsed: std::time::Duration,
) -> Option<jiff::SignedDuration> {
    let mono = jiff::SignedDuration::try_from(mono_elapsed).unwrap_or(jiff::SignedDuration::MAX);
    let step = wall_now.duration_since(wall_before) - mono;
    (step.abs() > STEP_LOG).then_some(step)
}

/// The in-memory timer set.
#[derive(Default)]
pub struct Timers {
    by_time: BTreeSet<(i64, i64)>,
    at: HashMap<i64, i64>,
}

impl Timers {
    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Sets (or, with `i64::MIN`, removes) a clock's next instant.
    pub fn set(&mut self, t: Timer) {
        if let Some(old) = self.at.remove(&t.clock_row) {
            self.by_time.remove(&(old, t.clock_row));
        }
        if t.at_ms != i64::MIN {
            self.at.insert(t.clock_row, t.at_ms);
            self.by_time.insert((t.at_ms, t.clock_row));
        }
    }

    pub fn first(&self) -> Option<i64> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns up to `max` clocks due at or before `now_ms`.
    pub fn take_due(&mut self, now_ms: i64, max: usize) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.by_time.first() {
                Some(&(at, row)) if at <= now_ms => {
                    self.by_time.pop_first();
                    self.at.remove(&row);
                    out.push((row, at));
                }
                _ => break,
            }
        }
        out
    }
}

pub struct Engine {
    /// Its config sections: [`SlaInputs::from_config`].
    pub inputs: Arc<SlaInputs>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub relay_wake: Arc<Notify>,
    pub input: mpsc::UnboundedReceiver<Vec<Timer>>,
    /// Where "now" comes from: [`petitiond_core::sla::time::system`] in the daemon, a
    /// [`PausedClock`] in tests.
    pub clock: SharedClock,
}

impl Engine {
    /// Loads the open timers (restart-to-ready) and returns the set.
    pub async fn load(store: &Arc<dyn Store>) -> anyhow::Result<Timers> {
        let all = blocking(store, |s| s.open_timers()).await?;
        let mut t = Timers::default();
        for x in all {
            t.set(x);
        }
        Ok(t)
    }

    pub async fn run(mut self, stop: CancellationToken) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        self.reconcile().await?;
        let mut timers = Self::load(&self.store).await?;
        tracing::info!(
            open = timers.len(),
            load_ms = started.elapsed().as_millis() as u64,
            "SLA timers loaded"
        );
        // Ticks at once, then every minute.
        let mut coverage = tokio::time::interval(std::time::Duration::from_secs(60));
        coverage.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut logged = None;
        let mut resync = tokio::time::interval(self.inputs.resync.unwrap_or(MAX_SLEEP));
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.reset();
        let mut last = (self.clock.now(), tokio::time::Instant::now());
        loop {
            self.metrics.open_timers.set(timers.len() as i64);
            let now = self.clock.now();
            if let Some(step) = wall_step(last.0, now, last.1.elapsed()) {
                tracing::warn!(
                    step_ms = step.as_millis() as i64,
                    "the wall clock stepped; SLA timers follow the wall clock"
                );
            }
            last = (now, tokio::time::Instant::now());
            let sleep = match timers.first() {
                Some(at) => {
                    let wait = at - now.as_millisecond();
                    std::time::Duration::from_millis(wait.max(0) as u64).min(MAX_SLEEP)
                }
                None => MAX_SLEEP,
            };
            tokio::select! {
                msg = self.input.recv() => match msg {
                    Some(batch) => {
                        for t in batch {
                            timers.set(t);
                        }
                        // Drain what else is queued before sleeping again.
                        while let Ok(batch) = self.input.try_recv() {
                            for t in batch {
                                timers.set(t);
                            }
                        }
                    }
                    None => {
                        // Every sender is gone: keep firing until stopped.
                        tokio::select! {
                            _ = tokio::time::sleep(sleep) => self.fire_due(&mut timers).await?,
                            _ = stop.cancelled() => break,
                        }
                    }
                },
                _ = tokio::time::sleep(sleep) => self.fire_due(&mut timers).await?,
                _ = coverage.tick() => self.coverage(&mut logged).await,
                _ = resync.tick(), if self.inputs.resync.is_some() => {
                    // Several instances share the store: the timers other instances started
                    // or stopped. The store's set is the truth (what this process queued is
                    // committed before it is sent here). A timer two engines fire raises its
                    // alerts once: the store keeps one alert per id.
                    timers = Self::load(&self.store).await?;
                }
                _ = stop.cancelled() => break,
            }
        }
        tracing::info!(open = timers.len(), "SLA engine stopped");
        Ok(())
    }

    /// Reconciles the stored clocks with the calendars now loaded, before the timers load (so
    /// what fell due meanwhile fires on catch-up): see [`reconcile`]. Then remembers each
    /// year's calendar, so the next start with the same files recomputes nothing.
    async fn reconcile(&self) -> anyhow::Result<()> {
        let cal = self.inputs.sla.calendar.clone();
        let state = calendar_state(&cal);
        let stored = blocking(&self.store, |s| s.calendar_state()).await?;
        let changed = stored != state;
        let candidates = blocking(&self.store, move |s| s.clocks_to_recompute(changed)).await?;
        let out = reconcile(&self.inputs, candidates, changed, self.clock.now());
        let announced = if out.writes.is_empty() {
            0
        } else {
            let writes = out.writes;
            let r = blocking(&self.store, move |s| s.recompute_clocks(&writes)).await?;
            if r.skipped > 0 {
                tracing::info!(
                    skipped = r.skipped,
                    "clocks changed by a status event meanwhile were left as they are"
                );
            }
            r.announced
        };
        self.metrics.due_updates.inc_by(announced as u64);
        if announced > 0 {
            self.relay_wake.notify_one();
        }
        if changed {
            blocking(&self.store, move |s| s.set_calendar_state(&state)).await?;
        }
        self.metrics.pending_clocks.set(out.still_pending as i64);
        let official: Vec<i16> = cal.years().collect();
        if out.still_pending > 0 {
            tracing::warn!(computed = out.computed, pending = out.still_pending, official = ?official, "SLA clocks still pending: a calendar year they need has neither an official file nor a provisional calendar; add it to sla.calendar_files and restart");
        }
        tracing::info!(
            calendar_changed = changed,
            computed = out.computed,
            recomputed = out.recomputed,
            due_updates = announced,
            official = ?official,
            "SLA clocks reconciled with the calendars"
        );
        Ok(())
    }

    /// Refreshes the provisional-clock gauge; from 60 days before the official calendars end,
    /// and after, logs the notice once a day (`logged`: the last day it was logged). (The
    /// calendar-end gauge, set at start, is what the shipped alert rule watches.)
    async fn coverage(&self, logged: &mut Option<jiff::civil::Date>) {
        let cal = self.inputs.sla.calendar.clone();
        let now = self.clock.now();
        match blocking(&self.store, |s| s.open_provisional_clocks()).await {
            Ok(n) => {
                self.metrics.provisional_clocks.set(n as i64);
            }
            Err(e) => tracing::error!(error = %e, "cannot count provisional clocks"),
        }
        let Some(notice) = super::calendar_notice(&cal, now) else {
            return;
        };
        let today = cal.local_date(now);
        if notice.is_due() && *logged != Some(today) {
            *logged = Some(today);
            tracing::warn!(official_until = %notice.official_until, days_left = notice.days_left, "{}", notice.message);
        }
    }

    async fn fire_due(&self, timers: &mut Timers) -> anyhow::Result<()> {
        loop {
            let now = self.clock.now();
            let due = timers.take_due(now.as_millisecond(), FIRE_BATCH);
            if due.is_empty() {
                return Ok(());
            }
            let rows: Vec<i64> = due.iter().map(|(r, _)| *r).collect();
            let cfg = self.inputs.clone();
            let metrics = self.metrics.clone();
            let result = blocking(&self.store, move |s| {
                s.fire(&rows, &mut |clock| decide(&cfg, &metrics, clock, now))
            })
            .await?;
            for t in result.timers {
                timers.set(t);
            }
            if result.alerts > 0 {
                self.relay_wake.notify_one();
            }
        }
    }
}

/// For one clock that fell due: every alert scheduled up to `now`, and the next instant.
/// Catch-up after a restart (or an item that arrives long after its upstream creation) finds
/// several at once: they are recorded as fired, but only those still worth saying are sent,
/// marked late (see [`worth_sending`]).
fn decide(
    cfg: &SlaInputs,
    metrics: &Metrics,
    clock: &petitiond_core::sla::clock::Clock,
    now: Timestamp,
) -> Fired {
    let mut fired = Fired {
        last_alert_at: clock.last_alert_at,
        ..Fired::default()
    };
    let Some(policy) = cfg.sla.clock(&clock.clock_id) else {
        tracing::warn!(item = %clock.item_id, clock = %clock.clock_id, "clock no longer configured; no more alerts");
        return fired;
    };
    let cal = &cfg.sla.calendar;
    let mut c = clock.clone();
    let mut due = Vec::new();
    let mut marks = Vec::new();
    loop {
        match c.next_alert_marked(policy, cal) {
            Ok((Some((kind, at)), provisional)) if at <= now => {
                due.push((kind, at));
                marks.push(provisional);
                c.last_alert_at = Some(at);
            }
            Ok((Some((_, at)), provisional)) => {
                fired.next = Some(at);
                fired.next_provisional = provisional;
                break;
            }
            Ok((None, _)) => break,
            Err(e) => {
                metrics.clock_error(&c.clock_id);
                fired.next = Some(retry_at(cal, &e, now));
                tracing::error!(item = %c.item_id, clock = %c.clock_id, error = %e, retry_at = ?fired.next, "cannot compute the next SLA alert");
                break;
            }
        }
    }
    for (i, &(kind, at)) in due.iter().enumerate() {
        if worth_sending(kind, &c, &due[i + 1..], now) {
            let alert = alerts::build_marked(&cfg.alerts(), policy, &c, kind, at, now, marks[i]);
            let late_s = (now.as_millisecond() - at.as_millisecond()) as f64 / 1000.0;
            metrics.alert_lateness.observe(late_s.max(0.0));
            metrics
                .alerts
                .get_or_create(&AlertLabels {
                    clock: c.clock_id.clone(),
                    kind: kind.to_string(),
                    late: alert.late.to_string(),
                })
                .inc();
            tracing::warn!(
                item = %c.item_id, clock = %c.clock_id, alert = %kind, department = %c.department,
                due_at = %c.due_at, late = alert.late, "SLA alert"
            );
            fired.alerts.push(alert);
        }
        fired.last_alert_at = Some(at);
    }
    fired
}

/// When to look again at a clock whose next alert cannot be computed. A missing calendar year
/// `y`: the alert lies in `y` (it is after the last instant that could be computed), so the
/// first instant of `y` is early enough, and a restart with that year's calendar before then
/// computes it on time; the timer stays in the store either way. Otherwise, and once `y` has
/// begun without its calendar, hourly.
fn retry_at(
    cal: &petitiond_core::sla::calendar::Calendar,
    e: &CalendarError,
    now: Timestamp,
) -> Timestamp {
    let hourly = now + jiff::SignedDuration::from_hours(1);
    match e {
        CalendarError::YearNotLoaded(y) => jiff::civil::date(*y, 1, 1)
            .to_datetime(jiff::civil::Time::midnight())
            .to_zoned(cal.time_zone().clone())
            .map(|z| z.timestamp())
            .ok()
            .filter(|t| *t > now)
            .unwrap_or(hourly),
        _ => hourly,
    }
}

/// Each year's (basis, digest of its day kinds) in `cal`: what the store remembers to tell
/// whether the calendars changed between two starts.
pub fn calendar_state(cal: &petitiond_core::sla::calendar::Calendar) -> Vec<(i16, String, String)> {
    cal.all_years()
        .filter_map(|y| Some((y, cal.basis(y)?.as_str().to_string(), cal.digest(y).ok()?)))
        .collect()
}

/// What [`reconcile`] decided.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Clocks to write, each with its due-update record if its due instant moved or appeared.
    pub writes: Vec<Recomputed>,
    /// Pending clocks that got a due instant.
    pub computed: usize,
    /// Open clocks whose due instant or next alert was computed again.
    pub recomputed: usize,
    /// Pending clocks that still cannot be computed.
    pub still_pending: usize,
}

/// Reconciles stored clocks with the calendars in `cfg` at `at`. A pending clock is computed
/// from its start if it can be now (announced: `pending_computed`). When `calendar_changed`,
/// an open clock whose due instant or next alert rested on a provisional year is computed
/// again ([`Clock::recompute`]): written if anything moved, announced (`calendar_changed`)
/// if its due instant did. A clock with the same due instant is not announced, even if it is
/// no longer provisional. Pure: the caller reads and writes the store.
///
/// [`Clock::recompute`]: petitiond_core::sla::clock::Clock::recompute
pub fn reconcile(
    cfg: &SlaInputs,
    candidates: Vec<StoredClock>,
    calendar_changed: bool,
    at: Timestamp,
) -> Reconciled {
    use crate::kafka::wire::{DueUpdateReason, due_update_record};
    let cal = &cfg.sla.calendar;
    let mut out = Reconciled::default();
    for stored in candidates {
        let was = &stored.clock;
        let pending = was.state == State::Pending;
        if !pending && !calendar_changed {
            continue;
        }
        let Some(policy) = cfg.sla.clock(&was.clock_id) else {
            if pending {
                out.still_pending += 1;
            }
            continue;
        };
        let computed = was
            .recompute(policy, cal)
            .and_then(|n| Ok((n.next_alert_marked(policy, cal)?, n)));
        let ((next, next_provisional), clock) = match computed {
            Ok(((next, p), clock)) => ((next.map(|(_, t)| t), p), clock),
            Err(e) => {
                if pending {
                    out.still_pending += 1;
                } else {
                    tracing::error!(item = %was.item_id, clock = %was.clock_id, error = %e, "cannot recompute SLA clock; left as it was");
                }
                continue;
            }
        };
        let moved = pending || clock.due_at != was.due_at;
        if !moved
            && clock == *was
            && next == stored.next
            && next_provisional == stored.next_provisional
        {
            continue;
        }
        let announce = moved.then(|| {
            let reason = if pending {
                DueUpdateReason::PendingComputed
            } else {
                DueUpdateReason::CalendarChanged
            };
            let year = clock
                .provisional
                .then(|| {
                    cal.first_provisional_year(
                        cal.local_date(clock.started_at),
                        cal.local_date(clock.due_at),
                    )
                })
                .flatten();
            due_update_record(&cfg.sla.alerts_topic, was, &clock, year, reason, at)
        });
        if pending {
            out.computed += 1;
            tracing::info!(item = %clock.item_id, clock = %clock.clock_id, due_at = %clock.due_at, provisional = clock.provisional, "pending SLA clock computed");
        } else {
            out.recomputed += 1;
            if moved {
                tracing::info!(item = %clock.item_id, clock = %clock.clock_id, was = %was.due_at, due_at = %clock.due_at, provisional = clock.provisional, "SLA due instant moved by a calendar change");
            }
        }
        // The upstream hears of a moved first-touch due too (written with the clock).
        let writeback = if moved {
            crate::channels::http::writeback::dues_for_clock(
                &cfg.http_sources,
                cfg.tz(),
                &clock,
                at,
            )
        } else {
            Vec::new()
        };
        out.writes.push(Recomputed {
            row: stored.row,
            was: was.clone(),
            clock,
            next,
            next_provisional,
            announce,
            writeback,
        });
    }
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod paused_tests;
#[cfg(test)]
mod store_tests;
