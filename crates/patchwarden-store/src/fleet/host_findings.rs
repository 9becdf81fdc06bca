//! Findings per host: the inventory they are computed from, replacing a host's findings (only
//! when not older than what is stored), the hosts still owing findings, and reading findings back
//! (per host, across the fleet, by CVE).

use super::*;

impl Store {
    /// The host's last inventory and its version, its packages read back from the shared versions.
    pub async fn host_inventory(
        &self,
        host_id: i64,
    ) -> Result<Option<(Inventory, i64)>, StoreError> {
        let row: Option<(Option<String>, i64)> = sqlx::query_as(
            &self.sql("SELECT inventory_doc, inventory_version FROM host WHERE id = $1"),
        )
        .bind(host_id)
        .fetch_optional(self.pool())
        .await
        .context(|| format!("reading host {host_id}"))?;
        let Some((Some(doc), version)) = row else {
            return Ok(None);
        };
        let mut inventory: Inventory = serde_json::from_str(&doc)
            .map_err(|e| StoreError::new(format!("the stored inventory of host {host_id}: {e}")))?;
        let ids: Option<String> = sqlx::query_scalar(
            &self.sql("SELECT package_ids FROM host_package_set WHERE host_id = $1"),
        )
        .bind(host_id)
        .fetch_optional(self.pool())
        .await
        .context(|| format!("reading the packages of host {host_id}"))?;
        let ids = match ids {
            Some(text) => parse_ids(&text, host_id)?,
            None => Vec::new(),
        };
        let mut packages: Vec<InstalledPackage> =
            self.package_versions(&ids).await?.into_values().collect();
        packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        inventory.packages = packages;
        Ok(Some((inventory, version)))
    }

    /// When the host's last inventory was stored (the server's clock, RFC 3339), if it has one.
    pub async fn inventory_stored_at(&self, host_id: i64) -> Result<Option<String>, StoreError> {
        let at: Option<Option<String>> =
            sqlx::query_scalar(&self.sql("SELECT inventory_at FROM host WHERE id = $1"))
                .bind(host_id)
                .fetch_optional(self.pool())
                .await
                .context(|| format!("reading host {host_id}"))?;
        Ok(at.flatten())
    }

    /// Replaces the host's findings with those computed from its inventory `version` (one
    /// transaction), unless findings from a newer inventory are stored already (two workers can
    /// race); returns whether they were stored.
    pub async fn replace_host_findings(
        &self,
        host_id: i64,
        version: i64,
        findings: &[FindingRow],
        computed_at: &str,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let claimed = sqlx::query(&self.sql(
            "UPDATE host SET findings_version = $2, findings_at = $3 WHERE id = $1 \
             AND (findings_version IS NULL OR findings_version <= $2)",
        ))
        .bind(host_id)
        .bind(version)
        .bind(computed_at)
        .execute(&mut *tx)
        .await
        .context(|| format!("stamping the findings of host {host_id}"))?;
        if claimed.rows_affected() == 0 {
            return Ok(false);
        }
        for table in ["host_finding", "host_finding_cve"] {
            sqlx::query(&self.sql(&format!("DELETE FROM {table} WHERE host_id = $1")))
                .bind(host_id)
                .execute(&mut *tx)
                .await
                .context(|| format!("clearing the findings of host {host_id}"))?;
        }
        let mut seen = HashSet::new();
        let mut rows = Vec::new();
        let mut cve_rows = Vec::new();
        for f in findings {
            if !seen.insert((f.package.as_str(), f.advisory_id.as_str())) {
                continue;
            }
            rows.push(vec![
                Value::Int(host_id),
                Value::from(f.package.as_str()),
                Value::from(f.advisory_id.as_str()),
                Value::from(f.state.as_str()),
                Value::from(f.severity.as_str()),
                Value::Int(f.kev as i64),
                Value::Int(f.overdue as i64),
                Value::from(f.risk),
                Value::from(f.doc.as_str()),
            ]);
            let mut cves: Vec<&String> = f.cves.iter().collect();
            cves.sort();
            cves.dedup();
            for cve in cves {
                cve_rows.push(vec![
                    Value::from(cve.as_str()),
                    Value::Int(host_id),
                    Value::from(f.package.as_str()),
                    Value::from(f.advisory_id.as_str()),
                    Value::from(f.state.as_str()),
                ]);
            }
        }
        self.insert_rows(
            &mut tx,
            "host_finding",
            &[
                "host_id",
                "package",
                "advisory_id",
                "state",
                "severity",
                "kev",
                "overdue",
                "risk",
                "doc",
            ],
            &rows,
        )
        .await?;
        self.insert_rows(
            &mut tx,
            "host_finding_cve",
            &["cve", "host_id", "package", "advisory_id", "state"],
            &cve_rows,
        )
        .await?;
        tx.commit().await.context(|| "committing findings".into())?;
        Ok(true)
    }

    /// Hosts whose findings are older than their inventory (or were never computed).
    pub async fn hosts_needing_findings(&self) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT id FROM host WHERE inventory_version > 0 AND (findings_version IS NULL OR findings_version < inventory_version) ORDER BY id",
        )
        .fetch_all(self.pool())
        .await
        .context(|| "finding hosts to re-evaluate".into())
    }

    /// Findings across the fleet (or one host), riskiest first: (host id, hostname, finding doc).
    pub async fn fleet_findings(
        &self,
        filter: &FindingFilter,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let mut sql = String::from(
            "SELECT f.host_id, h.hostname, f.severity, f.doc FROM host_finding f JOIN host h ON h.id = f.host_id WHERE 1 = 1",
        );
        if filter.kev {
            sql.push_str(" AND f.kev = 1");
        }
        if filter.overdue {
            sql.push_str(" AND f.overdue = 1");
        }
        if filter.host_id.is_some() {
            sql.push_str(" AND f.host_id = $1");
        }
        sql.push_str(" ORDER BY f.risk DESC, h.hostname, f.package, f.advisory_id");
        let sql = self.sql(&sql);
        let mut q = sqlx::query_as::<_, (i64, String, String, String)>(&sql);
        if let Some(h) = filter.host_id {
            q = q.bind(h);
        }
        let rows = q
            .fetch_all(self.pool())
            .await
            .context(|| "reading findings".into())?;
        let min = filter.min_severity.unwrap_or_default();
        let limit = filter.limit.unwrap_or(i64::MAX).max(0) as usize;
        Ok(rows
            .into_iter()
            .filter(|(_, _, severity, _)| {
                severity
                    .parse::<patchwarden_model::Severity>()
                    .unwrap_or_default()
                    >= min
            })
            .take(limit)
            .map(|(h, name, _, doc)| (h, name, doc))
            .collect())
    }

    /// Which hosts a CVE affects and in which state (an index lookup by CVE).
    pub async fn hosts_affected_by(&self, cve: &str) -> Result<Vec<AffectedHost>, StoreError> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(&self.sql(
            "SELECT c.host_id, h.hostname, c.package, c.advisory_id, c.state FROM host_finding_cve c \
             JOIN host h ON h.id = c.host_id WHERE c.cve = $1 ORDER BY h.hostname, c.package",
        ))
        .bind(cve)
        .fetch_all(self.pool())
        .await
        .context(|| format!("reading the hosts affected by {cve}"))?;
        rows.into_iter()
            .map(|(host_id, hostname, package, advisory_id, state)| {
                Ok(AffectedHost {
                    state: state.parse().map_err(|e: String| {
                        StoreError::new(format!("host {host_id}, {advisory_id}: {e}"))
                    })?,
                    host_id,
                    hostname,
                    package,
                    advisory_id,
                })
            })
            .collect()
    }
}
