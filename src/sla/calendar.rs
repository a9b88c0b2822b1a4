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
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The time zone the office works in, unless configured otherwise.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// The 2026 calendar shipped with the daemon, for the demo and tests.
const BUILTIN_2026: &str = include_str!("../../calendars/cn-2026.toml");
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

fn is_weekend(date: Date) -> bool {
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

/// A date a calendar file lists: a holiday or a make-up workday, with the holiday's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialDay {
    /// `Holiday` or `MakeupWorkday`.
    pub kind: DayKind,
    /// The holiday it belongs to, e.g. `春节`.
    pub name: String,
}

/// One year's calendar file, parsed and validated.
#[derive(Debug, Clone)]
pub struct YearCalendar {
    year: i16,
    file: String,
    source: String,
    issued: Option<Date>,
    days: BTreeMap<Date, SpecialDay>,
    /// Derived from the holiday law ([`super::provisional`]), not read from an official file.
    provisional: bool,
}

impl YearCalendar {
    /// Reads and parses a calendar file.
    pub fn read(path: &Path) -> Result<YearCalendar, CalendarError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CalendarError::Read {
            file: file.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses calendar text; `file` names it in errors. Reports every problem at once.
    ///
    /// The format (see `calendars/cn-2026.toml`): top-level `year`, `source` and optional
    /// `issued`; then one `[[holiday]]` table per holiday with `name`, optional `name_en`,
    /// `from`, optional `to` (default: `from`), optional `makeup_workdays` and optional
    /// `notice`. Dates are TOML local dates (`2026-01-01`) or strings (`"2026-01-01"`).
    pub fn parse(text: &str, file: &str) -> Result<YearCalendar, CalendarError> {
        let doc = toml_edit::Document::parse(text.to_string()).map_err(|e| {
            CalendarError::InvalidFile(vec![FileError {
                file: file.into(),
                line: e.span().map(|s| line_at(text, s.start)),
                message: format!("TOML syntax: {}", e.message().trim()),
            }])
        })?;
        let mut p = FileParser {
            file,
            text,
            errors: Vec::new(),
            year: None,
            days: BTreeMap::new(),
        };
        let parsed = p.document(doc.as_table());
        match parsed {
            Some((year, source, issued)) if p.errors.is_empty() => Ok(YearCalendar {
                year,
                file: file.into(),
                source,
                issued,
                days: p.days.into_iter().map(|(d, (day, _))| (d, day)).collect(),
                provisional: false,
            }),
            _ => {
                let mut errors = p.errors;
                errors.sort_by_key(|e| e.line.unwrap_or(0));
                Err(CalendarError::InvalidFile(errors))
            }
        }
    }

    /// A provisional year: `days` derived from the holiday law by [`super::provisional`].
    pub(crate) fn provisional(year: i16, days: BTreeMap<Date, SpecialDay>) -> YearCalendar {
        YearCalendar {
            year,
            file: super::provisional::FILE.into(),
            source: super::provisional::SOURCE.into(),
            issued: None,
            days,
            provisional: true,
        }
    }

    pub fn year(&self) -> i16 {
        self.year
    }

    /// Derived from the holiday law rather than read from an official file.
    pub fn is_provisional(&self) -> bool {
        self.provisional
    }

    /// Where the data came from, as the file states it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// When the source was issued, if the file says.
    pub fn issued(&self) -> Option<Date> {
        self.issued
    }

    /// The file the data was read from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Every holiday and make-up workday the file lists, in date order.
    pub fn special_days(&self) -> impl Iterator<Item = (Date, &SpecialDay)> {
        self.days.iter().map(|(d, s)| (*d, s))
    }
}

const TOP_KEYS: &[&str] = &["year", "source", "issued", "holiday"];
const HOLIDAY_KEYS: &[&str] = &["name", "name_en", "from", "to", "makeup_workdays", "notice"];

/// Walks a parsed calendar document, collecting every problem.
struct FileParser<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<FileError>,
    /// The declared year, once read; dates are checked against it.
    year: Option<i16>,
    /// Dates listed so far, each with the line that listed it (for "listed twice").
    days: BTreeMap<Date, (SpecialDay, Option<usize>)>,
}

impl FileParser<'_> {
    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| line_at(self.text, s.start))
    }

    fn err(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let line = self.line(span);
        self.errors.push(FileError {
            file: self.file.into(),
            line,
            message: message.into(),
        });
    }

    /// Returns (year, source, issued) when the header is usable; holidays go to `self.days`.
    fn document(&mut self, root: &toml_edit::Table) -> Option<(i16, String, Option<Date>)> {
        self.unknown_keys(root, TOP_KEYS, "");
        let year = self.year_key(root);
        self.year = year;
        let source = self.string_key(root, "source", "", true);
        let issued = root
            .get("issued")
            .and_then(|item| self.date_item(item, "issued"));
        match root.get_key_value("holiday") {
            None => self.err(None, "missing `[[holiday]]` tables"),
            Some((key, item)) => match item.as_array_of_tables() {
                Some(tables) => {
                    for (i, table) in tables.iter().enumerate() {
                        self.holiday(table, i);
                    }
                }
                None => self.err(
                    key.span(),
                    "`holiday` must be an array of tables, written `[[holiday]]`",
                ),
            },
        }
        Some((year?, source?, issued))
    }

    fn unknown_keys(&mut self, table: &toml_edit::Table, known: &[&str], at: &str) {
        for (name, _) in table.iter() {
            if !known.contains(&name) {
                let span = table.key(name).and_then(toml_edit::Key::span);
                self.err(
                    span,
                    format!(
                        "unknown key `{at}{name}`; expected one of {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }

    fn year_key(&mut self, root: &toml_edit::Table) -> Option<i16> {
        let Some(item) = root.get("year") else {
            self.err(None, "missing key `year`");
            return None;
        };
        match item.as_integer().and_then(|y| i16::try_from(y).ok()) {
            Some(y) if (1949..=9999).contains(&y) => Some(y),
            _ => {
                self.err(item.span(), "`year` must be a year such as 2026");
                None
            }
        }
    }

    fn string_key(
        &mut self,
        table: &toml_edit::Table,
        key: &str,
        at: &str,
        required: bool,
    ) -> Option<String> {
        let Some(item) = table.get(key) else {
            if required {
                // A holiday table points at its `[[holiday]]` line; a missing top-level key
                // has no line of its own.
                let span = if at.is_empty() { None } else { table.span() };
                self.err(span, format!("missing key `{at}{key}`"));
            }
            return None;
        };
        match item.as_str().map(str::trim) {
            Some(s) if !s.is_empty() => Some(s.to_string()),
            _ => {
                self.err(
                    item.span(),
                    format!("`{at}{key}` must be a non-empty string"),
                );
                None
            }
        }
    }

    fn date_item(&mut self, item: &toml_edit::Item, what: &str) -> Option<Date> {
        match item.as_value() {
            Some(v) => self.date_value(v, what),
            None => {
                self.err(
                    item.span(),
                    format!("`{what}` must be a date such as 2026-01-01"),
                );
                None
            }
        }
    }

    /// A date from a TOML local date (`2026-01-01`) or a string (`"2026-01-01"`).
    fn date_value(&mut self, v: &toml_edit::Value, what: &str) -> Option<Date> {
        let parsed = if let Some(dt) = v.as_datetime() {
            match (dt.date, dt.time, dt.offset) {
                (Some(d), None, None) => i16::try_from(d.year)
                    .ok()
                    .and_then(|y| Date::new(y, d.month as i8, d.day as i8).ok())
                    .ok_or_else(|| format!("`{what}`: {dt} is not a date")),
                _ => Err(format!("`{what}` must be a date without a time, got {dt}")),
            }
        } else if let Some(s) = v.as_str() {
            let well_formed = s.len() == 10 && s.as_bytes().get(4) == Some(&b'-');
            match s.parse::<Date>() {
                Ok(d) if well_formed => Ok(d),
                _ => Err(format!(
                    "`{what}`: {s:?} is not a date (expected YYYY-MM-DD)"
                )),
            }
        } else {
            Err(format!("`{what}` must be a date such as 2026-01-01"))
        };
        match parsed {
            Ok(d) => Some(d),
            Err(message) => {
                self.err(v.span(), message);
                None
            }
        }
    }

    /// A date's year must be the declared year; checked only when the year was readable.
    fn in_year(&mut self, date: Date, span: Option<Range<usize>>, what: &str) -> bool {
        match self.year {
            Some(y) if date.year() != y => {
                self.err(
                    span,
                    format!("`{what}` {date} is not in the file's year {y}"),
                );
                false
            }
            _ => true,
        }
    }

    fn holiday(&mut self, table: &toml_edit::Table, index: usize) {
        let at = format!("holiday[{index}].");
        self.unknown_keys(table, HOLIDAY_KEYS, &at);
        let name = self.string_key(table, "name", &at, true);
        self.string_key(table, "name_en", &at, false);
        self.string_key(table, "notice", &at, false);
        let name = name.unwrap_or_default();

        let from = match table.get("from") {
            Some(item) => self
                .date_item(item, &format!("{at}from"))
                .map(|d| (d, item.span())),
            None => {
                let span = table.span();
                self.err(span, format!("missing key `{at}from`"));
                None
            }
        };
        let to = match table.get("to") {
            Some(item) => self
                .date_item(item, &format!("{at}to"))
                .map(|d| (d, item.span())),
            None => from.clone(),
        };
        if let (Some((from, from_span)), Some((to, to_span))) = (from, to) {
            let from_ok = self.in_year(from, from_span.clone(), &format!("{at}from"));
            let to_ok = self.in_year(to, to_span.clone(), &format!("{at}to"));
            if to < from {
                self.err(
                    to_span,
                    format!("`{at}to` {to} is before `{at}from` {from}"),
                );
            } else if from_ok && to_ok {
                // Both ends are in the declared year, so this walks at most 366 days.
                let mut day = from;
                while day <= to {
                    self.put(day, DayKind::Holiday, &name, from_span.clone());
                    match day.tomorrow() {
                        Ok(next) => day = next,
                        Err(_) => break,
                    }
                }
            }
        }

        if let Some(item) = table.get("makeup_workdays") {
            let what = format!("{at}makeup_workdays");
            let Some(array) = item.as_array() else {
                self.err(item.span(), format!("`{what}` must be an array of dates"));
                return;
            };
            for v in array.iter() {
                let Some(date) = self.date_value(v, &what) else {
                    continue;
                };
                if !self.in_year(date, v.span(), &what) {
                    continue;
                }
                if !is_weekend(date) {
                    self.err(
                        v.span(),
                        format!(
                            "make-up workday {date} is a {:?}; a make-up workday (调休上班) \
                             must be a Saturday or Sunday",
                            date.weekday()
                        ),
                    );
                    continue;
                }
                self.put(date, DayKind::MakeupWorkday, &name, v.span());
            }
        }
    }

    fn put(&mut self, date: Date, kind: DayKind, name: &str, span: Option<Range<usize>>) {
        let line = self.line(span.clone());
        if let Some((_, first)) = self.days.get(&date) {
            let first = match first {
                Some(l) => format!(" (first on line {l})"),
                None => String::new(),
            };
            self.err(span, format!("{date} is listed twice{first}"));
            return;
        }
        let day = SpecialDay {
            kind,
            name: name.to_string(),
        };
        self.days.insert(date, (day, line));
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

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
mod tests {
    use super::*;
    use jiff::civil::date;

    fn cal() -> Calendar {
        Calendar::builtin().expect("builtin calendar")
    }

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    /// Every date the 2026 notice lists, with its kind and holiday.
    const SPECIAL_2026: &[(&str, DayKind, &str)] = &[
        ("2026-01-01", DayKind::Holiday, "元旦"),
        ("2026-01-02", DayKind::Holiday, "元旦"),
        ("2026-01-03", DayKind::Holiday, "元旦"),
        ("2026-01-04", DayKind::MakeupWorkday, "元旦"),
        ("2026-02-14", DayKind::MakeupWorkday, "春节"),
        ("2026-02-15", DayKind::Holiday, "春节"),
        ("2026-02-16", DayKind::Holiday, "春节"),
        ("2026-02-17", DayKind::Holiday, "春节"),
        ("2026-02-18", DayKind::Holiday, "春节"),
        ("2026-02-19", DayKind::Holiday, "春节"),
        ("2026-02-20", DayKind::Holiday, "春节"),
        ("2026-02-21", DayKind::Holiday, "春节"),
        ("2026-02-22", DayKind::Holiday, "春节"),
        ("2026-02-23", DayKind::Holiday, "春节"),
        ("2026-02-28", DayKind::MakeupWorkday, "春节"),
        ("2026-04-04", DayKind::Holiday, "清明节"),
        ("2026-04-05", DayKind::Holiday, "清明节"),
        ("2026-04-06", DayKind::Holiday, "清明节"),
        ("2026-05-01", DayKind::Holiday, "劳动节"),
        ("2026-05-02", DayKind::Holiday, "劳动节"),
        ("2026-05-03", DayKind::Holiday, "劳动节"),
        ("2026-05-04", DayKind::Holiday, "劳动节"),
        ("2026-05-05", DayKind::Holiday, "劳动节"),
        ("2026-05-09", DayKind::MakeupWorkday, "劳动节"),
        ("2026-06-19", DayKind::Holiday, "端午节"),
        ("2026-06-20", DayKind::Holiday, "端午节"),
        ("2026-06-21", DayKind::Holiday, "端午节"),
        ("2026-09-20", DayKind::MakeupWorkday, "国庆节"),
        ("2026-09-25", DayKind::Holiday, "中秋节"),
        ("2026-09-26", DayKind::Holiday, "中秋节"),
        ("2026-09-27", DayKind::Holiday, "中秋节"),
        ("2026-10-01", DayKind::Holiday, "国庆节"),
        ("2026-10-02", DayKind::Holiday, "国庆节"),
        ("2026-10-03", DayKind::Holiday, "国庆节"),
        ("2026-10-04", DayKind::Holiday, "国庆节"),
        ("2026-10-05", DayKind::Holiday, "国庆节"),
        ("2026-10-06", DayKind::Holiday, "国庆节"),
        ("2026-10-07", DayKind::Holiday, "国庆节"),
        ("2026-10-10", DayKind::MakeupWorkday, "国庆节"),
    ];

    #[test]
    fn every_day_of_2026_is_classified() {
        let cal = cal();
        let special: BTreeMap<Date, (DayKind, &str)> = SPECIAL_2026
            .iter()
            .map(|&(s, k, n)| (d(s), (k, n)))
            .collect();
        let mut day = date(2026, 1, 1);
        while day.year() == 2026 {
            let (want, label) = match special.get(&day) {
                Some(&(k, n)) => (k, Some(n)),
                None if is_weekend(day) => (DayKind::Weekend, None),
                None => (DayKind::Workday, None),
            };
            assert_eq!(cal.kind(day).unwrap(), want, "{day}");
            assert_eq!(cal.label(day).unwrap(), label, "{day}");
            day = day.tomorrow().unwrap();
        }
    }

    #[test]
    fn builtin_file_lists_exactly_the_notice() {
        let y = YearCalendar::parse(BUILTIN_2026, BUILTIN_2026_FILE).unwrap();
        assert_eq!(y.year(), 2026);
        assert_eq!(y.issued(), Some(date(2025, 11, 4)));
        assert!(
            y.source()
                .contains("国务院办公厅关于2026年部分节假日安排的通知")
        );
        let listed: Vec<(Date, DayKind, &str)> = y
            .special_days()
            .map(|(d, s)| (d, s.kind, s.name.as_str()))
            .collect();
        let want: Vec<(Date, DayKind, &str)> =
            SPECIAL_2026.iter().map(|&(s, k, n)| (d(s), k, n)).collect();
        assert_eq!(listed, want);
    }

    #[test]
    fn shipped_file_loads_from_disk() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(BUILTIN_2026_FILE);
        let cal = Calendar::load(
            &[path],
            Vec::new(),
            OfficeHours::default(),
            DEFAULT_TIME_ZONE,
        )
        .unwrap();
        assert_eq!(cal.years().collect::<Vec<_>>(), vec![2026]);
        assert_eq!(cal.working_days_in_year(2026).unwrap(), 248);
    }

    /// 2026 has 248 working days. 2026-01-01 is a Thursday and the year has 365 days = 52
    /// weeks + 1 day, so 104 Saturdays/Sundays and 261 Mondays–Fridays (the extra day,
    /// 12-31, is a Thursday). The 33 holiday days include 19 weekdays: 元旦 Jan 1–2 (2),
    /// 春节 Feb 16–20 and 23 (6), 清明 Apr 6 (1), 劳动节 May 1, 4, 5 (3), 端午 Jun 19 (1),
    /// 中秋 Sep 25 (1), 国庆 Oct 1, 2, 5, 6, 7 (5). The 6 make-up workdays are all weekend
    /// days. 261 − 19 + 6 = 248; equivalently 365 − (104 + 13 statutory holiday days) = 248.
    /// (250, a figure one might expect from other years, is not right for 2026.)
    #[test]
    fn working_days_in_2026() {
        let cal = cal();
        assert_eq!(cal.working_days_in_year(2026).unwrap(), 248);
        let mut counted = 0;
        let mut day = date(2026, 1, 1);
        while day.year() == 2026 {
            counted += u32::from(cal.is_working_day(day).unwrap());
            day = day.tomorrow().unwrap();
        }
        assert_eq!(counted, 248);
    }

    #[test]
    fn add_working_days_table() {
        let cal = cal();
        // (start, n, expected): the start day is never counted.
        let cases = [
            ("2026-02-12", 5, "2026-02-26"), // over 春节, via make-up Sat 02-14
            ("2026-09-30", 3, "2026-10-10"), // over 国庆, ending on make-up Sat 10-10
            ("2026-03-02", 0, "2026-03-02"),
            ("2026-03-06", 1, "2026-03-09"), // Fri → Mon
            ("2026-03-07", 1, "2026-03-09"), // from a Saturday
            ("2026-01-01", 1, "2026-01-04"), // holiday start, make-up Sunday
            ("2026-12-30", 1, "2026-12-31"),
            ("2026-04-30", 1, "2026-05-06"),
            ("2026-05-08", 1, "2026-05-09"),
        ];
        for (start, n, want) in cases {
            assert_eq!(
                cal.add_working_days(d(start), n).unwrap(),
                d(want),
                "{start} + {n}"
            );
        }
    }

    #[test]
    fn next_working_day_table() {
        let cal = cal();
        // (date, on_or_after, after)
        let cases = [
            ("2026-03-03", "2026-03-03", "2026-03-04"),
            ("2026-03-07", "2026-03-09", "2026-03-09"),
            ("2026-02-14", "2026-02-14", "2026-02-24"),
            ("2026-02-15", "2026-02-24", "2026-02-24"),
            ("2026-09-30", "2026-09-30", "2026-10-08"),
            ("2026-10-03", "2026-10-08", "2026-10-08"),
            ("2026-09-19", "2026-09-20", "2026-09-20"),
        ];
        for (day, on_or_after, after) in cases {
            assert_eq!(
                cal.next_working_day_on_or_after(d(day)).unwrap(),
                d(on_or_after),
                "{day}"
            );
            assert_eq!(
                cal.next_working_day_after(d(day)).unwrap(),
                d(after),
                "{day}"
            );
        }
    }

    #[test]
    fn unloaded_years_are_errors_naming_the_year() {
        let cal = cal();
        assert_eq!(
            cal.kind(date(2027, 1, 4)),
            Err(CalendarError::YearNotLoaded(2027))
        );
        assert_eq!(
            cal.is_working_day(date(2025, 12, 31)),
            Err(CalendarError::YearNotLoaded(2025))
        );
        assert_eq!(
            cal.add_working_days(date(2026, 12, 31), 1),
            Err(CalendarError::YearNotLoaded(2027))
        );
        assert_eq!(
            cal.next_working_day_after(date(2026, 12, 31)),
            Err(CalendarError::YearNotLoaded(2027))
        );
        assert_eq!(
            cal.working_days_between(date(2026, 12, 1), date(2027, 1, 5)),
            Err(CalendarError::YearNotLoaded(2027))
        );
        assert_eq!(
            cal.working_days_in_year(2027),
            Err(CalendarError::YearNotLoaded(2027))
        );
        let msg = CalendarError::YearNotLoaded(2027).to_string();
        assert!(msg.contains("2027"), "{msg}");
    }

    #[test]
    fn working_days_between_table() {
        let cal = cal();
        let cases = [
            ("2026-02-12", "2026-02-26", 5),
            ("2026-02-26", "2026-02-12", -5),
            ("2026-09-30", "2026-10-10", 3),
            ("2026-03-03", "2026-03-03", 0),
            ("2026-03-07", "2026-03-08", 0),
            ("2026-01-01", "2026-12-31", 248),
            // The earlier date is not counted, so its year need not be loaded.
            ("2025-12-31", "2026-01-05", 2),
        ];
        for (from, to, want) in cases {
            assert_eq!(
                cal.working_days_between(d(from), d(to)).unwrap(),
                want,
                "{from} → {to}"
            );
        }
        // Inverse of add_working_days for every start day and small n.
        let mut day = date(2026, 1, 1);
        while day < date(2026, 12, 1) {
            for n in 0..=12 {
                let end = cal.add_working_days(day, n).unwrap();
                assert_eq!(
                    cal.working_days_between(day, end).unwrap(),
                    i64::from(n),
                    "{day} + {n}"
                );
            }
            day = day.tomorrow().unwrap();
        }
    }

    #[test]
    fn overrides_apply_over_the_file() {
        let year = YearCalendar::parse(BUILTIN_2026, BUILTIN_2026_FILE).unwrap();
        let cal = Calendar::new(
            vec![year],
            vec![
                Override {
                    date: date(2026, 3, 3),
                    kind: DayKind::Holiday,
                    note: "office move".into(),
                },
                Override {
                    date: date(2026, 3, 7),
                    kind: DayKind::MakeupWorkday,
                    note: "backlog day".into(),
                },
            ],
            OfficeHours::default(),
            time_zone(DEFAULT_TIME_ZONE).unwrap(),
        )
        .unwrap();
        assert_eq!(cal.kind(date(2026, 3, 3)).unwrap(), DayKind::Holiday);
        assert_eq!(cal.label(date(2026, 3, 3)).unwrap(), Some("office move"));
        assert_eq!(cal.kind(date(2026, 3, 7)).unwrap(), DayKind::MakeupWorkday);
        // Mon 03-02 + 2: skips 03-03, lands on 03-05.
        assert_eq!(
            cal.add_working_days(date(2026, 3, 2), 2).unwrap(),
            date(2026, 3, 5)
        );
        // One closed weekday, one worked Saturday.
        assert_eq!(cal.working_days_in_year(2026).unwrap(), 248);
    }

    #[test]
    fn bad_overrides_are_rejected() {
        let o = |y, m, day, kind, note: &str| Override {
            date: date(y, m, day),
            kind,
            note: note.into(),
        };
        let cases = [
            (vec![o(2027, 1, 4, DayKind::Holiday, "x")], "2027"),
            (
                vec![
                    o(2026, 3, 3, DayKind::Holiday, "x"),
                    o(2026, 3, 3, DayKind::Workday, "y"),
                ],
                "twice",
            ),
            (vec![o(2026, 3, 7, DayKind::Workday, "x")], "makeup_workday"),
            (vec![o(2026, 3, 3, DayKind::MakeupWorkday, "x")], "weekday"),
            (vec![o(2026, 3, 3, DayKind::Weekend, "x")], "weekday"),
            (vec![o(2026, 3, 3, DayKind::Holiday, " ")], "note"),
        ];
        for (overrides, needle) in cases {
            let year = YearCalendar::parse(BUILTIN_2026, BUILTIN_2026_FILE).unwrap();
            let err = Calendar::new(
                vec![year],
                overrides,
                OfficeHours::default(),
                time_zone(DEFAULT_TIME_ZONE).unwrap(),
            )
            .unwrap_err();
            assert!(
                matches!(err, CalendarError::InvalidOverride { .. }),
                "{err}"
            );
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn a_year_loaded_twice_is_rejected() {
        let a = YearCalendar::parse(BUILTIN_2026, "a.toml").unwrap();
        let b = YearCalendar::parse(BUILTIN_2026, "b.toml").unwrap();
        let err = Calendar::new(
            vec![a, b],
            Vec::new(),
            OfficeHours::default(),
            TimeZone::UTC,
        )
        .unwrap_err();
        assert_eq!(
            err,
            CalendarError::DuplicateYear {
                year: 2026,
                first: "a.toml".into(),
                second: "b.toml".into()
            }
        );
    }

    #[test]
    fn office_hours() {
        let t = |h, m| jiff::civil::time(h, m, 0, 0);
        let hours = OfficeHours::default();
        assert_eq!(hours.office_open(), t(8, 30));
        assert_eq!(hours.office_close(), t(17, 30));
        assert_eq!(cal().office_close(), t(17, 30));
        assert!(hours.contains(t(8, 30)));
        assert!(!hours.contains(t(12, 0)));
        assert!(!hours.contains(t(17, 30)));
        assert!(OfficeHours::new(vec![(t(9, 0), t(18, 0))]).is_ok());
        for bad in [
            vec![],
            vec![(t(9, 0), t(9, 0))],
            vec![(t(14, 0), t(17, 0)), (t(9, 0), t(12, 0))],
            vec![(t(9, 0), t(13, 0)), (t(12, 0), t(17, 0))],
        ] {
            assert!(matches!(
                OfficeHours::new(bad),
                Err(CalendarError::InvalidOfficeHours(_))
            ));
        }
    }

    #[test]
    fn unknown_time_zone_is_an_error() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(BUILTIN_2026_FILE);
        let err = Calendar::load(&[path], Vec::new(), OfficeHours::default(), "Asia/Nowhere")
            .unwrap_err();
        assert!(matches!(err, CalendarError::TimeZone { .. }), "{err}");
    }

    #[test]
    fn missing_file_is_a_read_error_naming_it() {
        let err = Calendar::load(
            &[PathBuf::from("/nonexistent/cn-2031.toml")],
            Vec::new(),
            OfficeHours::default(),
            DEFAULT_TIME_ZONE,
        )
        .unwrap_err();
        assert!(matches!(err, CalendarError::Read { .. }), "{err}");
        assert!(err.to_string().contains("cn-2031.toml"), "{err}");
    }

    const HEADER: &str = "year = 2026\nsource = \"test\"\n";

    /// Parses `HEADER + body` and returns its errors as (line, message) pairs.
    fn file_errors(body: &str) -> Vec<(Option<usize>, String)> {
        let text = format!("{HEADER}{body}");
        match YearCalendar::parse(&text, "cn-test.toml") {
            Ok(_) => Vec::new(),
            Err(CalendarError::InvalidFile(errors)) => errors
                .into_iter()
                .map(|e| {
                    assert_eq!(e.file, "cn-test.toml");
                    (e.line, e.message)
                })
                .collect(),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn calendar_file_errors_name_file_and_line() {
        // (body after the 2-line header, expected line, a word the message must contain)
        let cases = [
            // A date outside the declared year.
            (
                "[[holiday]]\nname = \"元旦\"\nfrom = 2026-01-01\nto = 2027-01-01\n",
                6,
                "not in the file's year 2026",
            ),
            (
                "[[holiday]]\nname = \"元旦\"\nfrom = 2026-01-01\nmakeup_workdays = [2025-12-27]\n",
                6,
                "not in the file's year 2026",
            ),
            // A date listed twice: in two holidays, or as holiday and make-up day.
            (
                "[[holiday]]\nname = \"a\"\nfrom = 2026-01-01\nto = 2026-01-03\n\n\
                 [[holiday]]\nname = \"b\"\nfrom = 2026-01-03\n",
                10,
                "2026-01-03 is listed twice (first on line 5)",
            ),
            (
                "[[holiday]]\nname = \"a\"\nfrom = 2026-01-03\nmakeup_workdays = [2026-01-03]\n",
                6,
                "listed twice",
            ),
            // A make-up workday on a weekday.
            (
                "[[holiday]]\nname = \"a\"\nfrom = 2026-01-01\nmakeup_workdays = [2026-01-05]\n",
                6,
                "must be a Saturday or Sunday",
            ),
            // A date that does not exist: as a TOML date and as a string.
            (
                "[[holiday]]\nname = \"a\"\nfrom = 2026-02-30\n",
                5,
                "TOML syntax",
            ),
            (
                "[[holiday]]\nname = \"a\"\nfrom = \"2026-02-30\"\n",
                5,
                "is not a date",
            ),
            // Shape problems.
            (
                "[[holiday]]\nname = \"a\"\nfrom = 2026-01-01\nfoo = 1\n",
                6,
                "unknown key",
            ),
            (
                "[[holiday]]\nname = \"a\"\nfrom = 2026-01-05\nto = 2026-01-01\n",
                6,
                "before",
            ),
            (
                "[[holiday]]\nname = \"a\"\nfrom = 2026-01-01T08:00:00\n",
                5,
                "without a time",
            ),
            (
                "[[holiday]]\nname = \"a\"\n",
                3,
                "missing key `holiday[0].from`",
            ),
        ];
        for (body, line, needle) in cases {
            let errors = file_errors(body);
            assert!(
                errors
                    .iter()
                    .any(|(l, m)| *l == Some(line) && m.contains(needle)),
                "want line {line} with {needle:?} for\n{body}\ngot {errors:?}"
            );
        }
    }

    #[test]
    fn calendar_file_reports_every_problem_at_once() {
        let errors = file_errors(
            "[[holiday]]\nname = \"a\"\nfrom = 2026-01-01\nto = 2027-01-01\n\
             makeup_workdays = [2026-01-05, 2025-01-04]\n",
        );
        let lines: Vec<Option<usize>> = errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![Some(6), Some(7), Some(7)], "{errors:?}");
        // The rendered error names the file and line.
        let text =
            format!("{HEADER}[[holiday]]\nname = \"a\"\nfrom = 2026-01-01\nto = 2027-01-01\n");
        let err = YearCalendar::parse(&text, "cn-test.toml").unwrap_err();
        assert!(err.to_string().starts_with("cn-test.toml:6: "), "{err}");
    }

    #[test]
    fn calendar_file_header_errors() {
        let cases = [
            (
                "source = \"x\"\n[[holiday]]\nname = \"a\"\nfrom = 2026-01-01\n",
                None,
                "missing key `year`",
            ),
            (
                "year = \"2026\"\nsource = \"x\"\n[[holiday]]\nname = \"a\"\nfrom = 2026-01-01\n",
                Some(1),
                "`year`",
            ),
            (
                "year = 2026\n[[holiday]]\nname = \"a\"\nfrom = 2026-01-01\n",
                None,
                "missing key `source`",
            ),
            ("year = 2026\nsource = \"x\"\n", None, "[[holiday]]"),
            (
                "year = 2026\nsource = \"x\"\nholiday = 3\n",
                Some(3),
                "array of tables",
            ),
            (
                "year = 2026\nsource = \"x\"\nissued = \"yesterday\"\n[[holiday]]\nname = \"a\"\nfrom = 2026-01-01\n",
                Some(3),
                "is not a date",
            ),
            (
                "year = 2026\nsource = \"x\"\n[[holiday]\n",
                Some(3),
                "TOML syntax",
            ),
        ];
        for (text, line, needle) in cases {
            let err = YearCalendar::parse(text, "f.toml").unwrap_err();
            let CalendarError::InvalidFile(errors) = err else {
                panic!("{err}");
            };
            assert!(
                errors
                    .iter()
                    .any(|e| e.file == "f.toml" && e.line == line && e.message.contains(needle)),
                "want {line:?} {needle:?} for\n{text}\ngot {errors:?}"
            );
        }
    }

    #[test]
    fn load_reports_problems_in_several_files_together() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("cn-2026.toml");
        let b = dir.path().join("cn-2027.toml");
        std::fs::write(
            &a,
            "year = 2026\nsource = \"x\"\n[[holiday]]\nname = \"a\"\nfrom = 2025-01-01\n",
        )
        .unwrap();
        std::fs::write(&b, "year = 2027\nsource = \"x\"\n[[holiday]]\nname = \"a\"\nfrom = 2027-01-01\nmakeup_workdays = [2027-01-04]\n").unwrap();
        let err = Calendar::load(&[a, b], Vec::new(), OfficeHours::default(), "UTC").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cn-2026.toml:5: "), "{text}");
        assert!(text.contains("cn-2027.toml:6: "), "{text}");
    }
}
