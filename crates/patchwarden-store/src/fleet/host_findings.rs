//! What a host's findings are computed from: its inventory (whole, or without its packages) and
//! the hosts still owing findings. The findings themselves: [`super::finding_sets`].

use std::sync::Arc;

use super::*;

/// What a host's findings are evaluated from.
#[derive(Clone, Debug)]
pub struct EvaluationInput {
    /// The host's last inventory without its packages (release, kernel).
    pub head: Inventory,
    /// The host's package set (shared by every host holding the same versions), if it has one.
    pub package_set: Option<i64>,
    /// The ids of the set's package versions (ascending).
    pub package_ids: Arc<[i64]>,
    /// The inventory's version.
    pub version: i64,
}

impl Store {
    /// The host's last inventory and its version, its packages read back from the shared versions.
    pub async fn host_inventory(
        &self,
        host_id: i64,
    ) -> Result<Option<(Inventory, i64)>, StoreError> {
        let Some(input) = self.host_evaluation_input(host_id).await? else {
            return Ok(None);
        };
        let mut inventory = input.head;
        let mut packages: Vec<InstalledPackage> = self
            .package_versions(&input.package_ids)
            .await?
            .into_values()
            .collect();
        packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        inventory.packages = packages;
        Ok(Some((inventory, input.version)))
    }

    /// The host's last inventory without its packages (what reading its findings needs: the
    /// release, end of life, the kernel), and its version.
    pub async fn host_inventory_head(
        &self,
        host_id: i64,
    ) -> Result<Option<(Inventory, i64)>, StoreError> {
        Ok(self
            .host_inventory_heads(&[host_id])
            .await?
            .remove(&host_id))
    }

    /// What evaluating a host's findings starts from: [`Store::host_evaluation_inputs`] for one
    /// host (None: no such host, or no inventory yet).
    pub async fn host_evaluation_input(
        &self,
        host_id: i64,
    ) -> Result<Option<EvaluationInput>, StoreError> {
        match self.host_evaluation_inputs(&[host_id]).await?.pop() {
            Some((_, input)) => input.map(Some),
            None => Ok(None),
        }
    }

    /// What evaluating these hosts' findings starts from, in one read: per host with an
    /// inventory its last inventory without its packages, its package set and the set's ids, and
    /// the inventory's version — or why its stored inventory could not be read (the others are
    /// still answered).
    pub async fn host_evaluation_inputs(
        &self,
        host_ids: &[i64],
    ) -> Result<Vec<(i64, Result<EvaluationInput, StoreError>)>, StoreError> {
        let text = format!(
            "SELECT h.id, h.inventory_doc, h.inventory_version, s.set_id FROM host h \
             LEFT JOIN host_package_set s ON s.host_id = h.id \
             WHERE h.inventory_doc IS NOT NULL AND h.id IN ({}) ORDER BY h.id",
            self.json_id_list(1)
        );
        let sql = self.sql(&text);
        let mut out = Vec::with_capacity(host_ids.len());
        for chunk in host_ids.chunks(10_000) {
            let rows: Vec<(i64, String, i64, Option<i64>)> = sqlx::query_as(&sql)
                .bind(serde_json::to_string(chunk).expect("integers serialize"))
                .fetch_all(self.pool())
                .await
                .context(|| "reading the hosts to evaluate".into())?;
            for (host_id, doc, version, set) in rows {
                let input = match serde_json::from_str::<Inventory>(&doc) {
                    Ok(head) => {
                        let package_ids = match set {
                            Some(set) => self.package_set(set).await?,
                            None => Arc::from(Vec::new()),
                        };
                        Ok(EvaluationInput {
                            head,
                            package_set: set,
                            package_ids,
                            version,
                        })
                    }
                    Err(e) => Err(StoreError::new(format!(
                        "the stored inventory of host {host_id}: {e}"
                    ))),
                };
                out.push((host_id, input));
            }
        }
        Ok(out)
    }

    /// The last inventories without their packages of these hosts (those that have one).
    async fn host_inventory_heads(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, (Inventory, i64)>, StoreError> {
        let text = format!(
            "SELECT id, inventory_doc, inventory_version FROM host WHERE inventory_doc IS NOT NULL AND id IN ({})",
            self.json_id_list(1)
        );
        let sql = self.sql(&text);
        let mut rows = Vec::new();
        for chunk in ids.chunks(10_000) {
            rows.extend(
                sqlx::query_as::<_, (i64, String, i64)>(&sql)
                    .bind(serde_json::to_string(chunk).expect("integers serialize"))
                    .fetch_all(self.pool())
                    .await
                    .context(|| "reading the hosts' inventories".into())?,
            );
        }
        rows.into_iter()
            .map(|(id, doc, version)| {
                serde_json::from_str(&doc)
                    .map(|inv| (id, (inv, version)))
                    .map_err(|e| StoreError::new(format!("the stored inventory of host {id}: {e}")))
            })
            .collect()
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

    /// Hosts whose findings are older than their inventory (or were never computed).
    pub async fn hosts_needing_findings(&self) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT id FROM host WHERE inventory_version > 0 AND (findings_version IS NULL OR findings_version < inventory_version) ORDER BY id",
        )
        .fetch_all(self.pool())
        .await
        .context(|| "finding hosts to re-evaluate".into())
    }
}
