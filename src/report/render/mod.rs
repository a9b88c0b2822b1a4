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
//!
//! The HTML page is `page` (sections and tables), its SVG charts `charts`, the CSV and JSON
//! files `export`; this module holds the shared labels and the atomic file writes.

mod charts;
mod export;
mod page;
#[cfg(test)]
pub(crate) mod tests;

pub use charts::{bar_chart, line_chart};
pub use export::{key_cases_csv, key_cases_json, report_csv};
pub use page::html;

use super::{KeyReason, MonthlyReport, Rate};
use anyhow::Context as _;
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
