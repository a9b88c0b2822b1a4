//! Leases and the fenced cursor (ARCHITECTURE.md, "Several instances").

use super::*;

/// An instance that lost its unit (frozen past the session timeout, then resumed) must not
/// move the unit's cursor: its write fails as fenced and the new owner's cursor stays.
#[test]
fn a_newer_lease_fences_the_older_owners_cursor_writes() {
    each_backend(|s| {
        let a = s.acquire_lease("hotline", "a").unwrap();
        assert_eq!(a.epoch, 1);
        s.set_cursor_leased("hotline", "10", &a).unwrap();
        let b = s.acquire_lease("hotline", "b").unwrap();
        assert_eq!(b.epoch, 2);
        assert!(!s.lease_holds(&a).unwrap());
        assert!(s.lease_holds(&b).unwrap());

        let err = s.set_cursor_leased("hotline", "99", &a).unwrap_err();
        assert!(
            matches!(err, StoreError::Fenced { ref unit, epoch: 1 } if unit == "hotline"),
            "{err}"
        );
        assert_eq!(s.cursor("hotline").unwrap().as_deref(), Some("10"));

        s.set_cursor_leased("hotline", "20", &b).unwrap();
        assert_eq!(s.cursor("hotline").unwrap().as_deref(), Some("20"));
        let rows = s.leases().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].unit.as_str(),
                rows[0].epoch,
                rows[0].instance.as_str()
            ),
            ("hotline", 2, "b")
        );
    });
}

/// Before any owner wrote it, a stale owner cannot write the cursor either: the check is
/// against the unit's newest lease, not only the epoch stored with the cursor.
#[test]
fn a_stale_owner_cannot_write_a_cursor_nobody_wrote_yet() {
    each_backend(|s| {
        let a = s.acquire_lease("portal", "a").unwrap();
        let _b = s.acquire_lease("portal", "b").unwrap();
        assert!(matches!(
            s.set_cursor_leased("portal", "5", &a),
            Err(StoreError::Fenced { .. })
        ));
        assert_eq!(s.cursor("portal").unwrap(), None);
    });
}

/// Leases are per unit: taking one unit fences nothing of another, and a unit never leased
/// fences every leased write.
#[test]
fn leases_are_per_unit() {
    each_backend(|s| {
        let h = s.acquire_lease("hotline", "a").unwrap();
        let p = s.acquire_lease("portal", "b").unwrap();
        assert_eq!((h.epoch, p.epoch), (1, 1));
        s.set_cursor_leased("hotline", "1", &h).unwrap();
        s.set_cursor_leased("portal", "2", &p).unwrap();
        let never = Lease {
            unit: "mailbox".into(),
            epoch: 1,
        };
        assert!(!s.lease_holds(&never).unwrap());
        assert!(s.set_cursor_leased("mailbox", "3", &never).is_err());
    });
}

/// Instances taking one unit at the same moment (a rebalance storm) each get their own epoch,
/// and only the newest may write the unit's cursor.
#[test]
fn concurrent_takers_get_distinct_epochs() {
    each_backend(|s| {
        let leases: Vec<Lease> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..8)
                .map(|i| sc.spawn(move || s.acquire_lease("hotline", &format!("i{i}")).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut epochs: Vec<i64> = leases.iter().map(|l| l.epoch).collect();
        epochs.sort();
        assert_eq!(epochs, (1..=8).collect::<Vec<_>>());
        for l in &leases {
            let r = s.set_cursor_leased("hotline", &l.epoch.to_string(), l);
            assert_eq!(r.is_ok(), l.epoch == 8, "epoch {}: {r:?}", l.epoch);
        }
        assert_eq!(s.cursor("hotline").unwrap().as_deref(), Some("8"));
    });
}
