//! The monthly report's and the key-case list's reads in PostgreSQL (h9b). Not ported yet:
//! each call fails with [`StoreError::Unsupported`].

use super::*;
use crate::report::{ClockSpan, Evaluation, ItemCount, KeyCaseQuery, KeyCaseRow, PersonItem};

pub(super) fn items(
    _store: &PgStore,
    _start: Timestamp,
    _end: Timestamp,
    _by_lead: bool,
) -> Result<Vec<ItemCount>, StoreError> {
    Err(StoreError::Unsupported("report_items"))
}

pub(super) fn person_items(
    _store: &PgStore,
    _window_start: Timestamp,
    _start: Timestamp,
    _end: Timestamp,
) -> Result<Vec<PersonItem>, StoreError> {
    Err(StoreError::Unsupported("report_person_items"))
}

pub(super) fn clocks(
    _store: &PgStore,
    _clock_id: &str,
    _stop_on: &[String],
    _start: Timestamp,
    _end: Timestamp,
) -> Result<Vec<ClockSpan>, StoreError> {
    Err(StoreError::Unsupported("report_clocks"))
}

pub(super) fn evaluations(
    _store: &PgStore,
    _start: Timestamp,
    _end: Timestamp,
) -> Result<Vec<Evaluation>, StoreError> {
    Err(StoreError::Unsupported("report_evaluations"))
}

pub(super) fn key_cases(
    _store: &PgStore,
    _q: &KeyCaseQuery,
) -> Result<Vec<KeyCaseRow>, StoreError> {
    Err(StoreError::Unsupported("key_case_rows"))
}
