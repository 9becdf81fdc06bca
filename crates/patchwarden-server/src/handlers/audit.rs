//! The audit log for auditors: `GET /v1/audit` (filters: `action`, `subject`, `since`; paging:
//! `after`, `limit` 1–1000). Verification runs where the key is: `patchwarden audit verify`.

use axum::extract::State;
use axum::response::Response;
use patchwarden_model::audit::{AuditAction, AuditPage};
use patchwarden_store::audit::AuditQuery;
use serde::Deserialize;

use super::json;
use crate::auth::{Auditor, Caller};
use crate::error::{Answer, ApiError};
use crate::extract::Q;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    action: Option<AuditAction>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    since: Option<String>,
}

pub async fn list_audit(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    Q(p): Q<AuditParams>,
) -> Answer<Response> {
    let limit = crate::extract::page_limit(p.limit, 100, 1000)?;
    let after = p.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::BadRequest(format!("after: {after} is negative")));
    }
    if let Some(since) = &p.since {
        if patchwarden_model::days_between(since, since).is_none() {
            return Err(ApiError::BadRequest(format!(
                "since: {since:?} is not an RFC 3339 time"
            )));
        }
    }
    let entries = state
        .store
        .audit_entries(&AuditQuery {
            after,
            limit,
            action: p.action,
            subject: p.subject,
            since: p.since,
        })
        .await?;
    let next_after = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(json(&AuditPage {
        entries,
        next_after,
    }))
}
