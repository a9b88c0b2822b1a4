//! Leases of units run by one of several instances, and cursors moved under them, in
//! PostgreSQL (the fence; as `sqlite/leases.rs`). Taking a lease raises the unit's epoch in
//! one statement (the row lock of the upsert orders concurrent takers); a leased cursor write
//! locks the lease row (`FOR SHARE`, so a taker waits until the write commits, and the write
//! waits for a taker that came first) and writes only while its epoch is the unit's newest.

use super::*;

pub(super) fn acquire(store: &PgStore, unit: &str, instance: &str) -> Result<Lease, StoreError> {
    let epoch: i64 = store
        .conn()?
        .query_one(
            "INSERT INTO leases (unit, epoch, instance) VALUES ($1, 1, $2)
             ON CONFLICT (unit) DO UPDATE SET epoch = leases.epoch + 1,
                 instance = excluded.instance, since = petitiond_now()
             RETURNING epoch",
            &[&unit, &instance],
        )?
        .try_get(0)?;
    Ok(Lease {
        unit: unit.to_string(),
        epoch,
    })
}

pub(super) fn holds(store: &PgStore, lease: &Lease) -> Result<bool, StoreError> {
    let newest = store
        .conn()?
        .query_opt("SELECT epoch FROM leases WHERE unit = $1", &[&lease.unit])?
        .map(|r| r.try_get::<_, i64>(0))
        .transpose()?;
    Ok(newest == Some(lease.epoch))
}

pub(super) fn list(store: &PgStore) -> Result<Vec<LeaseRow>, StoreError> {
    let rows = store.conn()?.query(
        "SELECT unit, epoch, instance, since FROM leases ORDER BY unit",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(LeaseRow {
                unit: r.try_get(0)?,
                epoch: r.try_get(1)?,
                instance: r.try_get(2)?,
                since: r.try_get(3)?,
            })
        })
        .collect()
}

/// Writes the cursor only while `lease` is the unit's newest epoch and no newer epoch wrote
/// the cursor; otherwise [`StoreError::Fenced`] and nothing is written.
pub(super) fn set_cursor(
    store: &PgStore,
    source: &str,
    value: &str,
    lease: &Lease,
) -> Result<(), StoreError> {
    let fenced = || StoreError::Fenced {
        unit: lease.unit.clone(),
        epoch: lease.epoch,
    };
    store.tx(|tx| {
        let newest = tx
            .query_opt(
                "SELECT epoch FROM leases WHERE unit = $1 FOR SHARE",
                &[&lease.unit],
            )?
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?;
        if newest != Some(lease.epoch) {
            return Err(fenced());
        }
        let n = tx.execute(
            "INSERT INTO cursors (source, value, epoch) VALUES ($1, $2, $3)
             ON CONFLICT (source) DO UPDATE SET value = excluded.value, epoch = excluded.epoch,
                 updated_at = petitiond_now()
             WHERE cursors.epoch IS NULL OR cursors.epoch <= excluded.epoch",
            &[&source, &value, &lease.epoch],
        )?;
        if n == 0 {
            return Err(fenced());
        }
        Ok(())
    })
}
