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
use crate::metrics::{Metrics, SourceLabel};
use crate::store::{Store, blocking};
use anyhow::Context;
use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response, Status};
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
/// Sessions in a row in which the server would not send one mail before it is quarantined.
const READ_ATTEMPTS: u32 = 3;
/// Quarantine reason of a mail the server would not send.
pub const UNREADABLE: &str = "unreadable";

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

/// The whole message as the server stores it, without setting `\Seen`.
async fn fetch_body(s: &mut Session<Conn>, uid: u32) -> Result<Body, ImapError> {
    fetch_section(s, uid, "BODY.PEEK[]", None).await
}

/// `UID FETCH uid (UID item)` for a `BODY.PEEK[]` item (`index`: the partial's offset).
async fn fetch_section(
    s: &mut Session<Conn>,
    uid: u32,
    item: &str,
    index: Option<u32>,
) -> Result<Body, ImapError> {
    let mut body = None;
    command(s, &format!("UID FETCH {uid} (UID {item})"), |r| {
        if body.is_none() {
            body = body_of(r, uid, index).map(<[u8]>::to_vec);
        }
    })
    .await?;
    match body {
        Some(b) => Ok(Body::Bytes(b)),
        None => still_there(s, uid).await,
    }
}

/// The answer to a body FETCH of `uid`: a FETCH response with this UID *and* the `BODY[]`
/// section asked for (`BODY[]<index>` for a partial). A FETCH with the UID but only FLAGS is
/// another session's flag change, not the answer.
fn body_of<'a>(r: &'a Response<'a>, uid: u32, index: Option<u32>) -> Option<&'a [u8]> {
    let Response::Fetch(_, attrs) = r else {
        return None;
    };
    if !attrs
        .iter()
        .any(|a| matches!(a, AttributeValue::Uid(u) if *u == uid))
    {
        return None;
    }
    attrs.iter().find_map(|a| match a {
        AttributeValue::BodySection {
            section: None,
            index: i,
            data,
        } if *i == index => match data {
            Some(d) => Some(d.as_ref()),
            // NIL for a piece past the end (Dovecot sends `{0}`): nothing more to read.
            None if index.is_some() => Some(&[][..]),
            None => None,
        },
        AttributeValue::Rfc822(Some(d)) if index.is_none() => Some(d.as_ref()),
        _ => None,
    })
}

/// No body came for `uid`: `Gone` if the folder no longer has it, else an error (the server
/// has the mail but did not send it — never to be mistaken for an expunge).
async fn still_there(s: &mut Session<Conn>, uid: u32) -> Result<Body, ImapError> {
    let mut found = false;
    command(s, &format!("UID SEARCH UID {uid}"), |r| {
        found |=
            matches!(r, Response::MailboxData(MailboxDatum::Search(ids)) if ids.contains(&uid));
    })
    .await?;
    if found {
        Err(ImapError::NoBody)
    } else {
        Ok(Body::Gone)
    }
}

/// Runs `command`, showing each untagged response to `each`, until its tagged status: OK is
/// `Ok`, a tagged NO or BAD an error. async-imap's `uid_fetch` and `uid_search` end quietly on NO/BAD, as
/// if the answer were "no such mail" — which would pass a mail the server refused as expunged.
/// Unsolicited responses among them are dropped: after mails were read the folder is scanned
/// again anyway.
async fn command(
    s: &mut Session<Conn>,
    command: &str,
    mut each: impl FnMut(&Response<'_>),
) -> Result<(), ImapError> {
    let tag = s.run_command(command).await?;
    loop {
        let resp = s
            .read_response()
            .await
            .map_err(ImapError::from_io)?
            .ok_or(ImapError::ConnectionLost)?;
        if let Response::Done {
            tag: t,
            status,
            outcome,
        } = resp.parsed()
            && *t == tag
        {
            let info = || {
                outcome
                    .information
                    .as_deref()
                    .unwrap_or_default()
                    .to_string()
            };
            return match status {
                Status::Ok => Ok(()),
                Status::No => Err(ImapError::No(info())),
                Status::Bad => Err(ImapError::Bad(info())),
                other => Err(ImapError::Other(format!("unexpected {other:?}"))),
            };
        }
        each(resp.parsed());
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
    #[error("the server sent no body for a mail it still has")]
    NoBody,
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
            E::Io(e) => ImapError::from_io(e),
            other => ImapError::Other(other.to_string()),
        }
    }
}

impl ImapError {
    /// async-imap reports a response it cannot parse as an I/O error whose message quotes the
    /// whole unparsed buffer — the mail's bytes when it was a FETCH: kept out of the message.
    fn from_io(e: std::io::Error) -> ImapError {
        if e.kind() == std::io::ErrorKind::Other && e.to_string().contains("during parsing of") {
            ImapError::Parse
        } else {
            ImapError::Io(e)
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

/// Whether reading one mail failed because of that mail, the connection working: refused,
/// an answer that does not parse, or no body for a mail the folder has. A lost connection
/// or a timeout is not the mail's doing and never counts against it.
fn unreadable(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ImapError>(),
        Some(ImapError::No(_) | ImapError::Bad(_) | ImapError::Parse | ImapError::NoBody)
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

    /// A scripted IMAP server on a loopback port, for what Dovecot does not do on demand (a
    /// flags-only FETCH with the UID before the answer, a refused body). Every connection is
    /// greeted; each command line gets `answer(command)` with `{tag}` replaced by its tag, and
    /// a tagged OK unless the answer has its own tagged line. Returns the port and a count of
    /// connections.
    async fn scripted(
        answer: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(answer);
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    let (r, mut w) = tcp.into_split();
                    let mut lines = BufReader::new(r).lines();
                    w.write_all(b"* OK scripted\r\n").await.unwrap();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let (tag, command) = line.split_once(' ').unwrap_or((&line, ""));
                        let mut reply = answer(command).replace("{tag}", tag);
                        if !reply.contains(&format!("{tag} ")) {
                            reply.push_str(&format!("{tag} OK done\r\n"));
                        }
                        if w.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                        if command.starts_with("LOGOUT") {
                            return;
                        }
                    }
                });
            }
        });
        (port, connections)
    }

    /// The answers every scripted session needs: login, capabilities (no IDLE), select.
    fn common(command: &str) -> Option<String> {
        let c = command.to_ascii_uppercase();
        if c.starts_with("LOGIN") || c.starts_with("NOOP") {
            Some(String::new())
        } else if c.starts_with("CAPABILITY") {
            Some("* CAPABILITY IMAP4rev1 UIDPLUS\r\n".into())
        } else if c.starts_with("SELECT") {
            Some("* 2 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-WRITE] ok\r\n".into())
        } else if c.starts_with("LOGOUT") {
            Some("* BYE\r\n".into())
        } else {
            None
        }
    }

    async fn session_on(port: u16) -> Session<Conn> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut c = Client::new(Conn::Plain(tcp));
        greeting(&mut c).await.unwrap();
        c.login("u", "p").await.map_err(|(e, _)| e).unwrap()
    }

    const MAIL: &str = "From: a@b.cn\r\nSubject: x\r\n\r\nhello\r\n";

    /// Regression: the body FETCH was matched by UID alone, so a flags-only FETCH for the same
    /// UID arriving first (another session flagging the mail, QRESYNC-style with the UID) read
    /// as "no body", and the mail was skipped as expunged.
    #[tokio::test]
    async fn a_flags_only_fetch_with_the_same_uid_is_not_the_body() {
        let (port, _) = scripted(|c| {
            common(c).unwrap_or_else(|| {
                assert!(c.starts_with("UID FETCH 7 "), "{c}");
                format!(
                    "* 3 FETCH (UID 7 FLAGS (\\Flagged))\r\n* 3 FETCH (UID 7 BODY[] {{{}}}\r\n{MAIL})\r\n* 3 FETCH (UID 7 MODSEQ (9) FLAGS ())\r\n",
                    MAIL.len()
                )
            })
        })
        .await;
        let mut s = session_on(port).await;
        assert_eq!(
            fetch_body(&mut s, 7).await.unwrap(),
            Body::Bytes(MAIL.as_bytes().to_vec())
        );
    }

    /// No body in the answer: expunged only if `UID SEARCH` no longer finds the mail;
    /// otherwise an error (tried again), never a skip.
    #[tokio::test]
    async fn no_body_is_expunged_only_when_search_no_longer_finds_the_mail() {
        for (search, expect_gone) in [("* SEARCH 7\r\n", false), ("* SEARCH\r\n", true)] {
            let (port, _) = scripted(move |c| {
                common(c).unwrap_or_else(|| {
                    if c.starts_with("UID SEARCH") {
                        search.into()
                    } else {
                        "* 3 FETCH (UID 7 FLAGS (\\Seen))\r\n".into()
                    }
                })
            })
            .await;
            let mut s = session_on(port).await;
            let r = fetch_body(&mut s, 7).await;
            if expect_gone {
                assert_eq!(r.unwrap(), Body::Gone);
            } else {
                assert!(matches!(r, Err(ImapError::NoBody)), "{r:?}");
            }
        }
    }

    /// Regression: async-imap ends a FETCH quietly on a tagged NO, and the empty answer read
    /// as "expunged"; a refusal is an error (tried again), never a skip.
    #[tokio::test]
    async fn a_refused_body_fetch_is_an_error_not_an_expunge() {
        let (port, _) = scripted(|c| {
            common(c).unwrap_or_else(|| "{tag} NO [UNAVAILABLE] try later\r\n".into())
        })
        .await;
        let mut s = session_on(port).await;
        let r = fetch_body(&mut s, 7).await;
        assert!(
            matches!(&r, Err(ImapError::No(m)) if m.contains("try later")),
            "{r:?}"
        );
    }

    /// A response async-imap cannot parse is `Parse`, and the error's text does not quote it
    /// (async-imap's own I/O error carries the whole buffer: here a FETCH with mail text).
    #[tokio::test]
    async fn an_unparsable_answer_is_a_parse_error_that_quotes_nothing() {
        let (port, _) = scripted(|c| {
            common(c).unwrap_or_else(|| "* 3 FETCH (UID 7 BODY[] 张三 13812345678 ((\r\n".into())
        })
        .await;
        let mut s = session_on(port).await;
        let e = fetch_body(&mut s, 7).await.unwrap_err();
        assert!(matches!(e, ImapError::Parse), "{e:?}");
        let shown = format!("{:#}", anyhow::Error::new(e).context("fetch body"));
        assert!(
            !shown.contains("13812345678") && !shown.contains("张三"),
            "{shown}"
        );
        assert!(unreadable(
            &anyhow::Error::new(ImapError::Parse).context("fetch body")
        ));
    }

    /// One mail the server refuses to send (Dovecot: `NO [SERVERBUG]` for a damaged file) is
    /// tried on READ_ATTEMPTS connections, then quarantined as `unreadable`; the mail after it
    /// is read, and the cursor passes both.
    #[tokio::test]
    async fn a_mail_the_server_will_not_send_is_quarantined_and_the_next_is_read() {
        let (port, connections) = scripted(|c| {
            common(c).unwrap_or_else(|| {
                if c.starts_with("UID FETCH 1:* ") {
                    "* 1 FETCH (UID 1 RFC822.SIZE 30 INTERNALDATE \"02-Mar-2026 09:16:00 +0800\")\r\n\
                     * 2 FETCH (UID 2 RFC822.SIZE 30 INTERNALDATE \"02-Mar-2026 09:16:00 +0800\")\r\n"
                        .into()
                } else if c.starts_with("UID FETCH 3:* ") {
                    "* 2 FETCH (UID 2 RFC822.SIZE 30 INTERNALDATE \"02-Mar-2026 09:16:00 +0800\")\r\n"
                        .into()
                } else if c.starts_with("UID FETCH 1 ") {
                    "{tag} NO [SERVERBUG] Internal error occurred\r\n".into()
                } else if c.starts_with("UID FETCH 2 ") {
                    format!("* 2 FETCH (UID 2 BODY[] {{{}}}\r\n{MAIL})\r\n", MAIL.len())
                } else {
                    format!("{{tag}} BAD unexpected {c}\r\n")
                }
            })
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            crate::store::SqliteStore::open(&dir.path().join("p.db"), Duration::from_secs(5))
                .unwrap(),
        );
        let (tx, mut rx) = mpsc::channel::<Incoming>(4);
        let channel = ImapChannel {
            source: "mailbox".into(),
            imap: ImapConfig {
                host: "127.0.0.1".into(),
                port,
                tls: ImapTls::None,
                tls_ca_file: None,
                username: "u".into(),
                password: crate::config::Secret::from("p"),
                mailbox: "INBOX".into(),
                auth: ImapAuth::Login,
                after_commit: AfterCommit::None,
                idle: false,
                timeout: Duration::from_secs(5),
                reconnect_initial: Duration::from_millis(10),
                reconnect_max: Duration::from_millis(20),
                allow_plaintext_auth: true,
            },
            max_message_bytes: 1024 * 1024,
            poll_interval: Duration::from_millis(50),
            spool: dir.path().join("spool"),
            intake: tx,
            store: Arc::clone(&store),
            metrics: Metrics::new(),
        };
        let stop = CancellationToken::new();
        let running = tokio::spawn(channel.run(stop.clone()));
        let mut got = Vec::new();
        for _ in 0..2 {
            let inc = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("intake got nothing")
                .unwrap();
            let (what, answer) = match &inc.payload {
                Payload::Rejected { reason, raw, .. } => {
                    let note = String::from_utf8_lossy(raw).into_owned();
                    assert!(note.contains(&inc.reference), "{note}");
                    (format!("rejected {reason}"), Disposition::Quarantined(1))
                }
                Payload::Mail { raw, .. } => {
                    assert_eq!(raw, MAIL.as_bytes());
                    ("mail".to_string(), Disposition::Recorded("x".into()))
                }
                other => panic!("{other:?}"),
            };
            got.push((inc.reference.clone(), what));
            inc.done.send(Ok(answer)).unwrap();
        }
        assert_eq!(
            got,
            [
                (
                    "imap:INBOX/7/1".to_string(),
                    format!("rejected {UNREADABLE}")
                ),
                ("imap:INBOX/7/2".to_string(), "mail".to_string()),
            ]
        );
        assert!(
            connections.load(std::sync::atomic::Ordering::SeqCst) >= READ_ATTEMPTS as usize,
            "tried on {READ_ATTEMPTS} connections"
        );
        // The cursor passes both mails.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let c = store.cursor("mailbox").unwrap();
            if c.as_deref().is_some_and(|c| c.contains("\"uid\":2")) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "cursor: {c:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        running.await.unwrap().unwrap();
    }
}
