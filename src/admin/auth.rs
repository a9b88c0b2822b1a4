//! Who may use the admin API: a bearer token from config (`admin.token`: env, file or systemd
//! credential), compared in constant time. Everything but `/healthz`, `/readyz` and `/login`
//! needs it; without a configured token those three are all the API serves (closed by default).
//!
//! A browser cannot add an `Authorization` header to a page it loads, so an operator signs in
//! once at `/login` (a form that POSTs the token, or `GET /login?token=...` for a bookmark or
//! a headless browser); the answer sets an `HttpOnly`, `SameSite=Strict` cookie holding a value
//! derived from the token (HMAC-SHA256 of a fixed label, keyed with the token — the token itself
//! never sits in the browser) and redirects to the board. Machines (Prometheus, scripts) send
//! `Authorization: Bearer <token>`. Owns the check and the login page; nothing here logs a
//! token or a cookie.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The cookie the login sets.
pub const COOKIE: &str = "petitiond_session";
/// Paths served without the token.
pub const PUBLIC: [&str; 3] = ["/healthz", "/readyz", "/login"];
/// How long a browser keeps the login (seconds).
const SESSION_SECS: u32 = 12 * 3600;

/// The configured token, kept only as digests to compare against.
#[derive(Clone, Default)]
pub struct Auth {
    /// SHA-256 of the token (fixed length, so the comparison leaks nothing of its length).
    token: Option<[u8; 32]>,
    /// The cookie value: HMAC-SHA256(key = token, "petitiond admin session v1"), hex.
    session: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token", &self.token.map(|_| "<redacted>"))
            .finish()
    }
}

impl Auth {
    pub fn new(token: Option<&petitiond_core::diag::Secret>) -> Auth {
        let Some(t) = token else {
            return Auth::default();
        };
        let t = t.expose().trim();
        let mut mac = Hmac::<Sha256>::new_from_slice(t.as_bytes()).expect("any key length");
        mac.update(b"petitiond admin session v1");
        Auth {
            token: Some(Sha256::digest(t.as_bytes()).into()),
            session: Some(hex::encode(mac.finalize().into_bytes())),
        }
    }

    pub fn configured(&self) -> bool {
        self.token.is_some()
    }

    /// Is `presented` the token? Constant time in its content.
    pub fn token_matches(&self, presented: &str) -> bool {
        let Some(want) = &self.token else {
            return false;
        };
        let got: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        bool::from(got.ct_eq(want))
    }

    fn session_matches(&self, presented: &str) -> bool {
        let Some(want) = &self.session else {
            return false;
        };
        let (a, b) = (
            Sha256::digest(presented.as_bytes()),
            Sha256::digest(want.as_bytes()),
        );
        bool::from(a.ct_eq(&b))
    }

    /// The request carries the token (bearer header) or the login cookie.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest)
            })
            .any(|t| self.token_matches(t));
        bearer || cookie_values(headers, COOKIE).any(|c| self.session_matches(c))
    }

    fn cookie(&self) -> Option<String> {
        self.session.as_ref().map(|s| {
            format!("{COOKIE}={s}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}")
        })
    }
}

/// Values of cookie `name` in the request's `Cookie` headers.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// Middleware: the public paths pass; everything else needs the token or the cookie.
pub async fn require(
    State(auth): State<Arc<Auth>>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    if PUBLIC.contains(&req.uri().path()) || auth.allows(req.headers()) {
        return next.run(req).await;
    }
    let body = if auth.configured() {
        "unauthorized: send `Authorization: Bearer <admin.token>`, or sign in at /login\n"
    } else {
        "the admin API is closed: no admin.token is configured (only /healthz and /readyz answer)\n"
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"petitiond\"")],
        body,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginParams {
    token: Option<String>,
    next: Option<String>,
}

/// Where to go after signing in: a path on this server only (no scheme, no host, no `//`).
fn next_path(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/board",
    }
}

fn login_page(status: StatusCode, message: &str, next: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>petitiond admin sign-in</title></head>\n<body><h1>petitiond admin</h1><p id=\"message\">{}</p>\n<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{}\"><label>Admin token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label> <button type=\"submit\">Sign in</button></form></body></html>\n",
        super::board::esc(message),
        super::board::esc(next)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; form-action 'self'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

fn login(auth: &Auth, p: LoginParams) -> Response {
    let next = next_path(p.next.as_deref()).to_string();
    if !auth.configured() {
        return login_page(
            StatusCode::FORBIDDEN,
            "No admin.token is configured: the admin API is closed.",
            &next,
        );
    }
    match p.token {
        None => login_page(StatusCode::OK, "Sign in with the admin token.", &next),
        Some(t) if auth.token_matches(&t) => {
            let mut r =
                (StatusCode::SEE_OTHER, [(header::CACHE_CONTROL, "no-store")]).into_response();
            let h = r.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&next) {
                h.insert(header::LOCATION, v);
            }
            if let Some(c) = auth.cookie().and_then(|c| HeaderValue::from_str(&c).ok()) {
                h.insert(header::SET_COOKIE, c);
            }
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            r
        }
        Some(_) => {
            tracing::warn!("admin sign-in with a wrong token");
            login_page(StatusCode::UNAUTHORIZED, "Wrong token.", &next)
        }
    }
}

/// `GET /login`: the sign-in form, or with `?token=` the sign-in itself.
pub async fn login_get(State(auth): State<Arc<Auth>>, Query(p): Query<LoginParams>) -> Response {
    login(&auth, p)
}

/// `POST /login` (form: `token`, `next`): the sign-in.
pub async fn login_post(State(auth): State<Arc<Auth>>, Form(p): Form<LoginParams>) -> Response {
    login(&auth, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_cookies_and_redirects() {
        let secret = petitiond_core::diag::Secret::from("0123456789abcdef-token");
        let a = Auth::new(Some(&secret));
        assert!(a.token_matches("0123456789abcdef-token"));
        assert!(!a.token_matches("0123456789abcdef-tokeN"));
        assert!(!a.token_matches(""));
        let mut h = HeaderMap::new();
        assert!(!a.allows(&h));
        h.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(!a.allows(&h));
        h.insert(
            header::AUTHORIZATION,
            "bearer 0123456789abcdef-token".parse().unwrap(),
        );
        assert!(a.allows(&h));
        let cookie = a.cookie().unwrap();
        assert!(!cookie.contains("0123456789abcdef-token"), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let value = cookie.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("x=1; {value}").parse().unwrap());
        assert!(a.allows(&h));
        h.insert(header::COOKIE, format!("{COOKIE}=00").parse().unwrap());
        assert!(!a.allows(&h));
        // Without a configured token nothing is allowed.
        let closed = Auth::new(None);
        assert!(!closed.token_matches(""));
        assert!(!closed.allows(&HeaderMap::new()));
        let shown = format!("{a:?}");
        assert!(!shown.contains(a.session.as_deref().unwrap()), "{shown}");
        for (next, want) in [
            (None, "/board"),
            (Some("/board?clock=x"), "/board?clock=x"),
            (Some("//evil.example/"), "/board"),
            (Some("https://evil.example/"), "/board"),
            (Some("/\\evil"), "/board"),
        ] {
            assert_eq!(next_path(next), want, "{next:?}");
        }
    }
}
