//! Fleet queries as a client of a server: `hosts`, `host`, `findings`, `affected`, `summary`.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use patchwarden_model::fleet::{AffectedHost, FleetSummary, HostFinding, HostSummary};

use crate::client::{encode, printable, write_listing, Client, OutputFormat, ServerConnection};

#[derive(Subcommand)]
pub enum QueryCommand {
    /// Hosts, with their OS, labels, last check-in and open findings.
    Hosts {
        #[arg(long)]
        os: Option<String>,
        /// `key=value` (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long)]
        group: Option<String>,
        /// Only stale hosts.
        #[arg(long)]
        stale: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// One host and its findings.
    Host {
        id: i64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Findings across the fleet, riskiest first.
    Findings {
        /// This severity and above.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        kev: bool,
        #[arg(long)]
        overdue: bool,
        /// Only this state (fix_available, fix_requires_subscription, no_fix_yet, will_not_fix,
        /// pending_reboot, installed_not_running, eol).
        #[arg(long)]
        state: Option<String>,
        /// Only findings due within this many days (overdue ones included).
        #[arg(long)]
        due_within_days: Option<i64>,
        /// Only hosts carrying this label (`key=value`).
        #[arg(long)]
        label: Option<String>,
        /// Only hosts of this group.
        #[arg(long)]
        group: Option<String>,
        /// Skip this many findings (the next page).
        #[arg(long)]
        offset: Option<u64>,
        /// At most this many (the server's default is 1,000, its maximum 10,000).
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Which hosts a CVE affects, and in which state.
    Affected {
        cve: String,
        /// Skip this many rows (the next page).
        #[arg(long)]
        offset: Option<u64>,
        /// At most this many rows (1 to 10,000; all of them when absent).
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// The fleet at a glance, with the expected hosts that never enrolled.
    Summary {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

/// A listing's page as query parameters.
fn page_params(params: &mut Vec<String>, offset: Option<u64>, limit: Option<i64>) {
    if let Some(o) = offset {
        params.push(format!("offset={o}"));
    }
    if let Some(l) = limit {
        params.push(format!("limit={l}"));
    }
}

pub async fn query(c: &ServerConnection, command: &QueryCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(c)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match command {
        QueryCommand::Hosts {
            os,
            labels,
            group,
            stale,
            format,
        } => {
            let mut params = Vec::new();
            if let Some(os) = os {
                params.push(format!("os={}", encode(os)));
            }
            if !labels.is_empty() {
                params.push(format!("label={}", encode(&labels.join(","))));
            }
            if let Some(g) = group {
                params.push(format!("group={}", encode(g)));
            }
            if *stale {
                params.push("stale=true".into());
            }
            let hosts: Vec<HostSummary> = client
                .get(&format!("/v1/hosts?{}", params.join("&")))
                .await?;
            write_hosts(&mut out, &hosts, *format)?;
        }
        QueryCommand::Host { id, format } => {
            let host: HostSummary = client.get(&format!("/v1/hosts/{id}")).await?;
            let findings: Vec<HostFinding> =
                client.get(&format!("/v1/hosts/{id}/findings")).await?;
            if *format == OutputFormat::Json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({"host": host, "findings": findings.iter().map(|f| &f.finding).collect::<Vec<_>>()}),
                )?;
                writeln!(out)?;
            } else {
                write_hosts(&mut out, std::slice::from_ref(&host), *format)?;
                writeln!(out)?;
                write_findings(&mut out, &findings, *format)?;
                // Named after the findings, on stderr: packages no advisory could be judged
                // against (the listing on stdout keeps its shape for scripts).
                for u in &host.unparsable_versions {
                    eprintln!(
                        "warning: {} {} {:?} does not parse ({}): not judged against any advisory",
                        printable(&u.package),
                        u.field,
                        u.version,
                        printable(&u.reason)
                    );
                }
            }
        }
        QueryCommand::Findings {
            severity,
            kev,
            overdue,
            state,
            due_within_days,
            label,
            group,
            offset,
            limit,
            format,
        } => {
            let mut params = Vec::new();
            for (name, value) in [("state", state), ("label", label), ("group", group)] {
                if let Some(v) = value {
                    params.push(format!("{name}={}", encode(v)));
                }
            }
            if let Some(d) = due_within_days {
                params.push(format!("due_within_days={d}"));
            }
            page_params(&mut params, *offset, *limit);
            if let Some(s) = severity {
                params.push(format!("severity={}", encode(s)));
            }
            if *kev {
                params.push("kev=true".into());
            }
            if *overdue {
                params.push("overdue=true".into());
            }
            let findings: Vec<HostFinding> = client
                .get(&format!("/v1/findings?{}", params.join("&")))
                .await?;
            write_findings(&mut out, &findings, *format)?;
        }
        QueryCommand::Affected {
            cve,
            offset,
            limit,
            format,
        } => {
            let mut params = Vec::new();
            page_params(&mut params, *offset, *limit);
            let hosts: Vec<AffectedHost> = client
                .get(&format!(
                    "/v1/cves/{}/hosts?{}",
                    encode(cve),
                    params.join("&")
                ))
                .await?;
            let header = ["host_id", "hostname", "package", "advisory_id", "state"];
            write_listing(&mut out, *format, &hosts, &header, |h| {
                vec![
                    h.host_id.to_string(),
                    h.hostname.clone(),
                    h.package.clone(),
                    h.advisory_id.clone(),
                    h.state.as_str().to_owned(),
                ]
            })?;
        }
        QueryCommand::Summary { format } => {
            let summary: FleetSummary = client.get("/v1/summary").await?;
            if *format == OutputFormat::Json {
                serde_json::to_writer_pretty(&mut out, &summary)?;
                writeln!(out)?;
            } else {
                writeln!(out, "hosts\t{}", summary.hosts)?;
                writeln!(out, "stale\t{}", summary.stale_hosts)?;
                writeln!(out, "revoked\t{}", summary.revoked_hosts)?;
                for (os, n) in &summary.by_os {
                    writeln!(out, "os {os}\t{n}")?;
                }
                for (k, n) in &summary.findings {
                    writeln!(out, "findings {k}\t{n}")?;
                }
                writeln!(out, "never enrolled\t{}", summary.never_enrolled.join(" "))?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_hosts(
    out: &mut impl Write,
    hosts: &[HostSummary],
    format: OutputFormat,
) -> anyhow::Result<()> {
    let header = [
        "id",
        "hostname",
        "os",
        "packages",
        "findings",
        "critical",
        "high",
        "kev",
        "last_seen",
        "stale",
        "labels",
    ];
    write_listing(out, format, hosts, &header, |h| {
        let n = |k: &str| h.findings.get(k).copied().unwrap_or(0).to_string();
        let labels: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        vec![
            h.id.to_string(),
            h.hostname.clone(),
            h.os.clone().unwrap_or_default(),
            h.packages.to_string(),
            n("total"),
            n("critical"),
            n("high"),
            n("kev"),
            h.last_seen.clone(),
            if h.stale {
                "STALE".into()
            } else {
                String::new()
            },
            labels.join(";"),
        ]
    })
}

fn write_findings(
    out: &mut impl Write,
    findings: &[HostFinding],
    format: OutputFormat,
) -> anyhow::Result<()> {
    let header = [
        "hostname",
        "package",
        "installed_version",
        "advisory_id",
        "state",
        "severity",
        "kev",
        "risk",
        "fixed_version",
    ];
    write_listing(out, format, findings, &header, |f| {
        let d = &f.finding;
        vec![
            f.hostname.clone(),
            d.package.clone(),
            d.installed_version.clone(),
            d.advisory_id.clone(),
            d.state.as_str().to_owned(),
            d.severity.as_str().to_owned(),
            d.kev.to_string(),
            serde_json::to_string(&d.risk).unwrap_or_default(),
            d.fixed_version.clone().unwrap_or_default(),
        ]
    })
}
