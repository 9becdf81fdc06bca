//! Fleet queries: hosts (filtered, one, their labels), what the summary counts in the store
//! (stale hosts, the expected assets), a host's package history.

use super::*;

impl Store {
    /// Hosts, filtered; `stale_after_secs` decides staleness from last-seen.
    pub async fn hosts(
        &self,
        filter: &HostFilter,
        stale_after_secs: i64,
    ) -> Result<Vec<HostSummary>, StoreError> {
        self.host_rows(None, filter, stale_after_secs).await
    }

    /// One host (a keyed read: cheap enough for every check-in).
    pub async fn host(
        &self,
        host_id: i64,
        stale_after_secs: i64,
    ) -> Result<Option<HostSummary>, StoreError> {
        Ok(self
            .host_rows(Some(host_id), &HostFilter::default(), stale_after_secs)
            .await?
            .pop())
    }

    pub(super) async fn host_rows(
        &self,
        only: Option<i64>,
        filter: &HostFilter,
        stale_after_secs: i64,
    ) -> Result<Vec<HostSummary>, StoreError> {
        let sql = format!(
            "SELECT h.id, h.hostname, h.machine_id, h.os, h.labels, h.enrolled_at, h.last_seen, h.revoked_at, \
             h.inventory_version, h.findings_version, h.findings_at, \
             h.package_count AS packages FROM host h {} \
             ORDER BY h.hostname, h.id",
            if only.is_some() { "WHERE h.id = $1" } else { "" }
        );
        let sql = self.sql(&sql);
        let mut q = sqlx::query(&sql);
        if let Some(id) = only {
            q = q.bind(id);
        }
        let rows = q
            .fetch_all(self.pool())
            .await
            .context(|| "reading hosts".into())?;
        let cutoff = patchwarden_model::rfc3339(patchwarden_model::unix_now() - stale_after_secs);
        let mut out = Vec::new();
        for r in rows {
            let id: i64 = crate::get(&r, "id")?;
            let labels = parse_labels(&crate::get::<String>(&r, "labels")?);
            let last_seen: String = crate::get(&r, "last_seen")?;
            let inventory_version: i64 = crate::get(&r, "inventory_version")?;
            let findings_version: Option<i64> = crate::get(&r, "findings_version")?;
            let summary = HostSummary {
                id,
                hostname: crate::get(&r, "hostname")?,
                machine_id: crate::get(&r, "machine_id")?,
                stale: last_seen < cutoff,
                os: crate::get(&r, "os")?,
                labels,
                enrolled_at: crate::get(&r, "enrolled_at")?,
                last_seen,
                revoked: crate::get::<Option<String>>(&r, "revoked_at")?.is_some(),
                packages: r
                    .try_get::<i64, _>("packages")
                    .context(|| "reading package counts".into())?,
                findings_pending: inventory_version > 0
                    && findings_version.is_none_or(|f| f < inventory_version),
                findings_at: crate::get(&r, "findings_at")?,
                // Counted by the server from the host's finding set (they need the knowledge base).
                findings: BTreeMap::new(),
                unparsable_versions: Vec::new(),
            };
            let os_ok = filter.os.as_ref().is_none_or(|want| {
                summary
                    .os
                    .as_deref()
                    .is_some_and(|os| os.to_lowercase().contains(&want.to_lowercase()))
            });
            let labels_ok = filter
                .labels
                .iter()
                .all(|(k, v)| summary.labels.get(k) == Some(v));
            let stale_ok = filter.stale.is_none_or(|s| s == summary.stale);
            if os_ok && labels_ok && stale_ok {
                out.push(summary);
            }
        }
        Ok(out)
    }

    /// A host's labels (criticality and exposure feed its risk scores).
    pub async fn host_labels(&self, host_id: i64) -> Result<BTreeMap<String, String>, StoreError> {
        let labels: Option<String> =
            sqlx::query_scalar(&self.sql("SELECT labels FROM host WHERE id = $1"))
                .bind(host_id)
                .fetch_optional(self.pool())
                .await
                .context(|| format!("reading host {host_id}"))?;
        Ok(labels.map(|l| parse_labels(&l)).unwrap_or_default())
    }

    /// The labels of these hosts, in one read (a rollout over thousands of hosts asks every
    /// tick); hosts that do not exist are absent.
    pub async fn labels_of_hosts(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, BTreeMap<String, String>>, StoreError> {
        let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, labels FROM host")
            .fetch_all(self.pool())
            .await
            .context(|| "reading host labels".into())?;
        Ok(rows
            .into_iter()
            .filter(|(id, _)| wanted.contains(id))
            .map(|(id, labels)| (id, parse_labels(&labels)))
            .collect())
    }

    /// How many hosts were last seen more than `stale_after_secs` ago (the summary's stale
    /// count: last-seen moves with every heartbeat, so it is counted, not kept; a pass over the
    /// host rows — see `FindingsView::stale_hosts` in the server).
    pub async fn stale_hosts(&self, stale_after_secs: i64) -> Result<i64, StoreError> {
        let cutoff = patchwarden_model::rfc3339(patchwarden_model::unix_now() - stale_after_secs);
        sqlx::query_scalar(&self.sql("SELECT COUNT(*) FROM host WHERE last_seen < $1"))
            .bind(cutoff)
            .fetch_one(self.pool())
            .await
            .context(|| "counting stale hosts".into())
    }

    /// The expected assets (the asset list's names), sorted.
    pub async fn expected_assets(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT name FROM expected_asset ORDER BY name")
            .fetch_all(self.pool())
            .await
            .context(|| "reading the asset list".into())
    }

    /// When each package version appeared and disappeared on a host: (name, version, appeared,
    /// disappeared), by name, oldest first.
    pub async fn package_history(
        &self,
        host_id: i64,
    ) -> Result<Vec<(String, String, String, Option<String>)>, StoreError> {
        let changes: Vec<(String, String, String, Option<i64>)> = sqlx::query_as(&self.sql(
            "SELECT changed_at, appeared, disappeared, appeared_set FROM package_change \
             WHERE host_id = $1 ORDER BY inventory_version",
        ))
        .bind(host_id)
        .fetch_all(self.pool())
        .await
        .context(|| format!("reading the package history of host {host_id}"))?;
        // (id, appeared, disappeared) in the order the versions appeared; a version that came
        // back after it had gone gets a second span.
        let mut spans: Vec<(i64, String, Option<String>)> = Vec::new();
        let mut open: HashMap<i64, usize> = HashMap::new();
        for (at, appeared, disappeared, appeared_set) in &changes {
            for id in parse_ids(disappeared, host_id)? {
                if let Some(i) = open.remove(&id) {
                    spans[i].2 = Some(at.clone());
                }
            }
            let mut appeared = parse_ids(appeared, host_id)?;
            if let Some(set) = appeared_set {
                // A first inventory: every version of its set appeared.
                appeared.extend(self.package_set(*set).await?.iter());
            }
            for id in appeared {
                if let std::collections::hash_map::Entry::Vacant(e) = open.entry(id) {
                    e.insert(spans.len());
                    spans.push((id, at.clone(), None));
                }
            }
        }
        let mut ids: Vec<i64> = spans.iter().map(|s| s.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let versions = self.package_versions(&ids).await?;
        let mut rows: Vec<(String, String, String, Option<String>)> = spans
            .into_iter()
            .filter_map(|(id, appeared, disappeared)| {
                let p = versions.get(&id)?;
                Some((p.name.clone(), p.version.clone(), appeared, disappeared))
            })
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
        Ok(rows)
    }

    /// The interned package versions with these ids, by id (one statement: the ids go as one
    /// JSON array parameter).
    /// Package versions by id (ids not stored are absent).
    pub async fn package_versions(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, InstalledPackage>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT id, manager, name, version, arch, source_name, source_version \
             FROM package_version WHERE id IN ({})",
            self.json_id_list(1)
        )))
        .bind(ids_json(ids))
        .fetch_all(self.pool())
        .await
        .context(|| "reading package versions".into())?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let manager: String = crate::get(&r, "manager")?;
            out.insert(
                crate::get::<i64>(&r, "id")?,
                InstalledPackage {
                    name: crate::get(&r, "name")?,
                    version: crate::get(&r, "version")?,
                    arch: crate::get(&r, "arch")?,
                    source_name: crate::get(&r, "source_name")?,
                    source_version: crate::get(&r, "source_version")?,
                    manager: match manager.as_str() {
                        "rpm" => PackageManager::Rpm,
                        "apk" => PackageManager::Apk,
                        _ => PackageManager::Dpkg,
                    },
                    status: None,
                    held: false,
                    install_time: None,
                },
            );
        }
        Ok(out)
    }
}
