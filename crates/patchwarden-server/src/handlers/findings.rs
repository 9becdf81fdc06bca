//! The fleet's findings: filtered across hosts, the hosts a CVE affects, the summary.

use axum::extract::State;
use axum::response::Response;
use patchwarden_model::Severity;
use patchwarden_store::fleet::FindingFilter;
use serde::Deserialize;

use super::hosts::finding_list;
use super::json;
use crate::auth::{Auditor, Caller};
use crate::error::{Answer, ApiError};
use crate::extract::{CveId, Q};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsQuery {
    severity: Option<String>,
    #[serde(default)]
    kev: bool,
    #[serde(default)]
    overdue: bool,
    limit: Option<i64>,
}

pub async fn list_findings(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    Q(q): Q<FindingsQuery>,
) -> Answer<Response> {
    let min_severity = match q.severity.as_deref() {
        None => None,
        Some(s @ ("low" | "medium" | "high" | "critical")) => {
            Some(s.parse::<Severity>().map_err(ApiError::BadRequest)?)
        }
        Some(s) => {
            return Err(ApiError::BadRequest(format!(
                "severity: {s:?} is not low, medium, high or critical"
            )))
        }
    };
    let rows = state
        .store
        .fleet_findings(&FindingFilter {
            min_severity,
            kev: q.kev,
            overdue: q.overdue,
            host_id: None,
            limit: q.limit,
        })
        .await?;
    Ok(json(&finding_list(rows)?))
}

pub async fn list_cve_hosts(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    CveId(cve): CveId,
) -> Answer<Response> {
    Ok(json(&state.store.hosts_affected_by(&cve).await?))
}

pub async fn get_summary(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
) -> Answer<Response> {
    Ok(json(&state.store.fleet_summary(state.stale_secs()).await?))
}
