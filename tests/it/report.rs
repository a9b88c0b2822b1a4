//! `petitiond report monthly` / `report key-cases`: the CLI on a small store, and the HTML it
//! writes opened in headless Chromium (charts present in the rendered DOM).
//!
//! `monthly_report_renders_in_chromium_with_its_charts` and
//! `key_cases_prints_csv_and_json` need `report::figures` (merged from its own branch); the
//! error-path tests do not.

use crate::capture::Captured;
use crate::helpers::{BIN, browse, chromium};
use petitiond::config::Config;
use petitiond::store::{SqliteStore, Store};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A config and a store holding `n` items received on 2026-03-02 (month 2026-03).
fn small_store(dir: &Path, n: usize) -> PathBuf {
    let cfg_path = dir.join("petitiond.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[daemon]\ndata_dir = \"{d}\"\n[store]\npath = \"{d}/store.db\"\n[kafka]\nbrokers = \"127.0.0.1:9\"\n\n[[departments]]\nid = \"desk\"\nname = \"D\"\ntopic = \"desk\"\n\n[routing]\ndefault_lead = \"desk\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&cfg_path).unwrap_or_else(|e| panic!("{e}"));
    let store = SqliteStore::open(&cfg.store.path, Duration::from_secs(5)).unwrap();
    let mut items: Vec<_> = (0..n).map(|i| crate::mock_faults::item(&cfg, i)).collect();
    // A letter titled with its writer's name and phone: on the key-case list (unresolved for
    // three months), where both must come out masked.
    items[0].envelope.petitioner.name = Some(petitiond::envelope::Personal::new("张三丰"));
    items[0].envelope.request.title = Some(petitiond::envelope::Personal::new(
        "张三丰关于拆迁补偿的信，电话13812345678",
    ));
    for r in store.record_items(&items).unwrap() {
        r.unwrap();
    }
    cfg_path
}

fn report(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["report"])
        .args(&args[..1])
        .arg("--config")
        .arg(config)
        .args(&args[1..])
        .output()
        .captured()
}

#[test]
fn monthly_report_renders_in_chromium_with_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_store(dir.path(), 5);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let html = out_dir.join("report.html");
    let out = report(
        &[
            "monthly",
            "--month",
            "2026-03",
            "--out",
            html.to_str().unwrap(),
        ],
        &config,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The files the office mails and archives, for the personal-data scan.
    crate::capture::file("report-html", &html);
    crate::capture::file("report-csv", &out_dir.join("report-2026-03.csv"));
    crate::capture::file(
        "report-key-cases-csv",
        &out_dir.join("key-cases-2026-03.csv"),
    );
    let csv = std::fs::read_to_string(out_dir.join("report-2026-03.csv")).unwrap();
    assert!(csv.contains("report,month,2026-03"), "{csv}");
    assert!(csv.contains("report,items,5"), "{csv}");
    let cases = std::fs::read_to_string(out_dir.join("key-cases-2026-03.csv")).unwrap();
    assert!(cases.contains("张**关于拆迁补偿的信"), "{cases}");
    let html_text = std::fs::read_to_string(&html).unwrap();
    for raw in ["张三丰", "13812345678"] {
        assert!(
            !cases.contains(raw) && !html_text.contains(raw),
            "{raw} unmasked"
        );
    }

    let Some(chromium) = chromium() else { return };
    let url = format!("file://{}", html.display());
    let dom = browse(&chromium, &url, None);
    for id in [
        "rates",
        "channels",
        "categories",
        "trend",
        "top-types",
        "repeats",
        "overdue",
        "key-cases",
    ] {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "section {id} missing"
        );
    }
    // Three charts, parsed by the browser as SVG (rects for the bars, a path for the line).
    assert_eq!(dom.matches("<svg").count(), 3, "{dom}");
    assert!(dom.contains("<rect"), "bars drawn");
    assert!(
        dom.contains("<polyline") || dom.contains("<path"),
        "trend line drawn"
    );
    assert!(dom.contains("12345 热线 (hotline)"));
}

#[test]
fn key_cases_prints_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_store(dir.path(), 2);
    let out = report(&["key-cases"], &config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("item_id,channel,category,"));
    let out = report(&["key-cases", "--format", "json"], &config);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.is_array());
}

#[test]
fn report_monthly_refuses_a_bad_month_and_a_missing_store_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_store(dir.path(), 1);
    let html = dir.path().join("r.html");
    let out = report(
        &[
            "monthly",
            "--month",
            "2026-13",
            "--out",
            html.to_str().unwrap(),
        ],
        &config,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`2026-13` is not a month: give it as YYYY-MM"),
        "{err}"
    );
    assert!(!html.exists());

    let out = report(&["monthly", "--out", dir.path().to_str().unwrap()], &config);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a directory"));

    std::fs::remove_file(dir.path().join("store.db")).unwrap();
    let out = report(&["key-cases"], &config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no store at"), "{err}");
}
