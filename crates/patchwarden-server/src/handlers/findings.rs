//! The fleet's findings: filtered across hosts, the hosts a CVE affects, the summary.

use axum::extract::State;
use axum::response::Response;
use patchwarden_model::{FindingState, Severity};
use serde::Deserialize;

use super::json;
use crate::auth::{Auditor, Caller};
use crate::error::{Answer, ApiError};
use crate::extract::{CveId, Q};
use crate::findings_view::FleetFindingFilter;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingsQuery {
    severity: Option<String>,
    #[serde(default)]
    kev: bool,
    #[serde(default)]
    overdue: bool,
    state: Option<String>,
    /// Only findings due within this many days (overdue ones included).
    due_within_days: Option<i64>,
    /// `key=value`, repeatable as a comma-separated list.
    label: Option<String>,
    group: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// Findings listed at most per page (and by default).
pub const MAX_PAGE: usize = 10_000;
const DEFAULT_PAGE: usize = 1_000;

/// A page's `limit`, refused outside 1 to [`MAX_PAGE`].
fn page_limit(limit: usize) -> Result<usize, ApiError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    crate::extract::page_limit(Some(limit), 0, MAX_PAGE as i64).map(|l| l as usize)
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
    let finding_state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<FindingState>()
                .map_err(|e| ApiError::BadRequest(format!("state: {e}")))?,
        ),
    };
    if let Some(d) = q.due_within_days {
        if !(0..=3650).contains(&d) {
            return Err(ApiError::BadRequest(format!(
                "due_within_days: {d} is not between 0 and 3650"
            )));
        }
    }
    let limit = page_limit(q.limit.unwrap_or(DEFAULT_PAGE))?;
    let mut labels = crate::handlers::hosts::parse_labels(q.label.as_deref())?;
    if let Some(g) = q.group {
        labels.push(("group".into(), g));
    }
    let list = state
        .view
        .fleet(&FleetFindingFilter {
            min_severity,
            kev: q.kev,
            overdue: q.overdue,
            state: finding_state,
            due_within_days: q.due_within_days,
            labels,
            offset: q.offset.unwrap_or(0),
            limit,
        })
        .await?;
    Ok(json(&list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CveHostsQuery {
    offset: Option<usize>,
    /// At most this many rows (1 to `MAX_PAGE`); all of them when absent.
    limit: Option<usize>,
}

pub async fn list_cve_hosts(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    CveId(cve): CveId,
    Q(q): Q<CveHostsQuery>,
) -> Answer<Response> {
    let limit = match q.limit {
        Some(limit) => page_limit(limit)?,
        None => usize::MAX,
    };
    let page = state
        .view
        .cve_hosts(&cve, q.offset.unwrap_or(0), limit)
        .await?;
    Ok(json(&page))
}

pub async fn get_summary(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
) -> Answer<Response> {
    Ok(json(&state.view.summary(state.stale_secs()).await?))
}
