//! Inventory collectors: what is installed on a host or a root filesystem, and what is running.
//!
//! [`collect`] reads, without changing anything and without any network access:
//! * the OS identity from os-release, mapped to a distribution release ([`os_release`]);
//! * the packages from the dpkg database (`status` and the distroless `status.d/`), the RPM database
//!   (SQLite and Berkeley DB backends read natively; `rpm` itself for ndb) and the apk installed
//!   database ([`dpkg`], [`rpm`], [`apk`]);
//! * installed versus running kernels ([`kernel`]), whether a reboot is needed ([`reboot`]) and, on a
//!   live host, processes still mapping deleted or replaced files ([`stale`]);
//! * on a live host, the platform from DMI and the environment ([`platform`]) and the host identity
//!   ([`host`]).
//!
//! A database that cannot be read completely is an error naming the file and the record: a partial
//! package list is never reported as an inventory.

pub mod apk;
pub mod apt_lists;
pub mod dpkg;
mod error;
pub mod host;
pub mod kernel;
pub mod os_release;
pub mod platform;
pub mod reboot;
pub mod rhel_stream;
mod root;
pub mod rpm;
pub mod rpm_md;
pub mod stale;
#[cfg(feature = "testing")]
pub mod testing;
pub mod ubuntu_pro;

use std::path::Path;

pub use error::InventoryError;
use patchwarden_model::{Inventory, PackageDatabase, INVENTORY_SCHEMA_VERSION};
pub use root::SystemRoot;

/// What the root's repositories offer for the packages it has installed (`installed`, from its
/// inventory): apt's indexes or the rpm-md caches of dnf and zypper, kept to the names installed,
/// with the advisories naming them. Empty for a root whose package manager has fetched nothing.
pub fn offers(
    root: &Path,
    installed: &[patchwarden_model::InstalledPackage],
) -> Result<patchwarden_model::updates::HostOffers, InventoryError> {
    let root = SystemRoot::open(root)?;
    let names: std::collections::HashSet<&str> =
        installed.iter().map(|p| p.name.as_str()).collect();
    let mut offers = patchwarden_model::updates::HostOffers::default();
    let mut offered = apt_lists::read(&root)?.packages;
    let rpm_md = rpm_md::read(&root)?;
    offered.extend(rpm_md.packages);
    offers.packages = offered
        .into_iter()
        .filter(|p| names.contains(p.name.as_str()))
        .collect();
    offers
        .packages
        .sort_by(|a, b| (&a.name, &a.arch, &a.version).cmp(&(&b.name, &b.arch, &b.version)));
    offers
        .packages
        .dedup_by(|a, b| (&a.name, &a.arch, &a.version) == (&b.name, &b.arch, &b.version));
    offers.advisories = rpm_md
        .advisories
        .into_iter()
        .filter(|a| a.packages.iter().any(|p| names.contains(p.name.as_str())))
        .collect();
    Ok(offers)
}

/// Collects the inventory of the system whose root directory is `root` (`/` for the running host).
pub fn collect(root: &Path) -> Result<Inventory, InventoryError> {
    let collected_at = patchwarden_model::now_rfc3339();
    let root = SystemRoot::open(root)?;
    let mut os = os_release::read(&root)?;
    if os
        .release
        .as_ref()
        .is_some_and(|r| r.distro == patchwarden_model::Distro::Ubuntu)
    {
        os.ubuntu_pro = ubuntu_pro::detect(&root);
    }
    if os
        .release
        .as_ref()
        .is_some_and(|r| r.distro == patchwarden_model::Distro::Rhel)
    {
        os.rhel_stream = rhel_stream::detect(&root, os.version_id.as_deref());
    }
    let mut databases: Vec<PackageDatabase> = Vec::new();
    let mut packages = Vec::new();
    for db in [dpkg::read(&root)?, rpm::read(&root)?, apk::read(&root)?]
        .into_iter()
        .flatten()
    {
        databases.extend(db.databases);
        packages.extend(db.packages);
    }
    if os.release.is_none() && databases.is_empty() && !root.looks_like_system() {
        return Err(InventoryError::NotASystemRoot {
            root: root.dir().to_path_buf(),
        });
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.arch.cmp(&b.arch)));
    os.settle_ubuntu_pro(packages.iter().map(|p| p.version.as_str()));
    let kernel = kernel::collect(&root, &packages, os.release.as_ref());
    let reboot = reboot::collect(&root, &packages, &kernel)?;
    let stale_processes = if root.is_live() {
        stale::collect(&root, &packages)
    } else {
        Vec::new()
    };
    Ok(Inventory {
        schema_version: INVENTORY_SCHEMA_VERSION,
        collected_at,
        collector: format!("patchwarden {}", env!("CARGO_PKG_VERSION")),
        root: root.dir().display().to_string(),
        live: root.is_live(),
        host: host::collect(&root),
        os,
        package_databases: databases,
        packages,
        kernel,
        reboot,
        stale_processes,
        platform: root.is_live().then(|| platform::collect(&root)),
    })
}

/// What one package-manager reader found.
pub struct PackageSet {
    pub databases: Vec<PackageDatabase>,
    pub packages: Vec<patchwarden_model::InstalledPackage>,
}
