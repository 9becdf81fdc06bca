//! The fleet on the store: API users, enrollment tokens, hosts and their credentials (digests
//! only), check-ins with idempotency keys, package versions stored once and pointed at by hosts,
//! package history per host, and the findings computed for each host. Every write that answers an
//! agent is one transaction, committed before the answer.
//!
//! One file per concern: [`users`] (API users, their tokens and administration), [`identity`]
//! (enrollment tokens, enrollment, host credentials, labels),
//! [`checkin`] (check-ins and heartbeats), [`id_lists`] (id lists stored once, shared: finding and
//! package sets), [`package_sets`], [`host_findings`] (what findings are computed from),
//! [`finding_sets`] (findings as keys, sets and changes per host), [`queries`]
//! (hosts, summary, history), [`view_rows`] (what the findings reader keeps, read by change),
//! [`assets`] (the expected-asset list); this file holds the types they share.

mod assets;
mod checkin;
mod finding_sets;
mod host_findings;
mod id_lists;
mod identity;
mod package_sets;
mod queries;
mod users;
mod view_rows;

use std::collections::{BTreeMap, HashMap, HashSet};

use patchwarden_model::fleet::{CheckInResult, HostSummary, Role};
use patchwarden_model::{InstalledPackage, Inventory, InventoryView, PackageManager, PackageRef};
use sqlx::Row;

use crate::batch::Value;
use crate::{Context, Store, StoreError};

pub(crate) use finding_sets::FindingCaches;
pub use finding_sets::{
    EvaluatedFindings, FindingChange, FindingsStored, HostFindingSet, NewFindingKey,
    StoredFindingKey,
};
pub use host_findings::EvaluationInput;
use id_lists::remember;
pub(crate) use id_lists::IdLists;
pub use users::{NewUserRow, UserUpdateOutcome};
pub use view_rows::ViewRow;

/// An API user found by its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiUser {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The admin who created the account.
    pub created_by: Option<i64>,
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

/// One inventory check-in of a batch ([`Store::check_in_inventories`]): owned, its package
/// versions interned ([`Store::new_inventory`]).
#[derive(Clone, Debug)]
pub struct NewInventory {
    pub host_id: i64,
    pub idempotency_key: String,
    pub digest: String,
    /// The ids of its package versions (ascending, no repeats).
    pub packages: Vec<i64>,
    /// The inventory without its packages, as stored (JSON).
    pub head: String,
    /// What the host list shows and filters by: display name, distribution id, release.
    pub os: Option<String>,
    pub distro: Option<String>,
    pub release: Option<String>,
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
    /// What ends a query selecting host rows a transaction is about to write: on PostgreSQL it
    /// locks them in id order (every writer of several host rows — check-ins, heartbeats,
    /// findings, knowledge-base marks — locks them so: no deadlock between them); nothing on
    /// SQLite (one writer). `alias`: the host table's alias in the query, if it has one.
    pub(crate) fn host_locks(&self, alias: Option<&str>) -> String {
        match (self.backend(), alias) {
            (crate::Backend::Sqlite, _) => String::new(),
            (crate::Backend::Postgres, None) => " ORDER BY id FOR UPDATE".into(),
            (crate::Backend::Postgres, Some(a)) => format!(" ORDER BY {a}.id FOR UPDATE OF {a}"),
        }
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
