//! Administration over the API: enrollment tokens and the expected-asset list (operator), users
//! (admin). The rules live in [`crate::admin`], shared with the CLI's local commands.

use axum::extract::State;
use axum::response::Response;
use patchwarden_model::fleet::{
    AssetList, AssetsAck, EnrollTokenRequest, EnrollTokenResponse, UserRequest, UserResponse,
};

use super::json;
use crate::admin::{self, AdminError};
use crate::auth::{Admin, Caller, Operator};
use crate::error::{Answer, ApiError};
use crate::extract::Body;
use crate::state::AppState;

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::Store(e) => ApiError::Store(e),
            AdminError::UserExists { .. } => ApiError::Conflict(e.to_string()),
            AdminError::Name(_) | AdminError::Uses | AdminError::LabelKey => {
                ApiError::BadRequest(e.to_string())
            }
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
    Ok(json(&EnrollTokenResponse {
        token: created.token,
        expires_at: created.expires_at,
        uses: created.uses,
    }))
}

pub async fn create_user(
    State(state): State<AppState>,
    _caller: Caller<Admin>,
    Body(request): Body<UserRequest>,
) -> Answer<Response> {
    let user = admin::create_user(&state.store, &request.name, request.role).await?;
    Ok(json(&UserResponse {
        name: user.name,
        role: user.role,
        token: user.token,
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
