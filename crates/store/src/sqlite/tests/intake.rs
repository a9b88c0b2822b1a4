//! Intake's and the relay's writes on every backend: group commit, upstream updates and
//! supplements, quarantine, report runs, dead letters and mail states.

use super::*;
use petitiond_core::sla::clock::State;

/// One bad item in a group (here: two records with the same CloudEvents id on one topic)
/// fails alone; the items before and after it commit, and a duplicate id within the group
/// is recorded once.
#[test]
fn a_failed_item_in_a_group_commit_leaves_nothing_and_the_others_commit() {
    each_backend(|s| {
        let mut bad = item("bad");
        bad.outbox.push(bad.outbox[0].clone());
        let out = s
            .record_items(&[item("a"), bad.clone(), item("b"), item("a")])
            .unwrap();
        assert!(matches!(out[0], Ok(Recorded::New(ref t)) if t.len() == 1));
        assert!(out[1].is_err(), "{:?}", out[1]);
        assert!(matches!(out[2], Ok(Recorded::New(_))));
        assert!(matches!(out[3], Ok(Recorded::Duplicate)));
        assert!(
            s.item_envelope(&bad.envelope.id.to_string())
                .unwrap()
                .is_none()
        );
        assert_eq!(s.pending_count().unwrap(), 2);
        assert_eq!(s.query_i64("SELECT COUNT(*) FROM sla_clocks"), 2);
    });
}

/// An update is a compare-and-set on the upstream version: a stale or repeated one writes
/// nothing.
#[test]
fn an_update_applies_only_on_the_expected_version() {
    each_backend(|s| {
        let mut it = item("u");
        it.version = Some("v1".into());
        let id = it.envelope.id.to_string();
        s.record_item(&it).unwrap();
        assert_eq!(s.item_version(&id).unwrap().as_deref(), Some("v1"));
        let mut env = it.envelope.clone();
        env.category = Some(petitiond_core::envelope::Category::Policy);
        let update = |expected: &str, version: &str, ce: &str| ItemUpdate {
            envelope: env.clone(),
            expected_version: Some(expected.into()),
            version: version.into(),
            outbox: vec![NewOutbox {
                ce_id: ce.into(),
                ..it.outbox[0].clone()
            }],
        };
        assert!(s.record_update(&update("v1", "v2", "ce-u2")).unwrap());
        assert!(
            !s.record_update(&update("v1", "v3", "ce-u3")).unwrap(),
            "stale"
        );
        let (stored, version) = s.item_state(&id).unwrap().unwrap();
        assert_eq!(
            stored.category,
            Some(petitiond_core::envelope::Category::Policy)
        );
        assert_eq!(version.as_deref(), Some("v2"));
        assert_eq!(s.pending_count().unwrap(), 2);
        assert!(s.item_state("nope").unwrap().is_none());
        assert!(s.item_version("nope").unwrap().is_none());
    });
}

/// A supplement stops the named open clocks, hands them (as they were) to the record
/// builder, and queues its records, all with the update; the timers go.
#[test]
fn a_supplement_stops_its_clocks_and_queues_its_records() {
    each_backend(|s| {
        let it = item("s");
        let id = it.envelope.id.to_string();
        s.record_item(&it).unwrap();
        let u = ItemUpdate {
            envelope: it.envelope.clone(),
            expected_version: None,
            version: "v2".into(),
            outbox: vec![],
        };
        let sup = Supplement {
            clocks: vec!["c".into()],
            at: "2026-03-02T01:10:00Z".parse().unwrap(),
        };
        let mut seen = Vec::new();
        let mut f = |clocks: &[Clock]| {
            seen.extend(clocks.iter().map(|c| (c.clock_id.clone(), c.state)));
            vec![NewOutbox {
                ce_id: "ce-supplied".into(),
                ..it.outbox[0].clone()
            }]
        };
        let timers = s.record_supplement(&u, &sup, &mut f).unwrap().unwrap();
        assert_eq!(seen, vec![("c".to_string(), State::Running)]);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers[0].at_ms, i64::MIN);
        assert_eq!(
            s.query_text(&format!(
                "SELECT state FROM sla_clocks WHERE item_id = '{id}' AND clock_id = 'c'"
            ))
            .as_deref(),
            Some("stopped")
        );
        assert_eq!(s.pending_count().unwrap(), 2);
        // The version moved: nothing written, the builder not called.
        let mut never = |_: &[Clock]| -> Vec<NewOutbox> { panic!("called on a stale update") };
        assert!(s.record_supplement(&u, &sup, &mut never).unwrap().is_none());
    });
}

/// The same bytes from the same source are quarantined once (a re-poll does not fill
/// quarantine); listed newest first.
#[test]
fn quarantine_keeps_one_entry_per_source_and_bytes() {
    each_backend(|s| {
        let q = |source: &str, raw: &str| Quarantined {
            source: source.into(),
            reference: "r1".into(),
            reason: "bad_json".into(),
            detail: "expected value".into(),
            raw_ref: raw.into(),
            size: 12,
        };
        let (first, new) = s.quarantine(&q("portal", "sha256:aa")).unwrap();
        assert!(new);
        assert_eq!(
            s.quarantine(&q("portal", "sha256:aa")).unwrap(),
            (first, false)
        );
        let (other, new) = s.quarantine(&q("hotline", "sha256:aa")).unwrap();
        assert!(new && other != first);
        let rows = s.list_quarantine(10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, other);
        assert_eq!(rows[1].entry, q("portal", "sha256:aa"));
        assert!(rows[1].at.ends_with('Z'), "{}", rows[1].at);
        assert_eq!(s.list_quarantine(1).unwrap().len(), 1);
    });
}

/// A report run is recorded once per kind and period, with its mails and records; the
/// mail goes pending → sending → sent, attempts counted when sending.
#[test]
fn a_report_run_queues_its_mail_and_records_once() {
    each_backend(|s| {
        let mail = NewMail {
            recipients: vec!["chief@office.cn".into()],
            subject: "monthly".into(),
            body: "figures".into(),
        };
        let rec = item("r").outbox[0].clone();
        assert!(!s.report_ran("monthly", "2026-10").unwrap());
        let mails = [("monthly-2026-10".to_string(), mail.clone())];
        assert!(
            s.record_report_run("monthly", "2026-10", &mails, std::slice::from_ref(&rec))
                .unwrap()
        );
        assert!(s.report_ran("monthly", "2026-10").unwrap());
        assert!(
            !s.record_report_run("monthly", "2026-10", &mails, &[rec])
                .unwrap()
        );
        assert_eq!(s.pending_count().unwrap(), 1);
        assert_eq!(s.pending_outbox(10).unwrap()[0].item_id, "report:monthly");
        let pending = s.pending_mail(10).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].recipients, mail.recipients);
        assert_eq!(pending[0].attempts, 0);
        let id = [pending[0].alert_id.clone()];
        s.mark_mail(&id, MailState::Sending, None).unwrap();
        s.mark_mail(&id, MailState::Pending, Some("421 try later"))
            .unwrap();
        assert_eq!(s.pending_mail(10).unwrap()[0].attempts, 1);
        s.mark_mail(&id, MailState::Sending, None).unwrap();
        s.mark_mail(&id, MailState::Sent, None).unwrap();
        assert!(s.pending_mail(10).unwrap().is_empty());
        assert_eq!(s.settle_interrupted_mail().unwrap(), 0);
        assert!(
            s.query_text("SELECT sent_at FROM mail_outbox")
                .is_some_and(|t| t.ends_with('Z'))
        );
    });
}

/// A dead record is listed with its reason and, replayed (optionally to another topic),
/// pending again from attempt 0; an operational record queues outside any item.
#[test]
fn dead_records_are_listed_and_replayed() {
    each_backend(|s| {
        s.record_item(&item("a")).unwrap();
        let extra = NewOutbox {
            ce_id: "ce-op".into(),
            ..item("a").outbox[0].clone()
        };
        s.enqueue("ops", &extra).unwrap();
        let rows = s.pending_outbox(10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].item_id, "ops");
        assert_eq!(rows[0].headers, item("a").outbox[0].headers);
        s.mark_attempted(&[rows[0].seq]).unwrap();
        s.mark_failed(rows[0].seq, "broker down").unwrap();
        s.mark_dead(rows[0].seq, "too large").unwrap();
        let dead = s.dead_letters(10).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].seq, dead[0].reason.as_str()),
            (rows[0].seq, "too large")
        );
        assert!(dead[0].at.ends_with('Z'));
        assert_eq!(
            s.replay_dead(&[rows[0].seq, rows[1].seq], Some("t2"))
                .unwrap(),
            1
        );
        assert!(s.dead_letters(10).unwrap().is_empty());
        let again = s.pending_outbox(10).unwrap();
        assert_eq!((again[0].topic.as_str(), again[0].attempts), ("t2", 0));
        assert_eq!(again[1].topic, "t");
    });
}

/// Cursors without a lease: set, overwritten, per source.
#[test]
fn cursors_are_kept_per_source() {
    each_backend(|s| {
        assert_eq!(s.cursor("portal").unwrap(), None);
        s.set_cursor("portal", "1").unwrap();
        s.set_cursor("portal", "2").unwrap();
        s.set_cursor("hotline", "x").unwrap();
        assert_eq!(s.cursor("portal").unwrap().as_deref(), Some("2"));
        assert_eq!(s.cursor("hotline").unwrap().as_deref(), Some("x"));
    });
}
