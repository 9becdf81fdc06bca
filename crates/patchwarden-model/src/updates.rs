//! What a host's own repositories offer: the candidate versions of its installed packages and the
//! update advisories they publish (RPM `updateinfo.xml`: which update fixes what, as dnf sees it).
//! Read by the inventory from the root, reported by the agent, used by plans.

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

/// What a host's repositories offer for its installed packages, as its agent reports it
/// (`POST /v1/offers`): every offered version of a package name the host has installed, and the
/// advisories naming such a package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOffers {
    pub packages: Vec<crate::InstalledPackage>,
    pub advisories: Vec<UpdateAdvisory>,
}
