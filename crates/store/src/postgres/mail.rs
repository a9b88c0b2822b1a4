//! The mail outbox (alert and report e-mails) and the report runs that queue them once per
//! period, in PostgreSQL (as `sqlite/mail.rs`).

use super::rows::{insert_mail, insert_outbox};
use super::*;

pub(super) fn report_ran(store: &PgStore, kind: &str, period: &str) -> Result<bool, StoreError> {
    Ok(store
        .conn()?
        .query_opt(
            "SELECT 1 FROM report_runs WHERE kind = $1 AND period = $2",
            &[&kind, &period],
        )?
        .is_some())
}

pub(super) fn record_report_run(
    store: &PgStore,
    kind: &str,
    period: &str,
    mails: &[(String, NewMail)],
    records: &[NewOutbox],
) -> Result<bool, StoreError> {
    let item = format!("report:{kind}");
    store.tx(|tx| {
        let n = tx.execute(
            "INSERT INTO report_runs (kind, period) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&kind, &period],
        )?;
        if n == 0 {
            return Ok(false);
        }
        for o in records {
            insert_outbox(tx, &item, o, false)?;
        }
        for (id, m) in mails {
            insert_mail(tx, id, m)?;
        }
        Ok(true)
    })
}

pub(super) fn pending_mail(store: &PgStore, limit: usize) -> Result<Vec<MailRow>, StoreError> {
    let rows = store.conn()?.query(
        "SELECT alert_id, recipients, subject, body, attempts FROM mail_outbox
         WHERE state = 'pending' ORDER BY created_at, alert_id LIMIT $1",
        &[&(limit as i64)],
    )?;
    rows.iter()
        .map(|r| {
            let rcpt: String = r.try_get(1)?;
            Ok(MailRow {
                alert_id: r.try_get(0)?,
                recipients: serde_json::from_str(&rcpt).unwrap_or_default(),
                subject: r.try_get(2)?,
                body: r.try_get(3)?,
                attempts: r.try_get(4)?,
            })
        })
        .collect()
}

pub(super) fn mark_mail(
    store: &PgStore,
    alert_ids: &[String],
    state: MailState,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let sending = i64::from(state == MailState::Sending);
    store.conn()?.execute(
        "UPDATE mail_outbox SET state = $2, last_error = $3, attempts = attempts + $4,
             sent_at = CASE WHEN $2 = 'sent' THEN petitiond_now() ELSE sent_at END
         WHERE alert_id = ANY($1)",
        &[&alert_ids, &state.as_str(), &error, &sending],
    )?;
    Ok(())
}

pub(super) fn settle_interrupted_mail(store: &PgStore) -> Result<u64, StoreError> {
    Ok(store.conn()?.execute(
        "UPDATE mail_outbox SET state = 'unknown',
             last_error = 'interrupted while sending: not re-sent, to avoid a duplicate'
         WHERE state = 'sending'",
        &[],
    )?)
}
