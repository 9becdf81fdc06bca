//! Hosts: list and read them, their findings and package history, set their labels, revoke their
//! credential.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use patchwarden_model::fleet::{HostFinding, PackageHistoryEntry, RevokeAck};
use patchwarden_store::fleet::HostFilter;
use serde::Deserialize;

use super::json;
use crate::auth::{Auditor, Caller, Operator};
use crate::error::{Answer, ApiError};
use crate::extract::{Body, HostId, Q};
use crate::state::AppState;
use patchwarden_model::audit::{Actor, AuditAction, AuditEvent};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsQuery {
    os: Option<String>,
    /// `key=value`, repeatable as a comma-separated list.
    label: Option<String>,
    group: Option<String>,
    stale: Option<bool>,
}

pub async fn list_hosts(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    Q(q): Q<HostsQuery>,
) -> Answer<Response> {
    let mut labels = parse_labels(q.label.as_deref())?;
    if let Some(g) = q.group {
        labels.push(("group".into(), g));
    }
    let filter = HostFilter {
        os: q.os,
        labels,
        stale: q.stale,
    };
    let mut hosts = state.store.hosts(&filter, state.stale_secs()).await?;
    state.view.count(&mut hosts).await?;
    Ok(json(&hosts))
}

/// `key=value` pairs, comma-separated (the `label` query parameter).
pub fn parse_labels(text: Option<&str>) -> Answer<Vec<(String, String)>> {
    let mut labels = Vec::new();
    for pair in text.iter().flat_map(|l| l.split(',')) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| ApiError::BadRequest(format!("label: {pair:?} is not key=value")))?;
        labels.push((k.to_owned(), v.to_owned()));
    }
    Ok(labels)
}

pub async fn get_host(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    HostId(id): HostId,
) -> Answer<Response> {
    let host = state
        .store
        .host(id, state.stale_secs())
        .await?
        .ok_or_else(|| ApiError::no_host(id))?;
    let mut one = [host];
    state.view.count(&mut one).await?;
    let [mut host] = one;
    // Named, never passed over: packages no advisory could be judged against.
    if let Some((inventory, _)) = state.store.host_inventory(id).await? {
        host.unparsable_versions = patchwarden_findings::unparsable_versions(&inventory);
    }
    Ok(json(&host))
}

pub async fn get_host_findings(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    HostId(id): HostId,
) -> Answer<Response> {
    let Some(host) = state.store.host(id, 0).await? else {
        return Err(ApiError::no_host(id));
    };
    let list: Vec<HostFinding> = state
        .view
        .host(id)
        .await?
        .into_iter()
        .map(|finding| HostFinding {
            host_id: id,
            hostname: host.hostname.clone(),
            finding,
        })
        .collect();
    Ok(json(&list))
}

pub async fn get_host_history(
    State(state): State<AppState>,
    _caller: Caller<Auditor>,
    HostId(id): HostId,
) -> Answer<Response> {
    // A host that does not exist is a 404, as for its findings (not an empty history).
    if state.store.host(id, 0).await?.is_none() {
        return Err(ApiError::no_host(id));
    }
    let rows = state.store.package_history(id).await?;
    let list: Vec<PackageHistoryEntry> = rows
        .into_iter()
        .map(
            |(package, version, appeared_at, disappeared_at)| PackageHistoryEntry {
                package,
                version,
                appeared_at,
                disappeared_at,
            },
        )
        .collect();
    Ok(json(&list))
}

/// A host's labels (`""` removes one).
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Labels(pub BTreeMap<String, String>);

impl crate::extract::RequestBody for Labels {
    const NAME: &'static str = "labels";
}

pub async fn set_host_labels(
    State(state): State<AppState>,
    caller: Caller<Operator>,
    HostId(id): HostId,
    Body(Labels(labels)): Body<Labels>,
) -> Answer<Response> {
    crate::admin::check_label_keys(&labels).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let before = state.store.host_labels(id).await?;
    if !state.store.set_host_labels(id, &labels).await? {
        return Err(ApiError::no_host(id));
    }
    // Labels decide approval classes: every change is audited with both sides.
    let mut event = AuditEvent::new(
        Actor::User {
            name: caller.user.name.clone(),
        },
        AuditAction::HostLabelsChanged,
        format!("host:{id}"),
    );
    for (k, v) in &before {
        event = event.with(&format!("before.{k}"), v.as_str());
    }
    for (k, v) in &labels {
        event = event.with(&format!("after.{k}"), v.as_str());
    }
    state.audit.record(event).await;
    let mut one: Vec<_> = state
        .store
        .host(id, state.stale_secs())
        .await?
        .into_iter()
        .collect();
    state.view.count(&mut one).await?;
    Ok(json(&one.pop()))
}

pub async fn revoke_host(
    State(state): State<AppState>,
    caller: Caller<Operator>,
    HostId(id): HostId,
) -> Answer<Response> {
    if !state.store.revoke_host(id).await? {
        return Err(ApiError::no_host(id));
    }
    state.hosts.forget(id);
    state
        .audit
        .record(AuditEvent::new(
            Actor::User {
                name: caller.user.name.clone(),
            },
            AuditAction::HostRevoked,
            format!("host:{id}"),
        ))
        .await;
    Ok(json(&RevokeAck { revoked: id }))
}
