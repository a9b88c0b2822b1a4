//! Several instances (ARCHITECTURE.md, "Several instances"): the *units* this instance runs —
//! each channel source, and the tasks that must run once per installation (the outbox relay,
//! the SLA engine, the report scheduler) — started and stopped as the Kafka group assigns and
//! revokes them ([`petitiond_kafka::lease`]). Each start takes the unit's lease in the store
//! first: its epoch fences the unit's cursor writes and the relay's batches, so an instance
//! that lost a unit while frozen writes nothing for it when it runs again.
//!
//! Without `[cluster]` nothing here runs and every unit starts at once, as before.

use crate::metrics::{Metrics, UnitChange, UnitLabel};
use crate::store::{Lease, Store, blocking};
use futures::future::BoxFuture;
use petitiond_core::diag::Validator;
use petitiond_kafka::lease::LeaseChange;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The singleton tasks' unit names (channel units are named after their source).
pub const RELAY_UNIT: &str = "task:relay";
pub const MAILER_UNIT: &str = "task:mailer";
pub const REPORTS_UNIT: &str = "task:reports";

/// `[cluster]` as written: several instances share the upstreams through one Kafka group and
/// one PostgreSQL store. Absent or `enabled = false`: a single instance, every unit runs.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCluster {
    pub enabled: bool,
    /// This instance's name in logs, `/readyz`, the board and the store's leases (default:
    /// the host name).
    pub instance: Option<String>,
    /// The consumer group of one installation's instances.
    pub group: String,
    /// The control topic: one partition per unit.
    pub control_topic: String,
    /// How long a silent instance keeps its units before the others take them over.
    pub session_timeout_ms: u64,
    /// How long a revoked unit may take to stop (then the fence covers it).
    pub revoke_deadline_ms: u64,
}

impl Default for RawCluster {
    fn default() -> Self {
        RawCluster {
            enabled: false,
            instance: None,
            group: "petitiond-owners".into(),
            control_topic: "petitiond.control".into(),
            session_timeout_ms: 10_000,
            revoke_deadline_ms: 10_000,
        }
    }
}

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub instance: String,
    pub group: String,
    pub control_topic: String,
    pub session_timeout: Duration,
    pub revoke_deadline: Duration,
}

/// Checks `[cluster]`; `None` when it is off (or invalid: the errors are in `v`).
pub fn check(v: &mut Validator<'_>, raw: &RawCluster) -> Option<ClusterConfig> {
    if !raw.enabled {
        return None;
    }
    let instance = match &raw.instance {
        Some(i) => i.clone(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
    };
    if instance.is_empty() || instance.len() > 128 || instance.chars().any(|c| c.is_control()) {
        v.err(
            "cluster.instance",
            "must be 1 to 128 printable characters (the host name is used when it is not set)",
        );
    }
    if raw.group.trim().is_empty() {
        v.err("cluster.group", "must not be empty");
    }
    v.topic_name("cluster.control_topic", &raw.control_topic);
    // librdkafka's and Kafka's bounds for a group session (brokers default to 6 s .. 30 min).
    if !(1_000..=1_800_000).contains(&raw.session_timeout_ms) {
        v.err(
            "cluster.session_timeout_ms",
            "must be between 1000 and 1800000 (the broker's group.min/max.session.timeout.ms bound it further)",
        );
    }
    v.positive("cluster.revoke_deadline_ms", raw.revoke_deadline_ms);
    Some(ClusterConfig {
        instance,
        group: raw.group.clone(),
        control_topic: raw.control_topic.clone(),
        session_timeout: Duration::from_millis(raw.session_timeout_ms),
        revoke_deadline: Duration::from_millis(raw.revoke_deadline_ms),
    })
}

/// What a unit runs, started each time the unit is acquired: its lease (for fenced writes)
/// and the token that stops it.
pub type UnitStart = Box<
    dyn Fn(Option<Lease>, CancellationToken) -> BoxFuture<'static, anyhow::Result<()>>
        + Send
        + Sync,
>;

/// The units of this configuration, by name. Every instance of one installation has the same
/// units (they come from the same config); their sorted names are the control topic's
/// partitions.
#[derive(Default)]
pub struct Units {
    starts: BTreeMap<String, UnitStart>,
}

impl Units {
    pub fn add(&mut self, unit: &str, start: UnitStart) {
        self.starts.insert(unit.to_string(), start);
    }

    /// The unit names in partition order.
    pub fn names(&self) -> Vec<String> {
        self.starts.keys().cloned().collect()
    }

    /// Starts every unit without a lease (a single instance).
    pub fn start_all(
        &self,
        stop: &CancellationToken,
    ) -> Vec<(String, BoxFuture<'static, anyhow::Result<()>>)> {
        self.starts
            .iter()
            .map(|(name, start)| (name.clone(), start(None, stop.clone())))
            .collect()
    }
}

/// Which units this instance owns now, with their lease epoch: for `/readyz` and the board.
#[derive(Clone, Default)]
pub struct Ownership {
    inner: Arc<Mutex<OwnershipState>>,
}

#[derive(Default)]
struct OwnershipState {
    instance: String,
    owned: BTreeMap<String, OwnedUnit>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OwnedUnit {
    pub unit: String,
    pub epoch: i64,
    /// When this instance took it (RFC 3339).
    pub since: String,
}

impl Ownership {
    pub fn new(instance: &str) -> Ownership {
        let o = Ownership::default();
        o.lock().instance = instance.to_string();
        o
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OwnershipState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn instance(&self) -> String {
        self.lock().instance.clone()
    }

    /// The units owned now, by name.
    pub fn owned(&self) -> Vec<OwnedUnit> {
        self.lock().owned.values().cloned().collect()
    }

    fn set(&self, lease: &Lease) {
        self.lock().owned.insert(
            lease.unit.clone(),
            OwnedUnit {
                unit: lease.unit.clone(),
                epoch: lease.epoch,
                since: jiff::Timestamp::now().to_string(),
            },
        );
    }

    fn clear(&self, unit: &str) {
        self.lock().owned.remove(unit);
    }
}

/// Whether an error is the store's fence (the unit was taken over by a newer owner).
pub fn is_fenced(e: &anyhow::Error) -> bool {
    Lease::fenced_in(e.as_ref())
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Runs the units this instance is assigned until `shutdown`: takes each acquired unit's lease
/// in the store and starts it; stops each revoked unit and acknowledges the revocation once it
/// has stopped. A unit that ends fenced is dropped (the group revokes it next); any other unit
/// failure is the daemon's (it stops, leaves the group, and the others take over).
pub struct Supervisor {
    pub units: Units,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub ownership: Ownership,
    /// How long a revoked unit may take to stop before the revocation is acknowledged anyway
    /// (the fence covers what it still does).
    pub revoke_deadline: Duration,
}

impl Supervisor {
    pub async fn run(
        self,
        mut changes: UnboundedReceiver<LeaseChange>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let instance = self.ownership.instance();
        let mut running: BTreeMap<String, Running> = BTreeMap::new();
        let mut check = tokio::time::interval(Duration::from_millis(200));
        let result = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                change = changes.recv() => match change {
                    None => break Err(anyhow::anyhow!("the ownership group member stopped")),
                    Some(LeaseChange::Acquired(units)) => {
                        for unit in units {
                            if let Err(e) = self.start(&unit, &instance, &mut running).await {
                                break_stop(&mut running, &self).await;
                                return Err(e);
                            }
                        }
                    }
                    Some(LeaseChange::Revoking { units, stopped }) => {
                        // Every revoked unit stops and the revocation is acknowledged even
                        // when one of them failed; then the failure stops the rest.
                        let mut failed = None;
                        for unit in &units {
                            if let Some(r) = running.remove(unit)
                                && let Err(e) = self.stop(unit, r, "revoked").await
                            {
                                failed.get_or_insert(e);
                            }
                        }
                        let _ = stopped.send(());
                        if let Some(e) = failed {
                            break Err(e);
                        }
                    }
                },
                _ = check.tick() => {
                    if let Some(e) = self.reap(&mut running).await {
                        break Err(e);
                    }
                }
            }
        };
        break_stop(&mut running, &self).await;
        result
    }

    /// Takes the unit's lease and starts it.
    async fn start(
        &self,
        unit: &str,
        instance: &str,
        running: &mut BTreeMap<String, Running>,
    ) -> anyhow::Result<()> {
        let Some(start) = self.units.starts.get(unit) else {
            tracing::warn!(
                unit,
                "assigned a unit this configuration does not have; ignored"
            );
            return Ok(());
        };
        if running.contains_key(unit) {
            return Ok(());
        }
        let (u, i) = (unit.to_string(), instance.to_string());
        let lease = blocking(&self.store, move |s| s.acquire_lease(&u, &i)).await?;
        tracing::info!(unit, epoch = lease.epoch, "unit started under its lease");
        self.ownership.set(&lease);
        self.metrics
            .unit_owned
            .get_or_create(&unit_label(unit))
            .set(1);
        self.count(unit, "acquired");
        let stop = CancellationToken::new();
        let task = tokio::spawn(start(Some(lease), stop.clone()));
        running.insert(unit.to_string(), Running { stop, task });
        Ok(())
    }

    /// Stops a unit and waits for it (at most the revoke deadline). A unit failure other than
    /// the fence is returned.
    async fn stop(&self, unit: &str, r: Running, change: &str) -> anyhow::Result<()> {
        r.stop.cancel();
        let outcome = tokio::time::timeout(self.revoke_deadline, r.task).await;
        self.ownership.clear(unit);
        self.metrics
            .unit_owned
            .get_or_create(&unit_label(unit))
            .set(0);
        self.count(unit, change);
        match outcome {
            Err(_) => {
                tracing::error!(
                    unit,
                    "unit did not stop within the revoke deadline; the fence covers it"
                );
                Ok(())
            }
            Ok(Ok(Ok(()))) => {
                tracing::info!(unit, change, "unit stopped");
                Ok(())
            }
            Ok(Ok(Err(e))) if is_fenced(&e) => {
                tracing::warn!(unit, "unit stopped: fenced by a newer owner");
                Ok(())
            }
            Ok(Ok(Err(e))) => Err(e.context(format!("unit `{unit}` failed"))),
            Ok(Err(join)) => Err(anyhow::anyhow!(
                "unit `{unit}` panicked: {}",
                crate::panics::join_error(&join)
            )),
        }
    }

    /// Units that ended on their own: a fenced one is dropped (counted), any other end is the
    /// daemon's failure.
    async fn reap(&self, running: &mut BTreeMap<String, Running>) -> Option<anyhow::Error> {
        let ended: Vec<String> = running
            .iter()
            .filter(|(_, r)| r.task.is_finished())
            .map(|(u, _)| u.clone())
            .collect();
        for unit in ended {
            let r = running.remove(&unit)?;
            let fenced = match r.task.await {
                Ok(Err(e)) if is_fenced(&e) => true,
                Ok(Err(e)) => return Some(e.context(format!("unit `{unit}` failed"))),
                Ok(Ok(())) => return Some(anyhow::anyhow!("unit `{unit}` ended on its own")),
                Err(join) => {
                    return Some(anyhow::anyhow!(
                        "unit `{unit}` panicked: {}",
                        crate::panics::join_error(&join)
                    ));
                }
            };
            if fenced {
                tracing::warn!(unit, "unit fenced by a newer owner; stopped here");
                self.ownership.clear(&unit);
                self.metrics
                    .unit_owned
                    .get_or_create(&unit_label(&unit))
                    .set(0);
                self.count(&unit, "fenced");
            }
        }
        None
    }

    fn count(&self, unit: &str, change: &str) {
        self.metrics
            .unit_ownership_changes
            .get_or_create(&UnitChange {
                unit: unit.to_string(),
                change: change.to_string(),
            })
            .inc();
    }
}

/// Stops every running unit (shutdown or failure), ignoring their results.
async fn break_stop(running: &mut BTreeMap<String, Running>, s: &Supervisor) {
    for (unit, r) in std::mem::take(running) {
        if let Err(e) = s.stop(&unit, r, "revoked").await {
            tracing::error!(unit, error = format!("{e:#}"), "unit failed while stopping");
        }
    }
}

fn unit_label(unit: &str) -> UnitLabel {
    UnitLabel {
        unit: unit.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::mpsc::unbounded_channel;

    /// What the test units did: "start NAME EPOCH" and "stop NAME", in order.
    type Log = Arc<Mutex<Vec<String>>>;

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("t.db"), Duration::from_secs(1)).unwrap();
        (d, Arc::new(s))
    }

    /// A unit that logs its start and, once stopped, its stop; `fail` makes it end by itself
    /// with that error instead.
    fn unit(name: &'static str, log: &Log, fail: Option<fn(&Lease) -> anyhow::Error>) -> UnitStart {
        let log = log.clone();
        Box::new(move |lease, stop| {
            let log = log.clone();
            Box::pin(async move {
                let lease = lease.expect("a unit under the cluster runs under a lease");
                log.lock()
                    .unwrap()
                    .push(format!("start {name} {}", lease.epoch));
                if let Some(f) = fail {
                    return Err(f(&lease));
                }
                stop.cancelled().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                log.lock().unwrap().push(format!("stop {name}"));
                Ok(())
            })
        })
    }

    fn supervisor(store: Arc<dyn Store>, units: Units) -> (Supervisor, Ownership, Metrics) {
        let ownership = Ownership::new("a");
        let metrics = Metrics::new();
        let s = Supervisor {
            units,
            store,
            metrics: metrics.clone(),
            ownership: ownership.clone(),
            revoke_deadline: Duration::from_secs(5),
        };
        (s, ownership, metrics)
    }

    async fn eventually(what: &str, f: impl Fn() -> bool) {
        for _ in 0..200 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never happened: {what}");
    }

    /// An acquired unit starts under a fresh lease from the store; a revoked one has stopped
    /// before the revocation is acknowledged (so the next owner never overlaps it), and the
    /// unit acquired again gets the next epoch.
    #[tokio::test]
    async fn revoked_units_stop_before_the_revocation_is_acknowledged() {
        let (_d, store) = store();
        let log: Log = Default::default();
        let mut units = Units::default();
        units.add("hotline", unit("hotline", &log, None));
        units.add("portal", unit("portal", &log, None));
        let (sup, ownership, metrics) = supervisor(store.clone(), units);
        let (tx, rx) = unbounded_channel();
        let stop = CancellationToken::new();
        let run = tokio::spawn(sup.run(rx, stop.clone()));

        tx.send(LeaseChange::Acquired(vec![
            "hotline".into(),
            "portal".into(),
        ]))
        .unwrap();
        eventually("both started", || log.lock().unwrap().len() == 2).await;
        assert_eq!(ownership.owned().len(), 2);

        let (ack, acked) = std::sync::mpsc::sync_channel(1);
        tx.send(LeaseChange::Revoking {
            units: vec!["hotline".into()],
            stopped: ack,
        })
        .unwrap();
        let acked = tokio::task::spawn_blocking(move || acked.recv_timeout(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(acked.is_ok(), "the revocation was never acknowledged");
        assert!(
            log.lock().unwrap().contains(&"stop hotline".to_string()),
            "acknowledged before the unit stopped: {:?}",
            log.lock().unwrap()
        );
        let owned: Vec<String> = ownership.owned().into_iter().map(|u| u.unit).collect();
        assert_eq!(owned, ["portal"]);

        tx.send(LeaseChange::Acquired(vec!["hotline".into()]))
            .unwrap();
        eventually("hotline again", || {
            log.lock().unwrap().contains(&"start hotline 2".to_string())
        })
        .await;
        assert!(
            !store
                .lease_holds(&Lease {
                    unit: "hotline".into(),
                    epoch: 1
                })
                .unwrap()
        );
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"petitiond_unit_ownership_changes_total{unit="hotline",change="revoked"} 1"#
            ),
            "{text}"
        );

        stop.cancel();
        run.await.unwrap().unwrap();
        assert!(log.lock().unwrap().contains(&"stop portal".to_string()));
        assert!(ownership.owned().is_empty());
    }

    /// A unit that finds itself fenced (a newer owner took it) stops alone: the supervisor and
    /// the other units go on, and the change is counted.
    #[tokio::test]
    async fn a_fenced_unit_stops_alone() {
        let (_d, store) = store();
        let log: Log = Default::default();
        let mut units = Units::default();
        units.add(
            "hotline",
            unit(
                "hotline",
                &log,
                Some(|l| {
                    anyhow::Error::new(crate::store::StoreError::Fenced {
                        unit: l.unit.clone(),
                        epoch: l.epoch,
                    })
                    .context("moving the cursor")
                }),
            ),
        );
        units.add("portal", unit("portal", &log, None));
        let (sup, ownership, metrics) = supervisor(store, units);
        let (tx, rx) = unbounded_channel();
        let stop = CancellationToken::new();
        let run = tokio::spawn(sup.run(rx, stop.clone()));
        tx.send(LeaseChange::Acquired(vec![
            "hotline".into(),
            "portal".into(),
        ]))
        .unwrap();
        eventually("hotline dropped", || {
            ownership
                .owned()
                .iter()
                .map(|u| u.unit.as_str())
                .collect::<Vec<_>>()
                == ["portal"]
        })
        .await;
        assert!(!run.is_finished());
        assert!(metrics.encode().contains(
            r#"petitiond_unit_ownership_changes_total{unit="hotline",change="fenced"} 1"#
        ));
        stop.cancel();
        run.await.unwrap().unwrap();
    }

    /// Any other unit failure is the daemon's: the supervisor stops every unit and returns it.
    /// A unit that fails while it is revoked: the revocation is still acknowledged (the
    /// group is not held up), the other revoked unit stops, and the supervisor then ends with
    /// the failure after stopping the rest.
    #[tokio::test]
    async fn a_unit_failing_as_it_is_revoked_still_lets_the_revocation_complete() {
        let (_d, store) = store();
        let log: Log = Default::default();
        let mut units = Units::default();
        let l = log.clone();
        units.add(
            "hotline",
            Box::new(move |_lease, stop| {
                let l = l.clone();
                Box::pin(async move {
                    l.lock().unwrap().push("start hotline".into());
                    stop.cancelled().await;
                    Err(anyhow::anyhow!("flush failed"))
                })
            }),
        );
        units.add("portal", unit("portal", &log, None));
        units.add("mailbox", unit("mailbox", &log, None));
        let (sup, ownership, _metrics) = supervisor(store, units);
        let (tx, rx) = unbounded_channel();
        let run = tokio::spawn(sup.run(rx, CancellationToken::new()));
        tx.send(LeaseChange::Acquired(vec![
            "hotline".into(),
            "portal".into(),
            "mailbox".into(),
        ]))
        .unwrap();
        eventually("all started", || log.lock().unwrap().len() == 3).await;
        let (ack, acked) = std::sync::mpsc::sync_channel(1);
        tx.send(LeaseChange::Revoking {
            units: vec!["hotline".into(), "portal".into()],
            stopped: ack,
        })
        .unwrap();
        let acked = tokio::task::spawn_blocking(move || acked.recv_timeout(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(acked.is_ok(), "a failing unit held the revocation up");
        let err = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the supervisor did not stop")
            .unwrap()
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("unit `hotline` failed"),
            "{err:#}"
        );
        let log = log.lock().unwrap();
        assert!(log.contains(&"stop portal".to_string()), "{log:?}");
        assert!(log.contains(&"stop mailbox".to_string()), "{log:?}");
        assert!(ownership.owned().is_empty());
    }

    #[tokio::test]
    async fn a_failed_unit_stops_the_supervisor_with_its_error() {
        let (_d, store) = store();
        let log: Log = Default::default();
        let mut units = Units::default();
        units.add(
            "hotline",
            unit(
                "hotline",
                &log,
                Some(|_| anyhow::anyhow!("upstream certificate expired")),
            ),
        );
        units.add("portal", unit("portal", &log, None));
        let (sup, _ownership, _metrics) = supervisor(store, units);
        let (tx, rx) = unbounded_channel();
        let run = tokio::spawn(sup.run(rx, CancellationToken::new()));
        tx.send(LeaseChange::Acquired(vec![
            "hotline".into(),
            "portal".into(),
        ]))
        .unwrap();
        let err = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the supervisor did not stop")
            .unwrap()
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("unit `hotline` failed"),
            "{err:#}"
        );
        assert!(log.lock().unwrap().contains(&"stop portal".to_string()));
    }

    /// Starting a unit twice (a repeated assignment) runs it once.
    #[tokio::test]
    async fn a_repeated_assignment_starts_a_unit_once() {
        let (_d, store) = store();
        let starts = Arc::new(AtomicUsize::new(0));
        let mut units = Units::default();
        let s2 = starts.clone();
        units.add(
            "hotline",
            Box::new(move |_lease, stop| {
                s2.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    stop.cancelled().await;
                    Ok(())
                })
            }),
        );
        let (sup, _o, _m) = supervisor(store, units);
        let (tx, rx) = unbounded_channel();
        let stop = CancellationToken::new();
        let run = tokio::spawn(sup.run(rx, stop.clone()));
        tx.send(LeaseChange::Acquired(vec!["hotline".into()]))
            .unwrap();
        tx.send(LeaseChange::Acquired(vec!["hotline".into()]))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        stop.cancel();
        run.await.unwrap().unwrap();
    }
}
