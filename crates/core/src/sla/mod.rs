//! The SLA's pure parts: the working-day calendar (year files, provisional years, office
//! hours), due-time rules, clock policies and the clock's state machine, and the wall-clock
//! trait the daemon's timers read time through. The daemon's `sla::engine` fires the clocks.

pub mod calendar;
pub mod clock;
pub mod due;
pub mod policy;
pub mod provisional;
pub mod time;
