//! Recognizes which feed format a file holds, from its name and first bytes, so `feeds import` can
//! take a mixed directory (an air-gapped bundle) without being told.

use serde_json::Value;

/// The formats the parsers of this crate read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedFormat {
    Osv,
    Nvd,
    Kev,
    EpssCsv,
    DebianTracker,
    AlpineJson,
    AlpineYaml,
    RedhatVex,
}

/// Guesses the format; `None` when the file is none of them (the caller says so, naming the file).
pub fn detect(file_name: &str, bytes: &[u8]) -> Option<FeedFormat> {
    if file_name.ends_with(".yaml") || file_name.ends_with(".yml") {
        return Some(FeedFormat::AlpineYaml);
    }
    if bytes.starts_with(&[0x1f, 0x8b])
        || bytes.starts_with(b"#model_version")
        || bytes.starts_with(b"cve,epss")
    {
        return Some(FeedFormat::EpssCsv);
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    let obj = doc.as_object()?;
    let nvd_page = obj.contains_key("vulnerabilities")
        && (obj.contains_key("resultsPerPage") || obj.contains_key("format"));
    let nvd_object = obj.contains_key("sourceIdentifier") && obj.contains_key("id");
    if obj
        .get("document")
        .and_then(|d| d.get("category"))
        .and_then(Value::as_str)
        == Some("csaf_vex")
    {
        Some(FeedFormat::RedhatVex)
    } else if obj.contains_key("catalogVersion") {
        Some(FeedFormat::Kev)
    } else if nvd_page || nvd_object {
        Some(FeedFormat::Nvd)
    } else if obj.contains_key("distroversion") {
        Some(FeedFormat::AlpineJson)
    } else if obj.contains_key("id")
        && (obj.contains_key("affected") || obj.contains_key("modified"))
    {
        Some(FeedFormat::Osv)
    } else if obj.values().all(|v| {
        v.as_object().is_some_and(|issues| {
            issues
                .keys()
                .all(|k| k.starts_with("CVE-") || k.starts_with("TEMP-"))
        })
    }) {
        Some(FeedFormat::DebianTracker)
    } else {
        None
    }
}
