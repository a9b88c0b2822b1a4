//! A generated multi-month history with known answers, for the report's tests.
//!
//! [`History::generate`] writes thousands of items (December 2025 to November 2026, every
//! channel, category and lead) through the store API — `record_items`, `apply_status`, `fire`
//! — with their statutory clocks, status events (accepted; replied `ok` or `bounced`;
//! evaluated with the three verdicts), repeat-index rows and escalation alerts, and keeps a
//! model of what it wrote. [`History::expected_monthly`] and [`History::expected_key_cases`]
//! apply the definitions of `report` to the model by other means than `figures` (linear scans,
//! working days counted day by day with `is_working_day`), and the planted cases carry
//! answers counted by hand (`planted_*`).

use super::{KeyCase, KeyReason, MonthlyReport, Overdue, RepeatPetition, TypeCount};
use crate::config::Config;
use crate::store::{
    ClockWrites, Decision, Fired, FiredAlert, NewItem, NewOutbox, PersonIndex, SqliteStore,
    StatusRecord, Store,
};
use jiff::{SignedDuration, Timestamp};
use petitiond_core::envelope::{Category, Channel, Envelope, Personal, Request, Stage, Upstream};
use petitiond_core::sla::clock::{Clock, State};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

pub const DEPARTMENTS: [&str; 5] = ["hrss", "housing", "health", "edu", "desk"];
const CHANNELS: [Channel; 3] = [Channel::Hotline, Channel::Portal, Channel::Letter];
const CATEGORIES: [Category; 4] = [
    Category::Livelihood,
    Category::Rights,
    Category::Policy,
    Category::Historical,
];

pub struct MItem {
    pub id: String,
    pub channel: Channel,
    pub category: Option<Category>,
    pub lead: String,
    pub assists: Vec<String>,
    pub received: Timestamp,
    pub stage_rank: u8,
    pub title: Option<String>,
    pub content: String,
    pub created: Option<Timestamp>,
    pub escalated: bool,
    pub person: Option<String>,
    /// Row of its `statutory.accept` clock (for `fire`).
    accept_row: Option<i64>,
}

pub struct MClock {
    pub item: usize,
    pub clock_id: &'static str,
    pub department: String,
    pub started: Timestamp,
    pub due: Timestamp,
    pub stopped: Option<Timestamp>,
}

pub struct MEval {
    pub item: usize,
    pub at: Timestamp,
    pub verdict: &'static str,
}

pub struct History {
    pub store: SqliteStore,
    pub cfg: Config,
    pub now: Timestamp,
    pub items: Vec<MItem>,
    pub clocks: Vec<MClock>,
    pub evals: Vec<MEval>,
    pub bounced: BTreeSet<usize>,
    /// Planted clocks' item ids with their lateness counted by hand.
    pub planted_late: Vec<(String, u32)>,
    /// Planted repeat petitioners (keys) and those planted NOT to be repeats in 2026-11.
    pub planted_repeat: Vec<String>,
    pub planted_not_repeat: Vec<String>,
    /// Planted key cases (item id, reasons) and items planted just off the list.
    pub planted_key: Vec<(String, Vec<KeyReason>)>,
    pub planted_not_key: Vec<String>,
    seq: u64,
    rng: StdRng,
    _dir: tempfile::TempDir,
}

fn local(s: &str) -> Timestamp {
    // Asia/Shanghai, the default `sla.time_zone`.
    jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", s)
        .expect("datetime")
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz"))
        .expect("zoned")
        .timestamp()
}

/// A keyed-hash-like person key: distinct in its first eight characters.
fn key(n: u64) -> String {
    format!("{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

pub fn config() -> Config {
    let mut text = String::from("[kafka]\nbrokers = \"127.0.0.1:9\"\n");
    for d in DEPARTMENTS {
        text.push_str(&format!(
            "[[departments]]\nid = \"{d}\"\nname = \"{d}\"\ntopic = \"t.{d}\"\n"
        ));
    }
    text.push_str(
        "[routing]\ndefault_lead = \"desk\"\n\
         [[sla.clocks]]\nid = \"statutory.accept\"\nrule = { kind = \"calendar_days\", days = 15, roll_forward = true }\nstop_on = [\"accepted\", \"rejected\"]\ncitation = \"t\"\n\
         [[sla.clocks]]\nid = \"statutory.handle\"\nrule = { kind = \"calendar_days\", days = 60, roll_forward = true }\nstart_on = \"accepted\"\nstop_on = [\"replied\"]\ncitation = \"t\"\n",
    );
    Config::parse(&text, "t.toml", std::path::Path::new(".")).expect("config")
}

/// What an item is, for [`History::item`].
pub struct Spec {
    pub channel: Channel,
    pub category: Option<Category>,
    pub lead: &'static str,
    pub received: Timestamp,
    pub person: Option<String>,
    pub created: Option<Timestamp>,
    pub title: Option<String>,
    pub content: String,
    /// Start the statutory acceptance clock.
    pub clocks: bool,
}

impl History {
    pub fn empty(seed: u64, now: Timestamp) -> History {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("r.db"), std::time::Duration::from_secs(5))
            .expect("store");
        History {
            store,
            cfg: config(),
            now,
            items: Vec::new(),
            clocks: Vec::new(),
            evals: Vec::new(),
            bounced: BTreeSet::new(),
            planted_late: Vec::new(),
            planted_repeat: Vec::new(),
            planted_not_repeat: Vec::new(),
            planted_key: Vec::new(),
            planted_not_key: Vec::new(),
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            _dir: dir,
        }
    }

    fn new_item(&mut self, s: Spec) -> NewItem {
        self.seq += 1;
        let mut env = Envelope::new(
            s.channel,
            Upstream {
                id: format!("u{:06}", self.seq),
                source: "portal".into(),
                raw_ref: "sha256:00".into(),
                ..Default::default()
            },
            s.received,
            Request {
                title: s.title.clone().map(Personal::new),
                content: Personal::new(s.content.clone()),
            },
        );
        env.category = s.category;
        env.upstream_created_at = s.created;
        let id = env.id.to_string();
        let assists: Vec<String> = if s.category == Some(Category::Historical) {
            vec!["desk".into()]
        } else {
            vec![]
        };
        let matter = crate::routing::repeat::matter(s.category, s.lead);
        let clocks = if s.clocks {
            let due = s.received + SignedDuration::from_hours(15 * 24);
            vec![(
                Clock {
                    item_id: id.clone(),
                    clock_id: "statutory.accept".into(),
                    department: s.lead.into(),
                    state: State::Running,
                    started_at: s.received,
                    due_at: due,
                    paused_at: None,
                    extended_days: 0,
                    last_alert_at: None,
                    provisional: false,
                    held: SignedDuration::ZERO,
                },
                Some(due),
            )]
        } else {
            vec![]
        };
        let person_index = match (&s.person, &matter) {
            (Some(p), Some(m)) => Some(PersonIndex {
                person_keys: vec![p.clone()],
                matter: m.clone(),
            }),
            _ => None,
        };
        self.items.push(MItem {
            id: id.clone(),
            channel: s.channel,
            category: s.category,
            lead: s.lead.into(),
            assists: assists.clone(),
            received: s.received,
            stage_rank: 0,
            title: s.title,
            content: s.content,
            created: s.created,
            escalated: false,
            person: s.person.filter(|_| matter.is_some()),
            accept_row: None,
        });
        if s.clocks {
            self.clocks.push(MClock {
                item: self.items.len() - 1,
                clock_id: "statutory.accept",
                department: s.lead.into(),
                started: s.received,
                due: s.received + SignedDuration::from_hours(15 * 24),
                stopped: None,
            });
        }
        NewItem {
            decision: Decision {
                rule_id: "r".into(),
                rules_version: "v".into(),
                lead: s.lead.into(),
                assists,
                decided_at: s.received,
            },
            outbox: vec![],
            clocks,
            envelope: env,
            version: None,
            person_index,
            writeback: vec![],
        }
    }

    /// Records items in one group commit; returns their indexes.
    pub fn items(&mut self, specs: Vec<Spec>) -> Vec<usize> {
        let first = self.items.len();
        let new: Vec<NewItem> = specs.into_iter().map(|s| self.new_item(s)).collect();
        let results = self.store.record_items(&new).expect("record");
        for (k, r) in results.into_iter().enumerate() {
            match r.expect("item") {
                crate::store::Recorded::New(timers) => {
                    self.items[first + k].accept_row = timers.first().map(|t| t.clock_row)
                }
                crate::store::Recorded::Duplicate => panic!("duplicate item"),
            }
        }
        (first..self.items.len()).collect()
    }

    pub fn item(&mut self, s: Spec) -> usize {
        self.items(vec![s])[0]
    }

    fn event(&mut self, i: usize, event: &str, at: Timestamp, verdict: Option<&str>) {
        assert!(at <= self.now, "an event after now");
        self.seq += 1;
        let stage = match (event, verdict) {
            ("accepted", _) => Some(Stage::Accepted),
            ("replied", Some("bounced")) => None,
            ("replied", _) => Some(Stage::Replied),
            ("evaluated", _) => Some(Stage::Evaluated),
            _ => None,
        };
        let mut ev = StatusRecord::new(&format!("e{}", self.seq), &self.items[i].id, event, at);
        ev.department = Some(self.items[i].lead.clone());
        ev.person = Some("staff-1".into());
        ev.verdict = verdict.map(str::to_string);
        ev.stage = stage;
        let lead = self.items[i].lead.clone();
        let id = self.items[i].id.clone();
        let stops: &[&str] = match (event, verdict) {
            ("accepted" | "rejected", _) => &["statutory.accept"],
            ("replied", Some("bounced")) => &[],
            ("replied", _) => &["statutory.handle"],
            _ => &[],
        };
        let start_handle = event == "accepted";
        let mut f = |_: &Envelope, clocks: &mut Vec<Clock>| {
            let mut w = ClockWrites::default();
            for (k, c) in clocks.iter_mut().enumerate() {
                if stops.contains(&c.clock_id.as_str()) && c.state != State::Stopped {
                    c.state = State::Stopped;
                    w.updated.push((k, None));
                }
            }
            if start_handle {
                w.started.push((
                    Clock {
                        item_id: id.clone(),
                        clock_id: "statutory.handle".into(),
                        department: lead.clone(),
                        state: State::Running,
                        started_at: at,
                        due_at: at + SignedDuration::from_hours(60 * 24),
                        paused_at: None,
                        extended_days: 0,
                        last_alert_at: None,
                        provisional: false,
                        held: SignedDuration::ZERO,
                    },
                    None,
                ));
            }
            w
        };
        self.store.apply_status(&ev, &mut f).expect("status");
        for c in self.clocks.iter_mut().filter(|c| c.item == i) {
            if stops.contains(&c.clock_id) && c.stopped.is_none() {
                c.stopped = Some(at);
            }
        }
        if start_handle {
            self.clocks.push(MClock {
                item: i,
                clock_id: "statutory.handle",
                department: lead,
                started: at,
                due: at + SignedDuration::from_hours(60 * 24),
                stopped: None,
            });
        }
        if let Some(s) = stage {
            let r = s.rank();
            let it = &mut self.items[i];
            it.stage_rank = it.stage_rank.max(r);
        }
        match (event, verdict) {
            ("replied", Some("bounced")) => {
                self.bounced.insert(i);
            }
            ("evaluated", Some(v)) => {
                let verdict = match v {
                    "satisfied" => "satisfied",
                    "basically_satisfied" => "basically_satisfied",
                    _ => "dissatisfied",
                };
                self.evals.push(MEval {
                    item: i,
                    at,
                    verdict,
                });
            }
            _ => {}
        }
    }

    pub fn accept(&mut self, i: usize, at: Timestamp) {
        self.event(i, "accepted", at, None);
    }
    pub fn reply(&mut self, i: usize, at: Timestamp, bounced: bool) {
        self.event(
            i,
            "replied",
            at,
            Some(if bounced { "bounced" } else { "ok" }),
        );
    }
    pub fn evaluate(&mut self, i: usize, at: Timestamp, verdict: &str) {
        self.event(i, "evaluated", at, Some(verdict));
    }

    /// An escalation alert on the item's acceptance clock (the timer engine's `fire`).
    pub fn escalate(&mut self, i: usize, at: Timestamp) {
        let row = self.items[i].accept_row.expect("an acceptance clock");
        let id = self.items[i].id.clone();
        let mut f = |c: &Clock| Fired {
            alerts: vec![FiredAlert {
                id: format!("a-{id}"),
                item_id: id.clone(),
                clock_id: c.clock_id.clone(),
                kind: "escalation".into(),
                department: c.department.clone(),
                due_at: c.due_at,
                scheduled_at: at,
                fired_at: at,
                late: false,
                record: NewOutbox {
                    topic: "alerts".into(),
                    key: id.clone(),
                    ce_id: format!("ce-a-{id}"),
                    headers: vec![],
                    payload: b"{}".to_vec(),
                },
                mail: None,
                provisional: false,
            }],
            last_alert_at: Some(at),
            next: None,
            next_provisional: false,
        };
        self.store.fire(&[row], &mut f).expect("fire");
        self.items[i].escalated = true;
    }

    fn content(&mut self) -> String {
        let phone: u64 = self.rng.random_range(3_000_000_000..9_999_999_999);
        match self.rng.random_range(0..3) {
            0 => format!("反映工资拖欠问题，联系电话1{phone}，请尽快处理。"),
            1 => format!(
                "本人身份证号11010519491231002X，诉求：{}",
                "补缴社保并说明政策依据".repeat(4)
            ),
            _ => "咨询医保报销政策。".into(),
        }
    }

    /// The random part: `per_month` items a month from December 2025 to November 2026,
    /// with lifecycles drawn at random; events after `now` are not written.
    pub fn random_months(&mut self, per_month: usize) {
        let pool: Vec<String> = (0..per_month / 2)
            .map(|k| key(1 << 40 | k as u64))
            .collect();
        for mi in 0..12 {
            let m = super::figures::Month {
                year: 2025,
                month: 12,
            }
            .plus(mi);
            let tz = self.cfg.sla.calendar.time_zone().clone();
            let start = m.start(&tz).expect("start");
            let end = m.plus(1).start(&tz).expect("end");
            let span_ms = end.as_millisecond() - start.as_millisecond();
            let n = per_month + self.rng.random_range(0..per_month / 4 + 1);
            let mut specs = Vec::with_capacity(n);
            for k in 0..n {
                // Whole seconds mostly, milliseconds for some: the stored text varies.
                let mut off = self.rng.random_range(0..span_ms);
                if k % 3 != 0 {
                    off -= off % 1000;
                }
                let received = start + SignedDuration::from_millis(off);
                // A skew that makes the top types differ from month to month.
                let category = if self.rng.random_range(0..20) == 0 {
                    None
                } else {
                    let w = self.rng.random_range(0..10 + mi as usize % 3);
                    Some(CATEGORIES[(w + mi as usize) % 4])
                };
                let lead = DEPARTMENTS[self.rng.random_range(0..DEPARTMENTS.len())];
                let person = if self.rng.random_range(0..10) < 3 {
                    Some(pool[self.rng.random_range(0..pool.len())].clone())
                } else {
                    Some(key(2 << 40 | (self.seq + k as u64)))
                };
                let content = self.content();
                specs.push(Spec {
                    channel: CHANNELS[self.rng.random_range(0..3)],
                    category,
                    lead,
                    received,
                    person,
                    created: None,
                    title: (k % 2 == 0).then(|| format!("关于事项{k}的诉求")),
                    content,
                    clocks: true,
                });
            }
            let idx = self.items(specs);
            for i in idx {
                self.lifecycle(i);
            }
        }
    }

    fn lifecycle(&mut self, i: usize) {
        let r = self.items[i].received;
        let now = self.now;
        let hours = |rng: &mut StdRng, lo: i64, hi: i64| {
            SignedDuration::from_secs(rng.random_range(lo * 3600..hi * 3600))
        };
        if self.rng.random_range(0..100) < 5 {
            return; // never accepted
        }
        let late_accept = self.rng.random_range(0..100) < 15;
        let accepted = if late_accept {
            r + hours(&mut self.rng, 15 * 24, 45 * 24)
        } else {
            r + hours(&mut self.rng, 1, 14 * 24)
        };
        if late_accept && self.rng.random_range(0..4) == 0 {
            let at = (r + SignedDuration::from_hours(15 * 24 + 20)).min(now);
            self.escalate(i, at);
        }
        if accepted > now {
            return;
        }
        self.accept(i, accepted);
        if self.rng.random_range(0..100) < 12 {
            return; // still being handled
        }
        let replied = accepted + hours(&mut self.rng, 5 * 24, 95 * 24);
        if self.rng.random_range(0..10) == 0 {
            let b = accepted + hours(&mut self.rng, 1, 4 * 24);
            if b <= now {
                self.reply(i, b, true);
            }
        }
        if replied > now {
            return;
        }
        self.reply(i, replied, false);
        if self.rng.random_range(0..100) < 20 {
            return;
        }
        let evaluated = replied + hours(&mut self.rng, 1, 10 * 24);
        if evaluated > now {
            return;
        }
        let v = match self.rng.random_range(0..100) {
            0..70 => "satisfied",
            70..85 => "basically_satisfied",
            _ => "dissatisfied",
        };
        self.evaluate(i, evaluated, v);
        if v == "dissatisfied" && self.rng.random_range(0..3) == 0 {
            let again = evaluated + hours(&mut self.rng, 24, 20 * 24);
            if again <= now {
                self.evaluate(i, again, "satisfied");
            }
        }
    }

    fn plain(&self, received: Timestamp, lead: &'static str, person: Option<&str>) -> Spec {
        Spec {
            channel: Channel::Portal,
            category: Some(Category::Rights),
            lead,
            received,
            person: person.map(str::to_string),
            created: None,
            title: None,
            content: "诉求".into(),
            clocks: true,
        }
    }

    /// Planted cases with answers counted by hand (see each field of [`History`]).
    pub fn plant(&mut self) {
        // Overdue across National Day 2026 (10-01..10-07 off, 10-10 a Saturday worked):
        // acceptance due Tue 2026-09-29 17:00; working days after it: 09-30 (1), 10-08 (2),
        // 10-09 (3), 10-10 (4), 10-12..16 (5..9), 10-19 (10), 10-20 (11). Due = received + 15d.
        let received = local("2026-09-14 17:00:00");
        for (stop, late) in [
            ("2026-10-16 10:00:00", 9),
            ("2026-10-19 10:00:00", 10),
            ("2026-10-20 10:00:00", 11),
        ] {
            let i = self.item(self.plain(received, "housing", None));
            self.accept(i, local(stop));
            self.planted_late.push((self.items[i].id.clone(), late));
        }
        // Still open at the end of October: due 09-29, 10-31 is working day 19 (10-21..23,
        // 10-26..30 are 12..19; Sat 10-31 is not a working day).
        let i = self.item(self.plain(received, "housing", None));
        self.planted_late.push((self.items[i].id.clone(), 19));
        self.accept(i, local("2026-11-20 09:00:00"));

        // Repeat petitions in 2026-11 (window: 2025-11-01 to 2026-11-30).
        let person = |h: &mut History, key: &str, at: &[&str], repeat: bool| {
            for a in at {
                let i = h.item(h.plain(local(a), "hrss", Some(key)));
                h.accept(i, local(a) + SignedDuration::from_hours(2));
            }
            if repeat {
                h.planted_repeat.push(key.into());
            } else {
                h.planted_not_repeat.push(key.into());
            }
        };
        person(
            self,
            "a0000002aaaaaaaa",
            &["2026-06-01 09:00:00", "2026-11-10 09:00:00"],
            false,
        );
        person(
            self,
            "a0000003aaaaaaaa",
            &[
                "2026-03-01 09:00:00",
                "2026-07-01 09:00:00",
                "2026-11-10 09:00:00",
            ],
            true,
        );
        // The first of three 12 months and a day before the month: out of the window.
        person(
            self,
            "a000000caaaaaaaa",
            &[
                "2025-10-31 09:00:00",
                "2026-07-01 09:00:00",
                "2026-11-10 09:00:00",
            ],
            false,
        );
        // Exactly at the window's start (2025-11-01 00:00 local): in.
        person(
            self,
            "a000000daaaaaaaa",
            &[
                "2025-11-01 00:00:00",
                "2026-07-01 09:00:00",
                "2026-11-10 09:00:00",
            ],
            true,
        );
        // Three, none in the month.
        person(
            self,
            "a000000eaaaaaaaa",
            &[
                "2026-08-01 09:00:00",
                "2026-09-01 09:00:00",
                "2026-10-01 09:00:00",
            ],
            false,
        );

        // Key cases at now (2026-12-01 12:00 local): three months before is 09-01 12:00.
        let key = |h: &mut History, s: Spec, reasons: Vec<KeyReason>| -> usize {
            let i = h.item(s);
            if reasons.is_empty() {
                h.planted_not_key.push(h.items[i].id.clone());
            } else {
                h.planted_key.push((h.items[i].id.clone(), reasons));
            }
            i
        };
        let p = self.plain(local("2026-09-01 12:00:00"), "edu", None);
        key(self, p, vec![KeyReason::Unresolved3Months]);
        let p = self.plain(local("2026-09-01 12:00:01"), "edu", None);
        key(self, p, vec![]);
        let mut p = self.plain(local("2026-11-02 09:00:00"), "desk", None);
        p.category = Some(Category::Historical);
        p.title = Some("历史遗留：征地补偿，电话13800138000".into());
        key(self, p, vec![KeyReason::Escalated]);
        let p = self.plain(local("2026-11-03 09:00:00"), "health", None);
        let i = key(self, p, vec![KeyReason::Escalated]);
        self.escalate(i, local("2026-11-25 09:00:00"));
        // Escalated but replied since: off the list.
        let p = self.plain(local("2026-11-03 10:00:00"), "health", None);
        let i = key(self, p, vec![]);
        self.escalate(i, local("2026-11-25 09:00:00"));
        self.accept(i, local("2026-11-26 09:00:00"));
        self.reply(i, local("2026-11-27 09:00:00"), false);
        let mut p = self.plain(local("2026-11-04 09:00:00"), "edu", None);
        p.created = Some(local("2021-12-01 12:00:00"));
        key(self, p, vec![KeyReason::Over5Years]);
        let mut p = self.plain(local("2026-11-04 10:00:00"), "edu", None);
        p.created = Some(local("2021-12-01 12:00:01"));
        key(self, p, vec![]);
        // The person's first item on the matter in 2020 (evaluated long ago).
        let mut old = self.plain(
            local("2020-05-01 09:00:00"),
            "edu",
            Some("b0000001bbbbbbbb"),
        );
        old.clocks = false;
        let o = self.item(old);
        self.accept(o, local("2020-05-02 09:00:00"));
        self.reply(o, local("2020-06-02 09:00:00"), false);
        self.evaluate(o, local("2020-06-05 09:00:00"), "satisfied");
        let p = self.plain(
            local("2026-11-05 09:00:00"),
            "edu",
            Some("b0000001bbbbbbbb"),
        );
        key(self, p, vec![KeyReason::Over5Years]);
        // Everything at once.
        let mut p = self.plain(
            local("2026-06-05 09:00:00"),
            "desk",
            Some("b0000001bbbbbbbb"),
        );
        p.category = Some(Category::Historical);
        p.lead = "edu";
        p.created = Some(local("2019-01-01 09:00:00"));
        key(
            self,
            p,
            vec![
                KeyReason::Unresolved3Months,
                KeyReason::Escalated,
                KeyReason::Over5Years,
            ],
        );
    }

    pub fn generate(seed: u64, per_month: usize) -> History {
        let mut h = History::empty(seed, local("2026-12-01 12:00:00"));
        h.random_months(per_month);
        h.plant();
        h
    }

    // ---- the oracle ----

    fn month_bounds(&self, m: super::figures::Month) -> (Timestamp, Timestamp) {
        let tz = self.cfg.sla.calendar.time_zone();
        (m.start(tz).unwrap(), m.plus(1).start(tz).unwrap())
    }

    fn in_month(&self, m: super::figures::Month) -> Vec<&MItem> {
        let (s, e) = self.month_bounds(m);
        self.items
            .iter()
            .filter(|i| i.received >= s && i.received < e)
            .collect()
    }

    fn types(&self, m: super::figures::Month) -> Vec<TypeCount> {
        let mut c: BTreeMap<String, u64> = BTreeMap::new();
        for i in self.in_month(m) {
            if let Some(cat) = i.category {
                *c.entry(format!("{}/{}", cat.as_str(), i.lead)).or_default() += 1;
            }
        }
        let mut v: Vec<TypeCount> = c
            .into_iter()
            .map(|(matter, items)| TypeCount { matter, items })
            .collect();
        v.sort_by(|a, b| (b.items, &a.matter).cmp(&(a.items, &b.matter)));
        v
    }

    /// Working days in `(due date, at date]`, counted day by day.
    fn late(&self, due: Timestamp, at: Timestamp) -> u32 {
        let cal = &self.cfg.sla.calendar;
        let (mut d, end) = (cal.local_date(due), cal.local_date(at));
        let mut n = 0;
        while d < end {
            d = d.tomorrow().unwrap();
            n += u32::from(cal.is_working_day(d).unwrap());
        }
        n
    }

    pub fn expected_monthly(&self, month: &str) -> MonthlyReport {
        let m = super::figures::Month::parse(month).unwrap();
        let (start, end) = self.month_bounds(m);
        let items = self.in_month(m);
        let cat = |i: &MItem| i.category.map_or("unclassified", |c| c.as_str());
        let by_channel = CHANNELS
            .iter()
            .map(|c| {
                let n = items.iter().filter(|i| i.channel == *c).count() as u64;
                (c.as_str().to_string(), n)
            })
            .collect();
        let labels = [
            "livelihood",
            "rights",
            "policy",
            "historical",
            "unclassified",
        ];
        let by_category = labels
            .iter()
            .map(|l| {
                let n = items.iter().filter(|i| cat(i) == *l).count() as u64;
                (l.to_string(), n)
            })
            .collect();
        let mut by_channel_category = Vec::new();
        for c in CHANNELS {
            for l in labels {
                let n = items
                    .iter()
                    .filter(|i| i.channel == c && cat(i) == l)
                    .count() as u64;
                if n > 0 {
                    by_channel_category.push((c.as_str().to_string(), l.to_string(), n));
                }
            }
        }
        let types = self.types(m);
        let top3 = |v: Vec<TypeCount>| -> Vec<String> {
            v.into_iter().take(3).map(|t| t.matter).collect()
        };
        let (t1, t2) = (top3(self.types(m.plus(-1))), top3(self.types(m.plus(-2))));
        let top3_three_months = top3(types.clone())
            .into_iter()
            .filter(|x| t1.contains(x) && t2.contains(x))
            .collect();
        let trend = (0..6)
            .rev()
            .map(|b| {
                (
                    m.plus(-b).to_string(),
                    self.in_month(m.plus(-b)).len() as u64,
                )
            })
            .collect();
        // Repeats.
        let (w0, _) = self.month_bounds(m.plus(-12));
        let mut groups: BTreeMap<(String, String), Vec<&MItem>> = BTreeMap::new();
        for i in &self.items {
            if let (Some(p), Some(c)) = (&i.person, i.category)
                && i.received >= w0
                && i.received < end
            {
                groups
                    .entry((p.clone(), format!("{}/{}", c.as_str(), i.lead)))
                    .or_default()
                    .push(i);
            }
        }
        let mut repeat_petitions: Vec<RepeatPetition> = groups
            .into_iter()
            .filter(|(_, v)| v.len() >= 3 && v.iter().any(|i| i.received >= start))
            .map(|((p, matter), mut v)| {
                v.sort_by_key(|i| (i.received, i.id.clone()));
                RepeatPetition {
                    person: p[..8].to_string(),
                    matter,
                    item_ids: v.iter().map(|i| i.id.clone()).collect(),
                    first_received: v[0].received,
                    last_received: v[v.len() - 1].received,
                }
            })
            .collect();
        repeat_petitions.sort_by(|a, b| {
            (b.item_ids.len(), &a.matter, a.first_received, &a.person).cmp(&(
                a.item_ids.len(),
                &b.matter,
                b.first_received,
                &b.person,
            ))
        });
        // Clocks.
        let until = if self.now < end {
            self.now
        } else {
            end - SignedDuration::from_nanos(1)
        };
        let mut overdue = Vec::new();
        let (mut on_n, mut on_d) = (0, 0);
        for c in &self.clocks {
            if c.started >= end || c.stopped.is_some_and(|s| s < start) {
                continue;
            }
            let in_month = c.stopped.filter(|s| *s < end);
            if c.clock_id == "statutory.handle"
                && let Some(s) = in_month
            {
                on_d += 1;
                on_n += u64::from(s <= c.due);
            }
            let at = in_month.unwrap_or(until);
            if c.due < at {
                let late = self.late(c.due, at);
                if late > 10 {
                    overdue.push(Overdue {
                        item_id: self.items[c.item].id.clone(),
                        clock: c.clock_id.into(),
                        department: c.department.clone(),
                        due_at: c.due,
                        stopped_at: in_month,
                        working_days_late: late,
                    });
                }
            }
        }
        overdue.sort_by(|a, b| {
            (b.working_days_late, &a.item_id, &a.clock).cmp(&(
                a.working_days_late,
                &b.item_id,
                &b.clock,
            ))
        });
        let evals: Vec<&MEval> = self
            .evals
            .iter()
            .filter(|e| e.at >= start && e.at < end)
            .collect();
        let sat_n = evals.iter().filter(|e| e.verdict != "dissatisfied").count() as u64;
        let items_eval: BTreeSet<usize> = evals.iter().map(|e| e.item).collect();
        let one_n = items_eval
            .iter()
            .filter(|i| {
                let first = self
                    .evals
                    .iter()
                    .filter(|e| e.item == **i)
                    .min_by_key(|e| e.at)
                    .unwrap();
                first.verdict != "dissatisfied" && !self.bounced.contains(i)
            })
            .count() as u64;
        MonthlyReport {
            month: month.into(),
            time_zone: "Asia/Shanghai".into(),
            generated_at: self.now,
            items: items.len() as u64,
            by_channel,
            by_category,
            by_channel_category,
            top_types: types.into_iter().take(10).collect(),
            top3_three_months,
            trend,
            repeat_petitions,
            overdue,
            on_time: super::Rate {
                numerator: on_n,
                denominator: on_d,
                target: super::TARGET_ON_TIME,
            },
            satisfaction: super::Rate {
                numerator: sat_n,
                denominator: evals.len() as u64,
                target: super::TARGET_SATISFACTION,
            },
            one_time_resolution: super::Rate {
                numerator: one_n,
                denominator: items_eval.len() as u64,
                target: super::TARGET_ONE_TIME,
            },
            key_cases: self.expected_key_cases(),
        }
    }

    pub fn expected_key_cases(&self) -> Vec<KeyCase> {
        let three = local("2026-09-01 12:00:00");
        let five = local("2021-12-01 12:00:00");
        assert_eq!(self.now, local("2026-12-01 12:00:00"));
        let mut out = Vec::new();
        for i in self.items.iter().filter(|i| i.stage_rank < 3) {
            let mut reasons = Vec::new();
            if i.received <= three {
                reasons.push(KeyReason::Unresolved3Months);
            }
            if i.escalated || i.category == Some(Category::Historical) {
                reasons.push(KeyReason::Escalated);
            }
            let first_on_matter = i.person.as_ref().and_then(|p| {
                self.items
                    .iter()
                    .filter(|o| {
                        o.person.as_ref() == Some(p) && o.category == i.category && o.lead == i.lead
                    })
                    .map(|o| o.received)
                    .min()
            });
            if first_on_matter.is_some_and(|t| t <= five) || i.created.is_some_and(|t| t <= five) {
                reasons.push(KeyReason::Over5Years);
            }
            if reasons.is_empty() {
                continue;
            }
            let deadline = self
                .clocks
                .iter()
                .find(|c| {
                    self.items[c.item].id == i.id
                        && c.clock_id == "statutory.handle"
                        && c.stopped.is_none()
                })
                .map(|c| c.due);
            let mask = super::figures::masked_cut;
            out.push(KeyCase {
                item_id: i.id.clone(),
                channel: i.channel.as_str().into(),
                category: i.category.map(|c| c.as_str().into()),
                received_at: i.received,
                reasons,
                background: mask(i.title.as_deref().unwrap_or(&i.content)),
                core_request: mask(&i.content),
                department: i.lead.clone(),
                assists: i.assists.clone(),
                deadline,
            });
        }
        out.sort_by(|a, b| (a.received_at, &a.item_id).cmp(&(b.received_at, &b.item_id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{KeyReason, figures};
    use super::*;
    use std::sync::OnceLock;

    /// One history for every test (generating it is the slow part): 200+ items a month for
    /// twelve months, and the planted cases.
    fn history() -> &'static History {
        static H: OnceLock<History> = OnceLock::new();
        H.get_or_init(|| History::generate(17, 200))
    }

    const MONTHS: [&str; 13] = [
        "2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07",
        "2026-08", "2026-09", "2026-10", "2026-11", "2026-12",
    ];

    /// The generator wrote what the tests need, or the comparisons below prove little.
    #[test]
    fn the_generated_history_covers_every_case() {
        let h = history();
        assert!(h.items.len() > 2400, "{}", h.items.len());
        for c in CHANNELS {
            assert!(h.items.iter().any(|i| i.channel == c));
        }
        for c in CATEGORIES {
            assert!(h.items.iter().any(|i| i.category == Some(c)));
        }
        assert!(h.items.iter().any(|i| i.category.is_none()));
        for v in ["satisfied", "basically_satisfied", "dissatisfied"] {
            assert!(
                h.evals.iter().filter(|e| e.verdict == v).count() > 20,
                "{v}"
            );
        }
        assert!(h.bounced.len() > 20);
        assert!(h.items.iter().filter(|i| i.escalated).count() > 20);
        let e = h.expected_monthly("2026-10");
        assert!(e.overdue.len() > 10, "{}", e.overdue.len());
        assert!(e.overdue.iter().any(|o| o.stopped_at.is_none()));
        assert!(!e.repeat_petitions.is_empty());
        assert!(e.key_cases.len() > 20);
        assert!(e.on_time.numerator < e.on_time.denominator);
        assert!(e.one_time_resolution.numerator < e.one_time_resolution.denominator);
    }

    /// Every figure of every month's report equals what the model of the history says.
    #[test]
    fn every_figure_of_every_month_matches_the_generated_history() {
        let h = history();
        for m in MONTHS {
            let got = figures::monthly(&h.store, &h.cfg.sla, m, h.now).unwrap();
            let want = h.expected_monthly(m);
            assert_eq!(got.items, want.items, "{m} items");
            assert_eq!(got.by_channel, want.by_channel, "{m} by channel");
            assert_eq!(got.by_category, want.by_category, "{m} by category");
            assert_eq!(got.by_channel_category, want.by_channel_category, "{m}");
            assert_eq!(got.top_types, want.top_types, "{m} top types");
            assert_eq!(got.top3_three_months, want.top3_three_months, "{m} top 3");
            assert_eq!(got.trend, want.trend, "{m} trend");
            assert_eq!(got.repeat_petitions, want.repeat_petitions, "{m} repeats");
            assert_eq!(got.overdue.len(), want.overdue.len(), "{m} overdue");
            assert_eq!(got.overdue, want.overdue, "{m} overdue");
            assert_eq!(got.on_time, want.on_time, "{m} on time");
            assert_eq!(got.satisfaction, want.satisfaction, "{m} satisfaction");
            assert_eq!(
                got.one_time_resolution, want.one_time_resolution,
                "{m} one-time"
            );
            assert_eq!(got.key_cases, want.key_cases, "{m} key cases");
            assert_eq!(got, want, "{m}");
        }
    }

    /// Acceptance due on 2026-09-29: stopped 9, 10 and 11 working days later across National
    /// Day (10-01..07 off, Saturday 10-10 worked), and one still open at the end of October.
    #[test]
    fn overdue_counts_working_days_across_national_day_and_needs_more_than_ten() {
        let h = history();
        let oct = figures::monthly(&h.store, &h.cfg.sla, "2026-10", h.now).unwrap();
        assert_eq!(h.planted_late.len(), 4);
        for (id, late) in &h.planted_late {
            let o = oct
                .overdue
                .iter()
                .find(|o| &o.item_id == id && o.clock == "statutory.accept");
            if *late > 10 {
                let o = o.unwrap_or_else(|| panic!("{id} ({late} working days) not overdue"));
                assert_eq!(o.working_days_late, *late, "{id}");
                assert_eq!(o.stopped_at.is_none(), *late == 19, "{id}");
            } else {
                assert!(o.is_none(), "{id}: {late} working days is not overdue");
            }
        }
        // In November the open one stopped (2026-11-20), later still.
        let nov = figures::monthly(&h.store, &h.cfg.sla, "2026-11", h.now).unwrap();
        let (open, _) = &h.planted_late[3];
        let o = nov.overdue.iter().find(|o| &o.item_id == open).unwrap();
        assert!(o.stopped_at.is_some() && o.working_days_late > 19);
    }

    #[test]
    fn repeat_petitions_need_three_items_in_the_window_and_one_in_the_month() {
        let h = history();
        let nov = figures::monthly(&h.store, &h.cfg.sla, "2026-11", h.now).unwrap();
        let people: Vec<&str> = nov
            .repeat_petitions
            .iter()
            .map(|r| r.person.as_str())
            .collect();
        for k in &h.planted_repeat {
            assert!(people.contains(&&k[..8]), "{k} is a repeat petitioner");
        }
        for k in &h.planted_not_repeat {
            assert!(!people.contains(&&k[..8]), "{k} is not a repeat petitioner");
        }
        let r = nov
            .repeat_petitions
            .iter()
            .find(|r| r.person == "a000000d")
            .unwrap();
        assert_eq!(r.matter, "rights/hrss");
        assert_eq!(r.item_ids.len(), 3);
    }

    #[test]
    fn key_cases_have_their_reasons_and_boundary_items_are_off_the_list() {
        let h = history();
        let list = figures::key_cases(&h.store, &h.cfg.sla, h.now).unwrap();
        for (id, reasons) in &h.planted_key {
            let k = list
                .iter()
                .find(|k| &k.item_id == id)
                .unwrap_or_else(|| panic!("{id}"));
            assert_eq!(&k.reasons, reasons, "{id}");
        }
        for id in &h.planted_not_key {
            assert!(
                list.iter().all(|k| &k.item_id != id),
                "{id} is not a key case"
            );
        }
        let all = list.iter().find(|k| k.reasons.len() == 3).unwrap();
        assert_eq!(all.assists, vec!["desk".to_string()]);
        assert!(
            list.windows(2)
                .all(|w| w[0].received_at <= w[1].received_at)
        );
        // No raw number in any text of the list.
        let json = serde_json::to_string(&list).unwrap();
        for raw in ["13800138000", "19491231", "11010519491231002X"] {
            assert!(!json.contains(raw), "{raw} in the key-case list");
        }
        assert!(list.iter().any(|k| k.background.contains("138******00")));
        assert!(list.iter().any(|k| k.deadline.is_some()));
        assert_eq!(list, h.expected_key_cases());
        assert!(
            list.iter()
                .any(|k| k.reasons == [KeyReason::Unresolved3Months])
        );
    }

    #[test]
    fn a_month_that_is_not_one_is_an_error_naming_it() {
        let h = history();
        let e = figures::monthly(&h.store, &h.cfg.sla, "2026-13", h.now).unwrap_err();
        assert!(format!("{e:#}").contains("\"2026-13\""), "{e:#}");
    }
}
