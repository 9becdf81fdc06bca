//! Check-ins: package versions interned once (ids cached per process); inventories and heartbeats
//! stored in batches, one transaction each, their report keys recorded by one helper; per
//! inventory the host's package set and its change row diffed and written.

use std::sync::Arc;

use super::*;

impl Store {
    /// The ids of an inventory's package versions, interning the new ones. Runs in a short
    /// transaction of its own, before the check-in's: the versions are a shared dictionary (an
    /// interned version nobody ends up using costs nothing), and concurrent check-ins then never
    /// wait on each other's uncommitted versions (on PostgreSQL they had queued on row locks).
    /// Ids of versions seen before come from this process's cache (an id never changes once
    /// stored, whichever process stored it): a fleet shares most versions, so most inventories
    /// insert nothing.
    pub(crate) async fn intern_packages(
        &self,
        inventory: &InventoryView<'_>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut wanted: Vec<i64> = Vec::with_capacity(inventory.packages.len());
        let mut unknown: Vec<(String, &PackageRef<'_>)> = Vec::new();
        {
            let cache = self.package_ids.lock().expect("the package id cache");
            let mut key = String::with_capacity(128);
            for p in &inventory.packages {
                write_package_key(p, &mut key);
                match cache.get(key.as_str()) {
                    Some(id) => {
                        wanted.push(*id);
                    }
                    None => unknown.push((key.clone(), p)),
                }
            }
        }
        // In key order: concurrent inserts take their locks in one order.
        unknown.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        unknown.dedup_by(|a, b| a.0 == b.0);
        if unknown.is_empty() {
            wanted.sort_unstable();
            wanted.dedup();
            return Ok(wanted);
        }
        let rows: Vec<Vec<Value>> = unknown
            .iter()
            .map(|(key, p)| {
                vec![
                    Value::from(key.as_str()),
                    Value::from(manager_name(p.manager)),
                    Value::from(p.name.as_ref()),
                    Value::from(p.version.as_ref()),
                    Value::from(p.arch.as_ref()),
                    Value::from(p.source_name.as_ref()),
                    Value::from(p.source_version.as_ref()),
                ]
            })
            .collect();
        let (_writer, mut tx) = self.begin().await?;
        self.insert_new_rows(
            &mut tx,
            "package_version",
            &[
                "key",
                "manager",
                "name",
                "version",
                "arch",
                "source_name",
                "source_version",
            ],
            &rows,
        )
        .await?;
        tx.commit()
            .await
            .context(|| "committing package versions".into())?;
        drop(_writer);
        let keys: Vec<&String> = unknown.iter().map(|(k, _)| k).collect();
        let mut found: Vec<(i64, String)> = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, key FROM package_version WHERE key IN ({})",
                self.placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
            for k in chunk {
                q = q.bind(k.as_str());
            }
            found.extend(
                q.fetch_all(self.pool())
                    .await
                    .context(|| "reading package versions".into())?,
            );
        }
        wanted.extend(found.iter().map(|(id, _)| *id));
        wanted.sort_unstable();
        wanted.dedup();
        if let Ok(mut cache) = self.package_ids.lock() {
            if cache.len() + found.len() > PACKAGE_ID_CACHE_LIMIT {
                cache.clear();
            }
            cache.extend(found.into_iter().map(|(id, key)| (key, id)));
        }
        Ok(wanted)
    }

    /// Stores heartbeats (reports without an inventory) in one transaction, a few statements for
    /// the whole batch: the server gathers concurrent heartbeats into one call (group commit).
    /// Per heartbeat: `Duplicate` when its key was stored before, `Refused` (nothing stored) when
    /// the host is revoked, `NeedInventory` (nothing stored) when the host's stored inventory has
    /// another digest, else `Heartbeat` (last-seen updated).
    pub async fn heartbeats(
        &self,
        beats: &[Heartbeat],
        now: &str,
    ) -> Result<Vec<HeartbeatOutcome>, StoreError> {
        if beats.is_empty() {
            return Ok(Vec::new());
        }
        let (_writer, mut tx) = self.begin().await?;
        let new = self
            .record_reports(
                &mut tx,
                "heartbeat",
                beats
                    .iter()
                    .map(|b| (b.host_id, b.idempotency_key.as_str(), b.digest.as_str())),
                now,
            )
            .await?;
        let mut hosts: Vec<i64> = new.iter().map(|(h, _)| *h).collect();
        hosts.sort_unstable();
        hosts.dedup();
        // Per host: (stored digest, revoked). On PostgreSQL the rows are locked here, in id order
        // (as every writer of several host rows locks them: no deadlock), for the last-seen update.
        let lock = self.host_locks(None);
        let mut stored: HashMap<i64, (Option<String>, bool)> = HashMap::new();
        for chunk in hosts.chunks(KEYS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, inventory_digest, revoked_at FROM host WHERE id IN ({}){lock}",
                self.placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (i64, Option<String>, Option<String>)>(&sql);
            for h in chunk {
                q = q.bind(*h);
            }
            stored.extend(
                q.fetch_all(&mut *tx)
                    .await
                    .context(|| "reading hosts".into())?
                    .into_iter()
                    .map(|(id, digest, revoked)| (id, (digest, revoked.is_some()))),
            );
        }
        let mut results = Vec::with_capacity(beats.len());
        let mut seen_hosts = Vec::new();
        for b in beats {
            let key = (b.host_id, b.idempotency_key.clone());
            let host = stored.get(&b.host_id);
            if !new.contains(&key) {
                results.push(HeartbeatOutcome::Answered(CheckInResult::Duplicate));
            } else if host.is_some_and(|(digest, revoked)| {
                !revoked && digest.as_deref() == Some(b.digest.as_str())
            }) {
                results.push(HeartbeatOutcome::Answered(CheckInResult::Heartbeat));
                seen_hosts.push(b.host_id);
            } else {
                // Not a report after all: its key is freed (for the resend with the inventory).
                sqlx::query(
                    &self.sql("DELETE FROM report WHERE host_id = $1 AND idempotency_key = $2"),
                )
                .bind(b.host_id)
                .bind(b.idempotency_key.as_str())
                .execute(&mut *tx)
                .await
                .context(|| "recording heartbeats".into())?;
                results.push(match host {
                    Some((_, false)) => HeartbeatOutcome::Answered(CheckInResult::NeedInventory),
                    _ => HeartbeatOutcome::Refused,
                });
            }
        }
        seen_hosts.sort_unstable();
        seen_hosts.dedup();
        for chunk in seen_hosts.chunks(KEYS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE host SET last_seen = {} WHERE id IN ({})",
                self.placeholder(1),
                self.placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(now);
            for h in chunk {
                q = q.bind(*h);
            }
            q.execute(&mut *tx)
                .await
                .context(|| "updating last-seen".into())?;
        }
        tx.commit()
            .await
            .context(|| "committing heartbeats".into())?;
        Ok(results)
    }

    /// Records the keys of reports of `kind` (host, idempotency key, digest) received `now`, many
    /// per statement; answers the keys that were new (a key stored before, or twice in `reports`,
    /// is a duplicate: only its first report is new).
    async fn record_reports<'r>(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        kind: &str,
        reports: impl Iterator<Item = (i64, &'r str, &'r str)>,
        now: &str,
    ) -> Result<HashSet<(i64, String)>, StoreError> {
        let rows: Vec<Vec<Value>> = reports
            .map(|(host, key, digest)| {
                vec![
                    Value::Int(host),
                    Value::from(key),
                    Value::from(now),
                    Value::from(kind),
                    Value::from(digest),
                ]
            })
            .collect();
        let columns = [
            "host_id",
            "idempotency_key",
            "received_at",
            "kind",
            "digest",
        ];
        let mut new = HashSet::new();
        for chunk in rows.chunks(KEYS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO report {} ON CONFLICT DO NOTHING RETURNING host_id, idempotency_key",
                crate::batch::values_clause(&columns, chunk.len(), self.backend())
            );
            let flat: Vec<Value> = chunk.iter().flatten().cloned().collect();
            for r in crate::batch::bind_all(sqlx::query(&sql), &flat)
                .fetch_all(&mut **tx)
                .await
                .context(|| format!("recording {kind} reports"))?
            {
                let host: i64 = r
                    .try_get(0)
                    .context(|| format!("recording {kind} reports"))?;
                let key: String = r
                    .try_get(1)
                    .context(|| format!("recording {kind} reports"))?;
                new.insert((host, key));
            }
        }
        Ok(new)
    }

    /// Removes the report keys received before `before` (RFC 3339), in batches of 10,000 (each its
    /// own short transaction: check-ins are not held up); answers how many. A report resent after
    /// its key was removed is taken as a new report (agents resend within minutes or hours, the
    /// retention is days).
    pub async fn prune_reports(&self, before: &str) -> Result<u64, StoreError> {
        let mut removed = 0;
        loop {
            let (_writer, mut tx) = self.begin().await?;
            let n = sqlx::query(&self.sql(
                "DELETE FROM report WHERE (host_id, idempotency_key) IN \
                 (SELECT host_id, idempotency_key FROM report WHERE received_at < $1 LIMIT 10000)",
            ))
            .bind(before)
            .execute(&mut *tx)
            .await
            .context(|| "removing old report keys".into())?
            .rows_affected();
            tx.commit()
                .await
                .context(|| "committing the removal of report keys".into())?;
            removed += n;
            if n < 10_000 {
                return Ok(removed);
            }
        }
    }

    /// Stores one check-in in one transaction: the report's idempotency key (a key seen before
    /// answers `Duplicate` and changes nothing), and with an inventory the host's package set —
    /// versions interned once for the whole fleet, the appeared/disappeared history, the host's
    /// OS and digest. A heartbeat whose digest is not the stored one changes nothing and answers
    /// `NeedInventory`.
    pub async fn check_in(
        &self,
        host_id: i64,
        idempotency_key: &str,
        digest: &str,
        inventory: Option<&InventoryView<'_>>,
        now: &str,
    ) -> Result<CheckInOutcome, StoreError> {
        let outcome = |result| CheckInOutcome {
            result,
            appeared: 0,
            disappeared: 0,
            inventory_version: 0,
        };
        let Some(inventory) = inventory else {
            let beat = Heartbeat {
                host_id,
                idempotency_key: idempotency_key.to_owned(),
                digest: digest.to_owned(),
            };
            return match self.heartbeats(std::slice::from_ref(&beat), now).await?[0] {
                HeartbeatOutcome::Answered(result) => Ok(outcome(result)),
                HeartbeatOutcome::Refused => Err(StoreError::new(format!(
                    "host {host_id} is revoked or unknown"
                ))),
            };
        };
        let entry = self
            .new_inventory(host_id, idempotency_key, digest, inventory)
            .await?;
        let mut outcomes = self
            .check_in_inventories(std::slice::from_ref(&entry), now)
            .await?;
        Ok(outcomes.remove(0))
    }

    /// An inventory check-in ready for [`Store::check_in_inventories`]: its package versions
    /// interned (outside the batch's transaction: see [`Store::intern_packages`]), its head
    /// serialized.
    pub async fn new_inventory(
        &self,
        host_id: i64,
        idempotency_key: &str,
        digest: &str,
        inventory: &InventoryView<'_>,
    ) -> Result<NewInventory, StoreError> {
        let packages = self.intern_packages(inventory).await?;
        let doc = &inventory.head;
        Ok(NewInventory {
            host_id,
            idempotency_key: idempotency_key.to_owned(),
            digest: digest.to_owned(),
            packages,
            head: serde_json::to_string(doc).expect("an inventory serializes"),
            os: doc.os.display_name(),
            distro: doc.os.release.as_ref().map(|r| r.distro.id().to_owned()),
            release: doc.os.release.as_ref().map(|r| r.release.clone()),
        })
    }

    /// Stores inventory check-ins in one transaction (group commit: the server gathers the
    /// concurrent ones), a few statements for the whole batch; the outcome of each, in the order
    /// given. Per check-in: its report key (a key stored before answers `Duplicate` and changes
    /// nothing), the host's package set diffed and replaced (shared with every host holding
    /// exactly those versions), the host row (inventory version + 1), one package change row
    /// (a first inventory names its set instead of listing it). Two inventories of one host in a
    /// batch are stored in order, the second diffed against the first. Host rows are locked in id
    /// order on PostgreSQL (as every writer of several host rows locks them). A host that does not
    /// exist fails the batch.
    pub async fn check_in_inventories(
        &self,
        entries: &[NewInventory],
        now: &str,
    ) -> Result<Vec<CheckInOutcome>, StoreError> {
        let mut out: Vec<CheckInOutcome> = entries
            .iter()
            .map(|_| CheckInOutcome {
                result: CheckInResult::Duplicate,
                appeared: 0,
                disappeared: 0,
                inventory_version: 0,
            })
            .collect();
        if entries.is_empty() {
            return Ok(out);
        }
        let (_writer, mut tx) = self.begin().await?;
        // Report keys: the entries whose key is new (the first of two alike in the batch).
        let mut fresh = self
            .record_reports(
                &mut tx,
                "inventory",
                entries
                    .iter()
                    .map(|e| (e.host_id, e.idempotency_key.as_str(), e.digest.as_str())),
                now,
            )
            .await?;
        let stored: Vec<usize> = (0..entries.len())
            .filter(|&n| fresh.remove(&(entries[n].host_id, entries[n].idempotency_key.clone())))
            .collect();
        if stored.is_empty() {
            return Ok(out);
        }
        // The hosts' current sets, their rows locked (two inventories of one host, e.g. a retry
        // racing its original through another server, must not diff against the same old set).
        let mut hosts: Vec<i64> = stored.iter().map(|&n| entries[n].host_id).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let lock = self.host_locks(Some("h"));
        let sql = format!(
            "SELECT h.id, s.set_id FROM host h LEFT JOIN host_package_set s ON s.host_id = h.id \
             WHERE h.id IN ({}){lock}",
            self.json_id_list(1)
        );
        let current_sets: HashMap<i64, Option<i64>> = sqlx::query_as(&self.sql(&sql))
            .bind(ids_json(&hosts))
            .fetch_all(&mut *tx)
            .await
            .context(|| "reading the hosts' packages".into())?
            .into_iter()
            .collect();
        if let Some(missing) = hosts.iter().find(|h| !current_sets.contains_key(h)) {
            return Err(StoreError::new(format!(
                "updating host {missing}: no such host"
            )));
        }
        // Per stored entry in order: what it replaces (the host's previous entry in this batch,
        // else its stored set) and the round it is written in (its host's how-manieth).
        struct Step {
            n: usize,
            round: usize,
            /// The host's stored set (for its first entry in the batch).
            previous_set: Option<i64>,
            /// The host's previous entry in this batch (a position in `steps`).
            prior: Option<usize>,
            appeared: Vec<i64>,
            disappeared: Vec<i64>,
            /// Position in the lists to intern (None: the set stays).
            intern: Option<usize>,
        }
        // Host → its last entry so far (a position in `steps`).
        let mut latest: HashMap<i64, usize> = HashMap::new();
        let mut to_intern: Vec<&[i64]> = Vec::new();
        let mut steps: Vec<Step> = Vec::with_capacity(stored.len());
        for &n in &stored {
            let e = &entries[n];
            let prior = latest.get(&e.host_id).copied();
            let (round, previous_set, current) = match prior {
                Some(p) => (
                    steps[p].round + 1,
                    None,
                    Arc::from(entries[steps[p].n].packages.as_slice()),
                ),
                None => {
                    let set = current_sets[&e.host_id];
                    let ids = match set {
                        Some(set) => self.package_set(set).await?,
                        None => Arc::from(Vec::new()),
                    };
                    (0, set, ids)
                }
            };
            let (appeared, disappeared) = sorted_difference(&e.packages, &current);
            // The set stays when nothing changed and the host had one.
            let had_set = prior.is_some() || previous_set.is_some();
            let unchanged = had_set && appeared.is_empty() && disappeared.is_empty();
            let intern = (!unchanged).then(|| {
                to_intern.push(&e.packages);
                to_intern.len() - 1
            });
            latest.insert(e.host_id, steps.len());
            steps.push(Step {
                n,
                round,
                previous_set,
                prior,
                appeared,
                disappeared,
                intern,
            });
        }
        let interned = self
            .package_sets
            .intern_many(self, &mut tx, &to_intern)
            .await?;
        // The set each step leaves the host with (steps are in order: a prior one comes first).
        let mut set_after: Vec<Option<i64>> = Vec::with_capacity(steps.len());
        for step in &steps {
            let after = match (step.intern, step.prior) {
                (Some(i), _) => Some(interned[i].id),
                (None, Some(p)) => set_after[p],
                (None, None) => step.previous_set,
            };
            set_after.push(after);
        }
        let rounds = steps.iter().map(|s| s.round).max().unwrap_or(0) + 1;
        for round in 0..rounds {
            let in_round: Vec<usize> = (0..steps.len())
                .filter(|&i| steps[i].round == round)
                .collect();
            // The sets that changed.
            let set_rows: Vec<Vec<Value>> = in_round
                .iter()
                .filter(|&&i| steps[i].intern.is_some())
                .filter_map(|&i| {
                    set_after[i]
                        .map(|set| vec![Value::Int(entries[steps[i].n].host_id), Value::Int(set)])
                })
                .collect();
            self.insert_rows_then(
                &mut tx,
                "host_package_set",
                &["host_id", "set_id"],
                &set_rows,
                " ON CONFLICT (host_id) DO UPDATE SET set_id = excluded.set_id",
            )
            .await?;
            // The host rows, one statement per chunk.
            let mut versions: HashMap<i64, i64> = HashMap::new();
            let columns = ["hid", "at", "os", "distro", "rel", "digest", "doc", "n"];
            for chunk in in_round.chunks(KEYS_PER_STATEMENT) {
                let values: Vec<Value> = chunk
                    .iter()
                    .flat_map(|&i| {
                        let e = &entries[steps[i].n];
                        [
                            Value::Int(e.host_id),
                            Value::from(now),
                            Value::from(e.os.clone()),
                            Value::from(e.distro.clone()),
                            Value::from(e.release.clone()),
                            Value::from(e.digest.as_str()),
                            Value::from(e.head.as_str()),
                            Value::Int(e.packages.len() as i64),
                        ]
                    })
                    .collect();
                let clause = crate::batch::values_clause(&columns, chunk.len(), self.backend());
                let (names, rows) = clause
                    .split_once(" VALUES ")
                    .expect("values_clause writes VALUES");
                let sql = format!(
                    "WITH v{names} AS (VALUES {rows}) UPDATE host SET last_seen = v.at, os = v.os, \
                     distro = v.distro, release = v.rel, inventory_digest = v.digest, \
                     inventory_at = v.at, inventory_doc = v.doc, \
                     inventory_version = inventory_version + 1, view_version = view_version + 1, \
                     package_count = v.n FROM v WHERE host.id = v.hid \
                     RETURNING id, inventory_version"
                );
                let returned = crate::batch::bind_all(sqlx::query(&sql), &values)
                    .fetch_all(&mut *tx)
                    .await
                    .context(|| "updating the hosts".into())?;
                for r in returned {
                    let id: i64 = r.try_get(0).context(|| "updating the hosts".into())?;
                    let version: i64 = r.try_get(1).context(|| "updating the hosts".into())?;
                    versions.insert(id, version);
                }
            }
            let mut change_rows: Vec<Vec<Value>> = Vec::new();
            for &i in &in_round {
                let step = &steps[i];
                let e = &entries[step.n];
                let version = *versions.get(&e.host_id).ok_or_else(|| {
                    StoreError::new(format!("updating host {}: no such host", e.host_id))
                })?;
                out[step.n] = CheckInOutcome {
                    result: CheckInResult::Stored,
                    appeared: step.appeared.len(),
                    disappeared: step.disappeared.len(),
                    inventory_version: version,
                };
                if step.appeared.is_empty() && step.disappeared.is_empty() {
                    continue;
                }
                // The first inventory: everything in its set appeared (named by the set, not
                // listed).
                let appeared_set = match step.previous_set {
                    None if step.round == 0 => set_after[i],
                    _ => None,
                };
                change_rows.push(vec![
                    Value::Int(e.host_id),
                    Value::Int(version),
                    Value::from(now),
                    Value::from(if appeared_set.is_some() {
                        "[]".to_owned()
                    } else {
                        ids_json(&step.appeared)
                    }),
                    Value::from(ids_json(&step.disappeared)),
                    Value::MaybeInt(appeared_set),
                ]);
            }
            self.insert_rows(
                &mut tx,
                "package_change",
                &[
                    "host_id",
                    "inventory_version",
                    "changed_at",
                    "appeared",
                    "disappeared",
                    "appeared_set",
                ],
                &change_rows,
            )
            .await?;
        }
        tx.commit()
            .await
            .context(|| "committing the inventories".into())?;
        for interned in interned {
            self.package_sets.committed(interned);
        }
        Ok(out)
    }
}
