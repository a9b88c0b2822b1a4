//! Alert mail against a real SMTP server (aiosmtpd, one per test, writing a Maildir): the
//! library's `Mailer` on a real store. No Kafka needed.
//!
//! `PETITIOND_SMTPD_PYTHON` names a Python with aiosmtpd (scripts/test.sh sets it); without it
//! the tests are skipped, or fail under `CI=true`.

use crate::helpers::{free_port, wait_for_port};
use petitiond::alerts::mail::{Mailer, subject};
use petitiond::config::{EmailConfig, SmtpTls};
use petitiond::metrics::Metrics;
use petitiond::sla::clock::AlertKind;
use petitiond::store::{MailState, SqliteStore, Store};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const FROM: &str = "petitiond@petition.example.gov.cn";
const DEPT: &str = "hrss-alerts@hrss.example.gov.cn";
const SUPERVISOR: &str = "supervisor@petition.example.gov.cn";
const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) fn smtpd_python() -> Option<String> {
    match std::env::var("PETITIOND_SMTPD_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "PETITIOND_SMTPD_PYTHON is not set: the test SMTP server is missing (run scripts/test.sh)"
                );
            }
            eprintln!(
                "skipped: PETITIOND_SMTPD_PYTHON not set (a Python with aiosmtpd; run scripts/test.sh)"
            );
            None
        }
    }
}

/// Refuses some recipients by their local part, to exercise 4xx and 5xx answers.
const REFUSING_HANDLER: &str = r#"
from aiosmtpd.handlers import Mailbox

class RefusingMailbox(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        if address.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"
"#;

/// An aiosmtpd server owned by one test; every accepted message lands in `maildir`.
pub(crate) struct Smtpd {
    python: String,
    pub(crate) port: u16,
    dir: PathBuf,
    maildir: PathBuf,
    handler: &'static str,
    child: Option<Child>,
}

impl Smtpd {
    pub(crate) fn new(python: &str, dir: &Path) -> Smtpd {
        Smtpd {
            python: python.to_string(),
            port: free_port(),
            dir: dir.to_path_buf(),
            maildir: dir.join("received"),
            handler: "aiosmtpd.handlers.Mailbox",
            child: None,
        }
    }

    fn refusing(mut self) -> Smtpd {
        std::fs::write(self.dir.join("refusing.py"), REFUSING_HANDLER).unwrap();
        self.handler = "refusing.RefusingMailbox";
        self
    }

    pub(crate) fn up(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("smtpd.log"))
            .unwrap();
        let child = Command::new(&self.python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", self.handler])
            .arg(&self.maildir)
            .env("PYTHONPATH", &self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start aiosmtpd");
        self.child = Some(child);
        wait_for_port(self.port, DEADLINE);
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every message received so far, parsed.
    pub(crate) fn received(&self) -> Vec<Received> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(dir) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for f in dir {
                let raw = std::fs::read(f.unwrap().path()).unwrap();
                let m = mail_parser::MessageParser::default()
                    .parse(&raw)
                    .expect("a parsable message");
                let header = |name: &str| {
                    m.header_raw(name)
                        .map(|v| v.trim().to_string())
                        .unwrap_or_default()
                };
                out.push(Received {
                    subject: m.subject().unwrap_or_default().to_string(),
                    message_id: m.message_id().unwrap_or_default().to_string(),
                    rcpt_to: header("X-RcptTo"),
                    auto_submitted: header("Auto-Submitted"),
                    body: m.body_text(0).unwrap_or_default().to_string(),
                });
            }
        }
        out
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("smtpd.log")).unwrap_or_default()
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        self.down();
        crate::capture::maildir("alert-mail", &self.maildir);
        crate::capture::file("smtpd-log", &self.dir.join("smtpd.log"));
    }
}

#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) subject: String,
    pub(crate) message_id: String,
    pub(crate) rcpt_to: String,
    pub(crate) auto_submitted: String,
    pub(crate) body: String,
}

/// A store with mail rows inserted as the alert engine would (plain SQL into `mail_outbox`).
struct Fixture {
    dir: tempfile::TempDir,
    db: PathBuf,
    store: Arc<dyn Store>,
    metrics: Metrics,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("petitiond.db");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&db, Duration::from_secs(5)).unwrap());
        Fixture {
            dir,
            db,
            store,
            metrics: Metrics::new(),
        }
    }

    fn sql(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(&self.db).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c
    }

    /// Inserts the mail of an alert; returns (alert id, subject).
    fn alert(&self, n: usize, kind: AlertKind, recipients: &[&str]) -> (String, String) {
        let item = format!("item-{n:04}");
        let id = petitiond::alerts::alert_id(
            &item,
            "statutory.accept",
            kind,
            jiff::Timestamp::from_second(1_740_000_000 + n as i64).unwrap(),
        );
        let subject = subject("statutory.accept", kind, &item, false);
        let body = format!("事项编号 / Item id: {item}\nalert {id}\n");
        self.sql()
            .execute(
                "INSERT INTO mail_outbox (alert_id, recipients, subject, body) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![id, serde_json::to_string(recipients).unwrap(), subject, body],
            )
            .unwrap();
        (id, subject)
    }

    fn state(&self, alert_id: &str) -> (String, i64, Option<String>) {
        self.sql()
            .query_row(
                "SELECT state, attempts, last_error FROM mail_outbox WHERE alert_id = ?1",
                [alert_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    }

    fn email(&self, port: u16, digest_threshold: usize) -> EmailConfig {
        EmailConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: FROM.into(),
            timeout: Duration::from_secs(10),
            digest_threshold,
            poll_interval: Duration::from_millis(100),
            allow_plaintext_auth: false,
        }
    }

    fn start(&self, config: EmailConfig) -> Running {
        let stop = CancellationToken::new();
        let mailer = Mailer {
            config,
            store: Arc::clone(&self.store),
            metrics: self.metrics.clone(),
        };
        let task = tokio::spawn(mailer.run(stop.clone()));
        Running { stop, task }
    }
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the mailer stops within the deadline")
            .expect("the mailer task does not panic")
            .expect("the mailer returns Ok");
    }
}

/// Polls `f` until it holds; panics with `what` after the deadline.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_in(fx: &Fixture, ids: &[String], state: &str) -> bool {
    ids.iter().all(|id| fx.state(id).0 == state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_alerts_become_two_mails_and_are_never_sent_again() {
    let Some(python) = smtpd_python() else { return };
    let fx = Fixture::new();
    let mut smtpd = Smtpd::new(&python, fx.dir.path());
    smtpd.up();
    let rcpt = [DEPT, SUPERVISOR];
    let alerts = [
        fx.alert(1, AlertKind::Breach, &rcpt),
        fx.alert(2, AlertKind::Warning(80), &rcpt),
    ];
    let ids: Vec<String> = alerts.iter().map(|(id, _)| id.clone()).collect();

    let run = fx.start(fx.email(smtpd.port, 5));
    eventually("both rows sent", || all_in(&fx, &ids, "sent")).await;
    eventually("both mails received", || smtpd.received().len() == 2).await;
    run.stop().await;

    let got = smtpd.received();
    for (id, subject) in &alerts {
        let m = got
            .iter()
            .find(|m| m.message_id == format!("{id}.alert@petition.example.gov.cn"))
            .unwrap_or_else(|| panic!("no mail with the Message-ID of {id}: {got:#?}"));
        assert_eq!(&m.subject, subject);
        assert!(
            m.rcpt_to.contains(DEPT) && m.rcpt_to.contains(SUPERVISOR),
            "{m:?}"
        );
        assert_eq!(m.auto_submitted, "auto-generated");
        assert!(m.body.contains(id.as_str()), "{m:?}");
    }
    assert_eq!(fx.metrics.mail_sent.get(), 2);

    // Running again (a restart) sends nothing: the rows are recorded as sent.
    let run = fx.start(fx.email(smtpd.port, 5));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    run.stop().await;
    assert_eq!(smtpd.received().len(), 2, "{}", smtpd.log());
    assert_eq!(fx.metrics.mail_sent.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_alerts_for_the_same_recipients_become_one_digest() {
    let Some(python) = smtpd_python() else { return };
    let fx = Fixture::new();
    let mut smtpd = Smtpd::new(&python, fx.dir.path());
    smtpd.up();
    let ids: Vec<String> = (1..=7)
        .map(|n| fx.alert(n, AlertKind::Breach, &[DEPT, SUPERVISOR]).0)
        .collect();
    // A different recipient set is decided on its own: one alert, one ordinary mail.
    let (other, other_subject) = fx.alert(8, AlertKind::Escalation, &[SUPERVISOR]);

    let run = fx.start(fx.email(smtpd.port, 5));
    eventually("all rows sent", || {
        all_in(&fx, &ids, "sent") && fx.state(&other).0 == "sent"
    })
    .await;
    eventually("two mails received", || smtpd.received().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.stop().await;

    let got = smtpd.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    let digest = got
        .iter()
        .find(|m| m.message_id.ends_with(".digest@petition.example.gov.cn"))
        .unwrap_or_else(|| panic!("no digest: {got:#?}"));
    assert!(
        digest.subject.contains("7 条") && digest.subject.contains("7 alerts"),
        "{}",
        digest.subject
    );
    for id in &ids {
        assert!(
            digest.body.contains(id.as_str()),
            "{id} missing from the digest"
        );
    }
    assert!(!digest.body.contains(other.as_str()));
    let single = got
        .iter()
        .find(|m| m.message_id == format!("{other}.alert@petition.example.gov.cn"))
        .unwrap_or_else(|| panic!("no single mail for {other}: {got:#?}"));
    assert_eq!(single.subject, other_subject);
    assert_eq!(fx.metrics.mail_sent.get(), 8, "counted per alert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_interrupted_mid_send_is_not_sent_again_and_is_counted() {
    let Some(python) = smtpd_python() else { return };
    let fx = Fixture::new();
    let mut smtpd = Smtpd::new(&python, fx.dir.path());
    smtpd.up();
    let (crashed, _) = fx.alert(1, AlertKind::Breach, &[DEPT]);
    let (fresh, fresh_subject) = fx.alert(2, AlertKind::Breach, &[DEPT]);
    // The previous process marked it `sending` and died before recording the outcome.
    fx.store
        .mark_mail(std::slice::from_ref(&crashed), MailState::Sending, None)
        .unwrap();

    let run = fx.start(fx.email(smtpd.port, 5));
    eventually("the fresh row sent", || fx.state(&fresh).0 == "sent").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.stop().await;

    let got = smtpd.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].subject, fresh_subject);
    let (state, attempts, error) = fx.state(&crashed);
    assert_eq!(state, "unknown");
    assert_eq!(attempts, 1, "no further attempt");
    assert!(error.unwrap_or_default().contains("not re-sent"));
    assert_eq!(fx.metrics.mail_unknown.get(), 1);
    assert_eq!(fx.metrics.mail_sent.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_smtp_server_down_mail_waits_and_goes_out_once_when_it_is_up() {
    let Some(python) = smtpd_python() else { return };
    let fx = Fixture::new();
    let mut smtpd = Smtpd::new(&python, fx.dir.path());
    let (id, subject) = fx.alert(1, AlertKind::Reminder(1), &[DEPT, SUPERVISOR]);

    let run = fx.start(fx.email(smtpd.port, 5));
    // Two refused attempts, caught between tries (not mid-try, when the row is `sending`).
    eventually("two refused attempts", || {
        let (state, attempts, _) = fx.state(&id);
        attempts >= 2 && state != "sending"
    })
    .await;
    let (state, _, error) = fx.state(&id);
    assert_eq!(state, "pending", "a refused connection is retried");
    assert!(error.is_some_and(|e| !e.is_empty()));
    assert_eq!(fx.metrics.mail_failed.get(), 0);

    smtpd.up();
    eventually("the row sent", || fx.state(&id).0 == "sent").await;
    eventually("the mail received", || !smtpd.received().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    run.stop().await;

    let got = smtpd.received();
    assert_eq!(got.len(), 1, "delivered once: {got:#?}");
    assert_eq!(got[0].subject, subject);
    assert_eq!(fx.metrics.mail_sent.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_refusal_fails_the_mail_and_a_4xx_keeps_it_pending() {
    let Some(python) = smtpd_python() else { return };
    let fx = Fixture::new();
    let mut smtpd = Smtpd::new(&python, fx.dir.path()).refusing();
    smtpd.up();
    let (rejected, _) = fx.alert(1, AlertKind::Breach, &["rejected@hrss.example.gov.cn"]);
    let (later, _) = fx.alert(2, AlertKind::Breach, &["later@hrss.example.gov.cn"]);
    let (ok, ok_subject) = fx.alert(3, AlertKind::Breach, &[DEPT]);

    let run = fx.start(fx.email(smtpd.port, 5));
    eventually("5xx failed, ok sent, 4xx retried", || {
        fx.state(&rejected).0 == "failed" && fx.state(&ok).0 == "sent" && fx.state(&later).1 >= 2
    })
    .await;
    run.stop().await;

    let (_, attempts, error) = fx.state(&rejected);
    assert_eq!(attempts, 1, "a permanent refusal is not retried");
    assert!(error.unwrap_or_default().contains("550"));
    let (state, _, error) = fx.state(&later);
    assert_eq!(state, "pending");
    assert!(error.unwrap_or_default().contains("451"));
    let got = smtpd.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].subject, ok_subject);
    assert_eq!(fx.metrics.mail_failed.get(), 1);
    assert_eq!(fx.metrics.mail_sent.get(), 1);
}
