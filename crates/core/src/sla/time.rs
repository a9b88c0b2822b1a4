//! Injected wall time: what the SLA engine and the other timers ask for "now".
//!
//! Owns the [`WallClock`] trait and the production [`SystemClock`]. Pure (no tokio): it
//! belongs to the core with the calendar and the clocks. It deliberately does not sleep —
//! waiting is the daemon's business (tokio's monotonic timer); a test clock that follows
//! tokio's paused time lives beside the engine ([`crate::sla::engine::PausedClock`]).
//!
//! Named `WallClock`, not `Clock`, because [`crate::sla::clock::Clock`] is an SLA clock (one
//! item's deadline), a different thing.

use jiff::Timestamp;
use std::sync::Arc;

/// A source of wall-clock instants. SLA instants (due times, alert times) are wall-clock
/// instants: a timer is due when `now()` has reached it, whatever the monotonic clock says.
pub trait WallClock: Send + Sync + std::fmt::Debug + 'static {
    /// The current wall-clock instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock (`Timestamp::now()`): what the daemon runs on. It can
/// step (NTP, an operator); the engine re-reads it at least once a minute.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The shared handle that tasks hold.
pub type SharedClock = Arc<dyn WallClock>;

/// The production clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_the_wall_clock() {
        let before = Timestamp::now();
        let t = system().now();
        assert!(t >= before && t <= Timestamp::now());
    }
}
