//! The store: items, upstream cursors, the outbox, routing decisions, SLA clocks and
//! quarantine, behind the small [`Store`] trait so a server database can follow SQLite.
//!
//! Owns durability: a call that returns `Ok` has been committed (SQLite WAL with
//! `synchronous=FULL`). It does not know Kafka or channels; rows carry opaque topic, key,
//! headers and payload. Calls block; async callers go through [`blocking`].

mod sqlite;

pub use sqlite::SqliteStore;

use crate::envelope::Envelope;
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

/// The routing decision as recorded (rule, rules version, departments).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub rule_id: String,
    pub rules_version: String,
    pub lead: String,
    pub assists: Vec<String>,
    pub decided_at: jiff::Timestamp,
}

/// An item with everything that must become durable with it, in one transaction.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub envelope: Envelope,
    pub decision: Decision,
    pub outbox: Vec<NewOutbox>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// The id was already known: nothing written (a re-poll or a re-read after a crash).
    Duplicate,
}

pub trait Store: Send + Sync + 'static {
    /// Records an item, its routing decision and its outbox rows atomically.
    fn record_item(&self, item: &NewItem) -> Result<Recorded, StoreError>;
    fn item_envelope(&self, id: &str) -> Result<Option<Envelope>, StoreError>;
    fn quarantine(&self, q: &Quarantined) -> Result<i64, StoreError>;
    fn list_quarantine(&self, limit: usize) -> Result<Vec<QuarantineRow>, StoreError>;
    /// Pending rows in outbox order.
    fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError>;
    /// Pending rows that were handed to a producer before: they may be on Kafka already.
    fn in_flight_outbox(&self) -> Result<Vec<OutboxRow>, StoreError>;
    /// Counts an attempt before the rows are produced (committed first, so a crash after the
    /// produce leaves them recognisable as in flight).
    fn mark_attempted(&self, seqs: &[i64]) -> Result<(), StoreError>;
    fn mark_delivered(&self, d: &[Delivered]) -> Result<(), StoreError>;
    fn mark_failed(&self, seq: i64, error: &str) -> Result<(), StoreError>;
    fn mark_dead(&self, seq: i64, reason: &str) -> Result<(), StoreError>;
    fn pending_count(&self) -> Result<u64, StoreError>;
    /// Next offset to read per partition of a topic, from delivery reports recorded so far.
    fn topic_positions(&self, topic: &str) -> Result<Vec<(i32, i64)>, StoreError>;
    fn cursor(&self, source: &str) -> Result<Option<String>, StoreError>;
    fn set_cursor(&self, source: &str, value: &str) -> Result<(), StoreError>;
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
        .map_err(|e| StoreError::Join(e.to_string()))?
}

pub mod blobs;
