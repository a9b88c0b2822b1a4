//! Measuring classification on a labelled corpus: accuracy, per-category precision and recall,
//! the confusion matrix, and how many items went to review (`petitiond rules eval`).
//!
//! Owns the labelled-corpus formats (read here, written by `rules corrections export`): TSV
//! `category<TAB>text` or `category<TAB>title<TAB>text` (`#` starts a comment line), and JSONL
//! (`{"category": ..., "title": ..., "content": ..., "service_code": ..., "channel": ...}`,
//! other keys ignored). A bad line is an error naming the file, the line and why. Every item
//! is routed by the same [`RuleSet::decide`] as the daemon's, so the figures are the daemon's.
//! Personal data: a report holds counts and, only when asked for, the misclassified texts of
//! the corpus given (the operator's own file).

use super::classify::{CATEGORIES, category_index, parse_category};
use super::rules::{Input, RuleSet};
use crate::diag::ConfigError;
use crate::envelope::{Category, Channel};
use std::fmt;
use std::path::Path;

/// One labelled item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub category: Category,
    pub title: String,
    pub content: String,
    pub service_code: Option<String>,
    pub channel: Channel,
    /// 1-based line in its file.
    pub line: usize,
}

#[derive(serde::Deserialize)]
struct JsonItem {
    category: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    service_code: Option<String>,
    #[serde(default)]
    channel: Option<Channel>,
}

/// Reads a labelled corpus (`.jsonl` / `.json` by extension, else TSV).
pub fn read_corpus(path: &Path) -> Result<Vec<Labelled>, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: file.clone(),
            line: None,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    let jsonl = path
        .extension()
        .is_some_and(|x| x == "jsonl" || x == "json");
    parse_corpus(&file, &text, jsonl)
}

/// Parses corpus text; all bad lines are reported at once.
pub fn parse_corpus(
    file: &str,
    text: &str,
    jsonl: bool,
) -> Result<Vec<Labelled>, Vec<ConfigError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let mut err = |m: String| {
            errors.push(ConfigError {
                file: file.into(),
                line: Some(line),
                path: String::new(),
                message: m,
            })
        };
        let (cat, title, content, code, channel) = if jsonl {
            match serde_json::from_str::<JsonItem>(l) {
                Ok(j) => {
                    let content = j.content.or(j.text).unwrap_or_default();
                    (
                        j.category,
                        j.title.unwrap_or_default(),
                        content,
                        j.service_code,
                        j.channel,
                    )
                }
                Err(e) => {
                    err(format!("not a JSON item: {e}"));
                    continue;
                }
            }
        } else {
            let cols: Vec<&str> = l.split('\t').collect();
            match cols.as_slice() {
                [c, t] => (c.to_string(), String::new(), t.to_string(), None, None),
                [c, title, t] => (c.to_string(), title.to_string(), t.to_string(), None, None),
                _ => {
                    err(format!(
                        "expected `category<TAB>text` or `category<TAB>title<TAB>text`, found {} column(s)",
                        cols.len()
                    ));
                    continue;
                }
            }
        };
        let Some(category) = parse_category(cat.trim()) else {
            err(format!(
                "`{}` is not one of livelihood, rights, policy, historical",
                cat.trim()
            ));
            continue;
        };
        if title.trim().is_empty() && content.trim().is_empty() {
            err("empty text".into());
            continue;
        }
        out.push(Labelled {
            category,
            title,
            content,
            service_code: code,
            channel: channel.unwrap_or(Channel::Hotline),
            line,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// What the routing decided for one labelled item.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// Final category (`None`: unclassified / sent to review).
    pub category: Option<Category>,
    /// The classifier's best guess, even when unsure.
    pub best: Option<Category>,
    pub needs_review: bool,
    /// The classifier's decision (for printing misses).
    pub opinion: super::model::Opinion,
}

/// Routes one labelled item with the daemon's decision path.
pub fn decide_one(rules: &RuleSet, item: &Labelled) -> Decided {
    let input = Input {
        channel: item.channel,
        title: &item.title,
        content: &item.content,
        service_code: item.service_code.as_deref(),
        region: None,
        attachments: 0,
        repeat_petition: false,
    };
    let o = rules.decide(&input);
    Decided {
        category: o.category,
        best: o.category.or(o.opinion.candidates[0].map(|(c, _)| c)),
        needs_review: o.needs_review(),
        opinion: o.opinion,
    }
}

/// The figures for one corpus. Rows of the matrix are the true categories, columns the
/// decided ones, the fifth column "unclassified".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub total: usize,
    pub matrix: [[usize; 5]; 4],
    pub needs_review: usize,
    /// Items whose best guess (review or not) is right.
    pub best_right: usize,
    /// (line, true, decided, the classifier's decision) of every miss, when collected.
    pub misses: Vec<(usize, Category, Option<Category>, super::model::Opinion)>,
}

impl Report {
    pub fn add(&mut self, truth: Category, d: &Decided, line: usize, keep_miss: bool) {
        self.total += 1;
        let col = d.category.map_or(4, category_index);
        self.matrix[category_index(truth)][col] += 1;
        if d.needs_review {
            self.needs_review += 1;
        }
        if d.best == Some(truth) {
            self.best_right += 1;
        }
        if keep_miss && d.category != Some(truth) {
            self.misses.push((line, truth, d.category, d.opinion));
        }
    }

    pub fn right(&self) -> usize {
        (0..4).map(|k| self.matrix[k][k]).sum()
    }

    pub fn accuracy(&self) -> f64 {
        self.right() as f64 / self.total.max(1) as f64
    }

    /// Recall of category `k`: right / items of that category.
    pub fn recall(&self, k: usize) -> f64 {
        let n: usize = self.matrix[k].iter().sum();
        self.matrix[k][k] as f64 / n.max(1) as f64
    }

    /// Precision of category `k`: right / items decided as that category.
    pub fn precision(&self, k: usize) -> f64 {
        let n: usize = (0..4).map(|t| self.matrix[t][k]).sum();
        self.matrix[k][k] as f64 / n.max(1) as f64
    }
}

/// Routes every item of a corpus.
pub fn evaluate(rules: &RuleSet, items: &[Labelled], keep_misses: bool) -> Report {
    let mut r = Report::default();
    for it in items {
        let d = decide_one(rules, it);
        r.add(it.category, &d, it.line, keep_misses);
    }
    r
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |x: f64| format!("{:.1}%", x * 100.0);
        writeln!(
            f,
            "accuracy {} ({} of {}); sent to review (needs_review) {}; best guess right {}",
            pct(self.accuracy()),
            self.right(),
            self.total,
            self.needs_review,
            pct(self.best_right as f64 / self.total.max(1) as f64)
        )?;
        writeln!(
            f,
            "{:<12} {:>9} {:>7} {:>6}",
            "category", "precision", "recall", "items"
        )?;
        for (k, c) in CATEGORIES.iter().enumerate() {
            writeln!(
                f,
                "{:<12} {:>9} {:>7} {:>6}",
                c.as_str(),
                pct(self.precision(k)),
                pct(self.recall(k)),
                self.matrix[k].iter().sum::<usize>()
            )?;
        }
        writeln!(
            f,
            "confusion matrix (rows: true category; columns: decided)"
        )?;
        write!(f, "{:<12}", "")?;
        for c in CATEGORIES {
            write!(f, " {:>10}", c.as_str())?;
        }
        writeln!(f, " {:>12}", "unclassified")?;
        for (k, c) in CATEGORIES.iter().enumerate() {
            write!(f, "{:<12}", c.as_str())?;
            for v in &self.matrix[k][..4] {
                write!(f, " {v:>10}")?;
            }
            writeln!(f, " {:>12}", self.matrix[k][4])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_formats_and_bad_lines() {
        let tsv = "# comment\nrights\t拖欠工资\n\npolicy\t标题\t怎么办理\r\n";
        let items = parse_corpus("c.tsv", tsv, false).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[1].title.as_str(), items[1].line), ("标题", 4));
        let jsonl =
            r#"{"category":"historical","title":"t","content":"c","channel":"letter","other":1}"#;
        let items = parse_corpus("c.jsonl", jsonl, true).unwrap();
        assert_eq!(items[0].channel, Channel::Letter);
        let bad = "rights\nnope\t文字\nrights\t\t\nrights\ta\tb\tc\n";
        let errs = parse_corpus("bad.tsv", bad, false).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 4, "{text:?}");
        assert!(text[0].starts_with("bad.tsv:1: ") && text[0].contains("found 1 column"));
        assert!(text[1].starts_with("bad.tsv:2: ") && text[1].contains("`nope`"));
        assert!(text[2].starts_with("bad.tsv:3: ") && text[2].contains("empty text"));
        assert!(text[3].starts_with("bad.tsv:4: ") && text[3].contains("found 4 column"));
        let e = parse_corpus("x.jsonl", "{not json", true).unwrap_err();
        assert!(e[0].to_string().starts_with("x.jsonl:1: "), "{:?}", e);
    }

    #[test]
    fn report_counts_precision_recall_and_the_matrix() {
        let mut r = Report::default();
        let d = |c: Option<Category>, review: bool| Decided {
            category: c,
            best: c.or(Some(Category::Policy)),
            needs_review: review,
            opinion: super::super::model::decide(
                &super::super::classify::Scores::default(),
                None,
                None,
                0.5,
            ),
        };
        r.add(Category::Rights, &d(Some(Category::Rights), false), 1, true);
        r.add(Category::Rights, &d(Some(Category::Policy), false), 2, true);
        r.add(Category::Policy, &d(None, true), 3, true);
        r.add(Category::Policy, &d(Some(Category::Policy), false), 4, true);
        assert_eq!(r.right(), 2);
        assert_eq!(r.accuracy(), 0.5);
        assert_eq!(r.recall(1), 0.5);
        assert_eq!(r.precision(2), 0.5);
        assert_eq!(r.matrix[2][4], 1, "review is the unclassified column");
        assert_eq!(r.needs_review, 1);
        assert_eq!(r.misses.len(), 2);
        let shown = r.to_string();
        assert!(shown.contains("accuracy 50.0% (2 of 4)"), "{shown}");
        assert!(shown.contains("unclassified"), "{shown}");
    }
}
