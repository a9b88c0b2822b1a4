//! The HTTP channels against wiremock upstreams, through the real intake into a real SQLite
//! store (no Kafka needed: intake never talks to it). Broker-level end-to-end tests with the
//! simulators live in `tests/it/http.rs`.

use crate::config::Config;
use crate::intake::Intake;
use jiff::Timestamp;
use petitiond_channels::http::client::{FetchError, Fetcher, Req};
use petitiond_channels::http::*;
use petitiond_metrics::Metrics;
use petitiond_store::SqliteBlobStore;
use petitiond_store::SqliteStore;
use petitiond_store::Store;
use petitiond_store::blobs::BlobStore;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const BASE: &str = r#"
[kafka]
brokers = "127.0.0.1:9"

[[departments]]
id = "intake-desk"
name = "接待科"
topic = "t.intake"

[[departments]]
id = "hrss"
name = "人社局"
topic = "t.hrss"

[routing]
default_lead = "intake-desk"
"#;

struct H {
    _dir: tempfile::TempDir,
    ch: HttpChannel,
    fetcher: Fetcher,
    store: Arc<SqliteStore>,
    db: std::path::PathBuf,
    stop: CancellationToken,
    /// What the channel remembers between polls of one run (alerts raised).
    run: tokio::sync::Mutex<RunState>,
}

impl H {
    async fn new(section: &str) -> H {
        H::with_files(section, &[]).await
    }

    /// Like `new`, with files (secrets) written beside the config first.
    async fn with_files(section: &str, files: &[(&str, &str)]) -> H {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let text = format!("{BASE}\n{section}");
        let cfg = Arc::new(
            Config::parse(&text, "test.toml", dir.path()).unwrap_or_else(|e| panic!("{e}")),
        );
        let db = dir.path().join("p.db");
        let store = Arc::new(SqliteStore::open(&db, Duration::from_secs(5)).unwrap());
        // The daemon's blob store on SQLite: raw records are rows of the same database.
        let blobs: Arc<dyn BlobStore> =
            Arc::new(SqliteBlobStore::open(store.clone(), &dir.path().join("b")).unwrap());
        let metrics = Metrics::new();
        let (tx, rx) = mpsc::channel(64);
        let (timers, _timers_rx) = mpsc::unbounded_channel();
        let intake = Intake {
            router: Arc::new(
                crate::routing::Router::new(crate::routing::RouterInputs::from_config(&cfg))
                    .unwrap(),
            ),
            inputs: Arc::new(crate::intake::IntakeInputs::from_config(&cfg)),
            store: store.clone(),
            blobs: blobs.clone(),
            metrics: metrics.clone(),
            relay_wake: Arc::new(Notify::new()),
            timers,
            repeat: None,
        };
        tokio::spawn(async move {
            let _keep = _timers_rx;
            intake.run(rx).await
        });
        let source = Arc::new(cfg.http_sources[0].clone());
        let fetcher = Fetcher::new(&source, metrics.clone()).unwrap();
        let ch = HttpChannel {
            config: source,
            tz: cfg.sla.calendar.time_zone().clone(),
            store: store.clone(),
            blobs,
            intake: tx,
            metrics,
            health: ChannelHealth::default(),
            alerts_topic: cfg.sla.alerts_topic.clone(),
            relay_wake: Arc::new(Notify::new()),
            lease: None,
        };
        H {
            _dir: dir,
            ch,
            fetcher,
            store,
            db,
            stop: CancellationToken::new(),
            run: tokio::sync::Mutex::new(RunState::default()),
        }
    }

    /// A bare `GET requests.json` with the source's auth, for client-level tests.
    fn requests_json(&self) -> Req {
        Req {
            method: reqwest::Method::GET,
            url: self.ch.url("/requests.json").unwrap(),
            query: vec![],
            purpose: client::Purpose::Page,
            max_body: 1 << 20,
            body: None,
            headers: Vec::new(),
        }
    }

    async fn poll(&self) -> Result<usize, PollError> {
        let mut run = self.run.lock().await;
        self.ch.poll(&self.fetcher, &self.stop, &mut run).await
    }

    fn count(&self, sql: &str) -> i64 {
        let c = rusqlite::Connection::open(&self.db).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn items(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM items")
    }

    fn quarantine_reasons(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .store
            .list_quarantine(1000)
            .unwrap()
            .into_iter()
            .map(|q| q.entry.reason)
            .collect();
        v.sort();
        v
    }

    fn cursor(&self) -> Option<Timestamp> {
        self.store.cursor(&self.ch.config.name).unwrap().map(|c| {
            let stored: Value = serde_json::from_str(&c).unwrap();
            stored["watermark"].as_str().unwrap().parse().unwrap()
        })
    }
}

fn open311_section(uri: &str, extra: &str) -> String {
    format!(
        r#"
[channels.hotline]
protocol = "open311"
base_url = "{uri}/open311/v2"
jurisdiction_id = "hz"
initial_lookback_hours = 48
overlap_secs = 60
backoff_initial_ms = 10
backoff_max_ms = 50
breaker_failures = 100
requests_per_second = 1000
{extra}
"#
    )
}

/// An Open311 server over a list of records: filters by `updated_after`/`updated_before`
/// (inclusive end), sorts, caps at `cap`, and optionally fails some requests.
struct Open311 {
    records: Arc<Mutex<Vec<Value>>>,
    cap: usize,
    calls: Arc<AtomicUsize>,
    /// Answers for the first calls, before serving records.
    script: Vec<ResponseTemplate>,
}

impl Respond for Open311 {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(t) = self.script.get(n) {
            return t.clone();
        }
        let q: std::collections::HashMap<String, String> =
            req.url.query_pairs().into_owned().collect();
        assert_eq!(q.get("jurisdiction_id").map(String::as_str), Some("hz"));
        let after: Timestamp = q["updated_after"].parse().unwrap();
        let before: Timestamp = q["updated_before"].parse().unwrap();
        // A record whose update time will not parse is in every window (as if updated at
        // its end).
        let time = |r: &Value| {
            r["updated_datetime"]
                .as_str()
                .and_then(|s| s.parse::<Timestamp>().ok())
                .unwrap_or(before)
        };
        let mut out: Vec<Value> = self
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| {
                let t = time(r);
                t > after && t <= before
            })
            .cloned()
            .collect();
        out.sort_by_key(time);
        out.truncate(self.cap);
        ResponseTemplate::new(200).set_body_json(Value::Array(out))
    }
}

fn record(i: usize, updated: Timestamp) -> Value {
    json!({
        "service_request_id": if i.is_multiple_of(2) { json!(i) } else { json!(i.to_string()) },
        "status": "open",
        "service_name": "劳动保障",
        "service_code": "LS01",
        "description": format!("公司拖欠工资三个月，第{i}号"),
        "requested_datetime": updated.to_string(),
        "updated_datetime": updated.to_string(),
        "phone": "13800138000",
        "extra_vendor_field": {"x": i},
    })
}

fn spread(n: usize, span_secs: i64) -> Vec<Value> {
    let now = Timestamp::now();
    (0..n)
        .map(|i| {
            let back = span_secs * (n - i) as i64 / n as i64 + 1;
            record(i, now - jiff::SignedDuration::from_secs(back))
        })
        .collect()
}

async fn open311_server(
    records: Vec<Value>,
    cap: usize,
    script: Vec<ResponseTemplate>,
) -> (MockServer, Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>) {
    let server = MockServer::start().await;
    let shared = Arc::new(Mutex::new(records));
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("GET"))
        .and(path("/open311/v2/requests.json"))
        .respond_with(Open311 {
            records: shared.clone(),
            cap,
            calls: calls.clone(),
            script,
        })
        .mount(&server)
        .await;
    (server, shared, calls)
}

#[tokio::test]
async fn full_windows_are_split_until_every_record_is_read() {
    // 2,500 records in the last hour, a server that returns at most 1,000 per answer.
    let (server, _, calls) = open311_server(spread(2500, 3600), 1000, vec![]).await;
    let h = H::new(&open311_section(&server.uri(), "max_per_response = 1000")).await;
    let handed = h.poll().await.unwrap();
    assert_eq!(h.items(), 2500, "every record once");
    assert!(handed >= 2500);
    assert!(calls.load(Ordering::SeqCst) > 3, "the window was split");
    let cursor = h.cursor().unwrap();
    assert!((Timestamp::now() - cursor).get_seconds().abs() < 30);
    // A second poll finds nothing new and records nothing twice.
    h.poll().await.unwrap();
    assert_eq!(h.items(), 2500);
}

#[tokio::test]
async fn faults_are_retried_and_retry_after_is_honoured() {
    let script = vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        ResponseTemplate::new(503),
        ResponseTemplate::new(200).set_body_string("<html>upstream error</html>"),
        ResponseTemplate::new(200).set_body_string(r#"[{"service_request_id":1,"descr"#),
    ];
    let (server, _, calls) = open311_server(spread(20, 600), 1000, script).await;
    let h = H::new(&open311_section(&server.uri(), "")).await;
    let t0 = std::time::Instant::now();
    h.poll().await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was waited for"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(h.items(), 20);
    let m = h.ch.metrics.encode();
    assert!(
        m.contains(r#"petitiond_upstream_requests_total{source="hotline",outcome="http_429"} 1"#),
        "{m}"
    );
    assert!(m.contains(r#"outcome="http_5xx"} 1"#));
    assert!(m.contains(r#"outcome="bad_body"} 2"#));
}

#[tokio::test]
async fn a_failed_poll_leaves_the_cursor_and_the_next_one_catches_up() {
    let script = vec![ResponseTemplate::new(500); 6];
    let (server, _, _) = open311_server(spread(10, 600), 1000, script).await;
    let h = H::new(&open311_section(&server.uri(), "")).await;
    assert!(h.poll().await.is_err(), "six 500s exhaust the attempts");
    assert_eq!(h.cursor(), None, "cursor not moved");
    assert_eq!(h.items(), 0);
    h.poll().await.unwrap();
    assert_eq!(h.items(), 10);
}

#[tokio::test]
async fn bad_records_are_quarantined_and_the_rest_of_the_page_flows() {
    let mut recs = spread(5, 600);
    let t = Timestamp::now() - jiff::SignedDuration::from_secs(30);
    recs.push(json!({"description": "没有编号", "updated_datetime": t.to_string()}));
    // No usable time at all: quarantined. (One bad time beside a good one is not: see
    // `a_malformed_optional_field_is_dropped_and_the_item_flows`.)
    recs.push(json!({"service_request_id": "bad-time", "requested_datetime": "yesterday", "updated_datetime": "2026-13-45"}));
    recs.push(json!({"service_request_id": "huge", "description": "很".repeat(100_000), "updated_datetime": t.to_string()}));
    let (server, _, _) = open311_server(recs, 1000, vec![]).await;
    let h = H::new(&open311_section(&server.uri(), "max_record_bytes = 65536")).await;
    h.poll().await.unwrap();
    assert_eq!(h.items(), 5);
    assert_eq!(
        h.quarantine_reasons(),
        vec!["bad_time", "no_id", "oversize"]
    );
    let q = h.store.list_quarantine(10).unwrap();
    assert!(
        q.iter()
            .all(|q| q.entry.source == "hotline" && q.entry.raw_ref.starts_with("sha256:"))
    );
    let m = h.ch.metrics.encode();
    assert!(
        m.contains(r#"petitiond_quarantined_total{source="hotline",reason="no_id"} 1"#),
        "{m}"
    );
    // Re-polling quarantines nothing new? It does re-read them (the overlap) — but the good
    // records are not recorded twice.
    h.poll().await.unwrap();
    assert_eq!(h.items(), 5);
}

#[tokio::test]
async fn an_upstream_change_is_an_update_not_a_new_item() {
    let (server, shared, _) = open311_server(spread(3, 600), 1000, vec![]).await;
    let h = H::new(&open311_section(&server.uri(), "")).await;
    h.poll().await.unwrap();
    assert_eq!(h.items(), 3);
    assert_eq!(h.count("SELECT COUNT(*) FROM outbox"), 3);
    {
        let mut r = shared.lock().unwrap();
        r[1]["status"] = json!("closed");
        r[1]["status_notes"] = json!("已办结");
        r[1]["updated_datetime"] = json!(Timestamp::now().to_string());
    }
    h.poll().await.unwrap();
    assert_eq!(h.items(), 3, "no new item");
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE headers LIKE '%item.updated.v1%'"),
        1,
        "one update event to the lead"
    );
    let id =
        petitiond_core::envelope::ItemId::derive(petitiond_core::envelope::Channel::Hotline, "1");
    let env = h.store.item_envelope(id.as_str()).unwrap().unwrap();
    assert_eq!(env.upstream.status.as_deref(), Some("closed"));
    assert!(env.routing.is_some(), "routing kept");
    // Every version's raw bytes are kept, written with their page, and readable by claim.
    assert_eq!(
        h.count("SELECT COUNT(*) FROM blobs"),
        4,
        "3 records + 1 new version"
    );
    let raw = env.upstream.raw_ref.strip_prefix("sha256:").unwrap();
    let bytes: serde_json::Value = serde_json::from_slice(&h.ch.blobs.get(raw).unwrap()).unwrap();
    assert_eq!(bytes["status"], "closed");
    // The same version again: nothing more, not even its raw bytes.
    h.poll().await.unwrap();
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE headers LIKE '%item.updated.v1%'"),
        1
    );
    assert_eq!(h.count("SELECT COUNT(*) FROM blobs"), 4);
}

#[tokio::test]
async fn attachments_are_fetched_into_the_blob_store_with_limits() {
    let server = MockServer::start().await;
    let jpeg = vec![0xFFu8, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4];
    Mock::given(path("/files/ok.jpg"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"))
        .mount(&server)
        .await;
    Mock::given(path("/files/page.html"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html/>", "text/html"))
        .mount(&server)
        .await;
    Mock::given(path("/files/big.pdf"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(vec![0u8; 5000], "application/pdf"))
        .mount(&server)
        .await;
    let t = Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let mut recs = Vec::new();
    for (i, f) in ["ok.jpg", "page.html", "big.pdf", "gone.png"]
        .iter()
        .enumerate()
    {
        let mut r = record(i, t);
        r["media_url"] = json!(format!("{}/files/{f}", server.uri()));
        recs.push(r);
    }
    let shared = Arc::new(Mutex::new(recs));
    Mock::given(path("/open311/v2/requests.json"))
        .respond_with(Open311 {
            records: shared,
            cap: 1000,
            calls: Arc::new(AtomicUsize::new(0)),
            script: vec![],
        })
        .mount(&server)
        .await;
    let h = H::new(&open311_section(
        &server.uri(),
        "[channels.hotline.attachments]\nmax_bytes = 4096",
    ))
    .await;
    h.poll().await.unwrap();
    assert_eq!(
        h.items(),
        4,
        "an unavailable attachment never blocks its item"
    );
    let env = |i: usize| {
        let id = petitiond_core::envelope::ItemId::derive(
            petitiond_core::envelope::Channel::Hotline,
            &i.to_string(),
        );
        h.store.item_envelope(id.as_str()).unwrap().unwrap()
    };
    let ok = env(0);
    assert_eq!(ok.attachments.len(), 1);
    assert_eq!(ok.attachments[0].media_type, "image/jpeg");
    assert_eq!(ok.attachments[0].size, jpeg.len() as u64);
    assert!(
        ok.attachments[0]
            .dataref
            .starts_with("urn:petitiond:blob:sha256:")
    );
    assert!(!ok.flags.contains(&ATTACHMENT_UNAVAILABLE.to_string()));
    for i in 1..4 {
        let e = env(i);
        assert!(e.attachments.is_empty());
        assert!(
            e.flags.contains(&ATTACHMENT_UNAVAILABLE.to_string()),
            "item {i}"
        );
    }
    let m = h.ch.metrics.encode();
    for outcome in ["stored", "bad_type", "too_large", "gone"] {
        assert!(
            m.contains(&format!(
                r#"petitiond_attachments_fetched_total{{source="hotline",outcome="{outcome}"}} 1"#
            )),
            "{outcome}: {m}"
        );
    }
}

/// Serves `items` through one of the portal pagination styles.
struct Portal {
    items: Vec<Value>,
    style: &'static str,
    page_size: usize,
    uri: String,
}

impl Respond for Portal {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let q: std::collections::HashMap<String, String> =
            req.url.query_pairs().into_owned().collect();
        let size: usize = q
            .get("page_size")
            .map(|s| s.parse().unwrap())
            .unwrap_or(self.page_size);
        let start = match self.style {
            "page" => (q["page"].parse::<usize>().unwrap() - 1) * size,
            "cursor" => q.get("cursor").map_or(0, |c| c.parse().unwrap()),
            _ => q.get("after").map_or(0, |c| c.parse().unwrap()),
        };
        let end = (start + size).min(self.items.len());
        let page: Vec<Value> = self.items[start.min(end)..end].to_vec();
        let more = end < self.items.len();
        match self.style {
            "page" => ResponseTemplate::new(200).set_body_json(json!({"code":0,"msg":"ok","data":{"total":self.items.len(),"items":page}})),
            "cursor" => ResponseTemplate::new(200).set_body_json(json!({"code":0,"data":{"items":page,"next_cursor": if more { json!(end.to_string()) } else { Value::Null }}})),
            _ => {
                let mut t = ResponseTemplate::new(200).set_body_json(json!({"code":0,"data":{"items":page}}));
                if more {
                    t = t.insert_header("Link", format!("<{}/api/petitions?page_size={size}&after={end}>; rel=\"next\"", self.uri).as_str());
                }
                t
            }
        }
    }
}

fn portal_item(i: usize) -> Value {
    json!({
        "petitionNo": format!("WS2026112800{i:03}"),
        "createTime": "2026-11-28 09:00:00",
        "updateTime": format!("2026-11-28 10:{:02}:{:02}", i / 60, i % 60),
        "title": "关于拆迁补偿的投诉",
        "content": "我家房屋被拆迁，补偿款至今未到位。",
        "petitioner": {"name": "李娜", "idCard": "11010519491231002X", "mobile": "+86 139-0000-1111", "address": "西湖区文三路1号"},
        "regionName": "西湖区",
        "matterCode": "CQ01",
        "status": "待受理"
    })
}

#[tokio::test]
async fn every_pagination_style_walks_all_pages() {
    for style in ["page", "cursor", "link"] {
        let mapping = petitiond_sim::portal::MAPPING_TOML;
        let server = MockServer::start().await;
        let items: Vec<Value> = (0..23).map(portal_item).collect();
        Mock::given(path("/api/petitions"))
            .respond_with(Portal {
                items,
                style,
                page_size: 5,
                uri: server.uri(),
            })
            .mount(&server)
            .await;
        let h = H::new(&format!(
            r#"
[channels.portal]
protocol = "paged"
base_url = "{}/api"
path = "/petitions"
items_pointer = "/data/items"
requests_per_second = 1000
# The records are dated 2026-11-28: look back far enough whatever day the test runs.
initial_lookback_hours = 87600
[channels.portal.pagination]
kind = "{style}"
page_size = 5
next_cursor_pointer = "/data/next_cursor"
[channels.portal.mapping]
{mapping}
"#,
            server.uri()
        ))
        .await;
        assert_eq!(h.poll().await.unwrap(), 23, "{style}");
        assert_eq!(h.items(), 23, "{style}");
        let id = petitiond_core::envelope::ItemId::derive(
            petitiond_core::envelope::Channel::Portal,
            "WS2026112800007",
        );
        let env = h.store.item_envelope(id.as_str()).unwrap().unwrap();
        assert_eq!(env.upstream.region.as_deref(), Some("西湖区"));
        assert_eq!(env.upstream.service_code.as_deref(), Some("CQ01"));
        assert_eq!(
            env.received_at,
            "2026-11-28T01:00:00Z".parse::<Timestamp>().unwrap(),
            "created time, local → UTC"
        );
        assert_eq!(
            env.petitioner.id_number.as_ref().unwrap().expose(),
            "11010519491231002X"
        );
        // The cursor is the latest update time seen (10:00:22 local).
        assert_eq!(
            h.cursor(),
            Some("2026-11-28T02:00:22Z".parse().unwrap()),
            "{style}"
        );
    }
}

#[tokio::test]
async fn a_source_without_success_goes_stale_and_raises_an_alert() {
    let server = MockServer::start().await;
    Mock::given(path("/open311/v2/requests.json"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let h = H::new(&open311_section(
        &server.uri(),
        "stale_after_secs = 1\npoll_interval_ms = 100",
    ))
    .await;
    let health = h.ch.health.clone();
    let stop = CancellationToken::new();
    let H {
        ch, store, _dir, ..
    } = h;
    let task = tokio::spawn(ch.run(stop.clone()));
    let mut stale = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if health
            .lock()
            .unwrap()
            .get("hotline")
            .is_some_and(|s| s.stale)
        {
            stale = true;
            break;
        }
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    assert!(stale, "stale within the test's 10 s");
    let pending = store.pending_outbox(10).unwrap();
    let stale_event = pending
        .iter()
        .find(|r| {
            r.headers
                .iter()
                .any(|(k, v)| k == "ce_type" && v == TYPE_CHANNEL_STALE)
        })
        .expect("a stale-channel event on the alerts topic");
    let schema: Value =
        serde_json::from_str(include_str!("../../../schema/channel-event.v1.json")).unwrap();
    let payload: Value = serde_json::from_slice(&stale_event.payload).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&payload), "{payload}");
    assert_eq!(payload["kind"], "channel_stale");
    let h = health.lock().unwrap();
    assert!(
        h["hotline"]
            .last_error
            .as_deref()
            .unwrap()
            .contains("HTTP 500")
    );
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_and_lets_one_trial_through_later() {
    let server = MockServer::start().await;
    Mock::given(path("/open311/v2/requests.json"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let h = H::new(&open311_section(&server.uri(), "").replace(
        "breaker_failures = 100",
        "breaker_failures = 3\nbreaker_cooldown_ms = 400",
    ))
    .await;
    let req = h.requests_json();
    let calls = || async { server.received_requests().await.unwrap().len() };
    // Three failures (with retries inside one fetch) open the circuit...
    let mut f = Fetcher::new(&h.ch.config, h.ch.metrics.clone()).unwrap();
    f.attempts = 3;
    let e = f.fetch(&req, &h.stop, |_| Ok(())).await.unwrap_err();
    assert!(matches!(e, FetchError::Transient { .. }), "{e}");
    assert_eq!(calls().await, 3);
    // ...so the next call fails fast, without a request.
    f.attempts = 1;
    let e = f.fetch(&req, &h.stop, |_| Ok(())).await.unwrap_err();
    assert!(matches!(e, FetchError::CircuitOpen(_)), "{e}");
    assert_eq!(calls().await, 3, "no request while open");
    // After the cool-down one trial goes through; it fails, so the circuit opens again at once.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let e = f.fetch(&req, &h.stop, |_| Ok(())).await.unwrap_err();
    assert!(matches!(e, FetchError::Transient { .. }), "{e}");
    assert_eq!(calls().await, 4, "exactly one trial request");
    let e = f.fetch(&req, &h.stop, |_| Ok(())).await.unwrap_err();
    assert!(matches!(e, FetchError::CircuitOpen(_)), "{e}");
    // A success closes it.
    server.reset().await;
    Mock::given(path("/open311/v2/requests.json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("[]"))
        .mount(&server)
        .await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    f.fetch(&req, &h.stop, |_| Ok(())).await.unwrap();
    f.fetch(&req, &h.stop, |_| Ok(())).await.unwrap();
}

#[tokio::test]
async fn the_rate_limit_spaces_requests() {
    let server = MockServer::start().await;
    Mock::given(path("/open311/v2/requests.json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("[]"))
        .mount(&server)
        .await;
    let h = H::new(
        &open311_section(&server.uri(), "")
            .replace("requests_per_second = 1000", "requests_per_second = 5"),
    )
    .await;
    let req = h.requests_json();
    let t0 = std::time::Instant::now();
    for _ in 0..10 {
        h.fetcher.fetch(&req, &h.stop, |_| Ok(())).await.unwrap();
    }
    // A burst of 5, then one every 200 ms: the 10th request no earlier than ~1 s in.
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
}

mod hardening;

/// Several instances: a channel whose lease another instance has taken since (a paused or cut
/// off owner) stores what it read but cannot move the cursor; under the newest lease it can.
#[tokio::test]
async fn a_channel_whose_lease_was_taken_over_moves_no_cursor() {
    let (server, _, _) = open311_server(spread(5, 600), 1000, vec![]).await;
    let mut h = H::new(&open311_section(&server.uri(), "")).await;
    let name = h.ch.config.name.clone();
    let old = h.store.acquire_lease(&name, "a").unwrap();
    let new = h.store.acquire_lease(&name, "b").unwrap();
    h.ch.lease = Some(old);
    let err = match h.poll().await {
        Err(PollError::Other(e)) => e,
        other => panic!("expected a fenced poll, got {other:?}"),
    };
    assert!(
        err.chain().any(|c| matches!(
            c.downcast_ref::<petitiond_store::StoreError>(),
            Some(petitiond_store::StoreError::Fenced { .. })
        )),
        "{err:#}"
    );
    assert_eq!(h.cursor(), None, "a fenced channel moved the cursor");
    h.ch.lease = Some(new);
    h.poll().await.unwrap();
    assert!(h.cursor().is_some(), "the newest lease moves the cursor");
    assert_eq!(h.items(), 5, "each item stored once");
}
