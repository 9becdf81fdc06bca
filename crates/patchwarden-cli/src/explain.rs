//! `patchwarden explain`: why a CVE or advisory is or is not a finding here — the record, its
//! source and age, the names and versions compared, the verdict, and for findings the priority and
//! due dates.

use std::io::Write;
use std::process::ExitCode;

use clap::Args as ClapArgs;

use patchwarden_findings::Report;
use patchwarden_match::{KnowledgeIndex, Outcome, Verdict};
use patchwarden_store::Store;

use crate::scan::{load_inventory, options, with_report, Target};

#[derive(ClapArgs)]
pub struct ExplainArgs {
    /// A CVE id or an advisory id (`CVE-2023-4911`, `DSA-5514-1`, `ALSA-2023:5453`).
    pub id: String,
    #[command(flatten)]
    pub target: Target,
    /// Only this installed package.
    #[arg(long)]
    pub package: Option<String>,
}

/// Why a verdict came out as it did, in words.
fn reason(v: &Verdict<'_>) -> String {
    use patchwarden_match::FindingState as F;
    use patchwarden_match::NotAFinding as N;
    let fixed = v.fixed_version.unwrap_or("-");
    match v.outcome {
        Outcome::Finding(F::FixAvailable) => format!(
            "FINDING: {} {} < fixed {fixed} ({} ordering)",
            v.matched_name, v.compared_version, v.scheme
        ),
        Outcome::Finding(F::FixRequiresSubscription) => format!(
            "FINDING: {} {} < fixed {fixed} ({} ordering), a fix that requires Ubuntu Pro (stream {}): this host does not receive it",
            v.matched_name,
            v.compared_version,
            v.scheme,
            v.stream.unwrap_or("pro")
        ),
        Outcome::Finding(F::NoFixYet) => "FINDING: affected, no fix published yet".into(),
        Outcome::Finding(F::WillNotFix) => {
            "FINDING: affected, the distribution will not fix it".into()
        }
        Outcome::Finding(F::PendingReboot) => format!(
            "FINDING (pending reboot): the running kernel {} is affected; a kernel >= {fixed} is installed but not running",
            v.installed_version
        ),
        Outcome::Finding(F::InstalledNotRunning) => format!(
            "FINDING (installed, not running): kernel {} is affected but is not the running kernel",
            v.installed_version
        ),
        Outcome::Finding(F::Eol) => "FINDING: end of life".into(),
        Outcome::NotAFinding(N::FixedVersionInstalled) => format!(
            "not a finding: {} {} >= fixed {fixed} ({} ordering)",
            v.matched_name, v.compared_version, v.scheme
        ),
        Outcome::NotAFinding(N::KernelNotRunningFixed) => format!(
            "not a finding: kernel {} is fixed (>= {fixed}) and not running",
            v.installed_version
        ),
        Outcome::NotAFinding(N::DistributionSaysNotAffected) => {
            "not a finding: the distribution says this package is not affected in this release".into()
        }
        Outcome::NotAFinding(N::BeforeIntroduced) => {
            "not a finding: the installed version predates the affected range".into()
        }
        Outcome::NotAFinding(N::AfterLastAffected) => {
            "not a finding: the installed version is after the last affected one".into()
        }
        Outcome::NotAFinding(N::Withdrawn) => "not a finding: the advisory was withdrawn".into(),
        Outcome::NotAFinding(N::Rejected) => {
            "not a finding: every CVE of the advisory is rejected in NVD".into()
        }
        Outcome::NotAFinding(N::OtherStream) => format!(
            "not a finding: the entry is for the {} stream, which this host does not receive",
            v.stream.unwrap_or("?")
        ),
        Outcome::NotAFinding(N::OtherModuleStream) => format!(
            "not a finding: module build {fixed} does not apply to {} (module stream mismatch)",
            v.installed_version
        ),
        Outcome::NotAFinding(N::Undetermined) => {
            "not a finding (yet): the distribution has not triaged this package".into()
        }
    }
}

pub async fn explain(store: &Store, args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.target)?;
    let options = options(&args.target, false)?;
    let id = args.id.trim().to_owned();
    // What the knowledge base says of the id itself, read before the report is built.
    let mut preface = Vec::new();
    if id.starts_with("CVE-") {
        match store.cve(&id).await? {
            Some(c) => {
                let best = c.best_metric();
                preface.push(format!(
                    "NVD: {}{}; best CVSS {}",
                    c.status.as_deref().unwrap_or("no status"),
                    if c.rejected { " (REJECTED)" } else { "" },
                    best.map(|m| format!(
                        "{} {} {}",
                        m.version,
                        m.computed_score.unwrap_or(0.0),
                        m.vector
                    ))
                    .unwrap_or_else(|| "none".into())
                ));
            }
            None => preface.push("NVD: no record in the knowledge base".into()),
        }
        if let Some(k) = store.kev(&id).await? {
            preface.push(format!(
                "CISA KEV: added {}, due {}{}",
                k.date_added,
                k.due_date,
                if k.known_ransomware_use {
                    ", known ransomware use"
                } else {
                    ""
                }
            ));
        }
        if let Some(e) = store.epss(&id).await? {
            preface.push(format!("EPSS: {} (percentile {})", e.score, e.percentile));
        }
    }
    let elsewhere: Vec<String> = store
        .advisories_for_cve(&id)
        .await?
        .iter()
        .map(|a| format!("{} ({})", a.id, a.source.as_str()))
        .collect();
    let package = args.package.clone();
    with_report(store, &inv, &options, |report, verdicts, index| {
        write_explanation(
            report,
            verdicts,
            index,
            &id,
            package.as_deref(),
            &preface,
            &elsewhere,
        )
    })
    .await??;
    Ok(ExitCode::SUCCESS)
}

fn write_explanation(
    report: &Report<'_>,
    verdicts: &[Verdict<'_>],
    index: &KnowledgeIndex,
    id: &str,
    package: Option<&str>,
    preface: &[String],
    elsewhere: &[String],
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let host = report.host.os.as_deref().unwrap_or("unknown OS");
    writeln!(
        out,
        "{id} on {} ({host})",
        report.host.hostname.as_deref().unwrap_or(&report.host.root)
    )?;
    for line in preface {
        writeln!(out, "{line}")?;
    }
    let relevant: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| {
            let a = index.advisory(v.advisory);
            (a.id == id || a.cves.iter().any(|c| c == id)) && package.is_none_or(|p| p == v.package)
        })
        .collect();
    // Findings that no advisory verdict carries (the release's end of life, `EOL:debian:12`).
    let own: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.advisory_id == id && f.lifecycle.is_some())
        .collect();
    if relevant.is_empty() && !own.is_empty() {
        for f in own {
            let life = f.lifecycle.as_ref().expect("filtered above");
            writeln!(out)?;
            writeln!(
                out,
                "FINDING ({}): {host} reached the end of its standard support on {}{} (dates: {})",
                f.state.as_str(),
                life.eol,
                life.extended_until
                    .as_deref()
                    .map(|d| format!("; extended support runs until {d}"))
                    .unwrap_or_default(),
                life.source
            )?;
            let due: Vec<String> = f
                .due
                .values()
                .map(|d| {
                    format!(
                        "{} {}{}",
                        d.framework,
                        d.date,
                        if d.overdue { " OVERDUE" } else { "" }
                    )
                })
                .collect();
            if !due.is_empty() {
                writeln!(out, "  due: {}", due.join(", "))?;
            }
            writeln!(
                out,
                "  severity {}, risk {:.1}",
                f.severity.as_str(),
                f.risk
            )?;
        }
        return Ok(());
    }
    if relevant.is_empty() {
        writeln!(
            out,
            "No installed package is named by {id} in the knowledge base for {host}: not a finding.{}",
            if elsewhere.is_empty() {
                String::new()
            } else {
                format!(
                    " Advisories naming it (for packages not installed here, or other releases): {}",
                    elsewhere.join(", ")
                )
            }
        )?;
        return Ok(());
    }
    for v in relevant {
        let a = index.advisory(v.advisory);
        writeln!(out)?;
        writeln!(
            out,
            "{} {} ({}) — advisory {} [{} via {}]",
            v.package,
            v.installed_version,
            v.arch,
            a.id,
            a.source.as_str(),
            a.feed
        )?;
        writeln!(
            out,
            "  looked up as {} package '{}' version {}{}",
            match v.key_kind {
                patchwarden_model::PackageKeyKind::Source => "source",
                patchwarden_model::PackageKeyKind::Binary => "binary",
            },
            v.matched_name,
            v.compared_version,
            v.stream
                .map(|s| format!(", stream {s}"))
                .unwrap_or_default()
        )?;
        writeln!(out, "  {}", reason(v))?;
        if let Some(note) = v.note {
            writeln!(out, "  note: {note}")?;
        }
        let age = report
            .knowledge
            .iter()
            .find(|f| f.feed == a.feed)
            .map(|f| {
                format!(
                    "{}{}",
                    f.age_days
                        .map(|d| format!("{d} days old"))
                        .unwrap_or_else(|| "age unknown".into()),
                    if f.stale { ", STALE" } else { "" }
                )
            })
            .unwrap_or_else(|| "feed state unknown".into());
        writeln!(
            out,
            "  data: {} fetched {} ({age}), sha256 {}",
            a.provenance.origin, a.provenance.fetched_at, a.provenance.sha256
        )?;
        if let Some(f) = report.findings.iter().find(|f| {
            f.package == v.package
                && f.advisory_id == a.id.as_str()
                && f.installed_version == v.installed_version
        }) {
            let due: Vec<String> = f
                .due
                .values()
                .map(|d| {
                    format!(
                        "{} {} ({}){}",
                        d.framework,
                        d.date,
                        d.basis,
                        if d.overdue { " OVERDUE" } else { "" }
                    )
                })
                .collect();
            writeln!(
                out,
                "  published {}; first seen here {}",
                f.facts.published.as_deref().unwrap_or("-"),
                f.first_seen.unwrap_or("-")
            )?;
            writeln!(
                out,
                "  priority: {} severity, risk {}, SSVC {}, KEV {}, EPSS {}",
                f.severity.as_str(),
                f.risk,
                f.ssvc.as_ref().map(|s| s.decision.as_str()).unwrap_or("-"),
                if f.facts.kev { "yes" } else { "no" },
                f.facts
                    .epss
                    .as_ref()
                    .map(|e| e.score.to_string())
                    .unwrap_or_else(|| "-".into())
            )?;
            if !due.is_empty() {
                writeln!(out, "  due: {}", due.join("; "))?;
            }
        }
    }
    Ok(())
}
