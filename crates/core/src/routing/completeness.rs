//! The incomplete-item check: an item without a way to reach the petitioner, without content,
//! or without a key fact its kind needs is flagged `needs_supplement` and goes to the intake
//! desk, whose 24-hour clock to contact the petitioner (`intake.supplement`) the SLA engine
//! starts on that flag.
//!
//! Owns the check ([`Completeness::missing`]) and what it does to a routing outcome
//! (the daemon's `routing::completeness::apply`). Configured in `[routing.completeness]`
//! (parsed and validated in the daemon's `config::routing`). Pure: no I/O.
//!
//! **What is checked** (only for items of the configured channels — by default hotline and
//! portal: a scanned letter's contact details are inside the scan until a clerk registers it,
//! so the clerk judges a letter's completeness at registration):
//!
//! - **contact** — at least one of the configured petitioner fields (`contact_any`, default
//!   phone and address) is present: not blank and not a placeholder such as `无` or `不详`; a
//!   phone needs at least 7 digits. With `contact_in_text` (default on), a mobile number
//!   written in the title or content also counts.
//! - **content** — the content has at least `min_content_chars` characters after trimming.
//! - **key facts** — each configured fact applies to items of its `categories` and/or rule
//!   `tags` (empty: every item) and is present when one of its keywords (normalised like the
//!   rules' keywords) or regexes (against the normalised title and content) is found.
//!
//! **What a failed check does**: flags `needs_supplement` and one `missing:<what>` per failed
//! check (`missing:contact`, `missing:content`, `missing:<fact name>`) — names from config,
//! never the item's text. The lead becomes the intake desk (`routing.intake_desk`), with no
//! assists and rule id `needs-supplement`; the rules' own lead stays visible as the flag
//! `suggested_lead:<department>` so the desk can forward the item once it is supplemented.
//! The category, priority and tags the rules gave are kept.
//!
//! **When the upstream supplies it** ([`recheck`], called by intake for an upstream update of
//! an item still flagged `needs_supplement`): the check runs again on the updated envelope,
//! with the category and rule tags recorded at routing. Nothing missing any more: the flag and
//! every `missing:*` flag go (`suggested_lead:*` stays, for the desk), and intake stops the
//! supplement clocks and announces it. Still something missing: the `missing:*` flags are
//! brought up to date, the flag and the clock stay. The item is **not** re-routed: the desk
//! (the lead) forwards it — see ARCHITECTURE.md, "Decisions". An update never flags an item
//! that was complete when it was routed: it went to its department already.

use crate::envelope::{Category, Channel, Envelope, Personal, person};
use crate::routing::Decision;
use regex::Regex;

/// The flag an incomplete item carries; the `intake.supplement` clock starts on it.
pub const NEEDS_SUPPLEMENT: &str = "needs_supplement";
/// The decision's rule id when the check, not the rules file, chose the lead.
pub const RULE_ID: &str = "needs-supplement";

/// A petitioner field that can make an item reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactField {
    Name,
    IdNumber,
    Phone,
    Address,
}

impl ContactField {
    pub fn parse(s: &str) -> Option<ContactField> {
        Some(match s {
            "name" => ContactField::Name,
            "id_number" => ContactField::IdNumber,
            "phone" => ContactField::Phone,
            "address" => ContactField::Address,
            _ => return None,
        })
    }
}

/// A key fact an item of some kind must state.
#[derive(Debug, Clone)]
pub struct Fact {
    /// a-z 0-9 - _: becomes the flag `missing:<name>`.
    pub name: String,
    /// The fact applies to items of these categories (empty: any).
    pub categories: Vec<Category>,
    /// ... and to items carrying one of these rule tags (empty: any).
    pub tags: Vec<String>,
    /// Normalised keywords; one found means the fact is present.
    pub keywords: Vec<String>,
    /// Regexes over the normalised title and content; one matching means present.
    pub regexes: Vec<Regex>,
}

impl Fact {
    fn applies(&self, category: Option<Category>, tags: &[&str]) -> bool {
        (self.categories.is_empty() || category.is_some_and(|c| self.categories.contains(&c)))
            && (self.tags.is_empty() || self.tags.iter().any(|t| tags.contains(&t.as_str())))
    }

    fn present(&self, text: &str) -> bool {
        self.keywords.iter().any(|k| text.contains(k.as_str()))
            || self.regexes.iter().any(|r| r.is_match(text))
    }
}

/// `[routing.completeness]`, validated.
#[derive(Debug, Clone)]
pub struct Completeness {
    pub channels: Vec<Channel>,
    pub contact_any: Vec<ContactField>,
    pub contact_in_text: bool,
    pub min_content_chars: usize,
    pub facts: Vec<Fact>,
}

/// Values people type when they have nothing to give.
const PLACEHOLDERS: &[&str] = &[
    "无",
    "没有",
    "暂无",
    "不详",
    "未知",
    "不知道",
    "匿名",
    "-",
    "--",
    "/",
    "n/a",
    "na",
    "none",
    "null",
    "nil",
    "0",
];

fn given(p: Option<&Personal>) -> Option<&str> {
    let v = p?.expose().trim();
    let blank = v.is_empty()
        || PLACEHOLDERS
            .iter()
            .any(|ph| v.eq_ignore_ascii_case(ph) || person::half_width(v) == *ph);
    (!blank).then_some(v)
}

impl Completeness {
    /// What is missing from `env` (routed to `category` with rule `tags`): `contact`,
    /// `content`, then fact names in config order. Empty when complete or not checked.
    pub fn missing(
        &self,
        env: &Envelope,
        category: Option<Category>,
        tags: &[&str],
    ) -> Vec<String> {
        let mut out = Vec::new();
        if !self.channels.contains(&env.channel) {
            return out;
        }
        let p = &env.petitioner;
        let title = env.request.title.as_ref().map_or("", |t| t.expose());
        let content = env.request.content.expose();
        let field = |f: ContactField| match f {
            ContactField::Name => given(p.name.as_ref()).is_some(),
            ContactField::IdNumber => given(p.id_number.as_ref()).is_some(),
            ContactField::Address => given(p.address.as_ref()).is_some(),
            ContactField::Phone => given(p.phone.as_ref()).is_some_and(|v| {
                person::half_width(v)
                    .chars()
                    .filter(char::is_ascii_digit)
                    .count()
                    >= 7
            }),
        };
        let contact = self.contact_any.iter().any(|f| field(*f))
            || (self.contact_in_text
                && !(person::mobiles_in(title).is_empty()
                    && person::mobiles_in(content).is_empty()));
        if !contact {
            out.push("contact".to_string());
        }
        if content.trim().chars().count() < self.min_content_chars {
            out.push("content".to_string());
        }
        let mut text: Option<String> = None;
        for f in &self.facts {
            if !f.applies(category, tags) {
                continue;
            }
            let text =
                text.get_or_insert_with(|| super::classify::normalized_item_text(title, content));
            if !f.present(text) {
                out.push(f.name.clone());
            }
        }
        out
    }
}

/// The check on a decision and its flags (`tag:<t>` ones name the rule tags): on anything
/// missing, adds the flags and makes `desk` the lead. Returns what is missing.
pub fn check(
    c: &Completeness,
    desk: &str,
    env: &Envelope,
    category: Option<Category>,
    flags: &mut Vec<String>,
    decision: &mut Decision,
) -> Vec<String> {
    let tags: Vec<&str> = flags
        .iter()
        .filter_map(|f| f.strip_prefix("tag:"))
        .collect();
    let missing = c.missing(env, category, &tags);
    if missing.is_empty() {
        return missing;
    }
    flags.push(NEEDS_SUPPLEMENT.to_string());
    flags.extend(missing.iter().map(|m| format!("missing:{m}")));
    if decision.lead != desk {
        flags.push(format!("suggested_lead:{}", decision.lead));
    }
    decision.lead = desk.to_string();
    decision.assists.clear();
    decision.rule_id = RULE_ID.to_string();
    missing
}

/// What an upstream update did to an item flagged `needs_supplement` ([`recheck`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Not flagged, its channel is no longer checked, or what is missing did not change.
    Unchanged,
    /// Something is still missing: the `missing:*` flags now say what (`supplied`: the checks
    /// that now pass).
    StillMissing {
        supplied: Vec<String>,
        missing: Vec<String>,
    },
    /// Nothing is missing any more: `needs_supplement` and the `missing:*` flags are gone.
    /// `supplied`: what was missing (the flags' names, in their order).
    Supplied(Vec<String>),
}

/// The `missing:*` flag prefix.
pub const MISSING_PREFIX: &str = "missing:";

/// Runs the check again on `env`, an item's envelope as updated from upstream, and updates its
/// flags (see the module docs). The category and rule tags are the ones recorded at routing
/// (`env.category`, the `tag:*` flags), so the same facts apply.
pub fn recheck(c: &Completeness, env: &mut Envelope) -> Recheck {
    if !env.flags.iter().any(|f| f == NEEDS_SUPPLEMENT) || !c.channels.contains(&env.channel) {
        return Recheck::Unchanged;
    }
    let before: Vec<String> = env
        .flags
        .iter()
        .filter_map(|f| f.strip_prefix(MISSING_PREFIX))
        .map(str::to_string)
        .collect();
    let tags: Vec<String> = env
        .flags
        .iter()
        .filter_map(|f| f.strip_prefix("tag:"))
        .map(str::to_string)
        .collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let missing = c.missing(env, env.category, &tags);
    if missing == before {
        return Recheck::Unchanged;
    }
    env.flags.retain(|f| !f.starts_with(MISSING_PREFIX));
    if missing.is_empty() {
        env.flags.retain(|f| f != NEEDS_SUPPLEMENT);
        return Recheck::Supplied(before);
    }
    env.flags
        .extend(missing.iter().map(|m| format!("{MISSING_PREFIX}{m}")));
    Recheck::StillMissing {
        supplied: before
            .into_iter()
            .filter(|b| !missing.contains(b))
            .collect(),
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Petitioner, Request, Upstream};

    fn env(channel: Channel, p: Petitioner, title: &str, content: &str) -> Envelope {
        let mut e = Envelope::new(
            channel,
            Upstream {
                id: "1".into(),
                source: "t".into(),
                raw_ref: "sha256:00".into(),
                ..Default::default()
            },
            jiff::Timestamp::UNIX_EPOCH,
            Request {
                title: (!title.is_empty()).then(|| Personal::new(title)),
                content: Personal::new(content),
            },
        );
        e.petitioner = p;
        e
    }

    fn p(name: &str, id: &str, phone: &str, address: &str) -> Petitioner {
        let f = |v: &str| (!v.is_empty()).then(|| Personal::new(v));
        Petitioner {
            name: f(name),
            id_number: f(id),
            phone: f(phone),
            address: f(address),
        }
    }

    fn check() -> Completeness {
        Completeness {
            channels: vec![Channel::Hotline, Channel::Portal],
            contact_any: vec![ContactField::Phone, ContactField::Address],
            contact_in_text: true,
            min_content_chars: 10,
            facts: vec![
                Fact {
                    name: "employer".into(),
                    categories: vec![],
                    tags: vec!["wage-arrears".into()],
                    keywords: vec!["公司".into(), "老板".into(), "工地".into()],
                    regexes: vec![],
                },
                Fact {
                    name: "amount".into(),
                    categories: vec![Category::Rights],
                    tags: vec![],
                    keywords: vec![],
                    regexes: vec![Regex::new(r"\d+(?:\.\d+)?(?:元|万)").unwrap()],
                },
            ],
        }
    }

    const LONG: &str = "小区门口的路灯坏了两个星期了，晚上很黑";
    const WAGES: &str = "某建筑公司拖欠工资三个月共计２００００元";

    /// Contact and content cases: (why, channel, petitioner, content, missing).
    type Case = (
        &'static str,
        Channel,
        Petitioner,
        &'static str,
        &'static [&'static str],
    );

    #[test]
    fn a_contact_is_a_reachable_field_or_a_mobile_in_the_text() {
        use Channel::*;
        let phone = |s| p("", "", s, "");
        let cases: &[Case] = &[
            (
                "phone is a contact",
                Hotline,
                phone("13800138000"),
                LONG,
                &[],
            ),
            (
                "address is a contact",
                Portal,
                p("", "", "", "城东村3组"),
                LONG,
                &[],
            ),
            (
                "landline with area code",
                Hotline,
                phone("0571-8888666"),
                LONG,
                &[],
            ),
            ("nothing", Hotline, phone(""), LONG, &["contact"]),
            (
                "a name is not a contact",
                Hotline,
                p("王五", "11010519491231002X", "", ""),
                LONG,
                &["contact"],
            ),
            (
                "placeholders",
                Portal,
                p("", "", "无", " 不详 "),
                LONG,
                &["contact"],
            ),
            (
                "full-width placeholder",
                Portal,
                p("", "", "", "／"),
                LONG,
                &["contact"],
            ),
            (
                "too few digits",
                Hotline,
                phone("12345"),
                LONG,
                &["contact"],
            ),
            (
                "mobile in the text",
                Portal,
                phone(""),
                "路灯坏了，请联系我：１３８ ００１３ ８０００",
                &[],
            ),
        ];
        check_cases(cases);
    }

    #[test]
    fn content_needs_its_minimum_and_letters_are_left_to_the_clerk() {
        use Channel::*;
        let cases: &[Case] = &[
            (
                "short content",
                Hotline,
                p("", "", "13800138000", ""),
                "  停水了  ",
                &["content"],
            ),
            (
                "both",
                Hotline,
                p("", "", "", ""),
                "",
                &["contact", "content"],
            ),
            (
                "letters are the clerk's",
                Letter,
                p("", "", "", ""),
                "",
                &[],
            ),
        ];
        check_cases(cases);
    }

    fn check_cases(cases: &[Case]) {
        let c = check();
        for (why, ch, pet, content, want) in cases {
            let e = env(*ch, pet.clone(), "", content);
            assert_eq!(c.missing(&e, None, &[]), *want, "{why}");
        }
    }

    /// Facts: by tag and by category; present by keyword or regex (normalised text: full-width
    /// digits match \d).
    #[test]
    fn key_facts_apply_by_tag_or_category_and_are_found_by_keyword_or_regex() {
        use Category::*;
        let c = check();
        type FactCase = (
            &'static str,
            &'static str,
            Category,
            &'static [&'static str],
            &'static [&'static str],
        );
        let cases: &[FactCase] = &[
            // (why, content, category, tags, missing)
            ("wage facts present", WAGES, Rights, &["wage-arrears"], &[]),
            (
                "no employer",
                "拖欠工资三个月了共计2万元没人管",
                Rights,
                &["wage-arrears"],
                &["employer"],
            ),
            (
                "no amount",
                "某建筑公司拖欠工资三个月了没人管",
                Rights,
                &[],
                &["amount"],
            ),
            (
                "facts of other kinds do not apply",
                LONG,
                Livelihood,
                &["utility-outage"],
                &[],
            ),
        ];
        for (why, content, cat, tags, want) in cases {
            let e = env(Channel::Hotline, p("", "", "13800138000", ""), "", content);
            assert_eq!(c.missing(&e, Some(*cat), tags), *want, "{why}");
        }
        let e = env(Channel::Portal, p("", "", "", ""), "", "欠薪");
        assert_eq!(
            c.missing(&e, Some(Rights), &["wage-arrears"]),
            ["contact", "content", "employer", "amount"],
            "all at once, in order"
        );
    }

    /// An item as routing flagged it: `needs_supplement`, its `missing:*`, tags and the
    /// suggested lead.
    fn flagged(e: &mut Envelope, c: &Completeness, category: Option<Category>, tags: &[&str]) {
        e.category = category;
        e.flags = tags.iter().map(|t| format!("tag:{t}")).collect();
        let mut d = Decision {
            rule_id: "r".into(),
            rules_version: "v".into(),
            lead: "hrss".into(),
            assists: vec![],
            decided_at: jiff::Timestamp::UNIX_EPOCH,
        };
        let mut flags = e.flags.clone();
        super::check(c, "desk", e, category, &mut flags, &mut d);
        e.flags = flags;
    }

    #[test]
    fn recheck_clears_the_flag_when_everything_is_supplied_and_keeps_the_suggestion() {
        let c = check();
        let mut e = env(
            Channel::Portal,
            p("", "", "", ""),
            "",
            "拖欠工资三个月了没人管啊",
        );
        flagged(&mut e, &c, Some(Category::Rights), &["wage-arrears"]);
        assert!(
            e.flags.contains(&"needs_supplement".to_string()),
            "{:?}",
            e.flags
        );
        // Nothing supplied yet (the same record at another version): unchanged.
        assert_eq!(recheck(&c, &mut e), Recheck::Unchanged);
        // The phone arrives, the employer and amount not: brought up to date.
        e.petitioner.phone = Some(Personal::new("13800138000"));
        assert_eq!(
            recheck(&c, &mut e),
            Recheck::StillMissing {
                supplied: vec!["contact".into()],
                missing: vec!["employer".into(), "amount".into()],
            }
        );
        assert!(
            !e.flags.contains(&"missing:contact".to_string()),
            "{:?}",
            e.flags
        );
        assert!(
            e.flags.contains(&"missing:employer".to_string()),
            "{:?}",
            e.flags
        );
        assert!(e.flags.contains(&"needs_supplement".to_string()));
        // The facts follow in the text.
        e.request.content = Personal::new(WAGES);
        assert_eq!(
            recheck(&c, &mut e),
            Recheck::Supplied(vec!["employer".into(), "amount".into()])
        );
        assert!(
            !e.flags
                .iter()
                .any(|f| f == "needs_supplement" || f.starts_with("missing:")),
            "{:?}",
            e.flags
        );
        assert!(
            e.flags.contains(&"suggested_lead:hrss".to_string()),
            "{:?}",
            e.flags
        );
        assert!(e.flags.contains(&"tag:wage-arrears".to_string()));
        // Cleared once: a later update changes nothing.
        assert_eq!(recheck(&c, &mut e), Recheck::Unchanged);
    }

    #[test]
    fn recheck_never_flags_a_complete_item_nor_one_of_a_channel_no_longer_checked() {
        let mut c = check();
        let mut complete = env(Channel::Hotline, p("", "", "13800138000", ""), "", LONG);
        flagged(&mut complete, &c, None, &[]);
        assert!(complete.flags.is_empty(), "{:?}", complete.flags);
        // The update loses the phone: an item routed to its department stays there.
        complete.petitioner.phone = None;
        assert_eq!(recheck(&c, &mut complete), Recheck::Unchanged);
        assert!(complete.flags.is_empty());
        // A flagged item of a channel the operator stopped checking is left as it is.
        let mut e = env(Channel::Hotline, p("", "", "", ""), "", LONG);
        flagged(&mut e, &c, None, &[]);
        let flags = e.flags.clone();
        c.channels = vec![Channel::Portal];
        e.petitioner.phone = Some(Personal::new("13800138000"));
        assert_eq!(recheck(&c, &mut e), Recheck::Unchanged);
        assert_eq!(e.flags, flags);
    }

    #[test]
    fn a_mobile_in_the_title_counts_and_can_be_switched_off() {
        let mut c = check();
        let e = env(Channel::Portal, p("", "", "", ""), "回电13800138000", LONG);
        assert!(c.missing(&e, None, &[]).is_empty());
        c.contact_in_text = false;
        assert_eq!(c.missing(&e, None, &[]), ["contact"]);
    }
}
