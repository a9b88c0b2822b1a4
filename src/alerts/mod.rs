//! Alerts: what petitiond says when an SLA clock warns, breaches, reminds or escalates.
//!
//! An alert is recorded once (its id is derived from item, clock, kind and scheduled instant),
//! goes out as a CloudEvent on the alerts topic through the same outbox as routed items, as a
//! mail to the department's recipients and the supervisors (`mail`), and as a log line. It
//! carries item id, clock, due time, state and department — never petitioner data.

pub mod config;
pub mod mail;

use crate::kafka::wire::{CONTENT_TYPE, SPEC_VERSION};
use crate::store::{FiredAlert, NewMail, NewOutbox};
use jiff::Timestamp;
use petitiond_core::routing::Department;
use petitiond_core::sla::clock::{AlertKind, Clock};
use petitiond_core::sla::policy::ClockPolicy;
use serde_json::json;

pub const TYPE_ALERT: &str = "cn.gov.petition.sla.alert.v1";
pub const DATASCHEMA_ALERT_V1: &str = "urn:petitiond:schema:alert:v1";

/// An alert later than this after its scheduled instant is marked late (fired on catch-up).
pub const LATE_AFTER_MS: i64 = 1000;

/// What an alert reads from the config: from the SLA section the alerts topic, the supervisors
/// and the calendar its mail writes times in; the departments (recipients, names) and whether
/// alert mail is configured at all.
#[derive(Debug, Clone, Copy)]
pub struct AlertSections<'a> {
    pub alerts_topic: &'a str,
    pub supervisors: &'a [String],
    pub calendar: &'a petitiond_core::sla::calendar::Calendar,
    pub departments: &'a [Department],
    /// `[email]` is configured: alerts are mailed too.
    pub mail: bool,
}

impl<'a> AlertSections<'a> {
    pub fn department(&self, id: &str) -> Option<&'a Department> {
        self.departments.iter().find(|d| d.id == id)
    }
}

pub fn alert_id(item_id: &str, clock_id: &str, kind: AlertKind, at: Timestamp) -> String {
    let name = format!(
        "petitiond:alert:{item_id}:{clock_id}:{kind}:{}",
        at.as_millisecond()
    );
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

/// Builds the alert for `clock` reaching `kind` at `scheduled_at`, observed at `now`.
pub fn build(
    cfg: &AlertSections<'_>,
    policy: &ClockPolicy,
    clock: &Clock,
    kind: AlertKind,
    scheduled_at: Timestamp,
    now: Timestamp,
) -> FiredAlert {
    build_marked(
        cfg,
        policy,
        clock,
        kind,
        scheduled_at,
        now,
        clock.provisional,
    )
}

/// [`build`], with whether `scheduled_at` rests on a provisional calendar year (the clock's
/// due does, or a reminder counted working days in such a year): `provisional` in the
/// payload and the `ce_slaprov` header.
pub fn build_marked(
    cfg: &AlertSections<'_>,
    policy: &ClockPolicy,
    clock: &Clock,
    kind: AlertKind,
    scheduled_at: Timestamp,
    now: Timestamp,
    provisional: bool,
) -> FiredAlert {
    let id = alert_id(&clock.item_id, &clock.clock_id, kind, scheduled_at);
    let late = now.as_millisecond() - scheduled_at.as_millisecond() > LATE_AFTER_MS;
    let payload = json!({
        "version": 1,
        "alert_id": id,
        "item_id": clock.item_id,
        "clock": clock.clock_id,
        "kind": kind.to_string(),
        "department": clock.department,
        "state": clock.state.as_str(),
        "started_at": clock.started_at.to_string(),
        "due_at": clock.due_at.to_string(),
        "scheduled_at": scheduled_at.to_string(),
        "fired_at": now.to_string(),
        "late": late,
        "rule": policy.rule.to_string(),
        "citation": policy.citation,
        "provisional": provisional,
    });
    let headers = vec![
        ("ce_specversion".to_string(), SPEC_VERSION.to_string()),
        ("ce_id".into(), id.clone()),
        ("ce_source".into(), "urn:petitiond:sla".into()),
        ("ce_type".into(), TYPE_ALERT.into()),
        ("ce_time".into(), now.to_string()),
        ("ce_subject".into(), clock.item_id.clone()),
        ("ce_dataschema".into(), DATASCHEMA_ALERT_V1.into()),
        ("ce_clock".into(), clock.clock_id.clone()),
        ("ce_alertkind".into(), kind.to_string()),
        ("ce_sladue".into(), clock.due_at.to_string()),
        (
            crate::kafka::wire::SLA_PROVISIONAL_HEADER.into(),
            provisional.to_string(),
        ),
        ("ce_department".into(), clock.department.clone()),
        ("ce_late".into(), late.to_string()),
        ("content-type".into(), CONTENT_TYPE.into()),
    ];
    let record = NewOutbox {
        topic: cfg.alerts_topic.to_string(),
        key: clock.item_id.clone(),
        ce_id: id.clone(),
        headers,
        payload: serde_json::to_vec(&payload).expect("JSON values always serialize"),
    };
    let mut recipients: Vec<String> = cfg
        .department(&clock.department)
        .map(|d| d.alert_emails.clone())
        .unwrap_or_default();
    recipients.extend(cfg.supervisors.iter().cloned());
    recipients.sort();
    recipients.dedup();
    let mail = (cfg.mail && !recipients.is_empty()).then(|| NewMail {
        recipients,
        subject: mail::subject(&clock.clock_id, kind, &clock.item_id, late),
        body: mail::body(cfg, policy, clock, kind, scheduled_at, now, late),
    });
    FiredAlert {
        id,
        item_id: clock.item_id.clone(),
        clock_id: clock.clock_id.clone(),
        kind: kind.to_string(),
        department: clock.department.clone(),
        due_at: clock.due_at,
        scheduled_at,
        fired_at: now,
        late,
        record,
        mail,
        provisional,
    }
}

/// Alert kind: a reply failed the quality check and was bounced to its department.
pub const KIND_REPLY_BOUNCED: &str = "reply_bounced";
/// Alert kind: the petitioner evaluated the handling as 不满意 (dissatisfied).
pub const KIND_REVISIT: &str = "revisit";

/// A closed-loop alert (DOMAIN.md §6): raised by a status event rather than by a clock
/// falling due. One per (item, kind, event id).
pub struct LoopAlert<'a> {
    pub item_id: &'a str,
    /// Whose attention it needs: its `alert_emails` are mailed, with the supervisors.
    pub department: &'a str,
    /// [`KIND_REPLY_BOUNCED`] or [`KIND_REVISIT`].
    pub kind: &'static str,
    /// The status event that raised it.
    pub event_id: &'a str,
    /// The event's time.
    pub at: Timestamp,
    pub now: Timestamp,
    /// The clock it concerns, if any: the clock a bounced reply leaves running, the revisit
    /// clock an evaluation started.
    pub clock: Option<(&'a ClockPolicy, &'a Clock)>,
    /// Further payload fields (`missing`, `banned`, `verdict`): names and configured phrases,
    /// never text from the event.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

pub fn loop_alert_id(item_id: &str, kind: &str, event_id: &str) -> String {
    let name = format!("petitiond:alert:{item_id}:{kind}:{event_id}");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

/// Builds a closed-loop alert: the alerts topic (`schema/alert.v1.json`, with the clock fields
/// when it concerns a clock) and a mail to the department's recipients and the supervisors.
pub fn build_loop(cfg: &AlertSections<'_>, a: LoopAlert<'_>) -> FiredAlert {
    let id = loop_alert_id(a.item_id, a.kind, a.event_id);
    let mut payload = serde_json::Map::new();
    payload.insert("version".into(), json!(1));
    payload.insert("alert_id".into(), json!(id));
    payload.insert("item_id".into(), json!(a.item_id));
    payload.insert("kind".into(), json!(a.kind));
    payload.insert("department".into(), json!(a.department));
    payload.insert("event_id".into(), json!(a.event_id));
    payload.insert("scheduled_at".into(), json!(a.at.to_string()));
    payload.insert("fired_at".into(), json!(a.now.to_string()));
    payload.insert("late".into(), json!(false));
    let mut headers = vec![
        ("ce_specversion".to_string(), SPEC_VERSION.to_string()),
        ("ce_id".into(), id.clone()),
        ("ce_source".into(), "urn:petitiond:status".into()),
        ("ce_type".into(), TYPE_ALERT.into()),
        ("ce_time".into(), a.now.to_string()),
        ("ce_subject".into(), a.item_id.to_string()),
        ("ce_dataschema".into(), DATASCHEMA_ALERT_V1.into()),
        ("ce_alertkind".into(), a.kind.into()),
        ("ce_department".into(), a.department.into()),
        ("ce_late".into(), "false".into()),
        ("content-type".into(), CONTENT_TYPE.into()),
    ];
    if let Some((p, c)) = a.clock {
        for (k, v) in [
            ("clock", json!(c.clock_id)),
            ("state", json!(c.state.as_str())),
            ("started_at", json!(c.started_at.to_string())),
            ("due_at", json!(c.due_at.to_string())),
            ("rule", json!(p.rule.to_string())),
            ("citation", json!(p.citation)),
            ("provisional", json!(c.provisional)),
        ] {
            payload.insert(k.into(), v);
        }
        headers.push(("ce_clock".into(), c.clock_id.clone()));
        headers.push(("ce_sladue".into(), c.due_at.to_string()));
        headers.push((
            crate::kafka::wire::SLA_PROVISIONAL_HEADER.into(),
            c.provisional.to_string(),
        ));
    }
    let mail_body = mail::loop_body(cfg, &a);
    payload.extend(a.extra);
    let record = NewOutbox {
        topic: cfg.alerts_topic.to_string(),
        key: a.item_id.to_string(),
        ce_id: id.clone(),
        headers,
        payload: serde_json::to_vec(&serde_json::Value::Object(payload))
            .expect("JSON values always serialize"),
    };
    let mut recipients: Vec<String> = cfg
        .department(a.department)
        .map(|d| d.alert_emails.clone())
        .unwrap_or_default();
    recipients.extend(cfg.supervisors.iter().cloned());
    recipients.sort();
    recipients.dedup();
    let mail = (cfg.mail && !recipients.is_empty()).then(|| NewMail {
        recipients,
        subject: mail::loop_subject(a.kind, a.item_id),
        body: mail_body,
    });
    FiredAlert {
        id,
        item_id: a.item_id.to_string(),
        clock_id: a.clock.map(|(_, c)| c.clock_id.clone()).unwrap_or_default(),
        kind: a.kind.to_string(),
        department: a.department.to_string(),
        due_at: a.clock.map_or(a.at, |(_, c)| c.due_at),
        scheduled_at: a.at,
        fired_at: a.now,
        late: false,
        record,
        mail,
        provisional: a.clock.is_some_and(|(_, c)| c.provisional),
    }
}
