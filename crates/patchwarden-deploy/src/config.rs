//! The deployment configuration an operator writes (TOML): the change policy, maintenance windows
//! assigned to host classes, host profiles (the hooks, health checks and reboot policy a host's jobs
//! get — the only place they come from), and rollout defaults. One file, read by the server
//! (`--deploy-config`) and checked by `patchwarden window check`.
//!
//! ```toml
//! [policy]
//! approvals_required = 1
//! manual_approval = ["role=database"]
//!
//! [rollout]
//! expected_host_duration = "30m"   # a host starts only if its window stays open this long
//! hosts_without_window = "anytime" # or "never"
//! emergency_soak_secs = 0
//! [rollout.default]                # for changes that bring no rollout of their own
//! error_threshold = { count = 1 }
//! ...
//!
//! [[window]]                       # see `window`
//! [[profile]]
//! name = "web"
//! classes = ["role=web"]
//! pre_hooks = [["systemctl", "stop", "app"]]
//! health_checks = [{ systemd_unit = { unit = "nginx.service" } }]
//! reboot = "if_required"
//! ```
//! Every mistake is reported with the file, the table and the field.

use jiff::{SignedDuration, Timestamp};
use patchwarden_model::job::{HealthCheck, RebootPolicy};
use serde::{Deserialize, Serialize};

use crate::change::{ChangeKind, ChangePolicy};
use crate::rollout::{RolloutSpec, Threshold, WaveSelector, WaveSpec};
use crate::window::{parse_duration, MaintenanceWindow, StartDecision, WindowSpec};

/// What a host with no window assigned may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowlessHosts {
    /// Start whenever the rollout reaches them.
    Anytime,
    /// Never start (every host must have a window).
    Never,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutDefaults {
    /// How long one host's update is expected to take (`30m`).
    pub expected_host_duration: String,
    pub hosts_without_window: WindowlessHosts,
    /// Emergency changes soak at most this long between waves.
    pub emergency_soak_secs: i64,
    /// The rollout of a change that names none.
    pub default: RolloutSpec,
}

impl Default for RolloutDefaults {
    fn default() -> Self {
        RolloutDefaults {
            expected_host_duration: "30m".into(),
            hosts_without_window: WindowlessHosts::Anytime,
            emergency_soak_secs: 0,
            default: RolloutSpec {
                waves: vec![WaveSpec {
                    name: "all".into(),
                    hosts: WaveSelector::Rest,
                    concurrency: 5,
                    error_threshold: None,
                    soak_secs: None,
                }],
                error_threshold: Threshold::Count(1),
                soak_secs: 0,
                host_timeout_secs: 3600,
                roll_back_failed_hosts: true,
            },
        }
    }
}

/// What a class of hosts runs around its package jobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostProfile {
    pub name: String,
    /// Group names or `key=value` labels; a host takes the first profile naming one of its classes.
    pub classes: Vec<String>,
    #[serde(default)]
    pub pre_hooks: Vec<Vec<String>>,
    #[serde(default)]
    pub post_hooks: Vec<Vec<String>>,
    #[serde(default)]
    pub health_checks: Vec<HealthCheck>,
    #[serde(default = "never")]
    pub reboot: RebootPolicy,
}

fn never() -> RebootPolicy {
    RebootPolicy::Never
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployFile {
    #[serde(default)]
    policy: ChangePolicy,
    #[serde(default)]
    rollout: RolloutDefaults,
    #[serde(default)]
    window: Vec<WindowSpec>,
    #[serde(default)]
    profile: Vec<HostProfile>,
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct DeployConfig {
    pub policy: ChangePolicy,
    pub rollout: RolloutDefaults,
    pub expected_host_duration: SignedDuration,
    pub windows: Vec<MaintenanceWindow>,
    pub profiles: Vec<HostProfile>,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig::parse("", "the built-in defaults").expect("the defaults are valid")
    }
}

impl DeployConfig {
    /// Parses and checks a configuration; `origin` (a file name) starts every error.
    pub fn parse(text: &str, origin: &str) -> Result<DeployConfig, String> {
        let file: DeployFile = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        let expected = parse_duration(&file.rollout.expected_host_duration)
            .map_err(|e| format!("{origin}: [rollout] expected_host_duration: {e}"))?;
        crate::rollout::Rollout::check(&file.rollout.default)
            .map_err(|e| format!("{origin}: [rollout.default]: {e}"))?;
        let windows = file
            .window
            .iter()
            .map(|w| MaintenanceWindow::parse(w).map_err(|e| format!("{origin}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        for p in &file.profile {
            let bad = |field: &str, problem: String| {
                Err(format!(
                    "{origin}: profile {:?}: {field}: {problem}",
                    p.name
                ))
            };
            if p.classes.is_empty() {
                return bad("classes", "names no host class".into());
            }
            for (field, hooks) in [("pre_hooks", &p.pre_hooks), ("post_hooks", &p.post_hooks)] {
                if let Some(i) = hooks.iter().position(|argv| argv.is_empty()) {
                    return bad(field, format!("hook {} is an empty command", i + 1));
                }
            }
            for check in &p.health_checks {
                match check {
                    HealthCheck::Command { argv } if argv.is_empty() => {
                        return bad("health_checks", "an empty command".into())
                    }
                    HealthCheck::Http { url, .. } if !url.starts_with("http://") => {
                        return bad("health_checks", format!("{url:?} is not an http:// URL"))
                    }
                    HealthCheck::SystemdUnit { unit } if unit.trim().is_empty() => {
                        return bad("health_checks", "an empty unit name".into())
                    }
                    _ => {}
                }
            }
        }
        Ok(DeployConfig {
            policy: file.policy,
            rollout: file.rollout,
            expected_host_duration: expected,
            windows,
            profiles: file.profile,
        })
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &std::path::Path) -> Result<DeployConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        DeployConfig::parse(&text, &path.display().to_string())
    }

    /// The window of a host: the first window assigned to one of its classes.
    pub fn window_for(&self, classes: &[String]) -> Option<&MaintenanceWindow> {
        self.windows
            .iter()
            .find(|w| w.groups.iter().any(|g| classes.contains(g)))
    }

    /// A job for a host of `classes`: the operation and exact versions, with the hooks, health
    /// checks and reboot policy of the host's profile (none without one). A rollback runs the hooks
    /// but no health checks: it returns to versions that were healthy, and a failing check must not
    /// stop that.
    pub fn package_job(
        &self,
        id: String,
        operation: patchwarden_model::job::JobOperation,
        packages: Vec<patchwarden_model::job::PackageTarget>,
        classes: &[String],
        lock_timeout_secs: u64,
    ) -> patchwarden_model::job::PackageJob {
        use patchwarden_model::job::{JobOperation, PackageJob, RebootPolicy};
        let profile = self.profile_for(classes);
        let health_checks = match (&operation, profile) {
            (JobOperation::Install, Some(p)) => p.health_checks.clone(),
            _ => Vec::new(),
        };
        PackageJob {
            id,
            operation,
            packages,
            reboot: profile.map_or(RebootPolicy::Never, |p| p.reboot),
            pre_hooks: profile.map(|p| p.pre_hooks.clone()).unwrap_or_default(),
            post_hooks: profile.map(|p| p.post_hooks.clone()).unwrap_or_default(),
            health_checks,
            lock_timeout_secs,
        }
    }

    /// The profile of a host: the first naming one of its classes.
    pub fn profile_for(&self, classes: &[String]) -> Option<&HostProfile> {
        self.profiles
            .iter()
            .find(|p| p.classes.iter().any(|c| classes.contains(c)))
    }

    /// Whether a host of these classes may start work of a change of `kind` at `now`: inside its
    /// window with at least the expected duration left (an emergency change anywhere, when the
    /// policy allows), or — with no window — as `hosts_without_window` says.
    pub fn may_start(&self, classes: &[String], kind: ChangeKind, now: Timestamp) -> bool {
        if kind == ChangeKind::Emergency && self.policy.emergency_outside_windows {
            return true;
        }
        match self.window_for(classes) {
            Some(w) => matches!(
                w.may_start(now, self.expected_host_duration),
                StartDecision::Start { .. }
            ),
            None => self.rollout.hosts_without_window == WindowlessHosts::Anytime,
        }
    }

    /// The rollout a change of `kind` runs: its own or the default, with an emergency's soak
    /// shortened to the policy's.
    pub fn rollout_for(&self, kind: ChangeKind, own: Option<RolloutSpec>) -> RolloutSpec {
        let mut spec = own.unwrap_or_else(|| self.rollout.default.clone());
        if kind == ChangeKind::Emergency {
            let cap = self.rollout.emergency_soak_secs.max(0);
            spec.soak_secs = spec.soak_secs.min(cap);
            for w in &mut spec.waves {
                w.soak_secs = Some(w.soak_secs.unwrap_or(cap).min(cap));
            }
        }
        spec
    }
}

/// A host's classes as windows, profiles, waves and the policy see them: every label as
/// `key=value`, and the value of its `group` label as a bare name.
pub fn host_classes<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<String> {
    let mut classes = Vec::new();
    for (k, v) in labels {
        classes.push(format!("{k}={v}"));
        if k == "group" {
            classes.push(v.clone());
        }
    }
    classes
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[policy]
approvals_required = 2

[rollout]
expected_host_duration = "1h"
hosts_without_window = "never"
emergency_soak_secs = 60
[rollout.default]
error_threshold = { percent = 10.0 }
soak_secs = 3600
host_timeout_secs = 600
roll_back_failed_hosts = true
[[rollout.default.waves]]
name = "staging"
hosts = { group = "staging" }
concurrency = 1
[[rollout.default.waves]]
name = "rest"
hosts = "rest"
concurrency = 10
soak_secs = 7200

[[window]]
name = "nightly"
timezone = "Europe/Berlin"
duration = "3h"
groups = ["staging"]
[window.schedule]
cron = "0 1 * * *"

[[profile]]
name = "web"
classes = ["role=web"]
pre_hooks = [["systemctl", "stop", "app"]]
health_checks = [{ systemd_unit = { unit = "nginx.service" } }, { http = { url = "http://127.0.0.1/health", status = 200 } }]
reboot = "if_required"
"#;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_file_decides_windows_profiles_and_rollouts_by_host_class() {
        let config = DeployConfig::parse(FILE, "deploy.toml").unwrap();
        assert_eq!(config.policy.approvals_required, 2);
        let staging = host_classes([(&"group".to_owned(), &"staging".to_owned())]);
        assert_eq!(staging, ["group=staging", "staging"]);
        // 01:00-04:00 Berlin (UTC+1 in December); an hour of work may start until 03:00.
        for (at, kind, expected) in [
            ("2026-12-02T00:30:00Z", ChangeKind::Normal, true),
            ("2026-12-02T02:30:00Z", ChangeKind::Normal, false),
            ("2026-12-02T12:00:00Z", ChangeKind::Normal, false),
            ("2026-12-02T12:00:00Z", ChangeKind::Emergency, true),
        ] {
            assert_eq!(config.may_start(&staging, kind, ts(at)), expected, "{at}");
        }
        let web = vec!["role=web".to_owned()];
        assert!(
            !config.may_start(&web, ChangeKind::Normal, ts("2026-12-02T00:30:00Z")),
            "no window: never, as configured"
        );
        let profile = config.profile_for(&web).unwrap();
        assert_eq!(profile.reboot, RebootPolicy::IfRequired);
        assert_eq!(profile.health_checks.len(), 2);
        assert!(config.profile_for(&staging).is_none());
        let emergency = config.rollout_for(ChangeKind::Emergency, None);
        assert_eq!(emergency.soak_secs, 60);
        assert_eq!(emergency.waves[1].soak_secs, Some(60));
        assert_eq!(config.rollout_for(ChangeKind::Normal, None).soak_secs, 3600);
    }

    #[test]
    fn mistakes_name_the_file_table_and_field() {
        for (text, says) in [
            ("[rollout]\nexpected_host_duration = \"soon\"", "deploy.toml: [rollout] expected_host_duration"),
            ("[[profile]]\nname = \"x\"\nclasses = []", "profile \"x\": classes"),
            ("[[profile]]\nname = \"x\"\nclasses = [\"a\"]\npre_hooks = [[]]", "profile \"x\": pre_hooks: hook 1"),
            ("[[profile]]\nname = \"x\"\nclasses = [\"a\"]\nhealth_checks = [{ http = { url = \"ftp://h\", status = 200 } }]", "not an http:// URL"),
            ("[[profile]]\nname = \"x\"\nclasses = [\"a\"]\nhealth_checks = [{ shell = \"rm\" }]", "deploy.toml"),
            ("[polcy]\n", "unknown field"),
            ("[rollout.default]\nerror_threshold = { count = 1 }\nsoak_secs = 0\nhost_timeout_secs = 60\nroll_back_failed_hosts = true\nwaves = []", "[rollout.default]: a rollout needs at least one wave"),
        ] {
            let e = DeployConfig::parse(text, "deploy.toml").unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(DeployConfig::default().windows.is_empty());
    }
}
