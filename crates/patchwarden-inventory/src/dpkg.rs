//! The dpkg database: `/var/lib/dpkg/status`, and the distroless layout `/var/lib/dpkg/status.d/*`
//! (one file per package, no `Status` field, `*.md5sums` beside them).
//!
//! Only packages whose files are on disk are reported: every state but `not-installed` and
//! `config-files`. The selection `hold` is kept. `Source: name (version)` gives the source package;
//! without it the source is the package itself, as `dpkg-query`'s `${source:Package}` says.

use std::path::Path;

use patchwarden_model::{InstalledPackage, PackageDatabase, PackageManager};
use patchwarden_version::deb::DebVersion;

use crate::{InventoryError, PackageSet, SystemRoot};

pub const STATUS: &str = "/var/lib/dpkg/status";
pub const STATUS_D: &str = "/var/lib/dpkg/status.d";
pub const INFO: &str = "/var/lib/dpkg/info";

/// Reads the dpkg database of `root`; `Ok(None)` when the root has none.
pub fn read(root: &SystemRoot) -> Result<Option<PackageSet>, InventoryError> {
    let mut set = PackageSet {
        databases: Vec::new(),
        packages: Vec::new(),
    };
    let status_path = root.path(STATUS);
    if let Some(text) = root.read_optional(STATUS)? {
        let before = set.packages.len();
        parse_status(&text, &status_path, false, &mut set.packages)?;
        set.databases.push(PackageDatabase {
            manager: PackageManager::Dpkg,
            path: STATUS.into(),
            format: "dpkg-status".into(),
            packages: set.packages.len() - before,
        });
    }
    let dir = root.path(STATUS_D);
    if dir.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| InventoryError::io(&dir, e))?
            .map(|e| {
                e.map(|e| e.path())
                    .map_err(|err| InventoryError::io(&dir, err))
            })
            .collect::<Result<_, _>>()?;
        files.sort();
        let before = set.packages.len();
        for file in files
            .iter()
            .filter(|f| f.extension().is_none_or(|e| e != "md5sums") && f.is_file())
        {
            let bytes = std::fs::read(file).map_err(|e| InventoryError::io(file, e))?;
            parse_status(
                &String::from_utf8_lossy(&bytes),
                file,
                true,
                &mut set.packages,
            )?;
        }
        set.databases.push(PackageDatabase {
            manager: PackageManager::Dpkg,
            path: STATUS_D.into(),
            format: "dpkg-status.d".into(),
            packages: set.packages.len() - before,
        });
    }
    Ok((!set.databases.is_empty()).then_some(set))
}

#[derive(Default)]
struct Stanza<'a> {
    line: usize,
    package: Option<&'a str>,
    status: Option<&'a str>,
    version: Option<&'a str>,
    arch: Option<&'a str>,
    source: Option<&'a str>,
}

/// Parses deb822 stanzas of a status file. `distroless` entries may lack `Status` (they are installed).
pub fn parse_status(
    text: &str,
    path: &Path,
    distroless: bool,
    out: &mut Vec<InstalledPackage>,
) -> Result<(), InventoryError> {
    let mut stanza = Stanza::default();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            if stanza.line != 0 {
                finish(std::mem::take(&mut stanza), path, distroless, out)?;
            }
            continue;
        }
        if stanza.line == 0 {
            stanza.line = line_no;
        }
        if line.starts_with([' ', '\t']) {
            continue; // continuation of a multi-line field
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(InventoryError::corrupt(
                path,
                Some(format!("line {line_no}")),
                format!("not a 'Field: value' line: {line:?}"),
            ));
        };
        let value = value.trim();
        let field = match name {
            _ if name.eq_ignore_ascii_case("Package") => &mut stanza.package,
            _ if name.eq_ignore_ascii_case("Status") => &mut stanza.status,
            _ if name.eq_ignore_ascii_case("Version") => &mut stanza.version,
            _ if name.eq_ignore_ascii_case("Architecture") => &mut stanza.arch,
            _ if name.eq_ignore_ascii_case("Source") => &mut stanza.source,
            _ => continue,
        };
        *field = Some(value);
    }
    if stanza.line != 0 {
        finish(stanza, path, distroless, out)?;
    }
    Ok(())
}

fn finish(
    s: Stanza,
    path: &Path,
    distroless: bool,
    out: &mut Vec<InstalledPackage>,
) -> Result<(), InventoryError> {
    let record = |what: &str| Some(format!("record at line {} ({what})", s.line));
    let Some(name) = s.package.filter(|p| !p.is_empty()) else {
        return Err(InventoryError::corrupt(
            path,
            record("no package name"),
            "missing Package field",
        ));
    };
    let (held, installed) = match s.status {
        Some(status) => {
            let words: Vec<&str> = status.split_whitespace().collect();
            let [want, _flag, state] = words[..] else {
                return Err(InventoryError::corrupt(
                    path,
                    record(name),
                    format!("Status {status:?} is not 'want flag state'"),
                ));
            };
            const STATES: [&str; 8] = [
                "not-installed",
                "config-files",
                "half-installed",
                "unpacked",
                "half-configured",
                "triggers-awaited",
                "triggers-pending",
                "installed",
            ];
            if !STATES.contains(&state) {
                return Err(InventoryError::corrupt(
                    path,
                    record(name),
                    format!("unknown package state {state:?}"),
                ));
            }
            (
                want == "hold",
                state != "not-installed" && state != "config-files",
            )
        }
        None if distroless => (false, true),
        None => {
            return Err(InventoryError::corrupt(
                path,
                record(name),
                "missing Status field",
            ))
        }
    };
    if !installed {
        return Ok(());
    }
    let version = s
        .version
        .filter(|v| !v.is_empty())
        .ok_or_else(|| InventoryError::corrupt(path, record(name), "missing Version field"))?;
    DebVersion::parse(version)
        .map_err(|e| InventoryError::corrupt(path, record(name), e.to_string()))?;
    let arch = s
        .arch
        .filter(|a| !a.is_empty())
        .ok_or_else(|| InventoryError::corrupt(path, record(name), "missing Architecture field"))?;
    let (source_name, source_version) = match s.source.filter(|v| !v.is_empty()) {
        Some(src) => match src.split_once('(') {
            Some((n, v)) => {
                let v = v.trim().strip_suffix(')').ok_or_else(|| {
                    InventoryError::corrupt(
                        path,
                        record(name),
                        format!("Source {src:?} lacks the closing parenthesis"),
                    )
                })?;
                (n.trim(), v.trim())
            }
            None => (src, version),
        },
        None => (name, version),
    };
    out.push(InstalledPackage {
        name: name.to_owned(),
        version: version.to_owned(),
        arch: arch.to_owned(),
        source_name: source_name.to_owned(),
        source_version: source_version.to_owned(),
        manager: PackageManager::Dpkg,
        status: s.status.map(str::to_owned),
        held,
        install_time: None,
    });
    Ok(())
}

/// Which installed packages own the given paths, from `/var/lib/dpkg/info/*.list`. Paths are also
/// tried in their merged-/usr twin (`/usr/lib/x` for `/lib/x` and back), as dpkg records the
/// pre-merge path.
pub fn owners(root: &SystemRoot, paths: &[String]) -> std::collections::HashMap<String, String> {
    let mut wanted: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for p in paths {
        wanted.insert(p.clone(), p.clone());
        if let Some(rest) = p.strip_prefix("/usr") {
            wanted.insert(rest.to_owned(), p.clone());
        } else {
            wanted.insert(format!("/usr{p}"), p.clone());
        }
    }
    let mut found = std::collections::HashMap::new();
    let Ok(entries) = std::fs::read_dir(root.path(INFO)) else {
        return found;
    };
    for entry in entries.flatten() {
        let file = entry.path();
        if file.extension().is_none_or(|e| e != "list") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let package = file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for line in text.lines() {
            if let Some(original) = wanted.get(line) {
                found.insert(original.clone(), package.clone());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9+deb12u4)\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n multi-line\n .\n\nPackage: old\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: pinned\nStatus: hold ok installed\nArchitecture: all\nVersion: 1:2.0-1\nSource: pinsrc\n";

    #[test]
    fn installed_packages_with_source_and_hold() {
        let mut out = Vec::new();
        parse_status(SAMPLE, Path::new("status"), false, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].source_name.as_str(), out[0].source_version.as_str()),
            ("glibc", "2.36-9+deb12u4")
        );
        assert!(!out[0].held);
        assert_eq!(
            (
                out[1].name.as_str(),
                out[1].source_name.as_str(),
                out[1].source_version.as_str()
            ),
            ("pinned", "pinsrc", "1:2.0-1")
        );
        assert!(out[1].held);
    }

    #[test]
    fn corrupt_records_name_file_and_line() {
        let mut out = Vec::new();
        let bad = "Package: a\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n\nPackage: b\nStatus: install ok installed\nArchitecture: all\n";
        let e = parse_status(bad, Path::new("/x/status"), false, &mut out)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/x/status: record at line 6 (b): missing Version field");
        let e = parse_status(
            "Package: c\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0:x\n",
            Path::new("s"),
            false,
            &mut out,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("invalid deb version '1.0:x'"), "{e}");
        let e = parse_status("garbage line\n", Path::new("s"), false, &mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
