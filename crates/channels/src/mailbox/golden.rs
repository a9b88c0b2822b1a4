//! Golden files for the mail normalizer (after mail-parser's own `NNN.eml` → `NNN.json`):
//! every `tests/fixtures/eml/NAME.eml`, read once with LF and once with CRLF line endings,
//! must give exactly `tests/fixtures/eml/NAME.expected.json` — the envelope's wire form
//! (`kafka::wire::envelope_v1`) for a good mail, `{"quarantined": {reason, detail}}` for a bad
//! one. The raw mail's hash differs between LF and CRLF, so `id`, `upstream.id` and
//! `upstream.raw_ref` are replaced by a note; everything else, attachment hashes included, is
//! compared as is. Arrival is a fixed instant, and intake's fields (routing, SLA) are not set
//! by the normalizer, so nothing varies between runs.
//!
//! `UPDATE_GOLDEN=1 cargo test --lib golden` rewrites the expected files from the LF run;
//! read every changed file before committing it.

use super::parse::{Limits, normalize};
use petitiond_store::blobs::DryRunBlobStore;
use serde_json::{Value, json};
use std::path::Path;

fn limits() -> Limits {
    Limits {
        max_parts: 50,
        max_depth: 10,
        // Small, so that a small fixture can exceed it.
        max_decoded_bytes: 16 * 1024,
        letter_reference: Some(
            regex::Regex::new(r"(?:信件编号|條碼|条码)[:：]\s*([A-Z]{2}-\d{4}-\d{6})").unwrap(),
        ),
    }
}

fn outcome(raw: &[u8]) -> Value {
    let arrival = "2026-03-02T01:16:00Z".parse().unwrap();
    match normalize(raw, arrival, "mailbox", &limits(), &DryRunBlobStore) {
        Ok(env) => {
            let mut v = petitiond_kafka::wire::envelope_v1(&env);
            v["id"] = json!("(UUID v5 of letter:upstream.id)");
            v["upstream"]["id"] = json!("(sha256: of the raw mail; differs for LF and CRLF)");
            v["upstream"]["raw_ref"] = json!("(sha256: of the raw mail; differs for LF and CRLF)");
            v
        }
        Err(bad) => json!({"quarantined": {"reason": bad.reason(), "detail": bad.to_string()}}),
    }
}

fn with_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

fn with_crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 40);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[test]
fn every_eml_fixture_matches_its_expected_envelope_with_lf_and_crlf() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/eml");
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    assert!(names.len() >= 12, "the corpus has {} mails", names.len());
    let mut failures = Vec::new();
    for eml in &names {
        let raw = std::fs::read(eml).unwrap();
        let lf = with_lf(&raw);
        let crlf = with_crlf(&lf);
        let got = outcome(&lf);
        let expected_path = eml.with_extension("expected.json");
        if update {
            let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
            std::fs::write(&expected_path, text).unwrap();
        }
        let expected: Value = match std::fs::read_to_string(&expected_path) {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(e) => {
                failures.push(format!("{}: {e}", expected_path.display()));
                continue;
            }
        };
        let name = eml.file_name().unwrap().to_string_lossy();
        if got != expected {
            failures.push(format!(
                "{name} (LF):\n  expected {expected}\n  got      {got}"
            ));
        }
        let got_crlf = outcome(&crlf);
        if got_crlf != expected {
            failures.push(format!(
                "{name} (CRLF):\n  expected {expected}\n  got      {got_crlf}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
