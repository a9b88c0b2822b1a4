//! The app-key + secret request signature common to Chinese government API gateways:
//! HMAC-SHA256 over a canonical string of method, path, sorted query, timestamp and nonce.
//!
//! The canonical string is a configurable template (`{method}`, `{path}`, `{query}`,
//! `{timestamp}`, `{nonce}`, `{app_key}`, `{body_sha256}`; `\n` for a newline) because gateways
//! differ in the order and separators; the query is always sorted by name then value with each
//! name and value percent-encoded per RFC 3986 (unreserved characters kept), joined by `&`.
//! `{body_sha256}` is the lower-case hex SHA-256 of the request body (of no bytes for a
//! request without one): writes (status write-back) sign what they say, not only where.

use crate::config::http::HmacAuth;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query part of the canonical string.
pub fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> =
        pairs.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// What to sign about one request.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// The body as sent (empty without one).
    pub body: &'a [u8],
}

/// The string to sign for one request.
pub fn canonical(
    template: &str,
    req: Signed<'_>,
    timestamp: &str,
    nonce: &str,
    app_key: &str,
) -> String {
    let mut out = template
        .replace("\\n", "\n")
        .replace("{method}", &req.method.to_uppercase())
        .replace("{path}", req.path)
        .replace("{query}", &canonical_query(req.query))
        .replace("{timestamp}", timestamp)
        .replace("{nonce}", nonce)
        .replace("{app_key}", app_key);
    if out.contains("{body_sha256}") {
        out = out.replace("{body_sha256}", &hex::encode(Sha256::digest(req.body)));
    }
    out
}

/// HMAC-SHA256 of `message` under `secret`, hex (lower case) or base64.
pub fn signature(secret: &[u8], message: &str, base64: bool) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    let bytes = mac.finalize().into_bytes();
    if base64 {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    } else {
        hex::encode(bytes)
    }
}

/// The headers to add to a request: app key, timestamp, nonce, signature.
pub fn headers(
    auth: &HmacAuth,
    req: Signed<'_>,
    now: jiff::Timestamp,
    nonce: &str,
) -> [(String, String); 4] {
    let ts = if auth.millis {
        now.as_millisecond().to_string()
    } else {
        now.as_second().to_string()
    };
    let message = canonical(&auth.canonical, req, &ts, nonce, &auth.app_key);
    let sig = signature(auth.secret.expose().as_bytes(), &message, auth.base64);
    [
        (auth.header_app_key.clone(), auth.app_key.clone()),
        (auth.header_timestamp.clone(), ts),
        (auth.header_nonce.clone(), nonce.to_string()),
        (auth.header_signature.clone(), sig),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::http::DEFAULT_CANONICAL;

    /// The fixed vector, computed independently with
    /// `printf 'GET\n/api/petitions\npage=2&page_size=50&updated_after=2026-11-28T02%3A00%3A00Z\n1764295200000\n6f1c2a9e-5d3b-4c7a-9e0f-1a2b3c4d5e6f' | openssl dgst -sha256 -hmac 'test-secret-不要用'`.
    #[test]
    fn signature_matches_the_fixed_vector() {
        let query = vec![
            (
                "updated_after".to_string(),
                "2026-11-28T02:00:00Z".to_string(),
            ),
            ("page_size".to_string(), "50".to_string()),
            ("page".to_string(), "2".to_string()),
        ];
        let msg = canonical(
            DEFAULT_CANONICAL,
            Signed {
                method: "get",
                path: "/api/petitions",
                query: &query,
                body: b"",
            },
            "1764295200000",
            "6f1c2a9e-5d3b-4c7a-9e0f-1a2b3c4d5e6f",
            "app-1",
        );
        assert_eq!(
            msg,
            "GET\n/api/petitions\npage=2&page_size=50&updated_after=2026-11-28T02%3A00%3A00Z\n1764295200000\n6f1c2a9e-5d3b-4c7a-9e0f-1a2b3c4d5e6f"
        );
        let secret = "test-secret-不要用".as_bytes();
        assert_eq!(
            signature(secret, &msg, false),
            "0c2c1fcacfb257061506efad1f6163558490013b289a8bd9dcfd413d0010e4cb"
        );
        assert_eq!(
            signature(secret, &msg, true),
            "DCwfys+yVwYVBu+tH2FjVYSQATsomovZ3P1BPQAQ5Ms="
        );
    }

    #[test]
    fn query_sorts_by_name_then_value_and_encodes_utf8() {
        let q = vec![
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "z".to_string()),
            ("a".to_string(), "西湖 区".to_string()),
        ];
        assert_eq!(
            canonical_query(&q),
            "a=%E8%A5%BF%E6%B9%96%20%E5%8C%BA&a=z&b=2"
        );
    }

    /// The client's template gives the portal simulator's canonical string for the published
    /// status-API vector (the simulator's side is checked in its own crate).
    #[test]
    fn status_canonical_string_matches_the_portal_simulators() {
        let body = br#"{"opTime":"2026-11-28 10:05:00","state":"FINISHED"}"#;
        let mut expected = petitiond_sim::portal::canonical_request(
            "POST",
            "/api/petitions/WS2026112800001/status",
            &[],
            "1795831200000",
            "n-0002",
        );
        expected.push('\n');
        expected.push_str(&hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body)));
        let client = canonical(
            "{method}\\n{path}\\n{query}\\n{timestamp}\\n{nonce}\\n{body_sha256}",
            Signed {
                method: "post",
                path: "/api/petitions/WS2026112800001/status",
                query: &[],
                body,
            },
            "1795831200000",
            "n-0002",
            "app",
        );
        assert_eq!(client, expected);
    }
}
