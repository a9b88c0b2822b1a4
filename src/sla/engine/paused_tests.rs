//! The engine's run loop on paused tokio time: the whole engine (store, timers, alerts) with
//! a [`PausedClock`], so what the integration tests check in seconds of real time is checked
//! here in milliseconds, and a wall-clock step can be made at will.

use super::*;
use crate::config::Config;
use crate::store::{Decision, NewItem, NewOutbox, Recorded, SqliteStore};
use petitiond_core::envelope::{Channel, Envelope, Personal, Request, Upstream};
use std::time::Duration;

/// A wall-clock clock of `seconds` on letters, warned at 50 %, as in `tests/it/sla.rs`.
fn config(seconds: u32) -> Config {
    Config::parse(
        &format!(
            "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[departments]]\nid = \"desk\"\nname = \"desk\"\ntopic = \"t.desk\"\n[routing]\ndefault_lead = \"desk\"\n[sla]\nalerts_topic = \"t.alerts\"\n[[sla.clocks]]\nid = \"letter.test\"\nrule = {{ kind = \"wall_clock_seconds\", seconds = {seconds} }}\nchannels = [\"letter\"]\nstop_on = [\"registered\"]\nwarn_at_percent = [50]\nremind_every_working_days = 0\ncitation = \"test\"\n"
        ),
        "t.toml",
        std::path::Path::new("."),
    )
    .unwrap()
}

/// An item received at `at` with the clock started then; returns its id and its timers.
fn record(store: &Arc<dyn Store>, cfg: &Config, at: Timestamp) -> (String, Vec<Timer>) {
    let env = Envelope::new(
        Channel::Letter,
        Upstream {
            id: "u1".into(),
            url: None,
            source: "mailbox".into(),
            raw_ref: "sha256:00".into(),
            ..Default::default()
        },
        at,
        Request {
            title: None,
            content: Personal::new("x"),
        },
    );
    let id = env.id.to_string();
    let policy = cfg.sla.clock("letter.test").unwrap();
    let clock =
        petitiond_core::sla::clock::Clock::start(policy, &id, "desk", at, &cfg.sla.calendar)
            .unwrap();
    let next = clock
        .next_alert_marked(policy, &cfg.sla.calendar)
        .unwrap()
        .0
        .map(|(_, t)| t);
    let item = NewItem {
        outbox: vec![NewOutbox {
            topic: "t.desk".into(),
            key: id.clone(),
            ce_id: format!("ce-{id}"),
            headers: vec![("ce_specversion".into(), "1.0".into())],
            payload: b"{}".to_vec(),
        }],
        decision: Decision {
            rule_id: "default".into(),
            rules_version: "v0".into(),
            lead: "desk".into(),
            assists: vec![],
            decided_at: at,
        },
        clocks: vec![(clock, next)],
        envelope: env,
        version: None,
        person_index: None,
        writeback: Vec::new(),
    };
    match store.record_item(&item).unwrap() {
        Recorded::New(timers) => (id, timers),
        Recorded::Duplicate => panic!("duplicate"),
    }
}

/// The alert payloads queued on the alerts topic, in order.
fn alerts(store: &Arc<dyn Store>) -> Vec<serde_json::Value> {
    store
        .pending_outbox(1000)
        .unwrap()
        .into_iter()
        .filter(|r| r.topic == "t.alerts")
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect()
}

fn ts(v: &serde_json::Value) -> Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

struct Running {
    store: Arc<dyn Store>,
    clock: Arc<PausedClock>,
    timers: mpsc::UnboundedSender<Vec<Timer>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

/// Starts the engine on `store` (in `dir`) with a paused clock reading `now`.
fn start(
    cfg: Config,
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: Arc<PausedClock>,
) -> Running {
    let (tx, rx) = mpsc::unbounded_channel();
    let engine = Engine {
        inputs: Arc::new(SlaInputs::from_config(&cfg)),
        store: store.clone(),
        metrics: Metrics::new(),
        relay_wake: Arc::new(Notify::new()),
        input: rx,
        clock: clock.clone(),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(engine.run(stop.clone()));
    Running {
        store,
        clock,
        timers: tx,
        stop,
        task,
        _dir: dir,
    }
}

fn open() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap();
    (dir, Arc::new(s))
}

const T0: &str = "2026-03-02T01:00:00Z";

/// Paused-time twin of `tests/it/sla.rs::untouched_item_gets_warning_and_breach_on_time`:
/// the warning at 3 s and the breach at 6 s of a 6-second clock, each at its instant, not
/// before; the test takes milliseconds.
#[tokio::test(start_paused = true)]
async fn an_untouched_clock_warns_then_breaches_at_its_instants_on_paused_time() {
    let real = std::time::Instant::now();
    let cfg = config(6);
    let (dir, store) = open();
    let clock = PausedClock::starting_at(T0.parse().unwrap());
    let r = start(cfg.clone(), dir, store, clock);
    let (item, timers) = record(&r.store, &cfg, r.clock.now());
    r.timers.send(timers).unwrap();

    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert!(alerts(&r.store).is_empty(), "nothing before 50 %");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = alerts(&r.store);
    let kinds: Vec<&str> = got.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["warning_50"]);
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert_eq!(
        alerts(&r.store).len(),
        1,
        "no breach before the due instant"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = alerts(&r.store);
    let kinds: Vec<&str> = got.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["warning_50", "breach"]);
    for a in &got {
        assert_eq!(a["item_id"], item.as_str());
        assert_eq!(a["late"], false);
        // Fired at its instant on the injected clock (paused time: exactly).
        let lateness = ts(&a["fired_at"]).duration_since(ts(&a["scheduled_at"]));
        assert!(lateness.as_millis() < 1000, "fired {lateness:?} late");
    }
    assert_eq!(got[1]["scheduled_at"], got[1]["due_at"]);
    assert_eq!(
        ts(&got[1]["due_at"]),
        T0.parse::<Timestamp>().unwrap() + jiff::SignedDuration::from_secs(6)
    );
    r.stop.cancel();
    r.task.await.unwrap().unwrap();
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "6 s of SLA time took {:?} of real time",
        real.elapsed()
    );
}

/// Paused-time twin of `tests/it/sla.rs::restart_catches_up_on_missed_alerts_marked_late`:
/// alerts that fell due while no engine ran fire at once when it starts, marked late, and the
/// breach once.
#[tokio::test(start_paused = true)]
async fn a_restart_catches_up_on_missed_alerts_marked_late_on_paused_time() {
    let cfg = config(4);
    let (dir, store) = open();
    let clock = PausedClock::starting_at(T0.parse().unwrap());
    let (item, _timers) = record(&store, &cfg, clock.now());
    // The daemon is down for 6 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = start(cfg, dir, store, clock);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = alerts(&r.store);
    let breaches: Vec<_> = got
        .iter()
        .filter(|a| a["kind"] == "breach" && a["item_id"] == item.as_str())
        .collect();
    assert_eq!(breaches.len(), 1, "{got:?}");
    assert_eq!(breaches[0]["late"], true, "{}", breaches[0]);
    r.stop.cancel();
    r.task.await.unwrap().unwrap();
}

/// Timers are due at wall-clock instants: a wall-clock step forward past a due instant (the
/// monotonic clock barely moving) fires the breach within [`MAX_SLEEP`], although the
/// engine was sleeping towards an instant an hour away.
#[tokio::test(start_paused = true)]
async fn a_wall_clock_step_forward_fires_the_skipped_breach_within_max_sleep() {
    let cfg = config(3600);
    let (dir, store) = open();
    let clock = PausedClock::starting_at(T0.parse().unwrap());
    let r = start(cfg.clone(), dir, store, clock);
    let (_item, timers) = record(&r.store, &cfg, r.clock.now());
    r.timers.send(timers).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(alerts(&r.store).is_empty());
    r.clock.step(jiff::SignedDuration::from_hours(2));
    let stepped = tokio::time::Instant::now();
    // The first alert after the step, looked for every 250 ms of (paused) time.
    while alerts(&r.store).is_empty() && stepped.elapsed() < 2 * MAX_SLEEP {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = stepped.elapsed();
    assert!(
        took <= MAX_SLEEP + Duration::from_millis(250),
        "the skipped breach fired {took:?} after the step (engine sleeps at most {MAX_SLEEP:?})"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = alerts(&r.store);
    let kinds: Vec<&str> = got.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["breach"], "the warning is superseded by the breach");
    r.stop.cancel();
    r.task.await.unwrap().unwrap();
}

/// A wall-clock step back holds a timer until the wall clock reaches its instant again:
/// nothing fires early on monotonic time.
#[tokio::test(start_paused = true)]
async fn a_wall_clock_step_back_fires_nothing_early() {
    let cfg = config(6);
    let (dir, store) = open();
    let clock = PausedClock::starting_at(T0.parse().unwrap());
    let r = start(cfg.clone(), dir, store, clock);
    let (_item, timers) = record(&r.store, &cfg, r.clock.now());
    r.timers.send(timers).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    r.clock.step(jiff::SignedDuration::from_secs(-10));
    // 4 s of monotonic time later the wall clock reads T0 - 5 s: before the warning (T0 + 3 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(alerts(&r.store).is_empty());
    // The warning when the wall clock reaches T0 + 3 s again: 13 s after the start.
    tokio::time::sleep(Duration::from_millis(8900)).await;
    assert!(alerts(&r.store).is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kinds: Vec<String> = alerts(&r.store)
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["warning_50"]);
    r.stop.cancel();
    r.task.await.unwrap().unwrap();
}

#[test]
fn a_wall_step_is_what_wall_time_moved_beyond_monotonic_time() {
    let t: Timestamp = T0.parse().unwrap();
    let s = jiff::SignedDuration::from_secs;
    let cases = [
        (s(60), Duration::from_secs(60), None),
        (s(61), Duration::from_secs(60), None),
        (s(3660), Duration::from_secs(60), Some(s(3600))),
        (s(-3540), Duration::from_secs(60), Some(s(-3600))),
        (s(0), Duration::from_secs(10), Some(s(-10))),
    ];
    for (wall, mono, want) in cases {
        assert_eq!(wall_step(t, t + wall, mono), want, "{wall:?} {mono:?}");
    }
}
