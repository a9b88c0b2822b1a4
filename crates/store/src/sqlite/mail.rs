//! The mail outbox (alert and report e-mails) and the report runs that queue them once per
//! period.

use super::*;

pub(super) fn report_ran(
    store: &SqliteStore,
    kind: &str,
    period: &str,
) -> Result<bool, StoreError> {
    Ok(store
        .conn()
        .query_row(
            "SELECT 1 FROM report_runs WHERE kind = ?1 AND period = ?2",
            params![kind, period],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub(super) fn record_report_run(
    store: &SqliteStore,
    kind: &str,
    period: &str,
    mails: &[(String, NewMail)],
    records: &[NewOutbox],
) -> Result<bool, StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "INSERT OR IGNORE INTO report_runs (kind, period) VALUES (?1, ?2)",
        params![kind, period],
    )?;
    if n == 0 {
        return Ok(false);
    }
    let item = format!("report:{kind}");
    for o in records {
        tx.execute(
            "INSERT INTO outbox (item_id, topic, msg_key, ce_id, headers, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![item, o.topic, o.key, o.ce_id, serde_json::to_string(&o.headers)?, o.payload],
        )?;
    }
    for (id, m) in mails {
        tx.execute(
            "INSERT OR IGNORE INTO mail_outbox (alert_id, recipients, subject, body) VALUES (?1, ?2, ?3, ?4)",
            params![id, serde_json::to_string(&m.recipients)?, m.subject, m.body],
        )?;
    }
    tx.commit()?;
    Ok(true)
}

pub(super) fn pending_mail(store: &SqliteStore, limit: usize) -> Result<Vec<MailRow>, StoreError> {
    let conn = store.conn();
    let mut st = conn.prepare_cached(
        "SELECT alert_id, recipients, subject, body, attempts FROM mail_outbox WHERE state = 'pending' ORDER BY created_at, alert_id LIMIT ?1",
    )?;
    let rows = st
        .query_map([limit as i64], |r| {
            let rcpt: String = r.get(1)?;
            Ok(MailRow {
                alert_id: r.get(0)?,
                recipients: serde_json::from_str(&rcpt).unwrap_or_default(),
                subject: r.get(2)?,
                body: r.get(3)?,
                attempts: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn mark_mail(
    store: &SqliteStore,
    alert_ids: &[String],
    state: MailState,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut st = tx.prepare_cached(
            "UPDATE mail_outbox SET state = ?2, last_error = ?3,
             attempts = attempts + (?2 = 'sending'),
             sent_at = CASE WHEN ?2 = 'sent' THEN strftime('%Y-%m-%dT%H:%M:%fZ','now') ELSE sent_at END
             WHERE alert_id = ?1",
        )?;
        for id in alert_ids {
            st.execute(params![id, state.as_str(), error])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn settle_interrupted_mail(store: &SqliteStore) -> Result<u64, StoreError> {
    let n = store.conn().execute(
        "UPDATE mail_outbox SET state = 'unknown', last_error = 'interrupted while sending: not re-sent, to avoid a duplicate' WHERE state = 'sending'",
        [],
    )?;
    Ok(n as u64)
}
