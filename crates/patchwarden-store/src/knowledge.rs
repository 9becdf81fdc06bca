//! Knowledge-base reads and writes: advisories with their affected packages and CVE links, NVD CVE
//! records, the KEV catalog, EPSS scores, and the state of each feed.
//!
//! A *feed* is one downloadable unit (`osv:AlmaLinux`, `debian-tracker`, `alpine-secdb:v3.19/main`,
//! `nvd`, `kev`, `epss`); its rows are replaced together. Affected packages get the sort key of their
//! fixed version (`patchwarden-version`) so matching can compare with a `memcmp`, in SQL too.

use patchwarden_model::{
    Advisory, CveRecord, EpssScore, EpssSnapshot, KevCatalog, KevEntry, Provenance, Source,
};
use patchwarden_version::SortKey;
use sqlx::{Any, Transaction};

use crate::{get, Context, Store, StoreError};

/// How a write treats what is already stored for the feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// The records are the feed's complete new snapshot: everything else of the feed is removed.
    Replace,
    /// The records are added or updated (by id); the feed's other records stay.
    Upsert,
}

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
    /// HTTP validators of the last download, for conditional requests.
    pub etag: Option<String>,
    pub http_last_modified: Option<String>,
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialize")
}

impl Store {
    async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        self.pool()
            .begin()
            .await
            .context(|| "starting a transaction".into())
    }

    /// Writes advisories of one feed (each with the provenance of the file it came from).
    pub async fn write_advisories(
        &self,
        feed: &str,
        source: Source,
        mode: WriteMode,
        items: &[(Advisory, Provenance)],
        data_version: Option<&str>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        if mode == WriteMode::Replace {
            for table in ["affected", "advisory_cve"] {
                let sql = format!("DELETE FROM {table} WHERE advisory_pk IN (SELECT pk FROM advisory WHERE feed = $1)");
                sqlx::query(&self.sql(&sql))
                    .bind(feed)
                    .execute(&mut *tx)
                    .await
                    .context(|| format!("clearing {table} of {feed}"))?;
            }
            sqlx::query(&self.sql("DELETE FROM advisory WHERE feed = $1"))
                .bind(feed)
                .execute(&mut *tx)
                .await
                .context(|| format!("clearing advisories of {feed}"))?;
        }
        for (advisory, provenance) in items {
            self.insert_advisory(&mut tx, feed, source, advisory, provenance)
                .await?;
        }
        let last = items.last().map(|(_, p)| p);
        self.finish_feed(
            &mut tx,
            feed,
            source,
            "SELECT COUNT(*) FROM advisory WHERE feed = $1",
            last,
            data_version,
        )
        .await?;
        tx.commit().await.context(|| format!("committing {feed}"))?;
        Ok(items.len())
    }

    async fn insert_advisory(
        &self,
        tx: &mut Transaction<'static, Any>,
        feed: &str,
        source: Source,
        a: &Advisory,
        p: &Provenance,
    ) -> Result<(), StoreError> {
        let what = || format!("storing advisory {} of {feed}", a.id);
        // Replace an earlier copy of the same advisory (same source and id).
        for table in ["affected", "advisory_cve"] {
            let sql = format!("DELETE FROM {table} WHERE advisory_pk IN (SELECT pk FROM advisory WHERE source = $1 AND id = $2)");
            sqlx::query(&self.sql(&sql))
                .bind(source.as_str())
                .bind(&a.id)
                .execute(&mut **tx)
                .await
                .context(what)?;
        }
        sqlx::query(&self.sql("DELETE FROM advisory WHERE source = $1 AND id = $2"))
            .bind(source.as_str())
            .bind(&a.id)
            .execute(&mut **tx)
            .await
            .context(what)?;
        let pk: i64 = sqlx::query_scalar(&self.sql(
            "INSERT INTO advisory (feed, source, id, published, modified, withdrawn, severity, origin, sha256, fetched_at, doc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING pk",
        ))
        .bind(feed)
        .bind(source.as_str())
        .bind(&a.id)
        .bind(a.published.as_deref())
        .bind(a.modified.as_deref())
        .bind(a.withdrawn.as_deref())
        .bind(a.severity.as_deref())
        .bind(&p.origin)
        .bind(&p.sha256)
        .bind(&p.fetched_at)
        .bind(json(a))
        .fetch_one(&mut **tx)
        .await
        .context(what)?;
        for pkg in &a.affected {
            let release = pkg.release.as_ref();
            let distro = release.and_then(|r| r.distro);
            let key = match (distro, pkg.fixed_version.as_deref()) {
                (Some(d), Some(v)) => SortKey::new(d.scheme(), v)
                    .ok()
                    .map(|k| k.as_bytes().to_vec()),
                _ => None,
            };
            sqlx::query(&self.sql(
                "INSERT INTO affected (advisory_pk, distro, release, stream, package, key_kind, state, fixed_version, fixed_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            ))
            .bind(pk)
            .bind(distro.map(|d| json(&d).trim_matches('"').to_owned()))
            .bind(release.map(|r| r.release.clone()))
            .bind(release.and_then(|r| r.stream.clone()))
            .bind(&pkg.package)
            .bind(json(&pkg.key_kind).trim_matches('"').to_owned())
            .bind(json(&pkg.state).trim_matches('"').to_owned())
            .bind(pkg.fixed_version.as_deref())
            .bind(key)
            .execute(&mut **tx)
            .await
            .context(what)?;
        }
        for cve in &a.cves {
            sqlx::query(&self.sql("INSERT INTO advisory_cve (advisory_pk, cve) VALUES ($1, $2)"))
                .bind(pk)
                .bind(cve)
                .execute(&mut **tx)
                .await
                .context(what)?;
        }
        Ok(())
    }

    /// Writes NVD CVE records (usually `Upsert`: incremental updates by lastModified window).
    pub async fn write_cves(
        &self,
        feed: &str,
        mode: WriteMode,
        items: &[(CveRecord, Provenance)],
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        if mode == WriteMode::Replace {
            sqlx::query("DELETE FROM cve")
                .execute(&mut *tx)
                .await
                .context(|| "clearing cve".into())?;
        }
        for (r, p) in items {
            let best = r.best_metric();
            sqlx::query(&self.sql("DELETE FROM cve WHERE id = $1"))
                .bind(&r.id)
                .execute(&mut *tx)
                .await
                .context(|| format!("storing {}", r.id))?;
            sqlx::query(&self.sql(
                "INSERT INTO cve (id, published, last_modified, status, rejected, best_score, best_version, severity, origin, sha256, fetched_at, doc) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            ))
            .bind(&r.id)
            .bind(r.published.as_deref())
            .bind(r.last_modified.as_deref())
            .bind(r.status.as_deref())
            .bind(i64::from(r.rejected))
            .bind(best.and_then(|m| m.computed_score))
            .bind(best.map(|m| m.version.clone()))
            .bind(best.and_then(|m| m.severity.clone()))
            .bind(&p.origin)
            .bind(&p.sha256)
            .bind(&p.fetched_at)
            .bind(json(r))
            .execute(&mut *tx)
            .await
            .context(|| format!("storing {}", r.id))?;
        }
        let last = items.last().map(|(_, p)| p);
        self.finish_feed(
            &mut tx,
            feed,
            Source::Nvd,
            "SELECT COUNT(*) FROM cve WHERE $1 = $1",
            last,
            None,
        )
        .await?;
        tx.commit().await.context(|| format!("committing {feed}"))?;
        Ok(items.len())
    }

    /// Replaces the KEV catalog.
    pub async fn replace_kev(
        &self,
        feed: &str,
        catalog: &KevCatalog,
        p: &Provenance,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM kev")
            .execute(&mut *tx)
            .await
            .context(|| "clearing kev".into())?;
        for e in &catalog.entries {
            sqlx::query(&self.sql("INSERT INTO kev (cve, date_added, due_date, known_ransomware_use, doc) VALUES ($1, $2, $3, $4, $5)"))
                .bind(&e.cve)
                .bind(&e.date_added)
                .bind(&e.due_date)
                .bind(i64::from(e.known_ransomware_use))
                .bind(json(e))
                .execute(&mut *tx)
                .await
                .context(|| format!("storing KEV entry {}", e.cve))?;
        }
        self.finish_feed(
            &mut tx,
            feed,
            Source::Kev,
            "SELECT COUNT(*) FROM kev WHERE $1 = $1",
            Some(p),
            Some(&catalog.catalog_version),
        )
        .await?;
        tx.commit().await.context(|| "committing kev".into())?;
        Ok(catalog.entries.len())
    }

    /// Replaces the EPSS scores with a new publication.
    pub async fn replace_epss(
        &self,
        feed: &str,
        snapshot: &EpssSnapshot,
        p: &Provenance,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM epss")
            .execute(&mut *tx)
            .await
            .context(|| "clearing epss".into())?;
        for s in &snapshot.scores {
            sqlx::query(&self.sql("INSERT INTO epss (cve, score, percentile) VALUES ($1, $2, $3)"))
                .bind(&s.cve)
                .bind(s.score)
                .bind(s.percentile)
                .execute(&mut *tx)
                .await
                .context(|| format!("storing EPSS score of {}", s.cve))?;
        }
        let version = format!(
            "{} {}",
            snapshot.model_version.as_deref().unwrap_or("model ?"),
            snapshot.score_date.as_deref().unwrap_or("date ?")
        );
        self.finish_feed(
            &mut tx,
            feed,
            Source::Epss,
            "SELECT COUNT(*) FROM epss WHERE $1 = $1",
            Some(p),
            Some(&version),
        )
        .await?;
        tx.commit().await.context(|| "committing epss".into())?;
        Ok(snapshot.scores.len())
    }

    /// Records a successful write in the feed's state, inside the write's transaction.
    async fn finish_feed(
        &self,
        tx: &mut Transaction<'static, Any>,
        feed: &str,
        source: Source,
        count_sql: &str,
        p: Option<&Provenance>,
        data_version: Option<&str>,
    ) -> Result<(), StoreError> {
        let count: i64 = sqlx::query_scalar(&self.sql(count_sql))
            .bind(feed)
            .fetch_one(&mut **tx)
            .await
            .context(|| format!("counting {feed}"))?;
        let now = patchwarden_model::now_rfc3339();
        self.upsert_feed_row(tx, feed, source).await?;
        sqlx::query(&self.sql(
            "UPDATE feed SET record_count = $2, last_attempt = $3, last_success = $3, last_error = NULL, \
             origin = COALESCE($4, origin), sha256 = COALESCE($5, sha256), fetched_at = COALESCE($6, fetched_at), \
             data_version = COALESCE($7, data_version) WHERE feed = $1",
        ))
        .bind(feed)
        .bind(count)
        .bind(&now)
        .bind(p.map(|p| p.origin.clone()))
        .bind(p.map(|p| p.sha256.clone()))
        .bind(p.map(|p| p.fetched_at.clone()))
        .bind(data_version)
        .execute(&mut **tx)
        .await
        .context(|| format!("updating the state of {feed}"))?;
        Ok(())
    }

    async fn upsert_feed_row(
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
        let mut tx = self.begin().await?;
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
        let mut tx = self.begin().await?;
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

    /// The state of one feed.
    pub async fn feed(&self, feed: &str) -> Result<Option<FeedState>, StoreError> {
        Ok(self.feeds().await?.into_iter().find(|f| f.feed == feed))
    }

    /// The state of every feed, by name.
    pub async fn feeds(&self) -> Result<Vec<FeedState>, StoreError> {
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
                    etag: get(r, "etag")?,
                    http_last_modified: get(r, "http_last_modified")?,
                })
            })
            .collect()
    }

    async fn docs<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        binds: &[&str],
    ) -> Result<Vec<T>, StoreError> {
        let text = self.sql(sql);
        let mut q = sqlx::query_scalar::<_, String>(&text);
        for b in binds {
            q = q.bind(*b);
        }
        let docs = q
            .fetch_all(self.pool())
            .await
            .context(|| format!("querying {sql}"))?;
        docs.iter()
            .map(|d| {
                serde_json::from_str(d)
                    .map_err(|e| StoreError::new(format!("a stored record does not decode: {e}")))
            })
            .collect()
    }

    /// The advisories naming `package` in a release (`distro` as in `Distro`'s lowercase name).
    pub async fn advisories_for_package(
        &self,
        distro: &str,
        release: &str,
        package: &str,
    ) -> Result<Vec<Advisory>, StoreError> {
        self.docs(
            "SELECT doc FROM advisory WHERE pk IN (SELECT advisory_pk FROM affected WHERE distro = $1 AND release = $2 AND package = $3) ORDER BY id",
            &[distro, release, package],
        )
        .await
    }

    /// The advisories that concern a CVE.
    pub async fn advisories_for_cve(&self, cve: &str) -> Result<Vec<Advisory>, StoreError> {
        self.docs("SELECT doc FROM advisory WHERE pk IN (SELECT advisory_pk FROM advisory_cve WHERE cve = $1) ORDER BY source, id", &[cve]).await
    }

    pub async fn cve(&self, id: &str) -> Result<Option<CveRecord>, StoreError> {
        Ok(self
            .docs("SELECT doc FROM cve WHERE id = $1", &[id])
            .await?
            .pop())
    }

    pub async fn kev(&self, cve: &str) -> Result<Option<KevEntry>, StoreError> {
        Ok(self
            .docs("SELECT doc FROM kev WHERE cve = $1", &[cve])
            .await?
            .pop())
    }

    pub async fn epss(&self, cve: &str) -> Result<Option<EpssScore>, StoreError> {
        let row = sqlx::query(&self.sql("SELECT cve, score, percentile FROM epss WHERE cve = $1"))
            .bind(cve)
            .fetch_optional(self.pool())
            .await
            .context(|| format!("reading the EPSS score of {cve}"))?;
        row.map(|r| {
            Ok(EpssScore {
                cve: get(&r, "cve")?,
                score: get(&r, "score")?,
                percentile: get(&r, "percentile")?,
            })
        })
        .transpose()
    }

    /// Row counts per table, for status and tests.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out = Vec::new();
        for table in ["advisory", "affected", "advisory_cve", "cve", "kev", "epss"] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(self.pool())
                .await
                .context(|| format!("counting {table}"))?;
            out.push((table.to_owned(), n));
        }
        Ok(out)
    }
}
