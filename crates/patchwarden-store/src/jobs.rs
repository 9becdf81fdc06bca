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
    pub state: patchwarden_model::job::JobState,
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
        let job = NewJob {
            id,
            host_id,
            doc,
            created_by,
        };
        if !self.insert_job(&mut tx, &job, now).await? {
            return Ok(false);
        }
        tx.commit().await.context(|| "committing the job".into())?;
        Ok(true)
    }

    /// Inserts a queued job in the caller's transaction; false when the host is unknown or revoked.
    async fn insert_job(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        job: &NewJob<'_>,
        now: &str,
    ) -> Result<bool, StoreError> {
        let host: Option<i64> = sqlx::query_scalar(
            &self.sql("SELECT id FROM host WHERE id = $1 AND revoked_at IS NULL"),
        )
        .bind(job.host_id)
        .fetch_optional(&mut **tx)
        .await
        .context(|| "looking up the job's host".into())?;
        if host.is_none() {
            return Ok(false);
        }
        sqlx::query(&self.sql(
            "INSERT INTO host_job (id, host_id, created_at, created_by, doc, state) \
             VALUES ($1, $2, $3, $4, $5, 'queued')",
        ))
        .bind(job.id)
        .bind(job.host_id)
        .bind(now)
        .bind(job.created_by)
        .bind(job.doc)
        .execute(&mut **tx)
        .await
        .context(|| format!("queueing job {}", job.id))?;
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

    /// Withdraws a job not yet delivered (`cancelled`): an agent that comes back later must not
    /// run work its change gave up on. False when it was delivered or finished already.
    pub async fn cancel_job(&self, id: &str, now: &str) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "UPDATE host_job SET state = 'cancelled', finished_at = $2 \
             WHERE id = $1 AND state = 'queued'",
        ))
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(|| format!("cancelling job {id}"))?;
        tx.commit()
            .await
            .context(|| "committing the cancellation".into())?;
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
                state: get::<String>(&r, "state")?
                    .parse()
                    .map_err(|e: String| StoreError::new(format!("job {id}: {e}")))?,
                delivered_at: get(&r, "delivered_at")?,
                finished_at: get(&r, "finished_at")?,
                doc: get(&r, "doc")?,
                report: get(&r, "report")?,
            })
        })
        .transpose()
    }
}

/// A job to queue (with [`Store::advance_change`]).
#[derive(Clone, Copy, Debug)]
pub struct NewJob<'a> {
    pub id: &'a str,
    pub host_id: i64,
    /// The job (JSON text).
    pub doc: &'a str,
    pub created_by: &'a str,
}

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
