//! Command line: `run`, `check`, `demo`, `sla due`, `calendar show`, `rules check/test/eval/train`,
//! `rules corrections export`, `explain`, `dlq list/replay`, `quarantine list`,
//! `writeback list/replay`, `report monthly/key-cases`.//!
//! One module per command group: [`sla`] (`sla due`, `calendar show`), [`rules`] (`rules ...`),
//! [`explain`], [`records`] (`dlq`, `quarantine`, `writeback`, `ledger`) and [`report`]. This
//! file holds the argument types, the one config-loading helper ([`with_config`]) and the
//! dispatch.

mod explain;
mod records;
mod report;
mod rules;
mod sla;

pub use sla::{calendar_show, sla_due, sla_due_json};

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
    #[cfg(feature = "demo")]
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
        #[arg(long, default_value_t = petitiond_core::routing::model::TrainOptions::default().bits)]
        bits: u32,
        #[arg(long, default_value_t = petitiond_core::routing::model::TrainOptions::default().epochs)]
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

/// Runs `command` on the validated config at `path`; when the config does not load, its
/// errors are printed (as `load` does) and the exit status is 2. Every command that reads a
/// config goes through here or `load`.
fn with_config(path: &Path, command: impl FnOnce(Config) -> ExitCode) -> ExitCode {
    match load(path) {
        Ok(c) => command(c),
        Err(code) => code,
    }
}

/// The exit status of a command that printed its output: an error is printed with its chain
/// and exits with `failure`.
fn finish(result: anyhow::Result<()>, failure: ExitCode) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            failure
        }
    }
}

/// The store named by the config (`[store]`).
fn open_store(config: &Config) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
    crate::storage::open_store_only(&config.store, false)
}

pub fn main() -> ExitCode {
    // First: a panic's message may quote a petitioner's data (see `panics`).
    crate::panics::install();
    dispatch(Cli::parse().command)
}

/// Runs one command.
fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Check {
            config,
            allow_shared_data_dir,
        } => with_config(&config, |c| check(&config, c, allow_shared_data_dir)),
        Command::Run {
            config,
            allow_shared_data_dir,
        } => with_config(&config, |c| run(c, allow_shared_data_dir)),
        #[cfg(feature = "demo")]
        Command::Demo {
            data_dir,
            exit_when_done,
        } => {
            crate::store::files::restrict_umask();
            init_logging(LogFormat::Pretty, "warn,petitiond=info");
            runtime(crate::demo::run(data_dir, exit_when_done))
        }
        Command::Sla { command } => sla::sla_command(command),
        Command::Calendar { command } => sla::calendar_command(command),
        Command::Rules { command } => rules::rules_command(command),
        Command::Explain {
            config,
            channel,
            record,
        } => explain::explain(&config, &channel, &record),
        Command::Dlq { command } => records::dlq_command(command),
        Command::Writeback { command } => records::writeback_command(command),
        Command::Ledger {
            config,
            since,
            department,
            format,
        } => records::ledger(&config, since.as_deref(), department, format),
        Command::Report { command } => report::report_command(command),
        Command::Quarantine { command } => records::quarantine_command(command),
    }
}

/// `petitiond check`: the config loaded, the data directory private, calendar warnings.
fn check(path: &Path, mut c: Config, allow_shared_data_dir: bool) -> ExitCode {
    c.allow_shared_data_dir |= allow_shared_data_dir;
    if let Err(e) = crate::app::check_private_dirs(&c) {
        eprintln!("{}: {e}", path.display());
        return ExitCode::from(2);
    }
    for w in crate::sla::calendar_warnings(&c.sla, jiff::Timestamp::now()) {
        eprintln!("warning: {w}");
    }
    println!(
        "{}: ok ({} departments, {} topics, mailbox {})",
        path.display(),
        c.departments.len(),
        c.topics().len(),
        if c.mailbox.is_some() { "on" } else { "off" }
    );
    ExitCode::SUCCESS
}

/// `petitiond run`: the daemon until SIGTERM/SIGINT.
fn run(mut config: Config, allow_shared_data_dir: bool) -> ExitCode {
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
