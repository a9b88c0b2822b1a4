//! The status API (write-back): `POST {base}/petitions/{id}/status`, idempotency keys, the
//! lost-answer fault, and what the sim remembers of the writes.

use super::{Shared, bad_request};
use crate::faults::Plan;
use crate::reply::{Flavor, JSON, Reply, check_bearer, run_faulted};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// A status write the sim applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedStatus {
    /// The request's `Idempotency-Key`.
    pub key: String,
    /// `ACCEPTED`, `TIME_LIMIT` or `FINISHED`.
    pub state: String,
    pub handle_dept: Option<String>,
    pub due_time: Option<String>,
    pub op_time: String,
}

/// A status request as received (after faults, auth and the signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRequest {
    pub petition: String,
    pub key: String,
    pub body: Vec<u8>,
    /// Answered from the key's stored response: not applied again.
    pub replayed: bool,
}

/// What the status API remembers: applied writes per petition, each key's request hash and
/// answer, every request received.
#[derive(Default)]
pub(super) struct StatusBook {
    pub(super) applied: HashMap<String, Vec<AppliedStatus>>,
    /// key → (petition, SHA-256 of the body, the answer's status and body).
    keys: HashMap<String, (String, [u8; 32], StatusCode, Vec<u8>)>,
    pub(super) requests: Vec<StatusRequest>,
}

/// The states the status API knows.
pub const STATUS_STATES: [&str; 3] = ["ACCEPTED", "TIME_LIMIT", "FINISHED"];

/// The keys of a `[channels.<name>.writeback]` section that write to this simulator's status
/// API (the shipped `config/petitiond.toml` says the same): path, states and fields.
pub const WRITEBACK_TOML: &str = r#"path = "/petitions/{id}/status"
idempotency_header = "Idempotency-Key"
time_format = "%Y-%m-%d %H:%M:%S"

[channels.portal.writeback.states]
acknowledged = "ACCEPTED"
due = "TIME_LIMIT"
completed = "FINISHED"

[channels.portal.writeback.fields]
state = "state"
department = ""
department_name = "handleDept"
due_at = "dueTime"
time = "opTime"
"#;

pub(super) async fn status(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let plan = sh.core.plan();
    let lost = plan.lost_answer.then(|| plan_slow_ms(&sh));
    let resp = run_faulted(plan, Flavor::Portal, |plan| {
        sh.status(&id, &method, &uri, &headers, &body, plan)
    })
    .await;
    if let (Some(ms), StatusCode::GATEWAY_TIMEOUT) = (lost, resp.status()) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    resp
}

/// The `slow_ms` of the faults in force (how long a lost answer keeps the client waiting).
fn plan_slow_ms(sh: &Shared) -> u64 {
    sh.core.lock().faults_slow_ms()
}

impl Shared {
    /// `POST {base}/petitions/{id}/status`. Checks, in order: bearer, signature (with the
    /// body's SHA-256, see [`sign`]), `Idempotency-Key` (400 without one), the key's history
    /// (the same key with the same body: the stored answer again, `Idempotent-Replayed: true`,
    /// nothing applied; with another body: 422), the petition (404), the body (400): a JSON
    /// object with `state` one of [`STATUS_STATES`], `opTime` (`yyyy-MM-dd HH:mm:ss`), and
    /// `handleDept` for `ACCEPTED`, `dueTime` for `TIME_LIMIT`. Applied: 200
    /// `{"code":0,"msg":"ok","data":{"petitionNo":..,"state":..}}`; the list does not change
    /// (the portal shows the petitioner its own status). Answers other than 5xx are stored
    /// under the key.
    fn status(
        &self,
        id: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        plan: &Plan,
    ) -> Reply {
        if let Err(r) = check_bearer(self.cfg.bearer.as_deref(), headers, Flavor::Portal) {
            return r;
        }
        let now_ms = jiff::Timestamp::now().as_millisecond();
        if let Err(msg) = self.verify(method, uri, headers, Some(body), now_ms) {
            return Reply::error(Flavor::Portal, StatusCode::UNAUTHORIZED, msg);
        }
        let Some(key) = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.trim().is_empty())
        else {
            return bad_request("Idempotency-Key required");
        };
        let hash: [u8; 32] = Sha256::digest(body).into();
        let mut book = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        book.requests.push(StatusRequest {
            petition: id.to_string(),
            key: key.to_string(),
            body: body.to_vec(),
            replayed: false,
        });
        if let Some((petition, h, st, answer)) = book.keys.get(key).cloned() {
            if petition != id || h != hash {
                return Reply::error(
                    Flavor::Portal,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Idempotency-Key reused with another request",
                );
            }
            if let Some(last) = book.requests.last_mut() {
                last.replayed = true;
            }
            let reply = Reply {
                status: st,
                content_type: JSON,
                headers: Vec::new(),
                body: answer,
            };
            return reply.with_header(
                header::HeaderName::from_static("idempotent-replayed"),
                "true",
            );
        }
        let known = self
            .core
            .lock()
            .store
            .get(id)
            .is_some_and(|r| r.bad.is_none());
        let reply = if !known {
            Reply::error(Flavor::Portal, StatusCode::NOT_FOUND, "petition not found")
        } else {
            match parse_status(key, body) {
                Err(msg) => bad_request(&msg),
                Ok(applied) => {
                    let state = applied.state.clone();
                    book.applied
                        .entry(id.to_string())
                        .or_default()
                        .push(applied);
                    Reply::json(
                        StatusCode::OK,
                        &serde_json::json!({
                            "code": 0, "msg": "ok",
                            "data": {"petitionNo": id, "state": state},
                        }),
                    )
                }
            }
        };
        book.keys.insert(
            key.to_string(),
            (id.to_string(), hash, reply.status, reply.body.clone()),
        );
        if plan.lost_answer && reply.status == StatusCode::OK {
            return Reply::error(Flavor::Portal, StatusCode::GATEWAY_TIMEOUT, "网关超时");
        }
        reply
    }
}

/// A status body → what is applied, or why not (400).
fn parse_status(key: &str, body: &[u8]) -> Result<AppliedStatus, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "body: not JSON".to_string())?;
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let time_ok = |t: &Option<String>| {
        t.as_deref()
            .is_some_and(|t| jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", t).is_ok())
    };
    let state = text("state").ok_or("state: required")?;
    if !STATUS_STATES.contains(&state.as_str()) {
        return Err(format!("state: `{state}` unknown"));
    }
    let op_time = text("opTime");
    if !time_ok(&op_time) {
        return Err("opTime: required, yyyy-MM-dd HH:mm:ss".into());
    }
    let handle_dept = text("handleDept");
    if state == "ACCEPTED" && handle_dept.as_deref().is_none_or(|d| d.trim().is_empty()) {
        return Err("handleDept: required for ACCEPTED".into());
    }
    let due_time = text("dueTime");
    if state == "TIME_LIMIT" && !time_ok(&due_time) {
        return Err("dueTime: required for TIME_LIMIT, yyyy-MM-dd HH:mm:ss".into());
    }
    Ok(AppliedStatus {
        key: key.to_string(),
        state,
        handle_dept,
        due_time,
        op_time: op_time.unwrap_or_default(),
    })
}
