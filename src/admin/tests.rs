//! The admin server as a client sees it: the real `serve` on a loopback port.

use super::*;
use std::io::{Read, Write};

const TOKEN: &str = "test-admin-token-0123456789";

struct Server {
    base: String,
    addr: SocketAddr,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(token: Option<&str>, limits: Limits) -> Server {
    let text = "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[departments]]\nid = \"hrss\"\nname = \"H\"\ntopic = \"t\"\n[routing]\ndefault_lead = \"hrss\"\n";
    let cfg = crate::config::Config::parse(text, "t.toml", std::path::Path::new(".")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn crate::store::Store> = Arc::new(
        crate::store::SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap(),
    );
    let secret = token.map(petitiond_core::diag::Secret::from);
    let state = AdminState {
        metrics: Metrics::new(),
        health: Arc::new(BrokerHealth::default()),
        ready: Arc::new(AtomicBool::new(true)),
        channels: Default::default(),
        store,
        board: Arc::new(board::BoardConfig::from_config(&cfg)),
        auth: Arc::new(auth::Auth::new(secret.as_ref())),
        limits,
        ownership: None,
    };
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, state, stop.clone()));
    Server {
        base: format!("http://{addr}"),
        addr,
        stop,
        _dir: dir,
    }
}

fn limits() -> Limits {
    Limits {
        max_body_bytes: 1024,
        max_connections: 8,
        request_timeout: Duration::from_secs(5),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

/// The admin API answered `/metrics`, `/channels` and the board to anyone who could reach the
/// port. Now only `/healthz`, `/readyz` and `/login` answer without the token; with no token
/// configured the rest stays closed.
#[tokio::test]
async fn admin_api_was_open_to_anyone_who_reached_the_port() {
    let c = client();
    let closed = start(None, limits()).await;
    for path in ["/metrics", "/channels", "/board", "/board.json", "/nope"] {
        let r = c
            .get(format!("{}{path}", closed.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("no admin.token is configured")
        );
    }
    assert_eq!(status(c.get(format!("{}/healthz", closed.base))).await, 200);
    assert_eq!(status(c.get(format!("{}/readyz", closed.base))).await, 200);
    let bearer = c.get(format!("{}/metrics", closed.base)).bearer_auth(TOKEN);
    assert_eq!(
        status(bearer).await,
        401,
        "no token configured, none accepted"
    );

    let s = start(Some(TOKEN), limits()).await;
    for path in ["/metrics", "/channels", "/board", "/board.json"] {
        let url = format!("{}{path}", s.base);
        assert_eq!(status(c.get(&url)).await, 401, "{path} without a token");
        assert_eq!(status(c.get(&url).bearer_auth("wrong")).await, 401);
        assert_eq!(status(c.get(&url).bearer_auth(TOKEN)).await, 200, "{path}");
    }
    let r = c.get(format!("{}/metrics", s.base)).send().await.unwrap();
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        "Bearer realm=\"petitiond\""
    );
}

/// An operator's browser cannot send a header: it signs in once and carries a cookie.
#[tokio::test]
async fn an_operator_signs_in_and_the_board_loads_with_the_cookie() {
    let c = client();
    let s = start(Some(TOKEN), limits()).await;
    let form = c.get(format!("{}/login", s.base)).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("<form method=\"post\""));
    let wrong = c
        .post(format!("{}/login", s.base))
        .form(&[("token", "wrong"), ("next", "/board")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    for r in [
        c.post(format!("{}/login", s.base))
            .form(&[("token", TOKEN), ("next", "/board?clock=x")]),
        c.get(format!("{}/login", s.base))
            .query(&[("token", TOKEN), ("next", "/board?clock=x")]),
    ] {
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/board?clock=x");
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            !cookie.contains(TOKEN),
            "the token never goes into the browser"
        );
        assert!(cookie.contains("HttpOnly"));
        let value = cookie.split(';').next().unwrap().to_string();
        let board = c
            .get(format!("{}/board", s.base))
            .header("cookie", &value)
            .send()
            .await
            .unwrap();
        assert_eq!(board.status(), 200);
        assert!(board.text().await.unwrap().contains("SLA board"));
    }
}

/// Request bodies, slow clients and connections were unbounded (axum's defaults: 2 MB bodies
/// on extractors only, no header timeout, no connection cap).
#[tokio::test]
async fn admin_requests_are_bounded_in_size_time_and_connections() {
    let c = client();
    let s = start(
        Some(TOKEN),
        Limits {
            max_body_bytes: 1024,
            max_connections: 2,
            request_timeout: Duration::from_secs(1),
        },
    )
    .await;
    // Too large a body: 413, whatever the path.
    for path in ["/login", "/metrics"] {
        let r = c
            .post(format!("{}{path}", s.base))
            .bearer_auth(TOKEN)
            .body(vec![b'a'; 4096])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
    }
    // A client that never finishes its headers is cut off after the timeout.
    let addr = s.addr;
    let slow = tokio::task::spawn_blocking(move || {
        let mut t = std::net::TcpStream::connect(addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        t.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = t.read_to_end(&mut buf);
        started.elapsed()
    });
    let waited = slow.await.unwrap();
    assert!(waited < Duration::from_secs(5), "cut off after {waited:?}");

    // Two connections held open on a fresh server: a third is closed at once, unanswered;
    // once they go, the server answers again.
    let s = start(
        Some(TOKEN),
        Limits {
            max_body_bytes: 1024,
            max_connections: 2,
            request_timeout: Duration::from_secs(30),
        },
    )
    .await;
    let addr = s.addr;
    let ask = move || {
        let mut t = std::net::TcpStream::connect(addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        t.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        let _ = t.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    };
    let hold: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = tokio::task::spawn_blocking(ask).await.unwrap();
    assert_eq!(third, "", "a third connection is closed unanswered");
    drop(hold);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = tokio::task::spawn_blocking(ask).await.unwrap();
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
}
