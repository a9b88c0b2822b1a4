//! The scanned-letter mailbox channel, IMAP flavour (production): async-imap on tokio, TLS by
//! rustls (implicit TLS or STARTTLS; plain TCP for loopback), LOGIN or AUTHENTICATE PLAIN.
//!
//! The cursor is (folder, UIDVALIDITY, last committed UID), kept in the store under the source
//! name — never the `\Seen` flag: bodies are fetched with `BODY.PEEK[]`, so people reading the
//! mailbox change nothing. Mails go to intake one by one in UID order; the cursor moves only
//! past mails intake has answered for (recorded, duplicate or quarantined), saved every
//! `CURSOR_EVERY` mails, at the end of each batch and on every way out. A crash re-reads at
//! most that many mails; intake recognises them by their id (SHA-256 of the bytes).
//! A UIDVALIDITY change re-scans the folder from UID 1 (same recognition). Arrival time is the
//! server's INTERNALDATE. Mails larger than `max_message_bytes` (by RFC822.SIZE, before any
//! body is fetched) are downloaded in chunks to a spool file and handed over as `Oversize`, so
//! they are quarantined whole without being held in memory.
//!
//! New mail is awaited with IDLE when the server has it (renewed every few minutes), else by
//! polling. A failed or dropped connection is logged, counted and retried with exponential
//! backoff and jitter. Does not parse mail (`mailbox::parse`) nor touch Kafka.
//!
//! A body is the FETCH response that carries both the UID asked for and `BODY[]`: servers
//! also send unsolicited FETCHes (another session changed flags), with the UID when QRESYNC is
//! on and before the answer on some servers, and those must not read as "no body". A mail is
//! taken for expunged only when `UID SEARCH` no longer finds it. One mail never blocks the
//! ones after it: a mail the server will not send although the connection works (NO/BAD, an
//! unparsable response, no body for a mail that is there) is tried `READ_ATTEMPTS` times,
//! then quarantined as `unreadable` with a note naming it (its bytes could not be had) and
//! the cursor moves on; intake quarantines whatever is wrong with a mail's content.

use super::{Disposition, Incoming, Payload};
use crate::config::{AfterCommit, ImapAuth, ImapConfig, ImapTls};
use anyhow::Context;
use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response, Status};
use async_imap::types::{Capabilities, Fetch, UnsolicitedResponse};
use async_imap::{Client, Session};
use futures::TryStreamExt;
use jiff::Timestamp;
use petitiond_metrics::{Metrics, SourceLabel};
use petitiond_store::{Lease, Store, blocking};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

/// The cursor is saved after this many committed mails (and at the end of every batch).
const CURSOR_EVERY: u32 = 64;
/// IDLE is ended and re-issued this often (RFC 2177: at most every 29 minutes), which also
/// notices a silently dead connection.
const IDLE_RENEW: Duration = Duration::from_secs(5 * 60);
/// Oversize mails are downloaded in pieces of this size.
const CHUNK: u64 = 1024 * 1024;
/// Sessions in a row in which the server would not send one mail before it is quarantined.
const READ_ATTEMPTS: u32 = 3;
/// Quarantine reason of a mail the server would not send.
pub const UNREADABLE: &str = "unreadable";

#[derive(Clone)]
pub struct ImapChannel {
    /// Configured source name; also the store's cursor key.
    pub source: String,
    pub imap: ImapConfig,
    pub max_message_bytes: u64,
    /// Poll interval when the server has no IDLE (or `idle = false`), and the wait after intake
    /// could not make a mail durable.
    pub poll_interval: Duration,
    /// Where oversize mails are downloaded before intake streams them into quarantine. Cleared
    /// at start (leftovers of a crash: their mails are fetched again).
    pub spool: PathBuf,
    pub intake: mpsc::Sender<Incoming>,
    /// Holds the cursor.
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    /// Several instances: the lease this channel runs under (its cursor moves only while the
    /// lease is the unit's newest).
    pub lease: Option<Lease>,
}

/// Where reading resumes: every mail of `mailbox` with UIDVALIDITY `uidvalidity` and a UID up
/// to `uid` is durable in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// Why a session ended without an error.
enum End {
    Stopped,
    IntakeClosed,
}

/// What one scan of the folder did.
enum Scan {
    /// No mail past the cursor.
    Nothing,
    /// Some mails were handed over; look again at once.
    Progress,
    /// Intake could not make a mail durable: wait, then try it again.
    NotDurable,
    Stopped,
    IntakeClosed,
}

/// One message's metadata, fetched before its body.
#[derive(Debug, Clone, Copy)]
struct Meta {
    uid: u32,
    size: u64,
    arrival: Option<Timestamp>,
}

/// A message's bytes as the server gave them.
#[derive(Debug, PartialEq, Eq)]
enum Body {
    Bytes(Vec<u8>),
    /// Expunged: `UID SEARCH` does not find it any more.
    Gone,
}

/// Failed reads of the mail after the cursor, kept across reconnections: (UIDVALIDITY, UID,
/// attempts). Mails are read in UID order and the cursor stops at a failing one, so only one
/// mail at a time can be failing.
#[derive(Debug, Default)]
struct Strikes(Option<(u32, u32, u32)>);

impl Strikes {
    /// Counts a failed read of `uid`; returns how many in a row.
    fn hit(&mut self, validity: u32, uid: u32) -> u32 {
        let n = match self.0 {
            Some((v, u, n)) if v == validity && u == uid => n + 1,
            _ => 1,
        };
        self.0 = Some((validity, uid, n));
        n
    }

    fn clear(&mut self) {
        self.0 = None;
    }
}

impl ImapChannel {
    /// Runs until `stop` fires. Connection problems are retried forever; returns an error only
    /// for what retrying cannot fix (unusable TLS settings).
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        clear_spool(&self.spool)
            .with_context(|| format!("preparing spool dir {}", self.spool.display()))?;
        let tls = match self.imap.tls {
            // Config validation refuses this first, with the line; this holds for any caller.
            ImapTls::None if !self.imap.allow_plaintext_auth => anyhow::bail!(
                "tls = \"none\" would send the IMAP password in clear text (set allow_plaintext_auth = true to accept that)"
            ),
            ImapTls::None => None,
            ImapTls::StartTls | ImapTls::Tls => Some(tls_connector(&self.imap)?),
        };
        let wire_mailbox = mailbox_name(&self.imap.mailbox).map_err(anyhow::Error::msg)?;
        let mut backoff = Backoff::new(self.imap.reconnect_initial, self.imap.reconnect_max);
        let mut strikes = Strikes::default();
        tracing::info!(
            source = %self.source,
            host = %self.imap.host,
            port = self.imap.port,
            mailbox = %self.imap.mailbox,
            tls = ?self.imap.tls,
            "imap channel starting"
        );
        let label = SourceLabel {
            source: self.source.clone(),
        };
        while !stop.is_cancelled() {
            let r = self
                .session(
                    tls.as_ref(),
                    &wire_mailbox,
                    &stop,
                    &mut backoff,
                    &mut strikes,
                )
                .await;
            self.metrics.mailbox_connected.get_or_create(&label).set(0);
            match r {
                Ok(End::Stopped) => break,
                Ok(End::IntakeClosed) => return Ok(()),
                // Another instance owns the mailbox now (several instances): stop, don't retry.
                Err(e) if Lease::fenced_in(e.as_ref()) => return Err(e),
                Err(e) => {
                    self.metrics
                        .mailbox_connection_failures
                        .get_or_create(&label)
                        .inc();
                    let wait = backoff.delay();
                    tracing::warn!(
                        source = %self.source,
                        host = %self.imap.host,
                        port = self.imap.port,
                        error = format!("{e:#}"),
                        retry_in_ms = wait.as_millis() as u64,
                        "imap connection failed or lost; reconnecting"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            }
        }
        tracing::info!(source = %self.source, "imap channel stopped");
        Ok(())
    }

    /// Runs `f` within the configured timeout; `what` names the step in the error.
    async fn t<T, E, F>(&self, what: &'static str, f: F) -> anyhow::Result<T>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<ImapError>,
    {
        match tokio::time::timeout(self.imap.timeout, f).await {
            Ok(r) => r.map_err(|e| anyhow::Error::new(e.into()).context(what)),
            Err(_) => Err(anyhow::anyhow!(
                "{what}: no answer within {} s",
                self.imap.timeout.as_secs()
            )),
        }
    }

    /// One connection: log in, select, then scan and wait for new mail until stopped or the
    /// connection fails.
    async fn session(
        &self,
        tls: Option<&TlsConnector>,
        wire_mailbox: &str,
        stop: &CancellationToken,
        backoff: &mut Backoff,
        strikes: &mut Strikes,
    ) -> anyhow::Result<End> {
        let cfg = &self.imap;
        let client = self.t("connect", connect(cfg, tls)).await?;
        let mut s = match cfg.auth {
            ImapAuth::Login => {
                self.t("login", async {
                    client
                        .login(&cfg.username, cfg.password.expose())
                        .await
                        .map_err(|(e, _)| e)
                })
                .await?
            }
            ImapAuth::Plain => {
                let auth = PlainAuth {
                    username: cfg.username.clone(),
                    password: cfg.password.expose().to_string(),
                };
                self.t("authenticate plain", async {
                    client.authenticate("PLAIN", auth).await.map_err(|(e, _)| e)
                })
                .await?
            }
        };
        let caps = self.t("capability", s.capabilities()).await?;
        let idle = cfg.idle && caps.has_str("IDLE");
        if let AfterCommit::Move(target) = &cfg.after_commit {
            if !caps.has_str("MOVE") && !caps.has_str("UIDPLUS") {
                anyhow::bail!(
                    "after_commit = \"move\" needs the server's MOVE or UIDPLUS capability (it has neither)"
                );
            }
            let wire = mailbox_name(target).map_err(anyhow::Error::msg)?;
            match tokio::time::timeout(cfg.timeout, s.create(&wire)).await {
                Ok(Ok(())) => {
                    tracing::info!(source = %self.source, folder = %target, "created the move_to folder")
                }
                // It exists already (the usual case).
                Ok(Err(async_imap::error::Error::No(_))) => {}
                Ok(Err(e)) => return Err(anyhow::Error::new(ImapError::from(e)).context("create")),
                Err(_) => anyhow::bail!("create: no answer within {} s", cfg.timeout.as_secs()),
            }
        }
        let mb = self.t("select", s.select(wire_mailbox)).await?;
        let validity = mb
            .uid_validity
            .context("the server sent no UIDVALIDITY for the folder")?;
        let mut cursor = self.load_cursor(validity).await?;
        backoff.reset();
        let label = SourceLabel {
            source: self.source.clone(),
        };
        self.metrics.mailbox_connected.get_or_create(&label).set(1);
        tracing::info!(
            source = %self.source,
            mailbox = %cfg.mailbox,
            uidvalidity = validity,
            after_uid = cursor.uid,
            idle,
            "imap session ready"
        );
        loop {
            drain(&s);
            let mut dirty = false;
            let scanned = self
                .scan(&mut s, &mut cursor, &mut dirty, stop, &caps, strikes)
                .await;
            if dirty {
                // Every path out of a scan saves what is durable, errors included.
                self.save_cursor(&cursor).await?;
            }
            match scanned? {
                Scan::Stopped => break,
                Scan::IntakeClosed => return Ok(End::IntakeClosed),
                Scan::Progress => {}
                Scan::NotDurable => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.poll_interval) => {}
                        _ = stop.cancelled() => {}
                    }
                }
                Scan::Nothing => {
                    // New mail announced while we were looking: look again first.
                    if drain(&s) || stop.is_cancelled() {
                        continue;
                    }
                    if idle {
                        s = self.idle(s, stop).await?;
                    } else {
                        tokio::select! {
                            _ = tokio::time::sleep(self.poll_interval) => {}
                            _ = stop.cancelled() => {}
                        }
                        if !stop.is_cancelled() {
                            self.t("noop", s.noop()).await?;
                        }
                    }
                }
            }
            if stop.is_cancelled() {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), s.logout()).await;
        Ok(End::Stopped)
    }

    /// Waits in IDLE until the server reports a change, the renewal time passes or `stop`.
    async fn idle(
        &self,
        s: Session<Conn>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Session<Conn>> {
        let mut h = s.idle();
        self.t("idle", h.init()).await?;
        {
            let (wait, _interrupt) = h.wait_with_timeout(IDLE_RENEW);
            tokio::select! {
                r = wait => { r.map_err(|e| anyhow::Error::new(ImapError::from(e)).context("idle"))?; }
                _ = stop.cancelled() => {}
            }
        }
        // A dropped connection surfaces here (DONE cannot be answered).
        self.t("idle done", h.done()).await
    }

    async fn load_cursor(&self, validity: u32) -> anyhow::Result<Cursor> {
        let src = self.source.clone();
        let stored = blocking(&self.store, move |s| s.cursor(&src)).await?;
        let fresh = Cursor {
            mailbox: self.imap.mailbox.clone(),
            uidvalidity: validity,
            uid: 0,
        };
        let parsed = stored.as_deref().map(serde_json::from_str::<Cursor>);
        match parsed {
            None => {
                tracing::info!(source = %self.source, "no cursor yet: reading the folder from UID 1");
                Ok(fresh)
            }
            Some(Ok(c)) if c.mailbox == fresh.mailbox && c.uidvalidity == validity => Ok(c),
            Some(Ok(c)) => {
                if c.mailbox == fresh.mailbox {
                    self.metrics
                        .mailbox_uidvalidity_changes
                        .get_or_create(&SourceLabel {
                            source: self.source.clone(),
                        })
                        .inc();
                    tracing::warn!(
                        source = %self.source,
                        mailbox = %fresh.mailbox,
                        old_uidvalidity = c.uidvalidity,
                        uidvalidity = validity,
                        "UIDVALIDITY changed: re-scanning the whole folder from UID 1; mails already recorded are recognised by their content hash"
                    );
                } else {
                    tracing::warn!(
                        source = %self.source,
                        old_mailbox = %c.mailbox,
                        mailbox = %fresh.mailbox,
                        "configured folder changed: reading it from UID 1"
                    );
                }
                self.save_cursor(&fresh).await?;
                Ok(fresh)
            }
            Some(Err(e)) => {
                tracing::warn!(source = %self.source, error = %e, "stored cursor unreadable: reading the folder from UID 1");
                Ok(fresh)
            }
        }
    }

    async fn save_cursor(&self, c: &Cursor) -> anyhow::Result<()> {
        let (src, value) = (self.source.clone(), serde_json::to_string(c)?);
        let lease = self.lease.clone();
        blocking(&self.store, move |s| match &lease {
            Some(l) => s.set_cursor_leased(&src, &value, l),
            None => s.set_cursor(&src, &value),
        })
        .await
        .context("saving the imap cursor")
    }

    /// Hands every mail past the cursor to intake, in UID order; moves `cursor` past each one
    /// intake answered for (`dirty` then says it must be saved).
    async fn scan(
        &self,
        s: &mut Session<Conn>,
        cursor: &mut Cursor,
        dirty: &mut bool,
        stop: &CancellationToken,
        caps: &Capabilities,
        strikes: &mut Strikes,
    ) -> anyhow::Result<Scan> {
        let from = cursor.uid.saturating_add(1);
        let metas = self.t("fetch sizes", fetch_meta(s, from)).await?;
        if metas.is_empty() {
            return Ok(Scan::Nothing);
        }
        let mut since_save = 0;
        for m in metas {
            if stop.is_cancelled() {
                return Ok(Scan::Stopped);
            }
            let reference = format!(
                "imap:{}/{}/{}",
                self.imap.mailbox, cursor.uidvalidity, m.uid
            );
            let mut spooled = None;
            let read = self.read(s, &m, cursor.uidvalidity, &mut spooled).await;
            let payload = match read {
                Ok(Some(p)) => {
                    strikes.clear();
                    p
                }
                Ok(None) => {
                    // Expunged since we listed it: nothing to hand over, and UIDs are never
                    // reused, so the cursor may pass it.
                    strikes.clear();
                    tracing::info!(source = %self.source, uid = m.uid, "mail gone before it was read");
                    cursor.uid = m.uid;
                    *dirty = true;
                    continue;
                }
                Err(e) if unreadable(&e) => {
                    let n = strikes.hit(cursor.uidvalidity, m.uid);
                    if n < READ_ATTEMPTS {
                        tracing::warn!(source = %self.source, uid = m.uid, attempt = n, error = format!("{e:#}"), "the server would not send a mail; trying again on a new connection");
                        return Err(e);
                    }
                    strikes.clear();
                    tracing::error!(source = %self.source, uid = m.uid, attempts = n, error = format!("{e:#}"), "the server would not send a mail; quarantining it and going on");
                    let detail = format!(
                        "the IMAP server would not send UID {} of `{}` (UIDVALIDITY {}) in {n} attempts: {e:#}; it is left on the server",
                        m.uid, self.imap.mailbox, cursor.uidvalidity
                    );
                    Payload::Rejected {
                        raw: format!("petitiond could not read this mail from the IMAP server.\nreference: {reference}\nreason: {detail}\n").into_bytes(),
                        reason: UNREADABLE,
                        detail,
                    }
                }
                Err(e) => return Err(e),
            };
            let (done, answer) = oneshot::channel();
            let incoming = Incoming {
                source: self.source.clone(),
                reference,
                payload,
                done,
            };
            if self.intake.send(incoming).await.is_err() {
                return Ok(Scan::IntakeClosed);
            }
            let answer = answer.await;
            if let Some(p) = spooled {
                let _ = std::fs::remove_file(p);
            }
            let disposition: Disposition = match answer {
                Err(_) => return Ok(Scan::IntakeClosed),
                Ok(Err(e)) => {
                    tracing::error!(source = %self.source, uid = m.uid, error = format!("{e:#}"), "mail not recorded; will retry");
                    return Ok(Scan::NotDurable);
                }
                Ok(Ok(d)) => d,
            };
            tracing::debug!(source = %self.source, uid = m.uid, ?disposition, "mail durable");
            cursor.uid = m.uid;
            *dirty = true;
            self.after_commit(s, m.uid, caps).await?;
            since_save += 1;
            if since_save >= CURSOR_EVERY {
                self.save_cursor(cursor).await?;
                *dirty = false;
                since_save = 0;
            }
            // Keep the unsolicited queue short (it drops when full).
            drain(s);
        }
        Ok(Scan::Progress)
    }

    /// Flags or moves a durable mail. A refusal by the server is logged and counted, never a
    /// reason to stop: the mail is recorded and the cursor is past it.
    async fn after_commit(
        &self,
        s: &mut Session<Conn>,
        uid: u32,
        caps: &Capabilities,
    ) -> anyhow::Result<()> {
        let r = match &self.imap.after_commit {
            AfterCommit::None => return Ok(()),
            AfterCommit::Flag(flag) => {
                self.t("store flag", async {
                    let st = s
                        .uid_store(uid.to_string(), format!("+FLAGS.SILENT ({flag})"))
                        .await?;
                    st.try_collect::<Vec<_>>().await.map(|_| ())
                })
                .await
            }
            AfterCommit::Move(target) => {
                let wire = mailbox_name(target).map_err(anyhow::Error::msg)?;
                if caps.has_str("MOVE") {
                    self.t("move", s.uid_mv(uid.to_string(), &wire)).await
                } else {
                    self.t("copy", s.uid_copy(uid.to_string(), &wire)).await?;
                    self.t("store deleted", async {
                        let st = s
                            .uid_store(uid.to_string(), "+FLAGS.SILENT (\\Deleted)")
                            .await?;
                        st.try_collect::<Vec<_>>().await.map(|_| ())
                    })
                    .await?;
                    self.t("uid expunge", async {
                        let st = s.uid_expunge(uid.to_string()).await?;
                        st.try_collect::<Vec<_>>().await.map(|_| ())
                    })
                    .await
                }
            }
        };
        match r {
            Err(e) if refused(&e) => {
                self.metrics
                    .mailbox_after_commit_failed
                    .get_or_create(&SourceLabel {
                        source: self.source.clone(),
                    })
                    .inc();
                tracing::warn!(source = %self.source, uid, error = format!("{e:#}"), "after_commit refused by the server; the mail is recorded");
                Ok(())
            }
            other => other,
        }
    }

    /// What to hand intake for mail `m`: its bytes, or (too large to hold) a spooled file
    /// named in `spooled`; `None` when it has been expunged.
    async fn read(
        &self,
        s: &mut Session<Conn>,
        m: &Meta,
        validity: u32,
        spooled: &mut Option<PathBuf>,
    ) -> anyhow::Result<Option<Payload>> {
        if m.size > self.max_message_bytes {
            let path = self.spool.join(format!("{validity}-{}.eml", m.uid));
            *spooled = Some(path.clone());
            let Some(size) = self.download(s, m.uid, &path).await? else {
                return Ok(None);
            };
            return Ok(Some(Payload::Oversize {
                path,
                size,
                limit: self.max_message_bytes,
            }));
        }
        match self.t("fetch body", fetch_body(s, m.uid)).await? {
            Body::Bytes(raw) => Ok(Some(Payload::Mail {
                raw,
                arrival: m.arrival.unwrap_or_else(|| {
                    tracing::warn!(source = %self.source, uid = m.uid, "no INTERNALDATE; arrival is now");
                    Timestamp::now()
                }),
            })),
            Body::Gone => Ok(None),
        }
    }

    /// Downloads a mail in `CHUNK` pieces to `path`; returns its size, `None` if it was
    /// expunged meanwhile.
    async fn download(
        &self,
        s: &mut Session<Conn>,
        uid: u32,
        path: &Path,
    ) -> anyhow::Result<Option<u64>> {
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        let mut offset = 0u64;
        loop {
            let piece = self
                .t("fetch chunk", async {
                    let index = u32::try_from(offset)
                        .map_err(|_| ImapError::Other("mail larger than 4 GiB".into()))?;
                    let item = format!("BODY.PEEK[]<{offset}.{CHUNK}>");
                    fetch_section(s, uid, &item, Some(index)).await
                })
                .await?;
            let Body::Bytes(piece) = piece else {
                return Ok(None);
            };
            file.write_all(&piece).await?;
            offset += piece.len() as u64;
            if (piece.len() as u64) < CHUNK {
                break;
            }
        }
        file.flush().await?;
        Ok(Some(offset))
    }
}

fn clear_spool(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

mod conn;
mod error;
mod fetch;

pub use crate::config::imap_names::{flag_name, mailbox_name};
use conn::{Backoff, PlainAuth, connect};
pub use conn::{Conn, tls_connector};
pub use error::ImapError;
use error::{refused, unreadable};
use fetch::{drain, fetch_body, fetch_meta, fetch_section};

#[cfg(test)]
mod tests;
