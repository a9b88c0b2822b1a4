//! The scanned-letter mailbox channel, Maildir flavour (the embedded default).
//!
//! Scanners deliver into `new/`. For each mail the channel hands the bytes to intake and waits;
//! only when intake answers that the mail is durable (recorded, recognised as a duplicate, or
//! quarantined) is the file moved to `cur/` — that move is this channel's cursor. A crash
//! between the two leaves the mail in `new/`; it is read again and recognised by its id.
//! Arrival time is the Maildir delivery time (the file name's leading seconds), not `Date:`.
//!
//! IMAP is `channels::imap`; parsing, shared by both, lives in `parse`.

pub mod parse;

#[cfg(test)]
mod crafted;
#[cfg(test)]
mod golden;

use super::{Disposition, Incoming, Payload};
use crate::config::MailboxConfig;
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub struct MaildirChannel {
    pub source: String,
    /// The Maildir (with new/, cur/, tmp/).
    pub path: PathBuf,
    pub config: MailboxConfig,
    pub intake: mpsc::Sender<Incoming>,
}

/// Delivery time from a Maildir file name (`<secs>.<unique>.<host>`), else the file's mtime.
pub fn arrival_time(name: &str, meta: &std::fs::Metadata) -> Timestamp {
    name.split('.')
        .next()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| Timestamp::from_second(s).ok())
        .or_else(|| {
            meta.modified()
                .ok()
                .and_then(|m| Timestamp::try_from(m).ok())
        })
        .unwrap_or_else(Timestamp::now)
}

fn cur_name(name: &str) -> String {
    if name.contains(":2,") {
        name.to_string()
    } else {
        format!("{name}:2,S")
    }
}

/// Moves a processed mail from `new/` to `cur/` durably.
fn commit(root: &Path, name: &str) -> std::io::Result<()> {
    let from = root.join("new").join(name);
    let to = root.join("cur").join(cur_name(name));
    match std::fs::rename(&from, &to) {
        Ok(()) => {}
        // Someone else moved it already: nothing to commit.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    std::fs::File::open(root.join("cur"))?.sync_all()?;
    std::fs::File::open(root.join("new"))?.sync_all()
}

impl MaildirChannel {
    /// Polls until `stop` fires. Returns an error only when intake is gone.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let root = self.path.clone();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        tracing::info!(source = %self.source, path = %root.display(), "maildir channel polling");
        while !stop.is_cancelled() {
            let names = match list_new(&root) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(source = %self.source, error = %e, "cannot list maildir new/");
                    Vec::new()
                }
            };
            for name in names {
                if stop.is_cancelled() {
                    break;
                }
                match self.one(&root, &name).await {
                    Ok(true) => {}
                    Ok(false) => return Ok(()), // intake closed: shutting down
                    Err(e) => {
                        // Not durable: leave it in new/ and retry on the next poll.
                        tracing::error!(source = %self.source, file = %name, error = format!("{e:#}"), "mail not recorded; will retry");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = stop.cancelled() => {}
            }
        }
        tracing::info!(source = %self.source, "maildir channel stopped");
        Ok(())
    }

    /// Hands one mail to intake and commits it. `Ok(false)` when intake has closed.
    async fn one(&self, root: &Path, name: &str) -> anyhow::Result<bool> {
        let path = root.join("new").join(name);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        let payload = if meta.len() > self.config.max_message_bytes {
            Payload::Oversize {
                path: path.clone(),
                size: meta.len(),
                limit: self.config.max_message_bytes,
            }
        } else {
            Payload::Mail {
                raw: tokio::fs::read(&path).await?,
                arrival: arrival_time(name, &meta),
            }
        };
        let (done, answer) = oneshot::channel();
        let incoming = Incoming {
            source: self.source.clone(),
            reference: name.to_string(),
            payload,
            done,
        };
        if self.intake.send(incoming).await.is_err() {
            return Ok(false);
        }
        let disposition: Disposition = match answer.await {
            Ok(r) => r?,
            Err(_) => return Ok(false),
        };
        tracing::debug!(source = %self.source, file = %name, ?disposition, "mail durable; committing");
        let (r, n) = (root.to_path_buf(), name.to_string());
        tokio::task::spawn_blocking(move || commit(&r, &n)).await??;
        Ok(true)
    }
}

/// File names in `new/`, oldest delivery first (Maildir names start with the delivery time).
fn list_new(root: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("new"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Delivers a mail into a Maildir the way an MDA does (tmp/ then rename into new/). Used by the
/// demo and tests to play the scanner.
pub fn deliver(root: &Path, seq: u64, raw: &[u8]) -> std::io::Result<PathBuf> {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    let secs = Timestamp::now().as_second();
    let name = format!("{secs}.M{seq}P{}.petitiond", std::process::id());
    let tmp = root.join("tmp").join(&name);
    std::fs::write(&tmp, raw)?;
    let dest = root.join("new").join(&name);
    std::fs::rename(&tmp, &dest)?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_comes_from_the_maildir_name() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"x").unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        assert_eq!(
            arrival_time("1772413200.M1P2.host", &meta),
            "2026-03-02T01:00:00Z".parse::<Timestamp>().unwrap()
        );
        // No time in the name: the file's mtime (about now).
        let t = arrival_time("weird-name", &meta);
        assert!((Timestamp::now() - t).get_seconds().abs() < 60);
    }

    #[test]
    fn commit_moves_to_cur_with_info_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let p = deliver(dir.path(), 1, b"mail").unwrap();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        commit(dir.path(), &name).unwrap();
        assert!(!p.exists());
        assert!(dir.path().join("cur").join(format!("{name}:2,S")).exists());
        // Committing again (a crash after the move) is harmless.
        commit(dir.path(), &name).unwrap();
    }
}
