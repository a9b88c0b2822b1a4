use crate::helpers::BIN;
use petitiond::store::{Store, Summary};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn count(l: &[(String, u64)], k: &str) -> u64 {
    l.iter()
        .find(|(label, _)| label == k)
        .map_or(0, |(_, n)| *n)
}

/// README's first command, on embedded defaults (no broker, no network): the shipped
/// departments, rules, dictionaries and model route sample items of all three channels, and
/// the demo shows what the office sees — several lead departments, every category, assists, a
/// repeat petition, an incomplete item, quarantine, a clock stopped by a status event — ending
/// with a summary table. Regressing to a one-department config fails the lead count.
#[test]
fn demo_routes_all_channels_with_the_shipped_rules_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["demo", "--exit-when-done", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain stdout while waiting: the demo prints more than a pipe buffer holds.
    let stdout_pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout_pipe).unwrap());
    let deadline = Instant::now() + Duration::from_secs(150);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo did not finish:\n{}", reader.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed();
    let out = child.wait_with_output().unwrap();
    let stdout = reader.join().unwrap();
    crate::capture::write("demo-stdout", stdout.as_bytes());
    crate::capture::write("demo-stderr", &out.stderr);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("demo ran {:.1} s", elapsed.as_secs_f64());

    // From the store the demo leaves behind.
    let config = petitiond::config::Config::load(&dir.path().join("petitiond.toml")).unwrap();
    let store =
        petitiond::store::SqliteStore::open(&config.store.path, Duration::from_secs(5)).unwrap();
    let s: Summary = store.summary().unwrap();
    for c in ["hotline", "portal", "letter"] {
        assert!(count(&s.by_channel, c) >= 4, "channel {c}: {s:?}\n{stdout}");
    }
    let leads = s.by_lead.iter().filter(|(_, n)| *n > 0).count();
    assert!(
        leads >= 5,
        "only {leads} lead department(s): {s:?}\n{stdout}"
    );
    for c in ["livelihood", "rights", "policy", "historical"] {
        assert!(
            count(&s.by_category, c) > 0,
            "category {c}: {s:?}\n{stdout}"
        );
    }
    assert!(
        s.by_assist.iter().any(|(_, n)| *n > 0),
        "no assist: {s:?}\n{stdout}"
    );
    assert!(
        count(&s.by_flag, "repeat_petition") >= 1,
        "no repeat: {s:?}\n{stdout}"
    );
    assert!(
        count(&s.by_flag, "needs_supplement") >= 1,
        "no incomplete item: {s:?}\n{stdout}"
    );
    let reasons: Vec<&str> = s.quarantined.iter().map(|q| q.1.as_str()).collect();
    assert!(
        reasons.contains(&"malformed_mime") && reasons.contains(&"no_id"),
        "{reasons:?}\n{stdout}"
    );
    let stopped: u64 = s.clocks.iter().map(|c| c.stopped).sum();
    let breached: u64 = s.clocks.iter().map(|c| c.breached).sum();
    let warned: u64 = s.clocks.iter().map(|c| c.warned).sum();
    let open: u64 = s.clocks.iter().map(|c| c.open).sum();
    assert!(
        stopped >= 2 && breached >= 1 && warned >= 1 && open >= 1,
        "{s:?}\n{stdout}"
    );

    // What the user sees: where the board is, the status events, the summary table.
    assert!(stdout.contains("kafka broker  127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains("SLA board     http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("reports `registered`"), "{stdout}");
    assert!(stdout.contains("reports `viewed`"), "{stdout}");
    assert!(
        stdout.contains("cn.gov.petition.item.updated.v1"),
        "the upstream change reaches the departments as an update: {stdout}"
    );
    assert!(stdout.contains("==== summary: "), "{stdout}");
    let summary = &stdout[stdout.find("==== summary: ").unwrap()..];
    for heading in [
        "channel",
        "department",
        "category",
        "SLA clock",
        "quarantined (source, reason)",
    ] {
        assert!(summary.contains(heading), "{heading}: {summary}");
    }
    let printed_leads: usize = summary
        .lines()
        .find_map(|l| l.strip_prefix("lead departments: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert_eq!(printed_leads, leads, "{summary}");
    for id in ["hrss", "housing", "health", "civil-affairs", "policy-desk"] {
        assert!(
            summary.lines().any(|l| l.starts_with(&format!("{id} "))),
            "{id}: {summary}"
        );
    }
    assert!(summary.contains("malformed_mime"), "{summary}");
    assert!(summary.contains("repeat_petition"), "{summary}");
    // Personal fields and texts are masked in what the demo prints.
    assert!(!stdout.contains("13957120418"), "{stdout}");
    assert!(!stdout.contains("拖欠其工资"), "{stdout}");
    assert!(!stdout.contains("包工头"), "{stdout}");
}
