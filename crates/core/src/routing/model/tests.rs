//! Tests of the classifier model: features, the file format, training and the shipped model.

use super::*;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples() -> Vec<Example> {
    let texts = [
        (0, "暖气不热，室温太低"),
        (0, "公交线路取消了，出行不便"),
        (1, "老板拖欠工资三个月"),
        (1, "培训机构跑路，学费不退"),
        (2, "请问公积金可以提取吗"),
        (2, "退休手续怎么办理，需要什么材料"),
        (3, "九十年代企业改制，至今没有解决"),
        (3, "2012年交房至今没有房产证"),
    ];
    texts
        .iter()
        .map(|(label, t)| Example {
            label: *label,
            features: vector("", t, 12),
            scores: [0; 4],
        })
        .collect()
}

fn small() -> TrainOptions {
    TrainOptions {
        bits: 12,
        folds: 2,
        ..Default::default()
    }
}

#[test]
fn training_is_deterministic_and_the_file_round_trips() {
    let (a, _) = train(&examples(), &small(), serde_json::Map::new());
    let (b, _) = train(&examples(), &small(), serde_json::Map::new());
    assert_eq!(a.to_bytes(), b.to_bytes(), "same examples, same bytes");
    let bytes = a.to_bytes();
    let back = Model::parse("m.bin", &bytes).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.digest(), a.digest());
    assert_eq!(back.header, a.header);
    let z1 = a.logits("", "老板拖欠工资");
    assert_eq!(z1, back.logits("", "老板拖欠工资"));
    // It learnt something: its own examples come back right.
    for (label, t) in [(1usize, "老板拖欠工资三个月"), (2, "请问公积金可以提取吗")]
    {
        let z = back.logits("", t);
        assert_eq!(argmax(&z), label, "{t}: {z:?}");
    }
}

/// Every way a model file can be wrong is an error naming the file and the fault, never a
/// panic or a model that silently misreads.
#[test]
fn bad_model_files_are_refused_with_the_reason() {
    let (m, _) = train(&examples(), &small(), serde_json::Map::new());
    let good = m.to_bytes();
    let hlen = u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;
    let with_header = |h: &str| {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&(h.len() as u32).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b
    };
    let header = serde_json::to_string(&m.header).unwrap();
    let mut trailing = good.clone();
    trailing.push(0);
    let mut count_too_big = good.clone();
    count_too_big[12 + hlen..16 + hlen].copy_from_slice(&u32::MAX.to_le_bytes());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not a model".to_vec(), "magic"),
        (good[..good.len() - 2].to_vec(), "truncated"),
        (trailing, "trailing bytes"),
        (count_too_big, "entries for a table"),
        (with_header("{}"), "header"),
        (
            with_header(&header.replace("\"format\":1", "\"format\":2")),
            "format 2",
        ),
        (
            with_header(&header.replace("\"bits\":12", "\"bits\":40")),
            "bits 40",
        ),
        (
            with_header(&header.replace("\"livelihood\"", "\"other\"")),
            "categories",
        ),
        (
            with_header(&header.replace("\"format\":1", "\"format\":1,\"extra\":true")),
            "unknown field",
        ),
    ];
    for (bytes, why) in cases {
        let e = Model::parse("m.bin", &bytes).unwrap_err();
        assert!(e.to_string().starts_with("m.bin: "), "{e}");
        assert!(e.message.contains(why), "{why}: {e}");
    }
    let missing = Model::load(Path::new("/nonexistent/m.bin")).unwrap_err();
    assert!(missing.message.starts_with("cannot read"), "{missing}");
}

/// Source, confidence, candidates and review, each way they can come out.
#[test]
fn decide_names_source_confidence_and_candidates() {
    let (m, _) = train(&examples(), &small(), serde_json::Map::new());
    // Dictionaries only: the top share; a tie is unsure; nothing is no evidence.
    let o = decide(&Scores([6, 2, 0, 0]), Some(Category::Livelihood), None, 0.5);
    assert_eq!(o.category, Some(Category::Livelihood));
    assert_eq!(o.source, Some(Source::Dictionary));
    assert_eq!(o.confidence, 0.75);
    assert_eq!(
        o.candidates,
        [
            Some((Category::Livelihood, 0.75)),
            Some((Category::Rights, 0.25))
        ]
    );
    assert!(!o.needs_review);
    let tie = decide(&Scores([3, 3, 0, 0]), None, None, 0.5);
    assert_eq!((tie.category, tie.needs_review), (None, true));
    let none = decide(&Scores::default(), None, None, 0.5);
    assert_eq!(
        (none.category, none.source, none.needs_review),
        (None, None, false)
    );
    assert_eq!(none.candidates, [None, None]);
    // With the model: its answer where the dictionaries have none ...
    let z = m.logits("", "老板拖欠工资三个月");
    let o = decide(
        &Scores([0, 4, 0, 0]),
        Some(Category::Rights),
        Some((&m, z)),
        0.5,
    );
    assert_eq!(
        o.source,
        Some(Source::Dictionary),
        "the dictionaries agreed"
    );
    let o = decide(&Scores([0, 0, 0, 0]), None, Some((&m, z)), 0.0);
    assert_eq!(o.category, Some(Category::Rights));
    assert_eq!(o.source, Some(Source::Model));
    assert!(o.model.is_some());
    // ... a threshold above its confidence makes it unsure ...
    let sure = decide(&Scores([0, 0, 0, 0]), None, Some((&m, z)), 0.0).confidence;
    let o = decide(&Scores([0, 0, 0, 0]), None, Some((&m, z)), sure + 0.01);
    assert_eq!((o.category, o.needs_review), (None, true));
    assert!(o.candidates[0].is_some() && o.candidates[1].is_some());
    // ... and without any keyword it must reach halfway to 1.
    let zv = m.logits("", "你好");
    let vague = decide(&Scores([0, 0, 0, 0]), None, Some((&m, zv)), 0.0);
    assert!(vague.confidence < 0.9, "{vague}");
    let t = vague.confidence - 0.01;
    let top = vague.candidates[0].unwrap().0;
    let mut one = Scores::default();
    one.0[category_index(top)] = 1;
    let with_kw = decide(&one, Some(top), Some((&m, zv)), t);
    let alone = decide(&Scores([0, 0, 0, 0]), None, Some((&m, zv)), t);
    assert_eq!(with_kw.category, Some(top), "{with_kw}");
    assert!(alone.needs_review && alone.category.is_none(), "{alone}");
    // Strong dictionary evidence outweighs the model.
    let o = decide(
        &Scores([0, 0, 0, 30]),
        Some(Category::Historical),
        Some((&m, z)),
        0.5,
    );
    assert_eq!(o.category, Some(Category::Historical));
    assert_eq!(o.source, Some(Source::Dictionary));
}

#[test]
fn the_model_reads_at_most_max_chars() {
    let long = "暖".repeat(MAX_CHARS * 3);
    let mut n = 0;
    features("标题", &long, |_| n += 1);
    assert_eq!(n, 2 * MAX_CHARS);
    let mut short = 0;
    features("", "暖气 不热\u{200B}", |_| short += 1);
    assert_eq!(
        short,
        2 * 4,
        "whitespace and zero-width characters are not features"
    );
}

/// The shipped model is exactly what the documented command makes from the corpus:
/// `petitiond rules train --dictionaries config/dictionaries --corpus
/// corpus/classification/train.tsv --corpus corpus/classification/train-extra.tsv --out
/// config/model/classifier.bin`.
#[test]
fn shipped_model_is_reproducible_from_the_corpus() {
    let r = root();
    let (dicts, _) =
        super::super::classify::Dictionaries::load_dir(&r.join("config/dictionaries")).unwrap();
    let c = super::super::classify::Classifier::new(dicts).unwrap();
    let o = TrainOptions::default();
    let mut examples = Vec::new();
    for f in ["train.tsv", "train-extra.tsv"] {
        let items =
            super::super::eval::read_corpus(&r.join("corpus/classification").join(f)).unwrap();
        for it in items {
            examples.push(Example {
                label: category_index(it.category),
                features: vector(&it.title, &it.content, o.bits),
                scores: c.classify(&it.title, &it.content, None).scores.0,
            });
        }
    }
    let mut info = serde_json::Map::new();
    info.insert("corpus".into(), "train.tsv, train-extra.tsv".into());
    info.insert(
        "dictionaries".into(),
        super::super::classify::dictionaries_version(c.dictionaries()).into(),
    );
    let (m, _) = train(&examples, &o, info);
    let shipped = std::fs::read(r.join("config/model/classifier.bin")).unwrap();
    assert!(
        m.to_bytes() == shipped,
        "config/model/classifier.bin is not what `petitiond rules train` makes from the \
             corpus and dictionaries: retrain it (command in this test's doc)"
    );
}

#[test]
fn quantising_maps_the_largest_weight_to_127_and_folds_the_temperature_into_unit_and_bias() {
    let w = Weights {
        bits: 1,
        w: vec![[0.5, -1.27, 0.0, 0.01], [0.0; 4]],
        bias: [1.0, 2.0, -3.0, 0.0],
    };
    let (table, unit, bias) = quantise(&w, 0.5);
    assert_eq!(&*table, &[[50, -127, 0, 1], [0; 4]]);
    assert!((unit - 0.005).abs() < 1e-7, "{unit}");
    assert_eq!(bias, [0.5, 1.0, -1.5, 0.0]);
    // All-zero weights keep a unit of 1 (times the temperature), not a division by zero.
    let zero = Weights {
        bits: 1,
        w: vec![[0.0; 4]; 2],
        bias: [0.0; 4],
    };
    let (table, unit, _) = quantise(&zero, 0.3);
    assert_eq!(&*table, &[[0; 4]; 2]);
    assert_eq!(unit, 0.3);
}

#[test]
fn the_temperature_is_the_softest_factor_with_the_lowest_loss() {
    // Logits already right and confident: the full factor (1.0) has the lowest loss.
    let sure: Vec<Oof> = (0..4).map(|y| (one_hot(y, 4.0), [0; 4], y)).collect();
    assert_eq!(fit_temper(&sure, 1.0), (1.0, 1.0));
    // Confidently wrong half the time: softening lowers the loss.
    let mut mixed = sure.clone();
    mixed.extend((0..4).map(|y| (one_hot((y + 1) % 4, 4.0), [0; 4], y)));
    let (temper, accuracy) = fit_temper(&mixed, 1.0);
    assert!(temper < 1.0, "{temper}");
    assert_eq!(accuracy, 0.5);
}

fn one_hot(k: usize, v: f32) -> [f32; 4] {
    let mut z = [0.0; 4];
    z[k] = v;
    z
}
