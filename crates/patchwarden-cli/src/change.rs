//! `patchwarden change …` and `patchwarden rollout …`: change requests and their rollouts on the
//! server (`--server`, `--token`, `--ca`). The server decides everything (roles, separation of
//! duties, the lifecycle, windows); these commands send what the operator asks and print the answer.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use patchwarden_deploy::change::{Actor, ChangeAction, ChangeKind};
use patchwarden_deploy::change_doc::{
    ActionRequest, ChangeDoc, ChangeSummary, ChangeView, NewChange, RolloutAction, RolloutRequest,
};
use patchwarden_deploy::rollout::RolloutSpec;
use patchwarden_model::job::PackageTarget;

use crate::client::{write_listing, Client, OutputFormat, ServerConnection};

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

impl From<Kind> for ChangeKind {
    fn from(k: Kind) -> ChangeKind {
        match k {
            Kind::Standard => ChangeKind::Standard,
            Kind::Normal => ChangeKind::Normal,
            Kind::Emergency => ChangeKind::Emergency,
        }
    }
}

impl From<Action> for ChangeAction {
    fn from(a: Action) -> ChangeAction {
        match a {
            Action::Submit => ChangeAction::Submit,
            Action::Approve => ChangeAction::Approve,
            Action::Reject => ChangeAction::Reject,
            Action::Schedule => ChangeAction::Schedule,
            Action::Start => ChangeAction::Start,
            Action::Complete => ChangeAction::Complete,
            Action::Fail => ChangeAction::Fail,
            Action::RollBack => ChangeAction::RollBack,
            Action::Cancel => ChangeAction::Cancel,
        }
    }
}

/// `name=version` or `name:arch=version`.
fn package_target(text: &str) -> anyhow::Result<PackageTarget> {
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
    Ok(PackageTarget {
        name: name.to_owned(),
        arch: arch.map(str::to_owned),
        version: version.to_owned(),
    })
}

/// A rollout file: TOML (`.toml`) or JSON.
fn rollout_file(path: &PathBuf) -> anyhow::Result<RolloutSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
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
            let body = NewChange {
                title: title.clone(),
                kind: (*kind).into(),
                hosts: hosts.clone(),
                packages: packages
                    .iter()
                    .map(|p| package_target(p))
                    .collect::<anyhow::Result<Vec<_>>>()?,
                rollout: rollout.as_ref().map(rollout_file).transpose()?,
                not_before: not_before
                    .as_deref()
                    .map(|t| {
                        t.parse()
                            .with_context(|| format!("--not-before {t:?}: not an RFC 3339 time"))
                    })
                    .transpose()?,
            };
            let created: ChangeDoc = client.post("/v1/changes", &body).await?;
            writeln!(out, "{}", created.id)?;
        }
        ChangeCommand::List { format } => {
            let changes: Vec<ChangeSummary> = client.get("/v1/changes").await?;
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
                vec![
                    c.id.clone(),
                    c.state.as_str().to_owned(),
                    c.kind.as_str().to_owned(),
                    c.title.clone(),
                    c.hosts.to_string(),
                    c.rollout.clone().unwrap_or_default(),
                    c.requested_by.clone(),
                    c.updated_at.clone(),
                ]
            })?;
        }
        ChangeCommand::Show { id, format } => {
            let view: ChangeView = client.get(&format!("/v1/changes/{id}")).await?;
            if *format == OutputFormat::Json {
                serde_json::to_writer_pretty(&mut out, &view)?;
                writeln!(out)?;
            } else {
                write_change(&mut out, &view)?;
            }
        }
        ChangeCommand::Act {
            action,
            id,
            comment,
        } => {
            let body = ActionRequest {
                action: (*action).into(),
                comment: comment.clone(),
            };
            let doc: ChangeDoc = client
                .post(&format!("/v1/changes/{id}/actions"), &body)
                .await?;
            writeln!(out, "{id}: {}", doc.lifecycle.state.as_str())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub async fn rollout(c: &ServerConnection, command: &RolloutCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(c)?;
    let (action, id, comment) = match command {
        RolloutCommand::Pause { id, comment } => (RolloutAction::Pause, id, comment),
        RolloutCommand::Resume { id, comment } => (RolloutAction::Resume, id, comment),
        RolloutCommand::Cancel { id, comment } => (RolloutAction::Cancel, id, comment),
    };
    let body = RolloutRequest {
        action,
        comment: comment.clone(),
    };
    let doc: ChangeDoc = client
        .post(&format!("/v1/changes/{id}/rollout"), &body)
        .await?;
    println!(
        "{id}: rollout {}, change {}",
        doc.rollout.as_ref().map_or("?", |r| r.status.name()),
        doc.lifecycle.state.as_str()
    );
    Ok(ExitCode::SUCCESS)
}

/// A change for people: the header, the audit trail, then one line per host.
fn write_change(out: &mut impl Write, view: &ChangeView) -> anyhow::Result<()> {
    let doc = &view.change;
    writeln!(out, "{}  {}", doc.id, doc.title)?;
    writeln!(
        out,
        "{} change, {}; requested by {}; rollout {}",
        doc.lifecycle.kind.as_str(),
        doc.lifecycle.state.as_str(),
        doc.lifecycle.requested_by,
        doc.rollout
            .as_ref()
            .map_or("not started", |r| r.status.name())
    )?;
    for e in &doc.lifecycle.audit {
        let actor = match &e.actor {
            Actor::User { name, .. } => name.as_str(),
            Actor::System { component } => component.as_str(),
        };
        writeln!(
            out,
            "  {}  {actor}: {} -> {}  {}",
            e.at,
            e.from.as_str(),
            e.to.as_str(),
            e.comment.as_deref().unwrap_or("")
        )?;
    }
    writeln!(out, "host\tstate\tinstalled\tclosed\tremaining\treason")?;
    for r in &view.result {
        let v = r.verification.clone().unwrap_or_default();
        let installed: Vec<String> = v
            .installed
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            r.host_id,
            r.state.as_deref().unwrap_or("-"),
            installed.join(" "),
            v.closed.join(" "),
            v.remaining.join(" "),
            r.reason.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}
