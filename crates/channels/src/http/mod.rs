//! The HTTP channels: the 12345 hotline (Open311 GeoReport v2, or a mapped vendor API) and the
//! web petition portal (paged JSON with a field mapping).
//!
//! One task per source polls, one poll at a time (a poll never overlaps the next: the loop
//! awaits it), and for each page: splits the body into records keeping their original bytes,
//! reads each through the mapping, fetches attachments named by URL into the blob store, hands
//! every record to intake and waits until **all** of them are durable — recorded, recognised,
//! recorded as an update, or quarantined — and only then moves the source's cursor in the
//! store. A crash anywhere re-reads from the old cursor (minus the overlap); intake recognises
//! what it already has by envelope id and upstream version.
//!
//! The cursor never moves past a record that is not durable, and never far into the future:
//! an item whose attachment fails transiently is *held* (not handed over; the cursor stays
//! just before it while the rest of the source flows) until it succeeds or its budget of
//! failed polls runs out and it is quarantined as `attachment_failed`; a time further ahead
//! than `max_clock_skew` is clamped and raises a `channel.cursor_clamped` event, once.
//!
//! - `client`: timeouts, auth, rate limit, retries with backoff and `Retry-After`, breaker.
//! - `sign`: the app-key + secret HMAC signature.
//! - `record`: one JSON record → mapped fields, or a reason to quarantine it.
//! - `open311` / `paged`: how each protocol walks from the cursor to now.
//! - `writeback`: item states written back to an upstream's status API (its own task).

pub mod client;
pub mod open311;
pub mod paged;
mod prepare;
pub mod record;
pub mod sign;
pub mod writeback;

use super::{Incoming, Payload};
use crate::config::http::{HttpSourceConfig, Protocol};
use client::{FetchError, Fetcher, Req};
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use petitiond_core::envelope::{Attachment, Envelope, Personal, Petitioner, Request, Upstream};
use petitiond_kafka::wire::{CONTENT_TYPE, SPEC_VERSION};
use petitiond_metrics::{Metrics, SourceLabel, SourceOutcome};
use petitiond_store::blobs::BlobStore;
use petitiond_store::{Lease, NewOutbox, Store, blocking};
use prepare::Mapping;
pub use prepare::build_envelope;
use record::{BadRecord, Mapped};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Records of a page prepared at once (their blob writes and fsyncs overlap).
const PREPARE_CONCURRENCY: usize = 16;

pub const TYPE_CHANNEL_STALE: &str = "cn.gov.petition.channel.stale.v1";
pub const TYPE_CHANNEL_RECOVERED: &str = "cn.gov.petition.channel.recovered.v1";
/// An upstream time ahead of our clock by more than `max_clock_skew` was clamped.
pub const TYPE_CHANNEL_CURSOR_CLAMPED: &str = "cn.gov.petition.channel.cursor_clamped.v1";
/// Records outside the requested window: the upstream ignores a query bound.
pub const TYPE_CHANNEL_BOUND_IGNORED: &str = "cn.gov.petition.channel.bound_ignored.v1";

/// Flag on an item whose attachment URL could not be stored for good (gone, too large,
/// another type, another origin, a redirect refused).
pub const ATTACHMENT_UNAVAILABLE: &str = "attachment_unavailable";

/// Quarantine reason of an item whose attachment kept failing for `max_failed_polls` polls.
pub const ATTACHMENT_FAILED: &str = "attachment_failed";

/// Flag prefix on an item one of whose optional fields was malformed and left out
/// (`dropped_field:address`).
pub const DROPPED_FIELD: &str = "dropped_field:";

/// Budget entries kept at most (the oldest go first), and for at most this long unseen.
const BUDGET_MAX_ENTRIES: usize = 10_000;
const BUDGET_KEEP_UNSEEN: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// What `/channels` shows about one source.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceHealth {
    pub channel: String,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub stale: bool,
    pub polls: u64,
    pub failed_polls: u64,
}

/// Shared between the channel tasks and the admin server.
pub type ChannelHealth = Arc<Mutex<BTreeMap<String, SourceHealth>>>;

/// Why a poll ended early. The cursor stays where it was in every case.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("intake closed")]
    IntakeClosed,
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct HttpChannel {
    pub config: Arc<HttpSourceConfig>,
    /// The office's time zone: upstream times without an offset are read in it.
    pub tz: TimeZone,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub intake: mpsc::Sender<Incoming>,
    pub metrics: Metrics,
    pub health: ChannelHealth,
    pub alerts_topic: String,
    pub relay_wake: Arc<Notify>,
    /// Several instances: the lease this channel runs under; its cursor moves only while the
    /// lease is the unit's newest (`StoreError::Fenced` otherwise, and the channel stops).
    pub lease: Option<Lease>,
}

/// The cursor as stored: a time watermark (each poll starts `overlap` before it), what was
/// learnt about the upstream, and the attachment retry budgets of held items.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Cursor {
    pub(crate) watermark: Timestamp,
    /// Open311: the server was seen ignoring the window's upper bound, so it is read on the
    /// records' own times (see `open311`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) upper_bound_ignored: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) attachment_failures: Vec<AttachmentFailure>,
}

/// One item's attachment retry budget: polls in which an attachment of this version failed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AttachmentFailure {
    pub(crate) upstream_id: String,
    pub(crate) version: String,
    pub(crate) failed_polls: u32,
    /// When it last failed (counted once per poll) and when it was last read.
    pub(crate) last_failed_at: Timestamp,
    pub(crate) last_seen_at: Timestamp,
}

/// Which record time a protocol's cursor follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeKey {
    Updated,
    Created,
}

impl TimeKey {
    /// The field the protocol's window or `after` parameter filters on.
    pub(crate) fn bound(self, m: &Mapped) -> Option<Timestamp> {
        match self {
            TimeKey::Updated => m.updated,
            TimeKey::Created => m.created,
        }
    }

    /// The record's time for the cursor: the bound field, else the other one.
    pub(crate) fn cursor(self, m: &Mapped) -> Option<Timestamp> {
        match self {
            TimeKey::Updated => m.updated.or(m.created),
            TimeKey::Created => m.created.or(m.updated),
        }
    }
}

/// What a source remembers for the length of a run (not persisted): which alerts are out.
#[derive(Debug, Default)]
pub struct RunState {
    /// A `cursor_clamped` event is out and no poll since has been without a clamp.
    clamped: bool,
    /// Bound-ignored events raised this run, by parameter.
    bounds_alerted: Vec<String>,
}

/// One poll's progress: the cursor as read and moved, and how far it may move.
pub(crate) struct PollCtx {
    /// Wall clock at the start of the poll.
    pub(crate) started: Timestamp,
    pub(crate) cursor: Cursor,
    /// The cursor may not pass this in this poll: just before the earliest held item.
    ceiling: Option<Timestamp>,
    /// Attachment budgets, shared by the records a page prepares at once.
    budget: Mutex<Budget>,
    dirty: bool,
    clamped: bool,
}

#[derive(Debug, Default)]
struct Budget {
    entries: Vec<AttachmentFailure>,
    changed: bool,
}

/// The outcome of one page.
#[derive(Debug, Default)]
pub(crate) struct PageResult {
    /// The latest cursor time among the page's records (handed over or held).
    pub(crate) latest: Option<Timestamp>,
    /// The earliest and latest bound-field times among them (held ones included).
    pub(crate) bounds: Option<(Timestamp, Timestamp)>,
    /// Some item was held: the cursor stays before this time (`None`: an item without a
    /// time, so the cursor stays where it is).
    pub(crate) hold: Option<Option<Timestamp>>,
}

/// One record prepared: handed to intake, or held back for the next poll.
enum Prepared {
    Hand {
        reference: String,
        payload: Payload,
        time: Option<Timestamp>,
        bound: Option<Timestamp>,
        /// The record's raw bytes, stored (unsynced) with the page's before it is handed over.
        raw: Option<Vec<u8>>,
    },
    /// Held back: its cursor time and bound-field time.
    Held(Option<Timestamp>, Option<Timestamp>),
}

/// One attachment's fate.
enum Fetched {
    Stored(Attachment),
    /// Cannot be had, for good: the item flows, flagged.
    Unavailable,
    /// Failed for now (after this poll's attempts): `(reference, why)`.
    Failed(String, String),
}

impl HttpChannel {
    fn name(&self) -> &str {
        &self.config.name
    }

    /// Polls until `stop` fires. Returns an error only when the store fails for good.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let fetcher = Fetcher::new(&self.config, self.metrics.clone())?;
        let started = Timestamp::now();
        let mut last_success: Option<Timestamp> = None;
        let mut stale = false;
        let mut failures: u32 = 0;
        let mut run = RunState::default();
        self.update_health(|h| h.channel = self.config.channel.as_str().into());
        tracing::info!(source = %self.name(), base = %crate::config::url_for_log(&self.config.base_url), "http channel polling");
        while !stop.is_cancelled() {
            let result = self.poll(&fetcher, &stop, &mut run).await;
            let now = Timestamp::now();
            let wait = match result {
                Ok(n) => {
                    failures = 0;
                    last_success = Some(now);
                    self.metrics
                        .upstream_last_success
                        .get_or_create(&self.label())
                        .set(now.as_second());
                    self.update_health(|h| {
                        h.polls += 1;
                        h.last_success_at = Some(now.to_string());
                        h.last_error = None;
                    });
                    if n > 0 {
                        tracing::info!(source = %self.name(), records = n, "poll done");
                    }
                    if stale {
                        stale = false;
                        self.stale_changed(false, last_success, now).await?;
                    }
                    self.config.poll_interval
                }
                Err(PollError::Fetch(FetchError::Stopped)) | Err(PollError::IntakeClosed) => break,
                // Another instance owns the source now (several instances): this channel stops;
                // retrying could never write again.
                Err(PollError::Other(e)) if Lease::fenced_in(e.as_ref()) => return Err(e),
                Err(e) => {
                    failures += 1;
                    let msg = e.to_string();
                    tracing::warn!(source = %self.name(), consecutive_failures = failures, error = %msg, "poll failed; the cursor stays");
                    self.update_health(|h| {
                        h.failed_polls += 1;
                        h.last_error = Some(msg.clone());
                    });
                    // Whatever failed (the upstream, a bad Link header, the store), the cursor
                    // stays and the next poll retries; a source that keeps failing goes stale
                    // and raises the alert. A broken store also stops intake, which stops the
                    // daemon: that is not this loop's decision.
                    match e {
                        PollError::Fetch(FetchError::CircuitOpen(d)) => d,
                        _ => fetcher.backoff(failures.min(10)),
                    }
                }
            };
            let since = last_success.unwrap_or(started);
            if !stale
                && now.duration_since(since).as_secs().max(0) as u64
                    >= self.config.stale_after.as_secs()
            {
                stale = true;
                self.stale_changed(true, last_success, now).await?;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => {}
            }
        }
        tracing::info!(source = %self.name(), "http channel stopped");
        Ok(())
    }

    fn label(&self) -> SourceLabel {
        SourceLabel {
            source: self.name().to_string(),
        }
    }

    fn update_health(&self, f: impl FnOnce(&mut SourceHealth)) {
        if let Ok(mut h) = self.health.lock() {
            f(h.entry(self.name().to_string()).or_default());
        }
    }

    /// Raises (or clears) the stale-channel alert: every SLA behind a stale source is at risk.
    async fn stale_changed(
        &self,
        is_stale: bool,
        last_success: Option<Timestamp>,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        self.metrics
            .channel_stale
            .get_or_create(&self.label())
            .set(i64::from(is_stale));
        self.update_health(|h| h.stale = is_stale);
        let (kind, ce_type) = if is_stale {
            tracing::error!(source = %self.name(), last_success = ?last_success.map(|t| t.to_string()), stale_after_secs = self.config.stale_after.as_secs(), "channel stale: no successful poll");
            ("channel_stale", TYPE_CHANNEL_STALE)
        } else {
            tracing::info!(source = %self.name(), "channel recovered");
            ("channel_recovered", TYPE_CHANNEL_RECOVERED)
        };
        let payload = serde_json::json!({
            "version": 1,
            "kind": kind,
            "source": self.name(),
            "channel": self.config.channel.as_str(),
            "last_success_at": last_success.map(|t| t.to_string()),
            "stale_after_secs": self.config.stale_after.as_secs(),
            "at": now.to_string(),
        });
        self.channel_event(ce_type, now, &payload).await
    }

    /// Puts one channel event (`schema/channel-event.v1.json`) on the alerts topic.
    async fn channel_event(
        &self,
        ce_type: &str,
        now: Timestamp,
        payload: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let id = uuid::Uuid::new_v4().to_string();
        let record = NewOutbox {
            topic: self.alerts_topic.clone(),
            key: format!("channel:{}", self.name()),
            ce_id: id.clone(),
            headers: vec![
                ("ce_specversion".into(), SPEC_VERSION.into()),
                ("ce_id".into(), id),
                (
                    "ce_source".into(),
                    format!("urn:petitiond:channel:{}", self.name()),
                ),
                ("ce_type".into(), ce_type.into()),
                ("ce_time".into(), now.to_string()),
                ("ce_subject".into(), self.name().to_string()),
                ("content-type".into(), CONTENT_TYPE.into()),
            ],
            payload: serde_json::to_vec(payload)?,
        };
        let key = format!("channel:{}", self.name());
        blocking(&self.store, move |s| s.enqueue(&key, &record)).await?;
        self.relay_wake.notify_one();
        Ok(())
    }

    /// Raises `channel.bound_ignored` for `parameter`, once per run.
    pub(crate) async fn bound_ignored(
        &self,
        run: &mut RunState,
        parameter: &str,
        fallback: &str,
        detail: &str,
    ) -> Result<(), PollError> {
        if run.bounds_alerted.iter().any(|p| p == parameter) {
            return Ok(());
        }
        run.bounds_alerted.push(parameter.to_string());
        self.metrics
            .upstream_anomalies
            .get_or_create(&SourceOutcome {
                source: self.name().to_string(),
                outcome: "bound_ignored".into(),
            })
            .inc();
        tracing::error!(source = %self.name(), parameter, fallback, "{detail}");
        let now = Timestamp::now();
        let payload = serde_json::json!({
            "version": 1,
            "kind": "bound_ignored",
            "source": self.name(),
            "channel": self.config.channel.as_str(),
            "parameter": parameter,
            "fallback": fallback,
            "detail": detail,
            "at": now.to_string(),
        });
        Ok(self
            .channel_event(TYPE_CHANNEL_BOUND_IGNORED, now, &payload)
            .await?)
    }

    /// Reads the stored cursor (a source without one starts `initial_lookback` ago).
    async fn load_cursor(&self) -> Result<Cursor, PollError> {
        let name = self.name().to_string();
        let stored = blocking(&self.store, move |s| s.cursor(&name))
            .await
            .map_err(anyhow::Error::from)?;
        Ok(
            match stored.and_then(|v| serde_json::from_str::<Cursor>(&v).ok()) {
                Some(c) => c,
                None => Cursor {
                    watermark: Timestamp::now()
                        - jiff::SignedDuration::try_from(self.config.initial_lookback)
                            .unwrap_or_default(),
                    upper_bound_ignored: false,
                    attachment_failures: Vec::new(),
                },
            },
        )
    }

    /// Stores the cursor as `ctx` has it, with its pruned attachment budgets.
    pub(crate) async fn save(&self, ctx: &mut PollCtx) -> Result<(), PollError> {
        let mut value = ctx.cursor.clone();
        {
            let mut b = ctx.budget.lock().expect("budget lock");
            let keep_after = ctx.started - BUDGET_KEEP_UNSEEN;
            b.entries.retain(|e| e.last_seen_at >= keep_after);
            if b.entries.len() > BUDGET_MAX_ENTRIES {
                b.entries.sort_by_key(|e| std::cmp::Reverse(e.last_seen_at));
                b.entries.truncate(BUDGET_MAX_ENTRIES);
            }
            b.changed = false;
            value.attachment_failures = b.entries.clone();
        }
        let name = self.name().to_string();
        let text = serde_json::to_string(&value).map_err(anyhow::Error::from)?;
        let lease = self.lease.clone();
        blocking(&self.store, move |s| match &lease {
            Some(l) => s.set_cursor_leased(&name, &text, l),
            None => s.set_cursor(&name, &text),
        })
        .await
        .map_err(anyhow::Error::from)?;
        ctx.dirty = false;
        Ok(())
    }

    /// After a page: the cursor may not pass a held item. Stores the cursor if anything changed.
    pub(crate) async fn page_done(
        &self,
        ctx: &mut PollCtx,
        page: &PageResult,
    ) -> Result<(), PollError> {
        if let Some(hold) = page.hold {
            let limit = match hold {
                Some(t) => t - jiff::SignedDuration::from_millis(1),
                None => ctx.cursor.watermark,
            };
            ctx.ceiling = Some(ctx.ceiling.map_or(limit, |c| c.min(limit)));
        }
        let budget_changed = ctx.budget.lock().expect("budget lock").changed;
        if ctx.dirty || budget_changed {
            self.save(ctx).await?;
        }
        Ok(())
    }

    /// Moves the cursor forward (never back, never past a held item, never further than
    /// `max_clock_skew` ahead of our clock — which raises `channel.cursor_clamped` once) and
    /// stores it. Called only after every record up to `to` is durable or held.
    pub(crate) async fn advance(
        &self,
        ctx: &mut PollCtx,
        run: &mut RunState,
        to: Timestamp,
    ) -> Result<(), PollError> {
        let now = Timestamp::now();
        let limit =
            now + jiff::SignedDuration::try_from(self.config.max_clock_skew).unwrap_or_default();
        let mut to = to;
        if to > limit {
            ctx.clamped = true;
            if !run.clamped {
                run.clamped = true;
                self.metrics
                    .upstream_anomalies
                    .get_or_create(&SourceOutcome {
                        source: self.name().to_string(),
                        outcome: "cursor_clamped".into(),
                    })
                    .inc();
                tracing::error!(source = %self.name(), record_time = %to, clamped_to = %limit, max_clock_skew_secs = self.config.max_clock_skew.as_secs(), "an upstream time is ahead of our clock: cursor clamped");
                let payload = serde_json::json!({
                    "version": 1,
                    "kind": "cursor_clamped",
                    "source": self.name(),
                    "channel": self.config.channel.as_str(),
                    "record_time": to.to_string(),
                    "clamped_to": limit.to_string(),
                    "max_clock_skew_secs": self.config.max_clock_skew.as_secs(),
                    "at": now.to_string(),
                });
                self.channel_event(TYPE_CHANNEL_CURSOR_CLAMPED, now, &payload)
                    .await?;
            }
            to = limit;
        }
        if let Some(c) = ctx.ceiling {
            to = to.min(c);
        }
        if to > ctx.cursor.watermark {
            ctx.cursor.watermark = to;
            ctx.dirty = true;
        }
        let budget_changed = ctx.budget.lock().expect("budget lock").changed;
        if ctx.dirty || budget_changed {
            self.save(ctx).await?;
        }
        Ok(())
    }

    /// One poll from the cursor to now. Returns how many records it handed to intake. (`pub`
    /// for the daemon's tests, which drive single polls through the real intake.)
    pub async fn poll(
        &self,
        f: &Fetcher,
        stop: &CancellationToken,
        run: &mut RunState,
    ) -> Result<usize, PollError> {
        let mut cursor = self.load_cursor().await?;
        let entries = std::mem::take(&mut cursor.attachment_failures);
        let mut ctx = PollCtx {
            started: Timestamp::now(),
            cursor,
            ceiling: None,
            budget: Mutex::new(Budget {
                entries,
                changed: false,
            }),
            dirty: false,
            clamped: false,
        };
        let result = match &self.config.protocol {
            Protocol::Open311 { .. } => open311::poll(self, f, stop, &mut ctx, run).await,
            Protocol::Paged { .. } => paged::poll(self, f, stop, &mut ctx, run).await,
        };
        if result.is_ok() && !ctx.clamped {
            run.clamped = false;
        }
        result
    }

    /// `path` on the source's base URL.
    pub fn url(&self, path: &str) -> Result<reqwest::Url, PollError> {
        reqwest::Url::parse(&format!("{}{}", self.config.base_url, path))
            .map_err(|e| PollError::Other(anyhow::anyhow!("bad URL for {path}: {e}")))
    }

    /// A page's records prepared: mapped, their known versions read in one store call,
    /// attachments fetched a few records at a time, then the raw bytes of every record to
    /// hand over written in one blob-store call (unsynced: intake syncs before it commits).
    /// Three store round trips per page instead of two per record.
    async fn prepare_page(
        &self,
        f: &Fetcher,
        stop: &CancellationToken,
        ctx: &PollCtx,
        page: &str,
        records: &[Box<RawValue>],
        key: TimeKey,
    ) -> Result<Vec<Prepared>, PollError> {
        let mapped: Vec<Mapping> = records
            .iter()
            .enumerate()
            .map(|(i, r)| self.map(page, i, r, key))
            .collect();
        let ids: Vec<String> = mapped
            .iter()
            .filter_map(|m| m.id(self.config.channel))
            .collect();
        let mut known = if ids.is_empty() {
            Vec::new()
        } else {
            blocking(&self.store, move |s| s.item_versions(&ids))
                .await
                .map_err(anyhow::Error::from)?
        }
        .into_iter();
        let inputs: Vec<(Mapping, Option<String>)> = mapped
            .into_iter()
            .map(|m| {
                let k = match m {
                    Mapping::Mapped { .. } => known.next().flatten(),
                    Mapping::Done(_) => None,
                };
                (m, k)
            })
            .collect();
        // By index, not by reference: a closure taking `&RawValue` makes the future not
        // `Send` for every lifetime (a known limit of higher-ranked closures in streams).
        let mut prepared: Vec<Prepared> = futures::stream::iter(inputs.into_iter().enumerate())
            .map(|(i, (m, k))| self.prepare(f, stop, ctx, &records[i], m, k))
            .buffered(PREPARE_CONCURRENCY)
            .try_collect()
            .await?;
        let raws: Vec<Vec<u8>> = prepared
            .iter_mut()
            .filter_map(|p| match p {
                Prepared::Hand { raw, .. } => raw.take(),
                Prepared::Held(..) => None,
            })
            .collect();
        if !raws.is_empty() {
            let blobs = Arc::clone(&self.blobs);
            tokio::task::spawn_blocking(move || blobs.put_unsynced_many(&raws))
                .await
                .map_err(anyhow::Error::from)?
                .map_err(anyhow::Error::from)?;
        }
        Ok(prepared)
    }

    /// Hands one page's records to intake and waits until all are durable (or held back:
    /// see [`PageResult::hold`]).
    pub(crate) async fn handle_page(
        &self,
        f: &Fetcher,
        stop: &CancellationToken,
        ctx: &PollCtx,
        page: &str,
        records: Vec<Box<RawValue>>,
        key: TimeKey,
    ) -> Result<PageResult, PollError> {
        let mut waiting = Vec::with_capacity(records.len());
        let mut out = PageResult::default();
        let prepared = self.prepare_page(f, stop, ctx, page, &records, key).await?;
        for p in prepared {
            let (reference, payload, time, bound) = match p {
                Prepared::Hand {
                    reference,
                    payload,
                    time,
                    bound,
                    ..
                } => (reference, payload, time, bound),
                Prepared::Held(time, bound) => {
                    if let Some(t) = time {
                        out.latest = Some(out.latest.map_or(t, |l| l.max(t)));
                    }
                    if let Some(b) = bound {
                        out.bounds =
                            Some(out.bounds.map_or((b, b), |(lo, hi)| (lo.min(b), hi.max(b))));
                    }
                    out.hold = Some(match (out.hold, time) {
                        (None, t) => t,
                        (Some(Some(a)), Some(b)) => Some(a.min(b)),
                        _ => None,
                    });
                    continue;
                }
            };
            if let Some(t) = time {
                out.latest = Some(out.latest.map_or(t, |l| l.max(t)));
            }
            if let Some(b) = bound {
                out.bounds = Some(out.bounds.map_or((b, b), |(lo, hi)| (lo.min(b), hi.max(b))));
            }
            let (done, answer) = oneshot::channel();
            let inc = Incoming {
                source: self.name().to_string(),
                reference,
                payload,
                done,
            };
            if self.intake.send(inc).await.is_err() {
                return Err(PollError::IntakeClosed);
            }
            waiting.push(answer);
        }
        for answer in waiting {
            match answer.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(PollError::Other(e)),
                Err(_) => return Err(PollError::IntakeClosed),
            }
        }
        Ok(out)
    }
}
