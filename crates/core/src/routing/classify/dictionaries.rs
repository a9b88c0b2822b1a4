//! The category dictionaries: their files, validation, and scoring an item ([`Dictionaries`],
//! [`Classifier`]).

use super::*;

// ---------------------------------------------------------------------------------------------
// Dictionaries

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDictionary {
    category: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    service_codes: BTreeMap<String, u32>,
    #[serde(default)]
    keywords: BTreeMap<String, u32>,
}

/// One keyword of one dictionary.
#[derive(Debug, Clone)]
pub struct Entry {
    /// As written in the dictionary (what `explain` shows).
    pub keyword: String,
    pub category: Category,
    pub weight: u32,
    pub file: String,
    pub line: Option<usize>,
}

/// One upstream service code of one dictionary.
#[derive(Debug, Clone)]
pub struct CodeEntry {
    pub code: String,
    pub category: Category,
    pub weight: u32,
    pub file: String,
    pub line: Option<usize>,
}

/// All dictionaries, validated, with their keywords numbered as automaton patterns.
#[derive(Debug, Clone, Default)]
pub struct Dictionaries {
    entries: Vec<Entry>,
    /// Distinct normalised keywords; the index is the Aho-Corasick pattern id (routing::rules
    /// appends its own keywords after these).
    patterns: Vec<String>,
    /// Pattern id → entries (more than one only when two categories share a keyword, which is
    /// a warning).
    pattern_entries: Vec<Vec<u32>>,
    codes: Vec<CodeEntry>,
    /// Normalised service code → index in `codes`.
    code_index: HashMap<String, u32>,
    /// (file name, content) of every file, for the rules version.
    sources: Vec<(String, String)>,
}

/// Normalises an upstream service code for comparison: trimmed, half-width, lower case.
pub fn normalize_code(code: &str) -> String {
    normalize(code.trim())
}

impl Dictionaries {
    /// Reads every `*.toml` file in `dir` (sorted by name) and parses them.
    pub fn load_dir(dir: &Path) -> Result<(Dictionaries, Vec<ConfigError>), Diagnostics> {
        Dictionaries::parse(&read_toml_dir(dir)?)
    }

    /// Parses dictionary files given as (file name, content). The version hash uses only the
    /// final path component of each name, so moving the directory keeps the version.
    pub fn parse(
        files: &[(String, String)],
    ) -> Result<(Dictionaries, Vec<ConfigError>), Diagnostics> {
        let mut b = Builder::default();
        for (name, text) in files {
            b.add_file(name, text);
        }
        if files.is_empty() {
            b.d.warnings.push(ConfigError {
                file: "dictionaries".into(),
                line: None,
                path: String::new(),
                message: "no dictionary files: every item is unclassified".into(),
            });
        }
        if b.d.errors.is_empty() {
            Ok((b.out, b.d.warnings))
        } else {
            Err(b.d)
        }
    }

    /// Every keyword entry.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Every service code entry.
    pub fn service_codes(&self) -> &[CodeEntry] {
        &self.codes
    }

    /// Distinct normalised keywords, in pattern-id order.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub(crate) fn sources(&self) -> &[(String, String)] {
        &self.sources
    }

    /// What [`Dictionaries::score`] decides (category and scores) without listing the hits:
    /// the routing hot path. `code` is already normalised ([`normalize_code`]); `seen` is a
    /// scratch buffer.
    pub(crate) fn score_only(
        &self,
        spans: &mut [Span],
        code: Option<&str>,
        seen: &mut Vec<u32>,
    ) -> (Option<Category>, Scores) {
        if !spans.is_sorted_by_key(|s| (s.start, s.end)) {
            spans.sort_unstable_by_key(|s| (s.start, s.end));
        }
        seen.clear();
        let mut scores = Scores::default();
        let mut max_end = 0;
        for (i, s) in spans.iter().enumerate() {
            let last_at_start = spans.get(i + 1).is_none_or(|n| n.start != s.start);
            if last_at_start && s.end > max_end {
                max_end = s.end;
                if seen.contains(&s.pattern) {
                    continue;
                }
                seen.push(s.pattern);
                for &e in &self.pattern_entries[s.pattern as usize] {
                    let entry = &self.entries[e as usize];
                    scores.0[category_index(entry.category)] += entry.weight;
                }
            }
        }
        if let Some(&i) = code.and_then(|c| self.code_index.get(c)) {
            let entry = &self.codes[i as usize];
            scores.0[category_index(entry.category)] += entry.weight;
        }
        (scores.best().0, scores)
    }

    /// Scores the dictionary hits of one item. `spans` holds every occurrence of a dictionary
    /// pattern (ids below `patterns().len()`), in any order; it is sorted (a no-op for what
    /// [`Matcher::find`] reports).
    pub fn score(&self, spans: &mut [Span], service_code: Option<&str>) -> Classification<'_> {
        if !spans.is_sorted_by_key(|s| (s.start, s.end)) {
            spans.sort_unstable_by_key(|s| (s.start, s.end));
        }
        // Of the spans starting at one place the last is the longest; an earlier-starting span
        // that ends at or after it contains it (two distinct spans cannot be equal: equal text
        // is the same pattern). Only spans contained in no other count.
        let mut counted: Vec<u32> = Vec::with_capacity(spans.len());
        let mut max_end = 0;
        for (i, s) in spans.iter().enumerate() {
            let last_at_start = spans.get(i + 1).is_none_or(|n| n.start != s.start);
            if last_at_start && s.end > max_end {
                counted.push(s.pattern);
                max_end = s.end;
            }
        }
        let mut scores = Scores::default();
        let mut hits = Vec::new();
        // Text order of first occurrence, each keyword once.
        let mut seen: Vec<u32> = Vec::with_capacity(counted.len());
        for p in counted {
            if seen.contains(&p) {
                continue;
            }
            seen.push(p);
            for &e in &self.pattern_entries[p as usize] {
                let entry = &self.entries[e as usize];
                scores.0[category_index(entry.category)] += entry.weight;
                hits.push(Hit {
                    keyword: &entry.keyword,
                    category: entry.category,
                    weight: entry.weight,
                });
            }
        }
        let code = service_code.and_then(|c| {
            let i = *self.code_index.get(&normalize_code(c))?;
            let entry = &self.codes[i as usize];
            scores.0[category_index(entry.category)] += entry.weight;
            Some(CodeHit {
                code: &entry.code,
                category: entry.category,
                weight: entry.weight,
            })
        });
        let (category, tie) = scores.best();
        Classification {
            category,
            tie,
            scores,
            hits,
            service_code: code,
        }
    }
}

/// The dictionaries while their files are read, with the errors and warnings found so far.
#[derive(Default)]
struct Builder {
    out: Dictionaries,
    /// Normalised keyword → pattern id.
    pattern_ids: HashMap<String, u32>,
    d: Diagnostics,
}

impl Builder {
    /// One dictionary file: its text kept for the version, then its service codes and
    /// keywords added under its category.
    fn add_file(&mut self, name: &str, text: &str) {
        let base = Path::new(name)
            .file_name()
            .map_or_else(|| name.to_string(), |f| f.to_string_lossy().into_owned());
        self.out.sources.push((base, text.to_string()));
        let src = match TomlFile::parse(name, text) {
            Ok(s) => s,
            Err(e) => {
                self.d.errors.push(e);
                return;
            }
        };
        let Some(raw) = src.deserialize::<RawDictionary>(&mut self.d.errors) else {
            return;
        };
        let Some(category) = parse_category(&raw.category) else {
            self.d.errors.push(src.err(
                "category",
                format!(
                    "`{}` is not one of livelihood, rights, policy, historical",
                    raw.category
                ),
            ));
            return;
        };
        for (code, &weight) in &raw.service_codes {
            self.add_code(&src, category, code, weight);
        }
        if raw.keywords.is_empty() {
            self.d.warnings.push(src.err(
                "keywords",
                format!(
                    "no keywords: nothing is classified as {}",
                    category.as_str()
                ),
            ));
        }
        for (kw, &weight) in &raw.keywords {
            self.add_keyword(&src, category, kw, weight);
        }
    }

    /// One service code: refused when empty, out of weight range or already mapped.
    fn add_code(&mut self, src: &TomlFile<'_>, category: Category, code: &str, weight: u32) {
        let path = format!("service_codes.{}", crate::diag::toml_file::quote_key(code));
        let norm = normalize_code(code);
        if norm.is_empty() {
            self.d
                .errors
                .push(src.err(&path, "service code must not be empty"));
            return;
        }
        if let Some(e) = weight_error(weight) {
            self.d.errors.push(src.err(&path, e));
            return;
        }
        let out = &mut self.out;
        if let Some(&prev) = out.code_index.get(&norm) {
            let p = &out.codes[prev as usize];
            self.d.errors.push(src.err(
                &path,
                format!(
                    "service code `{code}` is already mapped to {} in {}",
                    p.category.as_str(),
                    file_line(&p.file, p.line)
                ),
            ));
            return;
        }
        out.code_index.insert(norm, out.codes.len() as u32);
        out.codes.push(CodeEntry {
            code: code.to_string(),
            category,
            weight,
            file: src.file.to_string(),
            line: src.line(&path),
        });
    }

    /// One keyword: refused when empty, out of weight range or the same as another of its
    /// category after normalisation; a one-character keyword or one another category shares
    /// is a warning.
    fn add_keyword(&mut self, src: &TomlFile<'_>, category: Category, kw: &str, weight: u32) {
        let path = format!("keywords.{}", crate::diag::toml_file::quote_key(kw));
        let norm = normalize(kw);
        if norm.is_empty() {
            self.d
                .errors
                .push(src.err(&path, "keyword must not be empty"));
            return;
        }
        if let Some(e) = weight_error(weight) {
            self.d.errors.push(src.err(&path, e));
            return;
        }
        if norm.chars().count() == 1 {
            self.d.warnings.push(src.err(
                &path,
                "a one-character keyword matches far too much; use a word",
            ));
        }
        let out = &mut self.out;
        let pid = *self.pattern_ids.entry(norm.clone()).or_insert_with(|| {
            out.patterns.push(norm);
            out.pattern_entries.push(Vec::new());
            (out.patterns.len() - 1) as u32
        });
        if self.shares_pattern(src, &path, category, kw, pid) {
            return;
        }
        let out = &mut self.out;
        out.pattern_entries[pid as usize].push(out.entries.len() as u32);
        out.entries.push(Entry {
            keyword: kw.to_string(),
            category,
            weight,
            file: src.file.to_string(),
            line: src.line(&path),
        });
    }

    /// Reports the entries already on pattern `pid`: one of the same category is an error
    /// (returns true: the keyword is a duplicate), one of another category a warning.
    fn shares_pattern(
        &mut self,
        src: &TomlFile<'_>,
        path: &str,
        category: Category,
        kw: &str,
        pid: u32,
    ) -> bool {
        let mut duplicate = false;
        for &e in &self.out.pattern_entries[pid as usize] {
            let prev = &self.out.entries[e as usize];
            let at = file_line(&prev.file, prev.line);
            if prev.category == category {
                self.d.errors.push(src.err(
                    path,
                    format!(
                        "`{kw}` is the same keyword as `{}` ({at}) after normalisation",
                        prev.keyword
                    ),
                ));
                duplicate = true;
            } else {
                self.d.warnings.push(src.err(
                    path,
                    format!(
                        "`{kw}` is also a {} keyword (`{}`, {at}): it counts for both \
                         categories, which makes ties more likely",
                        prev.category.as_str(),
                        prev.keyword
                    ),
                ));
            }
        }
        duplicate
    }
}

/// Why a dictionary weight is refused, if it is.
fn weight_error(weight: u32) -> Option<String> {
    (weight == 0 || weight > MAX_WEIGHT)
        .then(|| format!("weight must be between 1 and {MAX_WEIGHT}"))
}

/// `file:line`, or the file alone when the line is unknown.
fn file_line(file: &str, line: Option<usize>) -> String {
    format!(
        "{file}{}",
        line.map(|l| format!(":{l}")).unwrap_or_default()
    )
}

/// One occurrence of a pattern (offsets in any monotonic coordinates of the text: only
/// containment between spans is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub pattern: u32,
    pub start: u32,
    pub end: u32,
}

/// Scores per category, indexed as [`CATEGORIES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scores(pub [u32; 4]);

impl Scores {
    pub fn get(&self, c: Category) -> u32 {
        self.0[category_index(c)]
    }

    /// The winning category, and whether the top score was tied.
    fn best(&self) -> (Option<Category>, bool) {
        let max = *self.0.iter().max().unwrap_or(&0);
        if max == 0 {
            return (None, false);
        }
        let mut top = CATEGORIES.iter().zip(self.0).filter(|(_, s)| *s == max);
        let first = top.next().map(|(c, _)| *c);
        if top.next().is_some() {
            (None, true)
        } else {
            (first, false)
        }
    }
}

impl fmt::Display for Scores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in CATEGORIES.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}", c.as_str(), self.0[i])?;
        }
        Ok(())
    }
}

/// A dictionary keyword found in an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'d> {
    /// As written in the dictionary.
    pub keyword: &'d str,
    pub category: Category,
    pub weight: u32,
}

/// The item's service code, when a dictionary maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeHit<'d> {
    pub code: &'d str,
    pub category: Category,
    pub weight: u32,
}

/// The classifier's answer for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification<'d> {
    /// `None`: unclassified (no keyword at all, or a tie for the top score).
    pub category: Option<Category>,
    /// True when the item is unclassified because two or more categories tied.
    pub tie: bool,
    pub scores: Scores,
    /// Dictionary keywords found, each once, in order of first occurrence.
    pub hits: Vec<Hit<'d>>,
    pub service_code: Option<CodeHit<'d>>,
}

impl fmt::Display for Classification<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.category, self.tie) {
            (Some(c), _) => write!(f, "{}", c.as_str())?,
            (None, true) => f.write_str("unclassified (tie)")?,
            (None, false) => f.write_str("unclassified (no keyword)")?,
        }
        write!(f, " — scores: {}", self.scores)?;
        if let Some(c) = &self.service_code {
            write!(
                f,
                "; service code {} → {} +{}",
                c.code,
                c.category.as_str(),
                c.weight
            )?;
        }
        if !self.hits.is_empty() {
            f.write_str("; keywords:")?;
            for h in &self.hits {
                write!(f, " {}({} +{})", h.keyword, h.category.as_str(), h.weight)?;
            }
        }
        Ok(())
    }
}

/// Dictionaries with an automaton of their own: classification without routing rules.
#[derive(Debug, Clone)]
pub struct Classifier {
    dicts: Dictionaries,
    matcher: Matcher,
}

impl Classifier {
    pub fn new(dicts: Dictionaries) -> Result<Self, String> {
        let matcher = Matcher::new(&dicts.patterns, &[dicts.patterns.len()])?;
        Ok(Self { dicts, matcher })
    }

    pub fn dictionaries(&self) -> &Dictionaries {
        &self.dicts
    }

    /// Classifies an item by its title, content and upstream service code.
    pub fn classify(
        &self,
        title: &str,
        content: &str,
        service_code: Option<&str>,
    ) -> Classification<'_> {
        let mut spans = Vec::new();
        self.matcher.find(title, content, |pattern, start, end| {
            spans.push(Span {
                pattern,
                start,
                end,
            })
        });
        self.dicts.score(&mut spans, service_code)
    }
}

/// Short hash of the dictionaries' files (names and contents), as a model records the
/// dictionaries it was fitted with.
pub fn dictionaries_version(d: &Dictionaries) -> String {
    use sha2::{Digest, Sha256};
    let mut sources: Vec<&(String, String)> = d.sources().iter().collect();
    sources.sort();
    let mut h = Sha256::new();
    for (name, text) in sources {
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(text.as_bytes());
        h.update(b"\0");
    }
    hex::encode(&h.finalize()[..6])
}

/// Reads every `*.toml` in a directory, sorted by name, as (path, content).
pub(crate) fn read_toml_dir(dir: &Path) -> Result<Vec<(String, String)>, Diagnostics> {
    let fail = |file: &Path, e: std::io::Error| Diagnostics {
        errors: vec![ConfigError {
            file: file.display().to_string(),
            line: None,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }],
        warnings: Vec::new(),
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| fail(dir, e))? {
        let p = entry.map_err(|e| fail(dir, e))?.path();
        if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
            paths.push(p);
        }
    }
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        let t = std::fs::read_to_string(&p).map_err(|e| fail(&p, e))?;
        files.push((p.display().to_string(), t));
    }
    Ok(files)
}

/// Title and content normalised and joined by a line break, which no keyword spans.
pub fn normalized_item_text(title: &str, content: &str) -> String {
    let mut text = String::with_capacity(title.len() + content.len() + 1);
    normalize_into(title, &mut text);
    text.push('\n');
    normalize_into(content, &mut text);
    text
}
