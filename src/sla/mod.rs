//! SLA: the working-day calendar, due-time rules, clock policies and clock state.
//!
//! `calendar`, `due`, `policy` and `clock` are pure; the timer engine that fires alerts lives
//! in `engine` (I/O: the store and the alert outbox).

pub mod calendar;
pub mod clock;
pub mod due;
pub mod engine;
pub mod policy;
