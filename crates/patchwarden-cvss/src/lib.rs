//! CVSS vectors: parsing with strict validation, and scores computed from the vector, for every
//! version feeds carry — v2, v3.0, v3.1 and v4.0 — so that a stated score can be checked against its
//! vector and a vector without a score still gets one.
//!
//! v2 and v3.x (base, temporal and environmental equations, with v3.1's integer-safe `Roundup`) are
//! written here from the FIRST specifications; v4.0 scoring (macro-vector lookup) is delegated to the
//! RustSec `cvss` crate after the structural checks below.
//!
//! Validation: a v2 vector has no prefix and its metrics in specification order, the temporal and the
//! environmental groups complete or absent; v3.x starts `CVSS:3.0/` or `CVSS:3.1/`, has all eight base
//! metrics, no duplicate and no `X` in a base metric; v4.0 starts `CVSS:4.0/` and lists its metrics in
//! specification order with the eleven base metrics present. Anything else is an error naming the
//! vector and the problem.

mod v2;
mod v3;
mod v4;

use std::fmt;

/// The CVSS version of a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CvssVersion {
    V2,
    V3_0,
    V3_1,
    V4_0,
}

impl CvssVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            CvssVersion::V2 => "2.0",
            CvssVersion::V3_0 => "3.0",
            CvssVersion::V3_1 => "3.1",
            CvssVersion::V4_0 => "4.0",
        }
    }
}

impl fmt::Display for CvssVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Qualitative severity of a score. The bands are the same for v3.x and v4.0 (None 0.0, Low 0.1–3.9,
/// Medium 4.0–6.9, High 7.0–8.9, Critical 9.0–10.0); NVD applies them to v2 scores too, except that
/// v2 has no Critical band (7.0–10.0 is High).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn from_score(version: CvssVersion, score: f64) -> Severity {
        match score {
            s if s <= 0.0 => Severity::None,
            s if s < 4.0 => Severity::Low,
            s if s < 7.0 => Severity::Medium,
            s if s < 9.0 || version == CvssVersion::V2 => Severity::High,
            _ => Severity::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "NONE",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// A vector that is not valid CVSS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CvssError {
    pub vector: String,
    pub reason: String,
}

impl CvssError {
    pub(crate) fn new(vector: &str, reason: impl Into<String>) -> Self {
        CvssError {
            vector: vector.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CvssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid CVSS vector '{}': {}",
            self.vector.escape_debug(),
            self.reason
        )
    }
}

impl std::error::Error for CvssError {}

/// A validated vector with its scores.
#[derive(Clone, Debug, PartialEq)]
pub struct Cvss {
    pub version: CvssVersion,
    /// The vector as given.
    pub vector: String,
    /// The base score (for v4.0: CVSS-B, with threat and environmental metrics left out).
    pub base_score: f64,
    /// The score of every metric in the vector: environmental if any environmental metric is set, else
    /// temporal/threat if any is set, else the base score. For v4.0 this is CVSS-BTE as the vector says.
    pub overall_score: f64,
}

impl Cvss {
    /// Parses a vector of any version; the version is taken from its prefix (none = v2).
    pub fn parse(vector: &str) -> Result<Cvss, CvssError> {
        let (version, base_score, overall_score) = if let Some(rest) = vector.strip_prefix("CVSS:")
        {
            match rest.split('/').next() {
                Some("3.0") => v3::score(vector, CvssVersion::V3_0)?,
                Some("3.1") => v3::score(vector, CvssVersion::V3_1)?,
                Some("4.0") => v4::score(vector)?,
                Some(other) => {
                    return Err(CvssError::new(
                        vector,
                        format!("unsupported CVSS version '{other}'"),
                    ))
                }
                None => return Err(CvssError::new(vector, "no version after 'CVSS:'")),
            }
        } else {
            v2::score(vector)?
        };
        Ok(Cvss {
            version,
            vector: vector.to_owned(),
            base_score,
            overall_score,
        })
    }

    /// Parses a vector that must be of `expected` version (a feed states the version beside the vector;
    /// v3.0 and v3.1 count as one family here).
    pub fn parse_as(vector: &str, expected: CvssVersion) -> Result<Cvss, CvssError> {
        let cvss = Cvss::parse(vector)?;
        let family = |v: CvssVersion| {
            if v == CvssVersion::V3_0 {
                CvssVersion::V3_1
            } else {
                v
            }
        };
        if family(cvss.version) != family(expected) {
            return Err(CvssError::new(
                vector,
                format!(
                    "a CVSS {} vector where {} was expected",
                    cvss.version, expected
                ),
            ));
        }
        Ok(cvss)
    }

    pub fn severity(&self) -> Severity {
        Severity::from_score(self.version, self.base_score)
    }
}

/// Splits `A:B/C:D` into metric/value pairs, rejecting empty parts and duplicates, and checking the
/// metrics appear in `order` (names not in `order` are errors).
pub(crate) fn metrics<'a>(
    vector: &str,
    body: &'a str,
    order: &[&str],
    strict_order: bool,
) -> Result<Vec<(&'a str, &'a str)>, CvssError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut last_index: Option<usize> = None;
    for part in body.split('/') {
        let Some((name, value)) = part.split_once(':') else {
            return Err(CvssError::new(
                vector,
                format!("'{part}' is not METRIC:VALUE"),
            ));
        };
        if name.is_empty() || value.is_empty() || value.contains(':') {
            return Err(CvssError::new(
                vector,
                format!("'{part}' is not METRIC:VALUE"),
            ));
        }
        let Some(index) = order.iter().position(|m| *m == name) else {
            return Err(CvssError::new(vector, format!("unknown metric '{name}'")));
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(CvssError::new(
                vector,
                format!("metric '{name}' appears twice"),
            ));
        }
        if strict_order && last_index.is_some_and(|l| index < l) {
            return Err(CvssError::new(
                vector,
                format!("metric '{name}' is out of order"),
            ));
        }
        last_index = Some(index);
        out.push((name, value));
    }
    Ok(out)
}

/// The value of `name` in `m`, checked against `allowed` (value, weight) pairs; `default` when absent.
pub(crate) fn weight(
    vector: &str,
    m: &[(&str, &str)],
    name: &str,
    allowed: &[(&str, f64)],
    default: Option<&str>,
) -> Result<f64, CvssError> {
    let value = match m.iter().find(|(n, _)| *n == name) {
        Some((_, v)) => *v,
        None => default.ok_or_else(|| {
            CvssError::new(vector, format!("mandatory metric '{name}' is missing"))
        })?,
    };
    allowed
        .iter()
        .find(|(v, _)| *v == value)
        .map(|(_, w)| *w)
        .ok_or_else(|| {
            CvssError::new(
                vector,
                format!("'{value}' is not a valid value of '{name}'"),
            )
        })
}
