//! `[channels.<name>.writeback]` validated, and its `due_clocks` resolved against the
//! validated SLA clocks.

use super::*;

/// `[channels.<name>.writeback]`. `due_clocks` is resolved later, against the validated
/// clocks ([`Validator::writeback_clocks`]).
pub(super) fn writeback(
    v: &mut Validator<'_>,
    name: &str,
    r: &RawHttpSource,
    w: &RawWriteback,
) -> Option<WritebackConfig> {
    let at = |k: &str| format!("channels.{name}.writeback.{k}");
    if r.protocol == "open311" {
        v.err(
            &format!("channels.{name}.writeback"),
            "Open311 GeoReport v2 has no call that updates a request's status (GET reads requests, POST requests.json creates a new one): write-back needs the vendor's status API, read with protocol = \"paged\"",
        );
        return None;
    }
    let method = method(v, &at("method"), &w.method);
    let path = path(v, &at("path"), w.path.as_deref())?;
    if reqwest::header::HeaderName::from_bytes(w.idempotency_header.as_bytes()).is_err() {
        v.err(
            &at("idempotency_header"),
            format!("`{}` is not an HTTP header name", w.idempotency_header),
        );
    }
    let mut completed_on = Vec::new();
    for (i, e) in w.completed_on.iter().enumerate() {
        match petitiond_core::sla::policy::EventKind::parse(e) {
            Some(k) => completed_on.push(k),
            None => v.err(
                &format!("{}[{i}]", at("completed_on")),
                format!("`{e}` is not a status event"),
            ),
        }
    }
    let time_format = time_format(v, &at("time_format"), &w.time_format);
    if let Some(c) = &w.canonical {
        canonical(v, &at("canonical"), c, r);
    }
    v.positive(&at("max_attempts"), u64::from(w.max_attempts));
    for (k, n) in [
        ("backoff_initial_ms", w.backoff_initial_ms),
        ("backoff_max_ms", w.backoff_max_ms),
        ("request_timeout_ms", w.request_timeout_ms),
        ("poll_interval_ms", w.poll_interval_ms),
        ("requests_per_second", u64::from(w.requests_per_second)),
    ] {
        v.positive(&at(k), n);
    }
    let (acknowledged, due, completed, fields) = states_and_fields(v, &at, w);
    Some(WritebackConfig {
        method,
        path,
        idempotency_header: w.idempotency_header.clone(),
        due_clocks: w.due_clocks.clone().unwrap_or_default(),
        completed_on,
        time_format,
        canonical: w.canonical.clone(),
        max_attempts: w.max_attempts.max(1),
        backoff_initial: Duration::from_millis(w.backoff_initial_ms),
        backoff_max: Duration::from_millis(w.backoff_max_ms.max(w.backoff_initial_ms)),
        request_timeout: Duration::from_millis(w.request_timeout_ms),
        poll_interval: Duration::from_millis(w.poll_interval_ms),
        requests_per_second: w.requests_per_second.max(1),
        acknowledged,
        due,
        completed,
        fields,
    })
}

/// The write's HTTP method: POST, PUT or PATCH (any case).
fn method(v: &mut Validator<'_>, at: &str, m: &str) -> reqwest::Method {
    match m.to_uppercase().as_str() {
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        "PATCH" => reqwest::Method::PATCH,
        other => {
            v.err(at, format!("`{other}`: expected POST, PUT or PATCH"));
            reqwest::Method::POST
        }
    }
}

/// The write's path: required, made absolute, `{id}` exactly once and no other placeholder,
/// query or fragment.
fn path(v: &mut Validator<'_>, at: &str, p: Option<&str>) -> Option<String> {
    let Some(p) = p else {
        v.err(
            at,
            "required: where a state is written, e.g. \"/petitions/{id}/status\"",
        );
        return None;
    };
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    if p.matches("{id}").count() != 1 {
        v.err(
            at,
            format!("`{p}` must hold `{{id}}` (the item's upstream id) exactly once"),
        );
    } else if p.replace("{id}", "").contains(['{', '}', '?', '#']) {
        v.err(
            at,
            format!("`{p}`: `{{id}}` is the only placeholder, and no query or fragment"),
        );
    }
    Some(p)
}

/// `rfc3339` (`None`), or a strftime pattern that formats a probe time to something.
fn time_format(v: &mut Validator<'_>, at: &str, f: &str) -> Option<String> {
    if f == "rfc3339" {
        return None;
    }
    let probe = jiff::civil::date(2026, 1, 2)
        .at(3, 4, 5, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .and_then(|z| jiff::fmt::strtime::format(f, &z).ok());
    if probe.is_none_or(|p| p.is_empty()) {
        v.err(
            at,
            format!("`{f}`: expected `rfc3339` or a strftime pattern"),
        );
    }
    Some(f.to_string())
}

/// The signed string of a write: known placeholders only, and only on an HMAC-signed source.
fn canonical(v: &mut Validator<'_>, at: &str, c: &str, r: &RawHttpSource) {
    if let Some(bad) = unknown_placeholder(c) {
        v.err(
            at,
            format!("unknown placeholder `{{{bad}}}` (known: {KNOWN_PLACEHOLDERS})"),
        );
    }
    if r.auth.as_ref().is_none_or(|a| a.kind != "hmac") {
        v.err(at, "only for HMAC-signed sources (auth.kind = \"hmac\")");
    }
}

/// The upstream's words for the three states (blank: not written back; at least one is) and
/// the body's field names (the state's is required; the due time's while `due` is written).
fn states_and_fields(
    v: &mut Validator<'_>,
    at: &dyn Fn(&str) -> String,
    w: &RawWriteback,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    WritebackFields,
) {
    let word = |v: &str| (!v.trim().is_empty()).then(|| v.to_string());
    let states = &w.states;
    let (acknowledged, due, completed) = (
        word(&states.acknowledged),
        word(&states.due),
        word(&states.completed),
    );
    if acknowledged.is_none() && due.is_none() && completed.is_none() {
        v.err(
            &at("states"),
            "every state is left out: nothing would be written back (disable the section instead)",
        );
    }
    let f = &w.fields;
    let fields = WritebackFields {
        state: word(&f.state),
        department: word(&f.department),
        department_name: word(&f.department_name),
        due_at: word(&f.due_at),
        clock: word(&f.clock),
        provisional: word(&f.provisional),
        time: word(&f.time),
        item_id: word(&f.item_id),
    };
    if fields.state.is_none() {
        v.err(
            &at("fields.state"),
            "required: the field that names the state",
        );
    }
    if due.is_some() && fields.due_at.is_none() {
        v.err(
            &at("fields.due_at"),
            "required while states.due is written back",
        );
    }
    (acknowledged, due, completed, fields)
}

/// Resolves each source's write-back `due_clocks` against the validated clocks: named ones
/// must exist; absent, they default to the clocks that start on arrival for this channel
/// alone (its first-touch clock: `portal.sign_in`, `hotline.view`).
pub fn writeback_clocks(
    v: &mut Validator<'_>,
    raw: &crate::config::RawChannels,
    sources: &mut [HttpSourceConfig],
    clocks: &[petitiond_core::sla::policy::ClockPolicy],
) {
    for s in sources.iter_mut() {
        let Some(wb) = s.writeback.as_mut() else {
            continue;
        };
        let named = match s.name.as_str() {
            "hotline" => raw.hotline.as_ref(),
            _ => raw.portal.as_ref(),
        }
        .and_then(|r| r.writeback.as_ref())
        .and_then(|w| w.due_clocks.clone());
        match named {
            Some(ids) => {
                for (i, id) in ids.iter().enumerate() {
                    if !clocks.iter().any(|c| &c.id == id) {
                        let known: Vec<&str> = clocks.iter().map(|c| c.id.as_str()).collect();
                        v.err(
                            &format!("channels.{}.writeback.due_clocks[{i}]", s.name),
                            format!(
                                "`{id}` is not an SLA clock (configured: {})",
                                known.join(", ")
                            ),
                        );
                    }
                }
                wb.due_clocks = ids;
            }
            None => {
                wb.due_clocks = clocks
                    .iter()
                    .filter(|c| {
                        c.start == petitiond_core::sla::policy::Trigger::Received
                            && c.channels == [s.channel]
                    })
                    .map(|c| c.id.clone())
                    .collect();
            }
        }
    }
}
