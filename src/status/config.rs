//! `[replies]`: the reply quality check's phrase lists (see `status::reply`). Every key is
//! optional; a list left out keeps its default, so an office can tune one list at a time.
//!
//! The raw serde shape and its validation live together here, beside the status consumer that
//! applies the check; the daemon's `config` calls [`replies`].

use petitiond_core::diag::Validator;
use petitiond_core::reply::{Element, ReplyChecker, defaults};
use serde::Deserialize;
use std::collections::HashSet;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplies {
    /// `false`: replies are applied as they come, unchecked (no verdict recorded).
    pub enabled: Option<bool>,
    /// 事实认定: phrases any one of which shows the facts found.
    pub facts: Option<Vec<String>>,
    /// 政策依据.
    pub policy: Option<Vec<String>>,
    /// 处理结果.
    pub result: Option<Vec<String>>,
    /// 救济途径.
    pub remedy: Option<Vec<String>>,
    /// Vague phrases a reply must not use.
    pub banned: Option<Vec<String>>,
}

pub fn replies(v: &mut Validator<'_>, r: &RawReplies) -> Option<ReplyChecker> {
    let d = defaults();
    let mut elements = Vec::new();
    for (e, given) in [
        (Element::Facts, &r.facts),
        (Element::Policy, &r.policy),
        (Element::Result, &r.result),
        (Element::Remedy, &r.remedy),
    ] {
        let path = format!("replies.{}", e.as_str());
        let list = match given {
            Some(l) => {
                if l.is_empty() {
                    v.err(
                        &path,
                        format!(
                            "list at least one phrase that shows the {} ({}): with none, every reply would be bounced",
                            e.zh(),
                            e.as_str()
                        ),
                    );
                }
                phrases(v, &path, l);
                l.clone()
            }
            None => d
                .elements
                .iter()
                .find(|(x, _)| *x == e)
                .map(|(_, l)| l.clone())
                .unwrap_or_default(),
        };
        elements.push((e, list));
    }
    let banned = match &r.banned {
        Some(l) => {
            phrases(v, "replies.banned", l);
            l.clone()
        }
        None => d.banned,
    };
    match ReplyChecker::new(r.enabled.unwrap_or(true), elements, banned) {
        Ok(c) => Some(c),
        Err(e) => {
            v.err("replies", format!("the phrase lists do not compile: {e}"));
            None
        }
    }
}

/// Each phrase non-empty after normalisation, and listed once.
fn phrases(v: &mut Validator<'_>, path: &str, list: &[String]) {
    let mut seen = HashSet::new();
    for (i, p) in list.iter().enumerate() {
        let n = petitiond_core::routing::classify::normalize(p);
        if n.is_empty() {
            v.err(&format!("{path}[{i}]"), "empty phrase");
        } else if !seen.insert(n) {
            v.err(&format!("{path}[{i}]"), format!("`{p}` is listed twice"));
        }
    }
}
