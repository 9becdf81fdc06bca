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

impl HostKnowledge {
    /// Adds what `other` read (another release's statements for the same names): advisories by
    /// (feed, id) and NVD/KEV/EPSS records by CVE, each once.
    pub fn absorb(&mut self, other: HostKnowledge) {
        use std::collections::HashSet;
        let seen: HashSet<(String, String)> = self
            .advisories
            .iter()
            .map(|(feed, _, a)| (feed.clone(), a.id.clone()))
            .collect();
        self.advisories.extend(
            other
                .advisories
                .into_iter()
                .filter(|(feed, _, a)| !seen.contains(&(feed.clone(), a.id.clone()))),
        );
        let cves: HashSet<String> = self.cves.iter().map(|c| c.id.clone()).collect();
        self.cves
            .extend(other.cves.into_iter().filter(|c| !cves.contains(&c.id)));
        let kev: HashSet<String> = self.kev.iter().map(|k| k.cve.clone()).collect();
        self.kev
            .extend(other.kev.into_iter().filter(|k| !kev.contains(&k.cve)));
        let epss: HashSet<String> = self.epss.iter().map(|e| e.cve.clone()).collect();
        self.epss
            .extend(other.epss.into_iter().filter(|e| !epss.contains(&e.cve)));
        self.release_known |= other.release_known;
    }
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
            return self.readers.with(path, |conn| {
                sqlite_host_knowledge(conn, distro, release, packages)
            });
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

/// Idle read-only rusqlite connections to the store file. A read takes one (or opens one) and puts
/// it back, so a process pays for opening a connection (schema parse, WAL index mapping) once, and
/// concurrent readers (the server) each get their own. Autocommit: an idle connection holds no
/// snapshot, so it sees every later commit.
pub(crate) struct SqliteReaders {
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
    /// Page cache per connection (SQLite's `cache_size`, in KiB).
    cache_kib: u32,
}

/// Idle connections kept beyond this are closed.
const MAX_IDLE_READERS: usize = 8;

impl SqliteReaders {
    pub(crate) fn new(cache_kib: u32) -> SqliteReaders {
        SqliteReaders {
            idle: std::sync::Mutex::new(Vec::new()),
            cache_kib,
        }
    }

    /// Runs `f` on a read-only connection to `path`.
    pub(crate) fn with<T>(
        &self,
        path: &std::path::Path,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let taken = self.idle.lock().map(|mut idle| idle.pop()).ok().flatten();
        let conn = match taken {
            Some(conn) => conn,
            None => open_reader(path, self.cache_kib)?,
        };
        let out = f(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        out
    }

    /// Closes every idle connection.
    pub(crate) fn close(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// A read-only rusqlite connection to the store file.
fn open_reader(path: &std::path::Path, cache_kib: u32) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error("opening the store for reading"))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite_error("setting the busy timeout"))?;
    // Negative: a size in KiB rather than in pages.
    conn.execute_batch(&format!("PRAGMA cache_size = -{cache_kib}"))
        .map_err(sqlite_error("setting the page cache size"))?;
    Ok(conn)
}

/// [`Store::feeds`] on a SQLite file through rusqlite.
pub(crate) fn sqlite_feeds(
    conn: &rusqlite::Connection,
) -> Result<Vec<crate::FeedState>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT feed, source, record_count, last_attempt, last_success, last_error, origin, \
             sha256, fetched_at, data_version, etag, http_last_modified, data_date, bundle FROM feed ORDER BY feed",
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
                data_date: r.get(12)?,
                bundle: r.get(13)?,
            })
        })
        .map_err(sqlite_error("reading feeds"))?;
    rows.collect::<Result<_, _>>()
        .map_err(sqlite_error("reading feeds"))
}

/// [`Store::host_knowledge`] on a SQLite file through rusqlite. Name lists travel as one JSON
/// array parameter (`json_each`): one short statement each, whatever the number of names.
fn sqlite_host_knowledge(
    conn: &rusqlite::Connection,
    distro: &str,
    release: &str,
    packages: &[String],
) -> Result<HostKnowledge, StoreError> {
    use rusqlite::types::ValueRef;
    let text = |v: ValueRef<'_>| -> Result<String, StoreError> {
        Ok(v.as_str()
            .map_err(|e| StoreError::new(format!("a stored value is not text: {e}")))?
            .to_owned())
    };
    let json_list =
        |names: &[String]| serde_json::to_string(names).expect("a list of strings serializes");
    let mut out = HostKnowledge::default();
    {
        let mut stmt = conn
            .prepare(
                "SELECT feed, source, origin, sha256, fetched_at, doc FROM advisory WHERE pk IN \
                 (SELECT advisory_pk FROM affected WHERE distro = ?1 AND release = ?2 AND package IN \
                 (SELECT value FROM json_each(?3)))",
            )
            .map_err(sqlite_error("reading advisories"))?;
        let mut rows = stmt
            .query(rusqlite::params![distro, release, json_list(packages)])
            .map_err(sqlite_error("reading advisories"))?;
        // Provenance is per record (a directory import gives each file's records its own origin
        // and digest): decoded afresh whenever a row's differs from the row before, so that runs of
        // records from one document share one decoding.
        let mut last_provenance: Option<(String, Provenance)> = None;
        while let Some(row) = rows.next().map_err(sqlite_error("reading advisories"))? {
            let get = |i| row.get_ref(i).map_err(sqlite_error("reading advisories"));
            let feed = text(get(0)?)?;
            let doc = get(5)?;
            let advisory: Advisory = serde_json::from_slice(
                doc.as_bytes()
                    .map_err(|e| StoreError::new(format!("a stored advisory is not text: {e}")))?,
            )
            .map_err(|e| StoreError::new(format!("a stored advisory does not decode: {e}")))?;
            let (source, origin, sha256, fetched_at) = (get(1)?, get(2)?, get(3)?, get(4)?);
            let same = last_provenance.as_ref().is_some_and(|(f, p)| {
                let is = |v: ValueRef<'_>, want: &str| v.as_str().is_ok_and(|t| t == want);
                *f == feed
                    && is(source, p.source.as_str())
                    && is(origin, &p.origin)
                    && is(sha256, &p.sha256)
                    && is(fetched_at, &p.fetched_at)
            });
            if !same {
                let provenance = Provenance {
                    source: text(source)?.parse().map_err(StoreError::new)?,
                    origin: text(origin)?,
                    sha256: text(sha256)?,
                    fetched_at: text(fetched_at)?,
                };
                last_provenance = Some((feed.clone(), provenance));
            }
            let provenance = last_provenance.as_ref().expect("set above").1.clone();
            out.advisories.push((feed, provenance, advisory));
        }
    }
    let ids = json_list(&cve_ids(&out.advisories));
    fn docs<T: serde::de::DeserializeOwned>(
        conn: &rusqlite::Connection,
        sql: &str,
        ids: &str,
        out: &mut Vec<T>,
    ) -> Result<(), StoreError> {
        let mut stmt = conn.prepare(sql).map_err(sqlite_error("reading records"))?;
        let mut rows = stmt.query([ids]).map_err(sqlite_error("reading records"))?;
        while let Some(row) = rows.next().map_err(sqlite_error("reading records"))? {
            let bytes = row
                .get_ref(0)
                .map_err(sqlite_error("reading records"))?
                .as_bytes()
                .map_err(|e| StoreError::new(format!("a stored record is not text: {e}")))?;
            out.push(
                serde_json::from_slice(bytes).map_err(|e| {
                    StoreError::new(format!("a stored record does not decode: {e}"))
                })?,
            );
        }
        Ok(())
    }
    docs(
        conn,
        "SELECT doc FROM cve WHERE id IN (SELECT value FROM json_each(?1))",
        &ids,
        &mut out.cves,
    )?;
    docs(
        conn,
        "SELECT doc FROM kev WHERE cve IN (SELECT value FROM json_each(?1))",
        &ids,
        &mut out.kev,
    )?;
    let mut stmt = conn
        .prepare("SELECT cve, score, percentile FROM epss WHERE cve IN (SELECT value FROM json_each(?1))")
        .map_err(sqlite_error("reading EPSS"))?;
    let rows = stmt
        .query_map([&ids], |r| {
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
