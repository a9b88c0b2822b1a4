//! SLA clocks and alerts in PostgreSQL (h9b). Not ported yet: each call fails with
//! [`StoreError::Unsupported`]. The row helpers shared with items and status events
//! (`insert_clock`, `update_clock`, `insert_alert`, `row_to_clock`) are in `rows.rs`.

use super::*;

pub(super) fn open_timers(_store: &PgStore) -> Result<Vec<Timer>, StoreError> {
    Err(StoreError::Unsupported("open_timers"))
}

pub(super) fn pending_clocks(_store: &PgStore) -> Result<Vec<(i64, Clock)>, StoreError> {
    Err(StoreError::Unsupported("pending_clocks"))
}

pub(super) fn compute_clocks(
    _store: &PgStore,
    _clocks: &[(i64, Clock, Option<Timestamp>)],
) -> Result<(), StoreError> {
    Err(StoreError::Unsupported("compute_clocks"))
}

pub(super) fn clocks_to_recompute(
    _store: &PgStore,
    _provisional: bool,
) -> Result<Vec<StoredClock>, StoreError> {
    Err(StoreError::Unsupported("clocks_to_recompute"))
}

pub(super) fn recompute_clocks(
    _store: &PgStore,
    _clocks: &[Recomputed],
) -> Result<RecomputeResult, StoreError> {
    Err(StoreError::Unsupported("recompute_clocks"))
}

pub(super) fn open_provisional_clocks(_store: &PgStore) -> Result<u64, StoreError> {
    Err(StoreError::Unsupported("open_provisional_clocks"))
}

pub(super) fn calendar_state(_store: &PgStore) -> Result<Vec<(i16, String, String)>, StoreError> {
    Err(StoreError::Unsupported("calendar_state"))
}

pub(super) fn set_calendar_state(
    _store: &PgStore,
    _years: &[(i16, String, String)],
) -> Result<(), StoreError> {
    Err(StoreError::Unsupported("set_calendar_state"))
}

pub(super) fn fire(
    _store: &PgStore,
    _rows: &[i64],
    _f: &mut dyn FnMut(&Clock) -> Fired,
) -> Result<FireResult, StoreError> {
    Err(StoreError::Unsupported("fire"))
}

pub(super) fn alerts_for(
    _store: &PgStore,
    _item_id: &str,
) -> Result<Vec<(String, String, bool)>, StoreError> {
    Err(StoreError::Unsupported("alerts_for"))
}
