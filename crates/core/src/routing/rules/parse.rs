//! Stages one and two of loading a rules file: its TOML shape (serde, unknown keys refused)
//! and the validated types built from it, with every error at once (file, line, key path).
//! Compilation into the index is `compile`, whole-set checks `lint`.

use super::*;

// =============================================================================================
// Stage one: the file's shape

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRules {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
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
pub(super) struct RawWhen {
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
pub(super) struct RawThen {
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
pub(super) struct RawSlaOverrides {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    skip: Vec<String>,
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
}

pub(super) fn version_of(rules_text: &str, dicts: &Dictionaries) -> String {
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
pub(super) struct Builder<'a, 'b> {
    src: &'a TomlFile<'a>,
    departments: HashSet<&'a str>,
    diags: &'b mut Diagnostics,
    patterns: Vec<String>,
    pattern_ids: HashMap<String, u32>,
    regex_sources: Vec<String>,
    regex_ids: HashMap<String, u32>,
    regexes: Vec<Regex>,
}

pub(super) struct Built {
    pub(super) rules: Vec<Rule>,
    pub(super) patterns: Vec<String>,
    pub(super) regex_sources: Vec<String>,
    pub(super) regexes: Vec<Regex>,
}

pub(super) fn valid_id(id: &str) -> bool {
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
