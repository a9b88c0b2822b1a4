//! `sla due` and `calendar show`: the SLA calendar and clocks as the daemon computes them.

use super::*;

/// `petitiond sla ...`.
pub(super) fn sla_command(command: SlaCommand) -> ExitCode {
    let SlaCommand::Due {
        config,
        clock,
        start,
        json,
    } = command;
    with_config(&config, |config| {
        let answer = if json {
            sla_due_json(&config, &clock, &start)
        } else {
            sla_due(&config, &clock, &start)
        };
        match answer {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `petitiond calendar ...`.
pub(super) fn calendar_command(command: CalendarCommand) -> ExitCode {
    let CalendarCommand::Show { config, year } = command;
    with_config(&config, |config| {
        match calendar_show(&config.sla.calendar, year) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The due instant of `clock` started at `start`, and the first year without an official
/// calendar it rests on (the one path `sla due` and its JSON form share).
fn due_of(
    config: &Config,
    clock: &str,
    start: &str,
) -> Result<(jiff::Timestamp, jiff::Timestamp, Option<i16>), String> {
    let policy = config.sla.clock(clock).ok_or_else(|| {
        let known: Vec<&str> = config.sla.clocks.iter().map(|c| c.id.as_str()).collect();
        format!("unknown clock `{clock}` (configured: {})", known.join(", "))
    })?;
    let start: jiff::Timestamp = start
        .parse()
        .map_err(|e| format!("--start `{start}` is not an RFC 3339 instant with offset: {e}"))?;
    let cal = &config.sla.calendar;
    let (due, year) = cal
        .marked(|c| petitiond_core::sla::due::due(&policy.rule, start, c))
        .map_err(|e| e.to_string())?;
    Ok((start, due, year))
}

fn rfc3339_local(cal: &petitiond_core::sla::calendar::Calendar, t: jiff::Timestamp) -> String {
    cal.local(t).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// `petitiond sla due`: the due instant of `clock` started at `start`, one line; on a
/// provisional calendar followed by ` (provisional: YEAR has no official calendar)`.
pub fn sla_due(config: &Config, clock: &str, start: &str) -> Result<String, String> {
    let (_, due, year) = due_of(config, clock, start)?;
    let line = rfc3339_local(&config.sla.calendar, due);
    Ok(match year {
        None => line,
        Some(y) => format!("{line} (provisional: {y} has no official calendar)"),
    })
}

/// `petitiond sla due --json`: the same answer as one JSON object.
pub fn sla_due_json(config: &Config, clock: &str, start: &str) -> Result<String, String> {
    let (start, due, year) = due_of(config, clock, start)?;
    let cal = &config.sla.calendar;
    Ok(serde_json::json!({
        "clock": clock,
        "start": rfc3339_local(cal, start),
        "due_at": rfc3339_local(cal, due),
        "provisional": year.is_some(),
        "provisional_year": year,
    })
    .to_string())
}

/// `petitiond calendar show YEAR`: a header (official or provisional, source, working days)
/// and one line per day: date, weekday, kind, holiday name or override note.
pub fn calendar_show(
    cal: &petitiond_core::sla::calendar::Calendar,
    year: i16,
) -> Result<String, String> {
    use petitiond_core::sla::calendar::Basis;
    use std::fmt::Write;
    let basis = cal.basis(year).ok_or_else(|| {
        let official: Vec<String> = cal.years().map(|y| y.to_string()).collect();
        format!(
            "{year} has no working-day calendar: no official file is configured for it (official: {}) and it is outside the provisional range {}–{}",
            official.join(", "),
            petitiond_core::sla::provisional::YEARS.start(),
            petitiond_core::sla::provisional::YEARS.end()
        )
    })?;
    let err = |e: petitiond_core::sla::calendar::CalendarError| e.to_string();
    let mut out = String::new();
    match basis {
        Basis::Official => {
            let _ = writeln!(out, "{year}: official ({})", cal.file(year).map_err(err)?);
        }
        Basis::Provisional => {
            let _ = writeln!(
                out,
                "{year}: provisional — no official file is configured; due times that need {year} are marked provisional"
            );
        }
    }
    let _ = writeln!(out, "source: {}", cal.source(year).map_err(err)?);
    let _ = writeln!(
        out,
        "working days: {}",
        cal.working_days_in_year(year).map_err(err)?
    );
    let mut day = jiff::civil::Date::new(year, 1, 1).map_err(|e| e.to_string())?;
    while day.year() == year {
        let kind = cal.kind(day).map_err(err)?;
        let label = cal.label(day).map_err(err)?.unwrap_or("");
        let _ = writeln!(out, "{day}\t{}\t{kind}\t{label}", day.strftime("%a"));
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    Ok(out)
}
