//! The one harness: starts the real `petitiond` binary against the real broker, one
//! temporary directory and unique topics per test (like zero2prod's `spawn_app`).

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_petitiond");

/// The shared broker started by the test script. Under `CI=true` a missing broker fails the
/// test; elsewhere the test is skipped with a note (so `cargo test` works without services).
pub fn broker() -> Option<String> {
    match std::env::var("PETITIOND_TEST_KAFKA") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "PETITIOND_TEST_KAFKA is not set: the test broker is missing (run scripts/test.sh)"
                );
            }
            eprintln!(
                "skipped: PETITIOND_TEST_KAFKA not set (run scripts/test.sh for the broker tests)"
            );
            None
        }
    }
}

/// The tansu binary, for tests that stop and restart their own broker.
pub fn tansu_bin() -> Option<PathBuf> {
    match std::env::var("PETITIOND_TANSU_BIN") {
        Ok(b) if !b.is_empty() => Some(PathBuf::from(b)),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("PETITIOND_TANSU_BIN is not set (run scripts/test.sh)");
            }
            eprintln!("skipped: PETITIOND_TANSU_BIN not set");
            None
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}.{}", uuid::Uuid::new_v4().simple())
}

/// A tansu broker owned by one test, with SQLite storage so it survives a restart.
pub struct OwnBroker {
    pub addr: String,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl OwnBroker {
    pub fn start(bin: &Path, dir: &Path) -> OwnBroker {
        let port = free_port();
        let mut b = OwnBroker {
            addr: format!("127.0.0.1:{port}"),
            port,
            dir: dir.to_path_buf(),
            log: dir.join("tansu.log"),
            child: None,
        };
        b.up(bin);
        b
    }

    pub fn up(&mut self, bin: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // tansu resolves the sqlite path against its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(30));
    }

    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.down();
    }
}

pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} did not open");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The admin token every `TestApp` is configured with (`admin.token` from a file).
pub const ADMIN_TOKEN: &str = "it-admin-token-0123456789abcdef";

pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub maildir: PathBuf,
    pub topic: String,
    pub dlq: String,
    pub admin_port: u16,
    pub log: PathBuf,
    child: Option<Child>,
    delivered: u64,
}

impl TestApp {
    /// Writes a config for `brokers` with fresh topics; `extra_kafka` lands inside `[kafka]`.
    pub fn new(brokers: &str, extra_kafka: &str) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let topic = unique("it.desk");
        let dlq = unique("it.dlq");
        let admin_port = free_port();
        let config = dir.path().join("petitiond.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[daemon]
data_dir = "data"
shutdown_deadline_secs = 20
log_format = "json"
log_filter = "info,librdkafka=warn"

[admin]
listen = "127.0.0.1:{admin_port}"
token = {{ file = "admin.token" }}

[kafka]
brokers = "{brokers}"
partitions = 3
retry_backoff_ms = 200
dead_letter_topic = "{dlq}"
{extra_kafka}

[[departments]]
id = "intake-desk"
name = "信访接待科"
topic = "{topic}"

[routing]
default_lead = "intake-desk"

[channels.mailbox]
path = "mail"
poll_interval_ms = 100
"#
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("admin.token"), format!("{ADMIN_TOKEN}\n")).unwrap();
        let maildir = dir.path().join("mail");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let log = dir.path().join("petitiond.log");
        TestApp {
            dir,
            config,
            maildir,
            topic,
            dlq,
            admin_port,
            log,
            child: None,
            delivered: 0,
        }
    }

    /// Appends TOML to the config file (e.g. channel sections).
    pub fn append_config(&self, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.config)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    pub fn start(&mut self) {
        self.start_with_umask(None);
    }

    /// Starts the daemon from a shell that set `umask` first (e.g. "000").
    pub fn start_with_umask(&mut self, umask: Option<&str>) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = match umask {
            None => Command::new(BIN),
            Some(u) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("umask {u} && exec \"$0\" \"$@\""), BIN]);
                c
            }
        };
        let child = cmd
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start petitiond");
        self.child = Some(child);
        wait_for_port(self.admin_port, Duration::from_secs(30));
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let mut c = self.child.take().expect("not running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!(
                    "petitiond did not stop within {timeout:?} after SIGTERM\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit on its own; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let mut c = self.child.take().expect("not running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("petitiond did not exit within {timeout:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Sends `sig` to the running daemon (SIGSTOP/SIGCONT to freeze and resume it).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let c = self.child.as_ref().expect("not running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig).unwrap();
    }

    /// A second instance of the same installation: its own directory, data dir (lock) and
    /// admin port, the same config otherwise — the same topics, the same Maildir (absolute),
    /// the secrets' files copied. The caller adds what both share (`[store]`, `[cluster]`).
    pub fn twin(&self) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let admin_port = free_port();
        let text = std::fs::read_to_string(&self.config)
            .unwrap()
            .replace(
                &format!("listen = \"127.0.0.1:{}\"", self.admin_port),
                &format!("listen = \"127.0.0.1:{admin_port}\""),
            )
            .replace(
                "path = \"mail\"",
                &format!("path = \"{}\"", self.maildir.display()),
            );
        let config = dir.path().join("petitiond.toml");
        std::fs::write(&config, text).unwrap();
        for f in ["admin.token", "hotline.key", "portal.secret"] {
            let from = self.dir.path().join(f);
            if from.exists() {
                std::fs::copy(&from, dir.path().join(f)).unwrap();
            }
        }
        let log = dir.path().join("petitiond.log");
        TestApp {
            dir,
            config,
            maildir: self.maildir.clone(),
            topic: self.topic.clone(),
            dlq: self.dlq.clone(),
            admin_port,
            log,
            child: None,
            delivered: self.delivered + 1_000_000,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Delivers a mail into the Maildir as an MDA would; returns its expected item id.
    pub fn deliver(&mut self, raw: &[u8]) -> String {
        self.delivered += 1;
        let name = format!(
            "{}.M{}P1.test",
            1_772_413_200 + self.delivered,
            self.delivered
        );
        let tmp = self.maildir.join("tmp").join(&name);
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(raw).unwrap();
        f.sync_all().unwrap();
        std::fs::rename(&tmp, self.maildir.join("new").join(&name)).unwrap();
        petitiond::envelope::ItemId::derive(
            petitiond::envelope::Channel::Letter,
            &petitiond::channels::mailbox::parse::upstream_id(raw),
        )
        .to_string()
    }

    /// Delivers a mail with a Maildir name carrying the current time (so SLA clocks start now).
    pub fn deliver_now(&mut self, raw: &[u8]) -> String {
        self.delivered += 1;
        let name = format!(
            "{}.M{}P2.test",
            jiff::Timestamp::now().as_second(),
            self.delivered
        );
        let tmp = self.maildir.join("tmp").join(&name);
        std::fs::write(&tmp, raw).unwrap();
        std::fs::rename(&tmp, self.maildir.join("new").join(&name)).unwrap();
        petitiond::envelope::ItemId::derive(
            petitiond::envelope::Channel::Letter,
            &petitiond::channels::mailbox::parse::upstream_id(raw),
        )
        .to_string()
    }

    pub fn http_get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.admin_port);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (status, body) = rt.block_on(async {
            let r = reqwest::Client::new()
                .get(&url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        });
        crate::capture::http(path, status, &body);
        (status, body)
    }

    /// A URL that signs a browser in (the admin cookie) and takes it to `next` (a path).
    pub fn login_url(&self, next: &str) -> String {
        let mut next_q = String::new();
        for b in next.bytes() {
            if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
                next_q.push(b as char);
            } else {
                next_q.push_str(&format!("%{b:02X}"));
            }
        }
        format!(
            "http://127.0.0.1:{}/login?token={ADMIN_TOKEN}&next={next_q}",
            self.admin_port
        )
    }

    pub fn petitiond(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        crate::capture::output(&format!("cli-{}", args.first().unwrap_or(&"")), &out);
        out
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        crate::capture::file("daemon-log", &self.log);
        crate::capture::readable_files(&self.dir.path().join("data"));
        if std::thread::panicking() {
            eprintln!("--- petitiond log ---\n{}", self.logs());
        }
    }
}

/// A test scanned letter: unique by `n`, with a small PDF scan.
pub fn letter(n: usize) -> Vec<u8> {
    format!(
        "From: scanner-01@xfj.example.gov.cn\r\n\
To: letters@xfj.example.gov.cn\r\n\
Date: Mon, 02 Mar 2026 09:{:02}:00 +0800\r\n\
Subject: =?UTF-8?B?{}?=\r\n\
Message-ID: <it-{n}@scanner-01.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
来信人反映第{n}号小区供暖不足，电话13812345678。\r\n\
--b\r\n\
Content-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"scan-{n}.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJcOkw7zDtsOfCg==\r\n\
--b--\r\n",
        n % 60,
        b64(&format!("来信扫描 第{n}号"))
    )
    .into_bytes()
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub headers: HashMap<String, String>,
    pub payload: Vec<u8>,
    /// Where it sits on the topic, and the broker's timestamp (ms), to tell a second copy on
    /// the log from a record read twice.
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
}

/// Reads `topic` from the beginning until `expected` records have arrived, then keeps reading
/// for `settle` to catch any duplicate; panics after `timeout`.
pub fn consume(
    brokers: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("it-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    // The topic exists once petitiond has verified its topics.
    let partitions = loop {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        if let Ok(md) = md {
            let ps: Vec<i32> = md
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if !ps.is_empty() {
                break ps;
            }
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut settle_until: Option<Instant> = None;
    loop {
        if let Some(s) = settle_until
            && Instant::now() > s
        {
            break;
        }
        if settle_until.is_none() && Instant::now() > deadline {
            panic!(
                "only {} of {expected} records arrived on {topic}",
                out.len()
            );
        }
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                headers,
                payload: m.payload().unwrap_or_default().to_vec(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp_ms: m.timestamp().to_millis(),
            });
        }
        if out.len() >= expected && settle_until.is_none() {
            settle_until = Some(Instant::now() + settle);
        }
    }
    crate::capture::records(topic, &out);
    out
}

/// Asserts every id in `expected` arrived exactly once (no loss, no duplicate).
pub fn assert_exactly_once(records: &[Record], expected: &[String]) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for r in records {
        *count.entry(r.key.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    // Each copy with its place on the log and its CloudEvents id and type: the same ce_id at
    // two offsets is a re-send, two ce_ids are two outbox rows, one offset twice a re-read.
    let copies: Vec<String> = records
        .iter()
        .filter(|r| count.get(r.key.as_str()).is_some_and(|n| *n > 1))
        .map(|r| {
            format!(
                "{} p{}@{} ts={:?} ce_id={:?} ce_type={:?}",
                r.key,
                r.partition,
                r.offset,
                r.timestamp_ms,
                r.headers.get("ce_id"),
                r.headers.get("ce_type")
            )
        })
        .collect();
    assert!(
        dups.is_empty(),
        "duplicates on the topic: {dups:?}\n{}",
        copies.join("\n")
    );
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !count.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} items lost: {missing:?}",
        missing.len(),
        expected.len()
    );
    assert_eq!(records.len(), expected.len(), "unexpected extra records");
}

/// The Dovecot started by the test script (scripts/dovecot-test.sh). Under `CI=true` a missing
/// server fails the test; elsewhere the test is skipped with a note.
pub fn imap_server() -> Option<ImapServer> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("PETITIOND_TEST_IMAP"),
        var("PETITIOND_TEST_IMAPS"),
        var("PETITIOND_TEST_DOVECOT_DIR"),
    ) {
        (Some(addr), Some(tls_addr), Some(dir)) => Some(ImapServer {
            addr,
            tls_addr,
            dir: PathBuf::from(dir),
        }),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "PETITIOND_TEST_IMAP / PETITIOND_TEST_IMAPS / PETITIOND_TEST_DOVECOT_DIR are not set: the test IMAP server is missing (run scripts/test.sh)"
                );
            }
            eprintln!(
                "skipped: PETITIOND_TEST_IMAP not set (run scripts/test.sh for the IMAP tests)"
            );
            None
        }
    }
}

/// The test Dovecot: plain/STARTTLS address, implicit-TLS address, and its directory (config,
/// passwd-file, test CA).
pub struct ImapServer {
    pub addr: String,
    pub tls_addr: String,
    pub dir: PathBuf,
}

impl ImapServer {
    /// A fresh user of its own (appended to Dovecot's passwd-file): (name, password).
    pub fn new_user(&self) -> (String, String) {
        let user = format!("it-{}", uuid::Uuid::new_v4().simple());
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("passwd"))
            .unwrap();
        // One write per line: concurrent tests append whole lines.
        f.write_all(format!("{user}:{{PLAIN}}{password}::::::\n").as_bytes())
            .unwrap();
        (user, password)
    }

    /// Runs `doveadm` against this server; panics if it fails.
    pub fn doveadm(&self, args: &[&str]) -> String {
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .args(args)
            .output()
            .expect("run doveadm");
        assert!(
            out.status.success(),
            "doveadm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

/// Debian's headless Chromium for the board tests: `PETITIOND_TEST_CHROMIUM` (set by
/// scripts/test.sh), else `/usr/bin/chromium`. Under `CI=true` a missing browser fails the
/// test; elsewhere the test is skipped with a note.
pub fn chromium() -> Option<PathBuf> {
    let path = std::env::var("PETITIOND_TEST_CHROMIUM")
        .ok()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "no Chromium at {} (set PETITIOND_TEST_CHROMIUM or run scripts/test.sh, which installs Debian's chromium)",
            path.display()
        );
    }
    eprintln!(
        "skipped: no Chromium at {} (run scripts/test.sh for the browser tests)",
        path.display()
    );
    None
}

/// Loads `url` in headless Chromium (fresh profile, no network besides the page) and returns
/// the DOM after load (`--dump-dom`); with `screenshot`, writes a PNG instead and returns "".
pub fn browse(chromium: &Path, url: &str, screenshot: Option<&Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(png) => cmd
            .arg(format!("--screenshot={}", png.display()))
            .arg("--window-size=1280,900"),
        None => cmd.arg("--dump-dom"),
    };
    let mut child = cmd
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish loading {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    crate::capture::write("chromium-dom", out.as_bytes());
    assert!(
        status.success(),
        "chromium failed ({status}) on {url}:\n{err}"
    );
    out
}

/// Produces one status event (`body`, as JSON) to `topic`, keyed by `item`, and waits for the
/// broker's acknowledgement: what a department's system does.
pub fn send_status(brokers: &str, topic: &str, item: &str, body: serde_json::Value) {
    let p: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let payload = body.to_string();
    rt.block_on(
        p.send(
            rdkafka::producer::FutureRecord::to(topic)
                .key(item)
                .payload(&payload),
            Duration::from_secs(10),
        ),
    )
    .map_err(|(e, _)| e)
    .unwrap();
}
