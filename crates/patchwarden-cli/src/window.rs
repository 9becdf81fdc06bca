//! `patchwarden window check FILE`: a deployment configuration (docs/deployment.md) read and checked, with each window's
//! next openings and whether work of an expected duration may start at a given moment.

use std::path::Path;
use std::process::ExitCode;

use patchwarden_deploy::config::DeployConfig;
use patchwarden_deploy::window::{parse_duration, MaintenanceWindow, StartDecision};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// A deployment configuration: TOML with `[[window]]` tables (docs/deployment.md).
    pub file: std::path::PathBuf,
    /// The moment to judge (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// How many openings to list per window.
    #[arg(long, default_value_t = 3)]
    pub count: usize,
    /// Expected duration of the work (`90m`, `2h`): whether it may start at --at, and only
    /// openings long enough for it.
    #[arg(long)]
    pub expected: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = crate::Format::Table)]
    pub format: crate::Format,
}

/// Reads and checks a deployment configuration (its windows, and everything else in it);
/// errors name the file, the table and the field.
pub fn load(path: &Path) -> anyhow::Result<Vec<MaintenanceWindow>> {
    let config = DeployConfig::load(path).map_err(anyhow::Error::msg)?;
    if config.windows.is_empty() {
        anyhow::bail!("{}: no [[window]] tables", path.display());
    }
    Ok(config.windows)
}

pub fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let windows = load(&args.file)?;
    let at: jiff::Timestamp = match &args.at {
        Some(t) => t
            .parse()
            .map_err(|e| anyhow::anyhow!("--at {t:?}: not an RFC 3339 time ({e})"))?,
        None => jiff::Timestamp::now(),
    };
    let expected = match &args.expected {
        Some(d) => Some(parse_duration(d).map_err(|e| anyhow::anyhow!("--expected: {e}"))?),
        None => None,
    };
    let mut report = Vec::new();
    for w in &windows {
        let need = expected.unwrap_or(jiff::SignedDuration::ZERO);
        let mut openings = Vec::new();
        let mut cursor = at;
        while openings.len() < args.count {
            let Some(o) = w.next_opening(cursor, need) else {
                break;
            };
            cursor = o.start;
            openings
                .push(serde_json::json!({"start": o.start.to_string(), "end": o.end.to_string()}));
        }
        let decision = expected.map(|e| match w.may_start(at, e) {
            StartDecision::Start { closes } => format!("may start (closes {closes})"),
            StartDecision::TooShort { closes, .. } => {
                format!("open but too short: closes {closes}")
            }
            StartDecision::Closed { .. } => "closed".to_owned(),
        });
        report.push(serde_json::json!({
            "window": w.name,
            "groups": w.groups,
            "duration_secs": w.duration().as_secs(),
            "may_start": decision,
            "next_openings": openings,
        }));
    }
    match args.format {
        crate::Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        crate::Format::Table => {
            for r in &report {
                println!(
                    "{} (groups: {})",
                    r["window"].as_str().unwrap_or(""),
                    r["groups"]
                );
                if let Some(d) = r["may_start"].as_str() {
                    println!("  at {at}: {d}");
                }
                for o in r["next_openings"].as_array().into_iter().flatten() {
                    println!(
                        "  {} .. {}",
                        o["start"].as_str().unwrap_or(""),
                        o["end"].as_str().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
