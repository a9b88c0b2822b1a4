use super::*;
use crate::Faults;
use crate::query::{parse_query, percent_encode};
use crate::testing::{Got, get, get_with};
use crate::time::{TimeStyle, fmt_time};
use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::ops::Bound;

async fn sim(pagination: Pagination) -> PortalSim {
    PortalSim::start(PortalSimConfig {
        pagination,
        ..PortalSimConfig::default()
    })
    .await
    .unwrap()
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

/// 60 records over the last days plus 15 in one second: ties ordered by id.
fn fill(s: &PortalSim) {
    let now = Timestamp::now().as_second();
    s.add_records_between(60, ts(now - 5 * 86_400), ts(now - 86_400));
    s.add_records_at_same_time(15, ts(now - 3 * 86_400));
}

/// Every id in the order the sim must serve them: by update time, then id.
fn expected_order(s: &PortalSim) -> Vec<String> {
    let st = s.core.lock();
    st.store
        .range_updated(Bound::Unbounded, Bound::Unbounded)
        .map(|r| r.id.to_string())
        .collect()
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["petitionNo"].as_str().unwrap().to_string())
        .collect()
}

fn next_link(got: &Got) -> Option<String> {
    let link = got.header("link")?;
    let (url, rel) = link.split_once(';')?;
    assert_eq!(rel.trim(), "rel=\"next\"");
    Some(
        url.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string(),
    )
}

fn url(s: &PortalSim) -> String {
    format!("{}/petitions", s.base_url())
}

#[tokio::test]
async fn page_mode_walks_every_record_once() {
    let s = sim(Pagination::Page).await;
    fill(&s);
    let mut seen = Vec::new();
    for page in 1.. {
        let p = page.to_string();
        let got = get(&url(&s), &[("page", &p), ("page_size", "10")])
            .await
            .json();
        assert_eq!(
            (got["code"].clone(), got["msg"].clone()),
            (json!(0), json!("ok"))
        );
        assert_eq!(got["data"]["total"], 75);
        assert_eq!(got["data"]["page"], page);
        assert_eq!(got["data"]["page_size"], 10);
        let page_ids = ids(&got);
        if page_ids.is_empty() {
            break;
        }
        seen.extend(page_ids);
    }
    assert_eq!(seen, expected_order(&s));
    let got = get(&url(&s), &[("page_size", "500")]).await.json();
    assert_eq!(got["data"]["page_size"], 100);
    assert_eq!(ids(&got).len(), 75);
    for bad in [
        [("page", "0")],
        [("page_size", "x")],
        [("updated_after", "2026-13-45")],
    ] {
        let got = get(&url(&s), &bad).await;
        assert_eq!(got.status, 400);
        assert_eq!(got.json()["code"], 400);
    }
    s.stop().await;
}

#[tokio::test]
async fn cursor_mode_walks_every_record_once() {
    let s = sim(Pagination::Cursor).await;
    fill(&s);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("page_size", "7")];
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let got = get(&url(&s), &q).await.json();
        seen.extend(ids(&got));
        match got["data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, expected_order(&s));
    let got = get(&url(&s), &[("cursor", "zz")]).await;
    assert_eq!(got.status, 400);
    s.stop().await;
}

#[tokio::test]
async fn link_mode_walks_every_record_once() {
    let s = sim(Pagination::Link).await;
    fill(&s);
    let first = get(&url(&s), &[("page_size", "8")]).await;
    let body = first.json();
    assert_eq!(body["code"], 0);
    assert!(body.get("msg").is_none());
    let mut seen = ids(&body);
    let mut next = next_link(&first);
    while let Some(u) = next {
        assert!(u.starts_with(&s.origin()), "absolute: {u}");
        let got = get(&u, &[]).await;
        seen.extend(ids(&got.json()));
        next = next_link(&got);
    }
    assert_eq!(seen, expected_order(&s));
    s.stop().await;
}

#[tokio::test]
async fn updated_after_is_strict_and_updates_come_last() {
    let s = sim(Pagination::Page).await;
    let now = Timestamp::now().as_second();
    let ids_made = s.add_records_between(3, ts(now - 300), ts(now - 100));
    let t1 = fmt_time(now - 200, TimeStyle::LocalSpace);
    let got = get(&url(&s), &[("updated_after", &t1)]).await.json();
    assert_eq!(ids(&got), ids_made[2..]);
    assert_eq!(got["data"]["total"], 1);
    s.update_record(&ids_made[0]);
    let got = get(&url(&s), &[("updated_after", &t1)]).await.json();
    assert_eq!(ids(&got), [ids_made[2].clone(), ids_made[0].clone()]);
    assert_eq!(got["data"]["items"][1]["status"], "已受理");
    s.stop().await;
}

#[tokio::test]
async fn item_shape_and_attachments() {
    let s = sim(Pagination::Page).await;
    s.add_records(6);
    let got = get(&url(&s), &[]).await.json();
    let items = got["data"]["items"].as_array().unwrap().clone();
    let time = regex::Regex::new(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$").unwrap();
    let no = regex::Regex::new(r"^WS\d{8}\d{5,}$").unwrap();
    for it in &items {
        assert!(no.is_match(it["petitionNo"].as_str().unwrap()));
        assert!(time.is_match(it["createTime"].as_str().unwrap()));
        assert!(time.is_match(it["updateTime"].as_str().unwrap()));
        for k in ["title", "content", "regionCode", "regionName", "matterCode"] {
            assert!(it[k].is_string(), "{k}");
        }
        for k in ["name", "idCard", "mobile", "address"] {
            assert!(it["petitioner"][k].is_string(), "petitioner.{k}");
        }
        assert_eq!(it["status"], "待受理");
        assert!(it["attachments"].is_array());
    }
    let urls: Vec<String> = items
        .iter()
        .flat_map(|it| it["attachments"].as_array().unwrap().clone())
        .map(|a| a["url"].as_str().unwrap().to_string())
        .collect();
    assert!(urls.len() >= 2, "items 3 and 6 have attachments");
    for u in urls {
        let got = get(&u, &[]).await;
        assert_eq!(got.status, 200);
        assert!(got.body.len() > 20);
    }
    s.stop().await;
}

#[test]
fn signature_matches_the_published_vector() {
    let q: Vec<(String, String)> = [
        ("updated_after", "2026-11-28T10:00:00+08:00"),
        ("page_size", "50"),
        ("page", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let canonical = canonical_request("GET", "/api/petitions", &q, "1795831200000", "n-0001");
    assert_eq!(
        canonical,
        "GET\n/api/petitions\npage=1&page_size=50&updated_after=2026-11-28T10%3A00%3A00%2B08%3A00\n1795831200000\nn-0001"
    );
    assert_eq!(
        sign("sim-secret", &canonical),
        "b64f43dce0396414b09ec764bf8a29584f5a109afc75da0ada8dde0e40ead578"
    );
    assert_eq!(canonical_query(&[]), "");
}

fn signed(
    secret: &SigningSecret,
    full_url: &str,
    ts_ms: i64,
    nonce: &str,
    sig: Option<&str>,
) -> Vec<(String, String)> {
    let u = reqwest::Url::parse(full_url).unwrap();
    let q = parse_query(u.query());
    let ts = ts_ms.to_string();
    let canonical = canonical_request("GET", u.path(), &q, &ts, nonce);
    vec![
        ("X-App-Key".into(), secret.app_key.clone()),
        ("X-Timestamp".into(), ts),
        ("X-Nonce".into(), nonce.into()),
        (
            "X-Signature".into(),
            sig.map_or_else(|| sign(&secret.secret, &canonical), str::to_string),
        ),
    ]
}

async fn get_signed(full_url: &str, headers: Vec<(String, String)>) -> Got {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    get_with(full_url, &[], &h).await
}

#[tokio::test]
async fn signed_requests_are_checked() {
    let secret = SigningSecret {
        app_key: "app-1".into(),
        secret: "s3cr3t".into(),
    };
    let s = PortalSim::start(PortalSimConfig {
        pagination: Pagination::Link,
        signing: Some(secret.clone()),
        ..PortalSimConfig::default()
    })
    .await
    .unwrap();
    s.add_records(5);
    let now = Timestamp::now().as_millisecond();
    let first = format!(
        "{}?page_size=3&updated_after={}",
        url(&s),
        percent_encode("2020-01-01T00:00:00+08:00")
    );
    let msg = |g: &Got| (g.status, g.json()["msg"].as_str().unwrap_or("").to_string());

    let got = get_signed(&first, signed(&secret, &first, now, "n1", None)).await;
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(ids(&got.json()).len(), 3);
    // The next link, signed over its own query, is accepted too.
    let next = next_link(&got).unwrap();
    let got = get_signed(&next, signed(&secret, &next, now, "n2", None)).await;
    assert_eq!(ids(&got.json()).len(), 2);

    let reused = get_signed(&first, signed(&secret, &first, now, "n1", None)).await;
    assert_eq!(msg(&reused), (401, "nonce reused".into()));
    let zeros = "0".repeat(64);
    let bad = get_signed(&first, signed(&secret, &first, now, "n3", Some(&zeros))).await;
    assert_eq!(msg(&bad), (401, "signature mismatch".into()));
    // The rejected request did not use up its nonce.
    let ok = get_signed(&first, signed(&secret, &first, now, "n3", None)).await;
    assert_eq!(ok.status, 200);
    let stale = get_signed(&first, signed(&secret, &first, now - 301_000, "n4", None)).await;
    assert_eq!(msg(&stale), (401, "timestamp expired".into()));
    let other_key = SigningSecret {
        app_key: "app-2".into(),
        secret: "s3cr3t".into(),
    };
    let got = get_signed(&first, signed(&other_key, &first, now, "n5", None)).await;
    assert_eq!(msg(&got), (401, "signature mismatch".into()));
    let got = get(&first, &[]).await;
    assert_eq!(msg(&got), (401, "signature mismatch".into()));
    // A tampered query no longer matches its signature.
    let tampered = first.replace("page_size=3", "page_size=4");
    let got = get_signed(&tampered, signed(&secret, &first, now, "n6", None)).await;
    assert_eq!(msg(&got), (401, "signature mismatch".into()));
    s.stop().await;
}

#[test]
fn status_signature_matches_the_published_vector() {
    let body = br#"{"opTime":"2026-11-28 10:05:00","state":"FINISHED"}"#;
    let mut canonical = canonical_request(
        "POST",
        "/api/petitions/WS2026112800001/status",
        &[],
        "1795831200000",
        "n-0002",
    );
    canonical.push('\n');
    canonical.push_str(&hex::encode(Sha256::digest(body)));
    assert!(canonical.ends_with(
        "\n\n1795831200000\nn-0002\n90db0698718cf4e851ab996533c5d655dd61b9433fabbcd437bb6f865679d6d1"
    ));
    assert_eq!(
        sign("sim-secret", &canonical),
        "c469665197260fdbf7b22a90839d0e37a255474342063e7e4b5d914e79e91be6"
    );
}

async fn post_status(s: &PortalSim, id: &str, key: Option<&str>, body: &str) -> Got {
    let url = format!("{}/petitions/{id}/status", s.base_url());
    let mut h = vec![("Content-Type", "application/json")];
    if let Some(k) = key {
        h.push(("Idempotency-Key", k));
    }
    crate::testing::post_with(&url, body.as_bytes(), &h).await
}

#[tokio::test]
async fn the_status_api_applies_each_key_once_and_checks_bodies() {
    let s = sim(Pagination::Page).await;
    let ids = s.add_records(2);
    let (a, b) = (&ids[0], &ids[1]);
    let ack = r#"{"state":"ACCEPTED","handleDept":"市人力社保局","opTime":"2026-11-28 10:00:00"}"#;
    let got = post_status(&s, a, Some("k1"), ack).await;
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.json()["data"]["state"], "ACCEPTED");
    assert_eq!(got.header("idempotent-replayed"), None);
    // The same key and body again: the stored answer, nothing applied twice.
    let again = post_status(&s, a, Some("k1"), ack).await;
    assert_eq!((again.status, again.body.clone()), (200, got.body.clone()));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.status_log(a).len(), 1);
    // The same key with another body, or on another petition: 422.
    let other = ack.replace("10:00:00", "10:00:01");
    assert_eq!(post_status(&s, a, Some("k1"), &other).await.status, 422);
    assert_eq!(post_status(&s, b, Some("k1"), ack).await.status, 422);
    // A new key is a new write.
    let due =
        r#"{"state":"TIME_LIMIT","dueTime":"2026-11-28 12:00:00","opTime":"2026-11-28 10:00:00"}"#;
    assert_eq!(post_status(&s, a, Some("k2"), due).await.status, 200);
    let log = s.status_log(a);
    assert_eq!(
        log.iter().map(|x| x.state.as_str()).collect::<Vec<_>>(),
        ["ACCEPTED", "TIME_LIMIT"]
    );
    assert_eq!(log[0].handle_dept.as_deref(), Some("市人力社保局"));
    assert_eq!(log[1].due_time.as_deref(), Some("2026-11-28 12:00:00"));
    // What is refused: no key, an unknown petition, bad bodies.
    let cases: [(Option<&str>, &str, &str, u16); 7] = [
        (None, a, ack, 400),
        (Some("k3"), "WS0000", ack, 404),
        (Some("k4"), a, "not json", 400),
        (
            Some("k5"),
            a,
            r#"{"state":"DONE","opTime":"2026-11-28 10:00:00"}"#,
            400,
        ),
        (
            Some("k6"),
            a,
            r#"{"state":"ACCEPTED","opTime":"2026-11-28 10:00:00"}"#,
            400,
        ),
        (
            Some("k7"),
            a,
            r#"{"state":"TIME_LIMIT","opTime":"2026-11-28 10:00:00"}"#,
            400,
        ),
        (
            Some("k8"),
            a,
            r#"{"state":"FINISHED","opTime":"yesterday"}"#,
            400,
        ),
    ];
    for (key, id, body, want) in cases {
        let got = post_status(&s, id, key, body).await;
        assert_eq!(got.status, want, "{key:?} {body}");
        assert_eq!(got.json()["code"], want, "{key:?} {body}");
    }
    assert_eq!(s.status_log(a).len(), 2, "nothing refused was applied");
    assert!(s.status_log(b).is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_lost_answer_is_applied_and_its_retry_is_recognised() {
    let s = sim(Pagination::Page).await;
    let id = s.add_records(1).remove(0);
    s.set_faults(Faults {
        lost_answer_every: Some(1),
        slow_ms: 50,
        ..Faults::default()
    });
    let fin = r#"{"state":"FINISHED","opTime":"2026-11-28 10:05:00"}"#;
    let got = post_status(&s, &id, Some("f1"), fin).await;
    assert_eq!(got.status, 504);
    assert!(got.took >= std::time::Duration::from_millis(50));
    assert_eq!(
        s.status_log(&id).len(),
        1,
        "applied although the answer was lost"
    );
    // The retry with the same key is answered from the stored 200 (even while every write
    // loses its answer: a replay is not a write), and not applied again.
    let retry = post_status(&s, &id, Some("f1"), fin).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.status_log(&id).len(), 1);
    // A client that retried under a new key would have written twice.
    s.set_faults(Faults::default());
    assert_eq!(post_status(&s, &id, Some("f2"), fin).await.status, 200);
    assert_eq!(s.status_log(&id).len(), 2);
    let reqs = s.status_requests();
    assert_eq!(
        reqs.iter()
            .map(|r| (r.key.as_str(), r.replayed))
            .collect::<Vec<_>>(),
        [("f1", false), ("f1", true), ("f2", false)]
    );
    s.stop().await;
}

#[tokio::test]
async fn an_incomplete_record_gets_its_contact_when_supplemented() {
    let s = sim(Pagination::Page).await;
    let id = s.add_incomplete_record();
    let item = |page: &Value| page["data"]["items"][0].clone();
    let before = item(&get(&url(&s), &[]).await.json());
    assert_eq!(before["petitionNo"], id.as_str());
    assert_eq!(before["petitioner"]["mobile"], "");
    assert_eq!(before["petitioner"]["address"], "");
    assert!(
        before["petitioner"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    assert!(s.supplement_record(&id));
    assert!(!s.supplement_record("WS-nope"));
    let after = item(&get(&url(&s), &[]).await.json());
    assert!(
        after["petitioner"]["mobile"]
            .as_str()
            .is_some_and(|m| m.len() >= 11)
    );
    assert!(
        after["petitioner"]["address"]
            .as_str()
            .is_some_and(|a| !a.is_empty())
    );
    assert!(
        after["updateTime"].as_str() > before["updateTime"].as_str(),
        "the update is visible to updated_after"
    );
    assert_eq!(after["status"], before["status"], "no status step");
    s.stop().await;
}

#[test]
fn nonces_expire_after_ten_minutes() {
    let mut book = NonceBook::default();
    assert!(book.admit("a", 0));
    assert!(!book.admit("a", NONCE_TTL_MS - 1));
    assert!(book.admit("a", NONCE_TTL_MS));
    assert_eq!(book.order.len(), 1);
}

#[tokio::test]
async fn faults_duplicates_across_pages_and_bad_items() {
    let s = sim(Pagination::Cursor).await;
    s.set_faults(Faults {
        bad_record_every: Some(5),
        ..Faults::default()
    });
    s.add_records(20);
    s.set_faults(Faults {
        duplicate_records: true,
        error_500_every: Some(4),
        ..Faults::default()
    });
    let mut elements = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    let mut errors = 0;
    loop {
        let mut q = vec![("page_size", "6")];
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let got = get(&url(&s), &q).await;
        if got.status == 500 {
            assert_eq!(got.json()["code"], 500);
            errors += 1;
            continue;
        }
        let body = got.json();
        let items = body["data"]["items"].as_array().unwrap().clone();
        pages.push(items.clone());
        elements.extend(items);
        match body["data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert!(errors >= 1);
    let no = |v: &Value| {
        v.get("petitionNo")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // Each later page starts with the previous page's last item.
    for w in pages.windows(2) {
        assert_eq!(no(&w[1][0]), no(w[0].last().unwrap()));
    }
    let mut distinct: Vec<String> = elements.iter().filter_map(no).collect();
    let with_copies = distinct.len();
    distinct.sort();
    distinct.dedup();
    assert!(with_copies > distinct.len());
    let mut want: Vec<String> = s.record_ids();
    want.extend(s.bad_record_ids());
    want.sort();
    assert_eq!(distinct, want, "every item with an id, none lost");
    assert!(elements.iter().any(|v| !v.is_object()));
    assert!(elements.iter().any(|v| v["createTime"] == "2026-13-45"));
    assert!(
        elements
            .iter()
            .any(|v| v.is_object() && v.get("petitionNo").is_none())
    );
    s.stop().await;
}
