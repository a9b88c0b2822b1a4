//! The routing section's two checks: `[routing.completeness]` (incomplete items are flagged
//! `needs_supplement` and go to the intake desk) and `[routing.repeat]` (the same petitioner
//! on the same matter within a period: linked, and flagged `repeat_petition` the third time).
//!
//! The raw serde shape and the validation live together here so `config::validate` only calls
//! [`Validator::completeness`] and [`Validator::repeat`]. The checks themselves are
//! `routing::completeness` and `routing::repeat`.

use super::raw::RawSecretRef;
use super::{Secret, Validator};
use petitiond_core::envelope::{Category, Channel};
use petitiond_core::routing::completeness::{Completeness, ContactField, Fact};
use serde::Deserialize;
use std::collections::HashSet;

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

pub(super) fn completeness(v: &mut Validator<'_>, c: &RawCompleteness) -> Option<Completeness> {
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

pub(super) fn repeat(v: &mut Validator<'_>, r: &RawRepeat) -> Option<RepeatConfig> {
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

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use petitiond_core::envelope::Channel;
    use petitiond_core::routing::completeness::ContactField;
    use std::path::Path;

    const BASE: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"

[[departments]]
id = "intake-desk"
name = "接待科"
topic = "t.intake"

[[departments]]
id = "reception"
name = "来访接待"
topic = "t.reception"
"#;

    fn parse(routing: &str) -> Result<Config, Vec<ConfigError>> {
        Config::parse(&format!("{BASE}\n{routing}"), "t.toml", Path::new("/cfg")).map_err(|e| e.0)
    }

    #[test]
    fn defaults_check_hotline_and_portal_and_link_repeats() {
        let c = parse("[routing]\ndefault_lead = \"intake-desk\"\n").unwrap();
        assert_eq!(
            c.routing.intake_desk, "intake-desk",
            "defaults to default_lead"
        );
        let comp = c.routing.completeness.as_ref().expect("enabled by default");
        assert_eq!(comp.channels, [Channel::Hotline, Channel::Portal]);
        assert_eq!(
            comp.contact_any,
            [ContactField::Phone, ContactField::Address]
        );
        assert_eq!(comp.min_content_chars, 10);
        assert!(comp.facts.is_empty());
        let rep = c.routing.repeat.as_ref().expect("enabled by default");
        assert!(rep.key.is_none(), "generated into the data dir");
        assert_eq!((rep.window_days, rep.flag_at), (180, 3));
        assert_eq!(rep.from_text, [Channel::Letter, Channel::Portal]);
    }

    #[test]
    fn the_shipped_config_checks_wage_arrears_facts() {
        use petitiond_core::envelope::{Envelope, Personal, Request, Upstream};
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/petitiond.toml");
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let comp = c.routing.completeness.as_ref().unwrap();
        let rep = c.routing.repeat.as_ref().unwrap();
        assert_eq!((rep.window_days, rep.flag_at), (180, 3));
        let facts: Vec<&str> = comp.facts.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(facts, ["employer", "amount"]);
        let item = |content: &str| {
            let mut e = Envelope::new(
                Channel::Hotline,
                Upstream::default(),
                jiff::Timestamp::UNIX_EPOCH,
                Request {
                    title: None,
                    content: Personal::new(content),
                },
            );
            e.petitioner.phone = Some(Personal::new("13800138000"));
            e
        };
        let tags = ["wage-arrears"];
        // The hotline fixture's text (tests/fixtures/http/hotline-order.json).
        let fixture = "本人在某建筑公司务工，公司拖欠工资三个月共计两万余元，多次讨要无果。";
        let cases = [
            (fixture, vec![]),
            ("在工地干活被拖欠工资３５００元，请帮忙", vec![]),
            (
                "拖欠工资三个月了，一直不给，请帮忙",
                vec!["employer", "amount"],
            ),
            ("某某公司拖欠工资三个月了，请帮忙", vec!["amount"]),
        ];
        for (text, want) in cases {
            let rights = Some(petitiond_core::envelope::Category::Rights);
            assert_eq!(comp.missing(&item(text), rights, &tags), want, "{text}");
        }
        // Other items are not asked for wage facts.
        assert!(
            comp.missing(&item("小区路灯坏了两个星期了"), None, &[])
                .is_empty()
        );
    }

    #[test]
    fn sections_can_be_disabled_and_the_desk_named() {
        let c = parse(
            "[routing]\ndefault_lead = \"intake-desk\"\nintake_desk = \"reception\"\n\n[routing.completeness]\nenabled = false\n\n[routing.repeat]\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(c.routing.intake_desk, "reception");
        assert!(c.routing.completeness.is_none());
        assert!(c.routing.repeat.is_none());
    }

    #[test]
    fn facts_compile_with_normalised_keywords() {
        let c = parse(
            r#"[routing]
default_lead = "intake-desk"

[[routing.completeness.facts]]
name = "employer"
tags = ["wage-arrears"]
keywords_any = ["公司", "ＡＢ厂"]

[[routing.completeness.facts]]
name = "amount"
categories = ["rights"]
regex_any = ['\d+元']
"#,
        )
        .unwrap();
        let facts = &c.routing.completeness.as_ref().unwrap().facts;
        assert_eq!(facts.len(), 2);
        assert_eq!(facts[0].keywords, ["公司", "ab厂"]);
        assert_eq!(
            facts[1].categories,
            [petitiond_core::envelope::Category::Rights]
        );
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let errs = parse(
            r#"[routing]
default_lead = "intake-desk"
intake_desk = "front-desk"

[routing.completeness]
channels = ["hotline", "fax"]
contact_any = ["phone", "email"]

[[routing.completeness.facts]]
name = "Employer!"
keywords_any = ["公司"]

[[routing.completeness.facts]]
name = "amount"
categories = ["money"]
regex_any = ['(\d+元']

[[routing.completeness.facts]]
name = "amount"

[routing.repeat]
window_days = 0
flag_at = 1
from_text = ["letter", "mail"]
key = { env = "PETITIOND_TEST_REPEAT_KEY_THAT_IS_NOT_SET" }
"#,
        )
        .unwrap_err();
        // Lines counted from the `[routing]` line of the snippet (BASE comes first).
        let base = BASE.matches('\n').count() + 1;
        let got: Vec<(Option<usize>, &str)> = errs
            .iter()
            .map(|e| (e.line.map(|l| l - base), e.path.as_str()))
            .collect();
        let want: Vec<(Option<usize>, &str)> = vec![
            (Some(3), "routing.intake_desk"),
            (Some(6), "routing.completeness.channels[1]"),
            (Some(7), "routing.completeness.contact_any[1]"),
            (Some(10), "routing.completeness.facts[0].name"),
            (Some(15), "routing.completeness.facts[1].categories[0]"),
            (Some(16), "routing.completeness.facts[1].regex_any[0]"),
            (Some(18), "routing.completeness.facts[2]"),
            (Some(19), "routing.completeness.facts[2].name"),
            (Some(22), "routing.repeat.window_days"),
            (Some(23), "routing.repeat.flag_at"),
            (Some(24), "routing.repeat.from_text[1]"),
            (Some(25), "routing.repeat.key"),
        ];
        assert_eq!(got, want, "{errs:#?}");
    }

    #[test]
    fn a_short_key_is_refused_and_a_key_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, "secret\n").unwrap();
        let long = dir.path().join("long.key");
        std::fs::write(&long, format!("{}\n", "ab".repeat(32))).unwrap();
        let text = |f: &Path| {
            format!(
                "{BASE}\n[routing]\ndefault_lead = \"intake-desk\"\n\n[routing.repeat]\nkey = {{ file = \"{}\" }}\n",
                f.display()
            )
        };
        let errs = Config::parse(&text(&short), "t.toml", dir.path())
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].message.contains("at least 32"), "{}", errs[0]);
        assert!(!errs[0].message.contains("secret"), "never echo the key");
        let c = Config::parse(&text(&long), "t.toml", dir.path()).unwrap();
        let key = c.routing.repeat.unwrap().key.unwrap();
        assert_eq!(
            key.expose(),
            "ab".repeat(32),
            "the trailing newline is not part of it"
        );
    }
}

#[cfg(test)]
mod classifier_tests {
    use crate::config::Config;
    use std::path::Path;

    const BASE: &str = "[kafka]\nbrokers = \"127.0.0.1:9092\"\n\n[[departments]]\nid = \"intake-desk\"\nname = \"d\"\ntopic = \"t.desk\"\n";

    #[test]
    fn review_threshold_is_a_probability_and_a_bad_model_file_is_named() {
        let parse = |routing: &str| {
            Config::parse(&format!("{BASE}\n{routing}"), "t.toml", Path::new("/cfg"))
                .map_err(|e| e.0)
        };
        let e = parse("[routing]\ndefault_lead = \"intake-desk\"\nreview_threshold = 1.5\n")
            .unwrap_err();
        assert!(
            e.iter()
                .any(|e| e.path == "routing.review_threshold" && e.line == Some(11)),
            "{e:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.toml"),
            "[[rule]]\nid = \"default\"\nthen.lead = \"intake-desk\"\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("dictionaries")).unwrap();
        std::fs::write(dir.path().join("bad.bin"), b"garbage").unwrap();
        let text = format!(
            "{BASE}\n[routing]\ndefault_lead = \"intake-desk\"\nrules_file = \"rules.toml\"\nmodel_file = \"bad.bin\"\n"
        );
        let e = Config::parse(&text, "t.toml", dir.path())
            .map_err(|e| e.0)
            .unwrap_err();
        assert!(
            e.iter().any(|e| e.path == "routing.model_file"
                && e.file.ends_with("bad.bin")
                && e.message.contains("magic")),
            "{e:?}"
        );
    }

    /// The shipped config's threshold is the one the routing tests use.
    #[test]
    fn shipped_review_threshold_matches_the_tests() {
        let c = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/petitiond.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let r = c.routing.rules.as_ref().unwrap();
        // The rules' tests use the same threshold (checked there against this file).
        assert_eq!(r.review_threshold, 0.5);
        assert!(
            r.model_file
                .as_ref()
                .is_some_and(|m| m.ends_with("model/classifier.bin"))
        );
    }
}
