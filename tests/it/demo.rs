use crate::helpers::BIN;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// README's first command, on embedded defaults: no services needed.
#[test]
fn demo_routes_the_sample_letters_and_quarantines_the_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--exit-when-done", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    crate::capture::output("demo", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("routed 10 envelope(s); quarantined 2 input(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("routed → petitiond.dept.intake-desk"),
        "{stdout}"
    );
    assert!(stdout.contains("malformed_mime"), "{stdout}");
    // The hotline and portal simulators feed the demo too: routed items from both, the
    // simulator's bad record quarantined, and the upstream change delivered as an update.
    assert!(stdout.contains("\"channel\": \"hotline\""), "{stdout}");
    assert!(stdout.contains("\"channel\": \"portal\""), "{stdout}");
    assert!(stdout.contains("hotline requests.json"), "{stdout}");
    assert!(stdout.contains("no_id"), "{stdout}");
    assert!(
        stdout.contains("ce_type=cn.gov.petition.item.updated.v1"),
        "{stdout}"
    );
    // Personal fields are masked in what the demo prints.
    assert!(!stdout.contains("拖欠其工资"), "{stdout}");
    assert!(stdout.contains("kafka broker  127.0.0.1:"), "{stdout}");
}
