//! Does the host need a reboot for installed updates to take effect?
//!
//! * Debian/Ubuntu: `/run/reboot-required` (written by package hooks) and `/run/reboot-required.pkgs`.
//! * RPM families, on a live host: the rule of dnf's `needs-restarting -r` — a core package (kernel,
//!   glibc, systemd, dbus, linux-firmware, microcode, ... and names listed in
//!   `/etc/dnf/plugins/needs-restarting.d/*.conf`) installed after the last boot (`btime` in `/proc/stat`).
//! * Any live host: the running kernel is not the newest installed one.

use patchwarden_model::{InstalledPackage, KernelInfo, PackageManager, RebootInfo};

use crate::{InventoryError, SystemRoot};

/// dnf-plugins-core `needs_restarting.NEED_REBOOT`.
pub const RPM_NEED_REBOOT: [&str; 10] = [
    "kernel",
    "kernel-core",
    "kernel-rt",
    "glibc",
    "linux-firmware",
    "systemd",
    "dbus",
    "dbus-broker",
    "dbus-daemon",
    "microcode_ctl",
];

pub fn collect(
    root: &SystemRoot,
    packages: &[InstalledPackage],
    kernel: &KernelInfo,
) -> Result<RebootInfo, InventoryError> {
    let mut info = RebootInfo::default();
    let has = |m: PackageManager| packages.iter().any(|p| p.manager == m);
    if has(PackageManager::Dpkg) {
        let flag = root.exists("/run/reboot-required") || root.exists("/var/run/reboot-required");
        info.required = Some(flag);
        if flag {
            info.reasons.push("/run/reboot-required exists".into());
            let pkgs = match root.read_optional("/run/reboot-required.pkgs")? {
                Some(t) => Some(t),
                None => root.read_optional("/var/run/reboot-required.pkgs")?,
            };
            if let Some(text) = pkgs {
                let mut list: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                list.sort();
                list.dedup();
                info.packages = list;
            }
        }
    }
    if root.is_live() {
        if has(PackageManager::Rpm) {
            let boot_time = root.read_optional("/proc/stat")?.and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<i64>().ok())
            });
            if let Some(btime) = boot_time {
                let updated =
                    rpm_core_updates_since(packages, btime, &extra_rpm_reboot_names(root));
                info.required = Some(info.required.unwrap_or(false) || !updated.is_empty());
                for name in updated {
                    info.reasons.push(format!(
                        "core package {name} was updated after the last boot"
                    ));
                    info.packages.push(name);
                }
            }
        }
        if kernel.running_is_newest == Some(false) {
            info.required = Some(true);
            info.reasons.push(format!(
                "running kernel {} is not the newest installed ({})",
                kernel.running.as_deref().unwrap_or("?"),
                kernel
                    .installed
                    .first()
                    .map(|k| k.release.as_str())
                    .unwrap_or("?")
            ));
        } else if info.required.is_none() && kernel.running.is_some() {
            info.required = Some(false);
        }
    }
    Ok(info)
}

/// dnf `needs-restarting -r`'s rule: the core packages (and `extra` names) installed after `boot_time`.
pub fn rpm_core_updates_since(
    packages: &[InstalledPackage],
    boot_time: i64,
    extra: &[String],
) -> Vec<String> {
    let mut names: Vec<String> = packages
        .iter()
        .filter(|p| {
            p.manager == PackageManager::Rpm && p.install_time.is_some_and(|t| t > boot_time)
        })
        .filter(|p| RPM_NEED_REBOOT.contains(&p.name.as_str()) || extra.contains(&p.name))
        .map(|p| p.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn extra_rpm_reboot_names(root: &SystemRoot) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.path("/etc/dnf/plugins/needs-restarting.d")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        if e.path().extension().is_some_and(|x| x == "conf") {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                out.extend(
                    t.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpm(name: &str, installed: i64) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            version: "1-1".into(),
            arch: "x86_64".into(),
            source_name: name.into(),
            source_version: "1-1".into(),
            manager: PackageManager::Rpm,
            status: None,
            held: false,
            install_time: Some(installed),
        }
    }

    #[test]
    fn core_packages_updated_after_boot_need_a_reboot() {
        let boot = 1_700_000_000;
        let pkgs = [
            rpm("glibc", boot + 60),
            rpm("bash", boot + 60),
            rpm("systemd", boot - 60),
            rpm("openssl-libs", boot + 5),
        ];
        assert_eq!(rpm_core_updates_since(&pkgs, boot, &[]), ["glibc"]);
        assert_eq!(
            rpm_core_updates_since(&pkgs, boot, &["openssl-libs".into()]),
            ["glibc", "openssl-libs"]
        );
        assert!(rpm_core_updates_since(&pkgs, boot + 3600, &[]).is_empty());
    }
}
