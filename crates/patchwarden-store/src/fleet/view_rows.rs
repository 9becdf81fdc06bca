//! What reading the fleet's findings keeps in memory, read by change: a stamp of the whole fleet
//! (one row), every host's `view_version` (one narrow read through a covering index; it moves with
//! the host's finding set and first sightings, inventory, labels and revocation — migration 0016),
//! and the whole rows of the hosts whose version moved. A server answers fleet-wide queries from
//! what it keeps and re-reads only those.

use super::*;

/// A host as the findings reader needs it.
#[derive(Clone, Debug)]
pub struct ViewRow {
    pub host_id: i64,
    pub view_version: i64,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub revoked: bool,
    /// The last inventory without its packages, and its version (none before the first).
    pub head: Option<(Inventory, i64)>,
    /// The host's findings (none before they were first computed).
    pub set: Option<HostFindingSet>,
}

impl Store {
    /// A stamp of every host's view version at once: (hosts, highest id, sum of view versions).
    /// Versions only grow and ids only grow, so the stamp moves whenever a host is added or any
    /// host's version moves: a reader whose stamp is unchanged need not read the versions.
    pub async fn view_stamp(&self) -> Result<(i64, i64, i64), StoreError> {
        sqlx::query_as(
            "SELECT COUNT(*), COALESCE(MAX(id), 0), CAST(COALESCE(SUM(view_version), 0) AS BIGINT) FROM host",
        )
        .fetch_one(self.pool())
        .await
        .context(|| "reading the hosts' view stamp".into())
    }

    /// Every host's id and view version, by id (the covering index `host_view`; on SQLite through
    /// a rusqlite reader: sqlx hands each row of 100,000 to its worker thread and back).
    pub async fn view_versions(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        const SQL: &str = "SELECT id, view_version FROM host ORDER BY id";
        if let Some(path) = &self.sqlite_path {
            return self.readers.with(path, |conn| {
                let fail = |e: rusqlite::Error| {
                    StoreError::new(format!("reading the hosts' view versions: {e}"))
                };
                let mut stmt = conn.prepare_cached(SQL).map_err(fail)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                    .map_err(fail)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(fail)
            });
        }
        sqlx::query_as(SQL)
            .fetch_all(self.pool())
            .await
            .context(|| "reading the hosts' view versions".into())
    }

    /// The rows of these hosts (hosts that do not exist are absent).
    pub async fn view_rows(&self, ids: &[i64]) -> Result<Vec<ViewRow>, StoreError> {
        let text = format!(
            "SELECT h.id, h.view_version, h.hostname, h.labels, h.revoked_at, h.inventory_doc, \
             h.inventory_version, s.set_id, s.seen_base, s.seen_other \
             FROM host h LEFT JOIN host_finding_set s ON s.host_id = h.id \
             WHERE h.id IN ({}) ORDER BY h.id",
            self.json_id_list(1)
        );
        let sql = self.sql(&text);
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(10_000) {
            let rows = sqlx::query(&sql)
                .bind(serde_json::to_string(chunk).expect("integers serialize"))
                .fetch_all(self.pool())
                .await
                .context(|| "reading hosts for their findings".into())?;
            for r in rows {
                let host_id: i64 = crate::get(&r, "id")?;
                let head = match crate::get::<Option<String>>(&r, "inventory_doc")? {
                    Some(doc) => Some((
                        serde_json::from_str(&doc).map_err(|e| {
                            StoreError::new(format!("the stored inventory of host {host_id}: {e}"))
                        })?,
                        crate::get(&r, "inventory_version")?,
                    )),
                    None => None,
                };
                let set = match crate::get::<Option<i64>>(&r, "set_id")? {
                    Some(set_id) => Some(
                        self.finding_set_row(
                            host_id,
                            set_id,
                            crate::get(&r, "seen_base")?,
                            &crate::get::<String>(&r, "seen_other")?,
                        )
                        .await?,
                    ),
                    None => None,
                };
                out.push(ViewRow {
                    host_id,
                    view_version: crate::get(&r, "view_version")?,
                    hostname: crate::get(&r, "hostname")?,
                    labels: parse_labels(&crate::get::<String>(&r, "labels")?),
                    revoked: crate::get::<Option<String>>(&r, "revoked_at")?.is_some(),
                    head,
                    set,
                });
            }
        }
        Ok(out)
    }
}
