//! API users: accounts with a stable id, a name unique without regard to case, a role, the admin
//! who created them; their tokens (digests only) with an optional expiry; disabling, role changes,
//! token rotation and revocation. The rules for names and lifetimes are the server's
//! (`patchwarden_server::admin`); this file stores what they allow.

use patchwarden_model::fleet::UserInfo;

use super::*;

/// A user to create: the name as given and its case-folded key, the token's digest.
pub struct NewUserRow<'a> {
    pub name: &'a str,
    /// The name lower-cased: unique across users.
    pub name_key: &'a str,
    pub role: Role,
    pub token_hash: &'a str,
    pub token_expires_at: Option<&'a str>,
    pub created_by: Option<i64>,
}

type UserTuple = (
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const USER_COLUMNS: &str =
    "id, name, role, created_at, created_by, disabled_at, token_expires_at, revoked_at";

fn user_info(row: UserTuple) -> Result<UserInfo, StoreError> {
    let (id, name, role, created_at, created_by, disabled_at, token_expires_at, revoked) = row;
    Ok(UserInfo {
        id,
        role: role
            .parse()
            .map_err(|e: String| StoreError::new(format!("user {name}: {e}")))?,
        name,
        created_at,
        created_by,
        disabled_at,
        token_expires_at,
        token_revoked_at: revoked,
    })
}

impl Store {
    /// Number of API users (the server creates the first admin when there is none).
    pub async fn user_count(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM api_user")
            .fetch_one(self.pool())
            .await
            .context(|| "counting users".into())
    }

    /// Creates a user; a name whose key another user holds is refused by the store (unique).
    pub async fn create_user(&self, user: &NewUserRow<'_>) -> Result<i64, StoreError> {
        sqlx::query_scalar(&self.sql(
            "INSERT INTO api_user (name, name_key, role, token_hash, token_expires_at, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        ))
        .bind(user.name)
        .bind(user.name_key)
        .bind(user.role.as_str())
        .bind(user.token_hash)
        .bind(user.token_expires_at)
        .bind(user.created_by)
        .bind(patchwarden_model::now_rfc3339())
        .fetch_one(self.pool())
        .await
        .context(|| format!("creating user {}", user.name))
    }

    /// The user whose token has this digest, unless the token was revoked or has expired at `now`
    /// (RFC 3339, the same fixed-width form as the expiry) or the user is disabled.
    pub async fn user_by_token(
        &self,
        token_hash: &str,
        now: &str,
    ) -> Result<Option<ApiUser>, StoreError> {
        let row: Option<(i64, String, String, Option<i64>)> = sqlx::query_as(&self.sql(
            "SELECT id, name, role, created_by FROM api_user WHERE token_hash = $1 \
             AND revoked_at IS NULL AND disabled_at IS NULL \
             AND (token_expires_at IS NULL OR token_expires_at > $2)",
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await
        .context(|| "looking up a user token".into())?;
        Ok(row.and_then(|(id, name, role, created_by)| {
            Some(ApiUser {
                id,
                name,
                role: role.parse().ok()?,
                created_by,
            })
        }))
    }

    /// Every user, by id.
    pub async fn users(&self) -> Result<Vec<UserInfo>, StoreError> {
        let rows: Vec<UserTuple> =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM api_user ORDER BY id"))
                .fetch_all(self.pool())
                .await
                .context(|| "listing users".into())?;
        rows.into_iter().map(user_info).collect()
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserInfo>, StoreError> {
        let row: Option<UserTuple> = sqlx::query_as(&self.sql(&format!(
            "SELECT {USER_COLUMNS} FROM api_user WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .context(|| format!("reading user {id}"))?;
        row.map(user_info).transpose()
    }

    /// Sets a user's role and whether it is disabled (`disabled_at`: when; none: enabled), in one
    /// statement; answers whether the user exists. Refused (false, nothing written) when it would
    /// leave no enabled admin.
    pub async fn update_user(
        &self,
        id: i64,
        role: Role,
        disabled_at: Option<&str>,
    ) -> Result<UserUpdateOutcome, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        if self.backend() == crate::Backend::Postgres {
            // One admin-count decision at a time across servers.
            sqlx::query("SELECT pg_advisory_xact_lock(7201)")
                .execute(&mut *tx)
                .await
                .context(|| "locking users".into())?;
        }
        let others: i64 = sqlx::query_scalar(&self.sql(
            "SELECT COUNT(*) FROM api_user WHERE role = 'admin' AND disabled_at IS NULL AND id <> $1",
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .context(|| "counting admins".into())?;
        if others == 0 && (role != Role::Admin || disabled_at.is_some()) {
            let is_admin: Option<i64> = sqlx::query_scalar(&self.sql(
                "SELECT id FROM api_user WHERE id = $1 AND role = 'admin' AND disabled_at IS NULL",
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context(|| "reading a user".into())?;
            if is_admin.is_some() {
                return Ok(UserUpdateOutcome::LastAdmin);
            }
        }
        let done =
            sqlx::query(&self.sql("UPDATE api_user SET role = $1, disabled_at = $2 WHERE id = $3"))
                .bind(role.as_str())
                .bind(disabled_at)
                .bind(id)
                .execute(&mut *tx)
                .await
                .context(|| format!("updating user {id}"))?
                .rows_affected();
        tx.commit().await.context(|| "committing a user".into())?;
        Ok(if done == 1 {
            UserUpdateOutcome::Updated
        } else {
            UserUpdateOutcome::NoUser
        })
    }

    /// Replaces a user's token (the old one stops working at once); answers whether it exists.
    pub async fn set_user_token(
        &self,
        id: i64,
        token_hash: &str,
        expires_at: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.sql(
            "UPDATE api_user SET token_hash = $1, token_expires_at = $2, revoked_at = NULL WHERE id = $3",
        ))
        .bind(token_hash)
        .bind(expires_at)
        .bind(id)
        .execute(self.pool())
        .await
        .context(|| format!("rotating the token of user {id}"))?
        .rows_affected();
        Ok(done == 1)
    }

    /// Revokes a user's token (a new one can be issued by rotation); answers whether it exists.
    pub async fn revoke_user_token(&self, id: i64, now: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            &self.sql("UPDATE api_user SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2"),
        )
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await
        .context(|| format!("revoking the token of user {id}"))?
        .rows_affected();
        Ok(done == 1)
    }
}

/// What [`Store::update_user`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserUpdateOutcome {
    Updated,
    NoUser,
    /// Refused: the user is the last enabled admin.
    LastAdmin,
}
