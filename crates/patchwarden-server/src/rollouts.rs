//! The rollout driver: one task per server that moves active changes along.
//!
//! Every `rollout_tick` (and at once when a job report or new findings arrive) it reads the changes
//! marked active in the store and, for each:
//! - decides a *standard* change's approval class again from the labels of the hosts still to
//!   start (a relabel into a manual-approval class sends it back for approval, its rollout
//!   paused; approved and scheduled again, the rollout resumes where it stopped);
//! - schedules an approved *standard* change (the policy approved it; actor `policy`);
//! - starts a scheduled change once its `not_before` has passed: plans the rollout (the change's
//!   own waves or the configuration's default, an emergency's soak shortened) over the hosts with
//!   their classes (actor `rollout`);
//! - follows the hosts running: a failed job fails the host with the job's reason; a succeeded
//!   install is verified as soon as the host's next inventory and its findings are stored (the
//!   targeted findings closed or pending a reboot, exactly the change's versions installed),
//!   else the host fails with what remains; a finished rollback job ends the host's rollback;
//! - follows the lifecycle: a cancelled change cancels its rollout, a rolled-back change rolls
//!   every host back;
//! - ticks the rollout (windows decide which hosts may start: [`DeployConfig::may_start`]) and
//!   queues the jobs it asks for — install jobs with the host profile's hooks and health checks,
//!   rollback jobs to the recorded versions — in the same transaction that stores the new rollout
//!   state, over the version it read: two servers driving one change never both queue a job;
//! - ends the change: completed when the rollout completed, failed (with the reasons) when it was
//!   halted or cancelled, once no host is still running or rolling back.
//!
//! Nothing lives in memory between ticks: a restarted server (or another one) resumes from the
//! stored document.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use patchwarden_deploy::change::{Actor, ChangeAction, ChangeKind, ChangeState, TransitionRefused};
use patchwarden_deploy::change_doc::{ChangeDoc, RunJob, RunJobState};
use patchwarden_deploy::config::host_classes;
use patchwarden_deploy::rollout::{
    Command, HostOutcome, HostState, Rollout, RolloutHost, RolloutStatus,
};
use patchwarden_deploy::verify::{verify, versions_reached};
use patchwarden_model::job::{JobOperation, JobReport, JobState, PackageJob};
use patchwarden_store::change_requests::{ChangeRow, ChangeUpdate};
use patchwarden_store::jobs::NewJob;
use patchwarden_store::{Store, StoreError};

use crate::documents::{host_findings, DocumentError};
use crate::job_board::JobBoard;
use crate::{Metrics, ServerConfig};
use patchwarden_model::audit::{Actor as AuditActor, AuditEvent};

/// The driver: its own store handle, the configuration (policy, windows, profiles), metrics, the
/// job board it marks when it queues jobs, and the signal that wakes it.
#[derive(Clone)]
pub struct RolloutDriver {
    pub store: Store,
    pub view: crate::findings_view::FindingsView,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    pub job_board: Arc<JobBoard>,
    pub wake: Arc<tokio::sync::Notify>,
    /// Records the jobs it queues and the transitions it makes.
    pub audit: crate::audit::AuditLog,
    /// Signs the jobs it queues.
    pub signer: crate::job_signer::JobSigner,
}

impl RolloutDriver {
    /// The driver of a server: its handles, taken from the server's state.
    pub fn of(state: &crate::state::AppState) -> RolloutDriver {
        RolloutDriver {
            store: state.store.clone(),
            view: state.view.clone(),
            config: state.config.clone(),
            metrics: state.metrics.clone(),
            job_board: state.job_board.clone(),
            wake: state.rollout_wake.clone(),
            audit: state.audit.clone(),
            signer: state.job_signer.clone(),
        }
    }
}

/// Why one change could not be driven this pass (it is tried again on the next).
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Document(#[from] DocumentError),
    #[error("the stored change does not parse: {0}")]
    Change(serde_json::Error),
    #[error("{0}")]
    Transition(#[from] TransitionRefused),
}

/// What a host's current job says, as far as the driver can tell now.
enum JobResult {
    /// Not finished (or verification still waits for the host's new inventory).
    Waiting,
    Outcome(HostOutcome),
}

impl RolloutDriver {
    /// Drives active changes every `every`, and whenever woken.
    pub fn start(self, every: Duration) {
        tokio::spawn(async move {
            loop {
                self.drive_changes().await;
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = self.wake.notified() => {}
                }
            }
        });
    }

    /// One pass over the active changes; errors are logged and retried on the next pass.
    pub async fn drive_changes(&self) {
        let rows = match self.store.active_changes().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(target: "patchwarden::rollout", error = %e, "reading active changes");
                return;
            }
        };
        for row in rows {
            let id = row.id.clone();
            if let Err(e) = self.drive_change(row).await {
                tracing::error!(target: "patchwarden::rollout", change = %id, error = %e, "driving the change");
            }
        }
    }

    async fn drive_change(&self, row: ChangeRow) -> Result<(), DriverError> {
        let mut doc: ChangeDoc = serde_json::from_str(&row.doc).map_err(DriverError::Change)?;
        let state_before = doc.lifecycle.state;
        let events_before = doc.events.len();
        let now = Timestamp::now();
        let at = patchwarden_model::now_rfc3339();
        let deploy = &self.config.deploy;
        let policy = &deploy.policy;
        let mut jobs: Vec<(i64, PackageJob)> = Vec::new();
        let mut withdraw: Vec<String> = Vec::new();

        // A standard change's approval class, decided again before any host starts: the labels
        // of the hosts still to start, now (a relabel sends the change back for approval).
        let mut escalated = None;
        if doc.lifecycle.kind == ChangeKind::Standard
            && matches!(
                doc.lifecycle.state,
                ChangeState::Approved | ChangeState::Scheduled | ChangeState::Running
            )
        {
            let to_start: Vec<i64> = match &doc.rollout {
                Some(r) => r
                    .hosts
                    .iter()
                    .filter(|(_, s)| matches!(s, HostState::Pending))
                    .map(|(id, _)| *id)
                    .collect(),
                None => doc.hosts.clone(),
            };
            let classes: Vec<String> = self
                .classes_of(&to_start)
                .await?
                .into_values()
                .flatten()
                .collect();
            if let Some(reason) = doc.lifecycle.reclassify(policy, &classes, &at) {
                if let Some(rollout) = doc.rollout.as_mut() {
                    rollout.pause();
                }
                doc.event(&at, "policy", reason.clone());
                escalated = Some(reason);
            }
        }
        let kind = doc.lifecycle.kind;

        // The lifecycle's own steps.
        match doc.lifecycle.state {
            ChangeState::Approved if kind == ChangeKind::Standard => {
                let _ = doc.lifecycle.apply(
                    policy,
                    &Actor::system("policy"),
                    ChangeAction::Schedule,
                    Some("standard change: pre-approved and scheduled by policy"),
                    &at,
                );
            }
            // Sent back for approval while running, approved and scheduled again: the rollout
            // goes on where it stopped.
            ChangeState::Scheduled
                if doc.rollout.is_some() && doc.not_before.is_none_or(|t| now >= t) =>
            {
                doc.lifecycle.apply(
                    policy,
                    &Actor::system("rollout"),
                    ChangeAction::Start,
                    Some("approved again: the rollout resumes where it stopped"),
                    &at,
                )?;
                if let Some(rollout) = doc.rollout.as_mut() {
                    rollout.resume();
                }
            }
            ChangeState::Scheduled if doc.not_before.is_none_or(|t| now >= t) => {
                let classes = self.classes_of(&doc.hosts).await?;
                let hosts: Vec<RolloutHost> = doc
                    .hosts
                    .iter()
                    .map(|id| RolloutHost {
                        id: *id,
                        classes: classes.get(id).cloned().unwrap_or_default(),
                    })
                    .collect();
                let spec = deploy.rollout_for(kind, doc.rollout_spec.clone());
                let system = Actor::system("rollout");
                match Rollout::plan(&spec, &hosts) {
                    Ok(rollout) => {
                        let waves: Vec<String> = rollout
                            .waves
                            .iter()
                            .map(|w| format!("{} ({} hosts)", w.name, w.hosts.len()))
                            .collect();
                        let comment = format!("waves: {}", waves.join(", "));
                        doc.lifecycle.apply(
                            policy,
                            &system,
                            ChangeAction::Start,
                            Some(&comment),
                            &at,
                        )?;
                        doc.rollout = Some(rollout);
                    }
                    Err(e) => {
                        let comment = format!("the rollout cannot be planned: {e}");
                        doc.lifecycle.apply(
                            policy,
                            &system,
                            ChangeAction::Fail,
                            Some(&comment),
                            &at,
                        )?;
                    }
                }
            }
            _ => {}
        }

        if let Some(mut rollout) = doc.rollout.take() {
            match doc.lifecycle.state {
                ChangeState::Cancelled | ChangeState::Rejected if rollout.cancel() => doc.event(
                    &at,
                    "rollout",
                    format!("cancelled: the change was {}", doc.lifecycle.state.as_str()),
                ),
                ChangeState::RolledBack if rollout.roll_back_all() => doc.event(
                    &at,
                    "rollout",
                    "the whole change is rolled back: every host that ran returns to its recorded versions".into(),
                ),
                _ => {}
            }
            // What the running hosts' jobs came back with.
            let busy: Vec<i64> = rollout
                .hosts
                .iter()
                .filter(|(_, s)| {
                    matches!(s, HostState::Running { .. } | HostState::RollingBack { .. })
                })
                .map(|(id, _)| *id)
                .collect();
            for host in &busy {
                if let JobResult::Outcome(outcome) = self.job_result(&mut doc, *host).await? {
                    // Successes are in the host's run and state; the events keep what went wrong
                    // (a change of 10,000 hosts keeps its document small).
                    let what = match &outcome {
                        HostOutcome::Succeeded => None,
                        HostOutcome::Failed { reason } => Some(format!("failed: {reason}")),
                        HostOutcome::RolledBack { reason: None } => Some("rolled back".to_owned()),
                        HostOutcome::RolledBack { reason: Some(r) } => {
                            Some(format!("rollback failed: {r}"))
                        }
                    };
                    if rollout.report(*host, outcome, now) {
                        if let Some(what) = what {
                            doc.event(&at, "rollout", format!("host {host} {what}"));
                        }
                    }
                }
            }
            // Which hosts may start now: their windows.
            let classes = self.classes_of(&doc.hosts).await?;
            let before = rollout.status.clone();
            let commands = rollout.tick(now, &|id| {
                classes
                    .get(&id)
                    .is_some_and(|c| deploy.may_start(c, kind, now))
            });
            if rollout.status != before {
                let status = serde_json::to_value(&rollout.status).expect("a status serializes");
                doc.event(&at, "rollout", format!("rollout {status}"));
            }
            // Hosts that stopped running without a result (timed out) give up their queued job.
            for host in &busy {
                let still = matches!(
                    rollout.hosts.get(host),
                    Some(HostState::Running { .. } | HostState::RollingBack { .. })
                ) && !commands.contains(&Command::RollBackHost(*host));
                if still {
                    continue;
                }
                if let Some(job) = doc.runs.get_mut(host).and_then(|r| r.jobs.last_mut()) {
                    if job.state == RunJobState::Queued {
                        // Withdrawn if not delivered yet; a delivered one can only be ignored.
                        withdraw.push(job.id.clone());
                        job.state = RunJobState::TimedOut;
                        job.reason = Some("no result within the host timeout".into());
                    }
                }
            }
            for command in commands {
                let (host, operation, packages) = match command {
                    Command::StartHost(h) => (h, JobOperation::Install, doc.install_targets(h)),
                    Command::RollBackHost(h) => {
                        (h, JobOperation::Rollback, doc.rollback_targets(h))
                    }
                };
                let verb = match operation {
                    JobOperation::Install => "install",
                    JobOperation::Rollback => "rollback",
                };
                if packages.is_empty() {
                    // Nothing of the change on this host: done at once.
                    let outcome = match operation {
                        JobOperation::Install => HostOutcome::Succeeded,
                        JobOperation::Rollback => HostOutcome::RolledBack { reason: None },
                    };
                    rollout.report(host, outcome, now);
                    doc.event(&at, "rollout", format!("host {host}: nothing to {verb}"));
                    continue;
                }
                let host_classes = classes.get(&host).cloned().unwrap_or_default();
                let job = self.config.deploy.package_job(
                    crate::secrets::job_id(),
                    operation.clone(),
                    packages,
                    &host_classes,
                    self.config.job_lock_timeout.as_secs(),
                );
                let is_rollback = operation == JobOperation::Rollback;
                doc.runs.entry(host).or_default().jobs.push(RunJob {
                    id: job.id.clone(),
                    operation,
                    state: RunJobState::Queued,
                    reason: None,
                });
                if is_rollback {
                    doc.event(
                        &at,
                        "rollout",
                        format!("host {host}: {verb} job {}", job.id),
                    );
                }
                jobs.push((host, job));
            }
            // The end of the change.
            if doc.lifecycle.state == ChangeState::Running && rollout.finished() {
                let system = Actor::system("rollout");
                let (action, comment) = match &rollout.status {
                    RolloutStatus::Completed => (
                        ChangeAction::Complete,
                        format!("{} hosts updated and verified", doc.hosts.len()),
                    ),
                    RolloutStatus::Halted { wave, reason } => (
                        ChangeAction::Fail,
                        format!(
                            "halted in wave {wave}: {reason}; {}",
                            failure_reasons(&rollout)
                        ),
                    ),
                    _ => (ChangeAction::Fail, "the rollout was cancelled".to_owned()),
                };
                doc.lifecycle
                    .apply(policy, &system, action, Some(&comment), &at)?;
            }
            doc.rollout = Some(rollout);
        }

        let text = serde_json::to_string(&doc).expect("a change serializes");
        let active = doc.needs_driving();
        if text == row.doc && jobs.is_empty() && active {
            return Ok(());
        }
        let issued = patchwarden_model::unix_now();
        let docs: Vec<String> = jobs
            .iter()
            .map(|(host, j)| {
                serde_json::to_string(&self.signer.sign(*host, j, issued))
                    .expect("a job serializes")
            })
            .collect();
        let new_jobs: Vec<NewJob> = jobs
            .iter()
            .zip(&docs)
            .map(|((host, job), doc)| NewJob {
                id: &job.id,
                host_id: *host,
                doc,
                created_by: "rollout",
            })
            .collect();
        let update = ChangeUpdate {
            id: &row.id,
            version: row.version,
            state: doc.lifecycle.state.as_str(),
            doc: &text,
            active,
        };
        let written = self.store.advance_change(&update, &new_jobs, &at).await?;
        if written {
            // The pass's events (waves started, hosts finished, holds) as log lines.
            for e in doc.events.iter().skip(events_before) {
                tracing::info!(target: "patchwarden::rollout", change = %row.id, actor = %e.actor, "{}", e.message);
            }
            for id in withdraw {
                let _ = self.store.cancel_job(&id, &at).await;
            }
            let rollout = AuditActor::System {
                name: "rollout".into(),
            };
            for (host, job) in &jobs {
                self.job_board.set(*host, true);
                self.metrics
                    .count("patchwarden_jobs_total", "event=\"queued\"");
                self.audit
                    .record(
                        AuditEvent::job_queued(rollout.clone(), *host, job)
                            .with("change", row.id.as_str()),
                    )
                    .await;
            }
            if let Some(reason) = &escalated {
                self.audit
                    .record(AuditEvent::change_transition(
                        AuditActor::System {
                            name: "policy".into(),
                        },
                        &row.id,
                        "action",
                        ChangeAction::Escalate.as_str(),
                        doc.lifecycle.state.as_str(),
                        Some(reason),
                    ))
                    .await;
            } else if doc.lifecycle.state != state_before {
                self.audit
                    .record(AuditEvent::change_transition(
                        rollout,
                        &row.id,
                        "from",
                        state_before.as_str(),
                        doc.lifecycle.state.as_str(),
                        None,
                    ))
                    .await;
            }
        }
        Ok(())
    }

    /// The classes of these hosts (windows, profiles and waves match them), from their labels now.
    async fn classes_of(
        &self,
        hosts: &[i64],
    ) -> Result<std::collections::HashMap<i64, Vec<String>>, DriverError> {
        Ok(self
            .store
            .labels_of_hosts(hosts)
            .await?
            .into_iter()
            .map(|(id, labels)| (id, host_classes(&labels)))
            .collect())
    }

    /// The result of a busy host's current job; a succeeded install is verified first.
    async fn job_result(&self, doc: &mut ChangeDoc, host: i64) -> Result<JobResult, DriverError> {
        let Some(current) = doc.runs.get(&host).and_then(|r| r.jobs.last()).cloned() else {
            return Ok(JobResult::Waiting);
        };
        if current.state != RunJobState::Queued {
            return Ok(JobResult::Waiting);
        }
        let Some(row) = self.store.job(&current.id).await? else {
            return Ok(JobResult::Waiting);
        };
        let reason = match row.state {
            JobState::Succeeded => None,
            JobState::Failed | JobState::Refused => Some(
                row.report
                    .as_deref()
                    .and_then(|r| serde_json::from_str::<JobReport>(r).ok())
                    .and_then(|r| r.outcome.failure())
                    .unwrap_or_else(|| format!("the job {}", row.state.as_str())),
            ),
            _ => return Ok(JobResult::Waiting),
        };
        let outcome = match (current.operation, reason) {
            (JobOperation::Rollback, reason) => HostOutcome::RolledBack {
                reason: reason.clone(),
            },
            (JobOperation::Install, Some(reason)) => HostOutcome::Failed { reason },
            (JobOperation::Install, None) => {
                match self
                    .verify_host(doc, host, row.finished_at.as_deref())
                    .await?
                {
                    None => return Ok(JobResult::Waiting),
                    Some(failure) => match failure {
                        None => HostOutcome::Succeeded,
                        Some(reason) => HostOutcome::Failed { reason },
                    },
                }
            }
        };
        let run = doc.runs.entry(host).or_default();
        if let Some(job) = run.jobs.last_mut() {
            job.state = if row.state == JobState::Succeeded {
                RunJobState::Succeeded
            } else {
                RunJobState::Failed
            };
            job.reason = match &outcome {
                HostOutcome::Failed { reason } => Some(reason.clone()),
                HostOutcome::RolledBack { reason } => reason.clone(),
                HostOutcome::Succeeded => None,
            };
        }
        Ok(JobResult::Outcome(outcome))
    }

    /// Verifies a host whose install job succeeded, once its inventory after the job and the
    /// findings of that inventory are stored (none: still waiting). Some(None): verified.
    async fn verify_host(
        &self,
        doc: &mut ChangeDoc,
        host: i64,
        finished_at: Option<&str>,
    ) -> Result<Option<Option<String>>, DriverError> {
        let Some((inventory, _)) = self.store.host_inventory(host).await? else {
            return Ok(None);
        };
        // The inventory to verify is the one the agent sends right after the job: it shows the
        // versions, or (the job claimed success but the host says otherwise) it was stored after
        // the report — a whole second later, since both times have second precision and an
        // inventory collected before the job can be stored in the report's second.
        let targets = doc.install_targets(host);
        let stored_at = self.store.inventory_stored_at(host).await?;
        let after_job = finished_at
            .zip(stored_at.as_deref())
            .is_some_and(|(finished, stored)| stored > finished);
        if !(versions_reached(&targets, &inventory.packages) || after_job) {
            return Ok(None);
        }
        let pending = self
            .store
            .host(host, self.config.stale_after.as_secs() as i64)
            .await?
            .is_none_or(|h| h.findings_pending);
        if pending {
            return Ok(None);
        }
        let findings = host_findings(&self.view, host).await?;
        let verification = verify(&targets, &inventory.packages, doc.targeted(host), &findings);
        let failure = verification.failure();
        doc.runs.entry(host).or_default().verification = Some(verification);
        Ok(Some(failure))
    }
}

/// The failed hosts and why, for the change's final comment.
fn failure_reasons(rollout: &Rollout) -> String {
    let reasons: Vec<String> = rollout
        .hosts
        .iter()
        .filter_map(|(id, s)| match s {
            HostState::Failed { reason, .. } => Some(format!("host {id} failed: {reason}")),
            HostState::RolledBack { reason, .. } => {
                Some(format!("host {id} rolled back after: {reason}"))
            }
            HostState::RollbackFailed { reason, .. } => {
                Some(format!("host {id} needs attention: {reason}"))
            }
            _ => None,
        })
        .collect();
    reasons.join("; ")
}
