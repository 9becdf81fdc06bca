//! What each host's repositories offer (`host_offers`): the agent's last report, replaced whole.

use crate::{Context, Store, StoreError};

impl Store {
    /// Stores what a host's repositories offer (replacing what it reported before); false when the
    /// host is unknown or revoked.
    pub async fn put_host_offers(
        &self,
        host_id: i64,
        doc: &str,
        now: &str,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let host: Option<i64> = sqlx::query_scalar(
            &self.sql("SELECT id FROM host WHERE id = $1 AND revoked_at IS NULL"),
        )
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await
        .context(|| "looking up the host".into())?;
        if host.is_none() {
            return Ok(false);
        }
        sqlx::query(&self.sql(
            "INSERT INTO host_offers (host_id, reported_at, doc) VALUES ($1, $2, $3) \
             ON CONFLICT (host_id) DO UPDATE SET reported_at = $2, doc = $3",
        ))
        .bind(host_id)
        .bind(now)
        .bind(doc)
        .execute(&mut *tx)
        .await
        .context(|| format!("storing the offers of host {host_id}"))?;
        tx.commit()
            .await
            .context(|| "committing the offers".into())?;
        Ok(true)
    }

    /// What a host last reported its repositories offer: (reported at, JSON document).
    pub async fn host_offers(&self, host_id: i64) -> Result<Option<(String, String)>, StoreError> {
        sqlx::query_as(&self.sql("SELECT reported_at, doc FROM host_offers WHERE host_id = $1"))
            .bind(host_id)
            .fetch_optional(self.pool())
            .await
            .context(|| format!("reading the offers of host {host_id}"))
    }
}
