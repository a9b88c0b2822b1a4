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

/// The "who runs what" table (several instances only).
fn owners_table(out: &mut String, owners: &[OwnerView]) {
    if owners.is_empty() {
        return;
    }
    out.push_str(
        "<section><h2>Instances</h2><table id=\"owners\"><thead><tr><th>Unit</th>\
         <th>Instance</th><th>Lease epoch</th><th>Since</th></tr></thead><tbody>",
    );
    for o in owners {
        let _ = write!(
            out,
            "<tr data-unit=\"{unit}\" data-instance=\"{inst}\"><td data-col=\"unit\">{unit}</td>\
             <td data-col=\"instance\">{inst}</td><td data-col=\"epoch\">{epoch}</td>\
             <td data-col=\"since\"><time datetime=\"{since}\">{since_shown}</time></td></tr>",
            unit = esc(&o.unit),
            inst = esc(&o.instance),
            epoch = o.epoch,
            since = esc(&o.since),
            since_shown = esc(&shown(&o.since)),
        );
    }
    out.push_str("</tbody></table></section>");
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-03-02T09:30:00+08:00` → `2026-03-02 09:30:00` (the zone is stated once on the page).
fn shown(rfc3339: &str) -> String {
    let s = rfc3339.replacen('T', " ", 1);
    s.get(..19).unwrap_or(&s).to_string()
}

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:1.5rem;color:#111;background:#fff}\
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:1.6rem 0 .4rem}\
table{border-collapse:collapse;min-width:40rem}th,td{border:1px solid #bbb;padding:.25rem .55rem;text-align:left}\
thead th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.overdue td,td.overdue{background:#fde2e1}tr.warning td,td.warning{background:#fff3cd}\
code{font-size:.9em}form{margin:.8rem 0}label{margin-right:.8rem}p.empty{color:#555}\
.meta{color:#444}.provisional{font-size:.85em;color:#7a4a00}\
p.notice{background:#fff3cd;border:1px solid #e0c060;padding:.4rem .6rem}";

/// The marker after a due time computed on a provisional calendar year.
const PROVISIONAL: &str = " <span class=\"provisional\" data-flag=\"provisional\" \
     title=\"computed on a provisional calendar (no official notice for the year yet); \
     recomputed when it is installed\">provisional</span>";

fn row_clock(out: &mut String, c: &ClockView) {
    let class = if c.overdue { " class=\"overdue\"" } else { "" };
    let _ = write!(
        out,
        "<tr{class} data-item=\"{item}\" data-clock=\"{clock}\" data-department=\"{dept}\" \
         data-state=\"{state}\" data-due=\"{due}\" data-due-in-secs=\"{secs}\" \
         data-provisional=\"{prov}\">\
         <td data-col=\"item\"><code>{item}</code></td><td data-col=\"clock\">{clock}</td>\
         <td data-col=\"department\">{dept}</td><td data-col=\"state\">{state}</td>\
         <td data-col=\"started\"><time datetime=\"{started}\">{started_shown}</time></td>\
         <td data-col=\"due\"><time datetime=\"{due}\">{due_shown}</time>{marker}</td>\
         <td data-col=\"due-in\">{due_in}</td></tr>",
        item = esc(&c.item_id),
        clock = esc(&c.clock_id),
        dept = esc(&c.department),
        state = esc(c.state),
        due = esc(&c.due_at),
        secs = c.due_in_secs,
        started = esc(&c.started_at),
        started_shown = esc(&shown(&c.started_at)),
        due_shown = esc(&shown(&c.due_at)),
        due_in = esc(&c.due_in),
        prov = c.provisional,
        marker = if c.provisional { PROVISIONAL } else { "" },
    );
}

fn clock_table(out: &mut String, id: &str, title: &str, rows: &[ClockView], empty: &str) {
    let _ = write!(
        out,
        "<section aria-labelledby=\"{id}-h\"><h2 id=\"{id}-h\">{title} ({n})</h2>",
        n = rows.len()
    );
    if rows.is_empty() {
        let _ = write!(out, "<p class=\"empty\" id=\"{id}-empty\">{empty}</p>");
    } else {
        let _ = write!(
            out,
            "<table id=\"{id}\"><thead><tr><th scope=\"col\">Item</th><th scope=\"col\">Clock</th>\
             <th scope=\"col\">Department</th><th scope=\"col\">State</th><th scope=\"col\">Started</th>\
             <th scope=\"col\">Due</th><th scope=\"col\">Due in</th></tr></thead><tbody>"
        );
        for c in rows {
            row_clock(out, c);
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}

/// Items the intake desk must classify by hand, with routing's two best guesses.
fn review_table(out: &mut String, v: &BoardView) {
    let _ = write!(
        out,
        "<section aria-labelledby=\"review-h\"><h2 id=\"review-h\">Needs review \
         (<span id=\"review-total\">{}</span>)</h2>",
        v.review_total
    );
    if v.review.is_empty() {
        out.push_str(
            "<p class=\"empty\" id=\"review-empty\">No item waits for the intake desk's review.</p>",
        );
    } else {
        out.push_str(
            "<table id=\"review\"><thead><tr><th scope=\"col\">Item</th>\
             <th scope=\"col\">Department</th><th scope=\"col\">Routed</th>\
             <th scope=\"col\">Waiting</th><th scope=\"col\">Unsure by</th>\
             <th scope=\"col\">Candidates</th></tr></thead><tbody>",
        );
        for r in &v.review {
            let candidates: Vec<String> = r
                .candidates
                .iter()
                .map(|c| format!("{} {}%", c.category, c.percent))
                .collect();
            let _ = write!(
                out,
                "<tr data-item=\"{item}\" data-department=\"{dept}\" data-source=\"{source}\" \
                 data-confidence=\"{conf}\" data-candidates=\"{cands}\" data-waiting-secs=\"{secs}\">\
                 <td data-col=\"item\"><code>{item}</code></td>\
                 <td data-col=\"department\">{dept}</td>\
                 <td data-col=\"routed\"><time datetime=\"{at}\">{at_shown}</time></td>\
                 <td data-col=\"waiting\">{waiting}</td>\
                 <td data-col=\"source\">{source} {conf}%</td>\
                 <td data-col=\"candidates\">{shown}</td></tr>",
                item = esc(&r.item_id),
                dept = esc(&r.department),
                source = esc(&r.source),
                conf = r.confidence_percent,
                cands = esc(&r
                    .candidates
                    .iter()
                    .map(|c| c.category)
                    .collect::<Vec<_>>()
                    .join(" ")),
                secs = r.waiting_secs,
                at = esc(&r.decided_at),
                at_shown = esc(&shown(&r.decided_at)),
                waiting = esc(&r.waiting),
                shown = esc(&candidates.join(", ")),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}

fn select(
    out: &mut String,
    name: &str,
    label: &str,
    options: &[(String, String)],
    on: Option<&str>,
) {
    let _ = write!(
        out,
        "<label>{label} <select name=\"{name}\" id=\"filter-{name}\"><option value=\"\">all</option>"
    );
    let mut listed = false;
    for (value, text) in options {
        let sel = if on == Some(value.as_str()) {
            listed = true;
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{}\"{sel}>{}</option>",
            esc(value),
            esc(text)
        );
    }
    if let (Some(v), false) = (on, listed) {
        // A filter value the config does not list (an old clock id) stays selectable.
        let _ = write!(
            out,
            "<option value=\"{v}\" selected>{v}</option>",
            v = esc(v)
        );
    }
    out.push_str("</select></label>");
}

/// The page (pure). Every value from the store, the config or the request is escaped.
pub fn render_html(v: &BoardView, cfg: &BoardConfig) -> String {
    let mut out = String::with_capacity(16 * 1024);
    head(&mut out, v, cfg);
    filter_form(&mut out, v, cfg);
    counts_section(&mut out, v);
    review_table(&mut out, v);
    clock_table(
        &mut out,
        "overdue",
        "Overdue, most overdue first",
        &v.overdue,
        "Nothing overdue.",
    );
    clock_table(
        &mut out,
        "upcoming",
        "Due next",
        &v.upcoming,
        "No running clock is waiting.",
    );
    alerts_section(&mut out, v);
    owners_table(&mut out, &v.owners);
    out.push_str("</body></html>\n");
    out
}

/// The document's head (styles, the reload interval) and the page's title line.
fn head(out: &mut String, v: &BoardView, cfg: &BoardConfig) {
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>SLA board — petitiond</title><style>{STYLE}</style></head><body>\
         <h1>SLA board</h1><p class=\"meta\">As of <time id=\"generated-at\" datetime=\"{now}\">{now_shown}</time> \
         — times in <span id=\"time-zone\">{tz}</span>; reloads every {refresh} s. \
         Item ids, clocks, departments and times only. <a href=\"/board.json{qs}\">JSON</a></p>",
        refresh = cfg.refresh_secs,
        now = esc(&v.generated_at),
        now_shown = esc(&shown(&v.generated_at)),
        tz = esc(&v.time_zone),
        qs = esc(&query_string(&v.filter)),
    );
}

/// The filter form (department, clock; a non-default limit kept) and the calendar notice.
fn filter_form(out: &mut String, v: &BoardView, cfg: &BoardConfig) {
    out.push_str("<form method=\"get\" action=\"/board\" id=\"filter\">");
    let depts: Vec<(String, String)> = cfg
        .departments
        .iter()
        .map(|(id, name)| (id.clone(), format!("{id} — {name}")))
        .collect();
    select(
        out,
        "department",
        "Department",
        &depts,
        v.filter.department.as_deref(),
    );
    let clocks: Vec<(String, String)> = cfg
        .clock_ids
        .iter()
        .map(|c| (c.clone(), c.clone()))
        .collect();
    select(out, "clock", "Clock", &clocks, v.filter.clock.as_deref());
    if v.filter.limit != DEFAULT_LIMIT {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"limit\" value=\"{}\">",
            v.filter.limit
        );
    }
    out.push_str("<button type=\"submit\">Filter</button> <a href=\"/board\">all</a></form>");
    if let Some(n) = &v.calendar_notice {
        let _ = write!(
            out,
            "<p class=\"notice\" id=\"calendar-notice\" role=\"status\">Calendar: {}</p>",
            esc(n)
        );
    }
}

/// Open clocks per clock id: within time, warned, overdue, paused, pending.
fn counts_section(out: &mut String, v: &BoardView) {
    out.push_str("<section aria-labelledby=\"counts-h\"><h2 id=\"counts-h\">Open clocks</h2>");
    if v.counts.is_empty() {
        out.push_str("<p class=\"empty\" id=\"counts-empty\">No open clocks.</p>");
    } else {
        out.push_str(
            "<table id=\"counts\"><thead><tr><th scope=\"col\">Clock</th>\
             <th scope=\"col\">Running, within time</th><th scope=\"col\">Running, warned</th>\
             <th scope=\"col\">Running, overdue</th><th scope=\"col\">Paused</th>\
             <th scope=\"col\">Pending (calendar year not loaded)</th>\
             <th scope=\"col\">Open</th></tr></thead><tbody>",
        );
        for c in &v.counts {
            let _ = write!(
                out,
                "<tr data-clock=\"{clock}\"><th scope=\"row\">{clock}</th>\
                 <td class=\"n\" data-count=\"within\">{}</td>\
                 <td class=\"n{}\" data-count=\"warning\">{}</td>\
                 <td class=\"n{}\" data-count=\"overdue\">{}</td>\
                 <td class=\"n\" data-count=\"paused\">{}</td>\
                 <td class=\"n{}\" data-count=\"pending\">{}</td>\
                 <td class=\"n\" data-count=\"open\">{}</td></tr>",
                c.within,
                if c.warning > 0 { " warning" } else { "" },
                c.warning,
                if c.overdue > 0 { " overdue" } else { "" },
                c.overdue,
                c.paused,
                if c.pending > 0 { " overdue" } else { "" },
                c.pending,
                c.open,
                clock = esc(&c.clock_id),
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}

/// The recent alerts: when, kind, clock, item, department, due, late.
fn alerts_section(out: &mut String, v: &BoardView) {
    let _ = write!(
        out,
        "<section aria-labelledby=\"alerts-h\"><h2 id=\"alerts-h\">Recent alerts ({})</h2>",
        v.alerts.len()
    );
    if v.alerts.is_empty() {
        out.push_str("<p class=\"empty\" id=\"alerts-empty\">No alerts yet.</p>");
    } else {
        out.push_str(
            "<table id=\"alerts\"><thead><tr><th scope=\"col\">Fired</th><th scope=\"col\">Kind</th>\
             <th scope=\"col\">Clock</th><th scope=\"col\">Item</th><th scope=\"col\">Department</th>\
             <th scope=\"col\">Due</th><th scope=\"col\">Late</th></tr></thead><tbody>",
        );
        for a in &v.alerts {
            let class = if a.kind.starts_with("warning") {
                " class=\"warning\""
            } else {
                " class=\"overdue\""
            };
            let _ = write!(
                out,
                "<tr{class} data-kind=\"{kind}\" data-clock=\"{clock}\" data-item=\"{item}\" \
                 data-department=\"{dept}\" data-late=\"{late}\" data-provisional=\"{prov}\">\
                 <td data-col=\"fired\"><time datetime=\"{fired}\">{fired_shown}</time></td>\
                 <td data-col=\"kind\">{kind}</td><td data-col=\"clock\">{clock}</td>\
                 <td data-col=\"item\"><code>{item}</code></td><td data-col=\"department\">{dept}</td>\
                 <td data-col=\"due\"><time datetime=\"{due}\">{due_shown}</time>{marker}</td>\
                 <td data-col=\"late\">{late_text}</td></tr>",
                kind = esc(&a.kind),
                clock = esc(&a.clock_id),
                item = esc(&a.item_id),
                dept = esc(&a.department),
                late = a.late,
                fired = esc(&a.fired_at),
                fired_shown = esc(&shown(&a.fired_at)),
                due = esc(&a.due_at),
                due_shown = esc(&shown(&a.due_at)),
                late_text = if a.late { "late (catch-up)" } else { "on time" },
                prov = a.provisional,
                marker = if a.provisional { PROVISIONAL } else { "" },
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}

/// `?department=…&clock=…` for the JSON link (percent-encoded).
fn query_string(f: &Filter) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &f.department {
        parts.push(format!("department={}", pct(d)));
    }
    if let Some(c) = &f.clock {
        parts.push(format!("clock={}", pct(c)));
    }
    if f.limit != DEFAULT_LIMIT {
        parts.push(format!("limit={}", f.limit));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
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
