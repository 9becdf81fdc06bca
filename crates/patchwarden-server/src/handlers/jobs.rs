//! Package jobs between operators and agents: queue one (`POST /v1/hosts/{id}/jobs`), long-poll
//! delivery (`GET /v1/jobs/next`), the host's report (`POST /v1/jobs/{id}/report`), and reading a
//! job (`GET /v1/jobs/{id}`).
//!
//! A job holds only a package operation with exact versions; hooks, health checks and the reboot
//! policy come from the host's profile in the deployment configuration, never from the request
//! (an operator may ask for a reboot policy other than `never`). On hosts of a class the change
//! policy always approves by hand, direct jobs are refused (403) unless the policy's
//! `direct_jobs_on_manual_hosts` allows them. Long-polls wait on the job board
//! ([`crate::job_board`]) instead of querying the store each.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use patchwarden_model::job::{
    JobOutcome, JobRecord, JobReport, JobReportAck, JobRequest, PackageTarget, RebootPolicy,
};
use serde::Deserialize;

use super::json;
use crate::auth::{Auditor, Caller, HostCaller, Operator};
use crate::documents::{parse, StoredJob};
use crate::error::{Answer, ApiError};
use crate::extract::{Body, HostId, JobId, Q};
use crate::state::AppState;
use patchwarden_model::audit::{Actor, AuditAction, AuditEvent};

/// Every target passes its family's rules on this host (400 naming the first that does not):
/// `PackageTarget::check_on` with the host's scheme and installed packages.
pub fn check_targets(
    host: i64,
    inventory: &patchwarden_model::Inventory,
    targets: &[PackageTarget],
) -> Answer<()> {
    let installed = |name: &str| inventory.packages.iter().any(|p| p.name == name);
    for p in targets {
        p.check_on(inventory.scheme(), installed)
            .map_err(|e| ApiError::BadRequest(format!("host {host}: {e}")))?;
    }
    Ok(())
}

pub async fn create_job(
    State(state): State<AppState>,
    caller: Caller<Operator>,
    HostId(host): HostId,
    Body(new): Body<JobRequest>,
) -> Answer<Response> {
    if new.packages.is_empty() {
        return Err(ApiError::BadRequest("job: no packages".into()));
    }
    let Some((inventory, _)) = state.store.host_inventory(host).await? else {
        if state.store.host(host, 0).await?.is_none() {
            return Err(ApiError::no_host(host));
        }
        return Err(ApiError::BadRequest(format!(
            "job: host {host} has no inventory yet (its packages cannot be checked)"
        )));
    };
    check_targets(host, &inventory, &new.packages)?;
    let labels = state.store.host_labels(host).await?;
    let classes = patchwarden_deploy::config::host_classes(&labels);
    // Separation of duties: on hosts always approved by hand, package changes go through an
    // approved change unless the policy allows direct jobs (then they are audited as such).
    let policy = &state.config.deploy.policy;
    policy
        .allows_direct_job(&classes)
        .map_err(|reason| ApiError::Forbidden(format!("job: host {host}: {reason}")))?;
    let manual_class = policy.manual_class(&classes).cloned();
    let mut job = state.config.deploy.package_job(
        crate::secrets::job_id(),
        new.operation,
        new.packages,
        &classes,
        state.config.job_lock_timeout.as_secs(),
    );
    if new.reboot != RebootPolicy::Never {
        job.reboot = new.reboot;
    }
    let signed = state
        .job_signer
        .sign(host, &job, patchwarden_model::unix_now());
    let doc = serde_json::to_string(&signed).expect("a job serializes");
    let now = patchwarden_model::now_rfc3339();
    if !state
        .store
        .enqueue_job(&job.id, host, &doc, &caller.user.name, &now)
        .await?
    {
        return Err(ApiError::no_host(host));
    }
    state.job_board.set(host, true);
    state
        .audit
        .record({
            let event = AuditEvent::job_queued(
                Actor::User {
                    name: caller.user.name.clone(),
                },
                host,
                &job,
            )
            .with("direct", "true");
            match &manual_class {
                Some(class) => event.with("manual_approval_class", class.as_str()),
                None => event,
            }
        })
        .await;
    state
        .metrics
        .count("patchwarden_jobs_total", "event=\"queued\"");
    Ok((StatusCode::CREATED, json(&job)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    wait_secs: Option<u64>,
}

pub async fn next_job(
    State(state): State<AppState>,
    HostCaller(host): HostCaller,
    Q(q): Q<WaitQuery>,
) -> Answer<Response> {
    let wait = Duration::from_secs(q.wait_secs.unwrap_or(0)).min(state.config.long_poll_max);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = state.job_board.changed();
        if state.job_board.has(host.id) {
            let now = patchwarden_model::now_rfc3339();
            match state.store.deliver_next_job(host.id, &now).await? {
                Some(row) => {
                    state
                        .metrics
                        .count("patchwarden_jobs_total", "event=\"delivered\"");
                    let job = StoredJob::parse(&row.doc, &row.id)?;
                    return Ok(json(&job.delivery(&row.id)));
                }
                None => state.job_board.set(host.id, false),
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(deadline - now) => {}
        }
    }
}

pub async fn report_job(
    State(state): State<AppState>,
    HostCaller(host): HostCaller,
    JobId(id): JobId,
    Body(report): Body<JobReport>,
) -> Answer<Response> {
    if report.id != id {
        return Err(ApiError::BadRequest(format!(
            "job report: for {:?}, sent to {id:?}",
            report.id
        )));
    }
    let job_state = report.outcome.state();
    let text = serde_json::to_string(&report).expect("a report serializes");
    let now = patchwarden_model::now_rfc3339();
    if !state
        .store
        .finish_job(host.id, &id, job_state, &text, &now)
        .await?
    {
        // Not this host's job, unknown, or finished already: the same answer for all three, so a
        // host learns nothing about other hosts' jobs.
        return Err(ApiError::NotFound(format!(
            "no open job {id} for this host"
        )));
    }
    state.metrics.count(
        "patchwarden_jobs_total",
        &format!("event=\"{}\"", job_state.as_str()),
    );
    let mut audit_event = AuditEvent::new(
        Actor::Host { id: host.id },
        AuditAction::JobReported,
        format!("job:{id}"),
    )
    .with("state", job_state.as_str());
    match &report.outcome {
        JobOutcome::Succeeded => {}
        JobOutcome::Failed { stage, reason } => {
            audit_event = audit_event
                .with("stage", stage.as_str())
                .with("reason", reason.as_str());
        }
        JobOutcome::Refused { refusal, reason } => {
            let kind = serde_json::to_value(refusal).expect("a refusal serializes");
            audit_event = audit_event
                .with("refusal", kind["refusal"].as_str().unwrap_or("?"))
                .with("reason", reason.as_str());
        }
    }
    state.audit.record(audit_event).await;
    state.rollout_wake.notify_one();
    Ok(json(&JobReportAck {
        job: id,
        state: job_state,
    }))
}

pub async fn get_job(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    JobId(id): JobId,
) -> Answer<Response> {
    let row = state
        .store
        .job(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
    let stored = StoredJob::parse(&row.doc, &id)?;
    let (signed_by, expires_at) = match &stored {
        StoredJob::Signed { envelope, claims } => (
            Some(envelope.key.clone()),
            Some(patchwarden_model::rfc3339(claims.expires_at)),
        ),
        StoredJob::Unsigned(_) => (None, None),
    };
    let job = stored.job().clone();
    let report: Option<JobReport> = match row.report.as_deref() {
        Some(r) => Some(parse(r, || format!("report of job {id}"))?),
        None => None,
    };
    Ok(json(&JobRecord {
        id: row.id,
        host_id: row.host_id,
        created_at: row.created_at,
        created_by: row.created_by,
        state: row.state,
        delivered_at: row.delivered_at,
        finished_at: row.finished_at,
        job,
        signed_by,
        expires_at,
        report,
    }))
}
