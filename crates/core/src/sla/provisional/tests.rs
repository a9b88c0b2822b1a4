//! The provisional calendar against the official 2026 file, against published facts of
//! 2027, against ICU4X's Chinese calendar (lunar dates, GB/T 33661-2017) and against an
//! independent computation of the 清明 solar term.

use super::*;
use crate::sla::calendar::{Basis, Calendar, DayKind, OfficeHours};
use jiff::civil::date;

fn d(s: &str) -> Date {
    s.parse().unwrap()
}

fn official_2026() -> Calendar {
    Calendar::builtin().unwrap()
}

/// The official 2026 file plus provisional years.
fn with_provisional() -> Calendar {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("calendars/cn-2026.toml");
    Calendar::load_with_provisional(
        &[path],
        Vec::new(),
        OfficeHours::default(),
        crate::sla::calendar::DEFAULT_TIME_ZONE,
    )
    .unwrap()
}

/// Only provisional years (2026 derived from the law too), to compare with the official file.
fn provisional_only() -> Calendar {
    Calendar::with_provisional(
        Vec::new(),
        Vec::new(),
        OfficeHours::default(),
        jiff::tz::TimeZone::get(crate::sla::calendar::DEFAULT_TIME_ZONE).unwrap(),
    )
    .unwrap()
}

/// Provisional 2026 against the official 2026 file (State Council notice of 2025-11-04).
/// Both have the same 13 statutory days and the same number of working days; every date on
/// which they disagree about working or not is one of the notice's own arrangements, which
/// the law cannot predict:
/// - bridge days off (a weekday between a holiday and a weekend): Fri 01-02, Fri 02-20,
///   Mon 02-23, Tue 05-05, Tue 10-06, Wed 10-07;
/// - the make-up working weekends that pay for them (调休上班): Sun 01-04, Sat 02-14,
///   Sat 02-28, Sat 05-09, Sun 09-20, Sat 10-10.
///
/// The law's own 补假 is where the two agree: 清明 on Sun 04-05 → Mon 04-06 off, 劳动节's
/// Sat 05-02 → Mon 05-04, 国庆's Sat 10-03 → Mon 10-05. (Weekend days the notice lists as
/// holidays — Sat 01-03, Sun 02-15, 02-21/22, Sat 04-04, 05-03, 06-20/21, 09-26/27, Sun 10-04
/// — rest in both; only their kind's name differs: `holiday` there, `weekend` here.)
#[test]
fn provisional_2026_differs_from_the_official_file_only_by_the_notices_arrangements() {
    let official = official_2026();
    let provisional = provisional_only();
    assert_eq!(provisional.basis(2026), Some(Basis::Provisional));
    assert_eq!(official.basis(2026), Some(Basis::Official));
    let mut working_differs = Vec::new();
    let mut day = date(2026, 1, 1);
    while day.year() == 2026 {
        let (o, p) = (official.kind(day).unwrap(), provisional.kind(day).unwrap());
        if o.is_working() != p.is_working() {
            working_differs.push((day.to_string(), o, p));
        }
        day = day.tomorrow().unwrap();
    }
    use DayKind::*;
    let want: Vec<(String, DayKind, DayKind)> = [
        ("2026-01-02", Holiday, Workday),
        ("2026-01-04", MakeupWorkday, Weekend),
        ("2026-02-14", MakeupWorkday, Weekend),
        ("2026-02-20", Holiday, Workday),
        ("2026-02-23", Holiday, Workday),
        ("2026-02-28", MakeupWorkday, Weekend),
        ("2026-05-05", Holiday, Workday),
        ("2026-05-09", MakeupWorkday, Weekend),
        ("2026-09-20", MakeupWorkday, Weekend),
        ("2026-10-06", Holiday, Workday),
        ("2026-10-07", Holiday, Workday),
        ("2026-10-10", MakeupWorkday, Weekend),
    ]
    .into_iter()
    .map(|(s, o, p)| (s.to_string(), o, p))
    .collect();
    assert_eq!(working_differs, want);
    assert_eq!(
        official.working_days_in_year(2026).unwrap(),
        provisional.working_days_in_year(2026).unwrap(),
        "the same statutory days net of weekends"
    );
    // The 13 statutory days, all on dates the notice also gives off.
    let statutory = statutory_days(2026).unwrap();
    assert_eq!(statutory.len(), 13);
    for s in &statutory {
        assert_eq!(official.kind(s.date).unwrap(), Holiday, "{s:?}");
    }
    // The law's 补假 days are the notice's too.
    for (made_up, label) in [
        ("2026-04-06", "清明节（补假）"),
        ("2026-05-04", "劳动节（补假）"),
        ("2026-10-05", "国庆节（补假）"),
    ] {
        assert_eq!(provisional.kind(d(made_up)).unwrap(), Holiday);
        assert_eq!(provisional.label(d(made_up)).unwrap(), Some(label));
        assert_eq!(official.kind(d(made_up)).unwrap(), Holiday);
    }
}

/// The official file stays the truth for its year: a calendar with provisional years answers
/// 2026 exactly as the file alone does, and marks nothing in it provisional.
#[test]
fn the_official_file_wins_over_the_provisional_derivation() {
    let official = official_2026();
    let cal = with_provisional();
    assert_eq!(cal.years().collect::<Vec<_>>(), vec![2026]);
    assert_eq!(cal.basis(2026), Some(Basis::Official));
    assert_eq!(cal.basis(2027), Some(Basis::Provisional));
    assert_eq!(cal.basis(2024), None, "before the 2024 revision of the law");
    assert_eq!(cal.basis(2101), None);
    let mut day = date(2026, 1, 1);
    while day.year() == 2026 {
        assert_eq!(cal.kind(day).unwrap(), official.kind(day).unwrap(), "{day}");
        assert_eq!(
            cal.marked(|c| c.kind(day)).unwrap().1,
            None,
            "{day} is official"
        );
        day = day.tomorrow().unwrap();
    }
    assert_eq!(
        cal.marked(|c| c.add_working_days(date(2026, 12, 30), 2))
            .unwrap(),
        (date(2027, 1, 4), Some(2027)),
        "Wed 12-30 + 2: Thu 12-31, then Fri 2027-01-01 is 元旦, Mon 01-04"
    );
}

/// 2027 as the law gives it, checked against published facts: 元旦 is a Friday; lunar New
/// Year's Day is Sat 2027-02-06 (so 除夕 is Fri 02-05, and the two weekend days of 春节 are
/// made up on Tue 02-09 and Wed 02-10); 清明 Mon 04-05; 劳动节 Sat 05-01 and Sun 05-02 (made up
/// Mon 05-03 and Tue 05-04); 端午 Wed 06-09; 中秋 Wed 09-15; 国庆 Fri 10-01 to Sun 10-03 (the
/// weekend two made up Mon 10-04 and Tue 10-05).
#[test]
fn provisional_2027_matches_the_lunar_and_solar_facts() {
    assert_eq!(lunar_new_year(2027).unwrap(), date(2027, 2, 6));
    assert_eq!(qingming(2027).unwrap(), date(2027, 4, 5));
    let days = special_days(2027).unwrap();
    let got: Vec<(String, &str)> = days
        .iter()
        .map(|(d, s)| (d.to_string(), s.name.as_str()))
        .collect();
    let want = [
        ("2027-01-01", "元旦"),
        ("2027-02-05", "春节"),
        ("2027-02-06", "春节"),
        ("2027-02-07", "春节"),
        ("2027-02-08", "春节"),
        ("2027-02-09", "春节（补假）"),
        ("2027-02-10", "春节（补假）"),
        ("2027-04-05", "清明节"),
        ("2027-05-01", "劳动节"),
        ("2027-05-02", "劳动节"),
        ("2027-05-03", "劳动节（补假）"),
        ("2027-05-04", "劳动节（补假）"),
        ("2027-06-09", "端午节"),
        ("2027-09-15", "中秋节"),
        ("2027-10-01", "国庆节"),
        ("2027-10-02", "国庆节"),
        ("2027-10-03", "国庆节"),
        ("2027-10-04", "国庆节（补假）"),
        ("2027-10-05", "国庆节（补假）"),
    ];
    let want: Vec<(String, &str)> = want.iter().map(|(d, n)| (d.to_string(), *n)).collect();
    assert_eq!(got, want);
    assert!(days.values().all(|s| s.kind == DayKind::Holiday));
    let cal = with_provisional();
    // 365 days, 104 weekend days (2027-01-01 is a Friday: 52 weeks + Fri), 13 weekdays off.
    assert_eq!(cal.working_days_in_year(2027).unwrap(), 365 - 104 - 13);
}

/// Every provisional year has 13 statutory days, each a holiday, and exactly one make-up day
/// per statutory day on a weekend or on another statutory day; never a make-up working day.
#[test]
fn every_provisional_year_follows_the_law() {
    for year in YEARS {
        let statutory = statutory_days(year).unwrap();
        assert_eq!(statutory.len(), 13, "{year}");
        let mut seen = std::collections::BTreeSet::new();
        let owed = statutory
            .iter()
            .filter(|s| !seen.insert(s.date) || is_weekend(s.date))
            .count();
        let days = special_days(year).unwrap();
        let made_up = days
            .values()
            .filter(|s| s.name.ends_with("（补假）"))
            .count();
        assert_eq!(made_up, owed, "{year}");
        assert!(days.values().all(|s| s.kind == DayKind::Holiday), "{year}");
        for (date, s) in &days {
            assert_eq!(date.year(), year);
            if s.name.ends_with("（补假）") {
                assert!(!is_weekend(*date), "{year}: 补假 on a weekend {date}");
            }
        }
        // The weekdays off are the statutory days net of weekends, no more and no less.
        let weekdays_off = days.keys().filter(|d| !is_weekend(**d)).count();
        assert_eq!(weekdays_off, 13, "{year}");
    }
}

/// 国庆 and 中秋 on the same day (2028-10-03, 2031-10-01): four days off, as the State
/// Council gave in 2009 and 2020.
#[test]
fn mid_autumn_on_national_day_is_made_up() {
    let days = special_days(2031).unwrap();
    // Wed 10-01 is both; Thu 10-02, Fri 10-03; made up Mon 10-06.
    assert_eq!(lunar(2031, 8, 15).unwrap(), date(2031, 10, 1));
    let oct: Vec<String> = days
        .keys()
        .filter(|d| d.month() == 10)
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        oct,
        ["2031-10-01", "2031-10-02", "2031-10-03", "2031-10-06"]
    );
}

/// The lunar dates against ICU4X's Chinese calendar (GB/T 33661-2017; agrees with the Hong
/// Kong Observatory's tables to 2100), for every provisional year: 除夕, 正月初一, 端午 and
/// 中秋 found by walking the Gregorian year in ICU4X.
#[test]
fn lunar_dates_agree_with_icu4x_for_every_provisional_year() {
    use icu_calendar::Date as IcuDate;
    use icu_calendar::cal::ChineseTraditional;
    let chinese = ChineseTraditional::new();
    for year in YEARS {
        let mut found: BTreeMap<(u8, u8), Date> = BTreeMap::new();
        let mut eve = None;
        let mut day = date(year, 1, 1);
        let mut prev: Option<Date> = None;
        while day.year() == year {
            let iso =
                IcuDate::try_new_iso(i32::from(year), day.month() as u8, day.day() as u8).unwrap();
            let c = iso.to_calendar(chinese);
            let (m, leap, dd) = (
                c.month().number(),
                c.month().to_input().is_leap(),
                c.day_of_month().0,
            );
            if !leap && ((m, dd) == (1, 1) || (m, dd) == (5, 5) || (m, dd) == (8, 15)) {
                found.insert((m, dd), day);
                if (m, dd) == (1, 1) {
                    eve = prev;
                }
            }
            prev = Some(day);
            day = day.tomorrow().unwrap();
        }
        assert_eq!(
            Some(&lunar_new_year(year).unwrap()),
            found.get(&(1, 1)),
            "{year} 正月初一"
        );
        assert_eq!(
            Some(lunar_new_year(year).unwrap().yesterday().unwrap()),
            eve,
            "{year} 除夕"
        );
        assert_eq!(
            Some(&lunar(year, 5, 5).unwrap()),
            found.get(&(5, 5)),
            "{year} 端午"
        );
        assert_eq!(
            Some(&lunar(year, 8, 15).unwrap()),
            found.get(&(8, 15)),
            "{year} 中秋"
        );
    }
}

/// The sun's apparent ecliptic longitude in degrees at Julian Ephemeris Day `jde` (Meeus,
/// Astronomical Algorithms, ch. 25, low accuracy: about 0.01°, some 15 minutes of time).
fn solar_longitude(jde: f64) -> f64 {
    let t = (jde - 2_451_545.0) / 36_525.0;
    let l0 = 280.46646 + 36_000.769_83 * t + 0.000_303_2 * t * t;
    let m = (357.52911 + 35_999.050_29 * t - 0.000_153_7 * t * t).to_radians();
    let c = (1.914_602 - 0.004_817 * t - 0.000_014 * t * t) * m.sin()
        + (0.019_993 - 0.000_101 * t) * (2.0 * m).sin()
        + 0.000_289 * (3.0 * m).sin();
    let omega = (125.04 - 1934.136 * t).to_radians();
    (l0 + c - 0.005_69 - 0.004_78 * omega.sin()).rem_euclid(360.0)
}

/// 清明 (the sun at 15°) found independently with Meeus's formula, in China Standard Time,
/// for 2026–2035 and every other provisional year whose term is not within an hour of
/// midnight (where a 15-minute formula cannot decide the date).
#[test]
fn qingming_agrees_with_an_independent_solar_longitude_computation() {
    let mut decided = 0;
    for year in YEARS {
        // JD of 00:00 UTC on March 30; step hourly until the longitude passes 15°.
        let base = 2_440_587.5
            + date(year, 3, 30)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .unwrap()
                .timestamp()
                .as_second() as f64
                / 86_400.0;
        let mut hour = 0;
        while solar_longitude(base + f64::from(hour) / 24.0 + 70.0 / 86_400.0) < 15.0 {
            hour += 1;
            assert!(hour < 24 * 14, "{year}: no 清明 found");
        }
        // Refine to the minute between hour-1 and hour.
        let mut lo = base + f64::from(hour - 1) / 24.0;
        let mut hi = base + f64::from(hour) / 24.0;
        for _ in 0..20 {
            let mid = (lo + hi) / 2.0;
            if solar_longitude(mid + 70.0 / 86_400.0) < 15.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        // UTC JD → China Standard Time (UTC+8) date and minutes after midnight.
        let cst = hi + 8.0 / 24.0 + 0.5;
        let days = cst.floor();
        let minute = ((cst - days) * 1440.0).round();
        let near_midnight = !(60.0..=1380.0).contains(&minute);
        let civil = date(1970, 1, 1)
            .checked_add(jiff::Span::new().days((days - 2_440_588.0) as i64))
            .unwrap();
        if (2026..=2035).contains(&year) {
            assert!(
                !near_midnight,
                "{year}: 清明 at {minute} min after midnight"
            );
        }
        if !near_midnight {
            assert_eq!(qingming(year).unwrap(), civil, "{year}");
            decided += 1;
        }
    }
    assert!(decided >= 70, "only {decided} years decided");
    // The dates for 2026–2035 as almanacs print them (what the computation above also gives).
    let want = [5, 5, 4, 4, 5, 5, 4, 4, 5, 5];
    for (year, day) in (2026..=2035).zip(want) {
        assert_eq!(qingming(year).unwrap(), date(year, 4, day), "{year}");
    }
}

/// A year outside [`YEARS`] has no provisional calendar, so a calendar does not answer it.
#[test]
fn years_outside_the_range_are_not_answered() {
    assert!(year(2024).unwrap().is_none());
    assert!(year(2101).unwrap().is_none());
    let y = year(2030).unwrap().unwrap();
    assert!(y.is_provisional());
    assert_eq!(y.file(), FILE);
    let cal = with_provisional();
    assert_eq!(
        cal.kind(date(2101, 1, 3)),
        Err(crate::sla::calendar::CalendarError::YearNotLoaded(2101))
    );
    assert_eq!(
        cal.provisional_years().next(),
        Some(2025),
        "the law's 2024 revision applies from 2025"
    );
    assert_eq!(cal.provisional_years().last(), Some(2100));
}
