//! Batched reads for scanning one host: only the advisories naming its installed packages, and the
//! NVD, KEV and EPSS records of just their CVEs — index lookups, a few statements in all.

use patchwarden_model::{Advisory, CveRecord, EpssScore, KevEntry, Provenance};

use crate::{Store, StoreError};

/// Names per statement (well under either backend's parameter limit).
const CHUNK: usize = 500;

impl Store {
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
    pub async fn advisories_for_packages(
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
    pub async fn cves_by_id(&self, ids: &[String]) -> Result<Vec<CveRecord>, StoreError> {
        self.docs_by_key("cve", "id", ids).await
    }

    /// The KEV entries of `cves` (those in the catalog).
    pub async fn kev_by_cve(&self, cves: &[String]) -> Result<Vec<KevEntry>, StoreError> {
        self.docs_by_key("kev", "cve", cves).await
    }

    /// The EPSS scores of `cves` (those scored).
    pub async fn epss_by_cve(&self, cves: &[String]) -> Result<Vec<EpssScore>, StoreError> {
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
