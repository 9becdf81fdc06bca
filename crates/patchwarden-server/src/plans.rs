//! Plans for a set of hosts on the server: what each host's repositories offer (reported by its
//! agent, `POST /v1/offers`) and its stored findings, judged by a baseline (`POST /v1/plans`). The
//! same computation as `patchwarden plan --root` on the host itself (`patchwarden-deploy::plan`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use patchwarden_deploy::baseline::{Baseline, BaselineSpec, UpdateCandidate};
use patchwarden_deploy::plan::{add_fixes, plan_host, updateinfo_fixes, HostPlan, WantedFix};
use patchwarden_model::fleet::Role;
use patchwarden_model::updates::HostOffers;
use serde::{Deserialize, Serialize};

use crate::api::{body, json, parse_body, stored, Answer, AppState, Failure};

/// An agent reports what its repositories offer (its last report replaced).
pub(crate) async fn put_offers(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    let host = state.host(&headers).await?;
    let offers: HostOffers = parse_body(&body(raw)?, "offers")?;
    let doc = serde_json::to_string(&offers).expect("offers serialize");
    let now = patchwarden_model::now_rfc3339();
    if !state.store.put_host_offers(host.id, &doc, &now).await? {
        return Err(Failure::new(StatusCode::NOT_FOUND, "no such host"));
    }
    Ok(json(&serde_json::json!({
        "host_id": host.id,
        "packages": offers.packages.len(),
        "advisories": offers.advisories.len(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanRequest {
    hosts: Vec<i64>,
    #[serde(default)]
    baseline: Option<BaselineSpec>,
    /// The day the baseline judges on (`YYYY-MM-DD`; default today, UTC).
    #[serde(default)]
    today: Option<String>,
}

/// A stored finding as a plan reads it.
#[derive(Deserialize)]
struct StoredFinding {
    package: String,
    advisory_id: String,
    #[serde(default)]
    cves: Vec<String>,
    fixed_version: Option<String>,
    state: String,
    severity: Option<String>,
    #[serde(default)]
    kev: bool,
    #[serde(default)]
    published: Option<String>,
    evidence: Option<StoredEvidence>,
}

#[derive(Deserialize)]
struct StoredEvidence {
    matched_name: String,
}

#[derive(Serialize)]
struct HostPlanAnswer {
    host_id: i64,
    /// When the host's agent last reported its repositories' offers.
    offers_reported_at: Option<String>,
    #[serde(flatten)]
    plan: HostPlan,
}

pub(crate) async fn plan_hosts(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    let request: PlanRequest = parse_body(&body(raw)?, "plan request")?;
    if request.hosts.is_empty() {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "plan: no hosts"));
    }
    let spec = request.baseline.unwrap_or_else(|| BaselineSpec {
        name: "everything".into(),
        ..Default::default()
    });
    let baseline = Baseline::parse(&spec)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("plan: baseline: {e}")))?;
    let today: jiff::civil::Date = match &request.today {
        Some(t) => t.parse().map_err(|_| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("plan: today {t:?} is not a YYYY-MM-DD date"),
            )
        })?,
        None => jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date(),
    };
    let mut plans = Vec::new();
    for host in request.hosts {
        let Some((inventory, _)) = state.store.host_inventory(host).await? else {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("plan: no host {host} with an inventory"),
            ));
        };
        let scheme = inventory
            .os
            .release
            .as_ref()
            .map(|r| r.distro.scheme())
            .unwrap_or(patchwarden_version::Scheme::Deb);
        let (offers, reported_at) = match state.store.host_offers(host).await? {
            Some((at, doc)) => (
                stored::<HostOffers>(&doc, &format!("offers of host {host}"))?,
                Some(at),
            ),
            None => (HostOffers::default(), None),
        };
        let findings: Vec<StoredFinding> = crate::changes::host_findings_as(&state, host).await?;
        let mut fixes: Vec<WantedFix> = Vec::new();
        for f in findings {
            let (Some(fixed), Some(evidence)) = (f.fixed_version, f.evidence) else {
                continue;
            };
            if f.state != "fix_available" {
                continue;
            }
            let fix = WantedFix {
                package: evidence.matched_name,
                fixed_version: fixed,
                candidate: UpdateCandidate {
                    package: f.package,
                    advisory_id: Some(f.advisory_id),
                    cves: f.cves,
                    severity: f.severity,
                    kev: f.kev,
                    classification: None,
                    released: f.published,
                },
            };
            add_fixes(&mut fixes, [fix]);
        }
        add_fixes(
            &mut fixes,
            updateinfo_fixes(&inventory.packages, &offers.advisories),
        );
        plans.push(HostPlanAnswer {
            host_id: host,
            offers_reported_at: reported_at,
            plan: plan_host(
                scheme,
                &inventory.packages,
                &offers.packages,
                &fixes,
                &baseline,
                today,
            ),
        });
    }
    Ok(json(&plans))
}
