//! What the sims' own tests share: one GET (or POST) and what came back.

use std::time::{Duration, Instant};

pub(crate) struct Got {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    pub took: Duration,
}

impl Got {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) async fn get(url: &str, query: &[(&str, &str)]) -> Got {
    get_with(url, query, &[]).await
}

pub(crate) async fn get_with(url: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> Got {
    let req = reqwest::Client::new().get(url).query(query);
    send(req, headers).await
}

pub(crate) async fn post_with(url: &str, body: &[u8], headers: &[(&str, &str)]) -> Got {
    let req = reqwest::Client::new().post(url).body(body.to_vec());
    send(req, headers).await
}

async fn send(mut req: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> Got {
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let start = Instant::now();
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body read").to_vec();
    Got {
        status,
        headers,
        body,
        took: start.elapsed(),
    }
}
