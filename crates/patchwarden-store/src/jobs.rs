//! Jobs for agents (queued by an operator or, later, a rollout; delivered once to their host's
//! agent; finished by the host's report) and change requests (a document updated only over the
//! version it was read at). Documents are stored as JSON text; the store does not look inside them.

use crate::{get, Context, Store, StoreError};

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct JobRow {
    pub id: String,
    pub host_id: i64,
    pub created_at: String,
    pub created_by: String,
    pub state: String,
    pub delivered_at: Option<String>,
    pub finished_at: Option<String>,
    /// The job (JSON text).
    pub doc: String,
    /// The agent's report (JSON text), once finished.
    pub report: Option<String>,
}

impl Store {
    /// Queues a job for a host; false when there is no such (unrevoked) host.
    pub async fn enqueue_job(
        &self,
        id: &str,
        host_id: i64,
        doc: &str,
        created_by: &str,
        now: &str,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let host: Option<i64> = sqlx::query_scalar(
            &self.sql("SELECT id FROM host WHERE id = $1 AND revoked_at IS NULL"),
        )
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await
        .context(|| "looking up the job's host".into())?;
        if host.is_none() {
            return Ok(false);
        }
        sqlx::query(&self.sql(
            "INSERT INTO host_job (id, host_id, created_at, created_by, doc, state) \
             VALUES ($1, $2, $3, $4, $5, 'queued')",
        ))
        .bind(id)
        .bind(host_id)
        .bind(now)
        .bind(created_by)
        .bind(doc)
        .execute(&mut *tx)
        .await
        .context(|| format!("queueing job {id}"))?;
        tx.commit().await.context(|| "committing the job".into())?;
        Ok(true)
    }

    /// The host's oldest queued job, marked delivered in the same transaction (so two servers
    /// never hand it out twice).
    pub async fn deliver_next_job(
        &self,
        host_id: i64,
        now: &str,
    ) -> Result<Option<JobRow>, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let lock = match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let id: Option<String> = sqlx::query_scalar(&self.sql(&format!(
            "SELECT id FROM host_job WHERE host_id = $1 AND state = 'queued' \
             ORDER BY created_at, id LIMIT 1{lock}"
        )))
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await
        .context(|| "looking for a queued job".into())?;
        let Some(id) = id else {
            return Ok(None);
        };
        sqlx::query(
            &self.sql("UPDATE host_job SET state = 'delivered', delivered_at = $2 WHERE id = $1"),
        )
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(|| format!("delivering job {id}"))?;
        tx.commit()
            .await
            .context(|| "committing the delivery".into())?;
        self.job(&id).await
    }

    /// Records a host's report of its job: false when the job is not that host's, or already
    /// finished (a repeated report changes nothing).
    pub async fn finish_job(
        &self,
        host_id: i64,
        id: &str,
        succeeded: bool,
        report: &str,
        now: &str,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "UPDATE host_job SET state = $3, report = $4, finished_at = $5 \
             WHERE id = $1 AND host_id = $2 AND state IN ('queued', 'delivered')",
        ))
        .bind(id)
        .bind(host_id)
        .bind(if succeeded { "succeeded" } else { "failed" })
        .bind(report)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(|| format!("recording the report of job {id}"))?;
        tx.commit()
            .await
            .context(|| "committing the report".into())?;
        Ok(done.rows_affected() == 1)
    }

    /// Hosts with a queued job (one index scan: servers poll it instead of every host's queue).
    pub async fn hosts_with_queued_jobs(&self) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar("SELECT DISTINCT host_id FROM host_job WHERE state = 'queued'")
            .fetch_all(self.pool())
            .await
            .context(|| "finding hosts with queued jobs".into())
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let row = sqlx::query(&self.sql(
            "SELECT id, host_id, created_at, created_by, state, delivered_at, finished_at, doc, report \
             FROM host_job WHERE id = $1",
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .context(|| format!("reading job {id}"))?;
        row.map(|r| {
            Ok(JobRow {
                id: get(&r, "id")?,
                host_id: get(&r, "host_id")?,
                created_at: get(&r, "created_at")?,
                created_by: get(&r, "created_by")?,
                state: get(&r, "state")?,
                delivered_at: get(&r, "delivered_at")?,
                finished_at: get(&r, "finished_at")?,
                doc: get(&r, "doc")?,
                report: get(&r, "report")?,
            })
        })
        .transpose()
    }
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
        now: &str,
    ) -> Result<(), StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        sqlx::query(&self.sql(
            "INSERT INTO change_request (id, created_at, updated_at, kind, state, version, doc) \
             VALUES ($1, $2, $2, $3, $4, 1, $5)",
        ))
        .bind(id)
        .bind(now)
        .bind(kind)
        .bind(state)
        .bind(doc)
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
        id: &str,
        version: i64,
        state: &str,
        doc: &str,
        now: &str,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "UPDATE change_request SET state = $3, doc = $4, updated_at = $5, version = version + 1 \
             WHERE id = $1 AND version = $2",
        ))
        .bind(id)
        .bind(version)
        .bind(state)
        .bind(doc)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(|| format!("updating change {id}"))?;
        tx.commit()
            .await
            .context(|| "committing the change".into())?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn change(&self, id: &str) -> Result<Option<ChangeRow>, StoreError> {
        let row = sqlx::query(&self.sql(
            "SELECT id, created_at, updated_at, kind, state, version, doc FROM change_request WHERE id = $1",
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .context(|| format!("reading change {id}"))?;
        row.map(|r| {
            Ok(ChangeRow {
                id: get(&r, "id")?,
                created_at: get(&r, "created_at")?,
                updated_at: get(&r, "updated_at")?,
                kind: get(&r, "kind")?,
                state: get(&r, "state")?,
                version: get(&r, "version")?,
                doc: get(&r, "doc")?,
            })
        })
        .transpose()
    }
}
