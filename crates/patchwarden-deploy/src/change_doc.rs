//! The change request as a document: what the server stores and serves, the CLI reads, and the
//! rollout driver advances — the frozen packages and rollback plan, the lifecycle, the rollout,
//! each host's jobs and verification, the events. Also the requests that create and steer one.
//!
//! These are the wire contract between the server and its clients; the rules that change them
//! live in [`crate::change`] (lifecycle) and [`crate::rollout`] (waves).

use std::collections::BTreeMap;

use jiff::Timestamp;
use patchwarden_model::job::{JobOperation, PackageTarget};
use serde::{Deserialize, Serialize};

use crate::change::{ChangeAction, ChangeKind, ChangeLifecycle, ChangeState};
use crate::rollout::{HostState, Rollout, RolloutSpec};
use crate::verify::{TargetedFinding, Verification};

/// A change request as stored and served.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangeDoc {
    pub id: String,
    pub title: String,
    pub hosts: Vec<i64>,
    /// The exact versions the change installs (frozen when it is created).
    pub packages: Vec<PackageTarget>,
    /// The rollback plan: per host, the versions installed when the change was created (from its
    /// last inventory); a package the host did not have is listed under `not_installed`.
    pub rollback: Vec<HostRollback>,
    pub lifecycle: ChangeLifecycle,
    /// The change's own rollout (waves, thresholds, soak); the configuration's default otherwise.
    #[serde(default)]
    pub rollout_spec: Option<RolloutSpec>,
    /// The change starts no earlier than this (its schedule); hosts still start only inside their
    /// windows.
    #[serde(default)]
    pub not_before: Option<Timestamp>,
    /// Per host, the open findings the change should close there (verification checks them).
    #[serde(default)]
    pub targets: Vec<HostTargets>,
    /// The risk the change removes: the sum of its targeted findings' risk scores.
    #[serde(default)]
    pub risk_removed: f64,
    /// The rollout, once started.
    #[serde(default)]
    pub rollout: Option<Rollout>,
    /// Per host: the jobs run for the change and the verification.
    #[serde(default)]
    pub runs: BTreeMap<i64, HostRun>,
    /// What happened, in order (the lifecycle's transitions are in its audit trail).
    #[serde(default)]
    pub events: Vec<ChangeEvent>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostRollback {
    pub host_id: i64,
    pub packages: Vec<PackageTarget>,
    pub not_installed: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostTargets {
    pub host_id: i64,
    pub findings: Vec<TargetedFinding>,
    /// The maintenance window the host works in (from the deployment configuration); none: the
    /// configuration's rule for hosts without one.
    #[serde(default)]
    pub window: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HostRun {
    pub jobs: Vec<RunJob>,
    #[serde(default)]
    pub verification: Option<Verification>,
}

/// Where a change's job is, as the rollout driver last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunJobState {
    /// Queued or running on the host; the driver has not seen it end.
    Queued,
    Succeeded,
    Failed,
    /// No result within the host timeout (withdrawn when it was not delivered yet).
    TimedOut,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunJob {
    pub id: String,
    pub operation: JobOperation,
    pub state: RunJobState,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub at: String,
    pub actor: String,
    pub message: String,
}

impl ChangeDoc {
    /// The versions the change installs on `host`: its packages the host has (a change updates,
    /// it does not add packages).
    pub fn install_targets(&self, host: i64) -> Vec<PackageTarget> {
        let missing = self
            .rollback
            .iter()
            .find(|r| r.host_id == host)
            .map(|r| r.not_installed.as_slice())
            .unwrap_or_default();
        self.packages
            .iter()
            .filter(|p| !missing.contains(&p.name))
            .cloned()
            .collect()
    }

    /// The versions `host` returns to on rollback.
    pub fn rollback_targets(&self, host: i64) -> Vec<PackageTarget> {
        self.rollback
            .iter()
            .find(|r| r.host_id == host)
            .map(|r| r.packages.clone())
            .unwrap_or_default()
    }

    pub fn targeted(&self, host: i64) -> &[TargetedFinding] {
        self.targets
            .iter()
            .find(|t| t.host_id == host)
            .map(|t| t.findings.as_slice())
            .unwrap_or_default()
    }

    pub fn event(&mut self, at: &str, actor: &str, message: String) {
        self.events.push(ChangeEvent {
            at: at.into(),
            actor: actor.into(),
            message,
        });
    }

    /// The rollout driver still has work on it: scheduling a pre-approved change, starting a
    /// scheduled one, a rollout in progress, or the lifecycle ahead of its rollout (cancelled or
    /// rolled back while hosts ran).
    pub fn needs_driving(&self) -> bool {
        let state = self.lifecycle.state;
        match state {
            ChangeState::Approved => self.lifecycle.kind == ChangeKind::Standard,
            ChangeState::Scheduled | ChangeState::Running => true,
            _ => self.rollout.as_ref().is_some_and(|r| {
                !r.finished() || (state == ChangeState::RolledBack && !r.rolling_back_all())
            }),
        }
    }

    /// Per host: where the rollout left it, what was installed, verified and what remains.
    pub fn result(&self) -> Vec<HostResult> {
        self.hosts
            .iter()
            .map(|h| {
                let state = self.rollout.as_ref().and_then(|r| r.hosts.get(h));
                let run = self.runs.get(h);
                HostResult {
                    host_id: *h,
                    state: state.map(|s| s.name().to_owned()),
                    reason: state.and_then(HostState::reason).map(str::to_owned),
                    jobs: run.map(|r| r.jobs.clone()).unwrap_or_default(),
                    verification: run.and_then(|r| r.verification.clone()),
                }
            })
            .collect()
    }

    /// The document with its per-host result, as `GET /v1/changes/{id}` answers.
    pub fn view(self) -> ChangeView {
        ChangeView {
            result: self.result(),
            change: self,
        }
    }

    /// The row of a change list.
    pub fn summary(&self, created_at: String, updated_at: String) -> ChangeSummary {
        ChangeSummary {
            id: self.id.clone(),
            title: self.title.clone(),
            kind: self.lifecycle.kind,
            state: self.lifecycle.state,
            created_at,
            updated_at,
            requested_by: self.lifecycle.requested_by.clone(),
            hosts: self.hosts.len(),
            rollout: self.rollout.as_ref().map(|r| r.status.name().to_owned()),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostResult {
    pub host_id: i64,
    /// The host's rollout state (`pending`, `running`, `succeeded`, `failed`, `rolled_back`, …);
    /// none before the rollout starts.
    pub state: Option<String>,
    pub reason: Option<String>,
    pub jobs: Vec<RunJob>,
    pub verification: Option<Verification>,
}

/// A change with its per-host result (`GET /v1/changes/{id}`): the document's fields and
/// `result` beside them. (Not `#[serde(flatten)]`: flattening buffers the document, and the
/// integer keys of `runs` would then no longer read back from JSON's string keys.)
#[derive(Clone, Debug)]
pub struct ChangeView {
    pub change: ChangeDoc,
    pub result: Vec<HostResult>,
}

impl Serialize for ChangeView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut value = serde_json::to_value(&self.change).map_err(S::Error::custom)?;
        let result = serde_json::to_value(&self.result).map_err(S::Error::custom)?;
        match value.as_object_mut() {
            Some(fields) => {
                fields.insert("result".into(), result);
            }
            None => return Err(S::Error::custom("a change serializes as an object")),
        }
        value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ChangeView {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ChangeView, D::Error> {
        use serde::de::Error;
        let mut value = serde_json::Value::deserialize(d)?;
        let result = value
            .as_object_mut()
            .and_then(|fields| fields.remove("result"))
            .ok_or_else(|| D::Error::missing_field("result"))?;
        Ok(ChangeView {
            result: serde_json::from_value(result).map_err(D::Error::custom)?,
            change: serde_json::from_value(value).map_err(D::Error::custom)?,
        })
    }
}

/// One row of `GET /v1/changes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangeSummary {
    pub id: String,
    pub title: String,
    pub kind: ChangeKind,
    pub state: ChangeState,
    pub created_at: String,
    pub updated_at: String,
    pub requested_by: String,
    pub hosts: usize,
    /// The rollout's status (`running`, `paused`, `completed`, …), once it started.
    pub rollout: Option<String>,
}

/// `POST /v1/changes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChange {
    pub title: String,
    pub kind: ChangeKind,
    pub hosts: Vec<i64>,
    pub packages: Vec<PackageTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
}

/// `POST /v1/changes/{id}/actions`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub action: ChangeAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAction {
    Pause,
    Resume,
    Cancel,
}

impl RolloutAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutAction::Pause => "pause",
            RolloutAction::Resume => "resume",
            RolloutAction::Cancel => "cancel",
        }
    }

    /// The word for the event it leaves (`paused`, …).
    pub fn done(self) -> &'static str {
        match self {
            RolloutAction::Pause => "paused",
            RolloutAction::Resume => "resumed",
            RolloutAction::Cancel => "cancelled",
        }
    }
}

/// `POST /v1/changes/{id}/rollout`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    pub action: RolloutAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a result and a change list carry are the rollout's own serialized tags.
    #[test]
    fn host_state_and_rollout_status_names_are_their_tags() {
        use crate::rollout::RolloutStatus;
        let at = Timestamp::UNIX_EPOCH;
        let reason = || "r".to_owned();
        for s in [
            HostState::Pending,
            HostState::Running { since: at },
            HostState::Succeeded { at },
            HostState::Failed {
                at,
                reason: reason(),
            },
            HostState::RollingBack {
                since: at,
                reason: reason(),
            },
            HostState::RolledBack {
                at,
                reason: reason(),
            },
            HostState::RollbackFailed {
                at,
                reason: reason(),
            },
            HostState::Skipped,
        ] {
            assert_eq!(serde_json::to_value(&s).unwrap()["state"], s.name());
        }
        for s in [
            RolloutStatus::Running,
            RolloutStatus::Soaking { until: at },
            RolloutStatus::Paused,
            RolloutStatus::Halted {
                wave: "w".into(),
                reason: reason(),
            },
            RolloutStatus::Completed,
            RolloutStatus::Cancelled,
        ] {
            assert_eq!(serde_json::to_value(&s).unwrap()["status"], s.name());
        }
    }

    /// What `GET /v1/changes/{id}` answers reads back into the same change: per-host runs keyed by
    /// host id included (JSON keys are strings).
    #[test]
    fn a_change_view_reads_back_with_its_runs_and_result() {
        let mut doc = ChangeDoc {
            id: "chg-00000000000000aa".into(),
            title: "t".into(),
            hosts: vec![7],
            packages: vec![PackageTarget {
                name: "curl".into(),
                arch: None,
                version: "1".into(),
            }],
            rollback: Vec::new(),
            lifecycle: ChangeLifecycle::new(ChangeKind::Normal, "alice"),
            rollout_spec: None,
            not_before: None,
            targets: Vec::new(),
            risk_removed: 1.5,
            rollout: None,
            runs: BTreeMap::new(),
            events: Vec::new(),
        };
        doc.runs.entry(7).or_default().jobs.push(RunJob {
            id: "job-1".into(),
            operation: JobOperation::Install,
            state: RunJobState::TimedOut,
            reason: Some("no result".into()),
        });
        let text = serde_json::to_string(&doc.clone().view()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["runs"]["7"]["jobs"][0]["state"], "timed_out");
        assert_eq!(value["result"][0]["host_id"], 7);
        let back: ChangeView = serde_json::from_str(&text).unwrap();
        assert_eq!(back.change.runs[&7].jobs[0].state, RunJobState::TimedOut);
        assert_eq!(back.result[0].jobs[0].id, "job-1");
        assert_eq!(
            serde_json::to_string(&back.change).unwrap(),
            serde_json::to_string(&doc).unwrap()
        );
    }
}
