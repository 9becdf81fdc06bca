//! The inventory report, schema version 1.

use serde::{Deserialize, Serialize};

use crate::DistroRelease;

/// The schema version of [`Inventory`]; bumped when a field changes meaning or is removed.
pub const INVENTORY_SCHEMA_VERSION: u32 = 1;

/// Everything patchwarden knows about one host (or one root filesystem) at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub schema_version: u32,
    /// RFC 3339 UTC time the collection started.
    pub collected_at: String,
    /// `patchwarden <version>`.
    pub collector: String,
    /// The directory inventoried (`/` for the running host).
    pub root: String,
    /// True when `root` is the running system: then kernel, processes, platform and addresses are live.
    pub live: bool,
    pub host: HostIdentity,
    pub os: OsInfo,
    /// The package databases read, in the order read.
    pub package_databases: Vec<PackageDatabase>,
    pub packages: Vec<InstalledPackage>,
    pub kernel: KernelInfo,
    pub reboot: RebootInfo,
    /// Processes still mapping an executable or library that was deleted or replaced on disk.
    pub stale_processes: Vec<StaleProcess>,
    /// Present only for a live host: the hardware or virtual machine underneath.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Inventory {
    /// The version scheme the host's packages compare in (from its release; dpkg's when the
    /// release is unknown).
    pub fn scheme(&self) -> patchwarden_version::Scheme {
        self.os
            .release
            .as_ref()
            .map(|r| r.distro.scheme())
            .unwrap_or(patchwarden_version::Scheme::Deb)
    }

    /// A copy with every field but the packages (the server stores those as shared rows; copying
    /// a thousand packages only to drop them was a tenth of a check-in's time).
    pub fn without_packages(&self) -> Inventory {
        // Every field named: a new field must be decided on here.
        let Inventory {
            schema_version,
            collected_at,
            collector,
            root,
            live,
            host,
            os,
            package_databases,
            packages: _,
            kernel,
            reboot,
            stale_processes,
            platform,
        } = self;
        Inventory {
            schema_version: *schema_version,
            collected_at: collected_at.clone(),
            collector: collector.clone(),
            root: root.clone(),
            live: *live,
            host: host.clone(),
            os: os.clone(),
            package_databases: package_databases.clone(),
            packages: Vec::new(),
            kernel: kernel.clone(),
            reboot: reboot.clone(),
            stale_processes: stale_processes.clone(),
            platform: platform.clone(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIdentity {
    pub hostname: Option<String>,
    /// `/etc/machine-id`: stable per installation.
    pub machine_id: Option<String>,
    /// Non-loopback addresses of a live host.
    pub ip_addresses: Vec<String>,
}

/// `/etc/os-release` and the distribution release it maps to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub name: Option<String>,
    pub pretty_name: Option<String>,
    /// `None` for a distribution patchwarden does not know; its packages are still listed.
    pub release: Option<DistroRelease>,
    /// Ubuntu only: whether the host receives Ubuntu Pro (ESM) updates, as its apt configuration
    /// says; absent when that could not be told (no apt sources in the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ubuntu_pro: Option<UbuntuPro>,
    /// RHEL only: the update stream the host follows (the main stream, or an extended-support
    /// stream of one minor release), as its repositories say; absent when that could not be told
    /// (no repository files in the root): the main stream is assumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhel_stream: Option<RhelStream>,
}

/// The update stream of a RHEL host: the main stream (every minor release in turn) or one of Red
/// Hat's extended-support streams, which keep one minor release (`9.4`) patched past its time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RhelStream {
    pub phase: RhelPhase,
    /// The minor release an extended stream keeps (`9.4`); none on the main stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<String>,
    /// An Extended Life Cycle Support repository is enabled (`rhel-7-server-els-rpms`): the host
    /// receives Red Hat's ELS fixes after maintenance support ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub els: bool,
    /// What showed it (`rhel-9-for-x86_64-baseos-eus-rpms enabled in /etc/yum.repos.d/redhat.repo,
    /// releasever 9.4 in /etc/dnf/vars/releasever`), or why the main stream is assumed.
    pub evidence: String,
}

/// Red Hat's update streams (the names of its repositories: `…-eus-rpms`, `…-aus-rpms`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RhelPhase {
    Main,
    /// Extended Update Support.
    Eus,
    /// Advanced Mission Critical Update Support.
    Aus,
    /// Update Services for SAP Solutions.
    E4s,
    /// Telecommunications Update Service.
    Tus,
}

impl RhelPhase {
    /// The extended phases, by the name Red Hat's repositories and CPEs use (`eus`, `aus`, …).
    pub const EXTENDED: [RhelPhase; 4] = [
        RhelPhase::Eus,
        RhelPhase::Aus,
        RhelPhase::E4s,
        RhelPhase::Tus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RhelPhase::Main => "main",
            RhelPhase::Eus => "eus",
            RhelPhase::Aus => "aus",
            RhelPhase::E4s => "e4s",
            RhelPhase::Tus => "tus",
        }
    }

    pub fn from_name(name: &str) -> Option<RhelPhase> {
        let lower = name.to_ascii_lowercase();
        Self::EXTENDED
            .into_iter()
            .chain([RhelPhase::Main])
            .find(|p| p.as_str() == lower)
    }
}

impl RhelStream {
    /// The key advisory entries of an extended stream carry (`eus:9.4`); `None` on the main
    /// stream.
    pub fn extended_key(&self) -> Option<String> {
        (self.phase != RhelPhase::Main).then(|| {
            format!(
                "{}:{}",
                self.phase.as_str(),
                self.minor.as_deref().unwrap_or("")
            )
        })
    }
}

/// Whether an Ubuntu host receives Ubuntu Pro (ESM) updates, and what showed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UbuntuPro {
    pub receives: bool,
    /// The apt source that carries ESM (`https://esm.ubuntu.com/infra/ubuntu in
    /// /etc/apt/sources.list.d/ubuntu-esm-infra.list`), or why none counts.
    pub evidence: String,
}

impl UbuntuPro {
    /// What installed versions say when the apt sources could not be read (a root without
    /// them, an inventory made elsewhere): a version carrying `+esm` came from ESM.
    pub fn from_installed_versions<'a>(versions: impl IntoIterator<Item = &'a str>) -> UbuntuPro {
        let receives = versions.into_iter().any(|v| v.contains("+esm"));
        UbuntuPro {
            receives,
            evidence: if receives {
                "an installed version carries +esm (no apt sources in the inventory)".into()
            } else {
                "no apt sources in the inventory and no installed version carries +esm".into()
            },
        }
    }
}

impl OsInfo {
    /// On Ubuntu, settles `ubuntu_pro` from the installed versions when the apt sources said
    /// nothing ([`UbuntuPro::from_installed_versions`]), so that every reader of the inventory —
    /// including one that has only its head, as the server's findings view — decides alike.
    pub fn settle_ubuntu_pro<'a>(&mut self, versions: impl IntoIterator<Item = &'a str>) {
        let ubuntu = self
            .release
            .as_ref()
            .is_some_and(|r| r.distro == crate::Distro::Ubuntu);
        if ubuntu && self.ubuntu_pro.is_none() {
            self.ubuntu_pro = Some(UbuntuPro::from_installed_versions(versions));
        }
    }

    /// The extended-support stream a RHEL host follows (`eus:9.4`); `None` on the main stream,
    /// when the inventory could not tell, and for every other distribution. One rule for the
    /// matcher and the fleet's caches.
    pub fn rhel_extended_stream(&self) -> Option<String> {
        let rhel = self
            .release
            .as_ref()
            .is_some_and(|r| r.distro == crate::Distro::Rhel);
        self.rhel_stream
            .as_ref()
            .filter(|_| rhel)
            .and_then(RhelStream::extended_key)
    }

    /// The name people see: the release's display name, else os-release's `PRETTY_NAME`.
    pub fn display_name(&self) -> Option<String> {
        self.release
            .as_ref()
            .map(|r| r.display.clone())
            .or_else(|| self.pretty_name.clone())
    }
}

/// The package manager family of a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    Dpkg,
    Rpm,
    Apk,
}

/// One package database that was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDatabase {
    pub manager: PackageManager,
    /// Path inside the root, e.g. `/var/lib/dpkg/status` or `/var/lib/rpm/rpmdb.sqlite`.
    pub path: String,
    /// How it was read: `dpkg-status`, `dpkg-status.d`, `rpm-sqlite`, `rpm-bdb`, `rpm-cli` (ndb, through
    /// the host's `rpm`), `apk-installed`.
    pub format: String,
    pub packages: usize,
}

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPackage {
    pub name: String,
    /// The full version as the package manager prints it: `[epoch:]upstream[-revision]` (deb),
    /// `[epoch:]version-release` (rpm), `version-rN` (apk).
    pub version: String,
    pub arch: String,
    /// The source package: dpkg `Source:` (else the package itself), the name in rpm's `SOURCERPM`,
    /// apk's origin `o:`.
    pub source_name: String,
    /// The source version: dpkg `Source: name (version)` (else the package version), `version-release`
    /// from rpm's `SOURCERPM` (which carries no epoch), the package version for apk.
    pub source_version: String,
    pub manager: PackageManager,
    /// dpkg's selection/state, e.g. `install ok installed`, `hold ok installed`; absent for rpm and apk
    /// and for distroless dpkg entries, which carry no status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Held back from upgrades (dpkg selection `hold`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// Unix time of installation, where the database records it (rpm `INSTALLTIME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_time: Option<i64>,
}

/// Running versus installed kernels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// `uname -r` of a live host; `None` for a root directory (no kernel runs from it).
    pub running: Option<String>,
    /// Installed kernel packages, newest first.
    pub installed: Vec<InstalledKernel>,
    /// True when the running kernel is the newest installed one; `None` when it cannot be known.
    pub running_is_newest: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledKernel {
    /// The kernel release it boots as (`uname -r`), e.g. `6.1.0-18-amd64`, `5.14.0-362.8.1.el9_3.x86_64`.
    pub release: String,
    pub package: String,
    pub version: String,
}

/// Whether the host must reboot for installed updates to take effect, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootInfo {
    /// `None` when it cannot be decided (a root directory of an RPM system: there is no boot time).
    pub required: Option<bool>,
    pub reasons: Vec<String>,
    /// Packages that asked for the reboot (`/run/reboot-required.pkgs`, or the RPM core packages
    /// updated since boot).
    pub packages: Vec<String>,
}

/// A process that still maps a file deleted or replaced on disk: patched on disk, not in memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleProcess {
    pub pid: u32,
    pub command: String,
    /// The file as the kernel reports it, without ` (deleted)`.
    pub path: String,
    /// The package that owns the path now, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

/// What kind of machine a live host is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MachineKind {
    BareMetal,
    VirtualMachine,
    Container,
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub kind: MachineKind,
    /// The hypervisor, where detected (`kvm`, `vmware`, `hyper-v`, `xen`, `virtualbox`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypervisor: Option<String>,
    /// The container runtime, where detected (`docker`, `podman`, `lxc`, `systemd-nspawn`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_runtime: Option<String>,
    /// Cloud provider hinted by DMI (`aws`, `gcp`, `azure`, `oracle`, `digitalocean`, `hetzner`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_provider: Option<String>,
    pub bios_vendor: Option<String>,
    pub bios_version: Option<String>,
    pub bios_date: Option<String>,
    pub system_vendor: Option<String>,
    pub product_name: Option<String>,
    pub product_version: Option<String>,
}

/// The `uname -r` a kernel package boots as, or `None` if the package is no kernel image.
pub fn boot_release(p: &InstalledPackage, mariner: bool) -> Option<String> {
    match p.manager {
        PackageManager::Dpkg => {
            let rest = p
                .name
                .strip_prefix("linux-image-unsigned-")
                .or_else(|| p.name.strip_prefix("linux-image-"))?;
            rest.starts_with(|c: char| c.is_ascii_digit())
                .then(|| rest.to_owned())
        }
        PackageManager::Rpm => {
            const KERNELS: [&str; 7] = [
                "kernel",
                "kernel-core",
                "kernel-rt-core",
                "kernel-uek",
                "kernel-uek-core",
                "kernel-64k-core",
                "kernel-rt",
            ];
            if !KERNELS.contains(&p.name.as_str()) {
                return None;
            }
            let evr = p
                .version
                .split_once(':')
                .map_or(p.version.as_str(), |(_, vr)| vr);
            Some(if mariner {
                evr.to_owned()
            } else {
                format!("{evr}.{}", p.arch)
            })
        }
        PackageManager::Apk => {
            let flavor = p.name.strip_prefix("linux-")?;
            if !["lts", "virt", "edge", "rpi", "stable"].contains(&flavor) {
                return None;
            }
            let (version, rel) = p.version.rsplit_once("-r")?;
            Some(format!("{version}-{rel}-{flavor}"))
        }
    }
}
