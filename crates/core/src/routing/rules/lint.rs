//! Whole-set checks on compiled rules: unreachable rules and conflicting keywords.

use super::*;

// ---------------------------------------------------------------------------------------------
// Whole-set checks: unreachable rules and conflicting keywords. They run after compilation
// because they use the automaton (to find, for a rule, the earlier rules whose keywords occur
// inside its own) — so checking stays near-linear in the number of rules.

impl RuleSet {
    pub(super) fn lint(&self, src: &TomlFile<'_>, diags: &mut Diagnostics) {
        self.unreachable_rules(src, diags);
        self.shared_keywords(src, diags);
    }

    /// Errors: a rule whose every item an earlier rule that does not continue takes first.
    fn unreachable_rules(&self, src: &TomlFile<'_>, diags: &mut Diagnostics) {
        let n = self.rules.len();
        // cum_overrides[i]: rules before i with a category action.
        let mut cum = vec![0usize; n + 1];
        for (i, r) in self.rules.iter().enumerate() {
            cum[i + 1] = cum[i] + usize::from(r.then.category.is_some());
        }
        let mut untriggered_stoppers: Vec<usize> = Vec::new();
        let mut cands: Vec<usize> = Vec::new();
        for (b, rb) in self.rules.iter().enumerate() {
            cands.clear();
            cands.extend(untriggered_stoppers.iter().copied());
            for k in rb.when.keywords_any.iter().chain(&rb.when.keywords_all) {
                for p in self.matcher.find_in_keyword(&k.normalized) {
                    for &a in self.triggers.get(p) {
                        let a = a as usize;
                        if a < b && !self.rules[a].then.continue_ {
                            cands.push(a);
                        }
                    }
                }
            }
            cands.sort_unstable();
            cands.dedup();
            for &a in &cands {
                let ra = &self.rules[a];
                if ra.id == DEFAULT_RULE {
                    continue;
                }
                let overrides_between = cum[b] - cum[a + 1] > 0;
                if subsumes(&ra.when, &rb.when, overrides_between) {
                    diags.errors.push(src.err(
                        &format!("rule[{b}]"),
                        format!(
                            "rule `{}` is unreachable: every item it matches is taken first by rule `{}`{}, which does not continue",
                            rb.id,
                            ra.id,
                            ra.line.map(|l| format!(" (line {l})")).unwrap_or_default()
                        ),
                    ));
                    break;
                }
            }
            if !rb.when.keyword_triggered() && !rb.then.continue_ {
                untriggered_stoppers.push(b);
            }
        }
    }

    /// Warnings: the same keyword in `keywords_any` of two rules leading to different
    /// departments (unless they cannot match the same item, or the earlier is a special case).
    fn shared_keywords(&self, src: &TomlFile<'_>, diags: &mut Diagnostics) {
        for (b, rb) in self.rules.iter().enumerate() {
            let Some(lead_b) = &rb.then.lead else {
                continue;
            };
            let mut shared: Vec<(usize, Vec<&str>)> = Vec::new();
            for k in &rb.when.keywords_any {
                for &a in self.triggers.get(k.pattern) {
                    let a = a as usize;
                    if a >= b {
                        break;
                    }
                    let ra = &self.rules[a];
                    let Some(lead_a) = &ra.then.lead else {
                        continue;
                    };
                    if lead_a == lead_b
                        || !ra.when.keywords_any.iter().any(|x| x.pattern == k.pattern)
                        || disjoint(&ra.when, &rb.when)
                        || special_case(&ra.when, &rb.when)
                    {
                        continue;
                    }
                    match shared.iter_mut().find(|(x, _)| *x == a) {
                        Some((_, ks)) => ks.push(&k.text),
                        None => shared.push((a, vec![&k.text])),
                    }
                }
            }
            for (a, ks) in shared {
                let ra = &self.rules[a];
                diags.warnings.push(src.err(
                    &format!("rule[{b}].when.keywords_any"),
                    format!(
                        "{} also in keywords_any of rule `{}`{}, which leads to `{}` (this rule: `{lead_b}`); the earlier rule takes such items unless its other conditions fail",
                        ks.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                        ra.id,
                        ra.line.map(|l| format!(" (line {l})")).unwrap_or_default(),
                        ra.then.lead.as_deref().unwrap_or("?"),
                    ),
                ));
            }
        }
    }
}

/// True when every item matching `b` also matches `a` (sound, not complete). With
/// `overrides_between`, a category condition of `a` cannot be compared (a rule in between may
/// change the category `b` sees).
pub(super) fn subsumes(a: &Conditions, b: &Conditions, overrides_between: bool) -> bool {
    let contains_any = |hay: &Keyword, needles: &[Keyword]| {
        needles
            .iter()
            .any(|n| hay.normalized.contains(n.normalized.as_str()))
    };
    if a.channel.is_some() && (b.channel.is_none() || b.channel_mask & !a.channel_mask != 0) {
        return false;
    }
    if a.category.is_some()
        && (overrides_between || b.category.is_none() || b.category_mask & !a.category_mask != 0)
    {
        return false;
    }
    if !a.keywords_any.is_empty() {
        let via_all = b
            .keywords_all
            .iter()
            .any(|k| contains_any(k, &a.keywords_any));
        let via_any = !b.keywords_any.is_empty()
            && b.keywords_any
                .iter()
                .all(|k| contains_any(k, &a.keywords_any));
        if !via_all && !via_any {
            return false;
        }
    }
    if !a.keywords_all.iter().all(|ka| {
        b.keywords_all
            .iter()
            .any(|kb| kb.normalized.contains(ka.normalized.as_str()))
    }) {
        return false;
    }
    if !a.keywords_none.iter().all(|ka| {
        b.keywords_none
            .iter()
            .any(|kb| ka.normalized.contains(kb.normalized.as_str()))
    }) {
        return false;
    }
    if !a.regex.is_empty() && (b.regex.is_empty() || !b.regex.iter().all(|r| a.regex.contains(r))) {
        return false;
    }
    if let Some(sa) = &a.service_code {
        match &b.service_code {
            Some(sb) if sb.iter().all(|c| sa.contains(c)) => {}
            _ => return false,
        }
    }
    if let Some(ra) = &a.region {
        match &b.region {
            Some(rb) if rb.iter().all(|r| ra.iter().any(|x| x.covers(r))) => {}
            _ => return false,
        }
    }
    if a.has_attachments.is_some() && a.has_attachments != b.has_attachments {
        return false;
    }
    if a.repeat_petition.is_some() && a.repeat_petition != b.repeat_petition {
        return false;
    }
    true
}

/// True when `a` narrows `b` by a condition `b` does not have at all (a region, a channel...):
/// a deliberate special case placed before the general rule, not an accident.
pub(super) fn special_case(a: &Conditions, b: &Conditions) -> bool {
    (a.channel.is_some() && b.channel.is_none())
        || (a.category.is_some() && b.category.is_none())
        || (a.region.is_some() && b.region.is_none())
        || (a.service_code.is_some() && b.service_code.is_none())
        || (a.has_attachments.is_some() && b.has_attachments.is_none())
        || (a.repeat_petition.is_some() && b.repeat_petition.is_none())
        || (!a.regex.is_empty() && b.regex.is_empty())
}

/// True when no item can match both (by the cheap conditions).
pub(super) fn disjoint(a: &Conditions, b: &Conditions) -> bool {
    (a.channel.is_some() && b.channel.is_some() && a.channel_mask & b.channel_mask == 0)
        || (a.category.is_some() && b.category.is_some() && a.category_mask & b.category_mask == 0)
        || matches!((a.has_attachments, b.has_attachments), (Some(x), Some(y)) if x != y)
        || matches!((a.repeat_petition, b.repeat_petition), (Some(x), Some(y)) if x != y)
        || matches!((&a.service_code, &b.service_code), (Some(x), Some(y)) if !x.iter().any(|c| y.contains(c)))
}
