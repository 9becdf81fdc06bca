//! Update advisories a host's own repositories publish (RPM `updateinfo.xml`): which update fixes
//! what, as dnf sees it. Read by the inventory from the root, used by plans.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateAdvisory {
    pub id: String,
    /// `security`, `bugfix`, `enhancement`, `newpackage`.
    pub kind: String,
    /// As the repository spells it (`Critical`, `Important`, `Moderate`, `Low`).
    pub severity: Option<String>,
    /// When it was issued (`YYYY-MM-DD…`, as given).
    pub issued: Option<String>,
    pub cves: Vec<String>,
    pub packages: Vec<AdvisoryPackage>,
    /// The repository it came from (its id in dnf's cache).
    pub repository: String,
}

/// A package an advisory ships: the version that carries the fix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvisoryPackage {
    pub name: String,
    pub arch: String,
    /// `E:V-R`, the epoch left out when it is 0.
    pub version: String,
}
