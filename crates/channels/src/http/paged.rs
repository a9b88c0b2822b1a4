//! A generic paged JSON API (the web petition portal; non-Open311 hotline vendors).
//!
//! A poll asks for records changed after `cursor − overlap` (when the API has such a
//! parameter) and walks the pages — page number + size, a cursor token from the body, or an
//! RFC 8288 `Link: <…>; rel="next"` header — handing each page to intake before asking for
//! the next. After each page is durable the cursor moves to the latest upstream update time
//! seen so far (records come oldest first; the overlap covers ties and late writers), but
//! never past an item held back for its attachment, nor further ahead of our clock than
//! `max_clock_skew`.
//!
//! A `Link` target is a URL of its own: it must be on an allowed origin (else the poll stops
//! with an error, the cursor where the pages so far left it), and its query is signed like
//! any other (the client moves it into the signed query pairs). A record older than the
//! `updated_after` asked for proves the API ignores it: one `channel.bound_ignored` event
//! per run (every poll then reads everything again, recognised by id and version).

use super::client::{Fetcher, Purpose, Req, Unusable};
use super::{HttpChannel, PollCtx, PollError, RunState, TimeKey, record};
use crate::config::http::{Pagination, Protocol};
use jiff::SignedDuration;
use tokio_util::sync::CancellationToken;

/// Pages per poll, a guard against an upstream that never stops answering "next".
const MAX_PAGES: usize = 100_000;

pub(super) async fn poll(
    ch: &HttpChannel,
    f: &Fetcher,
    stop: &CancellationToken,
    ctx: &mut PollCtx,
    run: &mut RunState,
) -> Result<usize, PollError> {
    let Protocol::Paged {
        method,
        path,
        query,
        updated_after_param,
        updated_after_format,
        items_pointer,
        pagination,
    } = &ch.config.protocol
    else {
        unreachable!("paged::poll is only called for paged sources");
    };
    let overlap = SignedDuration::try_from(ch.config.overlap).unwrap_or_default();
    let after = ctx.cursor.watermark - overlap;
    let format_after = |t: jiff::Timestamp| match updated_after_format {
        None => t.to_string(),
        Some(fmt) => t.to_zoned(ch.tz.clone()).strftime(fmt).to_string(),
    };
    let mut base: Vec<(String, String)> = query.clone();
    if let Some(p) = updated_after_param {
        base.push((p.clone(), format_after(after)));
    }
    // Page numbers walk on time anchors where the API filters by time (see `next_page`).
    let mut anchor = after;
    let mut url = ch.url(path)?;
    let mut page_no = match pagination {
        Pagination::Page { first_page, .. } => *first_page,
        _ => 0,
    };
    let mut token: Option<String> = None;
    let mut handed = 0;
    for n in 0..MAX_PAGES {
        let mut q = base.clone();
        match pagination {
            Pagination::Page {
                page_param,
                size_param,
                page_size,
                ..
            } => {
                q.push((page_param.clone(), page_no.to_string()));
                q.push((size_param.clone(), page_size.to_string()));
            }
            Pagination::Cursor {
                cursor_param,
                size_param,
                page_size,
                ..
            } => {
                if let Some(t) = &token {
                    q.push((cursor_param.clone(), t.clone()));
                }
                q.push((size_param.clone(), page_size.to_string()));
            }
            Pagination::Link {
                size_param,
                page_size,
            } => {
                if n == 0 {
                    q.push((size_param.clone(), page_size.to_string()));
                } else {
                    // The next link carries its own query (signed with it by the client).
                    q.clear();
                }
            }
        }
        let req = Req {
            method: method.clone(),
            url: url.clone(),
            query: q,
            purpose: Purpose::Page,
            max_body: ch.config.max_body_bytes,
            body: None,
            headers: Vec::new(),
        };
        let (resp, records) = f
            .fetch(&req, stop, |r| {
                let body = std::str::from_utf8(&r.body)
                    .map_err(|_| Unusable::Retry("not UTF-8".into()))?;
                record::records(body, items_pointer).map_err(Unusable::Retry)
            })
            .await?;
        let count = records.len();
        handed += count;
        let label = format!("{}{}", url.path(), page_label(pagination, page_no, n));
        let result = ch
            .handle_page(f, stop, ctx, &label, records, TimeKey::Updated)
            .await?;
        ch.page_done(ctx, &result).await?;
        if let (Some(p), Some((earliest, _))) = (updated_after_param, result.bounds)
            && earliest < after - super::open311::TOLERANCE
        {
            ch.bound_ignored(
                run,
                p,
                "none",
                &format!("records updated before the requested `{p}`: the API ignores it; every poll reads everything again"),
            )
            .await?;
        }
        if let Some(t) = result.latest {
            ch.advance(ctx, run, t).await?;
        }
        // Where next?
        match pagination {
            Pagination::Page {
                page_size,
                first_page,
                ..
            } => {
                if count < *page_size as usize || count == 0 {
                    break;
                }
                // An offset is not a position: a record before it that is updated mid-walk
                // moves to the end and every later one shifts back, so `page + 1` would
                // skip the record at the boundary (and the cursor would pass it). Where the
                // API filters by update time, ask page one again from just before the
                // latest time read (one second back: ties at it, and servers with
                // one-second resolution, are read again and recognised). Only a page whose
                // records all lie within that second steps to the next page number.
                let re_anchor = result
                    .bounds
                    .map(|(_, hi)| hi - SignedDuration::from_secs(1))
                    .filter(|a| *a > anchor);
                match (updated_after_param, re_anchor) {
                    (Some(p), Some(a)) => {
                        anchor = a;
                        if let Some(v) = base.iter_mut().find(|(k, _)| k == p) {
                            v.1 = format_after(a);
                        }
                        page_no = *first_page;
                    }
                    _ => page_no += 1,
                }
            }
            Pagination::Cursor {
                next_cursor_pointer,
                ..
            } => {
                let body: serde_json::Value =
                    serde_json::from_slice(&resp.body).unwrap_or_default();
                let next = body.pointer(next_cursor_pointer).and_then(|v| match v {
                    serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                if next.is_none() || next == token || count == 0 {
                    break;
                }
                token = next;
            }
            Pagination::Link { .. } => {
                let next = resp
                    .headers
                    .get_all(reqwest::header::LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(next_link);
                let Some(next) = next else { break };
                if count == 0 {
                    break;
                }
                let Ok(next) = url.join(&next) else {
                    return Err(PollError::Other(anyhow::anyhow!(
                        "Link rel=\"next\" is not a URL"
                    )));
                };
                if !f.allows(&next) {
                    return Err(PollError::Other(anyhow::anyhow!(
                        "Link rel=\"next\" points to {}, an origin that is neither base_url's nor in allowed_origins: not followed",
                        super::client::reference(&next)
                    )));
                }
                // The next URL's query replaces ours.
                url = next;
            }
        }
    }
    Ok(handed)
}

fn page_label(p: &Pagination, page_no: u32, n: usize) -> String {
    match p {
        Pagination::Page { .. } => format!("?page={page_no}"),
        _ => format!("#page{}", n + 1),
    }
}

/// The `rel="next"` target of one `Link` header value (RFC 8288), if any. Handles several
/// links in one value and `rel` with several relation types.
pub fn next_link(header: &str) -> Option<String> {
    // Split into link-values at commas outside `<...>`.
    let mut values = Vec::new();
    let (mut inside, mut start) = (false, 0);
    for (i, c) in header.char_indices() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            ',' if !inside => {
                values.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    values.push(&header[start..]);
    values.into_iter().find_map(|v| {
        let (target, params) = v.trim().strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        is_next.then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn link_header_next() {
        assert_eq!(
            next_link(r#"<https://x/api?page=2>; rel="next", <https://x/api?page=9>; rel="last""#),
            Some("https://x/api?page=2".into())
        );
        assert_eq!(
            next_link(r#"<https://x/a?p=1>; rel="prev", <https://x/a?p=3>; rel="next""#),
            Some("https://x/a?p=3".into())
        );
        assert_eq!(
            next_link(r#"<https://x/a?p=3>; rel="next last""#),
            Some("https://x/a?p=3".into())
        );
        assert_eq!(next_link(r#"<https://x/a?p=1>; rel="prev""#), None);
        assert_eq!(
            next_link(r#"<https://x/a?p=3>;rel=next"#),
            Some("https://x/a?p=3".into())
        );
    }
}
