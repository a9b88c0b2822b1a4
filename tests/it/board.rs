//! The SLA board in a real browser: the real daemon records a letter, its clocks start, one
//! breaches; headless Chromium loads `/board` and the DOM must show the clocks with their
//! department and due times in the office's zone, honour a filter, and carry no personal data.

use crate::helpers::*;
use std::time::{Duration, Instant};

/// A letter whose text carries a name, a phone number and a matter (all personal).
fn letter_with_petitioner() -> Vec<u8> {
    "From: scanner-01@xfj.example.gov.cn\r\n\
To: letters@xfj.example.gov.cn\r\n\
Date: Mon, 02 Mar 2026 09:00:00 +0800\r\n\
Subject: =?UTF-8?B?5byg5LiJ5Liw55qE5p2l5L+h?=\r\n\
Message-ID: <it-board@scanner-01.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
来信人张三丰反映小区供暖不足，电话13812345678。\r\n\
--b\r\n\
Content-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"scan-board.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJcOkw7zDtsOfCg==\r\n\
--b--\r\n"
        .as_bytes()
        .to_vec()
}

/// Personal values in that letter (subject "张三丰的来信", body, phone, the scanner's address).
const PERSONAL: &[&str] = &[
    "张三丰",
    "13812345678",
    "供暖",
    "来信",
    "scanner-01@xfj.example.gov.cn",
];

fn clocks_config(app: &TestApp) {
    app.append_config(&format!(
        r#"
[sla]
alerts_topic = "{}"
status_topic = "{}"
consumer_group = "{}"

[[sla.clocks]]
id = "letter.quick"
rule = {{ kind = "wall_clock_seconds", seconds = 2 }}
channels = ["letter"]
stop_on = ["registered"]
warn_at_percent = [50]
remind_every_working_days = 0
citation = "test"

[[sla.clocks]]
id = "letter.slow"
rule = {{ kind = "wall_clock_seconds", seconds = 7200 }}
channels = ["letter"]
stop_on = ["registered"]
warn_at_percent = [50]
remind_every_working_days = 0
citation = "test"
"#,
        unique("it.alerts"),
        unique("it.status"),
        unique("it.group")
    ));
}

/// The `<tr ...>` start tag of the row with `attr` inside the table `id`, if any.
fn row<'a>(dom: &'a str, table: &str, attr: &str) -> Option<&'a str> {
    let start = dom.find(&format!("<table id=\"{table}\""))?;
    let end = start + dom[start..].find("</table>")?;
    let t = &dom[start..end];
    let at = t.find(attr)?;
    let tr = t[..at].rfind("<tr")?;
    let close = tr + t[tr..].find('>')?;
    Some(&t[tr..=close])
}

fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let k = format!("{name}=\"");
    let i = tag.find(&k).unwrap_or_else(|| panic!("no {name} in {tag}")) + k.len();
    &tag[i..i + tag[i..].find('"').unwrap()]
}

#[test]
fn board_in_chromium_shows_clocks_filters_and_no_personal_data() {
    let Some(brokers) = broker() else { return };
    let Some(chromium) = chromium() else { return };
    let mut app = TestApp::new(&brokers, "");
    clocks_config(&app);
    app.start();
    let before = jiff::Timestamp::now();
    let item = app.deliver_now(&letter_with_petitioner());

    // Wait (through the JSON) until the quick clock has breached and its alert is recorded.
    let deadline = Instant::now() + Duration::from_secs(60);
    let json = loop {
        let (status, body) = app.http_get("/board.json");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let breached = v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["item_id"] == item.as_str() && a["kind"] == "breach");
        if breached {
            break v;
        }
        assert!(Instant::now() < deadline, "no breach on the board: {v}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(json["time_zone"], "Asia/Shanghai");

    // The operator's browser signs in once (the token exchanged for an HttpOnly cookie) and
    // lands on the board; without it the board is closed.
    let base = format!("http://127.0.0.1:{}", app.admin_port);
    let closed = browse(&chromium, &format!("{base}/board"), None);
    assert!(!closed.contains("<h1>SLA board</h1>"), "{closed}");
    assert!(closed.contains("unauthorized"), "{closed}");
    let dom = browse(&chromium, &app.login_url("/board"), None);
    assert!(dom.contains("<h1>SLA board</h1>"), "{dom}");

    // The slow clock is due next, for the lead department, two hours after it started.
    let slow = row(&dom, "upcoming", "data-clock=\"letter.slow\"")
        .unwrap_or_else(|| panic!("letter.slow not in the upcoming table:\n{dom}"));
    assert_eq!(attr(slow, "data-item"), item);
    assert_eq!(attr(slow, "data-department"), "intake-desk");
    assert_eq!(attr(slow, "data-state"), "running");
    let due: jiff::Zoned = attr(slow, "data-due")
        .parse::<jiff::Timestamp>()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    assert!(attr(slow, "data-due").ends_with("+08:00"), "{slow}");
    let started = before.as_second() - 1;
    let due_s = due.timestamp().as_second();
    assert!(
        (started + 7200..=jiff::Timestamp::now().as_second() + 7200).contains(&due_s),
        "due {due} is not two hours after the letter arrived ({before})"
    );
    // The cell shows the same instant as local wall time.
    let shown = due.strftime("%Y-%m-%d %H:%M:%S").to_string();
    assert!(
        dom.contains(&format!(">{shown}</time>")),
        "{shown} not shown"
    );

    // The quick clock is overdue, and its breach alert is listed.
    let quick = row(&dom, "overdue", "data-clock=\"letter.quick\"")
        .unwrap_or_else(|| panic!("letter.quick not in the overdue table:\n{dom}"));
    assert_eq!(attr(quick, "data-item"), item);
    assert!(attr(quick, "data-due-in-secs").parse::<i64>().unwrap() <= 0);
    let alert = row(&dom, "alerts", "data-kind=\"breach\"").expect("breach alert row");
    assert_eq!(attr(alert, "data-item"), item);
    assert_eq!(attr(alert, "data-clock"), "letter.quick");
    assert_eq!(attr(alert, "data-department"), "intake-desk");
    assert!(
        dom.contains("<tr data-clock=\"letter.slow\">"),
        "counts row"
    );

    // Filter by clock: only the quick clock remains; by another department: nothing.
    let dom_quick = browse(&chromium, &app.login_url("/board?clock=letter.quick"), None);
    assert!(row(&dom_quick, "overdue", "data-clock=\"letter.quick\"").is_some());
    assert!(
        !dom_quick.contains("data-clock=\"letter.slow\""),
        "{dom_quick}"
    );
    assert!(dom_quick.contains("id=\"upcoming-empty\""));
    let dom_other = browse(&chromium, &app.login_url("/board?department=hrss"), None);
    assert!(!dom_other.contains(&item), "{dom_other}");
    assert!(dom_other.contains("id=\"counts-empty\""));
    let dom_desk = browse(
        &chromium,
        &app.login_url("/board?department=intake-desk&clock=letter.slow"),
        None,
    );
    assert!(row(&dom_desk, "upcoming", "data-clock=\"letter.slow\"").is_some());
    assert!(
        !dom_desk.contains("data-clock=\"letter.quick\""),
        "{dom_desk}"
    );

    // No personal value anywhere: page, filtered pages, JSON.
    let (_, body) = app.http_get("/board.json");
    for page in [&dom, &dom_quick, &dom_desk, &body] {
        for value in PERSONAL {
            assert!(!page.contains(value), "{value} on the board");
        }
    }
}

/// Issue 20: an item routing cannot classify with confidence (here a tie between two
/// dictionaries) is listed under "Needs review" with its two candidates, for its lead, until
/// the intake desk acts on it with a status event; the list carries no personal data.
#[test]
fn needs_review_item_is_on_the_board_until_the_desk_acts() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    let dictionaries = app.dir.path().join("dictionaries");
    std::fs::create_dir(&dictionaries).unwrap();
    // One keyword each: the letter has 供暖 (livelihood) and 电话 (rights), a tie.
    for (category, word) in [
        ("livelihood", "供暖"),
        ("rights", "电话"),
        ("policy", "政策解读"),
        ("historical", "历史遗留"),
    ] {
        std::fs::write(
            dictionaries.join(format!("{category}.toml")),
            format!("category = \"{category}\"\n\n[keywords]\n\"{word}\" = 5\n"),
        )
        .unwrap();
    }
    std::fs::write(
        app.dir.path().join("rules.toml"),
        "[[rule]]\nid = \"default\"\nthen.lead = \"intake-desk\"\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&app.config).unwrap().replace(
        "[routing]\ndefault_lead = \"intake-desk\"\n",
        "[routing]\ndefault_lead = \"intake-desk\"\nrules_file = \"rules.toml\"\ndictionaries_dir = \"dictionaries\"\n",
    );
    assert!(text.contains("rules_file"), "the harness's [routing] moved");
    std::fs::write(&app.config, text).unwrap();
    app.append_config(&format!(
        "\n[sla]\nalerts_topic = \"{}\"\nstatus_topic = \"{}\"\nconsumer_group = \"{}\"\n",
        unique("it.alerts"),
        unique("it.status"),
        unique("it.group")
    ));
    app.start();
    let item = app.deliver_now(&letter_with_petitioner());
    let board = |query: &str| -> serde_json::Value {
        let (status, body) = app.http_get(&format!("/board.json{query}"));
        assert_eq!(status, 200, "{body}");
        for value in PERSONAL {
            assert!(!body.contains(value), "{value} on the board");
        }
        serde_json::from_str(&body).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let entry = loop {
        let v = board("");
        if let Some(e) = v["review"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["item_id"] == item.as_str())
        {
            assert_eq!(v["review_total"], 1, "{v}");
            break e.clone();
        }
        assert!(Instant::now() < deadline, "not listed for review: {v}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(entry["department"], "intake-desk");
    assert_eq!(entry["source"], "dictionary");
    assert_eq!(entry["confidence_percent"], 50);
    let cands: Vec<&str> = entry["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(cands, ["livelihood", "rights"], "{entry}");
    assert_eq!(board("?department=hrss")["review_total"], 0);
    let (_, html) = app.http_get("/board");
    assert!(
        html.contains(&format!(
            "data-item=\"{item}\" data-department=\"intake-desk\""
        )),
        "{html}"
    );

    // The desk takes it in hand (on its own status topic): it leaves the list.
    let p: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let event = serde_json::json!({"event_id": unique("desk"), "item_id": item,
        "event": "status_marked", "time": jiff::Timestamp::now().to_string(),
        "actor": {"department": "intake-desk"},
        "payload": {"category": "livelihood", "department": "intake-desk"}})
    .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(
        p.send(
            rdkafka::producer::FutureRecord::to(&format!("{}.status", app.topic))
                .key(item.as_str())
                .payload(&event),
            Duration::from_secs(10),
        ),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = board("");
        if v["review_total"] == 0 {
            assert!(v["review"].as_array().unwrap().is_empty(), "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still listed after the desk acted: {v}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
