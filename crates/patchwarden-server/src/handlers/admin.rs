//! Administration over the API: enrollment tokens and the expected-asset list (operator). Users are
//! in [`super::users`]. The rules live in [`crate::admin`], shared with the CLI's local commands.

use axum::extract::State;
use axum::response::Response;
use patchwarden_model::fleet::{AssetList, AssetsAck, EnrollTokenRequest, EnrollTokenResponse};

use super::json;
use crate::admin::{self, AdminError};
use crate::auth::{Caller, Operator};
use crate::error::{Answer, ApiError};
use crate::extract::Body;
use crate::state::AppState;
use patchwarden_model::audit::{Actor, AuditAction, AuditEvent};

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::Store(e) => ApiError::Store(e),
            AdminError::UserExists { .. } | AdminError::LastAdmin(_) => {
                ApiError::Conflict(e.to_string())
            }
            AdminError::NoUser(_) => ApiError::NotFound(e.to_string()),
            AdminError::Name(_)
            | AdminError::Uses
            | AdminError::Lifetime(_)
            | AdminError::LabelKey
            | AdminError::LabelValue => ApiError::BadRequest(e.to_string()),
        }
    }
}

pub async fn create_enroll_token(
    State(state): State<AppState>,
    caller: Caller<Operator>,
    Body(request): Body<EnrollTokenRequest>,
) -> Answer<Response> {
    let created = admin::create_enrollment_token(
        &state.store,
        request.expires_secs.unwrap_or(86400),
        request.uses.unwrap_or(1),
        &request.labels,
        &caller.user.name,
    )
    .await?;
    let mut event = AuditEvent::new(
        Actor::User {
            name: caller.user.name.clone(),
        },
        AuditAction::EnrollTokenCreated,
        format!("enroll-token:{}", created.expires_at),
    )
    .with("uses", created.uses.to_string())
    .with("expires_at", created.expires_at.as_str());
    for (k, v) in &request.labels {
        event = event.with(&format!("label.{k}"), v.as_str());
    }
    state.audit.record(event).await;
    Ok(json(&EnrollTokenResponse {
        token: created.token,
        expires_at: created.expires_at,
        uses: created.uses,
    }))
}

pub async fn replace_assets(
    State(state): State<AppState>,
    _caller: Caller<Operator>,
    Body(list): Body<AssetList>,
) -> Answer<Response> {
    if list.assets.iter().any(|(n, _)| n.is_empty()) {
        return Err(ApiError::BadRequest("assets: a host name is empty".into()));
    }
    state
        .store
        .replace_expected_assets(&list.assets, &list.source)
        .await?;
    Ok(json(&AssetsAck {
        assets: list.assets.len(),
    }))
}
