//! `petitiond demo`: the whole path on embedded defaults, no services needed, routed by the
//! shipped routing.
//!
//! An in-process Kafka-protocol broker (librdkafka's mock cluster, on a loopback port that real
//! clients such as kcat can use), a Maildir that a pretend scanner fills with sample letters
//! (one of them damaged, to show quarantine), the hotline and portal simulators on loopback
//! ports (with a few 500s, one bad record and, after a few seconds, an upstream status change),
//! SQLite under a data dir. The departments, rules, dictionaries and classifier model are the
//! shipped ones (`config/`, embedded at build time and written into the demo's directory), so
//! the demo routes as `petitiond run` does; only the channels and the SLA clocks (shortened to
//! seconds) are the demo's own (`demo/petitiond-demo.toml`). The sample items are
//! `demo/petitions.toml` and `demo/letters/`. A consumer prints one line per routed record and
//! plays the departments (a status event stops a clock); once every item is routed and every
//! unstopped short clock has breached, a summary table is printed from the store.

use crate::app::{Application, shutdown_on_signals};
use crate::channels::mailbox::deliver;
use crate::config::Config;
use crate::sim::hotline::{HotlineSim, HotlineSimConfig};
use crate::sim::portal::{Pagination, PortalSim, PortalSimConfig, SigningSecret};
use crate::sim::{Faults, Script};
use crate::store::{Store, Summary};
use base64::Engine;
use rdkafka::mocking::MockCluster;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod printer;
use printer::{Watch, print_routed};

/// The demo's own settings (daemon, admin, Kafka, channels, short SLA clocks); the
/// departments and `[routing]` are taken from [`SHIPPED_CONFIG`].
const CONFIG: &str = include_str!("../demo/petitiond-demo.toml");
/// The shipped example config: its `[[departments]]` and `[routing]` (rules file,
/// dictionaries, model, completeness checks, repeat petitions) are the demo's.
const SHIPPED_CONFIG: &str = include_str!("../config/petitiond.toml");
/// The shipped routing files, written into the demo's directory beside its config, at the
/// relative paths the shipped `[routing]` names.
const SHIPPED_FILES: [(&str, &[u8]); 6] = [
    ("rules.toml", include_bytes!("../config/rules.toml")),
    (
        "dictionaries/historical.toml",
        include_bytes!("../config/dictionaries/historical.toml"),
    ),
    (
        "dictionaries/livelihood.toml",
        include_bytes!("../config/dictionaries/livelihood.toml"),
    ),
    (
        "dictionaries/policy.toml",
        include_bytes!("../config/dictionaries/policy.toml"),
    ),
    (
        "dictionaries/rights.toml",
        include_bytes!("../config/dictionaries/rights.toml"),
    ),
    (
        "model/classifier.bin",
        include_bytes!("../config/model/classifier.bin"),
    ),
];
/// The sample petitions of all three channels (see the file's head).
const PETITIONS: &str = include_str!("../demo/petitions.toml");
/// The simulators' credentials: demo values, written to files the config names.
const DEMO_API_KEY: &str = "demo-api-key";
const DEMO_PORTAL_SECRET: &str = "demo-portal-secret";

/// The pretend scanner's prepared mails: (file, bytes, should route).
const LETTERS: [(&str, &[u8], bool); 5] = [
    (
        "01-letter.eml",
        include_bytes!("../demo/letters/01-letter.eml"),
        true,
    ),
    (
        "02-letter.eml",
        include_bytes!("../demo/letters/02-letter.eml"),
        true,
    ),
    (
        "03-letter.eml",
        include_bytes!("../demo/letters/03-letter.eml"),
        true,
    ),
    (
        "04-letter.eml",
        include_bytes!("../demo/letters/04-letter.eml"),
        true,
    ),
    (
        "05-damaged.eml",
        include_bytes!("../demo/letters/05-damaged.eml"),
        false,
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Samples {
    petition: Vec<Sample>,
}

/// One sample petition of `demo/petitions.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    channel: SampleChannel,
    title: String,
    content: String,
    #[serde(default)]
    service_code: Option<String>,
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    no_contact: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SampleChannel {
    Hotline,
    Portal,
    Letter,
}

fn samples() -> anyhow::Result<Vec<Sample>> {
    let s: Samples = toml_edit::de::from_str(PETITIONS)
        .map_err(|e| anyhow::anyhow!("demo/petitions.toml: {e}"))?;
    Ok(s.petition)
}

impl Sample {
    fn script(&self) -> Script {
        Script {
            title: self.title.clone(),
            content: self.content.clone(),
            service_code: self.service_code.clone(),
            service_name: self.service_name.clone(),
            phone: self.phone.clone(),
            id_number: None,
            withhold_contact: self.no_contact,
        }
    }

    /// The letter as the scanning desk's mail: subject = title, a UTF-8 text part = content.
    fn letter_mail(&self, n: usize) -> anyhow::Result<Vec<u8>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let now = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(8)));
        let body = b64.encode(self.content.as_bytes());
        let mut wrapped = String::new();
        for chunk in body.as_bytes().chunks(76) {
            wrapped.push_str(std::str::from_utf8(chunk)?);
            wrapped.push_str("\r\n");
        }
        Ok(format!(
            "From: scanner-02@xfj.example.gov.cn\r\n\
             To: letters@xfj.example.gov.cn\r\n\
             Date: {}\r\n\
             Message-ID: <demo-{n:04}@scanner-02.xfj.example.gov.cn>\r\n\
             Subject: =?utf-8?b?{}?=\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=\"utf-8\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{wrapped}",
            jiff::fmt::rfc2822::to_string(&now)?,
            b64.encode(self.title.as_bytes()),
        )
        .into_bytes())
    }
}

/// The demo's config: its own template with the shipped `[[departments]]` and `[routing]`
/// (and `[routing.*]`) put in, so routing is exactly the shipped one.
fn demo_config(template: &str) -> anyhow::Result<String> {
    let shipped: toml_edit::DocumentMut = SHIPPED_CONFIG.parse()?;
    let mut doc: toml_edit::DocumentMut = template.parse()?;
    for key in ["departments", "routing"] {
        if doc.contains_key(key) {
            anyhow::bail!("the demo template must not set `{key}`: it is the shipped one");
        }
        let item = shipped
            .get(key)
            .ok_or_else(|| anyhow::anyhow!("config/petitiond.toml has no `{key}`"))?;
        doc.insert(key, item.clone());
    }
    Ok(doc.to_string())
}

/// Writes the shipped routing files into `dir` (where the config's relative paths point).
fn write_shipped_files(dir: &Path) -> anyhow::Result<()> {
    for (rel, bytes) in SHIPPED_FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
    }
    Ok(())
}

pub async fn run(data_dir: Option<PathBuf>, exit_when_done: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let dir = demo_dir(data_dir)?;
    let samples = samples()?;
    let mock = MockCluster::new(1)?;
    let brokers = mock.bootstrap_servers();
    let (hotline, portal) = start_simulators(&samples).await?;
    // The admin API is closed without a token: the demo makes one and prints a sign-in link.
    let admin_token = uuid::Uuid::new_v4().simple().to_string();
    let config_path = write_demo_dir(
        &dir,
        &admin_token,
        &CONFIG
            .replace("{brokers}", &brokers)
            .replace("{hotline_url}", &hotline.base_url())
            .replace("{portal_url}", &portal.base_url()),
    )?;
    let config = Config::load(&config_path).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let store_path = config.store.path.clone();
    let departments = departments(&config);
    let alerts_topic = config.sla.alerts_topic.clone();
    let mailbox = maildir(&config)?;
    // An operator would create topics on a real cluster; the mock cluster gets them here.
    for t in config.topics() {
        mock.create_topic(&t, config.kafka.partitions, 1)?;
    }

    let app = Application::build(config).await?;
    // The SLA board and its sign-in link.
    let board = app.admin_addr().map(|a| {
        let login = format!("http://{a}/login?token={admin_token}");
        (format!("http://{a}/board"), login)
    });
    print_intro(&Intro {
        dir: &dir,
        config_path: &config_path,
        brokers: &brokers,
        board: board.as_ref(),
        mailbox: &mailbox,
        hotline_url: &hotline.base_url(),
        portal_url: &portal.base_url(),
    });
    let letters = deliver_letters(&mailbox, &samples)?;
    let expected = items_to_route(letters, &hotline, &portal);

    let stop = shutdown_on_signals()?;
    let done = CancellationToken::new();
    let printer = {
        let (brokers, stop, done) = (brokers.clone(), stop.clone(), done.clone());
        let watch = Watch {
            departments: departments.clone(),
            alerts_topic,
            expected,
        };
        tokio::task::spawn_blocking(move || print_routed(&brokers, &watch, &stop, &done))
    };
    let upstream = tokio::spawn(change_upstream_later(hotline));
    let summary = tokio::spawn(summary_when_done(
        Finish {
            store_path,
            departments,
            board: board.map(|(board, _)| board),
            started,
            exit_when_done,
        },
        stop.clone(),
        done.clone(),
    ));
    let result = app.run_until_stopped(stop.clone()).await;
    let hotline = upstream.await?;
    hotline.stop().await;
    portal.stop().await;
    stop.cancel();
    printer.await??;
    summary.await??;
    println!(
        "inspect with: petitiond quarantine list --config {}",
        config_path.display()
    );
    drop(mock);
    result
}

/// The demo's directory (`data_dir`, or a new one under the temporary directory), created,
/// as an absolute path.
fn demo_dir(data_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = data_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("petitiond-demo-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    Ok(dir.canonicalize()?)
}

/// The Maildir the pretend scanner fills.
fn maildir(config: &Config) -> anyhow::Result<PathBuf> {
    match config.mailbox.clone().map(|m| m.kind) {
        Some(crate::config::MailboxKind::Maildir { path }) => Ok(path),
        _ => anyhow::bail!("the demo config needs a Maildir mailbox"),
    }
}

/// The items that should route (the letters that can, and the simulators' good records),
/// printed with the simulators' counts.
fn items_to_route(letters: usize, hotline: &HotlineSim, portal: &PortalSim) -> usize {
    let expected = letters + hotline.record_ids().len() + portal.record_ids().len();
    println!(
        "hotline has {} order(s) ({} bad), portal {} petition(s); {expected} item(s) to route",
        hotline.record_count(),
        hotline.record_count() - hotline.record_ids().len(),
        portal.record_count()
    );
    println!();
    expected
}

/// Starts the hotline and portal simulators with the sample petitions of their channels; the
/// hotline also serves one record without an id (quarantined, the others flow) and a 500 on
/// every fourth request.
async fn start_simulators(samples: &[Sample]) -> anyhow::Result<(HotlineSim, PortalSim)> {
    let hotline = HotlineSim::start(HotlineSimConfig {
        jurisdiction_id: Some("demo.12345".into()),
        api_key: Some(DEMO_API_KEY.into()),
        ..Default::default()
    })
    .await?;
    let portal = PortalSim::start(PortalSimConfig {
        pagination: Pagination::Cursor,
        signing: Some(SigningSecret {
            app_key: "petitiond-demo".into(),
            secret: DEMO_PORTAL_SECRET.into(),
        }),
        ..Default::default()
    })
    .await?;
    for s in samples {
        match s.channel {
            SampleChannel::Hotline => {
                hotline.add_scripted_record(s.script());
            }
            SampleChannel::Portal => {
                portal.add_scripted_record(s.script());
            }
            SampleChannel::Letter => {}
        }
    }
    hotline.set_faults(Faults {
        bad_record_every: Some(1),
        ..Default::default()
    });
    hotline.add_records(1);
    hotline.set_faults(Faults {
        error_500_every: Some(4),
        ..Default::default()
    });
    Ok((hotline, portal))
}

/// Fills the demo's directory: the admin token, the simulators' credentials, the shipped
/// routing files and the config made from `template` (returns its path).
fn write_demo_dir(dir: &Path, admin_token: &str, template: &str) -> anyhow::Result<PathBuf> {
    std::fs::write(dir.join("admin.token"), admin_token)?;
    std::fs::write(dir.join("hotline.key"), DEMO_API_KEY)?;
    std::fs::write(dir.join("portal.secret"), DEMO_PORTAL_SECRET)?;
    write_shipped_files(dir)?;
    let config_path = dir.join("petitiond.toml");
    std::fs::write(&config_path, demo_config(template)?)?;
    Ok(config_path)
}

/// The config's departments as the printer and the summary need them.
fn departments(config: &Config) -> BTreeMap<String, DeptInfo> {
    config
        .departments
        .iter()
        .map(|d| {
            (
                d.id.clone(),
                DeptInfo {
                    name: d.name.clone(),
                    topic: d.topic.clone(),
                    status_topic: d.status_topic.clone(),
                },
            )
        })
        .collect()
}

/// Where the demo's parts are, as its first lines show them.
struct Intro<'a> {
    dir: &'a Path,
    config_path: &'a Path,
    brokers: &'a str,
    /// The SLA board and its sign-in link, when the admin API listens.
    board: Option<&'a (String, String)>,
    mailbox: &'a Path,
    hotline_url: &'a str,
    portal_url: &'a str,
}

fn print_intro(i: &Intro<'_>) {
    let brokers = i.brokers;
    println!("petitiond demo — the shipped departments, rules, dictionaries and model");
    println!("  data dir      {}", i.dir.display());
    println!(
        "  config        {}  (its [[departments]] and [routing] are config/petitiond.toml's)",
        i.config_path.display()
    );
    println!(
        "  kafka broker  {brokers}   (embedded; try: kcat -b {brokers} -C -t petitiond.dept.hrss -f '%k %h\\n%s\\n\\n')"
    );
    if let Some((board, login)) = i.board {
        println!("  SLA board     {board}   (open {login} to sign in)");
        println!("  admin         /metrics wants `Authorization: Bearer <token in admin.token>`");
    }
    println!(
        "  maildir       {}  (drop .eml files into new/ to route more)",
        i.mailbox.display()
    );
    println!(
        "  hotline       {}/requests.json  (Open311 simulator)",
        i.hotline_url
    );
    println!(
        "  portal        {}/petitions  (signed, cursor-paged simulator)",
        i.portal_url
    );
    println!();
}

/// The pretend scanner delivers the prepared mails and the sample letters into the Maildir;
/// returns how many should route (the damaged one does not).
fn deliver_letters(mailbox: &Path, samples: &[Sample]) -> anyhow::Result<usize> {
    let mut routable_letters = 0;
    for (i, (name, bytes, routes)) in LETTERS.iter().enumerate() {
        deliver(mailbox, i as u64, bytes)?;
        routable_letters += usize::from(*routes);
        println!("scanner delivered {name}");
    }
    for (i, s) in samples
        .iter()
        .filter(|s| s.channel == SampleChannel::Letter)
        .enumerate()
    {
        let n = LETTERS.len() + i;
        deliver(mailbox, n as u64, &s.letter_mail(n)?)?;
        routable_letters += 1;
        println!("scanner delivered letter {}", n + 1);
    }
    Ok(routable_letters)
}

/// An upstream change a few seconds in: the hotline changes the second order's status, which
/// reaches the department as an update event. Returns the simulator, to stop it.
async fn change_upstream_later(hotline: HotlineSim) -> HotlineSim {
    let changed = hotline.record_ids().get(1).cloned();
    tokio::time::sleep(Duration::from_secs(4)).await;
    if let Some(id) = changed
        && hotline.update_record(&id)
    {
        println!("upstream: the hotline changed the status of order {id}");
    }
    hotline
}

/// What the demo needs to finish: the summary and what follows it.
struct Finish {
    store_path: PathBuf,
    departments: BTreeMap<String, DeptInfo>,
    /// The SLA board's address, when the admin API listens.
    board: Option<String>,
    started: std::time::Instant,
    exit_when_done: bool,
}

/// Once the scenario has played out (`done`): the summary, read from the store; then stops
/// the demo (with `exit_when_done`) or says where the board is. Nothing if `stop` comes first.
async fn summary_when_done(
    c: Finish,
    stop: CancellationToken,
    done: CancellationToken,
) -> anyhow::Result<()> {
    tokio::select! {
        _ = done.cancelled() => {}
        _ = stop.cancelled() => return Ok(()),
    }
    let store_path = c.store_path;
    let s = tokio::task::spawn_blocking(move || {
        let store = crate::store::SqliteStore::open(&store_path, Duration::from_secs(5))?;
        anyhow::Ok(store.summary()?)
    })
    .await??;
    println!();
    print!("{}", summary_table(&s, &c.departments));
    println!();
    println!(
        "demo scenario done in {:.1} s",
        c.started.elapsed().as_secs_f64()
    );
    if c.exit_when_done {
        stop.cancel();
    } else if let Some(board) = &c.board {
        println!("petitiond keeps running: the SLA board is at {board}; Ctrl-C stops it");
    }
    Ok(())
}

/// A department as the printer needs it.
#[derive(Debug, Clone)]
struct DeptInfo {
    name: String,
    topic: String,
    /// Where the demo, playing this department, sends its status events.
    status_topic: String,
}

/// Renders the closing summary: items per channel, per department (lead and assist), per
/// category and per flag; SLA clocks open / warned / breached / stopped; quarantine by reason.
fn summary_table(s: &Summary, departments: &BTreeMap<String, DeptInfo>) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let count = |l: &[(String, u64)], k: &str| {
        l.iter()
            .find(|(label, _)| label == k)
            .map_or(0, |(_, n)| *n)
    };
    let _ = writeln!(o, "==== summary: {} item(s) ====", s.items);
    let _ = writeln!(o, "{:<28} {:>6}", "channel", "items");
    for (c, n) in &s.by_channel {
        let _ = writeln!(o, "{c:<28} {n:>6}");
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<34} {:>6} {:>7}", "department", "lead", "assist");
    let mut leads = 0;
    for (id, d) in departments {
        let (lead, assist) = (count(&s.by_lead, id), count(&s.by_assist, id));
        if lead + assist == 0 {
            continue;
        }
        leads += usize::from(lead > 0);
        let label = format!("{id} {}", d.name);
        let pad = (34 + label.chars().count()).saturating_sub(display_width(&label));
        let _ = writeln!(o, "{label:<pad$} {lead:>6} {assist:>7}");
    }
    let _ = writeln!(o, "lead departments: {leads}");
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<28} {:>6}", "category", "items");
    for (c, n) in &s.by_category {
        let _ = writeln!(o, "{c:<28} {n:>6}");
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<28} {:>6}", "flag", "items");
    for (f, n) in &s.by_flag {
        let _ = writeln!(o, "{f:<28} {n:>6}");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<28} {:>6} {:>7} {:>9} {:>8}",
        "SLA clock", "open", "warned", "breached", "stopped"
    );
    let mut total = (0, 0, 0, 0);
    for c in &s.clocks {
        let _ = writeln!(
            o,
            "{:<28} {:>6} {:>7} {:>9} {:>8}",
            c.clock_id, c.open, c.warned, c.breached, c.stopped
        );
        total = (
            total.0 + c.open,
            total.1 + c.warned,
            total.2 + c.breached,
            total.3 + c.stopped,
        );
    }
    let _ = writeln!(
        o,
        "{:<28} {:>6} {:>7} {:>9} {:>8}",
        "all clocks", total.0, total.1, total.2, total.3
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<28} {:>6}", "quarantined (source, reason)", "inputs");
    for (source, reason, n) in &s.quarantined {
        let _ = writeln!(o, "{:<28} {n:>6}", format!("{source}, {reason}"));
    }
    o
}

/// Terminal columns of `s`: CJK characters take two.
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| if (c as u32) >= 0x1100 { 2 } else { 1 })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo embeds every dictionary the package ships: a new file under
    /// config/dictionaries/ must be added to SHIPPED_FILES too.
    #[test]
    fn the_demo_embeds_every_shipped_dictionary() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dictionaries");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| format!("dictionaries/{}", e.unwrap().file_name().to_string_lossy()))
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = SHIPPED_FILES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| n.starts_with("dictionaries/"))
            .collect();
        assert_eq!(embedded, on_disk);
    }

    /// The demo's config routes with the shipped departments and [routing], and every sample
    /// petition parses.
    #[test]
    fn the_demo_config_takes_the_shipped_departments_and_routing() {
        let text = demo_config(CONFIG).unwrap();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        let shipped: toml_edit::DocumentMut = SHIPPED_CONFIG.parse().unwrap();
        let depts = |d: &toml_edit::DocumentMut| {
            d["departments"]
                .as_array_of_tables()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(depts(&doc), depts(&shipped));
        assert!(depts(&doc).len() >= 5);
        assert_eq!(
            doc["routing"]["rules_file"].as_str(),
            Some("rules.toml"),
            "{text}"
        );
        assert_eq!(
            doc["routing"]["model_file"].as_str(),
            shipped["routing"]["model_file"].as_str()
        );
        let s = samples().unwrap();
        for c in [
            SampleChannel::Hotline,
            SampleChannel::Portal,
            SampleChannel::Letter,
        ] {
            assert!(s.iter().any(|p| p.channel == c), "{c:?}");
        }
    }
}
