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
//! - `client`: timeouts, auth, rate limit, retries with backoff and `Retry-After`, breaker.
//! - `sign`: the app-key + secret HMAC signature.
//! - `record`: one JSON record → mapped fields, or a reason to quarantine it.
//! - `open311` / `paged`: how each protocol walks from the cursor to now.

pub mod client;
pub mod open311;
pub mod paged;
pub mod record;
pub mod sign;

use super::{Incoming, Payload};
use crate::config::http::{HttpSourceConfig, Protocol};
use crate::envelope::{Attachment, Envelope, Personal, Petitioner, Request, Upstream};
use crate::kafka::wire::{CONTENT_TYPE, SPEC_VERSION};
use crate::metrics::{Metrics, SourceLabel, SourceOutcome};
use crate::store::blobs::BlobStore;
use crate::store::{NewOutbox, Store, blocking};
use client::{FetchError, Fetcher, Req};
use futures::StreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
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

/// Flag on an item whose attachment URL could not be stored (gone, too large, wrong type).
pub const ATTACHMENT_UNAVAILABLE: &str = "attachment_unavailable";

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
}

/// The cursor as stored: a time watermark. Each poll starts `overlap` before it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Cursor {
    watermark: Timestamp,
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
        self.update_health(|h| h.channel = self.config.channel.as_str().into());
        tracing::info!(source = %self.name(), base = %crate::config::url_for_log(&self.config.base_url), "http channel polling");
        while !stop.is_cancelled() {
            let result = self.poll(&fetcher, &stop).await;
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
        let id = uuid::Uuid::new_v4().to_string();
        let payload = serde_json::json!({
            "version": 1,
            "kind": kind,
            "source": self.name(),
            "channel": self.config.channel.as_str(),
            "last_success_at": last_success.map(|t| t.to_string()),
            "stale_after_secs": self.config.stale_after.as_secs(),
            "at": now.to_string(),
        });
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
            payload: serde_json::to_vec(&payload)?,
        };
        let key = format!("channel:{}", self.name());
        blocking(&self.store, move |s| s.enqueue(&key, &record)).await?;
        self.relay_wake.notify_one();
        Ok(())
    }

    async fn cursor(&self) -> Result<Timestamp, PollError> {
        let name = self.name().to_string();
        let stored = blocking(&self.store, move |s| s.cursor(&name))
            .await
            .map_err(anyhow::Error::from)?;
        Ok(
            match stored.and_then(|v| serde_json::from_str::<Cursor>(&v).ok()) {
                Some(c) => c.watermark,
                None => {
                    Timestamp::now()
                        - jiff::SignedDuration::try_from(self.config.initial_lookback)
                            .unwrap_or_default()
                }
            },
        )
    }

    /// Moves the cursor forward (never back). Called only after every record up to
    /// `watermark` is durable.
    async fn advance(
        &self,
        current: &mut Timestamp,
        watermark: Timestamp,
    ) -> Result<(), PollError> {
        if watermark <= *current {
            return Ok(());
        }
        let name = self.name().to_string();
        let value = serde_json::to_string(&Cursor { watermark }).map_err(anyhow::Error::from)?;
        blocking(&self.store, move |s| s.set_cursor(&name, &value))
            .await
            .map_err(anyhow::Error::from)?;
        *current = watermark;
        Ok(())
    }

    /// One poll from the cursor to now. Returns how many records it handed to intake.
    async fn poll(&self, f: &Fetcher, stop: &CancellationToken) -> Result<usize, PollError> {
        let cursor = self.cursor().await?;
        match &self.config.protocol {
            Protocol::Open311 { .. } => open311::poll(self, f, stop, cursor).await,
            Protocol::Paged { .. } => paged::poll(self, f, stop, cursor).await,
        }
    }

    pub(crate) fn url(&self, path: &str) -> Result<reqwest::Url, PollError> {
        reqwest::Url::parse(&format!("{}{}", self.config.base_url, path))
            .map_err(|e| PollError::Other(anyhow::anyhow!("bad URL for {path}: {e}")))
    }

    /// Hands one page's records to intake and waits until all are durable. Returns the latest
    /// upstream update time among them (for the cursor).
    pub(crate) async fn handle_page(
        &self,
        f: &Fetcher,
        stop: &CancellationToken,
        page: &str,
        records: Vec<Box<RawValue>>,
    ) -> Result<Option<Timestamp>, PollError> {
        let mut waiting = Vec::with_capacity(records.len());
        let mut latest: Option<Timestamp> = None;
        // Records are prepared (mapped, attachments fetched, raw bytes stored) a few at a time
        // so their blob writes overlap, then handed to intake in page order.
        let records = &records;
        let prepared = futures::stream::iter(0..records.len())
            .map(|i| self.prepare(f, stop, page, i, &records[i]))
            .buffered(PREPARE_CONCURRENCY);
        futures::pin_mut!(prepared);
        while let Some(next) = futures::StreamExt::next(&mut prepared).await {
            let (reference, payload, time) = next?;
            if let Some(t) = time {
                latest = Some(latest.map_or(t, |l| l.max(t)));
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
        Ok(latest)
    }

    /// One record → what intake gets: an envelope with its version, or a rejection.
    async fn prepare(
        &self,
        f: &Fetcher,
        stop: &CancellationToken,
        page: &str,
        i: usize,
        raw: &RawValue,
    ) -> Result<(String, Payload, Option<Timestamp>), PollError> {
        // The item boundary (as in intake): a panic while mapping one record quarantines it.
        let (mapping, tz, max) = (&self.config.mapping, &self.tz, self.config.max_record_bytes);
        let mapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            record::map(raw, mapping, tz, max)
        }));
        let Ok(mapped) = mapped else {
            let detail = "petitiond panicked while mapping the record (a bug: please report it with the quarantined bytes); the panic message is not kept";
            let payload = Payload::Rejected {
                raw: raw.get().as_bytes().to_vec(),
                reason: crate::intake::PANIC_REASON,
                detail: detail.into(),
            };
            return Ok((format!("{page}#{i}"), payload, None));
        };
        Ok(match mapped {
            Ok(m) => {
                let reference = format!("{page}#{i} id={}", m.upstream_id);
                let time = m.updated.or(m.created);
                (reference, self.envelope(f, stop, raw, m).await?, time)
            }
            Err(bad) => {
                // Name the record by its id when it has one, so the operator can find it.
                let id = serde_json::from_str::<serde_json::Value>(raw.get())
                    .ok()
                    .and_then(|v| {
                        self.config
                            .mapping
                            .id
                            .iter()
                            .find_map(|p| v.pointer(p).cloned())
                    })
                    .map(|v| match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    });
                let reference = match id {
                    Some(id) => format!("{page}#{i} id={id}"),
                    None => format!("{page}#{i}"),
                };
                (reference, rejected(raw, bad), None)
            }
        })
    }

    /// Builds the envelope for a mapped record: raw bytes and attachments into the blob store.
    async fn envelope(
        &self,
        f: &Fetcher,
        stop: &CancellationToken,
        raw: &RawValue,
        m: Mapped,
    ) -> Result<Payload, PollError> {
        let id = crate::envelope::ItemId::derive(self.config.channel, &m.upstream_id);
        // A record we already have at this version needs no attachment downloads: intake will
        // recognise it.
        let known = {
            let id = id.to_string();
            blocking(&self.store, move |s| s.item_version(&id))
                .await
                .map_err(anyhow::Error::from)?
        };
        let unchanged = known.as_deref() == Some(m.version.as_str());
        let mut attachments = Vec::new();
        let mut flags = Vec::new();
        if !unchanged && self.config.attachments.enabled {
            for (url, name) in m
                .attachments
                .iter()
                .take(self.config.attachments.max_per_item)
            {
                match self.attachment(f, stop, url, name.as_deref()).await? {
                    Some(a) => attachments.push(a),
                    None => {
                        if !flags.iter().any(|f| f == ATTACHMENT_UNAVAILABLE) {
                            flags.push(ATTACHMENT_UNAVAILABLE.to_string());
                        }
                    }
                }
            }
        }
        let bytes = raw.get().as_bytes().to_vec();
        let blobs = Arc::clone(&self.blobs);
        let raw_ref = tokio::task::spawn_blocking(move || blobs.put(&bytes))
            .await
            .map_err(anyhow::Error::from)?
            .map_err(anyhow::Error::from)?;
        let mut env = build_envelope(
            self.config.channel,
            self.name(),
            &m,
            raw_ref.claim(),
            Timestamp::now(),
        );
        env.attachments = attachments;
        env.flags = flags;
        Ok(Payload::Record {
            envelope: Box::new(env),
            version: m.version,
        })
    }

    /// Fetches one attachment into the blob store. `None`: it cannot be had (gone, too large,
    /// a type not allowed) — the item goes on, flagged. A transient failure is an error: the
    /// poll fails and the record is read again next time.
    async fn attachment(
        &self,
        f: &Fetcher,
        stop: &CancellationToken,
        url: &str,
        name: Option<&str>,
    ) -> Result<Option<Attachment>, PollError> {
        let limits = &self.config.attachments;
        let count = |outcome: &str| {
            self.metrics
                .attachments
                .get_or_create(&SourceOutcome {
                    source: self.name().to_string(),
                    outcome: outcome.into(),
                })
                .inc();
        };
        let Ok(parsed) = reqwest::Url::parse(url).or_else(|_| self.url(url).map_err(|_| ())) else {
            count("bad_url");
            return Ok(None);
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            count("bad_url");
            return Ok(None);
        }
        let same_host = reqwest::Url::parse(&self.config.base_url)
            .map(|b| b.host_str() == parsed.host_str() && b.port() == parsed.port())
            .unwrap_or(false);
        let req = Req {
            method: reqwest::Method::GET,
            url: parsed,
            query: Vec::new(),
            auth: same_host,
            max_body: limits.max_bytes,
        };
        let allowed = &limits.allowed_types;
        let fetched = f
            .fetch(&req, stop, |r| {
                let ct = media_type(r);
                if allowed.iter().any(|a| a == &ct) {
                    Ok(ct)
                } else {
                    Err(client::Unusable::Refuse(format!("type `{ct}` not allowed")))
                }
            })
            .await;
        let (resp, media_type) = match fetched {
            Ok(v) => v,
            Err(FetchError::Permanent { status, what }) => {
                count(if status == Some(404) || status == Some(410) {
                    "gone"
                } else if what.contains("limit") {
                    "too_large"
                } else if what.contains("not allowed") {
                    "bad_type"
                } else {
                    "refused"
                });
                tracing::warn!(source = %self.name(), error = %what, "attachment cannot be stored; item flagged");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let blobs = Arc::clone(&self.blobs);
        let body = resp.body;
        let stored = tokio::task::spawn_blocking(move || blobs.put(&body))
            .await
            .map_err(anyhow::Error::from)?
            .map_err(anyhow::Error::from)?;
        count("stored");
        Ok(Some(Attachment {
            name: name
                .map(str::to_string)
                .or_else(|| file_name(&req.url))
                .map(Personal::new),
            media_type,
            size: stored.size,
            sha256: stored.sha256.clone(),
            dataref: self.blobs.dataref(&stored),
        }))
    }
}

/// The envelope for a mapped record (attachments and flags are the caller's).
pub fn build_envelope(
    channel: crate::envelope::Channel,
    source: &str,
    m: &Mapped,
    raw_ref: String,
    now: Timestamp,
) -> Envelope {
    let mut env = Envelope::new(
        channel,
        Upstream {
            id: m.upstream_id.clone(),
            url: m.url.clone(),
            source: source.to_string(),
            raw_ref,
            updated_at: m.updated,
            status: m.status.clone(),
            service_code: m.service_code.clone(),
            region: m.region.clone(),
            ..Default::default()
        },
        // The item reached the office when the upstream received it, not when we polled:
        // a poll delay or an outage must not move its clocks.
        m.created.filter(|c| *c <= now).unwrap_or(now),
        Request {
            title: m.title.clone().map(Personal::new),
            content: Personal::new(m.content.clone()),
        },
    );
    env.upstream_created_at = m.created;
    env.petitioner = Petitioner {
        name: m.name.clone().map(Personal::new),
        id_number: m.id_number.clone().map(Personal::new),
        phone: m.phone.clone().map(Personal::new),
        address: m.address.clone().map(Personal::new),
    };
    env
}

fn media_type(r: &client::Resp) -> String {
    r.headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "application/octet-stream".into())
}

fn file_name(url: &reqwest::Url) -> Option<String> {
    url.path_segments()?
        .next_back()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn rejected(raw: &RawValue, bad: BadRecord) -> Payload {
    Payload::Rejected {
        raw: raw.get().as_bytes().to_vec(),
        reason: bad.reason(),
        detail: bad.to_string(),
    }
}

#[cfg(test)]
mod tests;
