//! Quarantine: items that could not be taken in, kept with their reason and a reference to
//! the raw input (never the raw data itself), for an operator to look at.

use super::*;

pub(super) fn quarantine(store: &SqliteStore, q: &Quarantined) -> Result<(i64, bool), StoreError> {
    let conn = store.conn();
    let known: Option<i64> = conn
        .query_row(
            "SELECT id FROM quarantine WHERE source = ?1 AND raw_ref = ?2 ORDER BY id LIMIT 1",
            params![q.source, q.raw_ref],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = known {
        return Ok((id, false));
    }
    conn.execute(
        "INSERT INTO quarantine (source, reference, reason, detail, raw_ref, size) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![q.source, q.reference, q.reason, q.detail, q.raw_ref, q.size as i64],
    )?;
    Ok((conn.last_insert_rowid(), true))
}

pub(super) fn list_quarantine(
    store: &SqliteStore,
    limit: usize,
) -> Result<Vec<QuarantineRow>, StoreError> {
    let conn = store.conn();
    let mut st = conn.prepare(
        "SELECT id, at, source, reference, reason, detail, raw_ref, size FROM quarantine ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = st
        .query_map([limit as i64], |r| {
            Ok(QuarantineRow {
                id: r.get(0)?,
                at: r.get(1)?,
                entry: Quarantined {
                    source: r.get(2)?,
                    reference: r.get(3)?,
                    reason: r.get(4)?,
                    detail: r.get(5)?,
                    raw_ref: r.get(6)?,
                    size: r.get::<_, i64>(7)? as u64,
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
