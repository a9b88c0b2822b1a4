//! The report as one self-contained HTML page: inline CSS, one section per figure with its
//! table and chart, and the key-case list.

use super::{bar_chart, escape, label, line_chart, percent, rate_state, reason_label, ts};
use crate::report::{KeyCase, MonthlyReport};
use std::fmt::Write as _;

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

/// The report as one self-contained HTML document: the head, then one section per figure.
pub fn html(r: &MonthlyReport) -> anyhow::Result<String> {
    let mut h = String::with_capacity(64 * 1024);
    head(&mut h, r);
    rates_section(&mut h, r);
    channels_section(&mut h, r)?;
    categories_section(&mut h, r)?;
    trend_section(&mut h, r)?;
    top_types_section(&mut h, r);
    repeats_section(&mut h, r);
    overdue_section(&mut h, r);
    section(&mut h, "key-cases", "季度攻坚清单 (key-case list)");
    key_case_table(&mut h, &r.key_cases, &r.time_zone);
    h.push_str("</section>\n</body>\n</html>\n");
    Ok(h)
}

/// The document's head (title, inline CSS) and the page's title line.
fn head(h: &mut String, r: &MonthlyReport) {
    let tz = r.time_zone.as_str();
    let title = format!("信访事项月度分析报告 (monthly analysis report) {}", r.month);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n<p>时区 (time zone): {tz} · 生成于 (generated at): {g} · 本月受理 (items received): <strong id=\"items\">{n}</strong></p>\n",
        t = escape(&title),
        tz = escape(tz),
        g = escape(&ts(&r.generated_at, tz)),
        n = r.items,
    );
}

/// The three rates against their targets.
fn rates_section(h: &mut String, r: &MonthlyReport) {
    section(h, "rates", "三项指标 (rates against targets)");
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
}

/// Items per channel: chart and table.
fn channels_section(h: &mut String, r: &MonthlyReport) -> anyhow::Result<()> {
    section(h, "channels", "按渠道 (items per channel)");
    figure(h, &bar_chart("items per channel", &r.by_channel)?);
    table(
        h,
        &["渠道 (channel)", "件数 (items)"],
        r.by_channel
            .iter()
            .map(|(k, n)| vec![label(k), n.to_string()])
            .collect(),
    );
    h.push_str("</section>\n");
    Ok(())
}

/// Items per category (chart and table) and per channel and category.
fn categories_section(h: &mut String, r: &MonthlyReport) -> anyhow::Result<()> {
    section(h, "categories", "按类别 (items per category)");
    figure(h, &bar_chart("items per category", &r.by_category)?);
    table(
        h,
        &["类别 (category)", "件数 (items)"],
        r.by_category
            .iter()
            .map(|(k, n)| vec![label(k), n.to_string()])
            .collect(),
    );
    table(
        h,
        &["渠道 (channel)", "类别 (category)", "件数 (items)"],
        r.by_channel_category
            .iter()
            .map(|(c, k, n)| vec![label(c), label(k), n.to_string()])
            .collect(),
    );
    h.push_str("</section>\n");
    Ok(())
}

/// Items per month over six months: chart and table.
fn trend_section(h: &mut String, r: &MonthlyReport) -> anyhow::Result<()> {
    section(h, "trend", "近六个月趋势 (6-month trend)");
    figure(h, &line_chart("items per month", &r.trend)?);
    table(
        h,
        &["月份 (month)", "件数 (items)"],
        r.trend
            .iter()
            .map(|(m, n)| vec![m.clone(), n.to_string()])
            .collect(),
    );
    h.push_str("</section>\n");
    Ok(())
}

/// The top complaint types, and those in the top three for three months running.
fn top_types_section(h: &mut String, r: &MonthlyReport) {
    section(h, "top-types", "主要投诉类型 (top complaint types)");
    table(
        h,
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
        h,
        &["类型 (matter)"],
        r.top3_three_months
            .iter()
            .map(|m| vec![m.clone()])
            .collect(),
    );
    h.push_str("</section>\n");
}

/// The repeat petitions.
fn repeats_section(h: &mut String, r: &MonthlyReport) {
    let tz = r.time_zone.as_str();
    section(
        h,
        "repeats",
        "重复信访 (repeat petitions: same person 3+ times, same matter)",
    );
    table(
        h,
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
}

/// The statutory clocks more than 10 working days overdue.
fn overdue_section(h: &mut String, r: &MonthlyReport) {
    let tz = r.time_zone.as_str();
    section(
        h,
        "overdue",
        "超期 10 个工作日以上 (more than 10 working days overdue)",
    );
    table(
        h,
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
