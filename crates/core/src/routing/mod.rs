//! Routing's pure stages: the rules (parse, compile, lint, evaluate, operator test cases), the
//! category classifier (dictionaries in one Aho-Corasick pass, then the trained model), the
//! labelled-corpus evaluation and the re-routes departments send back. The daemon's
//! `routing::Router` holds a compiled rule set and calls [`rules::RuleSet`]; reloading,
//! completeness and repeat-petition linking (which read files, keys and the store) stay there.

pub mod classify;
pub mod completeness;
pub mod corrections;
pub mod eval;
pub mod model;
pub mod rules;

use std::path::PathBuf;

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

/// The rules, dictionaries and model files a configuration names (`[routing]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RulesFiles {
    pub rules_file: PathBuf,
    pub dictionaries_dir: PathBuf,
    /// The classifier model (`routing.model_file`); `None`: dictionaries only.
    pub model_file: Option<PathBuf>,
    /// Below this confidence an item is not classified but flagged `needs_review`.
    pub review_threshold: f32,
}

/// Loads the configured rules file and checks what the rules engine cannot know alone: every
/// clock named in a rule's `sla_overrides` must be an `[[sla.clocks]]` id. Errors name the
/// rules file and the rule's line.
pub fn load_rules(
    files: &RulesFiles,
    departments: &[Department],
    clocks: &[crate::sla::policy::ClockPolicy],
) -> Result<(rules::RuleSet, Vec<crate::diag::ConfigError>), rules::Diagnostics> {
    let (set, warnings) =
        rules::RuleSet::load(&files.rules_file, &files.dictionaries_dir, departments)?;
    let mut errors = unknown_sla_clocks(&set, &files.rules_file.display().to_string(), clocks);
    let model = match files.model_file.as_deref().map(model::Model::load) {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            errors.push(crate::diag::ConfigError {
                file: e.file,
                line: None,
                path: "routing.model_file".into(),
                message: e.message,
            });
            None
        }
        None => None,
    };
    if errors.is_empty() {
        Ok((set.with_model(model, files.review_threshold), warnings))
    } else {
        Err(rules::Diagnostics { errors, warnings })
    }
}

/// The `sla_overrides` entries of `set` that name no configured clock.
fn unknown_sla_clocks(
    set: &rules::RuleSet,
    file: &str,
    clocks: &[crate::sla::policy::ClockPolicy],
) -> Vec<crate::diag::ConfigError> {
    let mut errors = Vec::new();
    for (i, rule) in set.rules().iter().enumerate() {
        for (key, list) in [("add", &rule.then.sla_add), ("skip", &rule.then.sla_skip)] {
            for c in list.iter().filter(|c| !clocks.iter().any(|p| &p.id == *c)) {
                let known: Vec<&str> = clocks.iter().map(|p| p.id.as_str()).collect();
                errors.push(crate::diag::ConfigError {
                    file: file.to_string(),
                    line: rule.line,
                    path: format!("rule[{i}].then.sla_overrides.{key}"),
                    message: format!(
                        "rule `{}`: `{c}` is not an SLA clock (configured: {})",
                        rule.id,
                        known.join(", ")
                    ),
                });
            }
        }
    }
    errors
}
