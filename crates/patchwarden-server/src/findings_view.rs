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
/// each group's counts and, up to a budget, documents (good while the fleet's knowledge, the day
/// and the feeds' state stay).
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
    /// Group key → (validity, counts): every group's.
    counts: HashMap<String, (String, Arc<Counts>)>,
    /// Group key → (validity, documents): a few groups' (a group's documents are ~1 KB a finding).
    docs: HashMap<String, (String, Arc<Vec<FindingDoc>>)>,
}

/// A group's finding counts: by severity, `kev`, `overdue`, `total`.
type Counts = BTreeMap<String, i64>;

/// Most groups whose counts are kept.
const KEPT_COUNTS: usize = 100_000;
/// Most documents kept across groups (~3 KB each in memory: 150,000 took the server from 330 MB
/// to 500–690 MB at 10,000 hosts; the fleet list then answered in 0.35 s instead of 1.7 s). The
/// way out of this trade is a slim per-group index with documents assembled for the page only.
const KEPT_DOCS: usize = 60_000;

fn counts_of(docs: &[FindingDoc]) -> Counts {
    let mut c = Counts::new();
    for d in docs {
        *c.entry(d.severity.as_str().to_owned()).or_default() += 1;
        *c.entry("kev".into()).or_default() += i64::from(d.kev);
        *c.entry("overdue".into()).or_default() += i64::from(d.overdue);
        *c.entry("total".into()).or_default() += 1;
    }
    c
}

/// What a caller keeps of a group's documents (none: it wants the counts only).
type Shape<'a> = Option<&'a (dyn Fn(&[FindingDoc]) -> Vec<FindingDoc> + Sync)>;

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

/// A host's finding set with its first sightings cut to their days.
fn by_day(set: &HostFindingSet) -> HostFindingSet {
    let day = |t: &str| format!("{}T00:00:00Z", t.get(..10).unwrap_or(t));
    let base = day(&set.seen_base);
    let mut other: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (at, keys) in &set.seen_other {
        let d = day(at);
        if d != base {
            other.entry(d).or_default().extend(keys);
        }
    }
    for keys in other.values_mut() {
        keys.sort_unstable();
    }
    HostFindingSet {
        host_id: set.host_id,
        set_id: set.set_id,
        keys: set.keys.clone(),
        seen_base: base,
        seen_other: other,
    }
}

/// Hosts reading the same documents: their counts, and what the caller's shape kept of them.
struct Group {
    hosts: Vec<i64>,
    counts: Arc<Counts>,
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
    async fn groups(&self, only: Option<i64>, shape: Shape<'_>) -> Result<Vec<Group>, FleetError> {
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
        // First sightings matter to the documents by their day (due dates): hosts whose findings
        // were first seen on the same days read the same documents, their own times put back in
        // only when a host's documents are handed out (`with_own_sightings`).
        let by_day: Vec<HostFindingSet> = sets.iter().map(by_day).collect();
        let mut groups: HashMap<String, (Vec<i64>, &HostFindingSet, &Inventory, Asset)> =
            HashMap::new();
        let no_labels = BTreeMap::new();
        for set in &by_day {
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
            let (counts, docs) = {
                let kept = self.kept.lock().expect("the view's cache");
                let valid = |v: &String| *v == validity;
                (
                    kept.counts
                        .get(&key)
                        .filter(|(v, _)| valid(v))
                        .map(|(_, c)| c.clone()),
                    kept.docs
                        .get(&key)
                        .filter(|(v, _)| valid(v))
                        .map(|(_, d)| d.clone()),
                )
            };
            if let (Some(counts), None) = (&counts, shape) {
                out.push(Group {
                    hosts,
                    counts: counts.clone(),
                    docs: Arc::new(Vec::new()),
                });
                continue;
            }
            let docs = match docs {
                Some(docs) => docs,
                None => {
                    let options = self.options(asset, &now);
                    let docs = Arc::new(
                        self.fleet
                            .host_findings(&self.store, head, set, &feeds, &options)
                            .await?,
                    );
                    if let Ok(mut k) = self.kept.lock() {
                        let held: usize = k.docs.values().map(|(_, d)| d.len()).sum();
                        if held + docs.len() > KEPT_DOCS {
                            k.docs.clear();
                        }
                        if docs.len() <= KEPT_DOCS {
                            k.docs.insert(key.clone(), (validity.clone(), docs.clone()));
                        }
                    }
                    docs
                }
            };
            let counts = match counts {
                Some(c) => c,
                None => {
                    let c = Arc::new(counts_of(&docs));
                    if let Ok(mut k) = self.kept.lock() {
                        if k.counts.len() >= KEPT_COUNTS {
                            k.counts.clear();
                        }
                        k.counts.insert(key, (validity.clone(), c.clone()));
                    }
                    c
                }
            };
            let docs = match shape {
                Some(shape) => Arc::new(shape(&docs)),
                None => Arc::new(Vec::new()),
            };
            out.push(Group {
                hosts,
                counts,
                docs,
            });
        }
        Ok(out)
    }

    /// A host's findings, riskiest first (empty while never computed).
    pub async fn host(&self, host_id: i64) -> Result<Vec<FindingDoc>, FleetError> {
        let all = |d: &[FindingDoc]| d.to_vec();
        let Some(group) = self.groups(Some(host_id), Some(&all)).await?.pop() else {
            return Ok(Vec::new());
        };
        let mut docs = group.docs.as_ref().clone();
        if let Some(set) = self.store.host_finding_set(host_id).await? {
            self.with_own_sightings(&set, &mut docs).await?;
        }
        Ok(docs)
    }

    /// Puts a host's own first-sighting times into documents its group shares.
    async fn with_own_sightings(
        &self,
        set: &HostFindingSet,
        docs: &mut [FindingDoc],
    ) -> Result<(), StoreError> {
        let keys = self.store.finding_keys(&set.keys).await?;
        let seen: HashMap<(&str, &str), &str> = keys
            .iter()
            .map(|k| {
                (
                    (k.package.as_str(), k.advisory_id.as_str()),
                    set.first_seen(k.id),
                )
            })
            .collect();
        for d in docs {
            if d.first_seen.is_some() {
                if let Some(at) = seen.get(&(d.package.as_str(), d.advisory_id.as_str())) {
                    d.first_seen = Some((*at).to_owned());
                }
            }
        }
        Ok(())
    }

    /// Fills the hosts' finding counts: by severity, `kev`, `overdue`, `total`.
    pub async fn count(&self, hosts: &mut [HostSummary]) -> Result<(), FleetError> {
        let only = match hosts {
            [one] => Some(one.id),
            _ => None,
        };
        let mut counts: HashMap<i64, BTreeMap<String, i64>> = HashMap::new();
        for g in self.groups(only, None).await? {
            for h in g.hosts {
                counts.insert(h, g.counts.as_ref().clone());
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
        // A host contributes at most offset + limit documents: each group keeps no more.
        let most = filter.offset.saturating_add(filter.limit);
        let shape = |docs: &[FindingDoc]| -> Vec<FindingDoc> {
            docs.iter()
                .filter(|d| keep(d))
                .take(most)
                .cloned()
                .collect()
        };
        let groups = self.groups(None, Some(&shape)).await?;
        let groups_sets = self.store.host_finding_sets(None).await?;
        for g in &groups {
            if g.docs.is_empty() {
                continue;
            }
            let docs = g.docs.clone();
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
        let mut out: Vec<HostFinding> = Vec::with_capacity(filter.limit.min(10_000));
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
        // The hosts' own first-sighting times, host by host.
        let sets: HashMap<i64, &HostFindingSet> =
            groups_sets.iter().map(|s| (s.host_id, s)).collect();
        let mut order: Vec<usize> = (0..out.len()).collect();
        order.sort_by_key(|i| out[*i].host_id);
        let mut i = 0;
        while i < order.len() {
            let host = out[order[i]].host_id;
            let mut docs: Vec<FindingDoc> = Vec::new();
            let mut at = Vec::new();
            while i < order.len() && out[order[i]].host_id == host {
                at.push(order[i]);
                docs.push(out[order[i]].finding.clone());
                i += 1;
            }
            if let Some(set) = sets.get(&host) {
                self.with_own_sightings(set, &mut docs).await?;
            }
            for (slot, doc) in at.into_iter().zip(docs) {
                out[slot].finding = doc;
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
