//! The SLA board: `GET /board` (server-rendered HTML that reloads itself with
//! `<meta http-equiv="refresh">`, no script, no external asset) and `GET /board.json` (the
//! same view for machines). Open clocks counted per clock id and state, the running clocks
//! already overdue and those due next, the items waiting for the intake desk's review
//! (`needs_review`: routing unsure of the category, with its two best candidates) and the
//! newest alerts; `?department=`, `?clock=` and `?limit=` filter and bound them (the review
//! list has no clock: `?department=` filters it by lead). Times are shown in the office's time zone. A due time
//! computed on a provisional calendar year is marked `provisional`, and from 60 days before the
//! official calendars end the page says so ([`calendar_detail`], also in `/readyz`).
//!
//! Owns the parameters, the view (pure: [`view`] from the store's [`BoardData`], the instant
//! and the zone) and the HTML ([`render_html`], every value escaped). It reads the store only
//! through [`Store::board`] on the blocking pool, whose rows carry item ids, clock ids,
//! departments, times, states and category candidates: no envelope, so no petitioner data can
//! reach the page.

use super::AdminState;
use crate::store::{BoardAlert, BoardClock, BoardData, BoardQuery, BoardReview, blocking};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;

mod html;
pub use html::{esc, render_html};

/// Rows per list unless `?limit=` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// Most rows per list a request may ask for.
pub const MAX_LIMIT: usize = 500;
/// Longest department or clock id accepted in a filter.
const MAX_FILTER_LEN: usize = 128;
/// Seconds between reloads of the HTML page.
pub const REFRESH_SECS: u32 = 15;

/// What the board needs from the config, fixed at start.
#[derive(Debug, Clone)]
pub struct BoardConfig {
    pub tz: TimeZone,
    /// Configured clock ids, for the filter form and the alert look-up.
    pub clock_ids: Vec<String>,
    /// Configured departments: (id, name).
    pub departments: Vec<(String, String)>,
    pub refresh_secs: u32,
    /// The calendar in force, for the coverage notice (`None`: no notice).
    pub calendar: Option<std::sync::Arc<petitiond_core::sla::calendar::Calendar>>,
}

/// `/readyz?verbose`'s calendar line: `calendar: ok: official through DATE`, or from 60 days
/// before the last official day (and after it) `calendar: warning: ` and what to do.
pub fn calendar_readiness(cfg: &BoardConfig, now: Timestamp) -> String {
    let Some(cal) = cfg.calendar.as_deref() else {
        return String::new();
    };
    match crate::sla::calendar_notice(cal, now) {
        Some(n) if n.is_due() => format!("calendar: warning: {}\n", n.message),
        Some(n) => format!("calendar: ok: official through {}\n", n.official_until),
        None => "calendar: warning: no official working-day calendar file is loaded\n".into(),
    }
}

/// The calendar coverage sentence operators must act on at `now` (from 60 days before the last
/// official calendar day, and after it), for the board; `None` otherwise.
pub fn calendar_detail(cfg: &BoardConfig, now: Timestamp) -> Option<String> {
    let notice = crate::sla::calendar_notice(cfg.calendar.as_deref()?, now)?;
    notice.is_due().then_some(notice.message)
}

/// The validated query parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filter {
    pub department: Option<String>,
    pub clock: Option<String>,
    pub limit: usize,
}

/// `department`, `clock` (empty = all) and `limit` (1..=500); other parameters are ignored.
pub fn parse_filter(params: &HashMap<String, String>) -> Result<Filter, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match params.get(key).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(v) if v.chars().count() > MAX_FILTER_LEN => {
                Err(format!("{key}: longer than {MAX_FILTER_LEN} characters"))
            }
            Some(v) => Ok(Some(v.to_string())),
        }
    };
    let limit = match params.get("limit").map(|v| v.trim()) {
        None | Some("") => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(format!("limit: a number from 1 to {MAX_LIMIT}")),
        },
    };
    Ok(Filter {
        department: text("department")?,
        clock: text("clock")?,
        limit,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountView {
    pub clock_id: String,
    /// Running, not due, no warning yet.
    pub within: u64,
    /// Running, not due, a warning alert fired.
    pub warning: u64,
    /// Running and past due.
    pub overdue: u64,
    pub running: u64,
    pub paused: u64,
    /// Waiting for a calendar year that is not loaded (no due instant yet).
    pub pending: u64,
    pub open: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockView {
    pub item_id: String,
    pub clock_id: String,
    pub department: String,
    pub state: &'static str,
    /// RFC 3339 in the office's zone, to the second.
    pub started_at: String,
    pub due_at: String,
    pub overdue: bool,
    /// Seconds until due; negative once overdue.
    pub due_in_secs: i64,
    /// "in 12m 05s" or "1h 03m overdue".
    pub due_in: String,
    /// The due instant rests on a provisional calendar year (recomputed when its official
    /// file is installed).
    pub provisional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertView {
    pub kind: String,
    pub clock_id: String,
    pub item_id: String,
    pub department: String,
    pub due_at: String,
    pub fired_at: String,
    pub late: bool,
    pub provisional: bool,
}

/// One candidate category: `"livelihood"` and its probability in whole percent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CandidateView {
    pub category: &'static str,
    pub percent: u32,
}

/// An item waiting for the intake desk's review (routing unsure of its category).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewView {
    pub item_id: String,
    pub department: String,
    /// When routing decided, RFC 3339 in the office's zone.
    pub decided_at: String,
    /// Seconds since then.
    pub waiting_secs: i64,
    /// "12m 05s".
    pub waiting: String,
    /// `dictionary` or `model`.
    pub source: String,
    /// The top candidate's probability, whole percent.
    pub confidence_percent: u32,
    /// The two best categories, best first.
    pub candidates: Vec<CandidateView>,
}

/// Everything the page shows; `/board.json` is this, serialised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardView {
    pub generated_at: String,
    pub time_zone: String,
    pub filter: Filter,
    pub counts: Vec<CountView>,
    pub overdue: Vec<ClockView>,
    pub upcoming: Vec<ClockView>,
    pub alerts: Vec<AlertView>,
    /// Items flagged `needs_review` the desk has not acted on yet, oldest first (bounded by
    /// the limit; `review_total` counts them all).
    pub review: Vec<ReviewView>,
    pub review_total: u64,
    /// The calendar coverage notice, when operators must act ([`calendar_detail`]).
    pub calendar_notice: Option<String>,
    /// Several instances: which instance runs each unit (its newest lease in the shared
    /// store), by unit; empty for a single instance.
    pub owners: Vec<OwnerView>,
}

/// A unit and the instance whose lease on it is the newest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerView {
    pub unit: String,
    pub instance: String,
    pub epoch: i64,
    pub since: String,
}

/// RFC 3339 in `tz`, whole seconds: `2026-03-02T09:30:00+08:00`.
pub fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// A duration for people: the two largest units (`45s`, `12m 05s`, `3h 07m`, `2d 4h`).
pub fn human(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

fn clock_view(c: &BoardClock, now: Timestamp, tz: &TimeZone) -> ClockView {
    let left_ms = c.due_at.as_millisecond() - now.as_millisecond();
    // Same rule as the store's: due at or before now is overdue.
    let overdue = left_ms <= 0;
    let due_in = if overdue {
        format!("{} overdue", human(left_ms.unsigned_abs() / 1000))
    } else {
        format!("in {}", human(left_ms.unsigned_abs().div_ceil(1000)))
    };
    ClockView {
        item_id: c.item_id.clone(),
        clock_id: c.clock_id.clone(),
        department: c.department.clone(),
        state: c.state.as_str(),
        started_at: local(c.started_at, tz),
        due_at: local(c.due_at, tz),
        overdue,
        due_in_secs: left_ms / 1000,
        due_in,
        provisional: c.provisional,
    }
}

fn alert_view(a: &BoardAlert, tz: &TimeZone) -> AlertView {
    AlertView {
        kind: a.kind.clone(),
        clock_id: a.clock_id.clone(),
        item_id: a.item_id.clone(),
        department: a.department.clone(),
        due_at: local(a.due_at, tz),
        fired_at: local(a.fired_at, tz),
        late: a.late,
        provisional: a.provisional,
    }
}

fn percent(p: f64) -> u32 {
    (p.clamp(0.0, 1.0) * 100.0).round() as u32
}

fn review_view(r: &BoardReview, now: Timestamp, tz: &TimeZone) -> ReviewView {
    let waited = (now.as_millisecond() - r.decided_at.as_millisecond()).max(0) / 1000;
    ReviewView {
        item_id: r.item_id.clone(),
        department: r.lead.clone(),
        decided_at: local(r.decided_at, tz),
        waiting_secs: waited,
        waiting: human(waited as u64),
        source: r.source.clone(),
        confidence_percent: percent(r.confidence),
        candidates: r
            .candidates
            .iter()
            .map(|c| CandidateView {
                category: c.category.as_str(),
                percent: percent(c.confidence),
            })
            .collect(),
    }
}

/// The view of a store snapshot at `now` (pure).
pub fn view(data: &BoardData, filter: &Filter, now: Timestamp, tz: &TimeZone) -> BoardView {
    BoardView {
        generated_at: local(now, tz),
        time_zone: tz.iana_name().unwrap_or("UTC offset").to_string(),
        filter: filter.clone(),
        counts: data
            .counts
            .iter()
            .map(|c| CountView {
                clock_id: c.clock_id.clone(),
                within: c.running.saturating_sub(c.overdue + c.warning),
                warning: c.warning,
                overdue: c.overdue,
                running: c.running,
                paused: c.paused,
                pending: c.pending,
                open: c.running + c.paused + c.pending,
            })
            .collect(),
        overdue: data
            .overdue
            .iter()
            .map(|c| clock_view(c, now, tz))
            .collect(),
        upcoming: data
            .upcoming
            .iter()
            .map(|c| clock_view(c, now, tz))
            .collect(),
        alerts: data.alerts.iter().map(|a| alert_view(a, tz)).collect(),
        review: data
            .review
            .iter()
            .map(|r| review_view(r, now, tz))
            .collect(),
        review_total: data.review_total,
        calendar_notice: None,
        owners: Vec::new(),
    }
}

/// The owners' table rows (pure): `since` shown in the office's time zone when it reads.
pub fn owners(rows: Vec<crate::store::LeaseRow>, tz: &TimeZone) -> Vec<OwnerView> {
    rows.into_iter()
        .map(|r| OwnerView {
            since: r
                .since
                .parse::<Timestamp>()
                .map(|t| local(t, tz))
                .unwrap_or(r.since),
            unit: r.unit,
            instance: r.instance,
            epoch: r.epoch,
        })
        .collect()
}

/// Reads the snapshot off the async runtime and builds the view.
async fn snapshot(s: &AdminState, params: &HashMap<String, String>) -> Result<BoardView, Response> {
    let filter = parse_filter(params)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad parameter: {e}\n")).into_response())?;
    let now = Timestamp::now();
    let q = BoardQuery {
        department: filter.department.clone(),
        clock: filter.clock.clone(),
        now,
        limit: filter.limit,
        alerts_limit: filter.limit,
        clock_ids: s.board.clock_ids.clone(),
    };
    let started = std::time::Instant::now();
    let data = blocking(&s.store, move |st| st.board(&q))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "SLA board: store read failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store could not be read; see the log\n",
            )
                .into_response()
        })?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "SLA board read"
    );
    let mut v = view(&data, &filter, now, &s.board.tz);
    v.calendar_notice = calendar_detail(&s.board, now);
    if s.ownership.is_some() {
        // A failed read leaves the table empty: the clocks above matter more.
        match blocking(&s.store, |st| st.leases()).await {
            Ok(rows) => v.owners = owners(rows, &s.board.tz),
            Err(e) => tracing::warn!(error = %e, "SLA board: leases unreadable"),
        }
    }
    Ok(v)
}

const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

pub async fn board_html(
    State(s): State<AdminState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match snapshot(&s, &params).await {
        Ok(v) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                NO_STORE,
                // No script, no outside resource: only the inline style may apply.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            render_html(&v, &s.board),
        )
            .into_response(),
        Err(r) => r,
    }
}

pub async fn board_json(
    State(s): State<AdminState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match snapshot(&s, &params).await {
        Ok(v) => ([NO_STORE], axum::Json(v)).into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests;
