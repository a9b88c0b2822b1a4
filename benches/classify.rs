//! Classification alone: items/s/core of the shipped dictionaries + model on the corpus texts
//! (target ≥ 50,000), against the dictionaries alone in the same run; and the measurement
//! behind the choice of features: character unigrams + bigrams against jieba-rs word
//! segmentation (words + character bigrams), trained the same way on the training part and
//! scored on the held-back part, with the cost of making the features of one item.
//!
//! ```text
//! cargo bench --bench classify
//! ```
//!
//! Run without `--bench` (as `cargo test --benches` does) it is a short smoke test.

use petitiond::routing::classify::{Classifier, Dictionaries, category_index};
use petitiond::routing::eval::{Labelled, read_corpus};
use petitiond::routing::model::{self, Example, Model, TrainOptions};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

/// Items per second of `f` over the items, fastest of five rounds of `secs / 5`.
fn rate(items: &[Labelled], secs: f64, mut f: impl FnMut(&Labelled) -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let budget = Duration::from_secs_f64(secs / 5.0);
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < budget {
            for it in items {
                black_box(f(it));
                n += 1;
            }
        }
        best = best.min(start.elapsed().as_nanos() as f64 / n as f64);
    }
    1e9 / best
}

/// jieba's words and the text's character bigrams, hashed into the model's buckets.
fn word_vector(jieba: &jieba_rs::Jieba, it: &Labelled, bits: u32) -> Vec<(u32, f32)> {
    let shift = 64 - bits;
    let mut raw = Vec::new();
    for text in [&it.title, &it.content] {
        let norm = petitiond::routing::classify::normalize(text);
        for w in jieba.cut(&norm, true) {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in w.word.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            raw.push(model::bucket(h | (3 << 62), shift) as u32);
        }
        model::features("", &norm, |k| {
            if k >> 62 == 2 {
                raw.push(model::bucket(k, shift) as u32);
            }
        });
    }
    model::counts_to_vector(raw)
}

/// A test item: its features, its dictionary scores, its category index.
type TestItem = (Vec<(u32, f32)>, [u32; 4], usize);

fn accuracy(w: &model::Weights, beta: f32, test: &[TestItem]) -> f64 {
    let right = test
        .iter()
        .filter(|(x, s, y)| {
            let mut z = w.logits(x);
            for k in 0..4 {
                z[k] += beta * s[k] as f32;
            }
            let best = (0..4).max_by(|&a, &b| z[a].total_cmp(&z[b])).unwrap_or(0);
            best == *y
        })
        .count();
    right as f64 / test.len().max(1) as f64
}

fn main() {
    let smoke = std::env::args().all(|a| a != "--bench");
    let secs = if smoke { 0.05 } else { 2.0 };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus =
        |f: &str| read_corpus(&root.join("corpus/classification").join(f)).expect("corpus");
    let (train, held) = (corpus("train.tsv"), corpus("heldback.tsv"));
    let (dicts, _) = Dictionaries::load_dir(&root.join("config/dictionaries")).expect("dicts");
    let classifier = Classifier::new(dicts).expect("classifier");
    let shipped = Model::load(&root.join("config/model/classifier.bin")).expect("model");
    let avg = held.iter().map(|i| i.content.len()).sum::<usize>() / held.len();
    println!(
        "classify bench: {} held-back texts (avg {avg} bytes), single thread",
        held.len()
    );

    // 1. Throughput of the shipped classification, dictionaries alone in the same run.
    let dict_only = rate(&held, secs, |it| {
        classifier
            .classify(&it.title, &it.content, None)
            .scores
            .0
            .iter()
            .sum::<u32>() as usize
    });
    let with_model = rate(&held, secs, |it| {
        let c = classifier.classify(&it.title, &it.content, None);
        let z = shipped.logits(&it.title, &it.content);
        let o = model::decide(&c.scores, c.category, Some((&shipped, z)), 0.6);
        o.category.map_or(0, category_index)
    });
    println!("  dictionaries alone              {dict_only:>10.0} items/s");
    println!("  dictionaries + model            {with_model:>10.0} items/s");
    let verdict = if with_model >= 50_000.0 {
        "met"
    } else {
        "NOT met"
    };
    println!("  target ≥ 50,000 items/s/core: {verdict}");

    // 2. Characters against words: same trainer, same options, same dictionary weight.
    let o = TrainOptions::default();
    let beta = o.dict_weight.unwrap_or(1.0);
    let t0 = Instant::now();
    let jieba = jieba_rs::Jieba::new();
    let jieba_load = t0.elapsed();
    let scores = |it: &Labelled| classifier.classify(&it.title, &it.content, None).scores.0;
    let chars = |it: &Labelled| model::vector(&it.title, &it.content, o.bits);
    let words = |it: &Labelled| word_vector(&jieba, it, o.bits);
    for (name, feats) in [
        (
            "characters (unigrams + bigrams)",
            &chars as &dyn Fn(&Labelled) -> Vec<(u32, f32)>,
        ),
        ("jieba words + character bigrams", &words),
    ] {
        let examples: Vec<Example> = train
            .iter()
            .map(|it| Example {
                label: category_index(it.category),
                features: feats(it),
                scores: scores(it),
            })
            .collect();
        let refs: Vec<&Example> = examples.iter().collect();
        let w = model::train_weights(&refs, &o, beta);
        let test: Vec<_> = held
            .iter()
            .map(|it| (feats(it), scores(it), category_index(it.category)))
            .collect();
        let acc = accuracy(&w, beta, &test);
        let speed = rate(&held, secs, |it| feats(it).len());
        println!(
            "  {name:<34} held-back accuracy {:.1}%  features {speed:>9.0} items/s",
            acc * 100.0
        );
    }
    println!(
        "  (jieba's dictionary loads in {:.0} ms)",
        jieba_load.as_secs_f64() * 1e3
    );
}
