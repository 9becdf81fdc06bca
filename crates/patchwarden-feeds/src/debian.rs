//! The Debian security tracker's JSON (`/tracker/data/json`): `{source package: {CVE or TEMP id:
//! {description, scope, releases: {codename: {status, fixed_version, urgency, nodsa, nodsa_reason}}}}}`,
//! turned into one [`Advisory`] per id with an affected entry per (source package, release).
//!
//! States: `resolved` with a fixed version → `Fixed` (a `"0"` fixed version → `NotAffected`: the code
//! never shipped); `open` → `NotFixedYet`, or `WillNotFix` when `nodsa_reason` is `ignored` or the
//! urgency is `unimportant`, or `EndOfLife` when the urgency is `end-of-life`; `undetermined` →
//! `Undetermined`. The real data sometimes has `"releases": []` instead of an object; it means none.
//! Anything else (an unknown status, `resolved` without a version) rejects the file.

use std::collections::BTreeMap;

use patchwarden_model::{
    Advisory, AffectedPackage, Distro, FixState, PackageKeyKind, ReleaseKey, Source, VersionRange,
};
use serde_json::Value;

use crate::FeedError;

/// Debian's release codenames and their numbers.
pub const CODENAMES: [(&str, &str); 11] = [
    ("wheezy", "7"),
    ("jessie", "8"),
    ("stretch", "9"),
    ("buster", "10"),
    ("bullseye", "11"),
    ("bookworm", "12"),
    ("trixie", "13"),
    ("forky", "14"),
    ("duke", "15"),
    ("sid", "unstable"),
    ("unstable", "unstable"),
];

pub fn release_for_codename(codename: &str) -> String {
    CODENAMES
        .iter()
        .find(|(c, _)| *c == codename)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| codename.to_owned())
}

pub fn parse(bytes: &[u8], origin: &str) -> Result<Vec<Advisory>, FeedError> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::file(origin, format!("not JSON: {e}")))?;
    let packages = doc
        .as_object()
        .ok_or_else(|| FeedError::file(origin, "top level is not an object of packages"))?;
    let mut by_id: BTreeMap<String, Advisory> = BTreeMap::new();
    for (package, issues) in packages {
        let issues = issues
            .as_object()
            .ok_or_else(|| FeedError::record(origin, package.clone(), "not an object of issues"))?;
        for (id, issue) in issues {
            let record = format!("{package}/{id}");
            let bad = |reason: String| FeedError::record(origin, record.clone(), reason);
            let advisory = by_id.entry(id.clone()).or_insert_with(|| Advisory {
                summary: issue
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                ..Advisory::for_id(id, Source::DebianTracker)
            });
            let releases = match issue.get("releases") {
                None => continue,
                Some(Value::Array(a)) if a.is_empty() => continue, // the "releases": [] quirk
                Some(Value::Object(r)) => r,
                Some(_) => {
                    return Err(bad(
                        "'releases' is neither an object nor an empty list".into()
                    ))
                }
            };
            for (codename, rel) in releases {
                let field = |k: &str| rel.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
                let status =
                    field("status").ok_or_else(|| bad(format!("{codename}: no status")))?;
                let urgency = field("urgency").map(str::to_owned);
                let urgency_word = urgency.as_deref().map(|u| u.trim_end_matches('*'));
                let (state, fixed_version) = match status {
                    "resolved" => match field("fixed_version") {
                        Some("0") => (FixState::NotAffected, None),
                        Some(v) => (FixState::Fixed, Some(v.to_owned())),
                        None => {
                            return Err(bad(format!("{codename}: resolved without fixed_version")))
                        }
                    },
                    "open"
                        if field("nodsa_reason") == Some("ignored")
                            || urgency_word == Some("unimportant") =>
                    {
                        (FixState::WillNotFix, None)
                    }
                    "open" if urgency_word == Some("end-of-life") => (FixState::EndOfLife, None),
                    "open" => (FixState::NotFixedYet, None),
                    "undetermined" => (FixState::Undetermined, None),
                    other => return Err(bad(format!("{codename}: unknown status '{other}'"))),
                };
                let note = match (field("nodsa"), field("nodsa_reason")) {
                    (Some(n), Some(r)) => Some(format!("{n} ({r})")),
                    (Some(n), None) => Some(n.to_owned()),
                    (None, Some(r)) => Some(r.to_owned()),
                    (None, None) => None,
                };
                let ranges = match &fixed_version {
                    Some(f) => vec![VersionRange {
                        introduced: Some("0".into()),
                        fixed: Some(f.clone()),
                        ..Default::default()
                    }],
                    None if matches!(
                        state,
                        FixState::NotFixedYet | FixState::WillNotFix | FixState::EndOfLife
                    ) =>
                    {
                        vec![VersionRange {
                            introduced: Some("0".into()),
                            ..Default::default()
                        }]
                    }
                    None => Vec::new(),
                };
                advisory.affected.push(AffectedPackage {
                    ecosystem: format!("debian:{codename}"),
                    release: Some(ReleaseKey {
                        distro: Some(Distro::Debian),
                        release: release_for_codename(codename),
                        stream: None,
                    }),
                    package: package.clone(),
                    key_kind: PackageKeyKind::Source,
                    state,
                    fixed_version,
                    ranges,
                    versions: Vec::new(),
                    binaries: Vec::new(),
                    severity: urgency,
                    note,
                });
            }
        }
    }
    Ok(by_id.into_values().collect())
}
