//! What a knowledge-base write changed, and the hosts that change can touch.
//!
//! Every feed write compares what it stores with what was there (advisories and NVD records by the
//! SHA-256 of their document, KEV entries by document, EPSS by score and percentile) and, inside
//! its own transaction, journals the difference in `kb_change`: the packages whose advisories
//! changed (added, modified or removed) and the CVEs whose enrichment changed. The server consumes
//! the journal ([`Store::apply_knowledge_changes`]) and marks only the hosts concerned:
//! - a changed advisory: the hosts holding a package of that name (binary or source name) on that
//!   distribution — a new advisory can make findings on hosts that had none, so the package sets
//!   decide, not the findings;
//! - a changed KEV entry, EPSS score or NVD record: the hosts with a finding citing the CVE (these
//!   only enrich findings), and for an NVD record whose rejection flipped, the packages of the
//!   advisories citing it (a rejection removes findings; its withdrawal brings them back).
//!
//! Nothing is journaled while no host is enrolled (a scanner-only store keeps no journal).

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::{Any, Transaction};

use crate::{get, Backend, Context, Store, StoreError};

/// The difference one write made.
#[derive(Debug, Default)]
pub(crate) struct ChangeSet {
    /// (distribution id or none: any distribution, package name).
    pub packages: BTreeSet<(Option<String>, String)>,
    pub cves: BTreeSet<String>,
}

impl ChangeSet {
    /// Journals the change (nothing if it is empty), inside the write's transaction.
    pub(crate) async fn record(
        self,
        store: &Store,
        tx: &mut Transaction<'static, Any>,
        feed: &str,
    ) -> Result<(), StoreError> {
        if self.packages.is_empty() && self.cves.is_empty() {
            return Ok(());
        }
        let packages = serde_json::to_string(&self.packages).expect("strings serialize");
        let cves = serde_json::to_string(&self.cves).expect("strings serialize");
        sqlx::query(&store.sql(
            "INSERT INTO kb_change (feed, changed_at, packages, cves) VALUES ($1, $2, $3, $4)",
        ))
        .bind(feed)
        .bind(patchwarden_model::now_rfc3339())
        .bind(packages)
        .bind(cves)
        .execute(&mut **tx)
        .await
        .context(|| format!("journaling the changes of {feed}"))?;
        Ok(())
    }
}

/// What [`Store::apply_knowledge_changes`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnowledgeChangesApplied {
    /// Journal entries consumed.
    pub changes: usize,
    /// Package names and CVEs they named.
    pub packages: usize,
    pub cves: usize,
    /// Hosts whose findings were marked for recomputation.
    pub hosts_marked: usize,
}

impl Store {
    /// A subquery yielding the strings of the JSON array bound as parameter `$n`.
    pub(crate) fn json_text_list(&self, n: usize) -> String {
        match self.backend() {
            Backend::Sqlite => format!("SELECT value FROM json_each(${n})"),
            Backend::Postgres => format!("SELECT json_array_elements_text(${n}::json)"),
        }
    }

    /// A subquery yielding the integers of the JSON array bound as parameter `$n`.
    pub(crate) fn json_id_list(&self, n: usize) -> String {
        match self.backend() {
            Backend::Sqlite => format!("SELECT value FROM json_each(${n})"),
            Backend::Postgres => {
                format!("SELECT value::bigint FROM json_array_elements_text(${n}::json)")
            }
        }
    }

    /// A subquery yielding the integer pairs (`a`, `b`) of the JSON array of two-element arrays
    /// bound as parameter `$n`.
    pub(crate) fn json_pair_list(&self, n: usize) -> String {
        match self.backend() {
            Backend::Sqlite => {
                format!("SELECT value ->> 0 AS a, value ->> 1 AS b FROM json_each(${n})")
            }
            Backend::Postgres => format!(
                "SELECT (e ->> 0)::bigint AS a, (e ->> 1)::bigint AS b FROM json_array_elements(${n}::json) e"
            ),
        }
    }

    /// Whether any host is enrolled (else knowledge-base writes journal nothing).
    pub(crate) async fn tracks_changes(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<bool, StoreError> {
        let any: Option<i64> = sqlx::query_scalar("SELECT id FROM host LIMIT 1")
            .fetch_optional(&mut **tx)
            .await
            .context(|| "looking for enrolled hosts".into())?;
        Ok(any.is_some())
    }

    /// How many times knowledge-base changes were applied (by any server): caches of the
    /// knowledge base are good while it stays the same.
    pub async fn knowledge_generation(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT generation FROM kb_generation WHERE id = 1")
            .fetch_one(self.pool())
            .await
            .context(|| "reading the knowledge-base generation".into())
    }

    /// Journal entries not yet applied (tests and `feeds status`).
    pub async fn pending_knowledge_changes(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM kb_change")
            .fetch_one(self.pool())
            .await
            .context(|| "counting knowledge-base changes".into())
    }

    /// Consumes the change journal: marks the findings of exactly the hosts the journaled changes
    /// can touch as outdated (the server then recomputes them) and removes the entries, in one
    /// transaction. Several servers may run it at once: the entries are claimed by removing them
    /// in the transaction that marks their hosts.
    pub async fn apply_knowledge_changes(&self) -> Result<KnowledgeChangesApplied, StoreError> {
        let rows = sqlx::query("SELECT seq, packages, cves FROM kb_change ORDER BY seq")
            .fetch_all(self.pool())
            .await
            .context(|| "reading knowledge-base changes".into())?;
        let Some(last) = rows.last() else {
            return Ok(KnowledgeChangesApplied::default());
        };
        let last_seq: i64 = get(last, "seq")?;
        // Package name → the distributions its advisories changed on (None: any).
        let mut names: HashMap<String, BTreeSet<Option<String>>> = HashMap::new();
        let mut cves: BTreeSet<String> = BTreeSet::new();
        for row in &rows {
            let seq: i64 = get(row, "seq")?;
            let packages: Vec<(Option<String>, String)> =
                serde_json::from_str(&get::<String>(row, "packages")?).map_err(|e| {
                    StoreError::new(format!("knowledge-base change {seq}: packages: {e}"))
                })?;
            for (distro, name) in packages {
                names.entry(name).or_default().insert(distro);
            }
            let listed: Vec<String> = serde_json::from_str(&get::<String>(row, "cves")?)
                .map_err(|e| StoreError::new(format!("knowledge-base change {seq}: cves: {e}")))?;
            cves.extend(listed);
        }
        let mut hosts: BTreeSet<i64> = self.hosts_holding(&names).await?;
        if !cves.is_empty() {
            let cves: Vec<String> = cves.iter().cloned().collect();
            let keys = self.keys_citing(&cves).await?;
            hosts.extend(self.hosts_holding_keys(&keys).await?);
        }
        let (_writer, mut tx) = self.begin().await?;
        // Removing the entries first claims them: a server that read the same entries finds them
        // gone (on PostgreSQL it waits for this transaction) and marks nothing twice.
        let claimed = sqlx::query(&self.sql("DELETE FROM kb_change WHERE seq <= $1"))
            .bind(last_seq)
            .execute(&mut *tx)
            .await
            .context(|| "removing applied knowledge-base changes".into())?
            .rows_affected();
        if claimed == 0 {
            return Ok(KnowledgeChangesApplied::default());
        }
        sqlx::query("UPDATE kb_generation SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .context(|| "counting the applied knowledge-base changes".into())?;
        if !hosts.is_empty() {
            let ids: Vec<i64> = hosts.iter().copied().collect();
            let sql = format!(
                "UPDATE host SET findings_version = NULL WHERE id IN ({})",
                self.json_id_list(1)
            );
            sqlx::query(&self.sql(&sql))
                .bind(serde_json::to_string(&ids).expect("integers serialize"))
                .execute(&mut *tx)
                .await
                .context(|| "marking findings outdated".into())?;
        }
        tx.commit()
            .await
            .context(|| "committing applied knowledge-base changes".into())?;
        Ok(KnowledgeChangesApplied {
            changes: rows.len(),
            packages: names.len(),
            cves: cves.len(),
            hosts_marked: hosts.len(),
        })
    }

    /// The hosts holding a package (by binary or source name) whose advisories changed on the
    /// host's distribution: the candidate package versions first (by name), then each distinct
    /// package set in use intersected once, its hosts taken by their distribution.
    async fn hosts_holding(
        &self,
        names: &HashMap<String, BTreeSet<Option<String>>>,
    ) -> Result<BTreeSet<i64>, StoreError> {
        let mut hosts = BTreeSet::new();
        if names.is_empty() {
            return Ok(hosts);
        }
        let list: Vec<&str> = names.keys().map(String::as_str).collect();
        let sql = format!(
            "SELECT id, name, source_name FROM package_version WHERE name IN ({0}) OR source_name IN ({0})",
            self.json_text_list(1)
        );
        let rows = sqlx::query(&self.sql(&sql))
            .bind(serde_json::to_string(&list).expect("strings serialize"))
            .fetch_all(self.pool())
            .await
            .context(|| "finding package versions of changed packages".into())?;
        // Package version id → the distributions on which a change concerns it (None: any).
        let mut candidates: HashMap<i64, HashSet<Option<&str>>> = HashMap::new();
        for r in &rows {
            let id: i64 = get(r, "id")?;
            for column in ["name", "source_name"] {
                let name: String = get(r, column)?;
                if let Some(distros) = names.get(&name) {
                    candidates
                        .entry(id)
                        .or_default()
                        .extend(distros.iter().map(Option::as_deref));
                }
            }
        }
        if candidates.is_empty() {
            return Ok(hosts);
        }
        // Set by set (hosts holding the same versions share one): a set concerns its hosts on
        // the distributions the change names.
        for (set, holders) in self.package_sets_in_use().await? {
            let concerned: Vec<&HashSet<Option<&str>>> =
                set.iter().filter_map(|id| candidates.get(id)).collect();
            if concerned.is_empty() {
                continue;
            }
            for (host_id, distro) in holders {
                if concerned
                    .iter()
                    .any(|d| d.contains(&None) || d.contains(&distro.as_deref()))
                {
                    hosts.insert(host_id);
                }
            }
        }
        Ok(hosts)
    }
}
