//! API users (admin only, every change audited): create one (`POST /v1/users`), list them (`GET
//! /v1/users`), change a role or disable one (`PATCH /v1/users/{id}`), rotate a token (`POST
//! /v1/users/{id}/token`), revoke it (`DELETE /v1/users/{id}/token`). Tokens are shown once; the
//! store keeps digests. The rules (names, lifetimes, the last admin) are [`crate::admin`]'s.

use axum::extract::State;
use axum::response::Response;
use patchwarden_model::audit::{Actor, AuditAction, AuditEvent};
use patchwarden_model::fleet::{TokenRequest, UserRequest, UserResponse, UserUpdate};

use super::json;
use crate::admin::{self, NewUser};
use crate::auth::{Admin, Caller};
use crate::error::{Answer, ApiError};
use crate::extract::{Body, UserId};
use crate::state::AppState;

fn actor(caller: &Caller<Admin>) -> Actor {
    Actor::User {
        name: caller.user.name.clone(),
    }
}

fn response(user: NewUser) -> UserResponse {
    UserResponse {
        id: user.id,
        name: user.name,
        role: user.role,
        token: user.token,
        token_expires_at: user.token_expires_at,
    }
}

pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    Body(request): Body<UserRequest>,
) -> Answer<Response> {
    let user = admin::create_user(
        &state.store,
        &request.name,
        request.role,
        request.expires_secs,
        Some(caller.user.id),
    )
    .await?;
    let mut event = AuditEvent::new(
        actor(&caller),
        AuditAction::UserCreated,
        format!("user:{}", user.name),
    )
    .with("id", user.id.to_string())
    .with("role", user.role.as_str());
    if let Some(at) = &user.token_expires_at {
        event = event.with("token_expires_at", at.as_str());
    }
    state.audit.record(event).await;
    Ok(json(&response(user)))
}

pub async fn list_users(State(state): State<AppState>, _caller: Caller<Admin>) -> Answer<Response> {
    Ok(json(&state.store.users().await?))
}

pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    UserId(id): UserId,
    Body(update): Body<UserUpdate>,
) -> Answer<Response> {
    if update == UserUpdate::default() {
        return Err(ApiError::BadRequest(
            "user update: give a role, disabled, or both".into(),
        ));
    }
    let (before, after) = admin::update_user(&state.store, id, &update).await?;
    let disabled = |u: &patchwarden_model::fleet::UserInfo| u.disabled_at.is_some().to_string();
    state
        .audit
        .record(
            AuditEvent::new(
                actor(&caller),
                AuditAction::UserUpdated,
                format!("user:{}", after.name),
            )
            .with("id", id.to_string())
            .with("role.before", before.role.as_str())
            .with("role.after", after.role.as_str())
            .with("disabled.before", disabled(&before))
            .with("disabled.after", disabled(&after)),
        )
        .await;
    Ok(json(&after))
}

pub async fn rotate_user_token(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    UserId(id): UserId,
    Body(request): Body<TokenRequest>,
) -> Answer<Response> {
    let user = admin::rotate_user_token(&state.store, id, request.expires_secs).await?;
    let mut event = AuditEvent::new(
        actor(&caller),
        AuditAction::UserTokenRotated,
        format!("user:{}", user.name),
    )
    .with("id", id.to_string());
    if let Some(at) = &user.token_expires_at {
        event = event.with("token_expires_at", at.as_str());
    }
    state.audit.record(event).await;
    Ok(json(&response(user)))
}

pub async fn revoke_user_token(
    State(state): State<AppState>,
    caller: Caller<Admin>,
    UserId(id): UserId,
) -> Answer<Response> {
    let now = patchwarden_model::now_rfc3339();
    let user = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
    state.store.revoke_user_token(id, &now).await?;
    state
        .audit
        .record(
            AuditEvent::new(
                actor(&caller),
                AuditAction::UserTokenRevoked,
                format!("user:{}", user.name),
            )
            .with("id", id.to_string()),
        )
        .await;
    let user = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
    Ok(json(&user))
}
