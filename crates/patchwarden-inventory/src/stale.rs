//! Processes that still run code from a file deleted or replaced on disk (`/proc/<pid>/maps`): the
//! update is installed, but the old code is still in memory until the process restarts. Like
//! needrestart and checkrestart, only file-backed mappings of executables and shared libraries count,
//! and scratch places (`/tmp`, `/dev/shm`, memfd, SysV shared memory) are ignored.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;

use patchwarden_model::{InstalledPackage, PackageManager, StaleProcess};

use crate::SystemRoot;

/// Paths not worth a restart by default: scratch and pseudo files, never package-managed.
pub const DEFAULT_IGNORED_PREFIXES: [&str; 8] = [
    "/tmp/",
    "/var/tmp/",
    "/dev/",
    "/memfd:",
    "/SYSV",
    "/run/",
    "/proc/",
    "/[aio]",
];

/// Stale processes of the live host, ignoring [`DEFAULT_IGNORED_PREFIXES`].
pub fn collect(root: &SystemRoot, packages: &[InstalledPackage]) -> Vec<StaleProcess> {
    collect_ignoring(root, packages, &DEFAULT_IGNORED_PREFIXES)
}

/// Stale processes of the live host, ignoring mapped paths that start with one of `ignored`.
pub fn collect_ignoring(
    root: &SystemRoot,
    packages: &[InstalledPackage],
    ignored: &[&str],
) -> Vec<StaleProcess> {
    let mut found: BTreeSet<(u32, String, String)> = BTreeSet::new(); // (pid, path, command)
    let mut current_inode: HashMap<String, Option<u64>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_owned())
            .unwrap_or_default();
        for line in maps.lines() {
            let Some(m) = parse_maps_line(line) else {
                continue;
            };
            if !(m.perms.contains('x') || m.path.contains(".so")) || m.inode == 0 {
                continue;
            }
            let stale_path = if let Some(p) = m.path.strip_suffix(" (deleted)") {
                Some(p)
            } else {
                // Replaced in place: the path now names another file than the one mapped.
                let now = *current_inode
                    .entry(m.path.to_owned())
                    .or_insert_with(|| std::fs::metadata(m.path).ok().map(|md| md.ino()));
                (now.is_some_and(|ino| ino != m.inode)).then_some(m.path)
            };
            if let Some(path) = stale_path
                .filter(|p| p.starts_with('/') && !ignored.iter().any(|x| p.starts_with(x)))
            {
                found.insert((pid, path.to_owned(), command.clone()));
            }
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let paths: Vec<String> = found
        .iter()
        .map(|(_, p, _)| p.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut owners = HashMap::new();
    let has = |m: PackageManager| packages.iter().any(|p| p.manager == m);
    if has(PackageManager::Dpkg) {
        owners.extend(crate::dpkg::owners(root, &paths));
    }
    if has(PackageManager::Rpm) {
        owners.extend(crate::rpm::owners(root, &paths));
    }
    if has(PackageManager::Apk) {
        owners.extend(crate::apk::owners(root, &paths));
    }
    found
        .into_iter()
        .map(|(pid, path, command)| StaleProcess {
            pid,
            command,
            package: owners.get(&path).cloned(),
            path,
        })
        .collect()
}

struct MapsLine<'a> {
    perms: &'a str,
    inode: u64,
    path: &'a str,
}

/// `address perms offset dev inode path` — the path may contain spaces.
fn parse_maps_line(line: &str) -> Option<MapsLine<'_>> {
    let mut rest = line;
    let mut fields = [""; 5];
    for f in fields.iter_mut() {
        rest = rest.trim_start();
        let end = rest.find(' ')?;
        *f = &rest[..end];
        rest = &rest[end..];
    }
    let path = rest.trim_start();
    if path.is_empty() {
        return None;
    }
    Some(MapsLine {
        perms: fields[1],
        inode: fields[4].parse().ok()?,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let m = parse_maps_line("7f2c1a000000-7f2c1a022000 r-xp 00000000 08:01 1311 /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)").unwrap();
        assert_eq!(
            (m.perms, m.inode, m.path),
            (
                "r-xp",
                1311,
                "/usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)"
            )
        );
        assert!(parse_maps_line("7ffd 7ffe rw-p 00000000 00:00 0").is_none());
        let spaced = parse_maps_line("1-2 r-xp 0 08:01 7 /opt/my app/bin").unwrap();
        assert_eq!(spaced.path, "/opt/my app/bin");
    }
}
