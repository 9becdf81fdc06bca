//! Recognizes which feed format a file holds, from its name and first bytes, so `feeds import` can
//! take a mixed directory (an air-gapped bundle) without being told.

use serde_json::Value;

use crate::FeedError;

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

/// Recognizes the format of the file at `origin` (its path or name; the extension counts).
/// `Ok(None)`: the file is of no kind patchwarden reads (the caller decides whether that is an
/// error: a file named on the command line, or a skip: a stray file met walking a directory).
/// `Err`: the file claims to be a JSON document but does not parse (truncated, corrupt) — an error
/// wherever it was met. A format is named only from that format's own structure, never by
/// elimination: `{}` is no feed (it once replaced the whole Debian tracker with nothing).
pub fn detect(origin: &str, bytes: &[u8]) -> Result<Option<FeedFormat>, FeedError> {
    if origin.ends_with(".yaml") || origin.ends_with(".yml") {
        return Ok(Some(FeedFormat::AlpineYaml));
    }
    if bytes.starts_with(&[0x1f, 0x8b])
        || bytes.starts_with(b"#model_version")
        || bytes.starts_with(b"cve,epss")
    {
        return Ok(Some(FeedFormat::EpssCsv));
    }
    let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Ok(None);
    };
    if *first != b'{' {
        return Ok(None);
    }
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::file(origin, format!("not a complete JSON document: {e}")))?;
    let Some(obj) = doc.as_object() else {
        return Ok(None);
    };
    let nvd_page = obj.contains_key("vulnerabilities")
        && (obj.contains_key("resultsPerPage") || obj.contains_key("format"));
    let nvd_object = obj.contains_key("sourceIdentifier") && obj.contains_key("id");
    Ok(
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
        } else if is_debian_tracker(obj) {
            Some(FeedFormat::DebianTracker)
        } else {
            None
        },
    )
}

/// The Debian security tracker's JSON: source packages, each a map of issue ids (`CVE-…`,
/// `TEMP-…`) to issues that carry their `releases`; at least one issue.
fn is_debian_tracker(obj: &serde_json::Map<String, Value>) -> bool {
    let mut issues = 0usize;
    let all_packages = obj.values().all(|v| {
        v.as_object().is_some_and(|package| {
            package.iter().all(|(id, issue)| {
                issues += 1;
                (id.starts_with("CVE-") || id.starts_with("TEMP-"))
                    // The real data writes `"releases": []` for none (debian.rs).
                    && issue
                        .get("releases")
                        .is_some_and(|r| r.is_object() || r.as_array().is_some_and(Vec::is_empty))
            })
        })
    });
    all_packages && issues > 0
}
