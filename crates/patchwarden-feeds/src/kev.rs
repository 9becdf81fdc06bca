//! CISA's Known Exploited Vulnerabilities catalog (JSON). The catalog is one snapshot: a malformed entry
//! (no CVE id, a date that is not `YYYY-MM-DD`) rejects the file. A due date before the date added is
//! real (emergency directives predate some listings) and kept. `count` is not checked against the
//! entries: trimmed copies (e.g. upstream test fixtures) disagree with it, and a cut download already
//! fails as JSON.

use patchwarden_model::{KevCatalog, KevEntry};
use serde::Deserialize;

use crate::{is_date, FeedError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCatalog {
    catalog_version: String,
    date_released: String,
    vulnerabilities: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(rename = "cveID")]
    cve_id: String,
    #[serde(default)]
    vendor_project: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    vulnerability_name: String,
    date_added: String,
    due_date: String,
    #[serde(default)]
    known_ransomware_campaign_use: String,
    #[serde(default)]
    required_action: String,
    notes: Option<String>,
    #[serde(default)]
    cwes: Vec<String>,
}

pub fn parse(bytes: &[u8], origin: &str) -> Result<KevCatalog, FeedError> {
    let raw: RawCatalog = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::file(origin, format!("not a KEV catalog: {e}")))?;
    let mut entries = Vec::with_capacity(raw.vulnerabilities.len());
    for (i, e) in raw.vulnerabilities.into_iter().enumerate() {
        let record = if e.cve_id.is_empty() {
            format!("entry {i}")
        } else {
            e.cve_id.clone()
        };
        let bad = |reason: String| FeedError::record(origin, record.clone(), reason);
        if !e.cve_id.starts_with("CVE-") {
            return Err(bad(format!("'{}' is not a CVE id", e.cve_id)));
        }
        for (field, value) in [("dateAdded", &e.date_added), ("dueDate", &e.due_date)] {
            if !is_date(value) {
                return Err(bad(format!("{field} '{value}' is not YYYY-MM-DD")));
            }
        }
        entries.push(KevEntry {
            cve: e.cve_id,
            vendor: e.vendor_project,
            product: e.product,
            name: e.vulnerability_name,
            date_added: e.date_added,
            due_date: e.due_date,
            known_ransomware_use: e
                .known_ransomware_campaign_use
                .eq_ignore_ascii_case("Known"),
            required_action: e.required_action,
            notes: e.notes.filter(|n| !n.is_empty()),
            cwes: e.cwes,
        });
    }
    Ok(KevCatalog {
        catalog_version: raw.catalog_version,
        date_released: raw.date_released,
        entries,
    })
}
