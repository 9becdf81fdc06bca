//! What a knowledge-base write changed, and the hosts that change can touch.
//!
//! Every feed write compares what it stores with what was there (advisories and NVD records by the
//! SHA-256 of their document, KEV entries by document, EPSS by score and percentile) and, inside
//! its own transaction, journals the difference in `kb_change`: the packages whose advisories
//! changed (added, modified or removed) and the CVEs whose enrichment changed. The server consumes
//! the journal and marks only the hosts concerned:
//! - a changed advisory: the hosts holding a package of that name (binary or source name) on that
//!   distribution — a new advisory can make findings on hosts that had none, so the package sets
//!   decide, not the findings. [`Store::apply_knowledge_changes`] marks every such host; a server
//!   reads the candidates grouped by package set, release and finding set
//!   ([`Store::knowledge_candidates`]), keeps only the groups whose findings for the named package
//!   versions differ under the new knowledge base (the findings crate decides), and marks those
//!   with [`Store::claim_knowledge_changes`] — which also marks the hosts whose findings were
//!   stored while it weighed them;
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
    /// The knowledge generation this claim moved the store to.
    pub generation: i64,
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

    /// Consumes the change journal, marking by name: [`Store::knowledge_changes`], the hosts
    /// holding a package of a changed name on its distribution or a finding citing a changed CVE,
    /// [`Store::claim_knowledge_changes`]. (A server narrows the packages down to the versions
    /// whose verdicts changed: `patchwarden_findings::fleet::FleetKnowledge::hosts_changed_by`.)
    pub async fn apply_knowledge_changes(&self) -> Result<KnowledgeChangesApplied, StoreError> {
        let Some(changes) = self.knowledge_changes().await? else {
            return Ok(KnowledgeChangesApplied::default());
        };
        let mut hosts: BTreeSet<i64> = self
            .knowledge_candidates(&changes)
            .await?
            .iter()
            .flat_map(|g| g.hosts.iter().map(|h| h.0))
            .collect();
        hosts.extend(self.hosts_citing(&changes).await?);
        Ok(self
            .claim_knowledge_changes(&changes, &hosts, &[])
            .await?
            .unwrap_or_default())
    }

    /// The journal's entries not applied yet, read together (None: there are none).
    pub async fn knowledge_changes(&self) -> Result<Option<KnowledgeChanges>, StoreError> {
        let rows = sqlx::query("SELECT seq, packages, cves FROM kb_change ORDER BY seq")
            .fetch_all(self.pool())
            .await
            .context(|| "reading knowledge-base changes".into())?;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        let mut changes = KnowledgeChanges {
            last_seq: get(last, "seq")?,
            entries: rows.len(),
            ..Default::default()
        };
        for row in &rows {
            let seq: i64 = get(row, "seq")?;
            let packages: Vec<(Option<String>, String)> =
                serde_json::from_str(&get::<String>(row, "packages")?).map_err(|e| {
                    StoreError::new(format!("knowledge-base change {seq}: packages: {e}"))
                })?;
            for (distro, name) in packages {
                changes.names.entry(name).or_default().insert(distro);
            }
            let listed: Vec<String> = serde_json::from_str(&get::<String>(row, "cves")?)
                .map_err(|e| StoreError::new(format!("knowledge-base change {seq}: cves: {e}")))?;
            changes.cves.extend(listed);
        }
        Ok(Some(changes))
    }

    /// The hosts with a finding citing a CVE the changes name.
    pub async fn hosts_citing(&self, changes: &KnowledgeChanges) -> Result<Vec<i64>, StoreError> {
        if changes.cves.is_empty() {
            return Ok(Vec::new());
        }
        let cves: Vec<String> = changes.cves.iter().cloned().collect();
        let keys = self.keys_citing(&cves).await?;
        self.hosts_holding_keys(&keys).await
    }

    /// Marks `hosts` for recomputation and consumes the journal entries `changes` read, in one
    /// transaction; also marks the hosts of `recheck` (host, view version when the changes were
    /// weighed) whose findings moved since — their new findings were not weighed. Several servers
    /// may run it at once: the entries are claimed by removing them in the transaction that marks
    /// their hosts (None: another server claimed them first, nothing was marked here).
    pub async fn claim_knowledge_changes(
        &self,
        changes: &KnowledgeChanges,
        hosts: &BTreeSet<i64>,
        recheck: &[(i64, i64)],
    ) -> Result<Option<KnowledgeChangesApplied>, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        // Removing the entries first claims them: a server that read the same entries finds them
        // gone (on PostgreSQL it waits for this transaction) and marks nothing twice.
        let claimed = sqlx::query(&self.sql("DELETE FROM kb_change WHERE seq <= $1"))
            .bind(changes.last_seq)
            .execute(&mut *tx)
            .await
            .context(|| "removing applied knowledge-base changes".into())?
            .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        let generation: i64 = sqlx::query_scalar(
            "UPDATE kb_generation SET generation = generation + 1 WHERE id = 1 RETURNING generation",
        )
        .fetch_one(&mut *tx)
        .await
        .context(|| "counting the applied knowledge-base changes".into())?;
        let mut marked = hosts.clone();
        if !recheck.is_empty() {
            // Hosts whose findings were stored after they were weighed (by a worker that had not
            // seen these changes yet).
            let sql = format!(
                "SELECT h.id FROM host h JOIN ({}) w ON h.id = w.a WHERE h.view_version <> w.b",
                self.json_pair_list(1)
            );
            let pairs: Vec<[i64; 2]> = recheck.iter().map(|(h, v)| [*h, *v]).collect();
            let moved: Vec<i64> = sqlx::query_scalar(&self.sql(&sql))
                .bind(serde_json::to_string(&pairs).expect("integers serialize"))
                .fetch_all(&mut *tx)
                .await
                .context(|| "reading the hosts weighed".into())?;
            marked.extend(moved);
        }
        if !marked.is_empty() {
            let ids: Vec<i64> = marked.iter().copied().collect();
            if self.backend() == Backend::Postgres {
                let sql = format!(
                    "SELECT id FROM host WHERE id IN ({}){}",
                    self.json_id_list(1),
                    self.host_locks(None)
                );
                sqlx::query(&self.sql(&sql))
                    .bind(serde_json::to_string(&ids).expect("integers serialize"))
                    .execute(&mut *tx)
                    .await
                    .context(|| "locking the hosts to mark".into())?;
            }
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
        Ok(Some(KnowledgeChangesApplied {
            changes: changes.entries,
            packages: changes.names.len(),
            cves: changes.cves.len(),
            hosts_marked: marked.len(),
            generation,
        }))
    }

    /// The hosts a change of these package names can touch, grouped by what their findings depend
    /// on: package set, release and finding set — with each group's package versions the changes
    /// name (by binary or source name, on the group's distribution). Each distinct package set
    /// in use is looked at once.
    pub async fn knowledge_candidates(
        &self,
        changes: &KnowledgeChanges,
    ) -> Result<Vec<CandidateGroup>, StoreError> {
        let names = &changes.names;
        if names.is_empty() {
            return Ok(Vec::new());
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
            return Ok(Vec::new());
        }
        // Set by set (hosts holding the same versions share one): a set concerns its hosts on
        // the distributions the change names.
        let mut groups: Vec<CandidateGroup> = Vec::new();
        for set in self.package_sets_in_use().await? {
            let concerned: Vec<(i64, &HashSet<Option<&str>>)> = set
                .packages
                .iter()
                .filter_map(|id| candidates.get(id).map(|d| (*id, d)))
                .collect();
            if concerned.is_empty() {
                continue;
            }
            // (distro, release, finding set) → the group's position.
            type GroupKey = (Option<String>, Option<String>, Option<i64>);
            let mut by_key: HashMap<GroupKey, usize> = HashMap::new();
            for holder in set.holders {
                // A change to RHEL's data concerns the rebuilds too (they take Red Hat's unfixed
                // statements: `Distro::follows_rhel`).
                let rebuild = holder
                    .distro
                    .as_deref()
                    .and_then(patchwarden_model::Distro::from_id)
                    .is_some_and(patchwarden_model::Distro::follows_rhel);
                let named: Vec<i64> = concerned
                    .iter()
                    .filter(|(_, d)| {
                        d.contains(&None)
                            || d.contains(&holder.distro.as_deref())
                            || (rebuild && d.contains(&Some(patchwarden_model::Distro::Rhel.id())))
                    })
                    .map(|(id, _)| *id)
                    .collect();
                if named.is_empty() {
                    continue;
                }
                let key = (holder.distro, holder.release, holder.finding_set);
                let n = *by_key.entry(key.clone()).or_insert_with(|| {
                    groups.push(CandidateGroup {
                        distro: key.0,
                        release: key.1,
                        package_set: set.id,
                        finding_set: key.2,
                        packages: named,
                        hosts: Vec::new(),
                    });
                    groups.len() - 1
                });
                groups[n].hosts.push((holder.host_id, holder.view_version));
            }
        }
        Ok(groups)
    }
}

/// The knowledge-base change journal's entries not applied yet ([`Store::knowledge_changes`]).
#[derive(Clone, Debug, Default)]
pub struct KnowledgeChanges {
    /// The last entry read (what claiming them removes up to).
    last_seq: i64,
    /// Entries read.
    pub entries: usize,
    /// Package name → the distributions its advisories changed on (None: any).
    pub names: HashMap<String, BTreeSet<Option<String>>>,
    /// CVEs whose enrichment (NVD, KEV, EPSS) changed.
    pub cves: BTreeSet<String>,
}

/// Hosts sharing what their findings depend on (package set, release, finding set) that a
/// change can touch ([`Store::knowledge_candidates`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateGroup {
    /// The hosts' distribution and release (as stored from their inventory).
    pub distro: Option<String>,
    pub release: Option<String>,
    pub package_set: i64,
    /// The finding set they hold (None: not computed yet).
    pub finding_set: Option<i64>,
    /// The set's package versions a change names.
    pub packages: Vec<i64>,
    /// (host id, view version when read).
    pub hosts: Vec<(i64, i64)>,
}
