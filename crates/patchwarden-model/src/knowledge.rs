//! The knowledge base's normalized records: advisories from the distributions (OSV, Debian security
//! tracker, Alpine secdb), CVE enrichment (NVD), exploitation (CISA KEV, FIRST EPSS), each with its
//! provenance. Every parser in `patchwarden-feeds` produces these; matching and prioritization read them.

use serde::{Deserialize, Serialize};

use crate::Distro;

/// Where a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Osv,
    DebianTracker,
    AlpineSecdb,
    Nvd,
    Kev,
    Epss,
    /// Red Hat's CSAF VEX documents (per CVE): fixed, not fixed yet, will not fix, not affected.
    RedhatVex,
}

impl Source {
    pub const ALL: [Source; 7] = [
        Source::Osv,
        Source::DebianTracker,
        Source::AlpineSecdb,
        Source::Nvd,
        Source::Kev,
        Source::Epss,
        Source::RedhatVex,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Osv => "osv",
            Source::DebianTracker => "debian-tracker",
            Source::AlpineSecdb => "alpine-secdb",
            Source::Nvd => "nvd",
            Source::Kev => "kev",
            Source::Epss => "epss",
            Source::RedhatVex => "redhat-vex",
        }
    }
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown source '{s}' (known: osv, debian-tracker, alpine-secdb, nvd, kev, epss, redhat-vex)"))
    }
}

/// Where and when a batch of records was obtained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub source: Source,
    /// The URL or file it was read from.
    pub origin: String,
    /// RFC 3339 time it was fetched or imported.
    pub fetched_at: String,
    /// sha256 of the bytes as obtained (hex).
    pub sha256: String,
}

/// A distribution release as an advisory names it; `distro` is `None` for ecosystems patchwarden does
/// not match (kept, not dropped).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReleaseKey {
    pub distro: Option<Distro>,
    /// `12`, `22.04`, `9`, `3.19`, `unstable`.
    pub release: String,
    /// A separate update stream of the release: `pro` (Ubuntu Pro/ESM), a Red Hat product stream
    /// (`baseos`, `appstream`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// Whether an advisory names the source package (Debian, Ubuntu, Alpine) or the binary package (RPM
/// families).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKeyKind {
    Source,
    Binary,
}

/// What the distribution says about one package in one release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixState {
    /// A fixed version exists: installed versions below it are affected.
    Fixed,
    /// Affected, no fix published yet.
    NotFixedYet,
    /// Affected, and the distribution does not plan to fix it (Debian `ignored`/`unimportant`).
    WillNotFix,
    /// The package in this release never had the flaw.
    NotAffected,
    /// The package is no longer supported in this release.
    EndOfLife,
    /// The distribution has not decided yet (Debian `undetermined`).
    Undetermined,
}

/// One OSV-style range: affected from `introduced` up to `fixed` (exclusive) or `last_affected`
/// (inclusive); `limit` bounds the search. Versions are in the release's own version scheme.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// One package in one release, as an advisory describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AffectedPackage {
    /// The ecosystem string as the source spells it (`Debian:12`, `Ubuntu:Pro:18.04:LTS`, `AlmaLinux:9`,
    /// `alpine:v3.19`, `debian:bookworm`).
    pub ecosystem: String,
    pub release: Option<ReleaseKey>,
    /// The package name as the source keys it.
    pub package: String,
    pub key_kind: PackageKeyKind,
    pub state: FixState,
    /// The first fixed version, when `state` is `Fixed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<VersionRange>,
    /// Explicitly listed affected versions (OSV `versions[]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// Binary packages built from a source package, where the source lists them (Ubuntu OSV).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binaries: Vec<String>,
    /// The distribution's own rating for this package (Debian urgency, Ubuntu priority).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Why, in the source's words (Debian `nodsa`/`nodsa_reason`, an availability note).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A distribution advisory (or, for per-CVE sources like the Debian tracker and Alpine secdb, the
/// distribution's statement on one CVE).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    pub id: String,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The CVE ids it concerns, from wherever the source puts them (id, aliases, upstream, related).
    pub cves: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// Set when the source withdrew the advisory; such advisories never produce findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    /// The distribution's rating of the whole advisory (Ubuntu priority, Red Hat impact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// CVSS vectors the advisory carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cvss_vectors: Vec<String>,
    pub affected: Vec<AffectedPackage>,
}

impl Advisory {
    /// A source's statement on one id (a CVE, a TEMP- or XSA- id) with nothing known yet: the CVE list
    /// holds the id itself when it is a CVE.
    pub fn for_id(id: &str, source: Source) -> Advisory {
        Advisory {
            id: id.to_owned(),
            source,
            aliases: Vec::new(),
            cves: if id.starts_with("CVE-") {
                vec![id.to_owned()]
            } else {
                Vec::new()
            },
            summary: None,
            published: None,
            modified: None,
            withdrawn: None,
            severity: None,
            cvss_vectors: Vec::new(),
            affected: Vec::new(),
        }
    }
}

/// One CVSS metric of a CVE, with the score the source states and the one computed from the vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CvssMetric {
    /// `2.0`, `3.0`, `3.1`, `4.0`.
    pub version: String,
    pub vector: String,
    /// Who scored it (`nvd@nist.gov`, a CNA's address, CISA-ADP's UUID).
    pub source: String,
    /// NVD's `Primary` (its own analysis) as opposed to `Secondary` (CNA, ADP).
    pub primary: bool,
    pub stated_score: Option<f64>,
    /// Computed from the vector; `None` when the vector is invalid (see `problem`).
    pub computed_score: Option<f64>,
    /// Qualitative band of the computed (else stated) score.
    pub severity: Option<String>,
    /// What is wrong: an invalid vector, or a stated score that differs from the computed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The known-exploited flags NVD mirrors from CISA KEV.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvdKevMirror {
    pub date_added: String,
    pub due_date: Option<String>,
    pub required_action: Option<String>,
    pub name: Option<String>,
}

/// A CVE as NVD describes it: enrichment only, never a source of OS-package findings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CveRecord {
    pub id: String,
    pub published: Option<String>,
    pub last_modified: Option<String>,
    /// NVD `vulnStatus`: Received, Awaiting Analysis, Analyzed, Modified, Deferred, Rejected, ...
    pub status: Option<String>,
    pub rejected: bool,
    pub description: Option<String>,
    pub metrics: Vec<CvssMetric>,
    pub cwes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kev: Option<NvdKevMirror>,
}

impl CveRecord {
    /// The metric to rank by: NVD's own (Primary) before others, the newest CVSS version first, and
    /// only metrics whose vector is valid.
    pub fn best_metric(&self) -> Option<&CvssMetric> {
        self.metrics
            .iter()
            .filter(|m| m.computed_score.is_some())
            .max_by(|a, b| {
                a.primary
                    .cmp(&b.primary)
                    .then_with(|| a.version.cmp(&b.version))
            })
    }
}

/// One entry of CISA's Known Exploited Vulnerabilities catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KevEntry {
    pub cve: String,
    pub vendor: String,
    pub product: String,
    pub name: String,
    /// `YYYY-MM-DD`.
    pub date_added: String,
    /// `YYYY-MM-DD`: the remediation deadline of BOD 22-01.
    pub due_date: String,
    pub known_ransomware_use: bool,
    pub required_action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cwes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KevCatalog {
    pub catalog_version: String,
    pub date_released: String,
    pub entries: Vec<KevEntry>,
}

/// A FIRST EPSS score: the probability of exploitation activity in the next 30 days.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpssScore {
    pub cve: String,
    pub score: f64,
    pub percentile: f64,
}

/// One EPSS publication.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpssSnapshot {
    pub model_version: Option<String>,
    /// As the file states it (formats vary between files).
    pub score_date: Option<String>,
    pub scores: Vec<EpssScore>,
}
