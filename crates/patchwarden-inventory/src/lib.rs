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
pub mod dpkg;
mod error;
pub mod host;
pub mod kernel;
pub mod os_release;
pub mod platform;
pub mod reboot;
mod root;
pub mod rpm;
pub mod stale;

use std::path::Path;

pub use error::InventoryError;
use patchwarden_model::{Inventory, PackageDatabase, INVENTORY_SCHEMA_VERSION};
pub use root::SystemRoot;

/// Collects the inventory of the system whose root directory is `root` (`/` for the running host).
pub fn collect(root: &Path) -> Result<Inventory, InventoryError> {
    let collected_at = rfc3339_now();
    let root = SystemRoot::open(root)?;
    let os = os_release::read(&root)?;
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
    let scheme = os.release.as_ref().map(|r| r.distro.scheme());
    let kernel = kernel::collect(&root, &packages, scheme);
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

/// The current time as RFC 3339 UTC, to the second.
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs as i64)
}

/// Formats Unix seconds as RFC 3339 UTC (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
