//! Package jobs between operators and agents: queue (`POST /v1/hosts/{id}/jobs`), long-poll
//! delivery (`GET /v1/jobs/next`), the host's report (`POST /v1/jobs/{id}/report`), and reading a
//! job (`GET /v1/jobs/{id}`).
//!
//! A job holds only a package operation with exact versions; hooks, health checks and the reboot
//! policy come from the host's profile in the deployment configuration, never from the request
//! (an operator may ask for a reboot policy other than `never`). Long-polls do not
//! query the store each: one task per server reads which hosts have queued jobs every
//! `job_poll` (and a job queued through this server wakes its host's poll at once).

use std::collections::HashSet;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use patchwarden_model::fleet::Role;
use patchwarden_model::job::{
    JobOperation, JobOutcome, JobReport, PackageJob, PackageTarget, RebootPolicy,
};
use serde::Deserialize;

use crate::api::{
    body, host_id, json, parse_body, query, stored, Answer, AppState, Failure, WaitQuery,
};

/// Hosts with queued jobs, as this server last saw them.
#[derive(Default)]
pub struct JobBoard {
    queued: std::sync::Mutex<HashSet<i64>>,
    changed: tokio::sync::Notify,
}

impl JobBoard {
    fn has(&self, host: i64) -> bool {
        self.queued
            .lock()
            .map(|q| q.contains(&host))
            .unwrap_or(true)
    }

    pub(crate) fn set(&self, host: i64, queued: bool) {
        if let Ok(mut q) = self.queued.lock() {
            if queued {
                q.insert(host);
            } else {
                q.remove(&host);
            }
        }
        if queued {
            self.changed.notify_waiters();
        }
    }

    fn replace(&self, hosts: Vec<i64>) {
        if let Ok(mut q) = self.queued.lock() {
            *q = hosts.into_iter().collect();
        }
        self.changed.notify_waiters();
    }
}

impl AppState {
    /// Reads which hosts have queued jobs every `every` (jobs queued through other servers).
    pub fn start_job_board(&self, every: Duration) {
        let state = self.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(hosts) = state.store.hosts_with_queued_jobs().await {
                    state.job_board.replace(hosts);
                }
                tokio::time::sleep(every).await;
            }
        });
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewJob {
    operation: JobOperation,
    packages: Vec<PackageTarget>,
    #[serde(default = "default_reboot")]
    reboot: RebootPolicy,
}

fn default_reboot() -> RebootPolicy {
    RebootPolicy::Never
}

/// Characters a package name or version may hold (dpkg and rpm rules, loosely): nothing a
/// command line could read as an option or a second argument.
fn plain(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.~:_^".contains(c))
}

/// Every target is a plain package name and version (400 naming the first that is not).
pub(crate) fn check_targets(targets: &[PackageTarget]) -> Answer<()> {
    for p in targets {
        let arch_ok = p.arch.as_deref().is_none_or(plain);
        if !plain(&p.name) || !plain(&p.version) || !arch_ok {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "package {:?} = {:?}: not a package name and version",
                    p.name, p.version
                ),
            ));
        }
    }
    Ok(())
}

/// A job for a host of `classes`: the operation and exact versions, with the hooks, health checks
/// and reboot policy of the host's profile in the deployment configuration (none without one). A
/// rollback runs the hooks but no health checks: it returns to versions that were healthy, and a
/// failing check must not stop that.
pub(crate) fn package_job(
    state: &AppState,
    operation: JobOperation,
    packages: Vec<PackageTarget>,
    classes: &[String],
) -> PackageJob {
    let profile = state.config.deploy.profile_for(classes);
    let health_checks = match (&operation, profile) {
        (JobOperation::Install, Some(p)) => p.health_checks.clone(),
        _ => Vec::new(),
    };
    PackageJob {
        id: format!("job-{}", crate::secrets::random_hex(12)),
        operation,
        packages,
        reboot: profile.map_or(RebootPolicy::Never, |p| p.reboot),
        pre_hooks: profile.map(|p| p.pre_hooks.clone()).unwrap_or_default(),
        post_hooks: profile.map(|p| p.post_hooks.clone()).unwrap_or_default(),
        health_checks,
        lock_timeout_secs: state.config.job_lock_timeout.as_secs(),
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    let user = state.user(&headers, Role::Operator).await?;
    let host = host_id(&id)?;
    let new: NewJob = parse_body(&body(raw)?, "job")?;
    if new.packages.is_empty() {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "job: no packages"));
    }
    check_targets(&new.packages)?;
    let labels = state.store.host_labels(host).await?;
    let classes = patchwarden_deploy::config::host_classes(&labels);
    let mut job = package_job(&state, new.operation, new.packages, &classes);
    if new.reboot != RebootPolicy::Never {
        job.reboot = new.reboot;
    }
    let doc = serde_json::to_string(&job).expect("a job serializes");
    let now = patchwarden_model::now_rfc3339();
    if !state
        .store
        .enqueue_job(&job.id, host, &doc, &user.name, &now)
        .await?
    {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no host {host}"),
        ));
    }
    state.job_board.set(host, true);
    state
        .metrics
        .count("patchwarden_jobs_total", "event=\"queued\"");
    Ok((StatusCode::CREATED, json(&job)).into_response())
}

pub(crate) async fn next_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<Response> {
    let host = state.host(&headers).await?;
    let q = query(q)?;
    let wait = Duration::from_secs(q.wait_secs.unwrap_or(0)).min(state.config.long_poll_max);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = state.job_board.changed.notified();
        if state.job_board.has(host.id) {
            let now = patchwarden_model::now_rfc3339();
            match state.store.deliver_next_job(host.id, &now).await? {
                Some(row) => {
                    state
                        .metrics
                        .count("patchwarden_jobs_total", "event=\"delivered\"");
                    let job: serde_json::Value = stored(&row.doc, &format!("job {}", row.id))?;
                    return Ok(json(&job));
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

pub(crate) async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    let host = state.host(&headers).await?;
    let report: JobReport = parse_body(&body(raw)?, "job report")?;
    if report.id != id {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("job report: for {:?}, sent to {id:?}", report.id),
        ));
    }
    let succeeded = report.outcome == JobOutcome::Succeeded;
    let text = serde_json::to_string(&report).expect("a report serializes");
    let now = patchwarden_model::now_rfc3339();
    if !state
        .store
        .finish_job(host.id, &id, succeeded, &text, &now)
        .await?
    {
        // Not this host's job, unknown, or finished already: the same answer for all three, so a
        // host learns nothing about other hosts' jobs.
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no open job {id} for this host"),
        ));
    }
    let event = if succeeded {
        "event=\"succeeded\""
    } else {
        "event=\"failed\""
    };
    state.metrics.count("patchwarden_jobs_total", event);
    state.rollout_wake.notify_one();
    Ok(json(
        &serde_json::json!({"job": id, "state": if succeeded { "succeeded" } else { "failed" }}),
    ))
}

pub(crate) async fn job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    let row = state
        .store
        .job(&id)
        .await?
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("no job {id}")))?;
    let doc: serde_json::Value = stored(&row.doc, &format!("job {id}"))?;
    let report: Option<serde_json::Value> = match row.report.as_deref() {
        Some(r) => Some(stored(r, &format!("report of job {id}"))?),
        None => None,
    };
    Ok(json(&serde_json::json!({
        "id": row.id,
        "host_id": row.host_id,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "state": row.state,
        "delivered_at": row.delivered_at,
        "finished_at": row.finished_at,
        "job": doc,
        "report": report,
    })))
}
