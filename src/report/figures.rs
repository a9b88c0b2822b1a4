//! Computes the monthly report and the key-case list from the store, by the definitions in
//! the module docs of [`crate::report`].
//!
//! The store aggregates (counts per channel, category and lead in SQL over the month's index
//! range) and hands over ids and instants; this module applies the definitions: working days
//! late on `sla.calendar`, the repeat threshold, the rates, the key-case reasons, and masks
//! and cuts the text of a key case. It writes nothing and sends nothing.

use super::{
    KeyCase, KeyReason, MonthlyReport, Overdue, Rate, RepeatPetition, TARGET_ON_TIME,
    TARGET_ONE_TIME, TARGET_SATISFACTION, TypeCount,
};
use crate::sla::config::SlaConfig;
use crate::store::Store;
use crate::store::report::{ClockSpan, Evaluation, ItemCount, KeyCaseQuery, PersonItem};
use anyhow::Context;
use jiff::{Timestamp, ToSpan, civil::Date, tz::TimeZone};
use petitiond_core::envelope::{Category, Channel, pii};
use petitiond_core::sla::calendar::Calendar;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// The completion clock: on-time completion and a key case's deadline.
pub const COMPLETION_CLOCK: &str = "statutory.handle";
/// Statutory clocks (checked for overdue) are those whose id starts with this.
pub const STATUTORY_PREFIX: &str = "statutory.";
/// More than this many working days past due is overdue.
pub const OVERDUE_WORKING_DAYS: i64 = 10;
/// The same person on the same matter this many times is a repeat petition.
pub const REPEAT_AT: usize = 3;
/// Months of the repeat-petition window before the report's month.
pub const REPEAT_WINDOW_MONTHS: i32 = 12;
/// Months in the trend (the report's month included).
pub const TREND_MONTHS: i32 = 6;
/// Most complaint types listed.
pub const TOP_TYPES: usize = 10;
/// Characters kept of a key case's background and request (after masking).
pub const TEXT_CHARS: usize = 60;
/// Characters of the keyed hash shown for a repeat petitioner.
pub const PERSON_CHARS: usize = 8;

const CATEGORIES: [Category; 4] = [
    Category::Livelihood,
    Category::Rights,
    Category::Policy,
    Category::Historical,
];
const CHANNELS: [Channel; 3] = [Channel::Hotline, Channel::Portal, Channel::Letter];
const UNCLASSIFIED: &str = "unclassified";

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i16,
    pub month: i8,
}

impl Month {
    /// Parses `YYYY-MM` (month 01–12); the error names the value.
    pub fn parse(s: &str) -> anyhow::Result<Month> {
        let bad = || anyhow::anyhow!("invalid month {s:?}: expected YYYY-MM, month 01 to 12");
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let year: i16 = y.parse().map_err(|_| bad())?;
        let month: i8 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || year < 1 {
            return Err(bad());
        }
        Ok(Month { year, month })
    }

    /// The month `n` months later (earlier when negative).
    pub fn plus(self, n: i32) -> Month {
        let i = i32::from(self.year) * 12 + i32::from(self.month) - 1 + n;
        Month {
            year: i.div_euclid(12) as i16,
            month: (i.rem_euclid(12) + 1) as i8,
        }
    }

    /// Its first instant in `tz`.
    pub fn start(self, tz: &TimeZone) -> anyhow::Result<Timestamp> {
        let d = Date::new(self.year, self.month, 1)?;
        Ok(d.to_zoned(tz.clone())?.timestamp())
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Matter counts of `rows`, most items first, ties by name (`routing::repeat::matter`).
fn matter_counts(rows: &[ItemCount]) -> Vec<TypeCount> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows {
        let category = r.category.as_deref().and_then(category_of);
        if let Some(matter) =
            crate::routing::repeat::matter(category, r.lead.as_deref().unwrap_or(""))
        {
            *m.entry(matter).or_default() += r.items;
        }
    }
    let mut v: Vec<TypeCount> = m
        .into_iter()
        .map(|(matter, items)| TypeCount { matter, items })
        .collect();
    v.sort_by(|a, b| b.items.cmp(&a.items).then_with(|| a.matter.cmp(&b.matter)));
    v
}

fn category_of(s: &str) -> Option<Category> {
    CATEGORIES.into_iter().find(|c| c.as_str() == s)
}

/// Working days late: the working days in `(due date, at date]` (local dates).
fn working_days_late(cal: &Calendar, due: Timestamp, at: Timestamp) -> anyhow::Result<i64> {
    Ok(cal.working_days_between(cal.local_date(due), cal.local_date(at))?)
}

/// The report for `month` (`YYYY-MM`, in `sla.time_zone`), as the store holds it at `now`.
pub fn monthly(
    store: &dyn Store,
    sla: &SlaConfig,
    month: &str,
    now: Timestamp,
) -> anyhow::Result<MonthlyReport> {
    let m = Month::parse(month)?;
    let tz = sla.calendar.time_zone();
    let start = m.start(tz)?;
    let end = m.plus(1).start(tz)?;

    let rows = store.report_items(start, end, true)?;
    let items: u64 = rows.iter().map(|r| r.items).sum();
    let types = matter_counts(&rows);
    let top3_three_months = top3_three_months(store, m, tz, &types)?;
    let window_start = m.plus(-REPEAT_WINDOW_MONTHS).start(tz)?;
    let repeats = store.report_person_items(window_start, start, end)?;
    let (overdue, on_time) = statutory_clocks(store, sla, start, end, now)?;
    let evaluations = store.report_evaluations(start, end)?;
    Ok(MonthlyReport {
        month: m.to_string(),
        time_zone: tz.iana_name().unwrap_or("UTC").to_string(),
        generated_at: now,
        items,
        by_channel: by_channel(&rows),
        by_category: by_category(&rows),
        by_channel_category: by_channel_category(&rows),
        top_types: types.into_iter().take(TOP_TYPES).collect(),
        top3_three_months,
        trend: trend(store, m, tz, items)?,
        repeat_petitions: repeat_petitions(repeats)?,
        overdue,
        on_time,
        satisfaction: satisfaction(&evaluations),
        one_time_resolution: one_time_resolution(&evaluations),
        key_cases: key_cases(store, sla, now).context("the key-case list")?,
    })
}

/// A category's label in the report: its name, or `unclassified`.
fn category_label(r: &ItemCount) -> &str {
    r.category.as_deref().unwrap_or(UNCLASSIFIED)
}

/// The category labels in report order, `unclassified` last.
fn category_labels() -> impl Iterator<Item = &'static str> {
    CATEGORIES.iter().map(|c| c.as_str()).chain([UNCLASSIFIED])
}

/// Items per channel, every channel listed.
fn by_channel(rows: &[ItemCount]) -> Vec<(String, u64)> {
    CHANNELS
        .iter()
        .map(|c| {
            let n = rows
                .iter()
                .filter(|r| r.channel == c.as_str())
                .map(|r| r.items);
            (c.as_str().to_string(), n.sum())
        })
        .collect()
}

/// Items per category, every category (and `unclassified`) listed.
fn by_category(rows: &[ItemCount]) -> Vec<(String, u64)> {
    category_labels()
        .map(|l| {
            let n = rows
                .iter()
                .filter(|r| category_label(r) == l)
                .map(|r| r.items);
            (l.to_string(), n.sum())
        })
        .collect()
}

/// Items per (channel, category) pair that has any.
fn by_channel_category(rows: &[ItemCount]) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for c in CHANNELS {
        for l in category_labels() {
            let n: u64 = rows
                .iter()
                .filter(|r| r.channel == c.as_str() && category_label(r) == l)
                .map(|r| r.items)
                .sum();
            if n > 0 {
                out.push((c.as_str().to_string(), l.to_string(), n));
            }
        }
    }
    out
}

/// The month's complaint types that were among the top three in each of the two months
/// before it too, in the month's order.
fn top3_three_months(
    store: &dyn Store,
    m: Month,
    tz: &TimeZone,
    types: &[TypeCount],
) -> anyhow::Result<Vec<String>> {
    let top3 = |t: &[TypeCount]| -> BTreeSet<String> {
        t.iter().take(3).map(|t| t.matter.clone()).collect()
    };
    let mut top3_all = top3(types);
    for back in 1..=2 {
        let earlier = m.plus(-back);
        let rows = store.report_items(earlier.start(tz)?, earlier.plus(1).start(tz)?, true)?;
        let t = top3(&matter_counts(&rows));
        top3_all.retain(|x| t.contains(x));
    }
    Ok(types
        .iter()
        .filter(|t| top3_all.contains(&t.matter))
        .map(|t| t.matter.clone())
        .collect())
}

/// Items per month over the [`TREND_MONTHS`] ending with `m` (whose count is `items`).
fn trend(
    store: &dyn Store,
    m: Month,
    tz: &TimeZone,
    items: u64,
) -> anyhow::Result<Vec<(String, u64)>> {
    let mut trend = Vec::new();
    for back in (0..TREND_MONTHS).rev() {
        let mm = m.plus(-back);
        let n = if back == 0 {
            items
        } else {
            let rows = store.report_items(mm.start(tz)?, mm.plus(1).start(tz)?, false)?;
            rows.iter().map(|r| r.items).sum()
        };
        trend.push((mm.to_string(), n));
    }
    Ok(trend)
}

/// The repeat petitions among the window's items: [`REPEAT_AT`] or more distinct items of one
/// person (keyed hash) on one matter, most items first. A person known by two keys (an ID
/// number and a mobile) with the same items is one petitioner.
fn repeat_petitions(rows: Vec<PersonItem>) -> anyhow::Result<Vec<RepeatPetition>> {
    let mut groups: BTreeMap<(String, String), Vec<(i64, String)>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.person_key, r.matter))
            .or_default()
            .push((r.received_ms, r.item_id));
    }
    let mut repeat_petitions = Vec::new();
    let mut seen: BTreeSet<(String, Vec<String>)> = BTreeSet::new();
    for ((key, matter), mut v) in groups {
        v.sort();
        v.dedup_by(|a, b| a.1 == b.1);
        if v.len() < REPEAT_AT {
            continue;
        }
        let ids: Vec<String> = v.iter().map(|(_, id)| id.clone()).collect();
        if !seen.insert((matter.clone(), ids.clone())) {
            continue;
        }
        let first = Timestamp::from_millisecond(v[0].0)?;
        let last = Timestamp::from_millisecond(v[v.len() - 1].0)?;
        repeat_petitions.push(RepeatPetition {
            person: key.chars().take(PERSON_CHARS).collect(),
            matter,
            item_ids: ids,
            first_received: first,
            last_received: last,
        });
    }
    repeat_petitions.sort_by(|a, b| {
        b.item_ids
            .len()
            .cmp(&a.item_ids.len())
            .then_with(|| a.matter.cmp(&b.matter))
            .then_with(|| a.first_received.cmp(&b.first_received))
            .then_with(|| a.person.cmp(&b.person))
    });
    Ok(repeat_petitions)
}

/// The statutory clocks of the month: those overdue (more than [`OVERDUE_WORKING_DAYS`]
/// working days past due when stopped in the month, or at the month's end or `now`), most
/// late first; and the on-time rate of the completion clocks stopped in the month.
fn statutory_clocks(
    store: &dyn Store,
    sla: &SlaConfig,
    start: Timestamp,
    end: Timestamp,
    now: Timestamp,
) -> anyhow::Result<(Vec<Overdue>, Rate)> {
    let until = if now < end {
        now
    } else {
        end - jiff::SignedDuration::from_nanos(1)
    };
    let mut overdue = Vec::new();
    let mut on_time = Rate {
        numerator: 0,
        denominator: 0,
        target: TARGET_ON_TIME,
    };
    for policy in sla
        .clocks
        .iter()
        .filter(|c| c.id.starts_with(STATUTORY_PREFIX))
    {
        let stop_on: Vec<String> = policy.stop_on.iter().map(|k| k.as_str().into()).collect();
        for span in store.report_clocks(&policy.id, &stop_on, start, end)? {
            let stopped_in_month = span.stopped_at.filter(|s| *s >= start && *s < end);
            if policy.id == COMPLETION_CLOCK
                && let Some(s) = stopped_in_month
            {
                on_time.denominator += 1;
                on_time.numerator += u64::from(s <= span.due_at);
            }
            let at = stopped_in_month.unwrap_or(until);
            if let Some(o) = overdue_at(&sla.calendar, span, stopped_in_month, at) {
                overdue.push(o);
            }
        }
    }
    overdue.sort_by(|a, b| {
        b.working_days_late
            .cmp(&a.working_days_late)
            .then_with(|| a.item_id.cmp(&b.item_id))
            .then_with(|| a.clock.cmp(&b.clock))
    });
    Ok((overdue, on_time))
}

/// The clock as an overdue entry if, at `at`, it is more than [`OVERDUE_WORKING_DAYS`]
/// working days past due. A calendar year not loaded leaves it out, with a warning.
fn overdue_at(
    cal: &Calendar,
    span: ClockSpan,
    stopped_in_month: Option<Timestamp>,
    at: Timestamp,
) -> Option<Overdue> {
    if span.due_at >= at {
        return None;
    }
    let late = match working_days_late(cal, span.due_at, at) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(item = %span.item_id, clock = %span.clock_id, error = %format!("{e:#}"),
                "report: working days late not counted (calendar year not loaded)");
            return None;
        }
    };
    (late > OVERDUE_WORKING_DAYS).then(|| Overdue {
        item_id: span.item_id,
        clock: span.clock_id,
        department: span.department,
        due_at: span.due_at,
        stopped_at: stopped_in_month,
        working_days_late: u32::try_from(late).unwrap_or(u32::MAX),
    })
}

/// Satisfied and basically satisfied over all evaluations with a verdict.
fn satisfaction(evaluations: &[Evaluation]) -> Rate {
    let mut satisfaction = Rate {
        numerator: 0,
        denominator: 0,
        target: TARGET_SATISFACTION,
    };
    for e in evaluations {
        match e.verdict.as_deref() {
            Some("satisfied" | "basically_satisfied") => {
                satisfaction.numerator += 1;
                satisfaction.denominator += 1;
            }
            Some("dissatisfied") => satisfaction.denominator += 1,
            _ => {}
        }
    }
    satisfaction
}

/// Items evaluated whose first evaluation was not dissatisfied and that had no bounced reply,
/// over the items evaluated.
fn one_time_resolution(evaluations: &[Evaluation]) -> Rate {
    let mut one_time_resolution = Rate {
        numerator: 0,
        denominator: 0,
        target: TARGET_ONE_TIME,
    };
    let mut counted = BTreeSet::new();
    for e in evaluations {
        if counted.insert(e.item_id.as_str()) {
            one_time_resolution.denominator += 1;
            one_time_resolution.numerator +=
                u64::from(e.first_verdict.as_deref() != Some("dissatisfied") && !e.bounced);
        }
    }
    one_time_resolution
}

/// The key-case list at `now`, oldest item first.
pub fn key_cases(
    store: &dyn Store,
    sla: &SlaConfig,
    now: Timestamp,
) -> anyhow::Result<Vec<KeyCase>> {
    let tz = sla.calendar.time_zone();
    let local = now.to_zoned(tz.clone());
    let received_by = local.checked_sub(3.months())?.timestamp();
    let matter_by = local.checked_sub(5.years())?.timestamp();
    let q = KeyCaseQuery {
        received_by,
        matter_by,
        key_category: Category::Historical.as_str().into(),
        deadline_clock: COMPLETION_CLOCK.into(),
    };
    let mut out = Vec::new();
    for row in store.key_case_rows(&q)? {
        let e = &row.envelope;
        let mut reasons = Vec::new();
        if e.received_at <= received_by {
            reasons.push(KeyReason::Unresolved3Months);
        }
        if row.escalation_alert || e.category == Some(Category::Historical) {
            reasons.push(KeyReason::Escalated);
        }
        if row.first_on_matter.is_some_and(|t| t <= matter_by)
            || e.upstream_created_at.is_some_and(|t| t <= matter_by)
        {
            reasons.push(KeyReason::Over5Years);
        }
        if reasons.is_empty() {
            continue;
        }
        let content = e.request.content.expose();
        let background = match e.request.title.as_ref().filter(|t| !t.is_empty()) {
            Some(t) => masked_cut_for(e, t.expose()),
            None => masked_cut_for(e, content),
        };
        out.push(KeyCase {
            item_id: e.id.to_string(),
            channel: e.channel.as_str().into(),
            category: e.category.map(|c| c.as_str().into()),
            received_at: e.received_at,
            reasons,
            background,
            core_request: masked_cut_for(e, content),
            department: row.lead.clone().unwrap_or_default(),
            assists: row.assists.clone(),
            deadline: row.deadline,
        });
    }
    out.sort_by(|a, b| {
        a.received_at
            .cmp(&b.received_at)
            .then_with(|| a.item_id.cmp(&b.item_id))
    });
    Ok(out)
}

/// Runs of 7+ digits (with `-` or spaces inside, an `X` at the end: ID numbers, phones,
/// landlines, account numbers), after full-width characters are made half-width.
fn number_regex() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"[0-9](?:[ \-]?[0-9]){5,}(?:[ \-]?[0-9Xx])").expect("valid regex")
    })
}

/// [`masked_cut`], after the item's own personal values written in `text` are masked: the
/// petitioner's name (张**), address and the letter's sender (`<n chars>`) — a letter's title
/// often starts with who writes it. Names nobody recorded in a field are not found (no name
/// recogniser): the key-case list is for the office's own staff, and its text is short.
pub fn masked_cut_for(e: &petitiond_core::envelope::Envelope, text: &str) -> String {
    use petitiond_core::envelope::person::half_width;
    let mut text = half_width(text);
    let p = &e.petitioner;
    let known = [
        (p.name.as_ref(), pii::Kind::Name),
        (p.address.as_ref(), pii::Kind::Address),
        (e.upstream.sender.as_ref(), pii::Kind::Address),
    ];
    for (value, kind) in known {
        let Some(v) = value.map(|v| half_width(v.expose().trim())) else {
            continue;
        };
        // One character matches too much (a surname inside other words).
        if v.chars().count() >= 2 && text.contains(v.as_str()) {
            text = text.replace(v.as_str(), &pii::mask(&v, kind));
        }
    }
    masked_cut(&text)
}

/// `text` with every number run masked ([`pii::mask`] as an ID number: the first three and
/// last two digits kept), whitespace collapsed, then cut to [`TEXT_CHARS`] characters (with
/// `…`). Masking comes first, so a cut never leaves part of a number raw.
pub fn masked_cut(text: &str) -> String {
    let text = petitiond_core::envelope::person::half_width(text);
    let masked = number_regex().replace_all(&text, |c: &regex::Captures<'_>| {
        let digits: String = c[0].chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        pii::mask(&digits, pii::Kind::IdNumber)
    });
    let flat = masked.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= TEXT_CHARS {
        flat
    } else {
        let mut s: String = flat.chars().take(TEXT_CHARS).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_parsing_names_the_bad_value() {
        assert_eq!(
            Month::parse("2026-10").unwrap(),
            Month {
                year: 2026,
                month: 10
            }
        );
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-10", "2026/10", "", "2026-1a",
        ] {
            let e = Month::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        let m = Month::parse("2026-01").unwrap();
        assert_eq!(m.plus(-1).to_string(), "2025-12");
        assert_eq!(m.plus(-13).to_string(), "2024-12");
        assert_eq!(m.plus(11).to_string(), "2026-12");
        assert_eq!(m.plus(12).to_string(), "2027-01");
    }

    /// A letter titled with its writer's name ("张三丰关于拆迁补偿的信") showed the name in the
    /// key-case list, its mails and CSV: the petitioner's recorded name, address and the
    /// letter's sender are masked wherever the text repeats them.
    #[test]
    fn key_case_text_masks_the_petitioners_own_name_address_and_sender() {
        let mut e = petitiond_core::envelope::Envelope::new(
            petitiond_core::envelope::Channel::Letter,
            petitiond_core::envelope::Upstream {
                id: "k-1".into(),
                source: "mailbox".into(),
                raw_ref: "sha256:00".into(),
                sender: Some(petitiond_core::envelope::Personal::new(
                    "wang.wu@example.cn",
                )),
                ..Default::default()
            },
            "2026-03-02T01:00:00Z".parse().unwrap(),
            petitiond_core::envelope::Request {
                title: None,
                content: petitiond_core::envelope::Personal::new("x"),
            },
        );
        e.petitioner.name = Some(petitiond_core::envelope::Personal::new("张三丰"));
        e.petitioner.address = Some(petitiond_core::envelope::Personal::new("幸福路8号"));
        let got = masked_cut_for(
            &e,
            "张三丰关于幸福路8号拆迁补偿的信，回复请寄wang.wu@example.cn，电话13812345678",
        );
        for raw in ["张三丰", "幸福路8号", "wang.wu@example.cn", "13812345678"] {
            assert!(!got.contains(raw), "{raw} in {got}");
        }
        assert!(got.starts_with("张**关于<5 chars>拆迁补偿的信"), "{got}");
        // A one-character name masks nothing (it would hit every word with that character).
        e.petitioner.name = Some(petitiond_core::envelope::Personal::new("张"));
        assert!(masked_cut_for(&e, "张家界").contains("张家界"));
    }

    #[test]
    fn key_case_text_masks_id_numbers_and_phones_and_is_cut() {
        let t = masked_cut(
            "身份证11010519491231002X，电话 138-0013-8000，固话０１０６２２３３４４５。",
        );
        assert!(!t.contains("19491231"), "{t}");
        assert!(!t.contains("0013"), "{t}");
        assert!(!t.contains("622334"), "{t}");
        assert!(t.contains("110*************2X"), "{t}");
        let long = "诉求".repeat(100);
        let c = masked_cut(&long);
        assert_eq!(c.chars().count(), TEXT_CHARS + 1);
        assert!(c.ends_with('…'));
        // A number straddling the cut is masked before the cut.
        let s = format!("{}13800138000", "字".repeat(55));
        assert!(!masked_cut(&s).contains("13800"), "{}", masked_cut(&s));
    }

    fn person_item(key: &str, matter: &str, id: &str, day: i64) -> PersonItem {
        PersonItem {
            person_key: key.into(),
            matter: matter.into(),
            item_id: id.into(),
            received_ms: day * 86_400_000,
        }
    }

    #[test]
    fn a_repeat_petition_is_three_distinct_items_of_one_person_on_one_matter_counted_once() {
        let rows = vec![
            // Person A on wages: three items (one indexed twice) — a repeat.
            person_item("aaaaaaaaaaaa", "rights/hrss", "i1", 1),
            person_item("aaaaaaaaaaaa", "rights/hrss", "i2", 2),
            person_item("aaaaaaaaaaaa", "rights/hrss", "i2", 2),
            person_item("aaaaaaaaaaaa", "rights/hrss", "i3", 3),
            // The same person under a second key (a mobile): the same items, not a second repeat.
            person_item("bbbbbbbbbbbb", "rights/hrss", "i3", 3),
            person_item("bbbbbbbbbbbb", "rights/hrss", "i1", 1),
            person_item("bbbbbbbbbbbb", "rights/hrss", "i2", 2),
            // Person C: two items only.
            person_item("cccccccccccc", "livelihood/water", "i4", 1),
            person_item("cccccccccccc", "livelihood/water", "i5", 2),
            // Person D: four items on another matter — listed first.
            person_item("dddddddddddd", "policy/hrss", "i6", 1),
            person_item("dddddddddddd", "policy/hrss", "i7", 2),
            person_item("dddddddddddd", "policy/hrss", "i8", 3),
            person_item("dddddddddddd", "policy/hrss", "i9", 4),
        ];
        let got = repeat_petitions(rows).unwrap();
        let seen: Vec<(&str, &str, usize)> = got
            .iter()
            .map(|r| (r.person.as_str(), r.matter.as_str(), r.item_ids.len()))
            .collect();
        assert_eq!(
            seen,
            [
                ("dddddddd", "policy/hrss", 4),
                ("aaaaaaaa", "rights/hrss", 3)
            ]
        );
        assert_eq!(got[1].item_ids, ["i1", "i2", "i3"]);
        assert_eq!(
            got[1].first_received,
            Timestamp::from_millisecond(86_400_000).unwrap()
        );
        assert_eq!(
            got[1].last_received,
            Timestamp::from_millisecond(3 * 86_400_000).unwrap()
        );
    }

    #[test]
    fn satisfaction_counts_verdicts_and_one_time_resolution_counts_items_by_their_first() {
        let ev =
            |item: &str, verdict: Option<&str>, first: Option<&str>, bounced: bool| Evaluation {
                item_id: item.into(),
                at: Timestamp::UNIX_EPOCH,
                verdict: verdict.map(String::from),
                first_verdict: first.map(String::from),
                bounced,
            };
        let evaluations = [
            ev("a", Some("satisfied"), Some("satisfied"), false),
            ev(
                "b",
                Some("basically_satisfied"),
                Some("dissatisfied"),
                false,
            ),
            ev("b", Some("dissatisfied"), Some("dissatisfied"), false),
            ev("c", Some("satisfied"), Some("satisfied"), true),
            ev("d", None, None, false),
        ];
        let s = satisfaction(&evaluations);
        assert_eq!(
            (s.numerator, s.denominator, s.target),
            (3, 4, TARGET_SATISFACTION)
        );
        // Resolved at once: a, and d (no verdict is no dissatisfaction); not: b (first
        // dissatisfied), c (a bounced reply).
        let o = one_time_resolution(&evaluations);
        assert_eq!(
            (o.numerator, o.denominator, o.target),
            (2, 4, TARGET_ONE_TIME)
        );
    }
}
