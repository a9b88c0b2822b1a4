//! Regression tests of issue 13's HTTP points, each named after what broke: one bad
//! attachment halting a source; requests (and credentials) going where the operator did not
//! point them; cursors skipping or stalling on partial protocol support, future times and
//! malformed optional fields. Against the simulators (their switchable quirks) and wiremock,
//! through the real intake into a real store.

use super::*;
use jiff::SignedDuration;
use petitiond_core::envelope::{Channel, ItemId};
use petitiond_sim::Faults;
use petitiond_sim::hotline::{HotlineSim, HotlineSimConfig};
use petitiond_sim::portal::{Pagination, PortalSim, PortalSimConfig, SigningSecret};

const SECRET: &str = "hardening-secret-不要用";
const TOKEN: &str = "hotline-token";

/// What a test wants of a simulator.
#[derive(Clone)]
struct Opts {
    media_every: Option<u32>,
    media_origin: Option<String>,
    media_redirect_to: Option<String>,
    link_origin: Option<String>,
    redirect_api_to: Option<String>,
    supports_updated: bool,
    ignores_updated_before: bool,
    /// Portal: HMAC-signed requests; hotline: a bearer token.
    auth: bool,
    cap: usize,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            media_every: None,
            media_origin: None,
            media_redirect_to: None,
            link_origin: None,
            redirect_api_to: None,
            supports_updated: true,
            ignores_updated_before: false,
            auth: false,
            cap: 100,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Hotline,
    Portal(Pagination),
}

const EVERY_KIND: [Kind; 4] = [
    Kind::Hotline,
    Kind::Portal(Pagination::Cursor),
    Kind::Portal(Pagination::Link),
    Kind::Portal(Pagination::Page),
];

enum Sim {
    Hotline(HotlineSim, Opts),
    Portal(PortalSim, Opts, Pagination),
}

impl Sim {
    async fn start(kind: Kind, o: Opts) -> Sim {
        match kind {
            Kind::Hotline => Sim::Hotline(
                HotlineSim::start(HotlineSimConfig {
                    media_every: o.media_every,
                    media_origin: o.media_origin.clone(),
                    media_redirect_to: o.media_redirect_to.clone(),
                    supports_updated: o.supports_updated,
                    ignores_updated_before: o.ignores_updated_before,
                    bearer: o.auth.then(|| TOKEN.to_string()),
                    max_per_response: o.cap,
                    ..HotlineSimConfig::default()
                })
                .await
                .unwrap(),
                o,
            ),
            Kind::Portal(p) => Sim::Portal(
                PortalSim::start(PortalSimConfig {
                    pagination: p,
                    media_every: o.media_every,
                    media_origin: o.media_origin.clone(),
                    media_redirect_to: o.media_redirect_to.clone(),
                    link_origin: o.link_origin.clone(),
                    redirect_api_to: o.redirect_api_to.clone(),
                    signing: o.auth.then(|| SigningSecret {
                        app_key: "hardening".into(),
                        secret: SECRET.into(),
                    }),
                    ..PortalSimConfig::default()
                })
                .await
                .unwrap(),
                o,
                p,
            ),
        }
    }

    fn channel(&self) -> Channel {
        match self {
            Sim::Hotline(..) => Channel::Hotline,
            Sim::Portal(..) => Channel::Portal,
        }
    }

    fn faults(&self, f: Faults) {
        match self {
            Sim::Hotline(s, _) => s.set_faults(f),
            Sim::Portal(s, ..) => s.set_faults(f),
        }
    }

    fn add_at(&self, t: Timestamp) -> String {
        match self {
            Sim::Hotline(s, _) => s.add_record_at(t),
            Sim::Portal(s, ..) => s.add_record_at(t),
        }
    }

    fn add_now(&self, n: usize) -> Vec<String> {
        match self {
            Sim::Hotline(s, _) => s.add_records(n),
            Sim::Portal(s, ..) => s.add_records(n),
        }
    }

    fn add_between(&self, n: usize, from: Timestamp, to: Timestamp) -> Vec<String> {
        match self {
            Sim::Hotline(s, _) => s.add_records_between(n, from, to),
            Sim::Portal(s, ..) => s.add_records_between(n, from, to),
        }
    }

    fn update(&self, id: &str) -> bool {
        match self {
            Sim::Hotline(s, _) => s.update_record(id),
            Sim::Portal(s, ..) => s.update_record(id),
        }
    }

    fn requests(&self) -> u64 {
        match self {
            Sim::Hotline(s, _) => s.requests_served(),
            Sim::Portal(s, ..) => s.requests_served(),
        }
    }

    fn origin(&self) -> String {
        match self {
            Sim::Hotline(s, _) => s.origin(),
            Sim::Portal(s, ..) => s.origin(),
        }
    }

    /// The channel's config section: `keys` go into the source's table, `tables` after it.
    fn section(&self, keys: &str, tables: &str) -> String {
        match self {
            Sim::Hotline(s, o) => {
                let auth = if o.auth {
                    "allow_plaintext_auth = true\n[channels.hotline.auth]\nkind = \"bearer\"\ntoken = { file = \"token\" }\n"
                } else {
                    ""
                };
                format!(
                    r#"
[channels.hotline]
protocol = "open311"
base_url = "{}"
initial_lookback_hours = 72
overlap_secs = 60
backoff_initial_ms = 10
backoff_max_ms = 50
breaker_failures = 2
breaker_cooldown_ms = 60000
requests_per_second = 1000
max_per_response = {}
{keys}
{auth}
{tables}
"#,
                    s.base_url(),
                    o.cap
                )
            }
            Sim::Portal(s, o, p) => {
                let kind = match p {
                    Pagination::Page => "page",
                    Pagination::Cursor => "cursor",
                    Pagination::Link => "link",
                };
                let (plain, auth) = if o.auth {
                    (
                        "allow_plaintext_auth = true",
                        "[channels.portal.auth]\nkind = \"hmac\"\napp_key = \"hardening\"\nsecret = { file = \"portal.secret\" }\n",
                    )
                } else {
                    ("", "")
                };
                format!(
                    r#"
[channels.portal]
protocol = "paged"
base_url = "{}"
path = "/petitions"
updated_after_param = "updated_after"
items_pointer = "/data/items"
initial_lookback_hours = 72
overlap_secs = 60
backoff_initial_ms = 10
backoff_max_ms = 50
breaker_failures = 2
breaker_cooldown_ms = 60000
requests_per_second = 1000
{plain}
{keys}
[channels.portal.pagination]
kind = "{kind}"
page_size = 5
next_cursor_pointer = "/data/next_cursor"
[channels.portal.mapping]
{}
{auth}
{tables}
"#,
                    s.base_url(),
                    petitiond_sim::portal::MAPPING_TOML
                )
            }
        }
    }

    async fn channel_h(&self, keys: &str, tables: &str) -> H {
        H::with_files(
            &self.section(keys, tables),
            &[("portal.secret", SECRET), ("token", TOKEN)],
        )
        .await
    }
}

/// Whole seconds (the simulators' resolution).
fn secs(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap()
}

fn env(h: &H, ch: Channel, upstream_id: &str) -> petitiond_core::envelope::Envelope {
    let id = ItemId::derive(ch, upstream_id);
    h.store
        .item_envelope(id.as_str())
        .unwrap()
        .unwrap_or_else(|| panic!("{upstream_id} not recorded"))
}

/// The channel events of `ce_type` in the outbox, each checked against the published schema.
fn events(h: &H, ce_type: &str) -> Vec<Value> {
    let schema: Value =
        serde_json::from_str(include_str!("../../../../schema/channel-event.v1.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    h.store
        .pending_outbox(100_000)
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.headers
                .iter()
                .any(|(k, v)| k == "ce_type" && v == ce_type)
        })
        .map(|r| {
            let p: Value = serde_json::from_slice(&r.payload).unwrap();
            assert!(validator.is_valid(&p), "not schema-valid: {p}");
            p
        })
        .collect()
}

fn quarantined(h: &H) -> Vec<petitiond_store::Quarantined> {
    h.store
        .list_quarantine(1000)
        .unwrap()
        .into_iter()
        .map(|q| q.entry)
        .collect()
}

/// A server on another origin that answers everything (a file or an empty page) and records
/// what it was asked.
async fn other_origin() -> MockServer {
    let other = MockServer::start().await;
    Mock::given(wiremock::matchers::path_regex("^/files/.*"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(vec![0xFFu8, 0xD8, 0xFF, 0xE0, 9], "image/jpeg"),
        )
        .mount(&other)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"code":0,"data":{"items":[],"next_cursor":null}})),
        )
        .mount(&other)
        .await;
    other
}

const CREDENTIAL_HEADERS: [&str; 6] = [
    "authorization",
    "cookie",
    "x-app-key",
    "x-timestamp",
    "x-nonce",
    "x-signature",
];

async fn assert_no_credentials(server: &MockServer, what: &str) {
    for r in server.received_requests().await.unwrap() {
        for h in CREDENTIAL_HEADERS {
            assert!(
                r.headers.get(h).is_none(),
                "{what}: `{h}` sent to another origin ({})",
                r.url.path()
            );
        }
    }
}

// ---- 2. One bad attachment never halts a source --------------------------------------------

/// Issue 13: a failing attachment download stopped the whole HTTP source (the poll failed,
/// for ever) and opened its circuit breaker. Now the item is held (the cursor waits just
/// before it, everything else flows), retried for `max_failed_polls` polls, then quarantined
/// with the file's reference; the breaker only counts pages.
#[tokio::test]
async fn one_attachment_failing_for_good_never_halts_the_source_nor_opens_the_breaker() {
    for kind in EVERY_KIND {
        let sim = Sim::start(
            kind,
            Opts {
                media_every: Some(2),
                ..Opts::default()
            },
        )
        .await;
        // Creation numbers 4, 8 and 12 link a file that always answers 500.
        sim.faults(Faults {
            broken_media_every: Some(4),
            ..Faults::default()
        });
        let start = secs(Timestamp::now() - SignedDuration::from_hours(2));
        let times: Vec<Timestamp> = (0..12)
            .map(|i| start + SignedDuration::from_mins(5 * i))
            .collect();
        let ids: Vec<String> = times.iter().map(|t| sim.add_at(*t)).collect();
        let h = sim
            .channel_h(
                "",
                &format!(
                    "[channels.{}.attachments]\nmax_failed_polls = 3",
                    h_name(kind)
                ),
            )
            .await;
        for poll in 1..=2 {
            h.poll()
                .await
                .unwrap_or_else(|e| panic!("{kind:?} poll {poll}: {e}"));
            assert_eq!(h.items(), 9, "{kind:?} poll {poll}: all but the three flow");
            assert!(quarantined(&h).is_empty(), "{kind:?}");
            let cursor = h.cursor().unwrap();
            assert!(
                cursor < times[3] && cursor >= times[3] - SignedDuration::from_secs(1),
                "{kind:?} poll {poll}: the cursor waits just before the first held item: {cursor} vs {}",
                times[3]
            );
            // Records after the held one are in (the source was not halted).
            env(&h, sim.channel(), &ids[10]);
        }
        h.poll().await.unwrap();
        assert_eq!(h.items(), 9, "{kind:?}");
        let q = quarantined(&h);
        assert_eq!(q.len(), 3, "{kind:?}: {q:?}");
        for i in [3, 7, 11] {
            let e = q
                .iter()
                .find(|e| e.reference.ends_with(&format!("id={}", ids[i])))
                .unwrap_or_else(|| panic!("{kind:?}: {} not quarantined: {q:?}", ids[i]));
            assert_eq!(e.reason, ATTACHMENT_FAILED);
            assert!(
                e.detail
                    .contains(&format!("{}/files/{}_", sim.origin(), ids[i])),
                "the attachment's reference: {}",
                e.detail
            );
            assert!(!e.detail.contains("status=500"), "no query: {}", e.detail);
        }
        assert!(
            h.cursor().unwrap() >= times[11],
            "{kind:?}: the cursor moved past the quarantined items"
        );
        // Nine failed downloads per poll never opened the breaker (2 failures open it): every
        // poll read its pages.
        let m = h.ch.metrics.encode();
        assert!(
            m.contains(&format!(
                r#"petitiond_quarantined_total{{source="{}",reason="attachment_failed"}} 3"#,
                h_name(kind)
            )),
            "{m}"
        );
        // The budget is in the stored cursor: an exhausted item goes straight back to
        // quarantine (no download) when the overlap reads it again.
        let before = sim.requests();
        h.poll().await.unwrap();
        assert_eq!(quarantined(&h).len(), 3);
        let asked = sim.requests() - before;
        assert!(asked <= 3, "{kind:?}: {asked} requests: pages only");
    }
}

fn h_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Hotline => "hotline",
        Kind::Portal(_) => "portal",
    }
}

/// Every way an attachment fails: transient ones (5xx, timeout) are held and then
/// quarantined; permanent ones (another type, too large, gone, another origin, a redirect
/// loop, a redirect to another origin) let the item flow at once, flagged. The source goes
/// on in every case, and the breaker (opening at the second failure here; six downloads
/// fail per poll) never opens.
#[tokio::test]
async fn every_attachment_failure_mode_lets_the_source_go_on() {
    let server = MockServer::start().await;
    let other = other_origin().await;
    let jpeg = vec![0xFFu8, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4];
    let files: [(&str, ResponseTemplate); 8] = [
        (
            "ok.jpg",
            ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"),
        ),
        ("err.jpg", ResponseTemplate::new(503)),
        (
            "slow.jpg",
            ResponseTemplate::new(200)
                .set_body_raw(jpeg.clone(), "image/jpeg")
                .set_delay(Duration::from_secs(6)),
        ),
        (
            "page.html",
            ResponseTemplate::new(200).set_body_raw("<html/>", "text/html"),
        ),
        (
            "big.pdf",
            ResponseTemplate::new(200).set_body_raw(vec![0u8; 5000], "application/pdf"),
        ),
        ("gone.png", ResponseTemplate::new(404)),
        (
            "loop.jpg",
            ResponseTemplate::new(302).insert_header("Location", "/files/loop.jpg"),
        ),
        (
            "moved.jpg",
            ResponseTemplate::new(302).insert_header(
                "Location",
                format!("{}/files/moved.jpg", other.uri()).as_str(),
            ),
        ),
    ];
    let mut names: Vec<String> = Vec::new();
    for (name, t) in files {
        Mock::given(path(format!("/files/{name}")))
            .respond_with(t)
            .mount(&server)
            .await;
        names.push(format!("{}/files/{name}", server.uri()));
    }
    names.push(format!("{}/files/elsewhere.jpg", other.uri()));
    let t = Timestamp::now() - jiff::SignedDuration::from_secs(120);
    let recs: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut r = record(i, t + jiff::SignedDuration::from_secs(i as i64));
            r["media_url"] = json!(u);
            r
        })
        .collect();
    Mock::given(path("/open311/v2/requests.json"))
        .respond_with(Open311 {
            records: Arc::new(Mutex::new(recs)),
            cap: 1000,
            calls: Arc::new(AtomicUsize::new(0)),
            script: vec![],
        })
        .mount(&server)
        .await;
    let h = H::new(
        &open311_section(
            &server.uri(),
            "request_timeout_ms = 1500\n[channels.hotline.attachments]\nmax_bytes = 4096\nmax_failed_polls = 2",
        )
        .replace("breaker_failures = 100", "breaker_failures = 2"),
    )
    .await;
    let flags = |i: usize| env(&h, Channel::Hotline, &i.to_string()).flags;
    h.poll()
        .await
        .expect("a failing attachment does not fail the poll");
    assert_eq!(h.items(), 7, "all but the 5xx and the timeout flow at once");
    assert!(!flags(0).contains(&ATTACHMENT_UNAVAILABLE.to_string()));
    assert_eq!(env(&h, Channel::Hotline, "0").attachments.len(), 1);
    for (i, name) in names.iter().enumerate().skip(3) {
        assert!(
            flags(i).contains(&ATTACHMENT_UNAVAILABLE.to_string()),
            "{name}: {:?}",
            flags(i)
        );
    }
    assert!(
        h.cursor().unwrap() < t + jiff::SignedDuration::from_secs(1),
        "held before the 5xx one"
    );
    h.poll().await.expect("second poll");
    assert_eq!(h.items(), 7);
    let q = quarantined(&h);
    let mut got: Vec<(&str, bool)> = q
        .iter()
        .map(|e| (e.reason.as_str(), e.detail.contains("/files/")))
        .collect();
    got.sort();
    assert_eq!(got, [(ATTACHMENT_FAILED, true), (ATTACHMENT_FAILED, true)]);
    assert!(q.iter().any(|e| e.detail.contains("/files/err.jpg")));
    assert!(q.iter().any(|e| e.detail.contains("/files/slow.jpg")));
    assert!(
        h.cursor().unwrap() > t + jiff::SignedDuration::from_secs(9),
        "then the cursor moves on"
    );
    assert!(
        other.received_requests().await.unwrap().is_empty(),
        "nothing was asked of another origin"
    );
    let m = h.ch.metrics.encode();
    for outcome in [
        "stored",
        "bad_type",
        "too_large",
        "gone",
        "off_origin",
        "redirect_refused",
        "held",
        "failed",
    ] {
        assert!(
            m.contains(&format!(
                r#"petitiond_attachments_fetched_total{{source="hotline",outcome="{outcome}"}}"#
            )),
            "{outcome}: {m}"
        );
    }
}

// ---- 3. Requests go only where the operator pointed them ------------------------------------

/// Issue 13: with `Link` pagination and HMAC signing, page 2 onward was signed with an empty
/// query (the next URL carried it) and got 401.
#[tokio::test]
async fn link_pagination_signs_every_page() {
    let sim = Sim::start(
        Kind::Portal(Pagination::Link),
        Opts {
            auth: true,
            ..Opts::default()
        },
    )
    .await;
    let now = Timestamp::now();
    sim.add_between(23, now - SignedDuration::from_hours(1), now);
    let h = sim.channel_h("", "").await;
    assert_eq!(h.poll().await.expect("every page accepted"), 23);
    assert_eq!(h.items(), 23);
}

/// A `Link: next` on another origin is not followed (nor sent credentials): the poll stops
/// with an error naming the origin; the pages before it are in.
#[tokio::test]
async fn a_link_to_another_origin_is_not_followed() {
    let other = other_origin().await;
    let sim = Sim::start(
        Kind::Portal(Pagination::Link),
        Opts {
            auth: true,
            link_origin: Some(other.uri()),
            ..Opts::default()
        },
    )
    .await;
    let now = Timestamp::now();
    sim.add_between(12, now - SignedDuration::from_hours(1), now);
    let h = sim.channel_h("", "").await;
    let e = h.poll().await.expect_err("refused").to_string();
    assert!(
        e.contains("allowed_origins") && e.contains(&other.uri()),
        "{e}"
    );
    assert_eq!(h.items(), 5, "the first page is in");
    assert!(other.received_requests().await.unwrap().is_empty());
}

/// A redirect to another origin is refused before anything is sent there; to an allowed
/// origin it is followed without the credentials (HMAC headers, auth, cookies).
#[tokio::test]
async fn a_redirect_to_another_origin_is_refused_and_credentials_never_follow_one() {
    let other = other_origin().await;
    let sim = Sim::start(
        Kind::Portal(Pagination::Cursor),
        Opts {
            auth: true,
            redirect_api_to: Some(other.uri()),
            ..Opts::default()
        },
    )
    .await;
    sim.add_now(3);
    let h = sim.channel_h("", "").await;
    let e = h.poll().await.expect_err("refused").to_string();
    assert!(e.contains("another origin"), "{e}");
    assert!(
        other.received_requests().await.unwrap().is_empty(),
        "nothing sent to the other origin"
    );
    // Allowed: followed, without credentials.
    let h = sim
        .channel_h(&format!("allowed_origins = [\"{}\"]", other.uri()), "")
        .await;
    h.poll().await.expect("followed to an allowed origin");
    assert_eq!(other.received_requests().await.unwrap().len(), 1);
    assert_no_credentials(&other, "a page redirect").await;
}

/// Attachment URLs on another origin are not fetched unless the origin is allowed, and then
/// never with the source's credentials — also when the source's own file server redirects
/// there.
#[tokio::test]
async fn attachments_on_another_origin_are_not_fetched_nor_sent_credentials() {
    for kind in [Kind::Hotline, Kind::Portal(Pagination::Cursor)] {
        for redirect in [false, true] {
            let other = other_origin().await;
            let mut o = Opts {
                auth: true,
                media_every: Some(1),
                ..Opts::default()
            };
            if redirect {
                o.media_redirect_to = Some(other.uri());
            } else {
                o.media_origin = Some(other.uri());
            }
            let sim = Sim::start(kind, o).await;
            let ids = sim.add_now(2);
            let what = format!("{kind:?}, redirect: {redirect}");
            // Not allowed: the items flow, flagged; the other origin hears nothing.
            let h = sim.channel_h("", "").await;
            h.poll().await.unwrap();
            assert_eq!(h.items(), 2, "{what}");
            for id in &ids {
                let e = env(&h, sim.channel(), id);
                assert!(e.attachments.is_empty(), "{what}");
                assert!(
                    e.flags.contains(&ATTACHMENT_UNAVAILABLE.to_string()),
                    "{what}"
                );
            }
            assert!(
                other.received_requests().await.unwrap().is_empty(),
                "{what}: nothing asked of another origin"
            );
            let m = h.ch.metrics.encode();
            assert!(m.contains(r#"outcome="off_origin""#), "{what}: {m}");
            // Allowed: fetched, without credentials.
            let h = sim
                .channel_h(&format!("allowed_origins = [\"{}/\"]", other.uri()), "")
                .await;
            h.poll().await.unwrap();
            for id in &ids {
                assert!(
                    !env(&h, sim.channel(), id).attachments.is_empty(),
                    "{what}: fetched from the allowed origin"
                );
            }
            assert!(!other.received_requests().await.unwrap().is_empty());
            assert_no_credentials(&other, &what).await;
        }
    }
}

/// Config text for a hotline with a bearer token read from `dir/token`.
fn bearer_config(
    dir: &std::path::Path,
    base: &str,
    keys: &str,
) -> Result<Config, petitiond_core::diag::ConfigErrors> {
    std::fs::write(dir.join("token"), "t").unwrap();
    let text = format!(
        "{BASE}\n[channels.hotline]\nprotocol = \"open311\"\nbase_url = \"{base}\"\n{keys}\n[channels.hotline.auth]\nkind = \"bearer\"\ntoken = {{ file = \"token\" }}\n"
    );
    Config::parse(&text, "test.toml", dir)
}

/// Credentials (auth, Open311's api_key) configured with a plain-http base URL were sent
/// in clear; now that is a config error unless `allow_plaintext_auth = true` says so.
#[test]
fn plain_http_credentials_are_refused_unless_the_config_allows_them() {
    let dir = tempfile::tempdir().unwrap();
    let e = bearer_config(dir.path(), "http://hotline.example.gov.cn/open311/v2", "")
        .expect_err("plain http with credentials")
        .to_string();
    assert!(
        e.contains("channels.hotline.base_url") && e.contains("allow_plaintext_auth"),
        "{e}"
    );
    std::fs::write(dir.path().join("key"), "k").unwrap();
    let text = format!(
        "{BASE}\n[channels.hotline]\nprotocol = \"open311\"\nbase_url = \"http://h.example/v2\"\napi_key = {{ file = \"key\" }}\n"
    );
    let e = Config::parse(&text, "test.toml", dir.path())
        .expect_err("an api_key over plain http")
        .to_string();
    assert!(e.contains("allow_plaintext_auth"), "{e}");
    bearer_config(dir.path(), "https://hotline.example.gov.cn/open311/v2", "").unwrap();
}

#[test]
fn credentials_go_to_the_base_origin_only_and_over_https_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |base: &str, keys: &str| bearer_config(dir.path(), base, keys);
    let c = cfg(
        "https://hotline.example.gov.cn/open311/v2",
        "allowed_origins = [\"https://files.example.gov.cn\"]",
    )
    .unwrap();
    let f = Fetcher::new(&c.http_sources[0], Metrics::new()).unwrap();
    let url = |u: &str| reqwest::Url::parse(u).unwrap();
    assert!(
        f.credentials_for(&url("https://hotline.example.gov.cn/x"))
            .unwrap()
    );
    assert!(
        f.credentials_for(&url("https://HOTLINE.example.gov.cn:443/y?z=1"))
            .unwrap()
    );
    for elsewhere in [
        "https://files.example.gov.cn/a.jpg",
        "http://hotline.example.gov.cn/x",
        "https://hotline.example.gov.cn:8443/x",
        "https://evil.example.com/x",
    ] {
        assert!(!f.credentials_for(&url(elsewhere)).unwrap(), "{elsewhere}");
    }
    assert!(f.allows(&url("https://files.example.gov.cn/a.jpg")));
    assert!(!f.allows(&url("http://files.example.gov.cn/a.jpg")));
    assert!(!f.allows(&url("https://evil.example.com/x")));
    // Plain http: only when the config says so.
    let c = cfg(
        "http://hotline.example.gov.cn/open311/v2",
        "allow_plaintext_auth = true",
    )
    .unwrap();
    let f = Fetcher::new(&c.http_sources[0], Metrics::new()).unwrap();
    assert!(
        f.credentials_for(&url("http://hotline.example.gov.cn/x"))
            .unwrap()
    );
    // allowed_origins must be origins.
    let e = cfg(
        "https://h.example/v2",
        "allowed_origins = [\"https://ok.example\", \"https://x.example/path\"]",
    )
    .expect_err("not an origin")
    .to_string();
    assert!(
        e.contains("channels.hotline.allowed_origins[1]") && e.contains("not an origin"),
        "{e}"
    );
}

// ---- 4. Cursors never skip and never stall --------------------------------------------------

/// Issue 13: against an Open311 server that honours `updated_after` but ignores
/// `updated_before`, the channel split windows down to one millisecond and crawled forward
/// a millisecond at a time (about ten ERROR lines a second), never reaching records past the
/// first answer. Now the records outside the window are noticed, one event is raised, and the
/// source is read on the records' own times.
#[tokio::test]
async fn an_open311_server_ignoring_updated_before_is_read_on_record_times() {
    let sim = Sim::start(
        Kind::Hotline,
        Opts {
            ignores_updated_before: true,
            cap: 100,
            ..Opts::default()
        },
    )
    .await;
    let now = Timestamp::now();
    let ids = sim.add_between(
        1000,
        now - SignedDuration::from_hours(70),
        now - SignedDuration::from_secs(5),
    );
    let h = sim.channel_h("", "").await;
    tokio::time::timeout(Duration::from_secs(120), h.poll())
        .await
        .expect("the poll ends (no millisecond crawl)")
        .unwrap();
    assert_eq!(h.items(), 1000, "every record");
    assert!(
        sim.requests() < 60,
        "{} requests for 1000 records at 100 per answer",
        sim.requests()
    );
    let cursor = h.cursor().unwrap();
    assert!(cursor >= now - SignedDuration::from_secs(6), "{cursor}");
    let ev = events(&h, TYPE_CHANNEL_BOUND_IGNORED);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["parameter"], "updated_before");
    assert_eq!(ev[0]["fallback"], "record_times");
    // Later polls: updates to old records and new records arrive; no second event, even in
    // a new run (the cursor remembers the server's way).
    sim.update(&ids[3]);
    sim.add_now(2);
    h.poll().await.unwrap();
    *h.run.lock().await = RunState::default();
    h.poll().await.unwrap();
    assert_eq!(h.items(), 1002);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE headers LIKE '%item.updated.v1%'"),
        1
    );
    assert_eq!(events(&h, TYPE_CHANNEL_BOUND_IGNORED).len(), 1);
}

/// A server that ignores both bounds (no `updated_after` support) gives the same capped
/// answer to every window: taken as it is, no splitting crawl; one event per run.
#[tokio::test]
async fn an_open311_server_ignoring_both_bounds_does_not_stall_the_source() {
    let sim = Sim::start(
        Kind::Hotline,
        Opts {
            supports_updated: false,
            cap: 50,
            ..Opts::default()
        },
    )
    .await;
    let now = Timestamp::now();
    sim.add_between(
        120,
        now - SignedDuration::from_hours(60),
        now - SignedDuration::from_secs(5),
    );
    let h = sim.channel_h("", "").await;
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(60), h.poll())
            .await
            .expect("the poll ends")
            .unwrap();
    }
    assert!(
        sim.requests() <= 8,
        "a few requests, no crawl: {}",
        sim.requests()
    );
    assert_eq!(h.items(), 50, "what the server gives");
    // First the upper bound is seen ignored, then the lower: one event each.
    let ev = events(&h, TYPE_CHANNEL_BOUND_IGNORED);
    let mut params: Vec<&str> = ev
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    params.sort();
    assert_eq!(params, ["updated_after", "updated_before"], "{ev:?}");
}

/// A record dated a year ahead (a bad record, or an upstream clock) moved the cursor a year
/// ahead: every later record was skipped. Now the cursor is clamped to our clock plus
/// `max_clock_skew_secs`, one `cursor_clamped` event is raised, and later records arrive.
#[tokio::test]
async fn a_future_record_time_clamps_the_cursor_and_alerts_once() {
    let kinds = [
        (Kind::Hotline, true),
        (Kind::Portal(Pagination::Cursor), false),
        (Kind::Portal(Pagination::Link), false),
        (Kind::Portal(Pagination::Page), false),
    ];
    for (kind, ignores_updated_before) in kinds {
        let sim = Sim::start(
            kind,
            Opts {
                ignores_updated_before,
                ..Opts::default()
            },
        )
        .await;
        let now = Timestamp::now();
        sim.add_between(7, now - SignedDuration::from_hours(1), now);
        let future = sim.add_at(now + SignedDuration::from_hours(24 * 365));
        let h = sim.channel_h("max_clock_skew_secs = 20", "").await;
        h.poll().await.unwrap();
        assert_eq!(h.items(), 8, "{kind:?}: the future record is an item too");
        env(&h, sim.channel(), &future);
        let cursor = h.cursor().unwrap();
        assert!(
            cursor <= Timestamp::now() + SignedDuration::from_secs(20),
            "{kind:?}: clamped: {cursor}"
        );
        let ev = events(&h, TYPE_CHANNEL_CURSOR_CLAMPED);
        assert_eq!(ev.len(), 1, "{kind:?}");
        assert_eq!(ev[0]["max_clock_skew_secs"], 20);
        // Records written after the clamp are read, not skipped; the condition persists
        // (the future record is read again) without a second event.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let later = sim.add_now(3);
        h.poll().await.unwrap();
        h.poll().await.unwrap();
        for id in &later {
            env(&h, sim.channel(), id);
        }
        assert_eq!(h.items(), 11, "{kind:?}");
        assert_eq!(events(&h, TYPE_CHANNEL_CURSOR_CLAMPED).len(), 1, "{kind:?}");
    }
}

/// A record with a usable id, time and text was quarantined because an optional field was
/// malformed (a second timestamp, an address, coordinates). Now the field is dropped, the
/// envelope says so, and the petition goes on.
#[tokio::test]
async fn a_malformed_optional_field_is_dropped_and_the_item_flows() {
    for kind in [Kind::Hotline, Kind::Portal(Pagination::Cursor)] {
        let sim = Sim::start(kind, Opts::default()).await;
        sim.faults(Faults {
            malformed_optional_every: Some(3),
            ..Faults::default()
        });
        let now = Timestamp::now();
        let ids = sim.add_between(9, now - SignedDuration::from_hours(1), now);
        let h = sim.channel_h("", "").await;
        h.poll().await.unwrap();
        assert_eq!(h.items(), 9, "{kind:?}");
        assert!(
            quarantined(&h).is_empty(),
            "{kind:?}: {:?}",
            quarantined(&h)
        );
        let (second_time, more): (&str, &[&str]) = match kind {
            Kind::Hotline => ("updated", &["address"]),
            Kind::Portal(_) => ("created", &["address", "region"]),
        };
        for (i, id) in ids.iter().enumerate() {
            let e = env(&h, sim.channel(), id);
            let dropped: Vec<&String> = e
                .flags
                .iter()
                .filter(|f| f.starts_with(DROPPED_FIELD))
                .collect();
            if (i + 1) % 3 == 0 {
                let mut want: Vec<String> = std::iter::once(second_time)
                    .chain(more.iter().copied())
                    .map(|f| format!("{DROPPED_FIELD}{f}"))
                    .collect();
                want.sort();
                let mut got: Vec<String> = dropped.into_iter().cloned().collect();
                got.sort();
                assert_eq!(got, want, "{kind:?} {id}");
                assert!(e.petitioner.address.is_none());
                assert!(!e.request.content.expose().is_empty());
            } else {
                assert!(dropped.is_empty(), "{kind:?} {id}: {dropped:?}");
                assert!(e.petitioner.address.is_some());
            }
        }
        let m = h.ch.metrics.encode();
        assert!(
            m.contains(&format!(
                r#"petitiond_http_fields_dropped_total{{source="{}",field="address"}} 3"#,
                h_name(kind)
            )),
            "{m}"
        );
    }
}

/// Page-number pagination: one record updated between two page requests moves to the end,
/// every later record shifts back one place, and `page + 1` skipped the record at the
/// boundary while the cursor passed it — lost for good. Now a page-number walk re-anchors
/// on the latest update time read and asks page one again.
#[tokio::test]
async fn a_page_number_walk_never_skips_a_record_shifted_by_an_update_mid_walk() {
    /// Offset pagination over `updateTime` ("updated_after" strict), sorted; before it
    /// answers its second request, the second record is updated (moves to the end).
    struct Shifting {
        items: Mutex<Vec<Value>>,
        calls: AtomicUsize,
    }
    impl Respond for Shifting {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let q: std::collections::HashMap<String, String> =
                req.url.query_pairs().into_owned().collect();
            let mut items = self.items.lock().unwrap();
            if self.calls.fetch_add(1, Ordering::SeqCst) == 1 {
                let mut moved = items.remove(1);
                let now = Timestamp::now().as_second();
                moved["_t"] = json!(now);
                moved["updateTime"] = json!(
                    jiff::tz::Offset::constant(8)
                        .to_datetime(Timestamp::from_second(now).unwrap())
                        .strftime("%Y-%m-%d %H:%M:%S")
                        .to_string()
                );
                moved["status"] = json!("已受理");
                items.push(moved);
            }
            let after = q
                .get("updated_after")
                .map(|a| a.parse::<Timestamp>().unwrap().as_second())
                .unwrap_or(i64::MIN);
            let size: usize = q["page_size"].parse().unwrap();
            let page: usize = q["page"].parse().unwrap();
            let kept: Vec<Value> = items
                .iter()
                .filter(|v| v["_t"].as_i64().unwrap() > after)
                .cloned()
                .collect();
            let page: Vec<Value> = kept
                .into_iter()
                .skip((page - 1) * size)
                .take(size)
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"code":0,"data":{"items": page}}))
        }
    }
    let start = secs(Timestamp::now() - SignedDuration::from_hours(5));
    let items: Vec<Value> = (0..30)
        .map(|i| {
            let t = start + SignedDuration::from_mins(10 * i as i64);
            let mut v = portal_item(i);
            v["_t"] = json!(t.as_second());
            v["updateTime"] = json!(
                jiff::tz::Offset::constant(8)
                    .to_datetime(t)
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            );
            v
        })
        .collect();
    let server = MockServer::start().await;
    Mock::given(path("/api/petitions"))
        .respond_with(Shifting {
            items: Mutex::new(items),
            calls: AtomicUsize::new(0),
        })
        .mount(&server)
        .await;
    let h = H::new(&format!(
        r#"
[channels.portal]
protocol = "paged"
base_url = "{}/api"
path = "/petitions"
updated_after_param = "updated_after"
items_pointer = "/data/items"
requests_per_second = 1000
initial_lookback_hours = 24
overlap_secs = 60
[channels.portal.pagination]
kind = "page"
page_size = 5
[channels.portal.mapping]
{}
"#,
        server.uri(),
        petitiond_sim::portal::MAPPING_TOML
    ))
    .await;
    h.poll().await.unwrap();
    h.poll().await.unwrap();
    assert_eq!(h.items(), 30, "no record skipped");
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE headers LIKE '%item.updated.v1%'"),
        1,
        "the moved record arrives as an update"
    );
}
