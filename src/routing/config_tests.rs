//! `[routing.completeness]`, `[routing.repeat]` and the classifier keys, through the whole
//! config (file, line and key path of each error).

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

mod classifier {
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
