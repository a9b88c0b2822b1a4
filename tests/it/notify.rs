//! systemd's notify protocol, driven through a real `NOTIFY_SOCKET` datagram socket as
//! systemd's manager would see it: READY=1 only once the topics are verified, WATCHDOG=1 every
//! WATCHDOG_USEC/2, RELOADING=1 with MONOTONIC_USEC then READY=1 on SIGHUP (with and without a
//! rules file), STOPPING=1 on SIGTERM; and, with Kafka unreachable, no READY=1 at all (not even
//! after a SIGHUP) while the watchdog keeps being fed.

use crate::helpers::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The daemon under test, started with the notify environment; killed on drop.
struct Notified {
    socket: UnixDatagram,
    child: Child,
    received: Vec<String>,
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // What systemd would show (`systemctl status` prints STATUS= to anyone).
        crate::capture::write("notify-datagrams", self.received.join("\n").as_bytes());
    }
}

impl Notified {
    fn start(app: &TestApp, watchdog_usec: u64) -> Notified {
        let path = app.dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&app.log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&app.config)
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", watchdog_usec.to_string())
            .env_remove("WATCHDOG_PID")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Notified {
            socket,
            child,
            received: Vec::new(),
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Reads datagrams until one satisfies `want`; returns it. Panics after `timeout`.
    fn until(&mut self, what: &str, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.received.push(msg.clone());
                if want(&msg) {
                    return msg;
                }
            }
        }
        panic!(
            "no {what} within {timeout:?}; received: {:?}",
            self.received
        );
    }

    /// Every datagram received within `d`.
    fn collect(&mut self, d: Duration) -> Vec<String> {
        let deadline = Instant::now() + d;
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        self.received.extend(got.iter().cloned());
        got
    }

    fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("petitiond did not exit within {timeout:?}");
    }
}

fn has(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

fn monotonic_usec_now() -> i128 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    i128::from(t.tv_sec()) * 1_000_000 + i128::from(t.tv_nsec()) / 1_000
}

/// RELOADING=1 must carry MONOTONIC_USEC: systemd 253+ rejects a reload without it.
fn assert_reload_stamp(msg: &str) {
    let stamp: i128 = msg
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {msg:?}"))
        .parse()
        .unwrap();
    let now = monotonic_usec_now();
    assert!(
        stamp <= now && now - stamp < 10_000_000,
        "MONOTONIC_USEC={stamp} is not CLOCK_MONOTONIC now ({now})"
    );
}

fn reload_cycle(n: &mut Notified) {
    n.signal(nix::sys::signal::Signal::SIGHUP);
    let reloading = n.until("RELOADING=1", Duration::from_secs(10), |m| {
        has(m, "RELOADING=1")
    });
    assert_reload_stamp(&reloading);
    n.until("READY=1 after the reload", Duration::from_secs(10), |m| {
        has(m, "READY=1")
    });
}

#[test]
fn notify_socket_gets_ready_watchdog_reloading_and_stopping() {
    let Some(brokers) = broker() else { return };
    let app = TestApp::new(&brokers, "");
    // 1 s watchdog: a WATCHDOG=1 every 500 ms.
    let mut n = Notified::start(&app, 1_000_000);
    n.until("READY=1", Duration::from_secs(60), |m| has(m, "READY=1"));
    // READY=1 comes after the topics are verified: /readyz already says so.
    assert_eq!(app.http_get("/readyz"), (200, "ready\n".to_string()));
    let before: Vec<&String> = n.received.iter().filter(|m| has(m, "READY=1")).collect();
    assert_eq!(before.len(), 1, "READY=1 once: {:?}", n.received);
    let beats = n
        .collect(Duration::from_millis(2_600))
        .iter()
        .filter(|m| has(m, "WATCHDOG=1"))
        .count();
    assert!(
        (3..=8).contains(&beats),
        "{beats} WATCHDOG=1 in 2.6 s with WATCHDOG_USEC=1s"
    );

    // No rules file in this config: SIGHUP is acknowledged, and the daemon lives on.
    reload_cycle(&mut n);
    assert!(
        n.child.try_wait().unwrap().is_none(),
        "SIGHUP must not kill it"
    );
    assert_eq!(app.http_get("/readyz").0, 200);

    n.signal(nix::sys::signal::Signal::SIGTERM);
    n.until("STOPPING=1", Duration::from_secs(10), |m| {
        has(m, "STOPPING=1")
    });
    assert_eq!(n.exit_code(Duration::from_secs(30)), Some(0));
}

#[test]
fn sighup_with_a_rules_file_reports_reloading_then_ready() {
    let Some(brokers) = broker() else { return };
    let app = TestApp::new(&brokers, "");
    let dir = app.config.parent().unwrap();
    std::fs::write(
        dir.join("rules.toml"),
        "[[rule]]\nid = \"default\"\nthen.lead = \"intake-desk\"\n",
    )
    .unwrap();
    let dicts = dir.join("dictionaries");
    std::fs::create_dir_all(&dicts).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dictionaries");
    for f in std::fs::read_dir(shipped).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dicts.join(f.file_name())).unwrap();
    }
    let cfg = std::fs::read_to_string(&app.config).unwrap().replace(
        "[routing]\ndefault_lead = \"intake-desk\"\n",
        "[routing]\ndefault_lead = \"intake-desk\"\nrules_file = \"rules.toml\"\ndictionaries_dir = \"dictionaries\"\n",
    );
    assert!(cfg.contains("rules_file"), "the harness config changed");
    std::fs::write(&app.config, cfg).unwrap();
    let mut n = Notified::start(&app, 0);
    n.until("READY=1", Duration::from_secs(60), |m| has(m, "READY=1"));
    reload_cycle(&mut n);
    // A rules file that does not validate: the old rules stay, and systemd still hears READY=1.
    std::fs::write(dir.join("rules.toml"), "[[rule]]\nid = \n").unwrap();
    reload_cycle(&mut n);
    assert!(n.child.try_wait().unwrap().is_none());
    // WATCHDOG_USEC=0: no watchdog asked for, none sent.
    assert!(
        !n.received.iter().any(|m| has(m, "WATCHDOG=1")),
        "{:?}",
        n.received
    );
    n.signal(nix::sys::signal::Signal::SIGTERM);
    n.until("STOPPING=1", Duration::from_secs(10), |m| {
        has(m, "STOPPING=1")
    });
    assert_eq!(n.exit_code(Duration::from_secs(30)), Some(0));
}

/// Kafka unreachable: intake runs, but systemd must not be told READY=1 (not even by a reload
/// during start-up); the watchdog is still fed, and SIGTERM still reports STOPPING=1.
#[test]
fn no_ready_while_kafka_is_unreachable_but_the_watchdog_is_fed() {
    let no_kafka = format!("127.0.0.1:{}", free_port());
    let app = TestApp::new(&no_kafka, "");
    let cfg = std::fs::read_to_string(&app.config)
        .unwrap()
        .replace("shutdown_deadline_secs = 20", "shutdown_deadline_secs = 2");
    std::fs::write(&app.config, cfg).unwrap();
    let mut n = Notified::start(&app, 1_000_000);
    let status = n.until("STATUS=", Duration::from_secs(30), |m| {
        m.lines().any(|l| l.starts_with("STATUS=starting"))
    });
    assert!(status.contains("waiting for Kafka"), "{status:?}");
    wait_for_port(app.admin_port, Duration::from_secs(30));
    n.signal(nix::sys::signal::Signal::SIGHUP);
    let got = n.collect(Duration::from_secs(3));
    assert!(
        got.iter().filter(|m| has(m, "WATCHDOG=1")).count() >= 3,
        "{got:?}"
    );
    assert!(
        !n.received
            .iter()
            .any(|m| has(m, "READY=1") || has(m, "RELOADING=1")),
        "{:?}",
        n.received
    );
    assert_eq!(app.http_get("/readyz").0, 503);
    n.signal(nix::sys::signal::Signal::SIGTERM);
    n.until("STOPPING=1", Duration::from_secs(10), |m| {
        has(m, "STOPPING=1")
    });
    assert_eq!(n.exit_code(Duration::from_secs(30)), Some(0));
}
