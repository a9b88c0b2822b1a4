//! Routing: which department leads an item (主办) and which assist (协办).
//!
//! `rules` and `classify` are the operator-edited engine (pure); `model` is the statistical
//! second opinion on the category, combined with the dictionaries into one decision with a
//! source, a confidence and two candidates (unsure: unclassified, `needs_review`); `eval`
//! measures classification on labelled corpora; `corrections` reads the intake desk's
//! re-routes. [`Router`] holds the rules (and model) now in force and swaps them atomically on
//! reload; without a rules file every item goes to `routing.default_lead`. After the rules, [`completeness`] sends incomplete items to the
//! intake desk; [`repeat`] says who and what an item is about for repeat-petition linking
//! (the look-up itself is intake's, `intake::link`). The router does no I/O except reading
//! rules files on reload.

pub use petitiond_core::routing::{
    RulesFiles, classify, corrections, eval, load_rules, model, rules,
};
pub mod completeness;
pub mod config;
pub mod reload;
pub mod repeat;

use config::RoutingConfig;
use petitiond_core::envelope::Envelope;
use petitiond_core::routing::Decision;
use petitiond_core::routing::Department;
use petitiond_core::sla::policy::ClockPolicy;
use sha2::{Digest, Sha256};

/// Version hash of the routing configuration without a rules file (`routing.default_lead` and
/// the departments' ids and topics), recorded with every decision.
pub fn rules_version(routing: &RoutingConfig, departments: &[Department]) -> String {
    let mut h = Sha256::new();
    h.update(routing.default_lead.as_bytes());
    for d in departments {
        h.update(b"\0");
        h.update(d.id.as_bytes());
        h.update(b"\0");
        h.update(d.topic.as_bytes());
    }
    hex::encode(&h.finalize()[..6])
}

/// What routing decided for one item.
#[derive(Debug, Clone)]
pub struct Routed {
    pub decision: Decision,
    /// Lead first, then assists.
    pub departments: Vec<Department>,
    pub category: Option<petitiond_core::envelope::Category>,
    /// Flags for the envelope: `unclassified`, `priority:<p>`, `tag:<t>`, and from the
    /// incomplete-item check `needs_supplement`, `missing:<what>`, `suggested_lead:<d>`.
    pub flags: Vec<String>,
    /// The matter for repeat-petition linking ([`repeat::matter`]): from the rules' decision,
    /// before the incomplete-item check changes the lead.
    pub matter: Option<String>,
    /// The rules' `sla_overrides`: clock ids started although their policy would not apply,
    /// and clock ids not started although it would (see [`crate::intake::start_clocks`]).
    pub sla_add: Vec<String>,
    pub sla_skip: Vec<String>,
    /// How the category was decided (source, confidence, candidates); `None` without rules.
    pub classification: Option<petitiond_core::envelope::CategoryDecision>,
}

/// The flag of an item whose category the classifier was unsure of (below
/// `routing.review_threshold`, no rule decided): it started the rules unclassified.
pub const NEEDS_REVIEW: &str = "needs_review";

/// What the router reads from the config: `[routing]` (rules files, default lead, intake desk,
/// completeness check), the departments (ids, topics, names) and the clock policies (the rules'
/// `sla_overrides` must name configured clocks, on load and on reload). Built once, by
/// [`RouterInputs::from_config`].
#[derive(Debug, Clone)]
pub struct RouterInputs {
    pub routing: RoutingConfig,
    pub departments: Vec<Department>,
    pub clocks: Vec<ClockPolicy>,
}

impl RouterInputs {
    pub fn department(&self, id: &str) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }
}

/// The rules in force. Reads take a snapshot (`Arc`); a reload swaps it whole.
pub struct Router {
    inputs: RouterInputs,
    rules: std::sync::RwLock<Option<std::sync::Arc<rules::RuleSet>>>,
    fixed_version: String,
}

impl Router {
    /// Loads the configured rules (already validated by config loading).
    pub fn new(inputs: RouterInputs) -> Result<Router, rules::Diagnostics> {
        let loaded = match &inputs.routing.rules {
            Some(r) => Some(std::sync::Arc::new(
                load_rules(r, &inputs.departments, &inputs.clocks)?.0,
            )),
            None => None,
        };
        Ok(Router {
            fixed_version: rules_version(&inputs.routing, &inputs.departments),
            rules: std::sync::RwLock::new(loaded),
            inputs,
        })
    }

    pub fn version(&self) -> String {
        match self.snapshot() {
            Some(r) => r.version().to_string(),
            None => self.fixed_version.clone(),
        }
    }

    fn snapshot(&self) -> Option<std::sync::Arc<rules::RuleSet>> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the rules; on success swaps them in and returns (old, new) versions. On error
    /// the old rules stay in force.
    pub fn reload(&self) -> Result<(String, String), rules::Diagnostics> {
        let Some(r) = &self.inputs.routing.rules else {
            return Ok((self.version(), self.version()));
        };
        let (new, _warnings) = load_rules(r, &self.inputs.departments, &self.inputs.clocks)?;
        let old = self.version();
        let new_version = new.version().to_string();
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Some(std::sync::Arc::new(new));
        Ok((old, new_version))
    }

    /// Routes one item: the rules (or the fixed route), then the incomplete-item check. The
    /// daemon's path: [`Router::explain`] without the rule-by-rule trace, so the two cannot
    /// differ in anything but the trace.
    pub fn route(&self, env: &Envelope, now: jiff::Timestamp) -> Routed {
        self.decide(env, now, Detail::Decision).routed
    }

    /// Routes one item as [`Router::route`] does and says why: the rules' outcome, the
    /// classification (dictionary hits, model), every rule tried with each condition, and the
    /// incomplete-item check. `petitiond explain` prints this.
    pub fn explain(&self, env: &Envelope, now: jiff::Timestamp) -> Explanation {
        self.decide(env, now, Detail::Trace)
    }

    /// The one routing path: rules (fast or traced evaluation, which tests hold equal), flags,
    /// then the incomplete-item check.
    fn decide(&self, env: &Envelope, now: jiff::Timestamp, detail: Detail) -> Explanation {
        let (mut routed, summary, rules_trace) = self.route_by_rules(env, now, detail);
        let mut check = String::new();
        if let Some(c) = &self.inputs.routing.completeness {
            let desk = &self.inputs.routing.intake_desk;
            let missing = completeness::apply(c, desk, &self.inputs.departments, env, &mut routed);
            if detail == Detail::Trace {
                check = completeness_line(desk, &missing);
            }
        }
        let trace = match detail {
            Detail::Decision => String::new(),
            Detail::Trace => format!("{summary}\n{check}{rules_trace}"),
        };
        Explanation { routed, trace }
    }

    /// The rules' decision (or the fixed route) with its flags; when asked, the outcome's line
    /// and the rule-by-rule trace (empty otherwise).
    fn route_by_rules(
        &self,
        env: &Envelope,
        now: jiff::Timestamp,
        detail: Detail,
    ) -> (Routed, String, String) {
        let Some(rules) = self.snapshot() else {
            let (decision, deps) = route(
                &self.inputs.routing.default_lead,
                &self.inputs.departments,
                &self.fixed_version,
                env,
                now,
            );
            let routed = Routed {
                matter: repeat::matter(env.category, &decision.lead),
                decision,
                departments: deps.into_iter().cloned().collect(),
                category: env.category,
                flags: Vec::new(),
                sla_add: Vec::new(),
                sla_skip: Vec::new(),
                classification: None,
            };
            let summary = match detail {
                Detail::Decision => String::new(),
                Detail::Trace => format!(
                    "no rules file: every item goes to `{}`",
                    self.inputs.routing.default_lead
                ),
            };
            return (routed, summary, String::new());
        };
        let input = rules::Input::from_envelope(
            env,
            env.upstream.service_code.as_deref(),
            env.upstream.region.as_deref(),
        );
        let (outcome, summary, trace) = match detail {
            Detail::Decision => (rules.decide(&input), String::new(), String::new()),
            Detail::Trace => {
                let (outcome, trace) = rules.evaluate(&input);
                let (summary, trace) = (outcome.to_string(), trace.to_string());
                (outcome, summary, trace)
            }
        };
        (self.routed_by(&outcome, now), summary, trace)
    }

    /// The rules' outcome as a decision, departments and envelope flags.
    fn routed_by(&self, outcome: &rules::Outcome<'_>, now: jiff::Timestamp) -> Routed {
        let decision = outcome.decision(now);
        let departments = std::iter::once(&decision.lead)
            .chain(decision.assists.iter())
            .filter_map(|id| self.inputs.department(id).cloned())
            .collect();
        Routed {
            matter: repeat::matter(outcome.category, &decision.lead),
            category: outcome.category,
            decision,
            departments,
            flags: outcome_flags(outcome),
            sla_add: outcome.sla_add.iter().map(|c| c.to_string()).collect(),
            sla_skip: outcome.sla_skip.iter().map(|c| c.to_string()).collect(),
            classification: outcome.category_decision(),
        }
    }
}

/// How much [`Router`] says about a decision: the daemon needs the decision only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    Decision,
    Trace,
}

/// A routing decision with why it was made ([`Router::explain`]).
#[derive(Debug, Clone)]
pub struct Explanation {
    pub routed: Routed,
    /// For people: the completeness check (when configured), the rules' outcome, the
    /// classification and every rule tried. Config values and keyword hits only, never the
    /// item's text beyond the dictionary words it matched.
    pub trace: String,
}

/// The envelope flags of a rules outcome: `unclassified`, `needs_review`, `priority:<p>`,
/// `tag:<t>`.
fn outcome_flags(outcome: &rules::Outcome<'_>) -> Vec<String> {
    let mut flags = Vec::new();
    if outcome.unclassified() {
        flags.push(rules::UNCLASSIFIED.to_string());
    }
    if outcome.needs_review() {
        flags.push(NEEDS_REVIEW.to_string());
    }
    if outcome.priority != rules::Priority::Normal {
        flags.push(format!("priority:{}", outcome.priority.as_str()));
    }
    flags.extend(outcome.tags.iter().map(|t| format!("tag:{t}")));
    flags
}

/// The trace's line for the incomplete-item check.
fn completeness_line(intake_desk: &str, missing: &[String]) -> String {
    if missing.is_empty() {
        "completeness: nothing missing\n".to_string()
    } else {
        format!(
            "completeness: missing {} → lead {} (rule {})\n",
            missing.join(", "),
            intake_desk,
            completeness::RULE_ID
        )
    }
}

impl Routed {
    /// Writes the decision onto the envelope as the daemon records and publishes it
    /// (category, flags, `routing`); returns the decision and the departments to notify,
    /// lead first. Intake and `petitiond explain` both call this.
    pub fn stamp(self, env: &mut Envelope) -> (Decision, Vec<Department>) {
        env.category = self.category;
        env.flags.extend(self.flags);
        env.routing = Some(petitiond_core::envelope::Routing {
            lead: self.decision.lead.clone(),
            assists: self.decision.assists.clone(),
            rule_id: self.decision.rule_id.clone(),
            rules_version: self.decision.rules_version.clone(),
            decided_at: self.decision.decided_at,
            sla_add: self.sla_add,
            sla_skip: self.sla_skip,
            classification: self.classification,
        });
        (self.decision, self.departments)
    }
}

/// The fixed route: every item to `routing.default_lead`.
pub fn route<'c>(
    default_lead: &str,
    departments: &'c [Department],
    version: &str,
    _envelope: &Envelope,
    now: jiff::Timestamp,
) -> (Decision, Vec<&'c Department>) {
    let lead = departments
        .iter()
        .find(|d| d.id == default_lead)
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
