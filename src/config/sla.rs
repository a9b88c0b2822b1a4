//! `[sla]`: the calendar, the clock policies and the topics of the closed loop, validated.

use super::*;

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

pub(super) fn sla(v: &mut Validator<'_>, s: &raw::RawSla, dlq: &str) -> Option<SlaConfig> {
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
    s: &raw::RawSla,
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
    c: &raw::RawClock,
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
