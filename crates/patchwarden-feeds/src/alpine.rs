//! Alpine's secdb (`secdb.alpinelinux.org/<release>/<repo>.json`, and the older YAML form of the same
//! schema): per origin package, `secfixes` maps the first fixed version to the ids it fixes. A version
//! `"0"` means not affected. One string may hold several ids (`"CVE-2018-7540 XSA-252"`). Not-fixed-yet
//! is not represented in secdb at all. Turned into one [`Advisory`] per id; a malformed entry rejects
//! the file.

use std::collections::BTreeMap;

use patchwarden_model::{
    Advisory, AffectedPackage, Distro, FixState, PackageKeyKind, ReleaseKey, Source, VersionRange,
};
use serde_json::Value;

use crate::FeedError;

/// Parses the JSON form.
pub fn parse_json(bytes: &[u8], origin: &str) -> Result<Vec<Advisory>, FeedError> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::file(origin, format!("not JSON: {e}")))?;
    normalize(&doc, origin)
}

/// Parses the YAML form (converted to the JSON data model first, so both forms share one reader;
/// version keys YAML reads as numbers become their text).
pub fn parse_yaml(bytes: &[u8], origin: &str) -> Result<Vec<Advisory>, FeedError> {
    let doc: serde_norway::Value = serde_norway::from_slice(bytes)
        .map_err(|e| FeedError::file(origin, format!("not YAML: {e}")))?;
    normalize(&yaml_to_json(doc), origin)
}

fn yaml_to_json(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => Value::String(n.to_string()),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

fn normalize(doc: &Value, origin: &str) -> Result<Vec<Advisory>, FeedError> {
    let distroversion = doc
        .get("distroversion")
        .and_then(Value::as_str)
        .ok_or_else(|| FeedError::file(origin, "no distroversion"))?;
    let repo = doc.get("reponame").and_then(Value::as_str).unwrap_or("");
    let release = distroversion.trim_start_matches('v').to_owned();
    let packages = doc
        .get("packages")
        .and_then(Value::as_array)
        .ok_or_else(|| FeedError::file(origin, "no packages list"))?;
    let mut by_id: BTreeMap<String, Advisory> = BTreeMap::new();
    for (i, entry) in packages.iter().enumerate() {
        let pkg = entry
            .get("pkg")
            .ok_or_else(|| FeedError::record(origin, format!("packages[{i}]"), "no 'pkg'"))?;
        let name = pkg
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                FeedError::record(origin, format!("packages[{i}]"), "no package name")
            })?;
        let secfixes = match pkg.get("secfixes") {
            None | Some(Value::Null) => continue,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(FeedError::record(origin, name, "secfixes is not a map")),
        };
        for (version, ids) in secfixes {
            let ids: Vec<&str> = match ids {
                Value::Null => Vec::new(),
                Value::Array(list) => list
                    .iter()
                    .map(|x| {
                        x.as_str().ok_or_else(|| {
                            FeedError::record(
                                origin,
                                format!("{name} {version}"),
                                "an id is not a string",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(FeedError::record(
                        origin,
                        format!("{name} {version}"),
                        "ids are not a list",
                    ))
                }
            };
            let (state, fixed_version, ranges) = if version == "0" {
                (FixState::NotAffected, None, Vec::new())
            } else {
                let range = VersionRange {
                    introduced: Some("0".into()),
                    fixed: Some(version.clone()),
                    ..Default::default()
                };
                (FixState::Fixed, Some(version.clone()), vec![range])
            };
            for id in ids.iter().flat_map(|s| s.split_whitespace()) {
                let advisory = by_id
                    .entry(id.to_owned())
                    .or_insert_with(|| Advisory::for_id(id, Source::AlpineSecdb));
                advisory.affected.push(AffectedPackage {
                    ecosystem: format!("alpine:{distroversion}/{repo}"),
                    release: Some(ReleaseKey {
                        distro: Some(Distro::Alpine),
                        release: release.clone(),
                        stream: None,
                    }),
                    package: name.to_owned(),
                    key_kind: PackageKeyKind::Source,
                    state,
                    fixed_version: fixed_version.clone(),
                    ranges: ranges.clone(),
                    versions: Vec::new(),
                    binaries: Vec::new(),
                    severity: None,
                    note: None,
                });
            }
        }
    }
    Ok(by_id.into_values().collect())
}
