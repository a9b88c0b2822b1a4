//! The provisional working-day calendar of a year that has no official file yet, derived from
//! the public holiday law: 全国年节及纪念日放假办法 (State Council, as revised on 2024-11-10,
//! in force from 2025-01-01).
//!
//! Article 2 gives every citizen these days off: 元旦 1 day (January 1st); 春节 4 days (New
//! Year's Eve — the last day of the twelfth lunar month, the 29th or 30th — and the first
//! three days of the first lunar month); 清明节 1 day (the day of the 清明 solar term); 劳动节 2
//! days (May 1st and 2nd); 端午节 1 day (the 5th of the fifth lunar month); 中秋节 1 day (the
//! 15th of the eighth lunar month); 国庆节 3 days (October 1st to 3rd). Article 6: a holiday
//! that falls on a Saturday or Sunday is made up on a working day (补假) — here, the first
//! following weekday that is not a holiday itself. A statutory day that falls on another
//! statutory day (中秋 on October 1st–3rd, as in 2028 and 2031) is made up the same way, as the
//! State Council did in 2009 and 2020 (4 days off for 国庆 + 中秋). What the law cannot tell
//! — the make-up working weekends (调休上班) and bridge days of each year's notice — is left
//! out: a provisional calendar has no make-up working days.
//!
//! Lunar dates and the solar term come from `tyme4rs` (the 寿星天文历 algorithms; its lunar
//! dates are checked against ICU4X's Chinese calendar, GB/T 33661-2017, for every year of
//! [`YEARS`] in this module's tests, and the 清明 date against an independent solar-longitude
//! computation).
//!
//! Pure: no I/O. The [`Calendar`](super::calendar::Calendar) builds its provisional years
//! from [`year`]; an official file always wins over this derivation.

use super::calendar::{CalendarError, DayKind, SpecialDay, YearCalendar};
use jiff::civil::{Date, Weekday};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// Years a provisional calendar can be derived for: from the first year of the 2024 revision
/// of the law (earlier years had other holidays) to 2100, the end of the range over which the
/// lunar dates are checked against ICU4X's (the Hong Kong Observatory's published tables
/// reach 2100). A year outside it without an official file is not answered: clocks that need
/// it wait as `pending`.
pub const YEARS: RangeInclusive<i16> = 2025..=2100;

/// What a provisional year's `source` says.
pub const SOURCE: &str = "provisional: derived from 全国年节及纪念日放假办法 (2024 revision, Art. 2 and 6) \
     — statutory days and 补假 only; the State Council's notice for the year (调休, bridge days) is not loaded";

/// The file name shown for a provisional year (there is none).
pub const FILE: &str = "(provisional)";

/// One statutory day off of a year, with the holiday it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statutory {
    pub date: Date,
    pub name: &'static str,
}

fn jiff_date(year: isize, month: usize, day: usize) -> Result<Date, CalendarError> {
    let bad = || CalendarError::Arithmetic(format!("date {year}-{month}-{day} out of range"));
    Ok(Date::new(
        i16::try_from(year).map_err(|_| bad())?,
        i8::try_from(month).map_err(|_| bad())?,
        i8::try_from(day).map_err(|_| bad())?,
    )?)
}

/// The Gregorian date of `day` of lunar `month` (not a leap month) in lunar year `year`.
fn lunar(year: i16, month: isize, day: usize) -> Result<Date, CalendarError> {
    let l = tyme4rs::tyme::lunar::LunarDay::new(isize::from(year), month, day)
        .map_err(|e| CalendarError::Arithmetic(format!("lunar {year}-{month}-{day}: {e}")))?;
    let s = l.get_solar_day();
    jiff_date(s.get_year(), s.get_month(), s.get_day())
}

/// The date of the 清明 solar term in `year` (China Standard Time).
pub fn qingming(year: i16) -> Result<Date, CalendarError> {
    let term = tyme4rs::tyme::solar::SolarTerm::new(isize::from(year), "清明")
        .map_err(|e| CalendarError::Arithmetic(format!("清明 {year}: {e}")))?;
    let s = term.get_solar_day();
    jiff_date(s.get_year(), s.get_month(), s.get_day())
}

/// Lunar New Year's Day (正月初一) of the lunar year that begins in `year`.
pub fn lunar_new_year(year: i16) -> Result<Date, CalendarError> {
    lunar(year, 1, 1)
}

/// The statutory days off of `year` under Article 2, in date order (a date twice when two
/// holidays fall on it).
pub fn statutory_days(year: i16) -> Result<Vec<Statutory>, CalendarError> {
    let d = |m, day| Date::new(year, m, day).map_err(CalendarError::from);
    let new_year = lunar_new_year(year)?;
    let mut out = vec![Statutory {
        date: d(1, 1)?,
        name: "元旦",
    }];
    let mut day = new_year.yesterday()?; // 除夕: the last day of the twelfth month
    for _ in 0..4 {
        out.push(Statutory {
            date: day,
            name: "春节",
        });
        day = day.tomorrow()?;
    }
    out.push(Statutory {
        date: qingming(year)?,
        name: "清明节",
    });
    for day in [1, 2] {
        out.push(Statutory {
            date: d(5, day)?,
            name: "劳动节",
        });
    }
    out.push(Statutory {
        date: lunar(year, 5, 5)?,
        name: "端午节",
    });
    out.push(Statutory {
        date: lunar(year, 8, 15)?,
        name: "中秋节",
    });
    for day in [1, 2, 3] {
        out.push(Statutory {
            date: d(10, day)?,
            name: "国庆节",
        });
    }
    out.sort_by_key(|s| s.date);
    Ok(out)
}

fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// The special days of `year`'s provisional calendar: every statutory day a holiday, plus a
/// make-up day off (补假, labelled `<name>（补假）`) on the first following weekday that is not
/// already a holiday, for each statutory day on a Saturday or Sunday or on another statutory
/// day. A make-up day that would fall in the next year stays in the next year's calendar's
/// hands and is dropped here (none does: 国庆 ends on October 3rd).
pub fn special_days(year: i16) -> Result<BTreeMap<Date, SpecialDay>, CalendarError> {
    let statutory = statutory_days(year)?;
    let mut days: BTreeMap<Date, SpecialDay> = BTreeMap::new();
    let mut owed: Vec<(Date, &'static str)> = Vec::new();
    for s in &statutory {
        if days.contains_key(&s.date) {
            owed.push((s.date, s.name));
            continue;
        }
        days.insert(
            s.date,
            SpecialDay {
                kind: DayKind::Holiday,
                name: s.name.to_string(),
            },
        );
        if is_weekend(s.date) {
            owed.push((s.date, s.name));
        }
    }
    for (from, name) in owed {
        let mut day = from.tomorrow()?;
        while is_weekend(day) || days.contains_key(&day) {
            day = day.tomorrow()?;
        }
        if day.year() != year {
            continue;
        }
        days.insert(
            day,
            SpecialDay {
                kind: DayKind::Holiday,
                name: format!("{name}（补假）"),
            },
        );
    }
    Ok(days)
}

/// `year`'s provisional calendar, or `None` outside [`YEARS`].
pub fn year(year: i16) -> Result<Option<YearCalendar>, CalendarError> {
    if !YEARS.contains(&year) {
        return Ok(None);
    }
    Ok(Some(YearCalendar::provisional(year, special_days(year)?)))
}

#[cfg(test)]
mod tests;
