//! The list API: `GET {base}/petitions` in its three pagination modes, and the items as served.

use super::{Pagination, Shared, bad_request};
use crate::faults::{Plan, arrange};
use crate::media::MediaPlace;
use crate::query::{param, parse_query, percent_encode};
use crate::records::{BadKind, Element, OVERSIZE_BYTES, Rec};
use crate::reply::{Flavor, JSON, Reply, check_bearer, run_faulted};
use crate::texts::Petition;
use crate::time::{TimeStyle, fmt_time, parse_time_param, secs_at_or_before};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde::Serialize;
use std::borrow::Cow;
use std::ops::Bound;
use std::sync::Arc;

const STATUSES: [&str; 4] = ["待受理", "已受理", "办理中", "已办结"];

/// The largest `page_size` honoured.
pub const MAX_PAGE_SIZE: usize = 100;

pub(super) async fn petitions(
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
    fn petitions(&self, method: &Method, uri: &Uri, headers: &HeaderMap, plan: &Plan) -> Reply {
        if let Some(to) = &self.cfg.redirect_api_to {
            let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            return Reply {
                status: StatusCode::TEMPORARY_REDIRECT,
                content_type: JSON,
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
                p.long_body(OVERSIZE_BYTES)
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
        let place = MediaPlace {
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
