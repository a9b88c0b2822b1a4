//! petitiond: the daemon between a petition office's intake channels and its departments.
//!
//! Data flow (see ARCHITECTURE.md): `channels` → `intake` (normalize, dedupe, route) →
//! `store` (item + outbox in one transaction) → `kafka::relay` (CloudEvents, confirmed
//! delivery). `config` composes the validated settings from the sections each component owns; `admin` serves health and metrics; `demo`
//! runs it all on embedded defaults.

pub mod admin;
pub mod alerts;
pub mod app;
pub mod channels;
pub mod cli;
pub mod cluster;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub use petitiond_core::envelope;
#[doc(hidden)]
pub mod fuzzing;
pub mod intake;
pub use petitiond_kafka as kafka;
pub use petitiond_metrics as metrics;
pub mod notify;
pub mod panics;
pub mod report;
pub mod routing;
/// The upstream simulators (crates/sim): linked only into a build with the `demo` feature (and
/// into tests), never into a production build's `run`.
#[cfg(any(test, feature = "demo"))]
pub use petitiond_sim as sim;
pub mod sla;
pub mod status;
pub use petitiond_store as store;
pub mod storage;
