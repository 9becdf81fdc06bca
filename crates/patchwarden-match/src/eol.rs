//! End of standard support per distribution release.
//!
//! Debian and Ubuntu come from Debian's `distro-info-data` (`/usr/share/distro-info/{debian,ubuntu}.csv`
//! when the host has it, else the copy embedded at build time); the RHEL family, Amazon Linux and
//! Alpine from the project's own table (`data/eol-table.csv`, each row naming its source).

use patchwarden_model::{Distro, DistroRelease};
use serde::Serialize;

const DEBIAN_CSV: &str = include_str!("../data/debian.csv");
const UBUNTU_CSV: &str = include_str!("../data/ubuntu.csv");
const TABLE_CSV: &str = include_str!("../data/eol-table.csv");

/// A release's support dates (`YYYY-MM-DD`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lifecycle {
    /// End of standard (security) support.
    pub eol: String,
    /// Extended support that follows, where there is one (Debian LTS, Ubuntu ESM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_until: Option<String>,
    /// Where the dates come from.
    pub source: String,
}

/// Lifecycle data, read once.
pub struct EolTable {
    debian: String,
    ubuntu: String,
    debian_origin: String,
    ubuntu_origin: String,
}

impl EolTable {
    /// Reads `distro-info-data` from `dir` (normally `/usr/share/distro-info`), falling back to the
    /// embedded copy per file.
    pub fn load(dir: &std::path::Path) -> EolTable {
        let read = |name: &str, embedded: &str| match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => (
                text,
                format!("distro-info-data ({})", dir.join(name).display()),
            ),
            Err(_) => (
                embedded.to_owned(),
                "distro-info-data (embedded copy, 0.58+deb12u6)".to_owned(),
            ),
        };
        let (debian, debian_origin) = read("debian.csv", DEBIAN_CSV);
        let (ubuntu, ubuntu_origin) = read("ubuntu.csv", UBUNTU_CSV);
        EolTable {
            debian,
            ubuntu,
            debian_origin,
            ubuntu_origin,
        }
    }

    /// Only the embedded copies (tests, hosts without the package).
    pub fn embedded() -> EolTable {
        EolTable::load(std::path::Path::new("/nonexistent"))
    }

    /// The lifecycle of a release, when known.
    pub fn lifecycle(&self, release: &DistroRelease) -> Option<Lifecycle> {
        match release.distro {
            Distro::Debian | Distro::Ubuntu => {
                let (csv, origin) = if release.distro == Distro::Debian {
                    (&self.debian, &self.debian_origin)
                } else {
                    (&self.ubuntu, &self.ubuntu_origin)
                };
                let mut lines = csv.lines();
                let header: Vec<&str> = lines.next()?.split(',').collect();
                let col = |name: &str| header.iter().position(|h| *h == name);
                let (version, series, eol) = (col("version")?, col("series")?, col("eol")?);
                let extended = col("eol-lts").or(col("eol-esm"));
                for line in lines {
                    let fields: Vec<&str> = line.split(',').collect();
                    let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
                    // Debian: "12"; Ubuntu: "22.04 LTS". Codenames match too (testing by name).
                    let matches = field(version)
                        .map(|v| v.trim_end_matches(" LTS"))
                        .is_some_and(|v| v == release.release)
                        || field(series).is_some_and(|s| {
                            Some(s) == release.codename.as_deref() || s == release.release
                        });
                    if matches {
                        return Some(Lifecycle {
                            eol: field(eol)?.to_owned(),
                            extended_until: extended.and_then(field).map(str::to_owned),
                            source: origin.clone(),
                        });
                    }
                }
                None
            }
            distro => {
                let name = distro.id();
                TABLE_CSV
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                    .map(|l| l.splitn(4, ',').collect::<Vec<_>>())
                    .find(|f| f.len() == 4 && f[0] == name && f[1] == release.release)
                    .map(|f| Lifecycle {
                        eol: f[2].to_owned(),
                        extended_until: None,
                        source: f[3].to_owned(),
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: &str, version: &str, codename: Option<&str>) -> DistroRelease {
        DistroRelease::from_os_release(
            Distro::from_os_release_id(id).unwrap(),
            Some(version),
            codename,
            None,
        )
        .unwrap()
    }

    #[test]
    fn dates_come_from_distro_info_and_the_table() {
        let t = EolTable::embedded();
        let buster = t
            .lifecycle(&release("debian", "10", Some("buster")))
            .unwrap();
        assert_eq!(
            (buster.eol.as_str(), buster.extended_until.as_deref()),
            ("2022-09-10", Some("2024-06-30"))
        );
        let focal = t
            .lifecycle(&release("ubuntu", "20.04", Some("focal")))
            .unwrap();
        assert_eq!(focal.eol, "2025-05-29");
        assert_eq!(
            t.lifecycle(&release("almalinux", "9.4", None)).unwrap().eol,
            "2032-05-31"
        );
        assert_eq!(
            t.lifecycle(&release("alpine", "3.19.1", None)).unwrap().eol,
            "2025-11-01"
        );
        assert!(t.lifecycle(&release("fedora", "40", None)).is_none());
    }
}
