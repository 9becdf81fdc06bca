//! Baselines: which updates are approved for which hosts.
//!
//! A baseline is a policy over update candidates (a package, the version that fixes it, the
//! advisory saying so, its CVEs, severity, KEV, classification and release date), the same for
//! Debian/Ubuntu and RPM families. The decision for a candidate, in order:
//! 1. **deny** (a CVE id, an advisory id or a package-name pattern) holds it, whatever else;
//! 2. **allow** approves it, whatever the filters say;
//! 3. **KEV**: with `always_approve_kev` a KEV-listed candidate is approved (the emergency path);
//! 4. the filters, all of which must pass: `min_severity`, `classifications`, `approve_after_days`
//!    since release (a quarantine for fresh updates), `released_before` (a cut-off date).
//!
//! Every decision carries its reason, in words an auditor reads.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineSpec {
    pub name: String,
    /// `low`, `medium`, `high` or `critical` (distribution names are read too: `important` is
    /// high, `moderate` medium).
    pub min_severity: Option<String>,
    /// Classifications approved (`security`, `bugfix`, `enhancement`); empty: all. A candidate
    /// whose source does not say is treated as `security` when it closes a CVE.
    pub classifications: Vec<String>,
    /// Days since release before an update is approved.
    pub approve_after_days: Option<i32>,
    /// Only updates released on or before this date (`YYYY-MM-DD`).
    pub released_before: Option<String>,
    /// KEV-listed updates are approved whatever the filters say (deny still holds).
    pub always_approve_kev: bool,
    /// CVE ids, advisory ids or package-name patterns (`*` matches any run of characters).
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

/// One update a host could take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateCandidate {
    pub package: String,
    pub advisory_id: Option<String>,
    pub cves: Vec<String>,
    pub severity: Option<String>,
    pub kev: bool,
    pub classification: Option<String>,
    /// `YYYY-MM-DD` or RFC 3339: when the fix was released.
    pub released: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum BaselineDecision {
    Approved { reason: String },
    Held { reason: String },
}

impl BaselineDecision {
    pub fn is_approved(&self) -> bool {
        matches!(self, BaselineDecision::Approved { .. })
    }
}

/// A checked baseline.
#[derive(Clone, Debug)]
pub struct Baseline {
    pub name: String,
    min_severity: Option<u8>,
    classifications: Vec<String>,
    approve_after_days: Option<i32>,
    released_before: Option<Date>,
    always_approve_kev: bool,
    allow: Vec<String>,
    deny: Vec<String>,
}

/// Severity rank: none 0, low 1, medium 2, high 3, critical 4 (distribution words mapped).
pub fn severity_rank(text: &str) -> Option<u8> {
    Some(match text.trim().to_ascii_lowercase().as_str() {
        "none" | "negligible" | "unimportant" => 0,
        "low" => 1,
        "medium" | "moderate" => 2,
        "high" | "important" => 3,
        "critical" => 4,
        _ => return None,
    })
}

const SEVERITY_NAMES: [&str; 5] = ["none", "low", "medium", "high", "critical"];

fn date_of(text: &str) -> Option<Date> {
    text.get(..10)?.parse().ok()
}

/// `*` matches any run of characters; everything else literally, ignoring ASCII case.
fn pattern_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == t;
    }
    let mut rest = t.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

impl Baseline {
    pub fn parse(spec: &BaselineSpec) -> Result<Baseline, String> {
        let name = &spec.name;
        let min_severity = match &spec.min_severity {
            Some(s) => Some(severity_rank(s).ok_or_else(|| {
                format!(
                    "baseline {name:?}: min_severity {s:?}: expected low, medium, high or critical"
                )
            })?),
            None => None,
        };
        let released_before = match &spec.released_before {
            Some(d) => Some(d.parse::<Date>().map_err(|e| {
                format!("baseline {name:?}: released_before {d:?}: expected YYYY-MM-DD ({e})")
            })?),
            None => None,
        };
        if let Some(days) = spec.approve_after_days {
            if days < 0 {
                return Err(format!(
                    "baseline {name:?}: approve_after_days {days}: must not be negative"
                ));
            }
        }
        for c in &spec.classifications {
            if !["security", "bugfix", "enhancement"].contains(&c.as_str()) {
                return Err(format!(
                    "baseline {name:?}: classification {c:?}: expected security, bugfix or enhancement"
                ));
            }
        }
        for p in spec.allow.iter().chain(&spec.deny) {
            if p.trim().is_empty() {
                return Err(format!("baseline {name:?}: an empty allow/deny entry"));
            }
        }
        Ok(Baseline {
            name: name.clone(),
            min_severity,
            classifications: spec.classifications.clone(),
            approve_after_days: spec.approve_after_days,
            released_before,
            always_approve_kev: spec.always_approve_kev,
            allow: spec.allow.clone(),
            deny: spec.deny.clone(),
        })
    }

    /// The entry of `list` naming the candidate (its CVEs, advisory or package), if any.
    fn listed<'a>(list: &'a [String], c: &UpdateCandidate) -> Option<&'a String> {
        list.iter().find(|p| {
            pattern_matches(p, &c.package)
                || c.advisory_id
                    .as_deref()
                    .is_some_and(|a| pattern_matches(p, a))
                || c.cves.iter().any(|cve| pattern_matches(p, cve))
        })
    }

    /// The decision for one candidate on `today`.
    pub fn decide(&self, c: &UpdateCandidate, today: Date) -> BaselineDecision {
        let held = |reason: String| BaselineDecision::Held { reason };
        let approved = |reason: String| BaselineDecision::Approved { reason };
        if let Some(entry) = Self::listed(&self.deny, c) {
            return held(format!("denied by baseline {:?} ({entry})", self.name));
        }
        if let Some(entry) = Self::listed(&self.allow, c) {
            return approved(format!("allowed by baseline {:?} ({entry})", self.name));
        }
        if self.always_approve_kev && c.kev {
            return approved("listed in CISA KEV: approved whatever the filters".into());
        }
        if let Some(min) = self.min_severity {
            let rank = c.severity.as_deref().and_then(severity_rank);
            if rank.is_none_or(|r| r < min) {
                return held(format!(
                    "severity {} is below {}",
                    c.severity.as_deref().unwrap_or("unknown"),
                    SEVERITY_NAMES[min as usize]
                ));
            }
        }
        if !self.classifications.is_empty() {
            let class = c
                .classification
                .clone()
                .or_else(|| (!c.cves.is_empty()).then(|| "security".to_owned()));
            match class {
                Some(k) if self.classifications.contains(&k) => {}
                Some(k) => return held(format!("classification {k} is not approved")),
                None => return held("the source gives no classification".into()),
            }
        }
        let released = c.released.as_deref().and_then(date_of);
        if let Some(days) = self.approve_after_days {
            let Some(r) = released else {
                return held(format!(
                    "no release date: cannot tell whether {days} days have passed"
                ));
            };
            let age = (today - r).get_days();
            if age < days {
                return held(format!(
                    "released {r}: {age} of the {days} days of quarantine have passed"
                ));
            }
        }
        if let Some(cutoff) = self.released_before {
            match released {
                Some(r) if r <= cutoff => {}
                Some(r) => return held(format!("released {r}, after the cut-off {cutoff}")),
                None => {
                    return held(format!(
                        "no release date to compare with the cut-off {cutoff}"
                    ))
                }
            }
        }
        approved(format!("meets baseline {:?}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::pattern_matches;

    #[test]
    fn patterns_match_with_stars_only() {
        assert!(pattern_matches(
            "linux-image-*",
            "linux-image-6.1.0-26-amd64"
        ));
        assert!(pattern_matches("*ssl*", "libssl3"));
        assert!(pattern_matches("CVE-2024-3094", "cve-2024-3094"));
        assert!(!pattern_matches("linux-image-*", "linux-headers-6.1"));
        assert!(!pattern_matches("openssl", "openssl-libs"));
        assert!(pattern_matches("openssl*libs", "openssl-libs"));
        assert!(!pattern_matches("a*b*c", "abx"));
    }
}
