//! Signed requests: the canonical request, its HMAC-SHA256 signature ([`sign`]), the clock
//! tolerance and the nonce book, and the check every API request goes through.

use super::Shared;
use crate::query::{parse_query, percent_encode};
use axum::http::{HeaderMap, Method, Uri};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};

/// How far `X-Timestamp` may be from the server's clock, in milliseconds.
pub const TIMESTAMP_TOLERANCE_MS: i64 = 300_000;
/// How long a nonce is remembered (a reuse within it is rejected), in milliseconds.
pub const NONCE_TTL_MS: i64 = 600_000;

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
pub(super) struct NonceBook {
    seen: HashMap<String, i64>,
    pub(super) order: VecDeque<(i64, String)>,
}

impl NonceBook {
    /// `false` if `nonce` was used within the TTL; otherwise records it.
    pub(super) fn admit(&mut self, nonce: &str, now_ms: i64) -> bool {
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

impl Shared {
    /// The signature of a request; a request with a body (the status API) signs the body's
    /// SHA-256 too (see [`sign`]).
    pub(super) fn verify(
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
}
