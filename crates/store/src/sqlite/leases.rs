//! Leases of units run by one of several instances, and cursors moved under them (the fence;
//! ARCHITECTURE.md, "Several instances"). One statement each, so a check and its write are one
//! atomic step.

use super::*;

pub(super) fn acquire(conn: &Connection, unit: &str, instance: &str) -> Result<Lease, StoreError> {
    let epoch: i64 = conn.query_row(
        "INSERT INTO leases (unit, epoch, instance) VALUES (?1, 1, ?2)
         ON CONFLICT (unit) DO UPDATE SET epoch = leases.epoch + 1, instance = excluded.instance,
             since = strftime('%Y-%m-%dT%H:%M:%fZ','now')
         RETURNING epoch",
        params![unit, instance],
        |r| r.get(0),
    )?;
    Ok(Lease {
        unit: unit.to_string(),
        epoch,
    })
}

pub(super) fn holds(conn: &Connection, lease: &Lease) -> Result<bool, StoreError> {
    let newest: Option<i64> = conn
        .query_row(
            "SELECT epoch FROM leases WHERE unit = ?1",
            [&lease.unit],
            |r| r.get(0),
        )
        .optional()?;
    Ok(newest == Some(lease.epoch))
}

pub(super) fn list(conn: &Connection) -> Result<Vec<LeaseRow>, StoreError> {
    let mut st = conn.prepare("SELECT unit, epoch, instance, since FROM leases ORDER BY unit")?;
    let rows = st.query_map([], |r| {
        Ok(LeaseRow {
            unit: r.get(0)?,
            epoch: r.get(1)?,
            instance: r.get(2)?,
            since: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Writes the cursor only while `lease` is the unit's newest epoch and no newer epoch wrote
/// the cursor; zero rows written means fenced.
pub(super) fn set_cursor(
    conn: &Connection,
    source: &str,
    value: &str,
    lease: &Lease,
) -> Result<(), StoreError> {
    let n = conn.execute(
        "INSERT INTO cursors (source, value, epoch)
         SELECT ?1, ?2, ?4 WHERE (SELECT epoch FROM leases WHERE unit = ?3) = ?4
         ON CONFLICT (source) DO UPDATE SET value = excluded.value, epoch = excluded.epoch,
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
         WHERE cursors.epoch IS NULL OR cursors.epoch <= excluded.epoch",
        params![source, value, lease.unit, lease.epoch],
    )?;
    if n == 0 {
        return Err(StoreError::Fenced {
            unit: lease.unit.clone(),
            epoch: lease.epoch,
        });
    }
    Ok(())
}
