//! Corrections from the intake desk: when a person re-routes an item (a status event whose
//! payload names a new `category` and/or `department`), the correction is recorded so that
//! `petitiond rules eval --corrections` can measure the rules in force against what people
//! decided, and `petitiond rules corrections export` can hand them to the next training run.
//!
//! Owns the payload's re-route fields ([`reroute`]: checked against the four categories and
//! the configured departments) and the export format ([`export_line`]: one JSONL object per
//! correction, the format `rules eval` and `rules train` read). Recording is the store's
//! (`Store::record_correction`, keyed by the status event's id, so a redelivered event is
//! recorded once); the status consumer calls it after applying the event to the clocks.
//!
//! Personal data: a recorded correction holds ids, categories and department ids only; the
//! text is read from the stored item at export time. The export therefore contains petition
//! text: it is the office's own data for its own model, written with mode 0600 (owner only),
//! and never logged.

use super::classify::parse_category;
use crate::envelope::{Category, Envelope};
use crate::routing::Department;

/// What a status event's payload says the item should have been.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reroute {
    pub category: Option<Category>,
    pub department: Option<String>,
}

/// Reads `category` and `department` from a status event's payload. `Ok(None)`: the event
/// re-routes nothing. `Err`: a re-route field with a value that is not a category or a
/// configured department (the event is rejected with this reason).
pub fn reroute(
    payload: Option<&serde_json::Map<String, serde_json::Value>>,
    departments: &[Department],
) -> Result<Option<Reroute>, String> {
    let Some(p) = payload else {
        return Ok(None);
    };
    let text = |key: &str| -> Result<Option<&str>, String> {
        match p.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("payload.{key} must be a string")),
        }
    };
    let category = match text("category")? {
        None => None,
        Some(c) => Some(parse_category(c).ok_or_else(|| {
            format!("payload.category `{c}` is not one of livelihood, rights, policy, historical")
        })?),
    };
    let department = match text("department")? {
        None => None,
        Some(d) if departments.iter().any(|x| x.id == d) => Some(d.to_string()),
        Some(d) => {
            return Err(format!(
                "payload.department `{d}` is not a configured department"
            ));
        }
    };
    if category.is_none() && department.is_none() {
        return Ok(None);
    }
    Ok(Some(Reroute {
        category,
        department,
    }))
}

/// A recorded correction, as the store returns it with the item's stored envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    pub event_id: String,
    pub item_id: String,
    pub at: String,
    /// The department that re-routed it (the status event's actor), if given.
    pub actor: Option<String>,
    /// What routing had decided.
    pub from_category: Option<String>,
    pub from_lead: Option<String>,
    /// What the desk decided.
    pub category: Option<Category>,
    pub department: Option<String>,
    pub envelope: Option<Envelope>,
}

/// One correction as a JSONL line of labelled training data (`None`: no category given, or
/// the item's envelope is gone — nothing to learn from).
pub fn export_line(c: &Correction) -> Option<String> {
    let category = c.category?;
    let env = c.envelope.as_ref()?;
    let v = serde_json::json!({
        "category": category.as_str(),
        "title": env.request.title.as_ref().map(|t| t.expose()).unwrap_or(""),
        "content": env.request.content.expose(),
        "channel": env.channel,
        "service_code": env.upstream.service_code,
        "item_id": c.item_id,
        "from_category": c.from_category,
        "from_lead": c.from_lead,
        "department": c.department,
        "at": c.at,
    });
    Some(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn departments() -> Vec<Department> {
        ["intake-desk", "hrss"]
            .iter()
            .map(|id| Department {
                id: id.to_string(),
                name: id.to_string(),
                topic: format!("t.{id}"),
                status_topic: format!("t.{id}.status"),
                alert_emails: Vec::new(),
            })
            .collect()
    }

    fn payload(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn reroute_fields_are_read_and_checked() {
        let d = departments();
        assert_eq!(reroute(None, &d), Ok(None));
        let p = payload(serde_json::json!({"extend_days": 3}));
        assert_eq!(reroute(Some(&p), &d), Ok(None));
        let p = payload(serde_json::json!({"category": "rights", "department": "hrss"}));
        assert_eq!(
            reroute(Some(&p), &d),
            Ok(Some(Reroute {
                category: Some(Category::Rights),
                department: Some("hrss".into())
            }))
        );
        let p = payload(serde_json::json!({"department": "hrss"}));
        assert_eq!(reroute(Some(&p), &d).unwrap().unwrap().category, None);
        for (bad, why) in [
            (
                serde_json::json!({"category": "other"}),
                "payload.category `other`",
            ),
            (
                serde_json::json!({"category": 3}),
                "payload.category must be a string",
            ),
            (
                serde_json::json!({"department": "police"}),
                "payload.department `police`",
            ),
        ] {
            let e = reroute(Some(&payload(bad)), &d).unwrap_err();
            assert!(e.starts_with(why), "{e}");
        }
    }
}
