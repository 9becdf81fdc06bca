//! What a live host runs on: DMI data from `/sys/class/dmi/id`, container markers, the CPU's
//! hypervisor flag, and cloud-provider hints from DMI strings.

use patchwarden_model::{MachineKind, Platform};

use crate::SystemRoot;

pub fn collect(root: &SystemRoot) -> Platform {
    let dmi = |f: &str| root.read_trimmed(&format!("/sys/class/dmi/id/{f}"));
    let (bios_vendor, bios_version, bios_date) =
        (dmi("bios_vendor"), dmi("bios_version"), dmi("bios_date"));
    let (system_vendor, product_name, product_version) = (
        dmi("sys_vendor"),
        dmi("product_name"),
        dmi("product_version"),
    );
    let chassis_asset_tag = dmi("chassis_asset_tag");
    let container_runtime = detect_container(root);
    let cpu_hypervisor = root
        .read_optional("/proc/cpuinfo")
        .ok()
        .flatten()
        .is_some_and(|c| {
            c.lines()
                .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
        });
    let dmi_text = [&system_vendor, &product_name, &bios_vendor, &bios_version]
        .iter()
        .filter_map(|s| s.as_deref())
        .collect::<Vec<_>>()
        .join(" ");
    let hypervisor =
        hypervisor_from_dmi(&dmi_text).or(cpu_hypervisor.then(|| "unknown".to_owned()));
    let cloud_provider = cloud_from_dmi(&dmi_text, chassis_asset_tag.as_deref());
    let kind = if container_runtime.is_some() {
        MachineKind::Container
    } else if hypervisor.is_some() {
        MachineKind::VirtualMachine
    } else if system_vendor.is_some() || bios_vendor.is_some() {
        MachineKind::BareMetal
    } else {
        MachineKind::Unknown
    };
    Platform {
        kind,
        hypervisor,
        container_runtime,
        cloud_provider,
        bios_vendor,
        bios_version,
        bios_date,
        system_vendor,
        product_name,
        product_version,
    }
}

fn detect_container(root: &SystemRoot) -> Option<String> {
    if let Some(c) = root.read_trimmed("/run/systemd/container") {
        return Some(c);
    }
    if root.exists("/.dockerenv") {
        return Some("docker".into());
    }
    if root.exists("/run/.containerenv") {
        return Some("podman".into());
    }
    if let Ok(env) = std::fs::read("/proc/1/environ") {
        for var in env.split(|&b| b == 0) {
            if let Some(v) = var.strip_prefix(b"container=") {
                return Some(String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    let cgroup = root.read_trimmed("/proc/1/cgroup").unwrap_or_default();
    for (marker, name) in [
        ("docker", "docker"),
        ("kubepods", "kubernetes"),
        ("lxc", "lxc"),
        ("containerd", "containerd"),
    ] {
        if cgroup.contains(marker) {
            return Some(name.into());
        }
    }
    None
}

pub fn hypervisor_from_dmi(dmi: &str) -> Option<String> {
    let d = dmi.to_ascii_lowercase();
    let table = [
        ("qemu", "kvm"),
        ("kvm", "kvm"),
        ("vmware", "vmware"),
        ("virtualbox", "virtualbox"),
        ("innotek", "virtualbox"),
        ("microsoft corporation virtual machine", "hyper-v"),
        ("hyper-v", "hyper-v"),
        ("xen", "xen"),
        ("amazon ec2", "kvm"),
        ("google compute engine", "kvm"),
        ("openstack", "kvm"),
        ("parallels", "parallels"),
        ("bochs", "bochs"),
        ("bhyve", "bhyve"),
        ("cloud hypervisor", "cloud-hypervisor"),
        ("firecracker", "firecracker"),
    ];
    table
        .iter()
        .find(|(needle, _)| d.contains(needle))
        .map(|(_, h)| h.to_string())
}

pub fn cloud_from_dmi(dmi: &str, chassis_asset_tag: Option<&str>) -> Option<String> {
    let d = dmi.to_ascii_lowercase();
    if chassis_asset_tag == Some("7783-7084-3265-9085-8269-3286-77") {
        return Some("azure".into());
    }
    if chassis_asset_tag.is_some_and(|t| t.contains("OracleCloud")) {
        return Some("oracle".into());
    }
    let table = [
        ("amazon ec2", "aws"),
        ("google compute engine", "gcp"),
        ("google", "gcp"),
        ("digitalocean", "digitalocean"),
        ("hetzner", "hetzner"),
        ("alibaba cloud", "alibaba"),
        ("openstack", "openstack"),
        ("linode", "linode"),
        ("vultr", "vultr"),
        ("scaleway", "scaleway"),
        ("exoscale", "exoscale"),
        ("ovh", "ovhcloud"),
    ];
    table
        .iter()
        .find(|(needle, _)| d.contains(needle))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmi_hints() {
        assert_eq!(
            hypervisor_from_dmi("QEMU Standard PC (i440FX + PIIX, 1996) SeaBIOS").as_deref(),
            Some("kvm")
        );
        assert_eq!(
            cloud_from_dmi("Amazon EC2 m5.large Amazon EC2", None).as_deref(),
            Some("aws")
        );
        assert_eq!(
            cloud_from_dmi(
                "Microsoft Corporation Virtual Machine",
                Some("7783-7084-3265-9085-8269-3286-77")
            )
            .as_deref(),
            Some("azure")
        );
        assert_eq!(cloud_from_dmi("Dell Inc. PowerEdge R740", None), None);
        assert_eq!(hypervisor_from_dmi("Dell Inc. PowerEdge R740"), None);
    }
}
