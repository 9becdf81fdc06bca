//! Scheduled work that must run once per interval across every server sharing the store (the
//! feed sync): a lease per name — who holds it until when, when the work last completed. A server
//! takes the lease when the interval has passed since the last completion and nobody holds it (or
//! the holder's lease expired: it died or hangs), renews the lease while the work runs (a short
//! lease, so that a dead holder is replaced soon, and a long run is never started twice), then
//! records the completion and lets go. Taking and renewing are one conditional statement each,
//! atomic on both backends.

use crate::{Context, Store, StoreError};

/// A scheduled lease's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledLease {
    pub holder: String,
    pub expires_at: i64,
    pub last_run: i64,
}

impl Store {
    /// Takes the lease `name` for `holder` at `now` (Unix seconds) until `now + ttl_secs` when the
    /// work is due (its last completion `every_secs` ago or more, or never) and no other holder's
    /// lease is current; answers whether this holder is now to run it.
    pub async fn take_scheduled(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        every_secs: i64,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let taken = sqlx::query(&self.sql(
            "INSERT INTO scheduled_lease (name, holder, expires_at, last_run) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3 \
             WHERE scheduled_lease.last_run + $5 <= $4 \
             AND (scheduled_lease.expires_at <= $4 OR scheduled_lease.holder = $2)",
        ))
        .bind(name)
        .bind(holder)
        .bind(now + ttl_secs)
        .bind(now)
        .bind(every_secs)
        .execute(&mut *tx)
        .await
        .context(|| format!("taking the lease {name}"))?
        .rows_affected();
        tx.commit()
            .await
            .context(|| format!("committing the lease {name}"))?;
        Ok(taken == 1)
    }

    /// Extends `holder`'s lease `name` to `now + ttl_secs` while its work runs; answers false when
    /// the lease is no longer this holder's (it expired and another server took it). An expired
    /// lease nobody took meanwhile is this holder's again.
    pub async fn renew_scheduled(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let renewed = sqlx::query(
            &self.sql("UPDATE scheduled_lease SET expires_at = $3 WHERE name = $1 AND holder = $2"),
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_secs)
        .execute(&mut *tx)
        .await
        .context(|| format!("renewing the lease {name}"))?
        .rows_affected();
        tx.commit()
            .await
            .context(|| format!("committing the lease {name}"))?;
        Ok(renewed == 1)
    }

    /// Records that `holder` completed the work at `now` and lets the lease go (nothing when the
    /// lease passed to another holder meanwhile: that one's completion counts).
    pub async fn finish_scheduled(
        &self,
        name: &str,
        holder: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "UPDATE scheduled_lease SET last_run = $3, expires_at = $3 WHERE name = $1 AND holder = $2",
        ))
        .bind(name)
        .bind(holder)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(|| format!("finishing the lease {name}"))?
        .rows_affected();
        tx.commit()
            .await
            .context(|| format!("committing the lease {name}"))?;
        Ok(done == 1)
    }

    /// The lease's row, if it was ever taken.
    pub async fn scheduled_lease(&self, name: &str) -> Result<Option<ScheduledLease>, StoreError> {
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            &self.sql("SELECT holder, expires_at, last_run FROM scheduled_lease WHERE name = $1"),
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .context(|| format!("reading the lease {name}"))?;
        Ok(row.map(|(holder, expires_at, last_run)| ScheduledLease {
            holder,
            expires_at,
            last_run,
        }))
    }
}
