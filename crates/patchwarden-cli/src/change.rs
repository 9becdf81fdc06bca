//! `patchwarden change …` and `patchwarden rollout …`: change requests and their rollouts on the
//! server (`--server`, `--token`, `--ca`). The server decides everything (roles, separation of
//! duties, the lifecycle, windows); these commands send what the operator asks and print the answer.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};

use crate::fleet::{write_listing, Client, OutputFormat, ServerConnection};

#[derive(Subcommand)]
pub enum ChangeCommand {
    /// Create a change request (in draft) from exact package versions (a plan's targets).
    Create {
        #[arg(long)]
        title: String,
        #[arg(long, value_enum, default_value_t = Kind::Normal)]
        kind: Kind,
        /// A host id (repeatable).
        #[arg(long = "host", required = true)]
        hosts: Vec<i64>,
        /// `name=version` or `name:arch=version` (repeatable).
        #[arg(long = "package", required = true)]
        packages: Vec<String>,
        /// The rollout (JSON or TOML file: waves, error_threshold, soak_secs, host_timeout_secs,
        /// roll_back_failed_hosts); the server's default otherwise.
        #[arg(long)]
        rollout: Option<PathBuf>,
        /// Start no earlier than this (RFC 3339).
        #[arg(long)]
        not_before: Option<String>,
    },
    /// Change requests, newest first.
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// One change: state, audit trail, rollout, and per host what was installed and verified.
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// A lifecycle step: submit, approve, reject, schedule, start, complete, fail, roll-back,
    /// cancel (the server refuses what the caller's role or the state does not allow).
    Act {
        #[arg(value_enum)]
        action: Action,
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Nothing new starts until resumed (hosts running finish).
    Pause {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    Resume {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Stop for good: hosts not started are skipped, the change is cancelled.
    Cancel {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Standard,
    Normal,
    Emergency,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Action {
    Submit,
    Approve,
    Reject,
    Schedule,
    Start,
    Complete,
    Fail,
    RollBack,
    Cancel,
}

fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .expect("no skipped values")
        .get_name()
        .replace('-', "_")
}

/// `name=version` or `name:arch=version`.
fn package_target(text: &str) -> anyhow::Result<serde_json::Value> {
    let Some((name, version)) = text.split_once('=') else {
        bail!("--package {text:?}: expected name=version");
    };
    let (name, arch) = match name.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (name, None),
    };
    if name.is_empty() || version.is_empty() {
        bail!("--package {text:?}: expected name=version");
    }
    let mut target = serde_json::json!({"name": name, "version": version});
    if let Some(a) = arch {
        target["arch"] = a.into();
    }
    Ok(target)
}

fn rollout_file(path: &PathBuf) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "toml") {
        let value: toml::Value =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        Ok(serde_json::to_value(value)?)
    } else {
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
    }
}

pub async fn change(c: &ServerConnection, command: &ChangeCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(c)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match command {
        ChangeCommand::Create {
            title,
            kind,
            hosts,
            packages,
            rollout,
            not_before,
        } => {
            let mut body = serde_json::json!({
                "title": title,
                "kind": value_name(*kind),
                "hosts": hosts,
                "packages": packages.iter().map(|p| package_target(p)).collect::<anyhow::Result<Vec<_>>>()?,
            });
            if let Some(path) = rollout {
                body["rollout"] = rollout_file(path)?;
            }
            if let Some(t) = not_before {
                body["not_before"] = t.clone().into();
            }
            let created: serde_json::Value = client.post("/v1/changes", &body).await?;
            writeln!(out, "{}", created["id"].as_str().unwrap_or("?"))?;
        }
        ChangeCommand::List { format } => {
            let changes: Vec<serde_json::Value> = client.get("/v1/changes").await?;
            let header = [
                "id",
                "state",
                "kind",
                "title",
                "hosts",
                "rollout",
                "requested_by",
                "updated_at",
            ];
            write_listing(&mut out, *format, &changes, &header, |c| {
                header
                    .iter()
                    .map(|k| match &c[*k] {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    })
                    .collect()
            })?;
        }
        ChangeCommand::Show { id, format } => {
            let doc: serde_json::Value = client.get(&format!("/v1/changes/{id}")).await?;
            if *format == OutputFormat::Json {
                serde_json::to_writer_pretty(&mut out, &doc)?;
                writeln!(out)?;
            } else {
                write_change(&mut out, &doc)?;
            }
        }
        ChangeCommand::Act {
            action,
            id,
            comment,
        } => {
            let body = serde_json::json!({"action": value_name(*action), "comment": comment});
            let doc: serde_json::Value = client
                .post(&format!("/v1/changes/{id}/actions"), &body)
                .await?;
            writeln!(
                out,
                "{id}: {}",
                doc["lifecycle"]["state"].as_str().unwrap_or("?")
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub async fn rollout(c: &ServerConnection, command: &RolloutCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(c)?;
    let (action, id, comment) = match command {
        RolloutCommand::Pause { id, comment } => ("pause", id, comment),
        RolloutCommand::Resume { id, comment } => ("resume", id, comment),
        RolloutCommand::Cancel { id, comment } => ("cancel", id, comment),
    };
    let body = serde_json::json!({"action": action, "comment": comment});
    let doc: serde_json::Value = client
        .post(&format!("/v1/changes/{id}/rollout"), &body)
        .await?;
    println!(
        "{id}: rollout {}, change {}",
        doc["rollout"]["status"]["status"].as_str().unwrap_or("?"),
        doc["lifecycle"]["state"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

/// A change for people: the header, the audit trail, then one line per host.
fn write_change(out: &mut impl Write, doc: &serde_json::Value) -> anyhow::Result<()> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    writeln!(out, "{}  {}", s(&doc["id"]), s(&doc["title"]))?;
    writeln!(
        out,
        "{} change, {}; requested by {}; rollout {}",
        s(&doc["lifecycle"]["kind"]),
        s(&doc["lifecycle"]["state"]),
        s(&doc["lifecycle"]["requested_by"]),
        doc["rollout"]["status"]["status"]
            .as_str()
            .unwrap_or("not started")
    )?;
    for e in doc["lifecycle"]["audit"].as_array().into_iter().flatten() {
        let actor = e["actor"]["User"]["name"]
            .as_str()
            .or(e["actor"]["System"]["component"].as_str())
            .unwrap_or("?");
        writeln!(
            out,
            "  {}  {actor}: {} -> {}  {}",
            s(&e["at"]),
            s(&e["from"]),
            s(&e["to"]),
            s(&e["comment"])
        )?;
    }
    writeln!(out, "host\tstate\tinstalled\tclosed\tremaining\treason")?;
    for r in doc["result"].as_array().into_iter().flatten() {
        let list = |v: &serde_json::Value| -> String {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("{}={}", s(&x["name"]), s(&x["version"])))
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let v = &r["verification"];
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            r["host_id"],
            r["state"].as_str().unwrap_or("-"),
            list(&v["installed"]),
            list(&v["closed"]),
            list(&v["remaining"]),
            s(&r["reason"])
        )?;
    }
    Ok(())
}
