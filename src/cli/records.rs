//! The store's records: `dlq list/replay`, `quarantine list`, `writeback list/replay` and
//! `ledger`.

use super::*;

/// `petitiond dlq ...`.
pub(super) fn dlq_command(command: DlqCommand) -> ExitCode {
    let path = match &command {
        DlqCommand::List { config, .. } | DlqCommand::Replay { config, .. } => config.clone(),
    };
    with_config(&path, |config| {
        let result = open_store(&config).and_then(|s| {
            match command {
                DlqCommand::List { limit, .. } => {
                    for d in s.dead_letters(limit)? {
                        println!(
                            "{}\t{}\t{}\t{}\t{}\t{}",
                            d.seq, d.at, d.item_id, d.topic, d.ce_id, d.reason
                        );
                    }
                }
                DlqCommand::Replay { seq, topic, .. } => {
                    if let Some(t) = &topic
                        && !config.topics().contains(t)
                    {
                        anyhow::bail!(
                            "topic `{t}` is not one petitiond produces to (see `petitiond check`)"
                        );
                    }
                    let n = s.replay_dead(&seq, topic.as_deref())?;
                    println!("{n} of {} dead letter(s) back in the outbox", seq.len());
                }
            }
            Ok(())
        });
        finish(result, ExitCode::FAILURE)
    })
}

/// `petitiond quarantine list`.
pub(super) fn quarantine_command(command: QuarantineCommand) -> ExitCode {
    let QuarantineCommand::List { config, limit } = command;
    with_config(&config, |config| {
        let result = open_store(&config).and_then(|s| {
            for r in s.list_quarantine(limit)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{} bytes\t{}\t{}",
                    r.id,
                    r.at,
                    r.entry.source,
                    r.entry.reference,
                    r.entry.reason,
                    r.entry.size,
                    r.entry.raw_ref,
                    r.entry.detail
                );
            }
            Ok(())
        });
        finish(result, ExitCode::FAILURE)
    })
}

pub(super) fn writeback_command(command: WritebackCommand) -> ExitCode {
    let path = match &command {
        WritebackCommand::List { config, .. } | WritebackCommand::Replay { config, .. } => {
            config.clone()
        }
    };
    with_config(&path, |config| {
        let tz = config.sla.calendar.time_zone().clone();
        let result = open_store(&config).and_then(|s| {
            match command {
                WritebackCommand::List { state, limit, .. } => {
                    let state = match state.as_str() {
                        "all" => None,
                        "pending" | "delivered" | "dead" => Some(state.as_str()),
                        other => anyhow::bail!(
                            "--state `{other}`: expected pending, delivered, dead or all"
                        ),
                    };
                    for w in s.writeback_list(state, limit)? {
                        let next = match (
                            w.state.as_str(),
                            jiff::Timestamp::from_millisecond(w.next_attempt_ms),
                        ) {
                            ("pending", Ok(t)) => t
                                .to_zoned(tz.clone())
                                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                                .to_string(),
                            _ => "-".into(),
                        };
                        println!(
                            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                            w.id,
                            w.created_at,
                            w.state,
                            w.source,
                            w.kind,
                            w.item_id,
                            w.upstream_id,
                            w.attempts,
                            next,
                            w.value,
                            w.last_error.unwrap_or_default()
                        );
                    }
                }
                WritebackCommand::Replay { id, .. } => {
                    let n = s.writeback_replay(&id)?;
                    println!("{n} of {} dead write-back(s) back in the queue", id.len());
                }
            }
            Ok(())
        });
        finish(result, ExitCode::FAILURE)
    })
}

pub(super) fn ledger(
    path: &Path,
    since: Option<&str>,
    department: Option<String>,
    format: crate::report::ledger::Format,
) -> ExitCode {
    with_config(path, |config| {
        let tz = config.sla.calendar.time_zone().clone();
        let since = match since
            .map(|s| crate::report::ledger::parse_since(s, &tz))
            .transpose()
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        if let Some(d) = &department
            && config.department(d).is_none()
        {
            eprintln!(
                "error: --department `{d}` is not in {}'s [[departments]]",
                path.display()
            );
            return ExitCode::from(2);
        }
        let q = crate::store::LedgerQuery { since, department };
        let result = open_store(&config).and_then(|s| {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::report::ledger::write(&*s, &q, format, &tz, &mut out)
        });
        match result {
            Ok(n) => {
                eprintln!("{n} item(s)");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}
