//! One source's HTTP client: timeouts, authentication, a rate limit, retries with exponential
//! backoff and jitter (honouring `Retry-After`), a circuit breaker, and where requests may go.
//!
//! Everything that talks to an upstream goes through [`Fetcher::fetch`], so every request of a
//! source — pages and attachments — shares one rate limit. Only pages move the breaker: it
//! measures the upstream's health, and one broken file must not cut a source off.
//!
//! Requests go only where the operator pointed them: to the base URL's origin or one of
//! `allowed_origins`; anything else (an attachment URL, a `Link` target, a redirect) is
//! refused before a byte is sent. Redirects are followed here, hop by hop, not by reqwest,
//! so each hop is checked and signed for itself; credentials (auth headers, the HMAC
//! signature) go to the base origin only, and over plain `http` only with
//! `allow_plaintext_auth`. reqwest is built without a cookie store: no cookie is ever sent.
//! URLs may carry an API key, so they are never logged: logs name the path only, and reqwest
//! errors are logged `without_url`.

use crate::config::http::{Auth, HttpSourceConfig, origin_of};
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use petitiond_metrics::Metrics;
use rand::Rng;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Redirect hops followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// HTTP attempts per attachment within one poll (the item's budget counts polls).
pub const ATTACHMENT_ATTEMPTS: u32 = 3;

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A page of records: counts towards the breaker (the upstream's health).
    Page,
    /// An attachment: neither held back nor counted by the breaker; [`ATTACHMENT_ATTEMPTS`]
    /// attempts, waits capped at `backoff_max` (the item has its own budget across polls).
    Attachment,
    /// A status write-back: one attempt per call (its durable outbox schedules the retries),
    /// never counted by the breaker; a redirect is followed only if it keeps the method and
    /// body (307, 308).
    Write,
}

/// A request to make: method, absolute URL, and query pairs. A query already on `url` is
/// sent and signed as well (a `Link` target carries its own).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: reqwest::Method,
    pub url: reqwest::Url,
    pub query: Vec<(String, String)>,
    pub purpose: Purpose,
    /// Largest body accepted, in bytes.
    pub max_body: u64,
    /// The request body (sent as is, and signed where the canonical string says so).
    pub body: Option<Vec<u8>>,
    /// Extra headers (e.g. `Content-Type`, `Idempotency-Key`), sent on every hop.
    pub headers: Vec<(String, String)>,
}

/// A successful (2xx) response, body read in full.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// Why a permanent failure happened: a metric label and what the caller branches on.
pub mod refusal {
    /// 404 or 410.
    pub const GONE: &str = "gone";
    /// Another 4xx.
    pub const HTTP_4XX: &str = "http_4xx";
    /// A body over the limit.
    pub const TOO_LARGE: &str = "too_large";
    /// A 2xx answer the caller's check refused (e.g. a media type not allowed).
    pub const BAD_TYPE: &str = "bad_type";
    /// A URL or redirect target on an origin not configured.
    pub const OFF_ORIGIN: &str = "off_origin";
    /// A redirect loop, too many hops, or a redirect without a usable `Location`.
    pub const REDIRECT: &str = "redirect_refused";
    /// Credentials would go over plain http without `allow_plaintext_auth`.
    pub const PLAINTEXT: &str = "plaintext_auth";
}

/// Why a request did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Worth retrying: network errors, timeouts, 5xx, 408, 429, a body that would not parse.
    #[error("{what}")]
    Transient {
        what: String,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help until someone changes something (4xx: auth, bad parameters,
    /// gone; a body over the limit; a request refused before it was sent). `reason` is one of
    /// [`refusal`].
    #[error("{what}")]
    Permanent {
        status: Option<u16>,
        reason: &'static str,
        what: String,
    },
    /// The breaker is open: no request was made.
    #[error("circuit open for {0:?} more")]
    CircuitOpen(Duration),
    #[error("stopped")]
    Stopped,
}

impl FetchError {
    pub fn transient(what: impl Into<String>) -> Self {
        FetchError::Transient {
            what: what.into(),
            retry_after: None,
        }
    }

    fn refused(reason: &'static str, what: impl Into<String>) -> Self {
        FetchError::Permanent {
            status: None,
            reason,
            what: what.into(),
        }
    }
}

/// Why `fetch`'s check found a 2xx answer unusable.
#[derive(Debug)]
pub enum Unusable {
    /// Probably a glitch (a truncated or garbage body): retry.
    Retry(String),
    /// Will not change on retry (e.g. an attachment of a type not allowed): a
    /// [`refusal::BAD_TYPE`].
    Refuse(String),
}

/// `url` without its query and fragment, and its query pairs (decoded) followed by `extra`.
pub fn split_query(
    url: &reqwest::Url,
    extra: &[(String, String)],
) -> (reqwest::Url, Vec<(String, String)>) {
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    pairs.extend(extra.iter().cloned());
    let mut bare = url.clone();
    bare.set_query(None);
    bare.set_fragment(None);
    (bare, pairs)
}

/// What may name an upstream URL in quarantine or an error: no credentials, no query.
pub fn reference(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Consecutive failures open the breaker for a cool-down; then one trial request is let
/// through (half-open): success closes it, failure opens it again.
#[derive(Debug)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

pub struct Fetcher {
    http: reqwest::Client,
    source: String,
    auth: Auth,
    /// Where requests may go (the base URL's origin first: the only one given credentials).
    origins: Vec<String>,
    allow_plaintext_auth: bool,
    limiter: DefaultDirectRateLimiter,
    breaker: Mutex<Breaker>,
    threshold: u32,
    cooldown: Duration,
    backoff_initial: Duration,
    backoff_max: Duration,
    /// Attempts per request before [`Fetcher::fetch`] gives up (the poll then fails and the
    /// cursor stays where it is).
    pub attempts: u32,
    metrics: Metrics,
}

impl Fetcher {
    pub fn new(cfg: &HttpSourceConfig, metrics: Metrics) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.request_timeout)
            .timeout(cfg.request_timeout)
            .user_agent(concat!("petitiond/", env!("CARGO_PKG_VERSION")))
            // Followed by `once`, which checks each hop's origin and credentials.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let rps = NonZeroU32::new(cfg.requests_per_second).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            http,
            source: cfg.name.clone(),
            auth: cfg.auth.clone(),
            origins: cfg.origins.clone(),
            allow_plaintext_auth: cfg.allow_plaintext_auth,
            limiter: RateLimiter::direct(Quota::per_second(rps)),
            breaker: Mutex::new(Breaker {
                failures: 0,
                open_until: None,
            }),
            threshold: cfg.breaker_failures,
            cooldown: cfg.breaker_cooldown,
            backoff_initial: cfg.backoff_initial,
            backoff_max: cfg.backoff_max,
            attempts: 6,
            metrics,
        })
    }

    /// The delay before retry number `attempt` (0-based): exponential, capped, with full
    /// jitter in its upper half so many daemons do not retry in step.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_initial
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.backoff_max);
        let half = exp / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    fn breaker_check(&self) -> Result<(), FetchError> {
        let mut b = self.breaker.lock().expect("breaker lock");
        if let Some(until) = b.open_until {
            let now = Instant::now();
            if now < until {
                return Err(FetchError::CircuitOpen(until - now));
            }
            // Half-open: let this one through; a failure re-opens at once.
            b.open_until = None;
            b.failures = self.threshold.saturating_sub(1);
        }
        Ok(())
    }

    fn breaker_result(&self, ok: bool) {
        let mut b = self.breaker.lock().expect("breaker lock");
        if ok {
            b.failures = 0;
            b.open_until = None;
        } else {
            b.failures += 1;
            if b.failures >= self.threshold && b.open_until.is_none() {
                b.open_until = Some(Instant::now() + self.cooldown);
                tracing::warn!(source = %self.source, failures = b.failures, cooldown_ms = self.cooldown.as_millis() as u64, "upstream circuit opened");
            }
        }
    }

    /// Whether requests may go to `url`'s origin.
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        origin_of(url).is_some_and(|o| self.origins.contains(&o))
    }

    /// Whether a request to `url` carries the source's credentials: only on the base URL's
    /// origin, and over plain http only with `allow_plaintext_auth` (else it is refused).
    pub fn credentials_for(&self, url: &reqwest::Url) -> Result<bool, FetchError> {
        if matches!(self.auth, Auth::None)
            || origin_of(url).as_deref() != self.origins.first().map(String::as_str)
        {
            return Ok(false);
        }
        if url.scheme() != "https" && !self.allow_plaintext_auth {
            return Err(FetchError::refused(
                refusal::PLAINTEXT,
                format!(
                    "credentials over plain http to {} refused (allow_plaintext_auth is off)",
                    url.path()
                ),
            ));
        }
        Ok(true)
    }

    /// Makes the request and checks the answer with `check` (e.g. "the body is JSON");
    /// retries transient failures (including a failed check) with backoff, up to
    /// `self.attempts` times for a page and [`ATTACHMENT_ATTEMPTS`] for an attachment. The
    /// rate limit applies to every attempt; the breaker to pages only.
    pub async fn fetch<T>(
        &self,
        req: &Req,
        stop: &CancellationToken,
        check: impl Fn(&Resp) -> Result<T, Unusable>,
    ) -> Result<(Resp, T), FetchError> {
        let page = req.purpose == Purpose::Page;
        let attempts = match req.purpose {
            Purpose::Page => self.attempts,
            Purpose::Attachment => ATTACHMENT_ATTEMPTS,
            Purpose::Write => 1,
        };
        let mut attempt = 0;
        loop {
            let checked = if page { self.breaker_check() } else { Ok(()) };
            let outcome = match checked {
                Err(e) => Err(e),
                Ok(()) => {
                    let r = self.once(req, stop).await;
                    let r = match r {
                        Ok(resp) => match check(&resp) {
                            Ok(t) => Ok((resp, t)),
                            Err(Unusable::Retry(why)) => {
                                self.metrics.upstream_request(&self.source, "bad_body");
                                Err(FetchError::transient(format!("unusable body: {why}")))
                            }
                            Err(Unusable::Refuse(why)) => Err(FetchError::Permanent {
                                status: Some(resp.status),
                                reason: refusal::BAD_TYPE,
                                what: why,
                            }),
                        },
                        Err(e) => Err(e),
                    };
                    if page {
                        match &r {
                            Ok(_) => self.breaker_result(true),
                            Err(FetchError::Transient { .. }) => self.breaker_result(false),
                            // A 4xx says the upstream is up: it does not count against it.
                            Err(_) => {}
                        }
                    }
                    r
                }
            };
            let wait = match outcome {
                Ok(v) => return Ok(v),
                Err(FetchError::Stopped) => return Err(FetchError::Stopped),
                Err(e @ FetchError::Permanent { .. }) => return Err(e),
                Err(FetchError::CircuitOpen(d)) => {
                    if attempt + 1 >= attempts {
                        return Err(FetchError::CircuitOpen(d));
                    }
                    d
                }
                Err(FetchError::Transient { what, retry_after }) => {
                    if attempt + 1 >= attempts {
                        return Err(FetchError::Transient { what, retry_after });
                    }
                    let backoff = self.backoff(attempt);
                    let mut wait = retry_after.map_or(backoff, |ra| ra.max(backoff / 2));
                    if !page {
                        // An attachment's retries hold its page up: never longer than this.
                        wait = wait.min(self.backoff_max);
                    }
                    tracing::warn!(source = %self.source, path = req.url.path(), attempt = attempt + 1, retry_in_ms = wait.as_millis() as u64, error = %what, "upstream request failed; retrying");
                    wait
                }
            };
            attempt += 1;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return Err(FetchError::Stopped),
            }
        }
    }

    /// One attempt: the request and the redirects it leads to, each hop checked for its
    /// origin and given credentials (re-signed) only where they may go.
    async fn once(&self, req: &Req, stop: &CancellationToken) -> Result<Resp, FetchError> {
        let (mut url, mut query) = split_query(&req.url, &req.query);
        let mut method = req.method.clone();
        let mut visited: Vec<String> = Vec::new();
        loop {
            if !self.allows(&url) {
                self.metrics
                    .upstream_request(&self.source, refusal::OFF_ORIGIN);
                return Err(FetchError::refused(
                    refusal::OFF_ORIGIN,
                    format!(
                        "{} is on an origin that is neither base_url's nor in allowed_origins: not requested",
                        reference(&url)
                    ),
                ));
            }
            let credentials = self.credentials_for(&url)?;
            let mut full = url.clone();
            if !query.is_empty() {
                full.query_pairs_mut().extend_pairs(query.iter());
            }
            visited.push(full.to_string());
            tokio::select! {
                _ = self.limiter.until_ready() => {}
                _ = stop.cancelled() => return Err(FetchError::Stopped),
            }
            let mut b = self.http.request(method.clone(), full.clone());
            for (k, v) in &req.headers {
                b = b.header(k.as_str(), v.as_str());
            }
            if let Some(body) = &req.body {
                b = b.body(body.clone());
            }
            if credentials {
                b = match &self.auth {
                    Auth::None => b,
                    Auth::Bearer(t) => b.bearer_auth(t.expose()),
                    Auth::Basic { username, password } => {
                        b.basic_auth(username, Some(password.expose()))
                    }
                    Auth::Hmac(h) => {
                        let nonce = uuid::Uuid::new_v4().to_string();
                        let headers = super::sign::headers(
                            h,
                            super::sign::Signed {
                                method: method.as_str(),
                                path: url.path(),
                                query: &query,
                                body: req.body.as_deref().unwrap_or_default(),
                            },
                            jiff::Timestamp::now(),
                            &nonce,
                        );
                        headers.into_iter().fold(b, |b, (k, v)| b.header(k, v))
                    }
                };
            }
            let sent = tokio::select! {
                r = b.send() => r,
                _ = stop.cancelled() => return Err(FetchError::Stopped),
            };
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    let outcome = if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connect_error"
                    } else {
                        "network_error"
                    };
                    self.metrics.upstream_request(&self.source, outcome);
                    return Err(FetchError::transient(format!(
                        "{outcome}: {}",
                        e.without_url()
                    )));
                }
            };
            let status = resp.status();
            if status.is_redirection() && status != reqwest::StatusCode::NOT_MODIFIED {
                self.metrics.upstream_request(&self.source, "redirect");
                let next = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| full.join(l).ok());
                let Some(next) = next else {
                    return Err(FetchError::refused(
                        refusal::REDIRECT,
                        format!(
                            "HTTP {} from {} without a usable Location",
                            status.as_u16(),
                            url.path()
                        ),
                    ));
                };
                if visited.iter().any(|v| v == next.as_str()) || visited.len() > MAX_REDIRECTS {
                    self.metrics
                        .upstream_request(&self.source, refusal::REDIRECT);
                    return Err(FetchError::refused(
                        refusal::REDIRECT,
                        format!(
                            "redirect loop or more than {MAX_REDIRECTS} redirects from {}",
                            req.url.path()
                        ),
                    ));
                }
                if !self.allows(&next) {
                    self.metrics
                        .upstream_request(&self.source, refusal::OFF_ORIGIN);
                    return Err(FetchError::refused(
                        refusal::OFF_ORIGIN,
                        format!(
                            "redirect from {} to {} refused: another origin",
                            url.path(),
                            reference(&next)
                        ),
                    ));
                }
                if req.body.is_some()
                    && !matches!(
                        status,
                        reqwest::StatusCode::TEMPORARY_REDIRECT
                            | reqwest::StatusCode::PERMANENT_REDIRECT
                    )
                {
                    // 301/302/303 turn a write into a GET without its body.
                    self.metrics
                        .upstream_request(&self.source, refusal::REDIRECT);
                    return Err(FetchError::refused(
                        refusal::REDIRECT,
                        format!(
                            "HTTP {} from {}: a write is followed only through 307/308",
                            status.as_u16(),
                            url.path()
                        ),
                    ));
                }
                if status == reqwest::StatusCode::SEE_OTHER {
                    method = reqwest::Method::GET;
                }
                (url, query) = split_query(&next, &[]);
                continue;
            }
            return self.read(req, &url, resp, stop).await;
        }
    }

    /// The status and body of a final (not redirected) answer.
    async fn read(
        &self,
        req: &Req,
        url: &reqwest::Url,
        resp: reqwest::Response,
        stop: &CancellationToken,
    ) -> Result<Resp, FetchError> {
        let status = resp.status();
        let headers = resp.headers().clone();
        if !status.is_success() {
            let code = status.as_u16();
            let outcome = match code {
                429 => "http_429",
                500..=599 => "http_5xx",
                _ => "http_4xx",
            };
            self.metrics.upstream_request(&self.source, outcome);
            let what = format!("HTTP {code} from {}", url.path());
            return Err(match code {
                408 | 425 | 429 | 500..=599 => FetchError::Transient {
                    what,
                    retry_after: retry_after(&headers),
                },
                404 | 410 => FetchError::Permanent {
                    status: Some(code),
                    reason: refusal::GONE,
                    what,
                },
                _ => FetchError::Permanent {
                    status: Some(code),
                    reason: refusal::HTTP_4XX,
                    what,
                },
            });
        }
        if let Some(len) = resp.content_length()
            && len > req.max_body
        {
            self.metrics.upstream_request(&self.source, "too_large");
            return Err(FetchError::Permanent {
                status: Some(status.as_u16()),
                reason: refusal::TOO_LARGE,
                what: format!("body of {len} bytes over the limit of {}", req.max_body),
            });
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        loop {
            let chunk = tokio::select! {
                c = stream.next() => c,
                _ = stop.cancelled() => return Err(FetchError::Stopped),
            };
            match chunk {
                None => break,
                Some(Ok(c)) => {
                    if body.len() as u64 + c.len() as u64 > req.max_body {
                        self.metrics.upstream_request(&self.source, "too_large");
                        return Err(FetchError::Permanent {
                            status: Some(status.as_u16()),
                            reason: refusal::TOO_LARGE,
                            what: format!("body over the limit of {} bytes", req.max_body),
                        });
                    }
                    body.extend_from_slice(&c);
                }
                Some(Err(e)) => {
                    self.metrics.upstream_request(&self.source, "read_error");
                    return Err(FetchError::transient(format!(
                        "reading body: {}",
                        e.without_url()
                    )));
                }
            }
        }
        self.metrics.upstream_request(&self.source, "ok");
        Ok(Resp {
            status: status.as_u16(),
            headers,
            body,
        })
    }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3), capped at an hour.
pub fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let when = httpdate::parse_http_date(v).ok()?;
            when.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(d.min(Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(110) && d <= Duration::from_secs(120));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
