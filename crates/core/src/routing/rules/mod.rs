//! The routing rules engine: which department leads an item, which assist, and why.
//!
//! Owns the rules file (`config/rules.toml`), its two-stage parsing and validation (`rules
//! check`), evaluation with an explanation trace (`explain`), and operator test cases (`rules
//! test`). Classification and the keyword dictionaries are `routing::classify`. Pure: no I/O
//! except [`RuleSet::load`] and [`run_cases`] reading their files; no Kafka, no store.
//!
//! **Cost per item barely depends on the number of rules.** Every keyword — the dictionaries'
//! and every rule's — is compiled once into a `classify::Matcher`: one normalisation pass
//! turns the item into character codes and marks where a keyword may start (a bit filter of
//! first character pairs), and Aho-Corasick automata (two: the dictionaries', small and
//! cache-resident, and the rules') run anchored from those places only. Only the rules that a
//! found keyword or the item's service code can trigger, plus the rules with neither kind of
//! condition, are then evaluated, in file order. Regexes compile once into a `RegexSet`, run
//! at most once per item and only when a rule that needs them is reached.
//! [`RuleSet::decide_naive`] is the plain reference (every rule, `str::contains`): the tests
//! check that both agree, and `benches/routing.rs` measures both.
//!
//! # The rules file
//!
//! An ordered list of `[[rule]]`s; each has an `id`, optional `description`, conditions under
//! `when` and actions under `then`:
//!
//! ```toml
//! [[rule]]
//! id = "wage-arrears"
//! when.keywords_any = ["欠薪", "拖欠工资"]
//! then.lead = "hrss"
//! then.tags = ["wage-arrears"]
//! ```
//!
//! **Conditions** (all given ones must hold; every list is "any of" unless named otherwise):
//! `channel` (hotline, portal, letter), `category` (livelihood, rights, policy, historical,
//! unclassified — the item's category *at that point*, see below), `keywords_any` (at least one
//! found), `keywords_all` (every one found), `keywords_none` (none found), `regex` (at least one
//! matches), `service_code`, `region` (exact, or a prefix when the value ends in `*`: `"3701*"`),
//! `has_attachments` (bool), `repeat_petition` (bool: the item carries the `repeat_petition`
//! flag). Keywords, regexes, codes and regions are matched against the *normalised* title and
//! content (see `routing::classify`: half-width, lower-case ASCII, simplified characters, no
//! spaces between Chinese characters); keywords are normalised the same way, regexes are not,
//! so write them in normalised form (`\d` for digits, `拆迁` not `拆遷`). A rule without
//! conditions matches every item.
//!
//! **Actions**: `category` (override), `lead` (department id), `assists` (department ids),
//! `priority` (low, normal, high, urgent), `tags`, `sla_overrides = { add = [...], skip = [...] }`
//! (SLA clock ids: `routing::load_rules` checks them against `[[sla.clocks]]`; intake starts an
//! added clock on its own trigger and never starts a skipped one), and `continue` (bool).
//!
//! # Evaluation semantics (exact)
//!
//! 1. The item is classified first; its category (or *unclassified*) is the starting state.
//! 2. Rules are tried in file order. A rule matches when all its conditions hold against the
//!    item and the **current** state (a `category` condition sees overrides made by earlier
//!    matching rules).
//! 3. A matching rule applies its actions: `category` replaces the current category at once;
//!    `assists`, `tags` and `sla_overrides` accumulate (duplicates dropped, first-seen order; a
//!    clock added then skipped, or the reverse, ends as the later rule says); `priority` only
//!    ever rises (the highest of the matching rules, `normal` when none sets it).
//! 4. **Lead: the first matching rule that sets `lead` decides it**, and is the decision's
//!    `rule_id`. A later matching rule's `lead`, if different, **joins the assists** (the
//!    department is involved but does not lead) — this is how a `continue` rule that hands
//!    historical cases to the key-case ledger still collects the subject departments named by
//!    the rules below it. Exception: the `default` rule is a fallback; its `lead` applies only
//!    when no rule decided one and otherwise is ignored (its other actions still apply).
//! 5. Evaluation **stops at the first matching rule without `continue = true`**; a matching rule
//!    with `continue = true` lets the next rules be tried. The lead never appears among the
//!    assists.
//! 6. Validation guarantees a lead: a rule without `continue` must set `lead`, and the rule
//!    with `id = "default"` must exist, be last, have no conditions and not continue.
//!
//! # Validation (`rules check`)
//!
//! Errors (the file is refused): TOML syntax and shape (unknown keys, wrong types), unknown
//! channel/category/priority names, unknown department ids, duplicate rule ids, a missing or
//! misplaced `default`, a non-continue rule without `lead`, an empty condition list, an empty
//! keyword, an invalid regex, a rule that can never match (its `keywords_none` excludes all it
//! requires), and an **unreachable** rule: one whose conditions imply those of an earlier rule
//! that does not continue (an earlier unconditional rule, an identical condition set, or a
//! narrower one: subset of channels, more keywords, ...; keywords compare by containment).
//! Warnings (loaded anyway): the same keyword in two categories' dictionaries, the same keyword
//! in the `keywords_any` of two rules that lead to different departments (unless the two rules
//! cannot match the same item by channel, category, attachment, repeat or service code, or the
//! earlier one is a deliberate special case: it has a condition kind the later one lacks, such
//! as a `region` split before the general rule), a
//! one-character keyword, a regex with characters normalisation removes, a rule listing its own
//! lead among its assists, a `continue` rule that does nothing.
//! Every error and warning carries file, line and key path, like the daemon's config.
//!
//! # Personal data
//!
//! An [`Outcome`] and a [`Trace`] carry rule ids, department ids, config values and keyword
//! hits (keywords come from config, not from the petitioner); never the item's text, service
//! code or region (conditions on those say "in [...]" / "not in [...]" using the rule's values).
//!
//! # API
//!
//! [`RuleSet::load`] / [`RuleSet::parse`] → `(RuleSet, warnings)` or [`Diagnostics`];
//! [`RuleSet::version`]; [`RuleSet::decide`] (the fast path) and [`RuleSet::evaluate`] (the
//! same outcome plus a [`Trace`]) on an [`Input`] borrowed from an envelope
//! ([`Input::from_envelope`]); [`Outcome::decision`] → `store::Decision`; [`run_cases`] for
//! operator test cases (format in [`run_cases_str`]).
//!
//! # Layout
//!
//! This file holds the types and the API; one module per stage: `parse` (the file's shape and
//! validation into [`Rule`]s), `compile` (the keyword automaton, triggers, regex set), `lint`
//! (whole-set checks), `evaluate` (`decide`, `evaluate`, `decide_naive`), `cases` (operator
//! test cases); `tests` beside them.

use super::classify::{
    self, Classification, Dictionaries, Matcher, Span, category_index, normalize, normalize_code,
    parse_category,
};
use super::model::{self, Model, Opinion, Source};
use crate::diag::ConfigError;
use crate::diag::toml_file::TomlFile;
use crate::envelope::{Category, Channel, Envelope};
use crate::routing::Decision;
use crate::routing::Department;
use regex::{Regex, RegexSet};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

/// The flag on an envelope that marks a repeat petition (the `repeat_petition` condition).
pub const REPEAT_PETITION_FLAG: &str = "repeat_petition";
/// The id of the required fallback rule.
pub const DEFAULT_RULE: &str = "default";
/// How an unclassified item's category is written in rules and cases.
pub const UNCLASSIFIED: &str = "unclassified";

mod cases;
mod compile;
mod evaluate;
mod lint;
mod parse;
#[cfg(test)]
pub(crate) mod tests;

pub use cases::{CaseReport, FieldDiff, Mismatch, run_cases, run_cases_str};
use compile::*;
use parse::*;

// =============================================================================================
// Diagnostics and TOML source positions

/// Every error and warning found while loading rules, dictionaries or cases.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (kind, list) in [("error", &self.errors), ("warning", &self.warnings)] {
            for e in list {
                if !first {
                    writeln!(f)?;
                }
                first = false;
                write!(f, "{kind}: {e}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

fn sort_diags(list: &mut [ConfigError]) {
    list.sort_by(|a, b| {
        (a.file.as_str(), a.line.unwrap_or(usize::MAX))
            .cmp(&(b.file.as_str(), b.line.unwrap_or(usize::MAX)))
    });
}

// =============================================================================================
// Stage two: validated types

/// An item's routing priority; rules can only raise it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Urgent,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

fn parse_channel(s: &str) -> Option<Channel> {
    [Channel::Hotline, Channel::Portal, Channel::Letter]
        .into_iter()
        .find(|c| c.as_str() == s)
}

fn channel_bit(c: Channel) -> u8 {
    match c {
        Channel::Hotline => 1,
        Channel::Portal => 2,
        Channel::Letter => 4,
    }
}

/// Bit of a category in a category mask; bit 4 is "unclassified".
fn category_bit(c: Option<Category>) -> u8 {
    match c {
        Some(c) => 1 << category_index(c),
        None => 1 << 4,
    }
}

fn category_name(c: Option<Category>) -> &'static str {
    c.map_or(UNCLASSIFIED, Category::as_str)
}

/// A keyword of a rule.
#[derive(Debug, Clone)]
pub struct Keyword {
    /// As written in the rules file.
    pub text: String,
    /// Normalised: what is searched for.
    pub normalized: String,
    pattern: u32,
}

/// A `region` condition value: exact, or a prefix (`"3701*"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionPattern {
    Exact(String),
    Prefix(String),
}

impl RegionPattern {
    fn parse(s: &str) -> RegionPattern {
        match s.strip_suffix('*') {
            Some(p) => RegionPattern::Prefix(normalize(p)),
            None => RegionPattern::Exact(normalize(s)),
        }
    }

    /// Matches a normalised region.
    pub fn matches(&self, region: &str) -> bool {
        match self {
            RegionPattern::Exact(e) => region == e,
            RegionPattern::Prefix(p) => region.starts_with(p.as_str()),
        }
    }

    /// Every region `other` matches, this one matches too.
    fn covers(&self, other: &RegionPattern) -> bool {
        match (self, other) {
            (RegionPattern::Exact(a), RegionPattern::Exact(b)) => a == b,
            (RegionPattern::Prefix(a), RegionPattern::Exact(b) | RegionPattern::Prefix(b)) => {
                b.starts_with(a.as_str())
            }
            (RegionPattern::Exact(_), RegionPattern::Prefix(_)) => false,
        }
    }
}

impl fmt::Display for RegionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionPattern::Exact(e) => f.write_str(e),
            RegionPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

/// A rule's conditions, validated. `None` / empty: no such condition.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub channel: Option<Vec<Channel>>,
    /// `None` inside the list stands for *unclassified*.
    pub category: Option<Vec<Option<Category>>>,
    pub keywords_any: Vec<Keyword>,
    pub keywords_all: Vec<Keyword>,
    pub keywords_none: Vec<Keyword>,
    /// Regex sources, as written.
    pub regex: Vec<String>,
    /// Normalised service codes.
    pub service_code: Option<Vec<String>>,
    pub region: Option<Vec<RegionPattern>>,
    pub has_attachments: Option<bool>,
    pub repeat_petition: Option<bool>,
    regex_ids: Vec<u32>,
    channel_mask: u8,
    category_mask: u8,
}

impl Conditions {
    /// True when the rule matches every item.
    pub fn is_empty(&self) -> bool {
        self.channel.is_none()
            && self.category.is_none()
            && self.keywords_any.is_empty()
            && self.keywords_all.is_empty()
            && self.keywords_none.is_empty()
            && self.regex.is_empty()
            && self.service_code.is_none()
            && self.region.is_none()
            && self.has_attachments.is_none()
            && self.repeat_petition.is_none()
    }

    /// Has `keywords_any` or `keywords_all`: the rule can only match when a keyword is found.
    fn keyword_triggered(&self) -> bool {
        !self.keywords_any.is_empty() || !self.keywords_all.is_empty()
    }
}

/// A rule's actions, validated.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    pub category: Option<Category>,
    pub lead: Option<String>,
    pub assists: Vec<String>,
    pub priority: Option<Priority>,
    pub tags: Vec<String>,
    pub sla_add: Vec<String>,
    pub sla_skip: Vec<String>,
    pub continue_: bool,
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: Option<String>,
    /// Line of its `[[rule]]` header.
    pub line: Option<usize>,
    pub when: Conditions,
    pub then: Actions,
}

/// The compiled rules and dictionaries.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    dicts: Dictionaries,
    /// Every distinct normalised keyword, compiled once: the dictionaries' first (same ids
    /// as `Dictionaries::patterns`), then the rules'.
    matcher: Matcher,
    pattern_count: usize,
    /// Pattern id → rules that have it in `keywords_any` or `keywords_all` (ascending).
    triggers: Csr,
    /// Normalised service code → rules without keyword conditions that need that code.
    code_triggers: HashMap<String, Vec<u32>>,
    /// Rules with neither: candidates for every item (ascending).
    always: Vec<u32>,
    regex_set: RegexSet,
    /// The same regexes one by one (the naive evaluator and `explain`).
    regexes: Vec<Regex>,
    version: String,
    file: String,
    /// The statistical second opinion (`routing::model`), shared by the clones of a rule set.
    model: Option<std::sync::Arc<Model>>,
    /// Below this confidence the classifier's category is not used (`routing.review_threshold`).
    review_threshold: f32,
}

/// What a rule is evaluated on: borrowed from an envelope, or built by hand.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub channel: Channel,
    pub title: &'a str,
    pub content: &'a str,
    /// The upstream service code (Open311 `service_code`, hotline 工单分类), if any.
    pub service_code: Option<&'a str>,
    /// The administrative region the item concerns, if known.
    pub region: Option<&'a str>,
    pub attachments: usize,
    pub repeat_petition: bool,
}

impl<'a> Input<'a> {
    /// The input for an envelope. The envelope has no service code or region field yet, so
    /// the caller passes them (from the upstream record) when it has them.
    pub fn from_envelope(
        e: &'a Envelope,
        service_code: Option<&'a str>,
        region: Option<&'a str>,
    ) -> Input<'a> {
        Input {
            channel: e.channel,
            title: e.request.title.as_ref().map_or("", |t| t.expose()),
            content: e.request.content.expose(),
            service_code,
            region,
            attachments: e.attachments.len(),
            repeat_petition: e.flags.iter().any(|f| f == REPEAT_PETITION_FLAG),
        }
    }
}

/// The routing outcome for one item. Borrows ids from the [`RuleSet`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'r> {
    /// Final category (after rule overrides); `None`: unclassified.
    pub category: Option<Category>,
    /// The classifier's category, before any rule override (`None`: no evidence, or unsure).
    pub classified: Option<Category>,
    /// The classifier's decision: source, confidence, candidates (`routing::model`).
    pub opinion: Opinion,
    /// A matching rule set the category (`then.category`): the source is `rule`.
    pub category_by_rule: bool,
    pub scores: classify::Scores,
    pub lead: &'r str,
    /// The rule that decided the lead.
    pub rule_id: &'r str,
    pub assists: Vec<&'r str>,
    pub priority: Priority,
    pub tags: Vec<&'r str>,
    pub sla_add: Vec<&'r str>,
    pub sla_skip: Vec<&'r str>,
    /// Every rule that matched, in order.
    pub matched_rules: Vec<&'r str>,
    pub rules_version: &'r str,
}

impl Outcome<'_> {
    /// Unclassified at the end (the caller flags the item and the intake desk sorts it).
    pub fn unclassified(&self) -> bool {
        self.category.is_none()
    }

    /// What decided the category: a rule, the dictionaries or the model (`None`: nothing did,
    /// no keyword and no model).
    pub fn source(&self) -> Option<Source> {
        if self.category_by_rule {
            Some(Source::Rule)
        } else {
            self.opinion.source
        }
    }

    /// Confidence of the category decision: 1 for a rule, else the classifier's.
    pub fn confidence(&self) -> f32 {
        if self.category_by_rule {
            1.0
        } else {
            self.opinion.confidence
        }
    }

    /// The classifier was unsure and no rule set a category: a person decides (the item
    /// started the rules unclassified).
    pub fn needs_review(&self) -> bool {
        !self.category_by_rule && self.opinion.needs_review
    }

    /// How the category was decided, as the envelope records it.
    pub fn category_decision(&self) -> Option<crate::envelope::CategoryDecision> {
        let round = |p: f32| (f64::from(p) * 1000.0).round() / 1000.0;
        Some(crate::envelope::CategoryDecision {
            source: self.source()?.as_str().to_string(),
            confidence: round(self.confidence()),
            candidates: self
                .opinion
                .candidates()
                .map(|(category, p)| crate::envelope::Candidate {
                    category,
                    confidence: round(p),
                })
                .collect(),
            needs_review: self.needs_review(),
        })
    }

    /// The record the store keeps.
    pub fn decision(&self, decided_at: jiff::Timestamp) -> Decision {
        Decision {
            rule_id: self.rule_id.to_string(),
            rules_version: self.rules_version.to_string(),
            lead: self.lead.to_string(),
            assists: self.assists.iter().map(|s| s.to_string()).collect(),
            decided_at,
        }
    }
}

impl fmt::Display for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lead {} (rule {}), assists [{}], category {}, priority {}",
            self.lead,
            self.rule_id,
            self.assists.join(", "),
            category_name(self.category),
            self.priority.as_str()
        )?;
        if let Some(s) = self.source() {
            write!(f, " (by {s}, confidence {:.2})", self.confidence())?;
        }
        if self.needs_review() {
            f.write_str(", needs_review")?;
        }
        if !self.tags.is_empty() {
            write!(f, ", tags [{}]", self.tags.join(", "))?;
        }
        if !self.sla_add.is_empty() || !self.sla_skip.is_empty() {
            write!(
                f,
                ", sla +[{}] -[{}]",
                self.sla_add.join(", "),
                self.sla_skip.join(", ")
            )?;
        }
        write!(f, ", rules {}", self.rules_version)
    }
}

/// Why an item was routed as it was: the classification and every rule tried.
#[derive(Debug, Clone)]
pub struct Trace<'r> {
    pub classification: Classification<'r>,
    /// The dictionaries and the model combined (the rules' starting category).
    pub opinion: Opinion,
    pub rules: Vec<RuleTrace<'r>>,
}

/// One rule tried.
#[derive(Debug, Clone)]
pub struct RuleTrace<'r> {
    pub rule_id: &'r str,
    pub line: Option<usize>,
    pub matched: bool,
    /// Every condition of the rule with its result (all are evaluated here, unlike the fast
    /// path, which stops at the first that fails).
    pub conditions: Vec<ConditionTrace>,
    /// What the rule did, when it matched.
    pub effects: Vec<String>,
}

/// One condition's result. `detail` holds config values and keyword hits only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionTrace {
    pub condition: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl fmt::Display for Trace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "classification: {}", self.classification)?;
        writeln!(f, "decision: {}", self.opinion)?;
        for r in &self.rules {
            let line = r.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            let verdict = if r.matched { "MATCH" } else { "no" };
            write!(f, "rule {}{line}: {verdict}", r.rule_id)?;
            if r.conditions.is_empty() {
                f.write_str(" — no conditions")?;
            }
            for c in &r.conditions {
                let mark = if c.ok { "ok" } else { "FAILS" };
                write!(f, "\n    {} {mark}: {}", c.condition, c.detail)?;
            }
            for e in &r.effects {
                write!(f, "\n    → {e}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

// =============================================================================================
// Accessors

impl RuleSet {
    /// Short hash of the rules file and every dictionary file (names and contents).
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn dictionaries(&self) -> &Dictionaries {
        &self.dicts
    }

    /// The rules file name as given.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Distinct keywords in the automaton (dictionaries and rules).
    pub fn pattern_count(&self) -> usize {
        self.pattern_count
    }

    /// Adds the classifier model (or none) and the review threshold. The version then covers
    /// them too: a decision names the rules, dictionaries, model and threshold it was made by.
    pub fn with_model(mut self, model: Option<Model>, review_threshold: f32) -> RuleSet {
        let mut h = Sha256::new();
        h.update(b"petitiond-rules-v2\0");
        h.update(self.version.as_bytes());
        if let Some(m) = &model {
            h.update(b"\0model\0");
            h.update(m.digest().as_bytes());
        }
        h.update(b"\0review\0");
        h.update(review_threshold.to_le_bytes());
        self.version = hex::encode(&h.finalize()[..6]);
        self.model = model.map(std::sync::Arc::new);
        self.review_threshold = review_threshold;
        self
    }

    /// The classifier model in use, if any.
    pub fn model(&self) -> Option<&Model> {
        self.model.as_deref()
    }

    /// `routing.review_threshold` as loaded.
    pub fn review_threshold(&self) -> f32 {
        self.review_threshold
    }
}
