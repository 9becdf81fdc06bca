//! The human-readable inventory: a summary, then one line per package.

use std::io::Write;

use patchwarden_model::Inventory;

pub fn write_inventory(out: &mut impl Write, inv: &Inventory) -> std::io::Result<()> {
    let os = inv.os.display_name().unwrap_or_else(|| "unknown".into());
    writeln!(
        out,
        "Host:      {}",
        inv.host.hostname.as_deref().unwrap_or("-")
    )?;
    writeln!(
        out,
        "Root:      {}{}",
        inv.root,
        if inv.live { " (live host)" } else { "" }
    )?;
    writeln!(out, "OS:        {os}")?;
    for db in &inv.package_databases {
        writeln!(
            out,
            "Database:  {} ({}, {} packages)",
            db.path, db.format, db.packages
        )?;
    }
    let kernel = match (&inv.kernel.running, inv.kernel.installed.first()) {
        (Some(r), Some(_)) if inv.kernel.running_is_newest == Some(true) => {
            format!("{r} (newest installed)")
        }
        (Some(r), Some(n)) => format!("{r} running; newest installed is {}", n.release),
        (Some(r), None) => format!("{r} running; no kernel package installed"),
        (None, Some(n)) => format!("newest installed {}", n.release),
        (None, None) => "-".into(),
    };
    writeln!(out, "Kernel:    {kernel}")?;
    let reboot = match inv.reboot.required {
        Some(true) => format!("required ({})", inv.reboot.reasons.join("; ")),
        Some(false) => "not required".into(),
        None => "unknown".into(),
    };
    writeln!(out, "Reboot:    {reboot}")?;
    if let Some(p) = &inv.platform {
        let mut desc = format!("{:?}", p.kind).to_lowercase();
        for extra in [&p.hypervisor, &p.container_runtime, &p.cloud_provider]
            .into_iter()
            .flatten()
        {
            desc.push_str(&format!(", {extra}"));
        }
        writeln!(out, "Platform:  {desc}")?;
    }
    if !inv.stale_processes.is_empty() {
        writeln!(
            out,
            "Stale:     {} process(es) still run deleted or replaced code:",
            inv.stale_processes.len()
        )?;
        for s in &inv.stale_processes {
            writeln!(
                out,
                "           pid {} {} maps {}{}",
                s.pid,
                s.command,
                s.path,
                s.package
                    .as_ref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            )?;
        }
    }
    writeln!(out, "Packages:  {}", inv.packages.len())?;
    writeln!(out)?;
    let w_name = inv
        .packages
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let w_ver = inv
        .packages
        .iter()
        .map(|p| p.version.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let w_arch = inv
        .packages
        .iter()
        .map(|p| p.arch.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:w_name$}  {:w_ver$}  {:w_arch$}  SOURCE",
        "NAME", "VERSION", "ARCH"
    )?;
    for p in &inv.packages {
        let source = if p.source_name == p.name && p.source_version == p.version {
            String::new()
        } else {
            format!("{} {}", p.source_name, p.source_version)
        };
        let hold = if p.held { " [hold]" } else { "" };
        writeln!(
            out,
            "{:w_name$}  {:w_ver$}  {:w_arch$}  {source}{hold}",
            p.name, p.version, p.arch
        )?;
    }
    Ok(())
}
