//! SLA: the working-day calendar, due-time rules, clock policies and clock state.
//!
//! `calendar`, `due`, `policy` and `clock` are pure; the timer engine that fires alerts lives
//! in `engine` (I/O: the store and the alert outbox). `time` is the injected wall clock
//! (a pure trait; the engine sleeps on tokio).

pub use petitiond_core::sla::{calendar, clock, due, policy, provisional, time};
pub mod config;
pub mod engine;

use calendar::{Basis, Calendar, CalendarError};
use config::SlaConfig;
use jiff::Timestamp;
use jiff::civil::Date;
use petitiond_channels::config::HttpSourceConfig;
use petitiond_core::routing::Department;

/// What SLA clocks read from the config, wherever they start, move or fire (the engine, the
/// status consumer, intake): the `[sla]` section (policies, calendar, alerts topic,
/// supervisors), the departments (alert recipients and names), the HTTP sources (due and
/// completion write-backs) and whether alert mail is configured. Built once, by
/// [`SlaInputs::from_config`].
#[derive(Debug, Clone)]
pub struct SlaInputs {
    pub sla: SlaConfig,
    pub departments: Vec<Department>,
    pub http_sources: Vec<HttpSourceConfig>,
    /// `[email]` is configured: alerts are mailed too.
    pub mail: bool,
    /// Several instances (`[cluster]`): how often the engine reloads the open timers from the
    /// shared store, to learn the timers other instances' intake started; `None`: one
    /// instance, every timer comes through this process.
    pub resync: Option<std::time::Duration>,
}

impl SlaInputs {
    /// What an alert reads.
    pub fn alerts(&self) -> crate::alerts::AlertSections<'_> {
        crate::alerts::AlertSections {
            alerts_topic: &self.sla.alerts_topic,
            supervisors: &self.sla.supervisors,
            calendar: &self.sla.calendar,
            departments: &self.departments,
            mail: self.mail,
        }
    }

    /// The calendar's time zone (write-backs write times in it).
    pub fn tz(&self) -> &jiff::tz::TimeZone {
        self.sla.calendar.time_zone()
    }

    pub fn department(&self, id: &str) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }
}

/// Days before the last official calendar year ends from which operators are told to add the
/// next one (the State Council publishes it in November or December).
pub const CALENDAR_NOTICE_DAYS: i64 = 60;

/// How far the official calendars reach at an instant, and what operators must do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarNotice {
    /// The last day of the last official year.
    pub official_until: Date,
    /// Days from today (office zone) to `official_until`; negative once it has passed.
    pub days_left: i64,
    /// The first year without an official file.
    pub next_year: i16,
    /// How that year is answered: provisionally, or (beyond the provisional range) not at all.
    pub next_basis: Option<Basis>,
    /// One sentence for logs, `/readyz`, the board and `petitiond check`.
    pub message: String,
}

impl CalendarNotice {
    /// Within [`CALENDAR_NOTICE_DAYS`] of the end, or past it: operators must act.
    pub fn is_due(&self) -> bool {
        self.days_left <= CALENDAR_NOTICE_DAYS
    }
}

/// The calendar coverage at `now`; `None` when no year is official.
pub fn calendar_notice(cal: &Calendar, now: Timestamp) -> Option<CalendarNotice> {
    let official_until = cal.official_until()?;
    let today = cal.local_date(now);
    let days_left = i64::from(
        today
            .until((jiff::Unit::Day, official_until))
            .ok()?
            .get_days(),
    );
    let next_year = official_until.year() + 1;
    let next_basis = cal.basis(next_year);
    let meanwhile = match next_basis {
        Some(Basis::Provisional) => format!(
            "due times in {next_year} are provisional (derived from the holiday law: statutory days and 补假, no 调休) and are recomputed and re-announced when its file is installed"
        ),
        _ => format!(
            "clocks that need {next_year} wait as `pending` (beyond the provisional range {}–{})",
            provisional::YEARS.start(),
            provisional::YEARS.end()
        ),
    };
    let message = if days_left >= 0 {
        format!(
            "the official working-day calendars end on {official_until} ({days_left} days from today): add the {next_year} file from the State Council's notice to sla.calendar_files and restart; until then {meanwhile}"
        )
    } else {
        format!(
            "no official working-day calendar for {next_year} (the official calendars ended on {official_until}): {meanwhile}; add the {next_year} file from the State Council's notice to sla.calendar_files and restart"
        )
    };
    Some(CalendarNotice {
        official_until,
        days_left,
        next_year,
        next_basis,
        message,
    })
}

/// What an operator must know about calendar coverage at `now`: clocks that, started now,
/// get a provisional due time or cannot be computed at all (they would wait as pending), and
/// official calendars that end soon or have ended. Printed by `petitiond check` and logged at
/// start.
pub fn calendar_warnings(sla: &SlaConfig, now: Timestamp) -> Vec<String> {
    let cal = &sla.calendar;
    let mut out = Vec::new();
    for p in &sla.clocks {
        match clock::Clock::start(p, "probe", "", now, cal) {
            Err(CalendarError::YearNotLoaded(y)) => out.push(format!(
                "clock `{}` started now needs the {y} working-day calendar, which has no official file and is outside the provisional range {}–{}: such clocks wait as `pending` (no alerts) until its file is added to sla.calendar_files and petitiond restarts",
                p.id,
                provisional::YEARS.start(),
                provisional::YEARS.end()
            )),
            Ok(c) if c.provisional => {
                let y = cal
                    .first_provisional_year(cal.local_date(c.started_at), cal.local_date(c.due_at))
                    .map_or_else(|| "a year".to_string(), |y| y.to_string());
                out.push(format!(
                    "clock `{}` started now gets a provisional due time: {y} has no official working-day calendar (computed from the holiday law; recomputed and re-announced when the {y} file is added to sla.calendar_files)",
                    p.id
                ));
            }
            _ => {}
        }
    }
    if let Some(n) = calendar_notice(cal, now)
        && n.is_due()
    {
        out.push(n.message);
    }
    out
}

#[cfg(test)]
mod tests;
