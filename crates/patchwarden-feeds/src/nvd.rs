//! NVD CVE API 2.0: full response pages (`{resultsPerPage, startIndex, totalResults, vulnerabilities:
//! [{cve}]}`) and bare `cve` objects as mirrors store them. Every CVSS metric (v2, v3.0, v3.1, v4.0;
//! Primary and Secondary) is kept with its score recomputed from the vector and checked against the
//! stated one; `vulnStatus: Rejected` marks the CVE rejected; CWEs and the KEV fields NVD mirrors are
//! kept. NVD data enriches findings — it never creates an OS-package finding.

use patchwarden_cvss::{Cvss, CvssVersion, Severity};
use patchwarden_model::{CveRecord, CvssMetric, NvdKevMirror};
use serde_json::Value;

use crate::FeedError;

/// A parsed page: the records that parsed, and the ones that did not (skipped, counted, named).
pub struct NvdPage {
    pub total_results: Option<u64>,
    pub start_index: Option<u64>,
    pub records: Vec<CveRecord>,
    pub rejected_records: Vec<FeedError>,
}

/// Parses an API 2.0 page, or a single bare `cve` object (then a page of one).
pub fn parse(bytes: &[u8], origin: &str) -> Result<NvdPage, FeedError> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::file(origin, format!("not JSON: {e}")))?;
    if let Some(list) = doc.get("vulnerabilities") {
        let list = list
            .as_array()
            .ok_or_else(|| FeedError::file(origin, "'vulnerabilities' is not a list"))?;
        let mut page = NvdPage {
            total_results: doc.get("totalResults").and_then(Value::as_u64),
            start_index: doc.get("startIndex").and_then(Value::as_u64),
            records: Vec::with_capacity(list.len()),
            rejected_records: Vec::new(),
        };
        for (i, item) in list.iter().enumerate() {
            match item.get("cve") {
                Some(cve) => match parse_cve(cve, origin) {
                    Ok(r) => page.records.push(r),
                    Err(e) => page.rejected_records.push(e),
                },
                None => page.rejected_records.push(FeedError::record(
                    origin,
                    format!("vulnerabilities[{i}]"),
                    "no 'cve' object",
                )),
            }
        }
        Ok(page)
    } else if doc.get("id").is_some() && doc.get("sourceIdentifier").is_some() {
        let record = parse_cve(&doc, origin)?;
        Ok(NvdPage {
            total_results: Some(1),
            start_index: Some(0),
            records: vec![record],
            rejected_records: Vec::new(),
        })
    } else {
        Err(FeedError::file(
            origin,
            "neither an NVD API 2.0 page nor an NVD cve object",
        ))
    }
}

fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Parses one `cve` object.
pub fn parse_cve(cve: &Value, origin: &str) -> Result<CveRecord, FeedError> {
    let id = string(cve, "id")
        .filter(|i| i.starts_with("CVE-"))
        .ok_or_else(|| FeedError::file(origin, "cve object without a CVE id"))?;
    let err = |reason: String| FeedError::record(origin, id.clone(), reason);
    let status = string(cve, "vulnStatus");
    let description = cve
        .get("descriptions")
        .and_then(Value::as_array)
        .and_then(|d| {
            d.iter()
                .find(|x| x.get("lang").and_then(Value::as_str) == Some("en"))
        })
        .and_then(|x| string(x, "value"));
    let mut metrics = Vec::new();
    if let Some(m) = cve.get("metrics") {
        let m = m
            .as_object()
            .ok_or_else(|| err("'metrics' is not an object".into()))?;
        for (key, expected) in [
            ("cvssMetricV40", CvssVersion::V4_0),
            ("cvssMetricV31", CvssVersion::V3_1),
            ("cvssMetricV30", CvssVersion::V3_0),
            ("cvssMetricV2", CvssVersion::V2),
        ] {
            let Some(list) = m.get(key) else { continue };
            let list = list
                .as_array()
                .ok_or_else(|| err(format!("'{key}' is not a list")))?;
            for entry in list {
                metrics.push(metric(entry, expected).map_err(|e| err(format!("{key}: {e}")))?);
            }
        }
    }
    let mut cwes: Vec<String> = cve
        .get("weaknesses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|w| {
            w.get("description")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|d| d.get("value").and_then(Value::as_str))
        .filter(|v| v.starts_with("CWE-"))
        .map(str::to_owned)
        .collect();
    cwes.sort();
    cwes.dedup();
    let kev = string(cve, "cisaExploitAdd").map(|date_added| NvdKevMirror {
        date_added,
        due_date: string(cve, "cisaActionDue"),
        required_action: string(cve, "cisaRequiredAction"),
        name: string(cve, "cisaVulnerabilityName"),
    });
    Ok(CveRecord {
        rejected: status.as_deref() == Some("Rejected"),
        id,
        published: string(cve, "published"),
        last_modified: string(cve, "lastModified"),
        status,
        description,
        metrics,
        cwes,
        kev,
    })
}

fn metric(entry: &Value, expected: CvssVersion) -> Result<CvssMetric, String> {
    let data = entry.get("cvssData").ok_or("entry without cvssData")?;
    let vector = data
        .get("vectorString")
        .and_then(Value::as_str)
        .ok_or("cvssData without vectorString")?
        .to_owned();
    let version = data
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or(expected.as_str())
        .to_owned();
    let stated_score = data.get("baseScore").and_then(Value::as_f64);
    let (computed_score, severity, problem) = match Cvss::parse_as(&vector, expected) {
        Ok(c) => {
            // NVD states v4.0 scores for the vector as given (CVSS-BTE); v2 and v3 as base scores.
            let computed = if expected == CvssVersion::V4_0 {
                c.overall_score
            } else {
                c.base_score
            };
            let problem = stated_score
                .filter(|s| (s - computed).abs() > 0.05)
                .map(|s| format!("stated score {s} differs from the score {computed} computed from the vector"));
            (
                Some(computed),
                Some(
                    Severity::from_score(c.version, computed)
                        .as_str()
                        .to_owned(),
                ),
                problem,
            )
        }
        Err(e) => (
            None,
            stated_score.map(|s| Severity::from_score(expected, s).as_str().to_owned()),
            Some(e.to_string()),
        ),
    };
    Ok(CvssMetric {
        version,
        vector,
        source: entry
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        primary: entry.get("type").and_then(Value::as_str) == Some("Primary"),
        stated_score,
        computed_score,
        severity,
        problem,
    })
}
