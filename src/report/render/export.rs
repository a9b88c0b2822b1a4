//! The report as CSV (`section,key,value` rows) and the key-case list as CSV or JSON.

use super::reason_key;
use crate::report::{KeyCase, MonthlyReport};

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
