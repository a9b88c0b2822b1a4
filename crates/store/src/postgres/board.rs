//! The SLA board and the summary in PostgreSQL (h9b). Not ported yet: each call fails with
//! [`StoreError::Unsupported`].

use super::*;

pub(super) fn board(_store: &PgStore, _q: &BoardQuery) -> Result<BoardData, StoreError> {
    Err(StoreError::Unsupported("board"))
}

pub(super) fn summary(_store: &PgStore) -> Result<Summary, StoreError> {
    Err(StoreError::Unsupported("summary"))
}
