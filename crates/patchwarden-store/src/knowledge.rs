//! Knowledge-base writes: advisories with their affected packages and CVE links, NVD CVE records,
//! the KEV catalog, EPSS scores — each feed in one transaction that also journals what changed
//! (`kb_journal`) and records the feed's state (`feed_state`). Reads are in `kb_reads` (whole
//! records) and `reads` (what scanning one host needs).
//!
//! A *feed* is one downloadable unit (`osv:AlmaLinux`, `debian-tracker`, `alpine-secdb:v3.19/main`,
//! `nvd`, `kev`, `epss`); its rows are replaced together. Affected packages get the sort key of their
//! fixed version (`patchwarden-version`) so matching can compare with a `memcmp`, in SQL too.

use patchwarden_model::{Advisory, CveRecord, EpssSnapshot, KevCatalog, Provenance, Source};
use patchwarden_version::SortKey;
use sqlx::{Any, Transaction};

use std::collections::HashMap;

use crate::batch::{bind_all, values_clause, Value};
use crate::feed_state::FeedWritten;
use crate::{get, Context, Store, StoreError};

/// How a write treats what is already stored for the feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// The records are the feed's complete new snapshot: everything else of the feed is removed.
    Replace,
    /// The records are added or updated (by id); the feed's other records stay.
    Upsert,
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

/// A snapshot feed's table and what its write records (see `Store::write_snapshot`).
struct Snapshot<'a> {
    feed: &'a str,
    source: Source,
    provenance: &'a Provenance,
    data_version: &'a str,
    /// The date the snapshot gives itself (KEV's `dateReleased`, EPSS's score date).
    data_date: Option<&'a str>,
    table: &'static str,
    stored_sql: &'static str,
    columns: &'a [&'a str],
}

/// The newest of some dates (RFC 3339 or `YYYY-MM-DD`: both order as text), if any.
fn newest<'a>(dates: impl Iterator<Item = Option<&'a str>>) -> Option<String> {
    dates
        .flatten()
        .filter(|d| d.len() >= 10 && d.as_bytes()[4] == b'-')
        .max()
        .map(str::to_owned)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialize")
}

impl Store {
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
        self.write_advisory_changes(feed, source, mode, items, &[], data_version)
            .await
    }

    /// [`Store::write_advisories`], and in the same transaction the feed's advisories with the ids
    /// in `removed` deleted (a source that withdrew documents: Red Hat's `deletions.csv`); their
    /// packages are journaled as changed. `removed` ids also written in `items` stay (written).
    pub async fn write_advisory_changes(
        &self,
        feed: &str,
        source: Source,
        mode: WriteMode,
        items: &[(Advisory, Provenance)],
        removed: &[String],
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
            let ids: Option<Vec<&str>> = (mode == WriteMode::Upsert).then(|| {
                items
                    .iter()
                    .map(|(a, _)| a.id.as_str())
                    .chain(removed.iter().map(String::as_str))
                    .collect()
            });
            Some(
                self.stored_advisories(&mut tx, feed, ids.as_deref())
                    .await?,
            )
        } else {
            None
        };
        let mut changes = crate::kb_journal::ChangeSet::default();
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
                let ids: Vec<String> = items
                    .iter()
                    .map(|(a, _)| a.id.clone())
                    .chain(removed.iter().cloned())
                    .collect();
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
        // What is left of the old advisories was removed (Replace, or named in `removed`) — their
        // packages changed too.
        if let Some(before) = before {
            changes
                .packages
                .extend(before.into_values().flat_map(|o| o.packages));
        }
        changes.record(self, &mut tx, feed).await?;
        let last = items.last().map(|(_, p)| p);
        let data_date = newest(
            items
                .iter()
                .map(|(a, _)| a.modified.as_deref().or(a.published.as_deref())),
        );
        self.finish_feed(
            &mut tx,
            FeedWritten {
                feed,
                source,
                count_sql: "SELECT COUNT(*) FROM advisory WHERE feed = $1",
                provenance: last,
                data_version,
                data_date: data_date.as_deref(),
                replaced: mode == WriteMode::Replace,
            },
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
        let mut changes = crate::kb_journal::ChangeSet::default();
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
        let data_date = newest(
            items
                .iter()
                .map(|(r, _)| r.last_modified.as_deref().or(r.published.as_deref())),
        );
        self.finish_feed(
            &mut tx,
            FeedWritten {
                feed,
                source: Source::Nvd,
                count_sql: "SELECT COUNT(*) FROM cve WHERE $1 = $1",
                provenance: last,
                data_version,
                data_date: data_date.as_deref(),
                replaced: mode == WriteMode::Replace,
            },
        )
        .await?;
        tx.commit().await.context(|| format!("committing {feed}"))?;
        Ok(items.len())
    }

    /// Replaces a snapshot feed's table (KEV, EPSS) in one transaction: every row replaced, the
    /// CVEs whose row differs (`stored` reads a stored row's CVE and what is compared), appeared or
    /// went journaled, the feed's state recorded. The one write of the snapshot feeds.
    async fn write_snapshot<K: PartialEq>(
        &self,
        snapshot: &Snapshot<'_>,
        stored: impl Fn(&sqlx::any::AnyRow) -> Result<(String, K), StoreError>,
        rows: impl Iterator<Item = (String, K, Vec<Value>)>,
    ) -> Result<(), StoreError> {
        let table = snapshot.table;
        let (_writer, mut tx) = self.begin().await?;
        let mut before = if self.tracks_changes(&mut tx).await? {
            let rows = sqlx::query(snapshot.stored_sql)
                .fetch_all(&mut *tx)
                .await
                .context(|| format!("reading the stored {table} rows"))?;
            let mut out = HashMap::with_capacity(rows.len());
            for r in &rows {
                let (cve, compared) = stored(r)?;
                out.insert(cve, compared);
            }
            Some(out)
        } else {
            None
        };
        let mut changes = crate::kb_journal::ChangeSet::default();
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await
            .context(|| format!("clearing {table}"))?;
        let rows: Vec<Vec<Value>> = rows
            .map(|(cve, compared, row)| {
                if let Some(before) = before.as_mut() {
                    if before.remove(&cve).as_ref() != Some(&compared) {
                        changes.cves.insert(cve);
                    }
                }
                row
            })
            .collect();
        // CVEs the new snapshot no longer has.
        changes
            .cves
            .extend(before.into_iter().flat_map(|b| b.into_keys()));
        self.insert_rows(&mut tx, table, snapshot.columns, &rows)
            .await?;
        changes.record(self, &mut tx, snapshot.feed).await?;
        self.finish_feed(
            &mut tx,
            FeedWritten {
                feed: snapshot.feed,
                source: snapshot.source,
                count_sql: &format!("SELECT COUNT(*) FROM {table} WHERE $1 = $1"),
                provenance: Some(snapshot.provenance),
                data_version: Some(snapshot.data_version),
                data_date: snapshot.data_date,
                replaced: true,
            },
        )
        .await?;
        tx.commit()
            .await
            .context(|| format!("committing {table}"))?;
        Ok(())
    }

    /// Replaces the KEV catalog.
    pub async fn replace_kev(
        &self,
        feed: &str,
        catalog: &KevCatalog,
        p: &Provenance,
    ) -> Result<usize, StoreError> {
        let kev_date = Some(catalog.date_released.clone())
            .filter(|d| !d.is_empty())
            .or_else(|| {
                let v = catalog.catalog_version.replace('.', "-");
                (patchwarden_model::days_between(&v, &v) == Some(0)).then_some(v)
            });
        let snapshot = Snapshot {
            feed,
            source: Source::Kev,
            provenance: p,
            data_version: &catalog.catalog_version,
            // `dateReleased`, else the catalog version, which CISA writes as the date (2025.08.25).
            data_date: kev_date.as_deref(),
            table: "kev",
            stored_sql: "SELECT cve, doc FROM kev",
            columns: &[
                "cve",
                "date_added",
                "due_date",
                "known_ransomware_use",
                "doc",
            ],
        };
        self.write_snapshot(
            &snapshot,
            |r| Ok((get(r, "cve")?, get::<String>(r, "doc")?)),
            catalog.entries.iter().map(|e| {
                let doc = json(e);
                let row = vec![
                    e.cve.clone().into(),
                    e.date_added.clone().into(),
                    e.due_date.clone().into(),
                    i64::from(e.known_ransomware_use).into(),
                    doc.clone().into(),
                ];
                (e.cve.clone(), doc, row)
            }),
        )
        .await?;
        Ok(catalog.entries.len())
    }

    /// Replaces the EPSS scores with a new publication.
    pub async fn replace_epss(
        &self,
        feed: &str,
        snapshot: &EpssSnapshot,
        p: &Provenance,
    ) -> Result<usize, StoreError> {
        let version = format!(
            "{} {}",
            snapshot.model_version.as_deref().unwrap_or("model ?"),
            snapshot.score_date.as_deref().unwrap_or("date ?")
        );
        let table = Snapshot {
            feed,
            source: Source::Epss,
            provenance: p,
            data_version: &version,
            data_date: snapshot.score_date.as_deref(),
            table: "epss",
            stored_sql: "SELECT cve, score, percentile FROM epss",
            columns: &["cve", "score", "percentile"],
        };
        self.write_snapshot(
            &table,
            |r| {
                Ok((
                    get(r, "cve")?,
                    (get::<f64>(r, "score")?, get::<f64>(r, "percentile")?),
                ))
            },
            snapshot.scores.iter().map(|s| {
                let row = vec![s.cve.clone().into(), s.score.into(), s.percentile.into()];
                (s.cve.clone(), (s.score, s.percentile), row)
            }),
        )
        .await?;
        Ok(snapshot.scores.len())
    }
}
