//! The part of a sim both kinds share: the request counter, the records and the faults behind
//! one lock ([`Core`]), which the `record_methods!` handle methods drive.

use crate::faults::{FaultClock, Faults, Plan};
use crate::records::{BadKind, RecordStore, Script};
use crate::rng::Rng;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use jiff::Timestamp;
use jiff::civil::DateTime;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) struct Core {
    /// Every request answered, for `requests_served`.
    pub served: AtomicU64,
    /// One lock for records, faults and the update picker: requests hold it only to pick
    /// records (never while writing JSON or sleeping).
    pub state: Mutex<CoreState>,
}

pub(crate) struct CoreState {
    pub store: RecordStore,
    pub faults: FaultClock,
    /// Picks the records `update_random` touches.
    picker: Rng,
}

impl CoreState {
    /// The `slow_ms` of the faults in force.
    pub(crate) fn faults_slow_ms(&self) -> u64 {
        self.faults.faults().slow_ms
    }
}

pub(crate) fn now_secs() -> i64 {
    Timestamp::now().as_second()
}

impl Core {
    pub(crate) fn new(seed: u64, make_id: fn(DateTime, u64) -> String) -> Core {
        Core {
            served: AtomicU64::new(0),
            state: Mutex::new(CoreState {
                store: RecordStore::new(make_id),
                faults: FaultClock::default(),
                picker: Rng::new(seed ^ 0x0DD_BA11),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, CoreState> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn plan(&self) -> Plan {
        self.lock().faults.next()
    }

    /// Creates one record per creation time; returns the ids that appear on the wire.
    pub(crate) fn add(&self, times: impl IntoIterator<Item = i64>) -> Vec<String> {
        let mut st = self.lock();
        let faults = st.faults.faults().clone();
        let mut ids = Vec::new();
        for t in times {
            let rec = st.store.add_with(t, &faults);
            if rec.bad.is_none_or(BadKind::has_id) {
                ids.push(rec.id.to_string());
            }
        }
        ids
    }

    pub(crate) fn add_one(&self, t: i64) -> String {
        let mut st = self.lock();
        let faults = st.faults.faults().clone();
        st.store.add_with(t, &faults).id.to_string()
    }

    pub(crate) fn update(&self, id: &str) -> bool {
        self.lock().store.update(id, now_secs())
    }

    /// One good record (no record-level fault) with its contact withheld.
    pub(crate) fn add_incomplete(&self, t: i64) -> String {
        let mut st = self.lock();
        st.store.add_good(t, true, None).id.to_string()
    }

    /// One good record (no record-level fault) carrying `script`.
    pub(crate) fn add_scripted(&self, t: i64, script: Script) -> String {
        let mut st = self.lock();
        let withhold = script.withhold_contact;
        st.store.add_good(t, withhold, Some(script)).id.to_string()
    }

    pub(crate) fn supplement(&self, id: &str) -> bool {
        self.lock().store.supplement(id, now_secs())
    }

    /// Updates `n` records picked at random (with repeats possible), skipping records that have
    /// no id on the wire; returns the ids updated, in order.
    pub(crate) fn update_random(&self, n: usize) -> Vec<String> {
        let mut st = self.lock();
        let now = now_secs();
        let len = st.store.len() as u64;
        let mut out = Vec::with_capacity(n);
        if len == 0 {
            return out;
        }
        let mut tries = 0;
        while out.len() < n && tries < n * 20 + 100 {
            tries += 1;
            let idx = st.picker.below(len) as u32;
            let rec = st.store.at(idx);
            if rec.bad.is_none_or(BadKind::has_id) {
                let id = rec.id.clone();
                st.store.update(&id, now);
                out.push(id.to_string());
            }
        }
        out
    }

    pub(crate) fn set_faults(&self, f: Faults) {
        self.lock().faults.set(f);
    }

    pub(crate) fn requests_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// Middleware: counts every request.
pub(crate) async fn count_requests(
    State(core): State<Arc<Core>>,
    req: Request,
    next: Next,
) -> Response {
    core.served.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
}
