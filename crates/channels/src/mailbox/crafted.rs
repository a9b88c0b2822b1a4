//! Crafted and random mails through `parse::normalize`: whatever the bytes, the normalizer
//! answers with an envelope or a quarantine reason and never panics. A property-style test
//! with a fixed seed (so a failure is reproducible): headers built from RFC 2047 encoded
//! words in every charset label mail-parser and encoding_rs know (`tests/fixtures/eml/
//! charset-labels.txt`), truncated words, non-ASCII where ASCII is expected, random bytes,
//! RFC 2231 parameter pieces; plus byte-level mutations of the golden mails.
//!
//! The panic hook is left alone: a panic shows in the test output with the case that caused
//! it (test data, not petitioners').

use super::parse::{Limits, normalize};
use petitiond_store::blobs::DryRunBlobStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

const LABELS: &str = include_str!("../../../../tests/fixtures/eml/charset-labels.txt");

fn labels() -> Vec<&'static str> {
    LABELS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Header values people and broken mailers have sent, each a known trap for byte slicing or
/// decoding: non-ASCII right after the charset, truncated words, empty pieces.
const CRAFTED: [&str; 24] = [
    "=?gbk?中文?=",
    "=?gbk?中?=",
    "=?gbk?B?中文?=",
    "=?中文?B?5Lit5paH?=",
    "=?utf-8*中?B?5Lit5paH?=",
    "=?utf-8?Q?=E4=B8?=",
    "=?utf-8?Q?=E4=B8=AD=?=",
    "=?utf-8?B?5Lit",
    "=?utf-8?B?",
    "=?utf-8?",
    "=?",
    "=??=",
    "=?B?=",
    "=??B??=",
    "=?utf-8?B??=",
    "=?gbk?Q?=D6=D0=CE=C4?= 中文 =?gbk?q?=D6?=",
    "=?big5?é?abc?=",
    "=?gb2312?B?1tDOxA==?==?gb2312?B?1tDOxA==?=",
    "=?utf-8?B?5Lit5paH?=\r\n =?utf-8?B?5Lit5paH?=",
    "中文=?utf-8?B?5Lit5paH?=中文",
    "=?utf-7?B?K2hnbi0=?=",
    "=?utf-16?B?AAA=?=",
    "=?iso-2022-jp?B?GyRCJEgbKEI=?=",
    "=?x-user-defined?B?gIE=?=",
];

fn pick<'a, T: ?Sized>(rng: &mut StdRng, xs: &[&'a T]) -> &'a T {
    xs[rng.random_range(0..xs.len())]
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = rng.random_range(0..=max);
    (0..n).map(|_| rng.random()).collect()
}

/// Short text mixing ASCII, CJK, symbols and the characters RFC 2047/2231 give meaning to.
fn random_text(rng: &mut StdRng, max_chars: usize) -> String {
    const ALPHABET: [&str; 16] = [
        "a", "Z", "0", " ", "?", "=", "*", "'", "%", "\"", ";", "中", "文", "é", "😀", "\t",
    ];
    let n = rng.random_range(0..=max_chars);
    (0..n).map(|_| pick(rng, &ALPHABET)).collect()
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One RFC 2047 encoded word, well formed or not.
fn encoded_word(rng: &mut StdRng, labels: &[&str]) -> Vec<u8> {
    let mut label = pick(rng, labels).to_string();
    match rng.random_range(0..10) {
        0 => label = random_text(rng, 4),
        1 => label.push_str("*zh-cn"),
        2 => label = label.to_ascii_uppercase(),
        _ => {}
    }
    let enc = pick(
        rng,
        &["B", "b", "Q", "q", "B", "Q", "X", "", "中", "é", "BB"],
    );
    let payload: Vec<u8> = match rng.random_range(0..6) {
        0 => base64(&random_bytes(rng, 24)).into_bytes(),
        1 => {
            let b = random_bytes(rng, 16);
            b.iter()
                .map(|c| format!("={c:02X}"))
                .collect::<String>()
                .into_bytes()
        }
        2 => random_text(rng, 8).into_bytes(),
        3 => random_bytes(rng, 12),
        4 => {
            // Valid text in UTF-8, encoded properly.
            base64(random_text(rng, 8).as_bytes()).into_bytes()
        }
        _ => Vec::new(),
    };
    let mut w = format!("=?{label}?{enc}?").into_bytes();
    w.extend(payload);
    if rng.random_range(0..5) != 0 {
        w.extend_from_slice(b"?=");
    }
    w
}

/// A header value of words, text, folding and noise; sometimes cut at a random byte.
fn header_value(rng: &mut StdRng, labels: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..rng.random_range(1..=4) {
        match rng.random_range(0..6) {
            0 | 1 => v.extend(encoded_word(rng, labels)),
            2 => v.extend(random_text(rng, 6).into_bytes()),
            3 => v.extend(pick(rng, &CRAFTED).as_bytes()),
            4 => v.extend_from_slice(pick(rng, &[" ", "\r\n ", "\r\n\t", ""]).as_bytes()),
            _ => v.extend(
                random_bytes(rng, 8)
                    .into_iter()
                    .filter(|b| *b != b'\r' && *b != b'\n'),
            ),
        }
    }
    if rng.random_range(0..4) == 0 && !v.is_empty() {
        let cut = rng.random_range(0..v.len());
        v.truncate(cut);
    }
    v
}

/// An RFC 2231 `filename*` parameter in pieces (charset'language'value, percent escapes).
fn rfc2231_param(rng: &mut StdRng, labels: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    let pieces = rng.random_range(1..=4);
    for i in 0..pieces {
        let index = match rng.random_range(0..8) {
            0 => random_text(rng, 3),
            1 => "99999999999999999999999".to_string(),
            _ => i.to_string(),
        };
        let star = if rng.random_bool(0.7) { "*" } else { "" };
        v.extend(format!("; filename*{index}{star}=").into_bytes());
        if i == 0 && rng.random_bool(0.8) {
            v.extend(format!("{}'zh'", pick(rng, labels)).into_bytes());
        }
        match rng.random_range(0..3) {
            0 => {
                let b = random_bytes(rng, 9);
                v.extend(
                    b.iter()
                        .map(|c| format!("%{c:02X}"))
                        .collect::<String>()
                        .into_bytes(),
                );
            }
            1 => v.extend(random_text(rng, 6).into_bytes()),
            _ => v.extend(random_bytes(rng, 6)),
        }
        if rng.random_bool(0.1) {
            v.extend_from_slice(b"%E4%B8");
        }
    }
    v
}

fn crafted_mail(rng: &mut StdRng, labels: &[&str]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(b"From: ");
    m.extend(header_value(rng, labels));
    if rng.random_bool(0.7) {
        m.extend_from_slice(b" <scanner@xfj.example.gov.cn>");
    }
    m.extend_from_slice(b"\r\nDate: Mon, 2 Mar 2026 09:15:00 +0800\r\nSubject: ");
    m.extend(header_value(rng, labels));
    m.extend_from_slice(b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=");
    m.extend(pick(rng, labels).as_bytes());
    let cte = pick(
        rng,
        &["base64", "quoted-printable", "8bit", "7bit", "x-uue"],
    );
    m.extend(format!("\r\nContent-Transfer-Encoding: {cte}\r\n\r\n").into_bytes());
    match cte {
        "base64" => m.extend(base64(&random_bytes(rng, 40)).into_bytes()),
        _ => m.extend(random_bytes(rng, 40)),
    }
    m.extend_from_slice(b"\r\n--b1\r\nContent-Type: application/pdf; name=");
    m.extend(header_value(rng, labels));
    m.extend_from_slice(b"\r\nContent-Disposition: attachment");
    m.extend(rfc2231_param(rng, labels));
    m.extend_from_slice(b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n");
    m
}

fn limits() -> Limits {
    Limits {
        letter_reference: Some(regex::Regex::new(r"(?:信件编号|条码)[:：]\s*(\S+)").unwrap()),
        ..Limits::default()
    }
}

/// Runs `normalize` on `raw`; `Err` with the case if it panicked.
fn survives(raw: &[u8], limits: &Limits) -> Result<(), String> {
    let at = jiff::Timestamp::UNIX_EPOCH;
    std::panic::catch_unwind(|| {
        let _ = normalize(raw, at, "mailbox", limits, &DryRunBlobStore);
    })
    .map_err(|_| String::from_utf8_lossy(raw).into_owned())
}

#[test]
fn crafted_and_random_headers_never_panic_the_normalizer() {
    let labels = labels();
    assert!(labels.len() > 250, "{} charset labels", labels.len());
    let limits = limits();
    let mut failures = Vec::new();
    // Each crafted value alone, in Subject and in From.
    for v in CRAFTED {
        for raw in [
            format!(
                "From: a@b.cn\r\nDate: Mon, 2 Mar 2026 09:15:00 +0800\r\nSubject: {v}\r\n\r\nx\r\n"
            ),
            format!(
                "From: {v} <a@b.cn>\r\nDate: Mon, 2 Mar 2026 09:15:00 +0800\r\nSubject: x\r\n\r\nx\r\n"
            ),
        ] {
            failures.extend(survives(raw.as_bytes(), &limits).err());
        }
    }
    // Every label in an encoded word whose text starts with a multi-byte character.
    for l in &labels {
        for enc in ["B", "Q", "中"] {
            let raw = format!(
                "From: =?{l}?{enc}?中文?= <a@b.cn>\r\nDate: Mon, 2 Mar 2026 09:15:00 +0800\r\nSubject: =?{l}?{enc}?中文?=\r\nContent-Type: text/plain; charset={l}\r\n\r\n\u{4e2d}\r\n"
            );
            failures.extend(survives(raw.as_bytes(), &limits).err());
        }
    }
    let mut rng = StdRng::seed_from_u64(0x7065_7469_7469_6f6e);
    for _ in 0..20_000 {
        let raw = crafted_mail(&mut rng, &labels);
        failures.extend(survives(&raw, &limits).err());
    }
    assert!(
        failures.is_empty(),
        "{} mails panicked the normalizer, e.g.:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
}

#[test]
fn mutated_golden_mails_never_panic_the_normalizer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/eml");
    let mut mails: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    mails.sort();
    assert!(mails.len() >= 12);
    let limits = limits();
    let mut rng = StdRng::seed_from_u64(0x6c65_7474_6572);
    let mut failures = Vec::new();
    for _ in 0..500 {
        for mail in &mails {
            let mut m = mail.clone();
            for _ in 0..rng.random_range(1..=8) {
                if m.is_empty() {
                    break;
                }
                let i = rng.random_range(0..m.len());
                match rng.random_range(0..4) {
                    0 => m[i] = rng.random(),
                    1 => {
                        m.remove(i);
                    }
                    2 => m.splice(i..i, "中".bytes()).for_each(drop),
                    _ => m.truncate(i),
                }
            }
            failures.extend(survives(&m, &limits).err());
        }
    }
    assert!(
        failures.is_empty(),
        "{} mutated mails panicked the normalizer, e.g.:\n{}",
        failures.len(),
        failures
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
}
