use crate::config::{Config, ConfigErrors};
use std::path::Path;

const MINIMAL: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"

[[departments]]
id = "intake-desk"
name = "接待科"
topic = "t.intake"

[routing]
default_lead = "intake-desk"
"#;

fn parse(extra: &str) -> Result<Config, ConfigErrors> {
    Config::parse(&format!("{MINIMAL}{extra}"), "test.toml", Path::new("/cfg"))
}

#[test]
fn no_reports_section_schedules_nothing() {
    assert!(parse("").unwrap().reports.is_none());
    assert!(
        parse("[reports]\nenabled = false\n")
            .unwrap()
            .reports
            .is_none()
    );
}

#[test]
fn reports_section_defaults_to_the_first_at_eight_monday_at_nine_and_the_alerts_topic() {
    let c = parse("[daemon]\ndata_dir = \"/var/lib/p\"\n[reports]\n").unwrap();
    let r = c.reports.as_ref().unwrap();
    assert_eq!(r.monthly.source(), super::DEFAULT_MONTHLY_CRON);
    assert_eq!(r.key_case_reminder.source(), super::DEFAULT_KEY_CASE_CRON);
    assert_eq!(r.out_dir, Path::new("/var/lib/p/reports"));
    assert_eq!(r.topic, c.sla.alerts_topic);
    assert!(r.recipients.is_empty());
}

#[test]
fn bad_cron_expressions_are_reported_with_file_line_and_key() {
    let errs = parse(
        "[reports]\nmonthly_cron = \"every month\"\nkey_case_reminder_cron = \"0 0 0 30 Feb *\"\n",
    )
    .unwrap_err()
    .0;
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(errs[0].path, "reports.monthly_cron");
    assert_eq!(errs[0].file, "test.toml");
    assert_eq!(errs[0].line, Some(MINIMAL.lines().count() + 2));
    assert!(
        errs[0].message.contains("not a cron expression"),
        "{}",
        errs[0].message
    );
    assert_eq!(errs[1].path, "reports.key_case_reminder_cron");
    assert!(
        errs[1].message.contains("never fires"),
        "{}",
        errs[1].message
    );
}

#[test]
fn recipients_need_alert_email_and_valid_addresses_and_topic_a_valid_name() {
    let errs = parse(
        "[reports]\nrecipients = [\"office@example.gov.cn\", \"not-an-address\"]\ntopic = \"bad topic\"\nunknown_key = 1\n",
    )
    .unwrap_err()
    .0;
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"reports.unknown_key"), "{paths:?}");
    let errs = parse(
        "[reports]\nrecipients = [\"office@example.gov.cn\", \"not-an-address\"]\ntopic = \"bad topic\"\n",
    )
    .unwrap_err()
    .0;
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "reports.recipients[1]",
            "reports.recipients",
            "reports.topic"
        ],
        "{errs:#?}"
    );
}

#[test]
fn a_relative_out_dir_is_under_the_data_dir_and_the_topic_is_a_config_topic() {
    let c = parse(
        "[daemon]\ndata_dir = \"/d\"\n[reports]\nout_dir = \"monthly\"\ntopic = \"petitiond.reports\"\n",
    )
    .unwrap();
    assert_eq!(c.reports.as_ref().unwrap().out_dir, Path::new("/d/monthly"));
    assert!(c.topics().contains(&"petitiond.reports".to_string()));
}
