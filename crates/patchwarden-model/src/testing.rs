//! Test support (feature `testing`): SYNTHETIC inventories for tests that pair them with real
//! advisory records — one constructor instead of one per test file.

use crate::*;

/// A package as tests write it: (name, version, source name, source version).
pub type TestPackage<'a> = (&'a str, &'a str, &'a str, &'a str);

/// An inventory of `/` (not live) of the distribution `os_id` (`/etc/os-release` ID) at
/// `version_id`, holding `packages` on x86_64, collected at 2026-11-22T00:00:00Z, no host
/// identity, no kernel facts (set those on the result where a test needs them).
pub fn inventory(
    os_id: &str,
    version_id: &str,
    codename: Option<&str>,
    packages: &[TestPackage<'_>],
) -> Inventory {
    let distro = Distro::from_os_release_id(os_id).expect("a distribution patchwarden knows");
    let manager = match distro.scheme().name() {
        "deb" => PackageManager::Dpkg,
        "rpm" => PackageManager::Rpm,
        _ => PackageManager::Apk,
    };
    Inventory {
        schema_version: INVENTORY_SCHEMA_VERSION,
        collected_at: "2026-11-22T00:00:00Z".into(),
        collector: "test".into(),
        root: "/".into(),
        live: false,
        host: HostIdentity::default(),
        os: OsInfo {
            id: os_id.into(),
            id_like: vec![],
            version_id: Some(version_id.into()),
            version_codename: codename.map(str::to_owned),
            name: None,
            pretty_name: None,
            release: DistroRelease::from_os_release(distro, Some(version_id), codename, None),
            ubuntu_pro: None,
            rhel_stream: None,
        },
        package_databases: vec![],
        packages: packages
            .iter()
            .map(|(name, version, source, source_version)| InstalledPackage {
                name: (*name).into(),
                version: (*version).into(),
                arch: "x86_64".into(),
                source_name: (*source).into(),
                source_version: (*source_version).into(),
                manager,
                status: None,
                held: false,
                install_time: None,
            })
            .collect(),
        kernel: KernelInfo::default(),
        reboot: RebootInfo::default(),
        stale_processes: vec![],
        platform: None,
    }
}
