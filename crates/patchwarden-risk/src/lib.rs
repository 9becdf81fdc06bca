//! Prioritization and deadlines: what a finding's evidence (CVSS, the distribution's rating, KEV,
//! EPSS) and its host (criticality, exposure) mean for its order and its due dates.
//!
//! * [`severity_band`]: from the best CVSS base score (Critical ≥ 9.0, High 7.0–8.9, Medium 4.0–6.9,
//!   Low 0.1–3.9, for every CVSS version), else from the distribution's own rating.
//! * [`ssvc`]: CISA's SSVC decision table (Exploitation × Automatable × Technical Impact × Mission and
//!   Well-being → Track / Track* / Attend / Act), with each input derived from the evidence as
//!   documented on [`SsvcInputs::derive`].
//! * [`risk_score`]: one number 0–100 for ordering, documented on the function.
//! * [`policy`]: frameworks and their remediation windows (BOD 22-01, PCI DSS, FedRAMP, an internal
//!   SLA, or custom ones from a TOML file) and the due date of a finding under each.
//!
//! Pure functions of their inputs; the only I/O is [`policy::Policy::load`] reading a policy file.

pub mod policy;

use serde::{Deserialize, Serialize};

pub use patchwarden_model::Severity;

/// The band of a CVSS base score (NVD's v3/v4 bands, applied to every version).
pub fn band_of_score(score: f64) -> Severity {
    match score {
        s if s >= 9.0 => Severity::Critical,
        s if s >= 7.0 => Severity::High,
        s if s >= 4.0 => Severity::Medium,
        s if s > 0.0 => Severity::Low,
        _ => Severity::Unknown,
    }
}

/// A distribution's own rating: Debian urgency, Ubuntu priority, Red Hat/AlmaLinux impact,
/// Alpine and SUSE words. `None` when the word says nothing about severity.
pub fn band_of_distribution_rating(rating: &str) -> Option<Severity> {
    let word = rating
        .trim()
        .trim_end_matches('*')
        .split_whitespace()
        .next()?
        .to_ascii_lowercase();
    Some(match word.as_str() {
        "critical" => Severity::Critical,
        "high" | "important" => Severity::High,
        "medium" | "moderate" => Severity::Medium,
        "low" | "negligible" | "unimportant" => Severity::Low,
        _ => return None,
    })
}

/// The band of a finding: the best CVSS score when there is one, else the distribution's rating.
pub fn severity_band(best_score: Option<f64>, distribution_ratings: &[&str]) -> Severity {
    if let Some(s) = best_score.filter(|s| *s > 0.0) {
        return band_of_score(s);
    }
    distribution_ratings
        .iter()
        .filter_map(|r| band_of_distribution_rating(r))
        .max()
        .unwrap_or(Severity::Unknown)
}

/// How important a host is to its owner (set in config or on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl std::str::FromStr for Criticality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Criticality::Low),
            "medium" => Ok(Criticality::Medium),
            "high" => Ok(Criticality::High),
            "critical" | "mission-critical" => Ok(Criticality::Critical),
            other => Err(format!(
                "unknown criticality '{other}' (low, medium, high, critical)"
            )),
        }
    }
}

/// The host side of prioritization.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    pub criticality: Criticality,
    pub internet_facing: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exploitation {
    None,
    PublicPoc,
    Active,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TechnicalImpact {
    Partial,
    Total,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissionImpact {
    Low,
    Medium,
    High,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum SsvcDecision {
    Track,
    #[serde(rename = "Track*")]
    TrackStar,
    Attend,
    Act,
}

impl SsvcDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            SsvcDecision::Track => "Track",
            SsvcDecision::TrackStar => "Track*",
            SsvcDecision::Attend => "Attend",
            SsvcDecision::Act => "Act",
        }
    }
}

/// The four inputs of CISA's SSVC tree, and the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SsvcInputs {
    pub exploitation: Exploitation,
    pub automatable: bool,
    pub technical_impact: TechnicalImpact,
    pub mission_wellbeing: MissionImpact,
}

/// EPSS percentile from which a CVE counts as having a public proof of concept (a proxy: the
/// knowledge base holds no exploit references).
pub const POC_EPSS_PERCENTILE: f64 = 0.95;

impl SsvcInputs {
    /// Derives the inputs:
    /// * Exploitation: `active` when the CVE is in CISA KEV; `public_poc` when its EPSS percentile
    ///   is at least [`POC_EPSS_PERCENTILE`]; else `none`.
    /// * Automatable: the CVSS vector says network attack, no privileges, no user interaction (and,
    ///   for v4, no attack requirements) — CISA's own heuristic.
    /// * Technical impact: `total` when confidentiality and integrity are both High (v3/v4:
    ///   `C:H/I:H`, `VC:H/VI:H`; v2: `C:C/I:C`); else `partial`.
    /// * Mission and well-being: the host's criticality (low → low, medium → medium, high and
    ///   critical → high), one step up when the host is internet-facing (SSVC's exposure).
    pub fn derive(
        kev: bool,
        epss_percentile: Option<f64>,
        vector: Option<&str>,
        asset: Asset,
    ) -> Self {
        let exploitation = if kev {
            Exploitation::Active
        } else if epss_percentile.is_some_and(|p| p >= POC_EPSS_PERCENTILE) {
            Exploitation::PublicPoc
        } else {
            Exploitation::None
        };
        let metric = |name: &str| -> Option<&str> {
            vector?
                .split('/')
                .filter_map(|part| part.split_once(':'))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        };
        let v4 = vector.is_some_and(|v| v.starts_with("CVSS:4"));
        let automatable = metric("AV") == Some("N")
            && (metric("PR") == Some("N") || metric("Au") == Some("N"))
            && (metric("UI") == Some("N") || (metric("UI").is_none() && metric("Au").is_some()))
            && (!v4 || metric("AT") == Some("N"));
        let total = if v4 {
            metric("VC") == Some("H") && metric("VI") == Some("H")
        } else if metric("Au").is_some() {
            metric("C") == Some("C") && metric("I") == Some("C")
        } else {
            metric("C") == Some("H") && metric("I") == Some("H")
        };
        let base = match asset.criticality {
            Criticality::Low => MissionImpact::Low,
            Criticality::Medium => MissionImpact::Medium,
            Criticality::High | Criticality::Critical => MissionImpact::High,
        };
        let mission_wellbeing = if asset.internet_facing {
            match base {
                MissionImpact::Low => MissionImpact::Medium,
                _ => MissionImpact::High,
            }
        } else {
            base
        };
        SsvcInputs {
            exploitation,
            automatable,
            technical_impact: if total {
                TechnicalImpact::Total
            } else {
                TechnicalImpact::Partial
            },
            mission_wellbeing,
        }
    }
}

/// CISA's SSVC decision table (CISA SSVC Guide, November 2022; "CISA Levels" of the CERT/CC SSVC
/// repository's coordinator table 2.0.3).
pub fn ssvc(i: SsvcInputs) -> SsvcDecision {
    use Exploitation as E;
    use MissionImpact as M;
    use SsvcDecision::*;
    use TechnicalImpact as T;
    let total = i.technical_impact == T::Total;
    match (i.exploitation, i.automatable) {
        (E::None, false) => match (total, i.mission_wellbeing) {
            (true, M::High) => TrackStar,
            _ => Track,
        },
        (E::None, true) => match i.mission_wellbeing {
            M::High => Attend,
            _ => Track,
        },
        (E::PublicPoc, false) => match (total, i.mission_wellbeing) {
            (false, M::High) => TrackStar,
            (true, M::Medium) => TrackStar,
            (true, M::High) => Attend,
            _ => Track,
        },
        (E::PublicPoc, true) => match (total, i.mission_wellbeing) {
            (_, M::High) => Attend,
            (true, M::Medium) => TrackStar,
            _ => Track,
        },
        (E::Active, false) => match (total, i.mission_wellbeing) {
            (false, M::High) => Attend,
            (true, M::Medium) => Attend,
            (true, M::High) => Act,
            _ => Track,
        },
        (E::Active, true) => match (total, i.mission_wellbeing) {
            (_, M::High) => Act,
            (true, M::Medium) => Act,
            _ => Attend,
        },
    }
}

/// The risk score used for ordering, 0–100 (higher first):
///
/// * **Severity, up to 50**: the best CVSS base score × 5; without a score, the band's midpoint
///   (critical 47, high 40, medium 27, low 10, unknown 20).
/// * **Exploitation, up to 30**: 30 when the CVE is in CISA KEV, else the EPSS probability × 30.
/// * **Asset, up to 20**: criticality (low 0, medium 5, high 10, critical 15) + 5 when internet-facing.
///
/// A kernel that is installed but not running counts half. The result is rounded to one decimal.
pub fn risk_score(
    best_score: Option<f64>,
    band: Severity,
    kev: bool,
    epss: Option<f64>,
    asset: Asset,
    not_running: bool,
) -> f64 {
    let severity = match best_score.filter(|s| *s > 0.0) {
        Some(s) => s.min(10.0) * 5.0,
        None => match band {
            Severity::Critical => 47.0,
            Severity::High => 40.0,
            Severity::Medium => 27.0,
            Severity::Low => 10.0,
            Severity::Unknown => 20.0,
        },
    };
    let exploitation = if kev {
        30.0
    } else {
        epss.unwrap_or(0.0).clamp(0.0, 1.0) * 30.0
    };
    let asset_points = match asset.criticality {
        Criticality::Low => 0.0,
        Criticality::Medium => 5.0,
        Criticality::High => 10.0,
        Criticality::Critical => 15.0,
    } + if asset.internet_facing { 5.0 } else { 0.0 };
    let mut score = severity + exploitation + asset_points;
    if not_running {
        score /= 2.0;
    }
    (score.min(100.0) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_nvd_and_fall_back_to_the_distribution() {
        assert_eq!(severity_band(Some(9.0), &[]), Severity::Critical);
        assert_eq!(severity_band(Some(8.9), &["low"]), Severity::High);
        assert_eq!(severity_band(Some(4.0), &[]), Severity::Medium);
        assert_eq!(severity_band(Some(3.9), &[]), Severity::Low);
        assert_eq!(severity_band(None, &["Important"]), Severity::High);
        assert_eq!(
            severity_band(None, &["unimportant", "medium**"]),
            Severity::Medium
        );
        assert_eq!(
            severity_band(None, &["not yet assigned"]),
            Severity::Unknown
        );
    }

    #[test]
    fn ssvc_table_rows() {
        let asset = |c, i| Asset {
            criticality: c,
            internet_facing: i,
        };
        // xz backdoor-like: network, no privileges, no interaction, C:H/I:H, in KEV, critical host.
        let v = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H";
        let i = SsvcInputs::derive(true, None, Some(v), asset(Criticality::Critical, false));
        assert!(i.automatable && i.technical_impact == TechnicalImpact::Total);
        assert_eq!(ssvc(i), SsvcDecision::Act);
        // The same flaw, not exploited, low host: Track; internet-facing raises mission to medium.
        let i = SsvcInputs::derive(false, Some(0.2), Some(v), asset(Criticality::Low, false));
        assert_eq!(ssvc(i), SsvcDecision::Track);
        let i = SsvcInputs::derive(false, Some(0.99), Some(v), asset(Criticality::Low, true));
        assert_eq!(
            (i.exploitation, i.mission_wellbeing),
            (Exploitation::PublicPoc, MissionImpact::Medium)
        );
        assert_eq!(ssvc(i), SsvcDecision::TrackStar);
        // Local, partial, active, medium: Track (row 25); high: Attend (row 26).
        let local = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N";
        let i = SsvcInputs::derive(true, None, Some(local), asset(Criticality::Medium, false));
        assert_eq!(ssvc(i), SsvcDecision::Track);
        let i = SsvcInputs::derive(true, None, Some(local), asset(Criticality::High, false));
        assert_eq!(ssvc(i), SsvcDecision::Attend);
        // v4 needs AT:N to be automatable; v2 uses Au and C:C/I:C.
        let v4 = "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
        assert!(!SsvcInputs::derive(false, None, Some(v4), Asset::default()).automatable);
        let v2 = "AV:N/AC:L/Au:N/C:C/I:C/A:C";
        let i = SsvcInputs::derive(false, None, Some(v2), Asset::default());
        assert!(i.automatable && i.technical_impact == TechnicalImpact::Total);
    }

    #[test]
    fn risk_orders_exploited_and_exposed_first() {
        let plain = Asset::default();
        let exposed = Asset {
            criticality: Criticality::Critical,
            internet_facing: true,
        };
        assert_eq!(
            risk_score(Some(10.0), Severity::Critical, true, None, exposed, false),
            100.0
        );
        assert_eq!(
            risk_score(Some(7.5), Severity::High, false, Some(0.1), plain, false),
            45.5
        );
        assert_eq!(
            risk_score(None, Severity::Low, false, None, plain, false),
            15.0
        );
        assert_eq!(
            risk_score(Some(7.5), Severity::High, false, Some(0.1), plain, true),
            22.8
        );
        assert!(
            risk_score(Some(7.8), Severity::High, true, None, plain, false)
                > risk_score(
                    Some(9.8),
                    Severity::Critical,
                    false,
                    Some(0.01),
                    plain,
                    false
                )
        );
    }
}
