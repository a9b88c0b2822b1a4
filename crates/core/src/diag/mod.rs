//! What every config-reading part shares: an error that names file, line and key path
//! ([`ConfigError`]), the secret type whose `Debug` never prints it ([`Secret`]), and the TOML
//! machinery that finds the line of a key path and collects every serde error of a file at once
//! ([`toml_file`]), and the [`Validator`] that collects a file's errors and holds the checks
//! every section shares ([`validator`]). Each component parses and validates its own section
//! with these.

pub mod toml_file;
pub mod validator;

pub use validator::{PLAINTEXT_AUTH, RawSecretRef, Validator};

use std::fmt;

/// What a panic or task error says instead of its message (which may quote the data being
/// processed): logs and errors never carry a panic's own words.
pub const WITHHELD: &str = "message withheld: it may quote the data being processed";

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line, when the key exists in the file.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `kafka.partitions` or `departments[1].topic`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}: {}", self.file, l, self.path, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.path, self.message),
        }
    }
}

/// All problems found in a config file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A secret value. `Debug` never prints it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// A secret as read from its environment variable or file.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
