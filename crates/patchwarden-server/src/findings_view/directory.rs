//! The fleet as the findings reader groups it, kept in memory between requests: per host its
//! hostname, labels, OS, revocation, finding set and group; per group (same finding set,
//! first-sighting days, asset and release) its hosts and member list; the summary's counts. A
//! request first reads the store's view stamp (one row: host count, highest id, sum of view
//! versions); when it moved, every host's `view_version` (one narrow read), and then re-reads only
//! the hosts whose version moved — whoever changed them, this server or another sharing the store
//! — so a fleet-wide query costs one row when nothing changed, one pass over integers plus what
//! changed otherwise, never a parse of every host's rows. It does not assemble documents (the
//! view does) nor decide anything about findings.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use patchwarden_model::Inventory;
use patchwarden_store::fleet::ViewRow;
use patchwarden_store::{Store, StoreError};

use super::merge::Member;
use super::{asset_of, by_day, Group};

/// A host as kept: as the findings list shows it (hostname, labels, own finding set), and what
/// the summary counts.
#[derive(Clone, Debug)]
pub(super) struct DirHost {
    pub view_version: i64,
    pub member: Member,
    pub revoked: bool,
    /// `os` as the host list shows it (`OsInfo::display_name`).
    pub os: Option<String>,
    /// Its group's key, when it has findings and an inventory.
    pub group: Option<Arc<str>>,
}

#[derive(Default)]
pub(super) struct Directory {
    pub hosts: HashMap<i64, DirHost>,
    /// Group key → the ids of its hosts.
    group_hosts: HashMap<Arc<str>, BTreeSet<i64>>,
    pub groups: HashMap<Arc<str>, Arc<Group>>,
    /// What the summary counts, kept as hosts come and go: hosts by OS, revoked hosts, and the
    /// hostnames (lowercase, whole and first label) with how many hosts carry each.
    pub by_os: BTreeMap<String, i64>,
    pub revoked: i64,
    pub names: HashMap<String, usize>,
    /// Every host by (hostname, id): lists come out in hostname order without a sort.
    pub by_name: BTreeSet<(Arc<str>, i64)>,
    /// The store's view stamp when this was last brought up to date (`Store::view_stamp`).
    stamp: Option<(i64, i64, i64)>,
}

/// The group of a host (its key and what assembling its documents takes), if it has findings.
pub(super) fn group_of(row: &ViewRow) -> Option<Group> {
    let (set, (head, _)) = (row.set.as_ref()?, row.head.as_ref()?);
    let set = by_day(set);
    let asset = asset_of(&row.labels);
    let os = &head.os;
    let key = format!(
        "{}\t{}\t{:?}\t{}\t{:?}\t{:?}\t{:?}",
        set.set_id,
        set.seen_base,
        set.seen_other,
        os.id,
        os.version_id,
        os.release
            .as_ref()
            .map(|r| (r.distro, &r.release, &r.display)),
        (asset.criticality, asset.internet_facing)
    );
    Some(Group {
        key: key.into(),
        members: vec![member_of(row)],
        set,
        head: Arc::new(head_only(head)),
        asset,
    })
}

/// The inventory reduced to what reading findings needs (the release, end of life).
fn head_only(inv: &Inventory) -> Inventory {
    let mut inv = inv.clone();
    inv.packages = Vec::new();
    inv.stale_processes = Vec::new();
    inv.package_databases = Vec::new();
    inv.platform = None;
    inv
}

/// A host as the findings list shows it.
fn member_of(row: &ViewRow) -> Member {
    Member {
        host_id: row.host_id,
        hostname: row.hostname.as_str().into(),
        labels: Arc::new(row.labels.clone()),
        set: row.set.clone().map(Arc::new),
    }
}

impl Directory {
    /// Brings what is kept up to date with the store: the hosts whose view version moved are
    /// read again, and the groups they left or joined rebuilt.
    pub async fn refresh(&mut self, store: &Store) -> Result<(), StoreError> {
        // Nothing moved since the last refresh: one aggregate instead of every host's version.
        let stamp = store.view_stamp().await?;
        if self.stamp == Some(stamp) {
            return Ok(());
        }
        let versions = store.view_versions().await?;
        let changed: Vec<i64> = versions
            .iter()
            .filter(|(id, v)| self.hosts.get(id).is_none_or(|h| h.view_version != *v))
            .map(|(id, _)| *id)
            .collect();
        let mut dirty: HashSet<Arc<str>> = HashSet::new();
        if versions.len() < self.hosts.len() {
            // Hosts gone from the store (a store replaced under a running server).
            let present: HashSet<i64> = versions.iter().map(|(id, _)| *id).collect();
            let gone: Vec<i64> = self
                .hosts
                .keys()
                .filter(|id| !present.contains(id))
                .copied()
                .collect();
            for id in gone {
                self.forget(id, &mut dirty);
            }
        }
        if !changed.is_empty() {
            for row in store.view_rows(&changed).await? {
                self.put(row, &mut dirty);
            }
        }
        for key in dirty {
            self.rebuild(&key);
        }
        // The stamp read before the versions: a change between the two reads is seen next time.
        self.stamp = Some(stamp);
        Ok(())
    }

    /// Removes a host: from its group and from the summary's counts.
    fn forget(&mut self, id: i64, dirty: &mut HashSet<Arc<str>>) {
        let Some(h) = self.hosts.remove(&id) else {
            return;
        };
        if let Some(key) = h.group {
            if let Some(m) = self.group_hosts.get_mut(&key) {
                m.remove(&id);
            }
            dirty.insert(key);
        }
        self.by_name.remove(&(h.member.hostname.clone(), id));
        self.revoked -= i64::from(h.revoked);
        let os = h.os.unwrap_or_else(|| "unknown".into());
        if let Some(n) = self.by_os.get_mut(&os) {
            *n -= 1;
            if *n == 0 {
                self.by_os.remove(&os);
            }
        }
        for name in name_forms(&h.member.hostname) {
            if let Some(n) = self.names.get_mut(&name) {
                *n -= 1;
                if *n == 0 {
                    self.names.remove(&name);
                }
            }
        }
    }

    fn put(&mut self, row: ViewRow, dirty: &mut HashSet<Arc<str>>) {
        self.forget(row.host_id, dirty);
        let group = group_of(&row);
        let key = group.as_ref().map(|g| g.key.clone());
        if let Some(g) = group {
            self.group_hosts
                .entry(g.key.clone())
                .or_default()
                .insert(row.host_id);
            dirty.insert(g.key.clone());
            // A new group's facts; an existing one's are the same by its key.
            self.groups
                .entry(g.key.clone())
                .or_insert_with(|| Arc::new(g));
        }
        let os = row.head.as_ref().and_then(|(h, _)| h.os.display_name());
        self.revoked += i64::from(row.revoked);
        *self
            .by_os
            .entry(os.clone().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
        for name in name_forms(&row.hostname) {
            *self.names.entry(name).or_default() += 1;
        }
        let member = member_of(&row);
        self.by_name.insert((member.hostname.clone(), row.host_id));
        self.hosts.insert(
            row.host_id,
            DirHost {
                view_version: row.view_version,
                member,
                revoked: row.revoked,
                os,
                group: key,
            },
        );
    }

    /// A group's member list again from its hosts (removed when it has none).
    fn rebuild(&mut self, key: &Arc<str>) {
        let members: Vec<Member> = self
            .group_hosts
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| Some(self.hosts.get(id)?.member.clone()))
            .collect();
        if members.is_empty() {
            self.group_hosts.remove(key);
            self.groups.remove(key);
            return;
        }
        if let Some(g) = self.groups.get_mut(key) {
            *g = Arc::new(Group {
                key: g.key.clone(),
                members,
                set: g.set.clone(),
                head: g.head.clone(),
                asset: g.asset,
            });
        }
    }

    /// Every group.
    pub fn all_groups(&self) -> Vec<Arc<Group>> {
        self.groups.values().cloned().collect()
    }
}

/// The forms of a hostname the asset list is matched against: the whole name and its first label,
/// lowercase (one form when they are the same).
pub(super) fn name_forms(hostname: &str) -> Vec<String> {
    let whole = hostname.to_lowercase();
    let short = whole.split('.').next().unwrap_or(&whole).to_owned();
    if short == whole {
        vec![whole]
    } else {
        vec![whole, short]
    }
}
