//! Simulators of the two REST upstreams — the 12345 hotline ticket API (Open311 GeoReport v2,
//! [`hotline`]) and the web petition portal (paginated JSON, signed requests, [`portal`]) — for
//! integration tests, `petitiond demo` and benchmarks. Each is an axum server on the caller's
//! tokio runtime with a handle that adds and updates records and switches [`Faults`] at run time.
//!
//! The crate root holds the handle methods both share (`record_methods!`); its modules own the
//! rest they share: the fault schedule (`faults`), the in-memory record index (`records`) and
//! the lock around it with the request counter (`shared`), HTTP answers (`reply`), server
//! start/stop (`server`), query strings (`query`) and times (`time`), the `/files/{name}`
//! attachments (`media`, bytes from `files`), and the generator of realistic (fake) petitions
//! (`texts`, seeded by `rng`). It deliberately holds no texts: a record is a few
//! numbers and its id, and its petitioner and petition are regenerated from `(seed, seq)` each
//! time it is served, so 100,000 records cost a few megabytes and bulk creation is cheap.
//!
//! Shared rules:
//! - Times have one-second resolution (as on the wire); the local zone is Asia/Shanghai (+08:00).
//! - Query strings are decoded as `application/x-www-form-urlencoded` (what reqwest's `.query()`
//!   writes): `%XX` escapes, and `+` is a space — so a literal `+` (as in `+08:00`) must be sent
//!   as `%2B`. Unknown parameters are ignored; of a repeated parameter the first counts.
//! - `requests_served()` counts every HTTP request the server answered (API, files, 404s, faulted
//!   ones). The fault schedule counts only API requests (the list endpoints, and the hotline's
//!   `services.json` and `requests/{id}.json`), numbered from 1 since the last `set_faults`.
//!   `/files/...` are never faulted and need no auth.

/// The handle methods both simulators share (each handle has a `core: Arc<Core>` field).
macro_rules! record_methods {
    () => {
        /// Creates `n` records whose creation (and update) time is now; returns the ids that
        /// appear on the wire — valid records and bad records that keep their id (a record made
        /// bad without an id is created but not listed). All `n` share one second: for more
        /// than the hotline's cap, that is a window no split can shrink — use
        /// `add_records_between` to spread a large batch.
        pub fn add_records(&self, n: usize) -> Vec<String> {
            self.core
                .add(std::iter::repeat_n($crate::shared::now_secs(), n))
        }

        /// Creates one record created (and last updated) at `created`; returns its id (for a
        /// record made bad without an id, the internal id that never appears on the wire).
        pub fn add_record_at(&self, created: jiff::Timestamp) -> String {
            self.core.add_one(created.as_second())
        }

        /// Creates `n` records all created at the same second `t` (ties are ordered by id):
        /// more than the hotline's cap in one second is a window no split can shrink.
        pub fn add_records_at_same_time(&self, n: usize, t: jiff::Timestamp) -> Vec<String> {
            self.core.add(std::iter::repeat_n(t.as_second(), n))
        }

        /// Creates `n` records with creation times spread evenly over `from..=to`, in order.
        pub fn add_records_between(
            &self,
            n: usize,
            from: jiff::Timestamp,
            to: jiff::Timestamp,
        ) -> Vec<String> {
            self.core
                .add($crate::records::spread(n, from.as_second(), to.as_second()))
        }

        /// Moves the record one step along its status path (then keeps it final but changes
        /// its notes) and bumps its update time to now — or to one second past its previous
        /// update time if that is later, so every update is visible to `updated_after`.
        /// `false` if there is no such id.
        pub fn update_record(&self, id: &str) -> bool {
            self.core.update(id)
        }

        /// Creates one record created now whose petitioner left no way to be reached: phone
        /// and address are empty on the wire (name and ID number stay, the text names no
        /// phone), so petitiond flags it `needs_supplement`. Returns its id.
        pub fn add_incomplete_record(&self) -> String {
            self.core.add_incomplete($crate::shared::now_secs())
        }

        /// Creates one record created now whose petition is the given one rather than a
        /// generated one (see [`Script`](crate::Script)); no record-level fault applies.
        /// Returns its id.
        pub fn add_scripted_record(&self, script: $crate::Script) -> String {
            self.core.add_scripted($crate::shared::now_secs(), script)
        }

        /// The petitioner supplies the missing contact: phone and address appear, and the
        /// update time moves as with `update_record` (the status does not change). `false`
        /// if there is no such id.
        pub fn supplement_record(&self, id: &str) -> bool {
            self.core.supplement(id)
        }

        /// Updates `n` records picked at random from those with an id on the wire (the same
        /// record may be picked twice); returns the ids in the order they were updated.
        pub fn update_random(&self, n: usize) -> Vec<String> {
            self.core.update_random(n)
        }

        /// Replaces the faults in force and restarts their request count (see
        /// [`Faults`](crate::Faults)).
        pub fn set_faults(&self, f: $crate::Faults) {
            self.core.set_faults(f)
        }

        /// Every HTTP request answered so far, faulted ones and file downloads included.
        pub fn requests_served(&self) -> u64 {
            self.core.requests_served()
        }

        /// The id of every valid (not deliberately bad) record ever created, in creation order.
        pub fn record_ids(&self) -> Vec<String> {
            self.core.lock().store.valid_ids()
        }

        /// The ids of the records made bad that still carry an id on the wire
        /// ([`BadKind::BadDate`](crate::BadKind::BadDate) and
        /// [`BadKind::Oversize`](crate::BadKind::Oversize)), in creation order.
        pub fn bad_record_ids(&self) -> Vec<String> {
            self.core.lock().store.bad_ids()
        }

        /// All records, bad ones included.
        pub fn record_count(&self) -> usize {
            self.core.lock().store.len()
        }
    };
}

pub mod hotline;
pub mod portal;

mod faults;
mod files;
mod media;
mod query;
mod records;
mod reply;
mod rng;
mod server;
mod shared;
#[cfg(test)]
mod testing;
mod texts;
mod time;

pub use faults::Faults;
pub use hotline::{HotlineSim, HotlineSimConfig};
pub use portal::{Pagination, PortalSim, PortalSimConfig, SigningSecret};
pub use query::percent_encode;
pub use records::{BadKind, OVERSIZE_BYTES, Script};
pub use texts::id_check_digit;
