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
    let mut walk = Walk {
        pagination,
        updated_after_param: updated_after_param.as_deref(),
        format: updated_after_format.as_deref(),
        tz: &ch.tz,
        base: query.clone(),
        anchor: after,
        url: ch.url(path)?,
        page_no: match pagination {
            Pagination::Page { first_page, .. } => *first_page,
            _ => 0,
        },
        token: None,
    };
    if let Some(p) = updated_after_param {
        let a = walk.format_after(after);
        walk.base.push((p.clone(), a));
    }
    let mut handed = 0;
    for n in 0..MAX_PAGES {
        let req = Req {
            method: method.clone(),
            url: walk.url.clone(),
            query: walk.query(n),
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
        let label = format!(
            "{}{}",
            walk.url.path(),
            page_label(pagination, walk.page_no, n)
        );
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
        if !walk.next(f, &resp, count, result.bounds)? {
            break;
        }
    }
    Ok(handed)
}

/// Where a walk over the pages stands: the query every page carries, the time anchor, the URL
/// and the pagination's position (page number, cursor token, or the next link's URL).
struct Walk<'a> {
    pagination: &'a Pagination,
    updated_after_param: Option<&'a str>,
    format: Option<&'a str>,
    tz: &'a jiff::tz::TimeZone,
    base: Vec<(String, String)>,
    anchor: jiff::Timestamp,
    url: reqwest::Url,
    page_no: u32,
    token: Option<String>,
}

impl Walk<'_> {
    /// `updated_after` as the API wants it: RFC 3339, or the configured strftime pattern in
    /// the office's zone.
    fn format_after(&self, t: jiff::Timestamp) -> String {
        match self.format {
            None => t.to_string(),
            Some(fmt) => t.to_zoned(self.tz.clone()).strftime(fmt).to_string(),
        }
    }

    /// The `n`th page's query: the base, and where the pagination stands.
    fn query(&self, n: usize) -> Vec<(String, String)> {
        let mut q = self.base.clone();
        match self.pagination {
            Pagination::Page {
                page_param,
                size_param,
                page_size,
                ..
            } => {
                q.push((page_param.clone(), self.page_no.to_string()));
                q.push((size_param.clone(), page_size.to_string()));
            }
            Pagination::Cursor {
                cursor_param,
                size_param,
                page_size,
                ..
            } => {
                if let Some(t) = &self.token {
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
        q
    }

    /// Moves to the next page after one of `count` records (whose update times spanned
    /// `bounds`); `false` when the walk is over.
    fn next(
        &mut self,
        f: &Fetcher,
        resp: &super::client::Resp,
        count: usize,
        bounds: Option<(jiff::Timestamp, jiff::Timestamp)>,
    ) -> Result<bool, PollError> {
        match self.pagination {
            Pagination::Page {
                page_size,
                first_page,
                ..
            } => {
                if count < *page_size as usize || count == 0 {
                    return Ok(false);
                }
                // An offset is not a position: a record before it that is updated mid-walk
                // moves to the end and every later one shifts back, so `page + 1` would
                // skip the record at the boundary (and the cursor would pass it). Where the
                // API filters by update time, ask page one again from just before the
                // latest time read (one second back: ties at it, and servers with
                // one-second resolution, are read again and recognised). Only a page whose
                // records all lie within that second steps to the next page number.
                let re_anchor = bounds
                    .map(|(_, hi)| hi - SignedDuration::from_secs(1))
                    .filter(|a| *a > self.anchor);
                match (self.updated_after_param, re_anchor) {
                    (Some(p), Some(a)) => {
                        self.anchor = a;
                        let formatted = self.format_after(a);
                        if let Some(v) = self.base.iter_mut().find(|(k, _)| k == p) {
                            v.1 = formatted;
                        }
                        self.page_no = *first_page;
                    }
                    _ => self.page_no += 1,
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
                if next.is_none() || next == self.token || count == 0 {
                    return Ok(false);
                }
                self.token = next;
            }
            Pagination::Link { .. } => {
                let next = resp
                    .headers
                    .get_all(reqwest::header::LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(next_link);
                let Some(next) = next else {
                    return Ok(false);
                };
                if count == 0 {
                    return Ok(false);
                }
                let Ok(next) = self.url.join(&next) else {
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
                self.url = next;
            }
        }
        Ok(true)
    }
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
