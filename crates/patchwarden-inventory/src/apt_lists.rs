//! What a Debian-family root can install: the package indexes apt downloaded for its configured
//! repositories (`/var/lib/apt/lists/*_Packages`, deb822 like dpkg's status file, without `Status`).
//!
//! Read with the status parser (`dpkg::parse_status` in its status-less mode), so a package in an
//! index has exactly the fields an installed one has. Indexes apt keeps compressed
//! (`Acquire::GzipIndexes`, as container images set it: `_Packages.lz4`, `_Packages.gz`) are
//! decompressed; any other compression is an error naming the file. apt's pin priorities are not
//! read yet: with pins configured, apt's candidate may differ from the highest version, and
//! [`AptLists::pinned`] says so.

use std::path::PathBuf;

use patchwarden_model::InstalledPackage;

use crate::{dpkg, InventoryError, SystemRoot};

const LISTS: &str = "/var/lib/apt/lists";

#[derive(Debug, Default)]
pub struct AptLists {
    /// The index files read.
    pub files: Vec<PathBuf>,
    /// Every package of every index (a name may appear once per repository and version).
    pub packages: Vec<InstalledPackage>,
    /// `/etc/apt/preferences` or `preferences.d` holds pins (not applied here).
    pub pinned: bool,
}

/// Reads the root's apt indexes; none is an empty result (`apt-get update` never ran).
pub fn read(root: &SystemRoot) -> Result<AptLists, InventoryError> {
    let dir = root.path(LISTS);
    let mut out = AptLists::default();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(InventoryError::io(dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit_once("_Packages"))
                .is_some_and(|(_, suffix)| {
                    ["", ".gz", ".lz4", ".xz", ".zst", ".bz2"].contains(&suffix)
                })
        })
        .collect();
    files.sort();
    for path in files {
        // A `file:` repository's index is a symlink into the system (`/srv/repo/./Packages`):
        // followed inside the root, not on the host.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let text = read_index(&root.path(&format!("{LISTS}/{name}")), name)?;
        dpkg::parse_status(&text, &path, true, &mut out.packages)?;
        out.files.push(path);
    }
    let prefs = root.path("/etc/apt/preferences");
    let prefs_d = root.path("/etc/apt/preferences.d");
    out.pinned = prefs.is_file()
        || std::fs::read_dir(prefs_d)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
    Ok(out)
}

/// An index as text, decompressed by its file name's suffix.
fn read_index(path: &std::path::Path, name: &str) -> Result<String, InventoryError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| InventoryError::io(path, e))?;
    let mut text = String::new();
    let read = match name.rsplit_once("_Packages").map(|(_, suffix)| suffix) {
        Some("") => std::io::BufReader::new(file).read_to_string(&mut text),
        Some(".gz") => flate2::read::GzDecoder::new(file).read_to_string(&mut text),
        Some(".lz4") => lz4_flex::frame::FrameDecoder::new(file).read_to_string(&mut text),
        _ => {
            return Err(InventoryError::corrupt(
                path,
                None,
                "an apt index compressed in a way patchwarden does not read (gz and lz4 only)",
            ))
        }
    };
    read.map_err(|e| InventoryError::corrupt(path, None, format!("cannot decompress: {e}")))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn plain_gzip_and_lz4_indexes_read_alike_and_others_are_named() {
        let stanza = "Package: pw-synthetic-a\nVersion: 1.0-2\nArchitecture: all\nSource: pw-synthetic (1.0-2)\n\n";
        let dir = std::env::temp_dir().join(format!("pw-apt-lists-{}", std::process::id()));
        let lists = dir.join("var/lib/apt/lists");
        std::fs::create_dir_all(&lists).unwrap();
        std::fs::create_dir_all(dir.join("var/lib/dpkg")).unwrap();
        std::fs::write(lists.join("a_Packages"), stanza).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(stanza.as_bytes()).unwrap();
        std::fs::write(lists.join("b_Packages.gz"), gz.finish().unwrap()).unwrap();
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz.write_all(stanza.as_bytes()).unwrap();
        std::fs::write(lists.join("c_Packages.lz4"), lz.finish().unwrap()).unwrap();
        std::fs::write(lists.join("c_Release"), "not an index").unwrap();
        // A file: repository's index, symlinked by apt to an absolute path inside the system.
        std::fs::create_dir_all(dir.join("srv/repo")).unwrap();
        std::fs::write(dir.join("srv/repo/Packages"), stanza).unwrap();
        std::os::unix::fs::symlink("/srv/repo/./Packages", lists.join("_srv_repo_._Packages"))
            .unwrap();
        let root = crate::SystemRoot::open(&dir).unwrap();
        let read = super::read(&root).unwrap();
        assert_eq!(read.files.len(), 4);
        assert_eq!(read.packages.len(), 4);
        assert!(read
            .packages
            .iter()
            .all(|p| p.source_name == "pw-synthetic" && p.version == "1.0-2"));
        std::fs::write(lists.join("d_Packages.xz"), b"xz").unwrap();
        let err = super::read(&root).unwrap_err().to_string();
        assert!(
            err.contains("d_Packages.xz") && err.contains("gz and lz4 only"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
