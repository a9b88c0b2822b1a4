//! Open311 GeoReport v2: `GET {base}/requests.json` by time window.
//!
//! A poll covers `[cursor − overlap, now]` in windows of at most `max_window` (servers cap a
//! window at 90 days), oldest first. Servers also cap a response (1000 records): a full
//! response means the window may hold more, so it is split in two and both halves asked
//! again, down to one millisecond (RFC 3339 carries fractions; a server that ignores them
//! gives a full one-second window, which is logged as an error). After each window's records
//! are all durable the cursor moves to the window's end. With `change_polling =
//! "updated_after"` windows are on `updated_datetime` (`updated_after`/`updated_before`, the
//! widely deployed extension), so updates to old records are seen; with `requested_window`,
//! on `requested_datetime` (`start_date`/`end_date`, the standard), which sees new records only.
//!
//! Servers support the protocol partly. A record outside the requested window (by more than
//! [`TOLERANCE`]) proves the server ignored a bound, and splitting would never end:
//! - the upper bound ignored (the lower honoured): from then on the source is read on the
//!   records' own times ([`by_record_times`]), which the cursor remembers; one
//!   `channel.bound_ignored` event;
//! - the lower bound ignored: nothing narrows the answer, so it is taken as it is (no split)
//!   and the window counts as read; one event per run.

use super::client::{Purpose, Req, Unusable};
use super::{HttpChannel, PollCtx, PollError, RunState, TimeKey, record};
use crate::config::http::Protocol;
use jiff::{SignedDuration, Timestamp};
use serde_json::value::RawValue;
use std::collections::VecDeque;
use tokio_util::sync::CancellationToken;

/// How far outside its window a record may be before it proves a bound ignored: servers
/// with one-second resolution round our millisecond bounds.
pub const TOLERANCE: SignedDuration = SignedDuration::from_secs(1);

/// What one source's requests look like.
struct Ask<'a> {
    url: reqwest::Url,
    fixed: Vec<(String, String)>,
    /// The window's parameters: (lower, upper).
    params: (&'a str, &'a str),
    key: TimeKey,
    cap: usize,
}

impl Ask<'_> {
    fn req(&self, ch: &HttpChannel, from: Timestamp, to: Timestamp) -> Req {
        let mut query = self.fixed.clone();
        query.push((self.params.0.to_string(), from.to_string()));
        query.push((self.params.1.to_string(), to.to_string()));
        Req {
            method: reqwest::Method::GET,
            url: self.url.clone(),
            query,
            purpose: Purpose::Page,
            max_body: ch.config.max_body_bytes,
            body: None,
            headers: Vec::new(),
        }
    }

    async fn fetch(
        &self,
        ch: &HttpChannel,
        f: &super::client::Fetcher,
        stop: &CancellationToken,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Box<RawValue>>, PollError> {
        let (_, records) = f
            .fetch(&self.req(ch, from, to), stop, |r| {
                let body = std::str::from_utf8(&r.body)
                    .map_err(|_| Unusable::Retry("not UTF-8".into()))?;
                record::records(body, "").map_err(Unusable::Retry)
            })
            .await?;
        Ok(records)
    }
}

pub(super) async fn poll(
    ch: &HttpChannel,
    f: &super::client::Fetcher,
    stop: &CancellationToken,
    ctx: &mut PollCtx,
    run: &mut RunState,
) -> Result<usize, PollError> {
    let Protocol::Open311 {
        jurisdiction_id,
        api_key,
        updated_after,
        max_per_response,
        max_window,
    } = &ch.config.protocol
    else {
        unreachable!("open311::poll is only called for Open311 sources");
    };
    let mut fixed = Vec::new();
    if let Some(j) = jurisdiction_id {
        fixed.push(("jurisdiction_id".to_string(), j.clone()));
    }
    if let Some(k) = api_key {
        fixed.push(("api_key".to_string(), k.expose().to_string()));
    }
    let ask = Ask {
        url: ch.url("/requests.json")?,
        fixed,
        params: if *updated_after {
            ("updated_after", "updated_before")
        } else {
            ("start_date", "end_date")
        },
        key: if *updated_after {
            TimeKey::Updated
        } else {
            TimeKey::Created
        },
        cap: *max_per_response,
    };
    let overlap = SignedDuration::try_from(ch.config.overlap).unwrap_or_default();
    let max_window =
        SignedDuration::try_from(*max_window).unwrap_or(SignedDuration::from_hours(24));
    let now = Timestamp::now();
    let start = (ctx.cursor.watermark - overlap).min(now);
    if ctx.cursor.upper_bound_ignored {
        return by_record_times(ch, f, stop, ctx, run, &ask, start).await;
    }
    let mut windows: VecDeque<(Timestamp, Timestamp)> = VecDeque::new();
    let mut from = start;
    while from < now {
        let to = (from + max_window).min(now);
        windows.push_back((from, to));
        from = to;
    }
    let mut handed = 0;
    while let Some((from, to)) = windows.pop_front() {
        let records = ask.fetch(ch, f, stop, from, to).await?;
        let (lo, hi) = bound_span(ch, &records, ask.key);
        let above = hi.is_some_and(|t| t > to + TOLERANCE);
        let below = lo.is_some_and(|t| t < from - TOLERANCE);
        if above && !below {
            // Splitting would only ever find the same records "in" every half: read on the
            // records' own times instead, from this window's start, from now on.
            ctx.cursor.upper_bound_ignored = true;
            ctx.dirty = true;
            ch.bound_ignored(
                run,
                ask.params.1,
                "record_times",
                &format!(
                    "records later than the requested `{}`: the server ignores it; reading on the records' own times from now on",
                    ask.params.1
                ),
            )
            .await?;
            ch.save(ctx).await?;
            return Ok(handed + by_record_times(ch, f, stop, ctx, run, &ask, from).await?);
        }
        if below {
            ch.bound_ignored(
                run,
                ask.params.0,
                "none",
                &format!(
                    "records earlier than the requested `{}`: the server ignores it; each answer is taken as it is, records beyond its cap cannot be reached",
                    ask.params.0
                ),
            )
            .await?;
        } else if records.len() >= ask.cap {
            let span = to.duration_since(from);
            if span > SignedDuration::from_millis(1) {
                let mid = from + span / 2;
                tracing::debug!(source = %ch.config.name, from = %from, to = %to, "full response: splitting the window");
                windows.push_front((mid, to));
                windows.push_front((from, mid));
                continue;
            }
            withheld(ch, from, records.len());
        }
        handed += records.len();
        let page = format!("requests.json[{from}..{to}]");
        let result = ch
            .handle_page(f, stop, ctx, &page, records, ask.key)
            .await?;
        ch.page_done(ctx, &result).await?;
        ch.advance(ctx, run, to).await?;
    }
    Ok(handed)
}

/// A server that honours the lower bound but not the upper: ask from `after` again and
/// again, each time from the latest record time of the last answer. An answer holds every
/// record from `after` up to its latest one (servers sort by the bound's field and cap the
/// sorted list; the hotline simulator does so even with shuffled output), so the cursor may
/// move to just before that latest time (ties at it may be beyond the cap: read again, and
/// recognised). A full answer whose records all share one instant cannot be read further:
/// logged and counted, and the walk steps past that instant.
async fn by_record_times(
    ch: &HttpChannel,
    f: &super::client::Fetcher,
    stop: &CancellationToken,
    ctx: &mut PollCtx,
    run: &mut RunState,
    ask: &Ask<'_>,
    mut after: Timestamp,
) -> Result<usize, PollError> {
    let mut handed = 0;
    loop {
        let now = Timestamp::now();
        let records = ask.fetch(ch, f, stop, after, now).await?;
        let full = records.len() >= ask.cap;
        let n = records.len();
        handed += n;
        // The latest of every record's time, held and quarantined ones included: the next
        // question starts there (the cursor itself stops before any held item).
        let (earliest, latest) = bound_span(ch, &records, ask.key);
        let page = format!("requests.json[{after}..]");
        let result = ch
            .handle_page(f, stop, ctx, &page, records, ask.key)
            .await?;
        ch.page_done(ctx, &result).await?;
        if earliest.is_some_and(|t| t < after - TOLERANCE) {
            // The lower bound is ignored too: asking again gives the same answer. Taken as
            // it is; records beyond the server's cap cannot be reached.
            ch.bound_ignored(
                run,
                ask.params.0,
                "none",
                &format!(
                    "records earlier than the requested `{}`: the server ignores it; each answer is taken as it is, records beyond its cap cannot be reached",
                    ask.params.0
                ),
            )
            .await?;
            if let Some(t) = latest {
                ch.advance(ctx, run, t).await?;
            }
            return Ok(handed);
        }
        let Some(latest) = latest.or(result.latest) else {
            if full {
                return Err(PollError::Other(anyhow::anyhow!(
                    "a full answer without a usable record time: cannot read further on record times"
                )));
            }
            return Ok(handed);
        };
        if !full {
            // Everything after `after` is in: the cursor may go to its latest record.
            ch.advance(ctx, run, latest).await?;
            return Ok(handed);
        }
        let mut next = latest - SignedDuration::from_millis(1);
        if next <= after {
            withheld(ch, latest, n);
            next = latest;
        }
        if next <= after {
            // Not one record after `after` in a full answer: the server does not filter as
            // it says. Taken as it is rather than asked again for ever.
            return Ok(handed);
        }
        ch.advance(ctx, run, next).await?;
        after = next;
    }
}

/// The earliest and latest bound-field times of a response's records (unreadable ones left
/// out).
fn bound_span(
    ch: &HttpChannel,
    records: &[Box<RawValue>],
    key: TimeKey,
) -> (Option<Timestamp>, Option<Timestamp>) {
    let mut lo: Option<Timestamp> = None;
    let mut hi: Option<Timestamp> = None;
    for r in records {
        if let Some(t) = record::map(r, &ch.config.mapping, &ch.tz, ch.config.max_record_bytes)
            .ok()
            .and_then(|m| key.bound(&m))
        {
            lo = Some(lo.map_or(t, |l| l.min(t)));
            hi = Some(hi.map_or(t, |h| h.max(t)));
        }
    }
    (lo, hi)
}

/// More records at one instant than the server returns in one answer: the rest cannot be
/// read. Logged and counted; the walk goes on past it.
fn withheld(ch: &HttpChannel, at: Timestamp, records: usize) {
    ch.metrics
        .upstream_anomalies
        .get_or_create(&petitiond_metrics::SourceOutcome {
            source: ch.config.name.clone(),
            outcome: "withheld_records".into(),
        })
        .inc();
    tracing::error!(source = %ch.config.name, at = %at, records, "more records at one instant than the server returns in one answer: the server may be withholding records");
}
