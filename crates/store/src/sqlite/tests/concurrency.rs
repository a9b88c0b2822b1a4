//! Several writers at once (threads here; instances sharing a PostgreSQL store in
//! production): what SQLite gets from its single writer must hold on every backend.

use super::*;

const WRITERS: usize = 6;
/// Distinct status events applied at once, each delivered twice.
const EVENTS: usize = 16;

/// The same item recorded by several writers at once (two instances polling the same
/// upstream during a takeover) is recorded once; the others see a duplicate.
#[test]
fn concurrent_records_of_one_item_record_it_once() {
    each_backend(|s| {
        let outcomes: Vec<Recorded> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..WRITERS)
                .map(|_| sc.spawn(|| s.record_item(&item("same")).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let new = outcomes
            .iter()
            .filter(|r| matches!(r, Recorded::New(_)))
            .count();
        assert_eq!(new, 1, "{outcomes:?}");
        assert_eq!(s.pending_count().unwrap(), 1);
        assert_eq!(s.query_i64("SELECT COUNT(*) FROM sla_clocks"), 1);
    });
}

/// Status events of one item applied at once each see the clocks the one before left (no
/// lost update), and a redelivered event is applied once whoever gets it.
#[test]
fn concurrent_status_events_of_one_item_apply_one_after_the_other() {
    each_backend(|s| {
        let it = item("busy");
        let id = it.envelope.id.to_string();
        s.record_item(&it).unwrap();
        let applied: Vec<StatusOutcome> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..EVENTS * 2)
                .map(|i| {
                    let id = id.clone();
                    sc.spawn(move || {
                        // Events 0..EVENTS distinct; the rest redeliver them.
                        let ev = StatusRecord::new(
                            &format!("e{}", i % EVENTS),
                            &id,
                            "viewed",
                            Timestamp::UNIX_EPOCH,
                        );
                        let mut bump = |_: &Envelope, clocks: &mut Vec<Clock>| {
                            clocks[0].extended_days += 1;
                            ClockWrites {
                                updated: vec![(0, None)],
                                ..ClockWrites::default()
                            }
                        };
                        s.apply_status(&ev, &mut bump).unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let n = applied
            .iter()
            .filter(|o| matches!(o, StatusOutcome::Applied(_)))
            .count();
        assert_eq!(n, EVENTS, "{applied:?}");
        assert_eq!(
            s.query_i64("SELECT extended_days FROM sla_clocks"),
            EVENTS as i64,
            "every applied event saw the one before"
        );
    });
}

/// Writers queueing records at once each get their own sequence number; nothing is lost.
#[test]
fn concurrent_enqueues_keep_every_record() {
    each_backend(|s| {
        std::thread::scope(|sc| {
            for w in 0..WRITERS {
                sc.spawn(move || {
                    for i in 0..20 {
                        let o = NewOutbox {
                            ce_id: format!("ce-{w}-{i}"),
                            ..item("x").outbox[0].clone()
                        };
                        s.enqueue("ops", &o).unwrap();
                    }
                });
            }
        });
        let rows = s.pending_outbox(1000).unwrap();
        assert_eq!(rows.len(), WRITERS * 20);
        let mut seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        seqs.dedup();
        assert_eq!(seqs.len(), WRITERS * 20, "distinct, in order");
    });
}
