//! Routing: which department leads an item and which assist.
//!
//! For now one fixed rule sends every item to `routing.default_lead` (the intake desk); the
//! operator-edited rules engine replaces this behind the same `Decision` (issue 4). Pure: no
//! I/O.

use crate::config::{Config, Department};
use crate::envelope::Envelope;
use crate::store::Decision;
use sha2::{Digest, Sha256};

/// Version hash of the routing configuration, recorded with every decision.
pub fn rules_version(config: &Config) -> String {
    let mut h = Sha256::new();
    h.update(config.routing.default_lead.as_bytes());
    for d in &config.departments {
        h.update(b"\0");
        h.update(d.id.as_bytes());
        h.update(b"\0");
        h.update(d.topic.as_bytes());
    }
    hex::encode(&h.finalize()[..6])
}

/// The decision for one item, and the departments it names (lead first).
pub fn route<'c>(
    config: &'c Config,
    version: &str,
    _envelope: &Envelope,
    now: jiff::Timestamp,
) -> (Decision, Vec<&'c Department>) {
    let lead = config
        .department(&config.routing.default_lead)
        .expect("validated: routing.default_lead names a department");
    (
        Decision {
            rule_id: "default".into(),
            rules_version: version.to_string(),
            lead: lead.id.clone(),
            assists: Vec::new(),
            decided_at: now,
        },
        vec![lead],
    )
}
