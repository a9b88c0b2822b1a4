//! The incomplete-item check is pure and lives in the core
//! ([`petitiond_core::routing::completeness`]); this module applies it to a routing outcome
//! with the configured intake desk.

pub use petitiond_core::routing::completeness::*;

use super::Routed;
use petitiond_core::envelope::Envelope;
use petitiond_core::routing::Department;

/// Checks a routed item and, when something is missing, flags it and hands it to the intake
/// desk (`routing.intake_desk`, one of `departments`; see the module docs). Returns what is
/// missing (empty: nothing).
pub fn apply(
    c: &Completeness,
    desk: &str,
    departments: &[Department],
    env: &Envelope,
    routed: &mut Routed,
) -> Vec<String> {
    let missing = check(
        c,
        desk,
        env,
        routed.category,
        &mut routed.flags,
        &mut routed.decision,
    );
    if !missing.is_empty() {
        routed.departments = departments
            .iter()
            .find(|d| d.id == desk)
            .cloned()
            .into_iter()
            .collect();
    }
    missing
}
