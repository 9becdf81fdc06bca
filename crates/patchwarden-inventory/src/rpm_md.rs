//! What dnf or zypper can install on an RPM root: its repositories' rpm-md metadata as the package
//! manager last fetched it — dnf's cache (`/var/cache/dnf/<repo>-<hash>/repodata`, written by `dnf
//! makecache` or any dnf command) and zypper's raw cache (`/var/cache/zypp/raw/<alias>/repodata`,
//! written by `zypper refresh`): the packages each primary list offers and the update advisories
//! (`updateinfo`; zypper calls them patches). The counterpart of [`crate::apt_lists`]; nothing is
//! fetched.
//!
//! Metadata files may be plain or gzip-compressed (createrepo_c's default before 1.0); another
//! compression is an error naming the file.

use std::io::Read;
use std::path::{Path, PathBuf};

use patchwarden_model::updates::{AdvisoryPackage, UpdateAdvisory};
use patchwarden_model::InstalledPackage;

use crate::{InventoryError, SystemRoot};

/// The caches read, and whether their directory names carry dnf's `-<16 hex digits>` suffix.
const CACHES: [(&str, bool); 2] = [("/var/cache/dnf", true), ("/var/cache/zypp/raw", false)];

#[derive(Debug, Default)]
pub struct RpmRepos {
    /// The cached repositories read (their `repodata` directories).
    pub repositories: Vec<PathBuf>,
    /// Every package every primary list offers.
    pub packages: Vec<InstalledPackage>,
    pub advisories: Vec<UpdateAdvisory>,
}

/// Reads every cached repository of the root; none is an empty result (nothing fetched yet).
pub fn read(root: &SystemRoot) -> Result<RpmRepos, InventoryError> {
    let mut out = RpmRepos::default();
    for (cache, hashed) in CACHES {
        let cache = root.path(cache);
        let entries = match std::fs::read_dir(&cache) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(InventoryError::io(cache, e)),
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("repodata/repomd.xml").is_file())
            .collect();
        dirs.sort();
        for dir in dirs {
            let name = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_owned();
            // dnf: `<id>-<16 hex digits>`; zypper: the alias itself.
            let repo = match name.rsplit_once('-') {
                Some((id, hash)) if hashed && hash.len() == 16 => id.to_owned(),
                _ => name.clone(),
            };
            read_repository(&dir, &repo, &mut out)?;
            out.repositories.push(dir.join("repodata"));
        }
    }
    Ok(out)
}

fn read_repository(dir: &Path, repo: &str, out: &mut RpmRepos) -> Result<(), InventoryError> {
    let repomd_path = dir.join("repodata/repomd.xml");
    let repomd = read_text(&repomd_path)?;
    let doc = parse(&repomd, &repomd_path)?;
    for data in doc
        .root_element()
        .children()
        .filter(|n| n.tag_name().name() == "data")
    {
        let kind = data.attribute("type").unwrap_or("");
        if kind != "primary" && kind != "updateinfo" {
            continue;
        }
        let Some(href) = data
            .children()
            .find(|n| n.tag_name().name() == "location")
            .and_then(|n| n.attribute("href"))
        else {
            continue;
        };
        let file_name = Path::new(href)
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        let path = dir.join("repodata").join(file_name);
        let text = read_text(&path)?;
        if kind == "primary" {
            primary(&text, &path, &mut out.packages)?;
        } else {
            updateinfo(&text, &path, repo, &mut out.advisories)?;
        }
    }
    Ok(())
}

/// A metadata file as text, decompressed by its name.
fn read_text(path: &Path) -> Result<String, InventoryError> {
    let file = std::fs::File::open(path).map_err(|e| InventoryError::io(path, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut text = String::new();
    let read = if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(file).read_to_string(&mut text)
    } else if name.ends_with(".xml") {
        std::io::BufReader::new(file).read_to_string(&mut text)
    } else {
        return Err(InventoryError::corrupt(
            path,
            None,
            "repository metadata compressed in a way patchwarden does not read (plain and gz only)",
        ));
    };
    read.map_err(|e| InventoryError::corrupt(path, None, format!("cannot read: {e}")))?;
    Ok(text)
}

fn parse<'a>(text: &'a str, path: &Path) -> Result<roxmltree::Document<'a>, InventoryError> {
    roxmltree::Document::parse(text)
        .map_err(|e| InventoryError::corrupt(path, None, format!("not XML: {e}")))
}

fn child<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    node.children().find(|n| n.tag_name().name() == name)
}

/// `E:V-R` with a zero or missing epoch left out (as the rpmdb reader spells installed versions).
fn evr(epoch: Option<&str>, version: &str, release: &str) -> String {
    match epoch.filter(|e| !e.is_empty() && *e != "0") {
        Some(e) => format!("{e}:{version}-{release}"),
        None => format!("{version}-{release}"),
    }
}

fn primary(text: &str, path: &Path, out: &mut Vec<InstalledPackage>) -> Result<(), InventoryError> {
    let doc = parse(text, path)?;
    for (i, p) in doc
        .root_element()
        .children()
        .filter(|n| n.tag_name().name() == "package")
        .enumerate()
    {
        let bad = |what: &str| {
            InventoryError::corrupt(path, Some(format!("package {}", i + 1)), what.to_owned())
        };
        let name = child(p, "name")
            .and_then(|n| n.text())
            .ok_or_else(|| bad("no <name>"))?;
        let arch = child(p, "arch")
            .and_then(|n| n.text())
            .ok_or_else(|| bad("no <arch>"))?;
        if arch == "src" {
            continue;
        }
        let v = child(p, "version").ok_or_else(|| bad("no <version>"))?;
        let (Some(ver), Some(rel)) = (v.attribute("ver"), v.attribute("rel")) else {
            return Err(bad("<version> without ver or rel"));
        };
        // primary.xml states epoch 0 for packages without one: the rpmdb reader's spelling.
        let epoch = match v.attribute("epoch").filter(|e| !e.is_empty() && *e != "0") {
            Some(e) => Some(
                e.parse::<u32>()
                    .map_err(|_| bad(&format!("epoch {e:?} is not a number")))?,
            ),
            None => None,
        };
        let sourcerpm = child(p, "format")
            .and_then(|f| child(f, "sourcerpm"))
            .and_then(|s| s.text());
        out.push(
            crate::rpm::package(name, epoch, ver, rel, arch, sourcerpm, None)
                .map_err(|e| bad(&e))?,
        );
    }
    Ok(())
}

fn updateinfo(
    text: &str,
    path: &Path,
    repo: &str,
    out: &mut Vec<UpdateAdvisory>,
) -> Result<(), InventoryError> {
    let doc = parse(text, path)?;
    for (i, u) in doc
        .root_element()
        .children()
        .filter(|n| n.tag_name().name() == "update")
        .enumerate()
    {
        let id = child(u, "id").and_then(|n| n.text()).ok_or_else(|| {
            InventoryError::corrupt(path, Some(format!("update {}", i + 1)), "no <id>")
        })?;
        let cves = child(u, "references")
            .into_iter()
            .flat_map(|r| r.children())
            .filter(|r| r.tag_name().name() == "reference" && r.attribute("type") == Some("cve"))
            .filter_map(|r| r.attribute("id").map(str::to_owned))
            .collect();
        let mut packages = Vec::new();
        for p in u
            .descendants()
            .filter(|n| n.tag_name().name() == "package" && n.attribute("name").is_some())
        {
            let (Some(name), Some(ver), Some(rel)) = (
                p.attribute("name"),
                p.attribute("version"),
                p.attribute("release"),
            ) else {
                return Err(InventoryError::corrupt(
                    path,
                    Some(id.to_owned()),
                    "a <package> without name, version or release",
                ));
            };
            packages.push(AdvisoryPackage {
                name: name.to_owned(),
                arch: p.attribute("arch").unwrap_or("noarch").to_owned(),
                version: evr(p.attribute("epoch"), ver, rel),
            });
        }
        out.push(UpdateAdvisory {
            id: id.trim().to_owned(),
            kind: u.attribute("type").unwrap_or("").to_owned(),
            severity: child(u, "severity")
                .and_then(|n| n.text())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            issued: child(u, "issued")
                .and_then(|n| n.attribute("date"))
                .map(str::to_owned),
            cves,
            packages,
            repository: repo.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    const PRIMARY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">
<package type="rpm"><name>pw-synthetic-a</name><arch>x86_64</arch><version epoch="0" ver="1.0" rel="2"/>
<format><rpm:sourcerpm>pw-synthetic-1.0-2.src.rpm</rpm:sourcerpm></format></package>
<package type="rpm"><name>pw-synthetic-b</name><arch>noarch</arch><version epoch="3" ver="2.1" rel="1.el9"/><format/></package>
</metadata>"#;

    const UPDATEINFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<updates><update from="tests@patchwarden.invalid" status="final" type="security" version="1">
<id>PW-SYNTHETIC-2026:0001</id><severity>Important</severity><issued date="2026-11-01 00:00:00"/>
<references><reference href="https://patchwarden.invalid" id="CVE-2999-0701" type="cve"/><reference href="x" id="BZ1" type="bugzilla"/></references>
<pkglist><collection short="pw"><package name="pw-synthetic-a" version="1.0" release="2" epoch="0" arch="x86_64"><filename>a.rpm</filename></package></collection></pkglist>
</update></updates>"#;

    #[test]
    fn cached_primary_and_updateinfo_of_dnf_and_zypper_are_read_and_bad_files_named() {
        let dir = std::env::temp_dir().join(format!("pw-dnf-repos-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repodata = dir.join("var/cache/dnf/local-0123456789abcdef/repodata");
        std::fs::create_dir_all(&repodata).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(PRIMARY.as_bytes()).unwrap();
        std::fs::write(repodata.join("aa-primary.xml.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(repodata.join("bb-updateinfo.xml"), UPDATEINFO).unwrap();
        std::fs::write(
            repodata.join("repomd.xml"),
            r#"<repomd xmlns="http://linux.duke.edu/metadata/repo">
<data type="primary"><location href="repodata/aa-primary.xml.gz"/></data>
<data type="updateinfo"><location href="repodata/bb-updateinfo.xml"/></data>
<data type="filelists"><location href="repodata/cc-filelists.xml.gz"/></data></repomd>"#,
        )
        .unwrap();
        // zypper's raw cache of the same repository, by alias.
        let zypp = dir.join("var/cache/zypp/raw/suse-local/repodata");
        std::fs::create_dir_all(&zypp).unwrap();
        for f in std::fs::read_dir(&repodata).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, zypp.join(f.file_name().unwrap())).unwrap();
        }
        let root = crate::SystemRoot::open(&dir).unwrap();
        let repos = super::read(&root).unwrap();
        assert_eq!(repos.repositories.len(), 2);
        assert_eq!(repos.advisories[1].repository, "suse-local");
        assert_eq!(repos.packages.len(), 4);
        let offered: Vec<(&str, &str, &str, &str)> = repos
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.arch.as_str(),
                    p.version.as_str(),
                    p.source_name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            offered[..2],
            [
                ("pw-synthetic-a", "x86_64", "1.0-2", "pw-synthetic"),
                ("pw-synthetic-b", "noarch", "3:2.1-1.el9", "pw-synthetic-b")
            ]
        );
        let a = &repos.advisories[0];
        assert_eq!(
            (
                a.id.as_str(),
                a.kind.as_str(),
                a.severity.as_deref(),
                a.repository.as_str()
            ),
            (
                "PW-SYNTHETIC-2026:0001",
                "security",
                Some("Important"),
                "local"
            )
        );
        assert_eq!(a.cves, ["CVE-2999-0701"]);
        assert_eq!(a.packages[0].version, "1.0-2");
        std::fs::write(repodata.join("bb-updateinfo.xml"), "<updates><update>").unwrap();
        let err = super::read(&root).unwrap_err().to_string();
        assert!(
            err.contains("bb-updateinfo.xml") && err.contains("not XML"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
