//! Reading knowledge-base records back whole: advisories by package, CVE, release or all of them;
//! NVD, KEV and EPSS records; counts per table.

use patchwarden_model::{Advisory, CveRecord, EpssScore, KevEntry, Provenance, Source};

use crate::{get, Context, Store, StoreError};

impl Store {
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
}
