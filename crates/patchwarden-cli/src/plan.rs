//! `patchwarden plan`: the plan for this host or a root — for every open finding with a fix (and,
//! on RPM systems, every update advisory its repositories publish), the exact version its own
//! repositories offer (apt's indexes, dnf's or zypper's cached repositories), judged by a baseline;
//! what the baseline holds back and what no repository can fix yet. The updates print as
//! `--package name=version` arguments for `patchwarden change create` with `--format args`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, ValueEnum};
use patchwarden_deploy::baseline::{Baseline, BaselineSpec};
use patchwarden_deploy::plan::{
    assemble, baseline_or_everything, plan_day, HostPlan, HostPlanAnswer, PlanInputs, PlanRequest,
};
use patchwarden_store::Store;

use crate::client::{Client, ServerConnection};
use crate::scan::{load_inventory, options, with_report, Target};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
    /// `--package name=version` per update (for `patchwarden change create`).
    Args,
}

#[derive(ClapArgs)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: Target,
    /// The baseline (TOML: name, min_severity, classifications, approve_after_days,
    /// released_before, always_approve_kev, allow, deny); every fix is approved without one.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// The day the baseline judges on (`YYYY-MM-DD`; default today, UTC).
    #[arg(long)]
    pub today: Option<String>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Table)]
    pub format: PlanFormat,
    /// Plan these hosts on the server (`--server`, repeatable) from what their agents reported,
    /// instead of this host or a root.
    #[arg(long = "host")]
    pub hosts: Vec<i64>,
}

/// The baseline file's spec (TOML), if one is given.
fn baseline_spec(path: Option<&PathBuf>) -> anyhow::Result<Option<BaselineSpec>> {
    let Some(p) = path else { return Ok(None) };
    let text =
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    Ok(Some(
        toml::from_str::<BaselineSpec>(&text).with_context(|| format!("{}", p.display()))?,
    ))
}

fn baseline(path: Option<&PathBuf>) -> anyhow::Result<Baseline> {
    baseline_or_everything(baseline_spec(path)?).map_err(|e| anyhow::anyhow!("baseline: {e}"))
}

/// Plans for hosts on the server (`POST /v1/plans`): one plan per host, from its agent's report
/// of what its repositories offer and its stored findings.
pub async fn remote(c: &ServerConnection, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(c)?;
    let request = PlanRequest {
        hosts: args.hosts.clone(),
        baseline: baseline_spec(args.baseline.as_ref())?,
        today: args.today.clone(),
    };
    let plans: Vec<HostPlanAnswer> = client.post("/v1/plans", &request).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.format == PlanFormat::Json {
        serde_json::to_writer_pretty(&mut out, &plans)?;
        writeln!(out)?;
    } else {
        for p in &plans {
            if args.format == PlanFormat::Table {
                writeln!(out, "host {}", p.host_id)?;
            }
            write_plan(&mut out, &p.plan, args.format)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub async fn plan(store: &Store, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    if args.target.inventory.is_some() {
        bail!("plan reads the root's own repository metadata: give --root, not --inventory");
    }
    let baseline = baseline(args.baseline.as_ref())?;
    let today = plan_day(args.today.as_deref()).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let inv = load_inventory(&args.target)?;
    let root_dir = args
        .target
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    let root = patchwarden_inventory::SystemRoot::open(&root_dir)?;
    let Some(release) = inv.os.release.clone() else {
        bail!(
            "{}: not a distribution patchwarden knows",
            root_dir.display()
        );
    };
    let scheme = release.distro.scheme();
    // What the host's package manager can install: apt's indexes, or dnf's cached repositories
    // (whose update advisories are fixes too).
    let (offered, advisories) = match scheme {
        patchwarden_version::Scheme::Deb => (
            patchwarden_inventory::apt_lists::read(&root)?.packages,
            Vec::new(),
        ),
        patchwarden_version::Scheme::Rpm => {
            let repos = patchwarden_inventory::rpm_md::read(&root)?;
            (repos.packages, repos.advisories)
        }
        _ => bail!(
            "{}: plans read apt indexes and rpm-md repositories; {:?} roots are not planned yet",
            root_dir.display(),
            release.distro
        ),
    };
    let options = options(&args.target, false)?;
    let findings = with_report(store, &inv, &options, |report, _, _| {
        report
            .findings
            .iter()
            .map(patchwarden_findings::Finding::to_doc)
            .collect::<Vec<_>>()
    })
    .await?;
    let inputs = PlanInputs {
        scheme,
        installed: &inv.packages,
        offered: &offered,
        advisories: &advisories,
        findings: &findings,
    };
    let plan = assemble(&inputs, &baseline, today);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    write_plan(&mut out, &plan, args.format)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_plan(out: &mut impl Write, plan: &HostPlan, format: PlanFormat) -> anyhow::Result<()> {
    match format {
        PlanFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, plan)?;
            writeln!(out)?;
        }
        PlanFormat::Args => {
            for u in &plan.updates {
                // Architecture-independent packages are named without one (`apt-get install
                // name=version`); the others keep theirs (multi-arch hosts).
                if matches!(u.arch.as_str(), "all" | "noarch") {
                    writeln!(out, "--package {}={}", u.name, u.to)?;
                } else {
                    writeln!(out, "--package {}:{}={}", u.name, u.arch, u.to)?;
                }
            }
        }
        PlanFormat::Table => {
            writeln!(out, "package\tarch\tfrom\tto\tcloses")?;
            for u in &plan.updates {
                let closes: Vec<&str> = u.closes.iter().map(String::as_str).collect();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    u.name,
                    u.arch,
                    u.from,
                    u.to,
                    closes.join(" ")
                )?;
            }
            for (advisory, reason) in &plan.held {
                writeln!(out, "held\t{advisory}\t{reason}")?;
            }
            for u in &plan.unavailable {
                writeln!(
                    out,
                    "unavailable\t{}\t{} needs {}, repositories offer {}",
                    u.advisory,
                    u.package,
                    u.fixed_version,
                    u.best_available.as_deref().unwrap_or("nothing")
                )?;
            }
            writeln!(
                out,
                "reboot\t{}",
                if plan.reboot_required {
                    "required"
                } else {
                    "not required"
                }
            )?;
        }
    }
    Ok(())
}
