//! Repeat-petition keys from crafted text: what intake does with a portal item or a letter's
//! cover text before recording it — find ID numbers and mobiles in the text, hash them into
//! person keys, look the keys up in the store — against the previous algorithm, kept here as
//! the baseline and run in the same process on the same texts.
//!
//! ```text
//! cargo bench --bench person_numbers
//! PERSON_BENCH_BASELINE_MAX_BYTES=262144 cargo bench --bench person_numbers   # skip the slow 1 MB baseline
//! ```
//!
//! The baseline is the code before issue 13: every number found compared with every number
//! found before (`Vec::contains`: quadratic in distinct numbers), no cap on what is scanned or
//! returned, one store query per key and a linear search per row found. The current code
//! (`envelope::person`, `routing::repeat`, `SqliteStore::related_items`) reads at most 256 KiB
//! of a text, keeps at most 8 numbers per kind and 8 keys, and asks the store once.
//!
//! Texts, each of the sizes given: `mobiles` (distinct valid mobiles, `电话138xxxxxxxx，`),
//! `ids` (distinct valid ID numbers), `digits` (one run of digits: every window is a candidate,
//! none stands alone), `letter` (ordinary Chinese text with one phone number at the end — also
//! past the scan limit at 1 MB: not found, by design). The store holds 2,000 earlier items of
//! the crafted numbers' first keys, so look-ups find rows.
//!
//! Run without `--bench` (as `cargo test --benches` does) it is a short smoke run (16 KiB).

use hmac::{Hmac, Mac};
use petitiond::config::routing::RepeatConfig;
use petitiond::envelope::{Channel, Envelope, Personal, Request, Upstream, person};
use petitiond::routing::repeat::Repeat;
use petitiond::store::{Decision, NewItem, PersonIndex, SqliteStore, Store};
use regex::Regex;
use sha2::Sha256;
use std::hint::black_box;
use std::time::{Duration, Instant};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const MATTER: &str = "rights/hrss";

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = if full {
        vec![64 << 10, 256 << 10, 1 << 20]
    } else {
        vec![16 << 10]
    };
    let baseline_max: usize = std::env::var("PERSON_BENCH_BASELINE_MAX_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("bench.db"), Duration::from_secs(5)).unwrap();
    let repeat = Repeat::with_key(
        RepeatConfig {
            key: None,
            window_days: 180,
            flag_at: 3,
            from_text: vec![Channel::Portal, Channel::Letter],
        },
        KEY,
    );
    seed_history(&store, &repeat);
    // The baseline's look-ups read the same file through their own connection.
    let conn = rusqlite::Connection::open(dir.path().join("bench.db")).unwrap();
    println!(
        "person numbers → keys → store look-up, one text at a time (ms; baseline = the code before the fix)"
    );
    println!(
        "{:<8} {:>9} {:>9} {:>12} {:>12} {:>10} {:>10}",
        "text", "bytes", "numbers", "baseline", "now", "now keys", "speed-up"
    );
    for &size in &sizes {
        for (name, text) in texts(size) {
            let numbers = baseline_find(&text, mobile_regex(), |b| b.is_ascii_digit()).len()
                + baseline_find(&text, id_regex(), |b| b.is_ascii_alphanumeric()).len();
            let (now_ms, keys) = time(|| current(&store, &repeat, &text));
            let base = (size <= baseline_max).then(|| time(|| baseline(&conn, &text)).0);
            println!(
                "{:<8} {:>9} {:>9} {:>12} {:>12.2} {:>10} {:>10}",
                name,
                text.len(),
                numbers,
                base.map_or("skipped".into(), |b| format!("{b:.1}")),
                now_ms,
                keys,
                base.map_or("-".into(), |b| format!("{:.0}x", b / now_ms.max(0.001)))
            );
        }
    }
}

/// Runs `f` three times and returns the fastest time in ms with its result.
fn time<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..3 {
        let t = Instant::now();
        let r = black_box(f());
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
        out = Some(r);
    }
    (best, out.unwrap())
}

fn texts(size: usize) -> Vec<(&'static str, String)> {
    let fill = |unit: &dyn Fn(usize) -> String| {
        let mut s = String::with_capacity(size + 64);
        let mut n = 0;
        while s.len() < size {
            s.push_str(&unit(n));
            n += 1;
        }
        s
    };
    let mobiles = fill(&|n| format!("电话138{n:08}，"));
    let ids = fill(&|n| {
        let first = format!(
            "{:06}19{:02}01{:02}{:03}",
            110101 + n / 1_000_000 % 10,
            50 + n / 28_000 % 40,
            1 + n % 28,
            n / 28 % 1000
        );
        format!("身份证{first}{}；", check_char(first.as_bytes()))
    });
    let digits = "1".repeat(size);
    let mut letter =
        fill(&|_| "来信人反映小区供暖不足，多次向物业反映未果，请求有关部门督促解决。".into());
    letter.push_str("联系电话13912345678。");
    vec![
        ("mobiles", mobiles),
        ("ids", ids),
        ("digits", digits),
        ("letter", letter),
    ]
}

fn check_char(d17: &[u8]) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let sum: u32 = d17
        .iter()
        .zip(W)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    C[(sum % 11) as usize]
}

fn portal_item(n: usize, content: &str) -> Envelope {
    Envelope::new(
        Channel::Portal,
        Upstream {
            id: format!("bench-{n}"),
            source: "portal".into(),
            raw_ref: format!("sha256:{n:064x}"),
            ..Default::default()
        },
        jiff::Timestamp::from_second(1_772_000_000 + n as i64).unwrap(),
        Request {
            title: None,
            content: Personal::new(content),
        },
    )
}

/// 2,000 earlier items on one matter, each under the keys of a few crafted numbers.
fn seed_history(store: &SqliteStore, repeat: &Repeat) {
    for n in 0..2000 {
        let env = portal_item(n, &format!("电话138{:08}，电话138{:08}", n % 8, 8 + n % 50));
        let keys = repeat.person_keys(&env);
        store
            .record_item(&NewItem {
                outbox: vec![],
                decision: Decision {
                    rule_id: "r".into(),
                    rules_version: "v".into(),
                    lead: "hrss".into(),
                    assists: vec![],
                    decided_at: env.received_at,
                },
                clocks: vec![],
                envelope: env,
                version: None,
                person_index: Some(PersonIndex {
                    person_keys: keys,
                    matter: MATTER.into(),
                }),
                writeback: vec![],
            })
            .unwrap();
    }
}

/// What intake does now: `Repeat::person_keys`, then one `related_items` query.
fn current(store: &SqliteStore, repeat: &Repeat, text: &str) -> usize {
    let env = portal_item(1_000_000, text);
    let keys = repeat.person_keys(&env);
    let related = store
        .related_items(&keys, MATTER, jiff::Timestamp::UNIX_EPOCH, "x")
        .unwrap();
    black_box(related);
    keys.len()
}

// ---- the baseline: the code before the fix ------------------------------------------------

fn id_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"[0-9](?:[ \-]?[0-9]){16}[ \-]?[0-9Xx]").unwrap())
}

fn mobile_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?:\(?(?:\+|00)?86\)?[ \-.]?)?1[3-9][0-9](?:[ \-.]?[0-9]){8}").unwrap()
    })
}

/// The previous `person::find_in`: the whole text, every distinct number, `Vec::contains`.
fn baseline_find(text: &str, re: &Regex, alone_after: fn(u8) -> bool) -> Vec<String> {
    let norm: fn(&str) -> Option<String> = if std::ptr::eq(re, id_regex()) {
        person::normalize_id_number
    } else {
        person::normalize_mobile
    };
    let text = person::half_width(text);
    let bytes = text.as_bytes();
    let mut out: Vec<String> = Vec::new();
    for m in re.find_iter(&text) {
        let before = m.start().checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(m.end()).copied();
        if before.is_some_and(|b| b.is_ascii_digit() || b == b'+') || after.is_some_and(alone_after)
        {
            continue;
        }
        if let Some(v) = norm(m.as_str())
            && !out.contains(&v)
        {
            out.push(v);
        }
    }
    out
}

fn hash(kind: &str, value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The previous path: every number a key, a query per key, a linear search per row found.
fn baseline(conn: &rusqlite::Connection, text: &str) -> usize {
    let ids = baseline_find(text, id_regex(), |b| b.is_ascii_alphanumeric());
    let mobiles = baseline_find(text, mobile_regex(), |b| b.is_ascii_digit());
    let mut keys: Vec<String> = ids
        .iter()
        .map(|v| hash("id", v))
        .chain(mobiles.iter().map(|v| hash("mobile", v)))
        .collect();
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    let mut st = conn
        .prepare_cached(
            "SELECT item_id, received_ms FROM person_items
             WHERE person_key = ?1 AND matter = ?2 AND received_ms >= ?3 AND item_id <> ?4",
        )
        .unwrap();
    let mut found: Vec<(i64, String)> = Vec::new();
    for k in &keys {
        let rows = st
            .query_map(rusqlite::params![k, MATTER, 0i64, "x"], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, String>(0)?))
            })
            .unwrap();
        for row in rows {
            let row = row.unwrap();
            if !found.iter().any(|(_, id)| *id == row.1) {
                found.push(row);
            }
        }
    }
    found.sort();
    black_box(found);
    keys.len()
}
