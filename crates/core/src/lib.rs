//! petitiond's pure core: what the daemon decides, with no I/O runtime (no tokio, no sockets,
//! no database). Everything here is a function of its inputs (and, for files it is asked to
//! read, of those files), so it is tested without services and fuzzed cheaply.
//!
//! - [`envelope`]: the envelope v1 every channel's item becomes, personal data (`Personal`,
//!   masked `Debug`), ID/mobile number normalisation and search.
//! - [`diag`]: file/line config errors, the secret type, the TOML machinery every section uses.
//! - [`routing`]: rules, classification (dictionaries + model), corpus evaluation, re-routes.
//! - [`reply`]: the reply-quality check (the four elements, banned vague phrases).
//! - [`sla`]: the working-day calendar, due-time rules, clock policies and clock states.

pub mod diag;
pub mod envelope;
pub mod reply;
pub mod routing;
pub mod sla;
