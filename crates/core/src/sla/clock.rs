//! One SLA clock's state and its alert schedule, as pure functions.
//!
//! A running clock has a start and a due instant. Its alerts, in time order: a warning at each
//! configured percentage of the span, the breach at the due instant, then a reminder every N
//! working days after it and, for statutory clocks, one escalation N working days past it.
//! `last_alert_at` remembers the schedule instant of the last alert fired, so the next one is
//! the first scheduled strictly after it: restarts, pauses and extensions need no other
//! bookkeeping. Pausing shifts start and due by the paused time; stopping ends the schedule.
//!
//! A due instant computed on a provisional calendar year (no official file yet) marks the clock
//! `provisional`; when the official file arrives, [`Clock::recompute`] replays the clock's due
//! time on it (rule from the original start, time held by pauses, extensions).
//!
//! No I/O and no clock reads: `now` is always a parameter.

use super::calendar::{Calendar, CalendarError};
use super::due::due;
use super::policy::{ClockPolicy, EventKind};
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    Paused,
    Stopped,
    /// Started, but its due instant cannot be computed yet: the calendar of a year it needs
    /// is not loaded. Kept (never dropped) and computed from its start when petitiond next
    /// starts with that calendar ([`Clock::compute_pending`]); until then it fires nothing.
    Pending,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Paused => "paused",
            State::Stopped => "stopped",
            State::Pending => "pending",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Running,
            State::Paused,
            State::Stopped,
            State::Pending,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// What an alert says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// `percent` of the span has passed.
    Warning(u8),
    Breach,
    /// The n-th reminder after breach.
    Reminder(u32),
    /// Past the statutory deadline by the configured working days.
    Escalation,
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertKind::Warning(p) => write!(f, "warning_{p}"),
            AlertKind::Breach => f.write_str("breach"),
            AlertKind::Reminder(n) => write!(f, "reminder_{n}"),
            AlertKind::Escalation => f.write_str("escalation"),
        }
    }
}

/// A clock as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    pub item_id: String,
    pub clock_id: String,
    /// The responsible department (the item's lead); alerts go to it.
    pub department: String,
    pub state: State,
    pub started_at: Timestamp,
    pub due_at: Timestamp,
    pub paused_at: Option<Timestamp>,
    pub extended_days: u32,
    /// Schedule instant of the last alert fired.
    pub last_alert_at: Option<Timestamp>,
    /// The due instant rests on a provisional calendar year (derived from the holiday law, no
    /// official file): shown as such everywhere, recomputed when the official file arrives.
    pub provisional: bool,
    /// Total time held by pauses so far (`started_at` and `due_at` are already shifted by
    /// it): what [`Clock::recompute`] needs to replay the due instant.
    pub held: SignedDuration,
}

/// What a status event did to a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Stopped,
    Paused,
    Resumed,
    Extended(u32),
}

impl Clock {
    /// Starts a clock for `policy` at `start`.
    pub fn start(
        policy: &ClockPolicy,
        item_id: &str,
        department: &str,
        start: Timestamp,
        cal: &Calendar,
    ) -> Result<Clock, CalendarError> {
        let (due_at, provisional) = cal.marked(|c| due(&policy.rule, start, c))?;
        Ok(Clock {
            item_id: item_id.into(),
            clock_id: policy.id.clone(),
            department: department.into(),
            state: State::Running,
            started_at: start,
            due_at,
            paused_at: None,
            extended_days: 0,
            last_alert_at: None,
            provisional: provisional.is_some(),
            held: SignedDuration::ZERO,
        })
    }

    /// A clock for `policy` started at `start` whose due instant cannot be computed yet
    /// ([`State::Pending`]). `due_at` holds the start until it is computed.
    pub fn pending(
        policy: &ClockPolicy,
        item_id: &str,
        department: &str,
        start: Timestamp,
    ) -> Clock {
        Clock {
            item_id: item_id.into(),
            clock_id: policy.id.clone(),
            department: department.into(),
            state: State::Pending,
            started_at: start,
            due_at: start,
            paused_at: None,
            extended_days: 0,
            last_alert_at: None,
            provisional: false,
            held: SignedDuration::ZERO,
        }
    }

    /// Computes a pending clock from its start, as if it had started running then: its due
    /// instant, and the alerts that fell due meanwhile fire late on the engine's catch-up.
    /// Still `Err` while the calendar is missing.
    pub fn compute_pending(
        &self,
        policy: &ClockPolicy,
        cal: &Calendar,
    ) -> Result<Clock, CalendarError> {
        debug_assert_eq!(self.state, State::Pending);
        Clock::start(
            policy,
            &self.item_id,
            &self.department,
            self.started_at,
            cal,
        )
    }

    /// This clock's due instant computed again on `cal` (after a calendar file was installed):
    /// the rule from the original start (`started_at` less the time held), plus the time held
    /// by pauses, plus the extension days granted (several partial extensions are replayed as
    /// one of their total). State, alerts fired and everything else are kept; `provisional`
    /// says whether the new due instant still rests on a provisional year. A pending clock is
    /// computed from its start ([`Clock::compute_pending`]). Errors as [`Clock::start`].
    pub fn recompute(&self, policy: &ClockPolicy, cal: &Calendar) -> Result<Clock, CalendarError> {
        if self.state == State::Pending {
            return self.compute_pending(policy, cal);
        }
        let start = self
            .started_at
            .checked_sub(self.held)
            .unwrap_or(self.started_at);
        let extended = self.extended_days;
        let held = self.held;
        let (due_at, provisional) = cal.marked(|c| {
            let base = due(&policy.rule, start, c)?;
            let base = base.checked_add(held).unwrap_or(base);
            if extended == 0 {
                return Ok(base);
            }
            let target = c
                .local_date(base)
                .checked_add(i64::from(extended).days())
                .map_err(|e| CalendarError::Arithmetic(e.to_string()))?;
            c.close_of(c.next_working_day_on_or_after(target)?)
        })?;
        Ok(Clock {
            due_at,
            provisional: provisional.is_some(),
            ..self.clone()
        })
    }

    /// Applies a department status event at `at`. Events that do not apply in the current
    /// state (a resume while running, anything after stop) change nothing: duplicates and
    /// out-of-order delivery are harmless. A pending clock can be stopped (the department did
    /// what the clock waits for); pause, resume and extension need its due instant and are
    /// ignored until it has one.
    pub fn apply(
        &mut self,
        policy: &ClockPolicy,
        event: EventKind,
        at: Timestamp,
        extend_days: Option<u32>,
        cal: &Calendar,
    ) -> Result<Change, CalendarError> {
        if self.state == State::Stopped {
            return Ok(Change::Unchanged);
        }
        if policy.stop_on.contains(&event) {
            self.state = State::Stopped;
            self.paused_at = None;
            return Ok(Change::Stopped);
        }
        if self.state == State::Pending {
            return Ok(Change::Unchanged);
        }
        if policy.pause_on.contains(&event) && self.state == State::Running {
            self.state = State::Paused;
            self.paused_at = Some(at);
            return Ok(Change::Paused);
        }
        if policy.resume_on.contains(&event) && self.state == State::Paused {
            let paused = self.paused_at.take().unwrap_or(at);
            let held = if at > paused {
                at.duration_since(paused)
            } else {
                SignedDuration::ZERO
            };
            self.started_at = self
                .started_at
                .saturating_add(held)
                .unwrap_or(self.started_at);
            self.due_at = self.due_at.saturating_add(held).unwrap_or(self.due_at);
            self.held = self.held.saturating_add(held);
            self.state = State::Running;
            return Ok(Change::Resumed);
        }
        if policy.extend_on.contains(&event) {
            let room = policy.max_extension_days.saturating_sub(self.extended_days);
            let days = extend_days.unwrap_or(room).min(room);
            if days == 0 {
                return Ok(Change::Unchanged);
            }
            let from = self.due_at;
            let (due_at, provisional) = cal.marked(|c| {
                let target = c
                    .local_date(from)
                    .checked_add(i64::from(days).days())
                    .map_err(|e| CalendarError::Arithmetic(e.to_string()))?;
                c.close_of(c.next_working_day_on_or_after(target)?)
            })?;
            self.due_at = due_at;
            self.provisional |= provisional.is_some();
            self.extended_days += days;
            return Ok(Change::Extended(days));
        }
        Ok(Change::Unchanged)
    }

    /// [`Clock::next_alert`], and whether its instant rests on a provisional calendar year
    /// (the clock's due instant does, or a reminder or escalation counted working days in
    /// one). Such an instant is looked at again when the official file arrives.
    pub fn next_alert_marked(
        &self,
        policy: &ClockPolicy,
        cal: &Calendar,
    ) -> Result<(Option<(AlertKind, Timestamp)>, bool), CalendarError> {
        let (next, year) = cal.marked(|c| self.next_alert(policy, c))?;
        let provisional = next.is_some() && (self.provisional || year.is_some());
        Ok((next, provisional))
    }

    /// The next alert after `last_alert_at`: (kind, scheduled instant). `None` when the clock
    /// is not running or nothing more is scheduled.
    pub fn next_alert(
        &self,
        policy: &ClockPolicy,
        cal: &Calendar,
    ) -> Result<Option<(AlertKind, Timestamp)>, CalendarError> {
        if self.state != State::Running {
            return Ok(None);
        }
        let after = self.last_alert_at;
        let later = |t: Timestamp| after.is_none_or(|a| t > a);
        let mut best: Option<(AlertKind, Timestamp)> = None;
        let offer = |best: &mut Option<(AlertKind, Timestamp)>, k: AlertKind, t: Timestamp| {
            if later(t) && best.is_none_or(|(_, b)| t < b) {
                *best = Some((k, t));
            }
        };
        let span = self.due_at.duration_since(self.started_at);
        for &p in &policy.warn_at_percent {
            let at = self
                .started_at
                .saturating_add(span * i32::from(p) / 100)
                .unwrap_or(self.due_at);
            if at < self.due_at {
                offer(&mut best, AlertKind::Warning(p), at);
            }
        }
        offer(&mut best, AlertKind::Breach, self.due_at);
        // Reminders and the escalation come after the breach: when a warning or the breach is
        // still ahead, it is the next alert, whether or not the later ones can be computed (a
        // clock due in late December must warn and breach before next year's calendar is in).
        if best.is_some() {
            return Ok(best);
        }
        let due_local = cal.local(self.due_at);
        let after_due = |n: u32| -> Result<Timestamp, CalendarError> {
            let d = cal.add_working_days(due_local.date(), n)?;
            cal.instant(d, due_local.time())
        };
        if let Some(n) = policy.escalate_after_working_days {
            offer(&mut best, AlertKind::Escalation, after_due(n)?);
        }
        let every = policy.remind_every_working_days;
        if every > 0 {
            // The first reminder strictly after the last alert (bounded: ~30 years of them).
            for k in 1..=2500u32 {
                let at = after_due(every * k)?;
                if later(at) {
                    offer(&mut best, AlertKind::Reminder(k), at);
                    break;
                }
            }
        }
        Ok(best)
    }
}

/// When several alerts of one clock are overdue at once (a restart's catch-up, or an item that
/// arrives long after its upstream creation), `later` holds those after `kind`. Sent: the
/// breach and the escalation; a warning only while the deadline is still ahead (the breach
/// says more); a reminder only if it is the last one due (its number says how many were
/// missed: one reminder, not one per missed interval). Returns true if `kind` should be sent.
pub fn worth_sending(
    kind: AlertKind,
    clock: &Clock,
    later: &[(AlertKind, Timestamp)],
    now: Timestamp,
) -> bool {
    match kind {
        AlertKind::Warning(_) => clock.due_at > now,
        AlertKind::Reminder(_) => !later
            .iter()
            .any(|(k, _)| matches!(k, AlertKind::Reminder(_))),
        AlertKind::Breach | AlertKind::Escalation => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::policy::defaults;

    fn cal() -> Calendar {
        Calendar::builtin().unwrap()
    }

    fn pol(id: &str) -> ClockPolicy {
        defaults().into_iter().find(|p| p.id == id).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn hotline_schedule_is_warnings_breach_then_reminders() {
        let (c, p) = (cal(), pol("hotline.view"));
        let mut clock = Clock::start(&p, "i", "desk", ts("2026-03-02T01:00:00Z"), &c).unwrap();
        assert_eq!(clock.due_at, ts("2026-03-02T01:30:00Z"));
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (k, at) = clock.next_alert(&p, &c).unwrap().unwrap();
            seen.push((k.to_string(), at.to_string()));
            clock.last_alert_at = Some(at);
        }
        assert_eq!(
            seen,
            vec![
                ("warning_50".into(), "2026-03-02T01:15:00Z".into()),
                ("warning_80".into(), "2026-03-02T01:24:00Z".into()),
                ("breach".into(), "2026-03-02T01:30:00Z".into()),
                // 3 working days later at the same local time: Mon 03-02 → Thu 03-05.
                ("reminder_1".into(), "2026-03-05T01:30:00Z".into()),
                ("reminder_2".into(), "2026-03-10T01:30:00Z".into()),
            ]
        );
    }

    #[test]
    fn viewed_stops_the_clock_and_nothing_follows() {
        let (c, p) = (cal(), pol("hotline.view"));
        let mut clock = Clock::start(&p, "i", "desk", ts("2026-03-02T01:00:00Z"), &c).unwrap();
        assert_eq!(
            clock
                .apply(&p, EventKind::Viewed, ts("2026-03-02T01:05:00Z"), None, &c)
                .unwrap(),
            Change::Stopped
        );
        assert_eq!(clock.next_alert(&p, &c).unwrap(), None);
        // A late duplicate or an out-of-order resume changes nothing.
        assert_eq!(
            clock
                .apply(&p, EventKind::Resumed, ts("2026-03-02T01:06:00Z"), None, &c)
                .unwrap(),
            Change::Unchanged
        );
        assert_eq!(
            clock
                .apply(&p, EventKind::Viewed, ts("2026-03-02T01:05:00Z"), None, &c)
                .unwrap(),
            Change::Unchanged
        );
    }

    #[test]
    fn pause_and_resume_keep_the_remaining_time() {
        let (c, p) = (cal(), pol("portal.sign_in"));
        let mut clock = Clock::start(&p, "i", "desk", ts("2026-03-02T01:00:00Z"), &c).unwrap();
        assert_eq!(clock.due_at, ts("2026-03-02T03:00:00Z"));
        clock
            .apply(&p, EventKind::Paused, ts("2026-03-02T01:30:00Z"), None, &c)
            .unwrap();
        assert_eq!(
            clock.next_alert(&p, &c).unwrap(),
            None,
            "a paused clock fires nothing"
        );
        // Resumed 4 hours later: 90 minutes remained, so due at 05:30 + 90 min = 07:00.
        clock
            .apply(&p, EventKind::Resumed, ts("2026-03-02T05:30:00Z"), None, &c)
            .unwrap();
        assert_eq!(clock.due_at, ts("2026-03-02T07:00:00Z"));
        let (k, at) = clock.next_alert(&p, &c).unwrap().unwrap();
        assert_eq!(
            (k, at),
            (AlertKind::Warning(50), ts("2026-03-02T06:00:00Z"))
        );
    }

    #[test]
    fn extension_is_bounded_and_rolls_to_a_working_day() {
        let (c, p) = (cal(), pol("statutory.handle"));
        // Accepted Mon 2026-03-02 10:00 +08:00: 60 days later is Fri 05-01 (holiday) → Wed 05-06.
        let mut clock = Clock::start(&p, "i", "desk", ts("2026-03-02T02:00:00Z"), &c).unwrap();
        assert_eq!(clock.due_at, ts("2026-05-06T09:30:00Z"));
        assert_eq!(
            clock
                .apply(
                    &p,
                    EventKind::Extended,
                    ts("2026-04-01T02:00:00Z"),
                    Some(20),
                    &c
                )
                .unwrap(),
            Change::Extended(20)
        );
        // 05-06 + 20 = 05-26 (Tue, working day).
        assert_eq!(clock.due_at, ts("2026-05-26T09:30:00Z"));
        assert_eq!(
            clock
                .apply(
                    &p,
                    EventKind::Extended,
                    ts("2026-04-02T02:00:00Z"),
                    Some(30),
                    &c
                )
                .unwrap(),
            Change::Extended(10)
        );
        assert_eq!(
            clock
                .apply(
                    &p,
                    EventKind::Extended,
                    ts("2026-04-03T02:00:00Z"),
                    Some(5),
                    &c
                )
                .unwrap(),
            Change::Unchanged
        );
        assert_eq!(clock.extended_days, 30);
    }

    #[test]
    fn statutory_escalation_comes_ten_working_days_after_the_deadline() {
        let (c, p) = (cal(), pol("statutory.accept"));
        // Arrived Mon 2026-09-14: +15 days = Tue 09-29 17:30.
        let mut clock = Clock::start(&p, "i", "desk", ts("2026-09-14T02:00:00Z"), &c).unwrap();
        assert_eq!(clock.due_at, ts("2026-09-29T09:30:00Z"));
        clock.last_alert_at = Some(clock.due_at);
        let mut kinds = Vec::new();
        while let Some((k, at)) = clock.next_alert(&p, &c).unwrap() {
            kinds.push((k, at.to_string()));
            clock.last_alert_at = Some(at);
            if kinds.len() == 5 {
                break;
            }
        }
        // Working days after 09-29: 09-30, 10-08, 10-09, 10-10 (make-up Sat), 10-12 ...
        assert_eq!(
            kinds[0],
            (AlertKind::Reminder(1), "2026-10-09T09:30:00Z".into())
        );
        assert_eq!(
            kinds[1],
            (AlertKind::Reminder(2), "2026-10-13T09:30:00Z".into())
        );
        assert_eq!(
            kinds[2],
            (AlertKind::Reminder(3), "2026-10-16T09:30:00Z".into())
        );
        assert_eq!(
            kinds[3],
            (AlertKind::Escalation, "2026-10-19T09:30:00Z".into())
        );
        assert_eq!(
            kinds[4],
            (AlertKind::Reminder(4), "2026-10-21T09:30:00Z".into())
        );
    }

    #[test]
    fn catch_up_skips_warnings_whose_deadline_has_passed() {
        let (c, p) = (cal(), pol("hotline.view"));
        let clock = Clock::start(&p, "i", "desk", ts("2026-03-02T01:00:00Z"), &c).unwrap();
        assert!(!worth_sending(
            AlertKind::Warning(50),
            &clock,
            &[],
            ts("2026-03-02T02:00:00Z")
        ));
        assert!(worth_sending(
            AlertKind::Warning(50),
            &clock,
            &[],
            ts("2026-03-02T01:20:00Z")
        ));
        assert!(worth_sending(
            AlertKind::Breach,
            &clock,
            &[],
            ts("2026-03-02T02:00:00Z")
        ));
    }

    /// Regression: a letter arriving months after its upstream time (or a restart after a long
    /// outage) sent every missed reminder at once — dozens per clock, thousands per batch.
    #[test]
    fn catch_up_sends_one_reminder_not_one_per_missed_interval() {
        let (c, p) = (cal(), pol("statutory.accept"));
        let mut clock = Clock::start(&p, "i", "desk", ts("2026-03-02T02:00:00Z"), &c).unwrap();
        let now = ts("2026-11-02T02:00:00Z");
        let mut due = Vec::new();
        while let Some((k, at)) = clock.next_alert(&p, &c).unwrap() {
            if at > now {
                break;
            }
            due.push((k, at));
            clock.last_alert_at = Some(at);
        }
        let sent: Vec<String> = (0..due.len())
            .filter(|&i| worth_sending(due[i].0, &clock, &due[i + 1..], now))
            .map(|i| due[i].0.to_string())
            .collect();
        let reminders = due
            .iter()
            .filter(|(k, _)| matches!(k, AlertKind::Reminder(_)))
            .count();
        assert!(reminders > 40, "months of missed reminders: {reminders}");
        assert_eq!(
            sent,
            vec![
                "breach".to_string(),
                "escalation".to_string(),
                format!("reminder_{reminders}")
            ]
        );
    }

    fn provisional_cal() -> Calendar {
        Calendar::builtin_with_provisional(
            Vec::new(),
            crate::sla::calendar::OfficeHours::default(),
            crate::sla::calendar::DEFAULT_TIME_ZONE,
        )
        .unwrap()
    }

    /// Issue 14: a clock whose span touches a provisional year is provisional; one that rests
    /// on the official file is not, on the same calendar.
    #[test]
    fn a_clock_is_provisional_exactly_when_its_due_needs_a_provisional_year() {
        let (c, p) = (provisional_cal(), pol("statutory.accept"));
        let late = Clock::start(&p, "i", "d", ts("2026-12-20T02:00:00Z"), &c).unwrap();
        assert_eq!(late.due_at, ts("2027-01-04T09:30:00Z"));
        assert!(late.provisional);
        // Due Wed 12-16, in 2026: the official file alone answers it.
        let early = Clock::start(&p, "i", "d", ts("2026-12-01T02:00:00Z"), &c).unwrap();
        assert_eq!(early.due_at, ts("2026-12-16T09:30:00Z"));
        assert!(!early.provisional);
        // The same clocks on the official file alone: the same due or an error, never a guess.
        assert_eq!(
            Clock::start(&p, "i", "d", ts("2026-12-01T02:00:00Z"), &cal()).unwrap(),
            early
        );
        assert_eq!(
            Clock::start(&p, "i", "d", ts("2026-12-20T02:00:00Z"), &cal()),
            Err(CalendarError::YearNotLoaded(2027))
        );
    }

    /// An extension into a provisional year makes the clock provisional, and recomputing the
    /// clock replays rule, pause and extension to the same instant on the same calendar.
    #[test]
    fn extension_into_a_provisional_year_and_recompute_replay() {
        let (c, p) = (provisional_cal(), pol("statutory.handle"));
        // Accepted Mon 2026-10-12: +60 = Fri 12-11 (official 2026), not provisional.
        let mut clock = Clock::start(&p, "i", "d", ts("2026-10-12T02:00:00Z"), &c).unwrap();
        assert_eq!(clock.due_at, ts("2026-12-11T09:30:00Z"));
        assert!(!clock.provisional);
        clock
            .apply(&p, EventKind::Paused, ts("2026-10-20T02:00:00Z"), None, &c)
            .unwrap();
        clock
            .apply(&p, EventKind::Resumed, ts("2026-10-21T02:00:00Z"), None, &c)
            .unwrap();
        assert_eq!(clock.due_at, ts("2026-12-12T09:30:00Z"));
        assert_eq!(clock.held, SignedDuration::from_hours(24));
        // Extended 30 days from Sat 12-12: Mon 2027-01-11, a provisional-year day.
        clock
            .apply(
                &p,
                EventKind::Extended,
                ts("2026-11-01T02:00:00Z"),
                Some(30),
                &c,
            )
            .unwrap();
        assert_eq!(clock.due_at, ts("2027-01-11T09:30:00Z"));
        assert!(clock.provisional);
        let again = clock.recompute(&p, &c).unwrap();
        assert_eq!(again, clock, "replayed on the same calendar: nothing moves");
        // Its reminders are marked too.
        let (next, marked) = clock.next_alert_marked(&p, &c).unwrap();
        assert!(next.is_some() && marked);
    }
}
