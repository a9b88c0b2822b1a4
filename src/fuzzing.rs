//! Fuzzing entry points: one function per `cargo fuzz` target in `fuzz/`, each feeding
//! arbitrary bytes through the daemon's own parsers exactly as the daemon calls them, and
//! checking what must hold whatever the bytes: no panic, every envelope made has a wire form,
//! and routing's automaton agrees with its reference implementation.
//!
//! They live in the library, not in `fuzz/`, so that plain `cargo test` replays every
//! committed crash input (`fuzz/regressions/TARGET/*`) through the same code on stable Rust
//! (the `committed_fuzz_regressions_replay_without_panicking` test below); `fuzz/` only wraps
//! them for libFuzzer. See ARCHITECTURE.md, "Fuzzing".
//!
//! Not part of the daemon: nothing outside tests and `fuzz/` calls this module. It reads the
//! shipped example config, rules and dictionaries from the source tree, once.

use crate::channels::http::record;
use crate::config::http::{HttpSourceConfig, Mapping, Protocol};
use crate::config::{Config, Department};
use crate::store::blobs::DryRunBlobStore;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use petitiond_core::envelope::{Channel, Envelope};
use petitiond_core::routing::rules::{Input, RuleSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One fuzz target: arbitrary bytes in, a panic on a finding.
pub type Target = fn(&[u8]);

/// The fuzz targets, by the name of their `fuzz/fuzz_targets/NAME.rs` and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("http_hotline", http_hotline),
    ("http_portal", http_portal),
    ("mail_letter", mail_letter),
    ("routing_rules", routing_rules),
    ("routing_dictionary", routing_dictionary),
    ("config", config),
    ("status_event", status_event),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped example config, its HTTP channel sections enabled (as an operator would), so
/// the hotline and portal mappings are the shipped ones.
fn shipped() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let path = repo().join("config/petitiond.toml");
        let text = std::fs::read_to_string(&path).expect("config/petitiond.toml");
        let text = text
            .replacen(
                "[channels.hotline]\nenabled = false",
                "[channels.hotline]\nenabled = true",
                1,
            )
            .replacen(
                "[channels.portal]\nenabled = false",
                "[channels.portal]\nenabled = true",
                1,
            )
            .replace("PETITIOND_PORTAL_SECRET", "PATH");
        Config::parse(&text, "petitiond.toml", path.parent().unwrap())
            .unwrap_or_else(|e| panic!("the shipped config must parse: {e}"))
    })
}

fn source(name: &str) -> &'static HttpSourceConfig {
    shipped()
        .http_sources
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("the shipped config has no [channels.{name}]"))
}

fn tz() -> &'static TimeZone {
    static TZ: OnceLock<TimeZone> = OnceLock::new();
    TZ.get_or_init(|| TimeZone::get("Asia/Shanghai").unwrap_or(TimeZone::UTC))
}

/// A fixed "now", so that a run is reproducible.
fn now() -> Timestamp {
    "2026-03-02T01:16:00Z".parse().unwrap()
}

/// A response body → its records → each record mapped → the envelope and its wire form: what
/// an HTTP channel does with a page, less the attachment downloads and the store.
fn http_page(data: &[u8], channel: Channel, name: &str, pointer: &str, mapping: &Mapping) {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(records) = record::records(body, pointer) else {
        return;
    };
    let max = source(name).max_record_bytes;
    for raw in &records {
        let Ok(m) = record::map(raw, mapping, tz(), max) else {
            continue;
        };
        let env =
            crate::channels::http::build_envelope(channel, name, &m, "sha256:0".into(), now());
        check_envelope(&env);
    }
}

/// What every envelope must survive: its wire form, its redacted form, its Debug.
fn check_envelope(env: &Envelope) {
    let wire = crate::kafka::wire::envelope_v1(env);
    let _ = serde_json::to_vec(&wire).expect("an envelope's wire form serialises");
    let _ = format!("{:?}", env.redacted());
}

/// An Open311 GeoReport v2 `requests.json` body (an array of service requests).
pub fn http_hotline(data: &[u8]) {
    let src = source("hotline");
    debug_assert!(matches!(src.protocol, Protocol::Open311 { .. }));
    http_page(data, Channel::Hotline, "hotline", "", &src.mapping);
}

/// A portal page, read through the shipped `[channels.portal.mapping]`.
pub fn http_portal(data: &[u8]) {
    let src = source("portal");
    let Protocol::Paged { items_pointer, .. } = &src.protocol else {
        panic!("the shipped portal is paged");
    };
    http_page(data, Channel::Portal, "portal", items_pointer, &src.mapping);
}

/// One mail from the scanned-letter mailbox, with the shipped `[channels.mailbox]` limits.
pub fn mail_letter(data: &[u8]) {
    use crate::channels::mailbox::parse::{Limits, normalize};
    static LIMITS: OnceLock<Limits> = OnceLock::new();
    let limits = LIMITS.get_or_init(|| Limits::of(shipped().mailbox.as_ref()));
    match normalize(data, now(), "mailbox", limits, &DryRunBlobStore) {
        Ok(env) => check_envelope(&env),
        Err(bad) => {
            let _ = (bad.reason(), bad.to_string());
        }
    }
}

fn shipped_rules() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| std::fs::read_to_string(repo().join("config/rules.toml")).unwrap())
}

/// (name, content) of every shipped dictionary, sorted by name.
fn shipped_dictionaries() -> &'static [(String, String)] {
    static FILES: OnceLock<Vec<(String, String)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir: PathBuf = repo().join("config/dictionaries");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        files.sort();
        files
    })
}

fn department_ids() -> Vec<&'static str> {
    shipped()
        .departments
        .iter()
        .map(|d: &Department| d.id.as_str())
        .collect()
}

/// Parses rules and dictionaries as `petitiond check` and a reload do; a set that compiles
/// routes a few items (the fuzz input among them), and the automaton must agree with the
/// reference implementation on each.
fn rules_and_route(rules: &str, dictionaries: &[(String, String)], extra_text: &str) {
    let Ok((rs, warnings)) = RuleSet::parse("rules.toml", rules, dictionaries, &department_ids())
    else {
        return;
    };
    let _ = warnings.iter().map(ToString::to_string).count();
    // (title, content, service code and region): the fuzz input as text and as the upstream
    // fields, and a fixed item.
    let items = [
        ("", extra_text, None),
        (extra_text, "小区噪音扰民", Some(extra_text)),
        (
            "拖欠工资",
            "公司拖欠农民工工资三个月，劳动监察不处理。",
            None,
        ),
    ];
    for channel in [Channel::Hotline, Channel::Portal, Channel::Letter] {
        for (title, content, upstream) in items {
            let input = Input {
                channel,
                title,
                content,
                service_code: upstream,
                region: upstream,
                attachments: content.len() % 3,
                repeat_petition: title.len() % 2 == 1,
            };
            let (fast, trace) = rs.evaluate(&input);
            let _ = format!("{trace:?}");
            assert_eq!(
                fast,
                rs.decide_naive(&input),
                "the automaton and the reference implementation disagree"
            );
        }
    }
}

/// A routing rules file, with the shipped dictionaries and departments.
pub fn routing_rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    rules_and_route(text, shipped_dictionaries(), text);
}

/// A dictionary file in place of the shipped `livelihood.toml`, with the shipped rules.
pub fn routing_dictionary(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files: Vec<(String, String)> = shipped_dictionaries()
        .iter()
        .map(|(name, content)| {
            if name == "livelihood.toml" {
                (name.clone(), text.to_string())
            } else {
                (name.clone(), content.clone())
            }
        })
        .collect();
    rules_and_route(shipped_rules(), &files, text);
}

/// A config file (paths relative to the shipped `config/` directory).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml", &repo().join("config")) {
        Ok(c) => {
            let _ = (c.topics(), c.status_topics());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// One record value from a department's status topic.
pub fn status_event(data: &[u8]) {
    use petitiond_core::reply::{ReplyChecker, Satisfaction, defaults};
    static CHECKER: std::sync::OnceLock<ReplyChecker> = std::sync::OnceLock::new();
    match crate::status::parse(data) {
        Ok((ev, kind)) => {
            let _ = format!("{ev:?} {kind:?}");
            // The closed loop reads the payload's reply text and evaluation (issue 17).
            let field = |k: &str| ev.payload.as_ref()?.get(k)?.as_str();
            if let Some(reply) = field("reply") {
                let checker = CHECKER.get_or_init(|| {
                    let lists = defaults();
                    ReplyChecker::new(true, lists.elements, lists.banned)
                        .expect("the default phrase lists compile")
                });
                let check = checker.check(Some(reply));
                let _ = (check.verdict(), check.passed());
            }
            if let Some(s) = field("satisfaction") {
                let _ = Satisfaction::parse(s);
            }
        }
        Err(rejected) => {
            let _ = rejected.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input a fuzz run found and a fix answered is committed under
    /// `fuzz/regressions/TARGET/`; this replays them on stable Rust, in plain `cargo test`.
    #[test]
    fn committed_fuzz_regressions_replay_without_panicking() {
        let dir = repo().join("fuzz/regressions");
        let mut replayed = 0;
        for (name, target) in TARGETS {
            let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
                continue;
            };
            let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files {
                let data = std::fs::read(&f).unwrap();
                let caught = std::panic::catch_unwind(|| target(&data));
                assert!(caught.is_ok(), "{name}: {} panics again", f.display());
                replayed += 1;
            }
        }
        eprintln!("replayed {replayed} committed fuzz inputs");
    }

    /// Each target accepts the seeds `scripts/fuzz-corpus.sh` gives it (a target that rejects
    /// its own fixtures outright would fuzz nothing but the first parse error).
    #[test]
    fn every_fuzz_target_runs_on_its_fixture_seeds() {
        let read = |p: &str| std::fs::read(repo().join(p)).unwrap();
        http_hotline(
            &[
                b"[",
                &read("tests/fixtures/http/hotline-order.json")[..],
                b"]",
            ]
            .concat(),
        );
        http_portal(
            &[
                br#"{"data":{"items":["#,
                &read("tests/fixtures/http/portal-petition.json")[..],
                b"]}}",
            ]
            .concat(),
        );
        mail_letter(&read("tests/fixtures/eml/01-utf8-subject-pdf.eml"));
        routing_rules(&read("config/rules.toml"));
        routing_dictionary(&read("config/dictionaries/livelihood.toml"));
        config(&read("config/petitiond.toml"));
        status_event(br#"{"event_id":"e1","item_id":"i1","event":"accepted"}"#);
    }
}
