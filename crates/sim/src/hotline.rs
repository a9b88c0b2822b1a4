//! The 12345 hotline ticket API simulator: Open311 GeoReport v2 with the quirks real servers
//! have.
//!
//! Endpoints (base `http://127.0.0.1:PORT/open311/v2`):
//! - `GET {base}/requests.json` — the list (below).
//! - `GET {base}/requests/{id}.json` — one record as a one-element array, or 404.
//! - `GET {base}/services.json` — the service list (`service_code`, `service_name`, ...).
//! - `GET {origin}/files/{name}` — attachments named by `media_url` (no auth, never faulted).
//!
//! Every API request is checked in this order: faults ([`Faults`](super::Faults)); bearer
//! token if configured (401, `WWW-Authenticate: Bearer`); `api_key` if configured (missing or
//! wrong: 403); `jurisdiction_id` if configured (missing: 400, another value: 404). Errors are
//! Open311's array: `[{"code":400,"description":"..."}]`.
//!
//! `requests.json` parameters:
//! - `start_date`, `end_date`: `requested_datetime` window, both ends inclusive. RFC 3339; a
//!   value without an offset is Asia/Shanghai local time; a bare date is its local midnight.
//!   Neither: the last 90 days up to now. Only `start_date`: 90 days from it; only `end_date`:
//!   90 days up to it. `end − start` over 90 days, or `end < start`, or an unparsable value:
//!   400.
//! - `updated_after` (strictly later) and `updated_before` (at or before) on
//!   `updated_datetime`, when `supports_updated` (otherwise ignored, as servers without the
//!   extension do). With `ignores_updated_before`, `updated_after` is honoured and
//!   `updated_before` ignored, as some deployed servers do. With `updated_after` the 90-day default window on `requested_datetime` is
//!   not applied (an explicit `start_date`/`end_date` still is) and the results are sorted by
//!   `updated_datetime`.
//! - `status`: comma-separated list of statuses to keep.
//!
//! Results: ascending by the filtered time field (`requested_datetime`, or `updated_datetime`
//! with `updated_after`), ties by id; the first `max_per_response` (1000) elements only — a
//! full response means "there may be more: split the window".
//!
//! One record (quirks on; field order is not significant):
//! ```json
//! {"service_request_id": 20261128000002,        // even seq: a number; odd seq: "20261128000001"
//!  "status": "open",                            // open → acknowledged → in_progress → closed
//!  "status_notes": null,                        // odd seq: absent until the first update
//!  "service_name": "社会保险", "service_code": "SB01",
//!  "description": "来电人反映：本人张伟，自2011年起在...",
//!  "agency_responsible": "市人力社保局",
//!  "service_notice": null,                      // or "请于30分钟内签收处理" (seq % 3 == 0)
//!  "requested_datetime": "2026-11-28T10:00:00+08:00",  // seq%3: 0 "+08:00", 1 "Z" (UTC),
//!  "updated_datetime": "2026-11-28T10:00:00+08:00",    //       2 no offset (local time)
//!  "expected_datetime": "2026-12-01T10:00:00+08:00",   // absent when seq % 4 == 1
//!  "address": "浙江省杭州市西湖区文三路12号翠苑一区3幢2单元501室",
//!  "address_id": "HZ33010612345678",            // absent when seq % 4 == 1
//!  "zipcode": "310012", "lat": 30.2601, "long": 120.1322,  // absent when seq % 5 == 2;
//!                                               // strings "30.2601" when seq % 7 == 3
//!  "media_url": "http://127.0.0.1:PORT/files/20261128000004_1.jpg",  // seq % media_every == 0
//!                                               // (.jpg/.png/.pdf); else "" (even seq) or absent
//!  "first_name": "伟", "last_name": "张", "phone": "138-1234-5678",
//!  "email": "zhangwei85@163.com",               // absent for about half
//!  "id_number": "330106198501010012", "district": "西湖区",
//!  "channel": "12345热线", "source_type": "电话", "urgent": false,   // unknown extras
//!  "ext": {"call_id": "C00000002", "satisfaction": null}}
//! ```
//! With `quirks: false`: ids are strings, times carry `+08:00`, every field is present
//! (`null` when empty), no extra fields. Bad records: see [`BadKind`] (a bad date makes both
//! `requested_datetime` and `updated_datetime` `"yesterday"`: no usable time).
//!
//! Malformed optional fields ([`Faults::malformed_optional_every`](super::Faults)): the
//! record keeps its id, `requested_datetime` and `description`, but `updated_datetime` is
//! `"待定"`, `expected_datetime` `"三个工作日内"`, `lat` `"N/A"`, `long` an object and
//! `address` an object (`{"province":...,"detail":...}`). The server still files it under
//! its real update time.
//!
//! Attachments (`media_url`): on the sim's own origin, or `media_origin` (another origin);
//! with `media_redirect_to`, a URL on the sim's origin that redirects there; with
//! [`Faults::broken_media_every`](super::Faults), one that always answers 500.

use crate::faults::{Plan, arrange};
use crate::media::{MediaPlace, serve_file};
use crate::query::{param, parse_query};
use crate::records::{BadKind, Element, Field, OVERSIZE_BYTES, Rec, RecordStore};
use crate::reply::{Flavor, Reply, check_bearer, not_found, run_faulted};
use crate::server::{Server, bind};
use crate::shared::{Core, count_requests};
use crate::texts::{Petition, matters};
use crate::time::{TimeStyle, fmt_time, parse_time_param, secs_at_or_after, secs_at_or_before};
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Bound;
use std::sync::Arc;

/// The longest `requested_datetime` window one request may ask for.
pub const MAX_WINDOW_DAYS: i64 = 90;

const STATUSES: [&str; 4] = ["open", "acknowledged", "in_progress", "closed"];

#[derive(Clone, Debug)]
pub struct HotlineSimConfig {
    /// Where to listen; default `127.0.0.1:0` (a free port).
    pub addr: SocketAddr,
    /// Seeds the generated texts (same seed and creation order → same records).
    pub seed: u64,
    /// When set, every request must carry this `jurisdiction_id`.
    pub jurisdiction_id: Option<String>,
    /// When set, every request must carry this `api_key`.
    pub api_key: Option<String>,
    /// When set, every API request must carry `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
    /// Whether `updated_after`/`updated_before` are understood (default true).
    pub supports_updated: bool,
    /// The cap on one response's elements (default 1000).
    pub max_per_response: usize,
    /// Real-world quirks: numeric ids, mixed time offsets, missing optional fields, extra
    /// fields (default true; see the module docs).
    pub quirks: bool,
    /// Every Nth record (by creation number) has a `media_url` (default `Some(4)`).
    pub media_every: Option<u32>,
    /// Honour `updated_after` but ignore `updated_before` (default false).
    pub ignores_updated_before: bool,
    /// The origin `media_url`s point to instead of the sim's own (e.g. another server).
    pub media_origin: Option<String>,
    /// `media_url`s on the sim's origin answer `302` to this origin's `/files/...`.
    pub media_redirect_to: Option<String>,
}

impl Default for HotlineSimConfig {
    fn default() -> Self {
        HotlineSimConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            seed: 12345,
            jurisdiction_id: None,
            api_key: None,
            bearer: None,
            supports_updated: true,
            max_per_response: 1000,
            quirks: true,
            media_every: Some(4),
            ignores_updated_before: false,
            media_origin: None,
            media_redirect_to: None,
        }
    }
}

/// A running hotline simulator. Dropping it stops the server too; `stop` waits for it.
pub struct HotlineSim {
    shared: Arc<Shared>,
    core: Arc<Core>,
    server: Server,
}

struct Shared {
    cfg: HotlineSimConfig,
    origin: String,
    core: Arc<Core>,
}

fn make_id(dt: jiff::civil::DateTime, seq: u64) -> String {
    format!("{:04}{:02}{:02}{seq:06}", dt.year(), dt.month(), dt.day())
}

impl HotlineSim {
    /// Binds `cfg.addr` and serves on the current tokio runtime.
    pub async fn start(cfg: HotlineSimConfig) -> std::io::Result<HotlineSim> {
        let listener = bind(cfg.addr).await?;
        let core = Arc::new(Core::new(cfg.seed, make_id));
        let shared = Arc::new(Shared {
            origin: listener.origin.clone(),
            cfg,
            core: core.clone(),
        });
        let server = Server::spawn(listener, router(shared.clone(), core.clone()));
        Ok(HotlineSim {
            shared,
            core,
            server,
        })
    }

    /// `http://127.0.0.1:PORT/open311/v2` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("{}/open311/v2", self.shared.origin)
    }

    /// `http://127.0.0.1:PORT`: where `/files/...` live.
    pub fn origin(&self) -> String {
        self.shared.origin.clone()
    }

    record_methods!();

    /// Stops the server: no new connections; in-flight requests get up to two seconds.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

fn router(shared: Arc<Shared>, core: Arc<Core>) -> Router {
    Router::new()
        .route("/open311/v2/requests.json", get(list))
        .route("/open311/v2/requests/{file}", get(one))
        .route("/open311/v2/services.json", get(services))
        .route("/files/{name}", get(serve_file))
        .fallback(not_found)
        .with_state(shared)
        .layer(axum::middleware::from_fn_with_state(core, count_requests))
}

async fn list(
    State(sh): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let plan = sh.core.plan();
    run_faulted(plan, Flavor::Open311, |plan| {
        sh.list(raw.as_deref(), &headers, plan)
    })
    .await
}

async fn one(
    State(sh): State<Arc<Shared>>,
    Path(file): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let plan = sh.core.plan();
    run_faulted(plan, Flavor::Open311, |_| {
        let q = parse_query(raw.as_deref());
        if let Err(r) = sh.authorize(&q, &headers) {
            return r;
        }
        let rec = file
            .strip_suffix(".json")
            .and_then(|id| sh.core.lock().store.get(id).cloned());
        match rec {
            Some(rec) => Reply::json(StatusCode::OK, &[sh.record(&rec)]),
            None => Reply::error(
                Flavor::Open311,
                StatusCode::NOT_FOUND,
                "service_request_id not found",
            ),
        }
    })
    .await
}

async fn services(
    State(sh): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let plan = sh.core.plan();
    run_faulted(plan, Flavor::Open311, |_| {
        let q = parse_query(raw.as_deref());
        if let Err(r) = sh.authorize(&q, &headers) {
            return r;
        }
        let list: Vec<Value> = matters()
            .iter()
            .map(|m| {
                json!({
                    "service_code": m.code,
                    "service_name": m.service_name,
                    "description": m.title,
                    "metadata": false,
                    "type": "realtime",
                    "keywords": m.service_name,
                    "group": m.agency,
                })
            })
            .collect();
        Reply::json(StatusCode::OK, &Value::Array(list))
    })
    .await
}

/// The filter of one `requests.json` request, in whole seconds.
#[derive(Debug, PartialEq)]
struct Filter {
    /// Sort and page by `updated_datetime` (`updated_after` given).
    by_updated: bool,
    /// Inclusive `requested_datetime` bounds.
    created: Option<(i64, i64)>,
    /// `updated_datetime` strictly after.
    updated_after: Option<i64>,
    /// `updated_datetime` at or before.
    updated_before: Option<i64>,
    statuses: Option<Vec<String>>,
}

fn bad_request(msg: String) -> Reply {
    Reply::error(Flavor::Open311, StatusCode::BAD_REQUEST, &msg)
}

fn time_param(q: &[(String, String)], name: &str) -> Result<Option<i64>, Reply> {
    match param(q, name) {
        None => Ok(None),
        Some(v) => parse_time_param(v)
            .map(Some)
            .ok_or_else(|| bad_request(format!("{name}: not a valid date/time: {v}"))),
    }
}

impl Filter {
    fn parse(q: &[(String, String)], cfg: &HotlineSimConfig, now_ms: i64) -> Result<Filter, Reply> {
        const WINDOW_MS: i64 = MAX_WINDOW_DAYS * 86_400_000;
        let start = time_param(q, "start_date")?;
        let end = time_param(q, "end_date")?;
        let (updated_after, updated_before) = if cfg.supports_updated {
            (
                time_param(q, "updated_after")?,
                if cfg.ignores_updated_before {
                    None
                } else {
                    time_param(q, "updated_before")?
                },
            )
        } else {
            (None, None)
        };
        let window = match (start, end) {
            (Some(s), Some(e)) => Some((s, e)),
            (Some(s), None) => Some((s, s + WINDOW_MS)),
            (None, Some(e)) => Some((e - WINDOW_MS, e)),
            (None, None) if updated_after.is_some() => None,
            (None, None) => Some((now_ms - WINDOW_MS, now_ms)),
        };
        if let Some((s, e)) = window {
            if e < s {
                return Err(bad_request("end_date is before start_date".into()));
            }
            if e - s > WINDOW_MS {
                return Err(bad_request(format!(
                    "the date range may not exceed {MAX_WINDOW_DAYS} days"
                )));
            }
        }
        let statuses = param(q, "status").map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        });
        Ok(Filter {
            by_updated: updated_after.is_some(),
            created: window.map(|(s, e)| (secs_at_or_after(s), secs_at_or_before(e))),
            updated_after: updated_after.map(secs_at_or_before),
            updated_before: updated_before.map(secs_at_or_before),
            statuses,
        })
    }

    fn keeps(&self, r: &Rec) -> bool {
        self.created
            .is_none_or(|(lo, hi)| (lo..=hi).contains(&r.created))
            && self.updated_after.is_none_or(|t| r.updated > t)
            && self.updated_before.is_none_or(|t| r.updated <= t)
            && self
                .statuses
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == status(r)))
    }

    /// The first `cap` records that pass, in the response's order.
    fn select(&self, store: &RecordStore, cap: usize) -> Vec<Rec> {
        if self.by_updated {
            let lo = self.updated_after.map_or(Bound::Unbounded, Bound::Excluded);
            let hi = self
                .updated_before
                .map_or(Bound::Unbounded, Bound::Included);
            store
                .range_updated(lo, hi)
                .filter(|r| self.keeps(r))
                .take(cap)
                .cloned()
                .collect()
        } else {
            let (lo, hi) = match self.created {
                Some((lo, hi)) => (Bound::Included(lo), Bound::Included(hi)),
                None => (Bound::Unbounded, Bound::Unbounded),
            };
            store
                .range_created(lo, hi)
                .filter(|r| self.keeps(r))
                .take(cap)
                .cloned()
                .collect()
        }
    }
}

fn status(r: &Rec) -> &'static str {
    STATUSES[(r.version as usize).min(STATUSES.len() - 1)]
}

fn status_notes(r: &Rec, agency: &str) -> Option<String> {
    match r.version {
        0 => None,
        1 => Some("已签收，正在核实情况".into()),
        2 => Some(format!("已转{agency}办理")),
        3 => Some("已办结，已电话回复来电人".into()),
        v => Some(format!(
            "第{}次回访：来电人对办理结果{}",
            v - 3,
            ["满意", "基本满意", "不满意"][(v % 3) as usize]
        )),
    }
}

/// An Open311 id as sent: a JSON number or a string.
#[derive(Serialize)]
#[serde(untagged)]
enum Id {
    Number(u64),
    Text(String),
}

/// A coordinate as sent: a JSON number, or (quirks) a string or an object.
#[derive(Serialize)]
#[serde(untagged)]
enum Coord {
    Number(f64),
    Text(String),
    Parts(Value),
}

/// An address as sent: text, or (malformed) an object.
#[derive(Serialize)]
#[serde(untagged)]
enum Address {
    Text(String),
    Parts(Value),
}

#[derive(Serialize)]
struct Ext {
    call_id: String,
    satisfaction: Option<&'static str>,
}

/// One served record (see the module docs); `Field::Absent` fields are left out.
#[derive(Serialize)]
struct Wire {
    #[serde(skip_serializing_if = "Field::is_absent")]
    service_request_id: Field<Id>,
    status: &'static str,
    #[serde(skip_serializing_if = "Field::is_absent")]
    status_notes: Field<String>,
    service_name: Cow<'static, str>,
    service_code: Cow<'static, str>,
    description: String,
    agency_responsible: &'static str,
    service_notice: Option<&'static str>,
    requested_datetime: String,
    updated_datetime: String,
    #[serde(skip_serializing_if = "Field::is_absent")]
    expected_datetime: Field<String>,
    address: Address,
    #[serde(skip_serializing_if = "Field::is_absent")]
    address_id: Field<String>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    zipcode: Field<&'static str>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    lat: Field<Coord>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    long: Field<Coord>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    media_url: Field<String>,
    first_name: &'static str,
    last_name: &'static str,
    phone: String,
    #[serde(skip_serializing_if = "Field::is_absent")]
    email: Field<String>,
    id_number: String,
    district: &'static str,
    #[serde(skip_serializing_if = "Field::is_absent")]
    channel: Field<&'static str>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    source_type: Field<&'static str>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    urgent: Field<bool>,
    #[serde(skip_serializing_if = "Field::is_absent")]
    ext: Field<Ext>,
}

impl Shared {
    fn authorize(&self, q: &[(String, String)], headers: &HeaderMap) -> Result<(), Reply> {
        check_bearer(self.cfg.bearer.as_deref(), headers, Flavor::Open311)?;
        if let Some(key) = &self.cfg.api_key
            && param(q, "api_key") != Some(key.as_str())
        {
            return Err(Reply::error(
                Flavor::Open311,
                StatusCode::FORBIDDEN,
                "api_key missing or not valid",
            ));
        }
        if let Some(j) = &self.cfg.jurisdiction_id {
            match param(q, "jurisdiction_id") {
                None => return Err(bad_request("jurisdiction_id is required".into())),
                Some(v) if v != j => {
                    return Err(Reply::error(
                        Flavor::Open311,
                        StatusCode::NOT_FOUND,
                        "jurisdiction_id not found",
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn list(&self, raw: Option<&str>, headers: &HeaderMap, plan: &Plan) -> Reply {
        let q = parse_query(raw);
        if let Err(r) = self.authorize(&q, headers) {
            return r;
        }
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let filter = match Filter::parse(&q, &self.cfg, now_ms) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let cap = self.cfg.max_per_response;
        let recs = filter.select(&self.core.lock().store, cap);
        let key = recs.first().map_or(0, |r| r.seq) ^ ((recs.len() as u64) << 40);
        let recs = arrange(recs, plan, key, cap);
        let body: Vec<Element<Wire>> = recs.iter().map(|r| self.record(r)).collect();
        Reply::json(StatusCode::OK, &body)
    }

    /// The record as served (see the module docs).
    fn record(&self, r: &Rec) -> Element<Wire> {
        use Field::{Absent, Is, Null};
        let seq = r.seq;
        if r.bad == Some(BadKind::NotObject) {
            return Element::not_object(seq);
        }
        let quirks = self.cfg.quirks;
        let mut p = Petition::generate(self.cfg.seed, seq);
        let script = r.script.as_deref();
        if let Some(s) = script {
            s.apply(&mut p);
        }
        let style = if quirks {
            [TimeStyle::Offset, TimeStyle::Utc, TimeStyle::Naive][(seq % 3) as usize]
        } else {
            TimeStyle::Offset
        };
        // Absent with quirks on (for some records), `null` with them off.
        let missing = |absent: bool| if quirks && absent { Absent } else { Null };
        let sparse = quirks && seq % 4 == 1;
        let no_geo = quirks && seq % 5 == 2;
        let coord = |x: f64| {
            if quirks && seq % 7 == 3 {
                Coord::Text(x.to_string())
            } else {
                Coord::Number(x)
            }
        };
        let id = match r.bad {
            Some(BadKind::NoId) => Absent,
            _ => match r.id.parse::<u64>() {
                Ok(n) if quirks && seq.is_multiple_of(2) => Is(Id::Number(n)),
                _ => Is(Id::Text(r.id.to_string())),
            },
        };
        let text = if r.bad == Some(BadKind::Oversize) {
            p.long_body(OVERSIZE_BYTES)
        } else {
            p.body
        };
        let bad_date = r.bad == Some(BadKind::BadDate);
        let m = r.malformed;
        Element::Record(Wire {
            service_request_id: id,
            status: status(r),
            status_notes: status_notes(r, p.matter.agency)
                .map_or_else(|| missing(seq % 2 == 1), Is),
            service_name: script
                .and_then(|s| s.service_name.clone())
                .map_or(Cow::Borrowed(p.matter.service_name), Cow::Owned),
            service_code: script
                .and_then(|s| s.service_code.clone())
                .map_or(Cow::Borrowed(p.matter.code), Cow::Owned),
            description: format!("来电人反映：{text}"),
            agency_responsible: p.matter.agency,
            service_notice: (seq.is_multiple_of(3)).then_some("请于30分钟内签收处理"),
            requested_datetime: if bad_date {
                "yesterday".to_string()
            } else {
                fmt_time(r.created, style)
            },
            updated_datetime: if bad_date {
                "yesterday".to_string()
            } else if m {
                "待定".to_string()
            } else {
                fmt_time(r.updated, style)
            },
            expected_datetime: if m {
                Is("三个工作日内".to_string())
            } else if sparse {
                Absent
            } else {
                Is(fmt_time(r.created + 3 * 86_400, style))
            },
            address: if r.contact_withheld {
                Address::Text(String::new())
            } else if m {
                Address::Parts(json!({"province": "浙江省", "detail": p.address}))
            } else {
                Address::Text(p.address)
            },
            address_id: if sparse { Absent } else { Is(p.address_id) },
            zipcode: if no_geo {
                Absent
            } else {
                Is(p.district.zipcode)
            },
            lat: if m {
                Is(Coord::Text("N/A".into()))
            } else if no_geo {
                Absent
            } else {
                Is(coord(p.lat))
            },
            long: if m {
                Is(Coord::Parts(json!({"value": p.long})))
            } else if no_geo {
                Absent
            } else {
                Is(coord(p.long))
            },
            media_url: match self.media_url(r) {
                Some(u) => Is(u),
                None if quirks && seq.is_multiple_of(2) => Is(String::new()),
                None => missing(true),
            },
            first_name: p.given,
            last_name: p.surname,
            phone: if r.contact_withheld {
                String::new()
            } else {
                p.phone
            },
            email: p.email.map_or_else(|| missing(true), Is),
            id_number: p.id_number,
            district: p.district.name,
            channel: if quirks { Is("12345热线") } else { Absent },
            source_type: if quirks {
                Is(["电话", "微信", "APP", "网站"][(seq % 4) as usize])
            } else {
                Absent
            },
            urgent: if quirks {
                Is(seq.is_multiple_of(10))
            } else {
                Absent
            },
            ext: if quirks {
                Is(Ext {
                    call_id: format!("C{seq:08}"),
                    satisfaction: None,
                })
            } else {
                Absent
            },
        })
    }

    fn media_url(&self, r: &Rec) -> Option<String> {
        let every = u64::from(self.cfg.media_every.filter(|&e| e > 0)?);
        r.seq.is_multiple_of(every).then(|| {
            let ext = ["jpg", "png", "pdf"][((r.seq / every) % 3) as usize];
            let place = MediaPlace {
                origin: self
                    .cfg
                    .media_origin
                    .clone()
                    .unwrap_or_else(|| self.origin.clone()),
                redirect_to: self.cfg.media_redirect_to.clone(),
            };
            place.url(r, &format!("{}_1.{ext}", r.id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Faults;
    use crate::testing::{get, get_with};
    use jiff::Timestamp;
    use std::time::Duration;

    async fn sim(cfg: HotlineSimConfig) -> HotlineSim {
        HotlineSim::start(cfg).await.unwrap()
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn days_ago(d: i64) -> i64 {
        Timestamp::now().as_second() - d * 86_400
    }

    fn list_url(s: &HotlineSim) -> String {
        format!("{}/requests.json", s.base_url())
    }

    /// The id as a string, whether it came as a number or a string.
    fn id_of(v: &Value) -> String {
        match &v["service_request_id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            other => panic!("no id: {other}"),
        }
    }

    #[tokio::test]
    async fn a_full_window_is_capped_at_1000_in_id_order() {
        let s = sim(HotlineSimConfig::default()).await;
        let t = days_ago(3);
        let ids = s.add_records_at_same_time(1500, ts(t));
        let start = fmt_time(t - 60, TimeStyle::Offset);
        let end = fmt_time(t + 60, TimeStyle::Offset);
        let got = get(&list_url(&s), &[("start_date", &start), ("end_date", &end)]).await;
        assert_eq!(got.status, 200);
        let arr = got.json();
        let arr = arr.as_array().unwrap();
        assert_eq!(arr.len(), 1000);
        let got_ids: Vec<String> = arr.iter().map(id_of).collect();
        assert_eq!(got_ids, ids[..1000]);
        s.stop().await;
    }

    #[tokio::test]
    async fn a_full_window_with_copies_and_shuffle_is_still_a_sorted_prefix() {
        let s = sim(HotlineSimConfig::default()).await;
        let ids = s.add_records_between(1100, ts(days_ago(3)), ts(days_ago(2)));
        s.set_faults(Faults {
            duplicate_records: true,
            out_of_order: true,
            ..Faults::default()
        });
        let arr = get(&list_url(&s), &[]).await.json();
        let arr = arr.as_array().unwrap();
        assert_eq!(arr.len(), 1000, "the cap counts copies");
        let mut distinct: Vec<String> = arr.iter().map(id_of).collect();
        assert_ne!(distinct[..5], ids[..5], "shuffled");
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct,
            ids[..distinct.len()],
            "nothing left out before the last"
        );
        s.stop().await;
    }

    #[tokio::test]
    async fn the_window_is_inclusive_and_defaults_to_the_last_90_days() {
        let s = sim(HotlineSimConfig::default()).await;
        let (t0, t1) = (days_ago(10), days_ago(9));
        let a = s.add_record_at(ts(t0));
        let b = s.add_record_at(ts(t1));
        let old = s.add_record_at(ts(days_ago(100)));
        let now = s.add_records(1).remove(0);
        let q = |lo: i64, hi: i64| (fmt_time(lo, TimeStyle::Utc), fmt_time(hi, TimeStyle::Naive));
        let ids = |v: Value| v.as_array().unwrap().iter().map(id_of).collect::<Vec<_>>();
        let (lo, hi) = q(t0, t1);
        let got = get(&list_url(&s), &[("start_date", &lo), ("end_date", &hi)]).await;
        assert_eq!(ids(got.json()), [a.clone(), b.clone()]);
        let (lo, hi) = q(t0 + 1, t1);
        let got = get(&list_url(&s), &[("start_date", &lo), ("end_date", &hi)]).await;
        assert_eq!(ids(got.json()), std::slice::from_ref(&b));
        let got = get(&list_url(&s), &[]).await;
        assert_eq!(ids(got.json()), [a, b, now]);
        assert!(s.record_ids().contains(&old));
        s.stop().await;
    }

    #[tokio::test]
    async fn more_than_90_days_or_a_bad_date_is_a_400_error_array() {
        let s = sim(HotlineSimConfig::default()).await;
        let lo = fmt_time(days_ago(91), TimeStyle::Offset);
        let hi = fmt_time(days_ago(0), TimeStyle::Offset);
        for q in [
            vec![("start_date", lo.as_str()), ("end_date", hi.as_str())],
            vec![("start_date", hi.as_str()), ("end_date", lo.as_str())],
            vec![("start_date", "yesterday")],
        ] {
            let got = get(&list_url(&s), &q).await;
            assert_eq!(got.status, 400, "{q:?}");
            let body = got.json();
            assert_eq!(body[0]["code"], 400);
            assert!(body[0]["description"].is_string());
        }
        let lo = fmt_time(days_ago(90), TimeStyle::Offset);
        let got = get(&list_url(&s), &[("start_date", &lo), ("end_date", &hi)]).await;
        assert_eq!(got.status, 200, "exactly 90 days is allowed");
        s.stop().await;
    }

    #[tokio::test]
    async fn updated_after_returns_updates_in_update_order_unless_unsupported() {
        let s = sim(HotlineSimConfig::default()).await;
        let ids = s.add_records_between(3, ts(days_ago(200)), ts(days_ago(5)));
        let cut = fmt_time(days_ago(1), TimeStyle::Offset);
        assert!(s.update_record(&ids[2]));
        assert!(s.update_record(&ids[0]));
        assert!(!s.update_record("nope"));
        let got = get(&list_url(&s), &[("updated_after", &cut)]).await;
        let arr = got.json();
        let arr = arr.as_array().unwrap().clone();
        // Both updated now; the 200-day-old one too (no default window with updated_after).
        let mut want: Vec<(i64, String)> = [&ids[2], &ids[0]]
            .iter()
            .map(|id| (s.core.lock().store.get(id).unwrap().updated, id.to_string()))
            .collect();
        want.sort();
        let got_ids: Vec<String> = arr.iter().map(id_of).collect();
        assert_eq!(got_ids, want.into_iter().map(|w| w.1).collect::<Vec<_>>());
        assert!(arr.iter().all(|v| v["status"] == "acknowledged"));
        assert!(arr.iter().all(|v| v["status_notes"].is_string()));
        // Strictly after: the latest update time itself is excluded.
        let last = s.core.lock().store.get(&ids[0]).unwrap().updated;
        let at_last = fmt_time(last, TimeStyle::Offset);
        let got = get(&list_url(&s), &[("updated_after", &at_last)]).await;
        assert_eq!(got.json(), json!([]));
        // updated_before is inclusive.
        let got = get(
            &list_url(&s),
            &[("updated_after", &cut), ("updated_before", &at_last)],
        )
        .await;
        assert_eq!(got.json().as_array().unwrap().len(), 2);
        s.stop().await;

        let s = sim(HotlineSimConfig {
            supports_updated: false,
            ..HotlineSimConfig::default()
        })
        .await;
        let ids = s.add_records_between(2, ts(days_ago(20)), ts(days_ago(10)));
        s.update_record(&ids[0]);
        let got = get(&list_url(&s), &[("updated_after", &cut)]).await;
        let got_ids: Vec<String> = got.json().as_array().unwrap().iter().map(id_of).collect();
        assert_eq!(
            got_ids, ids,
            "ignored: the default window, by requested time"
        );
        s.stop().await;
    }

    #[tokio::test]
    async fn quirks_ids_times_missing_and_extra_fields_and_media() {
        let s = sim(HotlineSimConfig::default()).await;
        s.add_records(12);
        let arr = get(&list_url(&s), &[]).await.json();
        let arr = arr.as_array().unwrap();
        assert!(arr.iter().any(|v| v["service_request_id"].is_number()));
        assert!(arr.iter().any(|v| v["service_request_id"].is_string()));
        let times: Vec<&str> = arr
            .iter()
            .map(|v| v["requested_datetime"].as_str().unwrap())
            .collect();
        assert!(times.iter().any(|t| t.ends_with("+08:00")));
        assert!(times.iter().any(|t| t.ends_with('Z')));
        assert!(times.iter().any(|t| t.len() == 19));
        assert!(arr.iter().any(|v| v.get("expected_datetime").is_none()));
        assert!(arr.iter().all(|v| v["channel"] == "12345热线"));
        assert!(arr.iter().any(|v| v["lat"].is_string()));
        for v in arr {
            let id = v["id_number"].as_str().unwrap();
            assert_eq!(crate::id_check_digit(&id[..17]), id.chars().last());
            assert!(
                v["description"]
                    .as_str()
                    .unwrap()
                    .starts_with("来电人反映：")
            );
        }
        let media: Vec<&str> = arr
            .iter()
            .filter_map(|v| v.get("media_url").and_then(Value::as_str))
            .filter(|u| !u.is_empty())
            .collect();
        assert_eq!(media.len(), 3, "every 4th of 12");
        for url in media {
            let got = get(url, &[]).await;
            assert_eq!(got.status, 200);
            let ct = got.header("content-type").unwrap();
            let ext = url.rsplit('.').next().unwrap();
            let want = match ext {
                "jpg" => "image/jpeg",
                "png" => "image/png",
                _ => "application/pdf",
            };
            assert_eq!(ct, want);
        }
        s.stop().await;

        let s = sim(HotlineSimConfig {
            quirks: false,
            ..HotlineSimConfig::default()
        })
        .await;
        s.add_records(6);
        let arr = get(&list_url(&s), &[]).await.json();
        for v in arr.as_array().unwrap() {
            assert!(v["service_request_id"].is_string());
            assert!(
                v["requested_datetime"]
                    .as_str()
                    .unwrap()
                    .ends_with("+08:00")
            );
            assert!(v.get("email").is_some() && v.get("media_url").is_some());
            assert!(v.get("channel").is_none());
        }
        s.stop().await;
    }

    #[tokio::test]
    async fn auth_bearer_api_key_and_jurisdiction() {
        let s = sim(HotlineSimConfig {
            bearer: Some("tok".into()),
            api_key: Some("k1".into()),
            jurisdiction_id: Some("hz.gov.cn".into()),
            ..HotlineSimConfig::default()
        })
        .await;
        let url = list_url(&s);
        let auth = [("authorization", "Bearer tok")];
        let good = [("api_key", "k1"), ("jurisdiction_id", "hz.gov.cn")];
        assert_eq!(get(&url, &good).await.status, 401);
        let cases: [(&[(&str, &str)], u16); 5] = [
            (&good, 200),
            (&[("jurisdiction_id", "hz.gov.cn")], 403),
            (&[("api_key", "bad"), ("jurisdiction_id", "hz.gov.cn")], 403),
            (&[("api_key", "k1")], 400),
            (&[("api_key", "k1"), ("jurisdiction_id", "sh.gov.cn")], 404),
        ];
        for (q, want) in cases {
            let got = get_with(&url, q, &auth).await;
            assert_eq!(got.status, want, "{q:?}");
            if want != 200 {
                assert_eq!(got.json()[0]["code"], want);
            }
        }
        s.stop().await;
    }

    #[tokio::test]
    async fn each_fault_happens_on_the_nth_request() {
        let s = sim(HotlineSimConfig::default()).await;
        s.add_records(3);
        let url = list_url(&s);
        let statuses = async |n: usize| {
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(get(&url, &[]).await);
            }
            v
        };

        s.set_faults(Faults {
            error_500_every: Some(3),
            ..Faults::default()
        });
        let got = statuses(6).await;
        let codes: Vec<u16> = got.iter().map(|g| g.status).collect();
        assert_eq!(codes, [200, 200, 500, 200, 200, 500]);
        assert_eq!(got[2].json()[0]["code"], 500);

        s.set_faults(Faults {
            rate_limit_every: Some(2),
            retry_after_secs: 7,
            ..Faults::default()
        });
        let got = statuses(2).await;
        assert_eq!((got[0].status, got[1].status), (200, 429));
        assert_eq!(got[1].header("retry-after"), Some("7"));

        s.set_faults(Faults {
            slow_every: Some(2),
            slow_ms: 300,
            ..Faults::default()
        });
        let got = statuses(2).await;
        assert!(got[0].took < Duration::from_millis(300));
        assert!(got[1].took >= Duration::from_millis(300));
        assert_eq!(got[1].status, 200);

        s.set_faults(Faults {
            truncate_every: Some(2),
            ..Faults::default()
        });
        let got = statuses(2).await;
        assert_eq!(got[1].status, 200);
        assert_eq!(got[1].body.len(), got[0].body.len() / 2);
        assert!(serde_json::from_slice::<Value>(&got[1].body).is_err());

        s.set_faults(Faults {
            garbage_every: Some(1),
            ..Faults::default()
        });
        let got = statuses(1).await;
        assert_eq!(got[0].status, 200);
        assert!(
            got[0]
                .header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        assert!(serde_json::from_slice::<Value>(&got[0].body).is_err());

        s.set_faults(Faults {
            duplicate_records: true,
            out_of_order: true,
            ..Faults::default()
        });
        let a = get(&url, &[]).await.json();
        let b = get(&url, &[]).await.json();
        assert_eq!(a, b, "the shuffle is deterministic");
        let ids: Vec<String> = a.as_array().unwrap().iter().map(id_of).collect();
        assert_eq!(ids.len(), 4, "3 records and one copy");
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct, s.record_ids());

        assert_eq!(s.requests_served(), 6 + 2 + 2 + 2 + 1 + 2);
        s.stop().await;
    }

    #[tokio::test]
    async fn bad_records_appear_inside_valid_responses() {
        let s = sim(HotlineSimConfig::default()).await;
        s.set_faults(Faults {
            bad_record_every: Some(2),
            ..Faults::default()
        });
        let listed = s.add_records(8);
        assert_eq!(listed.len(), 6, "4 valid and the 2 bad ones with ids");
        assert_eq!(s.record_ids().len(), 4);
        let bad = s.bad_record_ids();
        assert_eq!(bad.len(), 2);
        let got = get(&list_url(&s), &[]).await;
        assert_eq!(got.status, 200);
        let arr = got.json();
        let arr = arr.as_array().unwrap();
        assert_eq!(arr.len(), 8);
        let objects: Vec<&Value> = arr.iter().filter(|v| v.is_object()).collect();
        assert_eq!(objects.len(), 7, "one element is not an object");
        assert_eq!(
            objects
                .iter()
                .filter(|v| v.get("service_request_id").is_none())
                .count(),
            1
        );
        let dated = objects
            .iter()
            .find(|v| v["requested_datetime"] == "yesterday")
            .unwrap();
        let big = objects
            .iter()
            .find(|v| v["description"].as_str().unwrap().len() >= crate::OVERSIZE_BYTES)
            .unwrap();
        let mut want = vec![id_of(dated), id_of(big)];
        want.sort();
        assert_eq!(want, bad);
        s.stop().await;
    }

    #[tokio::test]
    async fn one_record_and_services() {
        let s = sim(HotlineSimConfig::default()).await;
        let id = s.add_records(1).remove(0);
        let got = get(&format!("{}/requests/{id}.json", s.base_url()), &[]).await;
        assert_eq!(id_of(&got.json()[0]), id);
        let got = get(&format!("{}/requests/nope.json", s.base_url()), &[]).await;
        assert_eq!(got.status, 404);
        let got = get(&format!("{}/services.json", s.base_url()), &[]).await;
        assert!(got.json().as_array().unwrap().len() >= 10);
        s.stop().await;
    }
}
