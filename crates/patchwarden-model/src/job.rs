//! Jobs the server gives an agent, and what the agent reports back. Jobs are limited to package
//! operations with exact versions; hooks and health checks are filled in by the server from its
//! own configuration (never taken from a request), and run without a shell.

use patchwarden_version::Scheme;
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

/// Why a package target cannot be handed to a package manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// The name is not a package name of the family.
    Name { name: String, scheme: Scheme },
    /// The version does not parse under the family's scheme.
    Version(patchwarden_version::VersionError),
    /// A version its package manager would read as something else: apt reads a trailing `-` or
    /// `+` of `name=version` as "remove" or "install" (the last character is an action modifier,
    /// not part of the version).
    Modifier { name: String, version: String },
    /// Surrounding white space (a parser would trim it; the package manager would not).
    Whitespace { name: String, version: String },
    /// The architecture is not an architecture name.
    Arch { name: String, arch: String },
    /// A name apt would read as a regular expression (it holds `.` or `+` and no installed
    /// package has it: `libcurl.` matched 25 packages).
    Pattern { name: String },
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::Name { name, scheme } => write!(
                f,
                "package {:?}: not a {scheme} package name ({})",
                name,
                name_rule(*scheme)
            ),
            TargetError::Version(e) => write!(f, "{e}"),
            TargetError::Modifier { name, version } => write!(
                f,
                "package {name:?} = {version:?}: a version ending in '-' or '+' would be read by apt \
                 as a remove or install modifier"
            ),
            TargetError::Whitespace { name, version } => write!(
                f,
                "package {name:?} = {version:?}: surrounding white space"
            ),
            TargetError::Pattern { name } => write!(
                f,
                "package {name:?}: not installed on the host, and apt would read the name as a \
                 pattern (it holds '.' or '+')"
            ),
            TargetError::Arch { name, arch } => write!(
                f,
                "package {name:?}: architecture {arch:?} is not an architecture name (a-z, 0-9, '_', '-')"
            ),
        }
    }
}

impl std::error::Error for TargetError {}

/// The name grammar of a family, as said in errors.
fn name_rule(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Deb => "Debian policy 5.6.1: a-z, 0-9, '+', '-', '.', two or more, starting with a letter or digit",
        Scheme::Rpm => "A-Z, a-z, 0-9, '_', '+', '-', '.', starting with a letter, digit or '_'",
        Scheme::Apk => "a-z, 0-9, '_', '+', '-', '.', starting with a letter or digit",
    }
}

/// Whether `name` is a package name of `scheme`'s family. Characters a package manager reads
/// as patterns or operators (`*?[]^$|,<>=~:/` and white space) are never part of a name.
pub fn is_package_name(scheme: Scheme, name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 200 {
        return false;
    }
    type ByteRule = fn(u8) -> bool;
    let (first_ok, rest_ok): (ByteRule, ByteRule) = match scheme {
        Scheme::Deb => (
            |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(&c),
        ),
        Scheme::Rpm => (
            |c| c.is_ascii_alphanumeric() || c == b'_',
            |c| c.is_ascii_alphanumeric() || b"_+-.".contains(&c),
        ),
        Scheme::Apk => (
            |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_+-.".contains(&c),
        ),
    };
    let min = if scheme == Scheme::Deb { 2 } else { 1 };
    b.len() >= min && first_ok(b[0]) && b[1..].iter().all(|&c| rest_ok(c))
}

impl PackageTarget {
    /// Checks the target by the strictest rule of its family before it reaches a package
    /// manager: the name by the family's grammar, the version by the scheme's own parser (and,
    /// for apt, no trailing action modifier), the architecture as a plain name. The server checks
    /// at the API; the executor checks again before it runs anything.
    pub fn check(&self, scheme: Scheme) -> Result<(), TargetError> {
        if !is_package_name(scheme, &self.name) {
            return Err(TargetError::Name {
                name: self.name.clone(),
                scheme,
            });
        }
        if self.version.trim() != self.version {
            return Err(TargetError::Whitespace {
                name: self.name.clone(),
                version: self.version.clone(),
            });
        }
        patchwarden_version::validate(scheme, &self.version).map_err(TargetError::Version)?;
        if scheme == Scheme::Deb && (self.version.ends_with('-') || self.version.ends_with('+')) {
            return Err(TargetError::Modifier {
                name: self.name.clone(),
                version: self.version.clone(),
            });
        }
        if let Some(arch) = &self.arch {
            let ok = !arch.is_empty()
                && arch.len() <= 32
                && !arch.starts_with('-')
                && arch.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-'
                });
            if !ok {
                return Err(TargetError::Arch {
                    name: self.name.clone(),
                    arch: arch.clone(),
                });
            }
        }
        Ok(())
    }

    /// [`PackageTarget::check`], and on a dpkg host (`installed`: whether the host has a package
    /// of that name) no name that apt would read as a pattern.
    pub fn check_on(
        &self,
        scheme: Scheme,
        installed: impl Fn(&str) -> bool,
    ) -> Result<(), TargetError> {
        self.check(scheme)?;
        if scheme == Scheme::Deb && self.name.contains(['.', '+']) && !installed(&self.name) {
            return Err(TargetError::Pattern {
                name: self.name.clone(),
            });
        }
        Ok(())
    }
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
    Failed {
        stage: JobStage,
        reason: String,
    },
    /// The agent would not run it (nothing ran): see [`crate::job_signature::JobRefusal`].
    Refused {
        refusal: crate::job_signature::JobRefusal,
        /// The refusal in words.
        reason: String,
    },
}

impl JobOutcome {
    /// The state a job with this outcome ends in.
    pub fn state(&self) -> JobState {
        match self {
            JobOutcome::Succeeded => JobState::Succeeded,
            JobOutcome::Failed { .. } => JobState::Failed,
            JobOutcome::Refused { .. } => JobState::Refused,
        }
    }

    /// Why it did not succeed, in words (none when it did).
    pub fn failure(&self) -> Option<String> {
        match self {
            JobOutcome::Succeeded => None,
            JobOutcome::Failed { stage, reason } => {
                Some(format!("{} failed: {reason}", stage.as_str()))
            }
            JobOutcome::Refused { reason, .. } => {
                Some(format!("the agent refused the job: {reason}"))
            }
        }
    }
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

/// Where a job is: queued for its host, delivered to its agent, finished (`refused`: its agent
/// would not run it — unsigned, forged, for another host, expired or replayed), or withdrawn
/// before delivery (`cancelled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Delivered,
    Succeeded,
    Failed,
    Refused,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Delivered => "delivered",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Refused => "refused",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The job will not change any more.
    pub fn finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Refused | JobState::Cancelled
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
            "refused" => JobState::Refused,
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
    /// The public key the job was signed with (hex); none: queued before job signing.
    #[serde(default)]
    pub signed_by: Option<String>,
    /// Until when its agent may start it.
    #[serde(default)]
    pub expires_at: Option<String>,
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

#[cfg(test)]
mod target_tests {
    use super::*;

    fn target(name: &str, version: &str) -> PackageTarget {
        PackageTarget {
            name: name.into(),
            arch: None,
            version: version.into(),
        }
    }

    #[test]
    fn targets_are_checked_by_their_familys_rules() {
        // Real names and versions pass.
        for (scheme, name, version) in [
            (Scheme::Deb, "curl", "7.88.1-10+deb12u15"),
            (Scheme::Deb, "g++", "4:12.2.0-3"),
            (Scheme::Deb, "libstdc++6", "12.2.0-14+deb12u1"),
            (Scheme::Rpm, "glibc-common", "2.34-100.el9_4.2"),
            (Scheme::Rpm, "NetworkManager", "1:1.46.0-8.el9_4"),
            (Scheme::Apk, "busybox", "1.36.1-r15"),
        ] {
            assert_eq!(
                target(name, version).check(scheme),
                Ok(()),
                "{name} {version}"
            );
        }
        // apt's remove modifier, in the version or as a regular expression's tail.
        assert!(matches!(
            target("curl", "7.88.1-10+deb12u15-").check(Scheme::Deb),
            Err(TargetError::Version(_) | TargetError::Modifier { .. })
        ));
        assert!(matches!(
            target("curl", "7.88.1+").check(Scheme::Deb),
            Err(TargetError::Modifier { .. })
        ));
        for name in [
            "libcurl.*",
            "curl^",
            "-curl",
            "Curl",
            "c",
            "a b",
            "curl=1",
            "x/y",
            "",
        ] {
            assert!(
                matches!(
                    target(name, "1.0-1").check(Scheme::Deb),
                    Err(TargetError::Name { .. })
                ),
                "{name}"
            );
        }
        for name in ["glibc*", "glibc?", "[g]libc", "-glibc", "a,b"] {
            assert!(target(name, "1.0-1").check(Scheme::Rpm).is_err(), "{name}");
        }
        for name in ["busybox>1", "busybox~1", "Busybox"] {
            assert!(target(name, "1.0-r0").check(Scheme::Apk).is_err(), "{name}");
        }
        for version in ["", " 1.0-1", "1.0-1 ", "1.0 1", "-1", "1.0-1\n"] {
            assert!(
                target("curl", version).check(Scheme::Deb).is_err(),
                "{version:?}"
            );
        }
        let mut bad_arch = target("curl", "7.88.1-10+deb12u15");
        bad_arch.arch = Some("amd64;rm".into());
        assert!(matches!(
            bad_arch.check(Scheme::Deb),
            Err(TargetError::Arch { .. })
        ));
        bad_arch.arch = Some("amd64".into());
        assert_eq!(bad_arch.check(Scheme::Deb), Ok(()));
        // `libcurl.` is a name by Debian's grammar, and a pattern to apt unless installed.
        let pattern = target("libcurl.", "7.88.1-10+deb12u15");
        assert_eq!(pattern.check(Scheme::Deb), Ok(()));
        assert!(matches!(
            pattern.check_on(Scheme::Deb, |n| n == "curl"),
            Err(TargetError::Pattern { .. })
        ));
        assert_eq!(
            target("g++", "4:12.2.0-3").check_on(Scheme::Deb, |n| n == "g++"),
            Ok(())
        );
        assert_eq!(
            target("curl", "7.88.1-10+deb12u15").check_on(Scheme::Deb, |_| false),
            Ok(())
        );
    }
}
