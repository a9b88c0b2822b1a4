//! Channel ownership through the group protocol, against the real test broker (tansu, started
//! by scripts/test.sh; `PETITIOND_TEST_KAFKA`). Under `CI=true` a missing broker fails.

use petitiond_kafka::KafkaConfig;
use petitiond_kafka::client::{BrokerHealth, KafkaContext};
use petitiond_kafka::lease::{LeaseChange, LeaseMember, LeaseSettings, ensure_control_topic};
use petitiond_metrics::Metrics;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

fn broker() -> Option<String> {
    match std::env::var("PETITIOND_TEST_KAFKA") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PETITIOND_TEST_KAFKA is not set: the test broker is missing")
        }
        _ => {
            eprintln!("skipped: PETITIOND_TEST_KAFKA not set (run scripts/test.sh)");
            None
        }
    }
}

fn kafka(brokers: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.into(),
        client_id: "petitiond-lease-test".into(),
        create_topics: true,
        partitions: 1,
        replication_factor: 1,
        delivery_timeout: None,
        request_timeout: Duration::from_secs(10),
        relay_batch: 100,
        retry_backoff: Duration::from_millis(200),
        recovery_scan_max_records: 1000,
        recovery_time_margin: Duration::from_secs(60),
        dead_letter_topic: "petition.dlq".into(),
        properties: Default::default(),
        secret_properties: Default::default(),
    }
}

fn settings(tag: &str, instance: &str, units: &[&str]) -> LeaseSettings {
    LeaseSettings {
        topic: format!("petitiond.control.{tag}"),
        group: format!("petitiond-owners-{tag}"),
        instance: instance.into(),
        units: units.iter().map(|u| u.to_string()).collect(),
        session_timeout: Duration::from_secs(6),
        revoke_deadline: Duration::from_secs(10),
    }
}

fn context() -> KafkaContext {
    KafkaContext {
        metrics: Metrics::new(),
        health: Arc::new(BrokerHealth::default()),
    }
}

fn tag() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// What one member owns, kept up to date from its changes; a revocation is acknowledged at once
/// (the test's "units" stop instantly) unless `hold` is set.
struct Owner {
    name: &'static str,
    rx: UnboundedReceiver<LeaseChange>,
    owned: BTreeSet<String>,
    /// Every change seen, in order (for assertions on ordering).
    log: Vec<String>,
}

impl Owner {
    fn new(name: &'static str, rx: UnboundedReceiver<LeaseChange>) -> Owner {
        Owner {
            name,
            rx,
            owned: BTreeSet::new(),
            log: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Ok(c) = self.rx.try_recv() {
            match c {
                LeaseChange::Acquired(units) => {
                    self.log.push(format!("acquired {units:?}"));
                    self.owned.extend(units);
                }
                LeaseChange::Revoking { units, stopped } => {
                    self.log.push(format!("revoking {units:?}"));
                    for u in &units {
                        self.owned.remove(u);
                    }
                    let _ = stopped.send(());
                }
            }
        }
    }
}

/// Drains every owner until `done` holds or the deadline passes; returns the time it took.
async fn until(
    owners: &mut [&mut Owner],
    deadline: Duration,
    done: impl Fn(&[&mut Owner]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        for o in owners.iter_mut() {
            o.drain();
        }
        if done(owners) {
            return start.elapsed();
        }
        if start.elapsed() > deadline {
            let state: Vec<String> = owners
                .iter()
                .map(|o| format!("{}: owns {:?}, saw {:?}", o.name, o.owned, o.log))
                .collect();
            panic!("ownership did not settle within {deadline:?}: {state:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const UNITS: [&str; 3] = ["hotline", "mailbox", "portal"];

fn all() -> BTreeSet<String> {
    UNITS.iter().map(|u| u.to_string()).collect()
}

async fn join(k: &KafkaConfig, s: &LeaseSettings, name: &'static str) -> (LeaseMember, Owner) {
    let (k2, s2) = (k.clone(), s.clone());
    tokio::task::spawn_blocking(move || ensure_control_topic(&k2, &s2))
        .await
        .unwrap()
        .expect("control topic");
    let (m, rx) = LeaseMember::join(k, s, context()).expect("join");
    (m, Owner::new(name, rx))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lone_member_owns_every_unit() {
    let Some(b) = broker() else { return };
    let k = kafka(&b);
    let t = tag();
    let (_m, mut a) = join(&k, &settings(&t, "a", &UNITS), "a").await;
    let took = until(&mut [&mut a], Duration::from_secs(30), |o| {
        o[0].owned == all()
    })
    .await;
    eprintln!("a lone member owned every unit after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_member_takes_units_only_after_the_first_stopped_them() {
    let Some(b) = broker() else { return };
    let k = kafka(&b);
    let t = tag();
    let (_ma, mut a) = join(&k, &settings(&t, "a", &UNITS), "a").await;
    until(&mut [&mut a], Duration::from_secs(30), |o| {
        o[0].owned == all()
    })
    .await;

    let (_mb, mut bb) = join(&k, &settings(&t, "b", &UNITS), "b").await;
    let took = until(&mut [&mut a, &mut bb], Duration::from_secs(60), |o| {
        !o[1].owned.is_empty()
            && o[0].owned.is_disjoint(&o[1].owned)
            && o[0]
                .owned
                .union(&o[1].owned)
                .cloned()
                .collect::<BTreeSet<_>>()
                == all()
    })
    .await;
    eprintln!(
        "shared after {took:?}: a owns {:?}, b owns {:?}",
        a.owned, bb.owned
    );
    // Every unit b acquired was revoked from a first.
    for u in &bb.owned {
        assert!(
            a.log
                .iter()
                .any(|l| l.starts_with("revoking") && l.contains(u.as_str())),
            "b acquired {u} that a never gave up: a saw {:?}",
            a.log
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_that_leaves_hands_every_unit_to_the_other() {
    let Some(b) = broker() else { return };
    let k = kafka(&b);
    let t = tag();
    let (ma, mut a) = join(&k, &settings(&t, "a", &UNITS), "a").await;
    until(&mut [&mut a], Duration::from_secs(30), |o| {
        o[0].owned == all()
    })
    .await;
    let (_mb, mut bb) = join(&k, &settings(&t, "b", &UNITS), "b").await;
    until(&mut [&mut a, &mut bb], Duration::from_secs(60), |o| {
        !o[1].owned.is_empty() && !o[0].owned.is_empty()
    })
    .await;

    // a leaves: its revocation is acknowledged by its owner (drained on another task).
    let leave = tokio::task::spawn_blocking(move || ma.leave());
    let took = until(&mut [&mut a, &mut bb], Duration::from_secs(30), |o| {
        o[1].owned == all() && o[0].owned.is_empty()
    })
    .await;
    leave.await.unwrap();
    eprintln!("b owned every unit {took:?} after a left");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_topic_with_the_wrong_partition_count_is_refused() {
    let Some(b) = broker() else { return };
    let k = kafka(&b);
    let t = tag();
    let s = settings(&t, "a", &UNITS);
    let (k2, s2) = (k.clone(), s.clone());
    tokio::task::spawn_blocking(move || ensure_control_topic(&k2, &s2))
        .await
        .unwrap()
        .unwrap();
    let mut more = s.clone();
    more.units.push("extra".into());
    let err = tokio::task::spawn_blocking(move || ensure_control_topic(&k, &more))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string().contains("has 3 partitions but 4 units"),
        "{err}"
    );
}
