//! petitiond: the daemon between a petition office's intake channels and its departments.
//!
//! Data flow (see ARCHITECTURE.md): `channels` → `intake` (normalize, dedupe, route) →
//! `store` (item + outbox in one transaction) → `kafka::relay` (CloudEvents, confirmed
//! delivery). `config` builds validated settings; `admin` serves health and metrics; `demo`
//! runs it all on embedded defaults.

pub mod admin;
pub mod alerts;
pub mod app;
pub mod channels;
pub mod cli;
pub mod config;
pub mod demo;
pub mod envelope;
#[doc(hidden)]
pub mod fuzzing;
pub mod intake;
pub mod kafka;
pub mod metrics;
pub mod notify;
pub mod panics;
pub mod report;
pub mod routing;
pub mod sim;
pub mod sla;
pub mod status;
pub mod store;
