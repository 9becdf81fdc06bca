//! `/etc/os-release` (or `/usr/lib/os-release`), parsed as systemd's os-release(5) specifies, and
//! mapped to a [`DistroRelease`].

use std::collections::HashMap;

use patchwarden_model::{Distro, DistroRelease, OsInfo};

use crate::{InventoryError, SystemRoot};

/// Reads the OS identity. A root without os-release gets an empty identity (`id` = ""), not an error:
/// minimal images sometimes lack it, and the package database still tells a lot.
pub fn read(root: &SystemRoot) -> Result<OsInfo, InventoryError> {
    let text = match root.read_optional("/etc/os-release")? {
        Some(t) => t,
        None => match root.read_optional("/usr/lib/os-release")? {
            Some(t) => t,
            None => return Ok(OsInfo::default()),
        },
    };
    let fields = parse(&text);
    let get = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
    let id = get("ID").unwrap_or_else(|| "linux".into());
    let id_like: Vec<String> = get("ID_LIKE")
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let version_id = get("VERSION_ID");
    let codename = get("VERSION_CODENAME").or_else(|| get("UBUNTU_CODENAME"));
    let debian_version = root.read_trimmed("/etc/debian_version");
    let distro = Distro::from_os_release_id(&id);
    let release = distro.and_then(|d| {
        DistroRelease::from_os_release(
            d,
            version_id.as_deref(),
            codename.as_deref(),
            debian_version.as_deref(),
        )
    });
    Ok(OsInfo {
        id,
        id_like,
        version_id,
        version_codename: codename,
        name: get("NAME"),
        pretty_name: get("PRETTY_NAME"),
        release,
        ubuntu_pro: None,
        rhel_stream: None,
    })
}

/// Parses `KEY=value` lines; values may be double- or single-quoted with backslash escapes.
pub fn parse(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        out.insert(key.trim().to_owned(), unquote(raw.trim()));
    }
    out
}

fn unquote(raw: &str) -> String {
    let bytes = raw.as_bytes();
    if bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        let inner = &raw[1..raw.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        raw.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_comments() {
        let f = parse(
            "# comment\nNAME=\"Debian GNU/Linux\"\nID=debian\nPRETTY_NAME='It\\'s'\nEMPTY=\n",
        );
        assert_eq!(f["NAME"], "Debian GNU/Linux");
        assert_eq!(f["ID"], "debian");
        assert_eq!(f["PRETTY_NAME"], "It's");
        assert_eq!(f["EMPTY"], "");
    }
}
