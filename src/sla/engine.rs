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

/// For one clock that fell due: every alert scheduled up to `now` (catch-up after a restart
/// fires them all at once, marked late; superseded warnings are skipped), and the next instant.
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
    loop {
        match c.next_alert(policy, cal) {
            Ok(Some((kind, at))) if at <= now => {
                if worth_sending(kind, &c, now) {
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
                c.last_alert_at = Some(at);
                fired.last_alert_at = Some(at);
            }
            Ok(Some((_, at))) => {
                fired.next = Some(at);
                return fired;
            }
            Ok(None) => return fired,
            Err(e) => {
                metrics
                    .clock_errors
                    .get_or_create(&crate::metrics::ClockLabel {
                        clock: c.clock_id.clone(),
                    })
                    .inc();
                tracing::error!(item = %c.item_id, clock = %c.clock_id, error = %e, "cannot compute the next SLA alert");
                return fired;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
