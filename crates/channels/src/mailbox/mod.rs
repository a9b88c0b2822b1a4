//! The scanned-letter mailbox channel, Maildir flavour (the embedded default).
//!
//! Scanners deliver into `new/`. For each mail the channel hands the bytes to intake and waits;
//! only when intake answers that the mail is durable (recorded, recognised as a duplicate, or
//! quarantined) is the file moved to `cur/` — that move is this channel's cursor. A crash
//! between the two leaves the mail in `new/`; it is read again and recognised by its id.
//! Arrival time is the Maildir delivery time (the file name's leading seconds), not `Date:`.
//!
//! One file never holds up the others: what is wrong with a mail's content intake quarantines
//! (and the file moves to `cur/`); a file that cannot be read or moved is logged and skipped
//! until the next poll while the files after it go on. Only intake failing to make a mail
//! durable (the store) stops the poll, so mails are not recorded out of order around it.
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

#[derive(Clone)]
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

/// Longest file name most file systems take (ext4, XFS, btrfs: NAME_MAX).
const NAME_MAX: usize = 255;

/// The name in `cur/`: the `:2,S` info suffix added. A name too long for it is cut (at a
/// character boundary) and given a hash of the whole name, so it stays unique: otherwise the
/// rename fails with ENAMETOOLONG on every poll.
fn cur_name(name: &str) -> String {
    if name.contains(":2,") {
        return name.to_string();
    }
    if name.len() + 4 <= NAME_MAX {
        return format!("{name}:2,S");
    }
    use sha2::Digest;
    let hash = hex::encode(&sha2::Sha256::digest(name.as_bytes())[..8]);
    let mut cut = NAME_MAX - 4 - 1 - hash.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}.{hash}:2,S", &name[..cut])
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
                    Err(Failed::ThisFile(e)) => {
                        // This file only: the next ones go on; it is tried at the next poll.
                        tracing::warn!(source = %self.source, file = %name, error = format!("{e:#}"), "cannot read or commit this mail; going on with the next, trying it again at the next poll");
                    }
                    Err(Failed::NotDurable(e)) => {
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
    async fn one(&self, root: &Path, name: &str) -> Result<bool, Failed> {
        let path = root.join("new").join(name);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Failed::ThisFile(e.into())),
        };
        let payload = if meta.len() > self.config.max_message_bytes {
            Payload::Oversize {
                path: path.clone(),
                size: meta.len(),
                limit: self.config.max_message_bytes,
            }
        } else {
            Payload::Mail {
                raw: match tokio::fs::read(&path).await {
                    Ok(raw) => raw,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
                    Err(e) => return Err(Failed::ThisFile(e.into())),
                },
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
            Ok(r) => r.map_err(Failed::NotDurable)?,
            Err(_) => return Ok(false),
        };
        tracing::debug!(source = %self.source, file = %name, ?disposition, "mail durable; committing");
        let (r, n) = (root.to_path_buf(), name.to_string());
        // The mail is durable: a failed move only means it is read again and recognised.
        match tokio::task::spawn_blocking(move || commit(&r, &n)).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(Failed::ThisFile(
                anyhow::Error::new(e).context("moving to cur/"),
            )),
            Err(e) => Err(Failed::ThisFile(
                anyhow::anyhow!(petitiond_store::join_error(&e)).context("moving to cur/"),
            )),
        }
    }
}

/// Why one mail was not committed.
enum Failed {
    /// Something about this file (it cannot be read, or moved to `cur/`): the files after it
    /// go on, and it is tried again at the next poll.
    ThisFile(anyhow::Error),
    /// Intake could not make it durable (the store failing): the poll stops here.
    NotDurable(anyhow::Error),
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

    /// Regression: a name with no room for `:2,S` failed the rename on every poll, and the
    /// channel stopped at it, so no later mail was read.
    #[test]
    fn a_name_too_long_for_the_info_suffix_still_commits() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let mut names = Vec::new();
        // ASCII, and CJK whose 3-byte characters straddle the cut.
        for (i, filler) in ["x", "扫"].iter().enumerate() {
            let mut name = format!("177241320{i}.M{i}P1.");
            while name.len() + filler.len() <= NAME_MAX {
                name.push_str(filler);
            }
            std::fs::write(dir.path().join("new").join(&name), b"mail").unwrap();
            commit(dir.path(), &name).unwrap();
            assert!(!dir.path().join("new").join(&name).exists());
            names.push(cur_name(&name));
        }
        for n in &names {
            assert!(n.len() <= NAME_MAX && n.ends_with(":2,S"), "{n}");
            assert!(dir.path().join("cur").join(n).exists(), "{n}");
        }
        assert_ne!(names[0], names[1]);
        assert_eq!(cur_name("1.M1P1.host"), "1.M1P1.host:2,S");
    }

    /// A mail that cannot be moved to cur/ does not stop the channel: the mails after it are
    /// handed to intake in the same poll.
    #[tokio::test]
    async fn a_file_that_cannot_be_committed_does_not_hold_up_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("m");
        deliver(&root, 1, b"first").unwrap();
        deliver(&root, 2, b"second").unwrap();
        let mut names: Vec<String> = list_new(&root).unwrap();
        names.sort();
        // cur/<first>:2,S is a non-empty directory: renaming the first file onto it fails.
        let blocker = root.join("cur").join(cur_name(&names[0]));
        std::fs::create_dir_all(blocker.join("x")).unwrap();
        let (tx, mut rx) = mpsc::channel::<Incoming>(4);
        let channel = MaildirChannel {
            source: "mailbox".into(),
            path: root.clone(),
            config: crate::config::MailboxConfig {
                kind: crate::config::MailboxKind::Maildir { path: root.clone() },
                poll_interval: std::time::Duration::from_secs(60),
                max_message_bytes: 1 << 20,
                max_parts: 10,
                max_nesting_depth: 5,
                max_decoded_bytes: 1 << 20,
                letter_reference: None,
            },
            intake: tx,
        };
        let stop = CancellationToken::new();
        let running = tokio::spawn(channel.run(stop.clone()));
        let mut seen = Vec::new();
        for _ in 0..2 {
            let inc = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
                .await
                .expect("the second mail was not handed over")
                .unwrap();
            seen.push(inc.reference.clone());
            inc.done
                .send(Ok(Disposition::Recorded(inc.reference.clone())))
                .unwrap();
        }
        assert_eq!(seen, names);
        stop.cancel();
        running.await.unwrap().unwrap();
        assert!(
            !root.join("new").join(&names[1]).exists(),
            "second committed"
        );
        assert!(root.join("new").join(&names[0]).exists(), "first waits");
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
