//! SLA time: which days are working days, and when a clock started at some instant is due.
//!
//! `calendar` owns the working-day calendar (per-year data files with their source, local
//! overrides, office hours, time zone); `due` owns the due-time rules that turn a start instant
//! into a deadline. Both are pure: no clocks, timers, storage or alerts live here, and nothing
//! reads the current time. Clock state (start, pause, resume) and timers are built on top.

pub mod calendar;
pub mod due;
