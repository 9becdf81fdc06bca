//! Reading the fleet's findings (issue 15): documents are assembled when read, from each host's
//! finding set (`patchwarden_findings::fleet`), with the current time — due dates and overdue are
//! always today's. Hosts that hold the same set with the same first sightings, asset facts and
//! release read the same documents, so each such group is assembled once per request and fanned
//! out to its hosts: the host list's counts, the summary, the fleet's findings list (a merge of
//! the hosts' riskiest-first lists, paged) and a CVE's hosts.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use patchwarden_findings::fleet::{FleetError, FleetKnowledge};
use patchwarden_findings::{feed_summaries, ScanOptions};
use patchwarden_model::fleet::{AffectedHost, HostFinding, HostSummary};
use patchwarden_model::{FindingDoc, FindingState, Inventory, Severity};
use patchwarden_risk::policy::Policy;
use patchwarden_risk::Asset;
use patchwarden_store::fleet::HostFindingSet;
use patchwarden_store::{Store, StoreError};

/// The handle (cheap to clone): its own store handle, the fleet's knowledge, the policy, and what
/// it keeps between requests: the hosts' inventories without packages (by inventory version) and
/// each group's documents (good while the fleet's knowledge, the day and the feeds' state stay).
#[derive(Clone)]
pub struct FindingsView {
    store: Store,
    fleet: Arc<FleetKnowledge>,
    policy: Arc<Policy>,
    distro_info_dir: std::path::PathBuf,
    kept: Arc<std::sync::Mutex<Kept>>,
}

#[derive(Default)]
struct Kept {
    heads: HashMap<i64, (i64, Arc<Inventory>)>,
    /// Group key → (validity, documents).
    docs: HashMap<String, (String, Arc<Vec<FindingDoc>>)>,
}

/// Most groups' documents kept.
const KEPT_GROUPS: usize = 2_000;

/// Filters of the fleet's findings list (`GET /v1/findings`).
#[derive(Clone, Debug, Default)]
pub struct FleetFindingFilter {
    /// Only this severity and above.
    pub min_severity: Option<Severity>,
    pub kev: bool,
    pub overdue: bool,
    pub state: Option<FindingState>,
    /// Only findings with a due date at most this many days from today (overdue ones included).
    pub due_within_days: Option<i64>,
    /// `key=value` labels the host must carry (groups are the label `group`).
    pub labels: Vec<(String, String)>,
    pub offset: usize,
    pub limit: usize,
}

/// The asset facts a host's labels give (criticality and exposure feed SSVC and risk).
pub fn asset_of(labels: &BTreeMap<String, String>) -> Asset {
    Asset {
        criticality: labels
            .get("criticality")
            .and_then(|c| c.parse().ok())
            .unwrap_or_default(),
        internet_facing: labels
            .get("internet_facing")
            .is_some_and(|v| v == "true" || v == "yes"),
    }
}

/// Hosts reading the same documents.
struct Group {
    hosts: Vec<i64>,
    docs: Arc<Vec<FindingDoc>>,
}

impl FindingsView {
    pub fn new(
        store: Store,
        fleet: Arc<FleetKnowledge>,
        policy: Arc<Policy>,
        distro_info_dir: std::path::PathBuf,
    ) -> FindingsView {
        FindingsView {
            store,
            fleet,
            policy,
            distro_info_dir,
            kept: Default::default(),
        }
    }

    /// The inventories without packages of these hosts, read only when their version moved.
    async fn heads(&self, only: Option<i64>) -> Result<HashMap<i64, Arc<Inventory>>, StoreError> {
        let versions: Vec<(i64, i64)> = match only {
            Some(id) => self
                .store
                .host_inventory_heads(&[id])
                .await?
                .into_iter()
                .map(|(id, (inv, version))| {
                    self.keep_head(id, version, inv);
                    (id, version)
                })
                .collect(),
            None => self.store.inventory_versions().await?,
        };
        let stale: Vec<i64> = {
            let kept = self.kept.lock().expect("the view's cache");
            versions
                .iter()
                .filter(|(id, v)| kept.heads.get(id).is_none_or(|(kv, _)| kv != v))
                .map(|(id, _)| *id)
                .collect()
        };
        if !stale.is_empty() {
            for (id, (inv, version)) in self.store.host_inventory_heads(&stale).await? {
                self.keep_head(id, version, inv);
            }
        }
        let kept = self.kept.lock().expect("the view's cache");
        Ok(versions
            .iter()
            .filter_map(|(id, _)| kept.heads.get(id).map(|(_, inv)| (*id, inv.clone())))
            .collect())
    }

    fn keep_head(&self, id: i64, version: i64, mut inv: Inventory) {
        // Only what reading findings needs (the release, end of life) is kept.
        inv.packages = Vec::new();
        inv.stale_processes = Vec::new();
        inv.package_databases = Vec::new();
        inv.platform = None;
        if let Ok(mut kept) = self.kept.lock() {
            kept.heads.insert(id, (version, Arc::new(inv)));
        }
    }

    fn options(&self, asset: Asset, now: &str) -> ScanOptions {
        ScanOptions {
            asset,
            policy: (*self.policy).clone(),
            record_history: false,
            now: now.to_owned(),
            distro_info_dir: self.distro_info_dir.clone(),
            ..Default::default()
        }
    }

    /// The findings of the hosts holding a set (all of them, or one), grouped.
    async fn groups(&self, only: Option<i64>) -> Result<Vec<Group>, FleetError> {
        let now = patchwarden_model::now_rfc3339();
        let sets = self.store.host_finding_sets(only).await?;
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = sets.iter().map(|s| s.host_id).collect();
        let labels = self.store.labels_of_hosts(&ids).await?;
        let heads = self.heads(only).await?;
        let feeds = feed_summaries(
            &self.store.feeds().await?,
            &now,
            ScanOptions::default().max_feed_age_days,
        );
        // The documents of a group stay good while the knowledge, the day and the feeds do.
        let validity = format!(
            "{}\t{}\t{:?}",
            self.fleet.generation(),
            now.get(..10).unwrap_or(&now),
            feeds
                .iter()
                .map(|f| (&f.feed, f.age_days, f.stale, &f.last_error, &f.last_success))
                .collect::<Vec<_>>()
        );
        let mut groups: HashMap<String, (Vec<i64>, &HostFindingSet, &Inventory, Asset)> =
            HashMap::new();
        let no_labels = BTreeMap::new();
        for set in &sets {
            let Some(head) = heads.get(&set.host_id) else {
                continue;
            };
            let asset = asset_of(labels.get(&set.host_id).unwrap_or(&no_labels));
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
            groups
                .entry(key)
                .or_insert_with(|| (Vec::new(), set, head, asset))
                .0
                .push(set.host_id);
        }
        let mut out = Vec::with_capacity(groups.len());
        for (key, (hosts, set, head, asset)) in groups {
            let kept = self
                .kept
                .lock()
                .ok()
                .and_then(|k| k.docs.get(&key).cloned())
                .filter(|(v, _)| *v == validity)
                .map(|(_, docs)| docs);
            let docs = match kept {
                Some(docs) => docs,
                None => {
                    let options = self.options(asset, &now);
                    let docs = Arc::new(
                        self.fleet
                            .host_findings(&self.store, head, set, &feeds, &options)
                            .await?,
                    );
                    if let Ok(mut k) = self.kept.lock() {
                        if k.docs.len() >= KEPT_GROUPS {
                            k.docs.clear();
                        }
                        k.docs.insert(key, (validity.clone(), docs.clone()));
                    }
                    docs
                }
            };
            out.push(Group { hosts, docs });
        }
        Ok(out)
    }

    /// A host's findings, riskiest first (empty while never computed).
    pub async fn host(&self, host_id: i64) -> Result<Vec<FindingDoc>, FleetError> {
        Ok(self
            .groups(Some(host_id))
            .await?
            .pop()
            .map(|g| g.docs.as_ref().clone())
            .unwrap_or_default())
    }

    /// Fills the hosts' finding counts: by severity, `kev`, `overdue`, `total`.
    pub async fn count(&self, hosts: &mut [HostSummary]) -> Result<(), FleetError> {
        let only = match hosts {
            [one] => Some(one.id),
            _ => None,
        };
        let mut counts: HashMap<i64, BTreeMap<String, i64>> = HashMap::new();
        for g in self.groups(only).await? {
            let mut c: BTreeMap<String, i64> = BTreeMap::new();
            for d in g.docs.iter() {
                *c.entry(d.severity.as_str().to_owned()).or_default() += 1;
                *c.entry("kev".into()).or_default() += i64::from(d.kev);
                *c.entry("overdue".into()).or_default() += i64::from(d.overdue);
                *c.entry("total".into()).or_default() += 1;
            }
            for h in g.hosts {
                counts.insert(h, c.clone());
            }
        }
        for h in hosts {
            h.findings = counts.remove(&h.id).unwrap_or_default();
        }
        Ok(())
    }

    /// The fleet's findings that pass the filter, riskiest first (then hostname, package,
    /// advisory), `offset` and `limit` applied: every group's documents filtered once, then the
    /// hosts' lists merged.
    pub async fn fleet(
        &self,
        filter: &FleetFindingFilter,
        hostnames: &HashMap<i64, (String, BTreeMap<String, String>)>,
    ) -> Result<Vec<HostFinding>, FleetError> {
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        let horizon = filter
            .due_within_days
            .and_then(|d| today.checked_add(jiff::Span::new().days(d)).ok())
            .map(|d| d.to_string());
        let min = filter.min_severity.unwrap_or_default();
        let keep = |d: &FindingDoc| {
            d.severity >= min
                && (!filter.kev || d.kev)
                && (!filter.overdue || d.overdue)
                && filter.state.is_none_or(|s| d.state == s)
                && horizon
                    .as_ref()
                    .is_none_or(|h| d.due.values().any(|due| due.date.as_str() <= h.as_str()))
        };
        // Per host: its group's filtered documents (riskiest first) and a cursor.
        let mut lists: Vec<(i64, &str, Arc<Vec<FindingDoc>>)> = Vec::new();
        let groups = self.groups(None).await?;
        for g in &groups {
            let docs: Vec<FindingDoc> = g.docs.iter().filter(|d| keep(d)).cloned().collect();
            if docs.is_empty() {
                continue;
            }
            let docs = Arc::new(docs);
            for h in &g.hosts {
                let Some((name, labels)) = hostnames.get(h) else {
                    continue;
                };
                if filter.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                    lists.push((*h, name.as_str(), docs.clone()));
                }
            }
        }
        /// A host's next document in the merge.
        struct Head<'a> {
            risk: f64,
            hostname: &'a str,
            host: usize,
            at: usize,
            docs: &'a [FindingDoc],
        }
        impl Head<'_> {
            fn doc(&self) -> &FindingDoc {
                &self.docs[self.at]
            }
        }
        impl PartialEq for Head<'_> {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == std::cmp::Ordering::Equal
            }
        }
        impl Eq for Head<'_> {}
        impl PartialOrd for Head<'_> {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for Head<'_> {
            // The heap pops the greatest: the riskiest, then the first by name.
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.risk
                    .total_cmp(&other.risk)
                    .then_with(|| other.hostname.cmp(self.hostname))
                    .then_with(|| other.doc().package.cmp(&self.doc().package))
                    .then_with(|| other.doc().advisory_id.cmp(&self.doc().advisory_id))
                    .then_with(|| other.host.cmp(&self.host))
            }
        }
        let mut heap: BinaryHeap<Head<'_>> = lists
            .iter()
            .enumerate()
            .map(|(i, (_, name, docs))| Head {
                risk: docs[0].risk,
                hostname: name,
                host: i,
                at: 0,
                docs: docs.as_slice(),
            })
            .collect();
        let mut out = Vec::with_capacity(filter.limit.min(10_000));
        let mut skipped = 0;
        while out.len() < filter.limit {
            let Some(mut head) = heap.pop() else { break };
            if skipped < filter.offset {
                skipped += 1;
            } else {
                let (host_id, hostname, _) = &lists[head.host];
                out.push(HostFinding {
                    host_id: *host_id,
                    hostname: (*hostname).to_owned(),
                    finding: head.doc().clone(),
                });
            }
            head.at += 1;
            if head.at < head.docs.len() {
                head.risk = head.docs[head.at].risk;
                heap.push(head);
            }
        }
        Ok(out)
    }

    /// The hosts a CVE affects and how (by hostname, then package).
    pub async fn cve_hosts(
        &self,
        cve: &str,
        hostnames: &HashMap<i64, (String, BTreeMap<String, String>)>,
    ) -> Result<Vec<AffectedHost>, StoreError> {
        let keys = self.store.keys_citing(&[cve.to_owned()]).await?;
        let hosts = self.store.hosts_holding_keys(&keys).await?;
        let described = self.store.finding_keys(&keys).await?;
        let mut out = Vec::new();
        for set in self.store.host_finding_sets(None).await? {
            if hosts.binary_search(&set.host_id).is_err() {
                continue;
            }
            let Some((hostname, _)) = hostnames.get(&set.host_id) else {
                continue;
            };
            for k in &described {
                if set.keys.binary_search(&k.id).is_ok() {
                    out.push(AffectedHost {
                        host_id: set.host_id,
                        hostname: hostname.clone(),
                        package: k.package.clone(),
                        advisory_id: k.advisory_id.clone(),
                        state: k.state,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.hostname, &a.package, &a.advisory_id, a.host_id).cmp(&(
                &b.hostname,
                &b.package,
                &b.advisory_id,
                b.host_id,
            ))
        });
        out.dedup();
        Ok(out)
    }
}
