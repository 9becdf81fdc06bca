//! Matching: an inventory against the distributions' own advisories, with a verdict — finding or
//! not, and why — for every (installed package, advisory entry) pair that names the package.
//!
//! * **Keys as the distribution keys them**: Debian, Ubuntu and Alpine advisories name source
//!   packages and are compared with the installed *source* version; RPM families name binary
//!   packages and are compared with the installed EVR. Debian's signed kernel images
//!   (`linux-signed-*`) are looked up as `linux` with the image's own version, as the tracker does.
//! * **Only the distribution's data**: the index holds advisories with a distribution release; NVD
//!   records only enrich (and a CVE NVD rejected never makes a finding).
//! * **The right stream**: on an Ubuntu host without Pro, an advisory's Pro/ESM entry is set aside
//!   when the advisory has an entry of the host's own stream for the package; otherwise it still
//!   says whether the host is affected (`no_fix_yet`, `will_not_fix`), and a fix published only
//!   under Pro is `fix_requires_subscription`, never `fix_available`. An RPM module build (`.module+el9…`/`.module_el9…` in the release) never matches a
//!   non-module package or the reverse.
//! * **Backports**: the comparison is the distribution's version ordering against the distribution's
//!   fixed version, so a backported fix (distro version below the upstream fixed version) is fixed.
//! * **Kernels**: on a live host the running kernel decides. A vulnerable running kernel with a fixed
//!   kernel installed is `PendingReboot`; a vulnerable kernel installed but not running is reported
//!   separately (`InstalledNotRunning`).
//!
//! The index is built once per knowledge base (or per release) and answers each host with hash
//! lookups and byte comparisons of precomputed sort keys; nothing here does I/O.

pub mod eol;

use std::collections::{HashMap, HashSet};

use rustc_hash::{FxHashMap, FxHashSet};

use patchwarden_model::{
    Advisory, Distro, FixState, InstalledPackage, Inventory, PackageKeyKind, Provenance, Source,
};
use patchwarden_version::SortKey;
use serde::Serialize;

/// What the index keeps of an advisory.
#[derive(Clone, Debug, Serialize)]
pub struct AdvisoryInfo {
    pub id: String,
    pub source: Source,
    pub feed: String,
    pub cves: Vec<String>,
    pub summary: Option<String>,
    pub published: Option<String>,
    pub modified: Option<String>,
    pub withdrawn: Option<String>,
    pub severity: Option<String>,
    pub cvss_vectors: Vec<String>,
    pub provenance: Provenance,
    /// Withdrawn, or every CVE rejected: never a finding (decided once, when indexed).
    #[serde(skip)]
    excluded: Option<NotAFinding>,
}

/// One affected-package entry, with its versions turned into sort keys.
#[derive(Clone, Debug)]
struct Entry {
    advisory: u32,
    stream: Option<String>,
    /// Only hosts with Ubuntu Pro/ESM receive this entry's fix.
    pro_only: bool,
    /// A RHEL extended-support stream's entry (`eus:9.0`): hosts on that stream receive it.
    extended: Option<String>,
    /// Hosts of the main stream receive it too (a main-stream fix that the extended stream of
    /// the same minor release carries on: `…:eus:9.2:main`). True for every main-stream entry.
    main_stream: bool,
    /// The fixed version is an RPM module build.
    fixed_module: bool,
    state: FixState,
    fixed: Option<(String, SortKey)>,
    introduced: Option<(String, SortKey)>,
    last_affected: Option<(String, SortKey)>,
    severity: Option<String>,
    note: Option<String>,
}

impl Entry {
    fn same_terms(&self, other: &Entry) -> bool {
        let key = |k: &Option<(String, SortKey)>| k.as_ref().map(|(v, _)| v.clone());
        self.advisory == other.advisory
            && self.stream == other.stream
            && self.pro_only == other.pro_only
            && self.extended == other.extended
            && self.main_stream == other.main_stream
            && self.fixed_module == other.fixed_module
            && self.state == other.state
            && key(&self.fixed) == key(&other.fixed)
            && key(&self.introduced) == key(&other.introduced)
            && key(&self.last_affected) == key(&other.last_affected)
            && self.severity == other.severity
            && self.note == other.note
    }
}

/// One release's entries by package name, source-keyed and binary-keyed apart.
#[derive(Default)]
struct ReleaseEntries {
    source: FxHashMap<String, Vec<Entry>>,
    binary: FxHashMap<String, Vec<Entry>>,
}

/// The advisories of a knowledge base, indexed by (distribution, release, package).
#[derive(Default)]
pub struct KnowledgeIndex {
    advisories: Vec<AdvisoryInfo>,
    entries: HashMap<(Distro, String), ReleaseEntries>,
    rejected_cves: HashSet<String>,
    /// The package names each advisory's entries use (by advisory number).
    advisory_packages: Vec<FxHashSet<String>>,
    /// Entries whose versions do not parse in their scheme (named, not matched).
    pub unusable: Vec<String>,
}

impl KnowledgeIndex {
    /// Builds the index from stored advisories `(feed, provenance, advisory)` and the CVEs NVD
    /// rejected.
    pub fn build(
        advisories: impl IntoIterator<Item = (String, Provenance, Advisory)>,
        rejected_cves: impl IntoIterator<Item = String>,
    ) -> KnowledgeIndex {
        let mut index = KnowledgeIndex {
            rejected_cves: rejected_cves.into_iter().collect(),
            ..Default::default()
        };
        for (feed, provenance, advisory) in advisories {
            index.add(feed, provenance, advisory);
        }
        index
    }

    /// Marks more CVEs as rejected by NVD: advisories added from now on whose every CVE is
    /// rejected are never findings (an index grown name by name learns rejections as it goes).
    pub fn reject(&mut self, cves: impl IntoIterator<Item = String>) {
        self.rejected_cves.extend(cves);
    }

    /// Adds one advisory (a new version of a known id is added beside the old one: rebuild the
    /// index to drop it). Returns its number when it names a package of a known release.
    pub fn add(&mut self, feed: String, provenance: Provenance, a: Advisory) -> Option<u32> {
        let number = self.advisories.len() as u32;
        let mut used = false;
        let mut names = FxHashSet::default();
        for p in &a.affected {
            let Some(release) = &p.release else { continue };
            let Some(distro) = release.distro else {
                continue;
            };
            let scheme = distro.scheme();
            let key = |v: &Option<String>, unusable: &mut Vec<String>| {
                v.as_ref().filter(|v| v.as_str() != "0").and_then(|v| {
                    match SortKey::new(scheme, v) {
                        Ok(k) => Some((v.clone(), k)),
                        Err(e) => {
                            unusable.push(format!("{} {}: {e}", a.id, p.package));
                            None
                        }
                    }
                })
            };
            let fixed = key(&p.fixed_version, &mut self.unusable);
            if p.state == FixState::Fixed && fixed.is_none() {
                continue; // a fixed entry without a usable version cannot be decided
            }
            let first = p.ranges.first();
            let pro_only = release.stream.as_deref().is_some_and(|s| {
                s == "pro" || s == "esm" || s.starts_with("pro:") || s.starts_with("esm")
            });
            let (extended, main_stream) = match release.stream.as_deref() {
                Some(stream) if distro == Distro::Rhel => extended_stream(stream),
                _ => (None, true),
            };
            let entry = Entry {
                advisory: number,
                stream: release.stream.clone(),
                pro_only,
                extended,
                main_stream,
                fixed_module: fixed.as_ref().is_some_and(|(v, _)| is_module_build(v)),
                state: p.state,
                fixed,
                introduced: key(
                    &first.and_then(|r| r.introduced.clone()),
                    &mut self.unusable,
                ),
                last_affected: key(
                    &first.and_then(|r| r.last_affected.clone()),
                    &mut self.unusable,
                ),
                severity: p.severity.clone(),
                note: p.note.clone(),
            };
            let by_kind = self
                .entries
                .entry((distro, release.release.clone()))
                .or_default();
            let map = match p.key_kind {
                PackageKeyKind::Source => &mut by_kind.source,
                PackageKeyKind::Binary => &mut by_kind.binary,
            };
            // A record listing the same package twice with the same terms (real Alpine secdb
            // records do) is one entry: one finding, not two identical ones.
            let list = map.entry(p.package.clone()).or_default();
            if !list.iter().any(|e| e.same_terms(&entry)) {
                list.push(entry);
            }
            names.insert(p.package.clone());
            used = true;
        }
        if !used {
            return None;
        }
        self.advisory_packages.push(names);
        let excluded = if a.withdrawn.is_some() {
            Some(NotAFinding::Withdrawn)
        } else if !a.cves.is_empty() && a.cves.iter().all(|c| self.rejected_cves.contains(c)) {
            Some(NotAFinding::Rejected)
        } else {
            None
        };
        self.advisories.push(AdvisoryInfo {
            excluded,
            id: a.id,
            source: a.source,
            feed,
            cves: a.cves,
            summary: a.summary,
            published: a.published,
            modified: a.modified,
            withdrawn: a.withdrawn,
            severity: a.severity,
            cvss_vectors: a.cvss_vectors,
            provenance,
        });
        Some(number)
    }

    /// The package names an advisory's entries use: which hosts a new advisory can concern.
    pub fn packages_of(&self, number: u32) -> &FxHashSet<String> {
        &self.advisory_packages[number as usize]
    }

    pub fn advisory(&self, number: u32) -> &AdvisoryInfo {
        &self.advisories[number as usize]
    }

    pub fn advisory_count(&self) -> usize {
        self.advisories.len()
    }
}

pub use patchwarden_model::FindingState;

/// Why a considered pair is not a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotAFinding {
    /// The installed version is at or above the distribution's fixed version (also when that
    /// version is a backport lower than upstream's fix).
    FixedVersionInstalled,
    /// The distribution says this package in this release never had the flaw.
    DistributionSaysNotAffected,
    /// The installed version predates the range's `introduced`.
    BeforeIntroduced,
    /// The installed version is after the range's `last_affected`.
    AfterLastAffected,
    /// The advisory was withdrawn by its source.
    Withdrawn,
    /// Every CVE of the advisory is rejected in NVD.
    Rejected,
    /// The entry belongs to a stream the host does not receive (e.g. Ubuntu Pro without Pro).
    OtherStream,
    /// An RPM module build against a non-module package, or the reverse.
    OtherModuleStream,
    /// The distribution has not triaged the issue yet (Debian `undetermined`).
    Undetermined,
    /// A kernel that is installed but not running, fixed or not: the running one decides.
    KernelNotRunningFixed,
}

/// The outcome of one (installed package, advisory entry) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Outcome {
    Finding(FindingState),
    NotAFinding(NotAFinding),
}

/// A considered pair with everything needed to explain it, borrowed from the inventory and the
/// index (a fleet produces tens of millions of these: they allocate nothing).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Verdict<'a> {
    /// The installed binary package.
    pub package: &'a str,
    pub installed_version: &'a str,
    pub arch: &'a str,
    /// The name the advisory was looked up by, and whether it is a source or binary name.
    pub matched_name: &'a str,
    pub key_kind: PackageKeyKind,
    /// The installed version that was compared (the source version for source-keyed data).
    pub compared_version: &'a str,
    /// The version ordering used: `deb`, `rpm`, `apk`.
    pub scheme: &'static str,
    #[serde(skip)]
    pub advisory: u32,
    pub advisory_id: &'a str,
    pub fixed_version: Option<&'a str>,
    /// The distribution's rating of this package in this advisory, where it gives one.
    pub package_severity: Option<&'a str>,
    pub stream: Option<&'a str>,
    pub note: Option<&'a str>,
    pub outcome: Outcome,
    /// For kernel packages: whether this one is the running kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_running: Option<bool>,
}

/// Host facts matching needs beyond the inventory.
#[derive(Clone, Debug, Default)]
pub struct MatchOptions {
    /// The host receives Ubuntu Pro/ESM updates (`None`: decided from the inventory — its apt
    /// sources, else any installed version carrying `+esm`; see [`receives_ubuntu_pro`]).
    pub ubuntu_pro: Option<bool>,
}

/// Whether a host receives Ubuntu Pro/ESM updates when the caller did not say: on Ubuntu, what
/// the inventory read from the host's apt sources (`OsInfo::ubuntu_pro`); when it could not tell,
/// any installed version carrying `+esm`.
pub fn receives_ubuntu_pro<'a>(
    os: &patchwarden_model::OsInfo,
    versions: impl IntoIterator<Item = &'a str>,
) -> bool {
    if os.release.as_ref().map(|r| r.distro) != Some(Distro::Ubuntu) {
        return false;
    }
    match &os.ubuntu_pro {
        Some(pro) => pro.receives,
        None => patchwarden_model::UbuntuPro::from_installed_versions(versions).receives,
    }
}

/// An installed package whose version (or source version, where advisories key the source) does
/// not parse in its release's version scheme: it cannot be compared with any advisory, so it is
/// named, never silently passed over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnparsableVersion<'a> {
    pub package: &'a str,
    pub arch: &'a str,
    /// `version` or `source_version`.
    pub field: &'static str,
    pub version: &'a str,
    pub reason: String,
}

/// The installed packages of `inv` that matching cannot judge because a version it would compare
/// does not parse (nothing for a host of an unknown release: nothing is matched there).
pub fn unparsable_versions(inv: &Inventory) -> Vec<UnparsableVersion<'_>> {
    let Some(release) = &inv.os.release else {
        return Vec::new();
    };
    let scheme = release.distro.scheme();
    let mut out = Vec::new();
    for p in &inv.packages {
        let (_, source_version) = lookup_key(release.distro, p, PackageKeyKind::Source);
        let fields = [
            ("version", p.version.as_str()),
            ("source_version", source_version),
        ];
        // The source version is named only where it differs (else the same version twice).
        let distinct = if source_version == p.version { 1 } else { 2 };
        for (field, version) in fields.into_iter().take(distinct) {
            if let Err(e) = SortKey::new(scheme, version) {
                out.push(UnparsableVersion {
                    package: &p.name,
                    arch: &p.arch,
                    field,
                    version,
                    reason: e.to_string(),
                });
            }
        }
    }
    out
}

/// The extended-support stream of a RHEL entry's stream and whether the main stream receives it
/// too: `appstream:eus:9.0` → (`eus:9.0`, no); `baseos:eus:9.2:main` → (`eus:9.2`, yes);
/// `baseos` → (none, yes).
fn extended_stream(stream: &str) -> (Option<String>, bool) {
    let Some((_, rest)) = stream.split_once(':') else {
        return (None, true);
    };
    let mut parts = rest.split(':');
    let extended = parts
        .next()
        .and_then(patchwarden_model::RhelPhase::from_name)
        .filter(|p| *p != patchwarden_model::RhelPhase::Main);
    match extended {
        Some(phase) => {
            let minor = parts.next().unwrap_or("");
            let main = parts.next() == Some("main");
            (Some(format!("{}:{minor}", phase.as_str())), main)
        }
        None => (None, true),
    }
}

/// The note on a RHEL host of an extended-support stream when only the main stream has the fix.
pub const FIX_IN_MAIN_STREAM_ONLY: &str = "fixed in RHEL's main stream only: no fix is published for the extended-support stream this host follows (moving the host to the main stream brings the fix)";

/// Whether an RPM release marks a module build.
fn is_module_build(version: &str) -> bool {
    version.contains(".module+") || version.contains(".module_")
}

/// The name and version a package is looked up with in data keyed by `kind`.
fn lookup_key(distro: Distro, p: &InstalledPackage, kind: PackageKeyKind) -> (&str, &str) {
    match kind {
        PackageKeyKind::Binary => (&p.name, &p.version),
        PackageKeyKind::Source => {
            if distro == Distro::Debian && p.source_name.starts_with("linux-signed-") {
                // Signed kernel images: the tracker tracks `linux`; the image has linux's version.
                ("linux", &p.version)
            } else if distro == Distro::Alpine {
                (&p.source_name, &p.version)
            } else {
                (&p.source_name, &p.source_version)
            }
        }
    }
}

/// The package names an inventory can be matched by (binary and source names, as advisories key
/// them): what to load from a store for this host.
pub fn lookup_names(inv: &Inventory) -> Vec<String> {
    let Some(release) = &inv.os.release else {
        return Vec::new();
    };
    let mut names: Vec<String> = inv
        .packages
        .iter()
        .flat_map(|p| {
            [PackageKeyKind::Source, PackageKeyKind::Binary]
                .map(|kind| lookup_key(release.distro, p, kind).0.to_owned())
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Every verdict for an inventory: findings and the pairs that are not findings, with reasons.
pub fn evaluate<'a>(
    inv: &'a Inventory,
    index: &'a KnowledgeIndex,
    options: &MatchOptions,
) -> Vec<Verdict<'a>> {
    evaluate_filtered(inv, index, options, None, true, None)
}

/// Only the findings (what a fleet re-evaluation needs): the same rules, without materializing the
/// pairs that are not findings.
pub fn evaluate_findings<'a>(
    inv: &'a Inventory,
    index: &'a KnowledgeIndex,
    options: &MatchOptions,
) -> Vec<Verdict<'a>> {
    let mut v = evaluate_filtered(inv, index, options, None, false, None);
    v.retain(|v| matches!(v.outcome, Outcome::Finding(_)));
    v
}

/// The verdicts of one advisory only (a newly arrived one): the same rules, restricted to the
/// packages it names.
pub fn evaluate_advisory<'a>(
    inv: &'a Inventory,
    index: &'a KnowledgeIndex,
    options: &MatchOptions,
    advisory: u32,
) -> Vec<Verdict<'a>> {
    evaluate_filtered(inv, index, options, Some(advisory), true, None)
}

/// [`evaluate_advisory`] on some of the host's packages only (positions in `inv.packages`), for a
/// fleet that keeps an inverted index of who holds what. Kernel rules see only these packages.
pub fn evaluate_advisory_on<'a>(
    inv: &'a Inventory,
    index: &'a KnowledgeIndex,
    options: &MatchOptions,
    advisory: u32,
    packages: &[usize],
) -> Vec<Verdict<'a>> {
    evaluate_filtered(inv, index, options, Some(advisory), true, Some(packages))
}

fn evaluate_filtered<'a>(
    inv: &'a Inventory,
    index: &'a KnowledgeIndex,
    options: &MatchOptions,
    only: Option<u32>,
    keep_all: bool,
    positions: Option<&[usize]>,
) -> Vec<Verdict<'a>> {
    let Some(release) = &inv.os.release else {
        return Vec::new();
    };
    let own = index
        .entries
        .get(&(release.distro, release.release.clone()));
    // A RHEL rebuild also reads Red Hat's unfixed statements for the RHEL release it follows.
    let upstream = release
        .distro
        .follows_rhel()
        .then(|| index.entries.get(&(Distro::Rhel, release.release.clone())))
        .flatten();
    if own.is_none() && upstream.is_none() {
        return Vec::new();
    }
    static EMPTY: std::sync::LazyLock<ReleaseEntries> = std::sync::LazyLock::new(Default::default);
    let by_package = own.unwrap_or(&EMPTY);
    let scheme = release.distro.scheme();
    let ubuntu_pro = options.ubuntu_pro.unwrap_or_else(|| {
        receives_ubuntu_pro(&inv.os, inv.packages.iter().map(|p| p.version.as_str()))
    });
    let host_stream = inv.os.rhel_extended_stream();
    // Which kernel release runs (live hosts only); every kernel image package (`kernel` and
    // `kernel-core` alike) is judged by whether its release is that one.
    let running = inv.kernel.running.as_deref();
    let mariner = matches!(release.distro, Distro::Mariner | Distro::Azurelinux);

    let named: Option<&FxHashSet<String>> = only.map(|n| &index.advisory_packages[n as usize]);
    let mut out = Vec::new();
    let chosen: Box<dyn Iterator<Item = &InstalledPackage>> = match positions {
        Some(list) => Box::new(list.iter().filter_map(|i| inv.packages.get(*i))),
        None => Box::new(inv.packages.iter()),
    };
    for p in chosen {
        for kind in [PackageKeyKind::Source, PackageKeyKind::Binary] {
            let map = match kind {
                PackageKeyKind::Source => &by_package.source,
                PackageKeyKind::Binary => &by_package.binary,
            };
            if map.is_empty() {
                continue;
            }
            let (name, version) = lookup_key(release.distro, p, kind);
            if named.is_some_and(|set| !set.contains(name)) {
                continue;
            }
            let Some(entries) = map.get(name) else {
                continue;
            };
            let Ok(installed_key) = SortKey::new(scheme, version) else {
                continue;
            };
            let installed_module = is_module_build(version);
            let kernel_running = running.and_then(|run| {
                patchwarden_model::boot_release(p, mariner).map(|release| release == run)
            });
            for e in entries
                .iter()
                .filter(|e| only.is_none_or(|n| e.advisory == n))
            {
                let a = index.advisory(e.advisory);
                // A Pro-only entry on a host without Pro: when the advisory also has an entry of
                // the host's own stream for this package, that one decides; otherwise the Pro
                // entry still tells whether the host is affected (only its fix is out of reach).
                let mut note = e.note.as_deref();
                let outcome = if e.pro_only
                    && !ubuntu_pro
                    && entries
                        .iter()
                        .any(|o| o.advisory == e.advisory && !o.pro_only)
                {
                    Outcome::NotAFinding(NotAFinding::OtherStream)
                } else if e.extended.is_some() && e.extended == host_stream {
                    // The host's own extended-support stream.
                    decide(e, a, &installed_key, installed_module, ubuntu_pro)
                } else if e.extended.is_some() && !(e.main_stream && host_stream.is_none()) {
                    // Another extended stream's entry.
                    Outcome::NotAFinding(NotAFinding::OtherStream)
                } else if let Some(own) = &host_stream {
                    // A main-stream entry on a host of an extended stream: the host's own
                    // stream's entry decides where the advisory has one; else the main stream
                    // tells whether it is affected, and a main-stream fix is out of its reach.
                    if entries
                        .iter()
                        .any(|o| o.advisory == e.advisory && o.extended.as_ref() == Some(own))
                    {
                        Outcome::NotAFinding(NotAFinding::OtherStream)
                    } else {
                        match decide(e, a, &installed_key, installed_module, ubuntu_pro) {
                            Outcome::Finding(FindingState::FixAvailable) => {
                                note = Some(FIX_IN_MAIN_STREAM_ONLY);
                                Outcome::Finding(FindingState::NoFixYet)
                            }
                            other => other,
                        }
                    }
                } else {
                    decide(e, a, &installed_key, installed_module, ubuntu_pro)
                };
                // Kernel verdicts are kept: the kernel rules read the fixed ones.
                if !keep_all && kernel_running.is_none() && !matches!(outcome, Outcome::Finding(_))
                {
                    continue;
                }
                out.push(Verdict {
                    package: &p.name,
                    installed_version: &p.version,
                    arch: &p.arch,
                    matched_name: name,
                    key_kind: kind,
                    compared_version: version,
                    scheme: scheme.name(),
                    advisory: e.advisory,
                    advisory_id: &a.id,
                    fixed_version: e
                        .fixed
                        .as_ref()
                        .map(|(v, _)| v.as_str())
                        .filter(|_| note != Some(FIX_IN_MAIN_STREAM_ONLY)),
                    package_severity: e.severity.as_deref(),
                    stream: e.stream.as_deref(),
                    note,
                    outcome,
                    kernel_running,
                });
            }
        }
        if let Some(upstream) = upstream {
            derived_from_red_hat(
                upstream, index, p, scheme, only, keep_all, ubuntu_pro, &mut out,
            );
        }
    }
    settle_kernels(&mut out);
    out
}

/// The note on a verdict derived from Red Hat's statement for a rebuild.
pub const DERIVED_FROM_RED_HAT: &str = "derived from Red Hat's VEX statement for the RHEL release this rebuild follows (the rebuild publishes errata for fixed flaws only)";

/// Red Hat's unfixed statements (VEX: affected, fix deferred, will not fix, out of support scope)
/// for the RHEL release a rebuild follows, matched by the installed package's source RPM name
/// (Red Hat states them per source component) and marked as derived. Fixed versions never come
/// from here: the rebuild's own errata give those.
#[allow(clippy::too_many_arguments)]
fn derived_from_red_hat<'a>(
    upstream: &'a ReleaseEntries,
    index: &'a KnowledgeIndex,
    p: &'a InstalledPackage,
    scheme: patchwarden_version::Scheme,
    only: Option<u32>,
    keep_all: bool,
    ubuntu_pro: bool,
    out: &mut Vec<Verdict<'a>>,
) {
    let Some(entries) = upstream.binary.get(p.source_name.as_str()) else {
        return;
    };
    let Ok(installed_key) = SortKey::new(scheme, &p.source_version) else {
        return;
    };
    // Rebuilds follow RHEL's main stream: extended-support streams' statements are not theirs.
    for e in entries.iter().filter(|e| {
        only.is_none_or(|n| e.advisory == n)
            && e.main_stream
            && matches!(
                e.state,
                FixState::NotFixedYet | FixState::WillNotFix | FixState::EndOfLife
            )
            && index.advisory(e.advisory).source == Source::RedhatVex
    }) {
        let a = index.advisory(e.advisory);
        let outcome = decide(e, a, &installed_key, false, ubuntu_pro);
        if !keep_all && !matches!(outcome, Outcome::Finding(_)) {
            continue;
        }
        out.push(Verdict {
            package: &p.name,
            installed_version: &p.version,
            arch: &p.arch,
            matched_name: &p.source_name,
            key_kind: PackageKeyKind::Source,
            compared_version: &p.source_version,
            scheme: scheme.name(),
            advisory: e.advisory,
            advisory_id: &a.id,
            fixed_version: None,
            package_severity: e.severity.as_deref(),
            stream: e.stream.as_deref(),
            note: Some(DERIVED_FROM_RED_HAT),
            outcome,
            kernel_running: None,
        });
    }
}

/// The outcome of one entry for one installed version, before kernel rules.
fn decide(
    e: &Entry,
    a: &AdvisoryInfo,
    installed: &SortKey,
    installed_module: bool,
    ubuntu_pro: bool,
) -> Outcome {
    use NotAFinding as N;
    if let Some(reason) = a.excluded {
        return Outcome::NotAFinding(reason); // withdrawn, or every CVE rejected
    }
    // Red Hat product streams (baseos, appstream) are all of the release; Ubuntu Pro is not: on
    // a host without Pro, a Pro entry's fix needs a subscription (the caller has already set aside
    // Pro entries that an entry of the host's own stream supersedes).
    let subscription_only = e.pro_only && !ubuntu_pro;
    if e.fixed.is_some() && e.fixed_module != installed_module {
        return Outcome::NotAFinding(N::OtherModuleStream);
    }
    if let Some((_, intro)) = &e.introduced {
        if installed.as_bytes() < intro.as_bytes() {
            return Outcome::NotAFinding(N::BeforeIntroduced);
        }
    }
    match e.state {
        FixState::NotAffected => Outcome::NotAFinding(N::DistributionSaysNotAffected),
        FixState::Undetermined => Outcome::NotAFinding(N::Undetermined),
        FixState::Fixed => {
            let (_, fixed) = e.fixed.as_ref().expect("fixed entries carry a version");
            if installed.as_bytes() >= fixed.as_bytes() {
                Outcome::NotAFinding(N::FixedVersionInstalled)
            } else if subscription_only {
                Outcome::Finding(FindingState::FixRequiresSubscription)
            } else {
                Outcome::Finding(FindingState::FixAvailable)
            }
        }
        FixState::NotFixedYet | FixState::WillNotFix | FixState::EndOfLife => {
            if let Some((_, last)) = &e.last_affected {
                if installed.as_bytes() > last.as_bytes() {
                    return Outcome::NotAFinding(N::AfterLastAffected);
                }
            }
            Outcome::Finding(if e.state == FixState::NotFixedYet {
                FindingState::NoFixYet
            } else {
                FindingState::WillNotFix
            })
        }
    }
}

/// Kernel rules, per advisory: the running kernel decides; other affected kernels are reported as
/// installed but not running; a running affected kernel with a fixed one installed waits for a reboot.
fn settle_kernels(verdicts: &mut [Verdict<'_>]) {
    let mut fixed_installed: HashSet<u32> = HashSet::new();
    for v in verdicts.iter() {
        if v.kernel_running.is_some()
            && v.outcome == Outcome::NotAFinding(NotAFinding::FixedVersionInstalled)
        {
            fixed_installed.insert(v.advisory);
        }
    }
    for v in verdicts.iter_mut() {
        match (v.kernel_running, v.outcome) {
            (Some(true), Outcome::Finding(FindingState::FixAvailable))
                if fixed_installed.contains(&v.advisory) =>
            {
                v.outcome = Outcome::Finding(FindingState::PendingReboot);
            }
            (Some(false), Outcome::Finding(_)) => {
                v.outcome = Outcome::Finding(FindingState::InstalledNotRunning);
            }
            (Some(false), Outcome::NotAFinding(NotAFinding::FixedVersionInstalled)) => {
                v.outcome = Outcome::NotAFinding(NotAFinding::KernelNotRunningFixed);
            }
            _ => {}
        }
    }
}
