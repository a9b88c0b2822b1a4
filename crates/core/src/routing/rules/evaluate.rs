//! Evaluation: the fast path ([`RuleSet::decide`]), the traced path ([`RuleSet::evaluate`])
//! and the plain reference ([`RuleSet::decide_naive`]); tests hold all three equal.

use super::*;

/// Reusable per-thread buffers of [`RuleSet::decide`]: the hot path allocates only the
/// outcome's own lists.
#[derive(Default)]
pub(super) struct DecideScratch {
    spans: Vec<Span>,
    found: Found,
    cands: Vec<u32>,
    seen: Vec<u32>,
}

/// The distinct patterns found in one item: a bit per pattern (O(1) condition checks) and
/// the list of those set (to visit the rules they trigger and to clear the bits after).
#[derive(Default)]
pub(super) struct Found {
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
pub(super) struct Prepared<'i> {
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
pub(super) trait Facts {
    fn has(&mut self, k: &Keyword) -> bool;
    fn regex(&mut self, id: u32) -> bool;
}

pub(super) struct Indexed<'a> {
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

pub(super) struct Naive<'a> {
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
pub(super) struct State<'r> {
    category: Option<Category>,
    category_by_rule: bool,
    lead: Option<(&'r str, &'r str)>,
    assists: Vec<&'r str>,
    priority: Priority,
    tags: Vec<&'r str>,
    sla_add: Vec<&'r str>,
    sla_skip: Vec<&'r str>,
    matched: Vec<&'r str>,
}

pub(super) fn push_unique<'r>(v: &mut Vec<&'r str>, s: &'r str) -> bool {
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
            category_by_rule: false,
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
            self.category_by_rule = true;
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
        opinion: Opinion,
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
            classified: opinion.category,
            opinion,
            category_by_rule: self.category_by_rule,
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

pub(super) fn list<T: fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn words(v: &[&Keyword]) -> String {
    v.iter()
        .map(|k| k.text.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one rule. Without a trace it stops at the first failing condition; with one it
/// evaluates and records them all.
pub(super) fn check(
    rule: &Rule,
    item: &Prepared<'_>,
    category: Option<Category>,
    facts: &mut impl Facts,
    regex_sources: &[String],
    trace: Option<&mut Vec<ConditionTrace>>,
) -> bool {
    let c = &rule.when;
    let mut v = Verdict { trace, all: true };
    // Each step answers whether to go on: false once a condition failed and no trace asks for
    // the rest. With a trace every step runs and `v.all` holds the answer.
    channel_condition(c, item.input, &mut v)
        && category_condition(c, category, &mut v)
        && keywords_any(c, facts, &mut v)
        && keywords_all(c, facts, &mut v)
        && keywords_none(c, facts, &mut v)
        && regex_condition(c, facts, regex_sources, &mut v)
        && service_code_condition(c, item, &mut v)
        && region_condition(c, item, &mut v)
        && attachments_condition(c, item.input, &mut v)
        && repeat_condition(c, item.input, &mut v)
        && v.all
}

/// One rule's conditions as they are checked: whether all held so far, and their trace when
/// one is kept.
struct Verdict<'t> {
    trace: Option<&'t mut Vec<ConditionTrace>>,
    all: bool,
}

impl Verdict<'_> {
    fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Records one condition; its detail is computed only for a trace. Returns whether to
    /// check the next one (false when it failed and no trace is kept).
    #[inline]
    fn record(
        &mut self,
        condition: &'static str,
        ok: bool,
        detail: impl FnOnce() -> String,
    ) -> bool {
        self.all &= ok;
        match self.trace.as_deref_mut() {
            Some(t) => {
                t.push(ConditionTrace {
                    condition,
                    ok,
                    detail: detail(),
                });
                true
            }
            None => ok,
        }
    }
}

fn channel_condition(c: &Conditions, input: &Input<'_>, v: &mut Verdict<'_>) -> bool {
    let Some(chs) = &c.channel else { return true };
    let ok = c.channel_mask & channel_bit(input.channel) != 0;
    v.record("channel", ok, || {
        let op = if ok { "in" } else { "not in" };
        format!("{} {op} [{}]", input.channel, list(chs))
    })
}

fn category_condition(c: &Conditions, category: Option<Category>, v: &mut Verdict<'_>) -> bool {
    let Some(cats) = &c.category else { return true };
    let ok = c.category_mask & category_bit(category) != 0;
    v.record("category", ok, || {
        let op = if ok { "in" } else { "not in" };
        let names: Vec<&str> = cats.iter().map(|c| category_name(*c)).collect();
        format!("{} {op} [{}]", category_name(category), names.join(", "))
    })
}

fn keywords_any(c: &Conditions, facts: &mut impl Facts, v: &mut Verdict<'_>) -> bool {
    let kws = &c.keywords_any;
    if kws.is_empty() {
        return true;
    }
    if !v.tracing() {
        return v.record(
            "keywords_any",
            kws.iter().any(|k| facts.has(k)),
            String::new,
        );
    }
    let found: Vec<&Keyword> = kws.iter().filter(|k| facts.has(k)).collect();
    v.record("keywords_any", !found.is_empty(), || {
        if found.is_empty() {
            format!("none of {} found", kws.len())
        } else {
            format!("found {}", words(&found))
        }
    })
}

fn keywords_all(c: &Conditions, facts: &mut impl Facts, v: &mut Verdict<'_>) -> bool {
    let kws = &c.keywords_all;
    if kws.is_empty() {
        return true;
    }
    if !v.tracing() {
        return v.record(
            "keywords_all",
            kws.iter().all(|k| facts.has(k)),
            String::new,
        );
    }
    let missing: Vec<&Keyword> = kws.iter().filter(|k| !facts.has(k)).collect();
    v.record("keywords_all", missing.is_empty(), || {
        if missing.is_empty() {
            format!("found all of {}", words(&kws.iter().collect::<Vec<_>>()))
        } else {
            format!("missing {}", words(&missing))
        }
    })
}

fn keywords_none(c: &Conditions, facts: &mut impl Facts, v: &mut Verdict<'_>) -> bool {
    let kws = &c.keywords_none;
    if kws.is_empty() {
        return true;
    }
    if !v.tracing() {
        return v.record(
            "keywords_none",
            !kws.iter().any(|k| facts.has(k)),
            String::new,
        );
    }
    let found: Vec<&Keyword> = kws.iter().filter(|k| facts.has(k)).collect();
    v.record("keywords_none", found.is_empty(), || {
        if found.is_empty() {
            "none found".to_string()
        } else {
            format!("found {}", words(&found))
        }
    })
}

fn regex_condition(
    c: &Conditions,
    facts: &mut impl Facts,
    regex_sources: &[String],
    v: &mut Verdict<'_>,
) -> bool {
    if c.regex_ids.is_empty() {
        return true;
    }
    let hit = c.regex_ids.iter().copied().find(|&id| facts.regex(id));
    v.record("regex", hit.is_some(), || match hit {
        Some(id) => format!("`{}` matches", regex_sources[id as usize]),
        None => format!("none of {} matches", c.regex_ids.len()),
    })
}

fn service_code_condition(c: &Conditions, item: &Prepared<'_>, v: &mut Verdict<'_>) -> bool {
    let Some(codes) = &c.service_code else {
        return true;
    };
    let ok = item
        .service_code
        .as_ref()
        .is_some_and(|s| codes.iter().any(|c| c == s));
    v.record("service_code", ok, || match (&item.service_code, ok) {
        (None, _) => "the item has no service code".to_string(),
        (Some(_), true) => format!("the item's code is in [{}]", codes.join(", ")),
        (Some(_), false) => format!("the item's code is not in [{}]", codes.join(", ")),
    })
}

fn region_condition(c: &Conditions, item: &Prepared<'_>, v: &mut Verdict<'_>) -> bool {
    let Some(regions) = &c.region else {
        return true;
    };
    let ok = item
        .region
        .as_ref()
        .is_some_and(|r| regions.iter().any(|p| p.matches(r)));
    v.record("region", ok, || match (&item.region, ok) {
        (None, _) => "the item has no region".to_string(),
        (Some(_), true) => format!("the item's region matches [{}]", list(regions)),
        (Some(_), false) => format!("the item's region matches none of [{}]", list(regions)),
    })
}

fn attachments_condition(c: &Conditions, input: &Input<'_>, v: &mut Verdict<'_>) -> bool {
    let Some(want) = c.has_attachments else {
        return true;
    };
    v.record("has_attachments", (input.attachments > 0) == want, || {
        format!(
            "the item has {} attachment(s), rule wants {}",
            input.attachments,
            if want { "some" } else { "none" }
        )
    })
}

fn repeat_condition(c: &Conditions, input: &Input<'_>, v: &mut Verdict<'_>) -> bool {
    let Some(want) = c.repeat_petition else {
        return true;
    };
    v.record("repeat_petition", input.repeat_petition == want, || {
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
    })
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
            let (dict_best, scores) =
                self.dicts
                    .score_only(spans, item.service_code.as_deref(), seen);
            let opinion = self.opinion(input, &scores, dict_best);
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
            let mut state = State::new(opinion.category);
            for &r in cands.iter() {
                let rule = &self.rules[r as usize];
                if check(rule, &item, state.category, &mut facts, &[], None)
                    && state.apply(rule, None)
                {
                    break;
                }
            }
            state.finish(self, opinion, scores)
        })
    }

    /// The classifier's decision: the dictionary scores and the model (if any) combined.
    fn opinion(
        &self,
        input: &Input<'_>,
        scores: &classify::Scores,
        dict_best: Option<Category>,
    ) -> Opinion {
        let m = self
            .model
            .as_deref()
            .map(|m| (m, m.logits(input.title, input.content)));
        model::decide(scores, dict_best, m, self.review_threshold)
    }

    /// The same outcome as [`RuleSet::decide`], and the trace of every rule tried up to the
    /// one that stopped evaluation (for `explain`; slower: every rule's every condition).
    pub fn evaluate(&self, input: &Input<'_>) -> (Outcome<'_>, Trace<'_>) {
        let item = Prepared::new(input);
        let mut spans = Vec::new();
        let mut found = Found::new(self.pattern_count);
        self.scan(input, &mut spans, &mut found);
        let classification = self.dicts.score(&mut spans, input.service_code);
        let opinion = self.opinion(input, &classification.scores, classification.category);
        let mut facts = Indexed {
            found: &found,
            item: &item,
            set: &self.regex_set,
            matches: None,
        };
        let sources = self.regex_sources();
        let mut state = State::new(opinion.category);
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
        let outcome = state.finish(self, opinion, classification.scores);
        (
            outcome,
            Trace {
                classification,
                opinion,
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
        let opinion = self.opinion(input, &classification.scores, classification.category);
        let mut facts = Naive {
            text: &text,
            regexes: &self.regexes,
        };
        let mut state = State::new(opinion.category);
        for rule in &self.rules {
            if check(rule, &item, state.category, &mut facts, &[], None) && state.apply(rule, None)
            {
                break;
            }
        }
        state.finish(self, opinion, classification.scores)
    }

    fn regex_sources(&self) -> Vec<String> {
        self.regexes
            .iter()
            .map(|r| r.as_str().to_string())
            .collect()
    }
}

#[cfg(test)]
mod verdict_tests {
    use super::*;

    #[test]
    fn an_untraced_verdict_stops_at_the_first_failure_and_a_traced_one_records_every_condition() {
        let mut untraced = Verdict {
            trace: None,
            all: true,
        };
        assert!(untraced.record("a", true, || unreachable!("no detail without a trace")));
        assert!(!untraced.record("b", false, || unreachable!("no detail without a trace")));
        assert!(!untraced.all);

        let mut trace = Vec::new();
        let mut traced = Verdict {
            trace: Some(&mut trace),
            all: true,
        };
        assert!(traced.record("a", false, || "a failed".into()));
        assert!(traced.record("b", true, || "b held".into()));
        assert!(!traced.all);
        let seen: Vec<_> = trace
            .iter()
            .map(|t| (t.condition, t.ok, t.detail.as_str()))
            .collect();
        assert_eq!(seen, [("a", false, "a failed"), ("b", true, "b held")]);
    }
}
