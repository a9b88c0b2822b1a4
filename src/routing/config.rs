//! The routing section's two checks: `[routing.completeness]` (incomplete items are flagged
//! `needs_supplement` and go to the intake desk) and `[routing.repeat]` (the same petitioner
//! on the same matter within a period: linked, and flagged `repeat_petition` the third time).
//!
//! Owns `[routing]` in both stages: the raw serde shape ([`RawRouting`]), the validated
//! [`RoutingConfig`] and its checks, beside the router that uses them; the daemon's `config`
//! calls [`completeness`], [`repeat`] and [`rules_files`] and checks what crosses sections
//! (department ids, the rules against the SLA clocks). The checks themselves are
//! `routing::completeness` and `routing::repeat`.

use petitiond_core::diag::{RawSecretRef, Secret, Validator};
use petitiond_core::envelope::{Category, Channel};
use petitiond_core::routing::completeness::{Completeness, ContactField, Fact};
use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;

// ---- raw shape ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCompleteness {
    pub enabled: bool,
    /// Channels whose items are checked; letters are judged by the clerk who registers them.
    pub channels: Vec<String>,
    /// Petitioner fields of which at least one must be present for the item to have a contact.
    pub contact_any: Vec<String>,
    /// A mobile number written in the title or content also counts as a contact.
    pub contact_in_text: bool,
    /// Fewer characters of content (trimmed) than this: `missing:content`.
    pub min_content_chars: usize,
    pub facts: Vec<RawFact>,
}

impl Default for RawCompleteness {
    fn default() -> Self {
        Self {
            enabled: true,
            channels: vec!["hotline".into(), "portal".into()],
            contact_any: vec!["phone".into(), "address".into()],
            contact_in_text: true,
            min_content_chars: 10,
            facts: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFact {
    pub name: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub keywords_any: Vec<String>,
    #[serde(default)]
    pub regex_any: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRepeat {
    pub enabled: bool,
    /// The HMAC key; absent: a random key generated once into the data dir.
    pub key: Option<RawSecretRef>,
    pub window_days: u32,
    /// The n-th item of one person on one matter within the window is flagged.
    pub flag_at: u32,
    /// Channels whose title and content are searched for an ID number or mobile when the
    /// petitioner fields give none.
    pub from_text: Vec<String>,
}

impl Default for RawRepeat {
    fn default() -> Self {
        Self {
            enabled: true,
            key: None,
            window_days: 180,
            flag_at: 3,
            from_text: vec!["letter".into(), "portal".into()],
        }
    }
}

// ---- validated ------------------------------------------------------------------------------

/// The shortest key accepted from config, in bytes (HMAC-SHA256 wants 32 bytes of entropy).
pub const MIN_KEY_BYTES: usize = 32;

/// `[routing.repeat]`, validated.
#[derive(Debug, Clone)]
pub struct RepeatConfig {
    /// The HMAC key from config; `None`: generated into `data_dir/repeat-petition.key`.
    pub key: Option<Secret>,
    pub window_days: u32,
    pub flag_at: u32,
    pub from_text: Vec<Channel>,
}

fn channels(v: &mut Validator<'_>, path: &str, names: &[String]) -> Vec<Channel> {
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match serde_json::from_value(serde_json::Value::String(n.clone())) {
            Ok(c) => out.push(c),
            Err(_) => v.err(
                &format!("{path}[{i}]"),
                format!("`{n}` is not one of hotline, portal, letter"),
            ),
        }
    }
    out
}

pub fn completeness(v: &mut Validator<'_>, c: &RawCompleteness) -> Option<Completeness> {
    const AT: &str = "routing.completeness";
    let channels = channels(v, &format!("{AT}.channels"), &c.channels);
    let mut contact_any = Vec::new();
    for (i, f) in c.contact_any.iter().enumerate() {
        match ContactField::parse(f) {
            Some(f) => contact_any.push(f),
            None => v.err(
                &format!("{AT}.contact_any[{i}]"),
                format!("`{f}` is not one of name, id_number, phone, address"),
            ),
        }
    }
    if c.contact_any.is_empty() && !c.contact_in_text {
        v.err(
            &format!("{AT}.contact_any"),
            "name at least one petitioner field (phone, address, ...) or set contact_in_text",
        );
    }
    let mut names = HashSet::new();
    let mut facts = Vec::new();
    for (i, f) in c.facts.iter().enumerate() {
        let at = |k: &str| format!("{AT}.facts[{i}].{k}");
        let name_ok = !f.name.is_empty()
            && f.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c));
        if !name_ok {
            v.err(
                &at("name"),
                format!(
                    "`{}` must be a-z 0-9 - _ (it becomes the flag `missing:<name>`)",
                    f.name
                ),
            );
        } else if matches!(f.name.as_str(), "contact" | "content") || !names.insert(&f.name) {
            v.err(&at("name"), format!("duplicate fact name `{}`", f.name));
        }
        let mut categories = Vec::new();
        for (j, ca) in f.categories.iter().enumerate() {
            match serde_json::from_value::<Category>(serde_json::Value::String(ca.clone())) {
                Ok(v) => categories.push(v),
                Err(_) => v.err(
                    &format!("{}[{j}]", at("categories")),
                    format!("`{ca}` is not one of livelihood, rights, policy, historical"),
                ),
            }
        }
        if f.keywords_any.is_empty() && f.regex_any.is_empty() {
            v.err(
                &format!("{AT}.facts[{i}]"),
                "a fact needs `keywords_any` or `regex_any`: what shows it is present",
            );
        }
        let mut keywords = Vec::new();
        for (j, k) in f.keywords_any.iter().enumerate() {
            let n = petitiond_core::routing::classify::normalize(k);
            if n.is_empty() {
                v.err(&format!("{}[{j}]", at("keywords_any")), "empty keyword");
            } else {
                keywords.push(n);
            }
        }
        let mut regexes = Vec::new();
        for (j, r) in f.regex_any.iter().enumerate() {
            match regex::Regex::new(r) {
                Ok(re) => regexes.push(re),
                Err(e) => v.err(
                    &format!("{}[{j}]", at("regex_any")),
                    format!("invalid regex: {e}"),
                ),
            }
        }
        for (j, t) in f.tags.iter().enumerate() {
            if t.trim().is_empty() {
                v.err(&format!("{}[{j}]", at("tags")), "empty tag");
            }
        }
        facts.push(Fact {
            name: f.name.clone(),
            categories,
            tags: f.tags.clone(),
            keywords,
            regexes,
        });
    }
    c.enabled.then_some(Completeness {
        channels,
        contact_any,
        contact_in_text: c.contact_in_text,
        min_content_chars: c.min_content_chars,
        facts,
    })
}

pub fn repeat(v: &mut Validator<'_>, r: &RawRepeat) -> Option<RepeatConfig> {
    const AT: &str = "routing.repeat";
    v.positive(&format!("{AT}.window_days"), u64::from(r.window_days));
    if r.flag_at < 2 {
        v.err(
            &format!("{AT}.flag_at"),
            "must be at least 2 (the first item of a matter is never a repeat)",
        );
    }
    let max = petitiond_core::envelope::MAX_RELATED_ITEMS as u32 + 1;
    if r.flag_at > max {
        v.err(
            &format!("{AT}.flag_at"),
            format!(
                "must be at most {max} (an item is linked to at most {} earlier ones)",
                max - 1
            ),
        );
    }
    let from_text = channels(v, &format!("{AT}.from_text"), &r.from_text);
    if !r.enabled {
        return None;
    }
    let key = r.key.as_ref().and_then(|k| {
        let s = v.secret(&format!("{AT}.key"), k)?;
        if s.expose().len() < MIN_KEY_BYTES {
            v.err(
                &format!("{AT}.key"),
                format!(
                    "the key has {} bytes; use at least {MIN_KEY_BYTES} random bytes (e.g. `openssl rand -hex 32`)",
                    s.expose().len()
                ),
            );
            return None;
        }
        Some(s)
    });
    Some(RepeatConfig {
        key,
        window_days: r.window_days,
        flag_at: r.flag_at,
        from_text,
    })
}

// ---- the section --------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub default_lead: String,
    /// Operator rules (config/rules.toml); absent = every item to `default_lead`.
    pub rules_file: Option<String>,
    /// Keyword dictionaries for classification (every *.toml in it).
    pub dictionaries_dir: Option<String>,
    /// How often the rules files are checked for changes (SIGHUP reloads at once).
    #[serde(default = "default_reload_ms")]
    pub reload_interval_ms: u64,
    /// Where incomplete items go; absent = `default_lead`.
    pub intake_desk: Option<String>,
    /// Classifier model (written by `petitiond rules train`); absent = dictionaries only.
    pub model_file: Option<String>,
    /// Classification confidence below which an item is flagged `needs_review` (0..1).
    #[serde(default = "default_review_threshold")]
    pub review_threshold: f64,
    #[serde(default)]
    pub completeness: RawCompleteness,
    #[serde(default)]
    pub repeat: RawRepeat,
}

fn default_reload_ms() -> u64 {
    2000
}

fn default_review_threshold() -> f64 {
    0.5
}

#[derive(Debug, Clone)]
pub struct RoutingConfig {
    pub default_lead: String,
    /// Rules file and dictionaries directory; `None`: every item to `default_lead`.
    pub rules: Option<petitiond_core::routing::RulesFiles>,
    pub reload_interval: Duration,
    /// Where incomplete items go (`routing.intake_desk`, default `default_lead`).
    pub intake_desk: String,
    /// The incomplete-item check; `None`: disabled.
    pub completeness: Option<petitiond_core::routing::completeness::Completeness>,
    /// Repeat-petition linking; `None`: disabled.
    pub repeat: Option<RepeatConfig>,
}

/// The routing rules' files (paths resolved) and the review threshold.
pub fn rules_files(
    v: &mut Validator<'_>,
    r: &RawRouting,
) -> Option<petitiond_core::routing::RulesFiles> {
    let rules = r
        .rules_file
        .as_ref()
        .map(|f| petitiond_core::routing::RulesFiles {
            rules_file: v.path(f),
            dictionaries_dir: v.path(r.dictionaries_dir.as_deref().unwrap_or("dictionaries")),
            model_file: r.model_file.as_deref().map(|m| v.path(m)),
            review_threshold: r.review_threshold as f32,
        });
    if !(0.0..=1.0).contains(&r.review_threshold) {
        v.err(
            "routing.review_threshold",
            "must be between 0 and 1 (a probability)",
        );
    }
    rules
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
