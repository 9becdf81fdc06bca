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

use std::collections::HashMap;

use crate::batch::{bind_all, values_clause, Value};
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

/// An advisory as stored before a write.
struct StoredAdvisory {
    /// SHA-256 of its document (none for rows older than migration 0008).
    digest: Option<String>,
    /// (distribution id, package) of its affected entries.
    packages: Vec<(Option<String>, String)>,
}

/// The items with only the last one of each key kept (in their original order).
fn last_of_each<'a, T>(items: &'a [T], key: impl Fn(&'a T) -> &'a str) -> Vec<&'a T> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        last.insert(key(item), i);
    }
    items
        .iter()
        .enumerate()
        .filter(|(i, item)| last[key(item)] == *i)
        .map(|(_, item)| item)
        .collect()
}

impl FeedState {
    /// Whole days since the feed's data was last confirmed current; `None` if it never was.
    pub fn age_days(&self, now: &str) -> Option<i64> {
        self.last_success
            .as_deref()
            .and_then(|s| patchwarden_model::days_between(s, now))
    }

    /// Older than `max_age_days`, or never loaded: findings built on it must say so.
    pub fn is_stale(&self, now: &str, max_age_days: i64) -> bool {
        self.age_days(now).is_none_or(|d| d > max_age_days)
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialize")
}

impl Store {
    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads first and writes later cannot wait for another writer
    /// and fails with "database is locked"; an immediate one waits (busy timeout) instead.
    ///
    /// SQLite has one writer at a time: writers of this process queue on an async lock first, so
    /// they wait their turn without SQLite's busy handler (whose growing sleeps, up to 100 ms,
    /// collapsed check-in throughput); the guard returned must live until the commit.
    pub(crate) async fn begin(
        &self,
    ) -> Result<
        (
            Option<tokio::sync::OwnedMutexGuard<()>>,
            Transaction<'static, Any>,
        ),
        StoreError,
    > {
        let (guard, tx) = match self.backend() {
            crate::Backend::Sqlite => {
                let guard = self.writer.clone().lock_owned().await;
                (Some(guard), self.pool().begin_with("BEGIN IMMEDIATE").await)
            }
            crate::Backend::Postgres => (None, self.pool().begin().await),
        };
        Ok((guard, tx.context(|| "starting a transaction".into())?))
    }

    /// Writes advisories of one feed (each with the provenance of the file it came from). Within one
    /// call a later copy of the same advisory id wins.
    pub async fn write_advisories(
        &self,
        feed: &str,
        source: Source,
        mode: WriteMode,
        items: &[(Advisory, Provenance)],
        data_version: Option<&str>,
    ) -> Result<usize, StoreError> {
        let mut items = last_of_each(items, |(a, _)| a.id.as_str());
        // Stored in the order of the package they name first: a host's advisories then lie together
        // in the file (a scan reads a few runs of pages instead of one random page per advisory).
        fn first_package(a: &Advisory) -> &str {
            a.affected.first().map(|p| p.package.as_str()).unwrap_or("")
        }
        items.sort_by(|(a, _), (b, _)| {
            first_package(a)
                .cmp(first_package(b))
                .then_with(|| a.id.cmp(&b.id))
        });
        let (_writer, mut tx) = self.begin().await?;
        // What was stored before (digest and packages per advisory id), to journal the difference.
        let mut before = if self.tracks_changes(&mut tx).await? {
            let ids: Option<Vec<&str>> = (mode == WriteMode::Upsert)
                .then(|| items.iter().map(|(a, _)| a.id.as_str()).collect());
            Some(
                self.stored_advisories(&mut tx, feed, ids.as_deref())
                    .await?,
            )
        } else {
            None
        };
        let mut changes = crate::changes::ChangeSet::default();
        match mode {
            WriteMode::Replace => {
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
            WriteMode::Upsert => {
                // Earlier copies of these advisories (same feed and id) give way: find their keys
                // first (usually none), then delete by key — index lookups on both backends.
                let ids: Vec<String> = items.iter().map(|(a, _)| a.id.clone()).collect();
                let pks: Vec<Value> = self
                    .advisory_pks(&mut tx, feed, &ids)
                    .await?
                    .into_iter()
                    .map(Value::from)
                    .collect();
                for (table, column) in [
                    ("affected", "advisory_pk"),
                    ("advisory_cve", "advisory_pk"),
                    ("advisory", "pk"),
                ] {
                    self.delete_by_keys(&mut tx, table, column, &pks).await?;
                }
            }
        }
        const COLUMNS: [&str; 12] = [
            "feed",
            "source",
            "id",
            "published",
            "modified",
            "withdrawn",
            "severity",
            "origin",
            "sha256",
            "fetched_at",
            "doc",
            "doc_digest",
        ];
        for chunk in items.chunks(500) {
            let rows: Vec<Vec<Value>> = chunk
                .iter()
                .map(|(a, p)| {
                    let doc = json(a);
                    let digest = patchwarden_model::fleet::sha256_hex(doc.as_bytes());
                    if let Some(before) = before.as_mut() {
                        let old = before.remove(&a.id);
                        if old.as_ref().and_then(|o| o.digest.as_deref()) != Some(digest.as_str()) {
                            changes.packages.extend(a.affected.iter().map(|pkg| {
                                let distro = pkg.release.as_ref().and_then(|r| r.distro);
                                (distro.map(|d| d.id().to_owned()), pkg.package.clone())
                            }));
                            changes
                                .packages
                                .extend(old.into_iter().flat_map(|o| o.packages));
                        }
                    }
                    vec![
                        feed.into(),
                        source.as_str().into(),
                        a.id.clone().into(),
                        a.published.clone().into(),
                        a.modified.clone().into(),
                        a.withdrawn.clone().into(),
                        a.severity.clone().into(),
                        p.origin.clone().into(),
                        p.sha256.clone().into(),
                        p.fetched_at.clone().into(),
                        doc.into(),
                        digest.into(),
                    ]
                })
                .collect();
            let pks = self.insert_advisory_rows(&mut tx, &COLUMNS, &rows).await?;
            let mut affected = Vec::new();
            let mut cves = Vec::new();
            for (a, _) in chunk {
                let pk = *pks.get(&a.id).ok_or_else(|| {
                    StoreError::new(format!("no key returned for advisory {}", a.id))
                })?;
                for pkg in &a.affected {
                    let release = pkg.release.as_ref();
                    let distro = release.and_then(|r| r.distro);
                    let key = match (distro, pkg.fixed_version.as_deref()) {
                        (Some(d), Some(v)) => SortKey::new(d.scheme(), v)
                            .ok()
                            .map(|k| k.as_bytes().to_vec()),
                        _ => None,
                    };
                    affected.push(vec![
                        pk.into(),
                        distro.map(|d| d.id().to_owned()).into(),
                        release.map(|r| r.release.clone()).into(),
                        release.and_then(|r| r.stream.clone()).into(),
                        pkg.package.clone().into(),
                        json(&pkg.key_kind).trim_matches('"').to_owned().into(),
                        json(&pkg.state).trim_matches('"').to_owned().into(),
                        pkg.fixed_version.clone().into(),
                        key.into(),
                    ]);
                }
                cves.extend(
                    a.cves
                        .iter()
                        .map(|c| vec![Value::from(pk), Value::from(c.as_str())]),
                );
            }
            let affected_columns = [
                "advisory_pk",
                "distro",
                "release",
                "stream",
                "package",
                "key_kind",
                "state",
                "fixed_version",
                "fixed_key",
            ];
            self.insert_rows(&mut tx, "affected", &affected_columns, &affected)
                .await?;
            self.insert_rows(&mut tx, "advisory_cve", &["advisory_pk", "cve"], &cves)
                .await?;
        }
        // What is left of the old advisories was removed (Replace) — their packages changed too.
        if let Some(before) = before {
            changes
                .packages
                .extend(before.into_values().flat_map(|o| o.packages));
        }
        changes.record(self, &mut tx, feed).await?;
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

    /// The stored advisories of `feed` (only those with these ids, if given): their document
    /// digests and the packages they name, by id.
    async fn stored_advisories(
        &self,
        tx: &mut Transaction<'static, Any>,
        feed: &str,
        ids: Option<&[&str]>,
    ) -> Result<HashMap<String, StoredAdvisory>, StoreError> {
        let mut sql = "SELECT a.id, a.doc_digest, af.distro, af.package FROM advisory a \
                       LEFT JOIN affected af ON af.advisory_pk = a.pk WHERE a.feed = $1"
            .to_owned();
        if ids.is_some() {
            sql.push_str(&format!(" AND a.id IN ({})", self.json_text_list(2)));
        }
        let sql = self.sql(&sql);
        let mut query = sqlx::query(&sql).bind(feed);
        if let Some(ids) = ids {
            query = query.bind(serde_json::to_string(ids).expect("strings serialize"));
        }
        let rows = query
            .fetch_all(&mut **tx)
            .await
            .context(|| format!("reading the stored advisories of {feed}"))?;
        let mut out: HashMap<String, StoredAdvisory> = HashMap::new();
        for r in rows {
            let entry = out.entry(get(&r, "id")?).or_insert_with(|| StoredAdvisory {
                digest: None,
                packages: Vec::new(),
            });
            entry.digest = get(&r, "doc_digest")?;
            if let Some(package) = get::<Option<String>>(&r, "package")? {
                entry.packages.push((get(&r, "distro")?, package));
            }
        }
        Ok(out)
    }

    /// The stored NVD records (only those with these ids, if given): document digest and whether
    /// rejected, by id.
    async fn stored_cves(
        &self,
        tx: &mut Transaction<'static, Any>,
        ids: Option<&[&str]>,
    ) -> Result<HashMap<String, (Option<String>, bool)>, StoreError> {
        let mut sql =
            "SELECT id, doc_digest, CAST(rejected AS BIGINT) AS rejected FROM cve".to_owned();
        if ids.is_some() {
            sql.push_str(&format!(" WHERE id IN ({})", self.json_text_list(1)));
        }
        let sql = self.sql(&sql);
        let mut query = sqlx::query(&sql);
        if let Some(ids) = ids {
            query = query.bind(serde_json::to_string(ids).expect("strings serialize"));
        }
        let rows = query
            .fetch_all(&mut **tx)
            .await
            .context(|| "reading the stored NVD records".into())?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            out.insert(
                get::<String>(&r, "id")?,
                (get(&r, "doc_digest")?, get::<i64>(&r, "rejected")? != 0),
            );
        }
        Ok(out)
    }

    /// (distribution id, package) of every advisory citing one of these CVEs.
    async fn packages_citing(
        &self,
        tx: &mut Transaction<'static, Any>,
        cves: &[&str],
    ) -> Result<Vec<(Option<String>, String)>, StoreError> {
        if cves.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT DISTINCT af.distro, af.package FROM advisory_cve c \
             JOIN affected af ON af.advisory_pk = c.advisory_pk WHERE c.cve IN ({})",
            self.json_text_list(1)
        );
        let rows = sqlx::query(&self.sql(&sql))
            .bind(serde_json::to_string(cves).expect("strings serialize"))
            .fetch_all(&mut **tx)
            .await
            .context(|| "finding the advisories citing changed CVEs".into())?;
        rows.iter()
            .map(|r| Ok((get(r, "distro")?, get(r, "package")?)))
            .collect()
    }

    /// Inserts advisory rows and returns their generated keys by advisory id.
    async fn insert_advisory_rows(
        &self,
        tx: &mut Transaction<'static, Any>,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<HashMap<String, i64>, StoreError> {
        let mut out = HashMap::with_capacity(rows.len());
        if rows.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "INSERT INTO advisory {} RETURNING pk, id",
            values_clause(columns, rows.len(), self.backend())
        );
        let flat: Vec<Value> = rows.iter().flatten().cloned().collect();
        let returned = bind_all(sqlx::query(&sql), &flat)
            .fetch_all(&mut **tx)
            .await
            .context(|| format!("inserting {} advisories", rows.len()))?;
        for r in returned {
            out.insert(get::<String>(&r, "id")?, get::<i64>(&r, "pk")?);
        }
        Ok(out)
    }

    /// Writes NVD CVE records (usually `Upsert`: incremental updates by lastModified window);
    /// `data_version` (the sync cursor) is stored with them in the same transaction.
    pub async fn write_cves(
        &self,
        feed: &str,
        mode: WriteMode,
        items: &[(CveRecord, Provenance)],
        data_version: Option<&str>,
    ) -> Result<usize, StoreError> {
        let items = last_of_each(items, |(r, _)| r.id.as_str());
        let (_writer, mut tx) = self.begin().await?;
        // Digest and rejection of each stored record, to journal the difference.
        let mut before = if self.tracks_changes(&mut tx).await? {
            let ids: Option<Vec<&str>> = (mode == WriteMode::Upsert)
                .then(|| items.iter().map(|(r, _)| r.id.as_str()).collect());
            Some(self.stored_cves(&mut tx, ids.as_deref()).await?)
        } else {
            None
        };
        let mut changes = crate::changes::ChangeSet::default();
        // CVEs whose rejection flipped: the advisories citing them make or lose findings.
        let mut rejection_flipped: Vec<&str> = Vec::new();
        if mode == WriteMode::Replace {
            sqlx::query("DELETE FROM cve")
                .execute(&mut *tx)
                .await
                .context(|| "clearing cve".into())?;
        } else {
            let ids: Vec<Value> = items
                .iter()
                .map(|(r, _)| Value::from(r.id.as_str()))
                .collect();
            self.delete_by_keys(&mut tx, "cve", "id", &ids).await?;
        }
        let rows: Vec<Vec<Value>> = items
            .iter()
            .map(|(r, p)| {
                let best = r.best_metric();
                let doc = json(r);
                let digest = patchwarden_model::fleet::sha256_hex(doc.as_bytes());
                if let Some(before) = before.as_mut() {
                    let old = before.remove(&r.id);
                    if old.as_ref().and_then(|(d, _)| d.as_deref()) != Some(digest.as_str()) {
                        changes.cves.insert(r.id.clone());
                    }
                    if old.is_some_and(|(_, rejected)| rejected) != r.rejected {
                        rejection_flipped.push(&r.id);
                    }
                }
                vec![
                    r.id.clone().into(),
                    r.published.clone().into(),
                    r.last_modified.clone().into(),
                    r.status.clone().into(),
                    i64::from(r.rejected).into(),
                    best.and_then(|m| m.computed_score).into(),
                    best.map(|m| m.version.clone()).into(),
                    best.and_then(|m| m.severity.clone()).into(),
                    p.origin.clone().into(),
                    p.sha256.clone().into(),
                    p.fetched_at.clone().into(),
                    doc.into(),
                    digest.into(),
                ]
            })
            .collect();
        let columns = [
            "id",
            "published",
            "last_modified",
            "status",
            "rejected",
            "best_score",
            "best_version",
            "severity",
            "origin",
            "sha256",
            "fetched_at",
            "doc",
            "doc_digest",
        ];
        self.insert_rows(&mut tx, "cve", &columns, &rows).await?;
        if let Some(before) = &before {
            // Records a full replacement no longer has (a rejected one gone un-rejects its CVE).
            for (id, (_, rejected)) in before {
                if *rejected {
                    rejection_flipped.push(id);
                }
                changes.cves.insert(id.clone());
            }
            changes
                .packages
                .extend(self.packages_citing(&mut tx, &rejection_flipped).await?);
        }
        changes.record(self, &mut tx, feed).await?;
        let last = items.last().map(|(_, p)| p);
        self.finish_feed(
            &mut tx,
            feed,
            Source::Nvd,
            "SELECT COUNT(*) FROM cve WHERE $1 = $1",
            last,
            data_version,
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
        let (_writer, mut tx) = self.begin().await?;
        let mut before = if self.tracks_changes(&mut tx).await? {
            let rows = sqlx::query("SELECT cve, doc FROM kev")
                .fetch_all(&mut *tx)
                .await
                .context(|| "reading the stored KEV catalog".into())?;
            let mut out = HashMap::with_capacity(rows.len());
            for r in rows {
                out.insert(get::<String>(&r, "cve")?, get::<String>(&r, "doc")?);
            }
            Some(out)
        } else {
            None
        };
        let mut changes = crate::changes::ChangeSet::default();
        sqlx::query("DELETE FROM kev")
            .execute(&mut *tx)
            .await
            .context(|| "clearing kev".into())?;
        let rows: Vec<Vec<Value>> = catalog
            .entries
            .iter()
            .map(|e| {
                let doc = json(e);
                if let Some(before) = before.as_mut() {
                    if before.remove(&e.cve).as_deref() != Some(doc.as_str()) {
                        changes.cves.insert(e.cve.clone());
                    }
                }
                vec![
                    e.cve.clone().into(),
                    e.date_added.clone().into(),
                    e.due_date.clone().into(),
                    i64::from(e.known_ransomware_use).into(),
                    doc.into(),
                ]
            })
            .collect();
        // Entries the catalog no longer lists.
        changes
            .cves
            .extend(before.into_iter().flat_map(|b| b.into_keys()));
        self.insert_rows(
            &mut tx,
            "kev",
            &[
                "cve",
                "date_added",
                "due_date",
                "known_ransomware_use",
                "doc",
            ],
            &rows,
        )
        .await?;
        changes.record(self, &mut tx, feed).await?;
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
        let (_writer, mut tx) = self.begin().await?;
        let mut before = if self.tracks_changes(&mut tx).await? {
            let rows = sqlx::query("SELECT cve, score, percentile FROM epss")
                .fetch_all(&mut *tx)
                .await
                .context(|| "reading the stored EPSS scores".into())?;
            let mut out = HashMap::with_capacity(rows.len());
            for r in rows {
                out.insert(
                    get::<String>(&r, "cve")?,
                    (get::<f64>(&r, "score")?, get::<f64>(&r, "percentile")?),
                );
            }
            Some(out)
        } else {
            None
        };
        let mut changes = crate::changes::ChangeSet::default();
        sqlx::query("DELETE FROM epss")
            .execute(&mut *tx)
            .await
            .context(|| "clearing epss".into())?;
        let rows: Vec<Vec<Value>> = snapshot
            .scores
            .iter()
            .map(|s| {
                if let Some(before) = before.as_mut() {
                    if before.remove(&s.cve) != Some((s.score, s.percentile)) {
                        changes.cves.insert(s.cve.clone());
                    }
                }
                vec![s.cve.clone().into(), s.score.into(), s.percentile.into()]
            })
            .collect();
        // Scores the publication no longer has.
        changes
            .cves
            .extend(before.into_iter().flat_map(|b| b.into_keys()));
        self.insert_rows(&mut tx, "epss", &["cve", "score", "percentile"], &rows)
            .await?;
        changes.record(self, &mut tx, feed).await?;
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
                    etag: get(r, "etag")?,
                    http_last_modified: get(r, "http_last_modified")?,
                })
            })
            .collect()
    }

    pub(crate) async fn docs<T: serde::de::DeserializeOwned>(
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

    /// Every stored advisory with its feed and provenance, in a stable order (for bundles).
    pub async fn all_advisories(&self) -> Result<Vec<(String, Provenance, Advisory)>, StoreError> {
        self.advisories_where("", &[]).await
    }

    /// The advisories with an affected entry in one distribution release (`distro` as in `Distro`'s
    /// lowercase name), with feed and provenance: what matching one host needs.
    pub async fn advisories_for_release(
        &self,
        distro: &str,
        release: &str,
    ) -> Result<Vec<(String, Provenance, Advisory)>, StoreError> {
        self.advisories_where(
            "WHERE pk IN (SELECT advisory_pk FROM affected WHERE distro = $1 AND release = $2)",
            &[distro, release],
        )
        .await
    }

    /// The ids of CVEs NVD lists as Rejected.
    pub async fn rejected_cves(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT id FROM cve WHERE rejected = 1 ORDER BY id")
            .fetch_all(self.pool())
            .await
            .context(|| "reading rejected CVEs".into())
    }

    pub(crate) async fn advisories_where(
        &self,
        filter: &str,
        binds: &[&str],
    ) -> Result<Vec<(String, Provenance, Advisory)>, StoreError> {
        // A filter that selects by key needs no order (a sort would copy every document into a
        // temporary B-tree); whole-table reads (bundles) keep a stable order.
        let order = if filter.is_empty() {
            "ORDER BY feed, id"
        } else {
            ""
        };
        let text = format!(
            "SELECT feed, source, origin, sha256, fetched_at, doc FROM advisory {filter} {order}"
        );
        let sql = self.sql(&text);
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query
            .fetch_all(self.pool())
            .await
            .context(|| "reading advisories".into())?;
        rows.iter()
            .map(|r| {
                let source: String = get(r, "source")?;
                let provenance = Provenance {
                    source: source.parse().map_err(StoreError::new)?,
                    origin: get(r, "origin")?,
                    sha256: get(r, "sha256")?,
                    fetched_at: get(r, "fetched_at")?,
                };
                let doc: String = get(r, "doc")?;
                let advisory = serde_json::from_str(&doc).map_err(|e| {
                    StoreError::new(format!("a stored advisory does not decode: {e}"))
                })?;
                Ok((get(r, "feed")?, provenance, advisory))
            })
            .collect()
    }

    /// Every stored NVD record with its provenance.
    pub async fn all_cves(&self) -> Result<Vec<(Provenance, CveRecord)>, StoreError> {
        let rows = sqlx::query("SELECT origin, sha256, fetched_at, doc FROM cve ORDER BY id")
            .fetch_all(self.pool())
            .await
            .context(|| "reading CVEs".into())?;
        rows.iter()
            .map(|r| {
                let provenance = Provenance {
                    source: Source::Nvd,
                    origin: get(r, "origin")?,
                    sha256: get(r, "sha256")?,
                    fetched_at: get(r, "fetched_at")?,
                };
                let doc: String = get(r, "doc")?;
                let record = serde_json::from_str(&doc)
                    .map_err(|e| StoreError::new(format!("a stored CVE does not decode: {e}")))?;
                Ok((provenance, record))
            })
            .collect()
    }

    /// All KEV entries.
    pub async fn all_kev(&self) -> Result<Vec<KevEntry>, StoreError> {
        self.docs("SELECT doc FROM kev ORDER BY cve", &[]).await
    }

    /// All EPSS scores.
    pub async fn all_epss(&self) -> Result<Vec<EpssScore>, StoreError> {
        let rows = sqlx::query("SELECT cve, score, percentile FROM epss ORDER BY cve")
            .fetch_all(self.pool())
            .await
            .context(|| "reading EPSS".into())?;
        rows.iter()
            .map(|r| {
                Ok(EpssScore {
                    cve: get(r, "cve")?,
                    score: get(r, "score")?,
                    percentile: get(r, "percentile")?,
                })
            })
            .collect()
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
