//! SQLite implementation of [`Store`]: the embedded default.
//!
//! One connection behind a mutex (SQLite serialises writers anyway); WAL journal with
//! `synchronous=FULL` so a committed transaction survives power loss; schema by
//! `rusqlite_migration` (versioned through `PRAGMA user_version`).

use super::*;
use jiff::Timestamp;
use petitiond_core::sla::clock::{Clock, State};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::Migrations;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod blobs;
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
mod status;
mod writeback;

pub use blobs::SqliteBlobStore;

pub struct SqliteStore {
    // One connection: SQLite has one writer at a time; a pool would only add lock waits.
    conn: Mutex<Connection>,
    // Read-only connection for the SLA board: WAL lets it read a snapshot while the writer
    // commits, so an operator's refresh never holds the writers' mutex (alerts stay on time).
    read: Mutex<Connection>,
    // Read-only connection for intake's and the channels' look-ups (a page's versions, a
    // batch's stored items): committed state is what they need, and on their own connection
    // they wait neither for a group's commit on the writer nor for a board query.
    lookup: Mutex<Connection>,
    // Tells the checkpoint thread to stop when the store is dropped.
    stop: Arc<AtomicBool>,
    // The database file (its `-wal` is fsynced by the blob store's `sync`).
    path: PathBuf,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Checkpoints the WAL from its own connection, off the writers' path: automatic checkpoints
/// inside a commit (copying pages into the database file and fsyncing it) made bursts of
/// alerts late (benches/sla_timers.rs). PASSIVE never blocks the writer.
fn checkpointer(path: PathBuf, stop: Arc<AtomicBool>) {
    let Ok(conn) = Connection::open(&path) else {
        return;
    };
    let _ = conn.busy_timeout(Duration::from_secs(1));
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "WAL checkpoint skipped");
        }
    }
}

/// Builds the records that announce a supplement from the clocks it stops.
type SupplementRecords<'a> = dyn FnMut(&[Clock]) -> Vec<NewOutbox> + 'a;

/// Each connection's page cache: up to 64 MiB (`PRAGMA cache_size` in KiB when negative).
const CACHE_SIZE: i64 = -65536;

/// Prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 128;

impl SqliteStore {
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let io = |e: std::io::Error| {
            StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            super::files::create_private_dir(dir).map_err(io)?;
        }
        make_private(path).map_err(io)?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A burst of alerts updates clocks spread over the whole table and its indexes: with
        // the default 2 MiB cache, pages were evicted (and dirty ones spilled to the WAL)
        // within one transaction (benches/sla_timers.rs).
        conn.pragma_update(None, "cache_size", CACHE_SIZE)?;
        // Group commit takes a savepoint per item: its statement journal (every page the item
        // touches, more than SQLite's 64 KiB in-memory spill size) went to a temporary file
        // created, written and unlinked per item. Journals of one transaction fit in memory.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Every statement of an item's transaction is prepared once (`prepare_cached`): parsing
        // them per item was a tenth of intake's instructions (BENCHMARKS.md). rusqlite keeps 16
        // by default; the writer runs more distinct statements than that.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Migrations::from_slice(migrations::MIGRATIONS).to_latest(&mut conn)?;
        let read_only = || -> Result<Connection, StoreError> {
            let c = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            c.busy_timeout(busy_timeout)?;
            Ok(c)
        };
        let read = read_only()?;
        let lookup = read_only()?;
        // The board's counts walk the open-clock index: keep its pages in this connection's
        // cache (up to 64 MiB; a million open clocks' index is about 40 MB).
        read.pragma_update(None, "cache_size", CACHE_SIZE)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (p, st) = (path.to_path_buf(), stop.clone());
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpointer(p, st))
            .map_err(|e| {
                StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            })?;
        Ok(Self {
            conn: Mutex::new(conn),
            read: Mutex::new(read),
            lookup: Mutex::new(lookup),
            stop,
            path: path.to_path_buf(),
        })
    }

    /// The look-ups' read-only connection (see `lookup`).
    pub(crate) fn lookup(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.lookup.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half transaction (rusqlite rolls back
        // on drop), so a poisoned lock is still a usable connection.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates the database file 0600 before SQLite opens it (SQLite would create it with the
/// umask's mode, and gives its `-wal` and `-shm` files the database file's mode), and narrows
/// an existing database or journal file that others could read.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    drop(super::files::open_private(path)?);
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if let Ok(m) = std::fs::metadata(&p)
            && m.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(super::files::FILE_MODE))?;
            tracing::warn!(file = %p.display(), "store file was readable by others; now 0600");
        }
    }
    Ok(())
}

impl Store for SqliteStore {
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

    fn item_states(&self, ids: &[String]) -> Result<Vec<Option<ItemState>>, StoreError> {
        items::item_states(self, ids)
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

    fn enqueue(&self, item_id: &str, o: &NewOutbox) -> Result<(), StoreError> {
        outbox::enqueue(self, item_id, o)
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
        board::ledger(self, q, f)
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
        leases::acquire(&self.conn(), unit, instance)
    }

    fn lease_holds(&self, lease: &Lease) -> Result<bool, StoreError> {
        leases::holds(&self.conn(), lease)
    }

    fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        leases::list(&self.conn())
    }

    fn set_cursor_leased(
        &self,
        source: &str,
        value: &str,
        lease: &Lease,
    ) -> Result<(), StoreError> {
        leases::set_cursor(&self.conn(), source, value, lease)
    }

    fn writeback_ready(
        &self,
        source: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<WritebackRow>, StoreError> {
        writeback::ready(&self.conn(), source, now_ms, limit)
    }

    fn writeback_pending(&self, source: &str) -> Result<u64, StoreError> {
        writeback::pending(&self.conn(), source)
    }

    fn writeback_next_attempt(&self, source: &str) -> Result<Option<i64>, StoreError> {
        writeback::next_attempt(&self.conn(), source)
    }

    fn writeback_attempted(&self, id: i64) -> Result<(), StoreError> {
        writeback::attempted(&self.conn(), id)
    }

    fn writeback_delivered(&self, id: i64, status: u16) -> Result<(), StoreError> {
        writeback::delivered(&self.conn(), id, status)
    }

    fn writeback_retry(&self, id: i64, next_ms: i64, error: &str) -> Result<(), StoreError> {
        writeback::retry(&self.conn(), id, next_ms, error)
    }

    fn writeback_dead(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        writeback::dead(&self.conn(), id, reason)
    }

    fn writeback_list(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WritebackRow>, StoreError> {
        writeback::list(&self.conn(), state, limit)
    }

    fn writeback_replay(&self, ids: &[i64]) -> Result<usize, StoreError> {
        writeback::replay(&mut self.conn(), ids)
    }

    fn report_items(
        &self,
        start: Timestamp,
        end: Timestamp,
        by_lead: bool,
    ) -> Result<Vec<super::report::ItemCount>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        report::snapshot(&conn, |c| report::items(c, start, end, by_lead))
    }

    fn report_person_items(
        &self,
        window_start: Timestamp,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<super::report::PersonItem>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        report::snapshot(&conn, |c| report::person_items(c, window_start, start, end))
    }

    fn report_clocks(
        &self,
        clock_id: &str,
        stop_on: &[String],
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<super::report::ClockSpan>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        report::snapshot(&conn, |c| report::clocks(c, clock_id, stop_on, start, end))
    }

    fn report_evaluations(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<super::report::Evaluation>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        report::snapshot(&conn, |c| report::evaluations(c, start, end))
    }

    fn key_case_rows(
        &self,
        q: &super::report::KeyCaseQuery,
    ) -> Result<Vec<super::report::KeyCaseRow>, StoreError> {
        let conn = self.read.lock().unwrap_or_else(|p| p.into_inner());
        report::snapshot(&conn, |c| report::key_cases(c, q))
    }
}

#[cfg(test)]
mod tests;
