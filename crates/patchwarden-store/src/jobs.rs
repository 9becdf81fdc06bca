//! Jobs for agents (queued by an operator or by a rollout; delivered once to their host's agent;
//! finished by the host's report, or withdrawn while queued). The job is stored as JSON text (the
//! signed envelope, `model::job_signature::SignedJob`); the store does not look inside it.

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
    pub(crate) async fn insert_job(
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

    /// Records a host's report of its job (`state`: the outcome's, a finished one): false when the job is not that host's, was never
    /// delivered (a host cannot report a job it was not given), or is finished already (a
    /// repeated report changes nothing).
    pub async fn finish_job(
        &self,
        host_id: i64,
        id: &str,
        state: patchwarden_model::job::JobState,
        report: &str,
        now: &str,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "UPDATE host_job SET state = $3, report = $4, finished_at = $5 \
             WHERE id = $1 AND host_id = $2 AND state = 'delivered'",
        ))
        .bind(id)
        .bind(host_id)
        .bind(state.as_str())
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
