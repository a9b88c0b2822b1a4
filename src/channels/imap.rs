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

use super::{Disposition, Incoming, Payload};
use crate::config::{AfterCommit, ImapAuth, ImapConfig, ImapTls};
use crate::metrics::{Metrics, SourceLabel};
use crate::store::{Store, blocking};
use anyhow::Context;
use async_imap::types::{Capabilities, Fetch, UnsolicitedResponse};
use async_imap::{Client, Session};
use futures::TryStreamExt;
use jiff::Timestamp;
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

impl ImapChannel {
    /// Runs until `stop` fires. Connection problems are retried forever; returns an error only
    /// for what retrying cannot fix (unusable TLS settings).
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        clear_spool(&self.spool)
            .with_context(|| format!("preparing spool dir {}", self.spool.display()))?;
        let tls = match self.imap.tls {
            ImapTls::None => None,
            ImapTls::StartTls | ImapTls::Tls => Some(tls_connector(&self.imap)?),
        };
        let wire_mailbox = mailbox_name(&self.imap.mailbox).map_err(anyhow::Error::msg)?;
        let mut backoff = Backoff::new(self.imap.reconnect_initial, self.imap.reconnect_max);
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
                .session(tls.as_ref(), &wire_mailbox, &stop, &mut backoff)
                .await;
            self.metrics.mailbox_connected.get_or_create(&label).set(0);
            match r {
                Ok(End::Stopped) => break,
                Ok(End::IntakeClosed) => return Ok(()),
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
                .scan(&mut s, &mut cursor, &mut dirty, stop, &caps)
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
        blocking(&self.store, move |s| s.set_cursor(&src, &value))
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
            let payload = if m.size > self.max_message_bytes {
                let path = self
                    .spool
                    .join(format!("{}-{}.eml", cursor.uidvalidity, m.uid));
                let size = self.download(s, m.uid, &path).await?;
                spooled = Some(path.clone());
                Payload::Oversize {
                    path,
                    size,
                    limit: self.max_message_bytes,
                }
            } else {
                match self.t("fetch body", fetch_body(s, m.uid)).await? {
                    Some(raw) => Payload::Mail {
                        raw,
                        arrival: m.arrival.unwrap_or_else(|| {
                            tracing::warn!(source = %self.source, uid = m.uid, "no INTERNALDATE; arrival is now");
                            Timestamp::now()
                        }),
                    },
                    None => {
                        // Expunged since we listed it: nothing to hand over, and UIDs are never
                        // reused, so the cursor may pass it.
                        tracing::info!(source = %self.source, uid = m.uid, "mail gone before it was read");
                        cursor.uid = m.uid;
                        *dirty = true;
                        continue;
                    }
                }
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

    /// Downloads a mail in `CHUNK` pieces to `path`; returns its size.
    async fn download(&self, s: &mut Session<Conn>, uid: u32, path: &Path) -> anyhow::Result<u64> {
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        let mut offset = 0u64;
        loop {
            let piece = self
                .t("fetch chunk", async {
                    let st = s
                        .uid_fetch(
                            uid.to_string(),
                            format!("(UID BODY.PEEK[]<{offset}.{CHUNK}>)"),
                        )
                        .await?;
                    let fetches: Vec<Fetch> = st.try_collect().await?;
                    Ok::<_, async_imap::error::Error>(
                        fetches
                            .iter()
                            .find(|f| f.uid == Some(uid))
                            .and_then(|f| f.body())
                            .map(|b| b.to_vec())
                            .unwrap_or_default(),
                    )
                })
                .await?;
            file.write_all(&piece).await?;
            offset += piece.len() as u64;
            if (piece.len() as u64) < CHUNK {
                break;
            }
        }
        file.flush().await?;
        Ok(offset)
    }
}

/// Empties the session's queue of unsolicited responses; true if it announced new mail.
fn drain(s: &Session<Conn>) -> bool {
    let mut new_mail = false;
    while let Ok(r) = s.unsolicited_responses.try_recv() {
        if matches!(
            r,
            UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
        ) {
            new_mail = true;
        }
    }
    new_mail
}

/// UID, size and INTERNALDATE of every message from UID `from` on, in UID order.
async fn fetch_meta(
    s: &mut Session<Conn>,
    from: u32,
) -> Result<Vec<Meta>, async_imap::error::Error> {
    let st = s
        .uid_fetch(format!("{from}:*"), "(UID RFC822.SIZE INTERNALDATE)")
        .await?;
    let fetches: Vec<Fetch> = st.try_collect().await?;
    let mut out: Vec<Meta> = fetches
        .iter()
        // `n:*` names the last message even when its UID is below n; unsolicited FETCHes
        // (flag changes) carry no size.
        .filter(|f| f.size.is_some())
        .filter_map(|f| {
            Some(Meta {
                uid: f.uid?,
                size: u64::from(f.size?),
                arrival: f
                    .internal_date()
                    .and_then(|d| Timestamp::from_second(d.timestamp()).ok()),
            })
        })
        .filter(|m| m.uid >= from)
        .collect();
    out.sort_by_key(|m| m.uid);
    out.dedup_by_key(|m| m.uid);
    Ok(out)
}

/// The whole message as the server stores it, without setting `\Seen`; `None` if it is gone.
async fn fetch_body(
    s: &mut Session<Conn>,
    uid: u32,
) -> Result<Option<Vec<u8>>, async_imap::error::Error> {
    let st = s.uid_fetch(uid.to_string(), "(UID BODY.PEEK[])").await?;
    let fetches: Vec<Fetch> = st.try_collect().await?;
    Ok(fetches
        .iter()
        .find(|f| f.uid == Some(uid))
        .and_then(|f| f.body())
        .map(|b| b.to_vec()))
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

/// An IMAP error fit for logs: the server's words for NO/BAD (no mail content), never the raw
/// bytes of a response that failed to parse (they could hold mail content).
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("the server refused: {0}")]
    No(String),
    #[error("the server rejected the command: {0}")]
    Bad(String),
    #[error("cannot parse the server's response")]
    Parse,
    #[error("connection lost")]
    ConnectionLost,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

impl From<async_imap::error::Error> for ImapError {
    fn from(e: async_imap::error::Error) -> Self {
        use async_imap::error::Error as E;
        match e {
            E::No(m) => ImapError::No(m),
            E::Bad(m) => ImapError::Bad(m),
            E::Parse(_) => ImapError::Parse,
            E::ConnectionLost => ImapError::ConnectionLost,
            E::Io(e) => ImapError::Io(e),
            other => ImapError::Other(other.to_string()),
        }
    }
}

impl From<anyhow::Error> for ImapError {
    fn from(e: anyhow::Error) -> Self {
        ImapError::Other(format!("{e:#}"))
    }
}

/// Whether the server answered NO or BAD (the connection itself is fine).
fn refused(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ImapError>(),
        Some(ImapError::No(_) | ImapError::Bad(_))
    )
}

/// SASL PLAIN (RFC 4616): `\0user\0password` in answer to the empty challenge.
struct PlainAuth {
    username: String,
    password: String,
}

impl async_imap::Authenticator for PlainAuth {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        let mut r = Vec::with_capacity(self.username.len() + self.password.len() + 2);
        r.push(0);
        r.extend_from_slice(self.username.as_bytes());
        r.push(0);
        r.extend_from_slice(self.password.as_bytes());
        r
    }
}

/// The transport under the IMAP client: plain TCP or TLS over TCP.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conn::Plain(_) => "Conn::Plain",
            Conn::Tls(_) => "Conn::Tls",
        })
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS client settings: the system's CA certificates plus `tls_ca_file`; ring provider
/// (as lettre uses), TLS 1.2 and 1.3.
pub fn tls_connector(cfg: &ImapConfig) -> anyhow::Result<TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    if let Some(p) = &cfg.tls_ca_file {
        let certs = CertificateDer::pem_file_iter(p)
            .with_context(|| format!("reading tls_ca_file {}", p.display()))?;
        for c in certs {
            let c = c.with_context(|| format!("parsing tls_ca_file {}", p.display()))?;
            roots
                .add(c)
                .with_context(|| format!("a certificate in {} is not usable", p.display()))?;
        }
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "no CA certificates: the system has none and tls_ca_file is not set"
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// TCP, then TLS as configured (implicit, or STARTTLS after the greeting); the greeting read.
async fn connect(cfg: &ImapConfig, tls: Option<&TlsConnector>) -> Result<Client<Conn>, ImapError> {
    let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port)).await?;
    tcp.set_nodelay(true)?;
    let handshake = |tcp: TcpStream| async move {
        let connector = tls.ok_or_else(|| ImapError::Other("no TLS settings".into()))?;
        let name = rustls::pki_types::ServerName::try_from(cfg.host.clone()).map_err(|e| {
            ImapError::Other(format!("`{}` is not a TLS server name: {e}", cfg.host))
        })?;
        let s = connector.connect(name, tcp).await?;
        Ok::<_, ImapError>(Conn::Tls(Box::new(s)))
    };
    match cfg.tls {
        ImapTls::None => {
            let mut c = Client::new(Conn::Plain(tcp));
            greeting(&mut c).await?;
            Ok(c)
        }
        ImapTls::Tls => {
            let mut c = Client::new(handshake(tcp).await?);
            greeting(&mut c).await?;
            Ok(c)
        }
        ImapTls::StartTls => {
            let mut c = Client::new(Conn::Plain(tcp));
            greeting(&mut c).await?;
            c.run_command_and_check_ok("STARTTLS", None).await?;
            let Conn::Plain(tcp) = c.into_inner() else {
                return Err(ImapError::Other("STARTTLS on a TLS connection".into()));
            };
            // No greeting after STARTTLS.
            Ok(Client::new(handshake(tcp).await?))
        }
    }
}

async fn greeting(c: &mut Client<Conn>) -> Result<(), ImapError> {
    match c.read_response().await? {
        Some(_) => Ok(()),
        None => Err(ImapError::ConnectionLost),
    }
}

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling from
/// `initial` up to `max`; `reset` after a good session.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let half = d / 2;
        let spread = (d - half).as_millis() as u64;
        half + Duration::from_millis(random_u64() % (spread + 1))
    }
}

/// A random number for jitter, from the standard library's randomly keyed hasher.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// Checks a folder name and encodes it for the wire (RFC 3501 §5.1.3 modified UTF-7), so an
/// office can name its folder `扫描来信`.
pub fn mailbox_name(name: &str) -> Result<String, String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&modified_base64(&bytes));
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    Ok(out)
}

/// Base64 with `,` for `/` and no padding (modified UTF-7).
fn modified_base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Checks a flag or keyword to set after commit.
pub fn flag_name(f: &str) -> Result<(), String> {
    let body = f.strip_prefix('\\').unwrap_or(f);
    let atom = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_graphic() && !"(){%*\"\\]".contains(c));
    if !atom {
        return Err(format!(
            "`{f}` is not an IMAP flag or keyword (letters, digits and $, no spaces or brackets)"
        ));
    }
    if f.starts_with('\\')
        && !["\\Seen", "\\Flagged", "\\Answered"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(f))
    {
        return Err(format!(
            "`{f}` cannot be set after commit: use \\Flagged, \\Seen, \\Answered or a keyword such as $PetitiondRecorded"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_encoded_in_modified_utf7() {
        // RFC 3501 §5.1.3's example, and the usual cases.
        assert_eq!(
            mailbox_name("~peter/mail/台北/日本語").unwrap(),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(mailbox_name("INBOX").unwrap(), "INBOX");
        assert_eq!(mailbox_name("A&B").unwrap(), "A&-B");
        assert_eq!(mailbox_name("扫描来信").unwrap(), "&Ymtjz2dlT+E-");
        assert!(mailbox_name("").is_err());
        assert!(mailbox_name("a\r\nb").is_err());
    }

    #[test]
    fn flags_must_be_atoms_and_not_destructive() {
        assert!(flag_name("$PetitiondRecorded").is_ok());
        assert!(flag_name("\\Flagged").is_ok());
        assert!(
            flag_name("\\Deleted").is_err(),
            "would lose mail on expunge"
        );
        assert!(flag_name("two words").is_err());
        assert!(flag_name("a)b").is_err());
        assert!(flag_name("").is_err());
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(1000), Duration::from_millis(5000));
        let bounds = [
            (500, 1000),
            (1000, 2000),
            (2000, 4000),
            (2500, 5000),
            (2500, 5000),
        ];
        for (lo, hi) in bounds {
            let d = b.delay().as_millis() as u64;
            assert!((lo..=hi).contains(&d), "{d} not in {lo}..={hi}");
        }
        b.reset();
        assert!(b.delay() <= Duration::from_millis(1000));
    }

    #[test]
    fn plain_auth_answers_with_nul_separated_credentials() {
        use async_imap::Authenticator;
        let mut a = PlainAuth {
            username: "u".into(),
            password: "p".into(),
        };
        assert_eq!(a.process(b""), b"\0u\0p");
    }

    #[test]
    fn cursor_round_trips_as_json() {
        let c = Cursor {
            mailbox: "INBOX".into(),
            uidvalidity: 1_700_000_000,
            uid: 42,
        };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(
            s,
            r#"{"mailbox":"INBOX","uidvalidity":1700000000,"uid":42}"#
        );
        assert_eq!(serde_json::from_str::<Cursor>(&s).unwrap(), c);
    }
}
