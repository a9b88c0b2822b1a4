//! The in-memory record index both sims serve from: a [`Rec`] is a few numbers and its id (its
//! texts are regenerated from `(seed, seq)`), kept in creation and update order
//! ([`RecordStore`]); deliberately bad records ([`BadKind`]), caller-written petitions
//! ([`Script`]) and the wire helpers [`Field`] and [`Element`].

use crate::faults::{Faults, every};
use crate::texts::Petition;
use crate::time::local_datetime;
use jiff::civil::DateTime;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

/// A petition written out by the caller (the demo's sample items): its title, text and service
/// code replace the generated ones on the wire; the petitioner's name, address and district
/// stay generated. `phone` and `id_number`, when given, replace the generated ones (the same
/// petitioner across records: a repeat petition).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    pub title: String,
    pub content: String,
    /// Open311 `service_code` / the portal's `matterCode`.
    pub service_code: Option<String>,
    /// Open311 `service_name` (the hotline's name of the code).
    pub service_name: Option<String>,
    pub phone: Option<String>,
    pub id_number: Option<String>,
    /// Phone and address are empty on the wire (an incomplete item).
    pub withhold_contact: bool,
}

impl Script {
    /// The generated petition with this script's fields put in.
    pub(crate) fn apply(&self, p: &mut Petition) {
        p.title.clone_from(&self.title);
        p.body.clone_from(&self.content);
        if let Some(phone) = &self.phone {
            p.phone.clone_from(phone);
        }
        if let Some(id) = &self.id_number {
            p.id_number.clone_from(id);
        }
    }
}

/// How a deliberately bad record is broken, in the order they rotate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKind {
    /// The object has every field but its id (`service_request_id` / `petitionNo`).
    NoId,
    /// An unparsable date: hotline `"requested_datetime":"yesterday"`, portal
    /// `"createTime":"2026-13-45"`; the other times stay valid.
    BadDate,
    /// The array element is not an object: a bare string `"数据异常"` (even `seq`) or the bare
    /// number `seq` (odd `seq`).
    NotObject,
    /// A valid record whose description/content is at least [`OVERSIZE_BYTES`] long.
    Oversize,
}

impl BadKind {
    const ROTATION: [BadKind; 4] = [
        BadKind::NoId,
        BadKind::BadDate,
        BadKind::NotObject,
        BadKind::Oversize,
    ];

    /// Whether the served element carries the record's id.
    pub fn has_id(self) -> bool {
        matches!(self, BadKind::BadDate | BadKind::Oversize)
    }
}

/// Size of the text of a [`BadKind::Oversize`] record: 300 KiB (UTF-8 bytes), at least.
pub const OVERSIZE_BYTES: usize = 300 * 1024;

/// A field real servers sometimes leave out, sometimes send as `null`. Use with
/// `#[serde(skip_serializing_if = "Field::is_absent")]`.
#[derive(Debug)]
pub(crate) enum Field<T> {
    Absent,
    Null,
    Is(T),
}

impl<T> Field<T> {
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }
}

impl<T: serde::Serialize> serde::Serialize for Field<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Is(v) => v.serialize(s),
            Field::Absent | Field::Null => s.serialize_none(),
        }
    }
}

/// One element of a served array: a record, or the bare value a [`BadKind::NotObject`] is.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub(crate) enum Element<T> {
    Record(T),
    Text(&'static str),
    Number(u64),
}

impl<T> Element<T> {
    /// `"数据异常"` for an even `seq`, the number `seq` for an odd one.
    pub(crate) fn not_object(seq: u64) -> Element<T> {
        if seq.is_multiple_of(2) {
            Element::Text("数据异常")
        } else {
            Element::Number(seq)
        }
    }
}

/// One record as the index holds it; everything else is regenerated from `(seed, seq)`.
#[derive(Clone, Debug)]
pub(crate) struct Rec {
    /// Creation number, from 1: seeds the record's texts and decides bad records and quirks.
    pub seq: u64,
    pub id: Arc<str>,
    /// Unix seconds.
    pub created: i64,
    pub updated: i64,
    /// Number of `update_record`s so far: drives status and status notes.
    pub version: u32,
    pub bad: Option<BadKind>,
    /// Malformed optional fields (`Faults::malformed_optional_every`).
    pub malformed: bool,
    /// Attachments that always answer 500 (`Faults::broken_media_every`).
    pub broken_media: bool,
    /// Phone and address are empty on the wire until `supplement_record`.
    pub contact_withheld: bool,
    /// A written-out petition in place of the generated one.
    pub script: Option<Arc<Script>>,
}

/// `(time, id, index into recs)`: ordered by time then id; the index never decides.
type Key = (i64, Arc<str>, u32);

/// The records and two ordered indexes (by creation and by update time, ties by id).
pub(crate) struct RecordStore {
    recs: Vec<Rec>,
    by_id: HashMap<Arc<str>, u32>,
    by_created: BTreeSet<Key>,
    by_updated: BTreeSet<Key>,
    /// `by_updated` flattened, for offset pagination; dropped on every change to `by_updated`.
    updated_vec: Option<Vec<Key>>,
    bad_made: u64,
    make_id: fn(DateTime, u64) -> String,
}

fn empty() -> Arc<str> {
    Arc::from("")
}

/// Index bounds for a time range on one of the ordered sets.
fn key_bounds(lo: Bound<i64>, hi: Bound<i64>) -> (Bound<Key>, Bound<Key>) {
    let lo = match lo {
        Bound::Included(t) => Bound::Included((t, empty(), 0)),
        Bound::Excluded(t) => Bound::Included((t.saturating_add(1), empty(), 0)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let hi = match hi {
        Bound::Included(t) => Bound::Excluded((t.saturating_add(1), empty(), 0)),
        Bound::Excluded(t) => Bound::Excluded((t, empty(), 0)),
        Bound::Unbounded => Bound::Unbounded,
    };
    (lo, hi)
}

impl RecordStore {
    /// `make_id(local creation time, seq)` writes a record's id; it must be unique per `seq`.
    pub(crate) fn new(make_id: fn(DateTime, u64) -> String) -> RecordStore {
        RecordStore {
            recs: Vec::new(),
            by_id: HashMap::new(),
            by_created: BTreeSet::new(),
            by_updated: BTreeSet::new(),
            updated_vec: None,
            bad_made: 0,
            make_id,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.recs.len()
    }

    #[cfg(test)]
    pub(crate) fn add(&mut self, created: i64, bad_every: Option<u32>) -> &Rec {
        self.add_with(
            created,
            &Faults {
                bad_record_every: bad_every,
                ..Faults::default()
            },
        )
    }

    /// Adds a record with the record-level faults in force (`bad_record_every`,
    /// `malformed_optional_every`, `broken_media_every`).
    pub(crate) fn add_with(&mut self, created: i64, faults: &Faults) -> &Rec {
        let bad_every = faults.bad_record_every;
        let seq = self.recs.len() as u64 + 1;
        let bad = every(seq, bad_every).then(|| {
            let k = BadKind::ROTATION[(self.bad_made % 4) as usize];
            self.bad_made += 1;
            k
        });
        let id: Arc<str> = Arc::from((self.make_id)(local_datetime(created), seq));
        let idx = self.recs.len() as u32;
        self.by_id.insert(id.clone(), idx);
        self.by_created.insert((created, id.clone(), idx));
        self.by_updated.insert((created, id.clone(), idx));
        self.updated_vec = None;
        self.recs.push(Rec {
            seq,
            id,
            created,
            updated: created,
            version: 0,
            bad,
            malformed: bad.is_none() && every(seq, faults.malformed_optional_every),
            broken_media: every(seq, faults.broken_media_every),
            contact_withheld: false,
            script: None,
        });
        &self.recs[idx as usize]
    }

    /// Adds a good record (no record-level fault), its contact withheld or not, carrying
    /// `script` if given.
    pub(crate) fn add_good(
        &mut self,
        created: i64,
        withhold_contact: bool,
        script: Option<Script>,
    ) -> &Rec {
        let idx = self.recs.len();
        self.add_with(created, &Faults::default());
        let rec = &mut self.recs[idx];
        rec.contact_withheld = withhold_contact;
        rec.script = script.map(Arc::new);
        rec
    }

    /// Gives the petitioner's contact back and bumps the update time as [`RecordStore::update`]
    /// does, without a status step. `false` if there is no such id.
    pub(crate) fn supplement(&mut self, id: &str, now: i64) -> bool {
        let Some(&idx) = self.by_id.get(id) else {
            return false;
        };
        let rec = &mut self.recs[idx as usize];
        self.by_updated.remove(&(rec.updated, rec.id.clone(), idx));
        rec.updated = now.max(rec.updated + 1);
        rec.contact_withheld = false;
        self.by_updated.insert((rec.updated, rec.id.clone(), idx));
        self.updated_vec = None;
        true
    }

    /// Bumps the record's version and its update time to `now`, or one second past its previous
    /// update time if that is not earlier (so an update is always visible to `updated_after`).
    pub(crate) fn update(&mut self, id: &str, now: i64) -> bool {
        let Some(&idx) = self.by_id.get(id) else {
            return false;
        };
        let rec = &mut self.recs[idx as usize];
        self.by_updated.remove(&(rec.updated, rec.id.clone(), idx));
        rec.updated = now.max(rec.updated + 1);
        rec.version += 1;
        self.by_updated.insert((rec.updated, rec.id.clone(), idx));
        self.updated_vec = None;
        true
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Rec> {
        self.by_id.get(id).map(|&i| &self.recs[i as usize])
    }

    pub(crate) fn at(&self, idx: u32) -> &Rec {
        &self.recs[idx as usize]
    }

    /// Records with `lo..hi` creation times, ascending by (created, id).
    pub(crate) fn range_created(
        &self,
        lo: Bound<i64>,
        hi: Bound<i64>,
    ) -> impl Iterator<Item = &Rec> + '_ {
        self.by_created
            .range(key_bounds(lo, hi))
            .map(|k| &self.recs[k.2 as usize])
    }

    /// Records with `lo..hi` update times, ascending by (updated, id).
    pub(crate) fn range_updated(
        &self,
        lo: Bound<i64>,
        hi: Bound<i64>,
    ) -> impl Iterator<Item = &Rec> + '_ {
        self.by_updated
            .range(key_bounds(lo, hi))
            .map(|k| &self.recs[k.2 as usize])
    }

    /// Records strictly after the position `(updated, id)`, ascending by (updated, id).
    pub(crate) fn updated_after_key(
        &self,
        updated: i64,
        id: &str,
    ) -> impl Iterator<Item = &Rec> + '_ {
        let lo: Key = (updated, Arc::from(id), u32::MAX);
        self.by_updated
            .range((Bound::Excluded(lo), Bound::Unbounded))
            .map(|k| &self.recs[k.2 as usize])
    }

    /// Offset pagination over the records updated strictly after `after` (by update time, then
    /// id): `(how many there are, the record just before the page if any, the page)`. Uses a
    /// flattened copy of the index, rebuilt only after a change, so a page costs O(log n).
    pub(crate) fn updated_page(
        &mut self,
        after: Option<i64>,
        offset: usize,
        size: usize,
    ) -> (usize, Option<Rec>, Vec<Rec>) {
        let by_updated = &self.by_updated;
        let v = self
            .updated_vec
            .get_or_insert_with(|| by_updated.iter().cloned().collect());
        let first = after.map_or(0, |t| v.partition_point(|k| k.0 <= t));
        let from = first.saturating_add(offset).min(v.len());
        let to = from.saturating_add(size).min(v.len());
        let previous = (from > first).then(|| self.recs[v[from - 1].2 as usize].clone());
        let page = v[from..to]
            .iter()
            .map(|k| self.recs[k.2 as usize].clone())
            .collect();
        (v.len() - first, previous, page)
    }

    pub(crate) fn valid_ids(&self) -> Vec<String> {
        self.recs
            .iter()
            .filter(|r| r.bad.is_none())
            .map(|r| r.id.to_string())
            .collect()
    }

    pub(crate) fn bad_ids(&self) -> Vec<String> {
        self.recs
            .iter()
            .filter(|r| r.bad.is_some_and(BadKind::has_id))
            .map(|r| r.id.to_string())
            .collect()
    }
}

/// `n` creation times spread evenly over `from..=to` (all `from` when `n == 1`).
pub(crate) fn spread(n: usize, from: i64, to: i64) -> impl Iterator<Item = i64> {
    let span = (to - from).max(0) as i128;
    let steps = (n.max(2) - 1) as i128;
    (0..n).map(move |i| from + (span * i as i128 / steps) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_covers_both_ends() {
        assert_eq!(spread(3, 10, 20).collect::<Vec<_>>(), vec![10, 15, 20]);
        assert_eq!(spread(1, 10, 20).collect::<Vec<_>>(), vec![10]);
    }

    #[test]
    fn store_orders_by_time_then_id_and_moves_updates() {
        let mut s = RecordStore::new(|_, seq| format!("R{seq:03}"));
        s.add(20, None);
        s.add(10, None);
        s.add(20, None);
        let ids = |it: Vec<&Rec>| it.iter().map(|r| r.id.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ids(s
                .range_created(Bound::Unbounded, Bound::Unbounded)
                .collect()),
            ["R002", "R001", "R003"]
        );
        assert_eq!(
            ids(s
                .range_created(Bound::Included(20), Bound::Included(20))
                .collect()),
            ["R001", "R003"]
        );
        assert!(s.update("R002", 15));
        assert!(!s.update("nope", 15));
        assert_eq!(
            ids(s
                .range_updated(Bound::Excluded(10), Bound::Unbounded)
                .collect()),
            ["R002", "R001", "R003"]
        );
        assert_eq!(ids(s.updated_after_key(20, "R001").collect()), ["R003"]);
        let (total, prev, page) = s.updated_page(Some(15), 1, 5);
        assert_eq!(total, 2);
        assert_eq!(prev.map(|r| r.id.to_string()), Some("R001".into()));
        assert_eq!(ids(page.iter().collect()), ["R003"]);
        // An update is always later than the previous one, even within the same second.
        assert!(s.update("R003", 20));
        assert_eq!(s.get("R003").unwrap().updated, 21);
    }

    #[test]
    fn bad_records_rotate_through_the_four_kinds() {
        let mut s = RecordStore::new(|_, seq| format!("R{seq}"));
        let kinds: Vec<Option<BadKind>> = (0..10).map(|_| s.add(1, Some(2)).bad).collect();
        assert_eq!(
            kinds,
            [
                None,
                Some(BadKind::NoId),
                None,
                Some(BadKind::BadDate),
                None,
                Some(BadKind::NotObject),
                None,
                Some(BadKind::Oversize),
                None,
                Some(BadKind::NoId),
            ]
        );
        assert_eq!(s.bad_ids(), ["R4", "R8"]);
        assert_eq!(s.valid_ids().len(), 5);
    }
}
