//! The working-day calendar: which dates are working days, and when the office is open.
//!
//! Chinese working days are not "Monday to Friday minus holidays": the State Council moves
//! weekend days to working days (调休上班) around long holidays. So every date has one of four
//! [`DayKind`]s, taken from a reviewed data file per year (`calendars/cn-YYYY.toml`, which
//! records its source), then from local overrides (an office closure, say), then from the
//! weekday. The calendar also carries the office hours and the time zone in which dates are
//! read. A question about a year that is not loaded is an error
//! ([`CalendarError::YearNotLoaded`]), never a guess.
//!
//! A calendar built with provisional years ([`Calendar::with_provisional`], what the daemon
//! runs on) also answers for a year without an official file, from the holiday law
//! ([`super::provisional`]); every answer that needed such a year says so
//! ([`Calendar::marked`]), so a due time computed on it is marked provisional, never a silent
//! guess. The official files stay the truth for their years.
//!
//! This module owns the data and the day arithmetic ("the 5th working day after"). It does not
//! decide deadlines (that is [`super::due`]), read the current time, or know about SLA clocks;
//! the only I/O is reading the calendar files handed to [`Calendar::load`].

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The time zone the office works in, unless configured otherwise.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// The 2026 calendar shipped with the daemon, for the demo and tests.
const BUILTIN_2026: &str = include_str!("../../../../calendars/cn-2026.toml");
const BUILTIN_2026_FILE: &str = "calendars/cn-2026.toml";

/// What kind of day a date is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// Monday to Friday, not a holiday.
    Workday,
    /// Saturday or Sunday, not moved.
    Weekend,
    /// A public holiday (放假), or a local closure.
    Holiday,
    /// A Saturday or Sunday worked instead of a holiday weekday (调休上班).
    MakeupWorkday,
}

impl DayKind {
    /// `Workday` and `MakeupWorkday` are working days.
    pub fn is_working(self) -> bool {
        matches!(self, DayKind::Workday | DayKind::MakeupWorkday)
    }

    /// The snake_case name used in files and config.
    pub fn as_str(self) -> &'static str {
        match self {
            DayKind::Workday => "workday",
            DayKind::Weekend => "weekend",
            DayKind::Holiday => "holiday",
            DayKind::MakeupWorkday => "makeup_workday",
        }
    }

    /// The kind a date has when no file or override says otherwise.
    fn by_weekday(date: Date) -> DayKind {
        if is_weekend(date) {
            DayKind::Weekend
        } else {
            DayKind::Workday
        }
    }
}

impl fmt::Display for DayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(super) fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// One problem in a calendar file, located by file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    /// 1-based line; `None` when the problem is a key missing from the file.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

fn render_file_errors(errors: &[FileError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Everything that can go wrong building or asking a [`Calendar`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The question needs a year for which no calendar file is loaded.
    #[error("no working-day calendar is loaded for {0}; add that year's calendar file")]
    YearNotLoaded(i16),
    /// Calendar files that do not parse or validate; every problem found, in file order.
    #[error("{}", render_file_errors(.0))]
    InvalidFile(Vec<FileError>),
    #[error("cannot read calendar file {file}: {message}")]
    Read { file: String, message: String },
    #[error("calendar year {year} is loaded twice: from {first} and from {second}")]
    DuplicateYear {
        year: i16,
        first: String,
        second: String,
    },
    #[error("calendar override for {date}: {message}")]
    InvalidOverride { date: Date, message: String },
    #[error("office hours: {0}")]
    InvalidOfficeHours(String),
    #[error("time zone {name:?}: {message}")]
    TimeZone { name: String, message: String },
    /// Date or time arithmetic left the range jiff supports (or a local time does not exist).
    #[error("date arithmetic: {0}")]
    Arithmetic(String),
}

impl From<jiff::Error> for CalendarError {
    fn from(e: jiff::Error) -> Self {
        CalendarError::Arithmetic(e.to_string())
    }
}

mod file;
pub use file::{SpecialDay, YearCalendar};

/// A local change to one date, applied over the year's file: an office closure, or a day the
/// office works although the national calendar rests.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub date: Date,
    pub kind: DayKind,
    /// Why, for the people who read the SLA board (e.g. "office move").
    pub note: String,
}

/// The hours the office is open on a working day: sorted, non-overlapping intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeHours {
    intervals: Vec<(Time, Time)>,
}

impl OfficeHours {
    /// Validates intervals: at least one, each `start < end`, sorted, not overlapping.
    pub fn new(intervals: Vec<(Time, Time)>) -> Result<OfficeHours, CalendarError> {
        if intervals.is_empty() {
            return Err(CalendarError::InvalidOfficeHours(
                "at least one interval is required".into(),
            ));
        }
        for &(start, end) in &intervals {
            if start >= end {
                return Err(CalendarError::InvalidOfficeHours(format!(
                    "interval {start}–{end} does not end after it starts"
                )));
            }
        }
        for pair in intervals.windows(2) {
            if let [(_, end), (next, _)] = pair
                && next < end
            {
                return Err(CalendarError::InvalidOfficeHours(format!(
                    "intervals must be in order and must not overlap: {next} is before {end}"
                )));
            }
        }
        Ok(OfficeHours { intervals })
    }

    /// The intervals, in order.
    pub fn intervals(&self) -> &[(Time, Time)] {
        &self.intervals
    }

    /// Start of the first interval (08:30 by default).
    pub fn office_open(&self) -> Time {
        self.intervals[0].0
    }

    /// End of the last interval (17:30 by default): the time "end of the working day" means.
    pub fn office_close(&self) -> Time {
        self.intervals[self.intervals.len() - 1].1
    }

    /// Whether `t` is inside an interval (start inclusive, end exclusive).
    pub fn contains(&self, t: Time) -> bool {
        self.intervals.iter().any(|&(s, e)| s <= t && t < e)
    }
}

impl Default for OfficeHours {
    /// 08:30–12:00 and 14:00–17:30.
    fn default() -> Self {
        OfficeHours {
            intervals: vec![
                (
                    jiff::civil::time(8, 30, 0, 0),
                    jiff::civil::time(12, 0, 0, 0),
                ),
                (
                    jiff::civil::time(14, 0, 0, 0),
                    jiff::civil::time(17, 30, 0, 0),
                ),
            ],
        }
    }
}

/// One loaded year, resolved to a kind per day.
#[derive(Debug, Clone)]
struct YearTable {
    file: String,
    source: String,
    /// Derived from the holiday law (no official file for the year).
    provisional: bool,
    /// Indexed by `day_of_year - 1`; exactly as long as the year.
    kinds: Vec<DayKind>,
    /// Holiday names and override notes, by `day_of_year - 1`.
    labels: BTreeMap<usize, String>,
    /// `working_before[i]`: working days among indexes `0..i`; one longer than `kinds`.
    working_before: Vec<u32>,
}

impl YearTable {
    fn build(data: YearCalendar) -> Result<YearTable, CalendarError> {
        let first = Date::new(data.year, 1, 1)?;
        let len = usize::try_from(first.days_in_year()).unwrap_or(365);
        let mut kinds = Vec::with_capacity(len);
        let mut day = first;
        for i in 0..len {
            kinds.push(DayKind::by_weekday(day));
            if i + 1 < len {
                day = day.tomorrow()?;
            }
        }
        let mut table = YearTable {
            file: data.file,
            source: data.source,
            provisional: data.provisional,
            kinds,
            labels: BTreeMap::new(),
            working_before: Vec::new(),
        };
        for (date, special) in data.days {
            table.set(date, special.kind, special.name);
        }
        Ok(table)
    }

    fn set(&mut self, date: Date, kind: DayKind, label: String) {
        let i = index(date);
        self.kinds[i] = kind;
        self.labels.insert(i, label);
    }

    fn recount(&mut self) {
        let mut n = 0;
        self.working_before = Vec::with_capacity(self.kinds.len() + 1);
        self.working_before.push(0);
        for k in &self.kinds {
            n += u32::from(k.is_working());
            self.working_before.push(n);
        }
    }
}

/// Index of a date in its year's table.
fn index(date: Date) -> usize {
    // day_of_year is 1..=366, so this never truncates.
    (date.day_of_year() - 1) as usize
}

/// The working-day calendar: loaded years, local overrides, office hours and time zone.
///
/// Cheap to clone (a few kilobytes per year); build once at start-up and share.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Every year answered: the official files' and, if built with them, provisional ones.
    years: BTreeMap<i16, YearTable>,
    hours: OfficeHours,
    tz: TimeZone,
    /// The same calendar without its provisional years, when it has any: what
    /// [`Calendar::marked`] asks first, so an answer that needs a provisional year is known.
    official: Option<std::sync::Arc<Calendar>>,
}

/// Where a year's day kinds come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// A reviewed file from the State Council's notice.
    Official,
    /// Derived from the holiday law ([`super::provisional`]): no notice loaded for the year.
    Provisional,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Official => "official",
            Basis::Provisional => "provisional",
        }
    }
}

impl Calendar {
    /// Builds a calendar from parsed year files. Overrides must fall in a loaded year, at most
    /// one per date, with a note; a `weekend` or `makeup_workday` override must be a Saturday
    /// or Sunday and a `workday` override a weekday (use the other kind instead).
    pub fn new(
        years: Vec<YearCalendar>,
        overrides: Vec<Override>,
        hours: OfficeHours,
        tz: TimeZone,
    ) -> Result<Calendar, CalendarError> {
        let tables = Self::tables(years, &overrides)?;
        Ok(Calendar {
            years: tables,
            hours,
            tz,
            official: None,
        })
    }

    /// Like [`Calendar::new`], plus a provisional year ([`super::provisional`]) for every year
    /// of [`super::provisional::YEARS`] without an official file. Overrides may also fall in
    /// a provisional year (a closure planned before the notice is out).
    pub fn with_provisional(
        years: Vec<YearCalendar>,
        overrides: Vec<Override>,
        hours: OfficeHours,
        tz: TimeZone,
    ) -> Result<Calendar, CalendarError> {
        let official_years: std::collections::BTreeSet<i16> =
            years.iter().map(YearCalendar::year).collect();
        let in_official: Vec<Override> = overrides
            .iter()
            .filter(|o| official_years.contains(&o.date.year()))
            .cloned()
            .collect();
        let official = Calendar::new(years.clone(), in_official, hours.clone(), tz.clone())?;
        let mut all = years;
        for year in super::provisional::YEARS {
            if !official_years.contains(&year)
                && let Some(y) = super::provisional::year(year)?
            {
                all.push(y);
            }
        }
        let tables = Self::tables(all, &overrides)?;
        Ok(Calendar {
            years: tables,
            hours,
            tz,
            official: Some(std::sync::Arc::new(official)),
        })
    }

    fn tables(
        years: Vec<YearCalendar>,
        overrides: &[Override],
    ) -> Result<BTreeMap<i16, YearTable>, CalendarError> {
        let mut tables: BTreeMap<i16, YearTable> = BTreeMap::new();
        for data in years {
            let year = data.year;
            if let Some(first) = tables.get(&year) {
                return Err(CalendarError::DuplicateYear {
                    year,
                    first: first.file.clone(),
                    second: data.file,
                });
            }
            tables.insert(year, YearTable::build(data)?);
        }
        let mut seen = BTreeMap::new();
        for o in overrides {
            let bad = |message: &str| CalendarError::InvalidOverride {
                date: o.date,
                message: message.into(),
            };
            if seen.insert(o.date, ()).is_some() {
                return Err(bad("the date is overridden twice"));
            }
            if o.note.trim().is_empty() {
                return Err(bad("a note saying why is required"));
            }
            match (o.kind, is_weekend(o.date)) {
                (DayKind::Weekend, false) => {
                    return Err(bad("a weekday cannot be `weekend`; use `holiday`"));
                }
                (DayKind::MakeupWorkday, false) => {
                    return Err(bad("a weekday cannot be `makeup_workday`; use `workday`"));
                }
                (DayKind::Workday, true) => {
                    return Err(bad(
                        "a Saturday or Sunday cannot be `workday`; use `makeup_workday`",
                    ));
                }
                _ => {}
            }
            let Some(table) = tables.get_mut(&o.date.year()) else {
                return Err(bad(&format!(
                    "no calendar file is loaded for {}",
                    o.date.year()
                )));
            };
            table.set(o.date, o.kind, o.note.clone());
        }
        for table in tables.values_mut() {
            table.recount();
        }
        Ok(tables)
    }

    fn read_all(files: &[PathBuf]) -> Result<Vec<YearCalendar>, CalendarError> {
        let mut years = Vec::with_capacity(files.len());
        let mut errors = Vec::new();
        for path in files {
            match YearCalendar::read(path) {
                Ok(y) => years.push(y),
                Err(CalendarError::InvalidFile(mut e)) => errors.append(&mut e),
                Err(e) => return Err(e),
            }
        }
        if !errors.is_empty() {
            return Err(CalendarError::InvalidFile(errors));
        }
        Ok(years)
    }

    /// Reads calendar files (one per year) and builds a calendar; `tz` is an IANA name such
    /// as `Asia/Shanghai`. Problems in several files are reported together.
    pub fn load(
        files: &[PathBuf],
        overrides: Vec<Override>,
        hours: OfficeHours,
        tz: &str,
    ) -> Result<Calendar, CalendarError> {
        Calendar::new(Self::read_all(files)?, overrides, hours, time_zone(tz)?)
    }

    /// [`Calendar::load`] plus provisional years ([`Calendar::with_provisional`]): what the
    /// daemon runs on.
    pub fn load_with_provisional(
        files: &[PathBuf],
        overrides: Vec<Override>,
        hours: OfficeHours,
        tz: &str,
    ) -> Result<Calendar, CalendarError> {
        Calendar::with_provisional(Self::read_all(files)?, overrides, hours, time_zone(tz)?)
    }

    /// The shipped 2026 calendar, default office hours, `Asia/Shanghai`; for the demo and
    /// tests. Fails only if the system has no time zone database.
    pub fn builtin() -> Result<Calendar, CalendarError> {
        let year = YearCalendar::parse(BUILTIN_2026, BUILTIN_2026_FILE)?;
        Calendar::new(
            vec![year],
            Vec::new(),
            OfficeHours::default(),
            time_zone(DEFAULT_TIME_ZONE)?,
        )
    }

    /// The shipped 2026 calendar with the operator's overrides, office hours and zone.
    pub fn builtin_with(
        overrides: Vec<Override>,
        hours: OfficeHours,
        tz: &str,
    ) -> Result<Calendar, CalendarError> {
        let year = YearCalendar::parse(BUILTIN_2026, BUILTIN_2026_FILE)?;
        Calendar::new(vec![year], overrides, hours, time_zone(tz)?)
    }

    /// [`Calendar::builtin_with`] plus provisional years: what the daemon runs on when no
    /// calendar file is configured.
    pub fn builtin_with_provisional(
        overrides: Vec<Override>,
        hours: OfficeHours,
        tz: &str,
    ) -> Result<Calendar, CalendarError> {
        let year = YearCalendar::parse(BUILTIN_2026, BUILTIN_2026_FILE)?;
        Calendar::with_provisional(vec![year], overrides, hours, time_zone(tz)?)
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    pub fn office_hours(&self) -> &OfficeHours {
        &self.hours
    }

    /// End of the working day (17:30 by default).
    pub fn office_close(&self) -> Time {
        self.hours.office_close()
    }

    /// The years loaded from official files, ascending (provisional years are not listed).
    pub fn years(&self) -> impl Iterator<Item = i16> + '_ {
        self.years
            .iter()
            .filter(|(_, t)| !t.provisional)
            .map(|(y, _)| *y)
    }

    /// The years answered provisionally (no official file), ascending.
    pub fn provisional_years(&self) -> impl Iterator<Item = i16> + '_ {
        self.years
            .iter()
            .filter(|(_, t)| t.provisional)
            .map(|(y, _)| *y)
    }

    /// Every year answered (official and provisional), ascending.
    pub fn all_years(&self) -> impl Iterator<Item = i16> + '_ {
        self.years.keys().copied()
    }

    /// A short digest of `year`'s day kinds (overrides included): equal digests, equal
    /// answers. Tells whether the calendar of a year changed between two starts.
    pub fn digest(&self, year: i16) -> Result<String, CalendarError> {
        use sha2::{Digest, Sha256};
        let t = self.table(year)?;
        let bytes: Vec<u8> = t
            .kinds
            .iter()
            .map(|k| match k {
                DayKind::Workday => b'w',
                DayKind::Weekend => b'e',
                DayKind::Holiday => b'h',
                DayKind::MakeupWorkday => b'm',
            })
            .collect();
        Ok(hex::encode(&Sha256::digest(&bytes)[..16]))
    }

    /// The first provisional year from `from`'s year to `to`'s year, if any.
    pub fn first_provisional_year(&self, from: Date, to: Date) -> Option<i16> {
        (from.year()..=to.year()).find(|y| self.basis(*y) == Some(Basis::Provisional))
    }

    /// Whether `year` is answered, and on what basis; `None`: not at all.
    pub fn basis(&self, year: i16) -> Option<Basis> {
        self.years.get(&year).map(|t| {
            if t.provisional {
                Basis::Provisional
            } else {
                Basis::Official
            }
        })
    }

    /// The last day of the last official year, if any year is official.
    pub fn official_until(&self) -> Option<Date> {
        self.years().max().and_then(|y| Date::new(y, 12, 31).ok())
    }

    /// The source a loaded year's file states.
    pub fn source(&self, year: i16) -> Result<&str, CalendarError> {
        Ok(&self.table(year)?.source)
    }

    /// The file a year was read from (`(provisional)` for a provisional year).
    pub fn file(&self, year: i16) -> Result<&str, CalendarError> {
        Ok(&self.table(year)?.file)
    }

    /// Runs `f` on the official years alone; if that needs a year that only a provisional
    /// table answers, runs it again on the whole calendar and returns that year with the
    /// answer (the first such year the official run ran into). `None`: the answer rests on
    /// official files (and overrides) only. On a calendar without provisional years this is
    /// `f(self)`. The way every due time is computed, so none is a silent guess.
    pub fn marked<T>(
        &self,
        f: impl Fn(&Calendar) -> Result<T, CalendarError>,
    ) -> Result<(T, Option<i16>), CalendarError> {
        let Some(official) = &self.official else {
            return f(self).map(|v| (v, None));
        };
        match f(official) {
            Ok(v) => Ok((v, None)),
            Err(CalendarError::YearNotLoaded(y)) if self.basis(y) == Some(Basis::Provisional) => {
                f(self).map(|v| (v, Some(y)))
            }
            Err(e) => Err(e),
        }
    }

    fn table(&self, year: i16) -> Result<&YearTable, CalendarError> {
        self.years
            .get(&year)
            .ok_or(CalendarError::YearNotLoaded(year))
    }

    /// What kind of day `date` is.
    pub fn kind(&self, date: Date) -> Result<DayKind, CalendarError> {
        Ok(self.table(date.year())?.kinds[index(date)])
    }

    /// The holiday name or override note for `date`, if it has one.
    pub fn label(&self, date: Date) -> Result<Option<&str>, CalendarError> {
        Ok(self
            .table(date.year())?
            .labels
            .get(&index(date))
            .map(String::as_str))
    }

    pub fn is_working_day(&self, date: Date) -> Result<bool, CalendarError> {
        Ok(self.kind(date)?.is_working())
    }

    /// The `n`-th working day after `date`; `date` itself is not counted, whatever its kind.
    /// `n = 0` returns `date`. Thu 2026-02-12 + 5 = Thu 2026-02-26.
    pub fn add_working_days(&self, date: Date, n: u32) -> Result<Date, CalendarError> {
        let mut day = date;
        let mut left = n;
        while left > 0 {
            day = day.tomorrow()?;
            if self.is_working_day(day)? {
                left -= 1;
            }
        }
        Ok(day)
    }

    /// `date` if it is a working day, else the first working day after it.
    pub fn next_working_day_on_or_after(&self, date: Date) -> Result<Date, CalendarError> {
        let mut day = date;
        while !self.is_working_day(day)? {
            day = day.tomorrow()?;
        }
        Ok(day)
    }

    /// The first working day after `date`.
    pub fn next_working_day_after(&self, date: Date) -> Result<Date, CalendarError> {
        self.add_working_days(date, 1)
    }

    /// Working days in a loaded year.
    pub fn working_days_in_year(&self, year: i16) -> Result<u32, CalendarError> {
        let t = self.table(year)?;
        Ok(t.working_before[t.kinds.len()])
    }

    /// Signed count of working days from `from` to `to`: the working days in `(from, to]`
    /// when `from <= to`, minus those in `(to, from]` otherwise. So
    /// `working_days_between(d, add_working_days(d, n)) == n`. Every year after the earlier
    /// date, up to the later one, must be loaded.
    pub fn working_days_between(&self, from: Date, to: Date) -> Result<i64, CalendarError> {
        if to < from {
            return Ok(-self.working_days_between(to, from)?);
        }
        if to == from {
            return Ok(0);
        }
        let start = from.tomorrow()?; // (from, to] == [start, to]
        let mut total: i64 = 0;
        for year in start.year()..=to.year() {
            let t = self.table(year)?;
            let lo = if year == start.year() {
                index(start)
            } else {
                0
            };
            let hi = if year == to.year() {
                index(to) + 1
            } else {
                t.kinds.len()
            };
            total += i64::from(t.working_before[hi] - t.working_before[lo]);
        }
        Ok(total)
    }

    /// `instant` as a local date and time in the calendar's time zone.
    pub fn local(&self, instant: Timestamp) -> Zoned {
        instant.to_zoned(self.tz.clone())
    }

    /// The local date of `instant` in the calendar's time zone.
    pub fn local_date(&self, instant: Timestamp) -> Date {
        self.local(instant).date()
    }

    /// The instant of local `time` on `date` in the calendar's time zone (a time skipped by a
    /// DST gap resolves forward, as jiff's "compatible" rule does).
    pub fn instant(&self, date: Date, time: Time) -> Result<Timestamp, CalendarError> {
        self.instant_at(date.to_datetime(time))
    }

    pub(crate) fn instant_at(&self, dt: DateTime) -> Result<Timestamp, CalendarError> {
        Ok(dt.to_zoned(self.tz.clone())?.timestamp())
    }

    /// Office close on `date`, as an instant.
    pub fn close_of(&self, date: Date) -> Result<Timestamp, CalendarError> {
        self.instant(date, self.office_close())
    }
}

fn time_zone(name: &str) -> Result<TimeZone, CalendarError> {
    TimeZone::get(name).map_err(|e| CalendarError::TimeZone {
        name: name.into(),
        message: format!("{e} (is the system time zone database, e.g. tzdata, installed?)"),
    })
}

#[cfg(test)]
mod tests;
