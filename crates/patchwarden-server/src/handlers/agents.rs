//! What agents call: enrollment (an enrollment token in the body), check-ins (inventory or
//! heartbeat), and the report of what their repositories offer. Jobs are in [`super::jobs`].

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use patchwarden_model::fleet::{
    CheckInAck, CheckInResult, CheckInView, EnrollRequest, EnrollResponse, OffersAck,
};
use patchwarden_model::updates::HostOffers;
use patchwarden_store::fleet::{CheckInOutcome, Heartbeat, HeartbeatOutcome};

use super::json;
use crate::auth::{host_secret_digest, HostCaller};
use crate::error::{Answer, ApiError};
use crate::extract::{raw_body, Body};
use crate::secrets::{self, SecretKind};
use crate::state::AppState;
use patchwarden_model::audit::{Actor, AuditAction, AuditEvent};

pub async fn enroll(
    State(state): State<AppState>,
    Body(request): Body<EnrollRequest>,
) -> Answer<Response> {
    if request.hostname.trim().is_empty() || request.hostname.len() > 253 {
        return Err(ApiError::BadRequest(
            "hostname: must be 1 to 253 characters".into(),
        ));
    }
    if let Some(machine_id) = &request.machine_id {
        crate::admin::check_text("machine_id", machine_id, 256)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    crate::admin::check_text("hostname", &request.hostname, 253)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if SecretKind::of(&request.token) != Some(SecretKind::Enrollment) {
        state
            .metrics
            .count("patchwarden_enrollments_total", "result=\"refused\"");
        return Err(ApiError::Unauthorized(
            "token: not an enrollment token".into(),
        ));
    }
    let secret = secrets::generate(SecretKind::Host);
    let now = patchwarden_model::now_rfc3339();
    match state
        .store
        .enroll_host(
            &secrets::digest(&request.token),
            &now,
            request.hostname.trim(),
            request.machine_id.as_deref(),
            &secrets::digest(&secret),
        )
        .await?
    {
        Ok((host_id, labels)) => {
            state
                .metrics
                .count("patchwarden_enrollments_total", "result=\"enrolled\"");
            let mut event = AuditEvent::new(
                Actor::Host { id: host_id },
                AuditAction::HostEnrolled,
                format!("host:{host_id}"),
            )
            .with("hostname", request.hostname.trim());
            if let Some(machine_id) = &request.machine_id {
                event = event.with("machine_id", machine_id.as_str());
            }
            for (k, v) in &labels {
                event = event.with(&format!("label.{k}"), v.as_str());
            }
            state.audit.record(event).await;
            Ok(json(&EnrollResponse {
                host_id,
                host_secret: secret,
                labels,
                job_signing_key: Some(state.job_signer.public_key()),
            }))
        }
        Err(refusal) => {
            state
                .metrics
                .count("patchwarden_enrollments_total", "result=\"refused\"");
            Err(ApiError::Unauthorized(refusal.to_string()))
        }
    }
}

/// A check-in: the hot path. The credential is checked from the headers before the body is read;
/// the body is parsed as a [`CheckInView`] whose packages borrow from it (copying them was most of
/// a check-in's CPU).
pub async fn check_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Answer<Response> {
    // A heartbeat of a host this process knows skips the credential lookup: the heartbeat batch
    // refuses a revoked host itself. Anything else is authenticated against the store first.
    let secret_digest = host_secret_digest(&headers)?;
    let known = state.hosts.known(&secret_digest);
    let mut host_id = match known {
        Some(id) => id,
        None => {
            state
                .hosts
                .authenticate(&state.store, &secret_digest)
                .await?
                .id
        }
    };
    crate::request_log::CallerSlot::record(request.extensions(), || format!("host:{host_id}"));
    let raw = raw_body(request, &state).await?;
    // UTF-8 checked once for the whole body, not string by string as `from_slice` does.
    let text = std::str::from_utf8(&raw)
        .map_err(|e| ApiError::BadRequest(format!("check-in: the body is not UTF-8: {e}")))?;
    let report: CheckInView<'_> =
        serde_json::from_str(text).map_err(|e| ApiError::BadRequest(format!("check-in: {e}")))?;
    // A NUL is in no package manager's output and PostgreSQL cannot store it.
    crate::extract::refuse_nul(text.as_bytes(), "check-in")?;
    if known.is_some() && report.inventory.is_some() {
        host_id = state
            .hosts
            .authenticate(&state.store, &secret_digest)
            .await?
            .id;
    }
    crate::admin::check_text("agent_version", &report.agent_version, 64)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if report.idempotency_key.is_empty() || report.idempotency_key.len() > 128 {
        return Err(ApiError::BadRequest(
            "idempotency_key: must be 1 to 128 characters".into(),
        ));
    }
    let digest = match &report.inventory {
        Some(inventory) => {
            if inventory.head.schema_version != patchwarden_model::INVENTORY_SCHEMA_VERSION {
                return Err(ApiError::BadRequest(format!(
                    "inventory.schema_version: {} is not supported (this server reads {})",
                    inventory.head.schema_version,
                    patchwarden_model::INVENTORY_SCHEMA_VERSION
                )));
            }
            // The agent's digest is stored as sent: its heartbeats are compared with it, digest
            // against digest of the agent's own making, so an agent whose serialization differs
            // from this server's (a newer field) is not asked for its inventory at every
            // heartbeat. (Re-serializing and hashing the inventory here was a tenth of the
            // check-in.) A host can only misstate its own state, which it reports anyway.
            if report.digest.is_empty() {
                patchwarden_model::fleet::inventory_digest(&inventory.to_inventory())
            } else {
                report.digest.clone()
            }
        }
        None => report.digest.clone(),
    };
    if !is_sha256_hex(&digest) {
        return Err(ApiError::BadRequest(
            "digest: must be a SHA-256 in lowercase hex (64 characters)".into(),
        ));
    }
    let outcome = match &report.inventory {
        None => CheckInOutcome {
            result: heartbeat(
                &state,
                Heartbeat {
                    host_id,
                    idempotency_key: report.idempotency_key.clone(),
                    digest: digest.clone(),
                },
            )
            .await?,
            appeared: 0,
            disappeared: 0,
            inventory_version: 0,
        },
        Some(inventory) => {
            // Package versions interned here; the rest with the next batch of inventories.
            let entry = state
                .store
                .new_inventory(host_id, &report.idempotency_key, &digest, inventory)
                .await?;
            state.inventories.store(entry).await?
        }
    };
    state.metrics.count(
        "patchwarden_checkins_total",
        &format!("result=\"{}\"", outcome.result.as_str()),
    );
    if outcome.result == CheckInResult::Stored {
        // The report is committed; its findings follow in the background (and are queued again
        // at start if this process dies before they are stored). The worker reads what it needs
        // back (the inventory without packages and the package version ids: one row).
        state.findings.push(host_id);
    }
    Ok(json(&CheckInAck {
        result: outcome.result,
        interval_secs: state.config.checkin_interval.as_secs(),
        appeared: outcome.appeared,
        disappeared: outcome.disappeared,
        job_signing_key: Some(state.job_signer.public_key()),
    }))
}

/// Stores a heartbeat through the batcher; a revoked host's is refused (401).
async fn heartbeat(state: &AppState, beat: Heartbeat) -> Answer<CheckInResult> {
    let host_id = beat.host_id;
    match state.heartbeats.store(beat).await? {
        HeartbeatOutcome::Answered(result) => Ok(result),
        HeartbeatOutcome::Refused => {
            state.hosts.forget(host_id);
            Err(ApiError::Unauthorized(format!(
                "the credential of host {host_id} was revoked"
            )))
        }
    }
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An agent reports what its repositories offer (its last report replaced).
pub async fn put_offers(
    State(state): State<AppState>,
    HostCaller(host): HostCaller,
    Body(offers): Body<HostOffers>,
) -> Answer<Response> {
    let doc = serde_json::to_string(&offers).expect("offers serialize");
    let now = patchwarden_model::now_rfc3339();
    if !state.store.put_host_offers(host.id, &doc, &now).await? {
        return Err(ApiError::no_host(host.id));
    }
    Ok(json(&OffersAck {
        host_id: host.id,
        packages: offers.packages.len(),
        advisories: offers.advisories.len(),
    }))
}
