//! Scanned letters end to end: mails/s from the mailbox to envelopes acknowledged on Kafka,
//! each mail carrying a 1 MB scan, for the IMAP channel (Dovecot) and, in the same run, the
//! Maildir channel as the baseline (same mails, same daemon, same broker).
//!
//! ```text
//! eval "$(scripts/dovecot-test.sh start /tmp/petitiond-dovecot)"
//! PETITIOND_TEST_KAFKA=127.0.0.1:9092 cargo bench --bench imap
//! IMAP_BENCH_MAILS=50 IMAP_BENCH_SCAN_BYTES=1048576 cargo bench --bench imap
//! ```
//!
//! Needs `PETITIOND_TEST_KAFKA` (a broker) and the `PETITIOND_TEST_IMAP*` /
//! `PETITIOND_TEST_DOVECOT_DIR` variables that `scripts/dovecot-test.sh start` prints; without
//! them it says so and does nothing. The real `petitiond` binary runs with a fresh config per
//! channel. The mails are put in place first and then made visible at once (IMAP: one
//! `UID MOVE` from a staging folder; Maildir: renames from a staging dir into `new/`); the clock
//! runs from that moment until a consumer has read every envelope from the topic. Start-up
//! (topic checks) is outside the measurement: the daemon is ready (`/readyz`) before.

use async_imap::{Client, Session};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_petitiond");

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn main() {
    let (Some(brokers), Some(imap), Some(dovecot)) = (
        env("PETITIOND_TEST_KAFKA"),
        env("PETITIOND_TEST_IMAP"),
        env("PETITIOND_TEST_DOVECOT_DIR"),
    ) else {
        println!(
            "imap bench: skipped. It needs a Kafka broker (PETITIOND_TEST_KAFKA=host:port) and a \
             test Dovecot: eval \"$(scripts/dovecot-test.sh start /tmp/petitiond-dovecot)\""
        );
        return;
    };
    // `cargo test --benches` runs this too: keep that run small.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = env("IMAP_BENCH_MAILS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 5 } else { 100 });
    let scan: usize = env("IMAP_BENCH_SCAN_BYTES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024 * 1024);
    let mails: Vec<Vec<u8>> = (0..n).map(|i| mail(i, scan)).collect();
    let total_mb = mails.iter().map(|m| m.len()).sum::<usize>() as f64 / 1e6;
    println!(
        "imap bench: {n} mails, {} scan each, {total_mb:.1} MB of mail in all",
        human(scan)
    );

    let maildir = run_maildir(&brokers, &mails);
    let imap = run_imap(&brokers, &imap, Path::new(&dovecot), &mails);
    println!();
    println!(
        "{:<10} {:>8} {:>10} {:>10} {:>10}",
        "channel", "mails", "seconds", "mails/s", "MB/s"
    );
    for (name, secs) in [("maildir", maildir), ("imap", imap)] {
        println!(
            "{name:<10} {n:>8} {secs:>10.2} {:>10.1} {:>10.1}",
            n as f64 / secs,
            total_mb / secs
        );
    }
    println!(
        "imap / maildir throughput: {:.2}",
        (n as f64 / imap) / (n as f64 / maildir)
    );
}

fn human(b: usize) -> String {
    if b >= 1024 * 1024 {
        format!("{} MiB", b / (1024 * 1024))
    } else {
        format!("{b} bytes")
    }
}

/// A scanned letter with a `scan`-byte PDF-like attachment of pseudo-random bytes (distinct per
/// mail, so every mail is a new item).
fn mail(i: usize, scan: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mut bytes = b"%PDF-1.4\n".to_vec();
    while bytes.len() < scan {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(scan);
    let b64 = base64(&bytes);
    let mut body = String::with_capacity(b64.len() + b64.len() / 76 * 2 + 1024);
    body.push_str(&format!(
        "From: scanner-01@xfj.example.gov.cn\r\nTo: letters@xfj.example.gov.cn\r\n\
         Date: Mon, 02 Mar 2026 09:15:00 +0800\r\nSubject: bench letter {i}\r\n\
         Message-ID: <bench-{i}@scanner-01.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n来信扫描 {i}\r\n--b\r\n\
         Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan-{i}.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    ));
    for line in b64.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(line).unwrap());
        body.push_str("\r\n");
    }
    body.push_str("--b--\r\n");
    body.into_bytes()
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len() / 3 * 4 + 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running daemon with its own config, data dir and topic.
struct Daemon {
    dir: tempfile::TempDir,
    topic: String,
    admin: u16,
    child: Child,
}

impl Daemon {
    fn start(brokers: &str, mailbox: &str, files: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let id = uuid::Uuid::new_v4().simple();
        let topic = format!("bench.desk.{id}");
        let admin = free_port();
        let config = format!(
            "[daemon]\ndata_dir = \"data\"\nlog_format = \"json\"\nlog_filter = \"warn\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
             [kafka]\nbrokers = \"{brokers}\"\npartitions = 3\ndead_letter_topic = \"bench.dlq.{id}\"\n\n\
             [[departments]]\nid = \"intake-desk\"\nname = \"信访接待科\"\ntopic = \"{topic}\"\n\n\
             [routing]\ndefault_lead = \"intake-desk\"\n\n\
             [sla]\nstatus_topic = \"bench.status.{id}\"\nalerts_topic = \"bench.alerts.{id}\"\n\n\
             [channels.mailbox]\n{mailbox}\n"
        );
        let path = dir.path().join("petitiond.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("petitiond.log")).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start petitiond");
        let d = Daemon {
            dir,
            topic,
            admin,
            child,
        };
        d.wait_ready();
        d
    }

    /// Until `/readyz` answers 200 (topics verified, broker reachable).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.admin)) {
                let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
                let mut buf = String::new();
                let _ = std::io::Read::read_to_string(&mut s, &mut buf);
                if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "petitiond not ready:\n{}",
                std::fs::read_to_string(self.dir.path().join("petitiond.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// A consumer at the start of `topic`, already assigned (so the count starts before the mails).
fn consumer(brokers: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("bench-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    c.assign(&tpl).unwrap();
    c
}

/// Reads until `n` distinct envelopes have arrived; returns when the last one did.
fn until_all(c: &BaseConsumer, n: usize, what: &str) -> Instant {
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.len() < n {
        assert!(
            Instant::now() < deadline,
            "{what}: only {} of {n} envelopes",
            seen.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            seen.insert(m.key().unwrap_or_default().to_vec());
        }
    }
    Instant::now()
}

fn run_maildir(brokers: &str, mails: &[Vec<u8>]) -> f64 {
    let d = Daemon::start(brokers, "path = \"mail\"\npoll_interval_ms = 100", &[]);
    let root = d.dir.path().join("mail");
    let staging = root.join("tmp");
    std::fs::create_dir_all(&staging).unwrap();
    let names: Vec<String> = (0..mails.len())
        .map(|i| format!("{}.M{i}P1.bench", 1_772_413_200 + i))
        .collect();
    for (name, m) in names.iter().zip(mails) {
        std::fs::write(staging.join(name), m).unwrap();
    }
    let c = consumer(brokers, &d.topic);
    let t0 = Instant::now();
    for name in &names {
        std::fs::rename(staging.join(name), root.join("new").join(name)).unwrap();
    }
    let t1 = until_all(&c, mails.len(), "maildir");
    d.stop();
    (t1 - t0).as_secs_f64()
}

fn run_imap(brokers: &str, addr: &str, dovecot: &Path, mails: &[Vec<u8>]) -> f64 {
    let user = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let password = uuid::Uuid::new_v4().simple().to_string();
    std::fs::OpenOptions::new()
        .append(true)
        .open(dovecot.join("passwd"))
        .unwrap()
        .write_all(format!("{user}:{{PLAIN}}{password}::::::\n").as_bytes())
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut s = rt.block_on(login(addr, &user, &password));
    rt.block_on(async {
        s.create("Staging").await.unwrap();
        s.create("Scans").await.unwrap();
    });
    let t = Instant::now();
    for m in mails {
        rt.block_on(s.append("Staging", None, None, m)).unwrap();
    }
    println!(
        "  (appending {} mails to Dovecot took {:.2} s; not measured)",
        mails.len(),
        t.elapsed().as_secs_f64()
    );
    let (host, port) = addr.split_once(':').unwrap();
    let d = Daemon::start(
        brokers,
        &format!(
            "kind = \"imap\"\nhost = \"{host}\"\nport = {port}\ntls = \"none\"\nallow_plaintext_auth = true\nusername = \"{user}\"\n\
             password = {{ file = \"imap-password\" }}\nmailbox = \"Scans\"\nidle = true"
        ),
        &[("imap-password", &password)],
    );
    let c = consumer(brokers, &d.topic);
    // The daemon is idling on the empty folder: make every mail appear at once.
    rt.block_on(async {
        s.select("Staging").await.unwrap();
    });
    let t0 = Instant::now();
    rt.block_on(s.uid_mv("1:*", "Scans")).unwrap();
    let t1 = until_all(&c, mails.len(), "imap");
    d.stop();
    rt.block_on(async {
        let _ = s.logout().await;
    });
    (t1 - t0).as_secs_f64()
}

async fn login(addr: &str, user: &str, password: &str) -> Session<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = Client::new(tcp);
        c.read_response().await.unwrap().expect("greeting");
        match c.login(user, password).await {
            Ok(s) => return s,
            // Dovecot notices the new passwd-file line on its next look at the file.
            Err((e, _)) if Instant::now() < deadline => {
                eprintln!("login: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err((e, _)) => panic!("bench user cannot log in: {e}"),
        }
    }
}
