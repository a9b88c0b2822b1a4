//! The `/files/{name}` attachments: the file server (with its switches for broken, slow and
//! moved files) and the attachment URLs records link to ([`MediaPlace`]). The bytes come from
//! `files`.

use crate::files;
use crate::query::{param, parse_query, percent_encode};
use crate::records::Rec;
use crate::reply::Reply;
use axum::http::{StatusCode, header};
use axum::response::Response;
use std::time::Duration;

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
