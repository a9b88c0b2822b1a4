//! Tests of classification: normalisation, keyword matching against a naive search, the
//! dictionaries and their validation.

use super::*;

#[test]
fn normalizes_width_case_script_and_spaces() {
    let cases = [
        ("拖欠工资３个月", "拖欠工资3个月"),
        ("ＡＢＣ１２３，（注）", "abc123,(注)"),
        ("拆遷補償款", "拆迁补偿款"),
        ("十餘年來長期未解決", "十余年来长期未解决"),
        ("醫保報銷", "医保报销"),
        ("拖欠\n工资", "拖欠工资"),
        ("拖欠　 工资", "拖欠工资"),
        ("Open311  API", "open311 api"),
        ("费用 300 元", "费用 300 元"),
        ("  前后空白  ", "前后空白"),
        ("零\u{200B}宽", "零宽"),
    ];
    for (input, want) in cases {
        assert_eq!(normalize(input), want, "{input}");
    }
}

#[test]
fn fold_table_is_idempotent_and_consistent() {
    let mut seen: HashMap<char, char> = HashMap::new();
    for pair in TRAD_SIMP.split_whitespace() {
        let cs: Vec<char> = pair.chars().collect();
        assert_eq!(cs.len(), 2, "malformed pair {pair:?}");
        assert_ne!(cs[0], cs[1], "identity pair {pair:?}");
        if let Some(prev) = seen.insert(cs[0], cs[1]) {
            assert_eq!(prev, cs[1], "{} maps to both {prev} and {}", cs[0], cs[1]);
        }
    }
    for (&t, &s) in &seen {
        assert_eq!(fold(s), s, "{t}→{s}, but {s} folds again");
        assert_eq!(fold(t), s);
    }
}

/// The encoded automaton finds a keyword exactly when the normalised text contains it, on
/// random text mixing keyword characters, other characters, traditional and full-width
/// forms, whitespace, zero-width characters and a character outside the BMP.
#[test]
fn encoding_matches_exactly_the_normalised_substrings() {
    let keywords = [
        "拖欠工资",
        "工资",
        "欠",
        "拆迁",
        "open 311",
        "abc",
        "a",
        "𠀀甲",
        "1号楼",
        "补偿款",
    ];
    let norm: Vec<String> = keywords.iter().map(|k| normalize(k)).collect();
    let matcher = Matcher::new(&norm, &[4, norm.len()]).unwrap();
    let pieces = [
        "拖",
        "欠",
        "工",
        "资",
        "拆",
        "遷",
        "迁",
        "補",
        "偿",
        "款",
        "的",
        "。",
        " ",
        "\n",
        "\u{3000}",
        "\u{200B}",
        "Open",
        "ＯＰＥＮ",
        " ",
        "311",
        "３１１",
        "a",
        "Ａ",
        "b",
        "c",
        "x",
        "𠀀",
        "甲",
        "1",
        "１",
        "号",
        "號",
        "楼",
        "樓",
        "!",
        "！",
    ];
    let mut seed: u64 = 0x1234_5678_9abc_def0;
    for _ in 0..20_000 {
        let (mut title, mut text) = (String::new(), String::new());
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = 1 + (seed % 12) as usize;
        let in_title = (seed >> 40) as usize % 4;
        let mut s2 = seed;
        for j in 0..n {
            s2 = s2
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let piece = pieces[(s2 >> 33) as usize % pieces.len()];
            if j < in_title { &mut title } else { &mut text }.push_str(piece);
        }
        let normalized = normalized_item_text(&title, &text);
        let mut found = vec![0usize; keywords.len()];
        matcher.find(&title, &text, |p, _, _| found[p as usize] += 1);
        for (i, k) in norm.iter().enumerate() {
            // Every occurrence, overlapping ones included, exactly once.
            let occurrences = (0..normalized.len())
                .filter(|&b| {
                    normalized.is_char_boundary(b) && normalized[b..].starts_with(k.as_str())
                })
                .count();
            assert_eq!(
                found[i], occurrences,
                "keyword {k:?} in {title:?} / {text:?} (normalised {normalized:?})"
            );
        }
    }
}

#[test]
fn shipped_dictionaries_load_cleanly_and_classify() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("config/dictionaries");
    let (d, warnings) = Dictionaries::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    let files: Vec<Category> = d.entries().iter().map(|e| e.category).collect();
    for c in CATEGORIES {
        assert!(files.contains(&c), "no {} keywords", c.as_str());
    }
    let c = Classifier::new(d).unwrap();
    let cases = [
        ("關於拆遷補償", "补偿款一直沒有到位", Some(Category::Rights)),
        ("", "请问失业金如何申请？", Some(Category::Policy)),
        ("", "医保报销比例太低", Some(Category::Livelihood)),
        ("", "十多年前的问题至今未解决", Some(Category::Historical)),
        ("", "你好", None),
    ];
    for (title, content, want) in cases {
        assert_eq!(c.classify(title, content, None).category, want, "{content}");
    }
    let missing = Dictionaries::load_dir(&dir.join("nope")).unwrap_err();
    assert!(
        missing.errors[0].message.starts_with("cannot read"),
        "{missing}"
    );
}

fn dicts(files: &[(&str, &str)]) -> Result<(Dictionaries, Vec<ConfigError>), Diagnostics> {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    Dictionaries::parse(&files)
}

const RIGHTS: &str = r#"
category = "rights"
[service_codes]
"LD01" = 5
[keywords]
"拖欠工资" = 4
"医疗纠纷" = 4
"拆迁" = 3
"#;
const LIVELIHOOD: &str = r#"
category = "livelihood"
[keywords]
"医疗" = 2
"社保" = 3
"#;

#[test]
fn scores_keywords_once_and_longest_wins() {
    let (d, w) = dicts(&[("r.toml", RIGHTS), ("l.toml", LIVELIHOOD)]).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let c = Classifier::new(d).unwrap();
    let r = c.classify("医疗纠纷", "医院医疗纠纷，医疗费用；社保", None);
    // 医疗 inside 医疗纠纷 does not count; the free-standing 医疗 does.
    assert_eq!(r.scores.get(Category::Rights), 4);
    assert_eq!(r.scores.get(Category::Livelihood), 5);
    assert_eq!(r.category, Some(Category::Livelihood));
    let r = c.classify("", "拖欠工资拖欠工资", None);
    assert_eq!(r.scores.get(Category::Rights), 4);
    assert_eq!(r.hits.len(), 1);
}

#[test]
fn ties_and_nothing_are_unclassified() {
    let (d, _) = dicts(&[("r.toml", RIGHTS), ("l.toml", LIVELIHOOD)]).unwrap();
    let c = Classifier::new(d).unwrap();
    let r = c.classify("", "拆迁，社保", None);
    assert_eq!((r.category, r.tie), (None, true));
    let r = c.classify("", "你好", None);
    assert_eq!((r.category, r.tie), (None, false));
    // The service code breaks the tie.
    let r = c.classify("", "拆迁，社保", Some("ld01"));
    assert_eq!(r.category, Some(Category::Rights));
    assert_eq!(r.scores.get(Category::Rights), 8);
}

#[test]
fn dictionary_errors_name_file_line_and_key() {
    let bad = "category = \"rights\"\n[keywords]\n\"拆迁\" = 0\n\"拆遷\" = 2\n\"\" = 1\n";
    let e = dicts(&[("bad.toml", bad), ("x.toml", "category = \"nope\"\n")]).unwrap_err();
    let text: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("bad.toml:3: keywords.拆迁: weight")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.starts_with("bad.toml:5: ") && t.contains("empty")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t.starts_with("x.toml:1: category")),
        "{text:?}"
    );
    let unknown = dicts(&[("u.toml", "category = \"rights\"\nweights = 1\n")]).unwrap_err();
    assert_eq!(unknown.errors[0].line, Some(2), "{:?}", unknown.errors);
}

#[test]
fn same_keyword_after_normalisation_is_an_error_across_categories_a_warning() {
    let a = "category = \"rights\"\n[keywords]\n\"拆迁\" = 2\n\"拆遷\" = 2\n";
    let e = dicts(&[("a.toml", a)]).unwrap_err();
    assert!(e.errors[0].message.contains("same keyword"), "{e:?}");
    let b = "category = \"historical\"\n[keywords]\n\"拆遷\" = 2\n";
    let (_, w) = dicts(&[("r.toml", RIGHTS), ("b.toml", b)]).unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].file, "b.toml");
    assert_eq!(w[0].line, Some(3));
}

#[test]
fn a_service_code_mapped_twice_is_an_error_naming_the_first_mapping() {
    let a = "category = \"rights\"\n[keywords]\n\"欠薪\" = 2\n[service_codes]\n\"W-1\" = 3\n";
    let b = "category = \"policy\"\n[keywords]\n\"政策\" = 2\n[service_codes]\n\"w-1\" = 2\n\"P\" = 0\n";
    let e = dicts(&[("a.toml", a), ("b.toml", b)]).unwrap_err();
    // In key order: `P` sorts before `w-1`.
    let text: Vec<String> = e.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        text,
        [
            "b.toml:6: service_codes.P: weight must be between 1 and 100",
            "b.toml:5: service_codes.w-1: service code `w-1` is already mapped to rights in a.toml:5",
        ]
    );
}
