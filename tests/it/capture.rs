//! What the suite observes, kept for the personal-data scan (ARCHITECTURE.md, "Personal-data
//! scan"): with `PETITIOND_PII_CAPTURE_DIR` set, the harness writes into that directory every
//! log of a process it started (the daemon's stderr/stdout, CLI output), every admin-API
//! answer (`/metrics`, `/board`, `/board.json`, `/channels`, `/readyz`, the board's DOM as
//! Chromium rendered it), every Kafka record it consumed (headers always; the payload unless
//! it is an item envelope, which carries the petitioner's data to the departments by design),
//! every alert mail the test SMTP server received (headers and decoded text), and any file
//! in a daemon's data directory that group or others could read. `tests/pii_scan.rs` then
//! reads the directory and fails on any raw ID number, phone number or petitioner name.
//!
//! Without the variable every function here does nothing. It does not judge what it writes:
//! the scanner does.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The envelope types: their payload is the petition itself, for the departments.
const ENVELOPE_TYPES: [&str; 3] = [
    "cn.gov.petition.item.routed.v1",
    "cn.gov.petition.item.updated.v1",
    "cn.gov.petition.item.supplemented.v1",
];

/// The capture directory, created on first use; `None` when capture is off.
pub fn dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::var_os("PETITIOND_PII_CAPTURE_DIR").filter(|d| !d.is_empty())?;
        let d = PathBuf::from(d);
        std::fs::create_dir_all(&d).expect("create PETITIOND_PII_CAPTURE_DIR");
        Some(d)
    })
    .as_deref()
}

/// The running test's name (libtest names the thread after it), safe as a file name.
fn test_name() -> String {
    let t = std::thread::current();
    let name = t.name().unwrap_or("unnamed");
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '.'
            }
        })
        .collect()
}

/// Writes one observation: `<test>.<what>.<seq>.txt`.
pub fn write(what: &str, bytes: &[u8]) {
    let Some(dir) = dir() else { return };
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let what: String = what
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let path = dir.join(format!(
        "{}.{what}.{n:06}.{}.txt",
        test_name(),
        std::process::id()
    ));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("capture {}: {e}", path.display()));
}

/// A file a process wrote (a log), copied whole.
pub fn file(what: &str, path: &Path) {
    if dir().is_none() {
        return;
    }
    if let Ok(bytes) = std::fs::read(path) {
        write(what, &bytes);
    }
}

/// A finished command's stdout and stderr.
pub fn output(what: &str, out: &std::process::Output) {
    if dir().is_none() {
        return;
    }
    write(&format!("{what}-stdout"), &out.stdout);
    write(&format!("{what}-stderr"), &out.stderr);
}

/// An admin-API answer.
pub fn http(path: &str, status: u16, body: &str) {
    if dir().is_none() {
        return;
    }
    let what = format!(
        "admin-{}",
        path.split('?')
            .next()
            .unwrap_or(path)
            .trim_start_matches('/')
    );
    write(&what, format!("GET {path} -> {status}\n{body}").as_bytes());
}

/// Records consumed from a topic: every header; the payload unless it is an item envelope.
pub fn records(topic: &str, records: &[crate::helpers::Record]) {
    if dir().is_none() || records.is_empty() {
        return;
    }
    let mut text = String::new();
    for r in records {
        let ce_type = r.headers.get("ce_type").map(String::as_str).unwrap_or("");
        let mut headers: Vec<_> = r.headers.iter().collect();
        headers.sort();
        text.push_str(&format!(
            "record {topic} p{}@{} key={}\n",
            r.partition, r.offset, r.key
        ));
        for (k, v) in headers {
            text.push_str(&format!("header {k}: {v}\n"));
        }
        if ENVELOPE_TYPES.contains(&ce_type) {
            text.push_str("payload: (an item envelope, for the departments: not captured)\n");
        } else {
            text.push_str("payload: ");
            text.push_str(&String::from_utf8_lossy(&r.payload));
            text.push('\n');
        }
    }
    write("kafka", text.as_bytes());
}

/// Every mail in a Maildir (the test SMTP server's): raw headers, decoded subject and text.
pub fn maildir(what: &str, maildir: &Path) {
    if dir().is_none() {
        return;
    }
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(raw) = std::fs::read(e.path()) else {
                continue;
            };
            let mut text = String::new();
            let head_end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
                .unwrap_or(raw.len());
            text.push_str(&String::from_utf8_lossy(&raw[..head_end]));
            text.push('\n');
            if let Some(m) = mail_parser::MessageParser::default().parse(&raw) {
                text.push_str(&format!(
                    "decoded subject: {}\n",
                    m.subject().unwrap_or_default()
                ));
                for i in 0..m.text_body_count() {
                    text.push_str(&m.body_text(i).unwrap_or_default());
                    text.push('\n');
                }
                for i in 0..m.html_body_count() {
                    text.push_str(&m.body_html(i).unwrap_or_default());
                    text.push('\n');
                }
            }
            write(what, text.as_bytes());
        }
    }
}

/// Files under `data_dir` that group or others could read: what the daemon leaves where
/// other users of the machine could see it (the daemon makes everything owner-only, so
/// normally nothing). Each is copied, and `readable-files` lists them.
pub fn readable_files(data_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if dir().is_none() {
        return;
    }
    let mut stack = vec![data_dir.to_path_buf()];
    let mut listed = String::new();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() && md.permissions().mode() & 0o044 != 0 {
                listed.push_str(&format!("{}\n", e.path().display()));
                file("readable-file", &e.path());
            }
        }
    }
    if !listed.is_empty() {
        write("readable-files", listed.as_bytes());
    }
}

/// `Command::output()` with its stdout and stderr captured: `.output().captured()`.
pub trait Captured {
    fn captured(self) -> std::process::Output;
}

impl Captured for std::io::Result<std::process::Output> {
    fn captured(self) -> std::process::Output {
        let out = self.expect("run the command");
        output("cli", &out);
        out
    }
}
