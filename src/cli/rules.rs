//! `rules check/test/eval/train` and `rules corrections export`.

use super::*;
use petitiond_core::routing::rules::RuleSet;

/// The configured rules, loaded as the daemon loads them; errors printed, exit status 2.
fn rules_of(
    config: &Config,
) -> Result<(RuleSet, Vec<petitiond_core::diag::ConfigError>), ExitCode> {
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

pub(super) fn rules_command(command: RulesCommand) -> ExitCode {
    match command {
        RulesCommand::Train {
            dictionaries,
            corpus,
            out,
            folds,
            bits,
            epochs,
            dict_weight,
        } => {
            let o = petitiond_core::routing::model::TrainOptions {
                folds,
                bits,
                epochs,
                dict_weight: (dict_weight > 0.0).then_some(dict_weight),
                ..Default::default()
            };
            finish(
                rules_train(&dictionaries, &corpus, &out, &o),
                ExitCode::from(2),
            )
        }
        // The store's data only: no rules needed.
        RulesCommand::Corrections {
            command: CorrectionsCommand::Export { config, out },
        } => with_config(&config, |config| {
            finish(corrections_export(&config, &out), ExitCode::from(2))
        }),
        RulesCommand::Check { config } => {
            with_rules(&config, |_, rules, warnings| rules_check(&rules, &warnings))
        }
        RulesCommand::Test { config, cases } => {
            with_rules(&config, |_, rules, _| rules_test(&rules, &cases))
        }
        RulesCommand::Eval {
            config,
            corpus,
            corrections,
            misses,
            no_model,
            min_accuracy,
        } => with_rules(&config, |config, rules, _| {
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
        }),
    }
}

/// Runs `command` on the config at `path` and its rules (with their warnings); exits 2 when
/// either does not load.
fn with_rules(
    path: &Path,
    command: impl FnOnce(Config, RuleSet, Vec<petitiond_core::diag::ConfigError>) -> ExitCode,
) -> ExitCode {
    with_config(path, |config| match rules_of(&config) {
        Ok((rules, warnings)) => command(config, rules, warnings),
        Err(code) => code,
    })
}

/// `rules check`: the warnings, then one line.
fn rules_check(rules: &RuleSet, warnings: &[petitiond_core::diag::ConfigError]) -> ExitCode {
    for w in warnings {
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

/// `rules test`: the operator cases' report; fails when a case does.
fn rules_test(rules: &RuleSet, cases: &Path) -> ExitCode {
    match petitiond_core::routing::rules::run_cases(rules, cases) {
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

fn corpus_errors(errs: Vec<petitiond_core::diag::ConfigError>) -> anyhow::Error {
    let n = errs.len();
    let text: Vec<String> = errs.iter().take(20).map(|e| e.to_string()).collect();
    anyhow::anyhow!("{}\n{n} bad line(s)", text.join("\n"))
}

/// `rules eval`: prints the report; returns the accuracy.
fn rules_eval(
    config: &Config,
    rules: &RuleSet,
    corpus: Option<&Path>,
    corrections: bool,
    misses: bool,
) -> anyhow::Result<f64> {
    use petitiond_core::routing::eval;
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
        let store = crate::storage::open_store_only(&config.store, false)?;
        let all = store.corrections()?;
        let mut items = Vec::new();
        let (mut with_dept, mut lead_agrees) = (0usize, 0usize);
        for (i, c) in all.iter().enumerate() {
            let Some(env) = &c.envelope else { continue };
            let title = env.request.title.as_ref().map_or("", |t| t.expose());
            if let Some(d) = &c.department {
                with_dept += 1;
                let input = petitiond_core::routing::rules::Input::from_envelope(
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
    o: &petitiond_core::routing::model::TrainOptions,
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
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let store = crate::storage::open_store_only(&config.store, false)?;
    let all = store.corrections()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let mut n = 0;
    for c in &all {
        if let Some(line) = petitiond_core::routing::corrections::export_line(c) {
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
