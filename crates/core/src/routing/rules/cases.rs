//! Operator test cases (`rules test`): a TOML list of items and the routing each expects.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCases {
    #[serde(default)]
    case: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCase {
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
pub(super) struct RawExpect {
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
    let cases = valid_cases(&src, &raw)?;
    let mismatches = cases
        .into_iter()
        .filter_map(|(i, c, channel)| run_case(rules, file, &src, i, c, channel))
        .collect();
    Ok(CaseReport {
        total: raw.case.len(),
        mismatches,
    })
}

/// The cases with their channels, or every error in them (names of channels, categories and
/// priorities).
fn valid_cases<'c>(
    src: &TomlFile<'_>,
    raw: &'c RawCases,
) -> Result<Vec<(usize, &'c RawCase, Channel)>, Vec<ConfigError>> {
    let mut errors = Vec::new();
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
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// Routes case `i` and compares: `None` when it routes as expected.
fn run_case(
    rules: &RuleSet,
    file: &str,
    src: &TomlFile<'_>,
    i: usize,
    c: &RawCase,
    channel: Channel,
) -> Option<Mismatch> {
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
    if diffs.is_empty() {
        return None;
    }
    Some(Mismatch {
        name: c.name.clone(),
        file: file.into(),
        line: src.line(&format!("case[{i}]")),
        diffs,
        context: format!(
            "classified {}; decision {}; matched rules: {}",
            trace.classification,
            trace.opinion,
            o.matched_rules.join(", ")
        ),
    })
}
