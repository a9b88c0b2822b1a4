//! The web petition portal simulator: camelCase items in a `{"code":0,...}` envelope, three
//! pagination modes, optional HMAC-signed requests.
//!
//! Endpoints (base `http://127.0.0.1:PORT/api`):
//! - `GET {base}/petitions` — the list (below).
//! - `POST {base}/petitions/{petitionNo}/status` — the status API (write-back, below).
//! - `GET {origin}/files/{name}` — attachments (no auth, never faulted).
//!
//! Checks, in order: faults ([`Faults`](super::Faults)); bearer token if configured (401
//! `{"code":401,"msg":"unauthorized"}`); the signature if configured (see [`sign`]; 401 with
//! msg `signature mismatch`, `timestamp expired` or `nonce reused`); parameters (400
//! `{"code":400,"msg":"..."}`).
//!
//! Parameters: `updated_after` (optional; RFC 3339, or `yyyy-MM-dd HH:mm:ss` local time):
//! items whose `updateTime` is strictly later. `page_size` (default 20; over 100 is clamped to
//! 100; 0 or not a number: 400). Items are sorted by update time, then `petitionNo`.
//! By [`Pagination`] mode:
//! - `Page`: `page` (1-based, default 1); body
//!   `{"code":0,"msg":"ok","data":{"total":N,"page":P,"page_size":S,"items":[...]}}`, `total`
//!   counting the items that pass the filter; a page past the end has no items.
//! - `Cursor`: `cursor` (opaque; absent on the first request); body
//!   `{"code":0,"msg":"ok","data":{"items":[...],"next_cursor":"..."}}`, `next_cursor` `null`
//!   on the last page. A cursor is a position (after this item), so items updated meanwhile
//!   come again later, as with real keyset pagination.
//! - `Link`: body `{"code":0,"data":{"items":[...]}}` and, while more remain, the header
//!   `Link: <http://127.0.0.1:PORT/api/petitions?page_size=S&after=TOKEN>; rel="next"` (the
//!   request's parameters with `after` replaced, RFC 3986-encoded).
//!
//! Invalid `page`, `cursor` or `after`: 400.
//!
//! Quirks (config): `link_origin` writes `Link` targets on another origin; `redirect_api_to`
//! answers every list request `307 Temporary Redirect` to the same path and query on another
//! origin (before any check); `media_origin` / `media_redirect_to` put attachment URLs on
//! another origin, or on this one redirecting there.
//!
//! One item:
//! ```json
//! {"petitionNo":"WS2026112800001","createTime":"2026-11-28 10:00:00",
//!  "updateTime":"2026-11-28 10:05:00","title":"单位未足额缴纳社保","content":"本人张伟，...",
//!  "petitioner":{"name":"张伟","idCard":"330106198501010012","mobile":"13812345678",
//!                "address":"浙江省杭州市西湖区文三路12号翠苑一区3幢2单元501室"},
//!  "regionCode":"330106","regionName":"西湖区","matterCode":"SB01","status":"待受理",
//!  "attachments":[{"url":"http://127.0.0.1:PORT/files/WS2026112800003_1.jpg","name":"照片1.jpg"}]}
//! ```
//! Times are Asia/Shanghai local time without offset. `status` goes 待受理 → 已受理 → 办理中 →
//! 已办结. An item made with `add_incomplete_record` has `mobile` and `address` `""` until
//! `supplement_record`. `attachments` is `[]` for most items; every `media_every`-th item has one or two
//! (`.jpg` 照片N.jpg, `.pdf` 材料N.pdf, `.png` 截图N.png). Bad items: see
//! [`BadKind`] (the bad date: `createTime` `"2026-13-45"` and `updateTime` `"2026-13-45"
//! 25:00:00"`, no usable time). Malformed optional fields
//! ([`Faults::malformed_optional_every`](super::Faults)): `createTime` `"暂无"`,
//! `petitioner.address` an array, `regionName` an object; id, `updateTime` and texts stay good.

use super::{
    BadKind, Core, Element, Flavor, Petition, Plan, Rec, Reply, Server, TimeStyle, arrange,
    check_bearer, count_requests, fmt_time, not_found, param, parse_query, parse_time_param,
    percent_encode, run_faulted, secs_at_or_before, serve_file,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

const STATUSES: [&str; 4] = ["待受理", "已受理", "办理中", "已办结"];

/// The largest `page_size` honoured.
pub const MAX_PAGE_SIZE: usize = 100;
/// How far `X-Timestamp` may be from the server's clock, in milliseconds.
pub const TIMESTAMP_TOLERANCE_MS: i64 = 300_000;
/// How long a nonce is remembered (a reuse within it is rejected), in milliseconds.
pub const NONCE_TTL_MS: i64 = 600_000;

/// The keys of a `[channels.<name>.mapping]` section that read this simulator's items (the
/// shipped `config/petitiond.toml` portal mapping says the same): for tests, benchmarks and
/// anything else that points a paged source at the simulator.
pub const MAPPING_TOML: &str = r#"id = "/petitionNo"
created = "/createTime"
updated = "/updateTime"
title = "/title"
content = "/content"
name = "/petitioner/name"
id_number = "/petitioner/idCard"
phone = "/petitioner/mobile"
address = "/petitioner/address"
region = "/regionName"
service_code = "/matterCode"
status = "/status"
attachments = "/attachments"
attachment_url = "/url"
attachment_name = "/name"
"#;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pagination {
    /// `page` & `page_size`, with `total`.
    #[default]
    Page,
    /// `cursor` & `page_size`, with `next_cursor`.
    Cursor,
    /// `page_size`, and a `Link: <...>; rel="next"` header.
    Link,
}

/// The app key and secret of signed requests.
#[derive(Clone, Debug)]
pub struct SigningSecret {
    pub app_key: String,
    pub secret: String,
}

#[derive(Clone, Debug)]
pub struct PortalSimConfig {
    /// Where to listen; default `127.0.0.1:0` (a free port).
    pub addr: SocketAddr,
    /// Seeds the generated texts.
    pub seed: u64,
    pub pagination: Pagination,
    /// `page_size` when the request has none (default 20).
    pub default_page_size: usize,
    /// When set, requests must be signed (see [`sign`]).
    pub signing: Option<SigningSecret>,
    /// When set, API requests must carry `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
    /// Every Nth item (by creation number) has attachments (default `Some(3)`).
    pub media_every: Option<u32>,
    /// `Link` targets are written on this origin instead of the sim's own.
    pub link_origin: Option<String>,
    /// Every list request answers `307` to the same path and query on this origin.
    pub redirect_api_to: Option<String>,
    /// The origin attachment URLs point to instead of the sim's own.
    pub media_origin: Option<String>,
    /// Attachment URLs on the sim's origin answer `302` to this origin's `/files/...`.
    pub media_redirect_to: Option<String>,
}

impl Default for PortalSimConfig {
    fn default() -> Self {
        PortalSimConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            seed: 20261128,
            pagination: Pagination::Page,
            default_page_size: 20,
            signing: None,
            bearer: None,
            media_every: Some(3),
            link_origin: None,
            redirect_api_to: None,
            media_origin: None,
            media_redirect_to: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signing

/// `SORTED_QUERY`: the (decoded) parameters sorted by name, then value, each written `k=v` with
/// both sides RFC 3986-encoded ([`percent_encode`]), joined by `&`. No parameters: `""`.
pub fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `METHOD + "\n" + PATH + "\n" + SORTED_QUERY + "\n" + TIMESTAMP + "\n" + NONCE`, where PATH
/// is the request's path as sent (e.g. `/api/petitions`) and TIMESTAMP the `X-Timestamp`
/// header's text (unix milliseconds).
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &[(String, String)],
    timestamp: &str,
    nonce: &str,
) -> String {
    format!(
        "{method}\n{path}\n{}\n{timestamp}\n{nonce}",
        canonical_query(query)
    )
}

/// `X-Signature`: lower-case hex HMAC-SHA256 of `canonical` keyed by `secret`.
///
/// A request carries `X-App-Key`, `X-Timestamp` (unix ms, within ±300 s of the server),
/// `X-Nonce` (not seen in the last 10 minutes) and `X-Signature`. The server decodes the query
/// string as `application/x-www-form-urlencoded` (`+` is a space) before sorting and
/// re-encoding it, so the client may encode its query either way.
///
/// Answers (401, `{"code":401,"msg":...}`): a header missing, an unknown app key, a signature
/// that is not hex or does not match → `signature mismatch`; an `X-Timestamp` that is not an
/// integer or is more than 300 s from the server's clock → `timestamp expired`; a nonce seen in
/// the last 10 minutes → `nonce reused` (a rejected request does not use up its nonce).
///
/// Test vector (also `signature_matches_the_published_vector` below; checked with
/// `printf 'GET\n/api/petitions\npage=1&page_size=50&updated_after=2026-11-28T10%%3A00%%3A00%%2B08%%3A00\n1795831200000\nn-0001' | openssl dgst -sha256 -hmac sim-secret`):
/// - secret `sim-secret`, method `GET`, path `/api/petitions`
/// - query `updated_after=2026-11-28T10:00:00+08:00`, `page_size=50`, `page=1` (any order)
/// - timestamp `1795831200000`, nonce `n-0001`
/// - canonical:
///   `GET\n/api/petitions\npage=1&page_size=50&updated_after=2026-11-28T10%3A00%3A00%2B08%3A00\n1795831200000\nn-0001`
/// - signature: `b64f43dce0396414b09ec764bf8a29584f5a109afc75da0ada8dde0e40ead578`
///
/// A request with a body (the status API) appends `"\n" + BODY_SHA256`, the lower-case hex
/// SHA-256 of the body bytes as sent (a client template:
/// `{method}\n{path}\n{query}\n{timestamp}\n{nonce}\n{body_sha256}`). Test vector (also
/// `status_signature_matches_the_published_vector`): secret `sim-secret`, `POST
/// /api/petitions/WS2026112800001/status`, no query, timestamp `1795831200000`, nonce
/// `n-0002`, body `{"opTime":"2026-11-28 10:05:00","state":"FINISHED"}` (SHA-256
/// `90db0698718cf4e851ab996533c5d655dd61b9433fabbcd437bb6f865679d6d1`) → signature
/// `c469665197260fdbf7b22a90839d0e37a255474342063e7e4b5d914e79e91be6`.
pub fn sign(secret: &str, canonical: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Remembers nonces for [`NONCE_TTL_MS`].
#[derive(Default)]
struct NonceBook {
    seen: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl NonceBook {
    /// `false` if `nonce` was used within the TTL; otherwise records it.
    fn admit(&mut self, nonce: &str, now_ms: i64) -> bool {
        while let Some((t, _)) = self.order.front()
            && now_ms - *t >= NONCE_TTL_MS
        {
            let (t, n) = self.order.pop_front().expect("front exists");
            if self.seen.get(&n) == Some(&t) {
                self.seen.remove(&n);
            }
        }
        if self.seen.contains_key(nonce) {
            return false;
        }
        self.seen.insert(nonce.to_string(), now_ms);
        self.order.push_back((now_ms, nonce.to_string()));
        true
    }
}

// ---------------------------------------------------------------------------------------------
// The simulator

/// A running portal simulator. Dropping it stops the server too; `stop` waits for it.
pub struct PortalSim {
    shared: Arc<Shared>,
    core: Arc<Core>,
    server: Server,
}

struct Shared {
    cfg: PortalSimConfig,
    origin: String,
    core: Arc<Core>,
    nonces: Mutex<NonceBook>,
    statuses: Mutex<StatusBook>,
}

fn make_id(dt: jiff::civil::DateTime, seq: u64) -> String {
    format!("WS{:04}{:02}{:02}{seq:05}", dt.year(), dt.month(), dt.day())
}

impl PortalSim {
    /// Binds `cfg.addr` and serves on the current tokio runtime.
    pub async fn start(cfg: PortalSimConfig) -> std::io::Result<PortalSim> {
        let listener = super::bind(cfg.addr).await?;
        let core = Arc::new(Core::new(cfg.seed, make_id));
        let shared = Arc::new(Shared {
            origin: listener.origin.clone(),
            cfg,
            core: core.clone(),
            nonces: Mutex::new(NonceBook::default()),
            statuses: Mutex::new(StatusBook::default()),
        });
        let app = Router::new()
            .route("/api/petitions", get(petitions))
            .route("/api/petitions/{id}/status", post(status))
            .route("/files/{name}", get(serve_file))
            .fallback(not_found)
            .with_state(shared.clone())
            .layer(axum::middleware::from_fn_with_state(
                core.clone(),
                count_requests,
            ));
        let server = Server::spawn(listener, app);
        Ok(PortalSim {
            shared,
            core,
            server,
        })
    }

    /// `http://127.0.0.1:PORT/api` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("{}/api", self.shared.origin)
    }

    /// `http://127.0.0.1:PORT`: where `/files/...` live.
    pub fn origin(&self) -> String {
        self.shared.origin.clone()
    }

    record_methods!();

    /// The status writes applied to a petition, in order (each idempotency key once).
    pub fn status_log(&self, id: &str) -> Vec<AppliedStatus> {
        let book = self
            .shared
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        book.applied.get(id).cloned().unwrap_or_default()
    }

    /// Every status request that reached the status API past the faults, authentication and
    /// the signature, in arrival order — replays of a known key included.
    pub fn status_requests(&self) -> Vec<StatusRequest> {
        let book = self
            .shared
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        book.requests.clone()
    }

    /// Stops the server: no new connections; in-flight requests get up to two seconds.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

async fn petitions(
    State(sh): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let plan = sh.core.plan();
    run_faulted(plan, Flavor::Portal, |plan| {
        sh.petitions(&method, &uri, &headers, plan)
    })
    .await
}

fn bad_request(msg: &str) -> Reply {
    Reply::error(Flavor::Portal, StatusCode::BAD_REQUEST, msg)
}

// ---------------------------------------------------------------------------------------------
// The status API

/// A status write the sim applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedStatus {
    /// The request's `Idempotency-Key`.
    pub key: String,
    /// `ACCEPTED`, `TIME_LIMIT` or `FINISHED`.
    pub state: String,
    pub handle_dept: Option<String>,
    pub due_time: Option<String>,
    pub op_time: String,
}

/// A status request as received (after faults, auth and the signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRequest {
    pub petition: String,
    pub key: String,
    pub body: Vec<u8>,
    /// Answered from the key's stored response: not applied again.
    pub replayed: bool,
}

/// What the status API remembers: applied writes per petition, each key's request hash and
/// answer, every request received.
#[derive(Default)]
struct StatusBook {
    applied: HashMap<String, Vec<AppliedStatus>>,
    /// key → (petition, SHA-256 of the body, the answer's status and body).
    keys: HashMap<String, (String, [u8; 32], StatusCode, Vec<u8>)>,
    requests: Vec<StatusRequest>,
}

/// The states the status API knows.
pub const STATUS_STATES: [&str; 3] = ["ACCEPTED", "TIME_LIMIT", "FINISHED"];

/// The keys of a `[channels.<name>.writeback]` section that write to this simulator's status
/// API (the shipped `config/petitiond.toml` says the same): path, states and fields.
pub const WRITEBACK_TOML: &str = r#"path = "/petitions/{id}/status"
idempotency_header = "Idempotency-Key"
time_format = "%Y-%m-%d %H:%M:%S"

[channels.portal.writeback.states]
acknowledged = "ACCEPTED"
due = "TIME_LIMIT"
completed = "FINISHED"

[channels.portal.writeback.fields]
state = "state"
department = ""
department_name = "handleDept"
due_at = "dueTime"
time = "opTime"
"#;

async fn status(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let plan = sh.core.plan();
    let lost = plan.lost_answer.then(|| plan_slow_ms(&sh));
    let resp = run_faulted(plan, Flavor::Portal, |plan| {
        sh.status(&id, &method, &uri, &headers, &body, plan)
    })
    .await;
    if let (Some(ms), StatusCode::GATEWAY_TIMEOUT) = (lost, resp.status()) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    resp
}

/// The `slow_ms` of the faults in force (how long a lost answer keeps the client waiting).
fn plan_slow_ms(sh: &Shared) -> u64 {
    sh.core.lock().faults_slow_ms()
}

impl Shared {
    /// `POST {base}/petitions/{id}/status`. Checks, in order: bearer, signature (with the
    /// body's SHA-256, see [`sign`]), `Idempotency-Key` (400 without one), the key's history
    /// (the same key with the same body: the stored answer again, `Idempotent-Replayed: true`,
    /// nothing applied; with another body: 422), the petition (404), the body (400): a JSON
    /// object with `state` one of [`STATUS_STATES`], `opTime` (`yyyy-MM-dd HH:mm:ss`), and
    /// `handleDept` for `ACCEPTED`, `dueTime` for `TIME_LIMIT`. Applied: 200
    /// `{"code":0,"msg":"ok","data":{"petitionNo":..,"state":..}}`; the list does not change
    /// (the portal shows the petitioner its own status). Answers other than 5xx are stored
    /// under the key.
    fn status(
        &self,
        id: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        plan: &Plan,
    ) -> Reply {
        if let Err(r) = check_bearer(self.cfg.bearer.as_deref(), headers, Flavor::Portal) {
            return r;
        }
        let now_ms = jiff::Timestamp::now().as_millisecond();
        if let Err(msg) = self.verify(method, uri, headers, Some(body), now_ms) {
            return Reply::error(Flavor::Portal, StatusCode::UNAUTHORIZED, msg);
        }
        let Some(key) = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.trim().is_empty())
        else {
            return bad_request("Idempotency-Key required");
        };
        let hash: [u8; 32] = Sha256::digest(body).into();
        let mut book = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        book.requests.push(StatusRequest {
            petition: id.to_string(),
            key: key.to_string(),
            body: body.to_vec(),
            replayed: false,
        });
        if let Some((petition, h, st, answer)) = book.keys.get(key).cloned() {
            if petition != id || h != hash {
                return Reply::error(
                    Flavor::Portal,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Idempotency-Key reused with another request",
                );
            }
            if let Some(last) = book.requests.last_mut() {
                last.replayed = true;
            }
            let reply = Reply {
                status: st,
                content_type: super::JSON,
                headers: Vec::new(),
                body: answer,
            };
            return reply.with_header(
                header::HeaderName::from_static("idempotent-replayed"),
                "true",
            );
        }
        let known = self
            .core
            .lock()
            .store
            .get(id)
            .is_some_and(|r| r.bad.is_none());
        let reply = if !known {
            Reply::error(Flavor::Portal, StatusCode::NOT_FOUND, "petition not found")
        } else {
            match parse_status(key, body) {
                Err(msg) => bad_request(&msg),
                Ok(applied) => {
                    let state = applied.state.clone();
                    book.applied
                        .entry(id.to_string())
                        .or_default()
                        .push(applied);
                    Reply::json(
                        StatusCode::OK,
                        &serde_json::json!({
                            "code": 0, "msg": "ok",
                            "data": {"petitionNo": id, "state": state},
                        }),
                    )
                }
            }
        };
        book.keys.insert(
            key.to_string(),
            (id.to_string(), hash, reply.status, reply.body.clone()),
        );
        if plan.lost_answer && reply.status == StatusCode::OK {
            return Reply::error(Flavor::Portal, StatusCode::GATEWAY_TIMEOUT, "网关超时");
        }
        reply
    }
}

/// A status body → what is applied, or why not (400).
fn parse_status(key: &str, body: &[u8]) -> Result<AppliedStatus, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "body: not JSON".to_string())?;
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let time_ok = |t: &Option<String>| {
        t.as_deref()
            .is_some_and(|t| jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", t).is_ok())
    };
    let state = text("state").ok_or("state: required")?;
    if !STATUS_STATES.contains(&state.as_str()) {
        return Err(format!("state: `{state}` unknown"));
    }
    let op_time = text("opTime");
    if !time_ok(&op_time) {
        return Err("opTime: required, yyyy-MM-dd HH:mm:ss".into());
    }
    let handle_dept = text("handleDept");
    if state == "ACCEPTED" && handle_dept.as_deref().is_none_or(|d| d.trim().is_empty()) {
        return Err("handleDept: required for ACCEPTED".into());
    }
    let due_time = text("dueTime");
    if state == "TIME_LIMIT" && !time_ok(&due_time) {
        return Err("dueTime: required for TIME_LIMIT, yyyy-MM-dd HH:mm:ss".into());
    }
    Ok(AppliedStatus {
        key: key.to_string(),
        state,
        handle_dept,
        due_time,
        op_time: op_time.unwrap_or_default(),
    })
}

/// A position in the update-time order: after the item `(updated, id)`.
fn encode_token(updated: i64, id: &str) -> String {
    hex::encode(format!("{updated}:{id}"))
}

fn decode_token(token: &str) -> Option<(i64, String)> {
    let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
    let (t, id) = text.split_once(':')?;
    Some((t.parse().ok()?, id.to_string()))
}

impl Shared {
    /// The signature of a request; a request with a body (the status API) signs the body's
    /// SHA-256 too (see [`sign`]).
    fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<(), &'static str> {
        let Some(signing) = &self.cfg.signing else {
            return Ok(());
        };
        const MISMATCH: &str = "signature mismatch";
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(key), Some(ts), Some(nonce), Some(sig)) = (
            h("x-app-key"),
            h("x-timestamp"),
            h("x-nonce"),
            h("x-signature"),
        ) else {
            return Err(MISMATCH);
        };
        if key != signing.app_key {
            return Err(MISMATCH);
        }
        let ts_ms: i64 = ts.parse().map_err(|_| "timestamp expired")?;
        if (now_ms - ts_ms).abs() > TIMESTAMP_TOLERANCE_MS {
            return Err("timestamp expired");
        }
        let mut canonical = canonical_request(
            method.as_str(),
            uri.path(),
            &parse_query(uri.query()),
            ts,
            nonce,
        );
        if let Some(body) = body {
            canonical.push('\n');
            canonical.push_str(&hex::encode(Sha256::digest(body)));
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(signing.secret.as_bytes()).expect("any key");
        mac.update(canonical.as_bytes());
        let given = hex::decode(sig).map_err(|_| MISMATCH)?;
        mac.verify_slice(&given).map_err(|_| MISMATCH)?;
        let mut book = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        if !book.admit(nonce, now_ms) {
            return Err("nonce reused");
        }
        Ok(())
    }

    fn petitions(&self, method: &Method, uri: &Uri, headers: &HeaderMap, plan: &Plan) -> Reply {
        if let Some(to) = &self.cfg.redirect_api_to {
            let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            return Reply {
                status: StatusCode::TEMPORARY_REDIRECT,
                content_type: super::JSON,
                headers: Vec::new(),
                body: b"{}".to_vec(),
            }
            .with_header(
                header::LOCATION,
                &format!("{}{}{query}", to.trim_end_matches('/'), uri.path()),
            );
        }
        if let Err(r) = check_bearer(self.cfg.bearer.as_deref(), headers, Flavor::Portal) {
            return r;
        }
        let now_ms = jiff::Timestamp::now().as_millisecond();
        if let Err(msg) = self.verify(method, uri, headers, None, now_ms) {
            return Reply::error(Flavor::Portal, StatusCode::UNAUTHORIZED, msg);
        }
        let q = parse_query(uri.query());
        let size = match param(&q, "page_size") {
            None => self.cfg.default_page_size.clamp(1, MAX_PAGE_SIZE),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => n.min(MAX_PAGE_SIZE),
                _ => return bad_request("page_size must be a positive integer"),
            },
        };
        let after = match param(&q, "updated_after") {
            None => None,
            Some(v) => match parse_time_param(v) {
                Some(ms) => Some(secs_at_or_before(ms)),
                None => return bad_request("updated_after: not a valid time"),
            },
        };
        match self.cfg.pagination {
            Pagination::Page => self.page_mode(&q, size, after, plan),
            Pagination::Cursor | Pagination::Link => self.keyset_mode(uri, &q, size, after, plan),
        }
    }

    fn page_mode(
        &self,
        q: &[(String, String)],
        size: usize,
        after: Option<i64>,
        plan: &Plan,
    ) -> Reply {
        let page = match param(q, "page").map(|p| p.trim().parse::<usize>()) {
            None => 1,
            Some(Ok(p)) if p >= 1 => p,
            Some(_) => return bad_request("page must be a positive integer"),
        };
        let (total, previous, recs) = {
            let mut st = self.core.lock();
            st.store
                .updated_page(after, (page - 1).saturating_mul(size), size)
        };
        let items = self.items(previous, recs, plan);
        Reply::json(
            StatusCode::OK,
            &Envelope {
                code: 0,
                msg: Some("ok"),
                data: PageData {
                    total,
                    page,
                    page_size: size,
                    items,
                },
            },
        )
    }

    fn keyset_mode(
        &self,
        uri: &Uri,
        q: &[(String, String)],
        size: usize,
        after: Option<i64>,
        plan: &Plan,
    ) -> Reply {
        let link = self.cfg.pagination == Pagination::Link;
        let token_name = if link { "after" } else { "cursor" };
        let position = match param(q, token_name) {
            None => None,
            Some(t) => match decode_token(t) {
                Some(p) => Some(p),
                None => return bad_request(&format!("invalid {token_name}")),
            },
        };
        let (previous, mut recs) = {
            let st = self.core.lock();
            let store = &st.store;
            let recs: Vec<Rec> = match &position {
                // Every item after the position is updated after `after` already.
                Some((t, id)) if after.is_none_or(|a| a < *t) => store
                    .updated_after_key(*t, id)
                    .take(size + 1)
                    .cloned()
                    .collect(),
                _ => store
                    .range_updated(
                        after.map_or(Bound::Unbounded, Bound::Excluded),
                        Bound::Unbounded,
                    )
                    .take(size + 1)
                    .cloned()
                    .collect(),
            };
            // The previous page's last item, for `duplicate_records`, if it has not moved.
            let previous = position
                .as_ref()
                .and_then(|(t, id)| store.get(id).filter(|r| r.updated == *t).cloned());
            (previous, recs)
        };
        let more = recs.len() > size;
        recs.truncate(size);
        let next = more
            .then(|| recs.last().map(|r| encode_token(r.updated, &r.id)))
            .flatten();
        let items = self.items(previous, recs, plan);
        if !link {
            return Reply::json(
                StatusCode::OK,
                &Envelope {
                    code: 0,
                    msg: Some("ok"),
                    data: CursorData {
                        items,
                        next_cursor: next,
                    },
                },
            );
        }
        let reply = Reply::json(
            StatusCode::OK,
            &Envelope {
                code: 0,
                msg: None,
                data: LinkData { items },
            },
        );
        match next {
            Some(token) => {
                let mut query: Vec<String> = q
                    .iter()
                    .filter(|(k, _)| k != "after")
                    .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                    .collect();
                query.push(format!("after={token}"));
                let origin = self.cfg.link_origin.as_deref().unwrap_or(&self.origin);
                let url = format!("{origin}{}?{}", uri.path(), query.join("&"));
                reply.with_header(header::LINK, &format!("<{url}>; rel=\"next\""))
            }
            None => reply,
        }
    }

    /// One page's items: the previous page's last item first (with `duplicate_records`), then
    /// the page, then duplicated/shuffled as the faults say.
    fn items(&self, previous: Option<Rec>, recs: Vec<Rec>, plan: &Plan) -> Vec<Element<Item>> {
        let key = recs.first().map_or(0, |r| r.seq) ^ ((recs.len() as u64) << 40);
        let mut all = Vec::with_capacity(recs.len() + 1);
        if plan.duplicate
            && let Some(p) = previous
        {
            all.push(p);
        }
        all.extend(recs);
        arrange(all, plan, key, usize::MAX)
            .iter()
            .map(|r| self.item(r))
            .collect()
    }

    /// The item as served (see the module docs).
    fn item(&self, r: &Rec) -> Element<Item> {
        if r.bad == Some(BadKind::NotObject) {
            return Element::not_object(r.seq);
        }
        let mut p = Petition::generate(self.cfg.seed, r.seq);
        let script = r.script.as_deref();
        if let Some(s) = script {
            s.apply(&mut p);
        }
        let name = p.name();
        let bad_date = r.bad == Some(BadKind::BadDate);
        let m = r.malformed;
        Element::Record(Item {
            petition_no: (r.bad != Some(BadKind::NoId)).then(|| r.id.to_string()),
            create_time: if bad_date {
                "2026-13-45".to_string()
            } else if m {
                "暂无".to_string()
            } else {
                fmt_time(r.created, TimeStyle::LocalSpace)
            },
            update_time: if bad_date {
                "2026-13-45 25:00:00".to_string()
            } else {
                fmt_time(r.updated, TimeStyle::LocalSpace)
            },
            content: if r.bad == Some(BadKind::Oversize) {
                p.long_body(super::OVERSIZE_BYTES)
            } else {
                p.body
            },
            title: p.title,
            petitioner: Petitioner {
                name,
                id_card: p.id_number,
                mobile: if r.contact_withheld {
                    String::new()
                } else {
                    p.phone
                },
                address: if r.contact_withheld {
                    serde_json::Value::from("")
                } else if m {
                    serde_json::json!([p.district.name, p.address])
                } else {
                    serde_json::Value::String(p.address)
                },
            },
            region_code: p.district.code,
            region_name: if m {
                serde_json::json!({"code": p.district.code, "name": p.district.name})
            } else {
                serde_json::Value::from(p.district.name)
            },
            matter_code: script
                .and_then(|s| s.service_code.clone())
                .map_or(Cow::Borrowed(p.matter.code), Cow::Owned),
            status: STATUSES[(r.version as usize).min(STATUSES.len() - 1)],
            attachments: self.attachments(r),
        })
    }

    fn attachments(&self, r: &Rec) -> Vec<Attachment> {
        let Some(every) = self.cfg.media_every.filter(|&e| e > 0).map(u64::from) else {
            return Vec::new();
        };
        if !r.seq.is_multiple_of(every) {
            return Vec::new();
        }
        let count = 1 + (r.seq / every) % 2;
        let place = super::MediaPlace {
            origin: self
                .cfg
                .media_origin
                .clone()
                .unwrap_or_else(|| self.origin.clone()),
            redirect_to: self.cfg.media_redirect_to.clone(),
        };
        (1..=count)
            .map(|i| {
                let (ext, label) =
                    [("jpg", "照片"), ("pdf", "材料"), ("png", "截图")][((r.seq + i) % 3) as usize];
                Attachment {
                    url: place.url(r, &format!("{}_{i}.{ext}", r.id)),
                    name: format!("{label}{i}.{ext}"),
                }
            })
            .collect()
    }
}

/// The `{"code":0,...}` envelope of a successful answer.
#[derive(Serialize)]
struct Envelope<D> {
    code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<&'static str>,
    data: D,
}

#[derive(Serialize)]
struct PageData {
    total: usize,
    page: usize,
    page_size: usize,
    items: Vec<Element<Item>>,
}

#[derive(Serialize)]
struct CursorData {
    items: Vec<Element<Item>>,
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct LinkData {
    items: Vec<Element<Item>>,
}

/// One served item (see the module docs).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    #[serde(skip_serializing_if = "Option::is_none")]
    petition_no: Option<String>,
    create_time: String,
    update_time: String,
    title: String,
    content: String,
    petitioner: Petitioner,
    region_code: &'static str,
    region_name: serde_json::Value,
    matter_code: Cow<'static, str>,
    status: &'static str,
    attachments: Vec<Attachment>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Petitioner {
    name: String,
    id_card: String,
    mobile: String,
    address: serde_json::Value,
}

#[derive(Serialize)]
struct Attachment {
    url: String,
    name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Faults;
    use crate::testing::{Got, get, get_with};
    use jiff::Timestamp;
    use serde_json::{Value, json};
    use sha2::Digest;

    async fn sim(pagination: Pagination) -> PortalSim {
        PortalSim::start(PortalSimConfig {
            pagination,
            ..PortalSimConfig::default()
        })
        .await
        .unwrap()
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    /// 60 records over the last days plus 15 in one second: ties ordered by id.
    fn fill(s: &PortalSim) {
        let now = Timestamp::now().as_second();
        s.add_records_between(60, ts(now - 5 * 86_400), ts(now - 86_400));
        s.add_records_at_same_time(15, ts(now - 3 * 86_400));
    }

    /// Every id in the order the sim must serve them: by update time, then id.
    fn expected_order(s: &PortalSim) -> Vec<String> {
        let st = s.core.lock();
        st.store
            .range_updated(Bound::Unbounded, Bound::Unbounded)
            .map(|r| r.id.to_string())
            .collect()
    }

    fn ids(page: &Value) -> Vec<String> {
        page["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["petitionNo"].as_str().unwrap().to_string())
            .collect()
    }

    fn next_link(got: &Got) -> Option<String> {
        let link = got.header("link")?;
        let (url, rel) = link.split_once(';')?;
        assert_eq!(rel.trim(), "rel=\"next\"");
        Some(
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
        )
    }

    fn url(s: &PortalSim) -> String {
        format!("{}/petitions", s.base_url())
    }

    #[tokio::test]
    async fn page_mode_walks_every_record_once() {
        let s = sim(Pagination::Page).await;
        fill(&s);
        let mut seen = Vec::new();
        for page in 1.. {
            let p = page.to_string();
            let got = get(&url(&s), &[("page", &p), ("page_size", "10")])
                .await
                .json();
            assert_eq!(
                (got["code"].clone(), got["msg"].clone()),
                (json!(0), json!("ok"))
            );
            assert_eq!(got["data"]["total"], 75);
            assert_eq!(got["data"]["page"], page);
            assert_eq!(got["data"]["page_size"], 10);
            let page_ids = ids(&got);
            if page_ids.is_empty() {
                break;
            }
            seen.extend(page_ids);
        }
        assert_eq!(seen, expected_order(&s));
        let got = get(&url(&s), &[("page_size", "500")]).await.json();
        assert_eq!(got["data"]["page_size"], 100);
        assert_eq!(ids(&got).len(), 75);
        for bad in [
            [("page", "0")],
            [("page_size", "x")],
            [("updated_after", "2026-13-45")],
        ] {
            let got = get(&url(&s), &bad).await;
            assert_eq!(got.status, 400);
            assert_eq!(got.json()["code"], 400);
        }
        s.stop().await;
    }

    #[tokio::test]
    async fn cursor_mode_walks_every_record_once() {
        let s = sim(Pagination::Cursor).await;
        fill(&s);
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = vec![("page_size", "7")];
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let got = get(&url(&s), &q).await.json();
            seen.extend(ids(&got));
            match got["data"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, expected_order(&s));
        let got = get(&url(&s), &[("cursor", "zz")]).await;
        assert_eq!(got.status, 400);
        s.stop().await;
    }

    #[tokio::test]
    async fn link_mode_walks_every_record_once() {
        let s = sim(Pagination::Link).await;
        fill(&s);
        let first = get(&url(&s), &[("page_size", "8")]).await;
        let body = first.json();
        assert_eq!(body["code"], 0);
        assert!(body.get("msg").is_none());
        let mut seen = ids(&body);
        let mut next = next_link(&first);
        while let Some(u) = next {
            assert!(u.starts_with(&s.origin()), "absolute: {u}");
            let got = get(&u, &[]).await;
            seen.extend(ids(&got.json()));
            next = next_link(&got);
        }
        assert_eq!(seen, expected_order(&s));
        s.stop().await;
    }

    #[tokio::test]
    async fn updated_after_is_strict_and_updates_come_last() {
        let s = sim(Pagination::Page).await;
        let now = Timestamp::now().as_second();
        let ids_made = s.add_records_between(3, ts(now - 300), ts(now - 100));
        let t1 = fmt_time(now - 200, TimeStyle::LocalSpace);
        let got = get(&url(&s), &[("updated_after", &t1)]).await.json();
        assert_eq!(ids(&got), ids_made[2..]);
        assert_eq!(got["data"]["total"], 1);
        s.update_record(&ids_made[0]);
        let got = get(&url(&s), &[("updated_after", &t1)]).await.json();
        assert_eq!(ids(&got), [ids_made[2].clone(), ids_made[0].clone()]);
        assert_eq!(got["data"]["items"][1]["status"], "已受理");
        s.stop().await;
    }

    #[tokio::test]
    async fn item_shape_and_attachments() {
        let s = sim(Pagination::Page).await;
        s.add_records(6);
        let got = get(&url(&s), &[]).await.json();
        let items = got["data"]["items"].as_array().unwrap().clone();
        let time = regex::Regex::new(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$").unwrap();
        let no = regex::Regex::new(r"^WS\d{8}\d{5,}$").unwrap();
        for it in &items {
            assert!(no.is_match(it["petitionNo"].as_str().unwrap()));
            assert!(time.is_match(it["createTime"].as_str().unwrap()));
            assert!(time.is_match(it["updateTime"].as_str().unwrap()));
            for k in ["title", "content", "regionCode", "regionName", "matterCode"] {
                assert!(it[k].is_string(), "{k}");
            }
            for k in ["name", "idCard", "mobile", "address"] {
                assert!(it["petitioner"][k].is_string(), "petitioner.{k}");
            }
            assert_eq!(it["status"], "待受理");
            assert!(it["attachments"].is_array());
        }
        let urls: Vec<String> = items
            .iter()
            .flat_map(|it| it["attachments"].as_array().unwrap().clone())
            .map(|a| a["url"].as_str().unwrap().to_string())
            .collect();
        assert!(urls.len() >= 2, "items 3 and 6 have attachments");
        for u in urls {
            let got = get(&u, &[]).await;
            assert_eq!(got.status, 200);
            assert!(got.body.len() > 20);
        }
        s.stop().await;
    }

    #[test]
    fn signature_matches_the_published_vector() {
        let q: Vec<(String, String)> = [
            ("updated_after", "2026-11-28T10:00:00+08:00"),
            ("page_size", "50"),
            ("page", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let canonical = canonical_request("GET", "/api/petitions", &q, "1795831200000", "n-0001");
        assert_eq!(
            canonical,
            "GET\n/api/petitions\npage=1&page_size=50&updated_after=2026-11-28T10%3A00%3A00%2B08%3A00\n1795831200000\nn-0001"
        );
        assert_eq!(
            sign("sim-secret", &canonical),
            "b64f43dce0396414b09ec764bf8a29584f5a109afc75da0ada8dde0e40ead578"
        );
        assert_eq!(canonical_query(&[]), "");
    }

    fn signed(
        secret: &SigningSecret,
        full_url: &str,
        ts_ms: i64,
        nonce: &str,
        sig: Option<&str>,
    ) -> Vec<(String, String)> {
        let u = reqwest::Url::parse(full_url).unwrap();
        let q = parse_query(u.query());
        let ts = ts_ms.to_string();
        let canonical = canonical_request("GET", u.path(), &q, &ts, nonce);
        vec![
            ("X-App-Key".into(), secret.app_key.clone()),
            ("X-Timestamp".into(), ts),
            ("X-Nonce".into(), nonce.into()),
            (
                "X-Signature".into(),
                sig.map_or_else(|| sign(&secret.secret, &canonical), str::to_string),
            ),
        ]
    }

    async fn get_signed(full_url: &str, headers: Vec<(String, String)>) -> Got {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        get_with(full_url, &[], &h).await
    }

    #[tokio::test]
    async fn signed_requests_are_checked() {
        let secret = SigningSecret {
            app_key: "app-1".into(),
            secret: "s3cr3t".into(),
        };
        let s = PortalSim::start(PortalSimConfig {
            pagination: Pagination::Link,
            signing: Some(secret.clone()),
            ..PortalSimConfig::default()
        })
        .await
        .unwrap();
        s.add_records(5);
        let now = Timestamp::now().as_millisecond();
        let first = format!(
            "{}?page_size=3&updated_after={}",
            url(&s),
            percent_encode("2020-01-01T00:00:00+08:00")
        );
        let msg = |g: &Got| (g.status, g.json()["msg"].as_str().unwrap_or("").to_string());

        let got = get_signed(&first, signed(&secret, &first, now, "n1", None)).await;
        assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
        assert_eq!(ids(&got.json()).len(), 3);
        // The next link, signed over its own query, is accepted too.
        let next = next_link(&got).unwrap();
        let got = get_signed(&next, signed(&secret, &next, now, "n2", None)).await;
        assert_eq!(ids(&got.json()).len(), 2);

        let reused = get_signed(&first, signed(&secret, &first, now, "n1", None)).await;
        assert_eq!(msg(&reused), (401, "nonce reused".into()));
        let zeros = "0".repeat(64);
        let bad = get_signed(&first, signed(&secret, &first, now, "n3", Some(&zeros))).await;
        assert_eq!(msg(&bad), (401, "signature mismatch".into()));
        // The rejected request did not use up its nonce.
        let ok = get_signed(&first, signed(&secret, &first, now, "n3", None)).await;
        assert_eq!(ok.status, 200);
        let stale = get_signed(&first, signed(&secret, &first, now - 301_000, "n4", None)).await;
        assert_eq!(msg(&stale), (401, "timestamp expired".into()));
        let other_key = SigningSecret {
            app_key: "app-2".into(),
            secret: "s3cr3t".into(),
        };
        let got = get_signed(&first, signed(&other_key, &first, now, "n5", None)).await;
        assert_eq!(msg(&got), (401, "signature mismatch".into()));
        let got = get(&first, &[]).await;
        assert_eq!(msg(&got), (401, "signature mismatch".into()));
        // A tampered query no longer matches its signature.
        let tampered = first.replace("page_size=3", "page_size=4");
        let got = get_signed(&tampered, signed(&secret, &first, now, "n6", None)).await;
        assert_eq!(msg(&got), (401, "signature mismatch".into()));
        s.stop().await;
    }

    #[test]
    fn status_signature_matches_the_published_vector() {
        let body = br#"{"opTime":"2026-11-28 10:05:00","state":"FINISHED"}"#;
        let mut canonical = canonical_request(
            "POST",
            "/api/petitions/WS2026112800001/status",
            &[],
            "1795831200000",
            "n-0002",
        );
        canonical.push('\n');
        canonical.push_str(&hex::encode(Sha256::digest(body)));
        assert!(canonical.ends_with(
            "\n\n1795831200000\nn-0002\n90db0698718cf4e851ab996533c5d655dd61b9433fabbcd437bb6f865679d6d1"
        ));
        assert_eq!(
            sign("sim-secret", &canonical),
            "c469665197260fdbf7b22a90839d0e37a255474342063e7e4b5d914e79e91be6"
        );
    }

    async fn post_status(s: &PortalSim, id: &str, key: Option<&str>, body: &str) -> Got {
        let url = format!("{}/petitions/{id}/status", s.base_url());
        let mut h = vec![("Content-Type", "application/json")];
        if let Some(k) = key {
            h.push(("Idempotency-Key", k));
        }
        crate::testing::post_with(&url, body.as_bytes(), &h).await
    }

    #[tokio::test]
    async fn the_status_api_applies_each_key_once_and_checks_bodies() {
        let s = sim(Pagination::Page).await;
        let ids = s.add_records(2);
        let (a, b) = (&ids[0], &ids[1]);
        let ack =
            r#"{"state":"ACCEPTED","handleDept":"市人力社保局","opTime":"2026-11-28 10:00:00"}"#;
        let got = post_status(&s, a, Some("k1"), ack).await;
        assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
        assert_eq!(got.json()["data"]["state"], "ACCEPTED");
        assert_eq!(got.header("idempotent-replayed"), None);
        // The same key and body again: the stored answer, nothing applied twice.
        let again = post_status(&s, a, Some("k1"), ack).await;
        assert_eq!((again.status, again.body.clone()), (200, got.body.clone()));
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(s.status_log(a).len(), 1);
        // The same key with another body, or on another petition: 422.
        let other = ack.replace("10:00:00", "10:00:01");
        assert_eq!(post_status(&s, a, Some("k1"), &other).await.status, 422);
        assert_eq!(post_status(&s, b, Some("k1"), ack).await.status, 422);
        // A new key is a new write.
        let due = r#"{"state":"TIME_LIMIT","dueTime":"2026-11-28 12:00:00","opTime":"2026-11-28 10:00:00"}"#;
        assert_eq!(post_status(&s, a, Some("k2"), due).await.status, 200);
        let log = s.status_log(a);
        assert_eq!(
            log.iter().map(|x| x.state.as_str()).collect::<Vec<_>>(),
            ["ACCEPTED", "TIME_LIMIT"]
        );
        assert_eq!(log[0].handle_dept.as_deref(), Some("市人力社保局"));
        assert_eq!(log[1].due_time.as_deref(), Some("2026-11-28 12:00:00"));
        // What is refused: no key, an unknown petition, bad bodies.
        let cases: [(Option<&str>, &str, &str, u16); 7] = [
            (None, a, ack, 400),
            (Some("k3"), "WS0000", ack, 404),
            (Some("k4"), a, "not json", 400),
            (
                Some("k5"),
                a,
                r#"{"state":"DONE","opTime":"2026-11-28 10:00:00"}"#,
                400,
            ),
            (
                Some("k6"),
                a,
                r#"{"state":"ACCEPTED","opTime":"2026-11-28 10:00:00"}"#,
                400,
            ),
            (
                Some("k7"),
                a,
                r#"{"state":"TIME_LIMIT","opTime":"2026-11-28 10:00:00"}"#,
                400,
            ),
            (
                Some("k8"),
                a,
                r#"{"state":"FINISHED","opTime":"yesterday"}"#,
                400,
            ),
        ];
        for (key, id, body, want) in cases {
            let got = post_status(&s, id, key, body).await;
            assert_eq!(got.status, want, "{key:?} {body}");
            assert_eq!(got.json()["code"], want, "{key:?} {body}");
        }
        assert_eq!(s.status_log(a).len(), 2, "nothing refused was applied");
        assert!(s.status_log(b).is_empty());
        s.stop().await;
    }

    #[tokio::test]
    async fn a_lost_answer_is_applied_and_its_retry_is_recognised() {
        let s = sim(Pagination::Page).await;
        let id = s.add_records(1).remove(0);
        s.set_faults(Faults {
            lost_answer_every: Some(1),
            slow_ms: 50,
            ..Faults::default()
        });
        let fin = r#"{"state":"FINISHED","opTime":"2026-11-28 10:05:00"}"#;
        let got = post_status(&s, &id, Some("f1"), fin).await;
        assert_eq!(got.status, 504);
        assert!(got.took >= std::time::Duration::from_millis(50));
        assert_eq!(
            s.status_log(&id).len(),
            1,
            "applied although the answer was lost"
        );
        // The retry with the same key is answered from the stored 200 (even while every write
        // loses its answer: a replay is not a write), and not applied again.
        let retry = post_status(&s, &id, Some("f1"), fin).await;
        assert_eq!(retry.status, 200);
        assert_eq!(retry.header("idempotent-replayed"), Some("true"));
        assert_eq!(s.status_log(&id).len(), 1);
        // A client that retried under a new key would have written twice.
        s.set_faults(Faults::default());
        assert_eq!(post_status(&s, &id, Some("f2"), fin).await.status, 200);
        assert_eq!(s.status_log(&id).len(), 2);
        let reqs = s.status_requests();
        assert_eq!(
            reqs.iter()
                .map(|r| (r.key.as_str(), r.replayed))
                .collect::<Vec<_>>(),
            [("f1", false), ("f1", true), ("f2", false)]
        );
        s.stop().await;
    }

    #[tokio::test]
    async fn an_incomplete_record_gets_its_contact_when_supplemented() {
        let s = sim(Pagination::Page).await;
        let id = s.add_incomplete_record();
        let item = |page: &Value| page["data"]["items"][0].clone();
        let before = item(&get(&url(&s), &[]).await.json());
        assert_eq!(before["petitionNo"], id.as_str());
        assert_eq!(before["petitioner"]["mobile"], "");
        assert_eq!(before["petitioner"]["address"], "");
        assert!(
            before["petitioner"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
        );
        assert!(s.supplement_record(&id));
        assert!(!s.supplement_record("WS-nope"));
        let after = item(&get(&url(&s), &[]).await.json());
        assert!(
            after["petitioner"]["mobile"]
                .as_str()
                .is_some_and(|m| m.len() >= 11)
        );
        assert!(
            after["petitioner"]["address"]
                .as_str()
                .is_some_and(|a| !a.is_empty())
        );
        assert!(
            after["updateTime"].as_str() > before["updateTime"].as_str(),
            "the update is visible to updated_after"
        );
        assert_eq!(after["status"], before["status"], "no status step");
        s.stop().await;
    }

    #[test]
    fn nonces_expire_after_ten_minutes() {
        let mut book = NonceBook::default();
        assert!(book.admit("a", 0));
        assert!(!book.admit("a", NONCE_TTL_MS - 1));
        assert!(book.admit("a", NONCE_TTL_MS));
        assert_eq!(book.order.len(), 1);
    }

    #[tokio::test]
    async fn faults_duplicates_across_pages_and_bad_items() {
        let s = sim(Pagination::Cursor).await;
        s.set_faults(Faults {
            bad_record_every: Some(5),
            ..Faults::default()
        });
        s.add_records(20);
        s.set_faults(Faults {
            duplicate_records: true,
            error_500_every: Some(4),
            ..Faults::default()
        });
        let mut elements = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = Vec::new();
        let mut errors = 0;
        loop {
            let mut q = vec![("page_size", "6")];
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let got = get(&url(&s), &q).await;
            if got.status == 500 {
                assert_eq!(got.json()["code"], 500);
                errors += 1;
                continue;
            }
            let body = got.json();
            let items = body["data"]["items"].as_array().unwrap().clone();
            pages.push(items.clone());
            elements.extend(items);
            match body["data"]["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert!(errors >= 1);
        let no = |v: &Value| {
            v.get("petitionNo")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        // Each later page starts with the previous page's last item.
        for w in pages.windows(2) {
            assert_eq!(no(&w[1][0]), no(w[0].last().unwrap()));
        }
        let mut distinct: Vec<String> = elements.iter().filter_map(no).collect();
        let with_copies = distinct.len();
        distinct.sort();
        distinct.dedup();
        assert!(with_copies > distinct.len());
        let mut want: Vec<String> = s.record_ids();
        want.extend(s.bad_record_ids());
        want.sort();
        assert_eq!(distinct, want, "every item with an id, none lost");
        assert!(elements.iter().any(|v| !v.is_object()));
        assert!(elements.iter().any(|v| v["createTime"] == "2026-13-45"));
        assert!(
            elements
                .iter()
                .any(|v| v.is_object() && v.get("petitionNo").is_none())
        );
        s.stop().await;
    }
}
