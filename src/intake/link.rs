//! Routing with repeat-petition linking: the one place intake asks the store before recording.
//!
//! The circularity — the matter depends on routing, and routing depends on the
//! `repeat_petition` flag (the rules' `repeat_petition` condition) — is cut like this:
//!
//! 1. route the item without the flag; its **matter** is taken from this decision (category
//!    and the rules' lead, `routing::repeat::matter`) and never from a later one;
//! 2. look up the same petitioner's earlier items on that matter within the window; their ids
//!    become `related` (from the second item on);
//! 3. when this is the `flag_at`-th item (default the third), add `repeat_petition` and route
//!    **again**, so rules with `when.repeat_petition` apply; that second decision is the one
//!    recorded, the matter stays the first one's.
//!
//! Recording is idempotent by item id, so a re-delivered item finds its earlier namesakes
//! excluded (`except` is its own id) and, being a duplicate, writes no index rows: it never
//! counts twice. Intake handles one item at a time, and flushes its commit group before an
//! item of a petitioner already in it, so two items of one person cannot race.

use super::Intake;
use crate::routing::Routed;
use crate::store::{PersonIndex, blocking};
use petitiond_core::envelope::{Envelope, ItemId};
use petitiond_core::routing::rules::REPEAT_PETITION_FLAG;

impl Intake {
    /// Routes `env`, links it to related earlier items (`env.related`, and the
    /// `repeat_petition` flag when it is a repeat), and returns the decision to record with the
    /// item's entry for the repeat-petition index.
    pub(super) async fn route_and_link(
        &self,
        env: &mut Envelope,
        person_keys: Vec<String>,
        now: jiff::Timestamp,
    ) -> anyhow::Result<(Routed, Option<PersonIndex>)> {
        let routed = self.router.route(env, now);
        let (Some(repeat), Some(matter)) = (&self.repeat, routed.matter.clone()) else {
            return Ok((routed, None));
        };
        if person_keys.is_empty() {
            return Ok((routed, None));
        }
        let since = repeat.since(env.received_at);
        let (keys, m, id) = (person_keys.clone(), matter.clone(), env.id.to_string());
        // Both bounded: at most `MAX_PERSON_KEYS` keys in one query, at most
        // `store::MAX_RELATED_ITEMS` ids back; merged into `related` through a set.
        let prior = blocking(&self.store, move |s| s.related_items(&keys, &m, since, &id)).await?;
        let mut linked: std::collections::HashSet<ItemId> = env.related.iter().cloned().collect();
        for p in prior.iter().filter_map(|p| ItemId::parse(p)) {
            if linked.insert(p.clone()) {
                env.related.push(p);
            }
        }
        let routed = if repeat.is_repeat(prior.len()) {
            if !env.flags.iter().any(|f| f == REPEAT_PETITION_FLAG) {
                env.flags.push(REPEAT_PETITION_FLAG.to_string());
            }
            let mut again = self.router.route(env, now);
            again.matter = Some(matter.clone());
            again
        } else {
            routed
        };
        if !prior.is_empty() {
            tracing::info!(
                item = %env.id,
                related = prior.len(),
                repeat = repeat.is_repeat(prior.len()),
                matter = %matter,
                "same petitioner, same matter: linked to earlier items"
            );
        }
        Ok((
            routed,
            Some(PersonIndex {
                person_keys,
                matter,
            }),
        ))
    }
}
