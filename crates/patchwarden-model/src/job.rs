//! Jobs the server gives an agent, and what the agent reports back. Jobs are limited to package
//! operations with exact versions; hooks and health checks are filled in by the server from its
//! own configuration (never taken from a request), and run without a shell.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOperation {
    /// Install exactly these versions (upgrades).
    Install,
    /// Return to exactly these versions (downgrades allowed).
    Rollback,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageTarget {
    pub name: String,
    /// As the package manager spells it (`amd64`, `all`, `x86_64`, `noarch`); none: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub version: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebootPolicy {
    Never,
    IfRequired,
    Always,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheck {
    /// Exit status 0 of a program (argv, no shell).
    Command { argv: Vec<String> },
    /// An `http://` URL answering with this status.
    Http { url: String, status: u16 },
    /// `systemctl is-active UNIT` says active.
    SystemdUnit { unit: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageJob {
    pub id: String,
    pub operation: JobOperation,
    pub packages: Vec<PackageTarget>,
    pub reboot: RebootPolicy,
    #[serde(default)]
    pub pre_hooks: Vec<Vec<String>>,
    #[serde(default)]
    pub post_hooks: Vec<Vec<String>>,
    #[serde(default)]
    pub health_checks: Vec<HealthCheck>,
    /// How long to wait for another package manager's lock.
    pub lock_timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStage {
    Recover,
    PreHook,
    Packages,
    Verify,
    PostHook,
    HealthCheck,
    Reboot,
}

impl JobStage {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStage::Recover => "recover",
            JobStage::PreHook => "pre_hook",
            JobStage::Packages => "packages",
            JobStage::Verify => "verify",
            JobStage::PostHook => "post_hook",
            JobStage::HealthCheck => "health_check",
            JobStage::Reboot => "reboot",
        }
    }
}

/// One command the job ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStep {
    pub stage: JobStage,
    pub command: Vec<String>,
    /// Exit status (none: killed by a signal or not started).
    pub status: Option<i32>,
    /// Standard output and error, the end kept when long.
    pub output: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum JobOutcome {
    Succeeded,
    Failed { stage: JobStage, reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    pub id: String,
    pub outcome: JobOutcome,
    pub steps: Vec<JobStep>,
    /// An interrupted package-manager run was found and completed first.
    pub recovered: bool,
    /// The system asks for a reboot (`/var/run/reboot-required`, or the policy says always).
    pub reboot_required: bool,
    /// The agent should reboot now (live system, policy allows).
    pub reboot_now: bool,
}

/// Where a job is: queued for its host, delivered to its agent, finished, or withdrawn before
/// delivery (`cancelled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Delivered,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Delivered => "delivered",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The job will not change any more.
    pub fn finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<JobState, String> {
        Ok(match s {
            "queued" => JobState::Queued,
            "delivered" => JobState::Delivered,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            other => return Err(format!("unknown job state {other:?}")),
        })
    }
}

/// A job as the server answers `GET /v1/jobs/{id}`: the job, where it is, and the agent's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub host_id: i64,
    pub created_at: String,
    pub created_by: String,
    pub state: JobState,
    pub delivered_at: Option<String>,
    pub finished_at: Option<String>,
    pub job: PackageJob,
    pub report: Option<JobReport>,
}

/// The server's answer to a job report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReportAck {
    pub job: String,
    pub state: JobState,
}

/// `POST /v1/hosts/{id}/jobs`: an operator's job — the operation and exact versions; hooks and
/// health checks come from the host's profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    pub operation: JobOperation,
    pub packages: Vec<PackageTarget>,
    #[serde(default = "never")]
    pub reboot: RebootPolicy,
}

fn never() -> RebootPolicy {
    RebootPolicy::Never
}
