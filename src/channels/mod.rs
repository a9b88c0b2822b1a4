//! The intake channels are the `petitiond-channels` crate (`crates/channels`), re-exported at
//! their old path so the daemon, its tests and the benches name them as before.
//!
//! The tests here drive the channels together with the daemon's intake, routing and SLA code
//! (through the real intake into a real store), which the crate cannot import.

pub use petitiond_channels::{Disposition, Incoming, PANIC_REASON, Payload, http, imap, mailbox};

#[cfg(test)]
mod tests;
