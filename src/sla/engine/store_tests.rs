//! The engine's reconciliation over a real store: due updates sent once, holds replayed
//! exactly.

use crate::config::Config;
use crate::store::testing::{item, store};
use crate::store::{SqliteStore, Store};
use jiff::Timestamp;
use petitiond_core::sla::clock::{Clock, State};
use std::path::Path;

fn sla_config() -> Config {
    Config::parse(
        "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[departments]]\nid = \"desk\"\nname = \"desk\"\ntopic = \"t.desk\"\n[routing]\ndefault_lead = \"desk\"\n",
        "t.toml",
        Path::new("."),
    )
    .unwrap()
}

fn due_updates(s: &SqliteStore) -> Vec<(String, serde_json::Value)> {
    s.pending_outbox(100)
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.headers
                .iter()
                .any(|(k, v)| k == "ce_type" && v == crate::kafka::wire::TYPE_DUE_UPDATED)
        })
        .map(|r| (r.ce_id, serde_json::from_slice(&r.payload).unwrap()))
        .collect()
}

/// Issue 14: a pending clock that gets its due instant sends exactly one due-update
/// record, committed with the clock; a second reconciliation, or the same write replayed
/// (a crash after the commit), sends nothing more.
#[test]
fn pending_to_computed_sends_one_due_update() {
    let (_d, s) = store();
    let cfg = sla_config();
    let policy = cfg.sla.clock("statutory.handle").unwrap().clone();
    let mut it = item("p");
    let id = it.envelope.id.to_string();
    let start: Timestamp = "2026-12-02T01:00:00Z".parse().unwrap();
    it.clocks = vec![(Clock::pending(&policy, &id, "desk", start), None)];
    s.record_item(&it).unwrap();
    let at: Timestamp = "2026-12-06T01:00:00Z".parse().unwrap();

    let candidates = s.clocks_to_recompute(true).unwrap();
    assert_eq!(candidates.len(), 1);
    let out = super::reconcile(
        &crate::sla::SlaInputs::from_config(&cfg),
        candidates,
        false,
        at,
    );
    assert_eq!(out.computed, 1);
    let r = s.recompute_clocks(&out.writes).unwrap();
    assert_eq!(r.announced, 1);
    assert_eq!(r.timers.len(), 1);
    let updates = due_updates(&s);
    assert_eq!(updates.len(), 1, "{updates:?}");
    let v = &updates[0].1;
    assert_eq!(v["reason"], "pending_computed");
    assert_eq!(v["item_id"], id);
    // 60 days after Wed 12-02 is Sun 2027-01-31 → Mon 02-01 by provisional 2027.
    assert_eq!(v["due_at"], "2027-02-01T09:30:00Z");
    assert_eq!(v["provisional"], true);
    assert_eq!(v["provisional_year"], 2027);

    // The clock is running, provisional, with a timer: flagged for the next calendar change.
    let again = s.clocks_to_recompute(true).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].clock.state, State::Running);
    assert!(again[0].clock.provisional);
    assert!(again[0].next.is_some());
    assert_eq!(s.open_provisional_clocks().unwrap(), 1);
    // Same calendars: nothing to do, nothing sent.
    let out2 = super::reconcile(&crate::sla::SlaInputs::from_config(&cfg), again, false, at);
    assert!(out2.writes.is_empty());
    // The first write replayed: the row no longer holds the pending clock.
    let r = s.recompute_clocks(&out.writes).unwrap();
    assert_eq!((r.announced, r.skipped), (0, 1));
    assert_eq!(due_updates(&s).len(), 1);
}

/// Regression: the time a clock was held by a pause was stored in milliseconds, so a
/// hold with a fraction of a millisecond replayed to a due instant a fraction of a
/// millisecond off, and a calendar change that did not move it still announced it.
#[test]
fn a_hold_with_a_fraction_of_a_millisecond_is_replayed_exactly() {
    use petitiond_core::sla::policy::EventKind;
    let (_d, s) = store();
    let cfg = sla_config();
    let cal = cfg.sla.calendar.clone();
    let policy = cfg.sla.clock("statutory.accept").unwrap().clone();
    let mut it = item("h");
    let id = it.envelope.id.to_string();
    let t = |x: &str| x.parse::<Timestamp>().unwrap();
    let mut c = Clock::start(&policy, &id, "desk", t("2026-12-21T02:00:00Z"), &cal).unwrap();
    c.apply(
        &policy,
        EventKind::Paused,
        t("2026-12-22T02:00:00.000000001Z"),
        None,
        &cal,
    )
    .unwrap();
    c.apply(
        &policy,
        EventKind::Resumed,
        t("2026-12-24T02:00:00.987654321Z"),
        None,
        &cal,
    )
    .unwrap();
    assert!(c.provisional);
    let next = c.next_alert(&policy, &cal).unwrap().map(|(_, t)| t);
    it.clocks = vec![(c.clone(), next)];
    s.record_item(&it).unwrap();
    let candidates = s.clocks_to_recompute(true).unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].clock, c, "stored exactly");
    // A calendar change elsewhere (same days for this clock): recomputed, not announced.
    let out = super::reconcile(
        &crate::sla::SlaInputs::from_config(&cfg),
        candidates,
        true,
        t("2026-12-25T02:00:00Z"),
    );
    assert!(
        out.writes.iter().all(|w| w.announce.is_none()),
        "{:?}",
        out.writes
    );
}
