//! Who is calling: the bearer secret of a request, resolved to a user with a role or to a host, as
//! axum extractors — [`Caller<R>`] (a user whose role reaches `R`'s), [`HostCaller`] (a host's own
//! credential) — so that no handler checks a credential by hand. Also the per-process cache of host
//! credentials already checked ([`HostCache`]), which lets heartbeats skip the lookup.
//!
//! Secrets are stored as digests only; a secret's prefix says its kind (`secrets::SecretKind`), so
//! a host credential on the user API is a 403 and anything else unknown a 401. The per-process
//! cache of checked host credentials is [`crate::host_cache`].

use crate::request_log::CallerSlot;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use patchwarden_model::fleet::Role;
use patchwarden_store::fleet::{ApiUser, HostCredential};
use patchwarden_store::Store;

use crate::error::{Answer, ApiError};
use crate::secrets::{self, SecretKind};
use crate::state::AppState;

/// The least role a route needs, as a type (`Caller<Operator>`).
pub trait MinRole: Send + Sync + 'static {
    const ROLE: Role;
}

/// Read-only access to everything.
pub struct Auditor;
/// Approves changes (and reads).
pub struct Approver;
/// Changes the fleet: jobs, changes, labels, tokens.
pub struct Operator;
/// Manages users.
pub struct Admin;

impl MinRole for Auditor {
    const ROLE: Role = Role::Auditor;
}
impl MinRole for Approver {
    const ROLE: Role = Role::Approver;
}
impl MinRole for Operator {
    const ROLE: Role = Role::Operator;
}
impl MinRole for Admin {
    const ROLE: Role = Role::Admin;
}

/// A user whose role reaches `R`'s (401 without a valid user token, 403 below the role or with a
/// host credential).
pub struct Caller<R> {
    pub user: ApiUser,
    role: PhantomData<R>,
}

impl<R: MinRole> FromRequestParts<AppState> for Caller<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Answer<Self> {
        let user = user(&state.store, &parts.headers).await?;
        // Recorded before the role check, so a refused role names its caller in the log.
        CallerSlot::record(&parts.extensions, || format!("user:{}", user.name));
        check_role(&user, R::ROLE)?;
        Ok(Caller {
            user,
            role: PhantomData,
        })
    }
}

/// The host presenting its own, unrevoked credential (401 otherwise).
pub struct HostCaller(pub HostCredential);

impl FromRequestParts<AppState> for HostCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Answer<Self> {
        let digest = host_secret_digest(&parts.headers)?;
        let host = state.hosts.authenticate(&state.store, &digest).await?;
        CallerSlot::record(&parts.extensions, || format!("host:{}", host.id));
        Ok(HostCaller(host))
    }
}

/// The bearer secret of a request (the scheme's name is case-insensitive, RFC 9110).
fn bearer(headers: &HeaderMap) -> Answer<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("no Authorization header".into()))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not text".into()))?;
    let not_bearer =
        || ApiError::Unauthorized("the Authorization header is not `Bearer <token>`".into());
    let (scheme, secret) = value.split_once(' ').ok_or_else(not_bearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(not_bearer());
    }
    Ok(secret.trim())
}

/// The user presenting a token (401 for an unknown, expired or revoked one; 403 for a host
/// credential).
pub async fn user(store: &Store, headers: &HeaderMap) -> Answer<ApiUser> {
    let secret = bearer(headers)?;
    match SecretKind::of(secret) {
        Some(SecretKind::User) => {}
        Some(SecretKind::Host) => {
            return Err(ApiError::Forbidden(
                "a host credential cannot use the user API".into(),
            ))
        }
        _ => return Err(ApiError::Unauthorized("not a user token".into())),
    }
    let user = store
        .user_by_token(&secrets::digest(secret), &patchwarden_model::now_rfc3339())
        .await?
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "unknown, expired or revoked user token, or a disabled user".into(),
            )
        })?;
    Ok(user)
}

/// 403 unless the user's role reaches `needed`.
fn check_role(user: &ApiUser, needed: Role) -> Answer<()> {
    if user.role < needed {
        return Err(ApiError::Forbidden(format!(
            "user {} has role {}; this needs {}",
            user.name,
            user.role.as_str(),
            needed.as_str()
        )));
    }
    Ok(())
}

/// The digest of the request's host credential (401 without one, 403 for a user token).
pub fn host_secret_digest(headers: &HeaderMap) -> Answer<String> {
    let secret = bearer(headers)?;
    match SecretKind::of(secret) {
        Some(SecretKind::Host) => Ok(secrets::digest(secret)),
        // The wrong kind of credential, as a host credential on the user API: 403.
        Some(SecretKind::User) => Err(ApiError::Forbidden(
            "a user token cannot use the agent API".into(),
        )),
        _ => Err(ApiError::Unauthorized("not a host credential".into())),
    }
}
