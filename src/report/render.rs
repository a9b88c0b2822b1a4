//! Writes a [`MonthlyReport`] as one self-contained HTML file (inline CSS, inline SVG charts
//! drawn with `plotters`' SVG backend: no script, no external fetch) and as CSV
//! (`report-YYYY-MM.csv`: `section,key,value` rows; `key-cases-YYYY-MM.csv`: one row per key
//! case), and the key-case list on its own as CSV or JSON.
//!
//! It renders what the report carries and adds nothing: ids, labels, counts and the masked,
//! cut text of the key cases. Every text goes through [`escape`]; plotters escapes the text it
//! puts in the SVG itself. Files are written atomically (a temporary file in the same
//! directory, fsynced, then renamed) with mode 0640: a reader sees the old report or the new
//! one, never half of one. It does not compute figures (`figures`) nor decide when to run
//! (`schedule`).

use super::{KeyCase, KeyReason, MonthlyReport, Rate};
use anyhow::Context as _;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Chinese, then English in brackets: the labels of the channels and categories petitiond knows;
/// any other label is shown as it is.
fn label(key: &str) -> String {
    let zh = match key {
        "hotline" => "12345 热线",
        "portal" => "网上信访",
        "letter" => "来信",
        "visit" => "来访",
        "livelihood" => "民生保障",
        "rights" => "权益维护",
        "policy" => "政策咨询",
        "historical" => "历史遗留",
        "unclassified" => "未分类",
        _ => return key.to_string(),
    };
    format!("{zh} ({key})")
}

fn reason_label(r: KeyReason) -> &'static str {
    match r {
        KeyReason::Unresolved3Months => "三个月未办结 (unresolved 3 months)",
        KeyReason::Escalated => "已升级 (escalated)",
        KeyReason::Over5Years => "五年以上 (over 5 years)",
    }
}

fn reason_key(r: KeyReason) -> &'static str {
    match r {
        KeyReason::Unresolved3Months => "unresolved_3_months",
        KeyReason::Escalated => "escalated",
        KeyReason::Over5Years => "over_5_years",
    }
}

/// The state of a rate against its target, as the report and the mails word it.
pub fn rate_state(r: &Rate) -> &'static str {
    match r.met() {
        Some(true) => "达标 (met)",
        Some(false) => "未达标 (not met)",
        None => "无可统计 (nothing to count)",
    }
}

/// `97.5%`, or `—` with nothing to count.
pub fn percent(r: &Rate) -> String {
    match r.value() {
        Some(v) => format!("{:.1}%", v * 100.0),
        None => "—".into(),
    }
}

fn ts(t: &jiff::Timestamp, tz: &str) -> String {
    match jiff::tz::TimeZone::get(tz) {
        Ok(z) => t.to_zoned(z).strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => t.to_string(),
    }
}

const W: u32 = 640;
const H: u32 = 300;

/// A vertical bar chart of `(label, count)` as an SVG string.
pub fn bar_chart(title: &str, bars: &[(String, u64)]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let n = bars.len().max(1);
        let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
        let top = max + max.div_ceil(10);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((0..n).into_segmented(), 0u64..top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    bars.get(*i).map(|b| label(&b.0)).unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(RGBColor(0x2b, 0x6c, 0xb0).filled())
                    .margin(8)
                    .data(bars.iter().enumerate().map(|(i, b)| (i, b.1))),
            )
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// A line chart (with points) of the monthly trend as an SVG string.
pub fn line_chart(title: &str, points: &[(String, u64)]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let n = points.len().max(1);
        let max = points.iter().map(|b| b.1).max().unwrap_or(0).max(1);
        let top = max + max.div_ceil(10);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0..n, 0u64..top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|i| points.get(*i).map(|p| p.0.clone()).unwrap_or_default())
            .draw()
            .map_err(plot_err)?;
        let color = RGBColor(0xc0, 0x39, 0x2b);
        chart
            .draw_series(LineSeries::new(
                points.iter().enumerate().map(|(i, p)| (i, p.1)),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?;
        chart
            .draw_series(
                points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Circle::new((i, p.1), 4, color.filled())),
            )
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

fn plot_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

const CSS: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f2f2f2}td.n{text-align:right}.met{color:#1a7f37}.not-met{color:#c0392b;font-weight:bold}\
.none{color:#777}figure{margin:.5em 0}.empty{color:#777}";

fn table(html: &mut String, head: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        html.push_str("<p class=\"empty\">无 (none)</p>\n");
        return;
    }
    html.push_str("<table><thead><tr>");
    for h in head {
        let _ = write!(html, "<th>{}</th>", escape(h));
    }
    html.push_str("</tr></thead><tbody>\n");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            let numeric = !cell.is_empty() && cell.chars().all(|c| c.is_ascii_digit());
            let class = if numeric { " class=\"n\"" } else { "" };
            let _ = write!(html, "<td{class}>{}</td>", escape(&cell));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table>\n");
}

fn section(html: &mut String, id: &str, title: &str) {
    let _ = write!(html, "<section id=\"{id}\">\n<h2>{}</h2>\n", escape(title));
}

fn figure(html: &mut String, svg: &str) {
    html.push_str("<figure>");
    html.push_str(svg);
    html.push_str("</figure>\n");
}

/// The report as one self-contained HTML document.
pub fn html(r: &MonthlyReport) -> anyhow::Result<String> {
    let tz = r.time_zone.as_str();
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("信访事项月度分析报告 (monthly analysis report) {}", r.month);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n<p>时区 (time zone): {tz} · 生成于 (generated at): {g} · 本月受理 (items received): <strong id=\"items\">{n}</strong></p>\n",
        t = escape(&title),
        tz = escape(tz),
        g = escape(&ts(&r.generated_at, tz)),
        n = r.items,
    );

    section(&mut h, "rates", "三项指标 (rates against targets)");
    let rates = [
        ("按期办结率 (on-time completion)", &r.on_time),
        ("满意率 (satisfaction)", &r.satisfaction),
        ("一次性化解率 (one-time resolution)", &r.one_time_resolution),
    ];
    h.push_str("<table><thead><tr><th>指标 (rate)</th><th>数值 (value)</th><th>分子/分母 (count)</th><th>目标 (target)</th><th>状态 (state)</th></tr></thead><tbody>\n");
    for (name, rate) in rates {
        let class = match rate.met() {
            Some(true) => "met",
            Some(false) => "not-met",
            None => "none",
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}/{}</td><td class=\"n\">{}</td><td class=\"{class}\">{}</td></tr>",
            escape(name),
            escape(&percent(rate)),
            rate.numerator,
            rate.denominator,
            escape(&format!("{:.0}%", rate.target * 100.0)),
            escape(rate_state(rate)),
        );
    }
    h.push_str("</tbody></table>\n</section>\n");

    section(&mut h, "channels", "按渠道 (items per channel)");
    figure(&mut h, &bar_chart("items per channel", &r.by_channel)?);
    table(
        &mut h,
        &["渠道 (channel)", "件数 (items)"],
        r.by_channel
            .iter()
            .map(|(k, n)| vec![label(k), n.to_string()])
            .collect(),
    );
    h.push_str("</section>\n");

    section(&mut h, "categories", "按类别 (items per category)");
    figure(&mut h, &bar_chart("items per category", &r.by_category)?);
    table(
        &mut h,
        &["类别 (category)", "件数 (items)"],
        r.by_category
            .iter()
            .map(|(k, n)| vec![label(k), n.to_string()])
            .collect(),
    );
    table(
        &mut h,
        &["渠道 (channel)", "类别 (category)", "件数 (items)"],
        r.by_channel_category
            .iter()
            .map(|(c, k, n)| vec![label(c), label(k), n.to_string()])
            .collect(),
    );
    h.push_str("</section>\n");

    section(&mut h, "trend", "近六个月趋势 (6-month trend)");
    figure(&mut h, &line_chart("items per month", &r.trend)?);
    table(
        &mut h,
        &["月份 (month)", "件数 (items)"],
        r.trend
            .iter()
            .map(|(m, n)| vec![m.clone(), n.to_string()])
            .collect(),
    );
    h.push_str("</section>\n");

    section(&mut h, "top-types", "主要投诉类型 (top complaint types)");
    table(
        &mut h,
        &["排名 (rank)", "类型 (matter)", "件数 (items)"],
        r.top_types
            .iter()
            .enumerate()
            .map(|(i, t)| vec![(i + 1).to_string(), t.matter.clone(), t.items.to_string()])
            .collect(),
    );
    h.push_str(
        "<h3 id=\"top3-three-months\">连续三个月居前三 (top 3 for three months running)</h3>\n",
    );
    table(
        &mut h,
        &["类型 (matter)"],
        r.top3_three_months
            .iter()
            .map(|m| vec![m.clone()])
            .collect(),
    );
    h.push_str("</section>\n");

    section(
        &mut h,
        "repeats",
        "重复信访 (repeat petitions: same person 3+ times, same matter)",
    );
    table(
        &mut h,
        &[
            "人员 (person, hashed)",
            "类型 (matter)",
            "件数 (items)",
            "事项 (item ids)",
            "首次 (first)",
            "最近 (last)",
        ],
        r.repeat_petitions
            .iter()
            .map(|p| {
                vec![
                    p.person.clone(),
                    p.matter.clone(),
                    p.item_ids.len().to_string(),
                    p.item_ids.join(" "),
                    ts(&p.first_received, tz),
                    ts(&p.last_received, tz),
                ]
            })
            .collect(),
    );
    h.push_str("</section>\n");

    section(
        &mut h,
        "overdue",
        "超期 10 个工作日以上 (more than 10 working days overdue)",
    );
    table(
        &mut h,
        &[
            "事项 (item)",
            "时限 (clock)",
            "部门 (department)",
            "到期 (due)",
            "办结 (stopped)",
            "超期工作日 (working days late)",
        ],
        r.overdue
            .iter()
            .map(|o| {
                vec![
                    o.item_id.clone(),
                    o.clock.clone(),
                    o.department.clone(),
                    ts(&o.due_at, tz),
                    o.stopped_at
                        .map(|s| ts(&s, tz))
                        .unwrap_or_else(|| "未办结 (open)".into()),
                    o.working_days_late.to_string(),
                ]
            })
            .collect(),
    );
    h.push_str("</section>\n");

    section(&mut h, "key-cases", "季度攻坚清单 (key-case list)");
    key_case_table(&mut h, &r.key_cases, tz);
    h.push_str("</section>\n</body>\n</html>\n");
    Ok(h)
}

fn key_case_table(h: &mut String, cases: &[KeyCase], tz: &str) {
    table(
        h,
        &[
            "事项 (item)",
            "渠道 (channel)",
            "类别 (category)",
            "受理 (received)",
            "原因 (reasons)",
            "背景 (background)",
            "核心诉求 (core request)",
            "责任部门 (department)",
            "协办 (assists)",
            "期限 (deadline)",
        ],
        cases
            .iter()
            .map(|k| {
                vec![
                    k.item_id.clone(),
                    label(&k.channel),
                    k.category.as_deref().map(label).unwrap_or_default(),
                    ts(&k.received_at, tz),
                    k.reasons
                        .iter()
                        .map(|r| reason_label(*r))
                        .collect::<Vec<_>>()
                        .join("; "),
                    k.background.clone(),
                    k.core_request.clone(),
                    k.department.clone(),
                    k.assists.join(" "),
                    k.deadline.map(|d| ts(&d, tz)).unwrap_or_default(),
                ]
            })
            .collect(),
    );
}

/// The report as `section,key,value` rows (the key-case list is its own file).
pub fn report_csv(r: &MonthlyReport) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["section", "key", "value"])?;
    let mut row = |s: &str, k: &str, v: String| w.write_record([s, k, v.as_str()]);
    row("report", "month", r.month.clone())?;
    row("report", "time_zone", r.time_zone.clone())?;
    row("report", "generated_at", r.generated_at.to_string())?;
    row("report", "items", r.items.to_string())?;
    for (c, n) in &r.by_channel {
        row("channel", c, n.to_string())?;
    }
    for (c, n) in &r.by_category {
        row("category", c, n.to_string())?;
    }
    for (c, k, n) in &r.by_channel_category {
        row("channel_category", &format!("{c}/{k}"), n.to_string())?;
    }
    for (m, n) in &r.trend {
        row("trend", m, n.to_string())?;
    }
    for t in &r.top_types {
        row("top_type", &t.matter, t.items.to_string())?;
    }
    for m in &r.top3_three_months {
        row("top3_three_months", m, "1".into())?;
    }
    for p in &r.repeat_petitions {
        row(
            "repeat_petition",
            &format!("{}/{}", p.person, p.matter),
            p.item_ids.join(" "),
        )?;
    }
    for o in &r.overdue {
        row(
            "overdue",
            &format!("{}/{}", o.item_id, o.clock),
            o.working_days_late.to_string(),
        )?;
    }
    for (name, rate) in [
        ("on_time", &r.on_time),
        ("satisfaction", &r.satisfaction),
        ("one_time_resolution", &r.one_time_resolution),
    ] {
        row(
            "rate",
            &format!("{name}.value"),
            rate.value().map(|v| format!("{v:.4}")).unwrap_or_default(),
        )?;
        row(
            "rate",
            &format!("{name}.numerator"),
            rate.numerator.to_string(),
        )?;
        row(
            "rate",
            &format!("{name}.denominator"),
            rate.denominator.to_string(),
        )?;
        row(
            "rate",
            &format!("{name}.target"),
            format!("{}", rate.target),
        )?;
        let met = match rate.met() {
            Some(true) => "met",
            Some(false) => "not_met",
            None => "nothing_to_count",
        };
        row("rate", &format!("{name}.state"), met.into())?;
    }
    row("key_cases", "count", r.key_cases.len().to_string())?;
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// The key-case list, one row per case; times in RFC 3339 (UTC).
pub fn key_cases_csv(cases: &[KeyCase]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "item_id",
        "channel",
        "category",
        "received_at",
        "reasons",
        "background",
        "core_request",
        "department",
        "assists",
        "deadline",
    ])?;
    for k in cases {
        w.write_record([
            k.item_id.as_str(),
            &k.channel,
            k.category.as_deref().unwrap_or(""),
            &k.received_at.to_string(),
            &k.reasons
                .iter()
                .map(|r| reason_key(*r))
                .collect::<Vec<_>>()
                .join(" "),
            &k.background,
            &k.core_request,
            &k.department,
            &k.assists.join(" "),
            &k.deadline.map(|d| d.to_string()).unwrap_or_default(),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// The key-case list as a JSON array.
pub fn key_cases_json(cases: &[KeyCase]) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(cases)?)
}

/// The files one monthly report is written to.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub html: PathBuf,
    pub csv: PathBuf,
    pub key_cases_csv: PathBuf,
}

/// The CSV files' names beside `html`: `report-YYYY-MM.csv` and `key-cases-YYYY-MM.csv`.
pub fn files_for(html: &Path, month: &str) -> Written {
    let dir = html.parent().unwrap_or(Path::new("."));
    Written {
        html: html.to_path_buf(),
        csv: dir.join(format!("report-{month}.csv")),
        key_cases_csv: dir.join(format!("key-cases-{month}.csv")),
    }
}

/// Renders `r` and writes the HTML to `html` and the CSV files beside it, each atomically.
pub fn write_monthly(r: &MonthlyReport, html_path: &Path) -> anyhow::Result<Written> {
    let files = files_for(html_path, &r.month);
    write_atomic(&files.html, html(r)?.as_bytes())?;
    write_atomic(&files.csv, report_csv(r)?.as_bytes())?;
    write_atomic(
        &files.key_cases_csv,
        key_cases_csv(&r.key_cases)?.as_bytes(),
    )?;
    Ok(files)
}

/// Writes `bytes` to `path` through a temporary file in the same directory (mode 0640,
/// fsynced) renamed over it, then fsyncs the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::{Overdue, RepeatPetition, TypeCount};

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
}
