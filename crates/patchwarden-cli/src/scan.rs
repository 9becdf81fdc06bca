//! `patchwarden scan`: one host (this one, a root filesystem or an inventory file) against the
//! local knowledge base, as a table, JSON or CSV; `--refresh` syncs what the host needs first.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, ValueEnum};

use patchwarden_findings::{Report, ScanOptions};
use patchwarden_match::{KnowledgeIndex, Verdict};
use patchwarden_model::Inventory;
use patchwarden_risk::policy::Policy;
use patchwarden_risk::{Asset, Criticality, Severity};
use patchwarden_store::Store;

/// Exit status when a `--fail-on` condition holds (errors exit 1, usage errors 2).
pub const GATE_EXIT: u8 = 3;

#[derive(Clone, Copy, ValueEnum)]
pub enum ScanFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Any finding of critical severity.
    Critical,
    /// Any finding of high or critical severity.
    High,
    /// Any finding whose CVE is in CISA KEV.
    Kev,
    /// Any finding past a due date.
    Overdue,
    /// Any finding at all.
    Any,
}

/// Which system and how to judge it.
#[derive(ClapArgs, Clone)]
pub struct Target {
    /// Root directory of the system to scan (a mounted image, a chroot); `/` is this host.
    #[arg(long, conflicts_with = "inventory")]
    pub root: Option<PathBuf>,
    /// An inventory report (`patchwarden inventory --format json`) instead of a live collection.
    #[arg(long)]
    pub inventory: Option<PathBuf>,
    /// Policy file (TOML) with the frameworks and their remediation windows; the built-in presets
    /// (bod-22-01, pci-dss-4.0, fedramp, internal-sla) otherwise.
    #[arg(long, env = "PATCHWARDEN_POLICY")]
    pub policy: Option<PathBuf>,
    /// How important the host is: low, medium, high, critical.
    #[arg(long, default_value = "medium", env = "PATCHWARDEN_CRITICALITY")]
    pub criticality: String,
    /// The host is reachable from the internet.
    #[arg(long, env = "PATCHWARDEN_INTERNET_FACING")]
    pub internet_facing: bool,
    /// The host receives Ubuntu Pro/ESM updates: `true` or `false` (default: decided from the
    /// host's apt sources — an enabled source on esm.ubuntu.com — else from `+esm` versions).
    #[arg(long)]
    pub ubuntu_pro: Option<bool>,
    /// Feeds older than this many days are flagged stale in the output.
    #[arg(long, default_value_t = 2, env = "PATCHWARDEN_MAX_FEED_AGE_DAYS")]
    pub max_age_days: i64,
    /// Do not record first/last-seen times of findings in the store.
    #[arg(long)]
    pub no_history: bool,
    /// Judge due dates, overdue flags, feed ages and support phases as of this day
    /// (`YYYY-MM-DD`, UTC noon) instead of now — to reproduce what a report said on a past day or
    /// see what a future one will say. Nothing is recorded in the history then.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<String>,
}

/// The real-data snapshot shipped in the repository (`data/snapshot`, made by
/// `scripts/make-snapshot.sh` from `tests/data`).
const DEFAULT_SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/snapshot");

#[derive(ClapArgs)]
pub struct ScanArgs {
    #[command(flatten)]
    pub target: Target,
    /// First bring the knowledge up to date: sync KEV, EPSS and this host's distribution feed; when
    /// none can be reached and the store knows nothing of the release, load the snapshot.
    #[arg(long)]
    pub refresh: bool,
    /// The knowledge-base bundle `--refresh` falls back to when the feeds cannot be reached.
    #[arg(long, env = "PATCHWARDEN_SNAPSHOT", default_value = DEFAULT_SNAPSHOT)]
    pub snapshot: PathBuf,
    #[command(flatten)]
    pub download: crate::feeds::DownloadArgs,
    #[arg(long, value_enum, default_value_t = ScanFormat::Table)]
    pub format: ScanFormat,
    /// Exit with status 3 when a finding meets the condition (repeatable). Judged on the findings
    /// the filters below keep.
    #[arg(long, value_enum)]
    pub fail_on: Vec<FailOn>,
    /// Only findings of these severities (comma-separated: critical,high,medium,low,unknown).
    #[arg(long, value_delimiter = ',')]
    pub severity: Vec<String>,
    /// Only findings in these states (comma-separated: fix_available, fix_requires_subscription,
    /// no_fix_yet, will_not_fix, pending_reboot, installed_not_running, eol).
    #[arg(long, value_delimiter = ',')]
    pub state: Vec<String>,
    /// Leave out findings without a fix (no_fix_yet, will_not_fix).
    #[arg(long)]
    pub ignore_unfixed: bool,
}

/// The reader's filter from `--severity`, `--state` and `--ignore-unfixed`, each value checked.
fn finding_filter(args: &ScanArgs) -> anyhow::Result<patchwarden_findings::FindingFilter> {
    let severities = args
        .severity
        .iter()
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--severity: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let states = args
        .state
        .iter()
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--state: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(patchwarden_findings::FindingFilter {
        severities,
        states,
        ignore_unfixed: args.ignore_unfixed,
    })
}

pub(crate) fn load_inventory(target: &Target) -> anyhow::Result<Inventory> {
    if let Some(path) = &target.inventory {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let inv: Inventory = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a patchwarden inventory report", path.display()))?;
        if inv.schema_version != patchwarden_model::INVENTORY_SCHEMA_VERSION {
            bail!(
                "{}: inventory schema version {} is not supported (this patchwarden reads {})",
                path.display(),
                inv.schema_version,
                patchwarden_model::INVENTORY_SCHEMA_VERSION
            );
        }
        return Ok(inv);
    }
    let root = target.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    Ok(patchwarden_inventory::collect(&root)?)
}

pub(crate) fn options(target: &Target, record_history: bool) -> anyhow::Result<ScanOptions> {
    let policy = Policy::load(target.policy.as_deref())?;
    let criticality: Criticality = target
        .criticality
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--criticality: {e}"))?;
    let as_of = target
        .as_of
        .as_deref()
        .map(|d| {
            d.parse::<jiff::civil::Date>()
                .map(|d| format!("{d}T12:00:00Z"))
                .map_err(|e| anyhow::anyhow!("--as-of {d:?}: not a date (YYYY-MM-DD): {e}"))
        })
        .transpose()?;
    let defaults = ScanOptions::default();
    Ok(ScanOptions {
        asset: Asset {
            criticality,
            internet_facing: target.internet_facing,
        },
        ubuntu_pro: target.ubuntu_pro,
        policy,
        max_feed_age_days: target.max_age_days,
        record_history: record_history && !target.no_history && as_of.is_none(),
        now: as_of.unwrap_or(defaults.now.clone()),
        ..defaults
    })
}

/// [`patchwarden_findings::with_report`], with the phases timed (`PATCHWARDEN_TIMINGS=1`).
pub(crate) async fn with_report<R>(
    store: &Store,
    inv: &Inventory,
    options: &ScanOptions,
    f: impl FnOnce(&Report<'_>, &[Verdict<'_>], &KnowledgeIndex) -> R,
) -> anyhow::Result<R> {
    let mut phases = Phases::new();
    let out =
        patchwarden_findings::with_report(store, inv, options, &mut |phase| phases.done(phase), f)
            .await?;
    phases.done("output");
    Ok(out)
}

/// `PATCHWARDEN_TIMINGS=1` prints how long each phase of a scan took, on stderr.
struct Phases {
    on: bool,
    last: std::time::Instant,
}

impl Phases {
    fn new() -> Phases {
        Phases {
            on: std::env::var_os("PATCHWARDEN_TIMINGS").is_some_and(|v| v == "1"),
            last: std::time::Instant::now(),
        }
    }
    fn done(&mut self, phase: &str) {
        if self.on {
            eprintln!(
                "timing: {phase}: {:.2} ms",
                self.last.elapsed().as_secs_f64() * 1000.0
            );
        }
        self.last = std::time::Instant::now();
    }
}

/// `--refresh`: sync what the host needs; fall back to the shipped snapshot when nothing can be
/// reached and the store knows nothing of the release.
async fn refresh(
    store: &Store,
    inv: &Inventory,
    snapshot: &std::path::Path,
    download: &crate::feeds::DownloadArgs,
) -> anyhow::Result<()> {
    let Some(release) = &inv.os.release else {
        eprintln!("refresh: the OS is not one patchwarden matches; nothing to sync");
        return Ok(());
    };
    let syncer = patchwarden_sync::Syncer::new(download.settings()).map_err(anyhow::Error::msg)?;
    let mut failures = Vec::new();
    let mut updated = 0;
    let specs = patchwarden_sync::feeds_for(release, |k| std::env::var(k).ok());
    for spec in &specs {
        match syncer.sync(store, spec).await {
            patchwarden_sync::SyncOutcome::Failed { reason } => {
                eprintln!("refresh: {}: FAILED: {reason}", spec.feed);
                failures.push(reason);
            }
            outcome => {
                updated += 1;
                eprintln!("refresh: {}: {outcome:?}", spec.feed);
            }
        }
    }
    if updated > 0 {
        return Ok(());
    }
    let distro = release.distro.id();
    if store.has_release(distro, &release.release).await? {
        eprintln!(
            "warning: no feed could be reached; scanning with the knowledge already in the store (see `feeds status` for its age)"
        );
        return Ok(());
    }
    if !patchwarden_sync::bundle::is_bundle(snapshot) {
        anyhow::bail!(
            "no feed could be reached ({}) and there is no snapshot at {}",
            failures
                .first()
                .map(String::as_str)
                .unwrap_or("no feed for this OS"),
            snapshot.display()
        );
    }
    let n = patchwarden_sync::bundle::import(store, snapshot)
        .await
        .map_err(anyhow::Error::msg)?;
    eprintln!(
        "NOTE: the live feeds could not be reached: loaded the real-data snapshot shipped with patchwarden ({}, {n} records, taken from tests/data — see data/README.md). \
         It is small and dated: findings are only as complete as it is. Run `patchwarden feeds sync` where the feeds can be reached.",
        snapshot.display()
    );
    Ok(())
}

pub async fn scan(store: &Store, args: &ScanArgs) -> anyhow::Result<ExitCode> {
    let filter = finding_filter(args)?;
    let mut phases = Phases::new();
    let inv = load_inventory(&args.target)?;
    phases.done("inventory");
    let options = options(&args.target, true)?;
    if args.refresh {
        refresh(store, &inv, &args.snapshot, &args.download).await?;
    }
    let fail_on = args.fail_on.clone();
    let format = args.format;
    // CSV has a due-date column per framework in force, whether or not a finding has a date.
    let frameworks: Vec<String> = options
        .policy
        .frameworks
        .iter()
        .map(|f| f.id.clone())
        .collect();
    with_report(store, &inv, &options, |report, _, _| {
        let mut report = report.clone();
        report.apply(&filter);
        let report = &report;
        print_report(report, format, &frameworks)?;
        // `any` also trips on packages that could not be judged (their versions do not parse).
        let gate = fail_on.iter().any(|cond| {
            (*cond == FailOn::Any && !report.unparsable_versions.is_empty())
                || report.findings.iter().any(|f| match cond {
                    FailOn::Critical => f.severity == Severity::Critical,
                    FailOn::High => f.severity >= Severity::High,
                    FailOn::Kev => f.facts.kev,
                    FailOn::Overdue => f.overdue,
                    FailOn::Any => true,
                })
        });
        Ok(if gate {
            ExitCode::from(GATE_EXIT)
        } else {
            ExitCode::SUCCESS
        })
    })
    .await?
}

fn print_report(
    report: &Report<'_>,
    format: ScanFormat,
    frameworks: &[String],
) -> anyhow::Result<()> {
    // Buffered: stdout is line-buffered, and a report is thousands of lines.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match format {
        ScanFormat::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        ScanFormat::Csv => write_csv(&mut out, report, frameworks)?,
        ScanFormat::Table => write_table(&mut out, report)?,
    }
    out.flush()?;
    if !report.unparsable_versions.is_empty() && !matches!(format, ScanFormat::Table) {
        eprintln!(
            "warning: {}",
            crate::client::printable(&unparsable_line(report))
        );
    }
    if report.summary.no_knowledge_for_release {
        eprintln!(
            "warning: the knowledge base holds no advisories for {}: import or sync its feeds first",
            report.host.os.as_deref().unwrap_or("this OS")
        );
    }
    Ok(())
}

/// Names the installed packages that could not be judged (at most ten, then a count).
fn unparsable_line(report: &Report<'_>) -> String {
    let list = &report.unparsable_versions;
    let named: Vec<String> = list
        .iter()
        .take(10)
        .map(|u| format!("{} {} {:?} ({})", u.package, u.field, u.version, u.reason))
        .collect();
    format!(
        "{} installed package version(s) do not parse and were not judged against any advisory: {}{}",
        list.len(),
        named.join("; "),
        if list.len() > 10 { "; …" } else { "" }
    )
}

/// One line per finding; one `due_<framework>` column per framework in force (empty where the
/// framework gives the finding no date), then `overdue` (past any of them).
fn write_csv(
    out: &mut impl Write,
    report: &Report<'_>,
    frameworks: &[String],
) -> std::io::Result<()> {
    let due_columns: Vec<String> = frameworks
        .iter()
        .map(|f| crate::client::csv(&format!("due_{f}")))
        .collect();
    writeln!(
        out,
        "host,package,installed_version,advisory_id,cves,fixed_version,state,severity,cvss,kev,epss,ssvc,risk,{},overdue",
        due_columns.join(",")
    )?;
    let host = report
        .host
        .hostname
        .clone()
        .unwrap_or_else(|| report.host.root.clone());
    for f in &report.findings {
        let fields = [
            host.clone(),
            f.package.to_owned(),
            f.installed_version.to_owned(),
            f.advisory_id.to_string(),
            f.cves.join(" "),
            f.fixed_version.unwrap_or_default().to_owned(),
            f.state.as_str().to_owned(),
            f.severity.as_str().to_owned(),
            f.facts
                .cvss
                .as_ref()
                .map(|c| c.score.to_string())
                .unwrap_or_default(),
            f.facts.kev.to_string(),
            f.facts
                .epss
                .as_ref()
                .map(|e| e.score.to_string())
                .unwrap_or_default(),
            f.ssvc
                .as_ref()
                .map(|s| s.decision.as_str().to_owned())
                .unwrap_or_default(),
            f.risk.to_string(),
        ];
        let dues = frameworks.iter().map(|id| {
            f.due
                .get(id)
                .map(|d| d.date.to_string())
                .unwrap_or_default()
        });
        let line: Vec<String> = fields
            .into_iter()
            .chain(dues)
            .chain([f.overdue.to_string()])
            .map(|s| crate::client::csv(&s))
            .collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}

fn write_table(out: &mut impl Write, report: &Report<'_>) -> std::io::Result<()> {
    let h = &report.host;
    writeln!(
        out,
        "Host: {} — {} ({} packages){}",
        h.hostname.as_deref().unwrap_or(&h.root),
        h.os.as_deref().unwrap_or("unknown OS"),
        h.packages,
        h.support
            .as_deref()
            .map(|s| format!("; {s}"))
            .unwrap_or_default()
    )?;
    for f in report
        .knowledge
        .iter()
        .filter(|f| f.stale || f.last_error.is_some())
    {
        writeln!(
            out,
            "WARNING: feed {} is {}{}",
            f.feed,
            if f.stale { "STALE" } else { "failing" },
            f.age_days
                .map(|d| format!(" ({d} days old)"))
                .unwrap_or_default()
        )?;
    }
    if !report.unparsable_versions.is_empty() {
        writeln!(
            out,
            "WARNING: {}",
            crate::client::printable(&unparsable_line(report))
        )?;
    }
    for b in &report.knowledge_bundles {
        writeln!(
            out,
            "NOTE: knowledge loaded from the bundle {}: findings are only as complete and as recent as it is",
            crate::client::printable(b)
        )?;
    }
    let s = &report.summary;
    let bands: Vec<String> = s
        .by_severity
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    writeln!(
        out,
        "{} findings ({}); {} in KEV; {} overdue{}",
        s.findings,
        bands.join(", "),
        s.kev,
        s.overdue,
        report
            .filtered_out
            .map(|n| format!(" ({n} more left out by --severity, --state or --ignore-unfixed)"))
            .unwrap_or_default()
    )?;
    if report.findings.is_empty() {
        return Ok(());
    }
    // By state, so that what can be fixed now stands apart from what needs a subscription
    // (Ubuntu Pro) or has no fix at all.
    let states: Vec<String> = s
        .by_state
        .iter()
        .map(|(k, v)| match *k {
            "fix_requires_subscription" => format!("{k} {v} (Ubuntu Pro)"),
            _ => format!("{k} {v}"),
        })
        .collect();
    writeln!(out, "By state: {}", states.join(", "))?;
    writeln!(
        out,
        "{:>5}  {:<8}  {:<6}  {:<3}  {:<28} {:<26} {:<26} {:<20} {:<16} NEXT DUE",
        "RISK", "SEVERITY", "SSVC", "KEV", "PACKAGE", "INSTALLED", "FIXED", "ADVISORY", "STATE"
    )?;
    for f in &report.findings {
        let next = f
            .due
            .values()
            .min_by(|a, b| a.date.cmp(&b.date))
            .map(|d| {
                format!(
                    "{} {}{}",
                    d.date,
                    d.framework,
                    if d.overdue { " OVERDUE" } else { "" }
                )
            })
            .unwrap_or_default();
        writeln!(
            out,
            "{:>5.1}  {:<8}  {:<6}  {:<3}  {:<28} {:<26} {:<26} {:<20} {:<16} {}",
            f.risk,
            f.severity.as_str(),
            f.ssvc.as_ref().map(|s| s.decision.as_str()).unwrap_or("-"),
            if f.facts.kev { "yes" } else { "" },
            f.package,
            f.installed_version,
            f.fixed_version.unwrap_or("-"),
            f.advisory_id,
            f.state.as_str(),
            next
        )?;
    }
    Ok(())
}
