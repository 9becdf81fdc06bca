//! Verification of one host after its update: the findings the change targeted there must be closed
//! (or waiting only for a reboot), and the host must hold exactly the versions the change installs.
//!
//! A change *targets* a finding on a host when it updates the finding's package to a version at
//! or beyond the finding's fixed version (so a change that installs too old a version does not
//! claim findings it cannot close). Both the targeting, when the change is created, and the
//! verification, from the host's first inventory after the job, work on findings as the server
//! stores them.

use std::cmp::Ordering;

use patchwarden_model::job::PackageTarget;
use patchwarden_model::{FindingDoc, FindingState, InstalledPackage};
use patchwarden_version::{compare, Scheme};
use serde::{Deserialize, Serialize};

/// A finding the change is expected to close on a host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetedFinding {
    pub package: String,
    pub advisory_id: String,
    pub cves: Vec<String>,
    #[serde(default)]
    pub risk: f64,
}

impl TargetedFinding {
    fn label(&self) -> String {
        if self.cves.is_empty() || self.cves == [self.advisory_id.clone()] {
            format!("{} on {}", self.advisory_id, self.package)
        } else {
            format!(
                "{} ({}) on {}",
                self.advisory_id,
                self.cves.join(", "),
                self.package
            )
        }
    }
}

/// The findings a change installing `targets` should close, of those open on a host.
pub fn targeted_findings(
    scheme: Scheme,
    targets: &[PackageTarget],
    findings: &[FindingDoc],
) -> Vec<TargetedFinding> {
    let mut out: Vec<TargetedFinding> = findings
        .iter()
        .filter(|f| f.state == FindingState::FixAvailable)
        .filter(|f| {
            let Some(fixed) = f.fixed_version.as_deref() else {
                return false;
            };
            targets.iter().any(|t| {
                t.name == f.package
                    && compare(scheme, &t.version, fixed).is_ok_and(|o| o != Ordering::Less)
            })
        })
        .map(|f| TargetedFinding {
            package: f.package.clone(),
            advisory_id: f.advisory_id.clone(),
            cves: f.cves.clone(),
            risk: f.risk,
        })
        .collect();
    out.sort_by(|a, b| (&a.package, &a.advisory_id).cmp(&(&b.package, &b.advisory_id)));
    out.dedup_by(|a, b| (&a.package, &a.advisory_id) == (&b.package, &b.advisory_id));
    out
}

/// What the verification of one host found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// The versions now installed of the change's packages.
    pub installed: Vec<PackageTarget>,
    /// Packages not at the version the change installs (`name: want X, has Y`).
    pub wrong_versions: Vec<String>,
    /// Targeted findings that are gone.
    pub closed: Vec<String>,
    /// Targeted findings waiting for a reboot.
    pub pending_reboot: Vec<String>,
    /// Targeted findings still open.
    pub remaining: Vec<String>,
}

impl Verification {
    /// Why the host failed verification, if it did.
    pub fn failure(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if !self.wrong_versions.is_empty() {
            reasons.push(format!(
                "not at the change's versions: {}",
                self.wrong_versions.join("; ")
            ));
        }
        if !self.remaining.is_empty() {
            reasons.push(format!(
                "still open after the update: {}",
                self.remaining.join("; ")
            ));
        }
        (!reasons.is_empty()).then(|| format!("verification: {}", reasons.join("; ")))
    }
}

/// Whether the inventory shows the change done: every target package present is at its target
/// version (a package the host does not have is not installed by the change).
pub fn versions_reached(targets: &[PackageTarget], installed: &[InstalledPackage]) -> bool {
    wrong_versions(targets, installed).is_empty()
}

fn wrong_versions(targets: &[PackageTarget], installed: &[InstalledPackage]) -> Vec<String> {
    let mut wrong = Vec::new();
    for t in targets {
        let held: Vec<&InstalledPackage> = installed
            .iter()
            .filter(|p| p.name == t.name && t.arch.as_ref().is_none_or(|a| *a == p.arch))
            .collect();
        if held.is_empty() {
            wrong.push(format!("{}: want {}, not installed", t.name, t.version));
        }
        for p in held {
            if p.version != t.version {
                wrong.push(format!("{}: want {}, has {}", t.name, t.version, p.version));
            }
        }
    }
    wrong
}

/// Verifies a host from its inventory and findings after the job.
pub fn verify(
    targets: &[PackageTarget],
    installed: &[InstalledPackage],
    targeted: &[TargetedFinding],
    findings_now: &[FindingDoc],
) -> Verification {
    let mut v = Verification {
        wrong_versions: wrong_versions(targets, installed),
        ..Verification::default()
    };
    for t in targets {
        for p in installed.iter().filter(|p| p.name == t.name) {
            v.installed.push(PackageTarget {
                name: p.name.clone(),
                arch: Some(p.arch.clone()),
                version: p.version.clone(),
            });
        }
    }
    for t in targeted {
        let now = findings_now
            .iter()
            .find(|f| f.package == t.package && f.advisory_id == t.advisory_id);
        match now {
            None => v.closed.push(t.label()),
            Some(f) if f.state == FindingState::PendingReboot => v.pending_reboot.push(t.label()),
            Some(_) => v.remaining.push(t.label()),
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(package: &str, advisory: &str, fixed: Option<&str>, state: &str) -> FindingDoc {
        serde_json::from_value(serde_json::json!({
            "package": package, "installed_version": "1", "arch": "amd64",
            "advisory_id": advisory, "cves": [format!("CVE-{advisory}")],
            "fixed_version": fixed, "state": state, "severity": "high",
            "cvss": null, "kev": false, "kev_entry": null, "epss": null, "published": null,
            "ssvc": null, "risk": 1.0, "due": {}, "overdue": false, "first_seen": null,
            "summary": null, "evidence": null,
        }))
        .unwrap()
    }

    fn target(name: &str, version: &str) -> PackageTarget {
        PackageTarget {
            name: name.into(),
            arch: None,
            version: version.into(),
        }
    }

    fn pkg(name: &str, version: &str) -> InstalledPackage {
        serde_json::from_value(serde_json::json!({
            "name": name, "version": version, "arch": "amd64",
            "source_name": name, "source_version": version, "manager": "dpkg",
        }))
        .unwrap()
    }

    #[test]
    fn a_change_targets_only_what_its_versions_fix_and_verification_says_what_remains() {
        let open = [
            finding("openssl", "A", Some("3.0.15-1~deb12u1"), "fix_available"),
            finding("openssl", "B", Some("3.0.16-1~deb12u1"), "fix_available"),
            finding("openssl", "C", None, "no_fix_yet"),
            finding("linux-image-amd64", "K", Some("6.1.1"), "fix_available"),
            finding("curl", "D", Some("7.88.1-10+deb12u8"), "fix_available"),
        ];
        let targets = [
            target("openssl", "3.0.15-1~deb12u1"),
            target("linux-image-amd64", "6.1.1"),
        ];
        let targeted = targeted_findings(Scheme::Deb, &targets, &open);
        let ids: Vec<&str> = targeted.iter().map(|t| t.advisory_id.as_str()).collect();
        assert_eq!(
            ids,
            ["K", "A"],
            "B needs a newer openssl, C has no fix, D is curl"
        );

        let installed = [
            pkg("openssl", "3.0.15-1~deb12u1"),
            pkg("linux-image-amd64", "6.1.1"),
        ];
        let after = [
            finding("openssl", "B", Some("3.0.16-1~deb12u1"), "fix_available"),
            finding("linux-image-amd64", "K", Some("6.1.1"), "pending_reboot"),
        ];
        let v = verify(&targets, &installed, &targeted, &after);
        assert_eq!(v.closed, ["A (CVE-A) on openssl"]);
        assert_eq!(v.pending_reboot, ["K (CVE-K) on linux-image-amd64"]);
        assert_eq!(v.failure(), None, "B was never targeted");

        // The update did not take: a wrong version and an open finding both fail the host.
        let stuck = [
            pkg("openssl", "3.0.11-1~deb12u2"),
            pkg("linux-image-amd64", "6.1.1"),
        ];
        let still = [finding(
            "openssl",
            "A",
            Some("3.0.15-1~deb12u1"),
            "fix_available",
        )];
        let v = verify(&targets, &stuck, &targeted, &still);
        let failure = v.failure().unwrap();
        assert!(
            failure.contains("openssl: want 3.0.15-1~deb12u1, has 3.0.11-1~deb12u2"),
            "{failure}"
        );
        assert!(
            failure.contains("still open after the update: A (CVE-A) on openssl"),
            "{failure}"
        );
        assert!(!versions_reached(&targets, &stuck));
        assert!(versions_reached(&targets, &installed));
    }
}
