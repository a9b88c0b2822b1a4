use crate::helpers::BIN;
use std::process::Command;

#[test]
fn check_accepts_the_shipped_example() {
    let out = Command::new(BIN)
        .args([
            "check",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/petitiond.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
}

#[test]
fn check_names_a_misspelled_key_and_a_bad_value_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[daemon]\nshutdown_deadline_secs = 5\nlog_formt = \"json\"\n\n[kafka]\nbrokers = \"127.0.0.1:9092\"\npartitions = -1\n\n[[departments]]\nid = \"a\"\nname = \"A\"\ntopic = \"t\"\n\n[routing]\ndefault_lead = \"a\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3: daemon.log_formt: unknown field `log_formt`"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:7: kafka.partitions: must be at least 1"),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");
}

fn sla_due(clock: &str, start: &str) -> std::process::Output {
    Command::new(BIN)
        .args([
            "sla",
            "due",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/petitiond.toml"),
        ])
        .args(["--clock", clock, "--start", start])
        .output()
        .unwrap()
}

#[test]
fn sla_due_answers_with_one_rfc3339_line() {
    let cases = [
        // Arrived after close on the eve of the National Day holiday: next working day 10-08.
        (
            "letter.register",
            "2026-09-30T18:00:00+08:00",
            "2026-10-08T17:30:00+08:00",
        ),
        // Exactly at close is not before close.
        (
            "letter.register",
            "2026-03-02T17:30:00+08:00",
            "2026-03-03T17:30:00+08:00",
        ),
        // Another offset: 20:00 -05:00 is 09:00 next morning in Shanghai.
        (
            "letter.register",
            "2026-03-02T20:00:00-05:00",
            "2026-03-03T17:30:00+08:00",
        ),
        (
            "rights.feedback",
            "2026-02-12T10:00:00+08:00",
            "2026-02-26T17:30:00+08:00",
        ),
        (
            "hotline.view",
            "2026-03-02T01:00:00Z",
            "2026-03-02T09:30:00+08:00",
        ),
    ];
    for (clock, start, want) in cases {
        let out = sla_due(clock, start);
        assert!(
            out.status.success(),
            "{clock} {start}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{want}\n"),
            "{clock} {start}"
        );
    }
}

#[test]
fn sla_due_fails_clearly_on_an_unknown_clock_or_an_unloaded_year() {
    let out = sla_due("no.such.clock", "2026-03-02T01:00:00Z");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown clock `no.such.clock`"));
    let out = sla_due("statutory.accept", "2026-12-20T10:00:00+08:00");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2027"), "the missing year is named: {err}");
}

fn explain(config: &std::path::Path, channel: &str, record: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["explain", "--config"])
        .arg(config)
        .args(["--channel", channel])
        .arg(format!(
            "{}/tests/fixtures/http/{record}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .output()
        .unwrap()
}

#[test]
fn explain_reads_hotline_and_portal_records_masked() {
    let shipped = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/petitiond.toml"
    ));
    // Hotline: the built-in Open311 mapping, even with the section disabled.
    let out = explain(shipped, "hotline", "hotline-order.json");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json_end = stdout.find("\n}\n").unwrap() + 2;
    let env: serde_json::Value = serde_json::from_str(&stdout[..json_end]).unwrap();
    assert_eq!(env["channel"], "hotline");
    assert_eq!(env["upstream"]["id"], "638201");
    assert_eq!(env["upstream"]["service_code"], "LS01");
    assert_eq!(env["received_at"], "2026-11-27T08:05:00Z");
    assert_eq!(env["routing"]["lead"], "hrss");
    assert!(stdout.contains("rule wage-arrears"), "{stdout}");
    for raw in [
        "13800138000",
        "138 0013 8000",
        "11010519491231002X",
        "建国",
        "拖欠工资三个月",
    ] {
        assert!(!stdout.contains(raw), "`{raw}` printed unmasked:\n{stdout}");
    }
    // Portal: needs its mapping; the shipped config has the section disabled → clear error.
    let out = explain(shipped, "portal", "portal-petition.json");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no enabled [channels.portal] section"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the section enabled (its secret from any set variable), the mapping reads it.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(shipped)
        .unwrap()
        .replacen(
            "[channels.portal]\nenabled = false",
            "[channels.portal]\nenabled = true",
            1,
        )
        .replace("PETITIOND_PORTAL_SECRET", "PATH");
    let cfg = dir.path().join("petitiond.toml");
    std::fs::write(&cfg, text).unwrap();
    for f in ["rules.toml", "dictionaries", "model"] {
        let from = shipped.parent().unwrap().join(f);
        let to = dir.path().join(f);
        if from.is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            for e in std::fs::read_dir(&from).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        } else {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    let out = explain(&cfg, "portal", "portal-petition.json");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"id\": \"WS20261127000315\""), "{stdout}");
    assert!(
        stdout.contains("\"received_at\": \"2026-11-27T12:15:00Z\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"lead\": \"housing\""), "{stdout}");
    assert!(!stdout.contains("李娜") && !stdout.contains("139-0000-1111"));
    // A record that is not an item fails clearly, naming the reason.
    std::fs::write(dir.path().join("bad.json"), r#"{"title":"no id"}"#).unwrap();
    let out = Command::new(BIN)
        .args(["explain", "--config"])
        .arg(&cfg)
        .args(["--channel", "portal"])
        .arg(dir.path().join("bad.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("would be quarantined: no_id"));
}
