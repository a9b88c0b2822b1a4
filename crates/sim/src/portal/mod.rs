//! The web petition portal simulator: camelCase items in a `{"code":0,...}` envelope, three
//! pagination modes, optional HMAC-signed requests.
//!
//! Endpoints (base `http://127.0.0.1:PORT/api`):
//! - `GET {base}/petitions` — the list (below).
//! - `POST {base}/petitions/{petitionNo}/status` — the status API (write-back, below).
//! - `GET {origin}/files/{name}` — attachments (no auth, never faulted).
//!
//! Checks, in order: faults ([`Faults`](crate::Faults)); bearer token if configured (401
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
//! ([`Faults::malformed_optional_every`](crate::Faults)): `createTime` `"暂无"`,
//! `petitioner.address` an array, `regionName` an object; id, `updateTime` and texts stay good.
//!
//! The list API lives in `list`, the status API (write-back) in `status`, request signing in
//! `signing`; this module holds the configuration and the running simulator.

mod list;
mod signing;
mod status;
#[cfg(test)]
mod tests;

pub use list::MAX_PAGE_SIZE;
pub use signing::{NONCE_TTL_MS, TIMESTAMP_TOLERANCE_MS, canonical_query, canonical_request, sign};
pub use status::{AppliedStatus, STATUS_STATES, StatusRequest, WRITEBACK_TOML};

use crate::media::serve_file;
use crate::reply::{Flavor, Reply, not_found};
use crate::server::{Server, bind};
use crate::shared::{Core, count_requests};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use signing::NonceBook;
use status::StatusBook;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

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
        let listener = bind(cfg.addr).await?;
        let core = Arc::new(Core::new(cfg.seed, make_id));
        let shared = Arc::new(Shared {
            origin: listener.origin.clone(),
            cfg,
            core: core.clone(),
            nonces: Mutex::new(NonceBook::default()),
            statuses: Mutex::new(StatusBook::default()),
        });
        let app = Router::new()
            .route("/api/petitions", get(list::petitions))
            .route("/api/petitions/{id}/status", post(status::status))
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

fn bad_request(msg: &str) -> Reply {
    Reply::error(Flavor::Portal, StatusCode::BAD_REQUEST, msg)
}
