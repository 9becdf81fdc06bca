//! The report and its findings as they serialize (`docs/findings-schema.md`): each finding's
//! facts, SSVC, due dates and evidence, the host, the knowledge's staleness, the summary.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use patchwarden_match::eol::Lifecycle;
use patchwarden_match::FindingState;
use patchwarden_risk::policy::Due;
use patchwarden_risk::{Asset, Severity, SsvcDecision, SsvcInputs};
use serde::Serialize;

/// Schema version of the report (`docs/findings-schema.md`).
pub const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct Cvss {
    pub cve: String,
    pub score: f64,
    pub version: String,
    pub vector: String,
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Kev {
    pub cve: String,
    pub date_added: String,
    pub due_date: String,
    pub known_ransomware_use: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Epss {
    pub cve: String,
    pub score: f64,
    pub percentile: f64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Ssvc {
    pub decision: SsvcDecision,
    #[serde(flatten)]
    pub inputs: SsvcInputs,
}

/// What the knowledge base says about an advisory's CVEs, worked out once per advisory and shared
/// by every finding of it (on every host).
#[derive(Clone, Debug, Default, Serialize)]
pub struct AdvisoryFacts {
    /// The best CVSS score among the advisory's CVEs.
    pub cvss: Option<Cvss>,
    /// In CISA KEV (any of the CVEs; the entry with the earliest due date).
    pub kev: bool,
    pub kev_entry: Option<Kev>,
    pub epss: Option<Epss>,
    /// The advisory's publication, else its CVEs' earliest.
    pub published: Option<String>,
}

/// Where a finding comes from and how fresh that is.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence<'a> {
    /// The name the advisory keys (source or binary package) and the version compared with it.
    pub matched_name: &'a str,
    pub key_kind: patchwarden_model::PackageKeyKind,
    pub compared_version: &'a str,
    /// The version ordering used (`deb`, `rpm`, `apk`).
    pub scheme: &'static str,
    pub source: &'static str,
    pub feed: &'a str,
    /// The document the advisory was read from, and its digest (per record: a directory import
    /// gives each file's records their own).
    pub origin: &'a str,
    pub sha256: &'a str,
    pub fetched_at: &'a str,
    pub data_age_days: Option<i64>,
    pub stale: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'a str>,
}

/// A finding's due dates, one per framework that covers it; serialized as a map keyed by framework.
#[derive(Clone, Debug, Default)]
pub struct DueDates<'a>(pub Vec<Due<'a>>);

impl<'a> DueDates<'a> {
    pub fn values(&self) -> impl Iterator<Item = &Due<'a>> {
        self.0.iter()
    }
    pub fn get(&self, framework: &str) -> Option<&Due<'a>> {
        self.0.iter().find(|d| d.framework == framework)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for DueDates<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for d in &self.0 {
            map.serialize_entry(d.framework, d)?;
        }
        map.end()
    }
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding<'a> {
    /// The installed binary package (for an end-of-life finding, the OS id).
    pub package: &'a str,
    pub installed_version: &'a str,
    pub arch: &'a str,
    pub advisory_id: Cow<'a, str>,
    pub cves: &'a [String],
    pub fixed_version: Option<&'a str>,
    pub state: FindingState,
    pub severity: Severity,
    #[serde(flatten)]
    pub facts: Arc<AdvisoryFacts>,
    pub ssvc: Option<Ssvc>,
    pub risk: f64,
    /// Per framework of the policy that covers the finding.
    pub due: DueDates<'a>,
    pub overdue: bool,
    pub first_seen: Option<&'a str>,
    pub summary: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    pub evidence: Option<Evidence<'a>>,
}

impl Finding<'_> {
    /// The owned document of this finding: exactly what `scan --format json` prints for it, as
    /// every reader of findings takes it (the scan tests hold the two equal field by field).
    pub fn to_doc(&self) -> patchwarden_model::FindingDoc {
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .expect("a finding serializes as a FindingDoc")
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FeedSummary {
    pub feed: String,
    pub records: i64,
    /// When it was last imported or synced.
    pub last_success: Option<String>,
    /// The date the data gives itself (KEV's release, EPSS's score date, the newest record).
    pub data_date: Option<String>,
    /// Days since `data_date`, else since `last_success`.
    pub age_days: Option<i64>,
    pub stale: bool,
    /// The last import or sync failed (the data is what the last success left): "failing".
    pub last_error: Option<String>,
    /// Loaded from a bundle (the shipped snapshot is one): its directory and creation time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostSummary {
    pub hostname: Option<String>,
    pub machine_id: Option<String>,
    pub root: String,
    pub os: Option<String>,
    pub distro: Option<String>,
    pub release: Option<String>,
    pub packages: usize,
    pub running_kernel: Option<String>,
    pub reboot_required: Option<bool>,
    /// The release's support phase today for this host (`standard support until 2026-07-11`,
    /// `Debian LTS until 2028-06-30`, `end of life since 2023-05-31`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support: Option<String>,
    pub asset: Asset,
    /// The key the finding history is kept under.
    pub history_key: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub findings: usize,
    pub by_severity: BTreeMap<&'static str, usize>,
    pub by_state: BTreeMap<&'static str, usize>,
    pub kev: usize,
    pub overdue: usize,
    /// Advisories naming this host's packages in its release.
    pub advisories_considered: usize,
    /// The knowledge base had nothing for this release: findings cannot be trusted to be complete.
    pub no_knowledge_for_release: bool,
    /// Installed packages whose versions do not parse: not judged (listed in the report).
    pub unparsable_versions: usize,
}

impl Report<'_> {
    /// Keeps the findings `filter` keeps and counts the summary again over them.
    pub fn apply(&mut self, filter: &FindingFilter) {
        if filter.is_empty() {
            return;
        }
        let before = self.findings.len();
        self.findings.retain(|f| filter.keeps(f));
        self.summary.count(&self.findings);
        self.filtered_out = Some(before - self.findings.len());
        self.filter = Some(filter.clone());
    }
}

impl Summary {
    /// Counts `findings` into the per-finding fields (findings, severities, states, KEV, overdue),
    /// leaving the rest as it is.
    pub fn count(&mut self, findings: &[Finding<'_>]) {
        self.findings = findings.len();
        self.by_severity.clear();
        self.by_state.clear();
        self.kev = 0;
        self.overdue = 0;
        for f in findings {
            *self.by_severity.entry(f.severity.as_str()).or_default() += 1;
            *self.by_state.entry(f.state.as_str()).or_default() += 1;
            self.kev += usize::from(f.facts.kev);
            self.overdue += usize::from(f.overdue);
        }
    }
}

/// Which findings a reader asked for (`scan --severity`, `--state`, `--ignore-unfixed`): applied
/// before the output and before `--fail-on`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FindingFilter {
    /// Only these severities (empty: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub severities: Vec<Severity>,
    /// Only these states (empty: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<FindingState>,
    /// Leave out findings without a fix (`no_fix_yet`, `will_not_fix`), as Trivy's
    /// `--ignore-unfixed` does. A fix that needs a subscription is a fix; so is an upgrade off an
    /// end-of-life release.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_unfixed: bool,
}

impl FindingFilter {
    pub fn is_empty(&self) -> bool {
        self.severities.is_empty() && self.states.is_empty() && !self.ignore_unfixed
    }

    pub fn keeps(&self, f: &Finding<'_>) -> bool {
        (self.severities.is_empty() || self.severities.contains(&f.severity))
            && (self.states.is_empty() || self.states.contains(&f.state))
            && !(self.ignore_unfixed
                && matches!(f.state, FindingState::NoFixYet | FindingState::WillNotFix))
    }
}

/// `{"host": …, "findings": […]}` and what a reader needs to trust it.
#[derive(Clone, Debug, Serialize)]
pub struct Report<'a> {
    pub schema_version: u32,
    pub generated_at: &'a str,
    pub host: HostSummary,
    pub knowledge: &'a [FeedSummary],
    /// Some feed is stale or failing: shown wherever findings are shown.
    pub knowledge_stale: bool,
    /// The bundles the knowledge was loaded from (the shipped snapshot among them, when a scan
    /// fell back to it): findings are only as complete as they are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub knowledge_bundles: Vec<String>,
    pub summary: Summary,
    /// The reader's filter, when one was applied (the summary then counts what it kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<FindingFilter>,
    /// Findings the filter left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered_out: Option<usize>,
    pub findings: Vec<Finding<'a>>,
    /// Installed packages matching could not judge: their versions do not parse.
    pub unparsable_versions: Vec<patchwarden_match::UnparsableVersion<'a>>,
}
