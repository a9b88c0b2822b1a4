use crate::capture::Captured;
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
        .captured();
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
        .captured();
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
        .captured()
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

/// Changed (issue 14): 2027 now has a provisional calendar, so the unloaded year of this
/// test is 2101, beyond the provisional range.
#[test]
fn sla_due_fails_clearly_on_an_unknown_clock_or_an_unloaded_year() {
    let out = sla_due("no.such.clock", "2026-03-02T01:00:00Z");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown clock `no.such.clock`"));
    let out = sla_due("statutory.accept", "2100-12-20T10:00:00+08:00");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2101"), "the missing year is named: {err}");
}

/// Issue 14's acceptance: a 15-day clock started on 2026-12-20 is due on the first working
/// day of 2027 by the provisional calendar, and says so, in words and in JSON.
#[test]
fn sla_due_into_a_year_without_an_official_calendar_is_provisional() {
    let out = sla_due("statutory.accept", "2026-12-20T10:00:00+08:00");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2027-01-04T17:30:00+08:00 (provisional: 2027 has no official calendar)\n"
    );
    let out = Command::new(BIN)
        .args([
            "sla",
            "due",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/petitiond.toml"),
            "--clock",
            "statutory.accept",
            "--start",
            "2026-12-20T10:00:00+08:00",
            "--json",
        ])
        .output()
        .captured();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["due_at"], "2027-01-04T17:30:00+08:00");
    assert_eq!(v["provisional"], true);
    assert_eq!(v["provisional_year"], 2027);
    // A due time on the official 2026 file is not marked, in either form.
    let out = sla_due("statutory.accept", "2026-09-16T10:00:00+08:00");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2026-10-08T17:30:00+08:00\n"
    );
}

fn calendar_show(year: &str) -> std::process::Output {
    Command::new(BIN)
        .args([
            "calendar",
            "show",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/petitiond.toml"),
            year,
        ])
        .output()
        .captured()
}

#[test]
fn calendar_show_prints_every_day_and_whether_the_year_is_official() {
    let out = calendar_show("2026");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("2026: official ("), "{text}");
    assert!(
        text.contains("国务院办公厅关于2026年部分节假日安排的通知"),
        "{text}"
    );
    assert!(text.contains("working days: 248"), "{text}");
    assert!(
        text.contains("2026-02-14\tSat\tmakeup_workday\t春节"),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("2026-")).count(), 365);

    let out = calendar_show("2027");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("2027: provisional"), "{text}");
    assert!(text.contains("2027-02-06\tSat\tholiday\t春节"), "{text}");
    assert!(
        text.contains("2027-02-09\tTue\tholiday\t春节（补假）"),
        "{text}"
    );
    assert!(
        !text.contains("makeup_workday"),
        "no 调休 in a provisional year"
    );

    let out = calendar_show("2101");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2101 has no working-day calendar"));
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
        .captured()
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
        .captured();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("would be quarantined: no_id"));
}

fn minimal(dir: &std::path::Path, admin: &str) -> std::path::PathBuf {
    let path = dir.join("p.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\ndata_dir = \"data\"\n\n[admin]\n{admin}\n\n[kafka]\nbrokers = \"127.0.0.1:9\"\n\n[[departments]]\nid = \"a\"\nname = \"A\"\ntopic = \"t\"\n\n[routing]\ndefault_lead = \"a\"\n"
        ),
    )
    .unwrap();
    path
}

/// An admin listener on every interface without a token used to pass `check` and start: the
/// API was open to the network. `check` (the unit's ExecStartPre) and `run` now refuse it,
/// naming the line; a token from a systemd credential is accepted.
#[test]
fn check_refuses_a_non_loopback_admin_listener_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let open = minimal(dir.path(), "listen = \"0.0.0.0:9464\"");
    for cmd in ["check", "run"] {
        let out = Command::new(BIN)
            .args([cmd, "--config"])
            .arg(&open)
            .output()
            .captured();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("p.toml:5: admin.listen: `0.0.0.0:9464` is not a loopback address"),
            "{cmd}: {err}"
        );
    }
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(
        creds.join("petitiond-admin"),
        "0123456789abcdef0123456789\n",
    )
    .unwrap();
    let with_token = minimal(
        dir.path(),
        "listen = \"0.0.0.0:9464\"\ntoken = { credential = \"petitiond-admin\" }",
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&with_token)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .captured();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A data directory others could read (0755, the usual umask's mode) was used as it was:
/// envelopes, scans and quarantined mail readable by every local user. `check` and `run`
/// now refuse it with the path and the fix; the override flag accepts it.
#[test]
fn check_and_run_refuse_a_data_dir_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = minimal(dir.path(), "enabled = false");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for cmd in ["check", "run"] {
        let out = Command::new(BIN)
            .args([cmd, "--config"])
            .arg(&config)
            .output()
            .captured();
        assert!(!out.status.success(), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{} has mode 0755", data.display())),
            "{cmd}: {err}"
        );
        assert!(
            err.contains(&format!("chmod 700 {}", data.display())),
            "{cmd}: {err}"
        );
        assert!(err.contains("--allow-shared-data-dir"), "{cmd}: {err}");
    }
    let out = Command::new(BIN)
        .args(["check", "--allow-shared-data-dir", "--config"])
        .arg(&config)
        .output()
        .captured();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .captured();
    assert!(out.status.success());
}
