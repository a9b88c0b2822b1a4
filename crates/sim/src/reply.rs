//! HTTP answers both sims write: the [`Reply`] before response-level faults, the APIs' error
//! bodies ([`Flavor`]), [`run_faulted`] (one API request through its fault [`Plan`]), bearer
//! checks and the 404.

use crate::faults::{Fail, Plan};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;

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

    pub(crate) fn into_response(self) -> Response {
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

pub(crate) async fn not_found() -> Response {
    Reply {
        status: StatusCode::NOT_FOUND,
        content_type: "text/plain; charset=utf-8",
        headers: Vec::new(),
        body: b"not found\n".to_vec(),
    }
    .into_response()
}
