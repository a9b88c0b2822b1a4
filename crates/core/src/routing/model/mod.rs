//! The statistical second opinion on an item's category, and how it is combined with the
//! keyword dictionaries into one decision with a source, a confidence and two candidates.
//!
//! Owns the model (a multinomial logistic regression over hashed character unigrams and
//! bigrams of the normalised text), its file format, its training (deterministic), and
//! [`decide`]: dictionaries + model → category, [`Source`], confidence, the top two
//! candidates and `needs_review`. It does not own the dictionaries (`routing::classify`) nor
//! the rules (`routing::rules`, which call [`decide`] before trying rules and record a rule's
//! explicit category as source `rule`). Pure: no I/O except [`Model::load`].
//!
//! **Features.** The title and the content are normalised character by character exactly as
//! the dictionaries see them (`classify::fold`: half-width, lower case, simplified, zero-width
//! and whitespace dropped), and every character and every pair of adjacent characters is
//! hashed into one of 2^`bits` buckets. Word segmentation (jieba-rs words + character
//! bigrams) was measured against this and not kept: 3.7 times slower to featurise, a
//! 100-150 ms dictionary load, and no more accurate on the held-back corpus (96.5% against
//! 97.2%; BENCHMARKS.md, `cargo bench --bench classify`). A feature's value is its count divided by
//! the square root of the item's feature count, so a two-line call note and a two-page letter
//! weigh alike.
//!
//! **Combination.** Each category's logit is the model's logit plus `dict_weight` times its
//! dictionary score (`Dictionaries::score`: the weights of the keywords found); the
//! probabilities are their softmax. The keyword weights therefore count as evidence in
//! log-odds, one operator-visible number per keyword; `dict_weight` is fitted by the training
//! command on out-of-fold predictions. The top category is the decision when its probability
//! reaches `routing.review_threshold`; otherwise the item is *unsure*: it starts the rules
//! unclassified (the shipped `unclassified` rule sends it to the intake desk) and carries
//! `needs_review`. An item without any keyword or mapped service code has only the model's
//! word: it must reach halfway from the threshold to 1 (0.75 for 0.5). Without a model file,
//! the confidence is the top category's share of the dictionary score (a keyword of one
//! category only: 1.0; a tie: unsure, as before).
//!
//! **Source**: `rule` when a rule set the category (confidence 1), `dictionary` when the
//! dictionaries alone would have chosen the same category (they had a unique top score), else
//! `model`.
//!
//! **File format** (`config/model/classifier.bin`, written by `petitiond rules train`): the
//! magic `PTDCLS01`, a little-endian u32 length and a JSON header ([`Header`]), a u32 count,
//! then for every non-zero bucket a LEB128 delta of its index and four signed bytes (the
//! weights of the four categories, in units of `scale`). About 50 KB; loads in 0.1 ms. The rules version hashes the file, so every decision names the model it used.
//!
//! Personal data: the model holds hashed n-gram weights learnt from the corpus, never text;
//! a decision carries categories and numbers only.

// Arithmetic over the four categories reads clearest with the category index.
#![allow(clippy::needless_range_loop)]

use super::classify::{CATEGORIES, Scores, category_index, fold_table, fold_with};
use crate::envelope::Category;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;

/// What decided an item's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A rule's `then.category`.
    Rule,
    /// The keyword dictionaries (the model, if any, agreed or was outweighed).
    Dictionary,
    /// The model, where the dictionaries had no unique answer or were outweighed.
    Model,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rule => "rule",
            Source::Dictionary => "dictionary",
            Source::Model => "model",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The classifier's decision before the rules run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opinion {
    /// The category the rules start from; `None`: no evidence, or unsure.
    pub category: Option<Category>,
    /// `None` only when there is no evidence at all (no keyword and no model).
    pub source: Option<Source>,
    /// Probability (or, without a model, dictionary share) of the top candidate.
    pub confidence: f32,
    /// The two most likely categories, best first, with their probabilities (`None` when
    /// fewer categories have any evidence).
    pub candidates: [Option<(Category, f32)>; 2],
    /// There are candidates, but the top one is below the review threshold (or tied).
    pub needs_review: bool,
    /// The model's own probabilities, before the dictionaries are added (for `explain`).
    pub model: Option<[f32; 4]>,
}

impl Opinion {
    /// The two candidates that exist, best first.
    pub fn candidates(&self) -> impl Iterator<Item = (Category, f32)> + '_ {
        self.candidates.iter().flatten().copied()
    }
}

impl fmt::Display for Opinion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.category, self.source) {
            (Some(c), Some(s)) => write!(
                f,
                "{} by {s}, confidence {:.2}",
                c.as_str(),
                self.confidence
            )?,
            (None, Some(_)) => write!(f, "unsure (confidence {:.2})", self.confidence)?,
            _ => f.write_str("no evidence")?,
        }
        let mut first = true;
        for (c, p) in self.candidates() {
            f.write_str(if first { "; candidates " } else { ", " })?;
            first = false;
            write!(f, "{} {p:.2}", c.as_str())?;
        }
        if self.needs_review {
            f.write_str("; needs_review")?;
        }
        if let Some(m) = &self.model {
            f.write_str("; model alone:")?;
            for (c, p) in CATEGORIES.iter().zip(m) {
                write!(f, " {} {p:.2}", c.as_str())?;
            }
        }
        Ok(())
    }
}

/// Decides the starting category from the dictionary scores (`dict_best` is the dictionaries'
/// unique top category, if any) and the model's logits, if there is a model.
pub fn decide(
    scores: &Scores,
    dict_best: Option<Category>,
    model: Option<(&Model, [f32; 4])>,
    threshold: f32,
) -> Opinion {
    let (probs, model_probs) = match model {
        Some((m, logits)) => {
            let mut z = [0f32; 4];
            for k in 0..4 {
                z[k] = logits[k] + m.header.dict_weight * scores.0[k] as f32;
            }
            (softmax(z), Some(softmax(logits)))
        }
        None => {
            let total: u32 = scores.0.iter().sum();
            if total == 0 {
                return Opinion {
                    category: None,
                    source: None,
                    confidence: 0.0,
                    candidates: [None, None],
                    needs_review: false,
                    model: None,
                };
            }
            let mut p = [0f32; 4];
            for k in 0..4 {
                p[k] = scores.0[k] as f32 / total as f32;
            }
            (p, None)
        }
    };
    // Best first; on equal probabilities the fixed category order decides, as everywhere.
    let mut order = [0usize, 1, 2, 3];
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let cand = |i: usize| {
        let k = order[i];
        (probs[k] > 0.0).then_some((CATEGORIES[k], probs[k]))
    };
    let candidates = [cand(0), cand(1)];
    let (top, p) = (CATEGORIES[order[0]], probs[order[0]]);
    let tie = probs[order[1]] == p;
    // With no keyword and no service code the model is the only evidence: it must be surer,
    // halfway from the threshold to certainty (0.75 for 0.5). A short plea without a subject
    // ("请领导为我做主") then goes to a person rather than to whichever desk its wording
    // resembles.
    let alone = scores.0.iter().all(|&s| s == 0);
    let needed = if alone && model_probs.is_some() {
        (1.0 + threshold) / 2.0
    } else {
        threshold
    };
    let unsure = tie || p < needed;
    let source = if dict_best == Some(top) {
        Source::Dictionary
    } else if model_probs.is_some() {
        Source::Model
    } else {
        Source::Dictionary
    };
    Opinion {
        category: (!unsure).then_some(top),
        source: Some(source),
        confidence: p,
        candidates,
        needs_review: unsure,
        model: model_probs,
    }
}

fn softmax(z: [f32; 4]) -> [f32; 4] {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut e = [0f32; 4];
    let mut sum = 0.0;
    for k in 0..4 {
        e[k] = (z[k] - max).exp();
        sum += e[k];
    }
    for v in &mut e {
        *v /= sum;
    }
    e
}

// ---------------------------------------------------------------------------------------------
// Features

/// Hash keys of a text's features: every character and every adjacent pair, of the title and
/// then the content (a pair never spans the two).
/// At most this many characters of an item are read (title first): a petition states its
/// matter at the start, and the cost of a long scanned letter's text stays bounded. The
/// dictionaries and rules still read everything.
pub const MAX_CHARS: usize = 256;

#[inline]
pub fn features(title: &str, content: &str, mut f: impl FnMut(u64)) {
    let table = fold_table();
    let mut left = MAX_CHARS;
    for text in [title, content] {
        let mut prev = 0u64;
        for c in text.chars() {
            let c = fold_with(table, c);
            // No CJK character is whitespace: test only below U+3001.
            if c == '\0' || ((c as u32) < 0x3001 && c.is_whitespace()) {
                continue;
            }
            if left == 0 {
                return;
            }
            left -= 1;
            let c = c as u64;
            f(c | UNIGRAM);
            f((prev << 32) | c | BIGRAM);
            prev = c;
        }
    }
}

const UNIGRAM: u64 = 1 << 62;
const BIGRAM: u64 = 2 << 62;

/// The bucket of a feature key in a table of 2^(64 - `shift`) buckets.
#[inline(always)]
pub fn bucket(key: u64, shift: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

/// An item's features as (bucket, value) with values count / sqrt(total), sorted by bucket.
pub fn vector(title: &str, content: &str, bits: u32) -> Vec<(u32, f32)> {
    let shift = 64 - bits;
    let mut raw: Vec<u32> = Vec::new();
    features(title, content, |k| raw.push(bucket(k, shift) as u32));
    counts_to_vector(raw)
}

/// Bucket occurrences → (bucket, count / sqrt(occurrences)), sorted by bucket.
pub fn counts_to_vector(mut raw: Vec<u32>) -> Vec<(u32, f32)> {
    let n = raw.len();
    raw.sort_unstable();
    let norm = if n == 0 { 0.0 } else { 1.0 / (n as f32).sqrt() };
    let mut out: Vec<(u32, f32)> = Vec::new();
    for b in raw {
        match out.last_mut() {
            Some((last, v)) if *last == b => *v += norm,
            _ => out.push((b, norm)),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The model and its file

const MAGIC: &[u8; 8] = b"PTDCLS01";
/// Smallest and largest table the file may ask for.
const MIN_BITS: u32 = 8;
const MAX_BITS: u32 = 22;

/// The file's JSON header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// File format version: 1.
    pub format: u32,
    /// log2 of the number of buckets.
    pub bits: u32,
    /// The categories in the order of the weights (must be the four, in `CATEGORIES` order).
    pub categories: Vec<String>,
    /// The weight unit: a stored weight w means w × scale.
    pub scale: f32,
    pub bias: [f32; 4],
    /// Log-odds added per dictionary score point.
    pub dict_weight: f32,
    /// How the model was made (corpus, examples, options, cross-validated accuracy): for
    /// people, not read.
    #[serde(default)]
    pub info: serde_json::Map<String, serde_json::Value>,
}

/// A loaded model: dense bucket table of i8 weights.
#[derive(Clone)]
pub struct Model {
    pub header: Header,
    shift: u32,
    table: Box<[[i8; 4]]>,
    /// Short hash of the file's bytes (part of the rules version).
    digest: String,
    nonzero: usize,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Model({} of {} buckets, {})",
            self.nonzero,
            self.table.len(),
            self.digest
        )
    }
}

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ModelError {
    pub file: String,
    pub message: String,
}

fn leb128(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

impl Model {
    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ModelError {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        Model::parse(&file, &bytes)
    }

    /// Parses a model file's bytes; every error names the file and what is wrong.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Model, ModelError> {
        let err = |m: String| ModelError {
            file: file.to_string(),
            message: m,
        };
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(err(
                "not a petitiond classifier model (magic PTDCLS01 missing); write one with \
                 `petitiond rules train`"
                    .into(),
            ));
        }
        let hlen = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        let body = 12usize
            .checked_add(hlen)
            .filter(|&e| e + 4 <= bytes.len())
            .ok_or_else(|| {
                err(format!(
                    "header length {hlen} runs past the end of the file"
                ))
            })?;
        let header: Header =
            serde_json::from_slice(&bytes[12..body]).map_err(|e| err(format!("header: {e}")))?;
        if header.format != 1 {
            return Err(err(format!(
                "format {} is not supported (this petitiond reads format 1)",
                header.format
            )));
        }
        if !(MIN_BITS..=MAX_BITS).contains(&header.bits) {
            return Err(err(format!(
                "bits {} is outside {MIN_BITS}..={MAX_BITS}",
                header.bits
            )));
        }
        let want: Vec<&str> = CATEGORIES.iter().map(|c| c.as_str()).collect();
        if header.categories != want {
            return Err(err(format!(
                "categories {:?}: expected {want:?}",
                header.categories
            )));
        }
        let finite = header.scale.is_finite()
            && header.scale > 0.0
            && header.dict_weight.is_finite()
            && header.dict_weight >= 0.0
            && header.bias.iter().all(|b| b.is_finite());
        if !finite {
            return Err(err(
                "scale must be > 0, dict_weight >= 0, and all numbers finite".into(),
            ));
        }
        let count = u32::from_le_bytes(bytes[body..body + 4].try_into().expect("4 bytes")) as usize;
        let size = 1usize << header.bits;
        if count > size {
            return Err(err(format!(
                "{count} entries for a table of {size} buckets"
            )));
        }
        let mut table = vec![[0i8; 4]; size].into_boxed_slice();
        let mut at = body + 4;
        let mut index = 0u64;
        for i in 0..count {
            let delta = leb128(bytes, &mut at)
                .ok_or_else(|| err(format!("entry {i}: truncated bucket index")))?;
            index = if i == 0 { delta } else { index + delta };
            if (i > 0 && delta == 0) || index >= size as u64 {
                return Err(err(format!(
                    "entry {i}: bucket {index} is repeated or outside the table"
                )));
            }
            let w = bytes
                .get(at..at + 4)
                .ok_or_else(|| err(format!("entry {i}: truncated weights")))?;
            at += 4;
            table[index as usize] = [w[0] as i8, w[1] as i8, w[2] as i8, w[3] as i8];
        }
        if at != bytes.len() {
            return Err(err(format!(
                "{} trailing bytes after {count} entries",
                bytes.len() - at
            )));
        }
        Ok(Model {
            shift: 64 - header.bits,
            header,
            table,
            digest: hex::encode(&Sha256::digest(bytes)[..6]),
            nonzero: count,
        })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("a header serialises");
        let mut out = Vec::with_capacity(header.len() + 16 + self.nonzero * 6);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        let entries: Vec<(usize, &[i8; 4])> = self
            .table
            .iter()
            .enumerate()
            .filter(|(_, w)| **w != [0; 4])
            .collect();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        let mut prev = 0usize;
        for (i, (index, w)) in entries.into_iter().enumerate() {
            let mut delta = (if i == 0 { index } else { index - prev }) as u64;
            prev = index;
            loop {
                let b = (delta & 0x7F) as u8;
                delta >>= 7;
                if delta == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
            out.extend(w.iter().map(|&x| x as u8));
        }
        out
    }

    /// Short hash of the file (what the rules version includes).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Buckets with a weight.
    pub fn nonzero(&self) -> usize {
        self.nonzero
    }

    /// Bytes of the bucket table in memory.
    pub fn table_bytes(&self) -> usize {
        self.table.len() * 4
    }

    /// The model's logits for an item (one pass over its characters).
    pub fn logits(&self, title: &str, content: &str) -> [f32; 4] {
        let mut acc = [0i32; 4];
        let mut n = 0u32;
        let (table, shift) = (&*self.table, self.shift);
        features(title, content, |k| {
            // The table has 2^bits entries and the bucket has `bits` bits: in bounds.
            let w = table[bucket(k, shift)];
            for j in 0..4 {
                acc[j] += i32::from(w[j]);
            }
            n += 1;
        });
        let norm = if n == 0 {
            0.0
        } else {
            self.header.scale / (n as f32).sqrt()
        };
        let mut z = self.header.bias;
        for j in 0..4 {
            z[j] += acc[j] as f32 * norm;
        }
        z
    }
}

#[cfg(test)]
mod tests;
mod train;

pub use train::*;
