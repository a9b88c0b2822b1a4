//! Write-back: the builders (bodies, keys, which items), the config rules, and the worker
//! against the portal simulator's status API with its faults — 5xx, 429, timeouts, lost
//! answers (applied, then a 504 or a timeout), refusals — and a stop in the middle.

use crate::config::Config;
use jiff::Timestamp;
use petitiond_channels::http::client::FetchError;
use petitiond_channels::http::writeback::*;
use petitiond_core::envelope::Envelope;
use petitiond_core::envelope::{Channel, Personal, Request, Routing, Upstream};
use petitiond_core::sla::clock::{Clock, State};
use petitiond_core::sla::policy::EventKind;
use petitiond_metrics::Metrics;
use petitiond_sim::Faults;
use petitiond_sim::portal::{PortalSim, PortalSimConfig, SigningSecret, WRITEBACK_TOML};
use petitiond_store::{Decision, NewItem, SqliteStore};
use petitiond_store::{NewWriteback, Store, WritebackRow};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

// The write-back rows take the sections they read; these take a whole test config.
fn acknowledged(cfg: &Config, env: &Envelope) -> Option<NewWriteback> {
    petitiond_channels::http::writeback::acknowledged(
        &cfg.http_sources,
        cfg.sla.calendar.time_zone(),
        &cfg.departments,
        env,
    )
}

fn dues(cfg: &Config, env: &Envelope, clocks: &[&Clock], cause: Timestamp) -> Vec<NewWriteback> {
    petitiond_channels::http::writeback::dues(
        &cfg.http_sources,
        cfg.sla.calendar.time_zone(),
        env,
        clocks,
        cause,
    )
}

fn dues_for_clock(cfg: &Config, clock: &Clock, cause: Timestamp) -> Vec<NewWriteback> {
    petitiond_channels::http::writeback::dues_for_clock(
        &cfg.http_sources,
        cfg.sla.calendar.time_zone(),
        clock,
        cause,
    )
}

fn completed(
    cfg: &Config,
    env: &Envelope,
    event: EventKind,
    at: Timestamp,
) -> Option<NewWriteback> {
    petitiond_channels::http::writeback::completed(
        &cfg.http_sources,
        cfg.sla.calendar.time_zone(),
        env,
        event,
        at,
    )
}

/// A config with the portal pointed at `base` and write-back as the sim wants it; `extra`
/// lands in `[channels.portal.writeback]`, `auth` after the mapping.
fn config(base: &str, extra: &str, auth: &str) -> Config {
    let defaults: String = [
        ("backoff_initial_ms", "20"),
        ("backoff_max_ms", "100"),
        ("request_timeout_ms", "400"),
        ("poll_interval_ms", "50"),
        ("requests_per_second", "1000"),
    ]
    .iter()
    .filter(|(k, _)| !extra.contains(&format!("{k} =")))
    .map(|(k, v)| format!("{k} = {v}\n"))
    .collect();
    let text = format!(
        r#"[kafka]
brokers = "127.0.0.1:9"
[[departments]]
id = "hrss"
name = "市人力社保局"
topic = "t.hrss"
[routing]
default_lead = "hrss"
[channels.portal]
protocol = "paged"
base_url = "{base}"
allow_plaintext_auth = true
path = "/petitions"
items_pointer = "/data/items"
[channels.portal.pagination]
kind = "page"
[channels.portal.mapping]
{mapping}
{auth}
[channels.portal.writeback]
{defaults}
{extra}
{WRITEBACK_TOML}"#,
        mapping = petitiond_sim::portal::MAPPING_TOML,
    );
    Config::parse(&text, "t.toml", std::path::Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn portal_item(upstream: &str) -> Envelope {
    let mut e = Envelope::new(
        Channel::Portal,
        Upstream {
            id: upstream.into(),
            source: "portal".into(),
            raw_ref: format!("sha256:{}", "0".repeat(64)),
            ..Default::default()
        },
        "2026-11-28T02:00:00Z".parse().unwrap(),
        Request {
            title: None,
            content: Personal::new("路灯坏了两个星期了，晚上很黑"),
        },
    );
    e.routing = Some(Routing {
        lead: "hrss".into(),
        assists: vec![],
        rule_id: "r".into(),
        rules_version: "v".into(),
        decided_at: "2026-11-28T02:00:01Z".parse().unwrap(),
        sla_add: vec![],
        sla_skip: vec![],
        classification: None,
    });
    e
}

/// The item's `portal.sign_in` clock as intake starts it.
fn sign_in(cfg: &Config, env: &Envelope) -> Clock {
    let policy = cfg.sla.clock("portal.sign_in").unwrap();
    Clock::start(
        policy,
        env.id.as_str(),
        "hrss",
        env.received_at,
        &cfg.sla.calendar,
    )
    .unwrap()
}

fn json(w: &NewWriteback) -> serde_json::Value {
    serde_json::from_slice(&w.body).unwrap()
}

#[test]
fn builders_write_the_configured_fields_under_deterministic_keys() {
    let cfg = config("http://127.0.0.1:9/api", "", "");
    let env = portal_item("WS2026112800001");
    let ack = acknowledged(&cfg, &env).unwrap();
    assert_eq!(
        json(&ack),
        serde_json::json!({"state": "ACCEPTED", "handleDept": "市人力社保局", "opTime": "2026-11-28 10:00:01"})
    );
    assert_eq!(
        (ack.source.as_str(), ack.kind.as_str()),
        ("portal", ACKNOWLEDGED)
    );
    assert_eq!(ack.key, key(env.id.as_str(), ACKNOWLEDGED, "hrss"));
    assert_eq!(acknowledged(&cfg, &env).unwrap(), ack, "deterministic");

    let clock = sign_in(&cfg, &env);
    let due = dues(&cfg, &env, &[&clock], env.received_at);
    assert_eq!(due.len(), 1);
    assert_eq!(
        json(&due[0]),
        serde_json::json!({"state": "TIME_LIMIT", "dueTime": "2026-11-28 12:00:00", "opTime": "2026-11-28 10:00:00"})
    );
    // The same due instant set by another cause is another write (a due that moves away and
    // back must be written again); the same cause is the same key.
    let later = dues(
        &cfg,
        &env,
        &[&clock],
        env.received_at + jiff::SignedDuration::from_secs(5),
    );
    assert_ne!(later[0].key, due[0].key);
    assert_eq!(
        dues(&cfg, &env, &[&clock], env.received_at)[0].key,
        due[0].key
    );
    // Only the due clocks (default: the portal's own first-touch clock), only with a due.
    let supplement = Clock {
        clock_id: "intake.supplement".into(),
        ..clock.clone()
    };
    assert!(dues(&cfg, &env, &[&supplement], env.received_at).is_empty());
    let pending = Clock {
        state: State::Pending,
        ..clock.clone()
    };
    assert!(dues(&cfg, &env, &[&pending], env.received_at).is_empty());
    assert_eq!(dues_for_clock(&cfg, &clock, env.received_at), due);

    let at: Timestamp = "2026-12-01T06:30:00Z".parse().unwrap();
    let fin = completed(&cfg, &env, EventKind::Replied, at).unwrap();
    assert_eq!(
        json(&fin),
        serde_json::json!({"state": "FINISHED", "opTime": "2026-12-01 14:30:00"})
    );
    assert!(completed(&cfg, &env, EventKind::Evaluated, at).is_none());
    assert!(completed(&cfg, &env, EventKind::Accepted, at).is_none());

    // Other channels' items, and a source without write-back, write nothing back.
    let mut hotline = portal_item("H1");
    hotline.channel = Channel::Hotline;
    hotline.upstream.source = "hotline".into();
    assert!(acknowledged(&cfg, &hotline).is_none());
    assert!(completed(&cfg, &hotline, EventKind::Replied, at).is_none());
    assert!(dues(&cfg, &hotline, &[&clock], at).is_empty());
}

#[test]
fn rfc3339_times_carry_the_office_offset_and_a_state_can_be_left_out() {
    let cfg = config(
        "http://127.0.0.1:9/api",
        "due_clocks = [\"portal.sign_in\", \"statutory.accept\"]",
        "",
    );
    let mut wb = cfg.http_sources[0].writeback.clone().unwrap();
    assert_eq!(wb.due_clocks, ["portal.sign_in", "statutory.accept"]);
    wb.time_format = None;
    let tz = cfg.sla.calendar.time_zone();
    let t: Timestamp = "2026-11-28T02:00:00.25Z".parse().unwrap();
    assert_eq!(format_time(t, &wb, tz), "2026-11-28T10:00:00.25+08:00");
    let t: Timestamp = "2026-11-28T02:00:00Z".parse().unwrap();
    assert_eq!(format_time(t, &wb, tz), "2026-11-28T10:00:00+08:00");
    // A state left out (`""`) is not written back.
    let mut cfg = cfg;
    let env = portal_item("WS2026112800001");
    assert!(acknowledged(&cfg, &env).is_some());
    if let Some(wb) = cfg.http_sources[0].writeback.as_mut() {
        wb.acknowledged = None;
    }
    assert!(acknowledged(&cfg, &env).is_none());
}

fn errors(text: &str) -> String {
    match Config::parse(text, "t.toml", std::path::Path::new(".")) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn writeback_config_errors_name_the_key_and_why() {
    let head = "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[departments]]\nid = \"d\"\nname = \"d\"\ntopic = \"t.d\"\n[routing]\ndefault_lead = \"d\"\n";
    // Open311 has no status call.
    let open311 = format!(
        "{head}[channels.hotline]\nprotocol = \"open311\"\nbase_url = \"https://h.example/v2\"\n[channels.hotline.writeback]\npath = \"/requests/{{id}}\"\n"
    );
    let e = errors(&open311);
    assert!(
        e.contains("t.toml:12: channels.hotline.writeback: Open311 GeoReport v2 has no call that updates a request's status"),
        "{e}"
    );
    let paged = |wb: &str| {
        format!(
            "{head}[channels.portal]\nprotocol = \"paged\"\nbase_url = \"https://p.example/api\"\npath = \"/p\"\n[channels.portal.pagination]\nkind = \"page\"\n[channels.portal.mapping]\nid = \"/id\"\ncontent = \"/c\"\n[channels.portal.writeback]\n{wb}"
        )
    };
    let cases: &[(&str, &str)] = &[
        ("", "channels.portal.writeback.path: required"),
        (
            "path = \"/p/status\"\n",
            "channels.portal.writeback.path: `/p/status` must hold `{id}`",
        ),
        (
            "path = \"/p/{id}/{kind}\"\n",
            "`{id}` is the only placeholder",
        ),
        (
            "path = \"/p/{id}\"\nmethod = \"GET\"\n",
            "channels.portal.writeback.method: `GET`: expected POST, PUT or PATCH",
        ),
        (
            "path = \"/p/{id}\"\ncompleted_on = [\"done\"]\n",
            "channels.portal.writeback.completed_on[0]: `done` is not a status event",
        ),
        (
            "path = \"/p/{id}\"\ndue_clocks = [\"portal.signin\"]\n",
            "channels.portal.writeback.due_clocks[0]: `portal.signin` is not an SLA clock",
        ),
        (
            "path = \"/p/{id}\"\ncanonical = \"{method}\\\\n{body}\"\n",
            "unknown placeholder `{body}`",
        ),
        (
            "path = \"/p/{id}\"\ncanonical = \"{method}\\\\n{body_sha256}\"\n",
            "channels.portal.writeback.canonical: only for HMAC-signed sources",
        ),
        (
            "path = \"/p/{id}\"\nmax_attempts = 0\n",
            "channels.portal.writeback.max_attempts",
        ),
        (
            "path = \"/p/{id}\"\nidempotency_header = \"Idem Key\"\n",
            "is not an HTTP header name",
        ),
        (
            "path = \"/p/{id}\"\n[channels.portal.writeback.states]\nacknowledged = \"\"\ndue = \"\"\ncompleted = \"\"\n",
            "channels.portal.writeback.states: every state is left out",
        ),
        (
            "path = \"/p/{id}\"\n[channels.portal.writeback.fields]\ndue_at = \"\"\n",
            "channels.portal.writeback.fields.due_at: required while states.due is written back",
        ),
        (
            "path = \"/p/{id}\"\ntypo = 1\n",
            "channels.portal.writeback.typo",
        ),
    ];
    for (wb, want) in cases {
        let e = errors(&paged(wb));
        assert!(e.contains(want), "{wb:?}: want {want:?} in:\n{e}");
    }
    // A good section: defaults filled in; the first-touch clock found for the portal.
    let cfg = Config::parse(
        &paged("path = \"p/{id}/status\"\n"),
        "t.toml",
        std::path::Path::new("."),
    )
    .unwrap();
    let wb = cfg.http_sources[0].writeback.as_ref().unwrap();
    assert_eq!(wb.path, "/p/{id}/status");
    assert_eq!(wb.due_clocks, ["portal.sign_in"]);
    assert_eq!(wb.completed_on, [EventKind::Replied]);
    assert_eq!(wb.idempotency_header, "Idempotency-Key");
    assert_eq!(wb.acknowledged.as_deref(), Some("acknowledged"));
    // Disabled: no write-back at all.
    let cfg = Config::parse(
        &paged("enabled = false\n"),
        "t.toml",
        std::path::Path::new("."),
    )
    .unwrap();
    assert!(cfg.http_sources[0].writeback.is_none());
}

// ---- the worker against the simulator -----------------------------------------------------

struct H {
    _dir: tempfile::TempDir,
    cfg: Arc<Config>,
    store: Arc<dyn Store>,
    metrics: Metrics,
}

impl H {
    fn new(cfg: Config) -> H {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("w.db"), Duration::from_secs(5)).unwrap());
        H {
            _dir: dir,
            cfg: Arc::new(cfg),
            store,
            metrics: Metrics::new(),
        }
    }

    /// Records a portal item with its acknowledged, due and completed write-backs queued.
    fn item(&self, upstream: &str) -> String {
        let env = portal_item(upstream);
        let clock = sign_in(&self.cfg, &env);
        let mut writeback: Vec<NewWriteback> = acknowledged(&self.cfg, &env).into_iter().collect();
        writeback.extend(dues(&self.cfg, &env, &[&clock], env.received_at));
        writeback.extend(completed(
            &self.cfg,
            &env,
            EventKind::Replied,
            "2026-11-29T01:00:00Z".parse().unwrap(),
        ));
        assert_eq!(writeback.len(), 3);
        let id = env.id.to_string();
        self.store
            .record_item(&NewItem {
                decision: Decision {
                    rule_id: "r".into(),
                    rules_version: "v".into(),
                    lead: "hrss".into(),
                    assists: vec![],
                    decided_at: env.received_at,
                },
                outbox: vec![],
                clocks: vec![],
                envelope: env,
                version: Some("v1".into()),
                person_index: None,
                writeback,
            })
            .unwrap();
        id
    }

    fn worker(&self) -> WritebackWorker {
        WritebackWorker {
            source: Arc::new(self.cfg.http_sources[0].clone()),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
        }
    }

    fn rows(&self, state: &str) -> Vec<WritebackRow> {
        self.store.writeback_list(Some(state), 1000).unwrap()
    }

    /// Runs a worker until every row is delivered or dead (or `max` passes).
    async fn drain(&self, max: Duration) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.worker().run(stop.clone()));
        let start = std::time::Instant::now();
        while !self.rows("pending").is_empty() && start.elapsed() < max {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        task.await.unwrap().unwrap();
    }

    fn counter(&self, name: &str) -> String {
        self.metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with(name))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Every write the sim received, grouped by body: each logical write must travel under one
/// key only (a retry reuses its key), and be applied once.
fn assert_one_key_per_write_applied_once(sim: &PortalSim, ids: &[String]) {
    let mut keys: HashMap<(String, Vec<u8>), std::collections::BTreeSet<String>> = HashMap::new();
    for r in sim.status_requests() {
        keys.entry((r.petition.clone(), r.body.clone()))
            .or_default()
            .insert(r.key.clone());
    }
    for ((petition, body), k) in &keys {
        assert_eq!(
            k.len(),
            1,
            "{petition}: one write under several keys: {}",
            String::from_utf8_lossy(body)
        );
    }
    for id in ids {
        let log = sim.status_log(id);
        let states: Vec<&str> = log.iter().map(|a| a.state.as_str()).collect();
        assert_eq!(
            states,
            ["ACCEPTED", "TIME_LIMIT", "FINISHED"],
            "{id}: in order, once each"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_arrives_once_in_order_through_5xx_429_timeouts_and_lost_answers() {
    let sim = PortalSim::start(PortalSimConfig::default()).await.unwrap();
    let ids = sim.add_records(8);
    let h = H::new(config(&sim.base_url(), "max_attempts = 50", ""));
    for id in &ids {
        h.item(id);
    }
    sim.set_faults(Faults {
        error_500_every: Some(5),
        rate_limit_every: Some(7),
        retry_after_secs: 0,
        // Longer than the client's 400 ms: a timeout before the sim even looks.
        slow_every: Some(6),
        slow_ms: 700,
        // Applied, then the answer is lost (a 504 after slow_ms: also a client timeout).
        lost_answer_every: Some(4),
        garbage_every: Some(9),
        ..Faults::default()
    });
    h.drain(Duration::from_secs(60)).await;
    assert!(h.rows("pending").is_empty(), "{:?}", h.rows("pending"));
    assert!(h.rows("dead").is_empty(), "{:?}", h.rows("dead"));
    assert_eq!(h.rows("delivered").len(), 24);
    assert_one_key_per_write_applied_once(&sim, &ids);
    let reqs = sim.status_requests();
    assert!(
        reqs.iter().any(|r| r.replayed),
        "a lost answer's retry was a replay"
    );
    assert!(
        h.counter("petitiond_writeback_requests_total")
            .contains("outcome=\"retry\""),
        "{}",
        h.counter("petitiond_writeback_requests")
    );
    for r in h.rows("delivered") {
        assert!(r.attempts >= 1);
        assert!(r.last_error.is_none());
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_mid_request_resends_under_the_same_key() {
    let sim = PortalSim::start(PortalSimConfig::default()).await.unwrap();
    let ids = sim.add_records(2);
    let h = H::new(config(
        &sim.base_url(),
        "request_timeout_ms = 5000\nmax_attempts = 50",
        "",
    ));
    for id in &ids {
        h.item(id);
    }
    // Every write is applied and then the answer takes 3 s: the worker is stopped while it
    // waits (as a crash would cut it off), with its attempt counted.
    sim.set_faults(Faults {
        lost_answer_every: Some(1),
        slow_ms: 3000,
        ..Faults::default()
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(h.worker().run(stop.clone()));
    while sim.status_requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    let first = sim.status_requests();
    assert_eq!(first.len(), 1);
    let pending = h.rows("pending");
    let attempted: Vec<_> = pending.iter().filter(|r| r.attempts == 1).collect();
    assert_eq!(
        attempted.len(),
        1,
        "the interrupted row is pending, its attempt counted"
    );
    assert_eq!(attempted[0].key, first[0].key);
    // The next worker (a restart) sends it again under the same key: recognised, not applied
    // twice; then the rest.
    sim.set_faults(Faults::default());
    h.drain(Duration::from_secs(30)).await;
    assert_eq!(h.rows("delivered").len(), 6);
    let again: Vec<_> = sim
        .status_requests()
        .into_iter()
        .filter(|r| r.key == first[0].key)
        .collect();
    assert_eq!(again.len(), 2);
    assert!(again[1].replayed);
    assert_one_key_per_write_applied_once(&sim, &ids);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_max_attempts_a_write_is_dead_counted_and_can_be_replayed() {
    let sim = PortalSim::start(PortalSimConfig::default()).await.unwrap();
    let ids = sim.add_records(1);
    let h = H::new(config(&sim.base_url(), "max_attempts = 3", ""));
    let item = h.item(&ids[0]);
    sim.set_faults(Faults {
        error_500_every: Some(1),
        ..Faults::default()
    });
    h.drain(Duration::from_secs(20)).await;
    // Each write died after 3 attempts (a dead write does not hold up the next one).
    let dead = h.rows("dead");
    assert_eq!(dead.len(), 3, "{dead:?}");
    for d in &dead {
        assert_eq!(d.attempts, 3);
        let e = d.last_error.as_deref().unwrap();
        assert!(
            e.contains("HTTP 500") && e.contains("after 3 attempts"),
            "{e}"
        );
        assert_eq!(d.item_id, item);
    }
    let c = h.counter("petitiond_writeback_dead_total");
    assert!(c.contains("kind=\"acknowledged\"} 1"), "{c}");
    assert!(c.contains("kind=\"due\"} 1"), "{c}");
    // The operator fixes the upstream and replays them: sent again, in order, once each.
    sim.set_faults(Faults::default());
    let ids_dead: Vec<i64> = dead.iter().map(|d| d.id).collect();
    assert_eq!(h.store.writeback_replay(&ids_dead).unwrap(), 3);
    assert_eq!(
        h.store.writeback_replay(&ids_dead).unwrap(),
        0,
        "only dead ones"
    );
    h.drain(Duration::from_secs(20)).await;
    assert_eq!(h.rows("delivered").len(), 3);
    assert_one_key_per_write_applied_once(&sim, &ids);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_dead_at_once_and_holds_up_nothing_else() {
    let sim = PortalSim::start(PortalSimConfig::default()).await.unwrap();
    let ids = sim.add_records(1);
    let h = H::new(config(&sim.base_url(), "", ""));
    h.item(&ids[0]);
    // A petition the portal does not know: 404 for each of its writes.
    h.item("WS2099010100001");
    h.drain(Duration::from_secs(20)).await;
    let dead = h.rows("dead");
    assert_eq!(dead.len(), 3);
    for d in &dead {
        assert_eq!(d.attempts, 1, "a 4xx is not retried");
        assert!(d.last_error.as_deref().unwrap().contains("HTTP 404"));
        assert_eq!(d.upstream_id, "WS2099010100001");
    }
    assert_eq!(h.rows("delivered").len(), 3);
    assert_one_key_per_write_applied_once(&sim, &ids);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_writes_sign_their_body() {
    let secret = SigningSecret {
        app_key: "app-1".into(),
        secret: "s3cr3t".into(),
    };
    let sim = PortalSim::start(PortalSimConfig {
        signing: Some(secret),
        ..PortalSimConfig::default()
    })
    .await
    .unwrap();
    let ids = sim.add_records(1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s"), "s3cr3t").unwrap();
    let auth = format!(
        "[channels.portal.auth]\nkind = \"hmac\"\napp_key = \"app-1\"\nsecret = {{ file = \"{}\" }}\n",
        dir.path().join("s").display()
    );
    let body_signed = "canonical = \"{method}\\\\n{path}\\\\n{query}\\\\n{timestamp}\\\\n{nonce}\\\\n{body_sha256}\"";
    let h = H::new(config(&sim.base_url(), body_signed, &auth));
    h.item(&ids[0]);
    h.drain(Duration::from_secs(20)).await;
    assert_eq!(h.rows("delivered").len(), 3, "{:?}", h.rows("dead"));
    assert_one_key_per_write_applied_once(&sim, &ids);
    // Without the body in the signature the portal refuses: 401, dead at once (an operator
    // must fix the config; nothing is retried for ever).
    let h = H::new(config(&sim.base_url(), "", &auth));
    h.item(&ids[0]);
    h.drain(Duration::from_secs(20)).await;
    let dead = h.rows("dead");
    assert_eq!(dead.len(), 3);
    assert!(dead[0].last_error.as_deref().unwrap().contains("HTTP 401"));
    sim.stop().await;
}

#[test]
fn backoff_grows_to_its_cap_with_jitter_and_retry_after_wins() {
    let cfg = config(
        "http://127.0.0.1:9/api",
        "backoff_initial_ms = 100\nbackoff_max_ms = 1000\nmax_attempts = 5",
        "",
    );
    let wb = cfg.http_sources[0].writeback.clone().unwrap();
    for (attempts, lo, hi) in [
        (1, 50, 100),
        (2, 100, 200),
        (3, 200, 400),
        (5, 500, 1000),
        (30, 500, 1000),
    ] {
        for _ in 0..50 {
            let d = backoff(&wb, attempts).as_millis() as i64;
            assert!((lo..=hi).contains(&d), "attempt {attempts}: {d} ms");
        }
    }
    let now: Timestamp = "2026-11-28T02:00:00Z".parse().unwrap();
    let e = FetchError::Transient {
        what: "HTTP 429".into(),
        retry_after: Some(Duration::from_secs(30)),
    };
    let Outcome::Retry { at_ms, .. } = classify(&e, 1, &wb, now) else {
        panic!("retried")
    };
    assert_eq!(at_ms - now.as_millisecond(), 30_000);
    assert!(
        matches!(classify(&e, 5, &wb, now), Outcome::Dead(why) if why.contains("after 5 attempts"))
    );
    let conflict = FetchError::Permanent {
        status: Some(409),
        reason: petitiond_channels::http::client::refusal::HTTP_4XX,
        what: "HTTP 409".into(),
    };
    assert!(matches!(
        classify(&conflict, 1, &wb, now),
        Outcome::Retry { .. }
    ));
    let gone = FetchError::Permanent {
        status: Some(404),
        reason: petitiond_channels::http::client::refusal::GONE,
        what: "HTTP 404".into(),
    };
    assert_eq!(
        classify(&gone, 1, &wb, now),
        Outcome::Dead("HTTP 404".into())
    );
}

/// What status events queue: a due instant that moves (a resume) or appears (a clock started
/// by the event), and the completion on `replied` — not a pause, not other events.
#[test]
fn status_events_queue_moved_dues_and_the_completion() {
    let cfg = config(
        "http://127.0.0.1:9/api",
        "due_clocks = [\"portal.sign_in\", \"statutory.handle\"]",
        "",
    );
    let metrics = Metrics::new();
    let env = portal_item("WS2026112800001");
    let mut clocks = vec![sign_in(&cfg, &env)];
    let t0 = env.received_at;
    let at = |mins: i64| t0 + jiff::SignedDuration::from_mins(mins);
    let apply = |clocks: &mut Vec<Clock>, kind: EventKind, mins: i64| {
        let w = crate::status::clock_writes(
            &crate::sla::SlaInputs::from_config(&cfg),
            &metrics,
            &env,
            clocks,
            kind,
            None,
            at(mins),
            None,
        );
        for (c, _) in &w.started {
            clocks.push(c.clone());
        }
        w.writeback
    };
    assert!(
        apply(&mut clocks, EventKind::Paused, 10).is_empty(),
        "a pause moves nothing yet"
    );
    let resumed = apply(&mut clocks, EventKind::Resumed, 40);
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].kind, DUE);
    assert_eq!(
        json(&resumed[0])["dueTime"],
        "2026-11-28 12:30:00",
        "held 30 minutes"
    );
    assert!(apply(&mut clocks, EventKind::Viewed, 50).is_empty());
    let accepted = apply(&mut clocks, EventKind::Accepted, 60);
    assert_eq!(accepted.len(), 1, "statutory.handle started: {accepted:?}");
    assert_eq!(json(&accepted[0])["dueTime"], "2027-01-27 17:30:00");
    let replied = apply(&mut clocks, EventKind::Replied, 70);
    assert_eq!(
        replied.iter().map(|w| w.kind.as_str()).collect::<Vec<_>>(),
        [COMPLETED],
        "the handling clock stops (no due), the item is completed"
    );
    assert_eq!(json(&replied[0])["opTime"], "2026-11-28 11:10:00");
}

/// A pending clock that gets its due instant at start (and a calendar change moving one)
/// offers a due write-back per source that writes the clock back, committed with the clock.
#[test]
fn recomputed_clocks_offer_their_new_due() {
    let cfg = config("http://127.0.0.1:9/api", "", "");
    let env = portal_item("WS2026112800001");
    let computed = sign_in(&cfg, &env);
    let pending = Clock {
        state: State::Pending,
        due_at: computed.started_at,
        ..computed.clone()
    };
    let stored = petitiond_store::StoredClock {
        row: 7,
        clock: pending,
        next: None,
        next_provisional: false,
    };
    let now: Timestamp = "2026-11-28T03:00:00Z".parse().unwrap();
    let out = crate::sla::engine::reconcile(
        &crate::sla::SlaInputs::from_config(&cfg),
        vec![stored],
        false,
        now,
    );
    assert_eq!(out.writes.len(), 1);
    let w = &out.writes[0].writeback;
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].source.as_str(), w[0].kind.as_str()), ("portal", DUE));
    assert_eq!(json(&w[0])["dueTime"], "2026-11-28 12:00:00");
    assert_eq!(json(&w[0])["opTime"], "2026-11-28 11:00:00");
}

/// With the default field names, every body matches `schema/writeback-body.v1.json` and uses
/// only the fields it documents.
#[test]
fn default_bodies_match_the_published_schema() {
    let text = "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[departments]]\nid = \"hrss\"\nname = \"hrss\"\ntopic = \"t.hrss\"\n[routing]\ndefault_lead = \"hrss\"\n[channels.portal]\nprotocol = \"paged\"\nbase_url = \"https://p.example/api\"\npath = \"/p\"\n[channels.portal.pagination]\nkind = \"page\"\n[channels.portal.mapping]\nid = \"/id\"\ncontent = \"/c\"\n[channels.portal.writeback]\npath = \"/p/{id}/status\"\n[channels.portal.writeback.fields]\nclock = \"clock\"\nprovisional = \"provisional\"\nitem_id = \"item_id\"\ndepartment_name = \"department_name\"\n";
    let cfg = Config::parse(text, "t.toml", std::path::Path::new(".")).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../schema/writeback-body.v1.json")).unwrap();
    let known: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let env = portal_item("WS1");
    let clock = sign_in(&cfg, &env);
    let mut bodies = vec![acknowledged(&cfg, &env).unwrap()];
    bodies.extend(dues(&cfg, &env, &[&clock], env.received_at));
    bodies.extend(completed(&cfg, &env, EventKind::Replied, env.received_at));
    assert_eq!(bodies.len(), 3);
    for b in &bodies {
        let v = json(b);
        assert!(validator.is_valid(&v), "{v}");
        for k in v.as_object().unwrap().keys() {
            assert!(known.contains(&k), "`{k}` not in the schema: {v}");
        }
    }
    assert_eq!(json(&bodies[0])["state"], "acknowledged");
    assert_eq!(json(&bodies[1])["due_at"], "2026-11-28T12:00:00+08:00");
    assert_eq!(json(&bodies[1])["clock"], "portal.sign_in");
    assert_eq!(json(&bodies[2])["state"], "completed");
}

/// The shipped example's write-back section (disabled there) parses when enabled and writes
/// what the portal simulator's status API reads.
#[test]
fn the_shipped_writeback_section_parses_and_speaks_the_simulators_api() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/petitiond.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen(
            "[channels.portal]\nenabled = false",
            "[channels.portal]\nenabled = true",
            1,
        )
        .replacen(
            "[channels.portal.writeback]\nenabled = false",
            "[channels.portal.writeback]\nenabled = true",
            1,
        )
        .replace("PETITIOND_PORTAL_SECRET", "PATH");
    let cfg = Config::parse(&text, "petitiond.toml", path.parent().unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    let source = cfg
        .http_sources
        .iter()
        .find(|s| s.name == "portal")
        .unwrap();
    let wb = source.writeback.as_ref().expect("enabled");
    assert_eq!(wb.path, "/petitions/{id}/status");
    assert_eq!(wb.due_clocks, ["portal.sign_in"]);
    assert_eq!(wb.max_attempts, 12);
    let shipped = source.for_writeback().unwrap();
    let crate::config::http::Auth::Hmac(h) = &shipped.auth else {
        panic!("hmac")
    };
    assert!(h.canonical.ends_with("{body_sha256}"));
    // The same bodies as the configuration the simulator documents.
    let sim = config("http://127.0.0.1:9/api", "", "");
    let env = portal_item("WS2026112800001");
    let clock = sign_in(&cfg, &env);
    let at: Timestamp = "2026-12-01T06:30:00Z".parse().unwrap();
    for c in [&cfg, &sim] {
        assert_eq!(json(&acknowledged(c, &env).unwrap())["state"], "ACCEPTED");
    }
    assert_eq!(
        json(&dues(&cfg, &env, &[&clock], at)[0]),
        json(&dues(&sim, &env, &[&clock], at)[0])
    );
    assert_eq!(
        json(&completed(&cfg, &env, EventKind::Replied, at).unwrap()),
        json(&completed(&sim, &env, EventKind::Replied, at).unwrap())
    );
}

/// The store failing under the worker (here: its table renamed away by another connection)
/// is logged and retried, never the end of the task; once the store is back, the writes go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_is_retried_not_fatal() {
    let sim = PortalSim::start(PortalSimConfig::default()).await.unwrap();
    let ids = sim.add_records(1);
    let h = H::new(config(&sim.base_url(), "", ""));
    h.item(&ids[0]);
    let db = rusqlite::Connection::open(h._dir.path().join("w.db")).unwrap();
    db.execute_batch("ALTER TABLE writeback RENAME TO writeback_away")
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(h.worker().run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!task.is_finished(), "the worker keeps going");
    assert!(sim.status_requests().is_empty());
    db.execute_batch("ALTER TABLE writeback_away RENAME TO writeback")
        .unwrap();
    let start = std::time::Instant::now();
    while sim.status_log(&ids[0]).len() < 3 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_one_key_per_write_applied_once(&sim, &ids);
    sim.stop().await;
}

/// Regression: a row due but blocked behind an older row of its item (in back-off) made the
/// idle worker wait zero and query the store in a busy loop until the older row's time.
#[test]
fn a_row_blocked_behind_its_item_does_not_spin_the_worker() {
    let poll = Duration::from_millis(1000);
    assert_eq!(
        idle_wait(Some(0), 5_000, poll),
        poll,
        "due, yet not sent: blocked"
    );
    assert_eq!(idle_wait(Some(5_000), 5_000, poll), poll);
    assert_eq!(idle_wait(None, 5_000, poll), poll);
    assert_eq!(
        idle_wait(Some(5_250), 5_000, poll),
        Duration::from_millis(250)
    );
    assert_eq!(idle_wait(Some(60_000), 5_000, poll), poll);
}
