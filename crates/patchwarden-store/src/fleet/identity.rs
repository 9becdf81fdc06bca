//! Who may talk to the server (hosts): enrollment tokens, enrolling a host (its credential stored
//! as a digest), looking a host up by its credential, revoking it, its labels. API users are in
//! [`super::users`].

use super::*;

impl Store {
    pub async fn create_enroll_token(
        &self,
        token_hash: &str,
        expires_at: &str,
        uses: i64,
        labels: &BTreeMap<String, String>,
        created_by: &str,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(&self.sql(
            "INSERT INTO enroll_token (token_hash, created_at, expires_at, uses_left, labels, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        ))
        .bind(token_hash)
        .bind(patchwarden_model::now_rfc3339())
        .bind(expires_at)
        .bind(uses)
        .bind(labels_json(labels))
        .bind(created_by)
        .fetch_one(self.pool())
        .await
        .context(|| "creating an enrollment token".into())
    }

    /// Spends one use of the enrollment token and creates the host with its credential digest, in
    /// one transaction; the token's labels become the host's.
    pub async fn enroll_host(
        &self,
        token_hash: &str,
        now: &str,
        hostname: &str,
        machine_id: Option<&str>,
        secret_hash: &str,
    ) -> Result<Result<(i64, BTreeMap<String, String>), EnrollRefusal>, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let spent: Option<String> = sqlx::query_scalar(&self.sql(
            "UPDATE enroll_token SET uses_left = uses_left - 1 \
             WHERE token_hash = $1 AND uses_left > 0 AND expires_at > $2 RETURNING labels",
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .context(|| "spending an enrollment token".into())?;
        let Some(labels) = spent else {
            let row: Option<(String, i64)> = sqlx::query_as(
                &self.sql("SELECT expires_at, uses_left FROM enroll_token WHERE token_hash = $1"),
            )
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await
            .context(|| "reading an enrollment token".into())?;
            return Ok(Err(match row {
                None => EnrollRefusal::Unknown,
                Some((expires, _)) if expires.as_str() <= now => EnrollRefusal::Expired,
                Some(_) => EnrollRefusal::UsedUp,
            }));
        };
        let id: i64 = sqlx::query_scalar(&self.sql(
            "INSERT INTO host (hostname, machine_id, secret_hash, labels, enrolled_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        ))
        .bind(hostname)
        .bind(machine_id)
        .bind(secret_hash)
        .bind(&labels)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .context(|| format!("enrolling {hostname}"))?;
        tx.commit()
            .await
            .context(|| "committing the enrollment".into())?;
        Ok(Ok((id, parse_labels(&labels))))
    }

    /// The host whose credential has this digest.
    pub async fn host_by_secret(
        &self,
        secret_hash: &str,
    ) -> Result<Option<HostCredential>, StoreError> {
        let row: Option<(i64, String, Option<String>)> = sqlx::query_as(
            &self.sql("SELECT id, hostname, revoked_at FROM host WHERE secret_hash = $1"),
        )
        .bind(secret_hash)
        .fetch_optional(self.pool())
        .await
        .context(|| "looking up a host credential".into())?;
        Ok(row.map(|(id, hostname, revoked)| HostCredential {
            id,
            hostname,
            revoked: revoked.is_some(),
        }))
    }

    /// Revokes a host's credential; returns whether the host exists.
    pub async fn revoke_host(&self, host_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            &self.sql("UPDATE host SET revoked_at = $2, view_version = view_version + 1 WHERE id = $1 AND revoked_at IS NULL"),
        )
        .bind(host_id)
        .bind(patchwarden_model::now_rfc3339())
        .execute(self.pool())
        .await
        .context(|| format!("revoking host {host_id}"))?;
        Ok(done.rows_affected() > 0 || self.host(host_id, 0).await?.is_some())
    }

    /// Sets labels on a host (a value of `""` removes the label).
    pub async fn set_host_labels(
        &self,
        host_id: i64,
        changes: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let current: Option<String> =
            sqlx::query_scalar(&self.sql("SELECT labels FROM host WHERE id = $1"))
                .bind(host_id)
                .fetch_optional(&mut *tx)
                .await
                .context(|| format!("reading host {host_id}"))?;
        let Some(current) = current else {
            return Ok(false);
        };
        let mut labels = parse_labels(&current);
        for (k, v) in changes {
            if v.is_empty() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), v.clone());
            }
        }
        sqlx::query(
            &self.sql("UPDATE host SET labels = $2, view_version = view_version + 1 WHERE id = $1"),
        )
        .bind(host_id)
        .bind(labels_json(&labels))
        .execute(&mut *tx)
        .await
        .context(|| format!("labelling host {host_id}"))?;
        tx.commit().await.context(|| "committing labels".into())?;
        Ok(true)
    }
}
