//! Findings for a fleet (issue 15): each distinct thing evaluated once.
//!
//! [`FleetKnowledge`] keeps, per release, one matching index and one enrichment that grow as hosts
//! bring package names not seen before (loaded from the store name by name, each advisory once),
//! and a verdict cache: the finding keys of each distinct (release, installed package version,
//! Ubuntu Pro or not), so a host whose package versions were all seen before is evaluated by
//! lookups, not by matching — and a host whose package set, release, Ubuntu Pro and running kernel
//! were evaluated before takes that answer whole. Kernel images on a live host are evaluated per
//! host (the running kernel decides their state). A knowledge-base change empties it all
//! ([`FleetKnowledge::clear`]); [`FleetKnowledge::follow`] does when the store's knowledge
//! generation moved, and tells the generation findings are evaluated against (the store refuses
//! them if it moves before they are written).
//!
//! Knowledge-base changes are weighed here ([`FleetKnowledge::apply_changes`]): of the hosts
//! holding a package a change names, only the groups (same package set, release and findings)
//! whose findings for the named package versions differ under the new knowledge base are marked.
//! The store finds the candidates and marks; which verdicts changed is decided by matching.
//!
//! A finding key ([`FindingKey`]) is the part of a finding every host holding the same package
//! version shares: the verdict and its evidence. What the knowledge base says of its advisory
//! (CVSS, KEV, EPSS, severity), what the host adds (asset criticality and exposure: SSVC and risk;
//! first sighting: due dates) and the current time (overdue) are assembled when the findings are
//! read ([`FleetKnowledge::host_findings`]), by the same [`Assembler`] as a scan's.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use patchwarden_match::eol::EolTable;
use patchwarden_match::{FindingState, KnowledgeIndex, MatchOptions, Outcome, Verdict};
use patchwarden_model::{Distro, FindingDoc, InstalledPackage, Inventory, PackageKeyKind};
use patchwarden_store::fleet::{EvaluationInput, HostFindingSet, NewFindingKey};
use patchwarden_store::{CandidateGroup, KnowledgeChangesApplied, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Assembler, Enrichment, FeedSummary, Knowledge, ScanOptions};

/// Why a fleet's findings could not be evaluated or read.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("finding key {key}: its stored document does not parse: {source}")]
    KeyDocument { key: i64, source: serde_json::Error },
}

/// Most cached verdict lists before the cache is emptied.
const VERDICT_CACHE_LIMIT: usize = 2_000_000;

/// Most finding-key ids the per-set cache holds (8 bytes each) before it is emptied.
const SET_CACHE_IDS: usize = 8_000_000;

/// One finding as every host holding the same package version has it: the verdict and its
/// evidence (the stored document of a finding key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingKey {
    /// `distro:release`.
    pub release: String,
    pub feed: String,
    pub advisory_id: String,
    pub package: String,
    pub installed_version: String,
    pub arch: String,
    pub matched_name: String,
    pub key_kind: PackageKeyKind,
    pub compared_version: String,
    pub scheme: String,
    pub fixed_version: Option<String>,
    pub package_severity: Option<String>,
    pub stream: Option<String>,
    pub note: Option<String>,
    pub state: FindingState,
}

impl FindingKey {
    fn from_verdict(release: &str, index: &KnowledgeIndex, v: &Verdict<'_>) -> Option<FindingKey> {
        let Outcome::Finding(state) = v.outcome else {
            return None;
        };
        Some(FindingKey {
            release: release.to_owned(),
            feed: index.advisory(v.advisory).feed.clone(),
            advisory_id: v.advisory_id.to_owned(),
            package: v.package.to_owned(),
            installed_version: v.installed_version.to_owned(),
            arch: v.arch.to_owned(),
            matched_name: v.matched_name.to_owned(),
            key_kind: v.key_kind,
            compared_version: v.compared_version.to_owned(),
            scheme: v.scheme.to_owned(),
            fixed_version: v.fixed_version.map(str::to_owned),
            package_severity: v.package_severity.map(str::to_owned),
            stream: v.stream.map(str::to_owned),
            note: v.note.map(str::to_owned),
            state,
        })
    }

    /// The key as the store interns it: its document and the digest naming it.
    pub fn to_new(&self, cves: &[String]) -> NewFindingKey {
        let doc = serde_json::to_string(self).expect("a finding key serializes");
        let digest = Sha256::digest(doc.as_bytes());
        NewFindingKey {
            digest: patchwarden_model::fleet::hex(&digest),
            package: self.package.clone(),
            advisory_id: self.advisory_id.clone(),
            state: self.state,
            cves: cves.to_vec(),
            doc,
        }
    }
}

fn static_scheme(scheme: &str) -> &'static str {
    match scheme {
        "deb" => "deb",
        "rpm" => "rpm",
        "apk" => "apk",
        _ => "unknown",
    }
}

/// One release's knowledge, grown name by name.
struct ReleaseKnowledge {
    knowledge: Knowledge,
    names: HashSet<String>,
    /// (feed, advisory id) → the advisory's number in the index.
    numbers: HashMap<(String, String), u32>,
}

type SharedRelease = Arc<RwLock<ReleaseKnowledge>>;

/// (release number, package version id, Ubuntu Pro): what a package version's verdicts depend on
/// besides the knowledge base (kernel images of live hosts are never cached).
type VerdictKey = (u32, i64, bool);

/// (release number, package set id, Ubuntu Pro as asked, running kernel of a live host): what a
/// host's whole evaluation depends on besides the knowledge base.
type SetKey = (u32, i64, Option<bool>, Option<String>);

/// The finding keys of whole package sets, and how many ids it holds.
#[derive(Default)]
struct SetCache {
    keys: HashMap<SetKey, Arc<[i64]>>,
    ids: usize,
}

/// The fleet's knowledge and verdict cache (see the module head). Shared by the findings workers
/// and the readers of one server.
pub struct FleetKnowledge {
    distro_info_dir: std::path::PathBuf,
    releases: RwLock<HashMap<(Distro, String), SharedRelease>>,
    /// (release, package version id, Ubuntu Pro) → the finding keys of that package version.
    verdicts: Mutex<HashMap<VerdictKey, Arc<[i64]>>>,
    /// The finding keys of a host's whole evaluation, for the next host with the same package
    /// set, release, Ubuntu Pro and running kernel (most hosts of a fleet share their set).
    sets: Mutex<SetCache>,
    /// `distro:release` → a number (the verdict cache's keys stay small).
    release_numbers: Mutex<HashMap<String, u32>>,
    /// Package versions by id.
    packages: Mutex<HashMap<i64, Arc<InstalledPackage>>>,
    /// Counts the times it was emptied: what readers cache from it is good while it stays.
    generation: std::sync::atomic::AtomicU64,
    /// The store's knowledge generation ([`Store::knowledge_generation`]) its contents were
    /// loaded at (-1: not known).
    loaded_at: std::sync::atomic::AtomicI64,
}

fn release_name(distro: Distro, release: &str) -> String {
    format!("{}:{release}", distro.id())
}

impl FleetKnowledge {
    pub fn new(distro_info_dir: impl Into<std::path::PathBuf>) -> FleetKnowledge {
        FleetKnowledge {
            distro_info_dir: distro_info_dir.into(),
            releases: RwLock::new(HashMap::new()),
            verdicts: Mutex::new(HashMap::new()),
            sets: Mutex::new(SetCache::default()),
            packages: Mutex::new(HashMap::new()),
            release_numbers: Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            loaded_at: std::sync::atomic::AtomicI64::new(-1),
        }
    }

    /// Follows the store's knowledge generation: empties this knowledge when knowledge-base
    /// changes were applied (by any server) since it was loaded; answers the generation it is
    /// now good for (what findings evaluated from it are stored with). A store that cannot be
    /// read empties it too, to be safe.
    pub async fn follow(&self, store: &Store) -> Result<i64, StoreError> {
        use std::sync::atomic::Ordering;
        match store.knowledge_generation().await {
            Ok(now) => {
                if self.loaded_at.swap(now, Ordering::SeqCst) != now {
                    self.clear();
                }
                Ok(now)
            }
            Err(e) => {
                self.loaded_at.store(-1, Ordering::SeqCst);
                self.clear();
                Err(e)
            }
        }
    }

    /// Takes this knowledge as good for the store's knowledge generation `generation` (moved by
    /// this server's own claim of changes from `before`): if it was emptied at local generation
    /// `cleared` with the store at `before`, and neither moved since but for that claim.
    pub fn adopt(&self, cleared: u64, before: i64, generation: i64) {
        if generation == before + 1 && self.generation() == cleared {
            self.loaded_at
                .store(generation, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// How many times [`FleetKnowledge::clear`] ran.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets everything (the knowledge base changed): the next evaluations load and match anew.
    pub fn clear(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut r) = self.releases.write() {
            r.clear();
        }
        if let Ok(mut v) = self.verdicts.lock() {
            v.clear();
        }
        if let Ok(mut s) = self.sets.lock() {
            *s = SetCache::default();
        }
    }

    /// The knowledge of a release holding at least the advisories naming `names`.
    async fn release(
        &self,
        store: &Store,
        distro: Distro,
        release: &str,
        names: &[String],
    ) -> Result<SharedRelease, StoreError> {
        let key = (distro, release.to_owned());
        let existing = self
            .releases
            .read()
            .expect("the fleet knowledge")
            .get(&key)
            .cloned();
        let rk = match existing {
            Some(rk) => rk,
            None => {
                let fresh = Arc::new(RwLock::new(ReleaseKnowledge {
                    knowledge: Knowledge {
                        index: KnowledgeIndex::default(),
                        enrichment: Enrichment::default(),
                        feeds: Vec::new(),
                        eol: EolTable::load(&self.distro_info_dir),
                        release_known: false,
                    },
                    names: HashSet::new(),
                    numbers: HashMap::new(),
                }));
                self.releases
                    .write()
                    .expect("the fleet knowledge")
                    .entry(key)
                    .or_insert(fresh)
                    .clone()
            }
        };
        let missing: Vec<String> = {
            let r = rk.read().expect("a release's knowledge");
            names
                .iter()
                .filter(|n| !r.names.contains(*n))
                .cloned()
                .collect()
        };
        let first = rk.read().expect("a release's knowledge").names.is_empty();
        if missing.is_empty() && !first {
            return Ok(rk);
        }
        let found = crate::read_release(store, distro, release, &missing).await?;
        let mut w = rk.write().expect("a release's knowledge");
        let ReleaseKnowledge {
            knowledge,
            names,
            numbers,
        } = &mut *w;
        names.extend(missing);
        knowledge.release_known |= found.release_known;
        knowledge.index.reject(
            found
                .cves
                .iter()
                .filter(|c| c.rejected)
                .map(|c| c.id.clone()),
        );
        for (feed, provenance, mut advisory) in found.advisories {
            let id = (feed.clone(), advisory.id.clone());
            if numbers.contains_key(&id) {
                continue;
            }
            // Only this release is ever looked up (as a scan of one host does).
            advisory
                .affected
                .retain(|p| crate::reads_entry(distro, release, p));
            if let Some(n) = knowledge.index.add(feed, provenance, advisory) {
                numbers.insert(id, n);
            }
        }
        knowledge
            .enrichment
            .extend(found.cves, found.kev, found.epss);
        drop(w);
        Ok(rk)
    }

    /// The package versions of these ids (this process keeps every version it read: they never
    /// change once stored).
    async fn packages(
        &self,
        store: &Store,
        ids: &[i64],
    ) -> Result<Vec<Arc<InstalledPackage>>, StoreError> {
        let mut out: Vec<Option<Arc<InstalledPackage>>> = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let cache = self.packages.lock().expect("the package cache");
            for id in ids {
                let p = cache.get(id).cloned();
                if p.is_none() {
                    missing.push(*id);
                }
                out.push(p);
            }
        }
        if !missing.is_empty() {
            let read = store.package_versions(&missing).await?;
            let read: HashMap<i64, Arc<InstalledPackage>> =
                read.into_iter().map(|(id, p)| (id, Arc::new(p))).collect();
            for (slot, id) in out.iter_mut().zip(ids) {
                if slot.is_none() {
                    *slot = read.get(id).cloned();
                }
            }
            if let Ok(mut cache) = self.packages.lock() {
                if cache.len() > VERDICT_CACHE_LIMIT {
                    cache.clear();
                }
                cache.extend(read);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// A host's finding keys (interned in the store; ascending) from what the store holds of it
    /// (`input`: its inventory without packages, its package set). A host whose package set,
    /// release, Ubuntu Pro and running kernel were evaluated before (since the knowledge base last
    /// changed) takes that answer; else [`FleetKnowledge::evaluate_packages`].
    pub async fn evaluate(
        &self,
        store: &Store,
        input: &EvaluationInput,
        ubuntu_pro: Option<bool>,
    ) -> Result<Arc<[i64]>, StoreError> {
        if input.head.os.release.is_none() {
            return Ok(Arc::from(Vec::new()));
        }
        let set_key = input.package_set.map(|set| {
            let rnum = self.release_number(&input.head);
            (rnum, set, ubuntu_pro, input.head.kernel.running.clone())
        });
        if let Some(key) = &set_key {
            if let Some(keys) = self.sets.lock().ok().and_then(|s| s.keys.get(key).cloned()) {
                return Ok(keys);
            }
        }
        let generation = self.generation();
        let keys: Arc<[i64]> = self
            .evaluate_packages(store, &input.head, &input.package_ids, ubuntu_pro)
            .await?
            .into();
        if let (Some(key), Ok(mut sets)) = (set_key, self.sets.lock()) {
            // Not across a knowledge-base change that happened meanwhile.
            if self.generation() == generation {
                if sets.ids + keys.len() > SET_CACHE_IDS {
                    *sets = SetCache::default();
                }
                sets.ids += keys.len();
                sets.keys.insert(key, keys.clone());
            }
        }
        Ok(keys)
    }

    /// The number the caches know a host's release by: its release and, on RHEL, the update
    /// stream it follows (verdicts differ between streams).
    fn release_number(&self, head: &Inventory) -> u32 {
        let Some(release) = &head.os.release else {
            return u32::MAX;
        };
        let mut name = release_name(release.distro, &release.release);
        if let Some(stream) = head.os.rhel_extended_stream() {
            name.push('@');
            name.push_str(&stream);
        }
        let mut numbers = self.release_numbers.lock().expect("the release numbers");
        let next = numbers.len() as u32;
        *numbers.entry(name).or_insert(next)
    }

    /// A host's finding keys (interned in the store; ascending) from its stored inventory: `head` (without
    /// packages: release, kernel) and the ids of its package versions. Each distinct package
    /// version is matched once per knowledge-base state; kernel images of a live host are matched
    /// per host (the running kernel decides).
    pub async fn evaluate_packages(
        &self,
        store: &Store,
        head: &Inventory,
        package_ids: &[i64],
        ubuntu_pro: Option<bool>,
    ) -> Result<Vec<i64>, StoreError> {
        let Some(release) = &head.os.release else {
            return Ok(Vec::new());
        };
        let packages = self.packages(store, package_ids).await?;
        let distro = release.distro;
        let pro = ubuntu_pro.unwrap_or_else(|| {
            patchwarden_match::receives_ubuntu_pro(
                &head.os,
                packages.iter().map(|p| p.version.as_str()),
            )
        });
        let rname = release_name(distro, &release.release);
        let rnum = self.release_number(head);
        let generation = self.generation();
        let running = head.kernel.running.is_some();
        let mariner = matches!(distro, Distro::Mariner | Distro::Azurelinux);
        let mut keys: Vec<i64> = Vec::new();
        // What to match: cache misses (with their cache keys) and the host's kernel images.
        let mut misses: Vec<(Arc<InstalledPackage>, Option<VerdictKey>)> = Vec::new();
        {
            let cache = self.verdicts.lock().expect("the verdict cache");
            for (p, id) in packages.iter().zip(package_ids) {
                if running && patchwarden_model::boot_release(p, mariner).is_some() {
                    misses.push((p.clone(), None));
                    continue;
                }
                match cache.get(&(rnum, *id, pro)) {
                    Some(ids) => keys.extend(ids.iter()),
                    None => misses.push((p.clone(), Some((rnum, *id, pro)))),
                }
            }
        }
        if !misses.is_empty() {
            let sub = Inventory {
                packages: misses.iter().map(|(p, _)| (**p).clone()).collect(),
                ..head.clone()
            };
            let names = patchwarden_match::lookup_names(&sub);
            let rk = self
                .release(store, distro, &release.release, &names)
                .await?;
            let (new_keys, owners) = {
                let r = rk.read().expect("a release's knowledge");
                let index = &r.knowledge.index;
                let verdicts = patchwarden_match::evaluate_findings(
                    &sub,
                    index,
                    &MatchOptions {
                        ubuntu_pro: Some(pro),
                    },
                );
                // Which package a verdict belongs to: verdicts borrow the inventory's strings.
                let owner_of: HashMap<*const u8, usize> = sub
                    .packages
                    .iter()
                    .enumerate()
                    .map(|(n, p)| (p.name.as_ptr(), n))
                    .collect();
                let mut new_keys = Vec::with_capacity(verdicts.len());
                let mut owners = Vec::with_capacity(verdicts.len());
                for v in &verdicts {
                    if let Some(k) = FindingKey::from_verdict(&rname, index, v) {
                        new_keys.push(k.to_new(&index.advisory(v.advisory).cves));
                        owners.push(owner_of[&v.package.as_ptr()]);
                    }
                }
                (new_keys, owners)
            };
            let ids = store.intern_finding_keys(&new_keys).await?;
            let mut per_package: Vec<Vec<i64>> = vec![Vec::new(); misses.len()];
            for (id, owner) in ids.iter().zip(&owners) {
                per_package[*owner].push(*id);
            }
            keys.extend(&ids);
            if let Ok(mut cache) = self.verdicts.lock() {
                // Verdicts of a knowledge base replaced meanwhile are not kept (`clear` moves
                // the generation before it takes this lock).
                if self.generation() != generation {
                    misses.clear();
                }
                if cache.len() > VERDICT_CACHE_LIMIT {
                    cache.clear();
                }
                for ((_, key), ids) in misses.into_iter().zip(per_package) {
                    if let Some(key) = key {
                        cache.insert(key, ids.into());
                    }
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// Applies the store's knowledge-base change journal, weighed by package version: reads it,
    /// empties this knowledge (what follows reads the knowledge base as written now), marks of
    /// the hosts holding a changed package only those whose findings for the named versions
    /// change ([`FleetKnowledge::hosts_changed_by`]) and those with a finding citing a changed
    /// CVE, and claims the entries ([`Store::claim_knowledge_changes`]). None: nothing to apply,
    /// or another server claimed the entries first.
    pub async fn apply_changes(
        &self,
        store: &Store,
    ) -> Result<Option<KnowledgeChangesApplied>, FleetError> {
        let Some(changes) = store.knowledge_changes().await? else {
            return Ok(None);
        };
        let before = store.knowledge_generation().await?;
        self.clear();
        let cleared = self.generation();
        let groups = store.knowledge_candidates(&changes).await?;
        let (mut hosts, left) = self.hosts_changed_by(store, &groups).await?;
        hosts.extend(store.hosts_citing(&changes).await?);
        let applied = store
            .claim_knowledge_changes(&changes, &hosts, &left)
            .await?;
        if let Some(applied) = &applied {
            // What was loaded since the clear is of the knowledge base this claim stands for.
            self.adopt(cleared, before, applied.generation);
        }
        Ok(applied)
    }

    /// Weighs a knowledge-base change group by group ([`Store::knowledge_candidates`]): a group
    /// whose held findings for the package versions the change names differ from what this
    /// knowledge base says of those versions now (each distinct version evaluated once, as a
    /// host's evaluation would) is to be recomputed; a group that cannot be weighed exactly is
    /// too (no findings computed yet, an unknown release, a kernel image: its verdict depends on
    /// each host's running kernel). Answers the hosts to mark, and the hosts weighed and left
    /// with their view versions (to mark still if their findings move before the change is
    /// claimed). Call it on a knowledge base loaded after the change was written
    /// ([`FleetKnowledge::clear`] first).
    pub async fn hosts_changed_by(
        &self,
        store: &Store,
        groups: &[CandidateGroup],
    ) -> Result<(BTreeSet<i64>, Vec<(i64, i64)>), FleetError> {
        let mut marked = BTreeSet::new();
        let mut left = Vec::new();
        for g in groups {
            if self.group_changed(store, g).await? {
                marked.extend(g.hosts.iter().map(|(h, _)| *h));
            } else {
                left.extend(&g.hosts);
            }
        }
        Ok((marked, left))
    }

    /// Whether a candidate group's findings for the named package versions change (see
    /// [`FleetKnowledge::hosts_changed_by`]).
    async fn group_changed(&self, store: &Store, g: &CandidateGroup) -> Result<bool, FleetError> {
        let (Some(finding_set), Some(&(host, _))) = (g.finding_set, g.hosts.first()) else {
            return Ok(true);
        };
        // One host's stored inventory stands for the group (same release and package set).
        let Some(input) = store.host_evaluation_input(host).await? else {
            return Ok(true);
        };
        let Some(release) = &input.head.os.release else {
            return Ok(true);
        };
        let mariner = matches!(release.distro, Distro::Mariner | Distro::Azurelinux);
        let named = self.packages(store, &g.packages).await?;
        if named.len() != g.packages.len()
            || named
                .iter()
                .any(|p| patchwarden_model::boot_release(p, mariner).is_some())
        {
            return Ok(true);
        }
        // Ubuntu Pro as a host's evaluation decides it: from the whole set (read on Ubuntu only).
        let pro = release.distro == Distro::Ubuntu
            && patchwarden_match::receives_ubuntu_pro(
                &input.head.os,
                self.packages(store, &input.package_ids)
                    .await?
                    .iter()
                    .map(|p| p.version.as_str()),
            );
        let now = self
            .evaluate_packages(store, &input.head, &g.packages, Some(pro))
            .await?;
        // What the group holds of those versions: its keys describing one of them.
        let held_ids = store.finding_set_keys(finding_set).await?;
        let names: HashSet<&str> = named.iter().map(|p| p.name.as_str()).collect();
        let described: HashSet<(&str, &str, &str)> = named
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.arch.as_str()))
            .collect();
        let mut held = Vec::new();
        for k in store.finding_keys(&held_ids).await? {
            if !names.contains(k.package.as_str()) {
                continue;
            }
            let key: FindingKey = serde_json::from_str(&k.doc)
                .map_err(|source| FleetError::KeyDocument { key: k.id, source })?;
            if described.contains(&(
                key.package.as_str(),
                key.installed_version.as_str(),
                key.arch.as_str(),
            )) {
                held.push(k.id);
            }
        }
        held.sort_unstable();
        held.dedup();
        Ok(held != now)
    }

    /// A host's findings as documents, riskiest first: its keys assembled with what the knowledge
    /// base says now, the host's asset facts and first sightings, and `options.now` (due dates,
    /// overdue); its end of life from `head` (the inventory; packages are not read). Keys whose
    /// advisory left the knowledge base are skipped (the change marked the host for re-evaluation).
    pub async fn host_findings(
        &self,
        store: &Store,
        head: &Inventory,
        set: &HostFindingSet,
        feeds: &[FeedSummary],
        options: &ScanOptions,
    ) -> Result<Vec<FindingDoc>, FleetError> {
        let Some(release) = &head.os.release else {
            return Ok(Vec::new());
        };
        let stored = store.finding_keys(&set.keys).await?;
        let mut keys: Vec<(i64, FindingKey)> = Vec::with_capacity(stored.len());
        for k in &stored {
            let parsed: FindingKey = serde_json::from_str(&k.doc)
                .map_err(|source| FleetError::KeyDocument { key: k.id, source })?;
            keys.push((k.id, parsed));
        }
        let mut names: Vec<String> = keys.iter().map(|(_, k)| k.matched_name.clone()).collect();
        names.sort_unstable();
        names.dedup();
        let rk = self
            .release(store, release.distro, &release.release, &names)
            .await?;
        let r = rk.read().expect("a release's knowledge");
        let index = &r.knowledge.index;
        let seen_by_key = set.first_seen_map();
        let mut first_seen: HashMap<(String, String), String> = HashMap::new();
        let mut verdicts: Vec<Verdict<'_>> = Vec::with_capacity(keys.len());
        for (id, k) in &keys {
            let Some(number) = r.numbers.get(&(k.feed.clone(), k.advisory_id.clone())) else {
                continue;
            };
            if let Some(at) = seen_by_key.get(id) {
                first_seen
                    .entry((k.package.clone(), k.advisory_id.clone()))
                    .or_insert_with(|| (*at).to_owned());
            }
            verdicts.push(Verdict {
                package: &k.package,
                installed_version: &k.installed_version,
                arch: &k.arch,
                matched_name: &k.matched_name,
                key_kind: k.key_kind,
                compared_version: &k.compared_version,
                scheme: static_scheme(&k.scheme),
                advisory: *number,
                advisory_id: &index.advisory(*number).id,
                fixed_version: k.fixed_version.as_deref(),
                package_severity: k.package_severity.as_deref(),
                stream: k.stream.as_deref(),
                note: k.note.as_deref(),
                outcome: Outcome::Finding(k.state),
                kernel_running: None,
            });
        }
        let mut assembler = Assembler::with_feeds(&r.knowledge, feeds, options);
        let report = assembler.report(head, &verdicts, &first_seen);
        Ok(report.findings.iter().map(|f| f.to_doc()).collect())
    }
}
