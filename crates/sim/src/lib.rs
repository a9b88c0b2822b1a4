//! Simulators of the two REST upstreams — the 12345 hotline ticket API (Open311 GeoReport v2,
//! [`hotline`]) and the web petition portal (paginated JSON, signed requests, [`portal`]) — for
//! integration tests, `petitiond demo` and benchmarks. Each is an axum server on the caller's
//! tokio runtime with a handle that adds and updates records and switches [`Faults`] at run time.
//!
//! This module owns what both share: the fault schedule, the in-memory record index, server
//! start/stop, query-string and time handling, the `/files/{name}` attachments, and the
//! generator of realistic (fake) petitions. It deliberately holds no texts: a record is a few
//! numbers and its id, and its petitioner and petition are regenerated from `(seed, seq)` each
//! time it is served, so 100,000 records cost a few megabytes and bulk creation is cheap.
//!
//! Shared rules:
//! - Times have one-second resolution (as on the wire); the local zone is Asia/Shanghai (+08:00).
//! - Query strings are decoded as `application/x-www-form-urlencoded` (what reqwest's `.query()`
//!   writes): `%XX` escapes, and `+` is a space — so a literal `+` (as in `+08:00`) must be sent
//!   as `%2B`. Unknown parameters are ignored; of a repeated parameter the first counts.
//! - `requests_served()` counts every HTTP request the server answered (API, files, 404s, faulted
//!   ones). The fault schedule counts only API requests (the list endpoints, and the hotline's
//!   `services.json` and `requests/{id}.json`), numbered from 1 since the last `set_faults`.
//!   `/files/...` are never faulted and need no auth.

/// The handle methods both simulators share (each handle has a `core: Arc<Core>` field).
macro_rules! record_methods {
    () => {
        /// Creates `n` records whose creation (and update) time is now; returns the ids that
        /// appear on the wire — valid records and bad records that keep their id (a record made
        /// bad without an id is created but not listed). All `n` share one second: for more
        /// than the hotline's cap, that is a window no split can shrink — use
        /// `add_records_between` to spread a large batch.
        pub fn add_records(&self, n: usize) -> Vec<String> {
            self.core.add(std::iter::repeat_n($crate::now_secs(), n))
        }

        /// Creates one record created (and last updated) at `created`; returns its id (for a
        /// record made bad without an id, the internal id that never appears on the wire).
        pub fn add_record_at(&self, created: jiff::Timestamp) -> String {
            self.core.add_one(created.as_second())
        }

        /// Creates `n` records all created at the same second `t` (ties are ordered by id):
        /// more than the hotline's cap in one second is a window no split can shrink.
        pub fn add_records_at_same_time(&self, n: usize, t: jiff::Timestamp) -> Vec<String> {
            self.core.add(std::iter::repeat_n(t.as_second(), n))
        }

        /// Creates `n` records with creation times spread evenly over `from..=to`, in order.
        pub fn add_records_between(
            &self,
            n: usize,
            from: jiff::Timestamp,
            to: jiff::Timestamp,
        ) -> Vec<String> {
            self.core
                .add($crate::spread(n, from.as_second(), to.as_second()))
        }

        /// Moves the record one step along its status path (then keeps it final but changes
        /// its notes) and bumps its update time to now — or to one second past its previous
        /// update time if that is later, so every update is visible to `updated_after`.
        /// `false` if there is no such id.
        pub fn update_record(&self, id: &str) -> bool {
            self.core.update(id)
        }

        /// Creates one record created now whose petitioner left no way to be reached: phone
        /// and address are empty on the wire (name and ID number stay, the text names no
        /// phone), so petitiond flags it `needs_supplement`. Returns its id.
        pub fn add_incomplete_record(&self) -> String {
            self.core.add_incomplete($crate::now_secs())
        }

        /// Creates one record created now whose petition is the given one rather than a
        /// generated one (see [`Script`](crate::Script)); no record-level fault applies.
        /// Returns its id.
        pub fn add_scripted_record(&self, script: $crate::Script) -> String {
            self.core.add_scripted($crate::now_secs(), script)
        }

        /// The petitioner supplies the missing contact: phone and address appear, and the
        /// update time moves as with `update_record` (the status does not change). `false`
        /// if there is no such id.
        pub fn supplement_record(&self, id: &str) -> bool {
            self.core.supplement(id)
        }

        /// Updates `n` records picked at random from those with an id on the wire (the same
        /// record may be picked twice); returns the ids in the order they were updated.
        pub fn update_random(&self, n: usize) -> Vec<String> {
            self.core.update_random(n)
        }

        /// Replaces the faults in force and restarts their request count (see
        /// [`Faults`](crate::Faults)).
        pub fn set_faults(&self, f: $crate::Faults) {
            self.core.set_faults(f)
        }

        /// Every HTTP request answered so far, faulted ones and file downloads included.
        pub fn requests_served(&self) -> u64 {
            self.core.requests_served()
        }

        /// The id of every valid (not deliberately bad) record ever created, in creation order.
        pub fn record_ids(&self) -> Vec<String> {
            self.core.lock().store.valid_ids()
        }

        /// The ids of the records made bad that still carry an id on the wire
        /// ([`BadKind::BadDate`](crate::BadKind::BadDate) and
        /// [`BadKind::Oversize`](crate::BadKind::Oversize)), in creation order.
        pub fn bad_record_ids(&self) -> Vec<String> {
            self.core.lock().store.bad_ids()
        }

        /// All records, bad ones included.
        pub fn record_count(&self) -> usize {
            self.core.lock().store.len()
        }
    };
}

pub mod hotline;
pub mod portal;

pub use hotline::{HotlineSim, HotlineSimConfig};
pub use portal::{Pagination, PortalSim, PortalSimConfig, SigningSecret};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Faults both simulators can inject, switchable at run time with `set_faults`.
///
/// "Every Nth request" means API request number `k` (counted from 1 since the last
/// `set_faults`, see the module docs) is hit when `k % N == 0`; `Some(0)` and `None` are off.
/// When several hit the same request: `error_500` wins over `rate_limit`, which wins over
/// `garbage`, which wins over `truncate`; `slow` combines with any of them.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Every Nth request answers `500 Internal Server Error` with the API's error body
    /// (hotline: `[{"code":500,"description":"internal server error"}]`, portal:
    /// `{"code":500,"msg":"系统繁忙，请稍后重试"}`), before authentication is checked.
    pub error_500_every: Option<u32>,
    /// Every Nth request answers `429 Too Many Requests` with `Retry-After: retry_after_secs`
    /// and the API's error body (code 429), before authentication is checked.
    pub rate_limit_every: Option<u32>,
    /// The `Retry-After` value (seconds) of the 429 answers.
    pub retry_after_secs: u64,
    /// Every Nth request sleeps `slow_ms` before it is answered (whatever the answer).
    pub slow_every: Option<u32>,
    pub slow_ms: u64,
    /// Every Nth request, if it would have answered 200, answers 200 with the first half of the
    /// body's bytes (possibly cutting a UTF-8 character); `Content-Length` matches what is sent,
    /// `Content-Type` and any `Link` header stay as they were. A 4xx answer is left whole.
    pub truncate_every: Option<u32>,
    /// Every Nth request, if it would have answered 200, answers 200 with an HTML error page
    /// (`Content-Type: text/html; charset=utf-8`) instead of JSON, as a misbehaving gateway does.
    pub garbage_every: Option<u32>,
    /// Records repeat, with no record lost: in every response or page the 1st, 6th, 11th...
    /// record is sent twice (the copy right after it), so even a one-record page has a
    /// duplicate; and every portal page after the first starts with the last record of the
    /// previous page again (so a page may hold more than `page_size` items). The hotline's
    /// 1000-record cap counts the array's elements, copies included.
    pub duplicate_records: bool,
    /// The records of each response/page (copies included) are shuffled, deterministically for
    /// a given page. The hotline's cap is applied before the shuffle, so a full response still
    /// holds every record up to its latest one.
    pub out_of_order: bool,
    /// Every Nth *created* record (creation number `seq % N == 0`, counted over the sim's life;
    /// read when the record is created) is bad, rotating through [`BadKind`]: no id, an
    /// unparsable date, not an object, oversize. Bad records sit in the index like any other
    /// and are served inside otherwise-valid responses.
    pub bad_record_every: Option<u32>,
    /// Every Nth *created* record (read when it is created, counted like `bad_record_every`)
    /// has malformed optional fields while its id, a time and its text stay good (each sim's
    /// docs say which fields): a client must make an item of it, not quarantine it.
    pub malformed_optional_every: Option<u32>,
    /// Every Nth *created* record (read when it is created) that has attachments links them
    /// with `?status=500`: files that always fail (see [`file_body`] for the file server's
    /// switches).
    pub broken_media_every: Option<u32>,
    /// Every Nth API request that *writes* (the portal's status API) is applied, then its
    /// answer is lost: the server waits `slow_ms` and answers `504 Gateway Timeout` (a client
    /// whose timeout is shorter sees a timeout). A client that retries must send the same
    /// `Idempotency-Key`, or the write is applied twice. Counted like the others; a request
    /// that is not a write is not hit.
    pub lost_answer_every: Option<u32>,
}

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

/// Asia/Shanghai: no daylight saving time since 1991, so a fixed +08:00 is exact.
const SHANGHAI: Offset = Offset::constant(8);

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/// SplitMix64: tiny, fast and good enough for fake data; the same seed gives the same stream on
/// every platform and version (unlike a library RNG whose algorithm may change).
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The stream for one record: mixes the sim's seed with the record's creation number.
    pub(crate) fn for_record(seed: u64, seq: u64) -> Rng {
        let mut r = Rng(seed ^ seq.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next_u64();
        r
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `1/n`.
    pub(crate) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Faults at run time

/// The fault schedule and its request counter (reset by `set_faults`).
#[derive(Debug, Default)]
pub(crate) struct FaultClock {
    faults: Faults,
    n: u64,
}

/// What happens to one API request.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub slow: Option<Duration>,
    pub fail: Option<Fail>,
    pub garbage: bool,
    pub truncate: bool,
    pub duplicate: bool,
    pub out_of_order: bool,
    /// A write is applied, then answered 504 (`Faults::lost_answer_every`).
    pub lost_answer: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    Internal,
    RateLimited { retry_after_secs: u64 },
}

fn every(n: u64, e: Option<u32>) -> bool {
    matches!(e, Some(e) if e > 0 && n.is_multiple_of(u64::from(e)))
}

impl FaultClock {
    pub(crate) fn set(&mut self, faults: Faults) {
        self.faults = faults;
        self.n = 0;
    }

    pub(crate) fn next(&mut self) -> Plan {
        self.n += 1;
        let (n, f) = (self.n, &self.faults);
        let fail = if every(n, f.error_500_every) {
            Some(Fail::Internal)
        } else if every(n, f.rate_limit_every) {
            Some(Fail::RateLimited {
                retry_after_secs: f.retry_after_secs,
            })
        } else {
            None
        };
        let garbage = fail.is_none() && every(n, f.garbage_every);
        Plan {
            slow: every(n, f.slow_every).then(|| Duration::from_millis(f.slow_ms)),
            fail,
            garbage,
            truncate: fail.is_none() && !garbage && every(n, f.truncate_every),
            duplicate: f.duplicate_records,
            out_of_order: f.out_of_order,
            lost_answer: fail.is_none() && every(n, f.lost_answer_every),
        }
    }
}

/// Applies `duplicate_records` and `out_of_order` to one response's records (sorted): copies
/// first, then the cap (so a capped response is still a sorted prefix — no record before the
/// last one is left out), then the shuffle. `key` makes the shuffle depend on the page, so a
/// re-fetch of the same page is shuffled alike.
pub(crate) fn arrange<T: Clone>(items: Vec<T>, plan: &Plan, key: u64, cap: usize) -> Vec<T> {
    let mut out = if plan.duplicate {
        let mut out = Vec::with_capacity(items.len() + items.len() / 5 + 1);
        for (i, it) in items.into_iter().enumerate() {
            if i % 5 == 0 {
                out.push(it.clone());
            }
            out.push(it);
        }
        out
    } else {
        items
    };
    out.truncate(cap);
    if plan.out_of_order {
        Rng::new(key ^ 0x005E_ED0F_0DE5).shuffle(&mut out);
    }
    out
}

/// Which API's error body to write.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Flavor {
    /// `[{"code":N,"description":"..."}]`
    Open311,
    /// `{"code":N,"msg":"..."}`
    Portal,
}

/// An answer before the response-level faults (garbage, truncation) are applied to it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

pub(crate) const JSON: &str = "application/json; charset=utf-8";

impl Reply {
    pub(crate) fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
        Reply {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body: serde_json::to_vec(value).expect("the wire types serialize"),
        }
    }

    pub(crate) fn error(flavor: Flavor, status: StatusCode, msg: &str) -> Reply {
        let code = status.as_u16();
        let value = match flavor {
            Flavor::Open311 => serde_json::json!([{ "code": code, "description": msg }]),
            Flavor::Portal => serde_json::json!({ "code": code, "msg": msg }),
        };
        Reply::json(status, &value)
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    fn into_response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        for (k, v) in self.headers {
            h.append(k, v);
        }
        resp
    }
}

/// The page a misconfigured gateway or a maintenance window sends with a 200.
const GARBAGE_PAGE: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>系统提示</title></head>\n<body><h1>系统维护中，请稍后再试</h1><p>The system is under maintenance.</p><hr><center>nginx</center></body></html>\n";

/// Runs one API request through its [`Plan`]: sleeps if slow, answers 500/429 without calling
/// `handle`, otherwise calls it and garbles or truncates a 200 answer.
pub(crate) async fn run_faulted(
    plan: Plan,
    flavor: Flavor,
    handle: impl FnOnce(&Plan) -> Reply,
) -> Response {
    if let Some(d) = plan.slow {
        tokio::time::sleep(d).await;
    }
    let mut reply = match plan.fail {
        Some(Fail::Internal) => Reply::error(
            flavor,
            StatusCode::INTERNAL_SERVER_ERROR,
            match flavor {
                Flavor::Open311 => "internal server error",
                Flavor::Portal => "系统繁忙，请稍后重试",
            },
        ),
        Some(Fail::RateLimited { retry_after_secs }) => Reply::error(
            flavor,
            StatusCode::TOO_MANY_REQUESTS,
            match flavor {
                Flavor::Open311 => "rate limit exceeded",
                Flavor::Portal => "请求过于频繁",
            },
        )
        .with_header(header::RETRY_AFTER, &retry_after_secs.to_string()),
        None => handle(&plan),
    };
    if reply.status == StatusCode::OK {
        if plan.garbage {
            reply.content_type = "text/html; charset=utf-8";
            reply.body = GARBAGE_PAGE.as_bytes().to_vec();
        } else if plan.truncate {
            let half = reply.body.len() / 2;
            reply.body.truncate(half);
        }
    }
    reply.into_response()
}

/// `Authorization: Bearer <token>` when one is configured. `Err` is the 401 answer.
pub(crate) fn check_bearer(
    want: Option<&str>,
    headers: &axum::http::HeaderMap,
    flavor: Flavor,
) -> Result<(), Reply> {
    let Some(want) = want else { return Ok(()) };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if got == Some(want) {
        Ok(())
    } else {
        Err(
            Reply::error(flavor, StatusCode::UNAUTHORIZED, "unauthorized")
                .with_header(header::WWW_AUTHENTICATE, "Bearer"),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Records

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

// ---------------------------------------------------------------------------------------------
// The part of a sim both kinds share: request counter, records, faults

pub(crate) struct Core {
    /// Every request answered, for `requests_served`.
    pub served: AtomicU64,
    /// One lock for records, faults and the update picker: requests hold it only to pick
    /// records (never while writing JSON or sleeping).
    pub state: Mutex<CoreState>,
}

pub(crate) struct CoreState {
    pub store: RecordStore,
    pub faults: FaultClock,
    /// Picks the records `update_random` touches.
    picker: Rng,
}

impl CoreState {
    /// The `slow_ms` of the faults in force.
    pub(crate) fn faults_slow_ms(&self) -> u64 {
        self.faults.faults.slow_ms
    }
}

pub(crate) fn now_secs() -> i64 {
    Timestamp::now().as_second()
}

impl Core {
    pub(crate) fn new(seed: u64, make_id: fn(DateTime, u64) -> String) -> Core {
        Core {
            served: AtomicU64::new(0),
            state: Mutex::new(CoreState {
                store: RecordStore::new(make_id),
                faults: FaultClock::default(),
                picker: Rng::new(seed ^ 0x0DD_BA11),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, CoreState> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn plan(&self) -> Plan {
        self.lock().faults.next()
    }

    /// Creates one record per creation time; returns the ids that appear on the wire.
    pub(crate) fn add(&self, times: impl IntoIterator<Item = i64>) -> Vec<String> {
        let mut st = self.lock();
        let faults = st.faults.faults.clone();
        let mut ids = Vec::new();
        for t in times {
            let rec = st.store.add_with(t, &faults);
            if rec.bad.is_none_or(BadKind::has_id) {
                ids.push(rec.id.to_string());
            }
        }
        ids
    }

    pub(crate) fn add_one(&self, t: i64) -> String {
        let mut st = self.lock();
        let faults = st.faults.faults.clone();
        st.store.add_with(t, &faults).id.to_string()
    }

    pub(crate) fn update(&self, id: &str) -> bool {
        self.lock().store.update(id, now_secs())
    }

    /// One good record (no record-level fault) with its contact withheld.
    pub(crate) fn add_incomplete(&self, t: i64) -> String {
        let mut st = self.lock();
        let id = st.store.add_with(t, &Faults::default()).id.clone();
        let idx = st.store.by_id[&id];
        st.store.recs[idx as usize].contact_withheld = true;
        id.to_string()
    }

    /// One good record (no record-level fault) carrying `script`.
    pub(crate) fn add_scripted(&self, t: i64, script: Script) -> String {
        let mut st = self.lock();
        let id = st.store.add_with(t, &Faults::default()).id.clone();
        let idx = st.store.by_id[&id];
        let rec = &mut st.store.recs[idx as usize];
        rec.contact_withheld = script.withhold_contact;
        rec.script = Some(Arc::new(script));
        id.to_string()
    }

    pub(crate) fn supplement(&self, id: &str) -> bool {
        self.lock().store.supplement(id, now_secs())
    }

    /// Updates `n` records picked at random (with repeats possible), skipping records that have
    /// no id on the wire; returns the ids updated, in order.
    pub(crate) fn update_random(&self, n: usize) -> Vec<String> {
        let mut st = self.lock();
        let now = now_secs();
        let len = st.store.len() as u64;
        let mut out = Vec::with_capacity(n);
        if len == 0 {
            return out;
        }
        let mut tries = 0;
        while out.len() < n && tries < n * 20 + 100 {
            tries += 1;
            let idx = st.picker.below(len) as u32;
            let rec = st.store.at(idx);
            if rec.bad.is_none_or(BadKind::has_id) {
                let id = rec.id.clone();
                st.store.update(&id, now);
                out.push(id.to_string());
            }
        }
        out
    }

    pub(crate) fn set_faults(&self, f: Faults) {
        self.lock().faults.set(f);
    }

    pub(crate) fn requests_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// Middleware: counts every request.
pub(crate) async fn count_requests(
    State(core): State<Arc<Core>>,
    req: Request,
    next: Next,
) -> Response {
    core.served.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
}

/// `n` creation times spread evenly over `from..=to` (all `from` when `n == 1`).
pub(crate) fn spread(n: usize, from: i64, to: i64) -> impl Iterator<Item = i64> {
    let span = (to - from).max(0) as i128;
    let steps = (n.max(2) - 1) as i128;
    (0..n).map(move |i| from + (span * i as i128 / steps) as i64)
}

// ---------------------------------------------------------------------------------------------
// Server

/// A bound listener and the origin clients reach it at.
pub(crate) struct Listener {
    listener: tokio::net::TcpListener,
    /// `http://127.0.0.1:PORT` (an unspecified bind address is reached over loopback).
    pub origin: String,
}

pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut local = listener.local_addr()?;
    if local.ip().is_unspecified() {
        local.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Ok(Listener {
        listener,
        origin: format!("http://{local}"),
    })
}

/// A running server task; stopping (or dropping) it ends the accept loop.
pub(crate) struct Server {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn spawn(bound: Listener, app: Router) -> Server {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(bound.listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await });
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "simulator server ended");
            }
        });
        Server {
            stop,
            task: Some(task),
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to two seconds, then aborts.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// ---------------------------------------------------------------------------------------------
// Query strings

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `%XX` and `+` as a space. A `%`
/// not followed by two hex digits is kept as it is; invalid UTF-8 is replaced.
pub(crate) fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded `(name, value)` pairs of a raw query string, in order; `k` alone is `("k", "")`.
pub(crate) fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(p), String::new()),
        })
        .collect()
}

/// The first value of `name`.
pub(crate) fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// RFC 3986 percent-encoding: unreserved characters (`A-Z a-z 0-9 - . _ ~`) are kept, every
/// other byte of the UTF-8 form becomes `%XX` (upper-case hex).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Times

pub(crate) fn local_datetime(secs: i64) -> DateTime {
    SHANGHAI.to_datetime(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn utc_datetime(secs: i64) -> DateTime {
    Offset::UTC.to_datetime(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn fmt_dt(dt: DateTime, sep: char) -> String {
    format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// How a time is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeStyle {
    /// `2026-11-28T10:00:00+08:00`
    Offset,
    /// `2026-11-28T02:00:00Z`
    Utc,
    /// `2026-11-28T10:00:00` (Asia/Shanghai local, no offset)
    Naive,
    /// `2026-11-28 10:00:00` (Asia/Shanghai local, the portal's `yyyy-MM-dd HH:mm:ss`)
    LocalSpace,
}

pub(crate) fn fmt_time(secs: i64, style: TimeStyle) -> String {
    match style {
        TimeStyle::Offset => fmt_dt(local_datetime(secs), 'T') + "+08:00",
        TimeStyle::Utc => fmt_dt(utc_datetime(secs), 'T') + "Z",
        TimeStyle::Naive => fmt_dt(local_datetime(secs), 'T'),
        TimeStyle::LocalSpace => fmt_dt(local_datetime(secs), ' '),
    }
}

/// A time query parameter, in unix milliseconds: RFC 3339 with an offset (`Z`, `+08:00`), or
/// without one (`2026-11-28T10:00:00`, `2026-11-28 10:00:00`: Asia/Shanghai local time), or a
/// bare date (its local midnight).
pub(crate) fn parse_time_param(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Some(ts.as_millisecond());
    }
    if let Ok(dt) = s.parse::<DateTime>() {
        return SHANGHAI.to_timestamp(dt).ok().map(|t| t.as_millisecond());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return SHANGHAI
            .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .ok()
            .map(|t| t.as_millisecond());
    }
    None
}

/// The first whole second `s` with `s * 1000 >= ms`.
pub(crate) fn secs_at_or_after(ms: i64) -> i64 {
    ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0)
}

/// The last whole second `s` with `s * 1000 <= ms`.
pub(crate) fn secs_at_or_before(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

// ---------------------------------------------------------------------------------------------
// Files

/// A small file for `GET /files/{name}`: `.jpg`/`.jpeg`, `.png` or `.pdf`, each a valid file
/// whose bytes embed the name (so two names never share content). Any such name (letters,
/// digits, `-_.`) is served, whether or not a record links to it; `None` (404) for others.
///
/// The file server's switches, in the query (what a broken or moved file server does):
/// `delay_ms=N` waits N ms first (a file slower than a client's timeout); `status=N` answers
/// status N (e.g. 500) instead of the file, always; `redirect_to=ORIGIN` answers
/// `302 Found` with `Location: ORIGIN/files/{name}` (a file moved to another origin);
/// `redirect=loop` answers `302` to the very same URL (a redirect loop).
pub(crate) fn file_body(name: &str) -> Option<(&'static str, Vec<u8>)> {
    if name.is_empty()
        || name.len() > 200
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return None;
    }
    let (_, ext) = name.rsplit_once('.')?;
    match ext {
        "jpg" | "jpeg" => Some(("image/jpeg", files::jpeg(name))),
        "png" => Some(("image/png", files::png(name))),
        "pdf" => Some(("application/pdf", files::pdf(name))),
        _ => None,
    }
}

pub(crate) async fn serve_file(
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    let q = parse_query(raw.as_deref());
    if let Some(ms) = param(&q, "delay_ms").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    if let Some(code) = param(&q, "status")
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        return Reply {
            status: code,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: b"file server error\n".to_vec(),
        }
        .into_response();
    }
    let location = if param(&q, "redirect") == Some("loop") {
        Some(format!("/files/{name}?{}", raw.as_deref().unwrap_or("")))
    } else {
        param(&q, "redirect_to").map(|o| format!("{}/files/{name}", o.trim_end_matches('/')))
    };
    if let Some(location) = location {
        return Reply {
            status: StatusCode::FOUND,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Vec::new(),
        }
        .with_header(header::LOCATION, &location)
        .into_response();
    }
    match file_body(&name) {
        Some((ct, body)) => Reply {
            status: StatusCode::OK,
            content_type: ct,
            headers: Vec::new(),
            body,
        }
        .into_response(),
        None => Reply {
            status: StatusCode::NOT_FOUND,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: b"not found\n".to_vec(),
        }
        .into_response(),
    }
}

/// Where a record's attachments live and how the file server treats them.
#[derive(Clone, Debug, Default)]
pub(crate) struct MediaPlace {
    /// The origin in attachment URLs (the sim's own unless `media_origin` is set).
    pub origin: String,
    /// `media_redirect_to`: the URLs answer 302 to this origin.
    pub redirect_to: Option<String>,
}

impl MediaPlace {
    /// The URL of one attachment of `rec`.
    pub(crate) fn url(&self, rec: &Rec, file: &str) -> String {
        let mut q = Vec::new();
        if rec.broken_media {
            q.push("status=500".to_string());
        }
        if let Some(o) = &self.redirect_to {
            q.push(format!("redirect_to={}", percent_encode(o)));
        }
        let q = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        format!("{}/files/{file}{q}", self.origin)
    }
}

pub(crate) async fn not_found() -> Response {
    Reply {
        status: StatusCode::NOT_FOUND,
        content_type: "text/plain; charset=utf-8",
        headers: Vec::new(),
        body: b"not found\n".to_vec(),
    }
    .into_response()
}

mod files;
mod texts;

pub(crate) use texts::Petition;
pub use texts::id_check_digit;

/// What the sims' own tests share: one GET and what came back.
#[cfg(test)]
pub(crate) mod testing {
    use std::time::{Duration, Instant};

    pub(crate) struct Got {
        pub status: u16,
        pub headers: reqwest::header::HeaderMap,
        pub body: Vec<u8>,
        pub took: Duration,
    }

    impl Got {
        pub(crate) fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!(
                    "not JSON ({e}): {}",
                    String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
                )
            })
        }

        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }
    }

    pub(crate) async fn get(url: &str, query: &[(&str, &str)]) -> Got {
        get_with(url, query, &[]).await
    }

    pub(crate) async fn get_with(
        url: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Got {
        let req = reqwest::Client::new().get(url).query(query);
        send(req, headers).await
    }

    pub(crate) async fn post_with(url: &str, body: &[u8], headers: &[(&str, &str)]) -> Got {
        let req = reqwest::Client::new().post(url).body(body.to_vec());
        send(req, headers).await
    }

    async fn send(mut req: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> Got {
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let start = Instant::now();
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("body read").to_vec();
        Got {
            status,
            headers,
            body,
            took: start.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(duplicate: bool, out_of_order: bool) -> Plan {
        Plan {
            slow: None,
            fail: None,
            garbage: false,
            truncate: false,
            duplicate,
            out_of_order,
            lost_answer: false,
        }
    }

    #[test]
    fn fault_schedule_hits_every_nth_request_with_precedence() {
        let mut c = FaultClock::default();
        c.set(Faults {
            error_500_every: Some(6),
            rate_limit_every: Some(3),
            retry_after_secs: 7,
            garbage_every: Some(2),
            truncate_every: Some(5),
            slow_every: Some(4),
            slow_ms: 10,
            ..Faults::default()
        });
        let plans: Vec<Plan> = (0..6).map(|_| c.next()).collect();
        assert!(plans[0].fail.is_none() && !plans[0].garbage && !plans[0].truncate);
        assert!(plans[1].garbage);
        assert_eq!(
            plans[2].fail,
            Some(Fail::RateLimited {
                retry_after_secs: 7
            })
        );
        assert!(plans[3].garbage && plans[3].slow == Some(Duration::from_millis(10)));
        assert!(plans[4].truncate);
        assert_eq!(plans[5].fail, Some(Fail::Internal));
        assert!(!plans[5].garbage, "a 500 is not also garbled");
        c.set(Faults::default());
        assert!(c.next().fail.is_none(), "set_faults restarts the count");
    }

    #[test]
    fn arrange_duplicates_every_fifth_from_the_first_and_shuffles_deterministically() {
        let items: Vec<u32> = (0..11).collect();
        assert_eq!(
            arrange(items.clone(), &plan(true, false), 1, usize::MAX),
            vec![0, 0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9, 10, 10]
        );
        let a = arrange(items.clone(), &plan(false, true), 9, usize::MAX);
        assert_eq!(a, arrange(items.clone(), &plan(false, true), 9, usize::MAX));
        assert_ne!(a, items);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, items);
    }

    #[test]
    fn query_decoding_and_encoding() {
        assert_eq!(
            parse_query(Some("a=1+2&b=%2B08%3A00&c&&d=%zz&e=%E8%A5%BF")),
            vec![
                ("a".to_string(), "1 2".to_string()),
                ("b".into(), "+08:00".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "西".into()),
            ]
        );
        assert_eq!(form_decode("%4"), "%4");
        assert_eq!(
            percent_encode("a-b_c.d~e f+g:西"),
            "a-b_c.d~e%20f%2Bg%3A%E8%A5%BF"
        );
    }

    #[test]
    fn time_params_and_formats() {
        let t = 1_795_831_200; // 2026-11-28T10:00:00+08:00
        for s in [
            "2026-11-28T10:00:00+08:00",
            "2026-11-28T02:00:00Z",
            "2026-11-28T10:00:00",
            "2026-11-28 10:00:00",
        ] {
            assert_eq!(parse_time_param(s), Some(t * 1000), "{s}");
        }
        assert_eq!(parse_time_param("2026-11-28"), Some((t - 36_000) * 1000));
        assert_eq!(parse_time_param("yesterday"), None);
        assert_eq!(fmt_time(t, TimeStyle::Offset), "2026-11-28T10:00:00+08:00");
        assert_eq!(fmt_time(t, TimeStyle::Utc), "2026-11-28T02:00:00Z");
        assert_eq!(fmt_time(t, TimeStyle::Naive), "2026-11-28T10:00:00");
        assert_eq!(fmt_time(t, TimeStyle::LocalSpace), "2026-11-28 10:00:00");
        assert_eq!(secs_at_or_after(1_500), 2);
        assert_eq!(secs_at_or_after(2_000), 2);
        assert_eq!(secs_at_or_before(2_999), 2);
        assert_eq!(secs_at_or_before(-1), -1);
    }

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
