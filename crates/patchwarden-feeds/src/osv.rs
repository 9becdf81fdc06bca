//! OSV (schema 1.x) records of distribution ecosystems: Debian, Ubuntu (both the older Canonical layout
//! with the CVE as id and the newer `UBUNTU-CVE-*`/`USN-*` one), AlmaLinux, Rocky Linux, Alpine, Red Hat,
//! SUSE/openSUSE. Other ecosystems are kept with no release (not matched), never fatal.
//!
//! * The CVEs of a record are collected from `id`, `aliases`, `upstream` and `related` — each
//!   distribution uses a different one.
//! * Only `ECOSYSTEM` ranges are read (distribution versions); a range with a `fixed` event makes the
//!   package `Fixed`, one that is open (`introduced` only, or `last_affected`) `NotFixedYet`, as are
//!   packages listed only through `versions[]`. OSV cannot say "will not fix" or "not affected": a
//!   package absent from `affected[]` is simply not named.
//! * `withdrawn` is kept; matching drops withdrawn advisories.

use patchwarden_model::{
    Advisory, AffectedPackage, Distro, FixState, PackageKeyKind, ReleaseKey, Source, VersionRange,
};
use serde::Deserialize;
use serde_json::Value;

use crate::{cve_ids, FeedError};

#[derive(Deserialize)]
struct RawRecord {
    id: Option<String>,
    modified: Option<String>,
    published: Option<String>,
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    related: Vec<String>,
    #[serde(default)]
    upstream: Vec<String>,
    summary: Option<String>,
    #[serde(default)]
    severity: Vec<RawSeverity>,
    #[serde(default)]
    affected: Vec<RawAffected>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct RawAffected {
    package: Option<RawPackage>,
    #[serde(default)]
    ranges: Vec<RawRange>,
    #[serde(default)]
    versions: Vec<String>,
    ecosystem_specific: Option<Value>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<serde_json::Map<String, Value>>,
}

/// Parses one OSV record. `origin` names the file for errors.
pub fn parse(bytes: &[u8], origin: &str) -> Result<Advisory, FeedError> {
    let raw: RawRecord = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::file(origin, format!("not an OSV record: {e}")))?;
    let id = raw
        .id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| FeedError::file(origin, "OSV record without an id"))?;
    let err = |reason: String| FeedError::record(origin, id.clone(), reason);
    if raw.modified.as_deref().is_none_or(str::is_empty) {
        return Err(err("missing 'modified'".into()));
    }
    let cves = cve_ids(
        std::iter::once(id.as_str()).chain(
            raw.aliases
                .iter()
                .chain(&raw.upstream)
                .chain(&raw.related)
                .map(String::as_str),
        ),
    );
    let mut severity = None;
    let mut cvss_vectors = Vec::new();
    for s in &raw.severity {
        match s.kind.as_str() {
            "CVSS_V2" | "CVSS_V3" | "CVSS_V4" => cvss_vectors.push(s.score.clone()),
            "Ubuntu" => severity = Some(s.score.clone()),
            _ => {}
        }
    }
    let mut affected = Vec::with_capacity(raw.affected.len());
    for (i, a) in raw.affected.into_iter().enumerate() {
        let Some(package) = a.package else {
            return Err(err(format!("affected[{i}] has no package")));
        };
        if package.name.is_empty() {
            return Err(err(format!("affected[{i}] has an empty package name")));
        }
        let (release, key_kind) = ecosystem_release(&package.ecosystem);
        let mut ranges = Vec::new();
        for r in a.ranges.iter().filter(|r| r.kind == "ECOSYSTEM") {
            let mut range = VersionRange::default();
            for event in &r.events {
                for (k, v) in event {
                    let v = v
                        .as_str()
                        .ok_or_else(|| {
                            err(format!(
                                "affected[{i}] ({}): event '{k}' is not a string",
                                package.name
                            ))
                        })?
                        .to_owned();
                    match k.as_str() {
                        "introduced" => {
                            if range.introduced.is_some() {
                                ranges.push(std::mem::take(&mut range));
                            }
                            range.introduced = Some(v)
                        }
                        "fixed" => range.fixed = Some(v),
                        "last_affected" => range.last_affected = Some(v),
                        "limit" => range.limit = Some(v),
                        other => {
                            return Err(err(format!(
                                "affected[{i}] ({}): unknown range event '{other}'",
                                package.name
                            )))
                        }
                    }
                }
            }
            ranges.push(range);
        }
        let fixed_version = ranges.iter().find_map(|r| r.fixed.clone());
        let state = if fixed_version.is_some() {
            FixState::Fixed
        } else if !ranges.is_empty() || !a.versions.is_empty() {
            FixState::NotFixedYet
        } else {
            return Err(err(format!(
                "affected[{i}] ({}) has neither ECOSYSTEM ranges nor versions",
                package.name
            )));
        };
        let (pkg_severity, binaries, note) = ecosystem_specific(a.ecosystem_specific.as_ref());
        affected.push(AffectedPackage {
            ecosystem: package.ecosystem,
            release,
            package: package.name,
            key_kind,
            state,
            fixed_version,
            ranges,
            versions: a.versions,
            binaries,
            severity: pkg_severity,
            note,
        });
    }
    if severity.is_none() {
        // Red Hat rebuilds state the impact only as the summary's prefix ("Important: openssl ...").
        severity = raw
            .summary
            .as_deref()
            .and_then(|s| s.split_once(':'))
            .map(|(p, _)| p.trim())
            .filter(|p| ["Critical", "Important", "Moderate", "Low"].contains(p))
            .map(str::to_owned);
    }
    Ok(Advisory {
        id,
        source: Source::Osv,
        aliases: raw.aliases,
        cves,
        summary: raw.summary,
        published: raw.published,
        modified: raw.modified,
        withdrawn: raw.withdrawn,
        severity,
        cvss_vectors,
        affected,
    })
}

/// Ubuntu's per-package extras: the priority (old layout), the binaries (both layouts), availability.
fn ecosystem_specific(v: Option<&Value>) -> (Option<String>, Vec<String>, Option<String>) {
    let Some(v) = v else {
        return (None, Vec::new(), None);
    };
    let priority = v
        .get("ubuntu_priority")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let note = v
        .get("availability")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut binaries = Vec::new();
    if let Some(list) = v.get("binaries").and_then(Value::as_array) {
        for item in list {
            if let Some(name) = item.get("binary_name").and_then(Value::as_str) {
                binaries.push(name.to_owned()); // newer layout: [{binary_name, binary_version}]
            } else if let Some(map) = item.as_object() {
                binaries.extend(map.keys().cloned()); // older layout: [{name: version, ...}]
            }
        }
    }
    binaries.sort();
    binaries.dedup();
    (priority, binaries, note)
}

/// Maps an OSV ecosystem string to the release it names and how packages are keyed there.
pub fn ecosystem_release(ecosystem: &str) -> (Option<ReleaseKey>, PackageKeyKind) {
    let (name, rest) = ecosystem.split_once(':').unwrap_or((ecosystem, ""));
    let key = |distro: Distro, release: &str, stream: Option<String>| {
        (!release.is_empty()).then(|| ReleaseKey {
            distro: Some(distro),
            release: release.to_owned(),
            stream,
        })
    };
    match name {
        "Debian" => (key(Distro::Debian, rest, None), PackageKeyKind::Source),
        "Ubuntu" => {
            let parts: Vec<&str> = rest.split(':').collect();
            let release = parts
                .iter()
                .find(|p| p.contains('.') && p.chars().next().is_some_and(|c| c.is_ascii_digit()))
                .copied()
                .unwrap_or("");
            let qualifiers: Vec<String> = parts
                .iter()
                .filter(|p| **p != release && **p != "LTS")
                .map(|p| p.to_ascii_lowercase())
                .collect();
            let stream = (!qualifiers.is_empty()).then(|| qualifiers.join(":"));
            (key(Distro::Ubuntu, release, stream), PackageKeyKind::Source)
        }
        "AlmaLinux" => (key(Distro::Almalinux, rest, None), PackageKeyKind::Binary),
        "Rocky Linux" => (key(Distro::Rocky, rest, None), PackageKeyKind::Binary),
        "Alpine" => (
            key(Distro::Alpine, rest.trim_start_matches('v'), None),
            PackageKeyKind::Source,
        ),
        "Red Hat" => {
            // "enterprise_linux:9::baseos" (the CPE suffix): the major release, then the stream.
            let parts: Vec<&str> = rest.split(':').collect();
            let release = parts
                .get(1)
                .map(|r| r.split('.').next().unwrap_or(r))
                .unwrap_or("");
            let stream = parts
                .iter()
                .skip(2)
                .rfind(|p| !p.is_empty())
                .map(|s| s.to_string());
            (key(Distro::Rhel, release, stream), PackageKeyKind::Binary)
        }
        "SUSE" => (key(Distro::Sles, rest, None), PackageKeyKind::Source),
        "openSUSE" => (
            key(
                Distro::Opensuse,
                rest.trim_start_matches("Leap ").trim(),
                None,
            ),
            PackageKeyKind::Source,
        ),
        _ => (None, PackageKeyKind::Source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystems() {
        let r = |e: &str| {
            ecosystem_release(e)
                .0
                .map(|k| (k.distro.unwrap(), k.release, k.stream))
        };
        assert_eq!(r("Debian:12"), Some((Distro::Debian, "12".into(), None)));
        assert_eq!(
            r("Ubuntu:22.04:LTS"),
            Some((Distro::Ubuntu, "22.04".into(), None))
        );
        assert_eq!(
            r("Ubuntu:Pro:18.04:LTS"),
            Some((Distro::Ubuntu, "18.04".into(), Some("pro".into())))
        );
        assert_eq!(
            r("Ubuntu:25.10"),
            Some((Distro::Ubuntu, "25.10".into(), None))
        );
        assert_eq!(
            r("AlmaLinux:9"),
            Some((Distro::Almalinux, "9".into(), None))
        );
        assert_eq!(r("Rocky Linux:9"), Some((Distro::Rocky, "9".into(), None)));
        assert_eq!(
            r("Alpine:v3.19"),
            Some((Distro::Alpine, "3.19".into(), None))
        );
        assert_eq!(
            r("Red Hat:enterprise_linux:9::baseos"),
            Some((Distro::Rhel, "9".into(), Some("baseos".into())))
        );
        assert_eq!(
            r("openSUSE:Leap 15.5"),
            Some((Distro::Opensuse, "15.5".into(), None))
        );
        assert_eq!(r("PyPI"), None);
        assert_eq!(ecosystem_release("AlmaLinux:9").1, PackageKeyKind::Binary);
    }
}
