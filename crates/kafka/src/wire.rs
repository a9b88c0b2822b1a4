//! The Kafka wire form: CloudEvents 1.0, Kafka protocol binding, binary content mode.
//!
//! The record value is the envelope's JSON (schema `schema/envelope.v1.json`), the record key
//! is the item id (per-item ordering), and the CloudEvents attributes travel as `ce_*`
//! headers. The JSON is written here field by field from the domain type, on purpose: the
//! wire is a published, versioned contract and must not change when a domain struct does.

use petitiond_core::envelope::{Attachment, Envelope};
use petitiond_core::routing::Department;
use petitiond_store::NewOutbox;
use serde_json::{Value, json};

pub const SPEC_VERSION: &str = "1.0";
pub const TYPE_ROUTED: &str = "cn.gov.petition.item.routed.v1";
/// An upstream change to an item already routed: the new envelope, to the same departments.
pub const TYPE_UPDATED: &str = "cn.gov.petition.item.updated.v1";
pub const DATASCHEMA_V1: &str = "urn:petitiond:schema:envelope:v1";
pub const CONTENT_TYPE: &str = "application/json";
/// Header naming why a record went to the dead-letter topic.
pub const DLQ_REASON: &str = "petitiond_dlq_reason";
pub const DLQ_TOPIC: &str = "petitiond_dlq_topic";
/// Header beside `ce_sladue`: `true` when that due instant rests on a provisional calendar
/// year (no official file yet; see `sla::provisional`), `false` otherwise.
pub const SLA_PROVISIONAL_HEADER: &str = "ce_slaprov";
/// A clock's due instant announced again (schema `schema/due-update.v1.json`), on the alerts
/// topic: a pending clock got one, or a calendar change moved it.
pub const TYPE_DUE_UPDATED: &str = "cn.gov.petition.sla.due_updated.v1";
pub const DATASCHEMA_DUE_UPDATE_V1: &str = "urn:petitiond:schema:due-update:v1";
/// An upstream update supplied what an incomplete item lacked: `needs_supplement` cleared,
/// its supplement clock stopped (schema `schema/item-supplemented.v1.json`), to the item's
/// departments, after the `item.updated.v1` record with the new envelope.
pub const TYPE_SUPPLEMENTED: &str = "cn.gov.petition.item.supplemented.v1";
pub const DATASCHEMA_SUPPLEMENTED_V1: &str = "urn:petitiond:schema:item-supplemented:v1";

/// A department's reply failed the quality check (schema `schema/reply-bounced.v1.json`), to
/// the department that sent it: which elements are missing, which vague phrases were found.
pub const TYPE_REPLY_BOUNCED: &str = "cn.gov.petition.reply.bounced.v1";
pub const DATASCHEMA_REPLY_BOUNCED_V1: &str = "urn:petitiond:schema:reply-bounced:v1";

/// The relay could not check a topic for in-flight records: nothing goes to it until it can.
pub const TYPE_RECOVERY_FAILED: &str = "cn.gov.petition.relay.recovery_failed.v1";
/// The status consumer failed and is retrying (status events wait on their topic meanwhile).
pub const TYPE_STATUS_CONSUMER_FAILED: &str = "cn.gov.petition.status.consumer_failed.v1";

/// An operational event for the alerts topic (no item): `kind` and `error` in the payload,
/// with `at` and any `extra` fields. Its text comes from Kafka or the store, never from an
/// item, so it carries no personal data.
pub fn ops_event(
    topic: &str,
    ce_type: &str,
    source: &str,
    subject: &str,
    kind: &str,
    error: &str,
    extra: serde_json::Map<String, Value>,
) -> NewOutbox {
    let id = uuid::Uuid::new_v4().to_string();
    let now = jiff::Timestamp::now();
    let mut payload = serde_json::Map::new();
    payload.insert("version".into(), json!(1));
    payload.insert("kind".into(), json!(kind));
    payload.insert("error".into(), json!(error));
    payload.insert("at".into(), json!(now.to_string()));
    payload.extend(extra);
    NewOutbox {
        topic: topic.to_string(),
        key: subject.to_string(),
        ce_id: id.clone(),
        headers: vec![
            ("ce_specversion".into(), SPEC_VERSION.into()),
            ("ce_id".into(), id),
            ("ce_source".into(), source.into()),
            ("ce_type".into(), ce_type.into()),
            ("ce_time".into(), now.to_string()),
            ("ce_subject".into(), subject.into()),
            ("content-type".into(), CONTENT_TYPE.into()),
        ],
        payload: serde_json::to_vec(&Value::Object(payload)).unwrap_or_default(),
    }
}

/// Which part a receiving department plays for this item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// 主办: responsible for the answer.
    Lead,
    /// 协办: assists the lead.
    Assist,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Lead => "lead",
            Role::Assist => "assist",
        }
    }
}

/// A CloudEvents id unique per (item, event, department): the same item routed to two
/// departments is two records with two ids; a re-send of one record keeps its id, which is
/// what consumers and the relay's recovery use to recognise it.
pub fn event_id(item_id: &str, event: &str, department: &str) -> String {
    let ns = uuid::Uuid::NAMESPACE_URL;
    uuid::Uuid::new_v5(
        &ns,
        format!("petitiond:{item_id}:{event}:{department}").as_bytes(),
    )
    .to_string()
}

/// The record that tells `dept` about a routed item.
pub fn routed_record(e: &Envelope, dept: &Department, role: Role) -> NewOutbox {
    let time = e
        .routing
        .as_ref()
        .map(|r| r.decided_at)
        .unwrap_or(e.received_at);
    item_record(e, dept, role, TYPE_ROUTED, "routed", time)
}

/// The record that tells `dept` an item changed upstream. One id per (item, version,
/// department), so a re-poll of the same version is recognised.
pub fn updated_record(
    e: &Envelope,
    dept: &Department,
    role: Role,
    version: &str,
    at: jiff::Timestamp,
) -> NewOutbox {
    item_record(
        e,
        dept,
        role,
        TYPE_UPDATED,
        &format!("updated:{version}"),
        at,
    )
}

/// The CloudEvents headers every record about an item to a department carries.
fn item_headers(
    e: &Envelope,
    dept: &Department,
    role: Role,
    ce_type: &str,
    ce_id: &str,
    time: jiff::Timestamp,
    dataschema: &str,
) -> Vec<(String, String)> {
    vec![
        ("ce_specversion".to_string(), SPEC_VERSION.to_string()),
        ("ce_id".into(), ce_id.to_string()),
        (
            "ce_source".into(),
            format!("urn:petitiond:{}:{}", e.channel, e.upstream.source),
        ),
        ("ce_type".into(), ce_type.into()),
        ("ce_time".into(), time.to_string()),
        ("ce_subject".into(), e.id.to_string()),
        ("ce_dataschema".into(), dataschema.into()),
        ("ce_channel".into(), e.channel.as_str().into()),
        ("ce_department".into(), dept.id.clone()),
        ("ce_role".into(), role.as_str().into()),
        ("content-type".into(), CONTENT_TYPE.into()),
    ]
}

/// The record that tells `dept` an upstream update supplied what the item lacked (`supplied`:
/// the checks that failed before, `missing:<what>` names): the `needs_supplement` flag is
/// cleared and `stopped` (the supplement clocks as they were) are stopped at `at`. No
/// petitioner data: the new envelope travels in the `item.updated.v1` record before it. One id
/// per (item, version, department).
#[allow(clippy::too_many_arguments)]
pub fn supplemented_record(
    e: &Envelope,
    dept: &Department,
    role: Role,
    version: &str,
    supplied: &[String],
    stopped: &[petitiond_core::sla::clock::Clock],
    at: jiff::Timestamp,
) -> NewOutbox {
    let ce_id = event_id(e.id.as_str(), &format!("supplemented:{version}"), &dept.id);
    let suggested = e
        .flags
        .iter()
        .find_map(|f| f.strip_prefix("suggested_lead:"));
    let payload = json!({
        "version": 1,
        "item_id": e.id.as_str(),
        "channel": e.channel.as_str(),
        "upstream": {
            "id": e.upstream.id,
            "source": e.upstream.source,
            "version": version,
            "updated_at": e.upstream.updated_at.map(|t| t.to_string()),
        },
        "supplemented_at": at.to_string(),
        "supplied": supplied,
        "lead": e.routing.as_ref().map(|r| r.lead.as_str()),
        "suggested_lead": suggested,
        "clocks_stopped": stopped.iter().map(clock_v1).collect::<Vec<_>>(),
    });
    NewOutbox {
        topic: dept.topic.clone(),
        key: e.id.to_string(),
        headers: item_headers(
            e,
            dept,
            role,
            TYPE_SUPPLEMENTED,
            &ce_id,
            at,
            DATASCHEMA_SUPPLEMENTED_V1,
        ),
        ce_id,
        payload: serde_json::to_vec(&payload).expect("JSON values always serialize"),
    }
}

fn item_record(
    e: &Envelope,
    dept: &Department,
    role: Role,
    ce_type: &str,
    event: &str,
    time: jiff::Timestamp,
) -> NewOutbox {
    let ce_id = event_id(e.id.as_str(), event, &dept.id);
    let mut headers = item_headers(e, dept, role, ce_type, &ce_id, time, DATASCHEMA_V1);
    if let Some(c) = e.category {
        headers.push(("ce_category".into(), c.as_str().into()));
    }
    if let Some(due) = e.next_due() {
        headers.push(("ce_sladue".into(), due.to_string()));
        headers.push((
            SLA_PROVISIONAL_HEADER.into(),
            e.next_due_provisional().unwrap_or(false).to_string(),
        ));
    }
    if let Some(a) = e.attachments.first() {
        headers.push(("ce_dataref".into(), a.dataref.clone()));
    }
    NewOutbox {
        topic: dept.topic.clone(),
        key: e.id.to_string(),
        ce_id,
        headers,
        payload: serde_json::to_vec(&envelope_v1(e)).expect("JSON values always serialize"),
    }
}

/// A clock as the supplemented and reply-bounced records list it.
fn clock_v1(c: &petitiond_core::sla::clock::Clock) -> Value {
    json!({
        "clock": c.clock_id,
        "department": c.department,
        "state": c.state.as_str(),
        "started_at": c.started_at.to_string(),
        "due_at": c.due_at.to_string(),
        "provisional": c.provisional,
    })
}

fn opt<T: serde::Serialize>(v: &Option<T>) -> Value {
    v.as_ref().map_or(Value::Null, |x| json!(x))
}

fn attachment_v1(a: &Attachment) -> Value {
    json!({
        "name": a.name.as_ref().map(|n| n.expose()),
        "media_type": a.media_type,
        "size": a.size,
        "sha256": a.sha256,
        "dataref": a.dataref,
    })
}

/// Envelope v1 as JSON, field by field. Optional fields are `null` when absent, so consumers
/// see every key.
pub fn envelope_v1(e: &Envelope) -> Value {
    let p = &e.petitioner;
    let personal =
        |v: &Option<petitiond_core::envelope::Personal>| v.as_ref().map(|x| x.expose().to_string());
    json!({
        "version": 1,
        "id": e.id.as_str(),
        "channel": e.channel.as_str(),
        "upstream": {
            "id": e.upstream.id,
            "url": e.upstream.url,
            "source": e.upstream.source,
            "raw_ref": e.upstream.raw_ref,
            "updated_at": e.upstream.updated_at.map(|t| t.to_string()),
            "status": e.upstream.status,
            "service_code": e.upstream.service_code,
            "region": e.upstream.region,
            "reference": e.upstream.reference,
            "sender": personal(&e.upstream.sender),
        },
        "received_at": e.received_at.to_string(),
        "upstream_created_at": e.upstream_created_at.map(|t| t.to_string()),
        "petitioner": {
            "name": personal(&p.name),
            "id_number": personal(&p.id_number),
            "phone": personal(&p.phone),
            "address": personal(&p.address),
        },
        "request": {
            "title": personal(&e.request.title),
            "content": e.request.content.expose(),
        },
        "involved_departments": e.involved_departments,
        "attachments": e.attachments.iter().map(attachment_v1).collect::<Vec<_>>(),
        "category": e.category.map(|c| c.as_str()),
        "routing": e.routing.as_ref().map(|r| {
            let mut v = json!({
                "lead": r.lead,
                "assists": r.assists,
                "rule_id": r.rule_id,
                "rules_version": r.rules_version,
                "decided_at": r.decided_at.to_string(),
            });
            // Optional (added after v1 shipped): how the category was decided.
            if let Some(c) = &r.classification {
                v["classification"] = json!(c);
            }
            v
        }),
        "sla": e.sla.iter().map(|c| json!({
            "clock": c.clock,
            "due_at": c.due_at.to_string(),
            "state": c.state,
            "provisional": c.provisional,
        })).collect::<Vec<_>>(),
        "stage": opt(&Some(e.stage)),
        "related": e.related.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "flags": e.flags,
    })
}

/// Why a clock's due instant is announced again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueUpdateReason {
    /// The clock was `pending` (no calendar for a year it needed) and now has a due instant.
    PendingComputed,
    /// A calendar file was installed (or changed) and the due instant moved.
    CalendarChanged,
}

impl DueUpdateReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DueUpdateReason::PendingComputed => "pending_computed",
            DueUpdateReason::CalendarChanged => "calendar_changed",
        }
    }
}

/// The due-update record for a clock recomputed at `at`: `was` as it stood (pending, or with
/// its old due instant), `now` with the new one; on `topic` (the alerts topic), key = item
/// id. `provisional_year`: the first year without an official calendar the new due instant
/// rests on. Its `ce_id` is a UUID v5 of (item, clock, previous due or `pending`, new due,
/// `at`): the record commits in the clock's own transaction, so a crash before the commit
/// sends nothing and a crash after it finds the clock already updated.
pub fn due_update_record(
    topic: &str,
    was: &petitiond_core::sla::clock::Clock,
    now: &petitiond_core::sla::clock::Clock,
    provisional_year: Option<i16>,
    reason: DueUpdateReason,
    at: jiff::Timestamp,
) -> NewOutbox {
    use petitiond_core::sla::clock::State;
    let pending = was.state == State::Pending;
    let previous = if pending {
        "pending".to_string()
    } else {
        was.due_at.as_millisecond().to_string()
    };
    let ce_id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!(
            "petitiond:due-update:{}:{}:{previous}:{}:{}",
            now.item_id,
            now.clock_id,
            now.due_at.as_millisecond(),
            at.as_millisecond()
        )
        .as_bytes(),
    )
    .to_string();
    let payload = json!({
        "version": 1,
        "update_id": ce_id,
        "item_id": now.item_id,
        "clock": now.clock_id,
        "department": now.department,
        "state": now.state.as_str(),
        "reason": reason.as_str(),
        "started_at": now.started_at.to_string(),
        "previous_state": was.state.as_str(),
        "previous_due_at": (!pending).then(|| was.due_at.to_string()),
        "previous_provisional": was.provisional,
        "due_at": now.due_at.to_string(),
        "provisional": now.provisional,
        "provisional_year": provisional_year,
        "updated_at": at.to_string(),
    });
    let headers = vec![
        ("ce_specversion".to_string(), SPEC_VERSION.to_string()),
        ("ce_id".into(), ce_id.clone()),
        ("ce_source".into(), "urn:petitiond:sla".into()),
        ("ce_type".into(), TYPE_DUE_UPDATED.into()),
        ("ce_time".into(), at.to_string()),
        ("ce_subject".into(), now.item_id.clone()),
        ("ce_dataschema".into(), DATASCHEMA_DUE_UPDATE_V1.into()),
        ("ce_clock".into(), now.clock_id.clone()),
        ("ce_department".into(), now.department.clone()),
        ("ce_sladue".into(), now.due_at.to_string()),
        (SLA_PROVISIONAL_HEADER.into(), now.provisional.to_string()),
        ("content-type".into(), CONTENT_TYPE.into()),
    ];
    NewOutbox {
        topic: topic.to_string(),
        key: now.item_id.clone(),
        ce_id,
        headers,
        payload: serde_json::to_vec(&payload).expect("JSON values always serialize"),
    }
}

/// The bounce notice for a reply that failed the check: to `dept` (the department whose
/// `replied` event it was), naming the missing elements and the banned phrases found, and the
/// clocks left running. Never the reply's text. One id per status event.
pub fn reply_bounced_record(
    e: &Envelope,
    dept: &Department,
    event_id: &str,
    check: &petitiond_core::reply::ReplyCheck,
    running: &[&petitiond_core::sla::clock::Clock],
    replied_at: jiff::Timestamp,
) -> NewOutbox {
    let ce_id = self::event_id(
        e.id.as_str(),
        &format!("reply_bounced:{event_id}"),
        &dept.id,
    );
    let role = match e.routing.as_ref() {
        Some(r) if r.lead != dept.id => Role::Assist,
        _ => Role::Lead,
    };
    let payload = json!({
        "version": 1,
        "item_id": e.id.as_str(),
        "event_id": event_id,
        "department": dept.id,
        "replied_at": replied_at.to_string(),
        "no_text": check.no_text,
        "missing": check.missing.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "missing_zh": check.missing.iter().map(|m| m.zh()).collect::<Vec<_>>(),
        "banned": check.banned,
        "clocks_running": running.iter().map(|c| clock_v1(c)).collect::<Vec<_>>(),
    });
    NewOutbox {
        topic: dept.topic.clone(),
        key: e.id.to_string(),
        headers: item_headers(
            e,
            dept,
            role,
            TYPE_REPLY_BOUNCED,
            &ce_id,
            replied_at,
            DATASCHEMA_REPLY_BOUNCED_V1,
        ),
        ce_id,
        payload: serde_json::to_vec(&payload).expect("JSON values always serialize"),
    }
}
