//! Command line: `run`, `check`, `demo`, `sla due`, `calendar show`, `rules check/test/eval/train`,
//! `rules corrections export`, `explain`, `dlq list/replay`, `quarantine list`,
//! `writeback list/replay`, `report monthly/key-cases`.

use crate::config::{Config, LogFormat};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "petitiond", version, about = "Petition-office intake daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM/SIGINT.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Start even when group or others can read the data directory (as
        /// `daemon.allow_shared_data_dir = true`).
        #[arg(long)]
        allow_shared_data_dir: bool,
    },
    /// Validate a config file; prints every error with file, line and key path. Also refuses a
    /// data directory others can read, as `run` does.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Accept a data directory that group or others can read.
        #[arg(long)]
        allow_shared_data_dir: bool,
    },
    /// Run on embedded defaults: an in-process Kafka-protocol broker, a Maildir with sample
    /// scanned letters, SQLite under a data dir. Prints every routed envelope.
    Demo {
        /// Where the demo keeps its data (default: a new directory under the system temp dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Exit once every sample letter has been routed (instead of running until Ctrl-C).
        #[arg(long)]
        exit_when_done: bool,
    },
    /// SLA tools.
    Sla {
        #[command(subcommand)]
        command: SlaCommand,
    },
    /// The working-day calendar in force.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
    /// Routing rules: check them, run operator test cases.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Normalise, classify and route one raw upstream record without touching Kafka; print
    /// the envelope (personal data masked) and every rule evaluated.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        /// Which channel the record comes from: letter (an .eml file); hotline and portal
        /// records arrive with the REST channels.
        #[arg(long, default_value = "letter")]
        channel: String,
        record: PathBuf,
    },
    /// Dead letters: records the broker refused for good.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Inspect quarantined inputs.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// Status write-backs to upstreams: list them, send dead ones again.
    Writeback {
        #[command(subcommand)]
        command: WritebackCommand,
    },
    /// The electronic ledger (电子跟踪台账) on stdout: every item's stage, responsible
    /// department and person, expected completion time and clocks with their states.
    Ledger {
        #[arg(long, short)]
        config: PathBuf,
        /// Items received on or after this date (YYYY-MM-DD, in sla.time_zone) or instant.
        #[arg(long)]
        since: Option<String>,
        /// Items this department leads or assists.
        #[arg(long)]
        department: Option<String>,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: crate::report::ledger::Format,
    },
    /// The monthly analysis report and the key-case list, on demand.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Write a month's report as HTML (with SVG charts), plus `report-YYYY-MM.csv` and
    /// `key-cases-YYYY-MM.csv` in the same directory. Sends nothing.
    Monthly {
        #[arg(long, short)]
        config: PathBuf,
        /// YYYY-MM, in `sla.time_zone` (default: the previous month).
        #[arg(long)]
        month: Option<String>,
        /// The HTML file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the key-case list (季度攻坚清单) as it stands now.
    KeyCases {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "csv")]
        format: ReportFormat,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Csv,
    Json,
}

#[derive(Subcommand)]
enum WritebackCommand {
    /// List write-backs, newest first: id, queued, state, source, kind, item, upstream id,
    /// attempts, next attempt, value, last error.
    List {
        #[arg(long, short)]
        config: PathBuf,
        /// pending, delivered, dead or all.
        #[arg(long, default_value = "dead")]
        state: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put dead write-backs back in the queue once the cause is fixed (a running daemon sends
    /// them, with their original idempotency keys).
    Replay {
        #[arg(long, short)]
        config: PathBuf,
        /// Ids from `writeback list`.
        #[arg(required = true)]
        id: Vec<i64>,
    },
}

#[derive(Subcommand)]
enum SlaCommand {
    /// Print when a clock started at START is due, as one RFC 3339 line in the office's zone;
    /// a due time computed on a provisional calendar is followed by
    /// ` (provisional: YEAR has no official calendar)`.
    Due {
        #[arg(long, short)]
        config: PathBuf,
        /// Clock policy id, e.g. letter.register.
        #[arg(long)]
        clock: String,
        /// Start instant, RFC 3339 with offset, e.g. 2026-09-30T18:00:00+08:00.
        #[arg(long)]
        start: String,
        /// Print one JSON object instead: clock, start, due_at, provisional, provisional_year.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CalendarCommand {
    /// Print every day of YEAR with its kind (workday, weekend, holiday, makeup_workday) and
    /// holiday name, after a header saying whether the year is official (from which file and
    /// notice) or provisional (derived from the holiday law).
    Show {
        #[arg(long, short)]
        config: PathBuf,
        year: i16,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Parse and validate the rules and dictionaries; errors and warnings with file and line.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run operator-written cases; non-zero exit on any mismatch, with a diff.
    Test {
        #[arg(long, short)]
        config: PathBuf,
        cases: PathBuf,
    },
    /// Measure classification on a labelled corpus (TSV `category<TAB>text` or JSONL), or on
    /// the intake desk's recorded corrections: accuracy, precision and recall per category,
    /// the confusion matrix.
    Eval {
        #[arg(long, short)]
        config: PathBuf,
        /// The labelled corpus (omit with --corrections).
        #[arg(required_unless_present = "corrections")]
        corpus: Option<PathBuf>,
        /// Evaluate on the corrections recorded in the store instead.
        #[arg(long, conflicts_with = "corpus")]
        corrections: bool,
        /// Also print every misclassified item (line, true, decided, text).
        #[arg(long)]
        misses: bool,
        /// Classify without the model (dictionaries only), for comparison.
        #[arg(long)]
        no_model: bool,
        /// Exit non-zero when accuracy is below this (0..1).
        #[arg(long)]
        min_accuracy: Option<f64>,
    },
    /// Train the classifier model on a labelled corpus (deterministic) and write it.
    Train {
        /// The keyword dictionaries the model will be combined with (their weight is fitted).
        #[arg(long)]
        dictionaries: PathBuf,
        /// Labelled corpus (as for `eval`); several may be given.
        #[arg(long, required = true)]
        corpus: Vec<PathBuf>,
        /// Where to write the model (e.g. config/model/classifier.bin).
        #[arg(long)]
        out: PathBuf,
        /// Cross-validation folds (fit the dictionary weight, report accuracy).
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// log2 of the feature table size.
        #[arg(long, default_value_t = crate::routing::model::TrainOptions::default().bits)]
        bits: u32,
        #[arg(long, default_value_t = crate::routing::model::TrainOptions::default().epochs)]
        epochs: u32,
        /// The dictionary weight (log-odds per keyword-weight point); 0: fit it by
        /// cross-validation.
        #[arg(long, default_value_t = 1.0)]
        dict_weight: f32,
    },
    /// The intake desk's corrections (re-routes recorded from status events).
    Corrections {
        #[command(subcommand)]
        command: CorrectionsCommand,
    },
}

#[derive(Subcommand)]
enum CorrectionsCommand {
    /// Write the corrections with a category as labelled JSONL training data (petition text:
    /// the file is created with mode 0600).
    Export {
        #[arg(long, short)]
        config: PathBuf,
        /// The file to write (refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead letters with their reasons.
    List {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send chosen dead letters again once the cause is fixed (a running daemon picks them up).
    Replay {
        #[arg(long, short)]
        config: PathBuf,
        /// Outbox sequence numbers from `dlq list`.
        #[arg(required = true)]
        seq: Vec<i64>,
        /// Send to this topic instead of the original one.
        #[arg(long)]
        topic: Option<String>,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// List the newest quarantined inputs with their reasons.
    List {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// Installs the tracing subscriber: JSON unless pretty is asked for or stderr is a terminal.
pub fn init_logging(format: LogFormat, filter: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        b.try_init()
    };
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errs| {
        eprintln!("{errs}");
        eprintln!("{} error(s) in {}", errs.0.len(), path.display());
        ExitCode::from(2)
    })
}

fn ledger(
    path: &Path,
    since: Option<&str>,
    department: Option<String>,
    format: crate::report::ledger::Format,
) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
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
    let result = crate::store::SqliteStore::open(&config.store.path, config.store.busy_timeout)
        .map_err(anyhow::Error::from)
        .and_then(|s| {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            crate::report::ledger::write(&s, &q, format, &tz, &mut out)
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
}

pub fn main() -> ExitCode {
    // First: a panic's message may quote a petitioner's data (see `panics`).
    crate::panics::install();
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            config,
            allow_shared_data_dir,
        } => match load(&config) {
            Ok(mut c) => {
                c.allow_shared_data_dir |= allow_shared_data_dir;
                if let Err(e) = crate::app::check_private_dirs(&c) {
                    eprintln!("{}: {e}", config.display());
                    return ExitCode::from(2);
                }
                for w in crate::sla::calendar_warnings(&c.sla, jiff::Timestamp::now()) {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: ok ({} departments, {} topics, mailbox {})",
                    config.display(),
                    c.departments.len(),
                    c.topics().len(),
                    if c.mailbox.is_some() { "on" } else { "off" }
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run {
            config,
            allow_shared_data_dir,
        } => {
            let mut config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            config.allow_shared_data_dir |= allow_shared_data_dir;
            // Before any thread exists: everything the daemon creates is owner-only.
            crate::store::files::restrict_umask();
            init_logging(config.log_format, &config.log_filter);
            runtime(async move {
                let stop = crate::app::shutdown_on_signals()?;
                let app = crate::app::Application::build(config).await?;
                if let Some(a) = app.admin_addr() {
                    tracing::info!(admin = %a, "admin listening");
                }
                app.run_until_stopped(stop).await
            })
        }
        Command::Demo {
            data_dir,
            exit_when_done,
        } => {
            crate::store::files::restrict_umask();
            init_logging(LogFormat::Pretty, "warn,petitiond=info");
            runtime(crate::demo::run(data_dir, exit_when_done))
        }
        Command::Sla {
            command:
                SlaCommand::Due {
                    config,
                    clock,
                    start,
                    json,
                },
        } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
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
        }
        Command::Calendar {
            command: CalendarCommand::Show { config, year },
        } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
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
        }
        Command::Rules { command } => rules_command(command),
        Command::Explain {
            config,
            channel,
            record,
        } => explain(&config, &channel, &record),
        Command::Dlq { command } => {
            let path = match &command {
                DlqCommand::List { config, .. } | DlqCommand::Replay { config, .. } => config,
            };
            let config = match load(path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let result = crate::store::SqliteStore::open(&config.store.path, config.store.busy_timeout)
                .map_err(anyhow::Error::from)
                .and_then(|s| {
                    use crate::store::Store;
                    match command {
                        DlqCommand::List { limit, .. } => {
                            for d in s.dead_letters(limit)? {
                                println!("{}\t{}\t{}\t{}\t{}\t{}", d.seq, d.at, d.item_id, d.topic, d.ce_id, d.reason);
                            }
                        }
                        DlqCommand::Replay { seq, topic, .. } => {
                            if let Some(t) = &topic
                                && !config.topics().contains(t)
                            {
                                anyhow::bail!("topic `{t}` is not one petitiond produces to (see `petitiond check`)");
                            }
                            let n = s.replay_dead(&seq, topic.as_deref())?;
                            println!("{n} of {} dead letter(s) back in the outbox", seq.len());
                        }
                    }
                    Ok(())
                });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Writeback { command } => writeback_command(command),
        Command::Ledger {
            config,
            since,
            department,
            format,
        } => ledger(&config, since.as_deref(), department, format),
        Command::Report { command } => report_command(command),
        Command::Quarantine {
            command: QuarantineCommand::List { config, limit },
        } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match crate::store::SqliteStore::open(&config.store.path, config.store.busy_timeout)
                .map_err(anyhow::Error::from)
                .and_then(|s| Ok(crate::store::Store::list_quarantine(&s, limit)?))
            {
                Ok(rows) => {
                    for r in rows {
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
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn report_command(command: ReportCommand) -> ExitCode {
    let path = match &command {
        ReportCommand::Monthly { config, .. } | ReportCommand::KeyCases { config, .. } => config,
    };
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match report(&config, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn report(config: &Config, command: ReportCommand) -> anyhow::Result<()> {
    use crate::report::{figures, render, schedule};
    use anyhow::Context as _;
    if !config.store.path.exists() {
        anyhow::bail!(
            "no store at {} (store.path): has the daemon run with this config?",
            config.store.path.display()
        );
    }
    let store = crate::store::SqliteStore::open(&config.store.path, config.store.busy_timeout)
        .with_context(|| format!("opening the store {}", config.store.path.display()))?;
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
            let r = figures::monthly(&store, config, &month, now)
                .with_context(|| format!("computing the report for {month}"))?;
            let w = render::write_monthly(&r, &out)?;
            for p in [&w.html, &w.csv, &w.key_cases_csv] {
                println!("{}", p.display());
            }
        }
        ReportCommand::KeyCases { format, .. } => {
            let cases =
                figures::key_cases(&store, config, now).context("computing the key-case list")?;
            match format {
                ReportFormat::Csv => print!("{}", render::key_cases_csv(&cases)?),
                ReportFormat::Json => println!("{}", render::key_cases_json(&cases)?),
            }
        }
    }
    Ok(())
}

fn writeback_command(command: WritebackCommand) -> ExitCode {
    use crate::store::Store;
    let path = match &command {
        WritebackCommand::List { config, .. } | WritebackCommand::Replay { config, .. } => config,
    };
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let tz = config.sla.calendar.time_zone().clone();
    let result = crate::store::SqliteStore::open(&config.store.path, config.store.busy_timeout)
        .map_err(anyhow::Error::from)
        .and_then(|s| {
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
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(fut);
    // The shutdown deadline has been kept (or cut off) inside `fut`; a blocking task still
    // running now must not hold the exit: dropping the runtime would wait for it without
    // limit.
    rt.shutdown_timeout(std::time::Duration::from_secs(3));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "petitiond failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
        .marked(|c| crate::sla::due::due(&policy.rule, start, c))
        .map_err(|e| e.to_string())?;
    Ok((start, due, year))
}

fn rfc3339_local(cal: &crate::sla::calendar::Calendar, t: jiff::Timestamp) -> String {
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
pub fn calendar_show(cal: &crate::sla::calendar::Calendar, year: i16) -> Result<String, String> {
    use crate::sla::calendar::Basis;
    use std::fmt::Write;
    let basis = cal.basis(year).ok_or_else(|| {
        let official: Vec<String> = cal.years().map(|y| y.to_string()).collect();
        format!(
            "{year} has no working-day calendar: no official file is configured for it (official: {}) and it is outside the provisional range {}–{}",
            official.join(", "),
            crate::sla::provisional::YEARS.start(),
            crate::sla::provisional::YEARS.end()
        )
    })?;
    let err = |e: crate::sla::calendar::CalendarError| e.to_string();
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

fn rules_of(
    config: &Config,
) -> Result<
    (
        crate::routing::rules::RuleSet,
        Vec<crate::config::ConfigError>,
    ),
    ExitCode,
> {
    let Some(r) = &config.routing.rules else {
        eprintln!(
            "no [routing] rules_file in the config: every item goes to `{}`",
            config.routing.default_lead
        );
        return Err(ExitCode::from(2));
    };
    crate::routing::load_rules(r, &config.departments, &config.sla.clocks).map_err(|d| {
        eprintln!("{d}");
        ExitCode::from(2)
    })
}

fn rules_command(command: RulesCommand) -> ExitCode {
    if let RulesCommand::Train {
        dictionaries,
        corpus,
        out,
        folds,
        bits,
        epochs,
        dict_weight,
    } = command
    {
        let o = crate::routing::model::TrainOptions {
            folds,
            bits,
            epochs,
            dict_weight: (dict_weight > 0.0).then_some(dict_weight),
            ..Default::default()
        };
        return match rules_train(&dictionaries, &corpus, &out, &o) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let path = match &command {
        RulesCommand::Check { config }
        | RulesCommand::Test { config, .. }
        | RulesCommand::Eval { config, .. }
        | RulesCommand::Corrections {
            command: CorrectionsCommand::Export { config, .. },
        } => config.clone(),
        RulesCommand::Train { .. } => unreachable!("handled above"),
    };
    let config = match load(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let RulesCommand::Corrections {
        command: CorrectionsCommand::Export { out, .. },
    } = &command
    {
        // The store's data only: no rules needed.
        return match corrections_export(&config, out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let (rules, warnings) = match rules_of(&config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    match command {
        RulesCommand::Check { .. } => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: ok ({} rules, version {}, {} warning(s))",
                rules.file(),
                rules.rules().len(),
                rules.version(),
                warnings.len()
            );
            ExitCode::SUCCESS
        }
        RulesCommand::Eval {
            corpus,
            corrections,
            misses,
            no_model,
            min_accuracy,
            ..
        } => {
            let rules = if no_model {
                let t = rules.review_threshold();
                rules.with_model(None, t)
            } else {
                rules
            };
            match rules_eval(&config, &rules, corpus.as_deref(), corrections, misses) {
                Ok(accuracy) if min_accuracy.is_some_and(|m| accuracy < m) => {
                    eprintln!(
                        "accuracy {:.1}% is below --min-accuracy {:.1}%",
                        accuracy * 100.0,
                        min_accuracy.unwrap_or(0.0) * 100.0
                    );
                    ExitCode::FAILURE
                }
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        RulesCommand::Train { .. } => unreachable!("handled above"),
        RulesCommand::Corrections { .. } => unreachable!("handled above"),
        RulesCommand::Test { cases, .. } => {
            match crate::routing::rules::run_cases(&rules, &cases) {
                Ok(report) => {
                    println!("{report}");
                    if report.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(errs) => {
                    for e in errs {
                        eprintln!("{e}");
                    }
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn corpus_errors(errs: Vec<crate::config::ConfigError>) -> anyhow::Error {
    let n = errs.len();
    let text: Vec<String> = errs.iter().take(20).map(|e| e.to_string()).collect();
    anyhow::anyhow!("{}\n{n} bad line(s)", text.join("\n"))
}

/// `rules eval`: prints the report; returns the accuracy.
fn rules_eval(
    config: &Config,
    rules: &crate::routing::rules::RuleSet,
    corpus: Option<&Path>,
    corrections: bool,
    misses: bool,
) -> anyhow::Result<f64> {
    use crate::routing::eval;
    let model = rules
        .model()
        .map(|m| format!("model {} ({} weights)", m.digest(), m.nonzero()))
        .unwrap_or_else(|| "no model".into());
    println!(
        "rules {} ({}, review threshold {})",
        rules.version(),
        model,
        rules.review_threshold()
    );
    let (items, leads) = if corrections {
        use crate::store::Store;
        let store = crate::store::SqliteStore::open(&config.store.path, config.store.busy_timeout)?;
        let all = store.corrections()?;
        let mut items = Vec::new();
        let (mut with_dept, mut lead_agrees) = (0usize, 0usize);
        for (i, c) in all.iter().enumerate() {
            let Some(env) = &c.envelope else { continue };
            let title = env.request.title.as_ref().map_or("", |t| t.expose());
            if let Some(d) = &c.department {
                with_dept += 1;
                let input = crate::routing::rules::Input::from_envelope(
                    env,
                    env.upstream.service_code.as_deref(),
                    env.upstream.region.as_deref(),
                );
                if rules.decide(&input).lead == d {
                    lead_agrees += 1;
                }
            }
            if let Some(category) = c.category {
                items.push(eval::Labelled {
                    category,
                    title: title.to_string(),
                    content: env.request.content.expose().to_string(),
                    service_code: env.upstream.service_code.clone(),
                    channel: env.channel,
                    line: i + 1,
                });
            }
        }
        println!(
            "{} correction(s): {} with a category, {} with a department",
            all.len(),
            items.len(),
            with_dept
        );
        (items, Some((lead_agrees, with_dept)))
    } else {
        let path = corpus.ok_or_else(|| anyhow::anyhow!("no corpus given"))?;
        let items = eval::read_corpus(path).map_err(corpus_errors)?;
        (items, None)
    };
    let started = std::time::Instant::now();
    let report = eval::evaluate(rules, &items, misses);
    let took = started.elapsed();
    print!("{report}");
    if let Some((agree, n)) = leads {
        println!("lead: the rules now choose the desk's department for {agree} of {n}");
    }
    println!(
        "{} item(s) in {:.1} ms",
        report.total,
        took.as_secs_f64() * 1000.0
    );
    if misses {
        for (line, truth, got, opinion) in &report.misses {
            let it = items.iter().find(|i| i.line == *line);
            println!(
                "miss line {line}: {} → {} ({opinion}): {}{}",
                truth.as_str(),
                got.map_or("unclassified", |c| c.as_str()),
                it.map_or("", |i| i.title.as_str()),
                it.map_or("", |i| i.content.as_str())
            );
        }
    }
    Ok(report.accuracy())
}

/// `rules train`: reads the corpora, trains, writes the model (tmp + rename).
fn rules_train(
    dictionaries: &Path,
    corpora: &[PathBuf],
    out: &Path,
    o: &crate::routing::model::TrainOptions,
) -> anyhow::Result<()> {
    use crate::routing::{classify, classify::category_index, eval, model};
    let (dicts, _) =
        classify::Dictionaries::load_dir(dictionaries).map_err(|d| anyhow::anyhow!("{d}"))?;
    let classifier = classify::Classifier::new(dicts).map_err(|e| anyhow::anyhow!(e))?;
    let mut examples = Vec::new();
    let mut names = Vec::new();
    for path in corpora {
        let items = eval::read_corpus(path).map_err(corpus_errors)?;
        names.push(path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().into(),
        ));
        for it in items {
            let scores = classifier
                .classify(&it.title, &it.content, it.service_code.as_deref())
                .scores
                .0;
            examples.push(model::Example {
                label: category_index(it.category),
                features: model::vector(&it.title, &it.content, o.bits),
                scores,
            });
        }
    }
    if examples.is_empty() {
        anyhow::bail!("the corpus has no items");
    }
    let mut info = serde_json::Map::new();
    info.insert("corpus".into(), names.join(", ").into());
    info.insert(
        "dictionaries".into(),
        classify::dictionaries_version(classifier.dictionaries()).into(),
    );
    let started = std::time::Instant::now();
    let (m, r) = model::train(&examples, o, info);
    let bytes = m.to_bytes();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, out)?;
    let load = std::time::Instant::now();
    let loaded = model::Model::load(out)?;
    let load_ms = load.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{}: {} examples, {} of {} buckets set, {} bytes, loads in {load_ms:.1} ms; trained in {:.1} s",
        out.display(),
        examples.len(),
        loaded.nonzero(),
        1usize << o.bits,
        bytes.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "cross-validated ({} folds): model alone {:.1}%, with the dictionaries {:.1}% (dictionary weight {:.2}); dictionaries alone {:.1}%",
        o.folds,
        r.cv_model_accuracy * 100.0,
        r.cv_combined_accuracy * 100.0,
        r.dict_weight,
        r.dictionary_accuracy * 100.0
    );
    Ok(())
}

/// `rules corrections export`: labelled JSONL, created 0600 (it holds petition text).
fn corrections_export(config: &Config, out: &Path) -> anyhow::Result<()> {
    use crate::store::Store;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let store = crate::store::SqliteStore::open(&config.store.path, config.store.busy_timeout)?;
    let all = store.corrections()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let mut n = 0;
    for c in &all {
        if let Some(line) = crate::routing::corrections::export_line(c) {
            writeln!(f, "{line}")?;
            n += 1;
        }
    }
    f.sync_all()?;
    println!(
        "{}: {n} of {} correction(s) written (those with a category); mode 0600: it holds petition text",
        out.display(),
        all.len()
    );
    Ok(())
}

/// A scanned-letter mail as the mailbox channel would read it.
fn explain_letter(
    config: &Config,
    raw: &[u8],
) -> Result<crate::envelope::Envelope, (&'static str, String)> {
    let limits = crate::channels::mailbox::parse::Limits::of(config.mailbox.as_ref());
    crate::channels::mailbox::parse::normalize(
        raw,
        jiff::Timestamp::now(),
        "explain",
        &limits,
        &crate::store::blobs::DryRunBlobStore,
    )
    .map_err(|bad| (bad.reason(), bad.to_string()))
}

/// One hotline or portal JSON record, read through the configured source's mapping (for a
/// hotline without a `[channels.hotline]` section: the built-in Open311 mapping). Attachment
/// URLs are listed, not fetched.
fn explain_record(
    config: &Config,
    channel: &str,
    raw: &[u8],
) -> Result<crate::envelope::Envelope, (&'static str, String)> {
    use crate::channels::http::record;
    let source = config.http_sources.iter().find(|s| s.name == channel);
    let (mapping, max) = match (source, channel) {
        (Some(s), _) => (s.mapping.clone(), s.max_record_bytes),
        (None, "hotline") => (crate::config::http::Mapping::open311(), 256 * 1024),
        (None, _) => {
            return Err((
                "no_mapping",
                format!(
                    "no enabled [channels.{channel}] section in the config: its field mapping is needed"
                ),
            ));
        }
    };
    let text =
        String::from_utf8(raw.to_vec()).map_err(|_| ("invalid_json", "not UTF-8".to_string()))?;
    let value = serde_json::value::RawValue::from_string(text)
        .map_err(|e| ("invalid_json", e.to_string()))?;
    let m = record::map(&value, &mapping, config.sla.calendar.time_zone(), max)
        .map_err(|bad| (bad.reason(), bad.to_string()))?;
    for (url, _) in &m.attachments {
        eprintln!(
            "attachment (not fetched by explain): {}",
            crate::config::url_for_log(url)
        );
    }
    let channel = if channel == "hotline" {
        crate::envelope::Channel::Hotline
    } else {
        crate::envelope::Channel::Portal
    };
    use crate::store::blobs::BlobStore;
    let raw_ref = crate::store::blobs::DryRunBlobStore
        .put(raw)
        .map(|r| r.claim())
        .unwrap_or_default();
    Ok(crate::channels::http::build_envelope(
        channel,
        "explain",
        &m,
        raw_ref,
        jiff::Timestamp::now(),
    ))
}

/// Routes `env` through the daemon's path ([`crate::routing::Router::explain`], then the
/// decision stamped on the envelope and its arrival clocks started as intake does); returns
/// the trace. Without the store, explain cannot link repeat petitions (`related`,
/// `repeat_petition`): those depend on the items already recorded.
fn route_as_the_daemon(
    config: Config,
    env: &mut crate::envelope::Envelope,
) -> Result<String, ExitCode> {
    let config = std::sync::Arc::new(config);
    let router = crate::routing::Router::new(std::sync::Arc::clone(&config)).map_err(|d| {
        eprintln!("{d}");
        ExitCode::from(2)
    })?;
    let explained = router.explain(env, jiff::Timestamp::now());
    explained.routed.stamp(env);
    crate::intake::start_received_clocks(&config, &crate::metrics::Metrics::new(), env);
    Ok(explained.trace)
}

/// `petitiond explain`, within the same item boundary as intake: a panic on the record is
/// reported as the quarantine it would be, with the panic's message withheld.
fn explain(path: &Path, channel: &str, record: &Path) -> ExitCode {
    std::panic::catch_unwind(|| explain_one(path, channel, record)).unwrap_or_else(|_| {
        eprintln!(
            "{}: would be quarantined: {} (petitiond panicked on it, a bug: please report it with the file; the panic message is withheld as it may quote the record)",
            record.display(),
            crate::intake::PANIC_REASON
        );
        ExitCode::FAILURE
    })
}

fn explain_one(path: &Path, channel: &str, record: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let raw = match std::fs::read(record) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", record.display());
            return ExitCode::from(2);
        }
    };
    let normalized = match channel {
        "letter" => explain_letter(&config, &raw),
        "hotline" | "portal" => explain_record(&config, channel, &raw),
        other => {
            eprintln!("error: --channel {other}: expected `letter`, `hotline` or `portal`");
            return ExitCode::from(2);
        }
    };
    let mut env = match normalized {
        Ok(e) => e,
        Err((reason, detail)) => {
            eprintln!(
                "{}: would be quarantined: {reason} ({detail})",
                record.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let trace = match route_as_the_daemon(config, &mut env) {
        Ok(trace) => trace,
        Err(code) => return code,
    };
    match serde_json::to_string_pretty(&env.redacted()) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("\n{trace}");
    ExitCode::SUCCESS
}
