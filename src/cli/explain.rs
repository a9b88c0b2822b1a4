//! `petitiond explain`: one input read as its channel would read it, routed through the
//! daemon's own path (`Router::explain`), printed masked with the routing trace.

use super::*;

/// A scanned-letter mail as the mailbox channel would read it.
fn explain_letter(
    config: &Config,
    raw: &[u8],
) -> Result<petitiond_core::envelope::Envelope, (&'static str, String)> {
    let limits = crate::channels::mailbox::parse::Limits::of(config.mailbox.as_ref());
    crate::channels::mailbox::parse::normalize(
        raw,
        jiff::Timestamp::now(),
        "explain",
        &limits,
        &crate::store::blobs::DryRunBlobStore,
    )
    .map_err(|bad| (bad.reason(), bad.to_string()))
}

/// One hotline or portal JSON record, read through the configured source's mapping (for a
/// hotline without a `[channels.hotline]` section: the built-in Open311 mapping). Attachment
/// URLs are listed, not fetched.
fn explain_record(
    config: &Config,
    channel: &str,
    raw: &[u8],
) -> Result<petitiond_core::envelope::Envelope, (&'static str, String)> {
    use crate::channels::http::record;
    let source = config.http_sources.iter().find(|s| s.name == channel);
    let (mapping, max) = match (source, channel) {
        (Some(s), _) => (s.mapping.clone(), s.max_record_bytes),
        (None, "hotline") => (crate::config::http::Mapping::open311(), 256 * 1024),
        (None, _) => {
            return Err((
                "no_mapping",
                format!(
                    "no enabled [channels.{channel}] section in the config: its field mapping is needed"
                ),
            ));
        }
    };
    let text =
        String::from_utf8(raw.to_vec()).map_err(|_| ("invalid_json", "not UTF-8".to_string()))?;
    let value = serde_json::value::RawValue::from_string(text)
        .map_err(|e| ("invalid_json", e.to_string()))?;
    let m = record::map(&value, &mapping, config.sla.calendar.time_zone(), max)
        .map_err(|bad| (bad.reason(), bad.to_string()))?;
    for (url, _) in &m.attachments {
        eprintln!(
            "attachment (not fetched by explain): {}",
            crate::config::url_for_log(url)
        );
    }
    let channel = if channel == "hotline" {
        petitiond_core::envelope::Channel::Hotline
    } else {
        petitiond_core::envelope::Channel::Portal
    };
    use crate::store::blobs::BlobStore;
    let raw_ref = crate::store::blobs::DryRunBlobStore
        .put(raw)
        .map(|r| r.claim())
        .unwrap_or_default();
    Ok(crate::channels::http::build_envelope(
        channel,
        "explain",
        &m,
        raw_ref,
        jiff::Timestamp::now(),
    ))
}

/// Routes `env` through the daemon's path ([`crate::routing::Router::explain`], then the
/// decision stamped on the envelope and its arrival clocks started as intake does); returns
/// the trace. Without the store, explain cannot link repeat petitions (`related`,
/// `repeat_petition`): those depend on the items already recorded.
fn route_as_the_daemon(
    config: Config,
    env: &mut petitiond_core::envelope::Envelope,
) -> Result<String, ExitCode> {
    let inputs = crate::routing::RouterInputs::from_config(&config);
    let router = crate::routing::Router::new(inputs).map_err(|d| {
        eprintln!("{d}");
        ExitCode::from(2)
    })?;
    let explained = router.explain(env, jiff::Timestamp::now());
    explained.routed.stamp(env);
    crate::intake::start_received_clocks(&config.sla, &crate::metrics::Metrics::new(), env);
    Ok(explained.trace)
}

/// `petitiond explain`, within the same item boundary as intake: a panic on the record is
/// reported as the quarantine it would be, with the panic's message withheld.
pub(super) fn explain(path: &Path, channel: &str, record: &Path) -> ExitCode {
    std::panic::catch_unwind(|| explain_one(path, channel, record)).unwrap_or_else(|_| {
        eprintln!(
            "{}: would be quarantined: {} (petitiond panicked on it, a bug: please report it with the file; the panic message is withheld as it may quote the record)",
            record.display(),
            crate::intake::PANIC_REASON
        );
        ExitCode::FAILURE
    })
}

fn explain_one(path: &Path, channel: &str, record: &Path) -> ExitCode {
    with_config(path, |config| {
        let raw = match std::fs::read(record) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", record.display());
                return ExitCode::from(2);
            }
        };
        let normalized = match channel {
            "letter" => explain_letter(&config, &raw),
            "hotline" | "portal" => explain_record(&config, channel, &raw),
            other => {
                eprintln!("error: --channel {other}: expected `letter`, `hotline` or `portal`");
                return ExitCode::from(2);
            }
        };
        let mut env = match normalized {
            Ok(e) => e,
            Err((reason, detail)) => {
                eprintln!(
                    "{}: would be quarantined: {reason} ({detail})",
                    record.display()
                );
                return ExitCode::FAILURE;
            }
        };
        let trace = match route_as_the_daemon(config, &mut env) {
            Ok(trace) => trace,
            Err(code) => return code,
        };
        match serde_json::to_string_pretty(&env.redacted()) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        println!("\n{trace}");
        ExitCode::SUCCESS
    })
}
