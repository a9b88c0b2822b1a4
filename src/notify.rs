//! systemd's notify protocol (`sd_notify(3)`), for `Type=notify` units: `READY=1` once the
//! daemon serves (`app` decides when), `RELOADING=1` with `MONOTONIC_USEC` and then `READY=1`
//! around a SIGHUP reload, `STOPPING=1` when shutdown starts, `WATCHDOG=1` from the
//! supervisor loop, and `STATUS=` lines for `systemctl status`.
//!
//! Every call is a no-op without `$NOTIFY_SOCKET` (not under systemd, or another `Type=`). A
//! send that fails is logged, never fatal: the service manager observes the daemon, the daemon
//! does not depend on it. The datagrams carry states and fixed status texts only, never data.
//! This module does not decide readiness or liveness; it only reports them.

use sd_notify::NotifyState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set by the first [`ready`]: a reload before start-up has finished must not report the
/// daemon ready (systemd would end the start job early), so [`reloading`] and [`reloaded`]
/// stay silent until then. Process-wide, like `$NOTIFY_SOCKET` itself.
static READY_SENT: AtomicBool = AtomicBool::new(false);

fn send(what: &'static str, states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(notify = what, error = %e, "sd_notify: cannot reach the service manager");
    }
}

/// Start-up finished: topics verified, store open, channels running.
pub fn ready(status: &str) {
    READY_SENT.store(true, Ordering::SeqCst);
    send("READY", &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload begins. `MONOTONIC_USEC` is the CLOCK_MONOTONIC time of the message, which
/// systemd 253+ requires with `RELOADING=1` to match it to its own reload request.
pub fn reloading() {
    if !READY_SENT.load(Ordering::SeqCst) {
        return;
    }
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(
            "RELOADING",
            &[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading routing rules"),
            ],
        ),
        Err(e) => tracing::warn!(error = %e, "sd_notify: cannot read CLOCK_MONOTONIC"),
    }
}

/// The reload ended (in force or rejected: either way the daemon serves).
pub fn reloaded(status: &str) {
    if READY_SENT.load(Ordering::SeqCst) {
        send("READY", &[NotifyState::Ready, NotifyState::Status(status)]);
    }
}

/// Shutdown starts: stop polling, drain, flush.
pub fn stopping() {
    send(
        "STOPPING",
        &[
            NotifyState::Stopping,
            NotifyState::Status("stopping: draining intake and flushing Kafka"),
        ],
    );
}

/// The supervisor loop ran.
pub fn watchdog() {
    send("WATCHDOG", &[NotifyState::Watchdog]);
}

pub fn status(status: &str) {
    send("STATUS", &[NotifyState::Status(status)]);
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC` (as `sd_watchdog_enabled(3)`
/// advises), if systemd asked for it (`WatchdogSec=`) for this process (`$WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .map(|d| d / 2)
        .filter(|d| !d.is_zero())
}
