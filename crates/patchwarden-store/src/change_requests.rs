//! Change requests: a document updated only over the version it was read at, written together
//! with the jobs the rollout driver queues for it (`advance_change`), and the active ones the
//! driver reads. The document is stored as JSON text; the store does not look inside it.

use crate::jobs::NewJob;
use crate::{get, Context, Store, StoreError};

/// A change's new state, written over the version it was read at.
#[derive(Clone, Copy, Debug)]
pub struct ChangeUpdate<'a> {
    pub id: &'a str,
    pub version: i64,
    pub state: &'a str,
    pub doc: &'a str,
    /// The rollout driver still has work on it.
    pub active: bool,
}

/// A change request as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRow {
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub kind: String,
    pub state: String,
    pub version: i64,
    pub doc: String,
}

impl Store {
    pub async fn create_change(
        &self,
        id: &str,
        kind: &str,
        state: &str,
        doc: &str,
        active: bool,
        now: &str,
    ) -> Result<(), StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        sqlx::query(&self.sql(
            "INSERT INTO change_request (id, created_at, updated_at, kind, state, version, doc, active) \
             VALUES ($1, $2, $2, $3, $4, 1, $5, $6)",
        ))
        .bind(id)
        .bind(now)
        .bind(kind)
        .bind(state)
        .bind(doc)
        .bind(active as i64)
        .execute(&mut *tx)
        .await
        .context(|| format!("creating change {id}"))?;
        tx.commit()
            .await
            .context(|| "committing the change".into())?;
        Ok(())
    }

    /// Replaces a change's document if it is still at `version`; false when another writer got
    /// there first (the caller reads again).
    pub async fn update_change(
        &self,
        update: &ChangeUpdate<'_>,
        now: &str,
    ) -> Result<bool, StoreError> {
        self.advance_change(update, &[], now).await
    }

    /// Replaces a change's document if it is still at `version` and queues `jobs` in the same
    /// transaction: when another writer got there first, nothing is written and no job is queued
    /// (false). A job for a host that is gone is not queued; the change's own document says so.
    pub async fn advance_change(
        &self,
        update: &ChangeUpdate<'_>,
        jobs: &[NewJob<'_>],
        now: &str,
    ) -> Result<bool, StoreError> {
        let id = update.id;
        let (_writer, mut tx) = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "UPDATE change_request SET state = $3, doc = $4, updated_at = $5, active = $6, \
             version = version + 1 WHERE id = $1 AND version = $2",
        ))
        .bind(id)
        .bind(update.version)
        .bind(update.state)
        .bind(update.doc)
        .bind(now)
        .bind(update.active as i64)
        .execute(&mut *tx)
        .await
        .context(|| format!("updating change {id}"))?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        for job in jobs {
            self.insert_job(&mut tx, job, now).await?;
        }
        tx.commit()
            .await
            .context(|| "committing the change".into())?;
        Ok(true)
    }

    /// Changes the rollout driver still has work on, least recently updated first.
    pub async fn active_changes(&self) -> Result<Vec<ChangeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, created_at, updated_at, kind, state, version, doc FROM change_request \
             WHERE active = 1 ORDER BY updated_at, id",
        )
        .fetch_all(self.pool())
        .await
        .context(|| "reading active changes".into())?;
        rows.iter().map(change_row).collect()
    }

    /// Change requests, newest first (documents included).
    pub async fn changes(&self, limit: i64) -> Result<Vec<ChangeRow>, StoreError> {
        let rows = sqlx::query(&self.sql(
            "SELECT id, created_at, updated_at, kind, state, version, doc FROM change_request \
             ORDER BY created_at DESC, id LIMIT $1",
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .context(|| "reading changes".into())?;
        rows.iter().map(change_row).collect()
    }

    pub async fn change(&self, id: &str) -> Result<Option<ChangeRow>, StoreError> {
        let row = sqlx::query(&self.sql(
            "SELECT id, created_at, updated_at, kind, state, version, doc FROM change_request WHERE id = $1",
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .context(|| format!("reading change {id}"))?;
        row.as_ref().map(change_row).transpose()
    }
}

fn change_row(r: &sqlx::any::AnyRow) -> Result<ChangeRow, StoreError> {
    Ok(ChangeRow {
        id: get(r, "id")?,
        created_at: get(r, "created_at")?,
        updated_at: get(r, "updated_at")?,
        kind: get(r, "kind")?,
        state: get(r, "state")?,
        version: get(r, "version")?,
        doc: get(r, "doc")?,
    })
}
