//! The board's HTML: one page, no script, every value escaped — the head, the filter form,
//! the counts, the review queue, the clock tables, the alerts and (several instances) the
//! units' owners.

use super::*;

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

/// HTML-escapes text for element content and quoted attribute values (the report's escaper).
pub use crate::report::render::escape as esc;

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
