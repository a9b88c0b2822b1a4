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
