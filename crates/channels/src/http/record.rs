//! One upstream JSON record → the fields petitiond needs, through the source's mapping.
//!
//! Tolerates what real servers send: ids as numbers or strings, unknown extra fields, missing
//! optional fields, times with or without an offset (none means the office's time zone),
//! epoch seconds or milliseconds. Rejects — for quarantine, with a reason — what cannot be an
//! item: not an object, no id, no usable time (a time is present but none parses), a record
//! over the size limit. Only the id and a time are required: any other field that is there
//! but malformed (an address that is an object, a second time that will not parse, an
//! attachment entry without a URL) is left out and named in [`Mapped::dropped`], so the item
//! flows with a `dropped_field:<name>` flag.

use crate::config::http::Mapping;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// A record read through the mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub upstream_id: String,
    pub created: Option<Timestamp>,
    pub updated: Option<Timestamp>,
    pub title: Option<String>,
    pub content: String,
    pub name: Option<String>,
    pub id_number: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub region: Option<String>,
    pub service_code: Option<String>,
    pub status: Option<String>,
    pub url: Option<String>,
    /// (URL, file name as sent).
    pub attachments: Vec<(String, Option<String>)>,
    /// Hash of everything above: a change upstream is a new version.
    pub version: String,
    /// Mapping keys whose values were there but malformed, left out (the item flows).
    pub dropped: Vec<&'static str>,
}

/// Why a record cannot become an item. `reason()` is a metric label.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadRecord {
    #[error("record of {size} bytes, more than the limit of {limit}")]
    Oversize { size: usize, limit: u64 },
    #[error("not a JSON object: {0}")]
    NotObject(&'static str),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("no id at {0}")]
    NoId(String),
    #[error("field `{field}` is not a time: {detail}")]
    BadTime { field: &'static str, detail: String },
}

impl BadRecord {
    pub fn reason(&self) -> &'static str {
        match self {
            BadRecord::Oversize { .. } => "oversize",
            BadRecord::NotObject(_) => "not_an_object",
            BadRecord::InvalidJson(_) => "invalid_json",
            BadRecord::NoId(_) => "no_id",
            BadRecord::BadTime { .. } => "bad_time",
        }
    }
}

/// A value as text: strings as they are, numbers and booleans printed; null/absent → None.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The field from one or more pointers, non-empty parts joined. A part that is an object or
/// an array is malformed: left out, and `name` added to `dropped`.
fn field(
    rec: &Value,
    pointers: &[String],
    name: &'static str,
    dropped: &mut Vec<&'static str>,
) -> Option<String> {
    let mut parts = Vec::new();
    for v in pointers.iter().filter_map(|p| rec.pointer(p)) {
        match v {
            Value::Object(_) | Value::Array(_) => {
                if !dropped.contains(&name) {
                    dropped.push(name);
                }
            }
            v => parts.extend(text(v)),
        }
    }
    (!parts.is_empty()).then(|| parts.join(""))
}

/// Parses an upstream time: RFC 3339 with offset; without an offset (`T` or space
/// separated, optional fraction), in `tz`; a custom strftime `format` in `tz`; or epoch
/// seconds / milliseconds as a number.
pub fn parse_time(v: &Value, tz: &TimeZone, format: Option<&str>) -> Result<Timestamp, String> {
    match v {
        Value::Number(n) => {
            let x = n
                .as_i64()
                .ok_or_else(|| format!("{n} is not an integer epoch"))?;
            let t = if x.abs() >= 100_000_000_000 {
                Timestamp::from_millisecond(x)
            } else {
                Timestamp::from_second(x)
            };
            t.map_err(|e| e.to_string())
        }
        Value::String(s) => {
            let s = s.trim();
            if let Some(f) = format
                && let Ok(dt) = jiff::civil::DateTime::strptime(f, s)
            {
                return tz.to_timestamp(dt).map_err(|e| e.to_string());
            }
            if let Ok(t) = s.parse::<Timestamp>() {
                return Ok(t);
            }
            match s.parse::<jiff::civil::DateTime>() {
                Ok(dt) => tz.to_timestamp(dt).map_err(|e| e.to_string()),
                Err(_) => Err(format!("`{}` is not a date-time", truncate(s, 40))),
            }
        }
        _ => Err("not a string or number".into()),
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn time_field(
    rec: &Value,
    pointers: &[String],
    tz: &TimeZone,
    format: Option<&str>,
) -> Result<Option<Timestamp>, String> {
    for p in pointers {
        match rec.pointer(p) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if s.trim().is_empty() => continue,
            Some(v) => return parse_time(v, tz, format).map(Some),
        }
    }
    Ok(None)
}

fn attachments(
    rec: &Value,
    m: &Mapping,
    dropped: &mut Vec<&'static str>,
) -> Vec<(String, Option<String>)> {
    let Some(ptr) = &m.attachments else {
        return Vec::new();
    };
    let mut malformed = false;
    let url_of = |v: &Value| -> Option<(String, Option<String>)> {
        match v {
            Value::String(s) if !s.trim().is_empty() => Some((s.trim().to_string(), None)),
            Value::Object(_) => {
                let url = v.pointer(&m.attachment_url).and_then(text)?;
                let name = m
                    .attachment_name
                    .as_ref()
                    .and_then(|p| v.pointer(p))
                    .and_then(text);
                Some((url, name))
            }
            _ => None,
        }
    };
    let mut one = |v: &Value| -> Option<(String, Option<String>)> {
        let got = url_of(v);
        // "" (Open311's "no media") and null are absent, not malformed.
        let empty =
            matches!(v, Value::Null) || matches!(v, Value::String(s) if s.trim().is_empty());
        malformed |= got.is_none() && !empty;
        got
    };
    let out = match rec.pointer(ptr) {
        Some(Value::Array(items)) => items.iter().filter_map(&mut one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    };
    if malformed {
        dropped.push("attachments");
    }
    out
}

/// Reads one record. `raw` is its original bytes (kept for quarantine and the raw claim check).
pub fn map(
    raw: &RawValue,
    m: &Mapping,
    tz: &TimeZone,
    max_bytes: u64,
) -> Result<Mapped, BadRecord> {
    let bytes = raw.get();
    if bytes.len() as u64 > max_bytes {
        return Err(BadRecord::Oversize {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    let rec: Value =
        serde_json::from_str(bytes).map_err(|e| BadRecord::InvalidJson(e.to_string()))?;
    if !rec.is_object() {
        return Err(BadRecord::NotObject(match rec {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        }));
    }
    let mut dropped = Vec::new();
    let upstream_id =
        field(&rec, &m.id, "id", &mut dropped).ok_or_else(|| BadRecord::NoId(m.id.join("+")))?;
    let fmt = m.time_format.as_deref();
    // One usable time is required; a second one that will not parse is dropped.
    let (created, updated) = match (
        time_field(&rec, &m.created, tz, fmt),
        time_field(&rec, &m.updated, tz, fmt),
    ) {
        (Ok(c), Ok(u)) => (c, u),
        (Err(_), Ok(Some(u))) => {
            dropped.push("created");
            (None, Some(u))
        }
        (Ok(Some(c)), Err(_)) => {
            dropped.push("updated");
            (Some(c), None)
        }
        (Err(detail), _) => {
            return Err(BadRecord::BadTime {
                field: "created",
                detail,
            });
        }
        (_, Err(detail)) => {
            return Err(BadRecord::BadTime {
                field: "updated",
                detail,
            });
        }
    };
    let d = &mut dropped;
    let mut out = Mapped {
        upstream_id,
        created,
        updated,
        title: field(&rec, &m.title, "title", d),
        content: field(&rec, &m.content, "content", d).unwrap_or_default(),
        name: field(&rec, &m.name, "name", d),
        id_number: field(&rec, &m.id_number, "id_number", d),
        phone: field(&rec, &m.phone, "phone", d),
        address: field(&rec, &m.address, "address", d),
        region: field(&rec, &m.region, "region", d),
        service_code: field(&rec, &m.service_code, "service_code", d),
        status: field(&rec, &m.status, "status", d),
        url: field(&rec, &m.url, "url", d),
        attachments: attachments(&rec, m, d),
        version: String::new(),
        dropped: Vec::new(),
    };
    out.dropped = dropped;
    out.version = version(&out);
    Ok(out)
}

/// A stable hash of the mapped fields (not of the raw bytes, so a server that re-orders keys
/// or re-formats numbers does not look like a change).
fn version(m: &Mapped) -> String {
    let mut h = Sha256::new();
    let mut put = |s: Option<&str>| {
        let s = s.unwrap_or("\u{0}");
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(Some(&m.upstream_id));
    put(m.created.map(|t| t.to_string()).as_deref());
    put(m.updated.map(|t| t.to_string()).as_deref());
    put(m.title.as_deref());
    put(Some(&m.content));
    put(m.name.as_deref());
    put(m.id_number.as_deref());
    put(m.phone.as_deref());
    put(m.address.as_deref());
    put(m.region.as_deref());
    put(m.service_code.as_deref());
    put(m.status.as_deref());
    put(m.url.as_deref());
    for (u, n) in &m.attachments {
        put(Some(u));
        put(n.as_deref());
    }
    format!("sha256:{}", hex::encode(&h.finalize()[..16]))
}

/// Splits a response body into its records, each kept as its original bytes. `pointer` says
/// where the array is (`""`: the body is the array); a body that is not JSON, or has no array
/// there, is an error (the page is retried, not its records quarantined one by one).
pub fn records(body: &str, pointer: &str) -> Result<Vec<Box<RawValue>>, String> {
    let mut cur: &RawValue = serde_json::from_str(body).map_err(|e| e.to_string())?;
    for seg in pointer.split('/').skip(1) {
        let key = seg.replace("~1", "/").replace("~0", "~");
        let map: std::collections::HashMap<String, &RawValue> = serde_json::from_str(cur.get())
            .map_err(|_| format!("no object at `{key}` on the way to `{pointer}`"))?;
        cur = *map
            .get(&key)
            .ok_or_else(|| format!("no `{key}` on the way to `{pointer}`"))?;
    }
    if cur.get().trim() == "null" {
        return Ok(Vec::new());
    }
    serde_json::from_str::<Vec<Box<RawValue>>>(cur.get())
        .map_err(|_| format!("no array at `{pointer}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn open311_record_with_quirks_maps() {
        let r = raw(
            r#"{"service_request_id":123456,"status":"acknowledged","service_name":"劳动保障",
            "service_code":"LS01","description":"公司拖欠工资三个月","requested_datetime":"2026-11-28T10:00:00",
            "updated_datetime":"2026-11-28T02:05:00Z","last_name":"张","first_name":"伟","phone":"138 0013 8000",
            "district":"西湖区","media_url":"http://x/files/a.jpg","unknown":{"x":1}}"#,
        );
        let m = map(&r, &Mapping::open311(), &tz(), 1 << 20).unwrap();
        assert_eq!(m.upstream_id, "123456");
        assert_eq!(m.name.as_deref(), Some("张伟"));
        assert_eq!(
            m.created,
            Some("2026-11-28T02:00:00Z".parse().unwrap()),
            "no offset: office time zone"
        );
        assert_eq!(m.updated, Some("2026-11-28T02:05:00Z".parse().unwrap()));
        assert_eq!(m.status.as_deref(), Some("acknowledged"));
        assert_eq!(m.region.as_deref(), Some("西湖区"));
        assert_eq!(m.attachments, vec![("http://x/files/a.jpg".into(), None)]);
        // Same record with a string id and re-ordered keys: same version.
        let r2 = raw(
            r#"{"updated_datetime":"2026-11-28T10:05:00+08:00","service_request_id":"123456","status":"acknowledged","service_name":"劳动保障",
            "service_code":"LS01","description":"公司拖欠工资三个月","requested_datetime":"2026-11-28T02:00:00Z",
            "last_name":"张","first_name":"伟","phone":"138 0013 8000","district":"西湖区","media_url":"http://x/files/a.jpg"}"#,
        );
        assert_eq!(
            map(&r2, &Mapping::open311(), &tz(), 1 << 20)
                .unwrap()
                .version,
            m.version
        );
    }

    #[test]
    fn bad_records_have_reasons() {
        let m = Mapping::open311();
        let bad = |s: &str, max: u64| map(&raw(s), &m, &tz(), max).unwrap_err().reason();
        assert_eq!(bad(r#""just a string""#, 100), "not_an_object");
        assert_eq!(bad(r#"{"description":"x"}"#, 100), "no_id");
        assert_eq!(
            bad(
                r#"{"service_request_id":"1","requested_datetime":"yesterday"}"#,
                100
            ),
            "bad_time"
        );
        assert_eq!(bad(r#"{"service_request_id":"1"}"#, 10), "oversize");
    }

    /// Issue 13: a record with a usable id, time and text was quarantined because an
    /// optional field was malformed. Now only the id and one usable time are required.
    #[test]
    fn malformed_optional_fields_are_dropped_not_fatal() {
        let m = Mapping::open311();
        let good = serde_json::json!({
            "service_request_id": "7", "description": "路灯不亮", "address": "文三路1号",
            "requested_datetime": "2026-11-28T10:00:00+08:00",
            "updated_datetime": "2026-11-28T11:00:00+08:00",
            "phone": "13800138000", "media_url": "", "lat": 30.1
        });
        type Want = Result<&'static [&'static str], &'static str>;
        let cases: [(&str, Value, Want); 12] = [
            ("nothing wrong", Value::Null, Ok(&[])),
            (
                "second time",
                serde_json::json!({"updated_datetime": "待定"}),
                Ok(&["updated"]),
            ),
            (
                "first time",
                serde_json::json!({"requested_datetime": "yesterday"}),
                Ok(&["created"]),
            ),
            (
                "both times",
                serde_json::json!({"requested_datetime": "x", "updated_datetime": "y"}),
                Err("bad_time"),
            ),
            (
                "the only time",
                serde_json::json!({"requested_datetime": "x", "updated_datetime": null}),
                Err("bad_time"),
            ),
            (
                "address",
                serde_json::json!({"address": {"province": "浙江省"}}),
                Ok(&["address"]),
            ),
            (
                "phone",
                serde_json::json!({"phone": ["138", "139"]}),
                Ok(&["phone"]),
            ),
            (
                "media",
                serde_json::json!({"media_url": {"href": "x"}}),
                Ok(&["attachments"]),
            ),
            (
                "coordinates (not read)",
                serde_json::json!({"lat": "N/A", "long": {"v": 1}}),
                Ok(&[]),
            ),
            (
                "empty media",
                serde_json::json!({"media_url": null}),
                Ok(&[]),
            ),
            (
                "several",
                serde_json::json!({"address": [], "updated_datetime": 12.5}),
                Ok(&["updated", "address"]),
            ),
            (
                "id",
                serde_json::json!({"service_request_id": {"v": 7}}),
                Err("no_id"),
            ),
        ];
        for (what, change, want) in cases {
            let mut rec = good.clone();
            if let Value::Object(c) = change {
                for (k, v) in c {
                    rec[k] = v;
                }
            }
            let got = map(&raw(&rec.to_string()), &m, &tz(), 1 << 20);
            match (got, want) {
                (Ok(mapped), Ok(dropped)) => {
                    assert_eq!(mapped.dropped, dropped, "{what}");
                    assert_eq!(mapped.upstream_id, "7", "{what}");
                    assert_eq!(mapped.content, "路灯不亮", "{what}");
                    assert!(mapped.created.or(mapped.updated).is_some(), "{what}");
                }
                (Err(e), Err(reason)) => assert_eq!(e.reason(), reason, "{what}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn times_in_every_shape() {
        let z = tz();
        let t = |v: Value, f: Option<&str>| parse_time(&v, &z, f).unwrap().to_string();
        assert_eq!(
            t(Value::from("2026-11-28 10:00:00"), None),
            "2026-11-28T02:00:00Z"
        );
        assert_eq!(
            t(Value::from("2026/11/28 10:00"), Some("%Y/%m/%d %H:%M")),
            "2026-11-28T02:00:00Z"
        );
        assert_eq!(t(Value::from(1795831200), None), "2026-11-28T02:00:00Z");
        assert_eq!(
            t(Value::from(1795831200000i64), None),
            "2026-11-28T02:00:00Z"
        );
        assert!(parse_time(&Value::from("2026-13-45 10:00:00"), &z, None).is_err());
    }

    #[test]
    fn records_keep_original_bytes_at_a_pointer() {
        let body = r#"{"code":0,"data":{"items":[{"a": 1},"x",3],"next_cursor":null}}"#;
        let recs = records(body, "/data/items").unwrap();
        assert_eq!(
            recs.iter().map(|r| r.get()).collect::<Vec<_>>(),
            vec![r#"{"a": 1}"#, r#""x""#, "3"]
        );
        assert_eq!(records("[]", "").unwrap().len(), 0);
        assert!(records("<html>", "").is_err());
        assert!(records(r#"{"data":{}}"#, "/data/items").is_err());
        assert!(records(r#"[{"a":1},{"b""#, "").is_err(), "truncated");
    }
}
