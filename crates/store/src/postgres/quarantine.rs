//! Quarantine in PostgreSQL (as `sqlite/quarantine.rs`): inputs that could not be taken in,
//! kept with their reason and a reference to the raw bytes (never the bytes themselves).

use super::*;

pub(super) fn quarantine(store: &PgStore, q: &Quarantined) -> Result<(i64, bool), StoreError> {
    store.tx(|tx| {
        // Two instances quarantining the same bytes at once: the lock makes the second wait
        // and then find the first's row (no unique key: older stores may hold duplicates).
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('petitiond.quarantine.' || $1 || $2))",
            &[&q.source, &q.raw_ref],
        )?;
        let known = tx.query_opt(
            "SELECT id FROM quarantine WHERE source = $1 AND raw_ref = $2 ORDER BY id LIMIT 1",
            &[&q.source, &q.raw_ref],
        )?;
        if let Some(r) = known {
            return Ok((r.try_get(0)?, false));
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO quarantine (source, reference, reason, detail, raw_ref, size)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &q.source,
                    &q.reference,
                    &q.reason,
                    &q.detail,
                    &q.raw_ref,
                    &(q.size as i64),
                ],
            )?
            .try_get(0)?;
        Ok((id, true))
    })
}

pub(super) fn list_quarantine(
    store: &PgStore,
    limit: usize,
) -> Result<Vec<QuarantineRow>, StoreError> {
    let rows = store.conn()?.query(
        "SELECT id, at, source, reference, reason, detail, raw_ref, size FROM quarantine
         ORDER BY id DESC LIMIT $1",
        &[&(limit as i64)],
    )?;
    rows.iter()
        .map(|r| {
            Ok(QuarantineRow {
                id: r.try_get(0)?,
                at: r.try_get(1)?,
                entry: Quarantined {
                    source: r.try_get(2)?,
                    reference: r.try_get(3)?,
                    reason: r.try_get(4)?,
                    detail: r.try_get(5)?,
                    raw_ref: r.try_get(6)?,
                    size: r.try_get::<_, i64>(7)? as u64,
                },
            })
        })
        .collect()
}
