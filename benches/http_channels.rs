//! HTTP channels end to end: records/s from the simulators to Kafka-acknowledged envelopes,
//! and the latency from a record becoming visible upstream to its delivery report, for the
//! hotline alone, the portal alone, and both at once. The daemon runs in this process
//! (`Application`), against the librdkafka mock cluster by default or a real broker when
//! `PETITIOND_BENCH_KAFKA` names one (e.g. the tansu the test script starts).
//!
//! Baselines in the same run: the same pages fetched and split into records by the same HTTP
//! client code without intake, store or Kafka — what the upstream and parsing alone allow; and
//! a plain rdkafka producer with petitiond's producer settings (`kafka::client::producer_config`:
//! acks=all, idempotence) sending as many records of the envelopes' mean size (payload +
//! headers, read from the run's outbox) to a fresh topic on the same broker — what the broker
//! alone allows. The ratio to the latter is issue 16's goal (≥ 0.5). CPU seconds are the whole
//! bench process's (simulators included) per 1,000 items; peak RSS is the process's high-water
//! mark so far; disk bytes per item are what the process sent to storage during the drain
//! (`/proc/self/io` `write_bytes`: the store's WAL, its checkpoints and blob files).
//!
//! ```text
//! cargo bench --bench http_channels
//! HTTP_BENCH_RECORDS=500 HTTP_BENCH_RATE=50 HTTP_BENCH_SECS=5 cargo bench --bench http_channels
//! ```
//!
//! Environment: `HTTP_BENCH_RECORDS` (backlog per channel, default 5,000), `HTTP_BENCH_RATE`
//! (records/s per channel in the latency run, default 100), `HTTP_BENCH_SECS` (length of the
//! latency run, default 10), `PETITIOND_BENCH_KAFKA` (brokers). Run without `--bench` (as
//! `cargo test --benches` does) it is a short smoke run.

use petitiond::app::Application;
use petitiond::config::Config;
use petitiond::envelope::{Channel, ItemId};
use petitiond_sim::hotline::{HotlineSim, HotlineSimConfig};
use petitiond_sim::portal::{Pagination, PortalSim, PortalSimConfig};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn env_num<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Hotline,
    Portal,
    Both,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Hotline => "hotline",
            Which::Portal => "portal",
            Which::Both => "both",
        }
    }
}

fn config_text(brokers: &str, hotline: Option<&str>, portal: Option<&str>) -> String {
    let mut s = format!(
        r#"
[daemon]
data_dir = "data"
log_format = "json"
log_filter = "error"

[kafka]
brokers = "{brokers}"
partitions = 3

[[departments]]
id = "intake-desk"
name = "接待科"
topic = "bench.intake-desk"

[routing]
default_lead = "intake-desk"
"#
    );
    let common = r#"
poll_interval_ms = 200
overlap_secs = 5
initial_lookback_hours = 2
requests_per_second = 1000
backoff_initial_ms = 50
backoff_max_ms = 500
"#;
    if let Some(h) = hotline {
        s += &format!(
            "\n[channels.hotline]\nprotocol = \"open311\"\nbase_url = \"{h}\"\nmax_per_response = 1000\n{common}"
        );
    }
    if let Some(p) = portal {
        let mapping = petitiond_sim::portal::MAPPING_TOML;
        s += &format!(
            r#"
[channels.portal]
protocol = "paged"
base_url = "{p}"
path = "/petitions"
updated_after_param = "updated_after"
items_pointer = "/data/items"
{common}
[channels.portal.pagination]
kind = "cursor"
page_size = 100
next_cursor_pointer = "/data/next_cursor"
[channels.portal.mapping]
{mapping}
"#
        );
    }
    s
}

struct Run {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    /// Kept open between polls of [`Run::delivered`].
    reader: std::cell::RefCell<Option<rusqlite::Connection>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _mock:
        Option<rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
}

async fn start(which: Which, hotline: &HotlineSim, portal: &PortalSim) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (brokers, mock) = match std::env::var("PETITIOND_BENCH_KAFKA") {
        Ok(b) => (b, None),
        Err(_) => {
            let m = rdkafka::mocking::MockCluster::new(1).unwrap();
            (m.bootstrap_servers(), Some(m))
        }
    };
    let h = (which != Which::Portal).then(|| hotline.base_url());
    let p = (which != Which::Hotline).then(|| portal.base_url());
    let text = config_text(&brokers, h.as_deref(), p.as_deref()).replace(
        "bench.intake-desk",
        &format!("bench.{}.{}", which.name(), std::process::id()),
    );
    let path = dir.path().join("petitiond.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    if let Some(m) = &mock {
        for t in config.topics() {
            m.create_topic(&t, 3, 1).unwrap();
        }
    }
    let db = config.store.path.clone();
    let app = Application::build(config).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));
    Run {
        _dir: dir,
        db,
        reader: Default::default(),
        stop,
        task,
        _mock: mock,
    }
}

impl Run {
    /// Rows recorded (`max(seq)`: no row is ever deleted during a run) minus rows pending
    /// (the partial index): both index look-ups. The bench polls this every 20 ms on the
    /// daemon's runtime; `COUNT(*) … WHERE state = 'delivered'` scanned the whole outbox
    /// (payloads included) from a fresh connection each time — 5% of the process's samples in
    /// the first `perf` profile, charged to the daemon.
    fn delivered(&self) -> i64 {
        let mut conn = self.reader.borrow_mut();
        if conn.is_none() {
            *conn = rusqlite::Connection::open(&self.db).ok();
        }
        let Some(c) = conn.as_ref() else { return 0 };
        c.query_row(
            "SELECT (SELECT COALESCE(max(seq), 0) FROM outbox)
                  - (SELECT COUNT(*) FROM outbox WHERE state = 'pending')",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
    }

    /// Delivery instant (the store's `done_at`) of each delivered item.
    fn done_at(&self) -> HashMap<String, jiff::Timestamp> {
        let c = rusqlite::Connection::open(&self.db).unwrap();
        let mut st = c
            .prepare("SELECT item_id, done_at FROM outbox WHERE state = 'delivered'")
            .unwrap();
        st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .filter_map(|r| r.ok())
            .filter_map(|(id, t)| t.parse().ok().map(|t| (id, t)))
            .collect()
    }

    async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn sims() -> (HotlineSim, PortalSim) {
    let h = HotlineSim::start(HotlineSimConfig {
        media_every: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let p = PortalSim::start(PortalSimConfig {
        pagination: Pagination::Cursor,
        media_every: None,
        ..Default::default()
    })
    .await
    .unwrap();
    (h, p)
}

fn fill(which: Which, h: &HotlineSim, p: &PortalSim, n: usize) -> usize {
    let now = jiff::Timestamp::now();
    let mut total = 0;
    if which != Which::Portal {
        // Spread over an hour: the server's 1,000-record cap splits windows, as in production.
        h.add_records_between(n, now - jiff::SignedDuration::from_hours(1), now);
        total += n;
    }
    if which != Which::Hotline {
        p.add_records(n);
        total += n;
    }
    total
}

/// CPU seconds (user + system) this process has used.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// The process's peak resident set so far, MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Bytes this process has caused to be written to storage (`/proc/self/io`, `write_bytes`:
/// what reached the block layer — the store's WAL, checkpoints and blob files).
fn disk_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// What a backlog run measured.
struct Drained {
    rate: f64,
    records: usize,
    /// Mean payload + headers of the records sent.
    bytes: usize,
    cpu_per_1000: f64,
    /// Bytes written to storage per item (store and blobs, checkpoints included).
    disk_per_item: f64,
}

/// Backlog throughput: `n` records per channel waiting upstream when the daemon starts.
async fn throughput(which: Which, n: usize) -> Drained {
    let (h, p) = sims().await;
    let total = fill(which, &h, &p, n);
    let cpu0 = cpu_secs();
    let disk0 = disk_written();
    let t0 = Instant::now();
    let run = start(which, &h, &p).await;
    let deadline = t0 + Duration::from_secs(600);
    while run.delivered() < total as i64 {
        assert!(Instant::now() < deadline, "backlog not delivered in 10 min");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    // Read before the bench's own queries and the shutdown's final checkpoint.
    let disk = disk_written().saturating_sub(disk0);
    let bytes = rusqlite::Connection::open(&run.db)
        .and_then(|c| {
            c.query_row(
                "SELECT CAST(avg(length(payload) + length(headers)) AS INTEGER) FROM outbox",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .unwrap_or(0) as usize;
    run.finish().await;
    Drained {
        rate: total as f64 / secs,
        records: total,
        bytes,
        cpu_per_1000: cpu * 1000.0 / total as f64,
        disk_per_item: disk as f64 / total as f64,
    }
}

/// Baseline: a plain rdkafka producer with petitiond's producer settings sending `count`
/// records of `bytes` bytes to a fresh 3-partition topic, all in flight at once, timed from
/// the first send to the last delivery report. Returns (records/s, CPU s per 1,000).
async fn raw_kafka(count: usize, bytes: usize) -> (f64, f64) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let topic = format!("bench.raw.{}.{count}", std::process::id());
    let mock;
    let brokers = match std::env::var("PETITIOND_BENCH_KAFKA") {
        Ok(b) => {
            let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &b)
                .create()
                .unwrap();
            admin
                .create_topics(
                    &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
                    &AdminOptions::new(),
                )
                .await
                .unwrap();
            b
        }
        Err(_) => {
            // The mock cluster answers no CreateTopics: its own call makes the topic.
            mock = rdkafka::mocking::MockCluster::new(1).unwrap();
            mock.create_topic(&topic, 3, 1).unwrap();
            mock.bootstrap_servers()
        }
    };
    let text = config_text(&brokers, None, None);
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&text, "bench.toml", dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let producer: FutureProducer = petitiond::kafka::client::producer_config(&config.kafka)
        .create()
        .unwrap();
    let payload = vec![b'x'; bytes];
    let keys: Vec<String> = (0..count).map(|i| format!("item-{i}")).collect();
    // Warm up: metadata and the producer id, as petitiond's relay has before its backlog.
    producer
        .send(
            FutureRecord::to(&topic).key("warm").payload(&payload[..]),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let mut futs = Vec::with_capacity(count);
    for k in &keys {
        loop {
            match producer.send_result(FutureRecord::to(&topic).key(k).payload(&payload[..])) {
                Ok(f) => {
                    futs.push(f);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    for f in futures::future::join_all(futs).await {
        f.unwrap().unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    (count as f64 / secs, cpu * 1000.0 / count as f64)
}

/// Steady arrivals at `rate` records/s per channel for `secs`: latency from a record being
/// visible upstream to its delivery report.
async fn latency(which: Which, rate: u32, secs: u64) -> (usize, f64, f64, f64) {
    let (h, p) = sims().await;
    let run = start(which, &h, &p).await;
    // Let topics be verified and the first empty polls pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut visible: HashMap<String, jiff::Timestamp> = HashMap::new();
    let tick = Duration::from_millis(20);
    let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0);
    let mut owed = 0.0;
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let now = jiff::Timestamp::now();
            if which != Which::Portal {
                let id = h.add_record_at(now);
                visible.insert(ItemId::derive(Channel::Hotline, &id).to_string(), now);
            }
            if which != Which::Hotline {
                let id = p.add_records(1).remove(0);
                visible.insert(ItemId::derive(Channel::Portal, &id).to_string(), now);
            }
        }
        tokio::time::sleep(tick).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while run.delivered() < visible.len() as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = run.done_at();
    run.finish().await;
    let mut lat: Vec<f64> = visible
        .iter()
        .filter_map(|(id, t)| {
            done.get(id)
                .map(|d| d.duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |f: f64| {
        lat.get(((lat.len() as f64 - 1.0) * f) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (
        lat.len(),
        q(0.5),
        q(0.99),
        lat.last().copied().unwrap_or(f64::NAN),
    )
}

/// Baseline: the same backlog fetched and split into records, nothing recorded.
async fn baseline(which: Which, n: usize) -> f64 {
    let (h, p) = sims().await;
    let total = fill(which, &h, &p, n);
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    let mut got = 0;
    if which != Which::Portal {
        // The same splitting the adapter does, on the same windows.
        let now = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
        let mut windows = vec![(now - jiff::SignedDuration::from_hours(2), now)];
        while let Some((a, b)) = windows.pop() {
            let body = client
                .get(format!("{}/requests.json", h.base_url()))
                .query(&[
                    ("updated_after", a.to_string()),
                    ("updated_before", b.to_string()),
                ])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let recs = petitiond::channels::http::record::records(&body, "").unwrap();
            if recs.len() >= 1000 {
                let mid = a + b.duration_since(a) / 2;
                windows.push((mid, b));
                windows.push((a, mid));
                continue;
            }
            got += recs.len();
        }
    }
    if which != Which::Hotline {
        let mut cursor: Option<String> = None;
        loop {
            let mut q = vec![("page_size".to_string(), "100".to_string())];
            if let Some(c) = &cursor {
                q.push(("cursor".into(), c.clone()));
            }
            let body = client
                .get(format!("{}/petitions", p.base_url()))
                .query(&q)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            got += petitiond::channels::http::record::records(&body, "/data/items")
                .unwrap()
                .len();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            match v.pointer("/data/next_cursor").and_then(|c| c.as_str()) {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
    }
    assert!(got >= total, "baseline read {got} of {total}");
    total as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let n: usize = env_num("HTTP_BENCH_RECORDS", if smoke { 300 } else { 5000 });
    let rate: u32 = env_num("HTTP_BENCH_RATE", if smoke { 20 } else { 100 });
    let secs: u64 = env_num("HTTP_BENCH_SECS", if smoke { 2 } else { 10 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let kafka = std::env::var("PETITIOND_BENCH_KAFKA")
        .map(|b| format!("broker {b}"))
        .unwrap_or_else(|_| "librdkafka mock cluster (in process)".into());
    println!(
        "HTTP channels bench: {kafka}; poll interval 200 ms; SQLite synchronous=FULL on {}",
        Path::new(".")
            .canonicalize()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    println!();
    println!("backlog of {n} records per channel → Kafka-acked envelopes");
    println!(
        "{:<8} {:>16} {:>22} {:>8}",
        "channel", "petitiond rec/s", "baseline fetch rec/s", "ratio"
    );
    // HTTP_BENCH_SCALING=1 (scripts/scaling.sh): both channels only, the raw baseline, one
    // machine-readable line, no latency run.
    let scaling = std::env::var("HTTP_BENCH_SCALING").is_ok_and(|v| v == "1");
    let phases: &[Which] = if scaling {
        &[Which::Both]
    } else {
        &[Which::Hotline, Which::Portal, Which::Both]
    };
    let mut drained = Vec::new();
    for &which in phases {
        let base = rt.block_on(baseline(which, n));
        let full = rt.block_on(throughput(which, n));
        println!(
            "{:<8} {:>16.0} {:>22.0} {:>7.1}%",
            which.name(),
            full.rate,
            base,
            100.0 * full.rate / base
        );
        drained.push((which, full));
    }
    println!();
    println!("against a plain rdkafka producer (same broker, same settings, same count and size)");
    println!(
        "{:<8} {:>8} {:>7} {:>12} {:>12} {:>7} {:>14} {:>14} {:>12}",
        "channel",
        "records",
        "bytes",
        "petitiond/s",
        "raw kafka/s",
        "ratio",
        "CPU s/1k pd",
        "CPU s/1k raw",
        "disk B/item"
    );
    for (which, d) in &drained {
        let (raw, raw_cpu) = rt.block_on(raw_kafka(d.records, d.bytes));
        if scaling {
            println!(
                "SCALING {}",
                serde_json::json!({
                    "bench": "http_channels",
                    "broker": if std::env::var("PETITIOND_BENCH_KAFKA").is_ok() { "tansu" } else { "mock" },
                    "items": d.records,
                    "rate": d.rate,
                    "raw_rate": raw,
                    "ratio": d.rate / raw,
                    "cpu_s_per_1000": d.cpu_per_1000,
                    "raw_cpu_s_per_1000": raw_cpu,
                    "disk_bytes_per_item": d.disk_per_item,
                    "peak_rss_mb": peak_rss_mb(),
                })
            );
        }
        println!(
            "{:<8} {:>8} {:>7} {:>12.0} {:>12.0} {:>7.3} {:>14.3} {:>14.3} {:>12.0}",
            which.name(),
            d.records,
            d.bytes,
            d.rate,
            raw,
            d.rate / raw,
            d.cpu_per_1000,
            raw_cpu,
            d.disk_per_item
        );
    }
    println!(
        "peak RSS of the bench process so far: {:.0} MB",
        peak_rss_mb()
    );
    println!();
    if scaling {
        return;
    }
    println!(
        "steady arrivals, {rate} records/s per channel for {secs} s: visible upstream → delivery report"
    );
    println!(
        "{:<8} {:>8} {:>10} {:>10} {:>10}",
        "channel", "records", "p50 ms", "p99 ms", "max ms"
    );
    for which in [Which::Hotline, Which::Portal, Which::Both] {
        let (count, p50, p99, max) = rt.block_on(latency(which, rate, secs));
        println!(
            "{:<8} {:>8} {:>10.0} {:>10.0} {:>10.0}",
            which.name(),
            count,
            p50,
            p99,
            max
        );
    }
}
