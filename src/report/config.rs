//! The `[reports]` section: when the monthly report and the weekly key-case reminder run
//! (cron expressions, in `sla.time_zone`), who receives the report, where its files go and on
//! which topic it is announced. Parsed and validated here; `report::schedule` uses it.
//!
//! Absent section: nothing is scheduled (the `report` commands still work). Present: enabled
//! unless `enabled = false`.

use petitiond_core::diag::Validator;
use serde::Deserialize;
use std::path::PathBuf;
use std::str::FromStr as _;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReports {
    pub enabled: bool,
    /// Six or seven fields, seconds first (the `cron` crate's syntax), in `sla.time_zone`.
    pub monthly_cron: String,
    pub key_case_reminder_cron: String,
    /// Who receives the monthly report by e-mail.
    pub recipients: Vec<String>,
    /// Default `<data_dir>/reports`; relative paths are under the data directory.
    pub out_dir: Option<String>,
    /// Default `sla.alerts_topic`.
    pub topic: Option<String>,
}

impl Default for RawReports {
    fn default() -> Self {
        Self {
            enabled: true,
            monthly_cron: DEFAULT_MONTHLY_CRON.into(),
            key_case_reminder_cron: DEFAULT_KEY_CASE_CRON.into(),
            recipients: Vec::new(),
            out_dir: None,
            topic: None,
        }
    }
}

/// 08:00 on the 1st of every month.
pub const DEFAULT_MONTHLY_CRON: &str = "0 0 8 1 * *";
/// 09:00 every Monday.
pub const DEFAULT_KEY_CASE_CRON: &str = "0 0 9 * * Mon";

#[derive(Debug, Clone)]
pub struct ReportsConfig {
    pub monthly: cron::Schedule,
    pub key_case_reminder: cron::Schedule,
    pub recipients: Vec<String>,
    pub out_dir: PathBuf,
    pub topic: String,
}

/// `data_dir` resolves a relative `out_dir`; `alerts_topic` is the default topic; `mail`
/// tells whether `[alerts.email]` is configured (recipients need it).
pub fn reports(
    v: &mut Validator<'_>,
    r: &RawReports,
    data_dir: &std::path::Path,
    alerts_topic: &str,
    mail: bool,
) -> Option<ReportsConfig> {
    let monthly = cron(v, "reports.monthly_cron", &r.monthly_cron);
    let key_case_reminder = cron(
        v,
        "reports.key_case_reminder_cron",
        &r.key_case_reminder_cron,
    );
    for (i, m) in r.recipients.iter().enumerate() {
        v.email_address(&format!("reports.recipients[{i}]"), m);
    }
    if !r.recipients.is_empty() && !mail {
        v.err(
            "reports.recipients",
            "reports are mailed through [alerts.email], which is not configured (or not enabled)",
        );
    }
    let topic = r.topic.clone().unwrap_or_else(|| alerts_topic.to_string());
    if r.topic.is_some() {
        v.topic_name("reports.topic", &topic);
    }
    let out_dir = match r.out_dir.as_deref() {
        Some("") => {
            v.err("reports.out_dir", "must not be empty");
            PathBuf::new()
        }
        Some(p) if std::path::Path::new(p).is_absolute() => PathBuf::from(p),
        Some(p) => data_dir.join(p),
        None => data_dir.join("reports"),
    };
    Some(ReportsConfig {
        monthly: monthly?,
        key_case_reminder: key_case_reminder?,
        recipients: r.recipients.clone(),
        out_dir,
        topic,
    })
}

fn cron(v: &mut Validator<'_>, path: &str, expr: &str) -> Option<cron::Schedule> {
    match cron::Schedule::from_str(expr) {
        Ok(s) => {
            // A schedule that never fires (`0 0 0 30 Feb *`) is a mistake, not a choice.
            let start = chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600, 0)?;
            if s.after(&start).next().is_none() {
                v.err(path, format!("`{expr}` never fires"));
                return None;
            }
            Some(s)
        }
        Err(e) => {
            v.err(
                path,
                format!(
                    "`{expr}` is not a cron expression (six or seven fields, seconds first, e.g. \"0 0 8 1 * *\"): {e}"
                ),
            );
            None
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
