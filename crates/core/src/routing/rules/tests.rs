//! Tests of the rules engine: parsing, validation, lint, evaluation (fast, traced and naive
//! agree), operator cases, and the shipped rules.

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
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
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

/// The shipped rules, dictionaries and model, with the shipped review threshold.
fn shipped() -> RuleSet {
    let r = root();
    let model = Model::load(&r.join("config/model/classifier.bin"))
        .unwrap_or_else(|e| panic!("shipped model: {e}"));
    match RuleSet::load(
        &r.join("config/rules.toml"),
        &r.join("config/dictionaries"),
        &departments(),
    ) {
        Ok((rs, warnings)) => {
            let rs = rs.with_model(Some(model), SHIPPED_REVIEW_THRESHOLD);
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

/// `routing.review_threshold` in config/petitiond.toml (a config test checks they agree).
pub(crate) const SHIPPED_REVIEW_THRESHOLD: f32 = 0.5;

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
    let report =
        run_cases(&rs, &root().join("config/rules-cases.toml")).unwrap_or_else(|e| panic!("{e:?}"));
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
    let text = std::fs::read_to_string(root().join("tests/fixtures/routing/corpus.toml")).unwrap();
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

fn corpus_file(name: &str) -> Vec<crate::routing::eval::Labelled> {
    crate::routing::eval::read_corpus(&root().join("corpus/classification").join(name))
        .unwrap_or_else(|e| panic!("{e:?}"))
}

/// Issue 20's floor, on the held-back part of the corpus (never trained on): accuracy at
/// least 90% and no category under 80% recall, items sent to review counting as misses.
/// `petitiond rules eval --config config/petitiond.toml corpus/classification/heldback.tsv`
/// prints the same figures.
#[test]
fn held_back_corpus_meets_the_floor() {
    let rs = shipped();
    for (file, floor) in [("heldback.tsv", 0.90), ("hotline40.tsv", 0.90)] {
        let items = corpus_file(file);
        let r = crate::routing::eval::evaluate(&rs, &items, false);
        assert!(r.accuracy() >= floor, "{file}:\n{r}");
        for k in 0..4 {
            assert!(r.recall(k) >= 0.80, "{file}: category {k}\n{r}");
        }
    }
}

/// The split is the documented one (corpus/README.md): every row on the side the SHA-256
/// rule puts it (train-extra.tsv is training-only by definition), no text twice, and no
/// text sharing a 15-character run with the routing fixtures or the rule cases.
#[test]
fn corpus_split_is_the_documented_hash_split() {
    use sha2::{Digest, Sha256};
    let mut seen = HashSet::new();
    let fixtures = [
        std::fs::read_to_string(root().join("tests/fixtures/routing/corpus.toml")).unwrap(),
        std::fs::read_to_string(root().join("config/rules-cases.toml")).unwrap(),
    ]
    .concat();
    let mut runs = HashSet::new();
    let chars: Vec<char> = fixtures.chars().collect();
    for w in chars.windows(15) {
        runs.insert(w.iter().collect::<String>());
    }
    for (file, held) in [
        ("train.tsv", Some(false)),
        ("heldback.tsv", Some(true)),
        ("train-extra.tsv", None),
        ("hotline40.tsv", None),
    ] {
        let items = corpus_file(file);
        assert!(!items.is_empty(), "{file}");
        for it in items {
            let text = it.content.clone();
            if let Some(held) = held {
                let h = Sha256::digest(text.as_bytes())[0];
                assert_eq!(h < 64, held, "{file}:{} is on the wrong side", it.line);
            }
            assert!(
                seen.insert(text.clone()),
                "{file}:{}: text appears twice",
                it.line
            );
            let c: Vec<char> = text.chars().collect();
            for w in c.windows(15) {
                let run: String = w.iter().collect();
                assert!(
                    !runs.contains(&run),
                    "{file}:{}: shares `{run}` with a fixture",
                    it.line
                );
            }
        }
    }
    let train = corpus_file("train.tsv").len() + corpus_file("train-extra.tsv").len();
    let held = corpus_file("heldback.tsv").len();
    assert!(held * 5 >= (train + held), "held-back is at least 20%");
    for c in crate::routing::classify::CATEGORIES {
        let n = ["train.tsv", "heldback.tsv"]
            .iter()
            .flat_map(|f| corpus_file(f))
            .filter(|i| i.category == c)
            .count();
        assert!(n >= 250, "{}: {n}", c.as_str());
    }
}

/// `explain` (the trace) and the decision record show source, confidence and candidates.
#[test]
fn trace_and_decision_show_source_confidence_and_candidates() {
    let rs = shipped();
    let (o, trace) = rs.evaluate(&item("老板三个月不给我们发工资，电话也不接。"));
    let text = format!("{trace}");
    assert!(text.contains("decision: rights by "), "{text}");
    assert!(text.contains("confidence"), "{text}");
    assert!(text.contains("candidates rights"), "{text}");
    let d = o.category_decision().unwrap();
    assert_eq!(d.candidates.len(), 2);
    assert_eq!(d.candidates[0].category, Category::Rights);
    assert!(d.confidence >= 0.5 && d.confidence <= 1.0, "{d:?}");
    assert!(!d.needs_review);
    // A rule's category: source rule, confidence 1.
    let (o, _) = rs.evaluate(&item("2012年拆迁，8年来补偿款一直没有落实。"));
    assert_eq!(o.source(), Some(Source::Rule));
    assert_eq!(o.category_decision().unwrap().confidence, 1.0);
    // Unsure: unclassified, needs_review, two candidates shown.
    let (o, trace) = rs.evaluate(&item("拆迁后家里的低保资格被取消了。"));
    assert!(o.needs_review() && o.category.is_none(), "{trace}");
    let d = o.category_decision().unwrap();
    assert!(d.needs_review && d.candidates.len() == 2, "{d:?}");
    assert!(format!("{trace}").contains("needs_review"), "{trace}");
    // Same outcome on the fast, traced and naive paths, model included.
    for t in [
        "拆迁后家里的低保资格被取消了。",
        "请问公积金可以提取吗？",
        "你好",
    ] {
        let i = item(t);
        assert_eq!(rs.decide(&i), rs.evaluate(&i).0);
        assert_eq!(rs.decide(&i), rs.decide_naive(&i));
    }
}

#[test]
fn model_and_threshold_are_part_of_the_version() {
    let rs = shipped();
    let plain = ok(DEFAULT);
    let v0 = plain.version().to_string();
    let m = rs.model().unwrap().clone();
    let a = plain.clone().with_model(Some(m.clone()), 0.5);
    let b = plain.clone().with_model(Some(m), 0.6);
    let c = plain.with_model(None, 0.5);
    let vs = [
        v0,
        a.version().into(),
        b.version().into(),
        c.version().into(),
    ];
    let distinct: HashSet<&String> = vs.iter().collect();
    assert_eq!(distinct.len(), 4, "{vs:?}");
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
        joined.contains("rules.toml:5: rule[0].then.continue: the default rule must not continue"),
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

#[test]
fn shipped_review_threshold_is_the_shipped_configs() {
    let text = std::fs::read_to_string(root().join("config/petitiond.toml")).unwrap();
    let doc: toml_edit::DocumentMut = text.parse().unwrap();
    let shipped = doc["routing"]["review_threshold"].as_float().unwrap();
    assert_eq!(shipped as f32, SHIPPED_REVIEW_THRESHOLD);
}
