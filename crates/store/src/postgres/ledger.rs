//! The electronic ledger in PostgreSQL (h9b). Not ported yet: fails with
//! [`StoreError::Unsupported`].

use super::*;

pub(super) fn ledger(
    _store: &PgStore,
    _q: &LedgerQuery,
    _f: &mut dyn FnMut(LedgerRow) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    Err(StoreError::Unsupported("ledger"))
}
