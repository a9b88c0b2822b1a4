//! A TOML file that knows the line of every key path, and serde deserialization that
//! collects every shape error instead of stopping at the first.
//!
//! Shared by the daemon's config and the routing rules and dictionaries: on an error at a key
//! that exists in the file, the key is recorded, removed and deserialization tried again, so
//! one bad key does not hide the next; a missing required key ends it. Paths render as
//! `a.b[2]."c.d"`.

use super::ConfigError;
use serde::de::DeserializeOwned;

/// A parsed TOML file that knows the line of every key path (`rule[3].when.regex[1]`).
pub struct TomlFile<'a> {
    pub file: &'a str,
    text: &'a str,
    doc: toml_edit::Document<String>,
    /// Byte offset of every line start: a key's line is a binary search, not a rescan (a
    /// 10,000-rule file asks for tens of thousands of lines).
    line_starts: Vec<usize>,
}

impl<'a> TomlFile<'a> {
    pub fn parse(file: &'a str, text: &'a str) -> Result<Self, ConfigError> {
        match toml_edit::Document::parse(text.to_string()) {
            Ok(doc) => {
                let line_starts = std::iter::once(0)
                    .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                    .collect();
                Ok(Self {
                    file,
                    text,
                    doc,
                    line_starts,
                })
            }
            Err(e) => Err(ConfigError {
                file: file.into(),
                line: e.span().map(|s| line_at(text, s.start)),
                path: String::new(),
                message: format!("TOML syntax: {}", e.message().trim()),
            }),
        }
    }

    /// The 1-based line of a key path: the deepest part of it that exists.
    pub fn line(&self, path: &str) -> Option<usize> {
        line_of(self.doc.as_item(), &parse_path(path), &self.line_starts)
    }

    pub fn err(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.into(),
            line: self.line(path),
            path: path.into(),
            message: message.into(),
        }
    }

    /// Stage one: serde, collecting every shape error. On an error at a key that exists, the
    /// key is recorded, removed and deserialization retried, so one bad key does not hide the
    /// next; a missing required key ends it.
    pub fn deserialize<T: DeserializeOwned>(&self, errors: &mut Vec<ConfigError>) -> Option<T> {
        let before = errors.len();
        let v = self.deserialize_repaired(errors)?;
        (errors.len() == before).then_some(v)
    }

    /// Like [`TomlFile::deserialize`], but returns what the rest of the file deserializes to
    /// once the bad keys are removed, so meaning checks can run on it in the same pass.
    pub fn deserialize_repaired<T: DeserializeOwned>(
        &self,
        errors: &mut Vec<ConfigError>,
    ) -> Option<T> {
        let mut doc: toml_edit::DocumentMut = self.text.parse().ok()?;
        for _ in 0..256 {
            let de = toml_edit::de::Deserializer::from(doc.clone());
            match serde_path_to_error::deserialize::<_, T>(de) {
                Ok(v) => return Some(v),
                Err(e) => {
                    let mut path: Vec<Segment> = e.path().iter().filter_map(segment).collect();
                    let inner = e.into_inner();
                    let message = inner.message().trim().to_string();
                    if let Some(field) = backticked(&message, "unknown field `")
                        && path.last() != Some(&Segment::Key(field.clone()))
                    {
                        path.push(Segment::Key(field));
                    }
                    let line = line_of(self.doc.as_item(), &path, &self.line_starts)
                        .or_else(|| inner.span().map(|s| line_at(self.text, s.start)));
                    errors.push(ConfigError {
                        file: self.file.into(),
                        line,
                        path: render_path(&path),
                        message,
                    });
                    if errors
                        .last()
                        .is_some_and(|e| e.message.starts_with("missing field"))
                        || !remove_path(doc.as_item_mut(), &path)
                    {
                        return None;
                    }
                }
            }
        }
        None
    }
}

fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    Some(rest[..rest.find('`')?].to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

fn segment(s: &serde_path_to_error::Segment) -> Option<Segment> {
    match s {
        serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
        serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
        _ => None,
    }
}

pub fn render_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&quote_key(k));
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A key as written in a rendered path: quoted when it contains a dot, bracket or quote.
pub fn quote_key(k: &str) -> String {
    if k.is_empty() || k.contains(['.', '[', '"']) {
        format!("\"{k}\"")
    } else {
        k.to_string()
    }
}

/// Splits `a.b[2]."c.d"` into segments.
pub fn parse_path(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            out.push(Segment::Key(q[..end].to_string()));
            rest = q.get(end + 1..).unwrap_or("");
        } else if let Some(i) = rest.strip_prefix('[') {
            let end = i.find(']').unwrap_or(i.len());
            if let Ok(n) = i[..end].parse() {
                out.push(Segment::Index(n));
            }
            rest = i.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end > 0 {
                out.push(Segment::Key(rest[..end].to_string()));
            }
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    out
}

pub fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn line_of(root: &toml_edit::Item, path: &[Segment], line_starts: &[usize]) -> Option<usize> {
    let mut item = root;
    let mut best = None;
    for seg in path {
        let (span, next) = match seg {
            Segment::Key(k) => {
                let (key, next) = item.as_table_like().and_then(|t| t.get_key_value(k))?;
                (key.span().or_else(|| next.span()), next)
            }
            Segment::Index(i) => {
                let Some(next) = item.get(*i) else {
                    return best;
                };
                (next.span(), next)
            }
        };
        if let Some(s) = span {
            best = Some(line_starts.partition_point(|&l| l <= s.start));
        }
        item = next;
    }
    best
}

fn remove_path(root: &mut toml_edit::Item, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut item = root;
    for seg in parents {
        let next = match seg {
            Segment::Key(k) => item.get_mut(k.as_str()),
            Segment::Index(i) => item.get_mut(*i),
        };
        match next {
            Some(n) => item = n,
            None => return false,
        }
    }
    match last {
        Segment::Key(k) => item
            .as_table_like_mut()
            .is_some_and(|t| t.remove(k).is_some()),
        Segment::Index(i) => match item {
            toml_edit::Item::Value(toml_edit::Value::Array(a)) if *i < a.len() => {
                a.remove(*i);
                true
            }
            toml_edit::Item::ArrayOfTables(a) if *i < a.len() => {
                a.remove(*i);
                true
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_through_rendering() {
        for p in [
            "a.b",
            "departments[3].topic",
            "kafka.properties.\"sasl.password\"",
        ] {
            assert_eq!(render_path(&parse_path(p)), p);
        }
    }
}
