//! PostgreSQL implementation of [`Store`]: the shared store for several instances (issue 19).
//!
//! Owns the connection pool, the schema (`migrations.rs`, versioned in `schema_version`) and
//! the transaction helper that retries serialization failures and deadlocks. Each concern's
//! queries live in their own module, ported from `sqlite/` with the same semantics: `INSERT
//! ... ON CONFLICT DO NOTHING` where SQLite has `INSERT OR IGNORE`, row locks (`FOR UPDATE`)
//! where SQLite relies on its single writer. Calls block (the synchronous `postgres` client
//! runs its own small runtime): async callers go through [`crate::blocking`], like SQLite's.
//! It does not know TLS yet: the URL must reach the server on a trusted network or socket.

use super::*;
use ::postgres::{Client, NoTls, Transaction};
use jiff::Timestamp;
use petitiond_core::sla::clock::Clock;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod board;
mod clocks;
mod items;
mod leases;
mod ledger;
mod mail;
mod migrations;
mod outbox;
mod quarantine;
mod report;
pub(crate) mod rows;
mod status;
mod writeback;

pub use blobs::PgBlobStore;
mod blobs;
#[cfg(test)]
mod tests;

/// Most attempts of a transaction that failed on a serialization failure or a deadlock.
const TX_ATTEMPTS: u32 = 5;

/// An idle client older than this is checked before use.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);

pub struct PgStore {
    pool: Pool,
}

/// A small pool: idle clients in a vector, at most `max` open, a caller waits for a free one
/// at most `wait`. A client that the server closed (restart, network) is dropped on return
/// and replaced by a new connection when next needed; one idle for longer than
/// [`CHECK_IDLE_AFTER`] is checked with a round trip before it is handed out (a server
/// restarted while the pool was idle closed them all).
struct Pool {
    config: ::postgres::Config,
    max: usize,
    wait: Duration,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    /// Idle clients, each with when it was returned.
    idle: Vec<(Client, Instant)>,
    open: usize,
}

/// A pooled client; goes back to the pool when dropped.
pub(crate) struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a pooled client until dropped")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a pooled client until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let mut st = self.pool.lock();
        let closed = match self.client.take() {
            Some(c) if !c.is_closed() => {
                st.idle.push((c, Instant::now()));
                None
            }
            c => {
                st.open -= 1;
                c
            }
        };
        drop(st);
        self.pool.freed.notify_one();
        discard(closed.into_iter().collect());
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        discard(st.idle.drain(..).map(|(c, _)| c).collect());
    }
}

/// Drops clients where that is allowed: each runs its own small runtime and closing it blocks
/// on that runtime, which panics on a thread that runs async tasks (the daemon drops its
/// last store handle there when it stops). There they are closed on a thread of their own.
fn discard(clients: Vec<Client>) {
    if clients.is_empty() {
        return;
    }
    if tokio::runtime::Handle::try_current().is_err() {
        drop(clients);
    } else if let Err(e) = std::thread::spawn(move || drop(clients)).join() {
        tracing::debug!(panic = ?e.type_id(), "closing PostgreSQL connections failed");
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The state is two plain fields updated together: usable after a panic elsewhere.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self) -> Result<Conn<'_>, StoreError> {
        let deadline = Instant::now() + self.wait;
        let mut st = self.lock();
        loop {
            if let Some((mut c, since)) = st.idle.pop() {
                if !c.is_closed() && since.elapsed() > CHECK_IDLE_AFTER {
                    // The check is a round trip: not under the lock.
                    drop(st);
                    let ok = c.is_valid(self.wait).is_ok();
                    st = self.lock();
                    if !ok {
                        st.open -= 1;
                        continue;
                    }
                } else if c.is_closed() {
                    st.open -= 1;
                    continue;
                }
                return Ok(Conn {
                    pool: self,
                    client: Some(c),
                });
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match self.config.connect(NoTls) {
                    Ok(c) => Ok(Conn {
                        pool: self,
                        client: Some(c),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e.into())
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Unavailable(format!(
                    "no PostgreSQL connection free within {:?} (pool of {})",
                    self.wait, self.max
                )));
            }
            st = self
                .freed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db` or key=value form),
    /// with at most `pool_size` connections, each connect and each wait for a free connection
    /// bounded by `timeout`; brings the schema to the newest version.
    pub fn connect(url: &str, pool_size: usize, timeout: Duration) -> Result<Self, StoreError> {
        let config: ::postgres::Config = url.parse()?;
        Self::connect_config(config, pool_size, timeout)
    }

    /// Whether `url` is a connection URL [`PgStore::connect`] takes (config validation; the
    /// message names the fault, never the URL's text).
    pub fn check_url(url: &str) -> Result<(), String> {
        url.parse::<::postgres::Config>()
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// [`PgStore::connect`] with a parsed configuration (tests set `options` to work in their
    /// own schema). Callable from async code too (the daemon opens its store while building):
    /// there the connection is made on a thread of its own, since the client's runtime cannot
    /// start on a thread that runs async tasks.
    pub fn connect_config(
        config: ::postgres::Config,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Self::connect_here(config, pool_size, timeout);
        }
        std::thread::scope(|s| {
            s.spawn(move || Self::connect_here(config, pool_size, timeout))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    fn connect_here(
        mut config: ::postgres::Config,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        config.connect_timeout(timeout);
        if config.get_application_name().is_none() {
            config.application_name("petitiond");
        }
        let store = PgStore {
            pool: Pool {
                config,
                max: pool_size.max(1),
                wait: timeout,
                state: Mutex::new(PoolState {
                    idle: Vec::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
            },
        };
        migrations::migrate(&mut *store.conn()?)?;
        Ok(store)
    }

    /// The connection settings (tests open a second store on the same schema).
    #[cfg(test)]
    pub(crate) fn config(&self) -> &::postgres::Config {
        &self.pool.config
    }

    /// A client from the pool.
    pub(crate) fn conn(&self) -> Result<Conn<'_>, StoreError> {
        self.pool.get()
    }

    /// Runs `f` in a transaction and commits it; a serialization failure or a deadlock rolls
    /// back and runs `f` again (at most [`TX_ATTEMPTS`] times), so `f` must be repeatable. A
    /// connection found closed before the commit is replaced and `f` run again on the new one
    /// (nothing was committed); a commit whose answer was lost is not retried (it may have
    /// committed): its error goes to the caller.
    pub(crate) fn tx<T>(
        &self,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        let mut attempt = 1;
        loop {
            let result: StoreError = match conn.transaction() {
                Err(e) => e.into(),
                Ok(mut tx) => match f(&mut tx) {
                    Ok(v) => return tx.commit().map(|()| v).map_err(StoreError::from),
                    // Dropping `tx` rolls back.
                    Err(e) => e,
                },
            };
            if attempt >= TX_ATTEMPTS {
                return Err(result);
            }
            if closed(&result) || conn.is_closed() {
                tracing::debug!(attempt, "PostgreSQL connection closed; transaction retried");
                drop(conn);
                conn = self.conn()?;
            } else if retryable(&result) {
                tracing::debug!(attempt, error = %result, "PostgreSQL transaction retried");
            } else {
                return Err(result);
            }
            attempt += 1;
        }
    }
}

/// The connection is gone (server restart, network: closed, reset, broken pipe): a new one
/// may work.
fn closed(e: &StoreError) -> bool {
    use std::error::Error as _;
    matches!(e, StoreError::Postgres(e)
        if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()))
}

/// A failure that running the transaction again may cure.
fn retryable(e: &StoreError) -> bool {
    use ::postgres::error::SqlState;
    match e {
        StoreError::Postgres(e) => matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        ),
        _ => false,
    }
}

impl Store for PgStore {
    fn record_item(&self, item: &NewItem) -> Result<Recorded, StoreError> {
        items::record_item(self, item)
    }

    fn record_items(
        &self,
        items: &[NewItem],
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        items::record_items(self, items)
    }

    fn related_items(
        &self,
        person_keys: &[String],
        matter: &str,
        since: Timestamp,
        except: &str,
    ) -> Result<Vec<String>, StoreError> {
        items::related_items(self, person_keys, matter, since, except)
    }

    fn item_state(&self, id: &str) -> Result<Option<(Envelope, Option<String>)>, StoreError> {
        items::item_state(self, id)
    }

    fn item_version(&self, id: &str) -> Result<Option<String>, StoreError> {
        items::item_version(self, id)
    }

    fn item_versions(&self, ids: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        items::item_versions(self, ids)
    }

    fn record_update(&self, u: &ItemUpdate) -> Result<bool, StoreError> {
        items::record_update(self, u)
    }

    fn record_supplement(
        &self,
        u: &ItemUpdate,
        s: &Supplement,
        f: &mut dyn FnMut(&[Clock]) -> Vec<NewOutbox>,
    ) -> Result<Option<Vec<Timer>>, StoreError> {
        items::record_supplement(self, u, s, f)
    }

    fn item_envelope(&self, id: &str) -> Result<Option<Envelope>, StoreError> {
        items::item_envelope(self, id)
    }

    fn quarantine(&self, q: &Quarantined) -> Result<(i64, bool), StoreError> {
        quarantine::quarantine(self, q)
    }

    fn list_quarantine(&self, limit: usize) -> Result<Vec<QuarantineRow>, StoreError> {
        quarantine::list_quarantine(self, limit)
    }

    fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        outbox::pending_outbox(self, limit)
    }

    fn in_flight_outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        outbox::in_flight_outbox(self)
    }

    fn pending_outbox_except(
        &self,
        limit: usize,
        held: &[String],
    ) -> Result<Vec<OutboxRow>, StoreError> {
        outbox::pending_outbox_except(self, limit, held)
    }

    fn in_flight_since(&self, topic: &str) -> Result<Option<Timestamp>, StoreError> {
        outbox::in_flight_since(self, topic)
    }

    fn mark_attempted(&self, seqs: &[i64]) -> Result<(), StoreError> {
        outbox::mark_attempted(self, seqs)
    }

    fn mark_delivered(&self, d: &[Delivered]) -> Result<(), StoreError> {
        outbox::mark_delivered(self, d)
    }

    fn mark_failed(&self, seq: i64, error: &str) -> Result<(), StoreError> {
        outbox::mark_failed(self, seq, error)
    }

    fn mark_dead(&self, seq: i64, reason: &str) -> Result<(), StoreError> {
        outbox::mark_dead(self, seq, reason)
    }

    fn enqueue(&self, item_id: &str, o: &NewOutbox) -> Result<(), StoreError> {
        outbox::enqueue(self, item_id, o)
    }

    fn report_ran(&self, kind: &str, period: &str) -> Result<bool, StoreError> {
        mail::report_ran(self, kind, period)
    }

    fn record_report_run(
        &self,
        kind: &str,
        period: &str,
        mails: &[(String, NewMail)],
        records: &[NewOutbox],
    ) -> Result<bool, StoreError> {
        mail::record_report_run(self, kind, period, mails, records)
    }

    fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        outbox::dead_letters(self, limit)
    }

    fn replay_dead(&self, seqs: &[i64], topic: Option<&str>) -> Result<usize, StoreError> {
        outbox::replay_dead(self, seqs, topic)
    }

    fn pending_count(&self) -> Result<u64, StoreError> {
        outbox::pending_count(self)
    }

    fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>, StoreError> {
        outbox::oldest_pending_outbox(self)
    }

    fn topic_positions(&self, topic: &str) -> Result<Vec<(i32, i64)>, StoreError> {
        outbox::topic_positions(self, topic)
    }

    fn open_timers(&self) -> Result<Vec<Timer>, StoreError> {
        clocks::open_timers(self)
    }

    fn pending_clocks(&self) -> Result<Vec<(i64, Clock)>, StoreError> {
        clocks::pending_clocks(self)
    }

    fn compute_clocks(&self, clocks: &[(i64, Clock, Option<Timestamp>)]) -> Result<(), StoreError> {
        clocks::compute_clocks(self, clocks)
    }

    fn clocks_to_recompute(&self, provisional: bool) -> Result<Vec<StoredClock>, StoreError> {
        clocks::clocks_to_recompute(self, provisional)
    }

    fn recompute_clocks(&self, clocks: &[Recomputed]) -> Result<RecomputeResult, StoreError> {
        clocks::recompute_clocks(self, clocks)
    }

    fn open_provisional_clocks(&self) -> Result<u64, StoreError> {
        clocks::open_provisional_clocks(self)
    }

    fn calendar_state(&self) -> Result<Vec<(i16, String, String)>, StoreError> {
        clocks::calendar_state(self)
    }

    fn set_calendar_state(&self, years: &[(i16, String, String)]) -> Result<(), StoreError> {
        clocks::set_calendar_state(self, years)
    }

    fn fire(
        &self,
        rows: &[i64],
        f: &mut dyn FnMut(&Clock) -> Fired,
    ) -> Result<FireResult, StoreError> {
        clocks::fire(self, rows, f)
    }

    fn apply_status(
        &self,
        ev: &StatusRecord,
        f: &mut dyn FnMut(&Envelope, &mut Vec<Clock>) -> ClockWrites,
    ) -> Result<StatusOutcome, StoreError> {
        status::apply_status(self, ev, f)
    }

    fn record_correction(&self, c: &NewCorrection) -> Result<bool, StoreError> {
        items::record_correction(self, c)
    }

    fn corrections(
        &self,
    ) -> Result<Vec<petitiond_core::routing::corrections::Correction>, StoreError> {
        items::corrections(self)
    }

    fn pending_mail(&self, limit: usize) -> Result<Vec<MailRow>, StoreError> {
        mail::pending_mail(self, limit)
    }

    fn mark_mail(
        &self,
        alert_ids: &[String],
        state: MailState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        mail::mark_mail(self, alert_ids, state, error)
    }

    fn settle_interrupted_mail(&self) -> Result<u64, StoreError> {
        mail::settle_interrupted_mail(self)
    }

    fn alerts_for(&self, item_id: &str) -> Result<Vec<(String, String, bool)>, StoreError> {
        clocks::alerts_for(self, item_id)
    }

    fn board(&self, q: &BoardQuery) -> Result<BoardData, StoreError> {
        board::board(self, q)
    }

    fn ledger(
        &self,
        q: &LedgerQuery,
        f: &mut dyn FnMut(LedgerRow) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        ledger::ledger(self, q, f)
    }

    fn summary(&self) -> Result<Summary, StoreError> {
        board::summary(self)
    }

    fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        items::cursor(self, source)
    }

    fn set_cursor(&self, source: &str, value: &str) -> Result<(), StoreError> {
        items::set_cursor(self, source, value)
    }

    fn acquire_lease(&self, unit: &str, instance: &str) -> Result<Lease, StoreError> {
        leases::acquire(self, unit, instance)
    }

    fn lease_holds(&self, lease: &Lease) -> Result<bool, StoreError> {
        leases::holds(self, lease)
    }

    fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        leases::list(self)
    }

    fn set_cursor_leased(
        &self,
        source: &str,
        value: &str,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        leases::set_cursor(self, source, value, lease)
    }

    fn writeback_ready(
        &self,
        source: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<WritebackRow>, StoreError> {
        writeback::ready(self, source, now_ms, limit)
    }

    fn writeback_pending(&self, source: &str) -> Result<u64, StoreError> {
        writeback::pending(self, source)
    }

    fn writeback_next_attempt(&self, source: &str) -> Result<Option<i64>, StoreError> {
        writeback::next_attempt(self, source)
    }

    fn writeback_attempted(&self, id: i64) -> Result<(), StoreError> {
        writeback::attempted(self, id)
    }

    fn writeback_delivered(&self, id: i64, status: u16) -> Result<(), StoreError> {
        writeback::delivered(self, id, status)
    }

    fn writeback_retry(&self, id: i64, next_ms: i64, error: &str) -> Result<(), StoreError> {
        writeback::retry(self, id, next_ms, error)
    }

    fn writeback_dead(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        writeback::dead(self, id, reason)
    }

    fn writeback_list(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WritebackRow>, StoreError> {
        writeback::list(self, state, limit)
    }

    fn writeback_replay(&self, ids: &[i64]) -> Result<usize, StoreError> {
        writeback::replay(self, ids)
    }

    fn report_items(
        &self,
        start: Timestamp,
        end: Timestamp,
        by_lead: bool,
    ) -> Result<Vec<super::report::ItemCount>, StoreError> {
        report::items(self, start, end, by_lead)
    }

    fn report_person_items(
        &self,
        window_start: Timestamp,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<super::report::PersonItem>, StoreError> {
        report::person_items(self, window_start, start, end)
    }

    fn report_clocks(
        &self,
        clock_id: &str,
        stop_on: &[String],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<super::report::ClockSpan>, StoreError> {
        report::clocks(self, clock_id, stop_on, start, end)
    }

    fn report_evaluations(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<super::report::Evaluation>, StoreError> {
        report::evaluations(self, start, end)
    }

    fn key_case_rows(
        &self,
        q: &super::report::KeyCaseQuery,
    ) -> Result<Vec<super::report::KeyCaseRow>, StoreError> {
        report::key_cases(self, q)
    }
}
