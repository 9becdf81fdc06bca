//! Red Hat CSAF VEX documents (`/csaf/v2/vex/YYYY/cve-YYYY-NNNN.json`, one per CVE): the only Red Hat
//! source that says *not fixed yet* and *will not fix*, which the RHEL rebuilds' own OSV feeds cannot.
//!
//! A product id is `<platform>:<component>` — `BaseOS-9.5.0.Z.MAIN:pam-0:1.5.1-21.el9_5.x86_64`,
//! `red_hat_enterprise_linux_7:pam`. The platform's CPE in the product tree gives the release and
//! stream (`cpe:/o:redhat:enterprise_linux:9::baseos` → RHEL 9 `baseos`; `…:rhel_eus:9.0::appstream`
//! → RHEL 9 `appstream:eus:9.0`, an extended-support stream of minor release 9.0, also read from
//! ids such as `AppStream-9.0.0.Z.EUS`); without a product tree the
//! platform id itself is read (`red_hat_enterprise_linux_7`, `BaseOS-9.5…`). Components with a version
//! are NEVRAs (the fixed version is their EVR); components without one name the package.
//!
//! States: `fixed` → `Fixed`; `known_affected` → `WillNotFix` when its remediation is
//! `no_fix_planned`, else `NotFixedYet`; `known_not_affected` → `NotAffected`; `under_investigation` →
//! `Undetermined`. Documents trimmed to remediations only (no `product_status`) are read from the
//! remediations. Platforms that are not RHEL (Satellite, OpenShift…) are kept without a release;
//! product-level ids without a component (`Text-Only JBCS`) are skipped.

use std::collections::{BTreeMap, HashMap};

use patchwarden_model::{
    Advisory, AffectedPackage, Distro, FixState, PackageKeyKind, ReleaseKey, Source, VersionRange,
};
use patchwarden_version::rpm::Nevra;
use serde_json::Value;

use crate::FeedError;

/// Every `product_name` branch's product id → CPE, from the product tree.
fn platform_cpes(node: &Value, out: &mut HashMap<String, String>) {
    for b in node
        .get("branches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(p) = b.get("product") {
            if let (Some(id), Some(cpe)) = (
                p.get("product_id").and_then(Value::as_str),
                p.pointer("/product_identification_helper/cpe")
                    .and_then(Value::as_str),
            ) {
                out.insert(id.to_owned(), cpe.to_owned());
            }
        }
        platform_cpes(b, out);
    }
}

/// The RHEL release and stream a platform stands for (see [`release_from`]), with the
/// extended-support stream a main-stream platform continues as: `BaseOS-9.2.0.Z.MAIN.EUS` (CPE
/// `enterprise_linux:9::baseos`) published 9.2's fixes while 9.2 was the main stream, and they
/// are 9.2 EUS's fixes too: stream `baseos:eus:9.2:main`.
fn release_of(platform: &str, cpe: Option<&str>) -> Option<ReleaseKey> {
    let mut key = release_from(platform, cpe)?;
    let upper = platform.to_ascii_uppercase();
    if let Some(phase) = extended_phases().find(|p| upper.ends_with(&format!(".MAIN.{p}"))) {
        let version = platform.split_once('-').map(|(_, v)| v).unwrap_or("");
        if let (Some(stream), Some(minor)) = (key.stream.as_mut(), minor_release(version)) {
            if !stream.contains(':') {
                *stream = format!("{stream}:{}:{minor}:main", phase.to_ascii_lowercase());
            }
        }
    }
    Some(key)
}

/// The RHEL release and stream a platform stands for, from its CPE or, lacking one, its id.
fn release_from(platform: &str, cpe: Option<&str>) -> Option<ReleaseKey> {
    let rhel = |release: &str, stream: Option<&str>| {
        let major = release.split('.').next().unwrap_or(release);
        (!major.is_empty() && major.chars().all(|c| c.is_ascii_digit())).then(|| ReleaseKey {
            distro: Some(Distro::Rhel),
            release: major.to_owned(),
            stream: stream
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase),
        })
    };
    if let Some(cpe) = cpe {
        // cpe:/o:redhat:enterprise_linux:9::baseos (also cpe:/a:… for AppStream)
        let parts: Vec<&str> = cpe.split(':').collect();
        // Extended-support streams (cpe:/a:redhat:rhel_eus:9.0::appstream) are RHEL too, but their own
        // update stream: `appstream:eus`.
        return match (parts.get(2), parts.get(3)) {
            (Some(&"redhat"), Some(&"enterprise_linux")) => {
                rhel(parts.get(4).copied().unwrap_or(""), parts.get(6).copied())
            }
            (
                Some(&"redhat"),
                Some(product @ (&"rhel_eus" | &"rhel_aus" | &"rhel_e4s" | &"rhel_tus")),
            ) => {
                let version = parts.get(4).copied().unwrap_or("");
                let stream = format!(
                    "{}:{}:{}",
                    parts.get(6).copied().unwrap_or(""),
                    product.trim_start_matches("rhel_"),
                    minor_release(version).unwrap_or_default()
                );
                rhel(version, Some(stream.as_str()))
            }
            _ => None,
        };
    }
    if let Some(n) = platform.strip_prefix("red_hat_enterprise_linux_") {
        return rhel(n, None);
    }
    let (stream, rest) = platform.split_once('-')?;
    [
        "BaseOS",
        "AppStream",
        "CRB",
        "HighAvailability",
        "ResilientStorage",
        "SAP",
        "SAPHANA",
        "NFV",
        "RT",
    ]
    .contains(&stream)
    .then(|| {
        // `AppStream-9.0.0.Z.EUS`: an extended-support stream of minor release 9.0 (`….MAIN.EUS`
        // is the main stream's, see [`release_of`]).
        let upper = rest.to_ascii_uppercase();
        let phase = extended_phases()
            .find(|p| upper.ends_with(&format!(".{p}")) && !upper.ends_with(&format!(".MAIN.{p}")));
        match phase {
            Some(phase) => {
                let stream = format!(
                    "{stream}:{}:{}",
                    phase.to_ascii_lowercase(),
                    minor_release(rest).unwrap_or_default()
                );
                rhel(rest, Some(stream.as_str()))
            }
            None => rhel(rest, Some(stream)),
        }
    })
    .flatten()
}

/// Red Hat's extended-support phases as platform ids spell them (`EUS`, `AUS`, `E4S`, `TUS`).
fn extended_phases() -> impl Iterator<Item = String> {
    patchwarden_model::RhelPhase::EXTENDED
        .into_iter()
        .map(|p| p.as_str().to_ascii_uppercase())
}

/// `9.0` of `9.0`, `9.0.0.Z.EUS`: the major and minor release, when both are digits.
fn minor_release(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    [major, minor]
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{major}.{minor}"))
}

pub fn parse(bytes: &[u8], origin: &str) -> Result<Vec<Advisory>, FeedError> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::file(origin, format!("not JSON: {e}")))?;
    if doc.pointer("/document/category").and_then(Value::as_str) != Some("csaf_vex") {
        return Err(FeedError::file(
            origin,
            "not a CSAF VEX document (document.category is not csaf_vex)",
        ));
    }
    // When Red Hat last revised the document: the feed's data date (how current the data is).
    let modified = doc
        .pointer("/document/tracking/current_release_date")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let severity = doc
        .pointer("/document/aggregate_severity/text")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut cpes = HashMap::new();
    if let Some(tree) = doc.get("product_tree") {
        platform_cpes(tree, &mut cpes);
    }
    let mut out = Vec::new();
    for (i, v) in doc
        .get("vulnerabilities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let cve = v
            .get("cve")
            .and_then(Value::as_str)
            .ok_or_else(|| FeedError::record(origin, format!("vulnerabilities[{i}]"), "no cve"))?;
        let bad = |reason: String| FeedError::record(origin, cve.to_owned(), reason);
        // Remediation category (and details) per product id.
        let mut remedy: HashMap<&str, (&str, Option<&str>)> = HashMap::new();
        for r in v
            .get("remediations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let category = r.get("category").and_then(Value::as_str).unwrap_or("");
            for id in r
                .get("product_ids")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                remedy.insert(id, (category, r.get("details").and_then(Value::as_str)));
            }
        }
        let mut statuses: Vec<(&str, FixState)> = Vec::new();
        match v.get("product_status").and_then(Value::as_object) {
            Some(ps) => {
                for (key, state) in [
                    ("fixed", FixState::Fixed),
                    ("known_affected", FixState::NotFixedYet),
                    ("known_not_affected", FixState::NotAffected),
                    ("under_investigation", FixState::Undetermined),
                ] {
                    for id in ps.get(key).and_then(Value::as_array).into_iter().flatten() {
                        statuses.push((
                            id.as_str().ok_or_else(|| {
                                bad(format!("a {key} product id is not a string"))
                            })?,
                            state,
                        ));
                    }
                }
            }
            None => {
                for (id, (category, _)) in &remedy {
                    let state = match *category {
                        "vendor_fix" => FixState::Fixed,
                        "none_available" | "no_fix_planned" => FixState::NotFixedYet,
                        _ => continue,
                    };
                    statuses.push((id, state));
                }
                statuses.sort_by(|a, b| a.0.cmp(b.0));
            }
        }
        // One entry per (release, package, state, version): arches and sub-streams collapse.
        let mut affected: BTreeMap<(String, String, String, String), AffectedPackage> =
            BTreeMap::new();
        for (id, mut state) in statuses {
            // Product-level ids ("Text-Only JBCS") name no package: nothing to match, skipped.
            let Some((platform, component)) = id.split_once(':') else {
                continue;
            };
            let (package, fixed_version) = match Nevra::parse(component) {
                Ok(n) if component.contains(':') => (n.name.to_owned(), Some(n.evr.to_string())),
                _ => (component.trim_end_matches(".src").to_owned(), None),
            };
            let note = remedy
                .get(id)
                .and_then(|(c, d)| d.map(|d| format!("{c}: {d}")).or(Some(c.to_string())));
            if state == FixState::NotFixedYet
                && remedy.get(id).is_some_and(|(c, _)| *c == "no_fix_planned")
            {
                state = FixState::WillNotFix;
            }
            if state == FixState::Fixed && fixed_version.is_none() {
                return Err(bad(format!("{id}: fixed without a version")));
            }
            let release = release_of(platform, cpes.get(platform).map(String::as_str));
            let key = (
                release
                    .as_ref()
                    .map(|r| format!("{}/{}", r.release, r.stream.clone().unwrap_or_default()))
                    .unwrap_or_else(|| platform.to_owned()),
                package.clone(),
                format!("{state:?}"),
                fixed_version.clone().unwrap_or_default(),
            );
            affected.entry(key).or_insert_with(|| AffectedPackage {
                ecosystem: format!("redhat:{platform}"),
                release,
                package,
                key_kind: PackageKeyKind::Binary,
                state,
                ranges: fixed_version
                    .iter()
                    .map(|f| VersionRange {
                        introduced: Some("0".into()),
                        fixed: Some(f.clone()),
                        ..Default::default()
                    })
                    .collect(),
                fixed_version,
                versions: Vec::new(),
                binaries: Vec::new(),
                severity: None,
                note: if state == FixState::Fixed { None } else { note },
            });
        }
        let cvss_vectors = v
            .get("scores")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| {
                s.pointer("/cvss_v3/vectorString")
                    .or_else(|| s.pointer("/cvss_v4/vectorString"))
                    .and_then(Value::as_str)
            })
            .map(str::to_owned)
            .collect();
        let threat = v
            .get("threats")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|t| t.get("category").and_then(Value::as_str) == Some("impact"))
            .and_then(|t| t.get("details").and_then(Value::as_str))
            .map(str::to_owned);
        out.push(Advisory {
            published: v
                .get("release_date")
                .and_then(Value::as_str)
                .map(str::to_owned),
            modified: modified.clone(),
            severity: threat.or_else(|| severity.clone()),
            cvss_vectors,
            affected: affected.into_values().collect(),
            ..Advisory::for_id(cve, Source::RedhatVex)
        });
    }
    if out.is_empty() {
        return Err(FeedError::file(
            origin,
            "no vulnerabilities in the document",
        ));
    }
    Ok(out)
}
