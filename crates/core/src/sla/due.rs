//! Due-time rules: when a clock that started at an instant is due.
//!
//! Each [`DueRule`] is a pure function of (start instant, [`Calendar`]), evaluated by [`due`].
//! Day arithmetic always uses the start's local date *in the calendar's time zone*, whatever
//! offset the start was written with; "end of the working day" is the calendar's office close.
//! The rules mirror DOMAIN.md §2: wall-clock minutes (hotline 30 min, portal 2 h, supplement
//! 24 h), same working day (letter registration), N working days (rights feedback), N calendar
//! days with optional roll-forward to a working day (statutory 15/60 days), and minutes counted
//! inside office hours only.
//!
//! This module does not own clock state (pause, resume, extension), warnings or timers, and it
//! never reads the current time; those are built on top of these functions.

use super::calendar::{Calendar, CalendarError};
use jiff::civil::{Date, Time};
use jiff::{SignedDuration, Span, Timestamp};
use serde::Deserialize;
use std::fmt;

/// How a deadline is computed from a start instant. Deserializes from config as a table with
/// a `kind` tag, e.g. `{ kind = "calendar_days", days = 15 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DueRule {
    /// Start + `minutes`, 24×7, ignoring the calendar (hotline view 30, portal sign-in 120,
    /// incomplete-item contact 1440).
    WallClock { minutes: u32 },
    /// Start + `seconds`, 24×7: for drills, the demo and tests, where minutes are too slow.
    WallClockSeconds { seconds: u32 },
    /// Office close of the arrival day if it is a working day and the start is before close
    /// (17:30:00 exactly is not before close); otherwise office close of the next working day
    /// (paper letter registration, 拆封登记).
    SameWorkingDay,
    /// Office close of the `days`-th working day after the arrival day; the arrival day is not
    /// counted, whatever the arrival time (rights feedback: 5). `days = 0`: office close of
    /// the arrival day if it is a working day, else of the next one.
    WorkingDays { days: u32 },
    /// Office close of the `days`-th calendar day after the arrival day (statutory 15 / 60
    /// days, "日" in 信访工作条例). With `roll_forward` (the default, as 民法典 Art. 203) a
    /// deadline on a rest day moves to the next working day.
    CalendarDays {
        days: u32,
        #[serde(default = "default_roll_forward")]
        roll_forward: bool,
    },
    /// `minutes` counted only inside office hours on working days (a wall clock configured to
    /// office hours). A deadline that exactly uses up an interval is that interval's end.
    WorkingHours { minutes: u32 },
}

fn default_roll_forward() -> bool {
    true
}

impl DueRule {
    /// Meaning checks for config's second stage: a zero-length clock is a mistake.
    pub fn validate(&self) -> Result<(), String> {
        let zero = match *self {
            DueRule::WallClock { minutes } | DueRule::WorkingHours { minutes } => minutes == 0,
            DueRule::WallClockSeconds { seconds } => seconds == 0,
            DueRule::WorkingDays { days } | DueRule::CalendarDays { days, .. } => days == 0,
            DueRule::SameWorkingDay => false,
        };
        if zero {
            Err("must be greater than 0".into())
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for DueRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DueRule::WallClock { minutes } => write!(f, "{minutes} minutes (wall clock)"),
            DueRule::WallClockSeconds { seconds } => write!(f, "{seconds} seconds (wall clock)"),
            DueRule::SameWorkingDay => f.write_str("end of the working day"),
            DueRule::WorkingDays { days } => write!(f, "{days} working days"),
            DueRule::CalendarDays {
                days,
                roll_forward: true,
            } => write!(f, "{days} days, rolled to a working day"),
            DueRule::CalendarDays {
                days,
                roll_forward: false,
            } => write!(f, "{days} days"),
            DueRule::WorkingHours { minutes } => write!(f, "{minutes} office-hour minutes"),
        }
    }
}

/// When a clock started at `start` under `rule` is due.
///
/// Errors: [`CalendarError::YearNotLoaded`] when the answer depends on a year the calendar
/// does not have (never a guess); [`CalendarError::Arithmetic`] at the edges of time.
pub fn due(rule: &DueRule, start: Timestamp, cal: &Calendar) -> Result<Timestamp, CalendarError> {
    match *rule {
        DueRule::WallClock { minutes } => {
            Ok(start.checked_add(SignedDuration::from_mins(i64::from(minutes)))?)
        }
        DueRule::WallClockSeconds { seconds } => {
            Ok(start.checked_add(SignedDuration::from_secs(i64::from(seconds)))?)
        }
        DueRule::SameWorkingDay => {
            let local = cal.local(start);
            let day = local.date();
            let deadline_day = if cal.is_working_day(day)? && local.time() < cal.office_close() {
                day
            } else {
                cal.next_working_day_after(day)?
            };
            cal.close_of(deadline_day)
        }
        DueRule::WorkingDays { days: 0 } => {
            let day = cal.next_working_day_on_or_after(cal.local_date(start))?;
            cal.close_of(day)
        }
        DueRule::WorkingDays { days } => add_working_days_at_close(cal, start, days),
        DueRule::CalendarDays { days, roll_forward } => {
            let mut day = add_calendar_days(cal.local_date(start), days)?;
            if roll_forward {
                day = cal.next_working_day_on_or_after(day)?;
            }
            cal.close_of(day)
        }
        DueRule::WorkingHours { minutes } => working_hours(cal, start, minutes),
    }
}

/// Office close of the `n`-th working day after `instant`'s local date (that date not
/// counted). Used for "remind every 3 working days" and similar.
pub fn add_working_days_at_close(
    cal: &Calendar,
    instant: Timestamp,
    n: u32,
) -> Result<Timestamp, CalendarError> {
    let day = cal.add_working_days(cal.local_date(instant), n)?;
    cal.close_of(day)
}

/// Signed working days from `from` to `to`: those in `(from, to]`, negative when `to` is
/// earlier. `working_days_between(cal, deadline_date, today) > 10` is "more than 10 working
/// days past the statutory deadline". See [`Calendar::working_days_between`].
pub fn working_days_between(cal: &Calendar, from: Date, to: Date) -> Result<i64, CalendarError> {
    cal.working_days_between(from, to)
}

/// `date` plus `days` calendar days.
fn add_calendar_days(date: Date, days: u32) -> Result<Date, CalendarError> {
    Ok(date.checked_add(Span::new().try_days(i64::from(days))?)?)
}

/// Walks office-hour intervals on working days from `start` until `minutes` are used up.
fn working_hours(
    cal: &Calendar,
    start: Timestamp,
    minutes: u32,
) -> Result<Timestamp, CalendarError> {
    let mut remaining = SignedDuration::from_mins(i64::from(minutes));
    if remaining.is_zero() {
        return Ok(start);
    }
    let local = cal.local(start);
    let mut day = local.date();
    // Only the start day is cut at the start time; later days begin at midnight.
    let mut from = local.time();
    loop {
        // Ends when the minutes are used up, or with YearNotLoaded at the calendar's edge.
        if cal.is_working_day(day)? {
            for &(open, close) in cal.office_hours().intervals() {
                let begin = open.max(from);
                if begin >= close {
                    continue;
                }
                let available = close.duration_since(begin);
                if remaining <= available {
                    return cal.instant_at(day.to_datetime(begin).checked_add(remaining)?);
                }
                remaining -= available;
            }
        }
        day = day.tomorrow()?;
        from = Time::midnight();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal() -> Calendar {
        Calendar::builtin().expect("builtin calendar")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const HOTLINE_VIEW: DueRule = DueRule::WallClock { minutes: 30 };
    const PORTAL_SIGN_IN: DueRule = DueRule::WallClock { minutes: 120 };
    const SUPPLEMENT: DueRule = DueRule::WallClock { minutes: 24 * 60 };
    const LETTER: DueRule = DueRule::SameWorkingDay;
    const RIGHTS: DueRule = DueRule::WorkingDays { days: 5 };
    const ACCEPT: DueRule = DueRule::CalendarDays {
        days: 15,
        roll_forward: true,
    };
    const ACCEPT_NO_ROLL: DueRule = DueRule::CalendarDays {
        days: 15,
        roll_forward: false,
    };
    const HANDLE: DueRule = DueRule::CalendarDays {
        days: 60,
        roll_forward: true,
    };
    const PORTAL_OFFICE_HOURS: DueRule = DueRule::WorkingHours { minutes: 120 };

    #[test]
    fn due_table() {
        let cal = cal();
        // (what, rule, start, expected due)
        #[rustfmt::skip]
        let cases = [
            // Wall clock ignores the calendar: holidays and night count.
            ("hotline on 春节", HOTLINE_VIEW, "2026-02-17T03:10:00+08:00", "2026-02-17T03:40:00+08:00"),
            ("portal 2h", PORTAL_SIGN_IN, "2026-03-03T16:45:00+08:00", "2026-03-03T18:45:00+08:00"),
            ("supplement 24h", SUPPLEMENT, "2026-09-30T18:00:00+08:00", "2026-10-01T18:00:00+08:00"),
            ("wall clock in UTC", HOTLINE_VIEW, "2026-03-03T00:00:00Z", "2026-03-03T08:30:00+08:00"),
            // Letter registration: same working day, or next.
            ("letter, morning", LETTER, "2026-03-03T10:00:00+08:00", "2026-03-03T17:30:00+08:00"),
            ("letter, before opening", LETTER, "2026-03-03T06:00:00+08:00", "2026-03-03T17:30:00+08:00"),
            ("letter, lunch", LETTER, "2026-03-03T12:30:00+08:00", "2026-03-03T17:30:00+08:00"),
            ("letter, 17:29:59", LETTER, "2026-03-03T17:29:59+08:00", "2026-03-03T17:30:00+08:00"),
            ("letter, 17:30:00 exactly", LETTER, "2026-03-03T17:30:00+08:00", "2026-03-04T17:30:00+08:00"),
            ("letter, Friday evening", LETTER, "2026-03-06T18:00:00+08:00", "2026-03-09T17:30:00+08:00"),
            ("letter, Saturday", LETTER, "2026-03-07T10:00:00+08:00", "2026-03-09T17:30:00+08:00"),
            ("letter, make-up Saturday", LETTER, "2026-02-14T10:00:00+08:00", "2026-02-14T17:30:00+08:00"),
            ("letter, make-up Saturday late", LETTER, "2026-02-14T17:45:00+08:00", "2026-02-24T17:30:00+08:00"),
            ("letter, make-up Sunday 01-04", LETTER, "2026-01-04T09:00:00+08:00", "2026-01-04T17:30:00+08:00"),
            ("letter, eve of 国庆", LETTER, "2026-09-30T18:00:00+08:00", "2026-10-08T17:30:00+08:00"),
            ("letter, in 国庆", LETTER, "2026-10-03T11:00:00+08:00", "2026-10-08T17:30:00+08:00"),
            // 2026-03-02T20:00-05:00 is 2026-03-03 09:00 in Shanghai.
            ("letter, -05:00 offset", LETTER, "2026-03-02T20:00:00-05:00", "2026-03-03T17:30:00+08:00"),
            // 09:29:59Z is 17:29:59 in Shanghai; 09:30Z is 17:30.
            ("letter, UTC before close", LETTER, "2026-03-03T09:29:59Z", "2026-03-03T17:30:00+08:00"),
            ("letter, UTC at close", LETTER, "2026-03-03T09:30:00Z", "2026-03-04T17:30:00+08:00"),
            // 16:00Z on 03-02 is already 03-03 00:00 in Shanghai.
            ("letter, UTC previous date", LETTER, "2026-03-02T16:00:00Z", "2026-03-03T17:30:00+08:00"),
            ("letter, UTC 15:59:59", LETTER, "2026-03-02T15:59:59Z", "2026-03-03T17:30:00+08:00"),
            // Rights feedback: 5 working days, arrival day never counted.
            ("rights over 春节", RIGHTS, "2026-02-12T09:00:00+08:00", "2026-02-26T17:30:00+08:00"),
            ("rights, late arrival", RIGHTS, "2026-02-12T23:00:00+08:00", "2026-02-26T17:30:00+08:00"),
            ("rights from Saturday", RIGHTS, "2026-03-07T10:00:00+08:00", "2026-03-13T17:30:00+08:00"),
            ("3 working days over 国庆", DueRule::WorkingDays { days: 3 }, "2026-09-30T10:00:00+08:00", "2026-10-10T17:30:00+08:00"),
            ("0 working days on a holiday", DueRule::WorkingDays { days: 0 }, "2026-10-03T10:00:00+08:00", "2026-10-08T17:30:00+08:00"),
            // Statutory calendar days.
            ("15 days on a workday", ACCEPT, "2026-03-02T10:00:00+08:00", "2026-03-17T17:30:00+08:00"),
            ("15 days on a Saturday", ACCEPT, "2026-02-27T10:00:00+08:00", "2026-03-16T17:30:00+08:00"),
            ("15 days on 国庆 rolls", ACCEPT, "2026-09-16T10:00:00+08:00", "2026-10-08T17:30:00+08:00"),
            ("15 days on 国庆, no roll", ACCEPT_NO_ROLL, "2026-09-16T10:00:00+08:00", "2026-10-01T17:30:00+08:00"),
            ("15 days on a make-up Sunday", ACCEPT, "2026-09-05T10:00:00+08:00", "2026-09-20T17:30:00+08:00"),
            ("60 days on 劳动节 rolls", HANDLE, "2026-03-02T10:00:00+08:00", "2026-05-06T17:30:00+08:00"),
            ("15 days, local date from UTC", ACCEPT, "2026-03-01T16:30:00Z", "2026-03-17T17:30:00+08:00"),
            // Office-hour minutes.
            ("2h inside office hours", PORTAL_OFFICE_HOURS, "2026-03-03T09:00:00+08:00", "2026-03-03T11:00:00+08:00"),
            ("2h over lunch", PORTAL_OFFICE_HOURS, "2026-03-03T11:00:00+08:00", "2026-03-03T15:00:00+08:00"),
            ("2h over the night", PORTAL_OFFICE_HOURS, "2026-03-03T17:00:00+08:00", "2026-03-04T10:00:00+08:00"),
            ("2h over the weekend", PORTAL_OFFICE_HOURS, "2026-03-06T17:00:00+08:00", "2026-03-09T10:00:00+08:00"),
            ("2h from a Saturday", PORTAL_OFFICE_HOURS, "2026-03-07T10:00:00+08:00", "2026-03-09T10:30:00+08:00"),
            ("1h exactly to close", DueRule::WorkingHours { minutes: 60 }, "2026-03-03T16:30:00+08:00", "2026-03-03T17:30:00+08:00"),
            ("1h on make-up Saturday", DueRule::WorkingHours { minutes: 60 }, "2026-02-14T10:00:00+08:00", "2026-02-14T11:00:00+08:00"),
            ("2h from eve of 春节", PORTAL_OFFICE_HOURS, "2026-02-14T17:00:00+08:00", "2026-02-24T10:00:00+08:00"),
            ("seconds are kept", DueRule::WorkingHours { minutes: 30 }, "2026-03-03T11:45:30+08:00", "2026-03-03T14:15:30+08:00"),
        ];
        for (what, rule, start, want) in cases {
            let got = due(&rule, ts(start), &cal).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got, ts(want), "{what}: {rule} from {start}");
        }
    }

    #[test]
    fn unloaded_year_is_an_error_never_a_guess() {
        let cal = cal();
        let cases = [
            (LETTER, "2026-12-31T18:00:00+08:00"),
            (LETTER, "2027-01-05T10:00:00+08:00"),
            // 2026-12-31T16:00Z is already 2027-01-01 in Shanghai.
            (LETTER, "2026-12-31T16:00:00Z"),
            (RIGHTS, "2026-12-28T10:00:00+08:00"),
            (ACCEPT, "2026-12-20T10:00:00+08:00"),
            (PORTAL_OFFICE_HOURS, "2026-12-31T17:00:00+08:00"),
        ];
        for (rule, start) in cases {
            assert_eq!(
                due(&rule, ts(start), &cal),
                Err(CalendarError::YearNotLoaded(2027)),
                "{rule} from {start}"
            );
        }
        // A wall clock needs no calendar; a calendar-day deadline without roll-forward that
        // lands in 2027 needs no working-day answer either.
        assert!(due(&HOTLINE_VIEW, ts("2027-06-01T10:00:00+08:00"), &cal).is_ok());
        assert_eq!(
            due(&ACCEPT_NO_ROLL, ts("2026-12-20T10:00:00+08:00"), &cal).unwrap(),
            ts("2027-01-04T17:30:00+08:00")
        );
    }

    #[test]
    fn working_days_at_close_and_between() {
        let cal = cal();
        assert_eq!(
            add_working_days_at_close(&cal, ts("2026-02-12T22:00:00+08:00"), 5).unwrap(),
            ts("2026-02-26T17:30:00+08:00")
        );
        assert_eq!(
            add_working_days_at_close(&cal, ts("2026-09-30T01:00:00Z"), 3).unwrap(),
            ts("2026-10-10T17:30:00+08:00")
        );
        let d = |s: &str| s.parse::<Date>().unwrap();
        // Escalation: more than 10 working days past a deadline of 2026-09-30.
        assert_eq!(
            working_days_between(&cal, d("2026-09-30"), d("2026-10-16")).unwrap(),
            8
        );
        assert_eq!(
            working_days_between(&cal, d("2026-09-30"), d("2026-10-21")).unwrap(),
            11
        );
        assert_eq!(
            working_days_between(&cal, d("2026-10-21"), d("2026-09-30")).unwrap(),
            -11
        );
    }

    #[test]
    fn rules_deserialize_from_config() {
        let parse = |s: &str| toml_edit::de::from_str::<DueRule>(s);
        let cases = [
            ("kind = \"wall_clock\"\nminutes = 30", HOTLINE_VIEW),
            ("kind = \"same_working_day\"", LETTER),
            ("kind = \"working_days\"\ndays = 5", RIGHTS),
            ("kind = \"calendar_days\"\ndays = 15", ACCEPT),
            (
                "kind = \"calendar_days\"\ndays = 15\nroll_forward = false",
                ACCEPT_NO_ROLL,
            ),
            (
                "kind = \"working_hours\"\nminutes = 120",
                PORTAL_OFFICE_HOURS,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_or_else(|e| panic!("{text}: {e}")), want);
        }
        for bad in [
            "kind = \"fortnightly\"",
            "kind = \"working_days\"",
            "kind = \"working_days\"\ndays = 5\nhours = 2",
            "kind = \"wall_clock\"\nminutes = -1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validate_rejects_zero_length_clocks() {
        assert!(RIGHTS.validate().is_ok());
        assert!(LETTER.validate().is_ok());
        assert!(DueRule::WallClock { minutes: 0 }.validate().is_err());
        assert!(DueRule::WorkingDays { days: 0 }.validate().is_err());
        assert!(
            DueRule::CalendarDays {
                days: 0,
                roll_forward: true
            }
            .validate()
            .is_err()
        );
    }
}
