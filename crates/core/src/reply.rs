//! Reply quality (DOMAIN.md §6): a department's reply (`replied` status event,
//! `payload.reply`) must contain four elements — facts found (事实认定), policy basis
//! (政策依据), result (处理结果), remedy route (救济途径) — and no vague phrase such as
//! 正在协调 or 尽快处理. [`ReplyChecker::check`] says which elements are missing and which
//! banned phrases were found; the status consumer bounces a reply that fails.
//!
//! Matching is by phrase: each element has a configurable list (`[replies]`), any one of which
//! shows the element is present. Text and phrases are normalised alike by
//! [`crate::routing::classify::normalize`] (full-width → half-width, traditional → simplified,
//! whitespace between Chinese characters dropped, ASCII lower case), then one Aho-Corasick
//! automaton finds every phrase, overlapping. This is a screen, not a judge: it catches the
//! replies that plainly lack an element or hedge, and the phrase lists are the office's to tune.
//!
//! Also the evaluation words of an `evaluated` event ([`Satisfaction`]).
//!
//! Personal data: a [`ReplyCheck`] carries element names and the configured phrases found,
//! never text from the reply.

use crate::routing::classify::normalize;
use aho_corasick::{AhoCorasick, MatchKind};

/// The four elements a reply must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Element {
    /// 事实认定: what was found.
    Facts,
    /// 政策依据: the law or policy applied.
    Policy,
    /// 处理结果: what was decided or done.
    Result,
    /// 救济途径: where the petitioner can go if not satisfied.
    Remedy,
}

impl Element {
    pub const ALL: [Element; 4] = [
        Element::Facts,
        Element::Policy,
        Element::Result,
        Element::Remedy,
    ];

    /// The config key and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Element::Facts => "facts",
            Element::Policy => "policy",
            Element::Result => "result",
            Element::Remedy => "remedy",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Element::Facts => "事实认定",
            Element::Policy => "政策依据",
            Element::Result => "处理结果",
            Element::Remedy => "救济途径",
        }
    }

    pub fn parse(s: &str) -> Option<Element> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplyCheck {
    /// The event carried no reply text (or only whitespace): every element is missing.
    pub no_text: bool,
    /// Elements none of whose phrases occur, in [`Element::ALL`] order.
    pub missing: Vec<Element>,
    /// Banned phrases found, as configured, in configuration order.
    pub banned: Vec<String>,
}

impl ReplyCheck {
    pub fn passed(&self) -> bool {
        !self.no_text && self.missing.is_empty() && self.banned.is_empty()
    }

    /// The verdict recorded in `status_events.verdict`: `ok` or `bounced`.
    pub fn verdict(&self) -> &'static str {
        if self.passed() { "ok" } else { "bounced" }
    }
}

/// The compiled phrase lists.
#[derive(Debug, Clone)]
pub struct ReplyChecker {
    /// `false`: replies are not checked (applied as they come, no verdict).
    pub enabled: bool,
    /// Phrases per element, as configured (for the record).
    pub phrases: Vec<(Element, Vec<String>)>,
    pub banned: Vec<String>,
    automaton: AhoCorasick,
    /// Pattern id → what it stands for.
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, Copy)]
enum Pattern {
    Element(Element),
    Banned(usize),
}

impl ReplyChecker {
    /// Compiles the lists. Phrases that normalise to nothing are left out (config validation
    /// reports them).
    pub fn new(
        enabled: bool,
        phrases: Vec<(Element, Vec<String>)>,
        banned: Vec<String>,
    ) -> Result<ReplyChecker, aho_corasick::BuildError> {
        let mut texts = Vec::new();
        let mut patterns = Vec::new();
        for (e, list) in &phrases {
            for p in list {
                let n = normalize(p);
                if !n.is_empty() {
                    texts.push(n);
                    patterns.push(Pattern::Element(*e));
                }
            }
        }
        for (i, p) in banned.iter().enumerate() {
            let n = normalize(p);
            if !n.is_empty() {
                texts.push(n);
                patterns.push(Pattern::Banned(i));
            }
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&texts)?;
        Ok(ReplyChecker {
            enabled,
            phrases,
            banned,
            automaton,
            patterns,
        })
    }

    /// The shipped lists ([`defaults`]).
    pub fn default_lists() -> ReplyChecker {
        let d = defaults();
        ReplyChecker::new(true, d.elements, d.banned).expect("the default phrases compile")
    }

    /// Checks a reply; `None` or blank text fails with `no_text`.
    pub fn check(&self, reply: Option<&str>) -> ReplyCheck {
        let text = reply.map(normalize).unwrap_or_default();
        if text.is_empty() {
            return ReplyCheck {
                no_text: true,
                missing: Element::ALL.to_vec(),
                banned: Vec::new(),
            };
        }
        let mut present = [false; 4];
        let mut banned = vec![false; self.banned.len()];
        for m in self.automaton.find_overlapping_iter(&text) {
            match self.patterns[m.pattern().as_usize()] {
                Pattern::Element(e) => present[e as usize] = true,
                Pattern::Banned(i) => banned[i] = true,
            }
        }
        ReplyCheck {
            no_text: false,
            missing: Element::ALL
                .into_iter()
                .filter(|e| !present[*e as usize])
                .collect(),
            banned: self
                .banned
                .iter()
                .zip(banned)
                .filter(|(_, hit)| *hit)
                .map(|(p, _)| p.clone())
                .collect(),
        }
    }
}

/// The shipped phrase lists (also written out, commented, in `config/petitiond.toml`).
pub struct Lists {
    pub elements: Vec<(Element, Vec<String>)>,
    pub banned: Vec<String>,
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The default phrase lists: the wording of government reply letters (答复意见书) that marks
/// each element, and the hedges the office does not accept.
pub fn defaults() -> Lists {
    Lists {
        elements: vec![
            (
                Element::Facts,
                owned(&[
                    "经调查",
                    "经核实",
                    "经核查",
                    "经查",
                    "经了解",
                    "经走访",
                    "调查核实",
                    "现场核查",
                    "现场查看",
                    "现场勘查",
                    "核查发现",
                    "调查发现",
                    "查明",
                    "事实认定",
                ]),
            ),
            (
                Element::Policy,
                owned(&[
                    "《",
                    "有关规定",
                    "相关规定",
                    "之规定",
                    "的规定",
                    "政策规定",
                    "文件规定",
                    "政策依据",
                    "法律依据",
                    "文件精神",
                ]),
            ),
            (
                Element::Result,
                owned(&[
                    "处理结果",
                    "处理意见",
                    "现已",
                    "已责令",
                    "已督促",
                    "已发放",
                    "已支付",
                    "已补发",
                    "已补缴",
                    "已办理",
                    "已完成",
                    "已整改",
                    "已拆除",
                    "已修复",
                    "决定",
                    "予以",
                    "不予",
                    "办结",
                ]),
            ),
            (
                Element::Remedy,
                owned(&[
                    "如对本",
                    "如对此",
                    "如对上述",
                    "如不服",
                    "如有异议",
                    "不服的",
                    "请求复查",
                    "申请复查",
                    "申请复核",
                    "请求复核",
                    "行政复议",
                    "行政诉讼",
                    "向人民法院",
                    "救济途径",
                ]),
            ),
        ],
        banned: owned(&[
            "正在协调",
            "积极协调",
            "尽快处理",
            "尽快解决",
            "尽快落实",
            "研究研究",
            "正在研究",
            "进一步研究",
            "有待研究",
            "原则上",
            "适时",
            "择机",
            "视情况",
            "酌情考虑",
            "逐步解决",
            "另行答复",
        ]),
    }
}

/// An evaluation (`evaluated` event, `payload.satisfaction`), as recorded in
/// `status_events.verdict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Satisfaction {
    Satisfied,
    BasicallySatisfied,
    Dissatisfied,
}

impl Satisfaction {
    pub fn as_str(self) -> &'static str {
        match self {
            Satisfaction::Satisfied => "satisfied",
            Satisfaction::BasicallySatisfied => "basically_satisfied",
            Satisfaction::Dissatisfied => "dissatisfied",
        }
    }

    /// 满意 / 基本满意 / 不满意, or the English words (surrounding whitespace, full-width and
    /// case do not matter).
    pub fn parse(s: &str) -> Option<Satisfaction> {
        match normalize(s).as_str() {
            "满意" | "satisfied" => Some(Satisfaction::Satisfied),
            "基本满意" | "basically_satisfied" => Some(Satisfaction::BasicallySatisfied),
            "不满意" | "dissatisfied" => Some(Satisfaction::Dissatisfied),
            _ => None,
        }
    }
}

/// Every verdict a status event may record (`[[sla.clocks]].verdicts` names these).
pub const VERDICTS: [&str; 5] = [
    "ok",
    "bounced",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_with_all_four_elements_and_no_hedge_passes() {
        let c = ReplyChecker::default_lists();
        let r = c.check(Some(
            "经调查核实，您反映的工资拖欠问题属实。根据《保障农民工工资支付条例》第三十条的规定，\
             现已责令该公司于5日内支付拖欠工资。如对本处理意见不服，可在收到之日起30日内向上一级机关请求复查。",
        ));
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.verdict(), "ok");
    }

    #[test]
    fn missing_elements_and_banned_phrases_are_named() {
        let c = ReplyChecker::default_lists();
        let r = c.check(Some("您反映的问题我们正在协调，将尽快处理。"));
        assert_eq!(r.missing, Element::ALL.to_vec());
        assert_eq!(r.banned, vec!["正在协调", "尽快处理"]);
        assert_eq!(r.verdict(), "bounced");
    }

    #[test]
    fn no_reply_text_is_bounced_with_every_element_missing() {
        let c = ReplyChecker::default_lists();
        for t in [None, Some(""), Some(" \n\u{3000}")] {
            let r = c.check(t);
            assert!(r.no_text && !r.passed(), "{t:?}");
            assert_eq!(r.missing.len(), 4);
        }
    }

    /// Full-width brackets, traditional characters and a line break inside a phrase still
    /// match, as do phrases configured in either script.
    #[test]
    fn width_script_and_line_breaks_do_not_hide_a_phrase() {
        let c = ReplyChecker::default_lists();
        let r = c.check(Some(
            "經調查，情況屬實。依據《信訪工作條例》有關規定，現已辦結。如對本答覆不服，可申請複\n查。正在協\n調",
        ));
        assert!(r.missing.is_empty(), "{r:?}");
        assert_eq!(r.banned, vec!["正在协调"]);
        let traditional =
            ReplyChecker::new(true, vec![(Element::Facts, vec!["經查".into()])], vec![]).unwrap();
        assert!(
            !traditional
                .check(Some("经查属实"))
                .missing
                .contains(&Element::Facts)
        );
    }

    #[test]
    fn satisfaction_accepts_chinese_and_english_words() {
        for (s, want) in [
            ("满意", Some(Satisfaction::Satisfied)),
            (" 基本满意 ", Some(Satisfaction::BasicallySatisfied)),
            ("不满意", Some(Satisfaction::Dissatisfied)),
            ("Dissatisfied", Some(Satisfaction::Dissatisfied)),
            (
                "basically_satisfied",
                Some(Satisfaction::BasicallySatisfied),
            ),
            ("一般", None),
            ("", None),
        ] {
            assert_eq!(Satisfaction::parse(s), want, "{s}");
        }
    }
}

/// The corpus of replies in `tests/fixtures/replies.toml`, each with what the check must find.
#[cfg(test)]
mod corpus {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Corpus {
        reply: Vec<Case>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Case {
        name: String,
        #[allow(dead_code)]
        note: String,
        text: String,
        missing: Vec<String>,
        banned: Vec<String>,
    }

    #[test]
    fn reply_corpus_gives_the_expected_missing_elements_and_banned_phrases() {
        let corpus: Corpus =
            toml_edit::de::from_str(include_str!("../../../tests/fixtures/replies.toml")).unwrap();
        assert!(corpus.reply.len() >= 30, "{} replies", corpus.reply.len());
        let c = ReplyChecker::default_lists();
        let (mut good, mut bad, mut wrong) = (0, 0, Vec::new());
        for case in &corpus.reply {
            let r = c.check(Some(&case.text));
            let missing: Vec<&str> = r.missing.iter().map(|m| m.as_str()).collect();
            if missing != case.missing || r.banned != case.banned {
                wrong.push(format!(
                    "{}: missing {missing:?} banned {:?}, want {:?} {:?}",
                    case.name, r.banned, case.missing, case.banned
                ));
            }
            if case.missing.is_empty() && case.banned.is_empty() {
                good += 1;
            } else {
                bad += 1;
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert!(good >= 10 && bad >= 10, "{good} good, {bad} bad");
    }
}
