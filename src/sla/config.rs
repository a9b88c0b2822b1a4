//! `[sla]`: the calendar, the clock policies and the topics of the closed loop, in both stages
//! (the raw serde shape [`RawSla`], the validated [`SlaConfig`], the checks), beside the engine
//! that runs the clocks; the daemon's `config` calls [`sla`]. Also whose events each status
//! topic carries ([`status_topics`]), which the `[sla]` section and the departments decide.

use petitiond_core::diag::Validator;
use petitiond_core::routing::Department;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn event_kinds(
    v: &mut Validator<'_>,
    path: &str,
    names: &[String],
) -> Vec<petitiond_core::sla::policy::EventKind> {
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match petitiond_core::sla::policy::EventKind::parse(n) {
            Some(k) => out.push(k),
            None => v.err(
                &format!("{path}[{i}]"),
                format!("`{n}` is not a status event"),
            ),
        }
    }
    out
}

/// `[[sla.clocks]].verdicts`: known verdicts of the starting event (a reply's for
/// `replied`, an evaluation's for `evaluated`; no other event has one).
pub(super) fn clock_verdicts(
    v: &mut Validator<'_>,
    path: &str,
    start: &petitiond_core::sla::policy::Trigger,
    verdicts: &[String],
) {
    use petitiond_core::sla::policy::{EventKind, Trigger};
    if verdicts.is_empty() {
        return;
    }
    let allowed: &[&str] = match start {
        Trigger::Event(EventKind::Replied) => &petitiond_core::reply::VERDICTS[..2],
        Trigger::Event(EventKind::Evaluated) => &petitiond_core::reply::VERDICTS[2..],
        _ => {
            v.err(
                path,
                "only a clock with start_on = \"replied\" or \"evaluated\" can filter on the event's verdict",
            );
            return;
        }
    };
    for (i, verdict) in verdicts.iter().enumerate() {
        if !allowed.contains(&verdict.as_str()) {
            v.err(
                &format!("{path}[{i}]"),
                format!("`{verdict}` is not one of {}", allowed.join(", ")),
            );
        }
    }
}

pub fn sla(v: &mut Validator<'_>, s: &RawSla, dlq: &str) -> Option<SlaConfig> {
    v.topic_name("sla.status_topic", &s.status_topic);
    v.topic_name("sla.alerts_topic", &s.alerts_topic);
    if s.alerts_topic == dlq || s.status_topic == dlq || s.alerts_topic == s.status_topic {
        v.err(
            "sla.alerts_topic",
            "alerts, status and dead-letter topics must all differ",
        );
    }
    if s.consumer_group.trim().is_empty() {
        v.err("sla.consumer_group", "must not be empty");
    }
    for (i, m) in s.supervisors.iter().enumerate() {
        v.email_address(&format!("sla.supervisors[{i}]"), m);
    }
    let calendar = sla_calendar(v, s);
    let clocks = match &s.clocks {
        None => petitiond_core::sla::policy::defaults(),
        Some(raw) => {
            let mut ids = HashSet::new();
            raw.iter()
                .enumerate()
                .map(|(i, c)| clock_policy(v, i, c, &mut ids))
                .collect()
        }
    };
    Some(SlaConfig {
        calendar: std::sync::Arc::new(calendar?),
        clocks,
        status_topic: s.status_topic.clone(),
        shared_status_departments: s.shared_status_departments.clone(),
        status_max_future_skew: Duration::from_secs(s.status_max_future_skew_secs),
        alerts_topic: s.alerts_topic.clone(),
        consumer_group: s.consumer_group.clone(),
        supervisors: s.supervisors.clone(),
    })
}

/// `sla.office_hours` and the calendar files (or the built-in calendar), with provisional
/// years where no official file exists.
fn sla_calendar(
    v: &mut Validator<'_>,
    s: &RawSla,
) -> Option<petitiond_core::sla::calendar::Calendar> {
    use petitiond_core::sla::calendar::{Calendar, OfficeHours};
    let mut hours = Vec::new();
    for (i, h) in s.office_hours.iter().enumerate() {
        let parsed = h.split_once('-').and_then(|(a, b)| {
            Some((
                a.trim().parse::<jiff::civil::Time>().ok()?,
                b.trim().parse::<jiff::civil::Time>().ok()?,
            ))
        });
        match parsed {
            Some(p) => hours.push(p),
            None => v.err(
                &format!("sla.office_hours[{i}]"),
                format!("`{h}` is not an interval like 08:30-12:00"),
            ),
        }
    }
    match OfficeHours::new(hours) {
        Err(e) => {
            v.err("sla.office_hours", e.to_string());
            None
        }
        Ok(hours) => {
            // Years without an official file get a provisional calendar (sla::provisional).
            let built = if s.calendar_files.is_empty() {
                Calendar::builtin_with_provisional(s.overrides.clone(), hours, &s.time_zone)
            } else {
                let files: Vec<PathBuf> = s.calendar_files.iter().map(|f| v.path(f)).collect();
                Calendar::load_with_provisional(&files, s.overrides.clone(), hours, &s.time_zone)
            };
            match built {
                Ok(c) => Some(c),
                Err(e) => {
                    v.err("sla.calendar_files", e.to_string());
                    None
                }
            }
        }
    }
}

/// One `[[sla.clocks]]` entry: a unique id, a valid rule, a known start event, channels,
/// categories and verdicts, warning points, stop events and a citation.
fn clock_policy(
    v: &mut Validator<'_>,
    i: usize,
    c: &RawClock,
    ids: &mut HashSet<String>,
) -> petitiond_core::sla::policy::ClockPolicy {
    use petitiond_core::sla::policy::{ClockPolicy, Trigger};
    let at = |k: &str| format!("sla.clocks[{i}].{k}");
    if !ids.insert(c.id.clone()) {
        v.err(&at("id"), format!("duplicate clock id `{}`", c.id));
    }
    if let Err(e) = c.rule.validate() {
        v.err(&at("rule"), e);
    }
    let start = if c.start_on == "received" {
        Trigger::Received
    } else {
        match petitiond_core::sla::policy::EventKind::parse(&c.start_on) {
            Some(k) => Trigger::Event(k),
            None => {
                v.err(
                    &at("start_on"),
                    format!("`{}` is neither `received` nor a status event", c.start_on),
                );
                Trigger::Received
            }
        }
    };
    let mut channels = Vec::new();
    for (j, ch) in c.channels.iter().enumerate() {
        match serde_json::from_value(serde_json::Value::String(ch.clone())) {
            Ok(v) => channels.push(v),
            Err(_) => v.err(
                &format!("sla.clocks[{i}].channels[{j}]"),
                format!("`{ch}` is not one of hotline, portal, letter"),
            ),
        }
    }
    let mut categories = Vec::new();
    for (j, ca) in c.categories.iter().enumerate() {
        match serde_json::from_value(serde_json::Value::String(ca.clone())) {
            Ok(v) => categories.push(v),
            Err(_) => v.err(
                &format!("sla.clocks[{i}].categories[{j}]"),
                format!("`{ca}` is not one of livelihood, rights, policy, historical"),
            ),
        }
    }
    clock_verdicts(v, &at("verdicts"), &start, &c.verdicts);
    if c.warn_at_percent.iter().any(|p| *p == 0 || *p >= 100) {
        v.err(
            &at("warn_at_percent"),
            "each warning point must be between 1 and 99",
        );
    }
    if c.stop_on.is_empty() {
        v.err(
            &at("stop_on"),
            "a clock needs at least one event that stops it",
        );
    }
    if c.citation.trim().is_empty() {
        v.err(
            &at("citation"),
            "say where the deadline comes from (plan, regulation article)",
        );
    }
    ClockPolicy {
        id: c.id.clone(),
        rule: c.rule,
        start,
        channels,
        categories,
        flags: c.flags.clone(),
        verdicts: c.verdicts.clone(),
        stop_on: event_kinds(v, &at("stop_on"), &c.stop_on),
        pause_on: event_kinds(v, &at("pause_on"), &c.pause_on),
        resume_on: event_kinds(v, &at("resume_on"), &c.resume_on),
        extend_on: event_kinds(v, &at("extend_on"), &c.extend_on),
        max_extension_days: c.max_extension_days,
        warn_at_percent: c.warn_at_percent.clone(),
        remind_every_working_days: c.remind_every_working_days,
        escalate_after_working_days: c.escalate_after_working_days,
        citation: c.citation.clone(),
    }
}

// ---- the section --------------------------------------------------------------------------

/// Whose status events a status topic carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusSource {
    /// A department's own topic: every event on it is that department's.
    Department(String),
    /// The shared `sla.status_topic`: the event's `actor.department`, accepted only for
    /// `sla.shared_status_departments`.
    Shared,
}

/// The topics status events are read from, each with whose events it carries: each
/// department's own, and the shared `sla.status_topic`.
pub fn status_topics(departments: &[Department], sla: &SlaConfig) -> Vec<(String, StatusSource)> {
    let mut t: Vec<(String, StatusSource)> = departments
        .iter()
        .map(|d| {
            (
                d.status_topic.clone(),
                StatusSource::Department(d.id.clone()),
            )
        })
        .collect();
    t.push((sla.status_topic.clone(), StatusSource::Shared));
    t
}

/// SLA settings: the calendar, the clock policies and the topics of the closed loop.
#[derive(Debug, Clone)]
pub struct SlaConfig {
    pub calendar: std::sync::Arc<petitiond_core::sla::calendar::Calendar>,
    pub clocks: Vec<petitiond_core::sla::policy::ClockPolicy>,
    /// The shared status topic: events there count only for `shared_status_departments`
    /// (by `actor.department`); departments report on their own `status_topic`.
    pub status_topic: String,
    pub shared_status_departments: Vec<String>,
    /// Events dated further in the future than this are rejected (dead-lettered).
    pub status_max_future_skew: Duration,
    /// Alerts are produced here (CloudEvents).
    pub alerts_topic: String,
    pub consumer_group: String,
    pub supervisors: Vec<String>,
}

impl SlaConfig {
    pub fn clock(&self, id: &str) -> Option<&petitiond_core::sla::policy::ClockPolicy> {
        self.clocks.iter().find(|c| c.id == id)
    }
}

fn default_tz() -> String {
    "Asia/Shanghai".into()
}
fn default_office_hours() -> Vec<String> {
    vec!["08:30-12:00".into(), "14:00-17:30".into()]
}
fn default_status_topic() -> String {
    "petitiond.status".into()
}
fn default_alerts_topic() -> String {
    "petitiond.alerts".into()
}
fn default_consumer_group() -> String {
    "petitiond-status".into()
}
fn default_status_max_future_skew_secs() -> u64 {
    300
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSla {
    #[serde(default = "default_tz")]
    pub time_zone: String,
    /// Calendar data files, one per year; empty = the shipped 2026 calendar.
    #[serde(default)]
    pub calendar_files: Vec<String>,
    #[serde(default = "default_office_hours")]
    pub office_hours: Vec<String>,
    #[serde(default)]
    pub overrides: Vec<petitiond_core::sla::calendar::Override>,
    #[serde(default = "default_status_topic")]
    pub status_topic: String,
    #[serde(default = "default_alerts_topic")]
    pub alerts_topic: String,
    #[serde(default = "default_consumer_group")]
    pub consumer_group: String,
    /// Departments whose events are accepted on the shared `status_topic` (by
    /// `actor.department`); default none.
    #[serde(default)]
    pub shared_status_departments: Vec<String>,
    /// How far in the future an event's `time` may be (clock skew) before it is rejected.
    #[serde(default = "default_status_max_future_skew_secs")]
    pub status_max_future_skew_secs: u64,
    /// Mailed on every alert, in addition to the department's recipients.
    #[serde(default)]
    pub supervisors: Vec<String>,
    /// Clock policies; absent = the plan's defaults.
    pub clocks: Option<Vec<RawClock>>,
}

impl Default for RawSla {
    fn default() -> Self {
        Self {
            time_zone: default_tz(),
            calendar_files: Vec::new(),
            office_hours: default_office_hours(),
            overrides: Vec::new(),
            status_topic: default_status_topic(),
            alerts_topic: default_alerts_topic(),
            consumer_group: default_consumer_group(),
            shared_status_departments: Vec::new(),
            status_max_future_skew_secs: default_status_max_future_skew_secs(),
            supervisors: Vec::new(),
            clocks: None,
        }
    }
}

fn default_start() -> String {
    "received".into()
}
fn default_pause() -> Vec<String> {
    vec!["paused".into()]
}
fn default_resume() -> Vec<String> {
    vec!["resumed".into()]
}
fn default_extend() -> Vec<String> {
    vec!["extended".into()]
}
fn default_warn() -> Vec<u8> {
    vec![50, 80]
}
fn default_remind() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClock {
    pub id: String,
    pub rule: petitiond_core::sla::due::DueRule,
    /// `received` or a status event name.
    #[serde(default = "default_start")]
    pub start_on: String,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    /// Start only when the starting event's verdict is one of these (empty: any).
    #[serde(default)]
    pub verdicts: Vec<String>,
    pub stop_on: Vec<String>,
    #[serde(default = "default_pause")]
    pub pause_on: Vec<String>,
    #[serde(default = "default_resume")]
    pub resume_on: Vec<String>,
    #[serde(default = "default_extend")]
    pub extend_on: Vec<String>,
    #[serde(default)]
    pub max_extension_days: u32,
    #[serde(default = "default_warn")]
    pub warn_at_percent: Vec<u8>,
    #[serde(default = "default_remind")]
    pub remind_every_working_days: u32,
    #[serde(default)]
    pub escalate_after_working_days: Option<u32>,
    #[serde(default)]
    pub citation: String,
}
