//! The personal-data scan (issue 18 point 6; ARCHITECTURE.md, "Personal-data scan"): reads
//! everything the integration suite observed (`tests/it/capture.rs` writes it when
//! `PETITIOND_PII_CAPTURE_DIR` is set: daemon logs, CLI output, admin answers, alert records,
//! alert mail) and reports every raw personal datum in it as `file:line: kind masked-value`.
//!
//! What it looks for, in each line folded to half-width:
//! - **ID numbers** (居民身份证, GB 11643): 18 characters — as one token or grouped 6-8-4 /
//!   6-4-4-4 — with a real birth date and a valid MOD 11-2 check character.
//! - **Mobiles**: `1[3-9]` and nine digits, as one token or grouped 3-4-4 / 3-8 / 7-4 / 4-3-4,
//!   optionally after `+86`, `86` or `0086`.
//! - **Landlines**: an area code `0` + 2-3 digits, then 7-8 digits (`0571-87654321`,
//!   `(0571)87654321`).
//! - **The fixtures' own numbers** in any grouping of groups of 3 digits or more, and **the
//!   fixtures' petitioner names** (every name the simulators generate, the names in the HTTP
//!   fixtures, and `来信人…反映` / `姓名：` names in the letters and tests): [`Known::collect`].
//!
//! A number is a run of ASCII digits standing alone: a token with a letter in it (a hex hash,
//! a UUID's groups, base64) is never one, and groups join only across one or two of
//! `space - . )`. Masked forms petitiond writes (`138******78`, `110*************2X`, `张**`,
//! `<8 chars>`) are not findings. The datum is never printed: findings show it masked.
//!
//! `the_capture_dir_holds_no_personal_data` scans `PETITIOND_PII_SCAN_DIR` (scripts/test.sh
//! sets it after the suite ran with capture on) and fails on any finding; without the
//! variable it is skipped.

use aho_corasick::AhoCorasick;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    IdNumber,
    Mobile,
    Landline,
    FixtureNumber,
    Name,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::IdNumber => "ID number",
            Kind::Mobile => "mobile number",
            Kind::Landline => "landline number",
            Kind::FixtureNumber => "fixture number",
            Kind::Name => "petitioner name",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Finding {
    file: String,
    line: usize,
    kind: Kind,
    /// The datum masked as petitiond masks it: never the raw value.
    masked: String,
}

/// What the fixtures contain: numbers (digits only, normalised) and names.
struct Known {
    numbers: HashSet<String>,
    names: Vec<String>,
    names_ac: AhoCorasick,
}

/// Masks a datum as petitiond does (`envelope::pii::mask`): numbers keep their first three and
/// last two characters, names their first character.
fn mask(kind: Kind, value: &str) -> String {
    let kind = match kind {
        Kind::Name => petitiond::envelope::PiiKind::Name,
        _ => petitiond::envelope::PiiKind::Phone,
    };
    petitiond::envelope::pii::mask(value, kind)
}

fn fold(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
        '\u{3000}' => ' ',
        c => c,
    }
}

const SEPARATORS: [char; 4] = [' ', '-', '.', ')'];

/// A numeric group of a phrase and whether a `.` joins it to the one before (a decimal point
/// looks like that too, so only the 3-4-4 mobile grouping accepts it).
#[derive(Clone, Debug)]
struct Group {
    text: String,
    after_dot: bool,
}

/// The phrases of a line: runs of numeric groups (digits, the last character may be `X`)
/// joined by one or two separators. A token containing any other letter ends a phrase and is
/// never part of one.
fn phrases(line: &str) -> Vec<Vec<Group>> {
    let chars: Vec<char> = line.chars().map(fold).collect();
    let mut out: Vec<Vec<Group>> = Vec::new();
    let mut cur: Vec<Group> = Vec::new();
    // Characters since the last group: separators only, and how many.
    let mut gap_ok = false;
    let mut gap = 0usize;
    let mut dot = false;
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_alphanumeric() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let tok: String = chars[start..i].iter().collect();
            let body = tok.strip_suffix(['X', 'x']).unwrap_or(&tok);
            let numeric = !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit());
            if numeric {
                let joined = gap_ok && (1..=2).contains(&gap);
                if !joined && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                cur.push(Group {
                    text: tok.to_ascii_uppercase(),
                    after_dot: dot && !cur.is_empty(),
                });
            } else if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            gap_ok = true;
            gap = 0;
            dot = false;
        } else {
            if SEPARATORS.contains(&chars[i]) {
                gap += 1;
                dot |= chars[i] == '.';
            } else {
                gap_ok = false;
            }
            i += 1;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_mobile(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b.iter().all(u8::is_ascii_digit)
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
}

/// A group run without a country prefix (`86`, `0086`, as a group or glued to the number).
fn strip_country(groups: &[String]) -> Vec<String> {
    if let Some(first) = groups.first() {
        if (first == "86" || first == "0086") && groups.len() > 1 {
            return groups[1..].to_vec();
        }
        for p in ["0086", "86"] {
            if let Some(rest) = first.strip_prefix(p)
                && (groups.len() > 1 || is_mobile(rest))
                && rest.starts_with('1')
                && matches!(rest.len(), 3 | 7 | 11)
            {
                let mut g = vec![rest.to_string()];
                g.extend_from_slice(&groups[1..]);
                return g;
            }
        }
    }
    groups.to_vec()
}

/// The personal numbers in one run of groups (every contiguous sub-run is tried).
fn numbers_in(groups: &[Group], known: &Known) -> BTreeSet<(Kind, String)> {
    let mut out = BTreeSet::new();
    let n = groups.len();
    for a in 0..n {
        for b in (a + 1)..=n.min(a + 5) {
            let dotted = groups[a + 1..b].iter().any(|g| g.after_dot);
            let run: Vec<String> = groups[a..b].iter().map(|g| g.text.clone()).collect();
            let run = run.as_slice();
            let lens: Vec<usize> = run.iter().map(String::len).collect();
            let all: String = run.concat();
            let digits_only = run.iter().all(|g| g.bytes().all(|c| c.is_ascii_digit()));
            // ID numbers: only the last group may end in X.
            let x_inside = run[..run.len() - 1].iter().any(|g| g.ends_with('X'));
            if !x_inside
                && !dotted
                && matches!(lens.as_slice(), [18] | [6, 8, 4] | [6, 4, 4, 4])
                && petitiond::envelope::person::normalize_id_number(&all).is_some()
            {
                out.insert((Kind::IdNumber, all.clone()));
                continue;
            }
            if !digits_only {
                continue;
            }
            let bare = strip_country(run);
            let bare_lens: Vec<usize> = bare.iter().map(String::len).collect();
            let bare_all = bare.concat();
            let shape = match bare_lens.as_slice() {
                [3, 4, 4] => true,
                [11] | [3, 8] | [7, 4] | [4, 3, 4] => !dotted,
                _ => false,
            };
            if shape && is_mobile(&bare_all) {
                out.insert((Kind::Mobile, bare_all));
                continue;
            }
            if dotted {
                continue;
            }
            if matches!(lens.as_slice(), [3 | 4, 7 | 8])
                && run[0].starts_with('0')
                && !run[0].starts_with("00")
                && !run[1].starts_with('0')
            {
                out.insert((Kind::Landline, all.clone()));
                continue;
            }
            if bare.iter().all(|g| g.len() >= 3) && known.numbers.contains(&bare_all) {
                out.insert((Kind::FixtureNumber, bare_all));
            }
        }
    }
    out
}

fn scan_line(line: &str, known: &Known) -> BTreeSet<(Kind, String)> {
    let mut out = BTreeSet::new();
    // sd_notify's `MONOTONIC_USEC=` (and systemd's other `*_USEC=` fields) are clock readings:
    // after about four hours of uptime one has eleven digits starting with 14, a mobile's shape.
    let line = usec_fields().replace_all(line, "${key}=");
    let line = line.as_ref();
    for p in phrases(line) {
        out.extend(numbers_in(&p, known));
    }
    for m in known.names_ac.find_iter(line) {
        out.insert((Kind::Name, known.names[m.pattern().as_usize()].clone()));
    }
    out
}

/// `KEY_USEC=digits` as systemd's notify protocol writes it.
fn usec_fields() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"(?P<key>\b[A-Z_]+_USEC)=[0-9]+").unwrap())
}

#[derive(Default, Debug)]
struct Figures {
    files: usize,
    lines: usize,
    bytes: u64,
    /// Files per kind of observation (the `what` of `<test>.<what>.<seq>.<pid>.txt`).
    by_kind: BTreeMap<String, usize>,
}

/// The kind of observation a capture file holds, from its name.
fn capture_kind(name: &str) -> String {
    let parts: Vec<&str> = name.rsplitn(4, '.').collect();
    match parts.as_slice() {
        [_txt, _pid, _seq, rest] => rest.rsplit('.').next().unwrap_or(rest).to_string(),
        _ => "other".to_string(),
    }
}

fn scan_dir(dir: &Path, known: &Known) -> (Figures, Vec<Finding>) {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut fig = Figures::default();
    let mut findings = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let rel = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
        fig.files += 1;
        fig.bytes += bytes.len() as u64;
        *fig.by_kind
            .entry(capture_kind(&f.file_name().unwrap().to_string_lossy()))
            .or_default() += 1;
        let text = String::from_utf8_lossy(&bytes);
        for (i, line) in text.lines().enumerate() {
            fig.lines += 1;
            for (kind, value) in scan_line(line, known) {
                findings.push(Finding {
                    file: rel.clone(),
                    line: i + 1,
                    kind,
                    masked: mask(kind, &value),
                });
            }
        }
    }
    (fig, findings)
}

impl Known {
    fn new(numbers: HashSet<String>, names: BTreeSet<String>) -> Known {
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| n.chars().count() >= 2)
            .collect();
        let names_ac = AhoCorasick::new(&names).unwrap();
        Known {
            numbers,
            names,
            names_ac,
        }
    }

    /// The fixtures' numbers and names: the simulators' names, the HTTP fixtures' name
    /// fields, the golden letters' expected petitioners, and every number and letter-writer
    /// name in the fixture files, the demo's letters and the integration tests' sources.
    fn collect() -> Known {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut names: BTreeSet<String> = simulator_names(root).into_iter().collect();
        let mut numbers = HashSet::new();
        for text in fixture_texts(root) {
            names.extend(names_in(&text));
            numbers.extend(fixture_numbers_in(&text));
        }
        for f in [
            "tests/fixtures/http/hotline-order.json",
            "tests/fixtures/http/portal-petition.json",
        ] {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(root.join(f)).unwrap()).unwrap();
            json_names(&v, &mut names);
        }
        for e in std::fs::read_dir(root.join("tests/fixtures/eml")).unwrap() {
            let p = e.unwrap().path();
            if p.to_string_lossy().ends_with(".expected.json") {
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                if let Some(n) = v.pointer("/petitioner/name").and_then(|n| n.as_str()) {
                    names.insert(n.to_string());
                }
            }
        }
        Known::new(numbers, names)
    }
}

/// Every name the simulators generate: each of `SURNAMES` with each of `GIVEN`, read from
/// their source (`crates/sim/src/texts.rs`).
fn simulator_names(root: &Path) -> Vec<String> {
    let src = std::fs::read_to_string(root.join("crates/sim/src/texts.rs")).unwrap();
    let pair = regex::Regex::new(r#"\("(\p{Han}+)", "[a-z]+"\)"#).unwrap();
    let table = |name: &str| -> Vec<String> {
        let start = src
            .find(&format!("const {name}:"))
            .unwrap_or_else(|| panic!("crates/sim/src/texts.rs has no {name}"));
        let body = &src[start..];
        let body = &body[..body.find("];").unwrap()];
        pair.captures_iter(body).map(|c| c[1].to_string()).collect()
    };
    let (surnames, given) = (table("SURNAMES"), table("GIVEN"));
    assert!(
        surnames.len() >= 10 && given.len() >= 10,
        "simulator names not found"
    );
    surnames
        .iter()
        .flat_map(|s| given.iter().map(move |g| format!("{s}{g}")))
        .collect()
}

/// Every fixture text: files as they are, and mails also decoded (their text parts).
fn fixture_texts(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in [
        "tests/fixtures/http",
        "tests/fixtures/eml",
        "demo/letters",
        "tests/it",
    ] {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let raw = std::fs::read(&p).unwrap();
            if p.extension().is_some_and(|e| e == "eml")
                && let Some(m) = mail_parser::MessageParser::default().parse(&raw)
            {
                let mut t = m.subject().unwrap_or_default().to_string();
                for i in 0..m.text_body_count() {
                    t.push('\n');
                    t.push_str(&m.body_text(i).unwrap_or_default());
                }
                out.push(t);
            }
            out.push(String::from_utf8_lossy(&raw).into_owned());
        }
    }
    out
}

/// Letter writers' names as the fixtures write them: `来信人张三丰反映`, `姓名：李娜`.
fn names_in(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"来信人(\p{Han}{2,3}?)(?:反映|称|，)|姓名[:：]\s*(\p{Han}{2,4})")
        .unwrap();
    re.captures_iter(text)
        .filter_map(|c| c.get(1).or(c.get(2)).map(|m| m.as_str().to_string()))
        .collect()
}

/// Numbers in a fixture text: what petitiond itself recognises there, and what this scan does.
fn fixture_numbers_in(text: &str) -> Vec<String> {
    let mut out = petitiond::envelope::person::id_numbers_in(text);
    out.extend(petitiond::envelope::person::mobiles_in(text));
    let empty = Known::new(HashSet::new(), BTreeSet::new());
    for line in text.lines() {
        out.extend(scan_line(line, &empty).into_iter().map(|(_, v)| v));
    }
    out
}

/// Names in a JSON fixture: `name` inside a petitioner, `last_name` + `first_name`.
fn json_names(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(o) => {
            if let (Some(l), Some(f)) = (
                o.get("last_name").and_then(|x| x.as_str()),
                o.get("first_name").and_then(|x| x.as_str()),
            ) {
                out.insert(format!("{l}{f}"));
            }
            if let Some(p) = o.get("petitioner")
                && let Some(n) = p.get("name").and_then(|x| x.as_str())
            {
                out.insert(n.to_string());
            }
            for x in o.values() {
                json_names(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_names(x, out)),
        _ => {}
    }
}

/// The scan of the suite's capture: `PETITIOND_PII_SCAN_DIR`; with
/// `PETITIOND_PII_SCAN_REQUIRE` (comma-separated kinds, e.g. `daemon-log,kafka`) each named
/// kind of observation must be there, so a capture that silently stopped cannot pass.
#[test]
fn the_capture_dir_holds_no_personal_data() {
    let Some(dir) = std::env::var_os("PETITIOND_PII_SCAN_DIR").filter(|d| !d.is_empty()) else {
        eprintln!(
            "skipped: PETITIOND_PII_SCAN_DIR not set (scripts/test.sh sets it after the suite)"
        );
        return;
    };
    let dir = PathBuf::from(dir);
    let known = Known::collect();
    let started = std::time::Instant::now();
    let (fig, findings) = scan_dir(&dir, &known);
    for f in &findings {
        println!("{}:{}: {} {}", f.file, f.line, f.kind.label(), f.masked);
    }
    let kinds: Vec<String> = fig
        .by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "personal-data scan of {}: {} files, {} lines, {} bytes, {} findings ({} names and {} numbers known from the fixtures; {:.1} s)\n  files by kind: {}",
        dir.display(),
        fig.files,
        fig.lines,
        fig.bytes,
        findings.len(),
        known.names.len(),
        known.numbers.len(),
        started.elapsed().as_secs_f64(),
        kinds.join(", ")
    );
    let required = std::env::var("PETITIOND_PII_SCAN_REQUIRE").unwrap_or_default();
    let missing: Vec<&str> = required
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty() && !fig.by_kind.keys().any(|have| have.starts_with(k)))
        .collect();
    assert!(
        missing.is_empty(),
        "the capture has no {missing:?} files: is PETITIOND_PII_CAPTURE_DIR reaching the tests?"
    );
    assert!(
        fig.files > 0 || required.trim().is_empty(),
        "nothing captured in {}",
        dir.display()
    );
    assert!(
        findings.is_empty(),
        "{} raw personal data in what the suite observed (listed above, masked)",
        findings.len()
    );
}

fn known_for_tests() -> Known {
    Known::new(
        ["13800138000".to_string(), "13900001111".to_string()]
            .into_iter()
            .collect(),
        ["张三丰".to_string(), "李娜".to_string()]
            .into_iter()
            .collect(),
    )
}

fn kinds(line: &str) -> Vec<Kind> {
    scan_line(line, &known_for_tests())
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// A clean full run failed on the notify datagrams once the machine had been up four hours:
/// `MONOTONIC_USEC=14412345627` has a mobile's shape. Clock fields are not numbers of people;
/// the same digits anywhere else still are.
#[test]
fn sd_notify_monotonic_usec_is_not_a_mobile_number() {
    assert_eq!(
        kinds("RELOADING=1\nMONOTONIC_USEC=14412345627"),
        Vec::<Kind>::new()
    );
    assert!(kinds("USEC 14412345627").contains(&Kind::Mobile));
}

#[test]
fn planted_raw_numbers_and_names_are_found() {
    let cases: [(&str, Kind); 16] = [
        ("电话13812345678。", Kind::Mobile),
        ("phone=138-1234-5678 ok", Kind::Mobile),
        ("call (+86) 138 1234 5678", Kind::Mobile),
        ("+8613812345678", Kind::Mobile),
        ("0086 13812345678", Kind::Mobile),
        ("电话：１３８１２３４５６７８", Kind::Mobile),
        ("\"mobile\":\"+86-138-1234-5678\"", Kind::Mobile),
        ("身份证11010519491231002X。", Kind::IdNumber),
        ("id=11010519491231002x", Kind::IdNumber),
        ("110105 19491231 002X", Kind::IdNumber),
        ("座机0571-87654321", Kind::Landline),
        ("座机(0571)87654321", Kind::Landline),
        ("tel 010-12345678", Kind::Landline),
        ("来信人张三丰反映", Kind::Name),
        ("\"name\":\"李娜\"", Kind::Name),
        // A fixture number grouped as no one groups a mobile is still found.
        ("1380 0138 000", Kind::FixtureNumber),
    ];
    for (line, want) in cases {
        assert!(kinds(line).contains(&want), "{line:?}: {:?}", kinds(line));
    }
}

#[test]
fn uuid_digits_and_hex_hashes_are_not_phone_numbers() {
    let lines = [
        // Digits of a mobile's shape inside hex and UUIDs, all-digit UUID groups.
        "item_id=6f1c13812345678a-2b3c item 0d13812345678e",
        "ce_id=13812345-6781-4234-9567-138123456789",
        "ce_id=1381234567-8-12345678",
        "sha256:13812345678abcdef0123456789abcdef0123456789abcdef0123456789abcd",
        "blob a13812345678 b11010519491231002Xc",
        "uuid 550e8400-e29b-41d4-a716-446655440000 simple 550e840013812345678e29b41d4a7164",
        "base64 JVBERi0xLjQKJcOkw7zDtsOfCg== Ab13812345678Cd",
        // Numbers around but not of a mobile's shape.
        "138123456789 2138123456 1381234567",
        "offset=13812345678901 seq=0013812345",
        "elapsed=1.3812345678 secs=13.812345678 rate=1381.2345678",
        "duration_ms=138.12345678 sum 1381234.5678 le=0571.1234567",
        "petitiond_http_request_duration_seconds_bucket{le=\"0.005\"} 1381 1772413200123",
    ];
    for line in lines {
        assert_eq!(kinds(line), Vec::<Kind>::new(), "{line}");
    }
}

#[test]
fn timestamps_are_not_id_numbers() {
    let lines = [
        "2026-03-02T09:12:00.123456789+08:00",
        "ts=1772413200123456789 ns",
        "ts=177241320012345678 offset=202603020912001234",
        "20260302091200 20260302 091200 1234",
        "date 19491231 2026-03-02 09:12:00",
        "1772413201.M1P1.test 1772413200",
        "{\"timestamp\":\"2026-12-06T21:29:31.904312Z\",\"received_at\":1780000000000}",
        // 18 digits with a date inside but the wrong check character.
        "110105194912310021 110105194912310020",
    ];
    for line in lines {
        assert_eq!(kinds(line), Vec::<Kind>::new(), "{line}");
    }
}

#[test]
fn masked_forms_petitiond_writes_are_not_findings() {
    use petitiond::envelope::{Personal, PiiKind};
    let (phone, id, name) = (
        Personal::new("13812345678"),
        Personal::new("11010519491231002X"),
        Personal::new("张三丰"),
    );
    let lines = [
        format!(
            "phone={} id={} name={}",
            phone.masked(PiiKind::Phone),
            id.masked(PiiKind::IdNumber),
            name.masked(PiiKind::Name)
        ),
        format!("{phone:?} {id:?} {name:?}"),
        format!(
            "content={}",
            Personal::new("来信人张三丰电话13812345678").masked(PiiKind::FreeText)
        ),
        "138******78 110*************2X 李* 0571****21".to_string(),
    ];
    for line in &lines {
        assert_eq!(kinds(line), Vec::<Kind>::new(), "{line}");
    }
}

#[test]
fn fixture_names_and_numbers_are_known() {
    let known = Known::collect();
    for name in ["张三丰", "李娜", "王建国", "张伟", "罗国强"] {
        assert!(known.names.iter().any(|n| n == name), "{name} not known");
    }
    for number in [
        "13812345678",
        "13800138000",
        "13900001111",
        "11010519491231002X",
    ] {
        assert!(known.numbers.contains(number), "{number} not known");
    }
}

#[test]
fn findings_name_file_line_and_kind_and_never_the_raw_datum() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.daemon-log.000001.1.txt"),
        "{\"msg\":\"routed\",\"item\":\"550e8400-e29b-41d4-a716-446655440000\"}\nphone=138******78\n{\"msg\":\"oops\",\"text\":\"电话13812345678\"}\n",
    )
    .unwrap();
    let (fig, findings) = scan_dir(dir.path(), &known_for_tests());
    assert_eq!((fig.files, fig.lines), (1, 3));
    assert_eq!(
        findings,
        vec![Finding {
            file: "t.daemon-log.000001.1.txt".into(),
            line: 3,
            kind: Kind::Mobile,
            masked: "138******78".into()
        }]
    );
    assert_eq!(fig.by_kind.get("daemon-log"), Some(&1));
}

/// The scan as scripts/test.sh runs it (this test binary, `PETITIOND_PII_SCAN_DIR`), on a
/// capture with one raw mobile planted: it must fail, naming the file and line, masked; on
/// the same capture without it, it passes.
#[test]
fn a_capture_with_a_planted_raw_number_fails_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let clean = "{\"level\":\"INFO\",\"fields\":{\"message\":\"routed\",\"item\":\"0d9f1381-2345-5678-9abc-138123456789\",\"phone\":\"138******78\"}}\n# HELP petitiond_items_total Items.\npetitiond_items_total{channel=\"letter\"} 13\n";
    std::fs::write(dir.path().join("x.daemon-log.000001.1.txt"), clean).unwrap();
    let run = || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "the_capture_dir_holds_no_personal_data",
                "--nocapture",
            ])
            .env("PETITIOND_PII_SCAN_DIR", dir.path())
            .env("PETITIOND_PII_SCAN_REQUIRE", "daemon-log")
            .output()
            .unwrap()
    };
    let ok = run();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "clean capture failed:\n{stdout}");
    assert!(stdout.contains("1 files, 3 lines"), "{stdout}");

    std::fs::write(
        dir.path().join("x.admin-_board.000002.1.txt"),
        "GET /board -> 200\n<td>item</td>\n<td>电话 13812345678</td>\n",
    )
    .unwrap();
    let bad = run();
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success(), "a planted number passed:\n{stdout}");
    assert!(
        stdout.contains("x.admin-_board.000002.1.txt:3: mobile number 138******78"),
        "{stdout}"
    );
    assert!(stdout.contains("1 findings"), "{stdout}");
    let all = format!("{stdout}{}", String::from_utf8_lossy(&bad.stderr));
    assert!(
        !all.contains("13812345678"),
        "the raw datum was printed:\n{all}"
    );
}
