//! The RPM database, read natively and read-only: the SQLite backend (`rpmdb.sqlite`, default since
//! RPM 4.16: RHEL 9 and its rebuilds, Fedora 33+, CBL-Mariner 2), whose `Packages` table holds one
//! header blob per package, and the Berkeley DB `Packages` file of older systems (RHEL/CentOS 7 and 8,
//! Amazon Linux 2) ([`bdb`]). Blobs are parsed by [`header`]. The ndb backend (`Packages.db`, SUSE) is
//! read through the host's `rpm` binary when it can; otherwise the error says which file could not be
//! read.

pub mod bdb;
pub mod header;

use std::path::{Path, PathBuf};
use std::process::Command;

use patchwarden_model::{InstalledPackage, PackageDatabase, PackageManager};
use patchwarden_version::rpm::Nevra;
use rusqlite::{Connection, OpenFlags};

use crate::{InventoryError, PackageSet, SystemRoot};
use header::*;

/// Where RPM keeps its database, newest layout first.
pub const DB_DIRS: [&str; 2] = ["/usr/lib/sysimage/rpm", "/var/lib/rpm"];

type BackendReader = fn(&SystemRoot, &str, &Path) -> Result<Vec<InstalledPackage>, InventoryError>;

/// The database backends, in the order they are looked for: (file in the db directory, format name
/// reported, reader).
const BACKENDS: [(&str, &str, BackendReader); 3] = [
    ("rpmdb.sqlite", "rpm-sqlite", |_, _, path| read_sqlite(path)),
    ("Packages", "rpm-bdb", |_, _, path| read_bdb(path)),
    ("Packages.db", "rpm-cli", |root, dir, path| {
        read_with_rpm_cli(root, dir, "ndb", path)
    }),
];

/// Reads the RPM database of `root`; `Ok(None)` when the root has none.
pub fn read(root: &SystemRoot) -> Result<Option<PackageSet>, InventoryError> {
    for (file, format, reader) in BACKENDS {
        for dir in DB_DIRS {
            let db_file = format!("{dir}/{file}");
            let path = root.path(&db_file);
            if path.is_file() {
                let packages = reader(root, dir, &path)?;
                let database = PackageDatabase {
                    manager: PackageManager::Rpm,
                    path: db_file,
                    format: format.into(),
                    packages: packages.len(),
                };
                return Ok(Some(PackageSet {
                    databases: vec![database],
                    packages,
                }));
            }
        }
    }
    Ok(None)
}

/// Opens an SQLite file read-only and immutable: nothing is written into the inventoried system (no
/// journal, no `-shm`), even when the file sits in a read-only image.
fn open_immutable(path: &Path) -> Result<Connection, InventoryError> {
    let mut uri = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        match b {
            b'?' | b'#' | b'%' => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(b as char),
        }
    }
    uri.push_str("?immutable=1");
    Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| InventoryError::corrupt(path, None, format!("cannot open as SQLite: {e}")))
}

/// Calls `f` with each package header of an `rpmdb.sqlite`, naming the record (`hnum`) on failure.
fn for_each_header(
    path: &Path,
    mut f: impl FnMut(i64, &Header) -> Result<(), String>,
) -> Result<(), InventoryError> {
    let sql_err = |e: rusqlite::Error| InventoryError::corrupt(path, None, format!("SQLite: {e}"));
    let conn = open_immutable(path)?;
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sql_err)?;
    let mut rows = stmt.query([]).map_err(sql_err)?;
    while let Some(row) = rows.next().map_err(sql_err)? {
        let hnum: i64 = row.get(0).map_err(sql_err)?;
        let record = || Some(format!("Packages record hnum={hnum}"));
        let blob = row
            .get_ref(1)
            .map_err(sql_err)?
            .as_blob()
            .map_err(|e| InventoryError::corrupt(path, record(), e.to_string()))?;
        let header = Header::parse(blob).map_err(|e| InventoryError::corrupt(path, record(), e))?;
        f(hnum, &header).map_err(|e| InventoryError::corrupt(path, record(), e))?;
    }
    Ok(())
}

/// Reads every installed package from an `rpmdb.sqlite`. `gpg-pubkey` entries (imported signing keys,
/// not software) are left out.
pub fn read_sqlite(path: &Path) -> Result<Vec<InstalledPackage>, InventoryError> {
    let mut out = Vec::new();
    for_each_header(path, |_, h| add_package(h, &mut out))?;
    Ok(out)
}

/// Reads every installed package from a Berkeley DB `Packages` file.
pub fn read_bdb(path: &Path) -> Result<Vec<InstalledPackage>, InventoryError> {
    let mut out = Vec::new();
    bdb::for_each_blob(path, |_, blob| add_package(&Header::parse(blob)?, &mut out))?;
    Ok(out)
}

/// The package of one rpm header blob as an rpm database stores it (none: a `gpg-pubkey` entry).
/// What both database readers do with each blob; also the fuzzing entry point.
pub fn package_of_blob(blob: &[u8]) -> Result<Option<InstalledPackage>, String> {
    let mut out = Vec::new();
    add_package(&Header::parse(blob)?, &mut out)?;
    Ok(out.pop())
}

fn add_package(h: &Header, out: &mut Vec<InstalledPackage>) -> Result<(), String> {
    {
        let name = h.string(TAG_NAME)?.ok_or("no NAME tag")?;
        if name == "gpg-pubkey" {
            return Ok(());
        }
        let version = h.string(TAG_VERSION)?.ok_or("no VERSION tag")?;
        let release = h.string(TAG_RELEASE)?.ok_or("no RELEASE tag")?;
        let epoch = h.int32(TAG_EPOCH)?;
        let arch = h.string(TAG_ARCH)?.unwrap_or("noarch");
        let sourcerpm = h.string(TAG_SOURCERPM)?;
        let install_time = h.int32(TAG_INSTALLTIME)?.map(i64::from);
        out.push(package(
            name,
            epoch,
            version,
            release,
            arch,
            sourcerpm,
            install_time,
        )?);
        Ok(())
    }
}

/// An rpm package as the inventory spells it (`E:V-R` with the epoch only when it has one), its
/// source from SOURCERPM (the rpm-md reader builds offered packages with it too).
pub(crate) fn package(
    name: &str,
    epoch: Option<u32>,
    version: &str,
    release: &str,
    arch: &str,
    sourcerpm: Option<&str>,
    install_time: Option<i64>,
) -> Result<InstalledPackage, String> {
    let full = match epoch {
        Some(e) => format!("{e}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    patchwarden_version::rpm::Evr::parse(&full).map_err(|e| format!("{name}: {e}"))?;
    let (source_name, source_version) = match sourcerpm.filter(|s| !s.is_empty() && *s != "(none)")
    {
        Some(srpm) => {
            let n = Nevra::parse(srpm)
                .map_err(|e| format!("{name}: SOURCERPM {srpm:?}: {}", e.reason))?;
            (n.name.to_owned(), n.evr.to_string())
        }
        None => (name.to_owned(), format!("{version}-{release}")),
    };
    Ok(InstalledPackage {
        name: name.to_owned(),
        version: full,
        arch: arch.to_owned(),
        source_name,
        source_version,
        manager: PackageManager::Rpm,
        status: None,
        held: false,
        install_time,
    })
}

const QUERY_FORMAT: &str =
    "%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\t%{INSTALLTIME}\\n";

/// Fallback for backends not read natively: asks the host's `rpm` to read the database.
fn read_with_rpm_cli(
    root: &SystemRoot,
    dbdir: &str,
    backend: &str,
    db_file: &Path,
) -> Result<Vec<InstalledPackage>, InventoryError> {
    let mut cmd = Command::new("rpm");
    cmd.arg("--root").arg(root.dir()).arg("--dbpath").arg(dbdir);
    if backend == "bdb_ro" {
        cmd.args(["--define", "_db_backend bdb_ro"]);
    }
    cmd.args(["-qa", "--qf", QUERY_FORMAT]);
    let output = cmd.output().map_err(|e| {
        InventoryError::corrupt(
            db_file,
            None,
            format!(
                "this {backend} database is read with the host's `rpm`, which could not run: {e}"
            ),
        )
    })?;
    if !output.status.success() {
        return Err(InventoryError::corrupt(
            db_file,
            None,
            format!(
                "`rpm -qa` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    parse_query_output(&String::from_utf8_lossy(&output.stdout)).map_err(|(line, e)| {
        InventoryError::corrupt(db_file, Some(format!("rpm -qa line {line}")), e)
    })
}

/// rpm prints `(none)` for an absent tag.
fn none(s: &str) -> Option<&str> {
    (s != "(none)").then_some(s)
}

fn parse_query_output(text: &str) -> Result<Vec<InstalledPackage>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, epoch, version, release, arch, srpm, itime] = f[..] else {
            return Err((i + 1, format!("expected 7 fields, got {}", f.len())));
        };
        if name == "gpg-pubkey" {
            continue;
        }
        let epoch = none(epoch)
            .map(|e| {
                e.parse::<u32>()
                    .map_err(|_| (i + 1, format!("bad epoch {e:?}")))
            })
            .transpose()?;
        let itime = none(itime).and_then(|t| t.parse().ok());
        out.push(
            package(
                name,
                epoch,
                version,
                release,
                none(arch).unwrap_or("noarch"),
                none(srpm),
                itime,
            )
            .map_err(|e| (i + 1, e))?,
        );
    }
    Ok(out)
}

/// Which packages own the given paths, from the file lists in the headers of an `rpmdb.sqlite`.
pub fn owners(root: &SystemRoot, paths: &[String]) -> std::collections::HashMap<String, String> {
    let mut found = std::collections::HashMap::new();
    let Some(path): Option<PathBuf> = DB_DIRS
        .iter()
        .map(|d| root.path(&format!("{d}/rpmdb.sqlite")))
        .find(|p| p.is_file())
    else {
        return found;
    };
    let _ = for_each_header(&path, |_, h| {
        let Some(name) = h.string(TAG_NAME)? else {
            return Ok(());
        };
        let (dirs, bases, idx) = (
            h.string_array(TAG_DIRNAMES)?,
            h.string_array(TAG_BASENAMES)?,
            h.int32_array(TAG_DIRINDEXES)?,
        );
        for (base, di) in bases.iter().zip(idx) {
            if let Some(dir) = dirs.get(di as usize) {
                let full = format!("{dir}{base}");
                if paths.contains(&full) {
                    found.insert(full, name.to_owned());
                }
            }
        }
        Ok(())
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_output_and_source_rpm() {
        let text = "bash\t(none)\t5.1.8\t6.el9\tx86_64\tbash-5.1.8-6.el9.src.rpm\t1700000000\ngpg-pubkey\t(none)\tfd431d51\t4ae0493b\t(none)\t(none)\t1\nopenssl-libs\t1\t3.0.7\t24.el9\tx86_64\topenssl-3.0.7-24.el9.src.rpm\t(none)\n";
        let p = parse_query_output(text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (
                p[1].version.as_str(),
                p[1].source_name.as_str(),
                p[1].source_version.as_str()
            ),
            ("1:3.0.7-24.el9", "openssl", "3.0.7-24.el9")
        );
        assert_eq!(p[0].install_time, Some(1_700_000_000));
        assert_eq!(parse_query_output("a\tb\n").unwrap_err().0, 1);
    }
}
