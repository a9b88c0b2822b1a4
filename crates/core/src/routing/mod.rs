//! Routing's pure stages: the rules (parse, compile, lint, evaluate, operator test cases), the
//! category classifier (dictionaries in one Aho-Corasick pass, then the trained model), the
//! labelled-corpus evaluation and the re-routes departments send back. The daemon's
//! `routing::Router` holds a compiled rule set and calls [`rules::RuleSet`]; reloading,
//! completeness and repeat-petition linking (which read files, keys and the store) stay there.

pub mod classify;
pub mod corrections;
pub mod eval;
pub mod model;
pub mod rules;

/// A department items can be routed to (`[[departments]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub id: String,
    pub name: String,
    pub topic: String,
    /// Where this department's system reports status events (`departments[].status_topic`,
    /// default `<topic>.status`). Producer identity: only this department may write there
    /// (Kafka ACLs), so its events are the department's.
    pub status_topic: String,
    pub alert_emails: Vec<String>,
}

/// The routing decision as recorded (rule, rules version, departments).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub rule_id: String,
    pub rules_version: String,
    pub lead: String,
    pub assists: Vec<String>,
    pub decided_at: jiff::Timestamp,
}
