//! One source's HTTP client: timeouts, authentication, a rate limit, retries with exponential
//! backoff and jitter (honouring `Retry-After`), and a circuit breaker.
//!
//! Everything that talks to an upstream goes through [`Fetcher::fetch`], so every request of a
//! source — pages and attachments — shares one rate limit and one breaker. URLs may carry an
//! API key, so they are never logged: logs name the path only, and reqwest errors are logged
//! `without_url`.

use crate::config::http::{Auth, HttpSourceConfig};
use crate::metrics::Metrics;
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A request to make: method, absolute URL (without query), and query pairs.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: reqwest::Method,
    pub url: reqwest::Url,
    pub query: Vec<(String, String)>,
    /// Add the source's authentication (off for attachment URLs on other hosts).
    pub auth: bool,
    /// Largest body accepted, in bytes.
    pub max_body: u64,
}

/// A successful (2xx) response, body read in full.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
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
    /// gone; a body over the limit).
    #[error("{what}")]
    Permanent { status: Option<u16>, what: String },
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
}

/// Why `fetch`'s check found a 2xx answer unusable.
#[derive(Debug)]
pub enum Unusable {
    /// Probably a glitch (a truncated or garbage body): retry.
    Retry(String),
    /// Will not change on retry (e.g. an attachment of a type not allowed).
    Refuse(String),
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
            .build()?;
        let rps = NonZeroU32::new(cfg.requests_per_second).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            http,
            source: cfg.name.clone(),
            auth: cfg.auth.clone(),
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

    /// Makes the request and checks the answer with `check` (e.g. "the body is JSON");
    /// retries transient failures (including a failed check) with backoff, up to
    /// `self.attempts` times. The breaker and the rate limit apply to every attempt.
    pub async fn fetch<T>(
        &self,
        req: &Req,
        stop: &CancellationToken,
        check: impl Fn(&Resp) -> Result<T, Unusable>,
    ) -> Result<(Resp, T), FetchError> {
        let mut attempt = 0;
        loop {
            let outcome = match self.breaker_check() {
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
                                what: why,
                            }),
                        },
                        Err(e) => Err(e),
                    };
                    match &r {
                        Ok(_) => self.breaker_result(true),
                        Err(FetchError::Transient { .. }) => self.breaker_result(false),
                        // A 4xx says the upstream is up: it does not count against it.
                        Err(_) => {}
                    }
                    r
                }
            };
            let wait = match outcome {
                Ok(v) => return Ok(v),
                Err(FetchError::Stopped) => return Err(FetchError::Stopped),
                Err(e @ FetchError::Permanent { .. }) => return Err(e),
                Err(FetchError::CircuitOpen(d)) => {
                    if attempt + 1 >= self.attempts {
                        return Err(FetchError::CircuitOpen(d));
                    }
                    d
                }
                Err(FetchError::Transient { what, retry_after }) => {
                    if attempt + 1 >= self.attempts {
                        return Err(FetchError::Transient { what, retry_after });
                    }
                    let backoff = self.backoff(attempt);
                    let wait = retry_after.map_or(backoff, |ra| ra.max(backoff / 2));
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

    async fn once(&self, req: &Req, stop: &CancellationToken) -> Result<Resp, FetchError> {
        tokio::select! {
            _ = self.limiter.until_ready() => {}
            _ = stop.cancelled() => return Err(FetchError::Stopped),
        }
        let mut b = self
            .http
            .request(req.method.clone(), req.url.clone())
            .query(&req.query);
        if req.auth {
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
                        req.method.as_str(),
                        req.url.path(),
                        &req.query,
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
        let headers = resp.headers().clone();
        if !status.is_success() {
            let code = status.as_u16();
            let outcome = match code {
                429 => "http_429",
                500..=599 => "http_5xx",
                _ => "http_4xx",
            };
            self.metrics.upstream_request(&self.source, outcome);
            let what = format!("HTTP {code} from {}", req.url.path());
            return Err(match code {
                408 | 425 | 429 | 500..=599 => FetchError::Transient {
                    what,
                    retry_after: retry_after(&headers),
                },
                _ => FetchError::Permanent {
                    status: Some(code),
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
