//! The finding document: one finding as `scan --format json` prints it, the server stores it and
//! serves it (`GET /v1/hosts/{id}/findings`, `/v1/findings`), and plans and verification read it.
//!
//! `patchwarden-findings` builds findings borrowing from the knowledge base and serializes them;
//! [`FindingDoc`] is the owned form every reader deserializes into. A test in
//! `patchwarden-findings` holds the two equal field by field, so a renamed field breaks the build
//! or that test, never an end-to-end run. `docs/findings-schema.md` documents the fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::PackageKeyKind;

/// A severity band (documented on `patchwarden_risk::severity_band`, which assigns it).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "critical" => Ok(Severity::Critical),
            "high" => Ok(Severity::High),
            "medium" => Ok(Severity::Medium),
            "low" => Ok(Severity::Low),
            "unknown" => Ok(Severity::Unknown),
            other => Err(format!(
                "unknown severity '{other}' (critical, high, medium, low, unknown)"
            )),
        }
    }
}

/// The state of a finding (what the user must do about it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingState {
    /// A fixed version exists and is not installed.
    FixAvailable,
    /// A fixed version exists, but only in a channel this host does not receive without a
    /// subscription (Ubuntu Pro/ESM on a host without Pro): affected, fixable only by subscribing.
    FixRequiresSubscription,
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

impl FindingState {
    pub const ALL: [FindingState; 7] = [
        FindingState::FixAvailable,
        FindingState::FixRequiresSubscription,
        FindingState::NoFixYet,
        FindingState::WillNotFix,
        FindingState::PendingReboot,
        FindingState::InstalledNotRunning,
        FindingState::Eol,
    ];

    /// The state's name in documents and on the command line (`fix_available`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingState::FixAvailable => "fix_available",
            FindingState::FixRequiresSubscription => "fix_requires_subscription",
            FindingState::NoFixYet => "no_fix_yet",
            FindingState::WillNotFix => "will_not_fix",
            FindingState::PendingReboot => "pending_reboot",
            FindingState::InstalledNotRunning => "installed_not_running",
            FindingState::Eol => "eol",
        }
    }
}

impl std::str::FromStr for FindingState {
    type Err = String;
    fn from_str(s: &str) -> Result<FindingState, String> {
        FindingState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown finding state {s:?}"))
    }
}

/// One finding, owned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingDoc {
    /// The installed binary package (for an end-of-life finding, the OS id).
    pub package: String,
    pub installed_version: String,
    pub arch: String,
    pub advisory_id: String,
    pub cves: Vec<String>,
    pub fixed_version: Option<String>,
    pub state: FindingState,
    pub severity: Severity,
    /// The best CVSS score among the advisory's CVEs.
    pub cvss: Option<CvssFact>,
    /// In CISA KEV (any of the CVEs).
    pub kev: bool,
    pub kev_entry: Option<KevFact>,
    pub epss: Option<EpssFact>,
    /// The advisory's publication, else its CVEs' earliest.
    pub published: Option<String>,
    pub ssvc: Option<SsvcFact>,
    pub risk: f64,
    /// Per framework of the policy that covers the finding.
    pub due: BTreeMap<String, DueDate>,
    pub overdue: bool,
    pub first_seen: Option<String>,
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleFact>,
    pub evidence: Option<EvidenceDoc>,
}

impl FindingDoc {
    /// The name the advisory keys (source or binary package), else the installed package.
    pub fn matched_name(&self) -> &str {
        self.evidence
            .as_ref()
            .map_or(self.package.as_str(), |e| e.matched_name.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CvssFact {
    pub cve: String,
    pub score: f64,
    pub version: String,
    pub vector: String,
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KevFact {
    pub cve: String,
    pub date_added: String,
    pub due_date: String,
    pub known_ransomware_use: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpssFact {
    pub cve: String,
    pub score: f64,
    pub percentile: f64,
}

/// CISA SSVC: the decision and the four inputs it was taken from (`patchwarden_risk` derives them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsvcFact {
    /// `Track`, `Track*`, `Attend` or `Act`.
    pub decision: String,
    /// `none`, `public_poc` or `active`.
    pub exploitation: String,
    pub automatable: bool,
    /// `partial` or `total`.
    pub technical_impact: String,
    /// `low`, `medium` or `high`.
    pub mission_wellbeing: String,
}

/// A due date under one framework.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DueDate {
    pub framework: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub overdue: bool,
    /// What the date is counted from, in words.
    pub basis: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleFact {
    /// End of standard (security) support.
    pub eol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_until: Option<String>,
    pub source: String,
}

/// Where a finding comes from and how fresh that is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceDoc {
    /// The name the advisory keys (source or binary package) and the version compared with it.
    pub matched_name: String,
    pub key_kind: PackageKeyKind,
    pub compared_version: String,
    /// The version ordering used (`deb`, `rpm`, `apk`).
    pub scheme: String,
    pub source: String,
    pub feed: String,
    pub origin: String,
    /// The digest of `origin` (absent in documents stored before it was recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    pub fetched_at: String,
    pub data_age_days: Option<i64>,
    pub stale: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::CheckInResult;
    use crate::job::{JobStage, JobState};

    fn serde_name<T: Serialize>(value: T) -> String {
        serde_json::to_value(value)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The names code writes (`as_str`) are the names documents carry (serde), so a state stored
    /// by one reads back in the other.
    #[test]
    fn state_names_are_their_serialized_names() {
        for s in FindingState::ALL {
            assert_eq!(s.as_str(), serde_name(s));
            assert_eq!(s.as_str().parse::<FindingState>(), Ok(s));
        }
        for s in [
            Severity::Unknown,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(s.as_str(), serde_name(s));
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
        }
        for s in [
            JobState::Queued,
            JobState::Delivered,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Refused,
            JobState::Cancelled,
        ] {
            assert_eq!(s.as_str(), serde_name(s));
            assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
        }
        for s in [
            JobStage::Recover,
            JobStage::PreHook,
            JobStage::Packages,
            JobStage::Verify,
            JobStage::PostHook,
            JobStage::HealthCheck,
            JobStage::Reboot,
        ] {
            assert_eq!(s.as_str(), serde_name(s));
        }
        for r in [
            CheckInResult::Stored,
            CheckInResult::Heartbeat,
            CheckInResult::Duplicate,
            CheckInResult::NeedInventory,
        ] {
            assert_eq!(r.as_str(), serde_name(r));
        }
        assert!("fixed".parse::<FindingState>().is_err());
    }
}
