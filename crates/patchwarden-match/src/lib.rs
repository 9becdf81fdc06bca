//! Matching: an inventory against the distributions' own advisories, with a verdict — finding or
//! not, and why — for every (installed package, advisory entry) pair that names the package.
//!
//! * **Keys as the distribution keys them**: Debian, Ubuntu and Alpine advisories name source
//!   packages and are compared with the installed *source* version; RPM families name binary
//!   packages and are compared with the installed EVR. Debian's signed kernel images
//!   (`linux-signed-*`) are looked up as `linux` with the image's own version, as the tracker does.
//! * **Only the distribution's data**: the index holds advisories with a distribution release; NVD
//!   records only enrich (and a CVE NVD rejected never makes a finding).
//! * **The right stream**: entries of another stream (Ubuntu Pro/ESM when the host has no Pro) do not
//!   match; an RPM module build (`.module+el9…`/`.module_el9…` in the release) never matches a
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
}

/// One affected-package entry, with its versions turned into sort keys.
#[derive(Clone, Debug)]
struct Entry {
    advisory: u32,
    stream: Option<String>,
    key_kind: PackageKeyKind,
    state: FixState,
    fixed: Option<(String, SortKey)>,
    introduced: Option<(String, SortKey)>,
    last_affected: Option<(String, SortKey)>,
    severity: Option<String>,
    note: Option<String>,
}

/// The advisories of a knowledge base, indexed by (distribution, release, package).
#[derive(Default)]
pub struct KnowledgeIndex {
    advisories: Vec<AdvisoryInfo>,
    entries: HashMap<(Distro, String), HashMap<String, Vec<Entry>>>,
    rejected_cves: HashSet<String>,
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

    /// Adds (or, for a new version of a known id, adds beside) one advisory.
    pub fn add(&mut self, feed: String, provenance: Provenance, a: Advisory) {
        let number = self.advisories.len() as u32;
        let mut used = false;
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
            let entry = Entry {
                advisory: number,
                stream: release.stream.clone(),
                key_kind: p.key_kind,
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
            self.entries
                .entry((distro, release.release.clone()))
                .or_default()
                .entry(p.package.clone())
                .or_default()
                .push(entry);
            used = true;
        }
        if used {
            self.advisories.push(AdvisoryInfo {
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
        }
    }

    pub fn advisory(&self, number: u32) -> &AdvisoryInfo {
        &self.advisories[number as usize]
    }

    pub fn advisory_count(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_rejected(&self, cve: &str) -> bool {
        self.rejected_cves.contains(cve)
    }
}

/// The state of a finding (what the user must do about it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingState {
    /// A fixed version exists and is not installed.
    FixAvailable,
    /// Affected; the distribution has not published a fix.
    NoFixYet,
    /// Affected; the distribution will not fix it (or no longer supports the package).
    WillNotFix,
    /// The running kernel is affected; a fixed kernel is installed and waits for a reboot.
    PendingReboot,
    /// An affected kernel is installed but not running (it would run after a reboot or as a fallback).
    InstalledNotRunning,
    /// The OS release is past its end of standard support.
    Eol,
}

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

/// A considered pair with everything needed to explain it.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The installed binary package.
    pub package: String,
    pub installed_version: String,
    pub arch: String,
    /// The name the advisory was looked up by, and whether it is a source or binary name.
    pub matched_name: String,
    pub key_kind: PackageKeyKind,
    /// The installed version that was compared (the source version for source-keyed data).
    pub compared_version: String,
    /// The version ordering used: `deb`, `rpm`, `apk`.
    pub scheme: &'static str,
    #[serde(skip)]
    pub advisory: u32,
    pub advisory_id: String,
    pub fixed_version: Option<String>,
    /// The distribution's rating of this package in this advisory, where it gives one.
    pub package_severity: Option<String>,
    pub stream: Option<String>,
    pub note: Option<String>,
    pub outcome: Outcome,
    /// For kernel packages: whether this one is the running kernel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_running: Option<bool>,
}

/// Host facts matching needs beyond the inventory.
#[derive(Clone, Debug, Default)]
pub struct MatchOptions {
    /// The host receives Ubuntu Pro/ESM updates (`None`: decided from the inventory — any installed
    /// version carrying `+esm`).
    pub ubuntu_pro: Option<bool>,
}

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

/// Every verdict for an inventory: findings and the pairs that are not findings, with reasons.
pub fn evaluate(inv: &Inventory, index: &KnowledgeIndex, options: &MatchOptions) -> Vec<Verdict> {
    let Some(release) = &inv.os.release else {
        return Vec::new();
    };
    let Some(by_package) = index
        .entries
        .get(&(release.distro, release.release.clone()))
    else {
        return Vec::new();
    };
    let scheme = release.distro.scheme();
    let ubuntu_pro = options
        .ubuntu_pro
        .unwrap_or_else(|| inv.packages.iter().any(|p| p.version.contains("+esm")));
    // Kernel packages: (name, version) → its kernel release; which release runs.
    let kernels: HashMap<(&str, &str), &str> = inv
        .kernel
        .installed
        .iter()
        .map(|k| ((k.package.as_str(), k.version.as_str()), k.release.as_str()))
        .collect();
    let running = inv.kernel.running.as_deref();

    let mut out = Vec::new();
    // Per (advisory entry, kernel family): verdicts of kernels, settled after all are seen.
    for p in &inv.packages {
        for kind in [PackageKeyKind::Source, PackageKeyKind::Binary] {
            let (name, version) = lookup_key(release.distro, p, kind);
            let Some(entries) = by_package.get(name) else {
                continue;
            };
            let Ok(installed_key) = SortKey::new(scheme, version) else {
                continue;
            };
            for e in entries.iter().filter(|e| e.key_kind == kind) {
                let a = index.advisory(e.advisory);
                let outcome = decide(e, a, index, &installed_key, version, ubuntu_pro);
                let kernel_running = kernels
                    .get(&(p.name.as_str(), p.version.as_str()))
                    .and_then(|r| running.map(|run| *r == run));
                out.push(Verdict {
                    package: p.name.clone(),
                    installed_version: p.version.clone(),
                    arch: p.arch.clone(),
                    matched_name: name.to_owned(),
                    key_kind: kind,
                    compared_version: version.to_owned(),
                    scheme: scheme.name(),
                    advisory: e.advisory,
                    advisory_id: a.id.clone(),
                    fixed_version: e.fixed.as_ref().map(|(v, _)| v.clone()),
                    package_severity: e.severity.clone(),
                    stream: e.stream.clone(),
                    note: e.note.clone(),
                    outcome,
                    kernel_running,
                });
            }
        }
    }
    settle_kernels(&mut out);
    out
}

/// The outcome of one entry for one installed version, before kernel rules.
fn decide(
    e: &Entry,
    a: &AdvisoryInfo,
    index: &KnowledgeIndex,
    installed: &SortKey,
    installed_text: &str,
    ubuntu_pro: bool,
) -> Outcome {
    use NotAFinding as N;
    if a.withdrawn.is_some() {
        return Outcome::NotAFinding(N::Withdrawn);
    }
    if !a.cves.is_empty() && a.cves.iter().all(|c| index.is_rejected(c)) {
        return Outcome::NotAFinding(N::Rejected);
    }
    if let Some(stream) = &e.stream {
        let receives = match stream.as_str() {
            "pro" | "esm" => ubuntu_pro,
            s if s.starts_with("pro:") || s.starts_with("esm") => ubuntu_pro,
            _ => true, // Red Hat product streams (baseos, appstream) are all of the release
        };
        if !receives {
            return Outcome::NotAFinding(N::OtherStream);
        }
    }
    if let Some((fixed_text, _)) = &e.fixed {
        if is_module_build(fixed_text) != is_module_build(installed_text) {
            return Outcome::NotAFinding(N::OtherModuleStream);
        }
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
fn settle_kernels(verdicts: &mut [Verdict]) {
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
