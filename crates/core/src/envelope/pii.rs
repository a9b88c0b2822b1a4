//! Personal data holders.
//!
//! Petitions carry personal and often sensitive information (PIPL). Every field that can
//! identify or describe a person — names, ID numbers, phones, addresses, free text — is held in
//! [`Personal`], whose `Debug` never prints the value. There is deliberately no `Display`: the
//! only ways to get the raw value out are [`Personal::expose`] (for the Kafka payload that the
//! departments need) and serde serialization of the envelope itself. Logs, metrics and alerts
//! use [`Personal::masked`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of personal value this is; decides how it is masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Name,
    IdNumber,
    Phone,
    Address,
    FreeText,
}

/// A personal value. Serializes transparently (the departments need the data); never prints.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Personal(String);

impl Personal {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value. Call sites are the Kafka payload and the store, nothing that logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// A masked rendering safe for logs, the demo's output and `explain`.
    pub fn masked(&self, kind: Kind) -> String {
        mask(&self.0, kind)
    }
}

impl fmt::Debug for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Personal(<{} chars redacted>)", self.0.chars().count())
    }
}

/// Masks a personal value by kind. Free text keeps only its length; a name keeps its first
/// character (the family name, as Chinese forms print it: 张**); numbers keep their first three
/// and last two characters so an operator can tell two records apart without reading them.
pub fn mask(value: &str, kind: Kind) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    match kind {
        Kind::FreeText | Kind::Address => format!("<{n} chars>"),
        Kind::Name => match n {
            0 => String::new(),
            1 => "*".to_string(),
            _ => std::iter::once(chars[0])
                .chain(std::iter::repeat_n('*', n - 1))
                .collect(),
        },
        Kind::IdNumber | Kind::Phone => {
            if n <= 5 {
                "*".repeat(n)
            } else {
                chars[..3]
                    .iter()
                    .chain(std::iter::repeat_n(&'*', n - 5))
                    .chain(chars[n - 2..].iter())
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let p = Personal::new("11010519491231002X");
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("1101"), "{dbg}");
        assert!(dbg.contains("18 chars"));
    }

    #[test]
    fn masks_by_kind() {
        let cases = [
            ("张三丰", Kind::Name, "张**"),
            ("李", Kind::Name, "*"),
            ("11010519491231002X", Kind::IdNumber, "110*************2X"),
            ("13812345678", Kind::Phone, "138******78"),
            ("1234", Kind::Phone, "****"),
            ("我家楼下噪音扰民", Kind::FreeText, "<8 chars>"),
        ];
        for (value, kind, want) in cases {
            assert_eq!(mask(value, kind), want, "{value} as {kind:?}");
        }
    }

    #[test]
    fn serializes_transparently() {
        let p = Personal::new("王五");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"王五\"");
    }
}
