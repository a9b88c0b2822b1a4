//! The section-independent half of stage two: a [`Validator`] collects every error of a
//! config file, each with its file, line and key path (through [`TomlFile`]), and offers the
//! checks every section shares — positive numbers, Kafka topic names, e-mail addresses, paths
//! relative to the config file, secrets from the environment, a file or a systemd credential.
//!
//! Each component validates its own section with one: a function that takes
//! `&mut Validator` and its raw (serde) section and returns the validated type, pushing an
//! error for every problem it finds. What a section means is not this module's business.

use super::toml_file::TomlFile;
use super::{ConfigError, Secret};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where a secret's value comes from: an environment variable, a file, or a systemd
/// credential (`$CREDENTIALS_DIRECTORY/NAME`, from the unit's `LoadCredential=`). Never the TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretRef {
    pub env: Option<String>,
    pub file: Option<String>,
    pub credential: Option<String>,
}

/// Why a password with a plaintext transport is refused (config errors).
pub const PLAINTEXT_AUTH: &str = "the password would cross the network in clear text; use TLS, or set `allow_plaintext_auth = true` (loopback or a trusted network only)";

/// Stage two's error collector over one parsed file. Pushes every error it is told of, in
/// order; the caller sorts them by line at the end.
pub struct Validator<'a> {
    toml: &'a TomlFile<'a>,
    errors: Vec<ConfigError>,
    /// Relative paths in the file resolve against this (the config file's directory).
    base_dir: &'a Path,
}

impl<'a> Validator<'a> {
    /// A validator over `toml` that starts with `errors` (stage one's, usually).
    pub fn new(toml: &'a TomlFile<'a>, errors: Vec<ConfigError>, base_dir: &'a Path) -> Self {
        Validator {
            toml,
            errors,
            base_dir,
        }
    }

    /// The directory relative paths resolve against.
    pub fn base_dir(&self) -> &Path {
        self.base_dir
    }

    /// No error so far.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// Every error, in the order they were pushed.
    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }

    /// Errors found elsewhere (another file's, e.g. the rules'), kept as they are.
    pub fn extend(&mut self, errors: impl IntoIterator<Item = ConfigError>) {
        self.errors.extend(errors);
    }

    /// An error at `path` (dotted key path), with the line of that key when the file has it.
    pub fn err(&mut self, path: &str, message: impl Into<String>) {
        let e = self.toml.err(path, message);
        self.errors.push(e);
    }

    /// `p` resolved against the config file's directory unless absolute.
    pub fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn positive(&mut self, path: &str, v: u64) {
        if v == 0 {
            self.err(path, "must be greater than 0");
        }
    }

    pub fn topic_name(&mut self, path: &str, t: &str) {
        let ok = !t.is_empty()
            && t.len() <= 249
            && t != "."
            && t != ".."
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok {
            self.err(
                path,
                format!("`{t}` is not a valid Kafka topic name (1-249 of [a-zA-Z0-9._-])"),
            );
        }
    }

    pub fn email_address(&mut self, path: &str, m: &str) {
        let ok = m.split_once('@').is_some_and(|(u, d)| {
            !u.is_empty() && d.contains('.') && !m.contains(char::is_whitespace)
        });
        if !ok {
            self.err(path, format!("`{m}` is not an e-mail address"));
        }
    }

    /// A secret's value from where `r` says; `None` (and an error) when it cannot be read.
    pub fn secret(&mut self, path: &str, r: &RawSecretRef) -> Option<Secret> {
        if let Some(name) = &r.credential {
            if r.env.is_some() || r.file.is_some() {
                self.err(path, "give exactly one of `env`, `file` or `credential`");
                return None;
            }
            return self.credential(path, name);
        }
        match (&r.env, &r.file) {
            (Some(var), None) => match std::env::var(var) {
                Ok(v) => Some(Secret::new(v)),
                Err(_) => {
                    self.err(path, format!("environment variable `{var}` is not set"));
                    None
                }
            },
            (None, Some(f)) => {
                let p = self.path(f);
                match std::fs::read_to_string(&p) {
                    Ok(v) => Some(Secret::new(v.trim_end_matches(['\n', '\r']).to_string())),
                    Err(e) => {
                        self.err(
                            path,
                            format!("cannot read secret file {}: {e}", p.display()),
                        );
                        None
                    }
                }
            }
            _ => {
                self.err(path, "give exactly one of `env`, `file` or `credential`");
                None
            }
        }
    }

    /// A systemd credential: `$CREDENTIALS_DIRECTORY/NAME`, which systemd fills from the
    /// unit's `LoadCredential=NAME[:PATH]` (readable by the service's user only, on a private
    /// mount). Also works with any runtime that puts one file per secret in a directory and
    /// exports its path (e.g. `CREDENTIALS_DIRECTORY=/run/secrets` with compose secrets).
    fn credential(&mut self, path: &str, name: &str) -> Option<Secret> {
        let valid = !name.is_empty()
            && name.len() <= 255
            && name != "."
            && name != ".."
            && !name.contains(['/', '\0']);
        if !valid {
            self.err(
                path,
                format!("`{name}` is not a credential name (a file name: no `/`, not `.` or `..`)"),
            );
            return None;
        }
        let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) else {
            self.err(
                path,
                format!(
                    "credential `{name}`: $CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with `LoadCredential={name}`; run `petitiond check` as `systemd-run -P -p LoadCredential={name} ...` or set it to the directory holding the file)"
                ),
            );
            return None;
        };
        let p = Path::new(&dir).join(name);
        match std::fs::read_to_string(&p) {
            Ok(v) => Some(Secret::new(v.trim_end_matches(['\n', '\r']).to_string())),
            Err(e) => {
                self.err(
                    path,
                    format!("cannot read credential `{name}` ({}): {e}", p.display()),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_order_and_name_the_line_of_their_key() {
        let text = "[a]\nn = 0\ntopic = \"bad topic\"\n\n[b]\nmail = \"nobody\"\n";
        let toml = TomlFile::parse("x.toml", text).unwrap();
        let mut v = Validator::new(&toml, Vec::new(), Path::new("/etc/p"));
        v.email_address("b.mail", "nobody");
        v.positive("a.n", 0);
        v.positive("a.n", 1);
        v.topic_name("a.topic", "bad topic");
        v.topic_name("a.topic", "ok.topic-1_x");
        assert_eq!(v.path("rel/f"), Path::new("/etc/p/rel/f"));
        assert_eq!(v.path("/abs/f"), Path::new("/abs/f"));
        let shown: Vec<String> = v.into_errors().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            [
                "x.toml:6: b.mail: `nobody` is not an e-mail address",
                "x.toml:2: a.n: must be greater than 0",
                "x.toml:3: a.topic: `bad topic` is not a valid Kafka topic name (1-249 of [a-zA-Z0-9._-])",
            ]
        );
    }

    #[test]
    fn a_secret_needs_exactly_one_source_and_never_shows_its_value() {
        let toml = TomlFile::parse("x.toml", "[s]\n").unwrap();
        let mut v = Validator::new(&toml, Vec::new(), Path::new("."));
        let both = RawSecretRef {
            env: Some("PATH".into()),
            file: Some("f".into()),
            credential: None,
        };
        assert!(v.secret("s.token", &both).is_none());
        let env = RawSecretRef {
            env: Some("PATH".into()),
            file: None,
            credential: None,
        };
        let s = v.secret("s.token", &env).unwrap();
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let errors = v.into_errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].message,
            "give exactly one of `env`, `file` or `credential`"
        );
    }
}
