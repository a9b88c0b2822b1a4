//! Calendar files: `calendars/cn-YYYY.toml` read, parsed and validated into a
//! [`YearCalendar`], every problem reported at once with its file and line.
//!
//! Owns the file format and its errors' locations; it does not resolve days to kinds nor do
//! day arithmetic (that is [`super::Calendar`]).

use super::{CalendarError, DayKind, FileError, is_weekend};
use jiff::civil::Date;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

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
    pub(super) year: i16,
    pub(super) file: String,
    pub(super) source: String,
    pub(super) issued: Option<Date>,
    pub(super) days: BTreeMap<Date, SpecialDay>,
    /// Derived from the holiday law ([`crate::sla::provisional`]), not read from an official file.
    pub(super) provisional: bool,
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

    /// A provisional year: `days` derived from the holiday law by [`crate::sla::provisional`].
    pub(crate) fn provisional(year: i16, days: BTreeMap<Date, SpecialDay>) -> YearCalendar {
        YearCalendar {
            year,
            file: crate::sla::provisional::FILE.into(),
            source: crate::sla::provisional::SOURCE.into(),
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
