//! Change requests over the API: create (`POST /v1/changes`, operator), act on one (`POST
//! /v1/changes/{id}/actions`: submit, approve, reject, schedule, start, complete, fail, roll back,
//! cancel — the lifecycle of `patchwarden-deploy` decides, with the caller's name and role), read
//! one with its audit trail (`GET /v1/changes/{id}`). A transition is written only over the version
//! it was computed from, so two servers never both apply one to the same state.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use patchwarden_deploy::change::{
    Actor, ChangeAction, ChangeKind, ChangeLifecycle, ChangePolicy, Refusal,
};
use patchwarden_model::fleet::Role;
use patchwarden_model::job::PackageTarget;
use serde::{Deserialize, Serialize};

use crate::api::{body, json, parse_body, stored, Answer, AppState, Failure};

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
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostRollback {
    pub host_id: i64,
    pub packages: Vec<PackageTarget>,
    pub not_installed: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewChange {
    title: String,
    kind: ChangeKind,
    hosts: Vec<i64>,
    packages: Vec<PackageTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionRequest {
    action: ChangeAction,
    #[serde(default)]
    comment: Option<String>,
}

fn snake(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .expect("an enum serializes")
        .trim_matches('"')
        .to_owned()
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
    let policy = ChangePolicy::default();
    let mut classes = Vec::new();
    let mut rollback = Vec::new();
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
        classes.extend(
            state
                .store
                .host_labels(*host)
                .await?
                .into_iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
    }
    policy
        .allows(new.kind, &classes)
        .map_err(|reason| Failure::new(StatusCode::FORBIDDEN, format!("change: {reason}")))?;
    let doc = ChangeDoc {
        id: format!("chg-{}", crate::secrets::random_hex(8)),
        title: new.title,
        hosts: new.hosts,
        packages: new.packages,
        rollback,
        lifecycle: ChangeLifecycle::new(new.kind, &user.name),
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
            &now,
        )
        .await?;
    Ok((StatusCode::CREATED, json(&doc)).into_response())
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
    let policy = ChangePolicy::default();
    // Read, apply, write over the same version; a concurrent writer means read again (once).
    for _ in 0..2 {
        let row = state
            .store
            .change(&id)
            .await?
            .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("no change {id}")))?;
        let mut doc: ChangeDoc = stored(&row.doc, &format!("change {id}"))?;
        let now = patchwarden_model::now_rfc3339();
        if let Err(refused) = doc.lifecycle.apply(
            &policy,
            &actor,
            request.action,
            request.comment.as_deref(),
            &now,
        ) {
            let status = match refused.kind {
                Refusal::Forbidden => StatusCode::FORBIDDEN,
                Refusal::Conflict => StatusCode::CONFLICT,
                Refusal::Incomplete => StatusCode::BAD_REQUEST,
            };
            return Err(Failure::new(status, refused.to_string()));
        }
        let text = serde_json::to_string(&doc).expect("a change serializes");
        if state
            .store
            .update_change(&id, row.version, &snake(&doc.lifecycle.state), &text, &now)
            .await?
        {
            return Ok(json(&doc));
        }
    }
    Err(Failure::new(
        StatusCode::CONFLICT,
        format!("change {id} changed while this action was applied: try again"),
    ))
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
    let doc: serde_json::Value = stored(&row.doc, &format!("change {id}"))?;
    Ok(json(&doc))
}
