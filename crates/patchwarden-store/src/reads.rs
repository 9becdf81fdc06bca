//! Batched reads for scanning one host: only the advisories naming its installed packages, and the
//! NVD, KEV and EPSS records of just their CVEs — index lookups, a few statements in all.

use patchwarden_model::{Advisory, CveRecord, EpssScore, KevEntry, Provenance};

use crate::{Backend, Store, StoreError};

/// What scanning one host reads: the advisories naming its packages in its release, the NVD, KEV
/// and EPSS records of their CVEs, and whether the release is known at all.
#[derive(Debug, Default)]
pub struct HostKnowledge {
    pub advisories: Vec<(String, Provenance, Advisory)>,
    pub cves: Vec<CveRecord>,
    pub kev: Vec<KevEntry>,
    pub epss: Vec<EpssScore>,
    pub release_known: bool,
}

/// Names per statement (well under either backend's parameter limit).
const CHUNK: usize = 500;

impl Store {
    /// Everything scanning one host needs, in a handful of indexed statements. On SQLite it reads
    /// through rusqlite, decoding documents straight from SQLite's buffers; on PostgreSQL through
    /// the pool.
    pub async fn host_knowledge(
        &self,
        distro: &str,
        release: &str,
        packages: &[String],
    ) -> Result<HostKnowledge, StoreError> {
        if let (Backend::Sqlite, Some(path)) = (self.backend, &self.sqlite_path) {
            return sqlite_host_knowledge(path, distro, release, packages);
        }
        let advisories = self
            .advisories_for_packages(distro, release, packages)
            .await?;
        let cve_ids = cve_ids(&advisories);
        let release_known = !advisories.is_empty() || self.has_release(distro, release).await?;
        Ok(HostKnowledge {
            cves: self.cves_by_id(&cve_ids).await?,
            kev: self.kev_by_cve(&cve_ids).await?,
            epss: self.epss_by_cve(&cve_ids).await?,
            advisories,
            release_known,
        })
    }

    /// Whether any advisory has an entry for the release: a scan finding nothing must be able to
    /// tell "nothing affects this host" from "nothing is known about this release".
    pub async fn has_release(&self, distro: &str, release: &str) -> Result<bool, StoreError> {
        let sql = self.sql("SELECT COUNT(*) FROM (SELECT 1 FROM affected WHERE distro = $1 AND release = $2 LIMIT 1) AS one");
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(distro)
            .bind(release)
            .fetch_one(self.pool())
            .await
            .map_err(|e| {
                StoreError::new(format!("reading the advisories of {distro} {release}: {e}"))
            })?;
        Ok(n > 0)
    }

    /// The advisories with an affected entry in one release (`distro` as in `Distro`'s lowercase
    /// name) for one of `packages` (names as advisories key them: source or binary).
    pub(crate) async fn advisories_for_packages(
        &self,
        distro: &str,
        release: &str,
        packages: &[String],
    ) -> Result<Vec<(String, Provenance, Advisory)>, StoreError> {
        let mut out: Vec<(String, Provenance, Advisory)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for chunk in packages.chunks(CHUNK) {
            // Placeholders bound in order (`?` on SQLite: numbered ones cost sqlx a name lookup each).
            let filter = format!(
                "WHERE pk IN (SELECT advisory_pk FROM affected WHERE distro = {} AND release = {} AND package IN ({}))",
                self.placeholder(1),
                self.placeholder(2),
                self.placeholders(3, chunk.len())
            );
            let mut binds: Vec<&str> = vec![distro, release];
            binds.extend(chunk.iter().map(String::as_str));
            for item in self.advisories_where(&filter, &binds).await? {
                // An advisory naming packages of two chunks comes back twice.
                if seen.insert((item.0.clone(), item.2.id.clone())) {
                    out.push(item);
                }
            }
        }
        Ok(out)
    }

    async fn docs_by_key<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        column: &str,
        keys: &[String],
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                "SELECT doc FROM {table} WHERE {column} IN ({})",
                self.placeholders(1, chunk.len())
            );
            let binds: Vec<&str> = chunk.iter().map(String::as_str).collect();
            out.extend(self.docs::<T>(&sql, &binds).await?);
        }
        Ok(out)
    }

    /// The NVD records of `ids` (those the store has).
    pub(crate) async fn cves_by_id(&self, ids: &[String]) -> Result<Vec<CveRecord>, StoreError> {
        self.docs_by_key("cve", "id", ids).await
    }

    /// The KEV entries of `cves` (those in the catalog).
    pub(crate) async fn kev_by_cve(&self, cves: &[String]) -> Result<Vec<KevEntry>, StoreError> {
        self.docs_by_key("kev", "cve", cves).await
    }

    /// The EPSS scores of `cves` (those scored).
    pub(crate) async fn epss_by_cve(&self, cves: &[String]) -> Result<Vec<EpssScore>, StoreError> {
        let mut out = Vec::new();
        for chunk in cves.chunks(CHUNK) {
            let sql = format!(
                "SELECT cve, score, percentile FROM epss WHERE cve IN ({})",
                self.placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, f64, f64)>(&sql);
            for c in chunk {
                q = q.bind(c.as_str());
            }
            let rows = q
                .fetch_all(self.pool())
                .await
                .map_err(|e| StoreError::new(format!("reading EPSS scores: {e}")))?;
            out.extend(rows.into_iter().map(|(cve, score, percentile)| EpssScore {
                cve,
                score,
                percentile,
            }));
        }
        Ok(out)
    }
}

/// The CVE ids of advisories, sorted, once each.
fn cve_ids(advisories: &[(String, Provenance, Advisory)]) -> Vec<String> {
    let mut ids: Vec<String> = advisories
        .iter()
        .flat_map(|(_, _, a)| a.cves.iter().cloned())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn sqlite_error(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::new(format!("{what}: {e}"))
}

/// A read-only rusqlite connection to the store file.
fn sqlite_reader(path: &std::path::Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error("opening the store for reading"))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite_error("setting the busy timeout"))?;
    Ok(conn)
}

/// [`Store::feeds`] on a SQLite file through rusqlite.
pub(crate) fn sqlite_feeds(path: &std::path::Path) -> Result<Vec<crate::FeedState>, StoreError> {
    let conn = sqlite_reader(path)?;
    let mut stmt = conn
        .prepare(
            "SELECT feed, source, record_count, last_attempt, last_success, last_error, origin, \
             sha256, fetched_at, data_version, etag, http_last_modified FROM feed ORDER BY feed",
        )
        .map_err(sqlite_error("reading feeds"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(crate::FeedState {
                feed: r.get(0)?,
                source: r.get(1)?,
                record_count: r.get(2)?,
                last_attempt: r.get(3)?,
                last_success: r.get(4)?,
                last_error: r.get(5)?,
                origin: r.get(6)?,
                sha256: r.get(7)?,
                fetched_at: r.get(8)?,
                data_version: r.get(9)?,
                etag: r.get(10)?,
                http_last_modified: r.get(11)?,
            })
        })
        .map_err(sqlite_error("reading feeds"))?;
    rows.collect::<Result<_, _>>()
        .map_err(sqlite_error("reading feeds"))
}

/// [`Store::host_knowledge`] on a SQLite file through rusqlite.
fn sqlite_host_knowledge(
    path: &std::path::Path,
    distro: &str,
    release: &str,
    packages: &[String],
) -> Result<HostKnowledge, StoreError> {
    use rusqlite::types::ValueRef;
    let conn = sqlite_reader(path)?;
    let text = |v: ValueRef<'_>| -> Result<String, StoreError> {
        Ok(v.as_str()
            .map_err(|e| StoreError::new(format!("a stored value is not text: {e}")))?
            .to_owned())
    };
    let qmarks = |n: usize| vec!["?"; n].join(", ");
    let mut out = HostKnowledge::default();
    let mut seen = std::collections::HashSet::new();
    for chunk in packages.chunks(CHUNK) {
        let sql = format!(
            "SELECT feed, source, origin, sha256, fetched_at, doc FROM advisory WHERE pk IN \
             (SELECT advisory_pk FROM affected WHERE distro = ? AND release = ? AND package IN ({}))",
            qmarks(chunk.len())
        );
        let mut stmt = conn
            .prepare(&sql)
            .map_err(sqlite_error("reading advisories"))?;
        let params: Vec<&dyn rusqlite::ToSql> = [&distro as &dyn rusqlite::ToSql, &release]
            .into_iter()
            .chain(chunk.iter().map(|p| p as &dyn rusqlite::ToSql))
            .collect();
        let mut rows = stmt
            .query(params.as_slice())
            .map_err(sqlite_error("reading advisories"))?;
        while let Some(row) = rows.next().map_err(sqlite_error("reading advisories"))? {
            let feed = text(row.get_ref(0).map_err(sqlite_error("reading advisories"))?)?;
            let doc = row.get_ref(5).map_err(sqlite_error("reading advisories"))?;
            let advisory: Advisory = serde_json::from_slice(
                doc.as_bytes()
                    .map_err(|e| StoreError::new(format!("a stored advisory is not text: {e}")))?,
            )
            .map_err(|e| StoreError::new(format!("a stored advisory does not decode: {e}")))?;
            if !seen.insert((feed.clone(), advisory.id.clone())) {
                continue;
            }
            let source: String = text(row.get_ref(1).map_err(sqlite_error("reading advisories"))?)?;
            let provenance = Provenance {
                source: source.parse().map_err(StoreError::new)?,
                origin: text(row.get_ref(2).map_err(sqlite_error("reading advisories"))?)?,
                sha256: text(row.get_ref(3).map_err(sqlite_error("reading advisories"))?)?,
                fetched_at: text(row.get_ref(4).map_err(sqlite_error("reading advisories"))?)?,
            };
            out.advisories.push((feed, provenance, advisory));
        }
    }
    let ids = cve_ids(&out.advisories);
    for chunk in ids.chunks(CHUNK) {
        let params: Vec<&dyn rusqlite::ToSql> =
            chunk.iter().map(|c| c as &dyn rusqlite::ToSql).collect();
        fn docs<T: serde::de::DeserializeOwned>(
            conn: &rusqlite::Connection,
            sql: &str,
            params: &[&dyn rusqlite::ToSql],
            out: &mut Vec<T>,
        ) -> Result<(), StoreError> {
            let mut stmt = conn.prepare(sql).map_err(sqlite_error("reading records"))?;
            let mut rows = stmt
                .query(params)
                .map_err(sqlite_error("reading records"))?;
            while let Some(row) = rows.next().map_err(sqlite_error("reading records"))? {
                let bytes = row
                    .get_ref(0)
                    .map_err(sqlite_error("reading records"))?
                    .as_bytes()
                    .map_err(|e| StoreError::new(format!("a stored record is not text: {e}")))?;
                out.push(serde_json::from_slice(bytes).map_err(|e| {
                    StoreError::new(format!("a stored record does not decode: {e}"))
                })?);
            }
            Ok(())
        }
        let list = qmarks(chunk.len());
        docs(
            &conn,
            &format!("SELECT doc FROM cve WHERE id IN ({list})"),
            &params,
            &mut out.cves,
        )?;
        docs(
            &conn,
            &format!("SELECT doc FROM kev WHERE cve IN ({list})"),
            &params,
            &mut out.kev,
        )?;
        let sql = format!(
            "SELECT cve, score, percentile FROM epss WHERE cve IN ({})",
            qmarks(chunk.len())
        );
        let mut stmt = conn.prepare(&sql).map_err(sqlite_error("reading EPSS"))?;
        let rows = stmt
            .query_map(params.as_slice(), |r| {
                Ok(EpssScore {
                    cve: r.get(0)?,
                    score: r.get(1)?,
                    percentile: r.get(2)?,
                })
            })
            .map_err(sqlite_error("reading EPSS"))?;
        for r in rows {
            out.epss.push(r.map_err(sqlite_error("reading EPSS"))?);
        }
    }
    out.release_known = !out.advisories.is_empty()
        || conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM affected WHERE distro = ? AND release = ?)",
                [distro, release],
                |r| r.get::<_, bool>(0),
            )
            .map_err(sqlite_error("reading the release"))?;
    Ok(out)
}
