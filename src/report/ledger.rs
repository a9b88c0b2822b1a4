//! `petitiond ledger`: the electronic ledger (电子跟踪台账, DOMAIN.md §6) as CSV or JSON —
//! every item's stage (受理 → 办理 → 反馈 → 评价), responsible department and person,
//! expected completion time, and its clocks with their states, read from the store.
//!
//! Rows stream from the store to the writer one at a time. Instants are written in the
//! office's time zone (`sla.time_zone`) with their offset. No petitioner data: ids, labels,
//! staff ids and instants only.

use crate::store::{LedgerQuery, LedgerRow, Store, StoreError};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use petitiond_core::envelope::Stage;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown ledger format `{other}`: csv or json")),
        }
    }
}

/// The stage's name in the office's words.
pub fn stage_zh(stage: Stage) -> &'static str {
    match stage {
        Stage::Received => "登记",
        Stage::Accepted => "受理",
        Stage::Handling => "办理",
        Stage::Replied => "反馈",
        Stage::Evaluated => "评价",
        Stage::Closed => "办结",
    }
}

/// `--since`: a date (`2026-10-01`, the start of that day in `tz`) or an RFC 3339 instant.
pub fn parse_since(s: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let date: jiff::civil::Date = s.parse().map_err(|e| {
        format!("--since `{s}`: not a date (YYYY-MM-DD) or an RFC 3339 instant: {e}")
    })?;
    date.to_zoned(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|e| format!("--since `{s}`: {e}"))
}

const HEADER: [&str; 16] = [
    "item_id",
    "channel",
    "category",
    "received_at",
    "stage",
    "stage_zh",
    "lead",
    "assists",
    "person",
    "expected_completion",
    "completion_state",
    "clocks",
    "last_event",
    "last_event_at",
    "reply",
    "evaluation",
];

fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The state of the clock whose due instant is the expected completion.
fn completion_state(row: &LedgerRow) -> Option<&str> {
    let due = row.expected_completion?;
    row.clocks
        .iter()
        .find(|c| c.due_at == due)
        .map(|c| c.state.as_str())
}

fn json_row(row: &LedgerRow, tz: &TimeZone) -> serde_json::Value {
    serde_json::json!({
        "item_id": row.item_id,
        "channel": row.channel,
        "category": row.category,
        "received_at": local(row.received_at, tz),
        "stage": row.stage.as_str(),
        "stage_zh": stage_zh(row.stage),
        "lead": row.lead,
        "assists": row.assists,
        "person": row.person,
        "expected_completion": row.expected_completion.map(|t| local(t, tz)),
        "completion_state": completion_state(row),
        "clocks": row.clocks.iter().map(|c| serde_json::json!({
            "clock": c.clock,
            "state": c.state,
            "due_at": local(c.due_at, tz),
            "provisional": c.provisional,
        })).collect::<Vec<_>>(),
        "last_event": row.last_event.as_ref().map(|(e, _)| e),
        "last_event_at": row.last_event.as_ref().map(|(_, t)| local(*t, tz)),
        "reply": row.reply,
        "evaluation": row.evaluation,
    })
}

fn csv_row(row: &LedgerRow, tz: &TimeZone) -> [String; 16] {
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    [
        row.item_id.clone(),
        row.channel.clone(),
        opt(&row.category),
        local(row.received_at, tz),
        row.stage.as_str().into(),
        stage_zh(row.stage).into(),
        opt(&row.lead),
        row.assists.join(";"),
        opt(&row.person),
        row.expected_completion
            .map(|t| local(t, tz))
            .unwrap_or_default(),
        completion_state(row).unwrap_or_default().into(),
        row.clocks
            .iter()
            .map(|c| {
                format!(
                    "{}={}@{}{}",
                    c.clock,
                    c.state,
                    local(c.due_at, tz),
                    if c.provisional { "(provisional)" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(";"),
        row.last_event
            .as_ref()
            .map(|(e, _)| e.clone())
            .unwrap_or_default(),
        row.last_event
            .as_ref()
            .map(|(_, t)| local(*t, tz))
            .unwrap_or_default(),
        opt(&row.reply),
        opt(&row.evaluation),
    ]
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Join(format!("writing the ledger: {e}"))
}

/// Writes the ledger for `q` to `out`; returns the number of rows.
pub fn write(
    store: &dyn Store,
    q: &LedgerQuery,
    format: Format,
    tz: &TimeZone,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let n = match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(HEADER)?;
            let n = store.ledger(q, &mut |row| w.write_record(csv_row(&row, tz)).map_err(io))?;
            w.flush()?;
            n
        }
        Format::Json => {
            // A JSON array, written as it streams.
            out.write_all(b"[")?;
            let mut first = true;
            let n = store.ledger(q, &mut |row| {
                if !first {
                    out.write_all(b",").map_err(io)?;
                }
                first = false;
                out.write_all(b"\n").map_err(io)?;
                serde_json::to_writer(&mut *out, &json_row(&row, tz)).map_err(io)?;
                Ok(())
            })?;
            out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
            out.flush()?;
            n
        }
    };
    Ok(n)
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
