//! Reading the fleet's findings (issue 15): documents are assembled when read, from each host's
//! finding set (`patchwarden_findings::fleet`), with the current time — due dates and overdue are
//! always today's. Hosts that hold the same set with first sightings on the same days, the same
//! asset facts and release read the same documents, so each such group is assembled once and
//! fanned out to its hosts (their own first-sighting times put back): the host list's counts and
//! the summary (counts kept per group), the fleet's findings list (a merge of the hosts'
//! riskiest-first lists over slim documents kept per group; only the groups of the answered page
//! are assembled), a host's findings and a CVE's hosts. The grouping itself is kept between
//! requests (`directory`: re-read by change), the list merge is `merge`'s.

mod directory;
mod merge;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use patchwarden_findings::fleet::{FleetError, FleetKnowledge};
use patchwarden_findings::{feed_summaries, FeedSummary, ScanOptions};
use patchwarden_model::fleet::{AffectedHost, FleetSummary, HostFinding, HostSummary};
use patchwarden_model::{FindingDoc, FindingState, Inventory, Severity};
use patchwarden_risk::policy::Policy;
use patchwarden_risk::Asset;
use patchwarden_store::fleet::{HostFindingSet, StoredFindingKey};
use patchwarden_store::{Store, StoreError};

/// The handle (cheap to clone): its own store handle, the fleet's knowledge, the policy, and what
/// it keeps between requests: the fleet's grouping (by each host's view version) and each group's
/// counts and, up to a budget, documents (good while the fleet's knowledge, the day and the feeds'
/// state stay).
#[derive(Clone)]
pub struct FindingsView {
    store: Store,
    fleet: Arc<FleetKnowledge>,
    policy: Arc<Policy>,
    distro_info_dir: std::path::PathBuf,
    /// The time findings are read at (`ServerConfig::clock`).
    clock: patchwarden_model::clock::Clock,
    kept: Arc<std::sync::Mutex<Kept>>,
    /// The fleet's grouping (refreshed by change at each fleet-wide request, one at a time).
    directory: Arc<tokio::sync::Mutex<directory::Directory>>,
    /// The last stale count: (stale after, when counted, count).
    stale: Arc<std::sync::Mutex<Option<(i64, std::time::Instant, i64)>>>,
}

/// How long a stale count is reused (`FindingsView::stale_hosts`).
const STALE_COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Default)]
struct Kept {
    /// Group key → (validity, counts): every group's.
    counts: HashMap<Arc<str>, (String, Arc<Counts>)>,
    /// Group key → (validity, slim documents): what filtering and merging read, every group's
    /// up to a budget.
    slims: HashMap<Arc<str>, (String, Arc<Vec<Slim>>)>,
    /// Group key → (validity, documents): a few groups' (a document is ~3 KB in memory).
    docs: HashMap<Arc<str>, (String, Arc<Vec<FindingDoc>>)>,
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
fn valid<T>(map: &HashMap<Arc<str>, (String, Arc<T>)>, g: &Group, m: &Moment) -> Option<Arc<T>> {
    map.get(&g.key)
        .filter(|(v, _)| *v == m.validity)
        .map(|(_, x)| x.clone())
}

/// Keeps `value` under `key`, emptying the map first when `size` more would pass `budget`.
fn keep<T>(
    map: &mut HashMap<Arc<str>, (String, Arc<Vec<T>>)>,
    budget: usize,
    key: &Arc<str>,
    validity: &str,
    value: &Arc<Vec<T>>,
) {
    let held: usize = map.values().map(|(_, v)| v.len()).sum();
    if held + value.len() > budget {
        map.clear();
    }
    if value.len() <= budget {
        map.insert(key.clone(), (validity.to_owned(), value.clone()));
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
#[derive(Debug)]
struct Group {
    key: Arc<str>,
    /// Its hosts (ascending ids) as the findings list shows them.
    members: Vec<merge::Member>,
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
        clock: patchwarden_model::clock::Clock,
    ) -> FindingsView {
        FindingsView {
            store,
            fleet,
            policy,
            distro_info_dir,
            clock,
            kept: Default::default(),
            directory: Default::default(),
            stale: Default::default(),
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

    /// What every group of a request shares: the time, the feeds' state, the validity of what is
    /// kept.
    async fn moment(&self) -> Result<Moment, StoreError> {
        let now = self.clock.now_rfc3339();
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
        Ok(Moment {
            now,
            feeds,
            validity,
        })
    }

    /// The fleet's grouping, brought up to date with the store; `read` runs on it while no other
    /// request changes it.
    async fn with_directory<T>(
        &self,
        read: impl FnOnce(&directory::Directory) -> T,
    ) -> Result<T, StoreError> {
        let mut dir = self.directory.lock().await;
        dir.refresh(&self.store).await?;
        Ok(read(&dir))
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

    /// One host's group, the host its only member (read from the store directly: a host page
    /// is always current).
    async fn host_group(&self, host_id: i64) -> Result<Option<Group>, StoreError> {
        Ok(self
            .store
            .view_rows(&[host_id])
            .await?
            .pop()
            .and_then(|row| directory::group_of(&row)))
    }

    /// A host's findings, riskiest first (empty while never computed).
    pub async fn host(&self, host_id: i64) -> Result<Vec<FindingDoc>, FleetError> {
        let Some(group) = self.host_group(host_id).await? else {
            return Ok(Vec::new());
        };
        let moment = self.moment().await?;
        let mut docs = self.docs(&group, &moment).await?.as_ref().clone();
        if let Some(set) = &group.members[0].set {
            self.with_own_sightings(set, &mut docs).await?;
        }
        Ok(docs)
    }

    /// Puts a host's own first-sighting times into documents its group shares.
    async fn with_own_sightings(
        &self,
        set: &HostFindingSet,
        docs: &mut [FindingDoc],
    ) -> Result<(), StoreError> {
        if set.seen_other.is_empty() {
            // Every finding first seen at once (the common case).
            for d in docs.iter_mut().filter(|d| d.first_seen.is_some()) {
                d.first_seen = Some(set.seen_base.clone());
            }
            return Ok(());
        }
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
        let moment = self.moment().await?;
        let groups: Vec<Arc<Group>> = match hosts {
            [one] => self
                .host_group(one.id)
                .await?
                .map(Arc::new)
                .into_iter()
                .collect(),
            _ => self.with_directory(|d| d.all_groups()).await?,
        };
        let mut counts: HashMap<i64, Arc<Counts>> = HashMap::new();
        for g in &groups {
            let c = self.counts(g, &moment).await?;
            for m in &g.members {
                counts.insert(m.host_id, c.clone());
            }
        }
        for h in hosts {
            h.findings = counts
                .remove(&h.id)
                .map(|c| c.as_ref().clone())
                .unwrap_or_default();
        }
        Ok(())
    }

    /// The fleet at a glance: hosts, stale, revoked, by OS, the open findings added up over the
    /// hosts, the expected assets that never enrolled.
    pub async fn summary(&self, stale_after_secs: i64) -> Result<FleetSummary, FleetError> {
        let moment = self.moment().await?;
        let expected = self.store.expected_assets().await?;
        let (mut summary, groups) = self
            .with_directory(|d| {
                let summary = FleetSummary {
                    hosts: d.hosts.len() as i64,
                    revoked_hosts: d.revoked,
                    by_os: d.by_os.clone(),
                    never_enrolled: expected
                        .into_iter()
                        .filter(|name| {
                            !directory::name_forms(name)
                                .iter()
                                .any(|n| d.names.contains_key(n))
                        })
                        .collect(),
                    ..Default::default()
                };
                (summary, d.all_groups())
            })
            .await?;
        for g in &groups {
            let c = self.counts(g, &moment).await?;
            for (k, v) in c.iter() {
                *summary.findings.entry(k.clone()).or_default() += v * g.members.len() as i64;
            }
        }
        summary.stale_hosts = self.stale_hosts(stale_after_secs).await?;
        Ok(summary)
    }

    /// Hosts not seen for `stale_after_secs`, counted at most every `STALE_COUNT_TTL` (a pass
    /// over the host rows; last-seen moves with every heartbeat, so it is not indexed — an index
    /// would turn every heartbeat's row update into index writes — and staleness is a matter of
    /// days, so a count up to half a minute old answers it).
    async fn stale_hosts(&self, stale_after_secs: i64) -> Result<i64, StoreError> {
        let now = std::time::Instant::now();
        if let Some((after, at, n)) = *self.stale.lock().expect("the stale count") {
            if after == stale_after_secs && now.duration_since(at) < STALE_COUNT_TTL {
                return Ok(n);
            }
        }
        let n = self.store.stale_hosts(stale_after_secs).await?;
        *self.stale.lock().expect("the stale count") = Some((stale_after_secs, now, n));
        Ok(n)
    }

    /// The fleet's findings that pass the filter, riskiest first (then hostname, package,
    /// advisory), `offset` and `limit` applied: every group's documents filtered once, then the
    /// hosts' lists merged (`merge`).
    pub async fn fleet(&self, filter: &FleetFindingFilter) -> Result<Vec<HostFinding>, FleetError> {
        let passes = merge::Passes::new(filter);
        // A host contributes at most offset + limit findings: each group keeps no more.
        let most = filter.offset.saturating_add(filter.limit);
        let moment = self.moment().await?;
        // The groups, and per group the hosts the label filter lets through.
        let groups = self.with_directory(|d| d.all_groups()).await?;
        let members: Vec<Cow<'_, [merge::Member]>> = groups
            .iter()
            .map(|g| {
                if filter.labels.is_empty() {
                    Cow::Borrowed(g.members.as_slice())
                } else {
                    Cow::Owned(
                        g.members
                            .iter()
                            .filter(|m| {
                                filter
                                    .labels
                                    .iter()
                                    .all(|(k, v)| m.labels.get(k) == Some(v))
                            })
                            .cloned()
                            .collect(),
                    )
                }
            })
            .collect();
        // Per group: the positions (in its riskiest-first documents) that pass, with their risk.
        let mut passing: Vec<Vec<(usize, f64)>> = Vec::with_capacity(groups.len());
        for (g, m) in groups.iter().zip(&members) {
            if m.is_empty() {
                passing.push(Vec::new());
                continue;
            }
            let slims = self.slims(g, &moment).await?;
            passing.push(
                slims
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| passes.admits(s))
                    .take(most)
                    .map(|(i, s)| (i, s.risk))
                    .collect(),
            );
        }
        let rows = merge::page(&members, &passing, filter.offset, filter.limit);
        // The documents of the groups the page touches, and the hosts' own first sightings.
        let mut docs_of: HashMap<usize, Arc<Vec<FindingDoc>>> = HashMap::new();
        for row in &rows {
            if let std::collections::hash_map::Entry::Vacant(e) = docs_of.entry(row.group) {
                e.insert(self.docs(&groups[row.group], &moment).await?);
            }
        }
        let mut out: Vec<HostFinding> = rows
            .iter()
            .map(|row| HostFinding {
                host_id: row.member.host_id,
                hostname: row.member.hostname.to_string(),
                finding: docs_of[&row.group][row.at].clone(),
            })
            .collect();
        let mut by_host: BTreeMap<i64, (Arc<HostFindingSet>, Vec<usize>)> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            if let Some(set) = &row.member.set {
                by_host
                    .entry(row.member.host_id)
                    .or_insert_with(|| (set.clone(), Vec::new()))
                    .1
                    .push(i);
            }
        }
        for (set, at) in by_host.into_values() {
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
        offset: usize,
        limit: usize,
    ) -> Result<Vec<AffectedHost>, StoreError> {
        let keys = self.store.keys_citing(&[cve.to_owned()]).await?;
        let described = self.store.finding_keys(&keys).await?;
        if described.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut described: Vec<&StoredFindingKey> = described.iter().map(|k| k.as_ref()).collect();
        described.sort_by(|a, b| (&a.package, &a.advisory_id).cmp(&(&b.package, &b.advisory_id)));
        let order = |a: &AffectedHost, b: &AffectedHost| {
            (&a.hostname, &a.package, &a.advisory_id, a.host_id).cmp(&(
                &b.hostname,
                &b.package,
                &b.advisory_id,
                b.host_id,
            ))
        };
        self.with_directory(|d| {
            // Per group, the keys it holds; then the hosts in hostname order, hosts sharing a
            // hostname sorted together: rows come out in answer order, and only up to the page.
            let held: HashMap<&str, Vec<&StoredFindingKey>> = d
                .groups
                .iter()
                .filter_map(|(key, g)| {
                    let keys: Vec<&StoredFindingKey> = described
                        .iter()
                        .copied()
                        .filter(|k| g.set.keys.binary_search(&k.id).is_ok())
                        .collect();
                    (!keys.is_empty()).then_some((key.as_ref(), keys))
                })
                .collect();
            let (mut out, mut run, mut skipped) = (Vec::new(), Vec::new(), 0);
            if held.is_empty() {
                return out;
            }
            let mut hosts = d.by_name.iter().peekable();
            while let Some((hostname, id)) = hosts.next() {
                let keys = d
                    .hosts
                    .get(id)
                    .and_then(|h| h.group.as_deref())
                    .and_then(|g| held.get(g));
                for k in keys.into_iter().flatten() {
                    run.push(AffectedHost {
                        host_id: *id,
                        hostname: hostname.to_string(),
                        package: k.package.clone(),
                        advisory_id: k.advisory_id.clone(),
                        state: k.state,
                    });
                }
                if hosts.peek().is_some_and(|(next, _)| next == hostname) {
                    continue;
                }
                run.sort_by(order);
                run.dedup();
                for row in run.drain(..) {
                    if skipped < offset {
                        skipped += 1;
                    } else if out.len() < limit {
                        out.push(row);
                    }
                }
                if out.len() == limit {
                    break;
                }
            }
            out
        })
        .await
    }
}
