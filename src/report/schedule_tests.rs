use super::*;
use crate::config::Config;
use crate::report::KeyReason;
use crate::store::SqliteStore;

fn sh() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap()
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cron(s: &str) -> cron::Schedule {
    s.parse().unwrap()
}

#[test]
fn monthly_default_fires_at_eight_on_the_first_in_shanghai() {
    let s = cron(super::super::config::DEFAULT_MONTHLY_CRON);
    // 2026-11-01 08:00 +08:00 is 00:00 UTC.
    assert_eq!(
        next_after(&s, t("2026-10-15T00:00:00Z"), &sh()),
        Some(t("2026-11-01T00:00:00Z"))
    );
    // Strictly after: at the instant, the next one is a month later.
    assert_eq!(
        next_after(&s, t("2026-11-01T00:00:00Z"), &sh()),
        Some(t("2026-12-01T00:00:00Z"))
    );
    // 2026-10-31T23:30Z is already 07:30 on the 1st in Shanghai.
    assert_eq!(
        next_after(&s, t("2026-10-31T23:30:00Z"), &sh()),
        Some(t("2026-11-01T00:00:00Z"))
    );
    assert_eq!(
        last_at_or_before(&s, t("2026-11-01T00:00:00Z"), &sh()),
        Some(t("2026-11-01T00:00:00Z"))
    );
    assert_eq!(
        last_at_or_before(&s, t("2026-10-31T23:59:59Z"), &sh()),
        Some(t("2026-10-01T00:00:00Z"))
    );
}

#[test]
fn weekly_default_fires_monday_nine_in_shanghai() {
    let s = cron(super::super::config::DEFAULT_KEY_CASE_CRON);
    // 2026-12-07 is a Monday; 09:00 +08:00 is 01:00 UTC.
    assert_eq!(
        next_after(&s, t("2026-12-06T12:00:00Z"), &sh()),
        Some(t("2026-12-07T01:00:00Z"))
    );
    // Sunday 2026-12-06 at 18:00 UTC is Monday 02:00 in Shanghai: still before 09:00.
    assert_eq!(
        next_after(&s, t("2026-12-06T18:00:00Z"), &sh()),
        Some(t("2026-12-07T01:00:00Z"))
    );
}

#[test]
fn previous_month_is_taken_in_the_time_zone() {
    // 2026-10-31T20:00Z is already November 1st in Shanghai.
    assert_eq!(previous_month(t("2026-10-31T20:00:00Z"), &sh()), "2026-10");
    assert_eq!(previous_month(t("2026-10-31T12:00:00Z"), &sh()), "2026-09");
    assert_eq!(previous_month(t("2026-01-01T00:00:00Z"), &sh()), "2025-12");
}

#[test]
fn parse_month_accepts_yyyy_mm_only() {
    assert_eq!(parse_month("2026-10").unwrap(), "2026-10");
    for bad in ["2026-13", "2026-1", "26-10", "2026/10", "", "2026-10-01"] {
        assert!(parse_month(bad).is_err(), "{bad}");
    }
}

fn config(dir: &Path, recipients: &str) -> Arc<Config> {
    let text = format!(
        r#"
[daemon]
data_dir = "{d}"
[store]
path = "{d}/store.db"
[kafka]
brokers = "127.0.0.1:9092"
[[departments]]
id = "intake-desk"
name = "接待科"
topic = "t.intake"
[[departments]]
id = "land"
name = "自然资源局"
topic = "t.land"
alert_emails = ["land@example.gov.cn"]
[routing]
default_lead = "intake-desk"
[alerts.email]
enabled = true
smtp_host = "127.0.0.1"
from = "petitiond@example.gov.cn"
tls = "none"
[reports]
recipients = [{recipients}]
"#,
        d = dir.display()
    );
    Arc::new(Config::parse(&text, "t.toml", dir).unwrap_or_else(|e| panic!("{e}")))
}

fn sample_monthly(
    _: &dyn Store,
    _: &SlaConfig,
    month: &str,
    _: Timestamp,
) -> anyhow::Result<MonthlyReport> {
    let mut r = crate::report::render::tests::sample();
    r.month = month.to_string();
    Ok(r)
}

fn sample_key_cases(_: &dyn Store, _: &SlaConfig, _: Timestamp) -> anyhow::Result<Vec<KeyCase>> {
    let mut k = crate::report::render::tests::sample().key_cases;
    let mut other = k[0].clone();
    other.item_id = "it-8".into();
    other.department = "intake-desk".into();
    other.reasons = vec![KeyReason::Unresolved3Months];
    k.push(other);
    Ok(k)
}

fn failing_monthly(
    _: &dyn Store,
    _: &SlaConfig,
    _: &str,
    _: Timestamp,
) -> anyhow::Result<MonthlyReport> {
    anyhow::bail!("figures unavailable")
}

fn scheduler(dir: &Path) -> Scheduler {
    let cfg = config(dir, "\"office@example.gov.cn\"");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&cfg.store.path, Duration::from_secs(1)).unwrap());
    Scheduler {
        inputs: Arc::new(ReportInputs::from_config(&cfg)),
        store,
        relay_wake: Arc::new(Notify::new()),
        monthly: sample_monthly,
        key_cases: sample_key_cases,
        clock: petitiond_core::sla::time::system(),
    }
}

/// The run loop on paused time: it catches up at start, then wakes for the next instant
/// read from the injected clock (the Monday 09:00 reminder a minute away) — and a
/// wall-clock step past an instant is followed within [`MAX_SLEEP`].
#[tokio::test(start_paused = true)]
async fn the_run_loop_wakes_on_the_injected_clock_and_follows_a_wall_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = scheduler(dir.path());
    // Monday 2026-11-09 08:59 Shanghai.
    let clock = crate::sla::engine::PausedClock::starting_at(t("2026-11-09T00:59:00Z"));
    s.clock = clock.clone();
    let store = s.store.clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(s.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(store.report_ran("monthly", "2026-10").unwrap(), "caught up");
    assert!(
        !store
            .report_ran("key_case_reminder", "2026-11-09T09:00")
            .unwrap()
    );
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(
        store
            .report_ran("key_case_reminder", "2026-11-09T09:00")
            .unwrap(),
        "run at 09:00 on the injected clock"
    );
    // The next instant is a week away; the wall clock steps past it.
    clock.step(jiff::SignedDuration::from_hours(7 * 24));
    tokio::time::sleep(MAX_SLEEP + Duration::from_secs(1)).await;
    assert!(
        store
            .report_ran("key_case_reminder", "2026-11-16T09:00")
            .unwrap(),
        "a wall-clock step is followed within MAX_SLEEP"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[test]
fn a_daemon_down_at_eight_on_the_first_writes_the_report_when_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(dir.path());
    // Started on 2026-11-03 (a Tuesday) at 10:00 Shanghai: the 1st's run is missing.
    let now = t("2026-11-03T02:00:00Z");
    let next = s.step(now).unwrap();
    assert!(s.store.report_ran("monthly", "2026-10").unwrap());
    // The Monday 2026-11-02 09:00 reminder is caught up too.
    assert!(
        s.store
            .report_ran("key_case_reminder", "2026-11-02T09:00")
            .unwrap()
    );
    let out = dir.path().join("reports");
    for f in [
        "report-2026-10.html",
        "report-2026-10.csv",
        "key-cases-2026-10.csv",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // Next: Monday 2026-11-09 09:00 Shanghai.
    assert_eq!(next, t("2026-11-09T01:00:00Z"));

    let mails = s.store.pending_mail(10).unwrap();
    let ids: Vec<&str> = mails.iter().map(|m| m.alert_id.as_str()).collect();
    assert_eq!(
        ids.iter()
            .filter(|i| i.starts_with("report:monthly:2026-10"))
            .count(),
        1,
        "{ids:?}"
    );
    // Only `land` has alert e-mails: one reminder mail, for it.
    assert!(
        ids.contains(&"report:key_cases:2026-11-02T09:00:land"),
        "{ids:?}"
    );
    assert_eq!(ids.len(), 2, "{ids:?}");
    let monthly = mails
        .iter()
        .find(|m| m.alert_id.starts_with("report:monthly"))
        .unwrap();
    assert!(monthly.body.contains("report-2026-10.html"));
    assert!(monthly.body.contains("未达标 (not met)"));
    let reminder = mails
        .iter()
        .find(|m| m.alert_id.ends_with(":land"))
        .unwrap();
    assert!(reminder.body.contains("it-7") && reminder.body.contains("2026-12-01 18:00"));

    let outbox = s.store.pending_outbox(10).unwrap();
    let monthly_rec = outbox
        .iter()
        .find(|o| o.headers.iter().any(|h| h.1 == TYPE_MONTHLY))
        .unwrap();
    assert_eq!(monthly_rec.ce_id, ce_id(TYPE_MONTHLY, "2026-10"));
    assert_eq!(monthly_rec.topic, s.inputs.sla.alerts_topic);
    let p: serde_json::Value = serde_json::from_slice(&monthly_rec.payload).unwrap();
    assert_eq!(p["month"], "2026-10");
    assert_eq!(p["on_time"]["met"], false);
    // One reminder record per department with key cases (both, mail or not).
    assert_eq!(
        outbox
            .iter()
            .filter(|o| o.headers.iter().any(|h| h.1 == TYPE_KEY_CASES))
            .count(),
        2
    );
    // Every record matches the published schema.
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schema/report-event.v1.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for o in &outbox {
        let p: serde_json::Value = serde_json::from_slice(&o.payload).unwrap();
        assert!(validator.is_valid(&p), "{p}");
    }
    let mut bad = p.clone();
    bad["on_time"]["value"] = serde_json::json!(1.5);
    assert!(!validator.is_valid(&bad), "the schema checks something");
}

#[test]
fn a_restart_does_not_send_a_report_twice() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(dir.path());
    s.step(t("2026-11-03T02:00:00Z"));
    let (mails, records) = (
        s.store.pending_mail(100).unwrap().len(),
        s.store.pending_outbox(100).unwrap().len(),
    );
    // The same step again (a restart an hour later): nothing new.
    s.step(t("2026-11-03T03:00:00Z"));
    assert_eq!(s.store.pending_mail(100).unwrap().len(), mails);
    assert_eq!(s.store.pending_outbox(100).unwrap().len(), records);
    // And the recorded run refuses a second queueing outright.
    assert!(
        !s.store
            .record_report_run("monthly", "2026-10", &[], &[])
            .unwrap()
    );
}

#[test]
fn the_next_month_runs_at_its_instant_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let s = scheduler(dir.path());
    s.step(t("2026-11-03T02:00:00Z"));
    // 07:59:59 Shanghai on December 1st: November's report is not due yet.
    s.step(t("2026-11-30T23:59:59Z"));
    assert!(!s.store.report_ran("monthly", "2026-11").unwrap());
    s.step(t("2026-12-01T00:00:00Z"));
    assert!(s.store.report_ran("monthly", "2026-11").unwrap());
}

#[test]
fn a_failed_run_is_not_recorded_and_retried_soon() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = scheduler(dir.path());
    s.monthly = failing_monthly;
    let now = t("2026-11-03T02:00:00Z");
    let next = s.step(now).unwrap();
    assert!(!s.store.report_ran("monthly", "2026-10").unwrap());
    assert_eq!(next, now + jiff::SignedDuration::try_from(RETRY).unwrap());
    // The reminder is independent of the monthly failure.
    assert!(
        s.store
            .report_ran("key_case_reminder", "2026-11-02T09:00")
            .unwrap()
    );
    s.monthly = sample_monthly;
    s.step(next);
    assert!(s.store.report_ran("monthly", "2026-10").unwrap());
}

#[test]
fn without_a_reports_section_the_step_does_nothing_and_never_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = scheduler(dir.path());
    let mut inputs = (*s.inputs).clone();
    inputs.reports = None;
    s.inputs = Arc::new(inputs);
    assert_eq!(s.step(t("2026-11-03T02:00:00Z")), None);
    assert!(!s.store.report_ran("monthly", "2026-10").unwrap());
    assert!(s.store.pending_outbox(10).unwrap().is_empty());
}

#[test]
fn ce_ids_are_derived_from_the_period() {
    assert_eq!(
        ce_id(TYPE_MONTHLY, "2026-10"),
        ce_id(TYPE_MONTHLY, "2026-10")
    );
    assert_ne!(
        ce_id(TYPE_MONTHLY, "2026-10"),
        ce_id(TYPE_MONTHLY, "2026-11")
    );
    assert_ne!(
        ce_id(TYPE_MONTHLY, "2026-10"),
        ce_id(TYPE_KEY_CASES, "2026-10")
    );
}
