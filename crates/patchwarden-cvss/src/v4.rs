//! CVSS v4.0: structure checked here (prefix, specification order, mandatory base metrics), scores from the RustSec `cvss` crate's implementation of the specification's macro-vector
//! method.

use std::str::FromStr;

use crate::{metrics, CvssError, CvssVersion};

const ORDER: [&str; 32] = [
    "AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA", "E", "CR", "IR", "AR", "MAV",
    "MAC", "MAT", "MPR", "MUI", "MVC", "MVI", "MVA", "MSC", "MSI", "MSA", "S", "AU", "R", "V",
    "RE", "U",
];

pub(crate) fn score(vector: &str) -> Result<(CvssVersion, f64, f64), CvssError> {
    let body = vector
        .strip_prefix("CVSS:4.0/")
        .ok_or_else(|| CvssError::new(vector, "no metrics after 'CVSS:4.0'"))?;
    let m = metrics(vector, body, &ORDER, true)?;
    if let Some(missing) = ORDER[..11].iter().find(|n| !m.iter().any(|(k, _)| k == *n)) {
        return Err(CvssError::new(
            vector,
            format!("mandatory metric '{missing}' is missing"),
        ));
    }
    let full =
        cvss::v4::Vector::from_str(vector).map_err(|e| CvssError::new(vector, e.to_string()))?;
    let base_only: String = std::iter::once("CVSS:4.0".to_owned())
        .chain(m.iter().take(11).map(|(n, v)| format!("{n}:{v}")))
        .collect::<Vec<_>>()
        .join("/");
    let base = cvss::v4::Vector::from_str(&base_only)
        .map_err(|e| CvssError::new(vector, e.to_string()))?;
    Ok((
        CvssVersion::V4_0,
        base.score().value(),
        full.score().value(),
    ))
}
