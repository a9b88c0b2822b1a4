//! The status write-back outbox in PostgreSQL (h9b). Not ported yet: each call fails with
//! [`StoreError::Unsupported`]. Queuing inside other transactions is `rows::queue_writeback`.

use super::*;

pub(super) fn ready(
    _store: &PgStore,
    _source: &str,
    _now_ms: i64,
    _limit: usize,
) -> Result<Vec<WritebackRow>, StoreError> {
    Err(StoreError::Unsupported("writeback_ready"))
}

pub(super) fn pending(_store: &PgStore, _source: &str) -> Result<u64, StoreError> {
    Err(StoreError::Unsupported("writeback_pending"))
}

pub(super) fn next_attempt(_store: &PgStore, _source: &str) -> Result<Option<i64>, StoreError> {
    Err(StoreError::Unsupported("writeback_next_attempt"))
}

pub(super) fn attempted(_store: &PgStore, _id: i64) -> Result<(), StoreError> {
    Err(StoreError::Unsupported("writeback_attempted"))
}

pub(super) fn delivered(_store: &PgStore, _id: i64, _status: u16) -> Result<(), StoreError> {
    Err(StoreError::Unsupported("writeback_delivered"))
}

pub(super) fn retry(
    _store: &PgStore,
    _id: i64,
    _next_ms: i64,
    _error: &str,
) -> Result<(), StoreError> {
    Err(StoreError::Unsupported("writeback_retry"))
}

pub(super) fn dead(_store: &PgStore, _id: i64, _reason: &str) -> Result<(), StoreError> {
    Err(StoreError::Unsupported("writeback_dead"))
}

pub(super) fn list(
    _store: &PgStore,
    _state: Option<&str>,
    _limit: usize,
) -> Result<Vec<WritebackRow>, StoreError> {
    Err(StoreError::Unsupported("writeback_list"))
}

pub(super) fn replay(_store: &PgStore, _ids: &[i64]) -> Result<usize, StoreError> {
    Err(StoreError::Unsupported("writeback_replay"))
}
