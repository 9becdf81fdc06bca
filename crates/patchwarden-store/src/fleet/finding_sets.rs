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
    /// False when findings of a newer inventory were stored already, or the knowledge base
    /// changed since the evaluation (nothing was written).
    pub stored: bool,
    /// Nothing was written: knowledge-base changes were applied after the evaluation read it.
    pub stale_knowledge: bool,
    pub opened: usize,
    pub closed: usize,
}

/// One host's findings as evaluated, to store ([`Store::store_findings`]).
#[derive(Clone, Debug)]
pub struct EvaluatedFindings {
    pub host_id: i64,
    /// The version of the inventory they were computed from.
    pub version: i64,
    /// The finding keys the host holds (ascending, no repeats).
    pub keys: Arc<[i64]>,
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

    /// Stores a host's findings computed from its inventory `version`: [`Store::store_findings`]
    /// for one host.
    pub async fn store_host_findings(
        &self,
        host_id: i64,
        version: i64,
        keys: &[i64],
        now: &str,
    ) -> Result<FindingsStored, StoreError> {
        let stored = self
            .store_findings(
                &[EvaluatedFindings {
                    host_id,
                    version,
                    keys: Arc::from(keys),
                }],
                None,
                now,
            )
            .await?;
        Ok(stored.into_iter().next().unwrap_or_default())
    }

    /// Stores the findings of several hosts, each computed from its inventory `version`, in one
    /// transaction (after one for the sets not stored yet); what was stored per host, in the order
    /// given. Writes differences only — per host the set it now holds, when the new findings were
    /// first seen (a key replacing another for the same package and advisory, e.g. after an
    /// upgrade that did not fix it or a state change, keeps the first sighting), and one change
    /// row — or, when the set is the one stored, only the findings version. Nothing is stored for
    /// a host whose findings of a newer inventory are (two workers can race), nor for a second
    /// entry of the same host. With `knowledge_generation` (the [`Store::knowledge_generation`]
    /// the findings were evaluated against), nothing at all is stored when knowledge-base changes
    /// were applied since (every answer says `stale_knowledge`): an evaluation that read the old
    /// knowledge base must not overwrite the marks of the change, on this server or another.
    pub async fn store_findings(
        &self,
        evaluated: &[EvaluatedFindings],
        knowledge_generation: Option<i64>,
        now: &str,
    ) -> Result<Vec<FindingsStored>, StoreError> {
        let mut out = vec![FindingsStored::default(); evaluated.len()];
        if evaluated.is_empty() {
            return Ok(out);
        }
        // The sets, interned first in their own transaction (see `IdLists::intern_many`).
        let mut set_of: HashMap<&[i64], i64> = HashMap::new();
        {
            let mut distinct: Vec<&[i64]> = evaluated.iter().map(|e| &*e.keys).collect();
            distinct.sort_unstable();
            distinct.dedup();
            debug_assert!(distinct
                .iter()
                .all(|keys| keys.windows(2).all(|w| w[0] < w[1])));
            // Most evaluations find sets stored before: no transaction for those.
            let mut unknown: Vec<&[i64]> = Vec::new();
            for keys in distinct {
                match self.findings.sets.known(keys) {
                    Some(id) => {
                        set_of.insert(keys, id);
                    }
                    None => unknown.push(keys),
                }
            }
            if !unknown.is_empty() {
                let (_writer, mut tx) = self.begin().await?;
                let interned = self
                    .findings
                    .sets
                    .intern_many(self, &mut tx, &unknown)
                    .await?;
                tx.commit()
                    .await
                    .context(|| "committing finding sets".into())?;
                for (keys, interned) in unknown.into_iter().zip(interned) {
                    set_of.insert(keys, interned.id);
                    self.findings.sets.committed(interned);
                }
            }
        }
        // Each host once (its entry of the newest inventory), in id order: concurrent writers
        // lock host rows in one order.
        let mut order: Vec<usize> = (0..evaluated.len()).collect();
        order.sort_by_key(|&n| {
            (
                evaluated[n].host_id,
                std::cmp::Reverse(evaluated[n].version),
            )
        });
        order.dedup_by_key(|n| evaluated[*n].host_id);
        let host_ids: Vec<i64> = order.iter().map(|&n| evaluated[n].host_id).collect();
        let (_writer, mut tx) = self.begin().await?;
        let lock = self.host_locks(None);
        let sql = format!(
            "SELECT id, findings_version FROM host WHERE id IN ({}){lock}",
            self.json_id_list(1)
        );
        let stamped: HashMap<i64, Option<i64>> = sqlx::query_as(&self.sql(&sql))
            .bind(ids_json(&host_ids))
            .fetch_all(&mut *tx)
            .await
            .context(|| "reading the hosts' findings versions".into())?
            .into_iter()
            .collect();
        // Read after the hosts are locked: a change applied meanwhile (it marks hosts, so it
        // waits for these locks or took them first) is seen.
        if let Some(evaluated_at) = knowledge_generation {
            let now_at: i64 =
                sqlx::query_scalar("SELECT generation FROM kb_generation WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await
                    .context(|| "reading the knowledge-base generation".into())?;
            if now_at != evaluated_at {
                for stored in &mut out {
                    stored.stale_knowledge = true;
                }
                return Ok(out);
            }
        }
        // The hosts whose stored findings are not newer: stamped with their version.
        let claimed: Vec<usize> = order
            .into_iter()
            .filter(|&n| {
                let e = &evaluated[n];
                stamped
                    .get(&e.host_id)
                    .is_some_and(|v| v.is_none_or(|v| v <= e.version))
            })
            .collect();
        if claimed.is_empty() {
            return Ok(out);
        }
        let pairs: Vec<[i64; 2]> = claimed
            .iter()
            .map(|&n| [evaluated[n].host_id, evaluated[n].version])
            .collect();
        let sql = format!(
            "UPDATE host SET findings_version = v.b, findings_at = $2 FROM ({}) v WHERE host.id = v.a",
            self.json_pair_list(1)
        );
        sqlx::query(&self.sql(&sql))
            .bind(serde_json::to_string(&pairs).expect("integers serialize"))
            .bind(now)
            .execute(&mut *tx)
            .await
            .context(|| "stamping the hosts' findings".into())?;
        // What the claimed hosts held.
        let claimed_ids: Vec<i64> = claimed.iter().map(|&n| evaluated[n].host_id).collect();
        let sql = format!(
            "SELECT host_id, set_id, seen_base, seen_other FROM host_finding_set WHERE host_id IN ({})",
            self.json_id_list(1)
        );
        let held: HashMap<i64, (i64, String, String)> =
            sqlx::query_as::<_, (i64, i64, String, String)>(&self.sql(&sql))
                .bind(ids_json(&claimed_ids))
                .fetch_all(&mut *tx)
                .await
                .context(|| "reading the hosts' findings".into())?
                .into_iter()
                .map(|(host, set, base, other)| (host, (set, base, other)))
                .collect();
        // Per host whose set changed: what it held, what opened and closed.
        struct Changed {
            n: usize,
            set_id: i64,
            from_set: Option<i64>,
            old: HostFindingSet,
            opened: Vec<i64>,
            closed: Vec<i64>,
        }
        let mut changed: Vec<Changed> = Vec::new();
        for &n in &claimed {
            let e = &evaluated[n];
            let set_id = set_of[&*e.keys];
            out[n].stored = true;
            let old = match held.get(&e.host_id) {
                Some((old_set, _, _)) if *old_set == set_id => continue,
                Some((old_set, base, other)) => {
                    self.finding_set_row(e.host_id, *old_set, base.clone(), other)
                        .await?
                }
                // The first findings: all seen now.
                None => HostFindingSet {
                    host_id: e.host_id,
                    set_id: 0,
                    keys: Arc::from(Vec::new()),
                    seen_base: now.to_owned(),
                    seen_other: BTreeMap::new(),
                },
            };
            let (opened, closed) = sorted_difference(&e.keys, &old.keys);
            out[n].opened = opened.len();
            out[n].closed = closed.len();
            changed.push(Changed {
                n,
                set_id,
                from_set: held.get(&e.host_id).map(|(set, _, _)| *set),
                old,
                opened,
                closed,
            });
        }
        if !changed.is_empty() {
            let mut described_ids: Vec<i64> = changed
                .iter()
                .flat_map(|c| c.opened.iter().chain(&c.closed).copied())
                .collect();
            described_ids.sort_unstable();
            described_ids.dedup();
            let described = self.finding_keys(&described_ids).await?;
            let by_id: HashMap<i64, &StoredFindingKey> =
                described.iter().map(|k| (k.id, k.as_ref())).collect();
            let mut set_rows = Vec::with_capacity(changed.len());
            let mut change_rows = Vec::with_capacity(changed.len());
            for c in &changed {
                let e = &evaluated[c.n];
                // First sightings: the model's rule (kept keys keep theirs, a replacement for the
                // same package and advisory carries it, the rest are now).
                let other = c.old.next_sightings(
                    &e.keys,
                    &c.opened,
                    &c.closed,
                    |id| {
                        let k = by_id[&id];
                        (k.package.as_str(), k.advisory_id.as_str())
                    },
                    now,
                );
                set_rows.push(vec![
                    Value::Int(e.host_id),
                    Value::Int(c.set_id),
                    Value::from(c.old.seen_base.as_str()),
                    Value::from(serde_json::to_string(&other).expect("maps serialize")),
                ]);
                change_rows.push(vec![
                    Value::Int(e.host_id),
                    Value::from(now),
                    Value::MaybeInt(c.from_set),
                    Value::Int(c.set_id),
                    Value::from(if c.from_set.is_none() {
                        "[]".to_owned()
                    } else {
                        ids_json(&c.opened)
                    }),
                    Value::from(ids_json(&c.closed)),
                ]);
            }
            self.insert_rows_then(
                &mut tx,
                "host_finding_set",
                &["host_id", "set_id", "seen_base", "seen_other"],
                &set_rows,
                " ON CONFLICT (host_id) DO UPDATE SET set_id = excluded.set_id, \
                 seen_base = excluded.seen_base, seen_other = excluded.seen_other",
            )
            .await?;
            self.insert_rows(
                &mut tx,
                "finding_change",
                &[
                    "host_id",
                    "changed_at",
                    "from_set",
                    "to_set",
                    "opened",
                    "closed",
                ],
                &change_rows,
            )
            .await?;
            // What the findings reader keeps of these hosts changed (an unchanged set leaves it:
            // a knowledge-base change that re-evaluates the fleet does not make every server
            // re-read every host).
            let moved: Vec<i64> = changed.iter().map(|c| evaluated[c.n].host_id).collect();
            let sql = format!(
                "UPDATE host SET view_version = view_version + 1 WHERE id IN ({})",
                self.json_id_list(1)
            );
            sqlx::query(&self.sql(&sql))
                .bind(ids_json(&moved))
                .execute(&mut *tx)
                .await
                .context(|| "stamping the hosts' findings".into())?;
        }
        tx.commit().await.context(|| "committing findings".into())?;
        Ok(out)
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
