//! Change requests over the API: create one (`POST /v1/changes`, operator), list them (`GET
//! /v1/changes`), read one with its audit trail, rollout and per-host result (`GET
//! /v1/changes/{id}`), act on one (`POST /v1/changes/{id}/actions`: submit, approve, reject,
//! schedule, start, complete, fail, roll back, cancel — the lifecycle of `patchwarden-deploy`
//! decides, with the caller's name and role), steer its rollout (`POST /v1/changes/{id}/rollout`:
//! pause, resume, cancel).
//!
//! A change is written only over the version it was read at, so two servers (or a person and the
//! rollout driver of [`crate::rollouts`]) never both apply a step to the same state.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use patchwarden_deploy::change::{
    Actor, ChangeAction, ChangeLifecycle, ChangeState, Refusal, TransitionRefused,
};
use patchwarden_deploy::change_doc::{
    ActionRequest, ChangeDoc, HostRollback, HostTargets, NewChange, RolloutAction, RolloutRequest,
};
use patchwarden_deploy::config::host_classes;
use patchwarden_deploy::rollout::Rollout;
use patchwarden_deploy::verify::targeted_findings;
use patchwarden_model::job::PackageTarget;
use patchwarden_store::change_requests::ChangeUpdate;
use serde::Deserialize;

use super::jobs::check_targets;
use super::json;
use crate::auth::{Auditor, Caller, Operator};
use crate::documents::{host_findings, parse};
use crate::error::{Answer, ApiError};
use crate::extract::{Body, ChangeId, Q};
use crate::state::AppState;
use patchwarden_model::audit;

pub async fn create_change(
    State(state): State<AppState>,
    caller: Caller<Operator>,
    Body(new): Body<NewChange>,
) -> Answer<Response> {
    crate::admin::check_text("change: title", &new.title, 200)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if new.title.trim().is_empty() || new.hosts.is_empty() || new.packages.is_empty() {
        return Err(ApiError::BadRequest(
            "change: a title, at least one host and one package are needed".into(),
        ));
    }
    if let Some(spec) = &new.rollout {
        Rollout::check(spec).map_err(|e| ApiError::BadRequest(format!("change: rollout: {e}")))?;
    }
    let mut classes = Vec::new();
    let mut rollback = Vec::new();
    let mut targets = Vec::new();
    for host in &new.hosts {
        // A revoked host's agent can no longer take jobs: a change cannot include it.
        if state.store.host(*host, 0).await?.is_some_and(|h| h.revoked) {
            return Err(ApiError::BadRequest(format!(
                "change: host {host} is revoked"
            )));
        }
        let Some((inventory, _)) = state.store.host_inventory(*host).await? else {
            return Err(ApiError::BadRequest(format!(
                "change: no host {host} with an inventory"
            )));
        };
        check_targets(*host, &inventory, &new.packages)?;
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
        let open = host_findings(&state.view, *host).await?;
        let own_classes = host_classes(&state.store.host_labels(*host).await?);
        targets.push(HostTargets {
            host_id: *host,
            findings: targeted_findings(inventory.scheme(), &new.packages, &open),
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
        .map_err(|reason| ApiError::Forbidden(format!("change: {reason}")))?;
    let doc = ChangeDoc {
        id: crate::secrets::change_id(),
        title: new.title,
        hosts: new.hosts,
        packages: new.packages,
        rollback,
        lifecycle: ChangeLifecycle {
            requested_by_id: Some(caller.user.id),
            ..ChangeLifecycle::new(new.kind, &caller.user.name)
        },
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
            new.kind.as_str(),
            doc.lifecycle.state.as_str(),
            &text,
            doc.needs_driving(),
            &now,
        )
        .await?;
    let mut event = audit::AuditEvent::new(
        user_actor(&caller),
        audit::AuditAction::ChangeCreated,
        format!("change:{}", doc.id),
    )
    .with("kind", new.kind.as_str())
    .with("state", doc.lifecycle.state.as_str())
    .with(
        "hosts",
        doc.hosts
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    )
    .with("packages", audit::targets_text(&doc.packages));
    event = event.with("title", doc.title.as_str());
    state.audit.record(event).await;
    Ok((StatusCode::CREATED, json(&doc)).into_response())
}

/// A comment on an action: at most 2,000 characters (line breaks allowed).
fn check_comment(comment: Option<&str>) -> Answer<()> {
    match comment {
        Some(c) if c.chars().count() > 2000 => Err(ApiError::BadRequest(
            "comment: at most 2000 characters".into(),
        )),
        _ => Ok(()),
    }
}

/// The caller as the audit log names it.
fn user_actor<R>(caller: &Caller<R>) -> audit::Actor {
    audit::Actor::User {
        name: caller.user.name.clone(),
    }
}

fn refusal(refused: TransitionRefused) -> ApiError {
    let message = refused.to_string();
    match refused.kind {
        Refusal::Forbidden => ApiError::Forbidden(message),
        Refusal::Conflict => ApiError::Conflict(message),
        Refusal::Incomplete => ApiError::BadRequest(message),
    }
}

/// A stored change and its document (404 when there is none).
async fn read_change(
    state: &AppState,
    id: &str,
) -> Answer<(patchwarden_store::change_requests::ChangeRow, ChangeDoc)> {
    let row = state
        .store
        .change(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no change {id}")))?;
    let doc = parse(&row.doc, || format!("change {id}"))?;
    Ok((row, doc))
}

/// Reads a change, lets `step` change it, writes it over the version read (reading again once
/// when another writer got there first), wakes the rollout driver; answers the written document.
async fn update_change(
    state: &AppState,
    id: &str,
    step: impl Fn(&mut ChangeDoc, &str) -> Answer<()>,
) -> Answer<ChangeDoc> {
    for _ in 0..2 {
        let (row, mut doc) = read_change(state, id).await?;
        let now = patchwarden_model::now_rfc3339();
        step(&mut doc, &now)?;
        let text = serde_json::to_string(&doc).expect("a change serializes");
        let update = ChangeUpdate {
            id,
            version: row.version,
            state: doc.lifecycle.state.as_str(),
            doc: &text,
            active: doc.needs_driving(),
        };
        if state.store.update_change(&update, &now).await? {
            state.rollout_wake.notify_one();
            return Ok(doc);
        }
    }
    Err(ApiError::Conflict(format!(
        "change {id} changed while this action was applied: try again"
    )))
}

/// The caller as the lifecycle sees it: with the chain of accounts that created it.
async fn lifecycle_actor<R>(state: &AppState, caller: &Caller<R>) -> Answer<Actor> {
    let mut creators = Vec::new();
    let mut next = caller.user.created_by;
    // Bounded, and a loop (which ids cannot form, but a store edited by hand could) ends it.
    while let Some(id) = next {
        if creators.contains(&id) || creators.len() >= 64 {
            break;
        }
        creators.push(id);
        next = state.store.user(id).await?.and_then(|u| u.created_by);
    }
    Ok(Actor::account(
        caller.user.id,
        &caller.user.name,
        caller.user.role,
        creators,
    ))
}

/// The classes of all of a change's hosts, from their labels now.
async fn classes_now(state: &AppState, hosts: &[i64]) -> Answer<Vec<String>> {
    Ok(state
        .store
        .labels_of_hosts(hosts)
        .await?
        .into_values()
        .flat_map(|labels| host_classes(&labels))
        .collect())
}

/// Any user may ask; the lifecycle decides whether the caller's role and name allow the action.
/// A standard change's approval class is decided again at submit from its hosts' labels now.
pub async fn act_on_change(
    State(state): State<AppState>,
    caller: Caller<Auditor>,
    ChangeId(id): ChangeId,
    Body(request): Body<ActionRequest>,
) -> Answer<Response> {
    check_comment(request.comment.as_deref())?;
    let actor = lifecycle_actor(&state, &caller).await?;
    let policy = state.config.deploy.policy.clone();
    let classes = if request.action == ChangeAction::Submit {
        let (_, doc) = read_change(&state, &id).await?;
        classes_now(&state, &doc.hosts).await?
    } else {
        Vec::new()
    };
    let escalated = std::sync::Mutex::new(None);
    let doc = update_change(&state, &id, |doc, now| {
        if request.action == ChangeAction::Submit && doc.lifecycle.state == ChangeState::Draft {
            let reason = doc.lifecycle.reclassify(&policy, &classes, now);
            *escalated.lock().expect("not poisoned") = reason;
        }
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
    .await?;
    if let Some(reason) = escalated.into_inner().expect("not poisoned") {
        state
            .audit
            .record(audit::AuditEvent::change_transition(
                audit::Actor::System {
                    name: "policy".into(),
                },
                &id,
                "action",
                ChangeAction::Escalate.as_str(),
                ChangeState::Draft.as_str(),
                Some(&reason),
            ))
            .await;
    }
    state
        .audit
        .record(audit::AuditEvent::change_transition(
            user_actor(&caller),
            &id,
            "action",
            request.action.as_str(),
            doc.lifecycle.state.as_str(),
            request.comment.as_deref(),
        ))
        .await;
    Ok(json(&doc))
}

pub async fn steer_rollout(
    State(state): State<AppState>,
    caller: Caller<Operator>,
    ChangeId(id): ChangeId,
    Body(request): Body<RolloutRequest>,
) -> Answer<Response> {
    check_comment(request.comment.as_deref())?;
    let actor = lifecycle_actor(&state, &caller).await?;
    let policy = state.config.deploy.policy.clone();
    let doc = update_change(&state, &id, |doc, now| {
        let Some(rollout) = doc.rollout.as_mut() else {
            return Err(ApiError::Conflict(format!(
                "change {id} has no rollout yet"
            )));
        };
        let done = match request.action {
            RolloutAction::Pause => rollout.pause(),
            RolloutAction::Resume => rollout.resume(),
            RolloutAction::Cancel => rollout.cancel(),
        };
        if !done {
            return Err(ApiError::Conflict(format!(
                "cannot {} a rollout that is {}",
                request.action.as_str(),
                rollout.status.name()
            )));
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
            &caller.user.name,
            format!("rollout {}{comment}", request.action.done()),
        );
        Ok(())
    })
    .await?;
    state
        .audit
        .record(audit::AuditEvent::change_transition(
            user_actor(&caller),
            &id,
            "rollout",
            request.action.as_str(),
            doc.lifecycle.state.as_str(),
            request.comment.as_deref(),
        ))
        .await;
    Ok(json(&doc))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    limit: Option<i64>,
}

pub async fn list_changes(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    Q(q): Q<ListQuery>,
) -> Answer<Response> {
    let rows = state
        .store
        .changes(crate::extract::page_limit(q.limit, 100, 1000)?)
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let doc: ChangeDoc = parse(&row.doc, || format!("change {}", row.id))?;
        out.push(doc.summary(row.created_at, row.updated_at));
    }
    Ok(json(&out))
}

pub async fn get_change(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    ChangeId(id): ChangeId,
) -> Answer<Response> {
    let (_, doc) = read_change(&state, &id).await?;
    Ok(json(&doc.view()))
}
