//! The status consumer: department systems report what they did (viewed, signed in,
//! accepted, replied, ...) on their status topic; each event stops, starts, pauses, resumes or
//! extends the item's SLA clocks.
//!
//! **Who may move a clock.** Each department reports on its own topic
//! (`departments[].status_topic`, default `<topic>.status`); Kafka ACLs let only that
//! department's system write there, so the topic is the producer's identity and every event on
//! it is that department's. An event moves clocks only of an item routed to that department
//! (lead or assist); an `actor.department` naming another department is rejected. The shared
//! `sla.status_topic` is accepted only for the departments listed in
//! `sla.shared_status_departments` (none by default), by `actor.department`. An event dated
//! more than `sla.status_max_future_skew_secs` ahead of now, or before the item arrived, is
//! rejected: such times would stop a clock before anything happened. [`authorise`] decides.
//!
//! At-least-once and idempotent: an event is applied in one store transaction keyed by its
//! `event_id` (a redelivered event changes nothing), and its offset is committed only after
//! that. Events that do not apply in a clock's state (a resume while running, anything after
//! a stop) change nothing, so out-of-order delivery is harmless. An event with a bad shape, an
//! unknown event name, an unknown item or one [`authorise`] refuses goes to the dead-letter
//! topic with its reason. Schema for department system builders:
//! `schema/status-event.v1.json`.
//!
//! **Failures never end the daemon.** A Kafka or store error is logged, counted
//! (`petitiond_status_consumer_failures_total`), reported once per outage on the alerts topic
//! (`status.consumer_failed`), and retried after a back-off (1 s doubling to 60 s): the record
//! in hand is retried in place (handled, dead-lettered, committed — in that order, before the
//! next one); a consumer that cannot be built or subscribed is built again.
//!
//! An event also queues, in its transaction, the status write-backs it causes for an item
//! whose upstream has a status API (`channels::http::writeback`): a due instant set or moved,
//! a completion.
//!
//! **The closed loop** (DOMAIN.md §6, [`closing`]). A `replied` event's text
//! (`payload.reply`) is checked ([`reply`]): a reply that fails is not applied to any clock
//! (what waits for the reply keeps running) and does not advance the item's stage; it is
//! recorded with verdict `bounced`, and in the event's transaction a bounce notice
//! (`cn.gov.petition.reply.bounced.v1`) goes to the department's topic and a `reply_bounced`
//! alert is raised. A passing reply is recorded `ok` and applied as any event. An `evaluated`
//! event records its `payload.satisfaction`; 不满意 raises a `revisit` alert and starts the
//! clocks that filter on that verdict (`[[sla.clocks]].verdicts`, the default `revisit`
//! clock). The reply's text is never logged, counted or forwarded.

use crate::kafka::client::{BrokerHealth, KafkaContext, create_producer, status_consumer_config};
use crate::kafka::wire::{DLQ_REASON, DLQ_TOPIC, TYPE_STATUS_CONSUMER_FAILED, ops_event};
use crate::metrics::{Metrics, StatusLabels};
use crate::sla::SlaInputs;
use crate::sla::config::{StatusSource, status_topics};
use crate::store::{ClockWrites, StatusOutcome, StatusRecord, Store, Timer, blocking};
use jiff::Timestamp;
use petitiond_core::envelope::Envelope;
use petitiond_core::sla::clock::{Change, Clock};
use petitiond_core::sla::policy::{EventKind, Trigger};
use petitiond_kafka::KafkaConfig;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use reply::{ReplyCheck, Satisfaction};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod config;
mod consumer;
pub use petitiond_core::reply;

pub use consumer::StatusConsumer;

/// A department status event, as department systems send it (JSON value of the record).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusEvent {
    /// Unique per event: the idempotence key.
    pub event_id: String,
    pub item_id: String,
    pub event: String,
    pub time: Timestamp,
    #[serde(default)]
    pub actor: Option<Actor>,
    #[serde(default)]
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub department: String,
    #[serde(default)]
    pub person: Option<String>,
}

/// Why an event was dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("bad shape: {0}")]
    Shape(String),
    #[error("unknown status event `{0}`")]
    UnknownEvent(String),
    #[error("unknown item `{0}`")]
    UnknownItem(String),
    #[error("item `{item}` is not routed to department `{department}` (the topic's department)")]
    NotRouted { item: String, department: String },
    #[error("actor.department `{actor}` is not `{department}`, whose status topic this is")]
    ActorMismatch { actor: String, department: String },
    #[error(
        "the shared status topic is not trusted for {}: report on the department's own status topic",
        .0.as_deref().map_or("an event without actor.department".to_string(), |d| format!("department `{d}`"))
    )]
    UntrustedTopic(Option<String>),
    #[error("event time {time} is more than {skew_secs} s in the future (now {now})")]
    FutureTime {
        time: Timestamp,
        now: Timestamp,
        skew_secs: u64,
    },
    #[error("event time {time} is before the item arrived ({received_at})")]
    BeforeArrival {
        time: Timestamp,
        received_at: Timestamp,
    },
}

impl Rejected {
    fn label(&self) -> &'static str {
        match self {
            Rejected::Shape(_) => "bad_shape",
            Rejected::UnknownEvent(_) => "unknown_event",
            Rejected::UnknownItem(_) => "unknown_item",
            Rejected::NotRouted { .. } => "not_routed",
            Rejected::ActorMismatch { .. } => "actor_mismatch",
            Rejected::UntrustedTopic(_) => "untrusted_topic",
            Rejected::FutureTime { .. } => "future_time",
            Rejected::BeforeArrival { .. } => "before_arrival",
        }
    }
}

/// May this event, read from a topic carrying `source`'s events, move the clocks of the item
/// `env`? Pure: the department whose event it is, or why not (see the module docs).
pub fn authorise(
    source: &StatusSource,
    shared_trusted: &[String],
    ev: &StatusEvent,
    env: &Envelope,
    now: Timestamp,
    max_future_skew: Duration,
) -> Result<String, Rejected> {
    let actor = ev.actor.as_ref().map(|a| a.department.clone());
    let department = match source {
        StatusSource::Department(d) => {
            if let Some(a) = actor
                && a != *d
            {
                return Err(Rejected::ActorMismatch {
                    actor: a,
                    department: d.clone(),
                });
            }
            d.clone()
        }
        StatusSource::Shared => match actor {
            Some(a) if shared_trusted.contains(&a) => a,
            other => return Err(Rejected::UntrustedTopic(other)),
        },
    };
    let routed = env
        .routing
        .as_ref()
        .is_some_and(|r| r.lead == department || r.assists.contains(&department));
    if !routed {
        return Err(Rejected::NotRouted {
            item: env.id.to_string(),
            department,
        });
    }
    let skew = jiff::SignedDuration::try_from(max_future_skew).unwrap_or(jiff::SignedDuration::MAX);
    if ev.time > now.saturating_add(skew).unwrap_or(Timestamp::MAX) {
        return Err(Rejected::FutureTime {
            time: ev.time,
            now,
            skew_secs: max_future_skew.as_secs(),
        });
    }
    if ev.time < env.received_at {
        return Err(Rejected::BeforeArrival {
            time: ev.time,
            received_at: env.received_at,
        });
    }
    Ok(department)
}

pub use petitiond_core::sla::policy::stage_after;

/// Parses a record value into an event and its kind.
pub fn parse(payload: &[u8]) -> Result<(StatusEvent, EventKind), Rejected> {
    let ev: StatusEvent =
        serde_json::from_slice(payload).map_err(|e| Rejected::Shape(e.to_string()))?;
    if ev.event_id.trim().is_empty() || ev.item_id.trim().is_empty() {
        return Err(Rejected::Shape(
            "event_id and item_id must not be empty".into(),
        ));
    }
    let kind =
        EventKind::parse(&ev.event).ok_or_else(|| Rejected::UnknownEvent(ev.event.clone()))?;
    Ok((ev, kind))
}

/// What the closed loop makes of an event's payload (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// Neither a checked reply nor an evaluation.
    Nothing,
    /// A `replied` event, checked.
    Reply(ReplyCheck),
    /// An `evaluated` event, with its `payload.satisfaction` if it carries one.
    Evaluation(Option<Satisfaction>),
}

impl Closing {
    /// The verdict recorded in `status_events.verdict`.
    pub fn verdict(&self) -> Option<&'static str> {
        match self {
            Closing::Nothing => None,
            Closing::Reply(c) => Some(c.verdict()),
            Closing::Evaluation(s) => s.map(Satisfaction::as_str),
        }
    }

    /// A reply that failed the check: not applied to the clocks.
    pub fn bounced(&self) -> bool {
        matches!(self, Closing::Reply(c) if !c.passed())
    }
}

/// What the status consumer reads from the config: the SLA inputs (clocks, departments,
/// write-backs, alerts; their `sla` section also names the shared status topic, its departments,
/// the consumer group and the future-skew bound), the reply check and the Kafka client settings.
/// Built once, by [`StatusInputs::from_config`].
#[derive(Debug, Clone)]
pub struct StatusInputs {
    pub clocks: SlaInputs,
    pub replies: petitiond_core::reply::ReplyChecker,
    pub kafka: KafkaConfig,
}

impl StatusInputs {
    /// The topics status events are read from ([`status_topics`]).
    pub fn status_topics(&self) -> Vec<(String, StatusSource)> {
        status_topics(&self.clocks.departments, &self.clocks.sla)
    }
}

/// Reads an event's reply text or evaluation (pure). A `payload.reply` that is not a string,
/// or a `payload.satisfaction` that is not one of the evaluation words, is a bad shape. With
/// `[replies] enabled = false`, replies are not checked.
pub fn closing(
    replies: &petitiond_core::reply::ReplyChecker,
    kind: EventKind,
    payload: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Closing, Rejected> {
    let field = |name: &str| -> Result<Option<&str>, Rejected> {
        match payload.and_then(|p| p.get(name)) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Rejected::Shape(format!("payload.{name} must be a string"))),
        }
    };
    match kind {
        EventKind::Replied if replies.enabled => {
            Ok(Closing::Reply(replies.check(field("reply")?)))
        }
        EventKind::Evaluated => match field("satisfaction")? {
            None => Ok(Closing::Evaluation(None)),
            Some(s) => Satisfaction::parse(s)
                .map(|s| Closing::Evaluation(Some(s)))
                .ok_or_else(|| {
                    Rejected::Shape(
                        "payload.satisfaction must be one of 满意, 基本满意, 不满意 (satisfied, basically_satisfied, dissatisfied)".into(),
                    )
                }),
        },
        _ => Ok(Closing::Nothing),
    }
}

/// Everything one event causes in its transaction (pure): for a bounced reply only the bounce
/// notice and its alert (no clock stops; only clocks with `verdicts = ["bounced"]` start),
/// otherwise [`clock_writes`] and, for a dissatisfied
/// evaluation, the revisit alert. `department` is the event's (the reporting department).
#[allow(clippy::too_many_arguments)]
pub fn event_writes(
    config: &SlaInputs,
    metrics: &Metrics,
    envelope: &Envelope,
    clocks: &mut [Clock],
    kind: EventKind,
    event_id: &str,
    department: &str,
    closing: &Closing,
    at: Timestamp,
    now: Timestamp,
    extend_days: Option<u32>,
) -> ClockWrites {
    let event = LoopEvent {
        kind,
        id: event_id,
        department,
        at,
        now,
    };
    if let Closing::Reply(check) = closing
        && !check.passed()
    {
        return bounced_reply_writes(config, metrics, envelope, clocks, &event, check);
    }
    let mut writes = clock_writes(
        config,
        metrics,
        envelope,
        clocks,
        kind,
        closing.verdict(),
        at,
        extend_days,
    );
    if let Closing::Evaluation(Some(Satisfaction::Dissatisfied)) = closing {
        let alert = revisit_alert(config, envelope, &writes, &event);
        writes.alerts.push(alert);
    }
    writes
}

/// The event as a closed-loop alert names it. `department` is the reporting one.
struct LoopEvent<'a> {
    kind: EventKind,
    id: &'a str,
    department: &'a str,
    at: Timestamp,
    now: Timestamp,
}

/// A bounced reply's writes: no clock stops (what the reply would have stopped keeps
/// running), only clocks that ask for bounced replies start; the bounce notice to the
/// department and the `reply_bounced` alert.
fn bounced_reply_writes(
    config: &SlaInputs,
    metrics: &Metrics,
    envelope: &Envelope,
    clocks: &[Clock],
    event: &LoopEvent<'_>,
    check: &ReplyCheck,
) -> ClockWrites {
    use crate::alerts::{KIND_REPLY_BOUNCED, LoopAlert, build_loop};
    let waiting = waiting_for(config, clocks, event.kind);
    let mut writes = ClockWrites::default();
    let Some(dept) = config.department(event.department) else {
        return writes;
    };
    writes.started = started_by_bounce(config, metrics, envelope, clocks, event, check);
    let running: Vec<&Clock> = waiting.iter().map(|(_, c)| *c).collect();
    writes.outbox.push(crate::kafka::wire::reply_bounced_record(
        envelope, dept, event.id, check, &running, event.at,
    ));
    writes.alerts.push(build_loop(
        &config.alerts(),
        LoopAlert {
            item_id: envelope.id.as_str(),
            department: event.department,
            kind: KIND_REPLY_BOUNCED,
            event_id: event.id,
            at: event.at,
            now: event.now,
            clock: waiting.first().copied(),
            extra: bounce_alert_extra(check),
        },
    ));
    writes
}

/// The open clocks (running, paused or pending) an event of `kind` would stop, with their
/// policies.
fn waiting_for<'c>(
    config: &'c SlaInputs,
    clocks: &'c [Clock],
    kind: EventKind,
) -> Vec<(&'c petitiond_core::sla::policy::ClockPolicy, &'c Clock)> {
    use petitiond_core::sla::clock::State;
    clocks
        .iter()
        .filter(|c| matches!(c.state, State::Running | State::Paused | State::Pending))
        .filter_map(|c| Some((config.sla.clock(&c.clock_id)?, c)))
        .filter(|(p, _)| p.stop_on.contains(&kind))
        .collect()
}

/// The clocks a bounced reply starts: only one that asks for bounced replies by name
/// (`verdicts = ["bounced"]`, e.g. a deadline for the corrected reply) and is not on the item
/// yet — a bounced reply is not a reply otherwise.
fn started_by_bounce(
    config: &SlaInputs,
    metrics: &Metrics,
    envelope: &Envelope,
    clocks: &[Clock],
    event: &LoopEvent<'_>,
    check: &ReplyCheck,
) -> Vec<(Clock, Option<Timestamp>)> {
    let mut env = envelope.clone();
    crate::intake::start_clocks(
        &config.sla,
        metrics,
        &mut env,
        &Trigger::Event(event.kind),
        Some(check.verdict()),
        event.at,
    )
    .into_iter()
    .filter(|(clock, _)| {
        let asked = config
            .sla
            .clock(&clock.clock_id)
            .is_some_and(|p| p.verdicts.iter().any(|v| v == check.verdict()));
        asked && !clocks.iter().any(|c| c.clock_id == clock.clock_id)
    })
    .collect()
}

/// The `reply_bounced` alert's own fields: what the reply lacked (element names, in English
/// and Chinese), the banned phrases found, whether it had no text. Never the reply's text.
fn bounce_alert_extra(check: &ReplyCheck) -> serde_json::Map<String, serde_json::Value> {
    let mut extra = serde_json::Map::new();
    extra.insert(
        "missing".into(),
        serde_json::json!(check.missing.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
    );
    extra.insert(
        "missing_zh".into(),
        serde_json::json!(check.missing.iter().map(|m| m.zh()).collect::<Vec<_>>()),
    );
    extra.insert("banned".into(), serde_json::json!(check.banned));
    extra.insert("no_text".into(), serde_json::json!(check.no_text));
    extra
}

/// The `revisit` alert of a dissatisfied evaluation, to the responsible (lead) department,
/// whose revisit it is; it names the clock the evaluation started (one filtering on the
/// verdict first).
fn revisit_alert(
    config: &SlaInputs,
    envelope: &Envelope,
    writes: &ClockWrites,
    event: &LoopEvent<'_>,
) -> crate::store::FiredAlert {
    use crate::alerts::{KIND_REVISIT, LoopAlert, build_loop};
    let lead = envelope
        .routing
        .as_ref()
        .map_or(event.department, |r| r.lead.as_str());
    let started = writes
        .started
        .iter()
        .filter_map(|(c, _)| Some((config.sla.clock(&c.clock_id)?, c)))
        .find(|(p, _)| !p.verdicts.is_empty())
        .or_else(|| {
            writes
                .started
                .iter()
                .find_map(|(c, _)| Some((config.sla.clock(&c.clock_id)?, c)))
        });
    let mut extra = serde_json::Map::new();
    extra.insert(
        "verdict".into(),
        serde_json::json!(Satisfaction::Dissatisfied.as_str()),
    );
    build_loop(
        &config.alerts(),
        LoopAlert {
            item_id: envelope.id.as_str(),
            department: lead,
            kind: KIND_REVISIT,
            event_id: event.id,
            at: event.at,
            now: event.now,
            clock: started,
            extra,
        },
    )
}

/// The clock changes one event causes (pure; called inside the store's transaction).
/// `verdict`: the event's (a reply's check, an evaluation), for clocks that filter on it.
#[allow(clippy::too_many_arguments)]
pub fn clock_writes(
    config: &SlaInputs,
    metrics: &Metrics,
    envelope: &petitiond_core::envelope::Envelope,
    clocks: &mut [Clock],
    kind: EventKind,
    verdict: Option<&str>,
    at: Timestamp,
    extend_days: Option<u32>,
) -> ClockWrites {
    let cal = &config.sla.calendar;
    let mut writes = ClockWrites::default();
    let dues_before: Vec<Timestamp> = clocks.iter().map(|c| c.due_at).collect();
    for (i, clock) in clocks.iter_mut().enumerate() {
        let Some(policy) = config.sla.clock(&clock.clock_id) else {
            continue;
        };
        let result = clock
            .apply(policy, kind, at, extend_days, cal)
            .and_then(|change| Ok((change, clock.next_alert(policy, cal)?)));
        match result {
            Ok((Change::Unchanged, _)) => {}
            Ok((change, next)) => {
                tracing::info!(item = %clock.item_id, clock = %clock.clock_id, event = %kind, ?change, due_at = %clock.due_at, "clock changed");
                writes.updated.push((i, next.map(|(_, t)| t)));
            }
            Err(e) => {
                metrics.clock_error(&clock.clock_id);
                tracing::error!(item = %clock.item_id, clock = %clock.clock_id, error = %e, "cannot apply status event to clock");
            }
        }
    }
    let mut env = envelope.clone();
    for (clock, next) in crate::intake::start_clocks(
        &config.sla,
        metrics,
        &mut env,
        &Trigger::Event(kind),
        verdict,
        at,
    ) {
        if !clocks.iter().any(|c| c.clock_id == clock.clock_id) {
            writes.started.push((clock, next));
        }
    }
    // Status write-back (sources with one): a due instant set or moved, a completion.
    let moved: Vec<&Clock> = writes
        .updated
        .iter()
        .map(|(i, _)| *i)
        .filter(|i| clocks[*i].due_at != dues_before[*i])
        .map(|i| &clocks[i])
        .chain(writes.started.iter().map(|(c, _)| c))
        .collect();
    let (sources, tz) = (&config.http_sources, config.tz());
    let mut writeback = crate::channels::http::writeback::dues(sources, tz, envelope, &moved, at);
    writeback.extend(crate::channels::http::writeback::completed(
        sources, tz, envelope, kind, at,
    ));
    writes.writeback = writeback;
    writes
}

#[cfg(test)]
mod tests;
