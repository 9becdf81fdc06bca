//! Plans for a set of hosts (`POST /v1/plans`): each host's stored findings and what its agent
//! reported its repositories offer, judged by a baseline — the same assembly as `patchwarden plan
//! --root` on the host itself ([`patchwarden_deploy::plan::assemble`]).

use axum::extract::State;
use axum::response::Response;
use patchwarden_deploy::plan::{
    assemble, baseline_or_everything, plan_day, HostPlanAnswer, PlanInputs, PlanRequest,
};
use patchwarden_model::updates::HostOffers;

use super::json;
use crate::auth::{Auditor, Caller};
use crate::documents::{host_findings, parse};
use crate::error::{Answer, ApiError};
use crate::extract::Body;
use crate::state::AppState;

/// The most hosts one plan request names (each is planned in the request).
const MAX_PLAN_HOSTS: usize = 1000;

pub async fn create_plans(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    Body(request): Body<PlanRequest>,
) -> Answer<Response> {
    if request.hosts.is_empty() {
        return Err(ApiError::BadRequest("plan: no hosts".into()));
    }
    if request.hosts.len() > MAX_PLAN_HOSTS {
        return Err(ApiError::BadRequest(format!(
            "plan: {} hosts; at most {MAX_PLAN_HOSTS} per request",
            request.hosts.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = request.hosts.iter().find(|h| !seen.insert(**h)) {
        return Err(ApiError::BadRequest(format!(
            "plan: host {twice} is listed twice"
        )));
    }
    let baseline = baseline_or_everything(request.baseline)
        .map_err(|e| ApiError::BadRequest(format!("plan: baseline: {e}")))?;
    let today = plan_day(request.today.as_deref())
        .map_err(|e| ApiError::BadRequest(format!("plan: {e}")))?;
    let mut plans = Vec::new();
    for host in request.hosts {
        let Some((inventory, _)) = state.store.host_inventory(host).await? else {
            return Err(ApiError::BadRequest(format!(
                "plan: no host {host} with an inventory"
            )));
        };
        let (offers, reported_at) = match state.store.host_offers(host).await? {
            Some((at, doc)) => (
                parse::<HostOffers>(&doc, || format!("offers of host {host}"))?,
                Some(at),
            ),
            None => (HostOffers::default(), None),
        };
        let findings = host_findings(&state.view, host).await?;
        let inputs = PlanInputs {
            scheme: inventory.scheme(),
            installed: &inventory.packages,
            offered: &offers.packages,
            advisories: &offers.advisories,
            findings: &findings,
        };
        plans.push(HostPlanAnswer {
            host_id: host,
            offers_reported_at: reported_at,
            plan: assemble(&inputs, &baseline, today),
        });
    }
    Ok(json(&plans))
}
