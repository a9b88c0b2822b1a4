//! Alert mail: the text operators read (bilingual, Chinese first) and the [`Mailer`] that sends
//! the store's mail outbox over SMTP (lettre).
//!
//! Texts carry item id, clock (with its citation), alert kind, department and times — never
//! petitioner data: `subject` and `body` are not given any.
//!
//! Delivery is at most once per alert. A row is marked `sending` (committed) before its SMTP
//! transaction and `sent` after the server accepts it; rows found in `sending` at start-up were
//! interrupted and become `unknown` without being sent again. A definite refusal that may pass
//! (connection refused, TLS set-up, 4xx) puts the row back to `pending` with an exponential
//! back-off; a permanent refusal (5xx) marks it `failed`. An error after the transaction may
//! have reached the server (connection lost mid-session, timeout) cannot tell sent from not
//! sent: the row is marked `failed` with an "outcome unknown" error and counted as unknown,
//! never re-sent. The Message-ID is derived from the alert id (a digest's from its sorted alert
//! ids) so a receiving system can de-duplicate too.

use super::AlertSections;
use super::config::{EmailConfig, SmtpTls};
use crate::metrics::Metrics;
use crate::store::{self, MailRow, MailState, Store, StoreError};
use anyhow::Context as _;
use jiff::Timestamp;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use petitiond_core::sla::clock::{AlertKind, Clock};
use petitiond_core::sla::policy::ClockPolicy;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;
// tokio's monotonic instant: retry timers follow paused time in tests.
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Rows fetched per poll.
const BATCH: usize = 500;
/// Longest back-off after transient failures (never shorter than the poll interval).
const MAX_BACKOFF: Duration = Duration::from_secs(300);

fn kind_zh(kind: AlertKind) -> String {
    match kind {
        AlertKind::Warning(p) => format!("时限已过 {p}% 预警"),
        AlertKind::Breach => "已超期".into(),
        AlertKind::Reminder(n) => format!("超期第 {n} 次催办"),
        AlertKind::Escalation => "超期升级督办".into(),
    }
}

fn kind_en(kind: AlertKind) -> String {
    match kind {
        AlertKind::Warning(p) => format!("warning: {p}% of the time limit used"),
        AlertKind::Breach => "deadline breached".into(),
        AlertKind::Reminder(n) => format!("reminder {n} after the breach"),
        AlertKind::Escalation => "escalation: past the deadline".into(),
    }
}

/// Subject of one alert's mail: kind (Chinese, then English), clock id, item id, and a late
/// mark when the alert fired on catch-up.
pub fn subject(clock_id: &str, kind: AlertKind, item_id: &str, late: bool) -> String {
    format!(
        "[petitiond] {} / {} · 时限 clock {clock_id} · 事项 item {item_id}{}",
        kind_zh(kind),
        kind_en(kind),
        if late { " · 补发 late" } else { "" }
    )
}

/// A time in the calendar's zone, e.g. `2025-03-04 17:30:00 +08:00 Asia/Shanghai`.
fn local(cfg: &AlertSections<'_>, ts: Timestamp) -> String {
    cfg.calendar
        .local(ts)
        .strftime("%Y-%m-%d %H:%M:%S %:z %Q")
        .to_string()
}

/// Body of one alert's mail. Only ids, clock, department and times: no petitioner data.
pub fn body(
    cfg: &AlertSections<'_>,
    p: &ClockPolicy,
    c: &Clock,
    kind: AlertKind,
    at: Timestamp,
    now: Timestamp,
    late: bool,
) -> String {
    let department = match cfg.department(&c.department) {
        Some(d) if !d.name.is_empty() => format!("{} ({})", d.name, d.id),
        _ => c.department.clone(),
    };
    let mut b = String::new();
    let _ = writeln!(b, "信访事项时限告警 / Petition SLA alert");
    let _ = writeln!(b);
    let _ = writeln!(
        b,
        "事件 / What:              {} / {}",
        kind_zh(kind),
        kind_en(kind)
    );
    let _ = writeln!(b, "事项编号 / Item id:       {}", c.item_id);
    let _ = writeln!(b, "时限 / Clock:             {} — {}", c.clock_id, p.rule);
    let _ = writeln!(b, "依据 / Source:            {}", p.citation);
    let _ = writeln!(b, "责任部门 / Department:    {department}");
    let _ = writeln!(b, "时限状态 / Clock state:   {}", c.state.as_str());
    let _ = writeln!(b, "开始 / Started:           {}", local(cfg, c.started_at));
    let _ = writeln!(b, "到期 / Due:               {}", local(cfg, c.due_at));
    if c.provisional {
        let _ = writeln!(
            b,
            "暂定 / Provisional:       是，按法定节假日推算，国务院放假安排公布后重算 / yes: computed on a provisional calendar (no official notice for the year yet); recomputed when it is installed"
        );
    }
    if c.extended_days > 0 {
        let _ = writeln!(b, "已延期 / Extended by:     {} 日 / days", c.extended_days);
    }
    let _ = writeln!(b, "计划告警 / Scheduled:     {}", local(cfg, at));
    let _ = writeln!(b, "实际发出 / Fired:         {}", local(cfg, now));
    if late {
        let _ = writeln!(
            b,
            "补发 / Late:              是，系统恢复后补发 / yes, fired on catch-up after an outage"
        );
    }
    let _ = writeln!(b);
    let _ = writeln!(
        b,
        "本邮件只含事项编号与时限信息，不含信访人信息；详情请在信访业务系统中查看。"
    );
    let _ = writeln!(
        b,
        "This mail carries the item id and deadline only, never petitioner data; see the petition system for details."
    );
    b
}

fn loop_kind(kind: &str) -> (&'static str, &'static str) {
    match kind {
        super::KIND_REPLY_BOUNCED => ("答复不合格已退回", "reply bounced to the department"),
        super::KIND_REVISIT => ("群众评价不满意，需回访", "dissatisfied evaluation: revisit"),
        _ => ("闭环告警", "closed-loop alert"),
    }
}

/// Subject of a closed-loop alert's mail (a bounced reply, a revisit).
pub fn loop_subject(kind: &str, item_id: &str) -> String {
    let (zh, en) = loop_kind(kind);
    format!("[petitiond] {zh} / {en} · 事项 item {item_id}")
}

/// Body of a closed-loop alert's mail: ids, department, the clock it concerns, and for a
/// bounced reply the missing elements and the banned phrases found (configured phrases, never
/// the reply's text).
pub fn loop_body(cfg: &AlertSections<'_>, a: &super::LoopAlert<'_>) -> String {
    let (zh, en) = loop_kind(a.kind);
    let department = match cfg.department(a.department) {
        Some(d) if !d.name.is_empty() => format!("{} ({})", d.name, d.id),
        _ => a.department.to_string(),
    };
    let list = |key: &str| -> Option<String> {
        let v = a.extra.get(key)?.as_array()?;
        let items: Vec<&str> = v.iter().filter_map(|x| x.as_str()).collect();
        (!items.is_empty()).then(|| items.join("、"))
    };
    let mut b = String::new();
    let _ = writeln!(b, "信访事项闭环告警 / Petition closed-loop alert");
    let _ = writeln!(b);
    let _ = writeln!(b, "事件 / What:              {zh} / {en}");
    let _ = writeln!(b, "事项编号 / Item id:       {}", a.item_id);
    let _ = writeln!(b, "状态事件 / Status event:  {}", a.event_id);
    let _ = writeln!(b, "责任部门 / Department:    {department}");
    let _ = writeln!(b, "事件时间 / At:            {}", local(cfg, a.at));
    if let Some(m) = list("missing_zh") {
        let _ = writeln!(b, "缺少要素 / Missing:       {m}");
    }
    if let Some(m) = list("banned") {
        let _ = writeln!(b, "含模糊表述 / Vague:       {m}");
    }
    if a.extra.get("no_text").and_then(|v| v.as_bool()) == Some(true) {
        let _ = writeln!(b, "答复正文 / Reply text:    无 / none");
    }
    if let Some((p, c)) = a.clock {
        let _ = writeln!(b, "时限 / Clock:             {} — {}", c.clock_id, p.rule);
        let _ = writeln!(b, "时限状态 / Clock state:   {}", c.state.as_str());
        let _ = writeln!(b, "到期 / Due:               {}", local(cfg, c.due_at));
    }
    let _ = writeln!(b);
    let _ = writeln!(
        b,
        "本邮件只含事项编号与时限信息，不含信访人信息及答复正文；详情请在信访业务系统中查看。"
    );
    let _ = writeln!(
        b,
        "This mail carries ids and deadlines only, never petitioner data or the reply's text; see the petition system for details."
    );
    b
}

/// One mail to send: a single alert, or a digest of several for the same recipients.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Sorted, de-duplicated.
    pub recipients: Vec<String>,
    pub rows: Vec<MailRow>,
    pub digest: bool,
}

impl Outgoing {
    pub fn alert_ids(&self) -> Vec<String> {
        self.rows.iter().map(|r| r.alert_id.clone()).collect()
    }
}

/// Groups rows by identical recipient set (in order of first appearance); a group with more
/// rows than `digest_threshold` becomes one digest, otherwise one mail per row.
pub fn plan(rows: Vec<MailRow>, digest_threshold: usize) -> Vec<Outgoing> {
    let mut groups: Vec<(Vec<String>, Vec<MailRow>)> = Vec::new();
    for row in rows {
        let mut key: Vec<String> = row
            .recipients
            .iter()
            .map(|r| r.trim().to_string())
            .collect();
        key.sort();
        key.dedup();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    let mut out = Vec::new();
    for (recipients, rows) in groups {
        if rows.len() > digest_threshold {
            out.push(Outgoing {
                recipients,
                rows,
                digest: true,
            });
        } else {
            out.extend(rows.into_iter().map(|r| Outgoing {
                recipients: recipients.clone(),
                rows: vec![r],
                digest: false,
            }));
        }
    }
    out
}

/// Message-ID for one alert, or for a digest of the given alerts (order does not matter).
pub fn message_id(alert_ids: &[String], domain: &str) -> String {
    if let [one] = alert_ids {
        return format!("<{one}.alert@{domain}>");
    }
    let mut ids: Vec<&str> = alert_ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    let hash = Sha256::digest(ids.join("\n").as_bytes());
    format!("<{}.digest@{domain}>", hex::encode(&hash[..16]))
}

/// Subject and body of a digest: how many alerts, and every alert in full.
pub fn digest_text(rows: &[MailRow]) -> (String, String) {
    let n = rows.len();
    let subject = format!("[petitiond] 时限告警汇总：{n} 条 / SLA alert digest: {n} alerts");
    let mut b = String::new();
    let _ = writeln!(
        b,
        "信访事项时限告警汇总，共 {n} 条 / Petition SLA alert digest, {n} alerts"
    );
    let _ = writeln!(b);
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(b, "{:>3}. 告警 alert {}  {}", i + 1, r.alert_id, r.subject);
    }
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(b);
        let _ = writeln!(b, "----- {}/{n} 告警 alert {} -----", i + 1, r.alert_id);
        let _ = writeln!(b, "{}", r.body.trim_end());
    }
    (subject, b)
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no out-of-office replies to alert mail.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

/// The SMTP transport from config: STARTTLS (required), implicit TLS or plain; AUTH PLAIN or
/// LOGIN when username and password are set; the configured timeout for every command.
/// Certificates are checked against the system's trust store. A password without TLS is
/// refused unless `allow_plaintext_auth` (config validation says so first, with the line).
pub fn transport(cfg: &EmailConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    anyhow::ensure!(
        !(cfg.tls == SmtpTls::None && cfg.password.is_some() && !cfg.allow_plaintext_auth),
        "alerts.email: tls = \"none\" would send the SMTP password in clear text (set allow_plaintext_auth = true to accept that)"
    );
    let tls = match cfg.tls {
        SmtpTls::StartTls => Tls::Required(TlsParameters::new(cfg.host.clone())?),
        SmtpTls::Tls => Tls::Wrapper(TlsParameters::new(cfg.host.clone())?),
        SmtpTls::None => Tls::None,
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
        .port(cfg.port)
        .tls(tls)
        .timeout(Some(cfg.timeout));
    if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
        b = b
            .credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(b.build())
}

/// Wait before retrying after the `failures`-th transient failure in a row (1-based): the poll
/// interval doubled each time, capped at five minutes (never below the poll interval).
pub fn backoff(poll_interval: Duration, failures: i64) -> Duration {
    let cap = MAX_BACKOFF.max(poll_interval);
    let exp = (failures - 1).clamp(0, 16) as u32;
    poll_interval
        .checked_mul(1u32 << exp)
        .unwrap_or(cap)
        .min(cap)
}

/// What an SMTP failure means for the rows of the mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// Not delivered, may pass later: back to pending, after a back-off.
    Transient,
    /// Refused for good: failed.
    Permanent,
    /// May or may not have been accepted: not re-sent (no duplicates), counted as unknown.
    Unknown,
}

pub fn classify(e: &lettre::transport::smtp::Error) -> SendFailure {
    if e.is_transient() {
        // 4xx: the server said no (at any stage, DATA included); nothing was accepted.
        SendFailure::Transient
    } else if e.is_permanent() || e.is_client() {
        // 5xx, or the client refused to send this message (e.g. 8BITMIME missing).
        SendFailure::Permanent
    } else if e.is_tls() || is_connect_error(e) {
        // Connecting (refused, unreachable, connect timeout) or TLS set-up failed: no SMTP
        // transaction took place.
        SendFailure::Transient
    } else {
        // Network error mid-session, unreadable response: the outcome cannot be known.
        SendFailure::Unknown
    }
}

/// lettre reports every failure to open the connection (and to set up TLS) as its
/// `Connection` kind, shown as "Connection error"; a refused connection is also recognised
/// from its I/O error.
fn is_connect_error(e: &lettre::transport::smtp::Error) -> bool {
    if e.to_string().starts_with("Connection error") {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = s.source();
    }
    false
}

/// Sends the mail outbox; see the module documentation for the guarantees.
#[derive(Clone)]
pub struct Mailer {
    pub config: EmailConfig,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
}

struct Prepared {
    from: Mailbox,
    domain: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Mailer {
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let settled = store::blocking(&self.store, |s| s.settle_interrupted_mail())
            .await
            .context("settling mail interrupted by the last stop")?;
        if settled > 0 {
            self.metrics.mail_unknown.inc_by(settled);
            tracing::warn!(
                count = settled,
                "alert mails interrupted mid-send by the last stop are marked unknown and not re-sent (no duplicates); they may not have arrived"
            );
        }
        let from: Mailbox = self
            .config
            .from
            .parse()
            .with_context(|| "alerts.email.from is not a usable address".to_string())?;
        let domain = from.email.domain().to_string();
        let prepared = Prepared {
            from,
            domain,
            transport: transport(&self.config).context("building the SMTP transport")?,
        };
        tracing::info!(
            host = %self.config.host,
            port = self.config.port,
            tls = ?self.config.tls,
            auth = self.config.username.is_some(),
            "alert mailer started"
        );
        let mut not_before: HashMap<String, Instant> = HashMap::new();
        loop {
            if let Err(e) = self.poll(&prepared, &mut not_before, &stop).await {
                tracing::error!(error = %e, "alert mail poll failed; retrying at the next poll");
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        tracing::info!("alert mailer stopped");
        Ok(())
    }

    async fn poll(
        &self,
        p: &Prepared,
        not_before: &mut HashMap<String, Instant>,
        stop: &CancellationToken,
    ) -> Result<(), StoreError> {
        let rows = store::blocking(&self.store, |s| s.pending_mail(BATCH)).await?;
        if rows.len() < BATCH {
            not_before.retain(|id, _| rows.iter().any(|r| &r.alert_id == id));
        }
        let now = Instant::now();
        let ready: Vec<MailRow> = rows
            .into_iter()
            .filter(|r| not_before.get(&r.alert_id).is_none_or(|t| *t <= now))
            .collect();
        if ready.is_empty() {
            return Ok(());
        }
        for out in plan(ready, self.config.digest_threshold) {
            // A mail in flight is finished (bounded by the SMTP timeout); none is started after stop.
            if stop.is_cancelled() {
                break;
            }
            self.send_one(p, out, not_before).await?;
        }
        Ok(())
    }

    async fn mark(
        &self,
        ids: &[String],
        state: MailState,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        store::blocking(&self.store, move |s| {
            s.mark_mail(&ids, state, error.as_deref())
        })
        .await
    }

    async fn send_one(
        &self,
        p: &Prepared,
        out: Outgoing,
        not_before: &mut HashMap<String, Instant>,
    ) -> Result<(), StoreError> {
        let ids = out.alert_ids();
        let n = ids.len() as u64;
        let message = match build_message(p, &out) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(alert_ids = ?ids, rows = n, error = %e, "alert mail cannot be built; marked failed");
                self.mark(
                    &ids,
                    MailState::Failed,
                    Some(format!("cannot build mail: {e}")),
                )
                .await?;
                self.metrics.mail_failed.inc_by(n);
                return Ok(());
            }
        };
        // Committed before the SMTP transaction: a crash from here on leaves the rows in
        // `sending`, settled as unknown at the next start, never sent twice.
        self.mark(&ids, MailState::Sending, None).await?;
        let attempts = out.rows.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
        match p.transport.send(message).await {
            Ok(_) => {
                for id in &ids {
                    not_before.remove(id);
                }
                if let Err(e) = self.mark(&ids, MailState::Sent, None).await {
                    tracing::error!(alert_ids = ?ids, error = %e, "alert mail sent but not recorded; it stays `sending` and is settled as unknown at the next start, not re-sent");
                    return Err(e);
                }
                self.metrics.mail_sent.inc_by(n);
                tracing::info!(
                    alert_ids = ?ids,
                    rows = n,
                    digest = out.digest,
                    recipients = out.recipients.len(),
                    "alert mail sent"
                );
            }
            Err(e) => match classify(&e) {
                SendFailure::Transient => {
                    let delay = backoff(self.config.poll_interval, attempts);
                    let at = Instant::now() + delay;
                    for id in &ids {
                        not_before.insert(id.clone(), at);
                    }
                    tracing::warn!(
                        alert_ids = ?ids,
                        rows = n,
                        attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        error = %e,
                        "alert mail not accepted for now; will retry"
                    );
                    self.mark(&ids, MailState::Pending, Some(e.to_string()))
                        .await?;
                }
                SendFailure::Permanent => {
                    tracing::error!(alert_ids = ?ids, rows = n, error = %e, "alert mail refused permanently; marked failed");
                    self.mark(&ids, MailState::Failed, Some(e.to_string()))
                        .await?;
                    self.metrics.mail_failed.inc_by(n);
                }
                SendFailure::Unknown => {
                    tracing::warn!(
                        alert_ids = ?ids,
                        rows = n,
                        error = %e,
                        "alert mail may or may not have been delivered; not re-sent (no duplicates)"
                    );
                    let error = format!("outcome unknown, not re-sent to avoid a duplicate: {e}");
                    self.mark(&ids, MailState::Failed, Some(error)).await?;
                    self.metrics.mail_unknown.inc_by(n);
                }
            },
        }
        Ok(())
    }
}

fn build_message(p: &Prepared, out: &Outgoing) -> anyhow::Result<Message> {
    if out.recipients.is_empty() {
        anyhow::bail!("no recipients");
    }
    let mut to = Mailboxes::new();
    for r in &out.recipients {
        to.push(
            r.parse::<Mailbox>()
                .map_err(|e| anyhow::anyhow!("a recipient is not a usable address: {e}"))?,
        );
    }
    let (subject, body) = match (out.digest, out.rows.as_slice()) {
        (false, [row]) => (row.subject.clone(), row.body.clone()),
        _ => digest_text(&out.rows),
    };
    let mut b = Message::builder()
        .from(p.from.clone())
        .subject(subject)
        .message_id(Some(message_id(&out.alert_ids(), &p.domain)))
        .header(ContentType::TEXT_PLAIN)
        .header(AutoSubmitted);
    for m in to {
        b = b.to(m);
    }
    Ok(b.body(body)?)
}

#[cfg(test)]
#[path = "mail_tests.rs"]
mod tests;
