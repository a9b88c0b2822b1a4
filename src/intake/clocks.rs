//! Which clocks an item starts at intake (and when a status event or a supplement restarts
//! them): the policies that match its channel and flags, their due instants on the calendar,
//! and the `sla_pending:` flag when one cannot be computed yet.

use super::*;

/// The clocks an item has because it is incomplete: those whose policy runs on the
/// `needs_supplement` flag (`intake.supplement`). They stop when an upstream update supplies
/// what was missing.
pub fn supplement_clocks(sla: &SlaConfig) -> Vec<String> {
    sla.clocks
        .iter()
        .filter(|p| {
            p.flags
                .iter()
                .any(|f| f == routing::completeness::NEEDS_SUPPLEMENT)
        })
        .map(|p| p.id.clone())
        .collect()
}

/// Starts the clocks a new item starts on arrival ([`start_clocks`] on `received` at its
/// `received_at`). Intake and `petitiond explain` both call this.
pub fn start_received_clocks(
    sla: &SlaConfig,
    metrics: &Metrics,
    env: &mut Envelope,
) -> Vec<(Clock, Option<jiff::Timestamp>)> {
    let arrived = env.received_at;
    start_clocks(sla, metrics, env, &Trigger::Received, None, arrived)
}

/// Flag prefix on an envelope whose clock `<id>` is pending (`sla_pending:<id>`): its due
/// instant needs a calendar year that is not loaded yet.
pub const SLA_PENDING_FLAG: &str = "sla_pending:";

/// Starts the clocks whose policy applies to `env` on `trigger` at `at`, with each one's next
/// alert, and lists them on the envelope (`sla`). A clock that filters on the starting
/// event's `verdict` starts only when it is one of its `verdicts`. The routing rules' `sla_overrides` come
/// first: a clock they skip is not started, a clock they add is started on its own trigger
/// even where its channel/category/flag filter would not apply. A clock that cannot be
/// computed (a calendar year not loaded) is logged and counted, never a reason to drop the
/// item.
pub fn start_clocks(
    sla: &SlaConfig,
    metrics: &Metrics,
    env: &mut Envelope,
    trigger: &Trigger,
    verdict: Option<&str>,
    at: jiff::Timestamp,
) -> Vec<(Clock, Option<jiff::Timestamp>)> {
    let cal = &sla.calendar;
    let lead = env
        .routing
        .as_ref()
        .map(|r| r.lead.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    let (add, skip) = env
        .routing
        .as_ref()
        .map_or((&[][..], &[][..]), |r| (&r.sla_add[..], &r.sla_skip[..]));
    let applying: Vec<_> = sla
        .clocks
        .iter()
        .filter(|p| !skip.contains(&p.id))
        .filter(|p| p.applies(env, trigger) || (&p.start == trigger && add.contains(&p.id)))
        .filter(|p| p.admits_verdict(verdict))
        .collect();
    for policy in applying {
        let started = Clock::start(policy, env.id.as_str(), &lead, at, cal)
            .and_then(|c| Ok((c.next_alert(policy, cal)?.map(|(_, t)| t), c)));
        match started {
            Ok((next, clock)) => {
                env.sla.push(petitiond_core::envelope::SlaClock {
                    clock: clock.clock_id.clone(),
                    due_at: clock.due_at,
                    state: clock.state.as_str().into(),
                    provisional: clock.provisional,
                });
                out.push((clock, next));
            }
            Err(e @ petitiond_core::sla::calendar::CalendarError::YearNotLoaded(_)) => {
                // Kept, not dropped: computed when petitiond starts with that year's calendar.
                // The envelope says so (no due instant to carry yet).
                metrics.clock_error(&policy.id);
                tracing::warn!(item = %env.id, clock = %policy.id, error = %e, "SLA clock pending: its due instant needs a calendar year that is not loaded");
                let flag = format!("{SLA_PENDING_FLAG}{}", policy.id);
                if !env.flags.contains(&flag) {
                    env.flags.push(flag);
                }
                out.push((Clock::pending(policy, env.id.as_str(), &lead, at), None));
            }
            Err(e) => {
                metrics.clock_error(&policy.id);
                tracing::error!(item = %env.id, clock = %policy.id, error = %e, "cannot start SLA clock");
            }
        }
    }
    out
}
