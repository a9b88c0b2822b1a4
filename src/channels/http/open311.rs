//! Open311 GeoReport v2: `GET {base}/requests.json` by time window.
//!
//! A poll covers `[cursor − overlap, now]` in windows of at most `max_window` (servers cap a
//! window at 90 days), oldest first. Servers also cap a response (1000 records): a full
//! response means the window may hold more, so it is split in two and both halves asked
//! again, down to one millisecond (RFC 3339 carries fractions; a server that ignores them
//! gives a full one-second window, which is logged as an error). After each window's records are all durable the cursor moves
//! to the window's end. With `change_polling = "updated_after"` windows are on
//! `updated_datetime` (`updated_after`/`updated_before`, the widely deployed extension), so
//! updates to old records are seen; with `requested_window`, on `requested_datetime`
//! (`start_date`/`end_date`, the standard), which sees new records only.

use super::client::{Req, Unusable};
use super::{HttpChannel, PollError, record};
use crate::config::http::Protocol;
use jiff::{SignedDuration, Timestamp};
use std::collections::VecDeque;
use tokio_util::sync::CancellationToken;

pub(super) async fn poll(
    ch: &HttpChannel,
    f: &super::client::Fetcher,
    stop: &CancellationToken,
    mut cursor: Timestamp,
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
    let overlap = SignedDuration::try_from(ch.config.overlap).unwrap_or_default();
    let max_window =
        SignedDuration::try_from(*max_window).unwrap_or(SignedDuration::from_hours(24));
    let now = Timestamp::now();
    let mut windows: VecDeque<(Timestamp, Timestamp)> = VecDeque::new();
    let mut from = (cursor - overlap).min(now);
    while from < now {
        let to = (from + max_window).min(now);
        windows.push_back((from, to));
        from = to;
    }
    let url = ch.url("/requests.json")?;
    let mut handed = 0;
    while let Some((from, to)) = windows.pop_front() {
        let mut query = Vec::new();
        if let Some(j) = jurisdiction_id {
            query.push(("jurisdiction_id".to_string(), j.clone()));
        }
        if let Some(k) = api_key {
            query.push(("api_key".to_string(), k.expose().to_string()));
        }
        let (a, b) = if *updated_after {
            ("updated_after", "updated_before")
        } else {
            ("start_date", "end_date")
        };
        query.push((a.to_string(), from.to_string()));
        query.push((b.to_string(), to.to_string()));
        let req = Req {
            method: reqwest::Method::GET,
            url: url.clone(),
            query,
            auth: true,
            max_body: ch.config.max_body_bytes,
        };
        let (_, records) = f
            .fetch(&req, stop, |r| {
                let body = std::str::from_utf8(&r.body)
                    .map_err(|_| Unusable::Retry("not UTF-8".into()))?;
                record::records(body, "").map_err(Unusable::Retry)
            })
            .await?;
        if records.len() >= *max_per_response {
            let span = to.duration_since(from);
            if span > SignedDuration::from_millis(1) {
                let mid = from + span / 2;
                tracing::debug!(source = %ch.config.name, from = %from, to = %to, "full response: splitting the window");
                windows.push_front((mid, to));
                windows.push_front((from, mid));
                continue;
            }
            tracing::error!(source = %ch.config.name, from = %from, to = %to, records = records.len(), "a one-millisecond window is still full: the server may be withholding records");
        }
        handed += records.len();
        let page = format!("requests.json[{from}..{to}]");
        ch.handle_page(f, stop, &page, records).await?;
        ch.advance(&mut cursor, to).await?;
    }
    Ok(handed)
}
