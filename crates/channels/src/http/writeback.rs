//! Status write-back: telling the upstream an item came from what became of it — acknowledged
//! (routed, its lead department known), its first-touch due time (set, or moved), completed
//! (the department replied) — where the upstream has a status API (`[channels.<name>.writeback]`;
//! Open311 GeoReport v2 has none, a config error says so).
//!
//! Owns two things. **What to queue** (pure builders, called inside the transaction of the
//! change that causes the write-back: intake's recording, a status event, the SLA engine's
//! start-up recomputation): the request body, fixed once, and its idempotency key, a UUID v5
//! of (item, kind, value) — so a retry, after a crash too, sends the same bytes under the same
//! key and the upstream recognises it. **Sending** ([`WritebackWorker`], one task per source):
//! pending rows from the store's durable outbox (`writeback` table), oldest first and in order
//! per item, one request at a time; an attempt is counted in the store before the request is
//! made; a 2xx delivers; a network error, a timeout, 408, 409 (the same key still being
//! processed), 425, 429 or 5xx is retried with exponential backoff and jitter (`Retry-After`
//! wins when longer) until `max_attempts`; another 4xx, or the attempts used up, makes the row
//! dead — counted, logged, listed by `petitiond writeback list`, put back by `writeback
//! replay`. Requests go through the source's [`Fetcher`]: the same origin rules, credentials
//! and HMAC signature (with `{body_sha256}`, the body is signed too), a rate limit of its own.
//!
//! Not owned: deciding *when* an item is acknowledged, due or completed — intake, the status
//! consumer and the SLA engine call the builders. Write-backs carry ids, department ids,
//! clock ids and instants: never petitioner data.

use super::client::{FetchError, Fetcher, Purpose, Req};
use crate::config::http::{HttpSourceConfig, WritebackConfig};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use petitiond_core::envelope::Envelope;
use petitiond_core::routing::Department;
use petitiond_core::sla::clock::{Clock, State};
use petitiond_core::sla::policy::EventKind;
use petitiond_metrics::{Metrics, SourceKind, SourceLabel, SourceOutcome};
use petitiond_store::{NewWriteback, Store, WritebackRow, blocking};
use rand::Rng;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The item was routed: its lead department is known.
pub const ACKNOWLEDGED: &str = "acknowledged";
/// A first-touch clock's due instant was set or moved.
pub const DUE: &str = "due";
/// The department replied (by default; `completed_on`).
pub const COMPLETED: &str = "completed";

/// Largest response body read from a status API.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
/// Rows taken from the store per round.
const BATCH: usize = 16;
/// How often the pending gauge is refreshed while a backlog drains.
const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// The first wait after a store failure, doubling up to the second.
const STORE_RETRY: Duration = Duration::from_secs(1);
const STORE_RETRY_MAX: Duration = Duration::from_secs(60);

/// The idempotency key of a write-back: UUID v5 of (item, kind, value).
pub fn key(item_id: &str, kind: &str, value: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("petitiond:writeback:{item_id}:{kind}:{value}").as_bytes(),
    )
    .to_string()
}

/// An instant as the upstream wants it: RFC 3339 with the office's offset, or the configured
/// strftime pattern in the office's zone.
pub fn format_time(t: Timestamp, wb: &WritebackConfig, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    let pattern = wb
        .time_format
        .as_deref()
        .unwrap_or("%Y-%m-%dT%H:%M:%S%.f%:z");
    jiff::fmt::strtime::format(pattern, &z).unwrap_or_else(|_| t.to_string())
}

/// The source an item came from, if it writes back.
fn source_of<'c>(
    sources: &'c [HttpSourceConfig],
    env: &Envelope,
) -> Option<(&'c HttpSourceConfig, &'c WritebackConfig)> {
    sources
        .iter()
        .filter(|s| s.channel == env.channel && s.name == env.upstream.source)
        .find_map(|s| s.writeback.as_ref().map(|w| (s, w)))
}

struct Body<'a> {
    wb: &'a WritebackConfig,
    tz: &'a TimeZone,
    map: Map<String, Value>,
}

impl<'a> Body<'a> {
    fn new(wb: &'a WritebackConfig, tz: &'a TimeZone, state: &str, item_id: &str) -> Self {
        let mut b = Body {
            wb,
            tz,
            map: Map::new(),
        };
        b.set(&wb.fields.state, Value::from(state));
        b.set(&wb.fields.item_id, Value::from(item_id));
        b
    }

    fn set(&mut self, field: &Option<String>, v: Value) {
        if let Some(f) = field {
            self.map.insert(f.clone(), v);
        }
    }

    fn time(&mut self, field: &Option<String>, t: Timestamp) {
        let v = Value::from(format_time(t, self.wb, self.tz));
        self.set(field, v);
    }

    fn bytes(self) -> Vec<u8> {
        serde_json::to_vec(&Value::Object(self.map)).expect("JSON values always serialize")
    }
}

fn row(item_id: &str, source: &str, kind: &str, value: String, body: Body<'_>) -> NewWriteback {
    NewWriteback {
        item_id: item_id.to_string(),
        source: source.to_string(),
        kind: kind.to_string(),
        key: key(item_id, kind, &value),
        value,
        body: body.bytes(),
    }
}

/// The item is routed: its lead department is known (`env.routing`). `sources`: the HTTP
/// channels; `tz`: the calendar's zone (times are written in it); `departments`: for the
/// lead's name.
pub fn acknowledged(
    sources: &[HttpSourceConfig],
    tz: &TimeZone,
    departments: &[Department],
    env: &Envelope,
) -> Option<NewWriteback> {
    let (source, wb) = source_of(sources, env)?;
    let state = wb.acknowledged.as_deref()?;
    let routing = env.routing.as_ref()?;
    let mut body = Body::new(wb, tz, state, env.id.as_str());
    body.set(&wb.fields.department, Value::from(routing.lead.as_str()));
    if let Some(d) = departments.iter().find(|d| d.id == routing.lead) {
        body.set(&wb.fields.department_name, Value::from(d.name.as_str()));
    }
    body.time(&wb.fields.time, routing.decided_at);
    Some(row(
        env.id.as_str(),
        &source.name,
        ACKNOWLEDGED,
        routing.lead.clone(),
        body,
    ))
}

/// A due write-back for `clock` on `source` (if it writes this clock back), its due instant
/// set or moved at `cause`. A clock without a due instant (pending) or stopped writes nothing.
fn due_on(
    tz: &TimeZone,
    source: &HttpSourceConfig,
    clock: &Clock,
    cause: Timestamp,
) -> Option<NewWriteback> {
    let wb = source.writeback.as_ref()?;
    let state = wb.due.as_deref()?;
    if !wb.due_clocks.contains(&clock.clock_id)
        || matches!(clock.state, State::Pending | State::Stopped)
    {
        return None;
    }
    let mut body = Body::new(wb, tz, state, &clock.item_id);
    body.time(&wb.fields.due_at, clock.due_at);
    body.set(&wb.fields.clock, Value::from(clock.clock_id.as_str()));
    body.set(&wb.fields.provisional, Value::from(clock.provisional));
    body.time(&wb.fields.time, cause);
    // The cause's instant is part of the value: a due instant that moves away and back is
    // written back again (the later write must win), under a key of its own.
    let value = format!("{}={}@{}", clock.clock_id, clock.due_at, cause);
    Some(row(&clock.item_id, &source.name, DUE, value, body))
}

/// Due write-backs for an item's clocks whose due instant was set or moved at `cause`.
pub fn dues(
    sources: &[HttpSourceConfig],
    tz: &TimeZone,
    env: &Envelope,
    clocks: &[&Clock],
    cause: Timestamp,
) -> Vec<NewWriteback> {
    let Some((source, _)) = source_of(sources, env) else {
        return Vec::new();
    };
    clocks
        .iter()
        .filter_map(|c| due_on(tz, source, c, cause))
        .collect()
}

/// Due write-backs for a clock whose item is not at hand (the SLA engine's recomputation):
/// one per source that writes this clock back; the store queues only the one whose source the
/// item came from.
pub fn dues_for_clock(
    sources: &[HttpSourceConfig],
    tz: &TimeZone,
    clock: &Clock,
    cause: Timestamp,
) -> Vec<NewWriteback> {
    sources
        .iter()
        .filter_map(|s| due_on(tz, s, clock, cause))
        .collect()
}

/// The item is completed upstream when a configured status event (`completed_on`, default
/// `replied`) is applied to it at `at`.
pub fn completed(
    sources: &[HttpSourceConfig],
    tz: &TimeZone,
    env: &Envelope,
    event: EventKind,
    at: Timestamp,
) -> Option<NewWriteback> {
    let (source, wb) = source_of(sources, env)?;
    let state = wb.completed.as_deref()?;
    if !wb.completed_on.contains(&event) {
        return None;
    }
    let mut body = Body::new(wb, tz, state, env.id.as_str());
    body.time(&wb.fields.time, at);
    Some(row(
        env.id.as_str(),
        &source.name,
        COMPLETED,
        at.to_string(),
        body,
    ))
}

// ---- sending ------------------------------------------------------------------------------

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered(u16),
    /// Try again at this instant (ms).
    Retry {
        at_ms: i64,
        error: String,
    },
    Dead(String),
    /// Shutting down: the row stays pending; its attempt is counted.
    Stopped,
}

/// How a failed attempt is handled: retried (transient, and attempts left) or dead.
pub fn classify(e: &FetchError, attempts: i64, wb: &WritebackConfig, now: Timestamp) -> Outcome {
    let retry = |what: String, retry_after: Option<Duration>| {
        if attempts >= i64::from(wb.max_attempts) {
            return Outcome::Dead(format!("{what} (after {attempts} attempts)"));
        }
        let wait = backoff(wb, attempts);
        let wait = retry_after.map_or(wait, |ra| ra.max(wait));
        Outcome::Retry {
            at_ms: now.as_millisecond() + wait.as_millis() as i64,
            error: what,
        }
    };
    match e {
        FetchError::Stopped => Outcome::Stopped,
        FetchError::Transient { what, retry_after } => retry(what.clone(), *retry_after),
        FetchError::CircuitOpen(d) => retry(e.to_string(), Some(*d)),
        // The same key still being processed upstream: ask again later.
        FetchError::Permanent {
            status: Some(409),
            what,
            ..
        } => retry(what.clone(), None),
        FetchError::Permanent { what, .. } => Outcome::Dead(what.clone()),
    }
}

/// The wait after attempt number `attempts` (1-based): exponential from `backoff_initial`,
/// capped at `backoff_max`, drawn from its upper half so that many rows do not retry in step.
pub fn backoff(wb: &WritebackConfig, attempts: i64) -> Duration {
    let n = attempts.clamp(1, 31) as u32 - 1;
    let d = wb
        .backoff_initial
        .saturating_mul(1u32 << n.min(20))
        .min(wb.backoff_max);
    let half = d / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

/// How long an idle worker waits: until the earliest pending row's time, at most `poll`. A
/// row due already that was not sent waits behind an older row of its item (whose time is
/// later, so not the minimum): look again after `poll`, never at once (that would spin).
pub fn idle_wait(next_ms: Option<i64>, now_ms: i64, poll: Duration) -> Duration {
    match next_ms {
        Some(at) if at > now_ms => Duration::from_millis((at - now_ms) as u64).min(poll),
        _ => poll,
    }
}

/// The request for a row: the source's base URL with the path, the item's upstream id as one
/// path segment.
pub fn request(source: &HttpSourceConfig, wb: &WritebackConfig, r: &WritebackRow) -> Option<Req> {
    let path = wb
        .path
        .replace("{id}", &super::sign::encode(&r.upstream_id));
    let url = reqwest::Url::parse(&format!("{}{path}", source.base_url)).ok()?;
    Some(Req {
        method: wb.method.clone(),
        url,
        query: Vec::new(),
        purpose: Purpose::Write,
        max_body: MAX_RESPONSE_BYTES,
        body: Some(r.body.clone()),
        headers: vec![
            (
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            ),
            (wb.idempotency_header.clone(), r.key.clone()),
        ],
    })
}

/// One source's write-back worker.
#[derive(Clone)]
pub struct WritebackWorker {
    /// The source, with its write-back section.
    pub source: Arc<HttpSourceConfig>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
}

impl WritebackWorker {
    /// Sends pending write-backs until `stop` fires. A store failure is logged and retried
    /// after a back-off (1 s doubling to 60 s): it never ends the daemon, and a row whose
    /// outcome could not be recorded is sent again later under its key. Returns an error only
    /// when the source cannot be set up (its HTTP client).
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let source = Arc::new(
            self.source
                .for_writeback()
                .ok_or_else(|| anyhow::anyhow!("source {} has no write-back", self.source.name))?,
        );
        let wb = source
            .writeback
            .clone()
            .expect("for_writeback keeps the section");
        let fetcher = Fetcher::new(&source, self.metrics.clone())?;
        tracing::info!(source = %source.name, path = %wb.path, "status write-back running");
        let mut sampled: Option<std::time::Instant> = None;
        let mut failures: u32 = 0;
        while !stop.is_cancelled() {
            let wait = match self
                .round(&fetcher, &source, &wb, &mut sampled, &stop)
                .await
            {
                Ok(wait) => {
                    failures = 0;
                    wait
                }
                Err(e) => {
                    failures += 1;
                    let wait = (STORE_RETRY * 2u32.pow(failures.min(7) - 1)).min(STORE_RETRY_MAX);
                    tracing::error!(source = %source.name, error = format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "status write-back: the store failed; retrying");
                    wait
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => break,
            }
        }
        tracing::info!(source = %source.name, "status write-back stopped");
        Ok(())
    }

    /// One round: the rows due now, sent one by one; the pending gauge when idle (else every
    /// few seconds: a backlog is not counted once per batch). Returns how long to wait before
    /// the next round (zero: rows were sent, look again at once).
    async fn round(
        &self,
        fetcher: &Fetcher,
        source: &HttpSourceConfig,
        wb: &WritebackConfig,
        sampled: &mut Option<std::time::Instant>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Duration> {
        let name = source.name.clone();
        let now = Timestamp::now().as_millisecond();
        let n = name.clone();
        let rows = blocking(&self.store, move |s| s.writeback_ready(&n, now, BATCH)).await?;
        for r in &rows {
            if stop.is_cancelled() {
                break;
            }
            self.send(fetcher, source, wb, r, stop).await?;
        }
        if rows.is_empty() || sampled.is_none_or(|t| t.elapsed() >= GAUGE_EVERY) {
            *sampled = Some(std::time::Instant::now());
            let n = name.clone();
            let pending = blocking(&self.store, move |s| s.writeback_pending(&n)).await?;
            self.metrics
                .writeback_pending
                .get_or_create(&SourceLabel {
                    source: name.clone(),
                })
                .set(pending as i64);
        }
        if !rows.is_empty() {
            return Ok(Duration::ZERO);
        }
        let next = blocking(&self.store, move |s| s.writeback_next_attempt(&name)).await?;
        Ok(idle_wait(
            next,
            Timestamp::now().as_millisecond(),
            wb.poll_interval,
        ))
    }

    async fn send(
        &self,
        fetcher: &Fetcher,
        source: &HttpSourceConfig,
        wb: &WritebackConfig,
        r: &WritebackRow,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let id = r.id;
        blocking(&self.store, move |s| s.writeback_attempted(id)).await?;
        let attempts = r.attempts + 1;
        let outcome = match request(source, wb, r) {
            None => Outcome::Dead(format!(
                "`{}` + `{}` is not a URL",
                crate::config::url_for_log(&source.base_url),
                wb.path
            )),
            Some(req) => match fetcher.fetch(&req, stop, |_| Ok(())).await {
                Ok((resp, ())) => Outcome::Delivered(resp.status),
                Err(e) => classify(&e, attempts, wb, Timestamp::now()),
            },
        };
        let label = |outcome: &str| SourceOutcome {
            source: source.name.clone(),
            outcome: outcome.into(),
        };
        match outcome {
            Outcome::Delivered(status) => {
                blocking(&self.store, move |s| s.writeback_delivered(id, status)).await?;
                self.metrics
                    .writeback_requests
                    .get_or_create(&label("delivered"))
                    .inc();
                tracing::info!(source = %source.name, item = %r.item_id, kind = %r.kind, attempts, status, "status written back");
            }
            Outcome::Retry { at_ms, error } => {
                let e = error.clone();
                blocking(&self.store, move |s| s.writeback_retry(id, at_ms, &e)).await?;
                self.metrics
                    .writeback_requests
                    .get_or_create(&label("retry"))
                    .inc();
                let retry_in_ms = (at_ms - Timestamp::now().as_millisecond()).max(0);
                tracing::warn!(source = %source.name, item = %r.item_id, kind = %r.kind, attempts, retry_in_ms, error = %error, "status write-back failed; will retry");
            }
            Outcome::Dead(reason) => {
                let why = reason.clone();
                blocking(&self.store, move |s| s.writeback_dead(id, &why)).await?;
                self.metrics
                    .writeback_requests
                    .get_or_create(&label("dead"))
                    .inc();
                self.metrics
                    .writeback_dead
                    .get_or_create(&SourceKind {
                        source: source.name.clone(),
                        kind: r.kind.clone(),
                    })
                    .inc();
                tracing::error!(source = %source.name, item = %r.item_id, kind = %r.kind, write_back = id, attempts, reason = %reason, "status write-back is dead: not sent again until replayed (petitiond writeback list / replay)");
            }
            Outcome::Stopped => {}
        }
        Ok(())
    }
}
