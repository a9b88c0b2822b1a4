//! Fixtures for the store's tests and for the daemon's tests that drive the store with the
//! layers above it (feature `testing`; not part of a production build).

use crate::{Decision, NewItem, NewOutbox, SqliteStore};
use petitiond_core::envelope::{Channel, Envelope, Personal, Request, Upstream};
use petitiond_core::sla::clock::{Clock, State};
use std::time::Duration;

/// A fresh store in a temporary directory (kept alive by the returned guard).
pub fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap();
    (dir, s)
}

/// A letter item `upstream` with one outbox row and one running clock `c` of `desk`.
pub fn item(upstream: &str) -> NewItem {
    let env = Envelope::new(
        Channel::Letter,
        Upstream {
            id: upstream.into(),
            url: None,
            source: "mailbox".into(),
            raw_ref: "sha256:00".into(),
            ..Default::default()
        },
        "2026-03-02T01:00:00Z".parse().unwrap(),
        Request {
            title: None,
            content: Personal::new("x"),
        },
    );
    NewItem {
        outbox: vec![NewOutbox {
            topic: "t".into(),
            key: env.id.to_string(),
            ce_id: format!("ce-{upstream}"),
            headers: vec![("ce_specversion".into(), "1.0".into())],
            payload: b"{}".to_vec(),
        }],
        decision: Decision {
            rule_id: "default".into(),
            rules_version: "v0".into(),
            lead: "desk".into(),
            assists: vec![],
            decided_at: "2026-03-02T01:00:00Z".parse().unwrap(),
        },
        clocks: vec![(
            Clock {
                item_id: env.id.to_string(),
                clock_id: "c".into(),
                department: "desk".into(),
                state: State::Running,
                started_at: env.received_at,
                due_at: "2026-03-02T02:00:00Z".parse().unwrap(),
                paused_at: None,
                extended_days: 0,
                last_alert_at: None,
                provisional: false,
                held: jiff::SignedDuration::ZERO,
            },
            Some("2026-03-02T01:30:00Z".parse().unwrap()),
        )],
        envelope: env,
        version: None,
        person_index: None,
        writeback: Vec::new(),
    }
}
