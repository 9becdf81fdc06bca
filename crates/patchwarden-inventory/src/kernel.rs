//! Installed kernels (from the package list) versus the running one (`/proc/sys/kernel/osrelease`).
//!
//! The release each kernel package boots as (`uname -r`) follows from its name and version:
//! * dpkg: `linux-image-<release>` (Debian `6.1.0-18-amd64`, Ubuntu `5.15.0-91-generic`), also
//!   `linux-image-unsigned-<release>`; meta packages such as `linux-image-amd64` are skipped.
//! * rpm: `kernel`, `kernel-core`, `kernel-rt-core`, `kernel-uek(-core)`, `kernel-64k-core`:
//!   `<version>-<release>.<arch>` (RHEL family); CBL-Mariner/Azure Linux `kernel`: `<version>-<release>`.
//! * apk: `linux-<flavor>` `<version>-r<N>` boots as `<version>-<N>-<flavor>`.

use std::cmp::Ordering;

use patchwarden_model::{
    Distro, DistroRelease, InstalledKernel, InstalledPackage, KernelInfo, PackageManager,
};
use patchwarden_version::{compare, Scheme};

use crate::SystemRoot;

/// `release` is the distribution release os-release named, if patchwarden knows it.
pub fn collect(
    root: &SystemRoot,
    packages: &[InstalledPackage],
    release: Option<&DistroRelease>,
) -> KernelInfo {
    let scheme = release.map(|r| r.distro.scheme());
    let running = if root.is_live() {
        root.read_trimmed("/proc/sys/kernel/osrelease")
    } else {
        None
    };
    let mariner = release.is_some_and(|r| matches!(r.distro, Distro::Mariner | Distro::Azurelinux));
    let mut installed: Vec<(InstalledKernel, PackageManager)> = Vec::new();
    for p in packages {
        if let Some(release) = boot_release(p, mariner) {
            if !installed.iter().any(|(k, _)| k.release == release) {
                installed.push((
                    InstalledKernel {
                        release,
                        package: p.name.clone(),
                        version: p.version.clone(),
                    },
                    p.manager,
                ));
            }
        }
    }
    installed.sort_by(|(a, ma), (b, _)| {
        let scheme = scheme.unwrap_or(match ma {
            PackageManager::Dpkg => Scheme::Deb,
            PackageManager::Rpm => Scheme::Rpm,
            PackageManager::Apk => Scheme::Apk,
        });
        compare(scheme, &b.version, &a.version)
            .unwrap_or(Ordering::Equal)
            .then_with(|| b.release.cmp(&a.release))
    });
    let installed: Vec<InstalledKernel> = installed.into_iter().map(|(k, _)| k).collect();
    let running_is_newest = match (&running, installed.first()) {
        (Some(r), Some(newest)) => Some(&newest.release == r),
        _ => None,
    };
    KernelInfo {
        running,
        installed,
        running_is_newest,
    }
}

pub use patchwarden_model::boot_release;

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, arch: &str, manager: PackageManager) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            source_name: name.into(),
            source_version: version.into(),
            manager,
            status: None,
            held: false,
            install_time: None,
        }
    }

    #[test]
    fn boot_releases() {
        assert_eq!(
            boot_release(
                &pkg(
                    "linux-image-6.1.0-18-amd64",
                    "6.1.76-1",
                    "amd64",
                    PackageManager::Dpkg
                ),
                false
            )
            .as_deref(),
            Some("6.1.0-18-amd64")
        );
        assert_eq!(
            boot_release(
                &pkg(
                    "linux-image-amd64",
                    "6.1.76-1",
                    "amd64",
                    PackageManager::Dpkg
                ),
                false
            ),
            None
        );
        assert_eq!(
            boot_release(
                &pkg(
                    "kernel-core",
                    "5.14.0-362.8.1.el9_3",
                    "x86_64",
                    PackageManager::Rpm
                ),
                false
            )
            .as_deref(),
            Some("5.14.0-362.8.1.el9_3.x86_64")
        );
        assert_eq!(
            boot_release(
                &pkg("kernel-headers", "5.14.0-1", "x86_64", PackageManager::Rpm),
                false
            ),
            None
        );
        // CBL-Mariner/Azure Linux kernels boot as version-release, without the arch.
        assert_eq!(
            boot_release(
                &pkg("kernel", "5.15.131.1-2.cm2", "x86_64", PackageManager::Rpm),
                true
            )
            .as_deref(),
            Some("5.15.131.1-2.cm2")
        );
        assert_eq!(
            boot_release(
                &pkg("linux-lts", "6.6.14-r0", "x86_64", PackageManager::Apk),
                false
            )
            .as_deref(),
            Some("6.6.14-0-lts")
        );
    }
}
