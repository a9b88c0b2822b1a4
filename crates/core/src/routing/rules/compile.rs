//! Compiling validated rules into what evaluation reads: one keyword matcher for dictionaries
//! and rules, the rules each pattern or service code triggers, and the regex set.

use super::*;

/// Lists of rule indices by pattern id, in two flat arrays (one lookup touches two adjacent
/// offsets and one run of indices, not a `Vec` header per pattern).
#[derive(Debug, Clone)]
pub(super) struct Csr {
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

    pub(super) fn get(&self, pattern: u32) -> &[u32] {
        let p = pattern as usize;
        &self.rules[self.offsets[p] as usize..self.offsets[p + 1] as usize]
    }
}
impl Built {
    pub(super) fn compile(
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
            model: None,
            review_threshold: 0.0,
        })
    }
}
