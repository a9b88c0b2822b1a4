//! Runs the reports on the `[reports]` cron expressions (in `sla.time_zone`): the monthly
//! report for the previous month, and the weekly key-case reminder to each responsible
//! department.
//!
//! A run is recorded in the store (`report_runs`: kind and period) in the same transaction
//! that queues its mails (the alert mail outbox, sent by `alerts::mail::Mailer`) and its
//! CloudEvents (the store outbox, sent by the relay). So a run is queued once: a restart does
//! not send it again, and the record's `ce_id` is derived from the period as well, for the
//! consumers. Catch-up: at each step, the most recent scheduled instant of each job that is
//! not recorded runs now — a daemon that was down at 08:00 on the 1st writes the report when
//! it starts. Only the most recent instant is caught up, never a backlog. A failed run (the
//! figures or a file write failed) is not recorded and is tried again after [`RETRY`].
//!
//! The monthly mail names the files and gives the three rates; it does not attach the HTML
//! (the mailer sends plain text; the files stay on the server, readable by the operators'
//! group). Files are written before the run is recorded: a crash in between writes them again.
//!
//! The records' payloads are published as `schema/report-event.v1.json`.
//!
//! Time is a parameter: [`Scheduler::step`] takes `now` and returns when to wake next, so the
//! tests drive it without waiting; [`Scheduler::run`] reads `now` from the injected wall clock
//! (`Scheduler::clock`) and sleeps on tokio at most [`MAX_SLEEP`] at a time, so a wall-clock
//! step is followed within it and the run loop is tested on paused time. It does not compute figures (`figures`) nor render
//! (`render`).

use super::config::ReportsConfig;
use super::render::{self, percent, rate_state};
use super::{KeyCase, MonthlyReport};
use crate::kafka::wire::{CONTENT_TYPE, SPEC_VERSION};
use crate::sla::config::SlaConfig;
use crate::store::{NewMail, NewOutbox, Store};
use anyhow::Context as _;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use petitiond_core::routing::Department;
use petitiond_core::sla::time::SharedClock;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// CloudEvents type of the monthly report's announcement.
pub const TYPE_MONTHLY: &str = "cn.gov.petition.report.monthly.v1";
/// CloudEvents type of a department's weekly key-case reminder.
pub const TYPE_KEY_CASES: &str = "cn.gov.petition.report.key_cases.v1";
/// A failed run is tried again after this long.
pub const RETRY: Duration = Duration::from_secs(600);

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Monthly,
    KeyCaseReminder,
}

impl Job {
    pub fn kind(self) -> &'static str {
        match self {
            Job::Monthly => "monthly",
            Job::KeyCaseReminder => "key_case_reminder",
        }
    }
}

/// A job due now: its scheduled instant and the period it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub job: Job,
    pub scheduled: Timestamp,
    /// `YYYY-MM` (the month before the scheduled instant) for the monthly report; the
    /// scheduled local time `YYYY-MM-DDTHH:MM` for the reminder.
    pub period: String,
}

fn to_wall(t: Timestamp, tz: &TimeZone) -> Option<chrono::DateTime<chrono::Utc>> {
    let d = t.to_zoned(tz.clone()).datetime();
    chrono::NaiveDate::from_ymd_opt(d.year().into(), d.month() as u32, d.day() as u32)?
        .and_hms_opt(d.hour() as u32, d.minute() as u32, d.second() as u32)
        .map(|n| n.and_utc())
}

fn from_wall(w: chrono::DateTime<chrono::Utc>, tz: &TimeZone) -> Option<Timestamp> {
    use chrono::{Datelike as _, Timelike as _};
    let d = jiff::civil::DateTime::new(
        i16::try_from(w.year()).ok()?,
        w.month() as i8,
        w.day() as i8,
        w.hour() as i8,
        w.minute() as i8,
        w.second() as i8,
        0,
    )
    .ok()?;
    d.to_zoned(tz.clone()).ok().map(|z| z.timestamp())
}

/// The schedule's first instant strictly after `t`, reading the expression as wall-clock time
/// in `tz` (the `cron` crate works on chrono; a wall time skipped by a DST change resolves
/// forward, as jiff's `compatible` does).
pub fn next_after(s: &cron::Schedule, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    s.after(&to_wall(t, tz)?)
        .take(1000)
        .filter_map(|w| from_wall(w, tz))
        .find(|n| *n > t)
}

/// The schedule's most recent instant at or before `t`.
pub fn last_at_or_before(s: &cron::Schedule, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let start = to_wall(t, tz)? + chrono::Duration::seconds(1);
    s.after(&start)
        .rev()
        .take(1000)
        .filter_map(|w| from_wall(w, tz))
        .find(|p| *p <= t)
}

/// The month before the one `t` falls in (in `tz`), `YYYY-MM`.
pub fn previous_month(t: Timestamp, tz: &TimeZone) -> String {
    let d = t.to_zoned(tz.clone()).date().first_of_month();
    let p = d.yesterday().unwrap_or(d);
    format!("{:04}-{:02}", p.year(), p.month())
}

/// Checks a `YYYY-MM` argument.
pub fn parse_month(s: &str) -> anyhow::Result<String> {
    let ok = s.len() == 7
        && s.as_bytes()[4] == b'-'
        && jiff::civil::Date::strptime("%Y-%m-%d", format!("{s}-01")).is_ok();
    if !ok {
        anyhow::bail!("`{s}` is not a month: give it as YYYY-MM, e.g. 2026-10");
    }
    Ok(s.to_string())
}

fn period_of(job: Job, scheduled: Timestamp, tz: &TimeZone) -> String {
    match job {
        Job::Monthly => previous_month(scheduled, tz),
        Job::KeyCaseReminder => scheduled
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%dT%H:%M")
            .to_string(),
    }
}

fn schedule_of(rc: &ReportsConfig, job: Job) -> &cron::Schedule {
    match job {
        Job::Monthly => &rc.monthly,
        Job::KeyCaseReminder => &rc.key_case_reminder,
    }
}

/// The jobs due at `now`: each job's most recent instant at or before `now` whose period
/// `ran` does not know.
pub fn due_jobs(
    rc: &ReportsConfig,
    tz: &TimeZone,
    now: Timestamp,
    mut ran: impl FnMut(Job, &str) -> anyhow::Result<bool>,
) -> anyhow::Result<Vec<Due>> {
    let mut due = Vec::new();
    for job in [Job::Monthly, Job::KeyCaseReminder] {
        if let Some(at) = last_at_or_before(schedule_of(rc, job), now, tz) {
            let period = period_of(job, at, tz);
            if !ran(job, &period)? {
                due.push(Due {
                    job,
                    scheduled: at,
                    period,
                });
            }
        }
    }
    Ok(due)
}

/// When the next job falls due after `now`.
pub fn next_wake(rc: &ReportsConfig, tz: &TimeZone, now: Timestamp) -> Option<Timestamp> {
    [Job::Monthly, Job::KeyCaseReminder]
        .into_iter()
        .filter_map(|j| next_after(schedule_of(rc, j), now, tz))
        .min()
}

type MonthlyFn = fn(&dyn Store, &SlaConfig, &str, Timestamp) -> anyhow::Result<MonthlyReport>;
type KeyCasesFn = fn(&dyn Store, &SlaConfig, Timestamp) -> anyhow::Result<Vec<KeyCase>>;

/// What the report task reads from the config: `[reports]` (`None`: nothing scheduled), the
/// `[sla]` section (the calendar's zone, the statutory clocks the figures count), the
/// departments (whom a key-case reminder is mailed to) and whether e-mail is configured.
/// Built once, by [`ReportInputs::from_config`].
#[derive(Debug, Clone)]
pub struct ReportInputs {
    pub reports: Option<ReportsConfig>,
    pub sla: SlaConfig,
    pub departments: Vec<Department>,
    /// `[email]` is configured: reports and reminders are mailed too.
    pub mail: bool,
}

/// The report task.
#[derive(Clone)]
pub struct Scheduler {
    /// Its config sections: [`ReportInputs::from_config`].
    pub inputs: Arc<ReportInputs>,
    pub store: Arc<dyn Store>,
    /// Woken when records are queued, so the relay sends them without waiting for its poll.
    pub relay_wake: Arc<Notify>,
    /// The figures (`figures::monthly`, `figures::key_cases`); the tests put others here.
    pub monthly: MonthlyFn,
    pub key_cases: KeyCasesFn,
    /// Where "now" comes from: the system clock in the daemon, a paused one in tests.
    pub clock: SharedClock,
}

/// Longest wait before the wall clock is read again (as the SLA engine's).
pub const MAX_SLEEP: Duration = crate::sla::engine::MAX_SLEEP;

impl Scheduler {
    pub fn new(inputs: Arc<ReportInputs>, store: Arc<dyn Store>, relay_wake: Arc<Notify>) -> Self {
        Scheduler {
            inputs,
            store,
            relay_wake,
            monthly: super::figures::monthly,
            key_cases: super::figures::key_cases,
            clock: petitiond_core::sla::time::system(),
        }
    }

    fn tz(&self) -> TimeZone {
        self.inputs.sla.calendar.time_zone().clone()
    }

    /// Runs until `stop`: a step, then a sleep until the next instant (or [`RETRY`] after a
    /// failure). Never fails: a failed run is logged and retried.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let me = Arc::new(self);
        loop {
            let now = me.clock.now();
            let m = me.clone();
            let wake = tokio::task::spawn_blocking(move || m.step(now))
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "report step panicked");
                    Some(now + jiff::SignedDuration::try_from(RETRY).unwrap_or_default())
                });
            let sleep = match wake {
                Some(w) => me
                    .clock
                    .now()
                    .duration_until(w)
                    .try_into()
                    .unwrap_or(Duration::ZERO),
                None => MAX_SLEEP,
            };
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(sleep.clamp(Duration::from_secs(1), MAX_SLEEP)) => {}
            }
        }
    }

    /// Runs every job due at `now`; returns when to wake next (`None`: never).
    pub fn step(&self, now: Timestamp) -> Option<Timestamp> {
        let rc = self.inputs.reports.as_ref()?;
        let tz = self.tz();
        let store = self.store.as_ref();
        let mut failed = false;
        match due_jobs(rc, &tz, now, |j, p| Ok(store.report_ran(j.kind(), p)?)) {
            Ok(due) => {
                for d in due {
                    match self.run_job(rc, &d, now) {
                        Ok(true) => {
                            tracing::info!(job = d.job.kind(), period = %d.period, "report run queued");
                            self.relay_wake.notify_one();
                        }
                        Ok(false) => {}
                        Err(e) => {
                            failed = true;
                            tracing::error!(job = d.job.kind(), period = %d.period, error = format!("{e:#}"), "report run failed; retrying later");
                        }
                    }
                }
            }
            Err(e) => {
                failed = true;
                tracing::error!(error = format!("{e:#}"), "cannot read the report runs");
            }
        }
        let next = next_wake(rc, &tz, now);
        if failed {
            let retry = now + jiff::SignedDuration::try_from(RETRY).unwrap_or_default();
            return Some(next.map_or(retry, |n| n.min(retry)));
        }
        next
    }

    /// Runs one job; `Ok(false)` when its run was recorded already.
    pub fn run_job(&self, rc: &ReportsConfig, d: &Due, now: Timestamp) -> anyhow::Result<bool> {
        match d.job {
            Job::Monthly => self.run_monthly(rc, &d.period, now),
            Job::KeyCaseReminder => self.run_reminder(rc, &d.period, now),
        }
    }

    fn run_monthly(&self, rc: &ReportsConfig, month: &str, now: Timestamp) -> anyhow::Result<bool> {
        let store = self.store.as_ref();
        let report = (self.monthly)(store, &self.inputs.sla, month, now)
            .with_context(|| format!("computing the report for {month}"))?;
        create_private_dir(&rc.out_dir)?;
        let files =
            render::write_monthly(&report, &rc.out_dir.join(format!("report-{month}.html")))?;
        let names: Vec<String> = [&files.html, &files.csv, &files.key_cases_csv]
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut mails = Vec::new();
        if self.inputs.mail && !rc.recipients.is_empty() {
            mails.push((
                format!("report:monthly:{month}"),
                monthly_mail(&report, &names, rc.recipients.clone()),
            ));
        }
        let rate = |r: &super::Rate| {
            serde_json::json!({
                "numerator": r.numerator,
                "denominator": r.denominator,
                "value": r.value(),
                "target": r.target,
                "met": r.met(),
            })
        };
        let payload = serde_json::json!({
            "version": 1,
            "kind": "monthly_report",
            "month": month,
            "time_zone": report.time_zone,
            "items": report.items,
            "files": names,
            "on_time": rate(&report.on_time),
            "satisfaction": rate(&report.satisfaction),
            "one_time_resolution": rate(&report.one_time_resolution),
            "key_cases": report.key_cases.len(),
        });
        let record = cloud_event(
            &rc.topic,
            "report-monthly",
            TYPE_MONTHLY,
            month,
            month,
            now,
            &payload,
        )?;
        Ok(store.record_report_run(Job::Monthly.kind(), month, &mails, &[record])?)
    }

    fn run_reminder(
        &self,
        rc: &ReportsConfig,
        period: &str,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let store = self.store.as_ref();
        let cases = (self.key_cases)(store, &self.inputs.sla, now)
            .context("computing the key-case list")?;
        let tz = self.tz();
        let mut by_dept: BTreeMap<&str, Vec<&KeyCase>> = BTreeMap::new();
        for c in &cases {
            by_dept.entry(c.department.as_str()).or_default().push(c);
        }
        let mut mails = Vec::new();
        let mut records = Vec::new();
        for (dept, list) in by_dept {
            let emails = self
                .inputs
                .departments
                .iter()
                .find(|d| d.id == dept)
                .map(|d| d.alert_emails.clone())
                .unwrap_or_default();
            if self.inputs.mail && !emails.is_empty() {
                mails.push((
                    format!("report:key_cases:{period}:{dept}"),
                    reminder_mail(dept, period, &list, emails, &tz),
                ));
            }
            let payload = serde_json::json!({
                "version": 1,
                "kind": "key_case_reminder",
                "period": period,
                "department": dept,
                "items": list.iter().map(|c| serde_json::json!({
                    "item_id": c.item_id,
                    "reasons": c.reasons,
                    "deadline": c.deadline.map(|d| d.to_string()),
                })).collect::<Vec<_>>(),
            });
            records.push(cloud_event(
                &rc.topic,
                dept,
                TYPE_KEY_CASES,
                &format!("{period}/{dept}"),
                dept,
                now,
                &payload,
            )?);
        }
        Ok(store.record_report_run(Job::KeyCaseReminder.kind(), period, &mails, &records)?)
    }
}

/// A CloudEvent whose id is derived from its type and `name`: the same run, the same id.
fn cloud_event(
    topic: &str,
    key: &str,
    ce_type: &str,
    name: &str,
    subject: &str,
    now: Timestamp,
    payload: &serde_json::Value,
) -> anyhow::Result<NewOutbox> {
    let id = ce_id(ce_type, name);
    Ok(NewOutbox {
        topic: topic.to_string(),
        key: key.to_string(),
        ce_id: id.clone(),
        headers: vec![
            ("ce_specversion".into(), SPEC_VERSION.into()),
            ("ce_id".into(), id),
            ("ce_source".into(), "urn:petitiond:reports".into()),
            ("ce_type".into(), ce_type.into()),
            ("ce_time".into(), now.to_string()),
            ("ce_subject".into(), subject.into()),
            ("content-type".into(), CONTENT_TYPE.into()),
        ],
        payload: serde_json::to_vec(payload)?,
    })
}

/// The deterministic CloudEvents id of a report record.
pub fn ce_id(ce_type: &str, name: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("urn:petitiond:reports:{ce_type}:{name}").as_bytes(),
    )
    .to_string()
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// The monthly report's mail: the three rates and where the files are.
pub fn monthly_mail(r: &MonthlyReport, files: &[String], recipients: Vec<String>) -> NewMail {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "{} 月度分析报告已生成 (the monthly analysis report for {} is ready).\n",
        r.month, r.month
    );
    let _ = writeln!(body, "本月受理 (items received): {}", r.items);
    for (name, rate) in [
        ("按期办结率 (on-time completion)", &r.on_time),
        ("满意率 (satisfaction)", &r.satisfaction),
        ("一次性化解率 (one-time resolution)", &r.one_time_resolution),
    ] {
        let _ = writeln!(
            body,
            "{name}: {} ({}/{}), 目标 (target) {:.0}%: {}",
            percent(rate),
            rate.numerator,
            rate.denominator,
            rate.target * 100.0,
            rate_state(rate)
        );
    }
    let _ = writeln!(
        body,
        "重复信访 (repeat petitions): {} · 超期 10 个工作日以上 (overdue > 10 working days): {} · 攻坚清单 (key cases): {}",
        r.repeat_petitions.len(),
        r.overdue.len(),
        r.key_cases.len()
    );
    let _ = writeln!(body, "\n文件 (files, on the petitiond server):");
    for f in files {
        let _ = writeln!(body, "  {f}");
    }
    NewMail {
        recipients,
        subject: format!("信访月度分析报告 {} (monthly analysis report)", r.month),
        body,
    }
}

/// A department's weekly key-case reminder: ids, deadlines and the masked background.
pub fn reminder_mail(
    dept: &str,
    period: &str,
    cases: &[&KeyCase],
    recipients: Vec<String>,
    tz: &TimeZone,
) -> NewMail {
    let mut body = format!(
        "{dept}: 季度攻坚清单中有 {} 件由贵部门牵头办理 (key cases led by your department: {}).\n\n",
        cases.len(),
        cases.len()
    );
    for c in cases {
        let deadline = c
            .deadline
            .map(|d| {
                d.to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_else(|| "—".into());
        let _ = writeln!(
            body,
            "- {} · 期限 (deadline) {deadline} · {}",
            c.item_id, c.background
        );
    }
    NewMail {
        recipients,
        subject: format!("攻坚清单周提醒 {period} (weekly key-case reminder): {dept}"),
        body,
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
