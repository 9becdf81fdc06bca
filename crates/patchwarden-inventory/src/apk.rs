//! The apk installed database, `/lib/apk/db/installed` (`/usr/lib/apk/db/installed` on newer layouts):
//! blank-line separated records of `X:value` lines — `P` name, `V` version, `A` arch, `o` origin (the
//! source package), `F` a directory and `R` a file in it.

use std::path::Path;

use patchwarden_model::{InstalledPackage, PackageDatabase, PackageManager};

use crate::{InventoryError, PackageSet, SystemRoot};

pub const DB_PATHS: [&str; 2] = ["/lib/apk/db/installed", "/usr/lib/apk/db/installed"];

pub fn read(root: &SystemRoot) -> Result<Option<PackageSet>, InventoryError> {
    for db in DB_PATHS {
        if let Some(text) = root.read_optional(db)? {
            let packages = parse_installed(&text, &root.path(db))?;
            return Ok(Some(PackageSet {
                databases: vec![PackageDatabase {
                    manager: PackageManager::Apk,
                    path: db.into(),
                    format: "apk-installed".into(),
                    packages: packages.len(),
                }],
                packages,
            }));
        }
    }
    Ok(None)
}

#[derive(Default)]
struct Record<'a> {
    line: usize,
    name: Option<&'a str>,
    version: Option<&'a str>,
    arch: Option<&'a str>,
    origin: Option<&'a str>,
}

pub fn parse_installed(text: &str, path: &Path) -> Result<Vec<InstalledPackage>, InventoryError> {
    let mut out = Vec::new();
    let mut rec = Record::default();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            if rec.line != 0 {
                out.push(finish(std::mem::take(&mut rec), path)?);
            }
            continue;
        }
        if rec.line == 0 {
            rec.line = i + 1;
        }
        let Some((key, value)) = line.split_once(':').filter(|(k, _)| k.len() == 1) else {
            return Err(InventoryError::corrupt(
                path,
                Some(format!("line {}", i + 1)),
                format!("not a 'X:value' line: {line:?}"),
            ));
        };
        match key {
            "P" => rec.name = Some(value),
            "V" => rec.version = Some(value),
            "A" => rec.arch = Some(value),
            "o" => rec.origin = Some(value),
            _ => {}
        }
    }
    if rec.line != 0 {
        out.push(finish(rec, path)?);
    }
    Ok(out)
}

fn finish(r: Record, path: &Path) -> Result<InstalledPackage, InventoryError> {
    let record = |what: &str| Some(format!("record at line {} ({what})", r.line));
    let name = r
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| InventoryError::corrupt(path, record("no name"), "missing P: line"))?;
    let version = r
        .version
        .filter(|v| !v.is_empty())
        .ok_or_else(|| InventoryError::corrupt(path, record(name), "missing V: line"))?;
    let arch = r
        .arch
        .filter(|a| !a.is_empty())
        .ok_or_else(|| InventoryError::corrupt(path, record(name), "missing A: line"))?;
    Ok(InstalledPackage {
        name: name.to_owned(),
        version: version.to_owned(),
        arch: arch.to_owned(),
        source_name: r
            .origin
            .filter(|o| !o.is_empty())
            .unwrap_or(name)
            .to_owned(),
        source_version: version.to_owned(),
        manager: PackageManager::Apk,
        status: None,
        held: false,
        install_time: None,
    })
}

/// Which packages own the given paths, from the `F:`/`R:` lines of the installed database.
pub fn owners(root: &SystemRoot, paths: &[String]) -> std::collections::HashMap<String, String> {
    let mut found = std::collections::HashMap::new();
    let Some(text) = DB_PATHS
        .iter()
        .find_map(|p| root.read_optional(p).ok().flatten())
    else {
        return found;
    };
    let (mut package, mut dir) = ("", "");
    for line in text.lines() {
        match line.split_once(':') {
            Some(("P", v)) => package = v,
            Some(("F", v)) => dir = v,
            Some(("R", v)) => {
                let full = format!("/{dir}/{v}");
                if paths.contains(&full) {
                    found.insert(full, package.to_owned());
                }
            }
            _ => {}
        }
    }
    found
}
