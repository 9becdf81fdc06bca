//! Check-ins: package versions interned once (ids cached per process), a host's package set and
//! its change row diffed and written in one transaction with the idempotency key, and heartbeats
//! stored in batches.

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
    async fn intern_packages(&self, inventory: &InventoryView<'_>) -> Result<Vec<i64>, StoreError> {
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
        let mut new: HashSet<(i64, String)> = HashSet::new();
        // Columns per row: 5; well under the parameter limits.
        for chunk in beats.chunks(1000) {
            let mut sql = String::from(
                "INSERT INTO report (host_id, idempotency_key, received_at, kind, digest) VALUES ",
            );
            for (i, _) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let n = i * 4;
                sql.push_str(&format!(
                    "({}, {}, {}, 'heartbeat', {})",
                    self.placeholder(n + 1),
                    self.placeholder(n + 2),
                    self.placeholder(n + 3),
                    self.placeholder(n + 4)
                ));
            }
            sql.push_str(" ON CONFLICT DO NOTHING RETURNING host_id, idempotency_key");
            let mut q = sqlx::query_as::<_, (i64, String)>(&sql);
            for b in chunk {
                q = q
                    .bind(b.host_id)
                    .bind(b.idempotency_key.as_str())
                    .bind(now)
                    .bind(b.digest.as_str());
            }
            new.extend(
                q.fetch_all(&mut *tx)
                    .await
                    .context(|| "recording heartbeats".into())?,
            );
        }
        let mut hosts: Vec<i64> = new.iter().map(|(h, _)| *h).collect();
        hosts.sort_unstable();
        hosts.dedup();
        // Per host: (stored digest, revoked). On PostgreSQL the rows are locked here, in id order
        // (as every writer of several host rows locks them: no deadlock), for the last-seen update.
        let lock = match self.backend() {
            crate::Backend::Postgres => " ORDER BY id FOR UPDATE",
            crate::Backend::Sqlite => "",
        };
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
        let wanted = self.intern_packages(inventory).await?;
        let (_writer, mut tx) = self.begin().await?;
        let inserted = sqlx::query(&self.sql(
            "INSERT INTO report (host_id, idempotency_key, received_at, kind, digest) \
             VALUES ($1, $2, $3, 'inventory', $4) ON CONFLICT DO NOTHING",
        ))
        .bind(host_id)
        .bind(idempotency_key)
        .bind(now)
        .bind(digest)
        .execute(&mut *tx)
        .await
        .context(|| "recording the report".into())?;
        if inserted.rows_affected() == 0 {
            return Ok(outcome(CheckInResult::Duplicate));
        }

        // Two inventories of one host (a retry racing its original through another server) must
        // not diff against the same old set: on PostgreSQL the host row is locked until commit
        // (SQLite has one writer anyway).
        let lock = match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE OF h",
            crate::Backend::Sqlite => "",
        };
        let current_set: Option<i64> = sqlx::query_scalar::<_, Option<i64>>(&self.sql(&format!(
            "SELECT s.set_id FROM host h LEFT JOIN host_package_set s ON s.host_id = h.id \
             WHERE h.id = $1{lock}"
        )))
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await
        .context(|| "reading the host's packages".into())?
        .flatten();
        let current: Arc<[i64]> = match current_set {
            Some(set) => self.package_set(set).await?,
            None => Arc::from(Vec::new()),
        };
        let (appeared, disappeared) = sorted_difference(&wanted, &current);
        // The host's set: shared with every host holding exactly these versions (the same as
        // before when nothing appeared or disappeared).
        let interned = match current_set {
            Some(_) if appeared.is_empty() && disappeared.is_empty() => None,
            _ => Some(self.package_sets.intern(self, &mut tx, &wanted).await?),
        };
        if let Some(interned) = interned.as_ref().filter(|i| current_set != Some(i.id)) {
            sqlx::query(&self.sql(
                "INSERT INTO host_package_set (host_id, set_id) VALUES ($1, $2) \
                 ON CONFLICT (host_id) DO UPDATE SET set_id = excluded.set_id",
            ))
            .bind(host_id)
            .bind(interned.id)
            .execute(&mut *tx)
            .await
            .context(|| "storing the host's packages".into())?;
        }
        let doc = &inventory.head;
        let os = doc.os.display_name();
        let inventory_version: i64 = sqlx::query_scalar(&self.sql(
            "UPDATE host SET last_seen = $2, os = $3, distro = $4, release = $5, inventory_digest = $6, \
             inventory_at = $2, inventory_doc = $7, inventory_version = inventory_version + 1, view_version = view_version + 1, \
             package_count = $8 WHERE id = $1 \
             RETURNING inventory_version",
        ))
        .bind(host_id)
        .bind(now)
        .bind(os)
        .bind(doc.os.release.as_ref().map(|r| r.distro.id()))
        .bind(doc.os.release.as_ref().map(|r| r.release.clone()))
        .bind(digest)
        .bind(serde_json::to_string(doc).expect("an inventory serializes"))
        .bind(wanted.len() as i64)
        .fetch_one(&mut *tx)
        .await
        .context(|| format!("updating host {host_id}"))?;
        if !appeared.is_empty() || !disappeared.is_empty() {
            sqlx::query(&self.sql(
                "INSERT INTO package_change (host_id, inventory_version, changed_at, appeared, \
                 disappeared) VALUES ($1, $2, $3, $4, $5)",
            ))
            .bind(host_id)
            .bind(inventory_version)
            .bind(now)
            .bind(ids_json(&appeared))
            .bind(ids_json(&disappeared))
            .execute(&mut *tx)
            .await
            .context(|| "recording the package changes".into())?;
        }
        tx.commit()
            .await
            .context(|| "committing the inventory".into())?;
        if let Some(interned) = interned {
            self.package_sets.committed(interned);
        }
        Ok(CheckInOutcome {
            result: CheckInResult::Stored,
            appeared: appeared.len(),
            disappeared: disappeared.len(),
            inventory_version,
        })
    }
}
