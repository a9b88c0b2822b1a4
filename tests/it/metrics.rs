//! Every metric that the shipped alert rules (`deploy/prometheus/petitiond-rules.yml`), their
//! unit tests and the Grafana dashboard (`deploy/grafana/petitiond.json`) name is one the
//! real daemon exposes on `/metrics`, with the sample name Prometheus sees (a counter `x` is
//! scraped as `x_total`, a histogram as `x_bucket`/`x_sum`/`x_count`). A renamed metric or a
//! typo in a rule would otherwise make an alert silently never fire.
//!
//! No broker needed: two daemons against an unreachable Kafka, one with a Maildir and a
//! hotline source (a bad letter is quarantined, the hotline's polls fail), one with an IMAP
//! mailbox that cannot connect; together they create every labelled series the assets use.

use crate::helpers::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Identifiers starting with `petitiond_` outside quoted strings: PromQL metric names (label
/// names and functions never carry the prefix).
fn metric_names(expr: &str, out: &mut BTreeSet<String>) {
    let mut unquoted = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                unquoted.push(' ');
            }
            None if c == '"' || c == '\'' || c == '`' => {
                quote = Some(c);
                unquoted.push(' ');
            }
            None => unquoted.push(c),
        }
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    for word in unquoted.split(|c: char| !is_ident(c)) {
        if word.starts_with("petitiond_") {
            out.insert(word.to_string());
        }
    }
}

fn yaml(path: &str) -> Yaml {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .remove(0)
}

/// (where, metric name) for every name the rules, the rule tests and the dashboard use.
fn referenced() -> Vec<(String, String)> {
    let mut refs = Vec::new();
    let mut add = |place: &str, expr: &str| {
        let mut names = BTreeSet::new();
        metric_names(expr, &mut names);
        refs.extend(names.into_iter().map(|n| (place.to_string(), n)));
    };
    let rules = yaml("deploy/prometheus/petitiond-rules.yml");
    let mut alerts = 0;
    for group in rules["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            let name = rule["alert"].as_str().unwrap_or("record");
            add(&format!("rule {name}"), rule["expr"].as_str().unwrap());
            alerts += 1;
        }
    }
    assert!(alerts >= 7, "rules file read: {alerts} rules");
    let tests = yaml("deploy/prometheus/petitiond-rules.test.yml");
    for test in tests["tests"].as_vec().unwrap() {
        for s in test["input_series"].as_vec().unwrap() {
            add("rule test input", s["series"].as_str().unwrap());
        }
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/petitiond.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    walk_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 10, "dashboard read: {} queries", exprs.len());
    for e in exprs {
        add("dashboard", &e);
    }
    refs
}

fn walk_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                        out.push(s.clone())
                    }
                    _ => walk_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| walk_exprs(v, out)),
        _ => {}
    }
}

/// Sample names a scrape yields, from the `# TYPE` lines and the samples themselves.
fn exposed(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            for s in suffixes {
                names.insert(format!("{name}{s}"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            names.insert(name);
        }
    }
    names
}

fn scrape_until(app: &TestApp, want: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, text) = app.http_get("/metrics");
        assert_eq!(status, 200);
        if want.iter().all(|w| text.contains(w)) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn every_metric_the_alert_rules_and_dashboard_name_is_exposed() {
    let refs = referenced();
    let no_kafka = format!("127.0.0.1:{}", free_port());

    // Daemon 1: Maildir (one good and one bad letter) and a hotline that cannot be reached.
    let mut a = TestApp::new(&no_kafka, "");
    a.append_config(&format!(
        "\n[channels.hotline]\nprotocol = \"open311\"\nbase_url = \"http://127.0.0.1:{}/open311\"\njurisdiction_id = \"t\"\npoll_interval_ms = 200\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n",
        free_port()
    ));
    a.start();
    a.deliver(&letter(1));
    a.deliver(b"\xff\xfe not a mail at all");
    let text_a = scrape_until(
        &a,
        &[
            "petitiond_quarantined_total{",
            "petitiond_upstream_requests_total{",
            "petitiond_items_received_total{channel=\"letter\"} 1",
            "petitiond_ready 0",
        ],
        Duration::from_secs(30),
    );

    // Daemon 2: an IMAP mailbox whose server is not there.
    let mut b = TestApp::new(&no_kafka, "");
    std::fs::write(b.dir.path().join("imap-password"), "pw\n").unwrap();
    let cfg = std::fs::read_to_string(&b.config).unwrap().replace(
        "[channels.mailbox]\npath = \"mail\"\n",
        &format!(
            "[channels.mailbox]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"u\"\npassword = {{ file = \"imap-password\" }}\nreconnect_initial_ms = 100\nreconnect_max_ms = 500\n",
            free_port()
        ),
    );
    assert!(
        cfg.contains("kind = \"imap\""),
        "the harness config changed"
    );
    std::fs::write(&b.config, cfg).unwrap();
    b.start();
    let text_b = scrape_until(
        &b,
        &["petitiond_mailbox_connection_failures_total{"],
        Duration::from_secs(30),
    );

    let mut have = exposed(&text_a);
    have.extend(exposed(&text_b));
    let missing: Vec<String> = refs
        .iter()
        .filter(|(_, name)| !have.contains(name))
        .map(|(place, name)| format!("{place}: {name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "named by deploy/ but not on /metrics:\n{}\n--- /metrics ---\n{text_a}",
        missing.join("\n")
    );
    // Personal data never reaches /metrics: the letter's phone number and text.
    for text in [&text_a, &text_b] {
        assert!(!text.contains("13812345678") && !text.contains("供暖"));
    }
}

#[test]
fn metric_names_are_read_from_promql_outside_strings() {
    let mut names = BTreeSet::new();
    metric_names(
        r#"sum by (clock) (increase(petitiond_sla_alerts_total{kind=~"petitiond_not_a_metric.*"}[1h])) > 20 or petitiond_ready == 0"#,
        &mut names,
    );
    let want: BTreeSet<String> = ["petitiond_sla_alerts_total", "petitiond_ready"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, want);
    let e = exposed(
        "# TYPE petitiond_x counter\npetitiond_x_total 1\n# TYPE petitiond_h histogram\n# TYPE petitiond_g gauge\npetitiond_g 0\n",
    );
    for n in [
        "petitiond_x_total",
        "petitiond_h_bucket",
        "petitiond_h_count",
        "petitiond_g",
    ] {
        assert!(e.contains(n), "{n}");
    }
    assert!(
        !e.contains("petitiond_x"),
        "a counter is scraped as x_total only"
    );
}

/// The IMAP gauge watched by `PetitiondMailboxDisconnected` reads 1 once the session is up
/// (the zero written at start-up comes before the channel starts; this checks the outcome,
/// it cannot force the race that ordering avoids).
#[test]
fn mailbox_connected_is_one_once_the_imap_session_is_up() {
    let Some(server) = imap_server() else { return };
    let (user, password) = server.new_user();
    let no_kafka = format!("127.0.0.1:{}", free_port());
    let mut app = TestApp::new(&no_kafka, "");
    std::fs::write(
        app.dir.path().join("imap-password"),
        format!("{password}\n"),
    )
    .unwrap();
    let (host, port) = server.addr.split_once(':').unwrap();
    let cfg = std::fs::read_to_string(&app.config).unwrap().replace(
        "[channels.mailbox]\npath = \"mail\"\n",
        &format!(
            "[channels.mailbox]\nkind = \"imap\"\nhost = \"{host}\"\nport = {port}\ntls = \"none\"\nusername = \"{user}\"\npassword = {{ file = \"imap-password\" }}\n"
        ),
    );
    assert!(
        cfg.contains("kind = \"imap\""),
        "the harness config changed"
    );
    std::fs::write(&app.config, cfg).unwrap();
    app.start();
    let want = "petitiond_mailbox_connected{source=\"mailbox\"} 1";
    let text = scrape_until(&app, &[want], Duration::from_secs(30));
    assert!(text.contains(want), "{text}");
}
