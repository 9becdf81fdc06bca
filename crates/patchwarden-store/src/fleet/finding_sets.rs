//! Findings as facts (issue 15): finding keys (one verdict of one installed package version and one
//! advisory entry, stored once however many hosts hold it), finding sets (one distinct list of keys,
//! shared by every host holding exactly those findings), and per host the set it holds, when each
//! finding was first seen, and one change row per evaluation that changed anything.
//!
//! Keys and sets are content-addressed and never change once stored, so this process caches them
//! (a fleet shares most of them: most evaluations read and insert nothing). Writing a host's
//! findings writes differences only: an evaluation that finds the same set stamps the host's
//! findings version and nothing else.
//!
//! What a key's document means (the verdict's evidence) is the findings crate's business; here it
//! is text with a digest, a package, an advisory id, a state and the CVEs it cites.

use std::sync::Arc;

use patchwarden_model::FindingState;

use super::*;

/// Most entries in each cache before it is emptied (keys: ~0.5 KB each).
const KEY_CACHE_LIMIT: usize = 500_000;

/// This process's caches of the immutable rows (see the module head).
pub(crate) struct FindingCaches {
    key_ids: std::sync::Mutex<HashMap<String, i64>>,
    keys: std::sync::Mutex<HashMap<i64, Arc<StoredFindingKey>>>,
    sets: IdLists,
}

impl Default for FindingCaches {
    fn default() -> FindingCaches {
        FindingCaches {
            key_ids: Default::default(),
            keys: Default::default(),
            sets: IdLists::new("finding_set", "key_ids", "finding set"),
        }
    }
}

/// A finding key to intern: the digest of its document names it.
#[derive(Clone, Debug)]
pub struct NewFindingKey {
    pub digest: String,
    pub package: String,
    pub advisory_id: String,
    pub state: FindingState,
    pub cves: Vec<String>,
    pub doc: String,
}

/// A stored finding key.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFindingKey {
    pub id: i64,
    pub package: String,
    pub advisory_id: String,
    pub state: FindingState,
    pub doc: String,
}

pub use patchwarden_model::finding_set::HostFindingSet;

/// What storing a host's findings did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FindingsStored {
    /// False when findings of a newer inventory were stored already (nothing was written).
    pub stored: bool,
    pub opened: usize,
    pub closed: usize,
}

/// One evaluation of a host that changed its findings.
#[derive(Clone, Debug, PartialEq)]
pub struct FindingChange {
    pub changed_at: String,
    /// None: the host's first findings (everything in `to_set` opened).
    pub from_set: Option<i64>,
    pub to_set: i64,
    pub opened: Vec<i64>,
    pub closed: Vec<i64>,
}

fn parse_state(text: &str, key: i64) -> Result<FindingState, StoreError> {
    text.parse()
        .map_err(|e: String| StoreError::new(format!("finding key {key}: state: {e}")))
}

fn parse_seen(text: &str, host_id: i64) -> Result<BTreeMap<String, Vec<i64>>, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::new(format!(
            "the stored first sightings of host {host_id}'s findings: {e}"
        ))
    })
}

impl Store {
    /// The ids of finding keys (in the order given), interning the new ones with the CVEs they cite.
    pub async fn intern_finding_keys(
        &self,
        keys: &[NewFindingKey],
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<Option<i64>> = Vec::with_capacity(keys.len());
        let mut unknown: Vec<&NewFindingKey> = Vec::new();
        {
            let cache = self.findings.key_ids.lock().expect("the finding key cache");
            for k in keys {
                let id = cache.get(&k.digest).copied();
                if id.is_none() {
                    unknown.push(k);
                }
                ids.push(id);
            }
        }
        if unknown.is_empty() {
            return Ok(ids.into_iter().flatten().collect());
        }
        // In digest order: concurrent inserts take their locks in one order.
        unknown.sort_unstable_by(|a, b| a.digest.cmp(&b.digest));
        unknown.dedup_by(|a, b| a.digest == b.digest);
        let (_writer, mut tx) = self.begin().await?;
        let rows: Vec<Vec<Value>> = unknown
            .iter()
            .map(|k| {
                vec![
                    Value::from(k.digest.as_str()),
                    Value::from(k.package.as_str()),
                    Value::from(k.advisory_id.as_str()),
                    Value::from(k.state.as_str()),
                    Value::from(k.doc.as_str()),
                ]
            })
            .collect();
        self.insert_new_rows(
            &mut tx,
            "finding_key",
            &["digest", "package", "advisory_id", "state", "doc"],
            &rows,
        )
        .await?;
        let mut found: HashMap<String, i64> = HashMap::with_capacity(unknown.len());
        for chunk in unknown.chunks(KEYS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, digest FROM finding_key WHERE digest IN ({})",
                self.placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
            for k in chunk {
                q = q.bind(k.digest.as_str());
            }
            for (id, digest) in q
                .fetch_all(&mut *tx)
                .await
                .context(|| "reading finding keys".into())?
            {
                found.insert(digest, id);
            }
        }
        let mut cve_rows = Vec::new();
        for k in &unknown {
            let id = *found.get(&k.digest).ok_or_else(|| {
                StoreError::new(format!("finding key {} was not stored", k.digest))
            })?;
            let mut cves: Vec<&String> = k.cves.iter().collect();
            cves.sort();
            cves.dedup();
            for cve in cves {
                cve_rows.push(vec![Value::from(cve.as_str()), Value::Int(id)]);
            }
        }
        self.insert_new_rows(&mut tx, "finding_key_cve", &["cve", "key_id"], &cve_rows)
            .await?;
        tx.commit()
            .await
            .context(|| "committing finding keys".into())?;
        let out = keys
            .iter()
            .zip(&ids)
            .map(|(k, id)| {
                id.or_else(|| found.get(&k.digest).copied())
                    .ok_or_else(|| StoreError::new(format!("finding key {} not found", k.digest)))
            })
            .collect::<Result<Vec<i64>, StoreError>>()?;
        remember(&self.findings.key_ids, KEY_CACHE_LIMIT, found);
        Ok(out)
    }

    /// The id of the finding set of exactly these keys (ascending, no repeats), stored if new.
    async fn intern_finding_set(&self, keys: &[i64]) -> Result<i64, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let interned = self.findings.sets.intern(self, &mut tx, keys).await?;
        tx.commit()
            .await
            .context(|| "committing a finding set".into())?;
        let id = interned.id;
        self.findings.sets.committed(interned);
        Ok(id)
    }

    /// The keys of a finding set (ascending).
    pub async fn finding_set_keys(&self, set_id: i64) -> Result<Arc<[i64]>, StoreError> {
        self.findings.sets.get(self, set_id).await
    }

    /// Finding keys by id (in the order given; ids not stored are an error).
    pub async fn finding_keys(
        &self,
        ids: &[i64],
    ) -> Result<Vec<Arc<StoredFindingKey>>, StoreError> {
        let mut out: Vec<Option<Arc<StoredFindingKey>>> = Vec::with_capacity(ids.len());
        let mut missing: Vec<i64> = Vec::new();
        {
            let cache = self.findings.keys.lock().expect("the finding key cache");
            for id in ids {
                let k = cache.get(id).cloned();
                if k.is_none() {
                    missing.push(*id);
                }
                out.push(k);
            }
        }
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            let mut read: HashMap<i64, Arc<StoredFindingKey>> = HashMap::new();
            let text = format!(
                "SELECT id, package, advisory_id, state, doc FROM finding_key WHERE id IN ({})",
                self.json_id_list(1)
            );
            let sql = self.sql(&text);
            for chunk in missing.chunks(10_000) {
                let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(&sql)
                    .bind(serde_json::to_string(chunk).expect("integers serialize"))
                    .fetch_all(self.pool())
                    .await
                    .context(|| "reading finding keys".into())?;
                for (id, package, advisory_id, state, doc) in rows {
                    read.insert(
                        id,
                        Arc::new(StoredFindingKey {
                            id,
                            package,
                            advisory_id,
                            state: parse_state(&state, id)?,
                            doc,
                        }),
                    );
                }
            }
            for (slot, id) in out.iter_mut().zip(ids) {
                if slot.is_none() {
                    *slot = read.get(id).cloned();
                }
            }
            remember(&self.findings.keys, KEY_CACHE_LIMIT, read);
        }
        out.into_iter()
            .zip(ids)
            .map(|(k, id)| k.ok_or_else(|| StoreError::new(format!("no finding key {id}"))))
            .collect()
    }

    /// Stores a host's findings computed from its inventory `version`: the keys it holds
    /// (ascending, no repeats). Writes differences only — the set the host now holds, when the new
    /// findings were first seen (a key replacing another for the same package and advisory, e.g.
    /// after an upgrade that did not fix it or a state change, keeps the first sighting), and one
    /// change row — or, when the set is the one stored, only the findings version. Nothing is
    /// stored when findings of a newer inventory are (two workers can race).
    pub async fn store_host_findings(
        &self,
        host_id: i64,
        version: i64,
        keys: &[i64],
        now: &str,
    ) -> Result<FindingsStored, StoreError> {
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let set_id = self.intern_finding_set(keys).await?;
        let (_writer, mut tx) = self.begin().await?;
        let claimed = sqlx::query(&self.sql(
            "UPDATE host SET findings_version = $2, findings_at = $3 WHERE id = $1 \
             AND (findings_version IS NULL OR findings_version <= $2)",
        ))
        .bind(host_id)
        .bind(version)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(|| format!("stamping the findings of host {host_id}"))?;
        if claimed.rows_affected() == 0 {
            return Ok(FindingsStored::default());
        }
        let old: Option<(i64, String, String)> =
            sqlx::query_as(&self.sql(
                "SELECT set_id, seen_base, seen_other FROM host_finding_set WHERE host_id = $1",
            ))
            .bind(host_id)
            .fetch_optional(&mut *tx)
            .await
            .context(|| format!("reading the findings of host {host_id}"))?;
        if old
            .as_ref()
            .is_some_and(|(old_set, _, _)| *old_set == set_id)
        {
            tx.commit().await.context(|| "committing findings".into())?;
            return Ok(FindingsStored {
                stored: true,
                ..Default::default()
            });
        }
        let from_set = old.as_ref().map(|(old_set, _, _)| *old_set);
        let old_seen = match old {
            Some((old_set, base, other)) => {
                self.finding_set_row(host_id, old_set, base, &other).await?
            }
            // The first findings: all seen now.
            None => HostFindingSet {
                host_id,
                set_id: 0,
                keys: Arc::from(Vec::new()),
                seen_base: now.to_owned(),
                seen_other: BTreeMap::new(),
            },
        };
        let (opened, closed) = sorted_difference(keys, &old_seen.keys);
        // First sightings: the model's rule (kept keys keep theirs, a replacement for the same
        // package and advisory carries it, the rest are now).
        let mut changed: Vec<i64> = opened.clone();
        changed.extend(&closed);
        let described = self.finding_keys(&changed).await?;
        let by_id: HashMap<i64, &StoredFindingKey> =
            described.iter().map(|k| (k.id, k.as_ref())).collect();
        let other = old_seen.next_sightings(
            keys,
            &opened,
            &closed,
            |id| {
                let k = by_id[&id];
                (k.package.as_str(), k.advisory_id.as_str())
            },
            now,
        );
        let other_text = serde_json::to_string(&other).expect("maps serialize");
        // What the findings reader keeps of this host changed (an unchanged set, above, leaves
        // it: a knowledge-base change that re-evaluates the fleet does not make every server
        // re-read every host).
        sqlx::query(&self.sql("UPDATE host SET view_version = view_version + 1 WHERE id = $1"))
            .bind(host_id)
            .execute(&mut *tx)
            .await
            .context(|| format!("stamping the findings of host {host_id}"))?;
        sqlx::query(&self.sql(
            "INSERT INTO host_finding_set (host_id, set_id, seen_base, seen_other) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (host_id) DO UPDATE SET set_id = $2, seen_base = $3, seen_other = $4",
        ))
        .bind(host_id)
        .bind(set_id)
        .bind(old_seen.seen_base.as_str())
        .bind(other_text.as_str())
        .execute(&mut *tx)
        .await
        .context(|| format!("storing the findings of host {host_id}"))?;
        let first = from_set.is_none();
        sqlx::query(&self.sql(
            "INSERT INTO finding_change (host_id, changed_at, from_set, to_set, opened, closed) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        ))
        .bind(host_id)
        .bind(now)
        .bind(from_set)
        .bind(set_id)
        .bind(if first {
            "[]".to_owned()
        } else {
            serde_json::to_string(&opened).expect("integers serialize")
        })
        .bind(serde_json::to_string(&closed).expect("integers serialize"))
        .execute(&mut *tx)
        .await
        .context(|| format!("recording the findings change of host {host_id}"))?;
        tx.commit().await.context(|| "committing findings".into())?;
        Ok(FindingsStored {
            stored: true,
            opened: opened.len(),
            closed: closed.len(),
        })
    }

    /// The findings a host holds (None: never computed).
    pub async fn host_finding_set(
        &self,
        host_id: i64,
    ) -> Result<Option<HostFindingSet>, StoreError> {
        let row: Option<(i64, String, String)> =
            sqlx::query_as(&self.sql(
                "SELECT set_id, seen_base, seen_other FROM host_finding_set WHERE host_id = $1",
            ))
            .bind(host_id)
            .fetch_optional(self.pool())
            .await
            .context(|| format!("reading the findings of host {host_id}"))?;
        match row {
            Some((set_id, seen_base, other)) => Ok(Some(
                self.finding_set_row(host_id, set_id, seen_base, &other)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// A host's finding set from its stored row (set id, base time, other first sightings).
    pub(super) async fn finding_set_row(
        &self,
        host_id: i64,
        set_id: i64,
        seen_base: String,
        seen_other: &str,
    ) -> Result<HostFindingSet, StoreError> {
        Ok(HostFindingSet {
            host_id,
            set_id,
            keys: self.finding_set_keys(set_id).await?,
            seen_base,
            seen_other: parse_seen(seen_other, host_id)?,
        })
    }

    /// The finding keys citing any of these CVEs.
    pub async fn keys_citing(&self, cves: &[String]) -> Result<Vec<i64>, StoreError> {
        if cves.is_empty() {
            return Ok(Vec::new());
        }
        let text = format!(
            "SELECT DISTINCT key_id FROM finding_key_cve WHERE cve IN ({})",
            self.json_text_list(1)
        );
        let sql = self.sql(&text);
        let mut ids: Vec<i64> = sqlx::query_scalar(&sql)
            .bind(serde_json::to_string(cves).expect("strings serialize"))
            .fetch_all(self.pool())
            .await
            .context(|| "reading the findings citing CVEs".into())?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// The hosts holding any of these finding keys (ascending ids), found through the distinct
    /// sets in use.
    pub async fn hosts_holding_keys(&self, keys: &[i64]) -> Result<Vec<i64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sets: Vec<i64> =
            sqlx::query_scalar("SELECT DISTINCT set_id FROM host_finding_set ORDER BY set_id")
                .fetch_all(self.pool())
                .await
                .context(|| "reading the finding sets in use".into())?;
        let mut holding = Vec::new();
        for set in sets {
            let held = self.finding_set_keys(set).await?;
            if keys.iter().any(|k| held.binary_search(k).is_ok()) {
                holding.push(set);
            }
        }
        if holding.is_empty() {
            return Ok(Vec::new());
        }
        let text = format!(
            "SELECT host_id FROM host_finding_set WHERE set_id IN ({}) ORDER BY host_id",
            self.json_id_list(1)
        );
        let sql = self.sql(&text);
        sqlx::query_scalar(&sql)
            .bind(serde_json::to_string(&holding).expect("integers serialize"))
            .fetch_all(self.pool())
            .await
            .context(|| "reading the hosts holding findings".into())
    }

    /// A host's findings history: every evaluation that changed its findings, oldest first.
    pub async fn finding_changes(&self, host_id: i64) -> Result<Vec<FindingChange>, StoreError> {
        let rows: Vec<(String, Option<i64>, i64, String, String)> = sqlx::query_as(&self.sql(
            "SELECT changed_at, from_set, to_set, opened, closed FROM finding_change \
             WHERE host_id = $1 ORDER BY id",
        ))
        .bind(host_id)
        .fetch_all(self.pool())
        .await
        .context(|| format!("reading the findings history of host {host_id}"))?;
        rows.into_iter()
            .map(|(changed_at, from_set, to_set, opened, closed)| {
                Ok(FindingChange {
                    changed_at,
                    from_set,
                    to_set,
                    opened: parse_ids(&opened, host_id)?,
                    closed: parse_ids(&closed, host_id)?,
                })
            })
            .collect()
    }
}
