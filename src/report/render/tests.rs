use super::*;
use crate::report::{KeyCase, Overdue, RepeatPetition, TypeCount};

fn t(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

pub(crate) fn sample() -> MonthlyReport {
    MonthlyReport {
        month: "2026-10".into(),
        time_zone: "Asia/Shanghai".into(),
        generated_at: t("2026-11-01T00:00:00Z"),
        items: 42,
        by_channel: vec![
            ("hotline".into(), 20),
            ("portal".into(), 12),
            ("letter".into(), 10),
        ],
        by_category: vec![
            ("livelihood".into(), 15),
            ("rights".into(), 12),
            ("policy".into(), 8),
            ("historical".into(), 5),
            ("unclassified".into(), 2),
        ],
        by_channel_category: vec![("hotline".into(), "rights".into(), 9)],
        top_types: vec![
            TypeCount {
                matter: "rights/hrss".into(),
                items: 12,
            },
            TypeCount {
                matter: "livelihood/<script>".into(),
                items: 7,
            },
        ],
        top3_three_months: vec!["rights/hrss".into()],
        trend: vec![
            ("2026-05".into(), 30),
            ("2026-06".into(), 31),
            ("2026-07".into(), 35),
            ("2026-08".into(), 28),
            ("2026-09".into(), 40),
            ("2026-10".into(), 42),
        ],
        repeat_petitions: vec![RepeatPetition {
            person: "a1b2c3d4".into(),
            matter: "rights/hrss".into(),
            item_ids: vec!["it-1".into(), "it-2".into(), "it-3".into()],
            first_received: t("2026-01-05T02:00:00Z"),
            last_received: t("2026-10-09T02:00:00Z"),
        }],
        overdue: vec![Overdue {
            item_id: "it-9".into(),
            clock: "statutory.handle".into(),
            department: "hrss".into(),
            due_at: t("2026-09-01T10:00:00Z"),
            stopped_at: None,
            working_days_late: 23,
        }],
        on_time: Rate {
            numerator: 9,
            denominator: 10,
            target: crate::report::TARGET_ON_TIME,
        },
        satisfaction: Rate {
            numerator: 9,
            denominator: 10,
            target: crate::report::TARGET_SATISFACTION,
        },
        one_time_resolution: Rate {
            numerator: 0,
            denominator: 0,
            target: crate::report::TARGET_ONE_TIME,
        },
        key_cases: vec![KeyCase {
            item_id: "it-7".into(),
            channel: "letter".into(),
            category: Some("historical".into()),
            received_at: t("2020-03-01T02:00:00Z"),
            reasons: vec![KeyReason::Over5Years, KeyReason::Escalated],
            background: "征地补偿 a&b <b>x</b>".into(),
            core_request: "要求补偿, \"尽快\"".into(),
            department: "land".into(),
            assists: vec!["hrss".into()],
            deadline: Some(t("2026-12-01T10:00:00Z")),
        }],
    }
}

#[test]
fn escape_replaces_the_five_html_specials_and_keeps_chinese() {
    assert_eq!(
        escape(r#"<a href="x">'&'</a> 信访"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt; 信访"
    );
    assert_eq!(escape(""), "");
}

#[test]
fn html_has_every_section_and_an_svg_chart_per_chart_section() {
    let h = html(&sample()).unwrap();
    for id in [
        "rates",
        "channels",
        "categories",
        "trend",
        "top-types",
        "top3-three-months",
        "repeats",
        "overdue",
        "key-cases",
    ] {
        assert!(h.contains(&format!("id=\"{id}\"")), "section {id} missing");
    }
    assert_eq!(
        h.matches("<svg").count(),
        3,
        "channel, category, trend charts"
    );
    assert!(h.contains("12345 热线 (hotline)"));
    assert!(h.contains("2026-09"), "trend labels");
    assert!(h.contains("it-9") && h.contains("23"));
    assert!(h.contains("a1b2c3d4") && h.contains("it-1 it-2 it-3"));
    assert!(h.contains("2026-12-01 18:00"), "deadline in Asia/Shanghai");
    // No external resource: one self-contained file.
    assert!(!h.contains("<script") && !h.contains("src=") && !h.contains("<link"));
}

#[test]
fn html_escapes_every_text_from_the_report() {
    let h = html(&sample()).unwrap();
    assert!(h.contains("livelihood/&lt;script&gt;"));
    assert!(h.contains("a&amp;b &lt;b&gt;x&lt;/b&gt;"));
    assert!(!h.contains("<b>x</b>"));
}

#[test]
fn html_states_each_rate_against_its_target() {
    let h = html(&sample()).unwrap();
    // on time 90% < 100%: not met; satisfaction 90% >= 88%: met; one-time: nothing.
    assert!(h.contains("<td class=\"not-met\">未达标 (not met)</td>"));
    assert!(h.contains("<td class=\"met\">达标 (met)</td>"));
    assert!(h.contains("<td class=\"none\">无可统计 (nothing to count)</td>"));
    assert!(h.contains("90.0%"));
}

#[test]
fn html_of_an_empty_month_renders_with_charts() {
    let mut r = sample();
    r.items = 0;
    r.by_channel.iter_mut().for_each(|c| c.1 = 0);
    r.by_category.clear();
    r.trend.clear();
    r.top_types.clear();
    r.repeat_petitions.clear();
    r.overdue.clear();
    r.key_cases.clear();
    let h = html(&r).unwrap();
    assert_eq!(h.matches("<svg").count(), 3);
    assert!(h.contains("无 (none)"));
}

#[test]
fn report_csv_has_sections_keys_and_values() {
    let csv = report_csv(&sample()).unwrap();
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<(String, String, String)> = rd
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].to_string(), r[1].to_string(), r[2].to_string())
        })
        .collect();
    let has = |s: &str, k: &str, v: &str| rows.iter().any(|r| r.0 == s && r.1 == k && r.2 == v);
    assert!(has("report", "month", "2026-10"));
    assert!(has("report", "items", "42"));
    assert!(has("channel", "hotline", "20"));
    assert!(has("category", "unclassified", "2"));
    assert!(has("channel_category", "hotline/rights", "9"));
    assert!(has("trend", "2026-05", "30"));
    assert!(has("top_type", "rights/hrss", "12"));
    assert!(has("top3_three_months", "rights/hrss", "1"));
    assert!(has(
        "repeat_petition",
        "a1b2c3d4/rights/hrss",
        "it-1 it-2 it-3"
    ));
    assert!(has("overdue", "it-9/statutory.handle", "23"));
    assert!(has("rate", "on_time.value", "0.9000"));
    assert!(has("rate", "on_time.state", "not_met"));
    assert!(has("rate", "satisfaction.state", "met"));
    assert!(has("rate", "one_time_resolution.value", ""));
    assert!(has("rate", "one_time_resolution.state", "nothing_to_count"));
    assert!(has("key_cases", "count", "1"));
}

#[test]
fn key_cases_csv_quotes_commas_and_quotes() {
    let csv = key_cases_csv(&sample().key_cases).unwrap();
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let r = rd.records().next().unwrap().unwrap();
    assert_eq!(&r[0], "it-7");
    assert_eq!(&r[4], "over_5_years escalated");
    assert_eq!(&r[6], "要求补偿, \"尽快\"");
    assert_eq!(&r[8], "hrss");
    assert_eq!(&r[9], "2026-12-01T10:00:00Z");
    let json: serde_json::Value =
        serde_json::from_str(&key_cases_json(&sample().key_cases).unwrap()).unwrap();
    assert_eq!(json[0]["reasons"][0], "over5_years");
}

#[test]
fn write_monthly_writes_three_private_files_atomically() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let html_path = dir.path().join("report.html");
    std::fs::write(&html_path, "old").unwrap();
    let w = write_monthly(&sample(), &html_path).unwrap();
    assert_eq!(w.csv, dir.path().join("report-2026-10.csv"));
    assert_eq!(w.key_cases_csv, dir.path().join("key-cases-2026-10.csv"));
    for p in [&w.html, &w.csv, &w.key_cases_csv] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o027, 0, "{} is {mode:o}", p.display());
    }
    assert!(std::fs::read_to_string(&w.html).unwrap().contains("<svg"));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
