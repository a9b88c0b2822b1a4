//! Intake: raw records in, durable items out.
//!
//! For each record a channel hands over: normalize it into an envelope (bad input goes to
//! quarantine with its bytes and reason), route it, and commit the item, its routing decision
//! and its outbox rows in one store transaction; then answer the channel (which may now move
//! its cursor) and wake the relay. Intake never talks to Kafka.
//!
//! Routing includes the incomplete-item check (`routing::completeness`) and, in `link`, the
//! repeat-petition look-up, so their flags are on the envelope before its clocks start.
//! An upstream update of an item still flagged `needs_supplement` runs the check again: once
//! nothing is missing, the flag clears, the supplement clocks stop and an
//! `item.supplemented.v1` record says so — in the update's transaction. The item stays with
//! the intake desk, which forwards it (`suggested_lead:*`).
//!
//! Sources with a status write-back (`channels::http::writeback`) get their rows queued in the
//! item's transaction: acknowledged (routed) and the first-touch due time.
//!
//! **Item boundary.** Whatever goes wrong with one item alone — it does not parse, it is too
//! large, its charset does not decode, or the code handling it panics — quarantines that item
//! (reason and original bytes) and answers "durable", so the channel moves on to the next.
//! A panic becomes reason `panic`; its message is never kept or logged (std's messages quote
//! the input, e.g. the string a bad slice was taken of). Only what is not the item's fault —
//! the store or the blob store failing — is an error, and the channel retries.
//!
//! Ends when every channel has dropped its sender, after answering everything it received.

mod clocks;
mod link;
#[cfg(test)]
mod tests;

pub use clocks::{SLA_PENDING_FLAG, start_clocks, start_received_clocks, supplement_clocks};

use crate::channels::http::writeback;
use crate::channels::mailbox::parse::{self, BadMail, Limits};
use crate::channels::{Disposition, Incoming, Payload};
use crate::kafka::wire::{Role, routed_record, supplemented_record, updated_record};
use crate::metrics::{ChannelLabel, Metrics};
use crate::routing;
use crate::sla::SlaInputs;
use crate::sla::config::SlaConfig;
use crate::store::blobs::BlobStore;
use crate::store::{
    ItemState, ItemUpdate, NewItem, Quarantined, Recorded, Store, Supplement, Timer, blocking,
};
use petitiond_core::envelope::Envelope;
use petitiond_core::sla::clock::Clock;
use petitiond_core::sla::policy::Trigger;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::Instrument;

/// Most new items committed in one transaction (group commit).
pub const MAX_GROUP: usize = 128;

/// The channel's way to hear back about one item.
type Reply = oneshot::Sender<anyhow::Result<Disposition>>;

/// Group commit: new items prepared (normalized, routed, linked, clocks computed) and waiting
/// to be made durable together in one transaction, with the channels' answers. Nothing in it
/// is answered before its commit. Items whose handling needs the store to know an item of the
/// group (the same id again — an update or a re-read — or the same petitioner, for linking)
/// flush the group first, so the store sees every earlier item, as one-at-a-time intake did.
///
/// `known`: the stored state of the batch's records read in one store call before the batch
/// is handled ([`Intake::prefetch`]); each entry is taken once, by the one record of the
/// batch with that id (ids seen twice in a batch are not prefetched: the second must see
/// what the first did).
#[derive(Default)]
struct Group {
    staged: Vec<(Staged, Reply)>,
    ids: HashSet<String>,
    person_keys: HashSet<String>,
    known: HashMap<String, Option<ItemState>>,
}

/// A new item ready to commit, and what to count and wake once it is durable.
struct Staged {
    item: NewItem,
    id: String,
    label: ChannelLabel,
    /// needs_supplement, linked, repeat petition.
    counts: [bool; 3],
    person_keys: Vec<String>,
    span: tracing::Span,
}

/// The original bytes of a rejected input, kept in quarantine.
enum Original {
    /// Shared with the code working on the item, so a panic there leaves them to quarantine.
    Bytes(Arc<Vec<u8>>),
    /// Too large to hold in memory: streamed from the file.
    File(std::path::PathBuf),
    /// Already in the blob store (an HTTP record's raw bytes): its claim check.
    Stored(String),
}

pub use crate::channels::PANIC_REASON;

/// A payload as intake works on it: a mail's bytes shared with its `Original`.
enum Work {
    Mail {
        raw: Arc<Vec<u8>>,
        arrival: jiff::Timestamp,
    },
    Oversize {
        path: std::path::PathBuf,
        size: u64,
        limit: u64,
    },
    Record {
        envelope: Box<Envelope>,
        version: String,
    },
    Rejected {
        raw: Arc<Vec<u8>>,
        reason: &'static str,
        detail: String,
    },
}

impl Work {
    /// The payload to work on and what to quarantine if that work panics.
    fn of(payload: Payload) -> (Work, Original) {
        match payload {
            Payload::Mail { raw, arrival } => {
                let raw = Arc::new(raw);
                let original = Original::Bytes(Arc::clone(&raw));
                (Work::Mail { raw, arrival }, original)
            }
            Payload::Oversize { path, size, limit } => {
                let original = Original::File(path.clone());
                (Work::Oversize { path, size, limit }, original)
            }
            Payload::Record { envelope, version } => {
                let original = Original::Stored(envelope.upstream.raw_ref.clone());
                (Work::Record { envelope, version }, original)
            }
            Payload::Rejected {
                raw,
                reason,
                detail,
            } => {
                let raw = Arc::new(raw);
                let original = Original::Bytes(Arc::clone(&raw));
                (
                    Work::Rejected {
                        raw,
                        reason,
                        detail,
                    },
                    original,
                )
            }
        }
    }
}

/// What intake reads from the config: the SLA inputs (clocks started on arrival and on a
/// supplement, write-backs, the departments an item is routed to), `[routing.completeness]`
/// (re-checked when an update arrives) and the mailbox parse limits. Built once, by
/// [`IntakeInputs::from_config`].
#[derive(Debug, Clone)]
pub struct IntakeInputs {
    pub clocks: SlaInputs,
    pub completeness: Option<petitiond_core::routing::completeness::Completeness>,
    pub mail_limits: Limits,
}

pub struct Intake {
    /// Its config sections: [`IntakeInputs::from_config`].
    pub inputs: Arc<IntakeInputs>,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub metrics: Metrics,
    /// Poked after each commit so the relay produces without waiting for its tick.
    pub relay_wake: Arc<Notify>,
    /// The routing rules in force (swapped on reload).
    pub router: Arc<routing::Router>,
    /// New clocks' timers for the SLA engine.
    pub timers: mpsc::UnboundedSender<Vec<Timer>>,
    /// Repeat-petition linking with its key; `None`: disabled.
    pub repeat: Option<Arc<routing::repeat::Repeat>>,
}

impl Intake {
    /// Takes what is waiting (up to [`MAX_GROUP`] records, never waiting for more: a lone
    /// item is committed at once), reads their stored states in one call and commits the
    /// new items in one transaction.
    pub async fn run(self, mut rx: mpsc::Receiver<Incoming>) -> anyhow::Result<()> {
        let mut group = Group::default();
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(inc) => batch.push(inc),
                    Err(_) => break,
                }
            }
            group.known = self.prefetch(&batch).await;
            for inc in batch {
                self.take(&mut group, inc).await;
                if group.staged.len() >= MAX_GROUP {
                    self.flush(&mut group).await;
                }
            }
            self.flush(&mut group).await;
        }
        tracing::info!("intake drained");
        Ok(())
    }

    /// The stored state of every upstream record in `batch` whose id occurs once in it, in
    /// one store call (one per record before). A failure reads nothing: each record then asks
    /// on its own and meets the error there.
    async fn prefetch(&self, batch: &[Incoming]) -> HashMap<String, Option<ItemState>> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for inc in batch {
            if let Payload::Record { envelope, .. } = &inc.payload {
                *seen.entry(envelope.id.to_string()).or_default() += 1;
            }
        }
        let ids: Vec<String> = seen
            .into_iter()
            .filter(|(_, n)| *n == 1)
            .map(|(id, _)| id)
            .collect();
        if ids.is_empty() {
            return HashMap::new();
        }
        let read = ids.clone();
        match blocking(&self.store, move |s| s.item_states(&read)).await {
            Ok(states) => ids.into_iter().zip(states).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the batch's items at once; one by one");
                HashMap::new()
            }
        }
    }

    /// One incoming record: answered now (quarantine, update, duplicate, error) or staged in
    /// the group, answered by its commit.
    async fn take(&self, g: &mut Group, inc: Incoming) {
        let span = tracing::info_span!("intake", source = %inc.source, reference = %inc.reference);
        let result = self
            .one(g, inc.source, inc.reference, inc.payload)
            .instrument(span)
            .await;
        match result {
            Ok(Handled::Staged(s)) => {
                g.ids.insert(s.id.clone());
                g.person_keys.extend(s.person_keys.iter().cloned());
                g.staged.push((*s, inc.done));
            }
            // The channel may have stopped waiting (shutdown); the item is durable either way.
            Ok(Handled::Done(d)) => {
                let _ = inc.done.send(Ok(d));
            }
            Ok(Handled::Panicked(_)) => unreachable!("one() turns a panic into quarantine"),
            Err(e) => {
                let _ = inc.done.send(Err(e));
            }
        }
    }

    /// Makes the group durable in one transaction, then answers each item's channel (its
    /// cursor may move), counts, hands the new clocks to the SLA engine and wakes the relay.
    /// The transaction failing as a whole (the store, not an item) answers every item with
    /// the error: the channels retry, as they did one item at a time.
    async fn flush(&self, g: &mut Group) {
        g.ids.clear();
        g.person_keys.clear();
        if g.staged.is_empty() {
            return;
        }
        let (staged, replies): (Vec<Staged>, Vec<Reply>) =
            std::mem::take(&mut g.staged).into_iter().unzip();
        let (meta, items): (Vec<_>, Vec<NewItem>) = staged
            .into_iter()
            .map(|s| ((s.id, s.label, s.counts, s.span), s.item))
            .unzip();
        let n = items.len();
        let result = match self.sync_blobs().await {
            Ok(()) => blocking(&self.store, move |s| s.record_items(&items))
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        self.metrics.intake_group_size.observe(n as f64);
        let results = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(items = n, error = %e, "cannot record the group of new items; the channels retry");
                for reply in replies {
                    let _ = reply.send(Err(anyhow::anyhow!("cannot record the item: {e}")));
                }
                return;
            }
        };
        let mut woke = false;
        for (((id, label, counts, span), reply), recorded) in
            meta.into_iter().zip(replies).zip(results)
        {
            let _enter = span.enter();
            let answer = match recorded {
                Ok(Recorded::New(timers)) => {
                    self.metrics.items_received.get_or_create(&label).inc();
                    let counters = [
                        &self.metrics.needs_supplement,
                        &self.metrics.items_linked,
                        &self.metrics.repeat_petitions,
                    ];
                    for (yes, counter) in counts.iter().zip(counters) {
                        if *yes {
                            counter.get_or_create(&label).inc();
                        }
                    }
                    woke = true;
                    if !timers.is_empty() {
                        let _ = self.timers.send(timers);
                    }
                    tracing::info!(item = %id, "item recorded");
                    Ok(Disposition::Recorded(id))
                }
                Ok(Recorded::Duplicate) => {
                    self.metrics.items_duplicate.get_or_create(&label).inc();
                    tracing::info!(item = %id, "item already known; not recorded again");
                    Ok(Disposition::Duplicate(id))
                }
                Err(e) => {
                    tracing::error!(item = %id, error = %e, "cannot record the item; its channel retries");
                    Err(anyhow::anyhow!("cannot record item {id}: {e}"))
                }
            };
            let _ = reply.send(answer);
        }
        if woke {
            self.relay_wake.notify_one();
        }
    }

    /// A parsed letter's envelope recorded on its own, as if its mail had come in (tests).
    #[cfg(test)]
    async fn one_now_envelope(&self, env: Envelope) -> anyhow::Result<Disposition> {
        let mut g = Group::default();
        match self.record(&mut g, env, None).await? {
            Handled::Staged(s) => {
                let (done, answer) = oneshot::channel();
                g.staged.push((*s, done));
                self.flush(&mut g).await;
                answer.await?
            }
            Handled::Done(d) => Ok(d),
            Handled::Panicked(stage) => anyhow::bail!("panicked during {stage}"),
        }
    }

    /// Makes the blobs the channels wrote unsynced (`BlobStore::put_unsynced`) durable: called
    /// before every commit that may refer to one.
    async fn sync_blobs(&self) -> anyhow::Result<()> {
        let blobs = Arc::clone(&self.blobs);
        tokio::task::spawn_blocking(move || blobs.sync())
            .await
            .map_err(|e| anyhow::anyhow!(crate::panics::join_error(&e)))?
            .map_err(|e| anyhow::anyhow!("cannot make the stored records durable: {e}"))
    }

    /// One item, within the item boundary: a panic while handling it (normalizing in a
    /// blocking thread, or routing and recording here) quarantines the item with reason
    /// `panic` and its original bytes instead of ending intake or failing the channel.
    async fn one(
        &self,
        g: &mut Group,
        source: String,
        reference: String,
        payload: Payload,
    ) -> anyhow::Result<Handled> {
        use futures::FutureExt;
        let (work, original) = Work::of(payload);
        let handled =
            std::panic::AssertUnwindSafe(self.handle(g, source.clone(), reference.clone(), work))
                .catch_unwind()
                .await;
        match handled {
            Ok(Ok(Handled::Panicked(stage))) => self
                .panicked(source, reference, stage, original)
                .await
                .map(Handled::Done),
            Ok(other) => other,
            Err(_) => self
                .panicked(source, reference, "routing or recording", original)
                .await
                .map(Handled::Done),
        }
    }

    /// One item through intake as a channel would hand it over, committed and answered on
    /// its own (tests and one-off tools).
    pub async fn one_now(
        &self,
        source: String,
        reference: String,
        payload: Payload,
    ) -> anyhow::Result<Disposition> {
        let mut g = Group::default();
        let (done, answer) = oneshot::channel();
        let inc = Incoming {
            source,
            reference,
            payload,
            done,
        };
        self.take(&mut g, inc).await;
        self.flush(&mut g).await;
        answer.await?
    }

    /// Quarantines an item whose handling panicked. The panic's message is dropped: std's
    /// messages quote the data they failed on; the panic hook logged where it happened.
    async fn panicked(
        &self,
        source: String,
        reference: String,
        stage: &'static str,
        original: Original,
    ) -> anyhow::Result<Disposition> {
        tracing::error!(
            stage,
            "panic while handling an item; it is quarantined and intake goes on"
        );
        let detail = format!(
            "petitiond panicked during {stage} (a bug: please report it with the quarantined bytes); the panic message is not kept"
        );
        self.quarantine(source, reference, PANIC_REASON, detail, original)
            .await
    }

    async fn handle(
        &self,
        g: &mut Group,
        source: String,
        reference: String,
        work: Work,
    ) -> anyhow::Result<Handled> {
        let (raw, arrival) = match work {
            Work::Record { envelope, version } => {
                return self.record_or_update(g, *envelope, version).await;
            }
            Work::Rejected {
                raw,
                reason,
                detail,
            } => {
                return self
                    .quarantine(source, reference, reason, detail, Original::Bytes(raw))
                    .await
                    .map(Handled::Done);
            }
            Work::Oversize { path, size, limit } => {
                let bad = BadMail::Oversize { size, limit };
                return self
                    .quarantine(
                        source,
                        reference,
                        bad.reason(),
                        bad.to_string(),
                        Original::File(path),
                    )
                    .await
                    .map(Handled::Done);
            }
            Work::Mail { raw, arrival } => (raw, arrival),
        };
        let blobs = Arc::clone(&self.blobs);
        let limits = self.inputs.mail_limits.clone();
        let (src, bytes) = (source.clone(), Arc::clone(&raw));
        let joined = tokio::task::spawn_blocking(move || {
            parse::normalize(&bytes, arrival, &src, &limits, blobs.as_ref())
        })
        .await;
        let normalized = match joined {
            Ok(n) => n,
            Err(e) if e.is_panic() => return Ok(Handled::Panicked("normalization")),
            // Cancelled: the runtime is shutting down; the mail is read again next time.
            Err(_) => anyhow::bail!("normalization was cancelled"),
        };
        let d = match normalized {
            Ok(env) => return self.record(g, env, None).await,
            // The blob store failed, not the mail: not durable, the channel retries.
            Err(BadMail::Blob(e)) => anyhow::bail!("cannot store the mail's parts: {e}"),
            Err(bad) => {
                self.quarantine(
                    source,
                    reference,
                    bad.reason(),
                    bad.to_string(),
                    Original::Bytes(raw),
                )
                .await?
            }
        };
        Ok(Handled::Done(d))
    }

    /// An upstream record: new → recorded and routed; known at the same version → a re-poll;
    /// known at another version → an update event to the departments it was routed to.
    async fn record_or_update(
        &self,
        g: &mut Group,
        env: Envelope,
        version: String,
    ) -> anyhow::Result<Handled> {
        let id = env.id.to_string();
        if g.ids.contains(&id) {
            // Its earlier version is in the group: the store must know it to tell an update.
            self.flush(g).await;
        }
        let known = match g.known.remove(&id) {
            Some(state) => state,
            None => blocking(&self.store, move |s| s.item_state(&id)).await?,
        };
        let Some((old, old_version)) = known else {
            return self.record(g, env, Some(version)).await;
        };
        let label = ChannelLabel {
            channel: env.channel.as_str().to_string(),
        };
        let id = env.id.to_string();
        let stale = matches!(
            (env.upstream.updated_at, old.upstream.updated_at),
            (Some(new), Some(was)) if new < was
        );
        if old_version.as_deref() == Some(version.as_str()) || stale {
            self.metrics.items_duplicate.get_or_create(&label).inc();
            tracing::debug!(item = %id, stale, "item already known at this version");
            return Ok(Handled::Done(Disposition::Duplicate(id)));
        }
        let now = jiff::Timestamp::now();
        let mut merged = old.clone();
        merged.upstream = env.upstream;
        merged.upstream_created_at = env.upstream_created_at;
        merged.petitioner = env.petitioner;
        merged.request = env.request;
        merged.attachments = env.attachments;
        for f in env.flags {
            if !merged.flags.contains(&f) {
                merged.flags.push(f);
            }
        }
        // Did the update supply what an incomplete item lacked? (Flags first: the update
        // record carries the envelope as it now stands.)
        let recheck = match &self.inputs.completeness {
            Some(c) => routing::completeness::recheck(c, &mut merged),
            None => routing::completeness::Recheck::Unchanged,
        };
        let supplement_clocks = supplement_clocks(&self.inputs.clocks.sla);
        if let routing::completeness::Recheck::Supplied(_) = &recheck {
            for c in merged
                .sla
                .iter_mut()
                .filter(|c| supplement_clocks.contains(&c.clock))
            {
                c.state = petitiond_core::sla::clock::State::Stopped.as_str().into();
            }
        }
        let departments: Vec<(petitiond_core::routing::Department, Role)> = merged
            .routing
            .iter()
            .flat_map(|r| {
                std::iter::once((r.lead.clone(), Role::Lead))
                    .chain(r.assists.iter().map(|a| (a.clone(), Role::Assist)))
            })
            .filter_map(|(d, role)| self.inputs.clocks.department(&d).map(|d| (d.clone(), role)))
            .collect();
        let outbox = departments
            .iter()
            .map(|(dept, role)| updated_record(&merged, dept, *role, &version, now))
            .collect();
        let update = ItemUpdate {
            envelope: merged,
            expected_version: old_version,
            version,
            outbox,
        };
        let applied = match recheck {
            routing::completeness::Recheck::Supplied(supplied) => {
                let supplement = Supplement {
                    clocks: supplement_clocks,
                    at: now,
                };
                self.sync_blobs().await?;
                let timers = blocking(&self.store, move |s| {
                    s.record_supplement(&update, &supplement, &mut |stopped| {
                        departments
                            .iter()
                            .map(|(dept, role)| {
                                supplemented_record(
                                    &update.envelope,
                                    dept,
                                    *role,
                                    &update.version,
                                    &supplied,
                                    stopped,
                                    now,
                                )
                            })
                            .collect()
                    })
                })
                .await?;
                if let Some(timers) = &timers {
                    self.metrics.items_supplemented.get_or_create(&label).inc();
                    if !timers.is_empty() {
                        let _ = self.timers.send(timers.clone());
                    }
                    tracing::info!(item = %id, clocks_stopped = timers.len(), "upstream update supplied what the item lacked: needs_supplement cleared, supplement clock stopped");
                }
                timers.is_some()
            }
            recheck => {
                if let routing::completeness::Recheck::StillMissing { supplied, missing } = &recheck
                {
                    tracing::info!(item = %id, supplied = ?supplied, missing = ?missing, "upstream update: the item still needs a supplement");
                }
                self.sync_blobs().await?;
                blocking(&self.store, move |s| s.record_update(&update)).await?
            }
        };
        if applied {
            self.metrics.items_updated.get_or_create(&label).inc();
            self.relay_wake.notify_one();
            tracing::info!(item = %id, "upstream update recorded");
            Ok(Handled::Done(Disposition::Updated(id)))
        } else {
            self.metrics.items_duplicate.get_or_create(&label).inc();
            Ok(Handled::Done(Disposition::Duplicate(id)))
        }
    }

    /// A new item: routed, linked, its clocks started and its rows prepared — staged for the
    /// group's commit.
    async fn record(
        &self,
        g: &mut Group,
        mut env: Envelope,
        version: Option<String>,
    ) -> anyhow::Result<Handled> {
        let person_keys = self
            .repeat
            .as_ref()
            .map(|r| r.person_keys(&env))
            .unwrap_or_default();
        if g.ids.contains(env.id.as_str()) || person_keys.iter().any(|k| g.person_keys.contains(k))
        {
            // The same item or the same petitioner is in the group: the look-ups below must
            // see it (a duplicate, a link, a repeat count).
            self.flush(g).await;
        }
        let (routed, person_index) = self
            .route_and_link(&mut env, person_keys.clone(), jiff::Timestamp::now())
            .await?;
        let (decision, departments) = routed.stamp(&mut env);
        let arrived = env.received_at;
        let clocks = start_received_clocks(&self.inputs.clocks.sla, &self.metrics, &mut env);
        let outbox = departments
            .iter()
            .enumerate()
            .map(|(i, d)| routed_record(&env, d, if i == 0 { Role::Lead } else { Role::Assist }))
            .collect();
        // The upstream hears that the item is acknowledged and when it is first due (sources
        // with a status write-back only), in the item's own transaction.
        let inputs = &self.inputs.clocks;
        let (sources, tz) = (&inputs.http_sources, inputs.tz());
        let mut writeback: Vec<_> = writeback::acknowledged(sources, tz, &inputs.departments, &env)
            .into_iter()
            .collect();
        let started: Vec<&Clock> = clocks.iter().map(|(c, _)| c).collect();
        writeback.extend(writeback::dues(sources, tz, &env, &started, arrived));
        let id = env.id.to_string();
        let channel = env.channel.as_str().to_string();
        let has = |flag: &str| env.flags.iter().any(|f| f == flag);
        let counts = [
            has(routing::completeness::NEEDS_SUPPLEMENT),
            !env.related.is_empty(),
            has(routing::rules::REPEAT_PETITION_FLAG),
        ];
        let item = NewItem {
            envelope: env,
            decision,
            outbox,
            clocks,
            version,
            person_index,
            writeback,
        };
        Ok(Handled::Staged(Box::new(Staged {
            item,
            id,
            label: ChannelLabel { channel },
            counts,
            person_keys,
            span: tracing::Span::current(),
        })))
    }

    async fn quarantine(
        &self,
        source: String,
        reference: String,
        reason: &'static str,
        detail: String,
        original: Original,
    ) -> anyhow::Result<Disposition> {
        let blobs = Arc::clone(&self.blobs);
        let stored = tokio::task::spawn_blocking(move || match original {
            Original::Bytes(raw) => blobs.put(&raw),
            Original::File(p) => blobs.put_file(&p),
            Original::Stored(claim) => {
                let sha = claim.strip_prefix("sha256:").unwrap_or(&claim);
                blobs.put(&blobs.get(sha)?)
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!(crate::panics::join_error(&e)))??;
        let q = Quarantined {
            source: source.clone(),
            reference: reference.clone(),
            reason: reason.to_string(),
            detail: detail.clone(),
            raw_ref: stored.claim(),
            size: stored.size,
        };
        let (id, new) = blocking(&self.store, move |s| s.quarantine(&q)).await?;
        if !new {
            tracing::debug!(quarantine_id = id, reason, "input already in quarantine");
            return Ok(Disposition::Quarantined(id));
        }
        self.metrics.quarantine(&source, reason);
        tracing::warn!(quarantine_id = id, reason, detail = %detail, "input quarantined");
        Ok(Disposition::Quarantined(id))
    }
}

/// What handling an item came to: an answer for the channel, or a panic caught in a blocking
/// thread (by the stage it happened in) that the item boundary turns into quarantine.
enum Handled {
    Done(Disposition),
    /// A new item waiting for the group's commit.
    Staged(Box<Staged>),
    Panicked(&'static str),
}
