//! Change requests over the API: create (`POST /v1/changes`, operator), list them (`GET
//! /v1/changes`), act on one (`POST /v1/changes/{id}/actions`: submit, approve, reject, schedule,
//! start, complete, fail, roll back, cancel — the lifecycle of `patchwarden-deploy` decides, with
//! the caller's name and role), steer its rollout (`POST /v1/changes/{id}/rollout`: pause, resume,
//! cancel), read one with its audit trail, rollout and per-host result (`GET /v1/changes/{id}`).
//!
//! A change is written only over the version it was read at, so two servers (or a person and the
//! rollout driver of [`crate::rollouts`]) never both apply a step to the same state.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use patchwarden_deploy::change::{
    Actor, ChangeAction, ChangeKind, ChangeLifecycle, ChangeState, Refusal, TransitionRefused,
};
use patchwarden_deploy::config::host_classes;
use patchwarden_deploy::rollout::{HostState, Rollout, RolloutSpec};
use patchwarden_deploy::verify::{targeted_findings, FindingFacts, TargetedFinding, Verification};
use patchwarden_model::fleet::Role;
use patchwarden_model::job::{JobOperation, PackageTarget};
use patchwarden_store::fleet::FindingFilter;
use patchwarden_store::jobs::ChangeUpdate;
use serde::{Deserialize, Serialize};

use crate::api::{body, json, parse_body, query, stored, Answer, AppState, Failure};

/// A change request as stored and served.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangeDoc {
    pub id: String,
    pub title: String,
    pub hosts: Vec<i64>,
    /// The exact versions the change installs (frozen when it is created).
    pub packages: Vec<PackageTarget>,
    /// The rollback plan: per host, the versions installed when the change was created (from its
    /// last inventory); a package the host did not have is listed under `not_installed`.
    pub rollback: Vec<HostRollback>,
    pub lifecycle: ChangeLifecycle,
    /// The change's own rollout (waves, thresholds, soak); the configuration's default otherwise.
    #[serde(default)]
    pub rollout_spec: Option<RolloutSpec>,
    /// The change starts no earlier than this (its schedule); hosts still start only inside their
    /// windows.
    #[serde(default)]
    pub not_before: Option<Timestamp>,
    /// Per host, the open findings the change should close there (verification checks them).
    #[serde(default)]
    pub targets: Vec<HostTargets>,
    /// The risk the change removes: the sum of its targeted findings' risk scores.
    #[serde(default)]
    pub risk_removed: f64,
    /// The rollout, once started.
    #[serde(default)]
    pub rollout: Option<Rollout>,
    /// Per host: the jobs run for the change and the verification.
    #[serde(default)]
    pub runs: BTreeMap<i64, HostRun>,
    /// What happened, in order (the lifecycle's transitions are in its audit trail).
    #[serde(default)]
    pub events: Vec<ChangeEvent>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostRollback {
    pub host_id: i64,
    pub packages: Vec<PackageTarget>,
    pub not_installed: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostTargets {
    pub host_id: i64,
    pub findings: Vec<TargetedFinding>,
    /// The maintenance window the host works in (from the deployment configuration); none: the
    /// configuration's rule for hosts without one.
    #[serde(default)]
    pub window: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HostRun {
    pub jobs: Vec<RunJob>,
    #[serde(default)]
    pub verification: Option<Verification>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunJob {
    pub id: String,
    pub operation: JobOperation,
    /// `queued` until the driver sees it end: `succeeded`, `failed`, or `timed_out` (withdrawn when
    /// it was not delivered yet).
    pub state: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub at: String,
    pub actor: String,
    pub message: String,
}

impl ChangeDoc {
    /// The versions the change installs on `host`: its packages the host has (a change updates,
    /// it does not add packages).
    pub fn install_targets(&self, host: i64) -> Vec<PackageTarget> {
        let missing = self
            .rollback
            .iter()
            .find(|r| r.host_id == host)
            .map(|r| r.not_installed.as_slice())
            .unwrap_or_default();
        self.packages
            .iter()
            .filter(|p| !missing.contains(&p.name))
            .cloned()
            .collect()
    }

    /// The versions `host` returns to on rollback.
    pub fn rollback_targets(&self, host: i64) -> Vec<PackageTarget> {
        self.rollback
            .iter()
            .find(|r| r.host_id == host)
            .map(|r| r.packages.clone())
            .unwrap_or_default()
    }

    pub fn targeted(&self, host: i64) -> &[TargetedFinding] {
        self.targets
            .iter()
            .find(|t| t.host_id == host)
            .map(|t| t.findings.as_slice())
            .unwrap_or_default()
    }

    pub(crate) fn event(&mut self, at: &str, actor: &str, message: String) {
        self.events.push(ChangeEvent {
            at: at.into(),
            actor: actor.into(),
            message,
        });
    }

    /// The rollout driver still has work on it: scheduling a pre-approved change, starting a
    /// scheduled one, a rollout in progress, or the lifecycle ahead of its rollout (cancelled or
    /// rolled back while hosts ran).
    pub fn needs_driving(&self) -> bool {
        let state = self.lifecycle.state;
        match state {
            ChangeState::Approved => self.lifecycle.kind == ChangeKind::Standard,
            ChangeState::Scheduled | ChangeState::Running => true,
            _ => self.rollout.as_ref().is_some_and(|r| {
                !r.finished() || (state == ChangeState::RolledBack && !r.rolling_back_all())
            }),
        }
    }

    /// Per host: where the rollout left it, what was installed, verified and what remains.
    pub fn result(&self) -> Vec<HostResult> {
        self.hosts
            .iter()
            .map(|h| {
                let state = self.rollout.as_ref().and_then(|r| r.hosts.get(h));
                let run = self.runs.get(h);
                let v = run.and_then(|r| r.verification.clone());
                HostResult {
                    host_id: *h,
                    state: state.map(|s| {
                        let text = serde_json::to_value(s).expect("a host state serializes");
                        text["state"].as_str().unwrap_or("?").to_owned()
                    }),
                    reason: match state {
                        Some(
                            HostState::Failed { reason, .. }
                            | HostState::RollingBack { reason, .. }
                            | HostState::RolledBack { reason, .. }
                            | HostState::RollbackFailed { reason, .. },
                        ) => Some(reason.clone()),
                        _ => None,
                    },
                    jobs: run.map(|r| r.jobs.clone()).unwrap_or_default(),
                    verification: v,
                }
            })
            .collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct HostResult {
    pub host_id: i64,
    /// The host's rollout state (`pending`, `running`, `succeeded`, `failed`, `rolled_back`, …);
    /// none before the rollout starts.
    pub state: Option<String>,
    pub reason: Option<String>,
    pub jobs: Vec<RunJob>,
    pub verification: Option<Verification>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewChange {
    title: String,
    kind: ChangeKind,
    hosts: Vec<i64>,
    packages: Vec<PackageTarget>,
    #[serde(default)]
    rollout: Option<RolloutSpec>,
    #[serde(default)]
    not_before: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionRequest {
    action: ChangeAction,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RolloutAction {
    Pause,
    Resume,
    Cancel,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RolloutRequest {
    action: RolloutAction,
    #[serde(default)]
    comment: Option<String>,
}

pub(crate) fn snake(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .expect("an enum serializes")
        .trim_matches('"')
        .to_owned()
}

/// The scheme a host's versions compare in (from its release; dpkg when unknown).
fn host_scheme(inventory: &patchwarden_model::Inventory) -> patchwarden_version::Scheme {
    inventory
        .os
        .release
        .as_ref()
        .map(|r| r.distro.scheme())
        .unwrap_or(patchwarden_version::Scheme::Deb)
}

pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    let user = state.user(&headers, Role::Operator).await?;
    let new: NewChange = parse_body(&body(raw)?, "change")?;
    if new.title.trim().is_empty() || new.hosts.is_empty() || new.packages.is_empty() {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "change: a title, at least one host and one package are needed",
        ));
    }
    crate::jobs::check_targets(&new.packages)?;
    if let Some(spec) = &new.rollout {
        Rollout::check(spec)
            .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("change: rollout: {e}")))?;
    }
    let mut classes = Vec::new();
    let mut rollback = Vec::new();
    let mut targets = Vec::new();
    for host in &new.hosts {
        let Some((inventory, _)) = state.store.host_inventory(*host).await? else {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("change: no host {host} with an inventory"),
            ));
        };
        let mut plan = HostRollback {
            host_id: *host,
            packages: Vec::new(),
            not_installed: Vec::new(),
        };
        for target in &new.packages {
            let installed = inventory.packages.iter().find(|p| {
                p.name == target.name && target.arch.as_ref().is_none_or(|a| *a == p.arch)
            });
            match installed {
                Some(p) => plan.packages.push(PackageTarget {
                    name: p.name.clone(),
                    arch: target.arch.clone(),
                    version: p.version.clone(),
                }),
                None => plan.not_installed.push(target.name.clone()),
            }
        }
        rollback.push(plan);
        let open = host_finding_facts(&state, *host).await?;
        let own_classes = host_classes(&state.store.host_labels(*host).await?);
        targets.push(HostTargets {
            host_id: *host,
            findings: targeted_findings(host_scheme(&inventory), &new.packages, &open),
            window: state
                .config
                .deploy
                .window_for(&own_classes)
                .map(|w| w.name.clone()),
        });
        classes.extend(own_classes);
    }
    state
        .config
        .deploy
        .policy
        .allows(new.kind, &classes)
        .map_err(|reason| Failure::new(StatusCode::FORBIDDEN, format!("change: {reason}")))?;
    let doc = ChangeDoc {
        id: format!("chg-{}", crate::secrets::random_hex(8)),
        title: new.title,
        hosts: new.hosts,
        packages: new.packages,
        rollback,
        lifecycle: ChangeLifecycle::new(new.kind, &user.name),
        rollout_spec: new.rollout,
        not_before: new.not_before,
        risk_removed: targets
            .iter()
            .flat_map(|t| &t.findings)
            .fold(0.0, |sum, f| sum + f.risk),
        targets,
        rollout: None,
        runs: BTreeMap::new(),
        events: Vec::new(),
    };
    let now = patchwarden_model::now_rfc3339();
    let text = serde_json::to_string(&doc).expect("a change serializes");
    state
        .store
        .create_change(
            &doc.id,
            &snake(&new.kind),
            &snake(&doc.lifecycle.state),
            &text,
            doc.needs_driving(),
            &now,
        )
        .await?;
    Ok((StatusCode::CREATED, json(&doc)).into_response())
}

/// A host's stored findings as verification reads them.
pub(crate) async fn host_finding_facts(state: &AppState, host: i64) -> Answer<Vec<FindingFacts>> {
    host_findings_as(state, host).await
}

/// A host's stored findings, each read as `T` (the fields a caller needs; 500 naming the host when
/// one does not parse).
pub(crate) async fn host_findings_as<T: serde::de::DeserializeOwned>(
    state: &AppState,
    host: i64,
) -> Answer<Vec<T>> {
    let rows = state
        .store
        .fleet_findings(&FindingFilter {
            host_id: Some(host),
            ..Default::default()
        })
        .await?;
    rows.iter()
        .map(|(_, _, doc)| stored(doc, &format!("finding of host {host}")))
        .collect()
}

fn refusal(refused: TransitionRefused) -> Failure {
    let status = match refused.kind {
        Refusal::Forbidden => StatusCode::FORBIDDEN,
        Refusal::Conflict => StatusCode::CONFLICT,
        Refusal::Incomplete => StatusCode::BAD_REQUEST,
    };
    Failure::new(status, refused.to_string())
}

/// Reads a change, lets `step` change it, writes it over the version read (reading again once
/// when another writer got there first), wakes the rollout driver; answers the written document.
async fn update_change(
    state: &AppState,
    id: &str,
    step: impl Fn(&mut ChangeDoc, &str) -> Answer<()>,
) -> Answer<Response> {
    for _ in 0..2 {
        let row = state
            .store
            .change(id)
            .await?
            .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("no change {id}")))?;
        let mut doc: ChangeDoc = stored(&row.doc, &format!("change {id}"))?;
        let now = patchwarden_model::now_rfc3339();
        step(&mut doc, &now)?;
        let text = serde_json::to_string(&doc).expect("a change serializes");
        let update = ChangeUpdate {
            id,
            version: row.version,
            state: &snake(&doc.lifecycle.state),
            doc: &text,
            active: doc.needs_driving(),
        };
        if state.store.update_change(&update, &now).await? {
            state.rollout_wake.notify_one();
            return Ok(json(&doc));
        }
    }
    Err(Failure::new(
        StatusCode::CONFLICT,
        format!("change {id} changed while this action was applied: try again"),
    ))
}

pub(crate) async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    let user = state.user(&headers, Role::Auditor).await?;
    let request: ActionRequest = parse_body(&body(raw)?, "change action")?;
    let actor = Actor::user(&user.name, user.role);
    let policy = state.config.deploy.policy.clone();
    update_change(&state, &id, |doc, now| {
        doc.lifecycle
            .apply(
                &policy,
                &actor,
                request.action,
                request.comment.as_deref(),
                now,
            )
            .map(|_| ())
            .map_err(refusal)
    })
    .await
}

pub(crate) async fn steer_rollout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    let user = state.user(&headers, Role::Operator).await?;
    let request: RolloutRequest = parse_body(&body(raw)?, "rollout action")?;
    let actor = Actor::user(&user.name, user.role);
    let policy = state.config.deploy.policy.clone();
    update_change(&state, &id, |doc, now| {
        let Some(rollout) = doc.rollout.as_mut() else {
            return Err(Failure::new(
                StatusCode::CONFLICT,
                format!("change {id} has no rollout yet"),
            ));
        };
        let done = match request.action {
            RolloutAction::Pause => rollout.pause(),
            RolloutAction::Resume => rollout.resume(),
            RolloutAction::Cancel => rollout.cancel(),
        };
        if !done {
            return Err(Failure::new(
                StatusCode::CONFLICT,
                format!(
                    "cannot {} a rollout that is {}",
                    snake(&request.action),
                    snake_status(rollout)
                ),
            ));
        }
        if request.action == RolloutAction::Cancel && doc.lifecycle.state == ChangeState::Running {
            doc.lifecycle
                .apply(
                    &policy,
                    &actor,
                    ChangeAction::Cancel,
                    request.comment.as_deref(),
                    now,
                )
                .map_err(refusal)?;
        }
        let comment = request
            .comment
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        doc.event(
            now,
            &user.name,
            format!("rollout {}{comment}", request.action_name()),
        );
        Ok(())
    })
    .await
}

impl RolloutRequest {
    fn action_name(&self) -> &'static str {
        match self.action {
            RolloutAction::Pause => "paused",
            RolloutAction::Resume => "resumed",
            RolloutAction::Cancel => "cancelled",
        }
    }
}

fn snake_status(rollout: &Rollout) -> String {
    let value = serde_json::to_value(&rollout.status).expect("a status serializes");
    value["status"].as_str().unwrap_or("?").to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    limit: Option<i64>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    let q = query(q)?;
    let rows = state
        .store
        .changes(q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let doc: ChangeDoc = stored(&row.doc, &format!("change {}", row.id))?;
        out.push(serde_json::json!({
            "id": row.id,
            "title": doc.title,
            "kind": row.kind,
            "state": row.state,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "requested_by": doc.lifecycle.requested_by,
            "hosts": doc.hosts.len(),
            "rollout": doc.rollout.as_ref().map(snake_status),
        }));
    }
    Ok(json(&out))
}

pub(crate) async fn get_change(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    let row = state
        .store
        .change(&id)
        .await?
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("no change {id}")))?;
    let doc: ChangeDoc = stored(&row.doc, &format!("change {id}"))?;
    let mut answer = serde_json::to_value(&doc).expect("a change serializes");
    answer["result"] = serde_json::to_value(doc.result()).expect("a result serializes");
    Ok(json(&answer))
}
