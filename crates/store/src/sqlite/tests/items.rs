//! Items, the outbox, mail and corrections: what intake and the producer rely on.

use super::*;

/// A re-route is recorded once per event id (a redelivered status event after a crash
/// does not record it twice), with what routing had decided, and comes back with the
/// item's envelope; an unknown item records nothing. The decision's classification is
/// kept in routing_decisions.
#[test]
fn corrections_are_recorded_once_with_what_routing_decided() {
    each_backend(|s| {
        let mut it = item("c1");
        it.envelope.category = Some(petitiond_core::envelope::Category::Policy);
        it.envelope.routing = Some(petitiond_core::envelope::Routing {
            lead: "desk".into(),
            assists: vec![],
            rule_id: "default".into(),
            rules_version: "v0".into(),
            decided_at: "2026-03-02T01:00:00Z".parse().unwrap(),
            sla_add: vec![],
            sla_skip: vec![],
            classification: Some(petitiond_core::envelope::CategoryDecision {
                source: "model".into(),
                confidence: 0.42,
                candidates: vec![],
                needs_review: true,
            }),
        });
        let id = it.envelope.id.to_string();
        s.record_item(&it).unwrap();
        let stored = s
            .query_text(&format!(
                "SELECT classification FROM routing_decisions WHERE item_id = '{id}'"
            ))
            .unwrap();
        assert!(stored.contains("\"needs_review\":true"), "{stored}");
        let c = NewCorrection {
            event_id: "e1".into(),
            item_id: id.clone(),
            at: "2026-03-02T02:00:00Z".parse().unwrap(),
            actor: Some("intake-desk".into()),
            category: Some(petitiond_core::envelope::Category::Rights),
            department: Some("hrss".into()),
        };
        assert!(s.record_correction(&c).unwrap());
        assert!(!s.record_correction(&c).unwrap(), "the same event again");
        let unknown = NewCorrection {
            event_id: "e2".into(),
            item_id: "nope".into(),
            ..c.clone()
        };
        assert!(!s.record_correction(&unknown).unwrap());
        let all = s.corrections().unwrap();
        assert_eq!(all.len(), 1);
        let got = &all[0];
        assert_eq!(got.from_category.as_deref(), Some("policy"));
        assert_eq!(got.from_lead.as_deref(), Some("desk"));
        assert_eq!(
            got.category,
            Some(petitiond_core::envelope::Category::Rights)
        );
        assert_eq!(got.department.as_deref(), Some("hrss"));
        assert_eq!(got.actor.as_deref(), Some("intake-desk"));
        assert_eq!(got.envelope.as_ref().unwrap().id.to_string(), id);
        let line = petitiond_core::routing::corrections::export_line(got).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["category"], "rights");
        assert_eq!(v["content"], "x");
        assert_eq!(v["from_category"], "policy");
        // The export is read back as labelled data by `rules eval` / `rules train`.
        let items = petitiond_core::routing::eval::parse_corpus("c.jsonl", &line, true).unwrap();
        assert_eq!(
            items[0].category,
            petitiond_core::envelope::Category::Rights
        );
    });
}

#[test]
fn record_is_idempotent_by_item_id() {
    each_backend(|s| {
        let Recorded::New(timers) = s.record_item(&item("a")).unwrap() else {
            panic!("not new")
        };
        assert_eq!(timers.len(), 1);
        assert_eq!(s.record_item(&item("a")).unwrap(), Recorded::Duplicate);
        assert_eq!(s.pending_count().unwrap(), 1);
    });
}

#[test]
fn related_items_by_person_matter_and_window() {
    each_backend(|s| {
        // (upstream, received, keys, matter)
        let rows: &[(&str, &str, &[&str], &str)] = &[
            ("a", "2026-01-10T00:00:00Z", &["k1"], "rights/hrss"),
            ("b", "2026-03-01T00:00:00Z", &["k2", "k1"], "rights/hrss"),
            ("c", "2026-03-02T00:00:00Z", &["k1"], "livelihood/health"),
            ("d", "2026-03-03T00:00:00Z", &["k3"], "rights/hrss"),
            ("e", "2026-02-01T00:00:00.500Z", &["k2"], "rights/hrss"),
        ];
        let mut ids = std::collections::HashMap::new();
        for (up, at, keys, matter) in rows {
            let mut it = item(up);
            it.envelope.received_at = at.parse().unwrap();
            it.person_index = Some(PersonIndex {
                person_keys: keys.iter().map(|k| k.to_string()).collect(),
                matter: matter.to_string(),
            });
            ids.insert(*up, it.envelope.id.to_string());
            assert!(matches!(s.record_item(&it).unwrap(), Recorded::New(_)));
            // A re-delivery of the same item adds nothing.
            assert_eq!(s.record_item(&it).unwrap(), Recorded::Duplicate);
        }
        let keys = |v: &[&str]| v.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let since: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let got = s
            .related_items(&keys(&["k1", "k2"]), "rights/hrss", since, "new")
            .unwrap();
        // b is found by both keys but listed once; oldest first (sub-second times compare
        // as numbers, not text); c is another matter, d another person.
        assert_eq!(
            got,
            vec![ids["a"].clone(), ids["e"].clone(), ids["b"].clone()]
        );
        // The window, and the item itself, are left out.
        let since: Timestamp = "2026-02-01T00:00:00Z".parse().unwrap();
        let got = s
            .related_items(&keys(&["k1", "k2"]), "rights/hrss", since, &ids["b"])
            .unwrap();
        assert_eq!(got, vec![ids["e"].clone()]);
        assert!(
            s.related_items(&[], "rights/hrss", since, "x")
                .unwrap()
                .is_empty()
        );
        // Only hashes are stored.
        assert_eq!(s.query_i64("SELECT COUNT(*) FROM person_items"), 6);
    });
}

/// A petitioner with hundreds of earlier items (or an item with many keys) cost a query per
/// key and a linear search per row found, and linked every earlier item. Now one query,
/// at most `MAX_RELATED_ITEMS` ids (the newest, listed oldest first).
#[test]
fn related_items_are_bounded_whatever_the_history() {
    each_backend(|s| {
        let keys: Vec<String> = (0..MAX_LOOKUP_KEYS + 5).map(|k| format!("k{k}")).collect();
        let n = MAX_RELATED_ITEMS + 20;
        let mut ids = Vec::new();
        for i in 0..n {
            let mut it = item(&format!("u{i}"));
            it.envelope.received_at = Timestamp::from_second(1_772_000_000 + i as i64).unwrap();
            it.person_index = Some(PersonIndex {
                person_keys: keys[..3].to_vec(),
                matter: "rights/hrss".into(),
            });
            ids.push(it.envelope.id.to_string());
            s.record_item(&it).unwrap();
        }
        let got = s
            .related_items(&keys, "rights/hrss", Timestamp::UNIX_EPOCH, "x")
            .unwrap();
        assert_eq!(got.len(), MAX_RELATED_ITEMS);
        assert_eq!(
            got,
            ids[n - MAX_RELATED_ITEMS..],
            "the newest, oldest first"
        );
    });
}

#[test]
fn outbox_lifecycle_and_positions() {
    each_backend(|s| {
        s.record_item(&item("a")).unwrap();
        s.record_item(&item("b")).unwrap();
        let rows = s.pending_outbox(10).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(s.in_flight_outbox().unwrap().is_empty());
        assert!(s.in_flight_since("t").unwrap().is_none());
        s.mark_attempted(&[rows[0].seq]).unwrap();
        assert_eq!(s.in_flight_outbox().unwrap()[0].ce_id, "ce-a");
        let since = s.in_flight_since("t").unwrap().unwrap();
        assert!(
            (Timestamp::now() - since).get_seconds().abs() < 60,
            "{since}"
        );
        assert!(s.in_flight_since("other").unwrap().is_none());
        // A held topic's rows are left out; others still come.
        assert!(
            s.pending_outbox_except(10, &["t".into()])
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.pending_outbox_except(10, &["x".into()]).unwrap().len(), 2);
        s.mark_delivered(&[Delivered {
            seq: rows[0].seq,
            topic: "t".into(),
            partition: 1,
            offset: 41,
        }])
        .unwrap();
        assert!(s.in_flight_outbox().unwrap().is_empty());
        assert_eq!(s.topic_positions("t").unwrap(), vec![(1, 42)]);
        s.mark_dead(rows[1].seq, "too large").unwrap();
        assert_eq!(s.pending_count().unwrap(), 0);
    });
}

#[test]
fn oldest_pending_outbox_is_the_first_undelivered_row() {
    each_backend(|s| {
        assert_eq!(s.oldest_pending_outbox().unwrap(), None);
        s.record_item(&item("a")).unwrap();
        s.record_item(&item("b")).unwrap();
        let rows = s.pending_outbox(10).unwrap();
        for (row, at) in rows
            .iter()
            .zip(["2026-03-02T01:00:00.250Z", "2026-03-02T01:05:00.000Z"])
        {
            s.execute(&format!(
                "UPDATE outbox SET created_at = '{at}' WHERE seq = {}",
                row.seq
            ));
        }
        let first: Timestamp = "2026-03-02T01:00:00.250Z".parse().unwrap();
        assert_eq!(s.oldest_pending_outbox().unwrap(), Some(first));
        // An attempted row is still undelivered.
        s.mark_attempted(&[rows[0].seq]).unwrap();
        assert_eq!(s.oldest_pending_outbox().unwrap(), Some(first));
        s.mark_delivered(&[Delivered {
            seq: rows[0].seq,
            topic: "t".into(),
            partition: 0,
            offset: 0,
        }])
        .unwrap();
        let second: Timestamp = "2026-03-02T01:05:00Z".parse().unwrap();
        assert_eq!(s.oldest_pending_outbox().unwrap(), Some(second));
        s.mark_dead(rows[1].seq, "too large").unwrap();
        assert_eq!(s.oldest_pending_outbox().unwrap(), None);
    });
}

/// A mail being sent when the process stopped is marked unknown at start, not sent again
/// (here an alert raised by a status event, with its mail).
#[test]
fn interrupted_mail_is_not_sent_again() {
    each_backend(|s| {
        let it = item("a");
        s.record_item(&it).unwrap();
        let alert = FiredAlert {
            id: "al".into(),
            item_id: it.envelope.id.to_string(),
            clock_id: "c".into(),
            kind: "breach".into(),
            department: "desk".into(),
            due_at: Timestamp::UNIX_EPOCH,
            scheduled_at: Timestamp::UNIX_EPOCH,
            fired_at: Timestamp::UNIX_EPOCH,
            late: true,
            record: NewOutbox {
                ce_id: "al".into(),
                ..it.outbox[0].clone()
            },
            mail: Some(NewMail {
                recipients: vec!["a@b.cn".into()],
                subject: "s".into(),
                body: "b".into(),
            }),
            provisional: false,
        };
        let ev = StatusRecord::new(
            "e1",
            it.envelope.id.as_str(),
            "replied",
            Timestamp::UNIX_EPOCH,
        );
        let mut raise = |_: &Envelope, _: &mut Vec<Clock>| ClockWrites {
            alerts: vec![alert.clone()],
            ..ClockWrites::default()
        };
        assert!(matches!(
            s.apply_status(&ev, &mut raise).unwrap(),
            StatusOutcome::Applied(_)
        ));
        assert_eq!(s.pending_mail(10).unwrap().len(), 1);
        assert_eq!(
            s.pending_count().unwrap(),
            2,
            "the item's record and the alert's"
        );
        s.mark_mail(&["al".into()], MailState::Sending, None)
            .unwrap();
        assert_eq!(s.settle_interrupted_mail().unwrap(), 1);
        assert!(s.pending_mail(10).unwrap().is_empty());
    });
}

/// A page's versions and a batch's stored items are read in one call each, in the order asked,
/// `None` for an id the store does not have — on each backend, and what the one-id calls say.
#[test]
fn versions_and_states_are_read_for_many_ids_in_order() {
    each_backend(|s| {
        let mut a = item("many-a");
        a.version = Some("v1".into());
        let mut b = item("many-b");
        b.version = None;
        s.record_item(&a).unwrap();
        s.record_item(&b).unwrap();
        let (ia, ib) = (a.envelope.id.to_string(), b.envelope.id.to_string());
        let ids = vec![ib.clone(), "unknown".to_string(), ia.clone(), ia.clone()];
        assert_eq!(
            s.item_versions(&ids).unwrap(),
            [None, None, Some("v1".to_string()), Some("v1".to_string())]
        );
        let states = s.item_states(&ids).unwrap();
        assert_eq!(states.len(), 4);
        assert_eq!(states[0].as_ref().unwrap().0.id, b.envelope.id);
        assert!(states[1].is_none());
        let (env, version) = states[2].clone().unwrap();
        assert_eq!(env.id, a.envelope.id);
        assert_eq!(version.as_deref(), Some("v1"));
        for (id, state) in ids.iter().zip(&states) {
            assert_eq!(
                s.item_state(id).unwrap().map(|x| x.1),
                state.clone().map(|x| x.1)
            );
            assert_eq!(s.item_version(id).unwrap(), state.clone().and_then(|x| x.1));
        }
        assert!(s.item_versions(&[]).unwrap().is_empty());
    });
}
