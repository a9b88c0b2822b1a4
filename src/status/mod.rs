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

use crate::config::{Config, StatusSource};
use crate::envelope::Envelope;
use crate::kafka::client::{BrokerHealth, KafkaContext, create_producer, status_consumer_config};
use crate::kafka::wire::{DLQ_REASON, DLQ_TOPIC, TYPE_STATUS_CONSUMER_FAILED, ops_event};
use crate::metrics::{Metrics, StatusLabels};
use crate::sla::clock::{Change, Clock};
use crate::sla::policy::{EventKind, Trigger};
use crate::store::{ClockWrites, StatusOutcome, StatusRecord, Store, Timer, blocking};
use jiff::Timestamp;
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

pub use petitiond_core::reply;

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

/// The closed-loop stage (DOMAIN.md §6) an event moves its item to, if any: the office has
/// taken it in (受理: viewed, marked, signed in, registered), a department handles it (办理:
/// accepted, extended, paused, resumed), replied (反馈), evaluated (评价); a refusal closes
/// it. The stored stage only advances.
pub fn stage_after(kind: EventKind) -> Option<crate::envelope::Stage> {
    use crate::envelope::Stage;
    Some(match kind {
        EventKind::Viewed
        | EventKind::StatusMarked
        | EventKind::SignedIn
        | EventKind::Registered => Stage::Accepted,
        EventKind::Accepted | EventKind::Extended | EventKind::Paused | EventKind::Resumed => {
            Stage::Handling
        }
        EventKind::Replied => Stage::Replied,
        EventKind::Evaluated => Stage::Evaluated,
        EventKind::Rejected => Stage::Closed,
    })
}

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

/// Reads an event's reply text or evaluation (pure). A `payload.reply` that is not a string,
/// or a `payload.satisfaction` that is not one of the evaluation words, is a bad shape. With
/// `[replies] enabled = false`, replies are not checked.
pub fn closing(
    config: &Config,
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
        EventKind::Replied if config.replies.enabled => {
            Ok(Closing::Reply(config.replies.check(field("reply")?)))
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
    config: &Config,
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
    use crate::alerts::{KIND_REPLY_BOUNCED, KIND_REVISIT, LoopAlert, build_loop};
    if let Closing::Reply(check) = closing
        && !check.passed()
    {
        // What the reply would have stopped keeps running.
        let waiting: Vec<(&crate::sla::policy::ClockPolicy, &Clock)> = clocks
            .iter()
            .filter(|c| {
                matches!(
                    c.state,
                    crate::sla::clock::State::Running
                        | crate::sla::clock::State::Paused
                        | crate::sla::clock::State::Pending
                )
            })
            .filter_map(|c| Some((config.sla.clock(&c.clock_id)?, c)))
            .filter(|(p, _)| p.stop_on.contains(&kind))
            .collect();
        let mut writes = ClockWrites::default();
        let Some(dept) = config.department(department) else {
            return writes;
        };
        let running: Vec<&Clock> = waiting.iter().map(|(_, c)| *c).collect();
        // Only a clock that asks for bounced replies by name (`verdicts = ["bounced"]`, e.g. a
        // deadline for the corrected reply) starts on one: it is not a reply otherwise.
        let mut env = envelope.clone();
        for (clock, next) in crate::intake::start_clocks(
            config,
            metrics,
            &mut env,
            &Trigger::Event(kind),
            Some(check.verdict()),
            at,
        ) {
            let asked = config
                .sla
                .clock(&clock.clock_id)
                .is_some_and(|p| p.verdicts.iter().any(|v| v == check.verdict()));
            if asked && !clocks.iter().any(|c| c.clock_id == clock.clock_id) {
                writes.started.push((clock, next));
            }
        }
        writes.outbox.push(crate::kafka::wire::reply_bounced_record(
            envelope, dept, event_id, check, &running, at,
        ));
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
        writes.alerts.push(build_loop(
            config,
            LoopAlert {
                item_id: envelope.id.as_str(),
                department,
                kind: KIND_REPLY_BOUNCED,
                event_id,
                at,
                now,
                clock: waiting.first().copied(),
                extra,
            },
        ));
        return writes;
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
        // To the responsible (lead) department, whose revisit it is.
        let lead = envelope
            .routing
            .as_ref()
            .map_or(department, |r| r.lead.as_str());
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
        let alert = build_loop(
            config,
            LoopAlert {
                item_id: envelope.id.as_str(),
                department: lead,
                kind: KIND_REVISIT,
                event_id,
                at,
                now,
                clock: started,
                extra,
            },
        );
        writes.alerts.push(alert);
    }
    writes
}

/// The clock changes one event causes (pure; called inside the store's transaction).
/// `verdict`: the event's (a reply's check, an evaluation), for clocks that filter on it.
#[allow(clippy::too_many_arguments)]
pub fn clock_writes(
    config: &Config,
    metrics: &Metrics,
    envelope: &crate::envelope::Envelope,
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
                metrics
                    .clock_errors
                    .get_or_create(&crate::metrics::ClockLabel {
                        clock: clock.clock_id.clone(),
                    })
                    .inc();
                tracing::error!(item = %clock.item_id, clock = %clock.clock_id, error = %e, "cannot apply status event to clock");
            }
        }
    }
    let mut env = envelope.clone();
    for (clock, next) in crate::intake::start_clocks(
        config,
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
    let mut writeback = crate::channels::http::writeback::dues(config, envelope, &moved, at);
    writeback.extend(crate::channels::http::writeback::completed(
        config, envelope, kind, at,
    ));
    writes.writeback = writeback;
    writes
}

pub struct StatusConsumer {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub health: Arc<BrokerHealth>,
    pub timers: mpsc::UnboundedSender<Vec<Timer>>,
    /// Set by the relay once topics are verified: subscribing to a topic that does not exist
    /// yet would leave the consumer waiting for a metadata refresh.
    pub topics_ready: Arc<std::sync::atomic::AtomicBool>,
}

/// Back-off between consumer sessions after a failure.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Failure state across sessions: the back-off, and whether this outage was reported.
struct Outage {
    backoff: Duration,
    reported: bool,
}

impl StatusConsumer {
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        while !self.topics_ready.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.cancelled() => return Ok(()),
            }
        }
        let mut outage = Outage {
            backoff: RETRY_MIN,
            reported: false,
        };
        loop {
            match self.session(&stop, &mut outage).await {
                Ok(()) => break,
                // The consumer or the dead-letter producer could not be built or subscribed.
                Err(e) => {
                    if !self.wait_after(&e, &mut outage, &stop).await {
                        break;
                    }
                }
            }
        }
        tracing::info!("status consumer stopped");
        Ok(())
    }

    /// Counts and logs a failure; the first of an outage also goes to the alerts topic.
    async fn failed(&self, e: &anyhow::Error, outage: &mut Outage) {
        self.metrics.status_consumer_failures.inc();
        tracing::error!(
            error = format!("{e:#}"),
            retry_in_secs = outage.backoff.as_secs(),
            "status consumer failed; retrying (status events wait on their topics)"
        );
        if outage.reported {
            return;
        }
        let mut extra = serde_json::Map::new();
        extra.insert(
            "retry_in_secs".into(),
            serde_json::json!(outage.backoff.as_secs()),
        );
        let record = ops_event(
            &self.config.sla.alerts_topic,
            TYPE_STATUS_CONSUMER_FAILED,
            "urn:petitiond:status",
            &self.config.sla.consumer_group,
            "status_consumer_failed",
            &format!("{e:#}"),
            extra,
        );
        match blocking(&self.store, move |s| s.enqueue("status-consumer", &record)).await {
            Ok(()) => outage.reported = true,
            Err(e) => tracing::error!(error = %e, "cannot record the status consumer alert"),
        }
    }

    /// One consumer and dead-letter producer, until `stop` (Ok) or a failure to build them
    /// (Err). Failures while consuming are retried inside.
    async fn session(&self, stop: &CancellationToken, outage: &mut Outage) -> anyhow::Result<()> {
        let ctx = KafkaContext {
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        };
        let consumer: StreamConsumer<KafkaContext> =
            status_consumer_config(&self.config.kafka, &self.config.sla.consumer_group)
                .create_with_context(ctx.clone())?;
        let sources: HashMap<String, StatusSource> =
            self.config.status_topics().into_iter().collect();
        let topics: Vec<&str> = sources.keys().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let dlq = create_producer(&self.config.kafka, ctx)?;
        tracing::info!(topics = ?topics, group = %self.config.sla.consumer_group, "status consumer subscribed");
        loop {
            let m = tokio::select! {
                m = consumer.recv() => m,
                _ = stop.cancelled() => return Ok(()),
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    // librdkafka recovers from most of these by itself: count, report once,
                    // and keep the session.
                    self.failed(&anyhow::anyhow!("consumer error: {e}"), outage)
                        .await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = stop.cancelled() => return Ok(()),
                    }
                    continue;
                }
            };
            let source = sources
                .get(m.topic())
                .cloned()
                .unwrap_or(StatusSource::Shared);
            // This record is handled before the next one: a failure (the store, the
            // dead-letter topic, the commit) is reported and retried in place, so nothing is
            // skipped, nothing is read out of order, and the group is not rebalanced.
            let (label, outcome) = loop {
                let attempt = match self.handle(&m, &source).await {
                    Ok(Ok(label)) => Ok((label, "applied")),
                    Ok(Err(rejected)) => {
                        tracing::warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(), reason = %rejected, "status event rejected; dead-lettering");
                        self.dead_letter(&dlq, &m, &rejected)
                            .await
                            .map(|()| (rejected.label().to_string(), "dead_lettered"))
                    }
                    Err(e) => Err(e),
                };
                match attempt {
                    Ok(done) => break done,
                    Err(e) => {
                        if !self.wait_after(&e, outage, stop).await {
                            return Ok(());
                        }
                    }
                }
            };
            self.metrics
                .status_events
                .get_or_create(&StatusLabels {
                    event: label,
                    outcome: outcome.into(),
                })
                .inc();
            while let Err(e) = consumer.commit_message(&m, CommitMode::Async) {
                if !self
                    .wait_after(&anyhow::anyhow!("committing the offset: {e}"), outage, stop)
                    .await
                {
                    return Ok(());
                }
            }
            if outage.reported || outage.backoff > RETRY_MIN {
                tracing::info!("status consumer working again");
                *outage = Outage {
                    backoff: RETRY_MIN,
                    reported: false,
                };
            }
        }
    }

    /// After a failure: report it, wait the back-off (doubling it); false if stopped meanwhile.
    async fn wait_after(
        &self,
        e: &anyhow::Error,
        outage: &mut Outage,
        stop: &CancellationToken,
    ) -> bool {
        self.failed(e, outage).await;
        let wait = outage.backoff;
        outage.backoff = (outage.backoff * 2).min(RETRY_MAX);
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = stop.cancelled() => false,
        }
    }

    /// Applies one record; `Ok(Ok(event name))` when applied or a duplicate.
    async fn handle(
        &self,
        m: &BorrowedMessage<'_>,
        source: &StatusSource,
    ) -> anyhow::Result<Result<String, Rejected>> {
        let (ev, kind) = match parse(m.payload().unwrap_or_default()) {
            Ok(x) => x,
            Err(r) => return Ok(Err(r)),
        };
        let id = ev.item_id.clone();
        let Some(env) = blocking(&self.store, move |s| s.item_envelope(&id)).await? else {
            return Ok(Err(Rejected::UnknownItem(ev.item_id)));
        };
        let department = match authorise(
            source,
            &self.config.sla.shared_status_departments,
            &ev,
            &env,
            Timestamp::now(),
            self.config.sla.status_max_future_skew,
        ) {
            Ok(d) => d,
            Err(r) => return Ok(Err(r)),
        };
        let reroute = match crate::routing::corrections::reroute(
            ev.payload.as_ref(),
            &self.config.departments,
        ) {
            Ok(r) => r,
            Err(why) => return Ok(Err(Rejected::Shape(why))),
        };
        let extend_days = ev
            .payload
            .as_ref()
            .and_then(|p| p.get("extend_days"))
            .and_then(|v| v.as_u64())
            .map(|d| d.min(u32::MAX as u64) as u32);
        let closing = match closing(&self.config, kind, ev.payload.as_ref()) {
            Ok(c) => c,
            Err(r) => return Ok(Err(r)),
        };
        let record = StatusRecord {
            event_id: ev.event_id.clone(),
            item_id: ev.item_id.clone(),
            event: kind.as_str().into(),
            at: ev.time,
            department: Some(department.clone()),
            person: ev.actor.as_ref().and_then(|a| a.person.clone()),
            verdict: closing.verdict().map(Into::into),
            // A bounced reply is not a reply: the item stays where it was.
            stage: if closing.bounced() {
                None
            } else {
                stage_after(kind)
            },
        };
        let (cfg, metrics) = (self.config.clone(), self.metrics.clone());
        let closing_in = closing.clone();
        let outcome = blocking(&self.store, move |s| {
            s.apply_status(&record, &mut |env, clocks| {
                event_writes(
                    &cfg,
                    &metrics,
                    env,
                    clocks,
                    kind,
                    &record.event_id,
                    &department,
                    &closing_in,
                    record.at,
                    Timestamp::now(),
                    extend_days,
                )
            })
        })
        .await?;
        if matches!(outcome, StatusOutcome::Applied(_)) {
            self.count_closing(&ev, &closing);
        }
        if let (Some(r), StatusOutcome::Applied(_) | StatusOutcome::Duplicate) = (reroute, &outcome)
        {
            self.record_correction(&ev, r).await?;
        }
        match outcome {
            StatusOutcome::Applied(timers) => {
                if !timers.is_empty() {
                    let _ = self.timers.send(timers);
                }
                Ok(Ok(kind.as_str().into()))
            }
            StatusOutcome::Duplicate => {
                tracing::debug!(event_id = %ev.event_id, "duplicate status event ignored");
                Ok(Ok(kind.as_str().into()))
            }
            StatusOutcome::UnknownItem => Ok(Err(Rejected::UnknownItem(ev.item_id))),
        }
    }

    async fn dead_letter(
        &self,
        producer: &rdkafka::producer::FutureProducer<KafkaContext>,
        m: &BorrowedMessage<'_>,
        why: &Rejected,
    ) -> anyhow::Result<()> {
        let reason = why.to_string();
        let mut headers = OwnedHeaders::new();
        if let Some(h) = m.headers() {
            for x in h.iter() {
                headers = headers.insert(Header {
                    key: x.key,
                    value: x.value,
                });
            }
        }
        headers = headers
            .insert(Header {
                key: DLQ_REASON,
                value: Some(reason.as_bytes()),
            })
            .insert(Header {
                key: DLQ_TOPIC,
                value: Some(m.topic().as_bytes()),
            });
        let mut rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.config.kafka.dead_letter_topic).headers(headers);
        if let Some(k) = m.key() {
            rec = rec.key(k);
        }
        if let Some(p) = m.payload() {
            rec = rec.payload(p);
        }
        // Wait for the dead-letter topic to take it before the offset is committed.
        producer
            .send(rec, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("dead-lettering a status event failed: {e}"))?;
        Ok(())
    }
}

impl StatusConsumer {
    /// Counts and logs what the closed loop made of an applied event: ids, element names and
    /// configured phrases only, never the reply's text.
    fn count_closing(&self, ev: &StatusEvent, closing: &Closing) {
        match closing {
            Closing::Nothing => {}
            Closing::Reply(check) => {
                self.metrics
                    .reply_checks
                    .get_or_create(&crate::metrics::ResultLabel {
                        result: check.verdict().into(),
                    })
                    .inc();
                if !check.passed() {
                    let missing: Vec<&str> = check.missing.iter().map(|m| m.as_str()).collect();
                    tracing::warn!(item = %ev.item_id, event_id = %ev.event_id, no_text = check.no_text, ?missing, banned = ?check.banned, "reply bounced: the clock keeps running");
                }
            }
            Closing::Evaluation(s) => {
                self.metrics
                    .evaluations
                    .get_or_create(&crate::metrics::VerdictLabel {
                        verdict: s.map_or("none", Satisfaction::as_str).into(),
                    })
                    .inc();
                if *s == Some(Satisfaction::Dissatisfied) {
                    tracing::warn!(item = %ev.item_id, event_id = %ev.event_id, "dissatisfied evaluation: revisit alert raised");
                }
            }
        }
    }

    /// Records a re-route as a correction (once per event id: also after a redelivery whose
    /// clock changes were committed before a crash, hence on `Duplicate` too).
    async fn record_correction(
        &self,
        ev: &StatusEvent,
        r: crate::routing::corrections::Reroute,
    ) -> anyhow::Result<()> {
        let c = crate::store::NewCorrection {
            event_id: ev.event_id.clone(),
            item_id: ev.item_id.clone(),
            at: ev.time,
            actor: ev.actor.as_ref().map(|a| a.department.clone()),
            category: r.category,
            department: r.department,
        };
        let item = c.item_id.clone();
        if blocking(&self.store, move |s| s.record_correction(&c)).await? {
            tracing::info!(item = %item, "re-route recorded as a correction");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_events_are_rejected_with_a_reason() {
        let cases: [(&str, &str); 5] = [
            ("not json", "bad_shape"),
            (
                r#"{"event_id":"e","item_id":"i","event":"viewed"}"#,
                "bad_shape",
            ),
            (
                r#"{"event_id":"e","item_id":"i","event":"viewed","time":"yesterday"}"#,
                "bad_shape",
            ),
            (
                r#"{"event_id":"e","item_id":"i","event":"teleported","time":"2026-03-02T01:00:00Z"}"#,
                "unknown_event",
            ),
            (
                r#"{"event_id":"","item_id":"i","event":"viewed","time":"2026-03-02T01:00:00Z"}"#,
                "bad_shape",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text.as_bytes()).unwrap_err().label(), want, "{text}");
        }
        let (ev, kind) = parse(
            br#"{"event_id":"e1","item_id":"i","event":"extended","time":"2026-03-02T09:00:00+08:00","actor":{"department":"hrss","person":"A123"},"payload":{"extend_days":30}}"#,
        )
        .unwrap();
        assert_eq!(kind, EventKind::Extended);
        assert_eq!(
            ev.time,
            "2026-03-02T01:00:00Z".parse::<Timestamp>().unwrap()
        );
    }

    fn routed_item(lead: &str, assists: &[&str], received: &str) -> Envelope {
        let mut env = Envelope::new(
            crate::envelope::Channel::Hotline,
            crate::envelope::Upstream {
                id: "o-1".into(),
                source: "hotline".into(),
                raw_ref: "sha256:00".into(),
                ..Default::default()
            },
            received.parse().unwrap(),
            crate::envelope::Request {
                title: None,
                content: crate::envelope::Personal::new("x"),
            },
        );
        env.routing = Some(crate::envelope::Routing {
            lead: lead.into(),
            assists: assists.iter().map(|a| a.to_string()).collect(),
            rule_id: "r".into(),
            rules_version: "v".into(),
            decided_at: env.received_at,
            sla_add: vec![],
            sla_skip: vec![],
            classification: None,
        });
        env
    }

    /// Any producer on the one shared status topic could stop any item's clocks, with any
    /// time: a department could close another department's items, or stop a clock with a time
    /// before the item even arrived. Now the topic says whose event it is, the item must be
    /// routed to that department, and the time must be sane.
    #[test]
    fn status_events_move_only_their_departments_items_at_sane_times() {
        let env = routed_item("hrss", &["housing"], "2026-03-02T01:00:00Z");
        let now: Timestamp = "2026-03-02T02:00:00Z".parse().unwrap();
        let skew = Duration::from_secs(300);
        let ev = |actor: Option<&str>, time: &str| StatusEvent {
            event_id: "e".into(),
            item_id: env.id.to_string(),
            event: "accepted".into(),
            time: time.parse().unwrap(),
            actor: actor.map(|d| Actor {
                department: d.into(),
                person: None,
            }),
            payload: None,
        };
        let dept = |d: &str| StatusSource::Department(d.into());
        let trusted = vec!["office".to_string()];
        let ok = "2026-03-02T01:30:00Z";
        let cases: Vec<(StatusSource, StatusEvent, Result<&str, &str>)> = vec![
            // The lead and an assist, with or without actor.
            (dept("hrss"), ev(None, ok), Ok("hrss")),
            (dept("hrss"), ev(Some("hrss"), ok), Ok("hrss")),
            (dept("housing"), ev(None, ok), Ok("housing")),
            // Another department's topic: not routed to it.
            (dept("health"), ev(None, ok), Err("not_routed")),
            (dept("health"), ev(Some("health"), ok), Err("not_routed")),
            // An actor that is not the topic's department.
            (dept("health"), ev(Some("hrss"), ok), Err("actor_mismatch")),
            // The shared topic: only trusted departments, by actor, and still routed.
            (
                StatusSource::Shared,
                ev(Some("hrss"), ok),
                Err("untrusted_topic"),
            ),
            (StatusSource::Shared, ev(None, ok), Err("untrusted_topic")),
            (
                StatusSource::Shared,
                ev(Some("office"), ok),
                Err("not_routed"),
            ),
            // Times: up to the skew ahead is fine, beyond is not; before arrival is not.
            (dept("hrss"), ev(None, "2026-03-02T02:04:59Z"), Ok("hrss")),
            (
                dept("hrss"),
                ev(None, "2026-03-02T02:05:01Z"),
                Err("future_time"),
            ),
            (dept("hrss"), ev(None, "2026-03-02T01:00:00Z"), Ok("hrss")),
            (
                dept("hrss"),
                ev(None, "2026-03-02T00:59:59Z"),
                Err("before_arrival"),
            ),
        ];
        for (source, e, want) in cases {
            let got = authorise(&source, &trusted, &e, &env, now, skew);
            match (got, want) {
                (Ok(d), Ok(w)) => assert_eq!(d, w, "{source:?} {:?}", e.actor),
                (Err(r), Err(w)) => assert_eq!(r.label(), w, "{source:?} {:?}: {r}", e.actor),
                (got, want) => panic!(
                    "{source:?} {:?} {}: {got:?}, want {want:?}",
                    e.actor, e.time
                ),
            }
        }
        let office = routed_item("office", &[], "2026-03-02T01:00:00Z");
        let mut e = ev(Some("office"), ok);
        e.item_id = office.id.to_string();
        assert_eq!(
            authorise(&StatusSource::Shared, &trusted, &e, &office, now, skew).unwrap(),
            "office"
        );
        // The reasons say what is wrong, for the dead-letter header.
        let r = authorise(&dept("health"), &trusted, &ev(None, ok), &env, now, skew).unwrap_err();
        assert!(
            r.to_string().contains("not routed to department `health`"),
            "{r}"
        );
        let unrouted = {
            let mut e = env.clone();
            e.routing = None;
            e
        };
        assert_eq!(
            authorise(&dept("hrss"), &trusted, &ev(None, ok), &unrouted, now, skew)
                .unwrap_err()
                .label(),
            "not_routed"
        );
    }

    const LOOP_CONFIG: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"

[[departments]]
id = "hrss"
name = "人社局"
topic = "t.hrss"
alert_emails = ["hrss@example.gov.cn"]

[[departments]]
id = "housing"
name = "住建局"
topic = "t.housing"

[routing]
default_lead = "hrss"

[sla]
supervisors = ["duban@example.gov.cn"]

[alerts.email]
smtp_host = "smtp.example.gov.cn"
from = "petitiond@example.gov.cn"
"#;

    fn loop_config() -> Config {
        Config::parse(LOOP_CONFIG, "t.toml", std::path::Path::new("/cfg")).unwrap()
    }

    fn schema(name: &str) -> jsonschema::Validator {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("schema")
            .join(name);
        let text = std::fs::read_to_string(path).unwrap();
        jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
    }

    fn payload(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    /// An item routed to hrss (assist housing) with its statutory.handle clock running.
    fn handling(cfg: &Config) -> (Envelope, Vec<Clock>) {
        let env = routed_item("hrss", &["housing"], "2026-03-02T01:00:00Z");
        let policy = cfg.sla.clock("statutory.handle").unwrap();
        let clock = Clock::start(
            policy,
            env.id.as_str(),
            "hrss",
            "2026-03-03T01:00:00Z".parse().unwrap(),
            &cfg.sla.calendar,
        )
        .unwrap();
        (env, vec![clock])
    }

    const VAGUE: &str = "张某某（身份证11010519491231002X）反映的问题我们正在协调，将尽快处理。";
    const GOOD: &str = "经调查核实，情况属实。依据《保障农民工工资支付条例》第三十条的规定，现已责令该公司支付拖欠工资。如对本处理意见不服，可在30日内请求复查。";

    /// The reply names no facts, basis, result or remedy and hedges: the statutory clock keeps
    /// running, nothing stops, the department hears what is missing on its own topic and an
    /// alert goes to the alerts topic and by mail — and none of them carries the reply's text.
    #[test]
    fn a_bounced_reply_leaves_the_clock_running_and_queues_a_notice_and_an_alert() {
        let cfg = loop_config();
        let metrics = Metrics::new();
        let (env, mut clocks) = handling(&cfg);
        let at: Timestamp = "2026-03-20T02:00:00Z".parse().unwrap();
        let closing = closing(
            &cfg,
            EventKind::Replied,
            Some(&payload(serde_json::json!({ "reply": VAGUE }))),
        )
        .unwrap();
        assert!(closing.bounced());
        assert_eq!(closing.verdict(), Some("bounced"));
        let w = event_writes(
            &cfg,
            &metrics,
            &env,
            &mut clocks,
            EventKind::Replied,
            "ev-9",
            "hrss",
            &closing,
            at,
            at,
            None,
        );
        assert!(w.updated.is_empty() && w.started.is_empty() && w.writeback.is_empty());
        assert_eq!(clocks[0].state, crate::sla::clock::State::Running);

        assert_eq!(w.outbox.len(), 1);
        let notice = &w.outbox[0];
        assert_eq!(notice.topic, "t.hrss");
        assert_eq!(notice.key, env.id.as_str());
        let h = |k: &str| {
            notice
                .headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("ce_type"), Some(crate::kafka::wire::TYPE_REPLY_BOUNCED));
        assert_eq!(h("ce_id"), Some(notice.ce_id.as_str()));
        let p: serde_json::Value = serde_json::from_slice(&notice.payload).unwrap();
        assert!(schema("reply-bounced.v1.json").is_valid(&p), "{p}");
        assert_eq!(
            p["missing"],
            serde_json::json!(["facts", "policy", "result", "remedy"])
        );
        assert_eq!(p["banned"], serde_json::json!(["正在协调", "尽快处理"]));
        assert_eq!(p["clocks_running"][0]["clock"], "statutory.handle");
        assert_eq!(p["clocks_running"][0]["state"], "running");

        assert_eq!(w.alerts.len(), 1);
        let a = &w.alerts[0];
        assert_eq!(
            (a.kind.as_str(), a.clock_id.as_str()),
            ("reply_bounced", "statutory.handle")
        );
        assert_eq!(a.record.topic, cfg.sla.alerts_topic);
        let ap: serde_json::Value = serde_json::from_slice(&a.record.payload).unwrap();
        assert!(schema("alert.v1.json").is_valid(&ap), "{ap}");
        assert_eq!(ap["event_id"], "ev-9");
        let mail = a.mail.as_ref().unwrap();
        assert_eq!(
            mail.recipients,
            vec!["duban@example.gov.cn", "hrss@example.gov.cn"]
        );
        assert!(
            mail.body.contains("事实认定") && mail.body.contains("正在协调"),
            "{}",
            mail.body
        );
        // Never the reply's text, nor the personal data in it.
        for text in [
            String::from_utf8_lossy(&notice.payload).to_string(),
            String::from_utf8_lossy(&a.record.payload).to_string(),
            mail.subject.clone(),
            mail.body.clone(),
            format!("{:?}", notice.headers),
        ] {
            assert!(
                !text.contains("张某某") && !text.contains("11010519491231002X"),
                "{text}"
            );
            assert!(!text.contains("将尽快处理"), "{text}");
        }
        // The same event again: the same ids (recorded once by the store).
        let mut again = clocks.clone();
        let w2 = event_writes(
            &cfg,
            &metrics,
            &env,
            &mut again,
            EventKind::Replied,
            "ev-9",
            "hrss",
            &closing,
            at,
            at,
            None,
        );
        assert_eq!(w2.outbox[0].ce_id, notice.ce_id);
        assert_eq!(w2.alerts[0].id, a.id);
    }

    /// A reply that passes stops the clock as before and queues nothing more; a reply event
    /// without text is bounced ("no reply text"), also from an assist, to its own topic.
    #[test]
    fn a_passing_reply_stops_the_clock_and_a_missing_text_bounces() {
        let cfg = loop_config();
        let metrics = Metrics::new();
        let (env, mut clocks) = handling(&cfg);
        let at: Timestamp = "2026-03-20T02:00:00Z".parse().unwrap();
        let ok = closing(
            &cfg,
            EventKind::Replied,
            Some(&payload(serde_json::json!({ "reply": GOOD }))),
        )
        .unwrap();
        assert_eq!(ok.verdict(), Some("ok"));
        let w = event_writes(
            &cfg,
            &metrics,
            &env,
            &mut clocks,
            EventKind::Replied,
            "ev-1",
            "hrss",
            &ok,
            at,
            at,
            None,
        );
        assert_eq!(w.updated.len(), 1);
        assert_eq!(clocks[0].state, crate::sla::clock::State::Stopped);
        assert!(w.alerts.is_empty() && w.outbox.is_empty());

        let (_, mut clocks) = handling(&cfg);
        let empty = closing(&cfg, EventKind::Replied, None).unwrap();
        assert_eq!(empty.verdict(), Some("bounced"));
        let w = event_writes(
            &cfg,
            &metrics,
            &env,
            &mut clocks,
            EventKind::Replied,
            "ev-2",
            "housing",
            &empty,
            at,
            at,
            None,
        );
        assert_eq!(clocks[0].state, crate::sla::clock::State::Running);
        assert_eq!(w.outbox[0].topic, "t.housing");
        let p: serde_json::Value = serde_json::from_slice(&w.outbox[0].payload).unwrap();
        assert_eq!(p["no_text"], true);
        assert!(schema("reply-bounced.v1.json").is_valid(&p), "{p}");
        // Only a clock that names `bounced` starts on a bounced reply.
        let cfg = Config::parse(
            &format!(
                "{LOOP_CONFIG}\n[[sla.clocks]]\nid = \"handle\"\nrule = {{ kind = \"working_days\", days = 60 }}\nstart_on = \"accepted\"\nstop_on = [\"replied\"]\ncitation = \"t\"\n\n[[sla.clocks]]\nid = \"resubmit\"\nrule = {{ kind = \"working_days\", days = 5 }}\nstart_on = \"replied\"\nverdicts = [\"bounced\"]\nstop_on = [\"replied\"]\ncitation = \"t\"\n\n[[sla.clocks]]\nid = \"after_reply\"\nrule = {{ kind = \"working_days\", days = 5 }}\nstart_on = \"replied\"\nstop_on = [\"evaluated\"]\ncitation = \"t\"\n"
            ),
            "t.toml",
            std::path::Path::new("/cfg"),
        )
        .unwrap();
        let w = event_writes(
            &cfg,
            &metrics,
            &env,
            &mut [],
            EventKind::Replied,
            "ev-3",
            "hrss",
            &empty,
            at,
            at,
            None,
        );
        let started: Vec<&str> = w.started.iter().map(|(c, _)| c.clock_id.as_str()).collect();
        assert_eq!(started, vec!["resubmit"]);
        let w = event_writes(
            &cfg,
            &metrics,
            &env,
            &mut [],
            EventKind::Replied,
            "ev-4",
            "hrss",
            &ok,
            at,
            at,
            None,
        );
        let started: Vec<&str> = w.started.iter().map(|(c, _)| c.clock_id.as_str()).collect();
        assert_eq!(started, vec!["after_reply"]);
        // A reply that is not text is a bad event.
        assert_eq!(
            closing(
                &cfg,
                EventKind::Replied,
                Some(&payload(serde_json::json!({ "reply": 3 })))
            )
            .unwrap_err()
            .label(),
            "bad_shape"
        );
    }

    /// 不满意 starts the revisit clock (the default `[[sla.clocks]]` entry filtered on the
    /// verdict) and raises a revisit alert to the lead department and the supervisors; other
    /// evaluations record their verdict and start nothing.
    #[test]
    fn a_dissatisfied_evaluation_starts_the_revisit_clock_and_raises_a_revisit_alert() {
        let cfg = loop_config();
        let metrics = Metrics::new();
        let (env, _) = handling(&cfg);
        let at: Timestamp = "2026-04-20T02:00:00Z".parse().unwrap();
        let eval = |word: &str| {
            closing(
                &cfg,
                EventKind::Evaluated,
                Some(&payload(serde_json::json!({ "satisfaction": word }))),
            )
        };
        let bad = eval("不满意").unwrap();
        assert_eq!(bad.verdict(), Some("dissatisfied"));
        let w = event_writes(
            &cfg,
            &metrics,
            &env,
            &mut [],
            EventKind::Evaluated,
            "ev-e",
            "housing",
            &bad,
            at,
            at,
            None,
        );
        let started: Vec<&str> = w.started.iter().map(|(c, _)| c.clock_id.as_str()).collect();
        assert_eq!(started, vec!["revisit"]);
        assert_eq!(w.started[0].0.department, "hrss");
        assert_eq!(w.alerts.len(), 1);
        let a = &w.alerts[0];
        assert_eq!(
            (a.kind.as_str(), a.clock_id.as_str(), a.department.as_str()),
            ("revisit", "revisit", "hrss")
        );
        let ap: serde_json::Value = serde_json::from_slice(&a.record.payload).unwrap();
        assert!(schema("alert.v1.json").is_valid(&ap), "{ap}");
        assert_eq!(ap["verdict"], "dissatisfied");
        assert_eq!(
            a.mail.as_ref().unwrap().recipients,
            vec!["duban@example.gov.cn", "hrss@example.gov.cn"]
        );
        for (word, verdict) in [
            ("满意", "satisfied"),
            ("basically_satisfied", "basically_satisfied"),
        ] {
            let c = eval(word).unwrap();
            assert_eq!(c.verdict(), Some(verdict));
            let w = event_writes(
                &cfg,
                &metrics,
                &env,
                &mut [],
                EventKind::Evaluated,
                "ev-e",
                "hrss",
                &c,
                at,
                at,
                None,
            );
            assert!(w.started.is_empty() && w.alerts.is_empty(), "{word}");
        }
        assert_eq!(
            closing(&cfg, EventKind::Evaluated, None).unwrap().verdict(),
            None
        );
        assert_eq!(eval("还行").unwrap_err().label(), "bad_shape");
        // Other events have no verdict; a reply is not checked with [replies] disabled.
        assert_eq!(
            closing(&cfg, EventKind::Accepted, None).unwrap(),
            Closing::Nothing
        );
        let off = Config::parse(
            &format!("{LOOP_CONFIG}\n[replies]\nenabled = false\n"),
            "t.toml",
            std::path::Path::new("/cfg"),
        )
        .unwrap();
        assert_eq!(
            closing(&off, EventKind::Replied, None).unwrap(),
            Closing::Nothing
        );
    }
}
