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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("routed 4 envelope(s); quarantined 1 input(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("routed → petitiond.dept.intake-desk"),
        "{stdout}"
    );
    assert!(stdout.contains("malformed_mime"), "{stdout}");
    // Personal fields are masked in what the demo prints.
    assert!(!stdout.contains("拖欠其工资"), "{stdout}");
    assert!(stdout.contains("kafka broker  127.0.0.1:"), "{stdout}");
}
