//! Administration that both the API and the CLI's local commands perform on a store: users and
//! their tokens, enrollment tokens, the rules their names and lifetimes follow. One place, so that
//! `patchwarden user create` and `POST /v1/users` accept exactly the same names.

use std::collections::BTreeMap;

use patchwarden_model::fleet::{Role, UserInfo};
use patchwarden_store::fleet::{NewUserRow, UserUpdateOutcome};
use patchwarden_store::{Store, StoreError};

use crate::secrets::{self, SecretKind};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("name: {0}")]
    Name(&'static str),
    #[error("uses: must be at least 1")]
    Uses,
    #[error("{0}: at most ten years ({MAX_TOKEN_SECS} seconds)")]
    Lifetime(&'static str),
    #[error("no user {0}")]
    NoUser(i64),
    #[error("user {0} is the last enabled admin: it can be neither demoted nor disabled")]
    LastAdmin(String),
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

/// A user name: 1 to 64 characters, no surrounding white space, no control or bidirectional
/// formatting characters (a name is shown in audit trails and tables: it must read as what it
/// is). Uniqueness is without regard to case ([`user_name_key`]).
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
    if name.chars().any(patchwarden_model::is_bidi_control) {
        return Err(AdminError::Name(
            "must not hold bidirectional formatting characters",
        ));
    }
    Ok(())
}

/// The key under which a user name is unique: lower-cased (`Admin` and `admin` are one user).
pub fn user_name_key(name: &str) -> String {
    name.to_lowercase()
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

/// Why a short free-text field from a client was refused (`what`: the field's name).
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("{what}: at most {max} characters")]
    TooLong { what: String, max: usize },
    #[error("{what}: must not hold control characters")]
    Control { what: String },
}

/// A short free-text field a client sends (`what`: its name in the error): at most `max`
/// characters, no control characters.
pub fn check_text(what: &str, text: &str, max: usize) -> Result<(), TextError> {
    if text.chars().count() > max {
        return Err(TextError::TooLong {
            what: what.into(),
            max,
        });
    }
    if text.chars().any(char::is_control) {
        return Err(TextError::Control { what: what.into() });
    }
    Ok(())
}

/// A new user (or a rotated token) and its token (shown once; the store keeps its digest).
pub struct NewUser {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub token: String,
    pub token_expires_at: Option<String>,
}

/// Longest lifetime of a token (enrollment or user) given in seconds: ten years.
pub const MAX_TOKEN_SECS: u64 = 10 * 366 * 86400;

/// RFC 3339 `secs` from now (at most [`MAX_TOKEN_SECS`]; a longer lifetime is refused).
fn expiry_after(what: &'static str, secs: u64) -> Result<String, AdminError> {
    if secs > MAX_TOKEN_SECS {
        return Err(AdminError::Lifetime(what));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(patchwarden_model::rfc3339(now.saturating_add(secs as i64)))
}

/// Creates a user with `role`, its token valid for `expires_secs` (none: until rotated or
/// revoked), created by the user `created_by` (none: the first admin, the local CLI); answers its
/// token. A name another user holds, in any case, is refused.
pub async fn create_user(
    store: &Store,
    name: &str,
    role: Role,
    expires_secs: Option<u64>,
    created_by: Option<i64>,
) -> Result<NewUser, AdminError> {
    check_user_name(name)?;
    let token_expires_at = expires_secs
        .map(|s| expiry_after("expires_secs", s))
        .transpose()?;
    let token = secrets::generate(SecretKind::User);
    let key = user_name_key(name);
    let id = store
        .create_user(&NewUserRow {
            name,
            name_key: &key,
            role,
            token_hash: &secrets::digest(&token),
            token_expires_at: token_expires_at.as_deref(),
            created_by,
        })
        .await
        .map_err(|source| AdminError::UserExists {
            name: name.to_owned(),
            source,
        })?;
    Ok(NewUser {
        id,
        name: name.to_owned(),
        role,
        token,
        token_expires_at,
    })
}

/// Gives user `id` a new token (the old one stops working), valid for `expires_secs`.
pub async fn rotate_user_token(
    store: &Store,
    id: i64,
    expires_secs: Option<u64>,
) -> Result<NewUser, AdminError> {
    let user = store.user(id).await?.ok_or(AdminError::NoUser(id))?;
    let token_expires_at = expires_secs
        .map(|s| expiry_after("expires_secs", s))
        .transpose()?;
    let token = secrets::generate(SecretKind::User);
    if !store
        .set_user_token(id, &secrets::digest(&token), token_expires_at.as_deref())
        .await?
    {
        return Err(AdminError::NoUser(id));
    }
    Ok(NewUser {
        id,
        name: user.name,
        role: user.role,
        token,
        token_expires_at,
    })
}

/// Changes user `id`'s role and whether it is disabled; answers the user before and after. The
/// last enabled admin can be neither demoted nor disabled.
pub async fn update_user(
    store: &Store,
    id: i64,
    update: &patchwarden_model::fleet::UserUpdate,
) -> Result<(UserInfo, UserInfo), AdminError> {
    let before = store.user(id).await?.ok_or(AdminError::NoUser(id))?;
    let role = update.role.unwrap_or(before.role);
    let disabled_at = match update.disabled {
        Some(true) => Some(
            before
                .disabled_at
                .clone()
                .unwrap_or_else(patchwarden_model::now_rfc3339),
        ),
        Some(false) => None,
        None => before.disabled_at.clone(),
    };
    match store.update_user(id, role, disabled_at.as_deref()).await? {
        UserUpdateOutcome::Updated => {}
        UserUpdateOutcome::NoUser => return Err(AdminError::NoUser(id)),
        UserUpdateOutcome::LastAdmin => return Err(AdminError::LastAdmin(before.name)),
    }
    let after = store.user(id).await?.ok_or(AdminError::NoUser(id))?;
    Ok((before, after))
}

/// A new enrollment token (shown once), its expiry and uses.
pub struct NewEnrollToken {
    pub token: String,
    pub expires_at: String,
    pub uses: i64,
}

/// Creates an enrollment token valid for `expires_secs` (at most [`MAX_TOKEN_SECS`]) and
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
    let expires_at = expiry_after("expires", expires_secs)?;
    let token = secrets::generate(SecretKind::Enrollment);
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
