//! The state of each feed: records, last attempt and success, last error, provenance, data version,
//! HTTP validators; written inside each feed write's transaction, or on its own for a failure or a
//! "not modified".

use patchwarden_model::{Provenance, Source};
use sqlx::{Any, Transaction};

use crate::{get, Context, Store, StoreError};

/// The state of one feed, for `feeds status`.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedState {
    pub feed: String,
    pub source: String,
    pub record_count: i64,
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub origin: Option<String>,
    pub sha256: Option<String>,
    pub fetched_at: Option<String>,
    pub data_version: Option<String>,
    /// The date the data itself gives (RFC 3339 or `YYYY-MM-DD`): KEV's `dateReleased`, EPSS's
    /// score date, the newest `modified` (else `published`) of its records.
    pub data_date: Option<String>,
    /// The bundle the feed was last loaded from (`DIR (created …)`), if it was.
    pub bundle: Option<String>,
    /// HTTP validators of the last download, for conditional requests.
    pub etag: Option<String>,
    pub http_last_modified: Option<String>,
}

impl FeedState {
    /// Whole days since the feed was last imported or synced; `None` if it never was.
    pub fn imported_days(&self, now: &str) -> Option<i64> {
        self.last_success
            .as_deref()
            .and_then(|s| patchwarden_model::days_between(s, now))
    }

    /// How old the knowledge is: whole days since the date the data gives itself
    /// ([`FeedState::data_date`]), else since it was imported; `None` if it never was.
    pub fn age_days(&self, now: &str) -> Option<i64> {
        self.last_success.as_ref()?;
        self.data_days(now).or_else(|| self.imported_days(now))
    }

    /// Whole days since the date the data gives itself, when it gives one.
    fn data_days(&self, now: &str) -> Option<i64> {
        self.data_date
            .as_deref()
            .and_then(|d| patchwarden_model::days_between(d, now))
    }

    /// How far behind `now` a current copy of this feed's data may date, beyond the reader's
    /// `max_age_days`: the source's own publication rhythm (EPSS daily; NVD records change every
    /// day; CISA adds to KEV every few days to weeks; a distribution's newest advisory can be
    /// weeks old in a quiet month). Allowances, not measurements: they keep a current feed from
    /// looking stale while a bundle or snapshot months old does.
    fn publication_allowance_days(&self) -> i64 {
        match self.source.parse::<Source>() {
            Ok(Source::Epss) => 1,
            Ok(Source::Nvd) => 2,
            _ => 30,
        }
    }

    /// Its last attempt failed (a success clears the error): the data is what the last success
    /// left, and newer data did not arrive.
    pub fn is_failing(&self) -> bool {
        self.last_error.is_some()
    }

    /// Never loaded, not imported or synced within `max_age_days`, or data dated further back
    /// than `max_age_days` plus the source's publication allowance: findings built on it must say
    /// so. (A bundle carried into an air-gapped site, or the shipped snapshot, is as old as its
    /// data, not as its import.)
    pub fn is_stale(&self, now: &str, max_age_days: i64) -> bool {
        self.imported_days(now).is_none_or(|d| d > max_age_days)
            || self
                .data_days(now)
                .is_some_and(|d| d > max_age_days + self.publication_allowance_days())
    }
}

/// What a feed write did, for [`Store::finish_feed`].
pub(crate) struct FeedWritten<'a> {
    pub feed: &'a str,
    pub source: Source,
    /// Counts the feed's records (`$1`: the feed).
    pub count_sql: &'a str,
    pub provenance: Option<&'a Provenance>,
    pub data_version: Option<&'a str>,
    /// The newest date the written data gives (see [`FeedState::data_date`]).
    pub data_date: Option<&'a str>,
    /// The write replaced the whole feed (checked against the replace policy).
    pub replaced: bool,
}

impl Store {
    /// Records a successful write in the feed's state, inside the write's transaction. A write
    /// that replaced the feed passes the store's replace policy first (the stored count against
    /// the new one): a refusal fails the write, whose transaction is then dropped.
    pub(crate) async fn finish_feed(
        &self,
        tx: &mut Transaction<'static, Any>,
        done: FeedWritten<'_>,
    ) -> Result<(), StoreError> {
        let FeedWritten {
            feed,
            source,
            count_sql,
            provenance: p,
            data_version,
            data_date,
            replaced,
        } = done;
        let count: i64 = sqlx::query_scalar(&self.sql(count_sql))
            .bind(feed)
            .fetch_one(&mut **tx)
            .await
            .context(|| format!("counting {feed}"))?;
        if replaced {
            let stored: Option<i64> =
                sqlx::query_scalar(&self.sql("SELECT record_count FROM feed WHERE feed = $1"))
                    .bind(feed)
                    .fetch_optional(&mut **tx)
                    .await
                    .context(|| format!("reading the state of {feed}"))?;
            self.replace_policy
                .check(feed, stored.unwrap_or(0), count)?;
        }
        let now = patchwarden_model::now_rfc3339();
        self.upsert_feed_row(tx, feed, source).await?;
        sqlx::query(&self.sql(
            "UPDATE feed SET record_count = $2, last_attempt = $3, last_success = $3, last_error = NULL, \
             origin = COALESCE($4, origin), sha256 = COALESCE($5, sha256), fetched_at = COALESCE($6, fetched_at), \
             data_version = COALESCE($7, data_version), \
             bundle = NULL, \
             data_date = CASE WHEN $9 THEN $8 WHEN data_date IS NULL OR $8 > data_date THEN COALESCE($8, data_date) ELSE data_date END \
             WHERE feed = $1",
        ))
        .bind(feed)
        .bind(count)
        .bind(&now)
        .bind(p.map(|p| p.origin.clone()))
        .bind(p.map(|p| p.sha256.clone()))
        .bind(p.map(|p| p.fetched_at.clone()))
        .bind(data_version)
        // A replacement's data date is its own; an incremental write's can only move it forward.
        .bind(data_date)
        .bind(replaced)
        .execute(&mut **tx)
        .await
        .context(|| format!("updating the state of {feed}"))?;
        Ok(())
    }

    pub(crate) async fn upsert_feed_row(
        &self,
        tx: &mut Transaction<'static, Any>,
        feed: &str,
        source: Source,
    ) -> Result<(), StoreError> {
        let exists: i64 =
            sqlx::query_scalar(&self.sql("SELECT COUNT(*) FROM feed WHERE feed = $1"))
                .bind(feed)
                .fetch_one(&mut **tx)
                .await
                .context(|| format!("reading feed {feed}"))?;
        if exists == 0 {
            sqlx::query(&self.sql("INSERT INTO feed (feed, source) VALUES ($1, $2)"))
                .bind(feed)
                .bind(source.as_str())
                .execute(&mut **tx)
                .await
                .context(|| format!("creating feed {feed}"))?;
        }
        Ok(())
    }

    /// Records a failed attempt: the error is kept, the data and the last success are not touched.
    pub async fn record_failure(
        &self,
        feed: &str,
        source: Source,
        error: &str,
    ) -> Result<(), StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        self.upsert_feed_row(&mut tx, feed, source).await?;
        sqlx::query(
            &self.sql("UPDATE feed SET last_attempt = $2, last_error = $3 WHERE feed = $1"),
        )
        .bind(feed)
        .bind(patchwarden_model::now_rfc3339())
        .bind(error)
        .execute(&mut *tx)
        .await
        .context(|| format!("recording the failure of {feed}"))?;
        tx.commit().await.context(|| "committing".into())?;
        Ok(())
    }

    /// A download answered "not modified": the data is current as of now; nothing else changes.
    pub async fn record_not_modified(&self, feed: &str, source: Source) -> Result<(), StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        self.upsert_feed_row(&mut tx, feed, source).await?;
        sqlx::query(&self.sql("UPDATE feed SET last_attempt = $2, last_success = $2, last_error = NULL WHERE feed = $1"))
            .bind(feed)
            .bind(patchwarden_model::now_rfc3339())
            .execute(&mut *tx)
            .await
            .context(|| format!("recording that {feed} is unchanged"))?;
        tx.commit().await.context(|| "committing".into())?;
        Ok(())
    }

    /// Keeps the HTTP validators (ETag, Last-Modified) of the download just stored.
    pub async fn set_http_validators(
        &self,
        feed: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            &self.sql("UPDATE feed SET etag = $2, http_last_modified = $3 WHERE feed = $1"),
        )
        .bind(feed)
        .bind(etag)
        .bind(last_modified)
        .execute(self.pool())
        .await
        .context(|| format!("keeping the HTTP validators of {feed}"))?;
        Ok(())
    }

    /// Records that `feed` was just loaded from a bundle (`bundle`: its directory, created at
    /// `created_at`), and dates the feed by the bundle's creation when its data gave no date
    /// (records without dates: the bundle is then the newest the data can be).
    pub async fn note_bundle(
        &self,
        feed: &str,
        bundle: &str,
        created_at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            "UPDATE feed SET bundle = $3, data_date = COALESCE(data_date, $2) WHERE feed = $1",
        ))
        .bind(feed)
        .bind(created_at)
        .bind(bundle)
        .execute(self.pool())
        .await
        .context(|| format!("dating {feed}"))?;
        Ok(())
    }

    /// The state of one feed.
    pub async fn feed(&self, feed: &str) -> Result<Option<FeedState>, StoreError> {
        Ok(self.feeds().await?.into_iter().find(|f| f.feed == feed))
    }

    /// The state of every feed, by name.
    pub async fn feeds(&self) -> Result<Vec<FeedState>, StoreError> {
        if let Some(path) = &self.sqlite_path {
            // Read without the pool: a scan that only reads never starts it.
            return self.readers.with(path, crate::reads::sqlite_feeds);
        }
        let rows = sqlx::query("SELECT * FROM feed ORDER BY feed")
            .fetch_all(self.pool())
            .await
            .context(|| "reading feeds".into())?;
        rows.iter()
            .map(|r| {
                Ok(FeedState {
                    feed: get(r, "feed")?,
                    source: get(r, "source")?,
                    record_count: get(r, "record_count")?,
                    last_attempt: get(r, "last_attempt")?,
                    last_success: get(r, "last_success")?,
                    last_error: get(r, "last_error")?,
                    origin: get(r, "origin")?,
                    sha256: get(r, "sha256")?,
                    fetched_at: get(r, "fetched_at")?,
                    data_version: get(r, "data_version")?,
                    data_date: get(r, "data_date")?,
                    bundle: get(r, "bundle")?,
                    etag: get(r, "etag")?,
                    http_last_modified: get(r, "http_last_modified")?,
                })
            })
            .collect()
    }

    /// Row counts per table, for status and tests.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out = Vec::new();
        for table in [
            "advisory",
            "affected",
            "advisory_cve",
            "cve",
            "kev",
            "epss",
            "package_set",
            "finding_set",
            "finding_key",
        ] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(self.pool())
                .await
                .context(|| format!("counting {table}"))?;
            out.push((table.to_owned(), n));
        }
        Ok(out)
    }
}
