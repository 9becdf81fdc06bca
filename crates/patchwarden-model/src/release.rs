//! Distributions and their releases: the key advisories are published under ("Debian 12",
//! "AlmaLinux 9", "Alpine v3.19").

use patchwarden_version::Scheme;
use serde::{Deserialize, Serialize};

/// A distribution patchwarden knows how to match, with its package manager family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    Debian,
    Ubuntu,
    Rhel,
    Almalinux,
    Rocky,
    Centos,
    Fedora,
    Oracle,
    Amazon,
    Mariner,
    Azurelinux,
    Sles,
    Opensuse,
    Alpine,
}

impl Distro {
    pub const ALL: [Distro; 14] = [
        Distro::Debian,
        Distro::Ubuntu,
        Distro::Rhel,
        Distro::Almalinux,
        Distro::Rocky,
        Distro::Centos,
        Distro::Fedora,
        Distro::Oracle,
        Distro::Amazon,
        Distro::Mariner,
        Distro::Azurelinux,
        Distro::Sles,
        Distro::Opensuse,
        Distro::Alpine,
    ];

    /// The distribution whose [`Distro::id`] is `id` (`almalinux`, `oracle`).
    pub fn from_id(id: &str) -> Option<Distro> {
        Distro::ALL.into_iter().find(|d| d.id() == id)
    }

    /// The distribution for an os-release `ID`.
    pub fn from_os_release_id(id: &str) -> Option<Distro> {
        Some(match id {
            "debian" => Distro::Debian,
            "ubuntu" => Distro::Ubuntu,
            "rhel" => Distro::Rhel,
            "almalinux" => Distro::Almalinux,
            "rocky" => Distro::Rocky,
            "centos" => Distro::Centos,
            "fedora" => Distro::Fedora,
            "ol" => Distro::Oracle,
            "amzn" => Distro::Amazon,
            "mariner" => Distro::Mariner,
            "azurelinux" => Distro::Azurelinux,
            "sles" | "sled" | "sle-micro" => Distro::Sles,
            "opensuse-leap" | "opensuse-tumbleweed" | "opensuse" => Distro::Opensuse,
            "alpine" => Distro::Alpine,
            _ => return None,
        })
    }

    /// The name as stored and serialized (`debian`, `almalinux`, `azurelinux`): the key of its
    /// advisories in the store.
    pub fn id(self) -> &'static str {
        match self {
            Distro::Debian => "debian",
            Distro::Ubuntu => "ubuntu",
            Distro::Rhel => "rhel",
            Distro::Almalinux => "almalinux",
            Distro::Rocky => "rocky",
            Distro::Centos => "centos",
            Distro::Fedora => "fedora",
            Distro::Oracle => "oracle",
            Distro::Amazon => "amazon",
            Distro::Mariner => "mariner",
            Distro::Azurelinux => "azurelinux",
            Distro::Sles => "sles",
            Distro::Opensuse => "opensuse",
            Distro::Alpine => "alpine",
        }
    }

    /// Whether the distribution rebuilds RHEL release for release (AlmaLinux, Rocky, Oracle
    /// Linux): its own errata cover fixed flaws only, so Red Hat's unfixed statements for the same
    /// major release apply to it.
    pub fn follows_rhel(self) -> bool {
        matches!(self, Distro::Almalinux | Distro::Rocky | Distro::Oracle)
    }

    /// The version ordering of the distribution's package manager.
    pub fn scheme(self) -> Scheme {
        match self {
            Distro::Debian | Distro::Ubuntu => Scheme::Deb,
            Distro::Alpine => Scheme::Apk,
            _ => Scheme::Rpm,
        }
    }

    /// The name people use.
    pub fn display_name(self) -> &'static str {
        match self {
            Distro::Debian => "Debian",
            Distro::Ubuntu => "Ubuntu",
            Distro::Rhel => "Red Hat Enterprise Linux",
            Distro::Almalinux => "AlmaLinux",
            Distro::Rocky => "Rocky Linux",
            Distro::Centos => "CentOS",
            Distro::Fedora => "Fedora",
            Distro::Oracle => "Oracle Linux",
            Distro::Amazon => "Amazon Linux",
            Distro::Mariner => "CBL-Mariner",
            Distro::Azurelinux => "Azure Linux",
            Distro::Sles => "SUSE Linux Enterprise",
            Distro::Opensuse => "openSUSE",
            Distro::Alpine => "Alpine Linux",
        }
    }
}

/// One release of a distribution, as advisories key it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistroRelease {
    pub distro: Distro,
    /// The release as advisories name it: `12` (Debian), `22.04` (Ubuntu), `9` (RHEL family, major
    /// only), `3.19` (Alpine, major.minor), `rolling` for rolling distributions.
    pub release: String,
    /// The release codename where the distribution has one (`bookworm`, `jammy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codename: Option<String>,
    /// Long-term-support release (Ubuntu LTS).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lts: bool,
    /// `deb`, `rpm` or `apk`: the version ordering of this release's packages.
    pub version_scheme: String,
    /// For people: `Debian 12 (bookworm)`, `Ubuntu 22.04 LTS (jammy)`, `AlmaLinux 9`, `Alpine Linux 3.19`.
    pub display: String,
}

impl DistroRelease {
    /// Builds the release from os-release fields. `version_id` is the os-release `VERSION_ID`;
    /// `debian_version` the content of `/etc/debian_version` for Debian testing/unstable, which has none.
    pub fn from_os_release(
        distro: Distro,
        version_id: Option<&str>,
        codename: Option<&str>,
        debian_version: Option<&str>,
    ) -> Option<DistroRelease> {
        let codename = codename.filter(|c| !c.is_empty()).map(str::to_owned);
        let release = match distro {
            Distro::Debian => match version_id {
                Some(v) => v.split('.').next()?.to_owned(),
                // testing and unstable carry no VERSION_ID; /etc/debian_version says e.g. "trixie/sid".
                None => debian_version
                    .map(|d| d.trim())
                    .filter(|d| d.contains('/'))
                    .map(|_| codename.clone().unwrap_or_else(|| "testing".into()))?,
            },
            Distro::Ubuntu | Distro::Fedora | Distro::Amazon => version_id?.to_owned(),
            Distro::Alpine => {
                let v = version_id?;
                let mut parts = v.split('.');
                let (major, minor) = (parts.next()?, parts.next());
                match minor {
                    Some(m) if !m.contains('_') => format!("{major}.{m}"),
                    _ => "edge".into(),
                }
            }
            Distro::Opensuse if version_id.is_none() => "rolling".into(),
            Distro::Sles | Distro::Opensuse => version_id?.to_owned(),
            _ => version_id?.split('.').next()?.to_owned(),
        };
        let lts = distro == Distro::Ubuntu && ubuntu_is_lts(&release);
        let mut display = format!("{} {release}", distro.display_name());
        if lts {
            display.push_str(" LTS");
        }
        if let (Some(c), Distro::Debian | Distro::Ubuntu) = (&codename, distro) {
            if c != &release {
                display.push_str(&format!(" ({c})"));
            }
        }
        Some(DistroRelease {
            distro,
            release,
            codename,
            lts,
            version_scheme: distro.scheme().name().to_owned(),
            display,
        })
    }
}

/// Ubuntu LTS releases come every two years in April: 14.04, 16.04, ... 24.04, 26.04.
fn ubuntu_is_lts(release: &str) -> bool {
    match release.split_once('.') {
        Some((year, "04")) => year.parse::<u32>().map(|y| y % 2 == 0).unwrap_or(false),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(id: &str, version: Option<&str>, codename: Option<&str>) -> DistroRelease {
        DistroRelease::from_os_release(
            Distro::from_os_release_id(id).unwrap(),
            version,
            codename,
            None,
        )
        .unwrap()
    }

    #[test]
    fn ids_are_the_serialized_names() {
        for d in Distro::ALL {
            assert_eq!(serde_json::to_value(d).unwrap(), d.id());
            assert_eq!(Distro::from_id(d.id()), Some(d));
        }
    }

    #[test]
    fn releases_are_named_as_advisories_key_them() {
        assert_eq!(
            rel("debian", Some("12"), Some("bookworm")).display,
            "Debian 12 (bookworm)"
        );
        let jammy = rel("ubuntu", Some("22.04"), Some("jammy"));
        assert!(jammy.lts);
        assert_eq!(jammy.display, "Ubuntu 22.04 LTS (jammy)");
        assert!(!rel("ubuntu", Some("23.10"), Some("mantic")).lts);
        assert_eq!(rel("almalinux", Some("9.3"), None).release, "9");
        assert_eq!(rel("rocky", Some("9.4"), None).display, "Rocky Linux 9");
        assert_eq!(rel("rhel", Some("9.2"), None).version_scheme, "rpm");
        assert_eq!(rel("alpine", Some("3.19.1"), None).release, "3.19");
        assert_eq!(
            rel("alpine", Some("3.20_alpha20240329"), None).release,
            "edge"
        );
        assert_eq!(rel("mariner", Some("2.0"), None).release, "2");
        let sid = DistroRelease::from_os_release(
            Distro::Debian,
            None,
            Some("trixie"),
            Some("trixie/sid\n"),
        )
        .unwrap();
        assert_eq!(sid.release, "trixie");
    }
}
