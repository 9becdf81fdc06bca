//! Reading the fleet's findings (issue 15): documents are assembled when read, from each host's
//! finding set (`patchwarden_findings::fleet`), with the current time — due dates and overdue are
//! always today's. Hosts that hold the same set with first sightings on the same days, the same
//! asset facts and release read the same documents, so each such group is assembled once and
//! fanned out to its hosts (their own first-sighting times put back): the host list's counts and
//! the summary (counts kept per group), the fleet's findings list (a merge of the hosts'
//! riskiest-first lists over slim documents kept per group; only the groups of the answered page
//! are assembled), a host's findings and a CVE's hosts.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use patchwarden_findings::fleet::{FleetError, FleetKnowledge};
use patchwarden_findings::{feed_summaries, FeedSummary, ScanOptions};
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
    /// Group key → (validity, slim documents): what filtering and merging read, every group's
    /// up to a budget.
    slims: HashMap<String, (String, Arc<Vec<Slim>>)>,
    /// Group key → (validity, documents): a few groups' (a document is ~3 KB in memory).
    docs: HashMap<String, (String, Arc<Vec<FindingDoc>>)>,
}

/// A group's finding counts: by severity, `kev`, `overdue`, `total`.
type Counts = BTreeMap<String, i64>;

/// A document reduced to what the fleet list filters and orders by (~60 bytes).
#[derive(Clone, Debug)]
struct Slim {
    risk: f64,
    severity: Severity,
    kev: bool,
    overdue: bool,
    state: FindingState,
    /// The earliest due date (`YYYY-MM-DD`).
    first_due: Option<String>,
}

/// Most groups whose counts are kept.
const KEPT_COUNTS: usize = 100_000;
/// Most slim documents kept across groups (~60 bytes each).
const KEPT_SLIMS: usize = 2_000_000;
/// Most documents kept across groups (~3 KB each in memory: keeping 150,000 took the server from
/// 330 MB to 500–690 MB at 10,000 hosts). The fleet list reads slim documents and assembles only
/// the groups of the page it answers.
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

fn slims_of(docs: &[FindingDoc]) -> Vec<Slim> {
    docs.iter()
        .map(|d| Slim {
            risk: d.risk,
            severity: d.severity,
            kev: d.kev,
            overdue: d.overdue,
            state: d.state,
            first_due: d.due.values().map(|due| due.date.clone()).min(),
        })
        .collect()
}

/// What is kept of a group, if still valid at this moment.
fn valid<T>(map: &HashMap<String, (String, Arc<T>)>, g: &Group, m: &Moment) -> Option<Arc<T>> {
    map.get(&g.key)
        .filter(|(v, _)| *v == m.validity)
        .map(|(_, x)| x.clone())
}

/// Keeps `value` under `key`, emptying the map first when `size` more would pass `budget`.
fn keep<T>(
    map: &mut HashMap<String, (String, Arc<Vec<T>>)>,
    budget: usize,
    key: &str,
    validity: &str,
    value: &Arc<Vec<T>>,
) {
    let held: usize = map.values().map(|(_, v)| v.len()).sum();
    if held + value.len() > budget {
        map.clear();
    }
    if value.len() <= budget {
        map.insert(key.to_owned(), (validity.to_owned(), value.clone()));
    }
}

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

/// Hosts reading the same documents, and what assembling them takes.
struct Group {
    key: String,
    hosts: Vec<i64>,
    set: HostFindingSet,
    head: Arc<Inventory>,
    asset: Asset,
}

/// What every group of one request shares: the time, the feeds' state, and the validity of what
/// is kept (the fleet's knowledge generation, the day, the feeds).
struct Moment {
    now: String,
    feeds: Vec<FeedSummary>,
    validity: String,
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

    /// The hosts holding a finding set (all of them, or one), grouped.
    async fn groups(&self, only: Option<i64>) -> Result<(Vec<Group>, Moment), FleetError> {
        let now = patchwarden_model::now_rfc3339();
        let sets = self.store.host_finding_sets(only).await?;
        let feeds = feed_summaries(
            &self.store.feeds().await?,
            &now,
            ScanOptions::default().max_feed_age_days,
        );
        // What is kept of a group stays good while the knowledge, the day and the feeds do.
        let validity = format!(
            "{}\t{}\t{:?}",
            self.fleet.generation(),
            now.get(..10).unwrap_or(&now),
            feeds
                .iter()
                .map(|f| (&f.feed, f.age_days, f.stale, &f.last_error, &f.last_success))
                .collect::<Vec<_>>()
        );
        let moment = Moment {
            now,
            feeds,
            validity,
        };
        if sets.is_empty() {
            return Ok((Vec::new(), moment));
        }
        let ids: Vec<i64> = sets.iter().map(|s| s.host_id).collect();
        let labels = self.store.labels_of_hosts(&ids).await?;
        let heads = self.heads(only).await?;
        // First sightings matter to the documents by their day (due dates): hosts whose findings
        // were first seen on the same days read the same documents, their own times put back in
        // only when a host's documents are handed out (`with_own_sightings`).
        let mut groups: HashMap<String, Group> = HashMap::new();
        let no_labels = BTreeMap::new();
        for set in sets.iter().map(by_day) {
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
            let host = set.host_id;
            groups
                .entry(key.clone())
                .or_insert_with(|| Group {
                    key,
                    hosts: Vec::new(),
                    set,
                    head: head.clone(),
                    asset,
                })
                .hosts
                .push(host);
        }
        Ok((groups.into_values().collect(), moment))
    }

    /// A group's documents: kept, or assembled (and their counts and slim form kept).
    async fn docs(&self, g: &Group, m: &Moment) -> Result<Arc<Vec<FindingDoc>>, FleetError> {
        let kept = self.kept.lock().ok().and_then(|k| valid(&k.docs, g, m));
        if let Some(docs) = kept {
            return Ok(docs);
        }
        let options = self.options(g.asset, &m.now);
        let docs = Arc::new(
            self.fleet
                .host_findings(&self.store, &g.head, &g.set, &m.feeds, &options)
                .await?,
        );
        if let Ok(mut k) = self.kept.lock() {
            keep(&mut k.docs, KEPT_DOCS, &g.key, &m.validity, &docs);
            keep(
                &mut k.slims,
                KEPT_SLIMS,
                &g.key,
                &m.validity,
                &Arc::new(slims_of(&docs)),
            );
            if k.counts.len() >= KEPT_COUNTS {
                k.counts.clear();
            }
            k.counts.insert(
                g.key.clone(),
                (m.validity.clone(), Arc::new(counts_of(&docs))),
            );
        }
        Ok(docs)
    }

    /// A group's counts.
    async fn counts(&self, g: &Group, m: &Moment) -> Result<Arc<Counts>, FleetError> {
        let kept = self.kept.lock().ok().and_then(|k| valid(&k.counts, g, m));
        match kept {
            Some(c) => Ok(c),
            None => Ok(Arc::new(counts_of(&self.docs(g, m).await?))),
        }
    }

    /// A group's slim documents.
    async fn slims(&self, g: &Group, m: &Moment) -> Result<Arc<Vec<Slim>>, FleetError> {
        let kept = self.kept.lock().ok().and_then(|k| valid(&k.slims, g, m));
        match kept {
            Some(s) => Ok(s),
            None => Ok(Arc::new(slims_of(&self.docs(g, m).await?))),
        }
    }

    /// A host's findings, riskiest first (empty while never computed).
    pub async fn host(&self, host_id: i64) -> Result<Vec<FindingDoc>, FleetError> {
        let (mut groups, moment) = self.groups(Some(host_id)).await?;
        let Some(group) = groups.pop() else {
            return Ok(Vec::new());
        };
        let mut docs = self.docs(&group, &moment).await?.as_ref().clone();
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
        let by_key = set.first_seen_map();
        let seen: HashMap<(&str, &str), &str> = keys
            .iter()
            .filter_map(|k| {
                let at = by_key.get(&k.id)?;
                Some(((k.package.as_str(), k.advisory_id.as_str()), *at))
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
        let (groups, moment) = self.groups(only).await?;
        for g in &groups {
            let c = self.counts(g, &moment).await?;
            for h in &g.hosts {
                counts.insert(*h, c.as_ref().clone());
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
        let passes = |d: &Slim| {
            d.severity >= min
                && (!filter.kev || d.kev)
                && (!filter.overdue || d.overdue)
                && filter.state.is_none_or(|s| d.state == s)
                && horizon.as_ref().is_none_or(|h| {
                    d.first_due
                        .as_ref()
                        .is_some_and(|due| due.as_str() <= h.as_str())
                })
        };
        // A host contributes at most offset + limit findings: each group keeps no more.
        let most = filter.offset.saturating_add(filter.limit);
        let (groups, moment) = self.groups(None).await?;
        // Per group: the positions (in its riskiest-first documents) that pass, with their risk.
        let mut passing: Vec<Vec<(usize, f64)>> = Vec::with_capacity(groups.len());
        for g in &groups {
            let slims = self.slims(g, &moment).await?;
            passing.push(
                slims
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| passes(s))
                    .take(most)
                    .map(|(i, s)| (i, s.risk))
                    .collect(),
            );
        }
        // Per host: its group and a cursor.
        let mut lists: Vec<(i64, &str, usize)> = Vec::new();
        for (gi, g) in groups.iter().enumerate() {
            if passing[gi].is_empty() {
                continue;
            }
            for h in &g.hosts {
                let Some((name, labels)) = hostnames.get(h) else {
                    continue;
                };
                if filter.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                    lists.push((*h, name.as_str(), gi));
                }
            }
        }
        /// A host's next finding in the merge.
        struct Head<'a> {
            risk: f64,
            hostname: &'a str,
            host_id: i64,
            list: usize,
            at: usize,
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
            // The heap pops the greatest: the riskiest, then the first hostname, then the lowest
            // host id; a host's own findings keep their order (package, advisory, …).
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.risk
                    .total_cmp(&other.risk)
                    .then_with(|| other.hostname.cmp(self.hostname))
                    .then_with(|| other.host_id.cmp(&self.host_id))
                    .then_with(|| other.at.cmp(&self.at))
            }
        }
        let mut heap: BinaryHeap<Head<'_>> = lists
            .iter()
            .enumerate()
            .map(|(i, (host_id, name, gi))| Head {
                risk: passing[*gi][0].1,
                hostname: name,
                host_id: *host_id,
                list: i,
                at: 0,
            })
            .collect();
        // (host id, group, position in the group's documents), in answer order.
        let mut rows: Vec<(i64, usize, usize)> = Vec::with_capacity(filter.limit.min(10_000));
        let mut skipped = 0;
        while rows.len() < filter.limit {
            let Some(mut head) = heap.pop() else { break };
            let (host_id, _, gi) = lists[head.list];
            if skipped < filter.offset {
                skipped += 1;
            } else {
                rows.push((host_id, gi, passing[gi][head.at].0));
            }
            head.at += 1;
            if let Some((_, risk)) = passing[gi].get(head.at) {
                head.risk = *risk;
                heap.push(head);
            }
        }
        // The documents of the groups the page touches, and the hosts' own first sightings.
        let mut docs_of: HashMap<usize, Arc<Vec<FindingDoc>>> = HashMap::new();
        for (_, gi, _) in &rows {
            if !docs_of.contains_key(gi) {
                docs_of.insert(*gi, self.docs(&groups[*gi], &moment).await?);
            }
        }
        let mut out: Vec<HostFinding> = rows
            .iter()
            .map(|(host_id, gi, at)| HostFinding {
                host_id: *host_id,
                hostname: hostnames
                    .get(host_id)
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default(),
                finding: docs_of[gi][*at].clone(),
            })
            .collect();
        let mut hosts: Vec<i64> = rows.iter().map(|(h, _, _)| *h).collect();
        hosts.sort_unstable();
        hosts.dedup();
        for host in hosts {
            let Some(set) = self.store.host_finding_set(host).await? else {
                continue;
            };
            let at: Vec<usize> = (0..out.len()).filter(|i| out[*i].host_id == host).collect();
            let mut docs: Vec<FindingDoc> = at.iter().map(|i| out[*i].finding.clone()).collect();
            self.with_own_sightings(&set, &mut docs).await?;
            for (i, doc) in at.into_iter().zip(docs) {
                out[i].finding = doc;
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
        let described = self.store.finding_keys(&keys).await?;
        let mut out = Vec::new();
        if described.is_empty() {
            return Ok(out);
        }
        for set in self.store.host_finding_sets(None).await? {
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
