//! The fleet on the store: API users, enrollment tokens, hosts and their credentials (digests
//! only), check-ins with idempotency keys, package versions stored once and pointed at by hosts,
//! package history per host, and the findings computed for each host. Every write that answers an
//! agent is one transaction, committed before the answer.

use std::collections::{BTreeMap, HashMap, HashSet};

use patchwarden_model::fleet::{AffectedHost, CheckInResult, FleetSummary, HostSummary, Role};
use patchwarden_model::{InstalledPackage, Inventory, InventoryView, PackageManager, PackageRef};
use sqlx::Row;

use crate::batch::Value;
use crate::{Context, Store, StoreError};

/// An API user found by its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiUser {
    pub id: i64,
    pub name: String,
    pub role: Role,
}

/// Why an enrollment token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrollRefusal {
    Unknown,
    Expired,
    UsedUp,
}

impl std::fmt::Display for EnrollRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EnrollRefusal::Unknown => "unknown enrollment token",
            EnrollRefusal::Expired => "the enrollment token has expired",
            EnrollRefusal::UsedUp => "the enrollment token has no uses left",
        })
    }
}

/// A host as its credential identifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostCredential {
    pub id: i64,
    pub hostname: String,
    pub revoked: bool,
}

/// What a check-in changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckInOutcome {
    pub result: CheckInResult,
    pub appeared: usize,
    pub disappeared: usize,
    /// Which inventory of the host this is (counts up; 0 when none was stored).
    pub inventory_version: i64,
}

/// One heartbeat of a batch ([`Store::heartbeats`]).
#[derive(Clone, Debug)]
pub struct Heartbeat {
    pub host_id: i64,
    pub idempotency_key: String,
    pub digest: String,
}

/// What one heartbeat of a batch came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    Answered(CheckInResult),
    /// The host's credential was revoked (or no such host): nothing was stored. Checked in
    /// the batch's own transaction, so a server may skip the credential lookup for heartbeats
    /// of hosts it knows and revocation still holds at once, whichever server revoked.
    Refused,
}

/// One finding to store for a host (the document is the scan report's finding).
#[derive(Clone, Debug)]
pub struct FindingRow {
    pub package: String,
    pub advisory_id: String,
    pub cves: Vec<String>,
    pub state: patchwarden_model::FindingState,
    pub severity: patchwarden_model::Severity,
    pub kev: bool,
    pub overdue: bool,
    pub risk: f64,
    pub doc: String,
}

/// Filters for [`Store::hosts`].
#[derive(Clone, Debug, Default)]
pub struct HostFilter {
    /// Substring of the OS name (`Debian`, `AlmaLinux 9`), case-insensitive.
    pub os: Option<String>,
    /// `key=value` labels the host must all carry (groups are the label `group`).
    pub labels: Vec<(String, String)>,
    /// Only hosts seen (true) or not seen (false) within the staleness limit.
    pub stale: Option<bool>,
}

/// Filters for [`Store::fleet_findings`].
#[derive(Clone, Debug, Default)]
pub struct FindingFilter {
    /// Only this severity and above.
    pub min_severity: Option<patchwarden_model::Severity>,
    pub kev: bool,
    pub overdue: bool,
    pub host_id: Option<i64>,
    pub limit: Option<i64>,
}

fn manager_name(manager: PackageManager) -> &'static str {
    match manager {
        PackageManager::Dpkg => "dpkg",
        PackageManager::Rpm => "rpm",
        PackageManager::Apk => "apk",
    }
}

/// A package version's lookup key (manager, name, version, arch, source name and version joined by
/// tabs), written into `key` (one buffer reused for a whole inventory).
fn write_package_key(p: &PackageRef<'_>, key: &mut String) {
    key.clear();
    for (i, part) in [
        manager_name(p.manager),
        &p.name,
        &p.version,
        &p.arch,
        &p.source_name,
        &p.source_version,
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            key.push('\t');
        }
        key.push_str(part);
    }
}

fn labels_json(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).expect("labels serialize")
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Package version ids kept in memory at most (about 100 bytes each); beyond, the cache starts over.
const PACKAGE_ID_CACHE_LIMIT: usize = 2_000_000;

/// Names per statement for key lookups.
const KEYS_PER_STATEMENT: usize = 500;

impl Store {
    /// Number of API users (the server creates the first admin when there is none).
    pub async fn user_count(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM api_user")
            .fetch_one(self.pool())
            .await
            .context(|| "counting users".into())
    }

    pub async fn create_user(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(&self.sql(
            "INSERT INTO api_user (name, role, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        ))
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(patchwarden_model::now_rfc3339())
        .fetch_one(self.pool())
        .await
        .context(|| format!("creating user {name}"))
    }

    /// The user whose token has this digest, unless revoked.
    pub async fn user_by_token(&self, token_hash: &str) -> Result<Option<ApiUser>, StoreError> {
        let row: Option<(i64, String, String)> = sqlx::query_as(&self.sql(
            "SELECT id, name, role FROM api_user WHERE token_hash = $1 AND revoked_at IS NULL",
        ))
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await
        .context(|| "looking up a user token".into())?;
        Ok(row.and_then(|(id, name, role)| {
            Some(ApiUser {
                id,
                name,
                role: role.parse().ok()?,
            })
        }))
    }

    pub async fn create_enroll_token(
        &self,
        token_hash: &str,
        expires_at: &str,
        uses: i64,
        labels: &BTreeMap<String, String>,
        created_by: &str,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar(&self.sql(
            "INSERT INTO enroll_token (token_hash, created_at, expires_at, uses_left, labels, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        ))
        .bind(token_hash)
        .bind(patchwarden_model::now_rfc3339())
        .bind(expires_at)
        .bind(uses)
        .bind(labels_json(labels))
        .bind(created_by)
        .fetch_one(self.pool())
        .await
        .context(|| "creating an enrollment token".into())
    }

    /// Spends one use of the enrollment token and creates the host with its credential digest, in
    /// one transaction; the token's labels become the host's.
    pub async fn enroll_host(
        &self,
        token_hash: &str,
        now: &str,
        hostname: &str,
        machine_id: Option<&str>,
        secret_hash: &str,
    ) -> Result<Result<(i64, BTreeMap<String, String>), EnrollRefusal>, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let spent: Option<String> = sqlx::query_scalar(&self.sql(
            "UPDATE enroll_token SET uses_left = uses_left - 1 \
             WHERE token_hash = $1 AND uses_left > 0 AND expires_at > $2 RETURNING labels",
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .context(|| "spending an enrollment token".into())?;
        let Some(labels) = spent else {
            let row: Option<(String, i64)> = sqlx::query_as(
                &self.sql("SELECT expires_at, uses_left FROM enroll_token WHERE token_hash = $1"),
            )
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await
            .context(|| "reading an enrollment token".into())?;
            return Ok(Err(match row {
                None => EnrollRefusal::Unknown,
                Some((expires, _)) if expires.as_str() <= now => EnrollRefusal::Expired,
                Some(_) => EnrollRefusal::UsedUp,
            }));
        };
        let id: i64 = sqlx::query_scalar(&self.sql(
            "INSERT INTO host (hostname, machine_id, secret_hash, labels, enrolled_at, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        ))
        .bind(hostname)
        .bind(machine_id)
        .bind(secret_hash)
        .bind(&labels)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .context(|| format!("enrolling {hostname}"))?;
        tx.commit()
            .await
            .context(|| "committing the enrollment".into())?;
        Ok(Ok((id, parse_labels(&labels))))
    }

    /// The host whose credential has this digest.
    pub async fn host_by_secret(
        &self,
        secret_hash: &str,
    ) -> Result<Option<HostCredential>, StoreError> {
        let row: Option<(i64, String, Option<String>)> = sqlx::query_as(
            &self.sql("SELECT id, hostname, revoked_at FROM host WHERE secret_hash = $1"),
        )
        .bind(secret_hash)
        .fetch_optional(self.pool())
        .await
        .context(|| "looking up a host credential".into())?;
        Ok(row.map(|(id, hostname, revoked)| HostCredential {
            id,
            hostname,
            revoked: revoked.is_some(),
        }))
    }

    /// Revokes a host's credential; returns whether the host exists.
    pub async fn revoke_host(&self, host_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            &self.sql("UPDATE host SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL"),
        )
        .bind(host_id)
        .bind(patchwarden_model::now_rfc3339())
        .execute(self.pool())
        .await
        .context(|| format!("revoking host {host_id}"))?;
        Ok(done.rows_affected() > 0 || self.host(host_id, 0).await?.is_some())
    }

    /// Sets labels on a host (a value of `""` removes the label).
    pub async fn set_host_labels(
        &self,
        host_id: i64,
        changes: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let current: Option<String> =
            sqlx::query_scalar(&self.sql("SELECT labels FROM host WHERE id = $1"))
                .bind(host_id)
                .fetch_optional(&mut *tx)
                .await
                .context(|| format!("reading host {host_id}"))?;
        let Some(current) = current else {
            return Ok(false);
        };
        let mut labels = parse_labels(&current);
        for (k, v) in changes {
            if v.is_empty() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), v.clone());
            }
        }
        sqlx::query(&self.sql("UPDATE host SET labels = $2 WHERE id = $1"))
            .bind(host_id)
            .bind(labels_json(&labels))
            .execute(&mut *tx)
            .await
            .context(|| format!("labelling host {host_id}"))?;
        tx.commit().await.context(|| "committing labels".into())?;
        Ok(true)
    }

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
        // Per host: (stored digest, revoked).
        let mut stored: HashMap<i64, (Option<String>, bool)> = HashMap::new();
        for chunk in hosts.chunks(KEYS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, inventory_digest, revoked_at FROM host WHERE id IN ({})",
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
        let current: Vec<i64> = match sqlx::query_scalar::<_, Option<String>>(&self.sql(&format!(
            "SELECT s.package_ids FROM host h LEFT JOIN host_package_set s ON s.host_id = h.id \
             WHERE h.id = $1{lock}"
        )))
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await
        .context(|| "reading the host's packages".into())?
        .flatten()
        {
            Some(text) => {
                let mut ids = parse_ids(&text, host_id)?;
                ids.sort_unstable();
                ids.dedup();
                ids
            }
            None => Vec::new(),
        };
        let (appeared, disappeared) = sorted_difference(&wanted, &current);
        sqlx::query(&self.sql(
            "INSERT INTO host_package_set (host_id, package_ids) VALUES ($1, $2) \
             ON CONFLICT (host_id) DO UPDATE SET package_ids = excluded.package_ids",
        ))
        .bind(host_id)
        .bind(ids_json(&wanted))
        .execute(&mut *tx)
        .await
        .context(|| "storing the host's packages".into())?;
        let doc = &inventory.head;
        let os = doc
            .os
            .release
            .as_ref()
            .map(|r| r.display.clone())
            .or_else(|| doc.os.pretty_name.clone());
        let inventory_version: i64 = sqlx::query_scalar(&self.sql(
            "UPDATE host SET last_seen = $2, os = $3, distro = $4, release = $5, inventory_digest = $6, \
             inventory_at = $2, inventory_doc = $7, inventory_version = inventory_version + 1, \
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
        Ok(CheckInOutcome {
            result: CheckInResult::Stored,
            appeared: appeared.len(),
            disappeared: disappeared.len(),
            inventory_version,
        })
    }

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

    async fn host_rows(
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
        let counts = self.finding_counts(only).await?;
        let cutoff = patchwarden_model::rfc3339(unix_now() - stale_after_secs);
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
                findings: counts.get(&id).cloned().unwrap_or_default(),
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

    /// Open findings per host: counts by severity, `kev`, `overdue` and `total`.
    async fn finding_counts(
        &self,
        only: Option<i64>,
    ) -> Result<HashMap<i64, BTreeMap<String, i64>>, StoreError> {
        let text = format!(
            "SELECT host_id, severity, CAST(SUM(kev) AS BIGINT), CAST(SUM(overdue) AS BIGINT), COUNT(*) \
             FROM host_finding {} GROUP BY host_id, severity",
            if only.is_some() { "WHERE host_id = $1" } else { "" }
        );
        let sql = self.sql(&text);
        let mut q = sqlx::query_as::<_, (i64, String, i64, i64, i64)>(&sql);
        if let Some(id) = only {
            q = q.bind(id);
        }
        let rows = q
            .fetch_all(self.pool())
            .await
            .context(|| "counting findings".into())?;
        let mut out: HashMap<i64, BTreeMap<String, i64>> = HashMap::new();
        for (host, severity, kev, overdue, n) in rows {
            let m = out.entry(host).or_default();
            *m.entry(severity).or_default() += n;
            *m.entry("kev".into()).or_default() += kev;
            *m.entry("overdue".into()).or_default() += overdue;
            *m.entry("total".into()).or_default() += n;
        }
        Ok(out)
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

    /// Replaces the list of hosts that should exist (`source` says where it came from).
    pub async fn replace_expected_assets(
        &self,
        assets: &[(String, Vec<String>)],
        source: &str,
    ) -> Result<(), StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        sqlx::query("DELETE FROM expected_asset")
            .execute(&mut *tx)
            .await
            .context(|| "clearing the asset list".into())?;
        let now = patchwarden_model::now_rfc3339();
        let mut seen = HashSet::new();
        let rows: Vec<Vec<Value>> = assets
            .iter()
            .filter(|(name, _)| seen.insert(name.clone()))
            .map(|(name, groups)| {
                vec![
                    Value::from(name.as_str()),
                    Value::from(source),
                    Value::from(serde_json::to_string(groups).expect("groups serialize")),
                    Value::from(now.as_str()),
                ]
            })
            .collect();
        self.insert_rows(
            &mut tx,
            "expected_asset",
            &["name", "source", "groups", "imported_at"],
            &rows,
        )
        .await?;
        tx.commit()
            .await
            .context(|| "committing the asset list".into())?;
        Ok(())
    }

    /// The fleet at a glance; expected assets match hosts by hostname (or its first label).
    pub async fn fleet_summary(&self, stale_after_secs: i64) -> Result<FleetSummary, StoreError> {
        let hosts = self.hosts(&HostFilter::default(), stale_after_secs).await?;
        let mut summary = FleetSummary {
            hosts: hosts.len() as i64,
            ..Default::default()
        };
        let mut names = HashSet::new();
        for h in &hosts {
            summary.stale_hosts += h.stale as i64;
            summary.revoked_hosts += h.revoked as i64;
            *summary
                .by_os
                .entry(h.os.clone().unwrap_or_else(|| "unknown".into()))
                .or_default() += 1;
            for (k, v) in &h.findings {
                *summary.findings.entry(k.clone()).or_default() += v;
            }
            names.insert(h.hostname.to_lowercase());
            if let Some(short) = h.hostname.split('.').next() {
                names.insert(short.to_lowercase());
            }
        }
        let expected: Vec<String> =
            sqlx::query_scalar("SELECT name FROM expected_asset ORDER BY name")
                .fetch_all(self.pool())
                .await
                .context(|| "reading the asset list".into())?;
        summary.never_enrolled = expected
            .into_iter()
            .filter(|name| {
                let lower = name.to_lowercase();
                let short = lower.split('.').next().unwrap_or(&lower).to_owned();
                !names.contains(&lower) && !names.contains(&short)
            })
            .collect();
        Ok(summary)
    }

    /// When each package version appeared and disappeared on a host: (name, version, appeared,
    /// disappeared), by name, oldest first.
    pub async fn package_history(
        &self,
        host_id: i64,
    ) -> Result<Vec<(String, String, String, Option<String>)>, StoreError> {
        let changes: Vec<(String, String, String)> = sqlx::query_as(&self.sql(
            "SELECT changed_at, appeared, disappeared FROM package_change WHERE host_id = $1 \
             ORDER BY inventory_version",
        ))
        .bind(host_id)
        .fetch_all(self.pool())
        .await
        .context(|| format!("reading the package history of host {host_id}"))?;
        // (id, appeared, disappeared) in the order the versions appeared; a version that came
        // back after it had gone gets a second span.
        let mut spans: Vec<(i64, String, Option<String>)> = Vec::new();
        let mut open: HashMap<i64, usize> = HashMap::new();
        for (at, appeared, disappeared) in &changes {
            for id in parse_ids(disappeared, host_id)? {
                if let Some(i) = open.remove(&id) {
                    spans[i].2 = Some(at.clone());
                }
            }
            for id in parse_ids(appeared, host_id)? {
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
    async fn package_versions(
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

/// What is in `new` and not in `old`, and what is in `old` and not in `new` (both ascending).
fn sorted_difference(new: &[i64], old: &[i64]) -> (Vec<i64>, Vec<i64>) {
    let (mut only_new, mut only_old) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    loop {
        match (new.get(i), old.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                only_new.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                only_new.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                only_old.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_new, only_old)
}

/// A list of package-version ids as stored: a JSON array.
fn ids_json(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("integers serialize")
}

pub(crate) fn parse_ids(text: &str, host_id: i64) -> Result<Vec<i64>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::new(format!("the stored package ids of host {host_id}: {e}")))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::sorted_difference;

    #[test]
    fn sorted_difference_agrees_with_set_difference() {
        // Pseudo-random ascending lists (a fixed LCG), compared with HashSet's answer.
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..200 {
            let mut list = |n: u64| {
                let mut v: Vec<i64> = (0..next() % n).map(|_| (next() % 40) as i64).collect();
                v.sort_unstable();
                v.dedup();
                v
            };
            let (new, old) = (list(30), list(30));
            let (appeared, gone) = sorted_difference(&new, &old);
            let set = |v: &[i64]| v.iter().copied().collect::<std::collections::HashSet<_>>();
            let mut want_appeared: Vec<i64> = set(&new).difference(&set(&old)).copied().collect();
            let mut want_gone: Vec<i64> = set(&old).difference(&set(&new)).copied().collect();
            want_appeared.sort_unstable();
            want_gone.sort_unstable();
            assert_eq!(
                (appeared, gone),
                (want_appeared, want_gone),
                "{new:?} {old:?}"
            );
        }
    }
}
