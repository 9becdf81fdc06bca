//! Plans: for one host and a baseline, the exact version each package goes to — taken from what the
//! host's own repositories offer — which findings each update closes, what the baseline held back,
//! what no repository can fix yet, and whether a reboot will be needed. A plan is frozen: the
//! versions in it are what a later wave installs, even if the repositories move on.
//!
//! The candidate of a package is the highest version its repositories offer for its name and
//! architecture (apt's choice when no pins are set; dnf's "latest"). A fix is keyed as its source
//! keys it: Debian-family advisories name source packages and source versions (every installed
//! binary built from the source moves to its candidate, which must be built from a fixed source
//! version), RPM advisories binary packages and EVRs.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use patchwarden_model::InstalledPackage;
use patchwarden_version::{compare, Scheme};
use serde::{Deserialize, Serialize};

use crate::baseline::{Baseline, BaselineDecision, UpdateCandidate};

/// A fix a finding asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WantedFix {
    /// The package as the advisory keys it (source name for deb data, binary for rpm data).
    pub package: String,
    /// The first fixed version (source version for deb data).
    pub fixed_version: String,
    /// What the baseline judges (advisory, CVEs, severity, KEV, release).
    pub candidate: UpdateCandidate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedUpdate {
    pub name: String,
    pub arch: String,
    pub from: String,
    pub to: String,
    /// Advisory ids (or CVEs when an advisory has no id) this update closes.
    pub closes: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnavailableFix {
    pub advisory: String,
    pub package: String,
    pub fixed_version: String,
    /// The best the repositories offer for the package's binaries (none: not offered at all).
    pub best_available: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    pub updates: Vec<PlannedUpdate>,
    /// (advisory, the baseline's reason).
    pub held: Vec<(String, String)>,
    pub unavailable: Vec<UnavailableFix>,
    /// A kernel, the C library or the init system is replaced.
    pub reboot_required: bool,
}

/// Packages whose replacement needs a reboot to take effect (name prefixes).
const REBOOT_PACKAGES: [&str; 7] = [
    "linux-image-",
    "kernel",
    "libc6",
    "glibc",
    "systemd",
    "linux-firmware",
    "microcode",
];

/// The highest version offered per (name, arch), `all`/`noarch` offers also matching.
pub struct Candidates<'a> {
    scheme: Scheme,
    best: BTreeMap<(&'a str, &'a str), &'a InstalledPackage>,
}

impl<'a> Candidates<'a> {
    /// Offers whose version does not parse are skipped (an index is the repository's business).
    pub fn new(scheme: Scheme, offered: &'a [InstalledPackage]) -> Candidates<'a> {
        let mut best: BTreeMap<(&str, &str), &InstalledPackage> = BTreeMap::new();
        for p in offered {
            let key = (p.name.as_str(), p.arch.as_str());
            match best.get(&key) {
                Some(b)
                    if !matches!(
                        compare(scheme, &p.version, &b.version),
                        Ok(std::cmp::Ordering::Greater)
                    ) => {}
                _ if patchwarden_version::validate(scheme, &p.version).is_err() => {}
                _ => {
                    best.insert(key, p);
                }
            }
        }
        Candidates { scheme, best }
    }

    /// The candidate for an installed package.
    pub fn for_installed(&self, installed: &InstalledPackage) -> Option<&'a InstalledPackage> {
        let name = installed.name.as_str();
        [installed.arch.as_str(), "all", "noarch"]
            .iter()
            .find_map(|arch| self.best.get(&(name, *arch)).copied())
    }

    fn newer(&self, a: &str, b: &str) -> bool {
        matches!(compare(self.scheme, a, b), Ok(std::cmp::Ordering::Greater))
    }

    fn at_least(&self, a: &str, b: &str) -> bool {
        !matches!(
            compare(self.scheme, a, b),
            Ok(std::cmp::Ordering::Less) | Err(_)
        )
    }
}

/// Every installed package with a newer candidate: what `apt-get upgrade` / `dnf upgrade` would
/// move (before dependency resolution), held packages excepted.
pub fn all_upgrades(
    scheme: Scheme,
    installed: &[InstalledPackage],
    offered: &[InstalledPackage],
) -> Vec<PlannedUpdate> {
    let candidates = Candidates::new(scheme, offered);
    let mut out: Vec<PlannedUpdate> = installed
        .iter()
        .filter(|p| !p.held)
        .filter_map(|p| {
            let c = candidates.for_installed(p)?;
            candidates
                .newer(&c.version, &p.version)
                .then(|| PlannedUpdate {
                    name: p.name.clone(),
                    arch: p.arch.clone(),
                    from: p.version.clone(),
                    to: c.version.clone(),
                    closes: BTreeSet::new(),
                })
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    out
}

/// The plan for one host: the fixes its findings want, judged by the baseline on `today`, each
/// resolved to the exact versions its repositories offer.
pub fn plan_host(
    scheme: Scheme,
    installed: &[InstalledPackage],
    offered: &[InstalledPackage],
    fixes: &[WantedFix],
    baseline: &Baseline,
    today: Date,
) -> HostPlan {
    let candidates = Candidates::new(scheme, offered);
    let by_source = scheme == Scheme::Deb;
    let mut updates: BTreeMap<(String, String), PlannedUpdate> = BTreeMap::new();
    let mut plan = HostPlan::default();
    for fix in fixes {
        let label = fix
            .candidate
            .advisory_id
            .clone()
            .or_else(|| fix.candidate.cves.first().cloned())
            .unwrap_or_else(|| fix.package.clone());
        if let BaselineDecision::Held { reason } = baseline.decide(&fix.candidate, today) {
            plan.held.push((label, reason));
            continue;
        }
        let binaries: Vec<&InstalledPackage> = installed
            .iter()
            .filter(|p| {
                if by_source {
                    p.source_name == fix.package
                } else {
                    p.name == fix.package
                }
            })
            .collect();
        let mut best_available: Option<String> = None;
        let mut fixed_all = !binaries.is_empty();
        let mut chosen = Vec::new();
        for p in &binaries {
            let Some(c) = candidates.for_installed(p) else {
                fixed_all = false;
                continue;
            };
            let offered_fix = if by_source {
                &c.source_version
            } else {
                &c.version
            };
            if best_available
                .as_deref()
                .is_none_or(|b| candidates.newer(offered_fix, b))
            {
                best_available = Some(offered_fix.clone());
            }
            if !candidates.at_least(offered_fix, &fix.fixed_version) {
                fixed_all = false;
                continue;
            }
            if candidates.newer(&c.version, &p.version) {
                chosen.push((*p, c));
            }
        }
        if !fixed_all {
            plan.unavailable.push(UnavailableFix {
                advisory: label,
                package: fix.package.clone(),
                fixed_version: fix.fixed_version.clone(),
                best_available,
            });
            continue;
        }
        for (p, c) in chosen {
            updates
                .entry((p.name.clone(), p.arch.clone()))
                .or_insert_with(|| PlannedUpdate {
                    name: p.name.clone(),
                    arch: p.arch.clone(),
                    from: p.version.clone(),
                    to: c.version.clone(),
                    closes: BTreeSet::new(),
                })
                .closes
                .insert(label.clone());
        }
    }
    plan.updates = updates.into_values().collect();
    plan.reboot_required = plan
        .updates
        .iter()
        .any(|u| REBOOT_PACKAGES.iter().any(|r| u.name.starts_with(r)));
    plan
}

/// The fixes a host's own repositories announce (RPM `updateinfo`): for every advisory, each of its
/// packages installed (same name and architecture) at an older version than the advisory ships —
/// the advisories `dnf updateinfo list` calls applicable. The baseline then judges each by its
/// kind (`security`, `bugfix`, …), severity, CVEs and issue date.
pub fn updateinfo_fixes(
    installed: &[InstalledPackage],
    advisories: &[patchwarden_model::updates::UpdateAdvisory],
) -> Vec<WantedFix> {
    let mut fixes = Vec::new();
    for a in advisories {
        for p in &a.packages {
            let behind = installed.iter().any(|i| {
                i.name == p.name
                    && i.arch == p.arch
                    && matches!(
                        compare(Scheme::Rpm, &i.version, &p.version),
                        Ok(std::cmp::Ordering::Less)
                    )
            });
            let duplicate = fixes.iter().any(|f: &WantedFix| {
                f.package == p.name && f.candidate.advisory_id.as_deref() == Some(&a.id)
            });
            if !behind || duplicate {
                continue;
            }
            fixes.push(WantedFix {
                package: p.name.clone(),
                fixed_version: p.version.clone(),
                candidate: UpdateCandidate {
                    package: p.name.clone(),
                    advisory_id: Some(a.id.clone()),
                    cves: a.cves.clone(),
                    severity: a.severity.clone(),
                    kev: false,
                    classification: Some(a.kind.clone()).filter(|k| !k.is_empty()),
                    released: a
                        .issued
                        .as_deref()
                        .map(|d| d.get(..10).unwrap_or(d).to_owned()),
                },
            });
        }
    }
    fixes
}

/// Adds `more` to `fixes`, leaving out any fix already there for the same package and advisory
/// (the same fix known from the findings and from the repository's own advisories).
pub fn add_fixes(fixes: &mut Vec<WantedFix>, more: impl IntoIterator<Item = WantedFix>) {
    for fix in more {
        let known = fixes.iter().any(|f| {
            f.package == fix.package && f.candidate.advisory_id == fix.candidate.advisory_id
        });
        if !known {
            fixes.push(fix);
        }
    }
}

/// The fixes a host's open findings ask for: each `fix_available` finding with a fixed version,
/// keyed as its advisory keys the package (the evidence's matched name).
pub fn finding_fixes(findings: &[patchwarden_model::FindingDoc]) -> Vec<WantedFix> {
    let mut fixes = Vec::new();
    for f in findings {
        let (patchwarden_model::FindingState::FixAvailable, Some(fixed), Some(evidence)) =
            (f.state, f.fixed_version.as_ref(), f.evidence.as_ref())
        else {
            continue;
        };
        let fix = WantedFix {
            package: evidence.matched_name.clone(),
            fixed_version: fixed.clone(),
            candidate: UpdateCandidate {
                package: f.package.clone(),
                advisory_id: Some(f.advisory_id.clone()),
                cves: f.cves.clone(),
                severity: Some(f.severity.as_str().to_owned()),
                kev: f.kev,
                classification: None,
                released: f.published.clone(),
            },
        };
        add_fixes(&mut fixes, [fix]);
    }
    fixes
}

/// What a plan is made from: the host's packages, what its repositories offer (candidates and,
/// on RPM systems, update advisories) and its open findings.
pub struct PlanInputs<'a> {
    pub scheme: Scheme,
    pub installed: &'a [InstalledPackage],
    pub offered: &'a [InstalledPackage],
    pub advisories: &'a [patchwarden_model::updates::UpdateAdvisory],
    pub findings: &'a [patchwarden_model::FindingDoc],
}

/// The plan of one host: its findings' fixes and its repositories' own advisories, merged, judged
/// by the baseline on `today`. The one assembly `patchwarden plan --root` and the server's
/// `POST /v1/plans` both use.
pub fn assemble(inputs: &PlanInputs<'_>, baseline: &Baseline, today: Date) -> HostPlan {
    let mut fixes = finding_fixes(inputs.findings);
    add_fixes(
        &mut fixes,
        updateinfo_fixes(inputs.installed, inputs.advisories),
    );
    plan_host(
        inputs.scheme,
        inputs.installed,
        inputs.offered,
        &fixes,
        baseline,
        today,
    )
}

/// The baseline of a plan: the given one, else `everything` (every fix approved).
pub fn baseline_or_everything(
    spec: Option<crate::baseline::BaselineSpec>,
) -> Result<Baseline, String> {
    let spec = spec.unwrap_or_else(|| crate::baseline::BaselineSpec {
        name: "everything".into(),
        ..Default::default()
    });
    Baseline::parse(&spec)
}

/// The day a plan judges on: `YYYY-MM-DD`, else today in UTC.
pub fn plan_day(text: Option<&str>) -> Result<Date, String> {
    match text {
        Some(t) => t
            .parse()
            .map_err(|_| format!("today {t:?} is not a YYYY-MM-DD date")),
        None => Ok(jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()),
    }
}

/// `POST /v1/plans`: plan these hosts under a baseline.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    pub hosts: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::baseline::BaselineSpec>,
    /// The day the baseline judges on (`YYYY-MM-DD`; default today, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub today: Option<String>,
}

/// One host's plan as the server answers it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostPlanAnswer {
    pub host_id: i64,
    /// When the host's agent last reported its repositories' offers.
    pub offers_reported_at: Option<String>,
    #[serde(flatten)]
    pub plan: HostPlan,
}
