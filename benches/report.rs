//! Benchmark of the monthly report (issue 17): generation time with 1,000,000 items in the
//! store, next to baselines measured in the same run.
//!
//! Run: `cargo bench --bench report`. Knobs (environment): `REPORT_BENCH_N` items (default
//! 1000000), `REPORT_BENCH_SMALL` the smaller store of the same shape (default 100000),
//! `REPORT_BENCH_RUNS` timed runs of each figure (default 3; the median is printed).
//!
//! Each store is created with `SqliteStore::open` (the schema and its indexes), then filled
//! in ONE transaction by direct SQL from a seeded generator: twelve months (2025-12 to
//! 2026-11, Asia/Shanghai) of items over every channel, category and five departments, their
//! routing decisions, statutory clocks (acceptance, completion), status events (accepted,
//! replied ok or bounced, evaluated with the three verdicts), repeat-index rows (30% of items
//! from a pool of recurring petitioners) and escalation alerts (1%). 0.5% of items are never
//! accepted and 1% of the accepted never replied (with the recent, still open ones: the
//! key-case list's candidates). The store
//! is then opened again, as the daemon would, and timed:
//! - `monthly` (report 2026-10, the key-case list included) and `key_cases` alone;
//! - baseline 1: `SELECT channel, category, COUNT(*) FROM items GROUP BY channel, category`
//!   over the whole table (one scan, the least any count over all items costs);
//! - baseline 2: the same report on the smaller store (how it scales).

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use petitiond::config::Config;
use petitiond::envelope::{Category, Channel, Envelope, Personal, Request, Upstream};
use petitiond::report::figures;
use petitiond::store::SqliteStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, params};
use std::path::Path;
use std::time::{Duration, Instant};

const DEPARTMENTS: [&str; 5] = ["hrss", "housing", "health", "edu", "desk"];
const CATEGORIES: [Category; 4] = [
    Category::Livelihood,
    Category::Rights,
    Category::Policy,
    Category::Historical,
];
const CHANNELS: [Channel; 3] = [Channel::Hotline, Channel::Portal, Channel::Letter];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").trim().parse().ok())
        .unwrap_or(default)
}

fn config() -> anyhow::Result<Config> {
    let mut text = String::from("[kafka]\nbrokers = \"127.0.0.1:9\"\n");
    for d in DEPARTMENTS {
        text.push_str(&format!(
            "[[departments]]\nid = \"{d}\"\nname = \"{d}\"\ntopic = \"t.{d}\"\n"
        ));
    }
    text.push_str(
        "[routing]\ndefault_lead = \"desk\"\n\
         [[sla.clocks]]\nid = \"statutory.accept\"\nrule = { kind = \"calendar_days\", days = 15, roll_forward = true }\nstop_on = [\"accepted\", \"rejected\"]\ncitation = \"t\"\n\
         [[sla.clocks]]\nid = \"statutory.handle\"\nrule = { kind = \"calendar_days\", days = 60, roll_forward = true }\nstart_on = \"accepted\"\nstop_on = [\"replied\"]\ncitation = \"t\"\n",
    );
    Config::parse(&text, "bench.toml", Path::new(".")).map_err(|e| anyhow::anyhow!("config: {e}"))
}

fn hours(rng: &mut StdRng, lo: i64, hi: i64) -> SignedDuration {
    SignedDuration::from_secs(rng.random_range(lo * 3600..hi * 3600))
}

/// Fills `db` (schema already created) with `n` items in one transaction.
fn fill(db: &Path, n: usize, now: Timestamp) -> anyhow::Result<()> {
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    let tx = conn.transaction()?;
    let mut rng = StdRng::seed_from_u64(17);
    let start = "2025-11-30T16:00:00Z".parse::<Timestamp>()?;
    let span_s = "2026-11-30T16:00:00Z".parse::<Timestamp>()?.as_second() - start.as_second();
    {
        let mut item = tx.prepare(
            "INSERT INTO items (id, channel, upstream_id, source, received_at, category, stage, envelope, stage_rank)
             VALUES (?1, ?2, ?3, 'portal', ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut decision = tx.prepare(
            "INSERT INTO routing_decisions (item_id, rule_id, rules_version, lead, assists, decided_at)
             VALUES (?1, 'r', 'v', ?2, '[]', ?3)",
        )?;
        let mut clock = tx.prepare(
            "INSERT INTO sla_clocks (item_id, clock_id, department, state, started_at, due_at, due_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut event = tx.prepare(
            "INSERT INTO status_events (event_id, item_id, event, at, department, verdict)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut person = tx.prepare(
            "INSERT OR IGNORE INTO person_items (person_key, item_id, matter, received_ms) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut alert = tx.prepare(
            "INSERT INTO alerts (id, item_id, clock_id, kind, department, due_at, scheduled_at, fired_at, late)
             VALUES (?1, ?2, 'statutory.accept', 'escalation', ?3, ?4, ?4, ?4, 0)",
        )?;
        let pool = (n / 10).max(10) as u64;
        let mut ev = 0u64;
        for k in 0..n {
            let received = Timestamp::from_second(start.as_second() + rng.random_range(0..span_s))?;
            let channel = CHANNELS[rng.random_range(0..3)];
            let category =
                (rng.random_range(0..20) != 0).then(|| CATEGORIES[rng.random_range(0..4)]);
            let lead = DEPARTMENTS[rng.random_range(0..5)];
            let mut env = Envelope::new(
                channel,
                Upstream {
                    id: format!("u{k:07}"),
                    source: "portal".into(),
                    raw_ref: "sha256:00".into(),
                    ..Default::default()
                },
                received,
                Request {
                    title: Some(Personal::new(format!("关于事项{k}的诉求"))),
                    content: Personal::new("反映工资拖欠问题，联系电话13800138000，请依法处理。"),
                },
            );
            env.category = category;
            let id = env.id.to_string();
            let r = received.to_string();
            // Lifecycle.
            let accepted = (rng.random_range(0..1000) >= 5)
                .then(|| received + hours(&mut rng, 1, 30 * 24))
                .filter(|t| *t <= now);
            let replied = accepted
                .filter(|_| rng.random_range(0..1000) >= 10)
                .map(|a| a + hours(&mut rng, 5 * 24, 90 * 24))
                .filter(|t| *t <= now);
            let evaluated = replied
                .filter(|_| rng.random_range(0..100) < 80)
                .map(|a| a + hours(&mut rng, 1, 10 * 24))
                .filter(|t| *t <= now);
            let (stage, rank) = match (accepted, replied, evaluated) {
                (_, _, Some(_)) => ("evaluated", 4),
                (_, Some(_), None) => ("replied", 3),
                (Some(_), None, None) => ("accepted", 1),
                _ => ("received", 0),
            };
            item.execute(params![
                id,
                channel.as_str(),
                format!("u{k:07}"),
                r,
                category.map(|c| c.as_str()),
                stage,
                serde_json::to_string(&env)?,
                rank
            ])?;
            decision.execute(params![id, lead, r])?;
            let due = received + SignedDuration::from_hours(15 * 24);
            let state = if accepted.is_some() {
                "stopped"
            } else {
                "running"
            };
            clock.execute(params![
                id,
                "statutory.accept",
                lead,
                state,
                r,
                due.to_string(),
                due.as_millisecond()
            ])?;
            let mut put = |event_name: &str, at: Timestamp, verdict: Option<&str>| {
                ev += 1;
                event.execute(params![
                    format!("e{ev}"),
                    id,
                    event_name,
                    at.to_string(),
                    lead,
                    verdict
                ])
            };
            if let Some(a) = accepted {
                put("accepted", a, None)?;
                let due = a + SignedDuration::from_hours(60 * 24);
                let state = if replied.is_some() {
                    "stopped"
                } else {
                    "running"
                };
                clock.execute(params![
                    id,
                    "statutory.handle",
                    lead,
                    state,
                    a.to_string(),
                    due.to_string(),
                    due.as_millisecond()
                ])?;
            }
            if let Some(p) = replied {
                if rng.random_range(0..10) == 0 {
                    put(
                        "replied",
                        p - SignedDuration::from_hours(48),
                        Some("bounced"),
                    )?;
                }
                put("replied", p, Some("ok"))?;
            }
            if let Some(e) = evaluated {
                let v = match rng.random_range(0..100) {
                    0..70 => "satisfied",
                    70..85 => "basically_satisfied",
                    _ => "dissatisfied",
                };
                put("evaluated", e, Some(v))?;
            }
            if let Some(c) = category {
                let key = if rng.random_range(0..10) < 3 {
                    rng.random_range(0..pool)
                } else {
                    pool + k as u64
                };
                person.execute(params![
                    format!("{:016x}", key.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                    id,
                    format!("{}/{lead}", c.as_str()),
                    received.as_millisecond()
                ])?;
            }
            if rng.random_range(0..100) == 0 {
                alert.execute(params![format!("a{k}"), id, lead, due.to_string()])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct Figures {
    fill: Duration,
    monthly: Duration,
    key_cases: Duration,
    group_by: Duration,
    items_in_month: u64,
    overdue: usize,
    repeats: usize,
    key_list: usize,
    db_mb: f64,
}

fn run(n: usize, runs: usize, cfg: &Config, now: Timestamp) -> anyhow::Result<Figures> {
    let dir = tempfile::Builder::new().prefix("report-bench-").tempdir()?;
    let db = dir.path().join("petitiond.db");
    drop(SqliteStore::open(&db, Duration::from_secs(5))?);
    eprintln!("report: filling {n} items (one transaction)…");
    let t0 = Instant::now();
    fill(&db, n, now)?;
    let fill = t0.elapsed();
    let store = SqliteStore::open(&db, Duration::from_secs(5))?;
    let (mut m, mut k, mut g) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = figures::monthly(&store, &cfg.sla, "2026-10", now)?;
        m.push(t.elapsed());
        last = Some(r);
        let t = Instant::now();
        let list = figures::key_cases(&store, &cfg.sla, now)?;
        k.push(t.elapsed());
        std::hint::black_box(list);
        let conn = Connection::open(&db)?;
        let t = Instant::now();
        let rows: Vec<(String, Option<String>, i64)> = conn
            .prepare("SELECT channel, category, COUNT(*) FROM items GROUP BY channel, category")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        g.push(t.elapsed());
        std::hint::black_box(rows);
    }
    let r = last.context("no run")?;
    let db_mb = std::fs::metadata(&db)?.len() as f64 / 1e6;
    Ok(Figures {
        fill,
        monthly: median(m),
        key_cases: median(k),
        group_by: median(g),
        items_in_month: r.items,
        overdue: r.overdue.len(),
        repeats: r.repeat_petitions.len(),
        key_list: r.key_cases.len(),
        db_mb,
    })
}

fn main() -> anyhow::Result<()> {
    let n = env_usize("REPORT_BENCH_N", 1_000_000);
    let small = env_usize("REPORT_BENCH_SMALL", 100_000);
    let runs = env_usize("REPORT_BENCH_RUNS", 3).max(1);
    let cfg = config()?;
    let now = "2026-12-01T04:00:00Z".parse::<Timestamp>()?;
    let s = run(small, runs, &cfg, now)?;
    let b = run(n, runs, &cfg, now)?;
    println!("report benchmark: monthly report 2026-10, median of {runs} runs");
    println!(
        "{:<44} {:>14} {:>14}",
        "",
        format!("{small} items"),
        format!("{n} items")
    );
    let row = |name: &str, a: String, b: String| println!("{name:<44} {a:>14} {b:>14}");
    row("fill (one transaction, direct SQL)", ms(s.fill), ms(b.fill));
    row(
        "database size",
        format!("{:.0} MB", s.db_mb),
        format!("{:.0} MB", b.db_mb),
    );
    row(
        "monthly report (key-case list included)",
        ms(s.monthly),
        ms(b.monthly),
    );
    row("key-case list alone", ms(s.key_cases), ms(b.key_cases));
    row(
        "baseline: GROUP BY channel, category (all)",
        ms(s.group_by),
        ms(b.group_by),
    );
    row(
        "items in 2026-10",
        s.items_in_month.to_string(),
        b.items_in_month.to_string(),
    );
    row(
        "overdue in 2026-10",
        s.overdue.to_string(),
        b.overdue.to_string(),
    );
    row(
        "repeat petitioners in 2026-10",
        s.repeats.to_string(),
        b.repeats.to_string(),
    );
    row("key cases", s.key_list.to_string(), b.key_list.to_string());
    Ok(())
}
