//! Intake channels: long-running adapters that read an upstream system and hand each raw
//! record to intake over a bounded channel, moving their upstream cursor only after intake
//! answers that the record is durable.
//!
//! A channel does not route or produce; it reads, hands over, waits, commits. The HTTP
//! channels and the mailbox's parser turn a record into an envelope before handing it over;
//! intake (in the daemon) records, routes and answers. [`Incoming`] is that hand-off.
//!
//! The crate owns its config sections too (`config`: `[channels.*]`, raw and validated), and
//! the status write-back to the HTTP upstreams (`http::writeback`). It imports the core, the
//! store, the metrics and the Kafka layer's wire constants; never the daemon.

pub mod config;
pub mod http;
pub mod imap;
pub mod mailbox;

use jiff::Timestamp;
use std::path::PathBuf;
use tokio::sync::oneshot;

/// Quarantine reason of an item whose handling panicked (in a channel's preparation or in
/// intake).
pub const PANIC_REASON: &str = "panic";

/// What a channel hands to intake.
#[derive(Debug)]
pub enum Payload {
    /// A whole mail (RFC 5322 bytes) and when the mail server received it.
    Mail { raw: Vec<u8>, arrival: Timestamp },
    /// A file too large to read into memory: intake streams it into quarantine.
    Oversize {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// An upstream record already read into an envelope (HTTP channels), with its version:
    /// a known item at another version is an update, at the same version a re-poll.
    Record {
        envelope: Box<petitiond_core::envelope::Envelope>,
        version: String,
    },
    /// An upstream record that cannot become an item: quarantined with its bytes.
    Rejected {
        raw: Vec<u8>,
        reason: &'static str,
        detail: String,
    },
}

/// How intake disposed of a record. Every variant means "durable": the cursor may move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Recorded(String),
    Duplicate(String),
    /// An upstream change to a known item, recorded as an update event.
    Updated(String),
    Quarantined(i64),
}

/// A record handed to intake, with the channel's way to hear back.
#[derive(Debug)]
pub struct Incoming {
    /// Configured source name, e.g. `mailbox`.
    pub source: String,
    /// Upstream reference for logs and quarantine (a file name, a record id); never personal.
    pub reference: String,
    pub payload: Payload,
    pub done: oneshot::Sender<anyhow::Result<Disposition>>,
}
