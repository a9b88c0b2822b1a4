//! Crafted letters through the real Maildir channel and `petitiond explain`: one bad letter
//! never blocks the letters after it (issue 13, "item-level failures never stop a channel").
//! The IMAP channel's counterpart is in `imap.rs`.

use crate::helpers::*;
use std::path::Path;
use std::time::Duration;

/// A golden mail with CRLF line endings, as an IMAP server hands it out (and a scanner's MDA
/// may write it), so its id is the same through both channels.
fn fixture(name: &str) -> Vec<u8> {
    let lf = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/eml")
            .join(name),
    )
    .unwrap();
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 40);
    for (i, &b) in lf.iter().enumerate() {
        if b == b'\n' && (i == 0 || lf[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The crafted letters of these tests, each with what must become of it: `None` = recorded
/// (it reaches Kafka), `Some(reason)` = quarantined.
pub fn crafted_letters() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    vec![
        // The example: before the fix, slicing `&rest[..2]` inside '中' panicked the
        // normalizer and the channel retried this letter forever. Not an encoded word (no
        // B/Q), so it is a letter whose title is the text as written.
        (
            "gbk-cjk-subject",
            fixture("21-crafted-cjk-after-charset.eml"),
            None,
        ),
        (
            "truncated-words",
            fixture("22-crafted-truncated-words.eml"),
            Some("bad_charset"),
        ),
        (
            "cjk-charset-label",
            "From: scanner@xfj.example.gov.cn\r\nDate: Mon, 2 Mar 2026 09:30:00 +0800\r\nSubject: =?中文?B?5Lit5paH?=\r\n\r\n来信。\r\n"
                .as_bytes()
                .to_vec(),
            Some("bad_charset"),
        ),
        (
            "garbage",
            b"\x1f\x8b\xff\xfe=?gbk?\xe4\xb8\xad?= interrupted scan".to_vec(),
            Some("malformed_mime"),
        ),
    ]
}

/// The `quarantine list` lines (tab-separated: id, at, source, reference, reason, ...).
pub fn quarantine_lines(app: &TestApp) -> Vec<String> {
    let out = app.petitiond(&["quarantine", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Through the real Maildir channel: crafted letters between good ones; the crafted ones that
/// cannot be items land in quarantine with their reason and original bytes, every other
/// letter (the good ones and the `=?gbk?中文?=` one) reaches Kafka once, and each file moves
/// to cur/.
#[test]
fn crafted_letters_in_the_maildir_are_quarantined_and_the_letters_after_them_flow() {
    let Some(brokers) = broker() else { return };
    let mut app = TestApp::new(&brokers, "");
    app.start();
    let mut expected = Vec::new();
    let mut quarantined = Vec::new();
    for (i, (name, raw, outcome)) in crafted_letters().into_iter().enumerate() {
        expected.push(app.deliver(&letter(500 + i)));
        let id = app.deliver(&raw);
        match outcome {
            None => expected.push(id),
            Some(reason) => quarantined.push((name, reason, raw)),
        }
    }
    expected.push(app.deliver(&letter(599)));
    let records = consume(
        &brokers,
        &app.topic,
        expected.len(),
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    assert_exactly_once(&records, &expected);

    let lines = quarantine_lines(&app);
    assert_eq!(lines.len(), quarantined.len(), "{lines:#?}");
    for (name, reason, raw) in &quarantined {
        let line = lines
            .iter()
            .find(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                f[4] == *reason && f[6] == petitiond::channels::mailbox::parse::upstream_id(raw)
            })
            .unwrap_or_else(|| panic!("{name} not quarantined as {reason}: {lines:#?}"));
        assert!(line.contains("\tmailbox\t"), "{line}");
    }
    let (_, metrics) = app.http_get("/metrics");
    assert!(
        metrics
            .contains("petitiond_quarantined_total{source=\"mailbox\",reason=\"bad_charset\"} 2"),
        "{metrics}"
    );
    // Every file was committed (new/ is empty), the crafted ones included.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(app.maildir.join("new")).unwrap().count() > 0 {
        assert!(std::time::Instant::now() < deadline, "files left in new/");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(app.terminate(Duration::from_secs(30)), Some(0));
    let logs = app.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(!logs.contains("中文"), "no mail text in the log");
}

/// `petitiond explain` on crafted mail exits cleanly: 0 (an item) or 1 (would be quarantined,
/// with the reason), never a panic. Before the parse fix, the `=?gbk?中文?=` letter exited
/// 101 with std's panic message quoting the subject.
#[test]
fn explain_on_crafted_mail_exits_cleanly() {
    let app = TestApp::new("127.0.0.1:9", "");
    let mut cases = crafted_letters();
    for n in [13, 14, 15, 16, 17, 18, 19] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eml");
        let name = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|f| f.starts_with(&format!("{n}-")) && f.ends_with(".eml"))
            .unwrap();
        cases.push(("fixture", fixture(&name), Some("broken")));
    }
    for header in [
        "Subject: =?gbk?中?=",
        "From: =?utf-8?B?5Lit <a@b.cn>",
        "Subject: =?utf-8*中?Q?=E4=B8?=",
        "Subject: =?",
        "Subject: =?big5?é?abc?=",
    ] {
        let raw = format!(
            "From: a@b.cn\r\nDate: Mon, 2 Mar 2026 09:15:00 +0800\r\n{header}\r\n\r\nx\r\n"
        );
        cases.push(("header", raw.into_bytes(), None));
    }
    for (i, (name, raw, outcome)) in cases.iter().enumerate() {
        let file = app.dir.path().join(format!("crafted-{i}.eml"));
        std::fs::write(&file, raw).unwrap();
        let out = app.petitiond(&["explain", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "{name}: exit {code:?}\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        if code == Some(1) {
            assert!(stderr.contains("would be quarantined"), "{name}: {stderr}");
        }
        if let Some(reason) = outcome
            && *reason != "broken"
        {
            assert!(stderr.contains(reason), "{name}: {stderr}");
        }
        if outcome.is_none() && *name != "header" {
            assert_eq!(code, Some(0), "{name}: {stderr}");
        }
    }
}
