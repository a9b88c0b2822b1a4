//! The working-day calendar's tests: 2026 as published, day arithmetic, files and overrides.

use super::*;
use jiff::civil::date;
use std::path::Path;

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
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(BUILTIN_2026_FILE);
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
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(BUILTIN_2026_FILE);
    let err =
        Calendar::load(&[path], Vec::new(), OfficeHours::default(), "Asia/Nowhere").unwrap_err();
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
    let text = format!("{HEADER}[[holiday]]\nname = \"a\"\nfrom = 2026-01-01\nto = 2027-01-01\n");
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
