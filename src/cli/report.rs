//! `report monthly` and `report key-cases`.

use super::*;

pub(super) fn report_command(command: ReportCommand) -> ExitCode {
    let path = match &command {
        ReportCommand::Monthly { config, .. } | ReportCommand::KeyCases { config, .. } => {
            config.clone()
        }
    };
    with_config(&path, |config| {
        finish(report(&config, command), ExitCode::FAILURE)
    })
}

fn report(config: &Config, command: ReportCommand) -> anyhow::Result<()> {
    use crate::report::{figures, render, schedule};
    use anyhow::Context as _;
    let store = crate::storage::open_store_only(&config.store, true)?;
    let now = jiff::Timestamp::now();
    match command {
        ReportCommand::Monthly { month, out, .. } => {
            let month = match month {
                Some(m) => schedule::parse_month(&m)?,
                None => schedule::previous_month(now, config.sla.calendar.time_zone()),
            };
            if out.is_dir() {
                anyhow::bail!(
                    "--out {} is a directory: give the HTML file to write, e.g. {}/report-{month}.html",
                    out.display(),
                    out.display()
                );
            }
            let r = figures::monthly(&*store, &config.sla, &month, now)
                .with_context(|| format!("computing the report for {month}"))?;
            let w = render::write_monthly(&r, &out)?;
            for p in [&w.html, &w.csv, &w.key_cases_csv] {
                println!("{}", p.display());
            }
        }
        ReportCommand::KeyCases { format, .. } => {
            let cases = figures::key_cases(&*store, &config.sla, now)
                .context("computing the key-case list")?;
            match format {
                ReportFormat::Csv => print!("{}", render::key_cases_csv(&cases)?),
                ReportFormat::Json => println!("{}", render::key_cases_json(&cases)?),
            }
        }
    }
    Ok(())
}
