//! The store: items, upstream cursors, the outbox, routing decisions, SLA clocks and
//! quarantine, behind the small [`Store`] trait: SQLite embedded (the default), PostgreSQL shared.
//!
//! Owns durability: a call that returns `Ok` has been committed (SQLite WAL with
//! `synchronous=FULL`). It does not know Kafka or channels; rows carry opaque topic, key,
//! headers and payload. Calls block; async callers go through [`blocking`].

mod board;
mod postgres;
mod sqlite;

pub use self::postgres::{PgBlobStore, PgStore};
pub use board::{
    BoardAlert, BoardClock, BoardCount, BoardData, BoardQuery, BoardReview, ClockSummary, Summary,
};
pub use sqlite::{SqliteBlobStore, SqliteStore};

use petitiond_core::envelope::Envelope;
use petitiond_core::sla::clock::Clock;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    #[error("store task: {0}")]
    Join(String),
    /// A stored value that does not read back (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A write under a lease that a newer owner has taken since (`Store::acquire_lease`): the
    /// writer lost the unit and must stop it.
    #[error("fenced: the lease of {unit} at epoch {epoch} was taken over by a newer owner")]
    Fenced { unit: String, epoch: i64 },
    #[error("postgres: {0}")]
    Postgres(#[from] ::postgres::Error),
    /// The database cannot be reached now (no free connection in time); retryable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// A unit's lease as the store fences it (ARCHITECTURE.md, "Several instances"): the epoch
/// [`Store::acquire_lease`] returned. Writes under a lease succeed only while no newer epoch of
/// the unit was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub unit: String,
    pub epoch: i64,
}

impl Lease {
    /// Whether `e`, or an error it wraps, is [`StoreError::Fenced`]: the unit was taken over
    /// and whoever got the error must stop it.
    pub fn fenced_in(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(c) = cur {
            if matches!(
                c.downcast_ref::<StoreError>(),
                Some(StoreError::Fenced { .. })
            ) {
                return true;
            }
            cur = c.source();
        }
        false
    }
}

/// A unit's newest lease: who took it and when (the board, `/readyz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub unit: String,
    pub epoch: i64,
    pub instance: String,
    pub since: String,
}

/// One record to produce: opaque to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbox {
    pub topic: String,
    pub key: String,
    /// CloudEvents id of this record; how recovery recognises it on the topic.
    pub ce_id: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

pub use petitiond_core::routing::Decision;

/// An item's stored envelope and upstream version ([`Store::item_state`]).
pub type ItemState = (Envelope, Option<String>);

/// An item with everything that must become durable with it, in one transaction.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub envelope: Envelope,
    pub decision: Decision,
    pub outbox: Vec<NewOutbox>,
    /// SLA clocks started on arrival, each with its next alert instant.
    pub clocks: Vec<(Clock, Option<jiff::Timestamp>)>,
    /// The upstream record's version (a hash of its mapped fields), for channels whose records
    /// change upstream; `None` for mail, which never changes.
    pub version: Option<String>,
    /// The item's entry in the repeat-petition index; `None`: not counted.
    pub person_index: Option<PersonIndex>,
    /// Status write-backs to the item's upstream (acknowledged, its first due time).
    pub writeback: Vec<NewWriteback>,
}

/// A status write-back to queue: a request to the upstream that an item came from, sent by
/// its source's write-back worker (`channels::http::writeback`). Queued in the transaction of
/// the change that causes it; the body and the idempotency key are fixed here, so every
/// retry — after a crash too — sends the same bytes under the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWriteback {
    pub item_id: String,
    /// The HTTP source (`portal`, `hotline`); queued only if the item came from it.
    pub source: String,
    /// `acknowledged`, `due` or `completed`.
    pub kind: String,
    /// What was written back (a department, a clock's due instant, a completion instant),
    /// for `petitiond writeback list`; no personal data.
    pub value: String,
    /// The `Idempotency-Key`: a UUID v5 of (item, kind, value). Queuing the same key again
    /// is a no-op.
    pub key: String,
    /// The JSON body, as sent.
    pub body: Vec<u8>,
}

/// A queued write-back as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritebackRow {
    pub id: i64,
    pub item_id: String,
    /// The item's upstream id (for the request path).
    pub upstream_id: String,
    pub source: String,
    pub kind: String,
    pub value: String,
    pub key: String,
    pub body: Vec<u8>,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: i64,
    /// Not before this instant (ms); 0: at once.
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub done_at: Option<String>,
}

/// Who an item is from and what it is about, for repeat-petition linking: keyed hashes only,
/// never a personal value (`routing::repeat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonIndex {
    pub person_keys: Vec<String>,
    pub matter: String,
}

/// An upstream change to a known item: its new envelope and the update events, recorded only
/// if the stored version is still `expected_version` (so a stale or repeated update is a no-op).
#[derive(Debug, Clone)]
pub struct ItemUpdate {
    pub envelope: Envelope,
    pub expected_version: Option<String>,
    pub version: String,
    pub outbox: Vec<NewOutbox>,
}

/// An upstream update that supplies what an incomplete item lacked
/// ([`Store::record_supplement`]): its clocks to stop, and the records that say so.
#[derive(Debug, Clone)]
pub struct Supplement {
    /// Clock ids to stop (the policies that run on the `needs_supplement` flag).
    pub clocks: Vec<String>,
    /// When they stop.
    pub at: jiff::Timestamp,
}

/// A clock's next alert, for the timer engine: the store's row id and the instant in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub clock_row: i64,
    /// `i64::MIN`: nothing scheduled any more (remove the timer).
    pub at_ms: i64,
}

/// An alert to record, with its Kafka record and its mail.
#[derive(Debug, Clone)]
pub struct FiredAlert {
    /// Deterministic from (item, clock, kind, scheduled instant): recording it twice is a no-op.
    pub id: String,
    pub item_id: String,
    pub clock_id: String,
    pub kind: String,
    pub department: String,
    pub due_at: jiff::Timestamp,
    pub scheduled_at: jiff::Timestamp,
    pub fired_at: jiff::Timestamp,
    pub late: bool,
    pub record: NewOutbox,
    pub mail: Option<NewMail>,
    /// Its instant rests on a provisional calendar year (no official file).
    pub provisional: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewMail {
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// What the engine decided for one clock that fell due.
#[derive(Debug, Clone, Default)]
pub struct Fired {
    pub alerts: Vec<FiredAlert>,
    pub last_alert_at: Option<jiff::Timestamp>,
    pub next: Option<jiff::Timestamp>,
    /// `next` rests on a provisional calendar year: looked at again when a calendar changes.
    pub next_provisional: bool,
}

/// An open clock as stored, with its next alert: what is looked at again when the calendars
/// change ([`Store::clocks_to_recompute`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredClock {
    pub row: i64,
    pub clock: Clock,
    pub next: Option<jiff::Timestamp>,
    pub next_provisional: bool,
}

/// A clock computed again on the calendars in force, to write with
/// [`Store::recompute_clocks`].
#[derive(Debug, Clone)]
pub struct Recomputed {
    pub row: i64,
    /// The clock as read: the row is written only if it still holds exactly this (a status
    /// event applied meanwhile computed it on the same calendars and wins).
    pub was: Clock,
    pub clock: Clock,
    pub next: Option<jiff::Timestamp>,
    pub next_provisional: bool,
    /// The due-update record that announces the change (the due instant moved, or a pending
    /// clock got one), committed with the clock; `None`: nothing to announce.
    pub announce: Option<NewOutbox>,
    /// Write-backs of the new due instant, one per source that writes this clock back; each
    /// is queued only if the item came from that source (and the clock is written).
    pub writeback: Vec<NewWriteback>,
}

/// What [`Store::recompute_clocks`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecomputeResult {
    /// Timers of the clocks written.
    pub timers: Vec<Timer>,
    /// Due-update records newly queued.
    pub announced: usize,
    /// Clocks left alone because a status event changed them meanwhile.
    pub skipped: usize,
}

#[derive(Debug, Clone, Default)]
pub struct FireResult {
    /// Alerts newly recorded (an alert recorded before is not counted again).
    pub alerts: usize,
    pub timers: Vec<Timer>,
}

/// Which items the ledger lists.
#[derive(Debug, Clone, Default)]
pub struct LedgerQuery {
    /// Items received at or after this instant.
    pub since: Option<jiff::Timestamp>,
    /// Items this department leads or assists (after any re-route).
    pub department: Option<String>,
}

/// One item of the electronic ledger: where it stands in the closed loop, who answers for it
/// and by when. Ids, labels, staff ids and instants: no petitioner data.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    pub item_id: String,
    pub channel: String,
    pub category: Option<String>,
    pub received_at: jiff::Timestamp,
    pub stage: petitiond_core::envelope::Stage,
    /// The responsible (lead) department: the last re-route's, else routing's.
    pub lead: Option<String>,
    pub assists: Vec<String>,
    /// The staff member last named by a status event (`actor.person`).
    pub person: Option<String>,
    /// The completion clock's due instant (`statutory.handle`), else the acceptance clock's
    /// (`statutory.accept`), else the latest due of the item's clocks.
    pub expected_completion: Option<jiff::Timestamp>,
    pub clocks: Vec<LedgerClock>,
    /// The last status event applied (by event time) and its time.
    pub last_event: Option<(String, jiff::Timestamp)>,
    /// The last reply's check (`ok`, `bounced`) and the last evaluation.
    pub reply: Option<String>,
    pub evaluation: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LedgerClock {
    pub clock: String,
    pub state: String,
    pub due_at: jiff::Timestamp,
    pub provisional: bool,
}

/// A department status event as recorded for idempotence.
#[derive(Debug, Clone)]
pub struct StatusRecord {
    pub event_id: String,
    pub item_id: String,
    pub event: String,
    pub at: jiff::Timestamp,
    /// The department whose event it is (the status topic's), for the ledger.
    pub department: Option<String>,
    /// `actor.person`: the staff member handling the item (a staff id, not petitioner data).
    pub person: Option<String>,
    /// What the event said, where the closed loop needs it: a reply's check (`ok`,
    /// `bounced`), an evaluation (`satisfied`, `basically_satisfied`, `dissatisfied`).
    pub verdict: Option<String>,
    /// The closed-loop stage the event moves the item to; the stored stage only advances
    /// (see [`petitiond_core::envelope::Stage::rank`]).
    pub stage: Option<petitiond_core::envelope::Stage>,
}

impl StatusRecord {
    /// A record with no department, person, verdict or stage.
    pub fn new(event_id: &str, item_id: &str, event: &str, at: jiff::Timestamp) -> StatusRecord {
        StatusRecord {
            event_id: event_id.into(),
            item_id: item_id.into(),
            event: event.into(),
            at,
            department: None,
            person: None,
            verdict: None,
            stage: None,
        }
    }
}

/// The clock changes a status event causes: indexes into the loaded clocks with their next
/// alert, and newly started clocks.
#[derive(Debug, Clone, Default)]
pub struct ClockWrites {
    pub updated: Vec<(usize, Option<jiff::Timestamp>)>,
    pub started: Vec<(Clock, Option<jiff::Timestamp>)>,
    /// Write-backs the event causes (a due instant set or moved, a completion).
    pub writeback: Vec<NewWriteback>,
    /// Alerts the event raises (a bounced reply, a dissatisfied evaluation), recorded with
    /// their Kafka record and mail in the event's transaction (once: by alert id).
    pub alerts: Vec<FiredAlert>,
    /// Other records the event causes (a bounce notice to the department), queued in the
    /// event's transaction.
    pub outbox: Vec<NewOutbox>,
}

/// A re-route by the intake desk (a status event naming a new category and/or department),
/// to record as a correction. The store adds what routing had decided.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCorrection {
    pub event_id: String,
    pub item_id: String,
    pub at: jiff::Timestamp,
    pub actor: Option<String>,
    pub category: Option<petitiond_core::envelope::Category>,
    pub department: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusOutcome {
    Applied(Vec<Timer>),
    Duplicate,
    UnknownItem,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MailRow {
    pub alert_id: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailState {
    Pending,
    Sending,
    Sent,
    Failed,
}

impl MailState {
    pub fn as_str(self) -> &'static str {
        match self {
            MailState::Pending => "pending",
            MailState::Sending => "sending",
            MailState::Sent => "sent",
            MailState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub seq: i64,
    pub item_id: String,
    pub topic: String,
    pub key: String,
    pub ce_id: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
    pub attempts: i64,
}

/// A record the broker refused for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub seq: i64,
    pub item_id: String,
    pub topic: String,
    pub ce_id: String,
    pub reason: String,
    pub at: String,
}

/// A delivery report to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub seq: i64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A bad input kept with its original bytes (in the blob store) and its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub source: String,
    /// The upstream reference (file name, record id) — never personal data.
    pub reference: String,
    /// Short machine-readable reason, used as a metric label.
    pub reason: String,
    /// Human-readable detail.
    pub detail: String,
    pub raw_ref: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRow {
    pub id: i64,
    pub at: String,
    pub entry: Quarantined,
}

/// What [`Store::record_item`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded, with the timers of the clocks it started.
    New(Vec<Timer>),
    /// The id was already known: nothing written (a re-poll or a re-read after a crash).
    Duplicate,
}

/// Most earlier items [`Store::related_items`] returns (defined with the envelope's `related`).
pub use petitiond_core::envelope::MAX_RELATED_ITEMS;

/// Most person keys one look-up uses (intake passes at most `routing::repeat::MAX_PERSON_KEYS`).
pub const MAX_LOOKUP_KEYS: usize = 64;

pub trait Store: Send + Sync + 'static {
    /// Records an item, its routing decision and its outbox rows atomically.
    fn record_item(&self, item: &NewItem) -> Result<Recorded, StoreError>;
    /// Group commit: records several items in ONE transaction (one fsync), each as
    /// [`Store::record_item`] would, in order — an id seen earlier in the group is a
    /// duplicate. An item that fails leaves nothing of itself behind and its error is its own;
    /// the outer error means nothing was committed.
    fn record_items(
        &self,
        items: &[NewItem],
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError>;
    fn item_envelope(&self, id: &str) -> Result<Option<Envelope>, StoreError>;
    /// Items recorded before with any of `person_keys` (the first [`MAX_LOOKUP_KEYS`]) on
    /// `matter`, received at or after `since`, other than `except`: distinct ids, oldest first;
    /// at most [`MAX_RELATED_ITEMS`] (the newest). One bounded query.
    fn related_items(
        &self,
        person_keys: &[String],
        matter: &str,
        since: jiff::Timestamp,
        except: &str,
    ) -> Result<Vec<String>, StoreError>;
    /// The stored envelope of an item and its upstream version.
    fn item_state(&self, id: &str) -> Result<Option<(Envelope, Option<String>)>, StoreError>;
    /// [`Store::item_state`] of each id, in order: a batch of records asks once.
    fn item_states(&self, ids: &[String]) -> Result<Vec<Option<ItemState>>, StoreError> {
        ids.iter().map(|id| self.item_state(id)).collect()
    }
    /// The upstream version of an item, if the item is known and has one.
    fn item_version(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// [`Store::item_version`] of each id, in order: a page of records asks once.
    fn item_versions(&self, ids: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        ids.iter().map(|id| self.item_version(id)).collect()
    }
    /// Records an upstream update (see [`ItemUpdate`]); `false` when the version moved meanwhile.
    fn record_update(&self, u: &ItemUpdate) -> Result<bool, StoreError>;
    /// Records an upstream update that supplied what an incomplete item lacked: as
    /// [`Store::record_update`], and in the same transaction stops the item's open clocks
    /// named in `s` and queues the records `f` makes from them (as they were before the stop:
    /// a clock already stopped, by a status event, is not passed). `None` when the version
    /// moved meanwhile (nothing written); else the timers to remove.
    fn record_supplement(
        &self,
        u: &ItemUpdate,
        s: &Supplement,
        f: &mut dyn FnMut(&[Clock]) -> Vec<NewOutbox>,
    ) -> Result<Option<Vec<Timer>>, StoreError>;
    /// Quarantines an input; the same bytes from the same source again return the first entry's
    /// id and `false` (a re-poll or a re-read after a crash does not fill quarantine).
    fn quarantine(&self, q: &Quarantined) -> Result<(i64, bool), StoreError>;
    fn list_quarantine(&self, limit: usize) -> Result<Vec<QuarantineRow>, StoreError>;
    /// Pending rows in outbox order.
    fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError>;
    /// Pending rows that were handed to a producer before: they may be on Kafka already.
    fn in_flight_outbox(&self) -> Result<Vec<OutboxRow>, StoreError>;
    /// Pending rows in outbox order, leaving out rows for `held` topics (whose in-flight rows
    /// could not be checked against Kafka yet, so nothing goes to them).
    fn pending_outbox_except(
        &self,
        limit: usize,
        held: &[String],
    ) -> Result<Vec<OutboxRow>, StoreError>;
    /// When the oldest in-flight row for `topic` was created: its record, if it reached
    /// Kafka, carries a later timestamp (bounds the recovery scan).
    fn in_flight_since(&self, topic: &str) -> Result<Option<jiff::Timestamp>, StoreError>;
    /// Counts an attempt before the rows are produced (committed first, so a crash after the
    /// produce leaves them recognisable as in flight).
    fn mark_attempted(&self, seqs: &[i64]) -> Result<(), StoreError>;
    fn mark_delivered(&self, d: &[Delivered]) -> Result<(), StoreError>;
    fn mark_failed(&self, seq: i64, error: &str) -> Result<(), StoreError>;
    fn mark_dead(&self, seq: i64, reason: &str) -> Result<(), StoreError>;
    /// Queues a record that belongs to no item's transaction (an operational event).
    fn enqueue(&self, item_id: &str, o: &NewOutbox) -> Result<(), StoreError>;
    /// Whether the scheduled report `kind` ran for `period` (`report::schedule`).
    fn report_ran(&self, kind: &str, period: &str) -> Result<bool, StoreError>;
    /// Records that report `kind` ran for `period` and queues its mails (`(id, mail)`: the id
    /// keys the mail outbox row) and records, in one transaction. `false`, and nothing queued,
    /// when that run was recorded before.
    fn record_report_run(
        &self,
        kind: &str,
        period: &str,
        mails: &[(String, NewMail)],
        records: &[NewOutbox],
    ) -> Result<bool, StoreError>;
    /// Records that could never be delivered (they also went to the dead-letter topic).
    fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;
    /// Puts dead records back in the outbox (optionally to another topic) once the operator
    /// has fixed the cause; the relay sends them again. Returns how many.
    fn replay_dead(&self, seqs: &[i64], topic: Option<&str>) -> Result<usize, StoreError>;
    fn pending_count(&self) -> Result<u64, StoreError>;
    /// When the oldest record still waiting in the outbox was enqueued (None when empty):
    /// the `petitiond_outbox_oldest_pending_age_seconds` gauge. One index seek.
    fn oldest_pending_outbox(&self) -> Result<Option<jiff::Timestamp>, StoreError> {
        Ok(None)
    }
    /// Next offset to read per partition of a topic, from delivery reports recorded so far.
    fn topic_positions(&self, topic: &str) -> Result<Vec<(i32, i64)>, StoreError>;
    /// Every clock with an alert still to come (start-up of the timer engine).
    fn open_timers(&self) -> Result<Vec<Timer>, StoreError>;
    /// Every clock left pending (a calendar year it needs was not loaded when it started).
    fn pending_clocks(&self) -> Result<Vec<(i64, Clock)>, StoreError>;
    /// Writes pending clocks now computed (row, clock, next alert), in one transaction; a row
    /// that is no longer pending (stopped meanwhile) is left alone.
    fn compute_clocks(
        &self,
        clocks: &[(i64, Clock, Option<jiff::Timestamp>)],
    ) -> Result<(), StoreError>;
    /// Open clocks to look at again at start: every pending clock, and with `provisional`
    /// (the calendars changed) every open clock whose due instant or next alert rests on a
    /// provisional calendar year.
    fn clocks_to_recompute(&self, provisional: bool) -> Result<Vec<StoredClock>, StoreError>;
    /// Writes recomputed clocks, each with its due-update record if any, in one transaction;
    /// a row that no longer holds the clock it was computed from is left alone.
    fn recompute_clocks(&self, clocks: &[Recomputed]) -> Result<RecomputeResult, StoreError>;
    /// Open (not stopped) clocks whose due instant rests on a provisional calendar year (read
    /// on the board's read-only connection: the count never holds up a writer).
    fn open_provisional_clocks(&self) -> Result<u64, StoreError>;
    /// Each year's (basis, digest of its day kinds) as clocks were last recomputed.
    fn calendar_state(&self) -> Result<Vec<(i16, String, String)>, StoreError>;
    /// Replaces the remembered calendar state.
    fn set_calendar_state(&self, years: &[(i16, String, String)]) -> Result<(), StoreError>;
    /// For each clock row: `f` decides the alerts and the next instant; alerts (with their
    /// outbox and mail rows) and the clock update commit in one transaction.
    fn fire(
        &self,
        rows: &[i64],
        f: &mut dyn FnMut(&Clock) -> Fired,
    ) -> Result<FireResult, StoreError>;
    /// Applies a status event once (by event id) to the item's clocks, in one transaction.
    fn apply_status(
        &self,
        ev: &StatusRecord,
        f: &mut dyn FnMut(&Envelope, &mut Vec<Clock>) -> ClockWrites,
    ) -> Result<StatusOutcome, StoreError>;
    /// Records a correction once per event id, with the item's category and lead as routed;
    /// `false` when it was recorded before (or the item is unknown).
    fn record_correction(&self, c: &NewCorrection) -> Result<bool, StoreError>;
    /// Every recorded correction, oldest first, with the item's stored envelope.
    fn corrections(
        &self,
    ) -> Result<Vec<petitiond_core::routing::corrections::Correction>, StoreError>;
    fn pending_mail(&self, limit: usize) -> Result<Vec<MailRow>, StoreError>;
    fn mark_mail(
        &self,
        alert_ids: &[String],
        state: MailState,
        error: Option<&str>,
    ) -> Result<(), StoreError>;
    /// At start-up: mails that were being sent when the process stopped are marked `unknown`
    /// and not sent again (no duplicate mail); returns how many.
    fn settle_interrupted_mail(&self) -> Result<u64, StoreError>;
    /// (clock, kind, late) of an item's alerts, oldest first.
    fn alerts_for(&self, item_id: &str) -> Result<Vec<(String, String, bool)>, StoreError>;
    /// The SLA board's snapshot (read from its own read-only connection, so a board refresh
    /// never waits for, or holds up, a writer).
    fn board(&self, q: &BoardQuery) -> Result<BoardData, StoreError>;
    /// The electronic ledger (电子跟踪台账): every item received from `q.since` on, oldest
    /// first, handed to `f` one row at a time (a million items never sit in memory). Reads
    /// the board's snapshot connection: a long export never holds up intake.
    fn ledger(
        &self,
        q: &LedgerQuery,
        f: &mut dyn FnMut(LedgerRow) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError>;
    /// Counts over everything recorded (items, clocks, alerts, quarantine): the demo's closing
    /// table. Labels and numbers only, never petitioner data.
    fn summary(&self) -> Result<Summary, StoreError>;
    fn cursor(&self, source: &str) -> Result<Option<String>, StoreError>;
    fn set_cursor(&self, source: &str, value: &str) -> Result<(), StoreError>;

    // Leases of units run by one of several instances (ARCHITECTURE.md, "Several instances").

    /// Takes `unit`'s lease for `instance`: the unit's epoch goes up by one (1 for a unit
    /// never leased) and the new lease is returned. Called when the Kafka group assigns the
    /// unit, before the unit starts; from then on writes under an older epoch fail.
    fn acquire_lease(&self, unit: &str, instance: &str) -> Result<Lease, StoreError>;
    /// Whether `lease` is still the unit's newest (nobody took the unit since).
    fn lease_holds(&self, lease: &Lease) -> Result<bool, StoreError>;
    /// Every unit's newest lease, by unit.
    fn leases(&self) -> Result<Vec<LeaseRow>, StoreError>;
    /// [`Store::set_cursor`] under a lease: the cursor moves only while `lease` holds and no
    /// newer epoch wrote it (the epoch is stored with the cursor); otherwise
    /// [`StoreError::Fenced`] and nothing is written.
    fn set_cursor_leased(&self, source: &str, value: &str, lease: &Lease)
    -> Result<(), StoreError>;

    // Status write-back (`channels::http::writeback`).

    /// Pending write-backs of `source` whose time has come (`next_attempt_ms <= now_ms`),
    /// oldest first, at most `limit`, leaving out any that has an older pending write-back of
    /// the same item (per-item order: an item's states reach the upstream in the order they
    /// happened).
    fn writeback_ready(
        &self,
        source: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<WritebackRow>, StoreError>;
    /// Pending write-backs of `source` (counts them: a gauge's sample, not for every round).
    fn writeback_pending(&self, source: &str) -> Result<u64, StoreError>;
    /// The earliest `next_attempt_ms` among `source`'s pending write-backs (one index seek).
    fn writeback_next_attempt(&self, source: &str) -> Result<Option<i64>, StoreError>;
    /// Counts an attempt before the request is made (committed first: a crash during the
    /// request leaves the row pending, and the next attempt reuses its key).
    fn writeback_attempted(&self, id: i64) -> Result<(), StoreError>;
    fn writeback_delivered(&self, id: i64, status: u16) -> Result<(), StoreError>;
    /// Schedules the next attempt of a pending write-back.
    fn writeback_retry(&self, id: i64, next_ms: i64, error: &str) -> Result<(), StoreError>;
    fn writeback_dead(&self, id: i64, reason: &str) -> Result<(), StoreError>;
    /// Write-backs in `state` (any when `None`), newest first.
    fn writeback_list(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WritebackRow>, StoreError>;
    /// Puts dead write-backs back to pending (attempts from 0, due at once) once the cause is
    /// fixed; returns how many.
    fn writeback_replay(&self, ids: &[i64]) -> Result<usize, StoreError>;

    // The monthly report and the key-case list (`report::figures`). Each call reads one
    // snapshot on the read-only connection: a report never holds up intake.

    /// Items received in `[start, end)` per (channel, category) — and per lead with `by_lead`.
    fn report_items(
        &self,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
        by_lead: bool,
    ) -> Result<Vec<report::ItemCount>, StoreError>;
    /// Every repeat-index row received in `[window_start, end)` of each (person key, matter)
    /// that has a row of an item received in `[start, end)`; by person key, matter, time.
    fn report_person_items(
        &self,
        window_start: jiff::Timestamp,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
    ) -> Result<Vec<report::PersonItem>, StoreError>;
    /// Clocks `clock_id` that are open now and due before `end`, and those stopped (by the
    /// first of `stop_on` that is not a bounced reply) at or after `start` — before `end`,
    /// or later when due before `end`.
    fn report_clocks(
        &self,
        clock_id: &str,
        stop_on: &[String],
        start: jiff::Timestamp,
        end: jiff::Timestamp,
    ) -> Result<Vec<report::ClockSpan>, StoreError>;
    /// `evaluated` events in `[start, end)`.
    fn report_evaluations(
        &self,
        start: jiff::Timestamp,
        end: jiff::Timestamp,
    ) -> Result<Vec<report::Evaluation>, StoreError>;
    /// Key-case candidates (see [`report::KeyCaseQuery`]), oldest first.
    fn key_case_rows(
        &self,
        q: &report::KeyCaseQuery,
    ) -> Result<Vec<report::KeyCaseRow>, StoreError>;
}

/// Runs a store call on the blocking pool.
pub async fn blocking<T, F>(store: &Arc<dyn Store>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| StoreError::Join(join_error(&e)))?
}

/// A task's `JoinError` for logs and errors. Its own `Display` quotes the panic's message
/// ("task 7 panicked with message ..."), which may quote the data the task worked on.
pub fn join_error(e: &tokio::task::JoinError) -> String {
    if e.is_panic() {
        format!(
            "a blocking task panicked ({})",
            petitiond_core::diag::WITHHELD
        )
    } else {
        "a blocking task was cancelled".to_string()
    }
}

pub mod blobs;
pub mod files;
pub mod report;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
