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

use super::classify::{
    self, Classification, Dictionaries, Matcher, Span, category_index, normalize, normalize_code,
    parse_category,
};
use crate::config::toml_file::TomlFile;
use crate::config::{ConfigError, Department};
use crate::envelope::{Category, Channel, Envelope};
use crate::store::Decision;
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
// Stage one: the file's shape

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    when: RawWhen,
    #[serde(default)]
    then: RawThen,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    channel: Option<Vec<String>>,
    category: Option<Vec<String>>,
    keywords_any: Option<Vec<String>>,
    keywords_all: Option<Vec<String>>,
    keywords_none: Option<Vec<String>>,
    regex: Option<Vec<String>>,
    service_code: Option<Vec<String>>,
    region: Option<Vec<String>>,
    has_attachments: Option<bool>,
    repeat_petition: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThen {
    category: Option<String>,
    lead: Option<String>,
    #[serde(default)]
    assists: Vec<String>,
    priority: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    sla_overrides: RawSlaOverrides,
    #[serde(default, rename = "continue")]
    continue_: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlaOverrides {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    skip: Vec<String>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<'r> {
    /// Final category (after rule overrides); `None`: unclassified.
    pub category: Option<Category>,
    /// The classifier's category, before any rule override.
    pub classified: Option<Category>,
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
// Loading and validation

impl RuleSet {
    /// Reads the rules file and every `*.toml` in `dictionaries_dir`, checks department ids
    /// against `departments`, and compiles. `Ok` carries the warnings.
    pub fn load(
        rules_path: &Path,
        dictionaries_dir: &Path,
        departments: &[Department],
    ) -> Result<(RuleSet, Vec<ConfigError>), Diagnostics> {
        let file = rules_path.display().to_string();
        let text = std::fs::read_to_string(rules_path).map_err(|e| Diagnostics {
            errors: vec![ConfigError {
                file: file.clone(),
                line: None,
                path: String::new(),
                message: format!("cannot read: {e}"),
            }],
            warnings: Vec::new(),
        })?;
        let dict_files = classify::read_toml_dir(dictionaries_dir)?;
        let ids: Vec<&str> = departments.iter().map(|d| d.id.as_str()).collect();
        Self::parse(&file, &text, &dict_files, &ids)
    }

    /// Parses and compiles rules text with dictionary files given as (name, content).
    pub fn parse(
        file: &str,
        text: &str,
        dictionary_files: &[(String, String)],
        departments: &[&str],
    ) -> Result<(RuleSet, Vec<ConfigError>), Diagnostics> {
        let mut diags = Diagnostics::default();
        let dicts = match Dictionaries::parse(dictionary_files) {
            Ok((d, w)) => {
                diags.warnings.extend(w);
                d
            }
            Err(e) => {
                diags.errors.extend(e.errors);
                diags.warnings.extend(e.warnings);
                Dictionaries::default()
            }
        };
        let src = match TomlFile::parse(file, text) {
            Ok(s) => Some(s),
            Err(e) => {
                diags.errors.push(e);
                None
            }
        };
        let built = src.as_ref().and_then(|src| {
            let raw = src.deserialize::<RawRules>(&mut diags.errors)?;
            Builder::new(src, &dicts, departments, &mut diags).build(raw)
        });
        let finish = |mut diags: Diagnostics| {
            sort_diags(&mut diags.errors);
            sort_diags(&mut diags.warnings);
            if diags.errors.is_empty() {
                diags.errors.push(ConfigError {
                    file: file.into(),
                    line: None,
                    path: String::new(),
                    message: "invalid rules".into(),
                });
            }
            diags
        };
        let (Some(src), Some(built)) = (src, built) else {
            return Err(finish(diags));
        };
        if !diags.errors.is_empty() {
            return Err(finish(diags));
        }
        let version = version_of(text, &dicts);
        let rs = match built.compile(dicts, version, file) {
            Ok(rs) => rs,
            Err(e) => {
                diags.errors.push(e);
                return Err(finish(diags));
            }
        };
        rs.lint(&src, &mut diags);
        if !diags.errors.is_empty() {
            return Err(finish(diags));
        }
        sort_diags(&mut diags.warnings);
        Ok((rs, diags.warnings))
    }

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
}

fn version_of(rules_text: &str, dicts: &Dictionaries) -> String {
    let mut h = Sha256::new();
    h.update(b"petitiond-rules-v1\0");
    h.update(rules_text.as_bytes());
    let mut sources: Vec<&(String, String)> = dicts.sources().iter().collect();
    sources.sort();
    for (name, text) in sources {
        h.update(b"\0dictionary\0");
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(text.as_bytes());
    }
    hex::encode(&h.finalize()[..6])
}

/// Stage two.
struct Builder<'a, 'b> {
    src: &'a TomlFile<'a>,
    departments: HashSet<&'a str>,
    diags: &'b mut Diagnostics,
    patterns: Vec<String>,
    pattern_ids: HashMap<String, u32>,
    regex_sources: Vec<String>,
    regex_ids: HashMap<String, u32>,
    regexes: Vec<Regex>,
}

struct Built {
    rules: Vec<Rule>,
    patterns: Vec<String>,
    regex_sources: Vec<String>,
    regexes: Vec<Regex>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl<'a, 'b> Builder<'a, 'b> {
    fn new(
        src: &'a TomlFile<'a>,
        dicts: &'a Dictionaries,
        departments: &'a [&'a str],
        diags: &'b mut Diagnostics,
    ) -> Self {
        let patterns = dicts.patterns().to_vec();
        let pattern_ids = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as u32))
            .collect();
        Self {
            src,
            departments: departments.iter().copied().collect(),
            diags,
            patterns,
            pattern_ids,
            regex_sources: Vec::new(),
            regex_ids: HashMap::new(),
            regexes: Vec::new(),
        }
    }

    fn err(&mut self, path: &str, message: impl Into<String>) {
        let e = self.src.err(path, message);
        self.diags.errors.push(e);
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        let e = self.src.err(path, message);
        self.diags.warnings.push(e);
    }

    /// A condition list must not be empty: an empty "any of" never matches.
    fn nonempty<'v>(&mut self, path: &str, v: &'v Option<Vec<String>>) -> Option<&'v [String]> {
        match v {
            Some(list) if list.is_empty() => {
                self.err(
                    path,
                    "empty list: remove the key or give at least one value",
                );
                None
            }
            Some(list) => Some(list),
            None => None,
        }
    }

    fn keywords(&mut self, path: &str, v: &Option<Vec<String>>) -> Vec<Keyword> {
        let Some(list) = self.nonempty(path, v) else {
            return Vec::new();
        };
        let mut out: Vec<Keyword> = Vec::new();
        for (j, k) in list.iter().enumerate() {
            let at = format!("{path}[{j}]");
            let norm = normalize(k);
            if norm.is_empty() {
                self.err(&at, "keyword must not be empty");
                continue;
            }
            if norm.chars().count() == 1 {
                self.warn(
                    &at,
                    format!("`{k}` is one character: it matches far too much"),
                );
            }
            if let Some(prev) = out.iter().find(|o| o.normalized == norm) {
                let msg = format!("`{k}` repeats `{}` (after normalisation)", prev.text);
                self.warn(&at, msg);
                continue;
            }
            let next = self.patterns.len() as u32;
            let pattern = *self.pattern_ids.entry(norm.clone()).or_insert(next);
            if pattern == next {
                self.patterns.push(norm.clone());
            }
            out.push(Keyword {
                text: k.clone(),
                normalized: norm,
                pattern,
            });
        }
        out
    }

    fn department(&mut self, path: &str, id: &str) -> bool {
        if self.departments.contains(id) {
            true
        } else {
            let mut known: Vec<&str> = self.departments.iter().copied().collect();
            known.sort_unstable();
            self.err(
                path,
                format!(
                    "department `{id}` is not defined in [[departments]] (known: {})",
                    known.join(", ")
                ),
            );
            false
        }
    }

    fn build(mut self, raw: RawRules) -> Option<Built> {
        let mut rules = Vec::with_capacity(raw.rule.len());
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (i, r) in raw.rule.iter().enumerate() {
            let at = |k: &str| format!("rule[{i}].{k}");
            if !valid_id(&r.id) {
                self.err(
                    &at("id"),
                    format!("`{}` is not a rule id (1-64 of a-z A-Z 0-9 - _ .)", r.id),
                );
            } else if let Some(&prev) = ids.get(&r.id) {
                let line = self.src.line(&format!("rule[{prev}].id"));
                self.err(
                    &at("id"),
                    format!(
                        "duplicate rule id `{}` (first at line {})",
                        r.id,
                        line.map_or("?".into(), |l| l.to_string())
                    ),
                );
            } else {
                ids.insert(r.id.clone(), i);
            }
            let when = self.conditions(i, &r.when);
            let then = self.actions(i, &r.then);
            if !then.continue_ && then.lead.is_none() && r.then.lead.is_none() {
                self.err(
                    &format!("rule[{i}]"),
                    format!(
                        "rule `{}` stops evaluation (no `continue = true`) so it must set `then.lead`",
                        r.id
                    ),
                );
            }
            if then.continue_
                && then.lead.is_none()
                && then.category.is_none()
                && then.assists.is_empty()
                && then.priority.is_none()
                && then.tags.is_empty()
                && then.sla_add.is_empty()
                && then.sla_skip.is_empty()
            {
                self.warn(
                    &format!("rule[{i}]"),
                    format!("rule `{}` does nothing", r.id),
                );
            }
            rules.push(Rule {
                id: r.id.clone(),
                description: r.description.clone(),
                line: self.src.line(&format!("rule[{i}]")),
                when,
                then,
            });
        }
        self.default_rule(&rules);
        Some(Built {
            rules,
            patterns: self.patterns,
            regex_sources: self.regex_sources,
            regexes: self.regexes,
        })
    }

    fn default_rule(&mut self, rules: &[Rule]) {
        let Some(pos) = rules.iter().position(|r| r.id == DEFAULT_RULE) else {
            let path = if rules.is_empty() {
                String::new()
            } else {
                format!("rule[{}]", rules.len() - 1)
            };
            self.err(
                &path,
                "a last rule with id = \"default\", no conditions and a `lead` is required",
            );
            return;
        };
        let d = &rules[pos];
        if pos + 1 != rules.len() {
            self.err(
                &format!("rule[{pos}].id"),
                format!(
                    "the default rule must be the last one ({} rule(s) follow it and are never reached)",
                    rules.len() - pos - 1
                ),
            );
        }
        if !d.when.is_empty() {
            self.err(
                &format!("rule[{pos}].when"),
                "the default rule must have no conditions",
            );
        }
        if d.then.continue_ {
            self.err(
                &format!("rule[{pos}].then.continue"),
                "the default rule must not continue",
            );
        }
    }

    fn conditions(&mut self, i: usize, w: &RawWhen) -> Conditions {
        let p = |k: &str| format!("rule[{i}].when.{k}");
        let mut c = Conditions::default();
        if let Some(list) = self.nonempty(&p("channel"), &w.channel) {
            let mut v = Vec::new();
            for (j, s) in list.iter().enumerate() {
                match parse_channel(s) {
                    Some(ch) => {
                        c.channel_mask |= channel_bit(ch);
                        v.push(ch);
                    }
                    None => self.err(
                        &format!("{}[{j}]", p("channel")),
                        format!("`{s}` is not one of hotline, portal, letter"),
                    ),
                }
            }
            c.channel = Some(v);
        }
        if let Some(list) = self.nonempty(&p("category"), &w.category) {
            let mut v = Vec::new();
            for (j, s) in list.iter().enumerate() {
                let cat = if s == UNCLASSIFIED {
                    Some(None)
                } else {
                    parse_category(s).map(Some)
                };
                match cat {
                    Some(cat) => {
                        c.category_mask |= category_bit(cat);
                        v.push(cat);
                    }
                    None => self.err(
                        &format!("{}[{j}]", p("category")),
                        format!(
                            "`{s}` is not one of livelihood, rights, policy, historical, unclassified"
                        ),
                    ),
                }
            }
            c.category = Some(v);
        }
        c.keywords_any = self.keywords(&p("keywords_any"), &w.keywords_any);
        c.keywords_all = self.keywords(&p("keywords_all"), &w.keywords_all);
        c.keywords_none = self.keywords(&p("keywords_none"), &w.keywords_none);
        // Contradictions: everything required is also excluded.
        let excluded = |k: &Keyword| {
            c.keywords_none
                .iter()
                .any(|n| k.normalized.contains(&n.normalized))
        };
        if !c.keywords_none.is_empty()
            && ((!c.keywords_any.is_empty() && c.keywords_any.iter().all(excluded))
                || c.keywords_all.iter().any(excluded))
        {
            self.err(
                &p("keywords_none"),
                "excludes every keyword the rule requires: the rule can never match",
            );
        }
        if let Some(list) = self.nonempty(&p("regex"), &w.regex) {
            for (j, s) in list.iter().enumerate() {
                let at = format!("{}[{j}]", p("regex"));
                if let Some(id) = self.regex(&at, s) {
                    c.regex.push(s.clone());
                    c.regex_ids.push(id);
                }
            }
        }
        if let Some(list) = self.nonempty(&p("service_code"), &w.service_code) {
            let mut v = Vec::new();
            for (j, s) in list.iter().enumerate() {
                let n = normalize_code(s);
                if n.is_empty() {
                    self.err(&format!("{}[{j}]", p("service_code")), "must not be empty");
                } else {
                    v.push(n);
                }
            }
            c.service_code = Some(v);
        }
        if let Some(list) = self.nonempty(&p("region"), &w.region) {
            let mut v = Vec::new();
            for (j, s) in list.iter().enumerate() {
                let r = RegionPattern::parse(s.trim());
                if matches!(&r, RegionPattern::Exact(x) | RegionPattern::Prefix(x) if x.is_empty())
                {
                    self.err(&format!("{}[{j}]", p("region")), "must not be empty");
                } else {
                    v.push(r);
                }
            }
            c.region = Some(v);
        }
        c.has_attachments = w.has_attachments;
        c.repeat_petition = w.repeat_petition;
        c
    }

    fn regex(&mut self, at: &str, s: &str) -> Option<u32> {
        if let Some(&id) = self.regex_ids.get(s) {
            return Some(id);
        }
        match regex::RegexBuilder::new(s).size_limit(1 << 20).build() {
            Ok(re) => {
                if let Some(c) = s.chars().find(|&c| {
                    let mut one = String::new();
                    classify::normalize_into(&c.to_string(), &mut one);
                    !c.is_ascii() && !c.is_whitespace() && one != c.to_string()
                }) {
                    self.warn(
                        at,
                        format!(
                            "`{c}` never occurs in normalised text (write `{}`)",
                            normalize(&c.to_string())
                        ),
                    );
                }
                let id = self.regexes.len() as u32;
                self.regexes.push(re);
                self.regex_sources.push(s.to_string());
                self.regex_ids.insert(s.to_string(), id);
                Some(id)
            }
            Err(e) => {
                // The regex crate draws a caret diagram over several lines; keep its verdict.
                let msg = e.to_string();
                let verdict = msg
                    .lines()
                    .rev()
                    .find_map(|l| l.trim().strip_prefix("error: "))
                    .unwrap_or(msg.trim());
                self.err(at, format!("invalid regex `{s}`: {verdict}"));
                None
            }
        }
    }

    fn actions(&mut self, i: usize, t: &RawThen) -> Actions {
        let p = |k: &str| format!("rule[{i}].then.{k}");
        let mut a = Actions {
            continue_: t.continue_,
            ..Actions::default()
        };
        if let Some(c) = &t.category {
            match parse_category(c) {
                Some(c) => a.category = Some(c),
                None => self.err(
                    &p("category"),
                    format!("`{c}` is not one of livelihood, rights, policy, historical"),
                ),
            }
        }
        if let Some(l) = &t.lead
            && self.department(&p("lead"), l)
        {
            a.lead = Some(l.clone());
        }
        for (j, d) in t.assists.iter().enumerate() {
            let at = format!("{}[{j}]", p("assists"));
            if !self.department(&at, d) {
                continue;
            }
            if t.lead.as_deref() == Some(d.as_str()) {
                self.warn(
                    &at,
                    format!("`{d}` is this rule's lead; as an assist it is ignored"),
                );
            } else if a.assists.contains(d) {
                self.warn(&at, format!("`{d}` is listed twice"));
            } else {
                a.assists.push(d.clone());
            }
        }
        if let Some(pr) = &t.priority {
            match Priority::parse(pr) {
                Some(pr) => a.priority = Some(pr),
                None => self.err(
                    &p("priority"),
                    format!("`{pr}` is not one of low, normal, high, urgent"),
                ),
            }
        }
        for (j, tag) in t.tags.iter().enumerate() {
            if tag.trim().is_empty() {
                self.err(&format!("{}[{j}]", p("tags")), "must not be empty");
            } else if !a.tags.contains(tag) {
                a.tags.push(tag.clone());
            }
        }
        for (key, list, out) in [
            ("add", &t.sla_overrides.add, &mut a.sla_add),
            ("skip", &t.sla_overrides.skip, &mut a.sla_skip),
        ] {
            for (j, c) in list.iter().enumerate() {
                if c.trim().is_empty() {
                    self.err(
                        &format!("{}.{key}[{j}]", p("sla_overrides")),
                        "must not be empty",
                    );
                } else if !out.contains(c) {
                    out.push(c.clone());
                }
            }
        }
        for c in &a.sla_add {
            if a.sla_skip.contains(c) {
                self.err(
                    &p("sla_overrides"),
                    format!("clock `{c}` is both added and skipped"),
                );
            }
        }
        a
    }
}

impl Built {
    fn compile(
        self,
        dicts: Dictionaries,
        version: String,
        file: &str,
    ) -> Result<RuleSet, ConfigError> {
        let fail = |m: String| ConfigError {
            file: file.into(),
            line: None,
            path: String::new(),
            message: m,
        };
        // Two automata: the dictionaries' keywords (ids first) and the rules' own.
        let matcher = Matcher::new(
            &self.patterns,
            &[dicts.patterns().len(), self.patterns.len()],
        )
        .map_err(fail)?;
        let regex_set =
            RegexSet::new(&self.regex_sources).map_err(|e| fail(format!("regex set: {e}")))?;
        let mut triggers = vec![Vec::new(); self.patterns.len()];
        let mut code_triggers: HashMap<String, Vec<u32>> = HashMap::new();
        let mut always = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if r.when.keyword_triggered() {
                let mut ps: Vec<u32> = r
                    .when
                    .keywords_any
                    .iter()
                    .chain(&r.when.keywords_all)
                    .map(|k| k.pattern)
                    .collect();
                ps.sort_unstable();
                ps.dedup();
                for p in ps {
                    triggers[p as usize].push(i as u32);
                }
            } else if let Some(codes) = &r.when.service_code {
                for c in codes {
                    let v = code_triggers.entry(c.clone()).or_default();
                    if v.last() != Some(&(i as u32)) {
                        v.push(i as u32);
                    }
                }
            } else {
                always.push(i as u32);
            }
        }
        let triggers = Csr::new(&triggers);
        Ok(RuleSet {
            rules: self.rules,
            dicts,
            matcher,
            pattern_count: self.patterns.len(),
            triggers,
            code_triggers,
            always,
            regex_set,
            regexes: self.regexes,
            version,
            file: file.into(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Whole-set checks: unreachable rules and conflicting keywords. They run after compilation
// because they use the automaton (to find, for a rule, the earlier rules whose keywords occur
// inside its own) — so checking stays near-linear in the number of rules.

impl RuleSet {
    fn lint(&self, src: &TomlFile<'_>, diags: &mut Diagnostics) {
        let n = self.rules.len();
        // cum_overrides[i]: rules before i with a category action.
        let mut cum = vec![0usize; n + 1];
        for (i, r) in self.rules.iter().enumerate() {
            cum[i + 1] = cum[i] + usize::from(r.then.category.is_some());
        }
        let mut untriggered_stoppers: Vec<usize> = Vec::new();
        let mut cands: Vec<usize> = Vec::new();
        for (b, rb) in self.rules.iter().enumerate() {
            cands.clear();
            cands.extend(untriggered_stoppers.iter().copied());
            for k in rb.when.keywords_any.iter().chain(&rb.when.keywords_all) {
                for p in self.matcher.find_in_keyword(&k.normalized) {
                    for &a in self.triggers.get(p) {
                        let a = a as usize;
                        if a < b && !self.rules[a].then.continue_ {
                            cands.push(a);
                        }
                    }
                }
            }
            cands.sort_unstable();
            cands.dedup();
            for &a in &cands {
                let ra = &self.rules[a];
                if ra.id == DEFAULT_RULE {
                    continue;
                }
                let overrides_between = cum[b] - cum[a + 1] > 0;
                if subsumes(&ra.when, &rb.when, overrides_between) {
                    diags.errors.push(src.err(
                        &format!("rule[{b}]"),
                        format!(
                            "rule `{}` is unreachable: every item it matches is taken first by rule `{}`{}, which does not continue",
                            rb.id,
                            ra.id,
                            ra.line.map(|l| format!(" (line {l})")).unwrap_or_default()
                        ),
                    ));
                    break;
                }
            }
            if !rb.when.keyword_triggered() && !rb.then.continue_ {
                untriggered_stoppers.push(b);
            }
        }

        // The same keyword in keywords_any of two rules leading to different departments.
        for (b, rb) in self.rules.iter().enumerate() {
            let Some(lead_b) = &rb.then.lead else {
                continue;
            };
            let mut shared: Vec<(usize, Vec<&str>)> = Vec::new();
            for k in &rb.when.keywords_any {
                for &a in self.triggers.get(k.pattern) {
                    let a = a as usize;
                    if a >= b {
                        break;
                    }
                    let ra = &self.rules[a];
                    let Some(lead_a) = &ra.then.lead else {
                        continue;
                    };
                    if lead_a == lead_b
                        || !ra.when.keywords_any.iter().any(|x| x.pattern == k.pattern)
                        || disjoint(&ra.when, &rb.when)
                        || special_case(&ra.when, &rb.when)
                    {
                        continue;
                    }
                    match shared.iter_mut().find(|(x, _)| *x == a) {
                        Some((_, ks)) => ks.push(&k.text),
                        None => shared.push((a, vec![&k.text])),
                    }
                }
            }
            for (a, ks) in shared {
                let ra = &self.rules[a];
                diags.warnings.push(src.err(
                    &format!("rule[{b}].when.keywords_any"),
                    format!(
                        "{} also in keywords_any of rule `{}`{}, which leads to `{}` (this rule: `{lead_b}`); the earlier rule takes such items unless its other conditions fail",
                        ks.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                        ra.id,
                        ra.line.map(|l| format!(" (line {l})")).unwrap_or_default(),
                        ra.then.lead.as_deref().unwrap_or("?"),
                    ),
                ));
            }
        }
    }
}

/// True when every item matching `b` also matches `a` (sound, not complete). With
/// `overrides_between`, a category condition of `a` cannot be compared (a rule in between may
/// change the category `b` sees).
fn subsumes(a: &Conditions, b: &Conditions, overrides_between: bool) -> bool {
    let contains_any = |hay: &Keyword, needles: &[Keyword]| {
        needles
            .iter()
            .any(|n| hay.normalized.contains(n.normalized.as_str()))
    };
    if a.channel.is_some() && (b.channel.is_none() || b.channel_mask & !a.channel_mask != 0) {
        return false;
    }
    if a.category.is_some()
        && (overrides_between || b.category.is_none() || b.category_mask & !a.category_mask != 0)
    {
        return false;
    }
    if !a.keywords_any.is_empty() {
        let via_all = b
            .keywords_all
            .iter()
            .any(|k| contains_any(k, &a.keywords_any));
        let via_any = !b.keywords_any.is_empty()
            && b.keywords_any
                .iter()
                .all(|k| contains_any(k, &a.keywords_any));
        if !via_all && !via_any {
            return false;
        }
    }
    if !a.keywords_all.iter().all(|ka| {
        b.keywords_all
            .iter()
            .any(|kb| kb.normalized.contains(ka.normalized.as_str()))
    }) {
        return false;
    }
    if !a.keywords_none.iter().all(|ka| {
        b.keywords_none
            .iter()
            .any(|kb| ka.normalized.contains(kb.normalized.as_str()))
    }) {
        return false;
    }
    if !a.regex.is_empty() && (b.regex.is_empty() || !b.regex.iter().all(|r| a.regex.contains(r))) {
        return false;
    }
    if let Some(sa) = &a.service_code {
        match &b.service_code {
            Some(sb) if sb.iter().all(|c| sa.contains(c)) => {}
            _ => return false,
        }
    }
    if let Some(ra) = &a.region {
        match &b.region {
            Some(rb) if rb.iter().all(|r| ra.iter().any(|x| x.covers(r))) => {}
            _ => return false,
        }
    }
    if a.has_attachments.is_some() && a.has_attachments != b.has_attachments {
        return false;
    }
    if a.repeat_petition.is_some() && a.repeat_petition != b.repeat_petition {
        return false;
    }
    true
}

/// True when `a` narrows `b` by a condition `b` does not have at all (a region, a channel...):
/// a deliberate special case placed before the general rule, not an accident.
fn special_case(a: &Conditions, b: &Conditions) -> bool {
    (a.channel.is_some() && b.channel.is_none())
        || (a.category.is_some() && b.category.is_none())
        || (a.region.is_some() && b.region.is_none())
        || (a.service_code.is_some() && b.service_code.is_none())
        || (a.has_attachments.is_some() && b.has_attachments.is_none())
        || (a.repeat_petition.is_some() && b.repeat_petition.is_none())
        || (!a.regex.is_empty() && b.regex.is_empty())
}

/// True when no item can match both (by the cheap conditions).
fn disjoint(a: &Conditions, b: &Conditions) -> bool {
    (a.channel.is_some() && b.channel.is_some() && a.channel_mask & b.channel_mask == 0)
        || (a.category.is_some() && b.category.is_some() && a.category_mask & b.category_mask == 0)
        || matches!((a.has_attachments, b.has_attachments), (Some(x), Some(y)) if x != y)
        || matches!((a.repeat_petition, b.repeat_petition), (Some(x), Some(y)) if x != y)
        || matches!((&a.service_code, &b.service_code), (Some(x), Some(y)) if !x.iter().any(|c| y.contains(c)))
}

// =============================================================================================
// Evaluation

/// Lists of rule indices by pattern id, in two flat arrays (one lookup touches two adjacent
/// offsets and one run of indices, not a `Vec` header per pattern).
#[derive(Debug, Clone)]
struct Csr {
    offsets: Vec<u32>,
    rules: Vec<u32>,
}

impl Csr {
    fn new(lists: &[Vec<u32>]) -> Csr {
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        let mut rules = Vec::new();
        offsets.push(0);
        for l in lists {
            rules.extend_from_slice(l);
            offsets.push(rules.len() as u32);
        }
        Csr { offsets, rules }
    }

    fn get(&self, pattern: u32) -> &[u32] {
        let p = pattern as usize;
        &self.rules[self.offsets[p] as usize..self.offsets[p + 1] as usize]
    }
}

/// Reusable per-thread buffers of [`RuleSet::decide`]: the hot path allocates only the
/// outcome's own lists.
#[derive(Default)]
struct DecideScratch {
    spans: Vec<Span>,
    found: Found,
    cands: Vec<u32>,
    seen: Vec<u32>,
}

/// The distinct patterns found in one item: a bit per pattern (O(1) condition checks) and
/// the list of those set (to visit the rules they trigger and to clear the bits after).
#[derive(Default)]
struct Found {
    bits: Vec<u64>,
    list: Vec<u32>,
}

impl Found {
    fn new(patterns: usize) -> Found {
        let mut f = Found::default();
        f.reset(patterns);
        f
    }

    /// Empty, with room for `patterns` bits.
    fn reset(&mut self, patterns: usize) {
        for &p in &self.list {
            self.bits[p as usize / 64] = 0;
        }
        self.list.clear();
        let words = patterns.div_ceil(64);
        if self.bits.len() != words {
            self.bits.clear();
            self.bits.resize(words, 0);
        }
    }

    #[inline]
    fn insert(&mut self, p: u32) {
        let (w, b) = (p as usize / 64, 1u64 << (p % 64));
        if self.bits[w] & b == 0 {
            self.bits[w] |= b;
            self.list.push(p);
        }
    }

    #[inline]
    fn contains(&self, p: u32) -> bool {
        self.bits[p as usize / 64] & (1u64 << (p % 64)) != 0
    }
}

thread_local! {
    static DECIDE: std::cell::RefCell<DecideScratch> = std::cell::RefCell::default();
}

/// An item's normalised service code and region.
struct Prepared<'i> {
    input: &'i Input<'i>,
    service_code: Option<String>,
    region: Option<String>,
}

impl<'i> Prepared<'i> {
    fn new(input: &'i Input<'i>) -> Self {
        Prepared {
            input,
            service_code: input
                .service_code
                .map(normalize_code)
                .filter(|c| !c.is_empty()),
            region: input
                .region
                .map(|r| normalize(r.trim()))
                .filter(|r| !r.is_empty()),
        }
    }

    /// Title and content normalised, for regexes and the naive evaluator.
    fn text(&self) -> String {
        classify::normalized_item_text(self.input.title, self.input.content)
    }
}

/// How keyword and regex conditions are answered: by the automaton's hits (fast) or by
/// searching the text for each (the naive reference).
trait Facts {
    fn has(&mut self, k: &Keyword) -> bool;
    fn regex(&mut self, id: u32) -> bool;
}

struct Indexed<'a> {
    /// The pattern ids found in the text.
    found: &'a Found,
    item: &'a Prepared<'a>,
    set: &'a RegexSet,
    /// Computed the first time a rule with a regex is reached: most items never need it.
    matches: Option<regex::SetMatches>,
}

impl Facts for Indexed<'_> {
    fn has(&mut self, k: &Keyword) -> bool {
        self.found.contains(k.pattern)
    }

    fn regex(&mut self, id: u32) -> bool {
        let (set, item) = (self.set, self.item);
        self.matches
            .get_or_insert_with(|| set.matches(&item.text()))
            .matched(id as usize)
    }
}

struct Naive<'a> {
    text: &'a str,
    regexes: &'a [Regex],
}

impl Facts for Naive<'_> {
    fn has(&mut self, k: &Keyword) -> bool {
        self.text.contains(k.normalized.as_str())
    }

    fn regex(&mut self, id: u32) -> bool {
        self.regexes[id as usize].is_match(self.text)
    }
}

/// The outcome being accumulated.
struct State<'r> {
    category: Option<Category>,
    lead: Option<(&'r str, &'r str)>,
    assists: Vec<&'r str>,
    priority: Priority,
    tags: Vec<&'r str>,
    sla_add: Vec<&'r str>,
    sla_skip: Vec<&'r str>,
    matched: Vec<&'r str>,
}

fn push_unique<'r>(v: &mut Vec<&'r str>, s: &'r str) -> bool {
    if v.contains(&s) {
        false
    } else {
        v.push(s);
        true
    }
}

impl<'r> State<'r> {
    fn new(category: Option<Category>) -> Self {
        State {
            category,
            lead: None,
            assists: Vec::new(),
            priority: Priority::Normal,
            tags: Vec::new(),
            sla_add: Vec::new(),
            sla_skip: Vec::new(),
            matched: Vec::new(),
        }
    }

    /// Applies a matching rule's actions; true when evaluation stops here.
    fn apply(&mut self, rule: &'r Rule, mut effects: Option<&mut Vec<String>>) -> bool {
        let mut note = |s: String| {
            if let Some(e) = effects.as_deref_mut() {
                e.push(s);
            }
        };
        let t = &rule.then;
        self.matched.push(&rule.id);
        if let Some(c) = t.category {
            if self.category != Some(c) {
                note(format!(
                    "category {} → {}",
                    category_name(self.category),
                    c.as_str()
                ));
            }
            self.category = Some(c);
        }
        if let Some(l) = t.lead.as_deref() {
            match self.lead {
                None => {
                    self.lead = Some((l, &rule.id));
                    note(format!("lead {l} (decided here)"));
                }
                Some((cur, _)) if cur == l => {}
                Some((cur, by)) if rule.id == DEFAULT_RULE => {
                    note(format!(
                        "default lead {l} not used: rule {by} already chose {cur}"
                    ));
                }
                Some((cur, by)) => {
                    if push_unique(&mut self.assists, l) {
                        note(format!(
                            "lead {l} joins the assists (rule {by} already chose {cur})"
                        ));
                    }
                }
            }
        }
        for a in &t.assists {
            if push_unique(&mut self.assists, a) {
                note(format!("assist +{a}"));
            }
        }
        if let Some(p) = t.priority
            && p > self.priority
        {
            note(format!(
                "priority {} → {}",
                self.priority.as_str(),
                p.as_str()
            ));
            self.priority = p;
        }
        for tag in &t.tags {
            if push_unique(&mut self.tags, tag) {
                note(format!("tag +{tag}"));
            }
        }
        for c in &t.sla_add {
            self.sla_skip.retain(|x| x != c);
            if push_unique(&mut self.sla_add, c) {
                note(format!("sla clock +{c}"));
            }
        }
        for c in &t.sla_skip {
            self.sla_add.retain(|x| x != c);
            if push_unique(&mut self.sla_skip, c) {
                note(format!("sla clock -{c}"));
            }
        }
        let stop = !t.continue_;
        note(if stop {
            "stop".into()
        } else {
            "continue".into()
        });
        stop
    }

    fn finish(
        mut self,
        rs: &'r RuleSet,
        classified: Option<Category>,
        scores: classify::Scores,
    ) -> Outcome<'r> {
        let (lead, rule_id) = self.lead.unwrap_or_else(|| {
            // Unreachable when validated (the default rule always matches and has a lead);
            // kept total rather than panicking on an item.
            let d = rs
                .rules
                .last()
                .expect("validated: rules end with the default rule");
            (d.then.lead.as_deref().unwrap_or(""), d.id.as_str())
        });
        self.assists.retain(|a| *a != lead);
        Outcome {
            category: self.category,
            classified,
            scores,
            lead,
            rule_id,
            assists: self.assists,
            priority: self.priority,
            tags: self.tags,
            sla_add: self.sla_add,
            sla_skip: self.sla_skip,
            matched_rules: self.matched,
            rules_version: &rs.version,
        }
    }
}

fn list<T: fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn words(v: &[&Keyword]) -> String {
    v.iter()
        .map(|k| k.text.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one rule. Without a trace it stops at the first failing condition; with one it
/// evaluates and records them all.
fn check(
    rule: &Rule,
    item: &Prepared<'_>,
    category: Option<Category>,
    facts: &mut impl Facts,
    regex_sources: &[String],
    mut trace: Option<&mut Vec<ConditionTrace>>,
) -> bool {
    let c = &rule.when;
    let tracing = trace.is_some();
    let mut all = true;
    macro_rules! cond {
        ($name:literal, $ok:expr, $detail:expr) => {{
            let ok: bool = $ok;
            if let Some(t) = trace.as_deref_mut() {
                t.push(ConditionTrace {
                    condition: $name,
                    ok,
                    detail: $detail,
                });
            }
            if !ok {
                all = false;
                if !tracing {
                    return false;
                }
            }
        }};
    }
    let input = item.input;
    if let Some(chs) = &c.channel {
        let ok = c.channel_mask & channel_bit(input.channel) != 0;
        cond!("channel", ok, {
            let op = if ok { "in" } else { "not in" };
            if tracing {
                format!("{} {op} [{}]", input.channel, list(chs))
            } else {
                String::new()
            }
        });
    }
    if let Some(cats) = &c.category {
        let ok = c.category_mask & category_bit(category) != 0;
        cond!("category", ok, {
            if tracing {
                let op = if ok { "in" } else { "not in" };
                let names: Vec<&str> = cats.iter().map(|c| category_name(*c)).collect();
                format!("{} {op} [{}]", category_name(category), names.join(", "))
            } else {
                String::new()
            }
        });
    }
    if !c.keywords_any.is_empty() {
        if tracing {
            let found: Vec<&Keyword> = c.keywords_any.iter().filter(|k| facts.has(k)).collect();
            let ok = !found.is_empty();
            let detail = if ok {
                format!("found {}", words(&found))
            } else {
                format!("none of {} found", c.keywords_any.len())
            };
            cond!("keywords_any", ok, detail);
        } else {
            cond!(
                "keywords_any",
                c.keywords_any.iter().any(|k| facts.has(k)),
                String::new()
            );
        }
    }
    if !c.keywords_all.is_empty() {
        if tracing {
            let missing: Vec<&Keyword> = c.keywords_all.iter().filter(|k| !facts.has(k)).collect();
            let ok = missing.is_empty();
            let detail = if ok {
                format!(
                    "found all of {}",
                    words(&c.keywords_all.iter().collect::<Vec<_>>())
                )
            } else {
                format!("missing {}", words(&missing))
            };
            cond!("keywords_all", ok, detail);
        } else {
            cond!(
                "keywords_all",
                c.keywords_all.iter().all(|k| facts.has(k)),
                String::new()
            );
        }
    }
    if !c.keywords_none.is_empty() {
        if tracing {
            let found: Vec<&Keyword> = c.keywords_none.iter().filter(|k| facts.has(k)).collect();
            let ok = found.is_empty();
            let detail = if ok {
                "none found".to_string()
            } else {
                format!("found {}", words(&found))
            };
            cond!("keywords_none", ok, detail);
        } else {
            cond!(
                "keywords_none",
                !c.keywords_none.iter().any(|k| facts.has(k)),
                String::new()
            );
        }
    }
    if !c.regex_ids.is_empty() {
        let hit = c.regex_ids.iter().copied().find(|&id| facts.regex(id));
        cond!("regex", hit.is_some(), {
            match hit {
                Some(id) if tracing => format!("`{}` matches", regex_sources[id as usize]),
                None if tracing => format!("none of {} matches", c.regex_ids.len()),
                _ => String::new(),
            }
        });
    }
    if let Some(codes) = &c.service_code {
        let ok = item
            .service_code
            .as_ref()
            .is_some_and(|s| codes.iter().any(|c| c == s));
        cond!("service_code", ok, {
            match (&item.service_code, ok) {
                (None, _) => "the item has no service code".to_string(),
                (Some(_), true) => format!("the item's code is in [{}]", codes.join(", ")),
                (Some(_), false) => format!("the item's code is not in [{}]", codes.join(", ")),
            }
        });
    }
    if let Some(regions) = &c.region {
        let ok = item
            .region
            .as_ref()
            .is_some_and(|r| regions.iter().any(|p| p.matches(r)));
        cond!("region", ok, {
            match (&item.region, ok) {
                (None, _) => "the item has no region".to_string(),
                (Some(_), true) => format!("the item's region matches [{}]", list(regions)),
                (Some(_), false) => {
                    format!("the item's region matches none of [{}]", list(regions))
                }
            }
        });
    }
    if let Some(want) = c.has_attachments {
        let has = input.attachments > 0;
        cond!("has_attachments", has == want, {
            format!(
                "the item has {} attachment(s), rule wants {}",
                input.attachments,
                if want { "some" } else { "none" }
            )
        });
    }
    if let Some(want) = c.repeat_petition {
        cond!("repeat_petition", input.repeat_petition == want, {
            format!(
                "flag {} {}, rule wants {}",
                REPEAT_PETITION_FLAG,
                if input.repeat_petition {
                    "set"
                } else {
                    "not set"
                },
                if want { "it set" } else { "it unset" }
            )
        });
    }
    all
}

impl RuleSet {
    /// Scans the item once: dictionary spans (for classification) and the distinct pattern
    /// ids found (for rule conditions).
    fn scan(&self, input: &Input<'_>, spans: &mut Vec<Span>, found: &mut Found) {
        let dict = self.dicts.patterns().len() as u32;
        self.matcher
            .find(input.title, input.content, |pattern, start, end| {
                if pattern < dict {
                    spans.push(Span {
                        pattern,
                        start,
                        end,
                    });
                }
                found.insert(pattern);
            });
    }

    /// The routing outcome for one item (the fast path: one pass over the text, only the rules
    /// a found keyword or the service code can trigger, plus the rules with neither).
    pub fn decide(&self, input: &Input<'_>) -> Outcome<'_> {
        DECIDE.with(|cell| {
            let mut guard = cell.borrow_mut();
            let DecideScratch {
                spans,
                found,
                cands,
                seen,
            } = &mut *guard;
            spans.clear();
            found.reset(self.pattern_count);
            cands.clear();
            let item = Prepared::new(input);
            self.scan(input, spans, found);
            let (category, scores) =
                self.dicts
                    .score_only(spans, item.service_code.as_deref(), seen);
            cands.extend_from_slice(&self.always);
            for &p in &found.list {
                cands.extend_from_slice(self.triggers.get(p));
            }
            if let Some(rules) = item
                .service_code
                .as_ref()
                .and_then(|c| self.code_triggers.get(c))
            {
                cands.extend_from_slice(rules);
            }
            cands.sort_unstable();
            cands.dedup();
            let mut facts = Indexed {
                found,
                item: &item,
                set: &self.regex_set,
                matches: None,
            };
            let mut state = State::new(category);
            for &r in cands.iter() {
                let rule = &self.rules[r as usize];
                if check(rule, &item, state.category, &mut facts, &[], None)
                    && state.apply(rule, None)
                {
                    break;
                }
            }
            state.finish(self, category, scores)
        })
    }

    /// The same outcome as [`RuleSet::decide`], and the trace of every rule tried up to the
    /// one that stopped evaluation (for `explain`; slower: every rule's every condition).
    pub fn evaluate(&self, input: &Input<'_>) -> (Outcome<'_>, Trace<'_>) {
        let item = Prepared::new(input);
        let mut spans = Vec::new();
        let mut found = Found::new(self.pattern_count);
        self.scan(input, &mut spans, &mut found);
        let classification = self.dicts.score(&mut spans, input.service_code);
        let mut facts = Indexed {
            found: &found,
            item: &item,
            set: &self.regex_set,
            matches: None,
        };
        let sources = self.regex_sources();
        let mut state = State::new(classification.category);
        let mut rules = Vec::new();
        for rule in &self.rules {
            let mut conditions = Vec::new();
            let matched = check(
                rule,
                &item,
                state.category,
                &mut facts,
                &sources,
                Some(&mut conditions),
            );
            let mut effects = Vec::new();
            let stop = matched && state.apply(rule, Some(&mut effects));
            rules.push(RuleTrace {
                rule_id: &rule.id,
                line: rule.line,
                matched,
                conditions,
                effects,
            });
            if stop {
                break;
            }
        }
        let outcome = state.finish(self, classification.category, classification.scores);
        (
            outcome,
            Trace {
                classification,
                rules,
            },
        )
    }

    /// Reference implementation: every rule in order, every keyword searched with
    /// `str::contains`, every dictionary keyword with `str::match_indices`. Same answers as
    /// [`RuleSet::decide`], cost linear in rules × text; the benchmark's baseline and the
    /// tests' oracle.
    pub fn decide_naive(&self, input: &Input<'_>) -> Outcome<'_> {
        let item = Prepared::new(input);
        let text = item.text();
        let mut spans = Vec::new();
        for (p, kw) in self.dicts.patterns().iter().enumerate() {
            // Overlapping occurrences, as the automaton reports them.
            let mut from = 0;
            while let Some(off) = text[from..].find(kw.as_str()) {
                let start = from + off;
                spans.push(Span {
                    pattern: p as u32,
                    start: start as u32,
                    end: (start + kw.len()) as u32,
                });
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        let classification = self.dicts.score(&mut spans, input.service_code);
        let mut facts = Naive {
            text: &text,
            regexes: &self.regexes,
        };
        let mut state = State::new(classification.category);
        for rule in &self.rules {
            if check(rule, &item, state.category, &mut facts, &[], None) && state.apply(rule, None)
            {
                break;
            }
        }
        state.finish(self, classification.category, classification.scores)
    }

    fn regex_sources(&self) -> Vec<String> {
        self.regexes
            .iter()
            .map(|r| r.as_str().to_string())
            .collect()
    }
}

// =============================================================================================
// Operator test cases

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCases {
    #[serde(default)]
    case: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    channel: String,
    #[serde(default)]
    title: String,
    content: String,
    service_code: Option<String>,
    region: Option<String>,
    #[serde(default)]
    attachments: usize,
    #[serde(default)]
    flags: Vec<String>,
    expect: RawExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    category: String,
    lead: String,
    assists: Option<Vec<String>>,
    rule: Option<String>,
    priority: Option<String>,
    tags: Option<Vec<String>>,
}

/// The result of running a cases file.
#[derive(Debug, Clone)]
pub struct CaseReport {
    pub total: usize,
    pub mismatches: Vec<Mismatch>,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

impl fmt::Display for CaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.mismatches {
            writeln!(f, "{m}")?;
        }
        write!(
            f,
            "{} case(s), {} passed, {} failed",
            self.total,
            self.total - self.mismatches.len(),
            self.mismatches.len()
        )
    }
}

/// One case whose outcome differs from its expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub name: String,
    pub file: String,
    pub line: Option<usize>,
    pub diffs: Vec<FieldDiff>,
    /// Classification and matched rules, to start from when fixing it.
    pub context: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.line.map(|l| format!(":{l}")).unwrap_or_default();
        writeln!(f, "FAIL {}{line}: {}", self.file, self.name)?;
        for d in &self.diffs {
            writeln!(
                f,
                "    {:<9} expected {:<28} got {}",
                d.field, d.expected, d.actual
            )?;
        }
        write!(f, "    ({})", self.context)
    }
}

/// Runs an operator cases file against the rules. `Err` when the file itself is invalid.
pub fn run_cases(rules: &RuleSet, path: &Path) -> Result<CaseReport, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: file.clone(),
            line: None,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    run_cases_str(rules, &file, &text)
}

/// Runs cases given as text. The format:
///
/// ```toml
/// [[case]]
/// name = "hotline: wages owed for three months"
/// channel = "hotline"                 # hotline | portal | letter
/// title = "反映欠薪"                   # optional
/// content = "某公司拖欠工资三个月……"
/// service_code = "LD01"               # optional
/// region = "历下区"                    # optional
/// attachments = 0                     # optional: how many
/// flags = ["repeat_petition"]         # optional
/// expect = { category = "rights", lead = "hrss" }
/// # expect may also give: assists = [...] (as a set), rule = "...", priority = "...",
/// # tags = [...] (as a set). category may be "unclassified".
/// ```
pub fn run_cases_str(
    rules: &RuleSet,
    file: &str,
    text: &str,
) -> Result<CaseReport, Vec<ConfigError>> {
    let src = TomlFile::parse(file, text).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let Some(raw) = src.deserialize::<RawCases>(&mut errors) else {
        if errors.is_empty() {
            errors.push(src.err("", "invalid cases file"));
        }
        return Err(errors);
    };
    let mut cases = Vec::new();
    for (i, c) in raw.case.iter().enumerate() {
        let at = |k: &str| format!("case[{i}].{k}");
        let channel = parse_channel(&c.channel);
        if channel.is_none() {
            errors.push(src.err(
                &at("channel"),
                format!("`{}` is not one of hotline, portal, letter", c.channel),
            ));
        }
        let category = if c.expect.category == UNCLASSIFIED {
            Some(None)
        } else {
            parse_category(&c.expect.category).map(Some)
        };
        if category.is_none() {
            errors.push(src.err(
                &at("expect.category"),
                format!(
                    "`{}` is not one of livelihood, rights, policy, historical, unclassified",
                    c.expect.category
                ),
            ));
        }
        if let Some(p) = &c.expect.priority
            && Priority::parse(p).is_none()
        {
            errors.push(src.err(
                &at("expect.priority"),
                format!("`{p}` is not one of low, normal, high, urgent"),
            ));
        }
        if let (Some(ch), Some(_)) = (channel, category) {
            cases.push((i, c, ch));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut mismatches = Vec::new();
    for (i, c, channel) in cases {
        let input = Input {
            channel,
            title: &c.title,
            content: &c.content,
            service_code: c.service_code.as_deref(),
            region: c.region.as_deref(),
            attachments: c.attachments,
            repeat_petition: c.flags.iter().any(|f| f == REPEAT_PETITION_FLAG),
        };
        let (o, trace) = rules.evaluate(&input);
        let mut diffs = Vec::new();
        let mut diff = |field: &'static str, expected: String, actual: String| {
            if expected != actual {
                diffs.push(FieldDiff {
                    field,
                    expected,
                    actual,
                });
            }
        };
        let set = |v: &[&str]| {
            let mut v: Vec<&str> = v.to_vec();
            v.sort_unstable();
            format!("[{}]", v.join(", "))
        };
        diff(
            "category",
            c.expect.category.clone(),
            category_name(o.category).into(),
        );
        diff("lead", c.expect.lead.clone(), o.lead.into());
        if let Some(a) = &c.expect.assists {
            let want: Vec<&str> = a.iter().map(String::as_str).collect();
            diff("assists", set(&want), set(&o.assists));
        }
        if let Some(r) = &c.expect.rule {
            diff("rule", r.clone(), o.rule_id.into());
        }
        if let Some(p) = &c.expect.priority {
            diff("priority", p.clone(), o.priority.as_str().into());
        }
        if let Some(t) = &c.expect.tags {
            let want: Vec<&str> = t.iter().map(String::as_str).collect();
            diff("tags", set(&want), set(&o.tags));
        }
        if !diffs.is_empty() {
            mismatches.push(Mismatch {
                name: c.name.clone(),
                file: file.into(),
                line: src.line(&format!("case[{i}]")),
                diffs,
                context: format!(
                    "classified {}; matched rules: {}",
                    trace.classification,
                    o.matched_rules.join(", ")
                ),
            });
        }
    }
    Ok(CaseReport {
        total: raw.case.len(),
        mismatches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The departments the shipped rules name.
    const DEPARTMENTS: [&str; 8] = [
        "intake-desk",
        "hrss",
        "housing",
        "natural-resources",
        "health",
        "civil-affairs",
        "policy-desk",
        "key-cases",
    ];

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn departments() -> Vec<Department> {
        DEPARTMENTS
            .iter()
            .map(|id| Department {
                id: id.to_string(),
                name: id.to_string(),
                topic: format!("petitiond.dept.{id}"),
                status_topic: format!("petitiond.dept.{id}.status"),
                alert_emails: Vec::new(),
            })
            .collect()
    }

    fn shipped() -> RuleSet {
        let r = root();
        match RuleSet::load(
            &r.join("config/rules.toml"),
            &r.join("config/dictionaries"),
            &departments(),
        ) {
            Ok((rs, warnings)) => {
                assert!(
                    warnings.is_empty(),
                    "shipped rules warn:\n{}",
                    Diagnostics {
                        errors: vec![],
                        warnings
                    }
                );
                rs
            }
            Err(d) => panic!("shipped rules do not load:\n{d}"),
        }
    }

    const DICT: &str = r#"
category = "rights"
[keywords]
"拆迁" = 3
"欠薪" = 4
"#;
    const DICT_POLICY: &str = r#"
category = "policy"
[keywords]
"咨询" = 3
"#;

    fn parse(rules: &str) -> Result<(RuleSet, Vec<ConfigError>), Diagnostics> {
        let dicts = vec![
            ("rights.toml".to_string(), DICT.to_string()),
            ("policy.toml".to_string(), DICT_POLICY.to_string()),
        ];
        RuleSet::parse("rules.toml", rules, &dicts, &DEPARTMENTS)
    }

    fn ok(rules: &str) -> RuleSet {
        match parse(rules) {
            Ok((rs, _)) => rs,
            Err(d) => panic!("{d}"),
        }
    }

    fn errors(rules: &str) -> Vec<String> {
        match parse(rules) {
            Ok(_) => panic!("expected errors"),
            Err(d) => d.errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn warnings(rules: &str) -> Vec<String> {
        match parse(rules) {
            Ok((_, w)) => w.iter().map(|e| e.to_string()).collect(),
            Err(d) => panic!("{d}"),
        }
    }

    fn item(content: &str) -> Input<'_> {
        Input {
            channel: Channel::Hotline,
            title: "",
            content,
            service_code: None,
            region: None,
            attachments: 0,
            repeat_petition: false,
        }
    }

    const DEFAULT: &str = "[[rule]]\nid = \"default\"\nthen.lead = \"intake-desk\"\n";

    #[test]
    fn shipped_rules_load_without_warnings_and_have_a_stable_version() {
        let rs = shipped();
        assert_eq!(rs.version().len(), 12);
        assert_eq!(rs.version(), shipped().version());
        assert_eq!(rs.rules().last().unwrap().id, DEFAULT_RULE);
    }

    #[test]
    fn shipped_cases_pass() {
        let rs = shipped();
        let report = run_cases(&rs, &root().join("config/rules-cases.toml"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(report.total >= 15, "{}", report.total);
        assert!(report.passed(), "\n{report}");
    }

    /// The corpus: realistic petitions, each with its expected category and lead under the
    /// shipped rules and dictionaries.
    #[test]
    fn corpus_routes_as_expected() {
        let rs = shipped();
        let path = root().join("tests/fixtures/routing/corpus.toml");
        let report = run_cases(&rs, &path).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(report.total >= 60, "corpus has only {} items", report.total);
        assert!(report.passed(), "\n{report}");
    }

    #[derive(Deserialize)]
    struct CorpusFile {
        case: Vec<CorpusItem>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct CorpusItem {
        channel: String,
        #[serde(default)]
        title: String,
        content: String,
        service_code: Option<String>,
        region: Option<String>,
        #[serde(default)]
        attachments: usize,
        #[serde(default)]
        flags: Vec<String>,
    }

    fn corpus() -> Vec<CorpusItem> {
        let text =
            std::fs::read_to_string(root().join("tests/fixtures/routing/corpus.toml")).unwrap();
        toml_edit::de::from_str::<CorpusFile>(&text).unwrap().case
    }

    /// The fast path (automaton + candidate rules), the traced path and the naive reference
    /// agree on every corpus item, and on items stitched from two corpus items.
    #[test]
    fn fast_traced_and_naive_evaluation_agree() {
        let rs = shipped();
        let items = corpus();
        /// channel, title, content, service code, region, attachments, repeat
        type Item = (
            Channel,
            String,
            String,
            Option<String>,
            Option<String>,
            usize,
            bool,
        );
        let mut texts: Vec<Item> = Vec::new();
        for (i, c) in items.iter().enumerate() {
            let ch = parse_channel(&c.channel).unwrap();
            let rep = c.flags.iter().any(|f| f == REPEAT_PETITION_FLAG);
            texts.push((
                ch,
                c.title.clone(),
                c.content.clone(),
                c.service_code.clone(),
                c.region.clone(),
                c.attachments,
                rep,
            ));
            let o = &items[(i * 7 + 3) % items.len()];
            texts.push((
                ch,
                o.title.clone(),
                format!("{}{}", c.content, o.content),
                o.service_code.clone(),
                c.region.clone(),
                o.attachments,
                !rep,
            ));
        }
        for (ch, title, content, code, region, att, rep) in &texts {
            let input = Input {
                channel: *ch,
                title,
                content,
                service_code: code.as_deref(),
                region: region.as_deref(),
                attachments: *att,
                repeat_petition: *rep,
            };
            let fast = rs.decide(&input);
            let (traced, _) = rs.evaluate(&input);
            let naive = rs.decide_naive(&input);
            assert_eq!(fast, traced, "{title}");
            assert_eq!(fast, naive, "{title}");
        }
    }

    #[test]
    #[ignore = "prints every corpus outcome for review"]
    fn dump_corpus() {
        let rs = shipped();
        for c in corpus() {
            let input = Input {
                channel: parse_channel(&c.channel).unwrap(),
                title: &c.title,
                content: &c.content,
                service_code: c.service_code.as_deref(),
                region: c.region.as_deref(),
                attachments: c.attachments,
                repeat_petition: c.flags.iter().any(|f| f == REPEAT_PETITION_FLAG),
            };
            let (o, t) = rs.evaluate(&input);
            println!(
                "{}\n  {}\n  {}\n  matched {:?}",
                c.content, t.classification, o, o.matched_rules
            );
        }
    }

    #[test]
    fn trace_explains_without_personal_data() {
        let rs = shipped();
        let content = "张三，电话13812345678，住幸福小区3号楼。公司拖欠工资三个月。";
        let input = Input {
            channel: Channel::Portal,
            title: "反映李四公司问题",
            content,
            service_code: Some("LD01"),
            region: Some("历下区"),
            attachments: 1,
            repeat_petition: false,
        };
        let (o, trace) = rs.evaluate(&input);
        assert_eq!(o.lead, "hrss");
        let shown = format!("{trace}\n{o}\n{trace:?}\n{o:?}");
        for secret in [
            "张三",
            "李四",
            "13812345678",
            "幸福小区",
            "历下区",
            "三个月",
        ] {
            assert!(!shown.contains(secret), "trace leaks {secret}:\n{shown}");
        }
        assert!(shown.contains("拖欠工资"), "{shown}");
        // Every rule up to the deciding one is explained; failed conditions say which.
        let first = &trace.rules[0];
        assert_eq!(first.rule_id, "repeat-petition");
        assert!(!first.matched);
        assert_eq!(first.conditions[0].condition, "repeat_petition");
        assert!(!first.conditions[0].ok);
        let last = trace.rules.last().unwrap();
        assert!(last.matched);
        assert_eq!(last.rule_id, o.rule_id);
    }

    #[test]
    fn envelope_input() {
        use crate::envelope::{Personal, Request, Upstream};
        let mut e = Envelope::new(
            Channel::Letter,
            Upstream {
                id: "x".into(),
                url: None,
                source: "mailbox".into(),
                raw_ref: "sha256:x".into(),
                ..Default::default()
            },
            "2026-03-02T01:00:00Z".parse().unwrap(),
            Request {
                title: Some(Personal::new("关于拆遷补偿")),
                content: Personal::new("十多年了补偿款至今未到位"),
            },
        );
        e.flags.push(REPEAT_PETITION_FLAG.into());
        let input = Input::from_envelope(&e, None, Some("经开区"));
        assert!(input.repeat_petition);
        assert_eq!(input.channel, Channel::Letter);
        let rs = shipped();
        let o = rs.decide(&input);
        assert_eq!(o.category, Some(Category::Historical));
        assert_eq!(o.lead, "key-cases");
        assert_eq!(o.assists, ["natural-resources", "housing"]);
        assert_eq!(o.priority, Priority::High);
        let d = o.decision("2026-03-02T01:00:00Z".parse().unwrap());
        assert_eq!(d.rule_id, "key-case-ledger");
        assert_eq!(d.rules_version, rs.version());
        assert_eq!(d.assists, ["natural-resources", "housing"]);
    }

    #[test]
    fn continue_semantics() {
        let rs = ok(&(r#"
[[rule]]
id = "mark"
when.keywords_any = ["拆迁"]
then.priority = "urgent"
then.tags = ["a"]
then.sla_overrides = { add = ["x"], skip = ["y"] }
then.continue = true

[[rule]]
id = "first-lead"
when.keywords_any = ["拆迁"]
then.lead = "key-cases"
then.category = "policy"
then.continue = true

[[rule]]
id = "sees-override"
when.category = ["policy"]
then.lead = "housing"
then.assists = ["health", "key-cases"]
then.priority = "low"
then.tags = ["a", "b"]
then.sla_overrides = { add = ["y"] }
then.continue = true

[[rule]]
id = "stops"
when.keywords_any = ["拆迁"]
then.lead = "natural-resources"

[[rule]]
id = "never"
when.keywords_any = ["欠薪"]
then.lead = "hrss"
"#
        .to_string()
            + DEFAULT));
        let o = rs.decide(&item("拆迁问题"));
        assert_eq!(o.lead, "key-cases");
        assert_eq!(o.rule_id, "first-lead");
        assert_eq!(o.assists, ["housing", "health", "natural-resources"]);
        assert_eq!(o.category, Some(Category::Policy));
        assert_eq!(o.classified, Some(Category::Rights));
        assert_eq!(o.priority, Priority::Urgent);
        assert_eq!(o.tags, ["a", "b"]);
        assert_eq!(o.sla_add, ["x", "y"]);
        assert!(o.sla_skip.is_empty());
        assert_eq!(
            o.matched_rules,
            ["mark", "first-lead", "sees-override", "stops"]
        );
        // The default is a fallback: its lead never joins the assists.
        let rs = ok(&(r#"
[[rule]]
id = "ledger"
when.category = ["rights"]
then.lead = "key-cases"
then.continue = true
"#
        .to_string()
            + DEFAULT));
        let o = rs.decide(&item("欠薪"));
        assert_eq!((o.lead, o.rule_id), ("key-cases", "ledger"));
        assert!(o.assists.is_empty());
        assert_eq!(o.matched_rules, ["ledger", "default"]);
        let o = rs.decide(&item("你好"));
        assert_eq!((o.lead, o.rule_id), ("intake-desk", "default"));
        assert!(o.unclassified());
    }

    #[test]
    fn conditions_each_work() {
        let rs = ok(&(r#"
[[rule]]
id = "ch"
when.channel = ["letter"]
then.lead = "hrss"
[[rule]]
id = "code"
when.service_code = ["ab01"]
then.lead = "health"
[[rule]]
id = "reg"
when.region = ["3701*", "海淀区"]
then.lead = "housing"
[[rule]]
id = "att"
when.has_attachments = true
then.lead = "civil-affairs"
[[rule]]
id = "rep"
when.repeat_petition = true
then.lead = "key-cases"
[[rule]]
id = "all"
when.keywords_all = ["拆迁", "补偿"]
then.lead = "natural-resources"
[[rule]]
id = "none"
when.keywords_any = ["补偿"]
when.keywords_none = ["拆迁"]
then.lead = "policy-desk"
[[rule]]
id = "re"
when.regex = ['欠.{0,3}\d+元']
then.lead = "hrss"
[[rule]]
id = "unc"
when.category = ["unclassified"]
then.lead = "health"
"#
        .to_string()
            + DEFAULT));
        let lead = |i: Input<'_>| rs.decide(&i).rule_id.to_string();
        let base = item("拆迁");
        assert_eq!(
            lead(Input {
                channel: Channel::Letter,
                ..base
            }),
            "ch"
        );
        assert_eq!(
            lead(Input {
                service_code: Some(" ＡＢ01 "),
                ..base
            }),
            "code"
        );
        assert_eq!(
            lead(Input {
                region: Some("370102"),
                ..base
            }),
            "reg"
        );
        assert_eq!(
            lead(Input {
                region: Some("海淀区"),
                ..base
            }),
            "reg"
        );
        assert_eq!(
            lead(Input {
                region: Some("海淀"),
                ..base
            }),
            "default"
        );
        assert_eq!(
            lead(Input {
                attachments: 2,
                ..base
            }),
            "att"
        );
        assert_eq!(
            lead(Input {
                repeat_petition: true,
                ..base
            }),
            "rep"
        );
        assert_eq!(lead(item("拆遷補償")), "all");
        assert_eq!(lead(item("补偿")), "none");
        assert_eq!(lead(item("拆迁")), "default");
        assert_eq!(lead(item("欠我３００元")), "re");
        assert_eq!(lead(item("你好")), "unc");
    }

    #[test]
    fn errors_carry_file_line_and_path() {
        let e = errors(
            r#"[[rule]]
id = "a"
when.keywords_any = ["拆迁"]
then.lead = "nowhere"

[[rule]]
id = "a"
when.regex = ["(unclosed"]
when.channel = ["fax"]
when.keywords_all = []
then.lead = "hrss"
then.priority = "asap"

[[rule]]
id = "b"
when.keywords_any = ["欠薪"]
then.tags = ["x"]
"#,
        );
        let want = [
            "rules.toml:4: rule[0].then.lead: department `nowhere` is not defined",
            "rules.toml:7: rule[1].id: duplicate rule id `a` (first at line 2)",
            "rules.toml:8: rule[1].when.regex[0]: invalid regex",
            "rules.toml:9: rule[1].when.channel[0]: `fax` is not one of",
            "rules.toml:10: rule[1].when.keywords_all: empty list",
            "rules.toml:12: rule[1].then.priority: `asap` is not one of",
            "rules.toml:14: rule[2]: rule `b` stops evaluation",
            "rules.toml:14: rule[2]: a last rule with id = \"default\"",
        ];
        for w in want {
            assert!(
                e.iter().any(|e| e.starts_with(w) || e.contains(w)),
                "missing {w:?} in\n{}",
                e.join("\n")
            );
        }
    }

    #[test]
    fn shape_errors_are_all_reported_with_lines() {
        let e = errors(
            r#"[[rule]]
id = "a"
when.keyword_any = ["拆迁"]
then.lead = "hrss"
then.continue = "yes"
"#,
        );
        assert!(
            e.iter()
                .any(|e| e.starts_with("rules.toml:3: rule[0].when.keyword_any: unknown field")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.starts_with("rules.toml:5: rule[0].then.continue:")),
            "{e:?}"
        );
        let e = errors("[[rule]\nid = 1\n");
        assert!(e[0].starts_with("rules.toml:1: : TOML syntax"), "{e:?}");
    }

    #[test]
    fn default_rule_must_be_last_unconditional_and_final() {
        let e = errors(
            r#"[[rule]]
id = "default"
when.channel = ["hotline"]
then.lead = "intake-desk"
then.continue = true
[[rule]]
id = "x"
when.keywords_any = ["欠薪"]
then.lead = "hrss"
"#,
        );
        let joined = e.join("\n");
        assert!(
            joined.contains("rules.toml:2: rule[0].id: the default rule must be the last one"),
            "{joined}"
        );
        assert!(
            joined.contains("rules.toml:3: rule[0].when: the default rule must have no conditions"),
            "{joined}"
        );
        assert!(
            joined.contains(
                "rules.toml:5: rule[0].then.continue: the default rule must not continue"
            ),
            "{joined}"
        );
    }

    #[test]
    fn unreachable_rules_are_errors() {
        // After an unconditional rule.
        let e = errors(
            &(r#"[[rule]]
id = "all"
then.lead = "hrss"
[[rule]]
id = "x"
when.keywords_any = ["欠薪"]
then.lead = "health"
"#
            .to_string()
                + DEFAULT),
        );
        assert!(
            e.iter().any(
                |e| e.starts_with("rules.toml:4: rule[1]: rule `x` is unreachable")
                    && e.contains("rule `all` (line 1)")
            ),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.contains("rule `default` is unreachable")),
            "{e:?}"
        );
        // Identical conditions, and narrower ones (subset of channels, a keyword containing
        // an earlier keyword, an extra condition).
        for later in [
            "when.keywords_any = [\"欠薪\"]\nwhen.channel = [\"hotline\"]",
            "when.channel = [\"hotline\"]\nwhen.keywords_any = [\"拖欠欠薪\"]",
            "when.channel = [\"hotline\"]\nwhen.keywords_all = [\"欠薪\", \"拆迁\"]\nwhen.has_attachments = true",
        ] {
            let text = format!(
                "[[rule]]\nid = \"a\"\nwhen.keywords_any = [\"欠薪\", \"讨薪\"]\nwhen.channel = [\"hotline\", \"portal\"]\nthen.lead = \"hrss\"\n[[rule]]\nid = \"b\"\n{later}\nthen.lead = \"health\"\n{DEFAULT}"
            );
            let e = errors(&text);
            assert!(
                e.iter().any(|e| e.contains("rule `b` is unreachable")),
                "{later}: {e:?}"
            );
        }
        // Not unreachable: wider, a continue rule first, or a category changed in between.
        for text in [
            "[[rule]]\nid = \"a\"\nwhen.keywords_any = [\"欠薪\"]\nwhen.channel = [\"hotline\"]\nthen.lead = \"hrss\"\n[[rule]]\nid = \"b\"\nwhen.keywords_any = [\"欠薪\"]\nthen.lead = \"health\"\n",
            "[[rule]]\nid = \"a\"\nwhen.keywords_any = [\"欠薪\"]\nthen.lead = \"hrss\"\nthen.continue = true\n[[rule]]\nid = \"b\"\nwhen.keywords_any = [\"欠薪\"]\nthen.lead = \"health\"\n",
            "[[rule]]\nid = \"a\"\nwhen.category = [\"policy\"]\nthen.lead = \"hrss\"\n[[rule]]\nid = \"c\"\nwhen.keywords_any = [\"拆迁\"]\nthen.category = \"policy\"\nthen.tags = [\"t\"]\nthen.continue = true\n[[rule]]\nid = \"b\"\nwhen.category = [\"policy\"]\nwhen.channel = [\"letter\"]\nthen.lead = \"health\"\n",
        ] {
            let rs = parse(&format!("{text}{DEFAULT}"));
            assert!(rs.is_ok(), "{text}: {}", rs.unwrap_err());
        }
    }

    #[test]
    fn contradictory_keywords_are_errors() {
        let e = errors(
            &(r#"[[rule]]
id = "a"
when.keywords_any = ["拖欠工资", "欠薪"]
when.keywords_none = ["拖欠", "欠薪"]
then.lead = "hrss"
"#
            .to_string()
                + DEFAULT),
        );
        assert!(
            e[0].starts_with("rules.toml:4: rule[0].when.keywords_none: excludes every keyword"),
            "{e:?}"
        );
    }

    #[test]
    fn warnings_are_distinct_from_errors() {
        let w = warnings(
            &(r#"[[rule]]
id = "a"
when.keywords_any = ["欠薪", "拆迁"]
then.lead = "hrss"
[[rule]]
id = "b"
when.keywords_any = ["拆迁", "欠薪", "讨薪"]
then.lead = "housing"
then.assists = ["housing"]
[[rule]]
id = "c"
when.keywords_any = ["欠薪", "工钱"]
when.channel = ["letter"]
then.lead = "health"
[[rule]]
id = "d"
when.regex = ['拆遷\d']
then.tags = ["x"]
then.continue = true
[[rule]]
id = "e"
when.keywords_any = ["欠"]
then.continue = true
"#
            .to_string()
                + DEFAULT),
        );
        let joined = w.join("\n");
        assert!(joined.contains("rules.toml:7: rule[1].when.keywords_any: `拆迁`, `欠薪` also in keywords_any of rule `a` (line 1), which leads to `hrss`"), "{joined}");
        assert!(
            joined.contains("rules.toml:9: rule[1].then.assists[0]: `housing` is this rule's lead"),
            "{joined}"
        );
        // c narrows by channel but comes after a and b: warned about both.
        assert!(
            joined.contains("rule[2].when.keywords_any: `欠薪` also in keywords_any of rule `a`"),
            "{joined}"
        );
        assert!(
            joined.contains("rule[2].when.keywords_any: `欠薪` also in keywords_any of rule `b`"),
            "{joined}"
        );
        assert!(joined.contains("rules.toml:17: rule[3].when.regex[0]: `遷` never occurs in normalised text (write `迁`)"), "{joined}");
        assert!(
            joined.contains("rules.toml:22: rule[4].when.keywords_any[0]: `欠` is one character"),
            "{joined}"
        );
        assert!(joined.contains("rule `e` does nothing"), "{joined}");
        assert_eq!(w.len(), 7, "{joined}");
        // A special case before the general rule, or rules that cannot meet, are not warned.
        let w = warnings(
            &(r#"[[rule]]
id = "region-split"
when.region = ["经开区"]
when.keywords_any = ["拆迁"]
then.lead = "natural-resources"
[[rule]]
id = "general"
when.keywords_any = ["拆迁"]
when.channel = ["hotline"]
then.lead = "housing"
[[rule]]
id = "letters"
when.keywords_any = ["拆迁"]
when.channel = ["letter"]
then.lead = "health"
"#
            .to_string()
                + DEFAULT),
        );
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn dictionary_problems_surface_through_rules_parse() {
        let dicts = vec![
            ("a.toml".to_string(), DICT.to_string()),
            (
                "b.toml".to_string(),
                "category = \"historical\"\n[keywords]\n\"拆迁\" = 2\n".to_string(),
            ),
        ];
        let (_, w) = RuleSet::parse("rules.toml", DEFAULT, &dicts, &DEPARTMENTS).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].to_string()
                .starts_with("b.toml:3: keywords.拆迁: `拆迁` is also a rights keyword"),
            "{w:?}"
        );
        let bad = vec![(
            "a.toml".to_string(),
            "category = \"rights\"\n[keywords]\n\"x\" = -1\n".to_string(),
        )];
        let e = RuleSet::parse("rules.toml", DEFAULT, &bad, &DEPARTMENTS).unwrap_err();
        assert_eq!(e.errors[0].file, "a.toml");
        assert_eq!(e.errors[0].line, Some(3));
    }

    #[test]
    fn version_covers_rules_and_dictionaries() {
        let d1 = vec![("a.toml".to_string(), DICT.to_string())];
        let d2 = vec![("a.toml".to_string(), DICT.replace("= 4", "= 5"))];
        let d3 = vec![("/elsewhere/a.toml".to_string(), DICT.to_string())];
        let v = |rules: &str, d: &[(String, String)]| {
            RuleSet::parse("r", rules, d, &DEPARTMENTS)
                .unwrap()
                .0
                .version()
                .to_string()
        };
        let base = v(DEFAULT, &d1);
        assert_ne!(base, v(DEFAULT, &d2));
        assert_ne!(base, v(&format!("# edited\n{DEFAULT}"), &d1));
        assert_eq!(
            base,
            v(DEFAULT, &d3),
            "moving the directory keeps the version"
        );
    }

    #[test]
    fn cases_report_readable_diffs_and_bad_case_files() {
        let rs = shipped();
        let text = r#"
[[case]]
name = "wrong on purpose"
channel = "hotline"
content = "公司拖欠工资三个月"
expect = { category = "policy", lead = "hrss", assists = ["health"], rule = "wage-arrears" }
"#;
        let r = run_cases_str(&rs, "c.toml", text).unwrap();
        assert_eq!(r.total, 1);
        let m = &r.mismatches[0];
        assert_eq!(m.line, Some(2));
        let fields: Vec<&str> = m.diffs.iter().map(|d| d.field).collect();
        assert_eq!(fields, ["category", "assists"]);
        let shown = r.to_string();
        assert!(shown.contains("FAIL c.toml:2: wrong on purpose"), "{shown}");
        assert!(shown.contains("category  expected policy"), "{shown}");
        assert!(shown.contains("got rights"), "{shown}");
        assert!(shown.contains("1 case(s), 0 passed, 1 failed"), "{shown}");
        let e = run_cases_str(&rs, "c.toml", "[[case]]\nname = \"x\"\nchannel = \"fax\"\ncontent = \"\"\nexpect = { category = \"nope\", lead = \"hrss\" }\n").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].line, Some(3));
    }
}
