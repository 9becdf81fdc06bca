//! Administration that both the API and the CLI's local commands perform on a store: users and
//! their tokens, enrollment tokens, the rules their names and lifetimes follow. One place, so that
//! `patchwarden user create` and `POST /v1/users` accept exactly the same names.

use std::collections::BTreeMap;

use patchwarden_model::fleet::Role;
use patchwarden_store::{Store, StoreError};

use crate::secrets::{self, SecretKind};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("name: {0}")]
    Name(&'static str),
    #[error("uses: must be at least 1")]
    Uses,
    #[error("labels: keys must be 1 to 64 characters")]
    LabelKey,
    #[error(
        "labels: at most {MAX_LABELS} labels, values at most 256 characters, no control characters"
    )]
    LabelValue,
    /// The store refused (a user of that name exists).
    #[error("user {name}: {source}")]
    UserExists { name: String, source: StoreError },
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// A user name: 1 to 64 characters, no surrounding white space, no control characters.
pub fn check_user_name(name: &str) -> Result<(), AdminError> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(AdminError::Name("must be 1 to 64 characters"));
    }
    if name.trim() != name {
        return Err(AdminError::Name("must not begin or end with white space"));
    }
    if name.chars().any(char::is_control) {
        return Err(AdminError::Name("must not hold control characters"));
    }
    Ok(())
}

/// The most labels a host or an enrollment token carries.
pub const MAX_LABELS: usize = 64;

/// Labels: keys 1 to 64 characters, values at most 256, neither with control characters, at
/// most [`MAX_LABELS`] of them (labels decide approval classes and reach terminals).
pub fn check_label_keys(labels: &BTreeMap<String, String>) -> Result<(), AdminError> {
    if labels.keys().any(|k| k.is_empty() || k.len() > 64) {
        return Err(AdminError::LabelKey);
    }
    let bad_value = |v: &String| v.chars().count() > 256 || v.chars().any(char::is_control);
    if labels.len() > MAX_LABELS
        || labels.values().any(bad_value)
        || labels.keys().any(|k| k.chars().any(char::is_control))
    {
        return Err(AdminError::LabelValue);
    }
    Ok(())
}

/// A short free-text field a client sends (`what`: its name in the error): at most `max`
/// characters, no control characters.
pub fn check_text(what: &str, text: &str, max: usize) -> Result<(), String> {
    if text.chars().count() > max {
        return Err(format!("{what}: at most {max} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what}: must not hold control characters"));
    }
    Ok(())
}

/// A new user and its token (shown once; the store keeps its digest).
pub struct NewUser {
    pub name: String,
    pub role: Role,
    pub token: String,
}

/// Creates a user with `role`; answers its token.
pub async fn create_user(store: &Store, name: &str, role: Role) -> Result<NewUser, AdminError> {
    check_user_name(name)?;
    let token = secrets::generate(SecretKind::User);
    store
        .create_user(name, role, &secrets::digest(&token))
        .await
        .map_err(|source| AdminError::UserExists {
            name: name.to_owned(),
            source,
        })?;
    Ok(NewUser {
        name: name.to_owned(),
        role,
        token,
    })
}

/// A new enrollment token (shown once), its expiry and uses.
pub struct NewEnrollToken {
    pub token: String,
    pub expires_at: String,
    pub uses: i64,
}

/// Longest lifetime of an enrollment token: ten years.
pub const MAX_ENROLL_TOKEN_SECS: u64 = 10 * 366 * 86400;

/// Creates an enrollment token valid for `expires_secs` (at most [`MAX_ENROLL_TOKEN_SECS`]) and
/// `uses` enrollments, giving every host enrolled with it `labels`.
pub async fn create_enrollment_token(
    store: &Store,
    expires_secs: u64,
    uses: i64,
    labels: &BTreeMap<String, String>,
    created_by: &str,
) -> Result<NewEnrollToken, AdminError> {
    if uses < 1 {
        return Err(AdminError::Uses);
    }
    check_label_keys(labels)?;
    let token = secrets::generate(SecretKind::Enrollment);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let expires_at = patchwarden_model::rfc3339(
        now.saturating_add(expires_secs.min(MAX_ENROLL_TOKEN_SECS) as i64),
    );
    store
        .create_enroll_token(
            &secrets::digest(&token),
            &expires_at,
            uses,
            labels,
            created_by,
        )
        .await?;
    Ok(NewEnrollToken {
        token,
        expires_at,
        uses,
    })
}
