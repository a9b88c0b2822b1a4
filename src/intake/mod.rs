//! Intake: raw records in, durable items out.
//!
//! For each record a channel hands over: normalize it into an envelope (bad input goes to
//! quarantine with its bytes and reason), route it, and commit the item, its routing decision
//! and its outbox rows in one store transaction; then answer the channel (which may now move
//! its cursor) and wake the relay. Intake never talks to Kafka.
//!
//! Ends when every channel has dropped its sender, after answering everything it received.

use crate::channels::mailbox::parse::{self, BadMail, Limits};
use crate::channels::{Disposition, Incoming, Payload};
use crate::config::Config;
use crate::envelope::Envelope;
use crate::kafka::wire::{Role, routed_record};
use crate::metrics::{ChannelLabel, Metrics};
use crate::routing;
use crate::sla::clock::Clock;
use crate::sla::policy::Trigger;
use crate::store::blobs::BlobStore;
use crate::store::{NewItem, Quarantined, Recorded, Store, Timer, blocking};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};
use tracing::Instrument;

/// The original bytes of a rejected input, kept in quarantine.
enum Original {
    Bytes(Vec<u8>),
    /// Too large to hold in memory: streamed from the file.
    File(std::path::PathBuf),
}

pub struct Intake {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub metrics: Metrics,
    /// Poked after each commit so the relay produces without waiting for its tick.
    pub relay_wake: Arc<Notify>,
    /// The routing rules in force (swapped on reload).
    pub router: Arc<routing::Router>,
    /// New clocks' timers for the SLA engine.
    pub timers: mpsc::UnboundedSender<Vec<Timer>>,
}

impl Intake {
    pub async fn run(self, mut rx: mpsc::Receiver<Incoming>) -> anyhow::Result<()> {
        while let Some(inc) = rx.recv().await {
            let span =
                tracing::info_span!("intake", source = %inc.source, reference = %inc.reference);
            let result = self
                .handle(inc.source.clone(), inc.reference.clone(), inc.payload)
                .instrument(span)
                .await;
            // The channel may have stopped waiting (shutdown); the item is durable either way.
            let _ = inc.done.send(result);
        }
        tracing::info!("intake drained");
        Ok(())
    }

    async fn handle(
        &self,
        source: String,
        reference: String,
        payload: Payload,
    ) -> anyhow::Result<Disposition> {
        let blobs = Arc::clone(&self.blobs);
        let limits = Limits::of(self.config.mailbox.as_ref());
        let src = source.clone();
        let normalized = tokio::task::spawn_blocking(move || match payload {
            Payload::Mail { raw, arrival } => {
                parse::normalize(&raw, arrival, &src, &limits, blobs.as_ref())
                    .map_err(|bad| (bad, Original::Bytes(raw)))
            }
            Payload::Oversize { path, size, limit } => {
                Err((BadMail::Oversize { size, limit }, Original::File(path)))
            }
        })
        .await?;
        match normalized {
            Ok(env) => self.record(env).await,
            Err((bad, original)) => self.quarantine(source, reference, bad, original).await,
        }
    }

    async fn record(&self, mut env: Envelope) -> anyhow::Result<Disposition> {
        let routed = self.router.route(&env, jiff::Timestamp::now());
        env.category = routed.category;
        env.flags.extend(routed.flags);
        let (decision, departments) = (routed.decision, routed.departments);
        env.routing = Some(crate::envelope::Routing {
            lead: decision.lead.clone(),
            assists: decision.assists.clone(),
            rule_id: decision.rule_id.clone(),
            rules_version: decision.rules_version.clone(),
            decided_at: decision.decided_at,
        });
        let arrived = env.received_at;
        let clocks = start_clocks(
            &self.config,
            &self.metrics,
            &mut env,
            &Trigger::Received,
            arrived,
        );
        let outbox = departments
            .iter()
            .enumerate()
            .map(|(i, d)| routed_record(&env, d, if i == 0 { Role::Lead } else { Role::Assist }))
            .collect();
        let id = env.id.to_string();
        let channel = env.channel.as_str().to_string();
        let item = NewItem {
            envelope: env,
            decision,
            outbox,
            clocks,
        };
        let recorded = blocking(&self.store, move |s| s.record_item(&item)).await?;
        let label = ChannelLabel { channel };
        match recorded {
            Recorded::New(timers) => {
                self.metrics.items_received.get_or_create(&label).inc();
                self.relay_wake.notify_one();
                if !timers.is_empty() {
                    let _ = self.timers.send(timers);
                }
                tracing::info!(item = %id, "item recorded");
                Ok(Disposition::Recorded(id))
            }
            Recorded::Duplicate => {
                self.metrics.items_duplicate.get_or_create(&label).inc();
                tracing::info!(item = %id, "item already known; not recorded again");
                Ok(Disposition::Duplicate(id))
            }
        }
    }

    async fn quarantine(
        &self,
        source: String,
        reference: String,
        bad: BadMail,
        original: Original,
    ) -> anyhow::Result<Disposition> {
        let blobs = Arc::clone(&self.blobs);
        let stored = tokio::task::spawn_blocking(move || match original {
            Original::Bytes(raw) => blobs.put(&raw),
            Original::File(p) => blobs.put_file(&p),
        })
        .await??;
        let q = Quarantined {
            source: source.clone(),
            reference: reference.clone(),
            reason: bad.reason().to_string(),
            detail: bad.to_string(),
            raw_ref: stored.claim(),
            size: stored.size,
        };
        let id = blocking(&self.store, move |s| s.quarantine(&q)).await?;
        self.metrics.quarantine(&source, bad.reason());
        tracing::warn!(quarantine_id = id, reason = bad.reason(), detail = %bad, "input quarantined");
        Ok(Disposition::Quarantined(id))
    }
}

/// Starts the clocks whose policy applies to `env` on `trigger` at `at`, with each one's next
/// alert, and lists them on the envelope (`sla`). A clock that cannot be computed (a calendar
/// year not loaded) is logged and counted, never a reason to drop the item.
pub fn start_clocks(
    config: &Config,
    metrics: &Metrics,
    env: &mut Envelope,
    trigger: &Trigger,
    at: jiff::Timestamp,
) -> Vec<(Clock, Option<jiff::Timestamp>)> {
    let cal = &config.sla.calendar;
    let lead = env
        .routing
        .as_ref()
        .map(|r| r.lead.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    let applying: Vec<_> = config
        .sla
        .clocks
        .iter()
        .filter(|p| p.applies(env, trigger))
        .collect();
    for policy in applying {
        let started = Clock::start(policy, env.id.as_str(), &lead, at, cal)
            .and_then(|c| Ok((c.next_alert(policy, cal)?.map(|(_, t)| t), c)));
        match started {
            Ok((next, clock)) => {
                env.sla.push(crate::envelope::SlaClock {
                    clock: clock.clock_id.clone(),
                    due_at: clock.due_at,
                    state: clock.state.as_str().into(),
                });
                out.push((clock, next));
            }
            Err(e) => {
                metrics
                    .clock_errors
                    .get_or_create(&crate::metrics::ClockLabel {
                        clock: policy.id.clone(),
                    })
                    .inc();
                tracing::error!(item = %env.id, clock = %policy.id, error = %e, "cannot start SLA clock");
            }
        }
    }
    out
}
