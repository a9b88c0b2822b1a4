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

use crate::alerts;
use crate::config::Config;
use crate::metrics::{AlertLabels, Metrics};
use crate::sla::calendar::CalendarError;
use crate::sla::clock::worth_sending;
use crate::store::{Fired, Store, Timer, blocking};
use jiff::Timestamp;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// Most clocks handled in one store transaction.
const FIRE_BATCH: usize = 2000;

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
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub relay_wake: Arc<Notify>,
    pub input: mpsc::UnboundedReceiver<Vec<Timer>>,
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
        let started = std::time::Instant::now();
        self.compute_pending().await?;
        let mut timers = Self::load(&self.store).await?;
        tracing::info!(
            open = timers.len(),
            load_ms = started.elapsed().as_millis() as u64,
            "SLA timers loaded"
        );
        loop {
            self.metrics.open_timers.set(timers.len() as i64);
            let sleep = match timers.first() {
                Some(at) => {
                    let wait = at - Timestamp::now().as_millisecond();
                    std::time::Duration::from_millis(wait.clamp(0, 3_600_000) as u64)
                }
                None => std::time::Duration::from_secs(3600),
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
                _ = stop.cancelled() => break,
            }
        }
        tracing::info!(open = timers.len(), "SLA engine stopped");
        Ok(())
    }

    /// Clocks that could not be computed when they started (see [`State::Pending`]) are
    /// computed now, before the timers load, so what fell due meanwhile fires on catch-up.
    ///
    /// [`State::Pending`]: crate::sla::clock::State::Pending
    async fn compute_pending(&self) -> anyhow::Result<()> {
        let pending = blocking(&self.store, |s| s.pending_clocks()).await?;
        if pending.is_empty() {
            self.metrics.pending_clocks.set(0);
            return Ok(());
        }
        let (computed, still) = compute_pending(&self.config, pending);
        let n = computed.len();
        if n > 0 {
            blocking(&self.store, move |s| s.compute_clocks(&computed)).await?;
        }
        self.metrics.pending_clocks.set(still as i64);
        if still > 0 {
            let years: Vec<i16> = self.config.sla.calendar.years().collect();
            tracing::warn!(computed = n, pending = still, calendars = ?years, "SLA clocks still pending: a calendar year they need is not loaded; add it to sla.calendar_files and restart");
        } else {
            tracing::info!(computed = n, "every pending SLA clock computed");
        }
        Ok(())
    }

    async fn fire_due(&self, timers: &mut Timers) -> anyhow::Result<()> {
        loop {
            let now = Timestamp::now();
            let due = timers.take_due(now.as_millisecond(), FIRE_BATCH);
            if due.is_empty() {
                return Ok(());
            }
            let rows: Vec<i64> = due.iter().map(|(r, _)| *r).collect();
            let cfg = self.config.clone();
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
    cfg: &Config,
    metrics: &Metrics,
    clock: &crate::sla::clock::Clock,
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
    loop {
        match c.next_alert(policy, cal) {
            Ok(Some((kind, at))) if at <= now => {
                due.push((kind, at));
                c.last_alert_at = Some(at);
            }
            Ok(Some((_, at))) => {
                fired.next = Some(at);
                break;
            }
            Ok(None) => break,
            Err(e) => {
                metrics
                    .clock_errors
                    .get_or_create(&crate::metrics::ClockLabel {
                        clock: c.clock_id.clone(),
                    })
                    .inc();
                fired.next = Some(retry_at(cal, &e, now));
                tracing::error!(item = %c.item_id, clock = %c.clock_id, error = %e, retry_at = ?fired.next, "cannot compute the next SLA alert");
                break;
            }
        }
    }
    for (i, &(kind, at)) in due.iter().enumerate() {
        if worth_sending(kind, &c, &due[i + 1..], now) {
            let alert = alerts::build(cfg, policy, &c, kind, at, now);
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
fn retry_at(cal: &crate::sla::calendar::Calendar, e: &CalendarError, now: Timestamp) -> Timestamp {
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

/// Computes the clocks left pending (their calendar year was not loaded when they started)
/// with the calendars loaded now. Returns the timers of those computed and how many stay
/// pending.
fn compute_pending(
    cfg: &Config,
    pending: Vec<(i64, crate::sla::clock::Clock)>,
) -> (
    Vec<(i64, crate::sla::clock::Clock, Option<Timestamp>)>,
    usize,
) {
    let cal = &cfg.sla.calendar;
    let mut computed = Vec::new();
    let mut still = 0;
    for (row, c) in pending {
        let Some(policy) = cfg.sla.clock(&c.clock_id) else {
            still += 1;
            continue;
        };
        let started = c
            .compute_pending(policy, cal)
            .and_then(|n| Ok((n.next_alert(policy, cal)?.map(|(_, t)| t), n)));
        match started {
            Ok((next, clock)) => {
                tracing::info!(item = %clock.item_id, clock = %clock.clock_id, due_at = %clock.due_at, "pending SLA clock computed");
                computed.push((row, clock, next));
            }
            Err(_) => still += 1,
        }
    }
    (computed, still)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[departments]]\nid = \"hrss\"\nname = \"hrss\"\ntopic = \"t.hrss\"\n[routing]\ndefault_lead = \"hrss\"\n",
            "t.toml",
            std::path::Path::new("."),
        )
        .unwrap()
    }

    /// The shipped 2026 calendar plus a made-up 2027 with one holiday (Jan 1). Test data only: petitiond ships
    /// no calendar that the State Council has not published.
    fn with_2027(cfg: &mut Config) {
        use crate::sla::calendar::{Calendar, OfficeHours, YearCalendar};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("calendars");
        let y2026 = YearCalendar::read(&dir.join("cn-2026.toml")).unwrap();
        let y2027 =
            YearCalendar::parse(
            "year = 2027\nsource = \"test\"\n[[holiday]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-01\nnotice = \"test\"\n",
            "test-2027.toml",
        ).unwrap();
        let tz = cfg.sla.calendar.time_zone().clone();
        cfg.sla.calendar = Arc::new(
            Calendar::new(vec![y2026, y2027], Vec::new(), OfficeHours::default(), tz).unwrap(),
        );
    }

    #[test]
    fn a_pending_clock_waits_for_its_calendar_then_runs_from_its_start() {
        let mut cfg = config();
        let policy = cfg.sla.clock("statutory.handle").unwrap().clone();
        let start: Timestamp = "2026-12-02T02:00:00Z".parse().unwrap();
        assert!(matches!(
            crate::sla::clock::Clock::start(&policy, "i", "hrss", start, &cfg.sla.calendar),
            Err(CalendarError::YearNotLoaded(2027))
        ));
        let pending = crate::sla::clock::Clock::pending(&policy, "i", "hrss", start);
        let (computed, still) = compute_pending(&cfg, vec![(7, pending.clone())]);
        assert!(computed.is_empty());
        assert_eq!(still, 1);

        with_2027(&mut cfg);
        let (computed, still) = compute_pending(&cfg, vec![(7, pending)]);
        assert_eq!(still, 0);
        let (row, clock, next) = &computed[0];
        assert_eq!(*row, 7);
        assert_eq!(clock.state, crate::sla::clock::State::Running);
        assert_eq!(
            clock.started_at, start,
            "from the item's arrival, not from now"
        );
        // 60 days after Wed 12-02 is Sun 2027-01-31 → the next working day, Mon 02-01, 17:30.
        assert_eq!(
            clock.due_at,
            "2027-02-01T09:30:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(next.is_some());
    }

    #[test]
    fn a_clock_due_before_a_missing_year_still_warns_and_breaches() {
        let cfg = config();
        let policy = cfg.sla.clock("statutory.accept").unwrap().clone();
        // Arrived Mon 12-14: due Tue 12-29; its reminders and escalation need 2027.
        let start: Timestamp = "2026-12-14T02:00:00Z".parse().unwrap();
        let clock = crate::sla::clock::Clock::start(&policy, "i", "hrss", start, &cfg.sla.calendar)
            .unwrap();
        let now: Timestamp = "2026-12-30T02:00:00Z".parse().unwrap();
        let fired = decide(&cfg, &Metrics::new(), &clock, now);
        let kinds: Vec<&str> = fired.alerts.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(kinds, ["breach"], "warnings superseded, breach sent");
        // The first reminder needs 2027: looked at again when 2027 begins, not dropped.
        assert_eq!(
            fired.next,
            Some("2026-12-31T16:00:00Z".parse().unwrap()),
            "2027-01-01 00:00 in the office's zone"
        );
    }

    #[test]
    fn timers_move_and_fall_due_in_order() {
        let mut t = Timers::default();
        t.set(Timer {
            clock_row: 1,
            at_ms: 300,
        });
        t.set(Timer {
            clock_row: 2,
            at_ms: 100,
        });
        t.set(Timer {
            clock_row: 3,
            at_ms: 200,
        });
        t.set(Timer {
            clock_row: 1,
            at_ms: 50,
        }); // moved earlier
        t.set(Timer {
            clock_row: 3,
            at_ms: i64::MIN,
        }); // stopped
        assert_eq!(t.len(), 2);
        assert_eq!(t.first(), Some(50));
        assert_eq!(t.take_due(150, 10), vec![(1, 50), (2, 100)]);
        assert!(t.is_empty());
    }
}
