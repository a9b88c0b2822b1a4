//! Channel ownership through Kafka's group protocol (ARCHITECTURE.md, "Several instances").
//!
//! Every instance joins one consumer group on a small control topic that has one partition per
//! *unit* (a channel, or a channel's source): partition `i` stands for `units[i]`. The group's
//! partition assignment is the lease: an instance runs a unit only while it holds the unit's
//! partition. Kafka's coordinator decides who holds what, detects a dead or frozen member after
//! the session timeout, and hands its partitions to the others — petitiond adds no consensus of
//! its own. The control topic carries no records; only the membership matters.
//!
//! Assignment uses the cooperative-sticky assignor: a rebalance moves only the partitions that
//! must move, and a member keeps running everything else while it happens.
//!
//! The member runs on its own thread (librdkafka serves rebalances from `poll`). It reports
//! [`LeaseChange`]s: `Acquired` after partitions were assigned; `Revoking` *before* they are
//! given up, with an acknowledgement the owner sends once the unit's work has stopped — the
//! rebalance waits for it (at most `revoke_deadline`), so the next owner starts only after the
//! previous one stopped. A member that was frozen past its session timeout learns of it only
//! when it runs again, after the next owner started: that case is not covered by the group
//! protocol but by the store's lease epoch (the fence, `Store::acquire_lease`).

use crate::KafkaConfig;
use crate::client::{KafkaContext, client_config};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::TopicPartitionList;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// How this instance takes part in the ownership group.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The control topic: exactly one partition per unit.
    pub topic: String,
    /// The consumer group every instance of one installation joins.
    pub group: String,
    /// This instance's name (logs, `/readyz`, the board); also Kafka's `group.instance.id`
    /// is *not* set from it: a restarted instance must rejoin as a new member so that its
    /// previous incarnation's partitions are revoked.
    pub instance: String,
    /// The units in a fixed order: partition `i` is `units[i]`. Every instance must list the
    /// same units in the same order (they come from the same config).
    pub units: Vec<String>,
    /// How long the coordinator waits for a silent member before it reassigns its units.
    pub session_timeout: Duration,
    /// How long a revocation waits for the unit's work to stop.
    pub revoke_deadline: Duration,
}

/// A change of what this instance owns.
#[derive(Debug)]
pub enum LeaseChange {
    /// These units are now this instance's: start them.
    Acquired(Vec<String>),
    /// These units are being taken away: stop them, then send `()` on `stopped` (dropping it
    /// counts as stopped too). The rebalance waits until then, at most `revoke_deadline`.
    Revoking {
        units: Vec<String>,
        stopped: SyncSender<()>,
    },
}

/// Why the control topic cannot carry the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("kafka unreachable while checking the control topic: {0}")]
    Unreachable(KafkaError),
    #[error(
        "control topic {topic} has {have} partitions but {want} units need one each \
         (create it with {want} partitions, or allow kafka.create_topics on a new topic)"
    )]
    WrongPartitions {
        topic: String,
        have: usize,
        want: usize,
    },
    #[error("control topic {0} is missing and kafka.create_topics = false")]
    Missing(String),
    #[error("creating control topic {topic} failed: {code}")]
    CreateFailed {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("the ownership group member could not be built: {0}")]
    Client(KafkaError),
}

/// Checks that the control topic has one partition per unit, creating it when it is missing
/// and topic creation is allowed. Blocking: call it from the blocking pool.
pub fn ensure_control_topic(k: &KafkaConfig, s: &LeaseSettings) -> Result<(), LeaseError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(k).create().map_err(LeaseError::Unreachable)?;
    let want = s.units.len();
    for attempt in 0..40 {
        let md = admin
            .inner()
            .fetch_metadata(Some(&s.topic), k.request_timeout)
            .map_err(LeaseError::Unreachable)?;
        let have = md
            .topics()
            .iter()
            .find(|t| t.name() == s.topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        if have == want {
            return Ok(());
        }
        if have != 0 {
            return Err(LeaseError::WrongPartitions {
                topic: s.topic.clone(),
                have,
                want,
            });
        }
        if !k.create_topics {
            return Err(LeaseError::Missing(s.topic.clone()));
        }
        if attempt == 0 {
            create_control_topic(&admin, k, &s.topic, want)?;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(LeaseError::Missing(s.topic.clone()))
}

fn create_control_topic(
    admin: &AdminClient<DefaultClientContext>,
    k: &KafkaConfig,
    topic: &str,
    partitions: usize,
) -> Result<(), LeaseError> {
    let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
    let new = [NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(k.replication_factor),
    )];
    let opts = AdminOptions::new().operation_timeout(Some(k.request_timeout));
    let results = futures::executor::block_on(admin.create_topics(&new, &opts))
        .map_err(LeaseError::Unreachable)?;
    for r in results {
        match r {
            Ok(t) => tracing::info!(topic = %t, partitions, "created the ownership control topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(LeaseError::CreateFailed { topic, code }),
        }
    }
    Ok(())
}

/// The consumer config of a group member: cooperative-sticky, no offsets (the control topic
/// carries nothing), the session timeout and a heartbeat a third of it.
pub fn member_config(k: &KafkaConfig, s: &LeaseSettings) -> rdkafka::ClientConfig {
    let session = s.session_timeout.as_millis().max(1);
    let mut c = client_config(k);
    c.set("group.id", &s.group)
        .set("client.id", format!("{}-lease-{}", k.client_id, s.instance))
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", session.to_string())
        .set("heartbeat.interval.ms", (session / 3).max(1).to_string())
        // The rebalance timeout: how long the coordinator waits for every known member to
        // rejoin. Left at its default (5 minutes) a SIGKILLed member holds its units that long
        // on a coordinator that waits for it; the member polls every 100 ms, so the session
        // timeout (librdkafka's lower bound for this setting) is enough.
        .set("max.poll.interval.ms", session.to_string())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest")
        // No records are read: nothing to prefetch.
        .set("enable.partition.eof", "false");
    c
}

/// The group member's context: librdkafka's logs and errors as the other clients report them,
/// and the rebalance callbacks turned into [`LeaseChange`]s.
struct LeaseContext {
    base: KafkaContext,
    units: Vec<String>,
    topic: String,
    instance: String,
    revoke_deadline: Duration,
    changes: UnboundedSender<LeaseChange>,
}

impl LeaseContext {
    /// The units a partition list names (partitions of other topics, or beyond the units, are
    /// ignored: a control topic with extra partitions is refused before the member starts).
    fn units_of(&self, tpl: &TopicPartitionList) -> Vec<String> {
        let mut units: Vec<String> = tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .filter_map(|e| usize::try_from(e.partition()).ok())
            .filter_map(|p| self.units.get(p).cloned())
            .collect();
        units.sort();
        units.dedup();
        units
    }
}

impl ClientContext for LeaseContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.base.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.base.error(error, reason);
    }
}

impl ConsumerContext for LeaseContext {
    /// Before partitions are taken away: the owner stops their units, and the rebalance (which
    /// lets the next owner start) waits for that.
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let units = self.units_of(tpl);
        if units.is_empty() {
            return;
        }
        tracing::info!(instance = %self.instance, units = ?units, "lease revoked; stopping units");
        let (stopped, wait) = sync_channel(1);
        if self
            .changes
            .send(LeaseChange::Revoking {
                units: units.clone(),
                stopped,
            })
            .is_err()
        {
            return; // the owner is gone: nothing of ours runs
        }
        match wait.recv_timeout(self.revoke_deadline) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => tracing::error!(
                instance = %self.instance,
                units = ?units,
                deadline_ms = self.revoke_deadline.as_millis() as u64,
                "units did not stop before the revoke deadline; the store's lease epoch fences them"
            ),
        }
    }

    /// After partitions were assigned: the owner starts their units.
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let units = self.units_of(tpl);
                if !units.is_empty() {
                    tracing::info!(instance = %self.instance, units = ?units, "lease acquired");
                    let _ = self.changes.send(LeaseChange::Acquired(units));
                }
            }
            Rebalance::Error(e) => {
                tracing::warn!(instance = %self.instance, error = %e, "ownership rebalance failed")
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

/// A running group member. Dropping it (or [`LeaseMember::leave`]) leaves the group: the
/// instance's units are revoked through the usual `Revoking` changes first, then handed to the
/// other members at once instead of after the session timeout.
pub struct LeaseMember {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaseMember {
    /// Joins the group. The control topic must exist with one partition per unit
    /// ([`ensure_control_topic`]).
    pub fn join(
        k: &KafkaConfig,
        s: &LeaseSettings,
        base: KafkaContext,
    ) -> Result<(LeaseMember, UnboundedReceiver<LeaseChange>), LeaseError> {
        let (tx, rx) = unbounded_channel();
        let ctx = LeaseContext {
            base,
            units: s.units.clone(),
            topic: s.topic.clone(),
            instance: s.instance.clone(),
            revoke_deadline: s.revoke_deadline,
            changes: tx,
        };
        let consumer: BaseConsumer<LeaseContext> = member_config(k, s)
            .create_with_context(ctx)
            .map_err(LeaseError::Client)?;
        consumer
            .subscribe(&[s.topic.as_str()])
            .map_err(LeaseError::Client)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let instance = s.instance.clone();
        let thread = std::thread::Builder::new()
            .name("petitiond-lease".into())
            .spawn(move || run_member(consumer, &flag, &instance))
            .map_err(|e| LeaseError::Client(KafkaError::Global(io_code(&e))))?;
        Ok((
            LeaseMember {
                stop,
                thread: Some(thread),
            },
            rx,
        ))
    }

    /// Leaves the group after revoking this instance's units (blocking until the thread ends).
    pub fn leave(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LeaseMember {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn io_code(_: &std::io::Error) -> RDKafkaErrorCode {
    RDKafkaErrorCode::Fail
}

/// The member's thread: serves rebalances (and heartbeats' errors) until told to stop, then
/// leaves the group cleanly (revocation first).
fn run_member(consumer: BaseConsumer<LeaseContext>, stop: &AtomicBool, instance: &str) {
    while !stop.load(Ordering::Relaxed) {
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
            tracing::debug!(instance, error = %e, "ownership group poll");
        }
    }
    // Unsubscribing revokes every partition (through pre_rebalance); close then leaves.
    consumer.unsubscribe();
    for _ in 0..20 {
        let _ = consumer.poll(Duration::from_millis(50));
        if consumer.assignment().map_or(true, |a| a.count() == 0) {
            break;
        }
    }
    tracing::info!(instance, "left the ownership group");
}
