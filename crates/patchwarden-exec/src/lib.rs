//! Package jobs on a host (`/`) or a root filesystem (through `chroot`): what the agent runs.
//!
//! It owns the order of a job — recover an interrupted dpkg run (`dpkg --configure -a`), pre-hooks,
//! the package manager with exact versions (`apt-get install name=version`, non-interactive, old
//! configuration files kept, waiting for another manager's lock up to the job's timeout, downgrades
//! only for a rollback), verification that the database holds exactly the target versions,
//! post-hooks, the reboot decision, health checks (after the reboot when there is one: the agent
//! calls [`Executor::after_reboot`] when it starts again) — and the report of every command run with its
//! output. Programs run without a shell, from argv the server's configuration gave. dpkg/apt and
//! rpm/dnf systems (`dnf install name-E:V-R.arch`) and rpm/zypper systems (`zypper install
//! --oldpackage name=E:V-R`) and apk systems (`apk add name=version`), exact versions up or down.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use patchwarden_model::job::{
    HealthCheck, JobOperation, JobOutcome, JobReport, JobStage, JobStep, PackageJob, RebootPolicy,
};

/// Why the executor could not read the package database it works on.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Inventory(#[from] patchwarden_inventory::InventoryError),
}

/// dpkg states that mean a run was interrupted.
const INTERRUPTED: [&str; 5] = [
    "half-installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
];

/// Where and how jobs run.
#[derive(Clone, Debug)]
pub struct Executor {
    root: PathBuf,
    /// Bytes of each command's output kept (the end).
    pub max_output: usize,
    /// Arguments added to every dnf command (the host's own settings, from the agent's command
    /// line: `--releasever=9`, `--setopt=tsflags=justdb` on a test root).
    pub dnf_args: Vec<String>,
    /// Jobs may reboot this system (the running host by default; a root only when its agent was
    /// given a way to: a test host's "reboot").
    pub reboots: bool,
}

/// The package manager of a root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Dpkg,
    /// rpm with dnf (Red Hat family).
    Rpm,
    /// rpm with zypper (SUSE family).
    Zypper,
    /// apk-tools (Alpine).
    Apk,
}

impl Executor {
    pub fn new(root: &Path) -> Executor {
        Executor {
            root: root.to_path_buf(),
            max_output: 64 * 1024,
            dnf_args: Vec::new(),
            reboots: root == Path::new("/"),
        }
    }

    fn family(&self) -> Option<Family> {
        if self.root.join("var/lib/dpkg/status").is_file() {
            Some(Family::Dpkg)
        } else if self.root.join("lib/apk/db/installed").is_file() {
            Some(Family::Apk)
        } else if ["var/lib/rpm", "usr/lib/sysimage/rpm"]
            .iter()
            .any(|d| self.root.join(d).is_dir())
        {
            let suse = patchwarden_inventory::SystemRoot::open(&self.root)
                .ok()
                .and_then(|r| patchwarden_inventory::os_release::read(&r).ok())
                .and_then(|os| os.release)
                .is_some_and(|r| {
                    matches!(
                        r.distro,
                        patchwarden_model::Distro::Sles | patchwarden_model::Distro::Opensuse
                    )
                });
            Some(if suse { Family::Zypper } else { Family::Rpm })
        } else {
            None
        }
    }

    fn live(&self) -> bool {
        self.root == Path::new("/")
    }

    /// A program inside the root (or, `on_host`, a host program that works on the root itself).
    fn command(&self, argv: &[String], on_host: bool) -> Command {
        let mut c = if self.live() || on_host {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        } else {
            let mut c = Command::new("chroot");
            c.arg(&self.root).args(argv);
            c
        };
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .env("APT_LISTCHANGES_FRONTEND", "none")
            .env("NEEDRESTART_MODE", "l")
            .stdin(Stdio::null());
        c
    }

    fn step(&self, stage: JobStage, argv: Vec<String>) -> JobStep {
        self.step_at(stage, argv, false)
    }

    fn step_at(&self, stage: JobStage, argv: Vec<String>, on_host: bool) -> JobStep {
        if argv.is_empty() {
            return JobStep {
                stage,
                command: argv,
                status: None,
                output: "empty command".into(),
            };
        }
        let out = self.command(&argv, on_host).output();
        let (status, mut output) = match out {
            Ok(o) => {
                let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&o.stderr));
                // A NUL in a command's output would make the whole report unstorable (the server
                // refuses it; PostgreSQL cannot keep it): shown as U+FFFD like other bad bytes.
                if text.contains('\0') {
                    text = text.replace('\0', "\u{fffd}");
                }
                (o.status.code(), text)
            }
            Err(e) => (None, format!("cannot run {}: {e}", argv[0])),
        };
        if output.len() > self.max_output {
            let mut cut = output.len() - self.max_output;
            while !output.is_char_boundary(cut) {
                cut += 1;
            }
            output = format!("[… {cut} bytes cut …]\n{}", &output[cut..]);
        }
        JobStep {
            stage,
            command: argv,
            status,
            output,
        }
    }

    /// The package database as the inventory reads it (the same parsers; for dpkg `status` holds
    /// dpkg's want/flag/state words).
    fn installed(&self) -> Result<Vec<patchwarden_model::InstalledPackage>, ExecError> {
        let root = patchwarden_inventory::SystemRoot::open(&self.root)?;
        let set = match self.family() {
            Some(Family::Rpm | Family::Zypper) => patchwarden_inventory::rpm::read(&root),
            Some(Family::Apk) => patchwarden_inventory::apk::read(&root),
            _ => patchwarden_inventory::dpkg::read(&root),
        };
        Ok(set?.map(|set| set.packages).unwrap_or_default())
    }

    /// Packages the dpkg database holds in an interrupted state.
    pub fn interrupted_packages(&self) -> Result<Vec<String>, ExecError> {
        Ok(self
            .installed()?
            .into_iter()
            .filter(|p| {
                p.status
                    .as_deref()
                    .and_then(|s| s.split_whitespace().nth(2))
                    .is_some_and(|state| INTERRUPTED.contains(&state))
            })
            .map(|p| p.name)
            .collect())
    }

    /// Runs a job to its end or its first failure.
    pub fn run(&self, job: &PackageJob) -> JobReport {
        let mut report = JobReport {
            id: job.id.clone(),
            outcome: JobOutcome::Succeeded,
            steps: Vec::new(),
            recovered: false,
            reboot_required: false,
            reboot_now: false,
        };
        if let Err((stage, reason)) = self.run_stages(job, &mut report) {
            report.outcome = JobOutcome::Failed { stage, reason };
        }
        report
    }

    fn run_stages(
        &self,
        job: &PackageJob,
        report: &mut JobReport,
    ) -> Result<(), (JobStage, String)> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        let Some(family) = self.family() else {
            return Err((
                JobStage::Packages,
                "no dpkg, rpm or apk database: no package manager this executor drives".into(),
            ));
        };
        // 1. An interrupted dpkg run is completed first (a rollback goes on even if that fails:
        //    it replaces the package that broke it). rpm transactions are not left half-done.
        let interrupted = if family != Family::Dpkg {
            Vec::new()
        } else {
            self.interrupted_packages()
                .map_err(|e| (JobStage::Recover, format!("reading the dpkg database: {e}")))?
        };
        if !interrupted.is_empty() {
            let step = self.step(JobStage::Recover, s(&["dpkg", "--configure", "-a"]));
            let ok = step.status == Some(0);
            report.steps.push(step);
            report.recovered = ok;
            if !ok && job.operation == JobOperation::Install {
                return Err((
                    JobStage::Recover,
                    format!(
                        "dpkg --configure -a failed (interrupted: {})",
                        interrupted.join(", ")
                    ),
                ));
            }
        }
        // Every target checked again here, whatever the server let through (a job row written
        // straight into the database, a server of another version): by the family's name grammar,
        // the scheme's version parser, and on dpkg no name apt would read as a pattern. Nothing
        // has run yet when a target is refused.
        let scheme = match family {
            Family::Dpkg => patchwarden_version::Scheme::Deb,
            Family::Rpm | Family::Zypper => patchwarden_version::Scheme::Rpm,
            Family::Apk => patchwarden_version::Scheme::Apk,
        };
        let installed_names: std::collections::HashSet<String> = self
            .installed()
            .map_err(|e| {
                (
                    JobStage::Packages,
                    format!("reading the package database: {e}"),
                )
            })?
            .into_iter()
            .map(|p| p.name)
            .collect();
        for p in &job.packages {
            p.check_on(scheme, |n| installed_names.contains(n))
                .map_err(|e| (JobStage::Packages, format!("refused before running: {e}")))?;
        }
        // 2. Pre-hooks.
        for hook in &job.pre_hooks {
            self.checked(report, JobStage::PreHook, hook.clone())?;
        }
        // 3. The package manager, exact versions.
        let (argv, on_host) = match family {
            Family::Dpkg => (self.apt_command(job), false),
            Family::Rpm => (self.dnf_command(job), true),
            Family::Zypper => (self.zypper_command(job), true),
            Family::Apk => (self.apk_command(job), true),
        };
        self.checked_at(report, JobStage::Packages, argv, on_host)?;
        // 4. The database holds exactly the targets.
        let installed = self
            .installed()
            .map_err(|e| (JobStage::Verify, e.to_string()))?;
        for p in &job.packages {
            let found = installed
                .iter()
                .find(|i| i.name == p.name && p.arch.as_ref().is_none_or(|a| *a == i.arch));
            match found {
                Some(i) if i.version == p.version => {}
                Some(i) => {
                    return Err((
                        JobStage::Verify,
                        format!("{} is at {}, not {}", p.name, i.version, p.version),
                    ))
                }
                None => return Err((JobStage::Verify, format!("{} is not installed", p.name))),
            }
        }
        // 5. Post-hooks.
        for hook in &job.post_hooks {
            self.checked(report, JobStage::PostHook, hook.clone())?;
        }
        // 6. The reboot decision; then health checks now, or (rebooting) after the reboot: the
        //    agent runs them with `after_reboot` when it starts again.
        report.reboot_required = job.reboot == RebootPolicy::Always
            || self.root.join("var/run/reboot-required").exists()
            || self.root.join("run/reboot-required").exists();
        report.reboot_now = self.reboots
            && match job.reboot {
                RebootPolicy::Never => false,
                RebootPolicy::IfRequired => report.reboot_required,
                RebootPolicy::Always => true,
            };
        if !report.reboot_now {
            for check in &job.health_checks {
                self.health_check(report, check)?;
            }
        }
        Ok(())
    }

    /// After the reboot a job asked for: its health checks, added to its report (a failure fails
    /// the job at the health-check stage).
    pub fn after_reboot(&self, job: &PackageJob, report: &mut JobReport) {
        if report.outcome != JobOutcome::Succeeded {
            return;
        }
        for check in &job.health_checks {
            if let Err((stage, reason)) = self.health_check(report, check) {
                report.outcome = JobOutcome::Failed {
                    stage,
                    reason: format!("after the reboot: {reason}"),
                };
                return;
            }
        }
    }

    /// Runs the reboot command (on the host) and records it in the report; a failure fails the
    /// job at the reboot stage. True when the reboot was started.
    pub fn record_reboot(&self, report: &mut JobReport, argv: &[String]) -> bool {
        let step = self.step_at(JobStage::Reboot, argv.to_vec(), true);
        let ok = step.status == Some(0);
        if !ok {
            report.outcome = JobOutcome::Failed {
                stage: JobStage::Reboot,
                reason: format!(
                    "{} exited with {:?}: {}",
                    argv.join(" "),
                    step.status,
                    step.output.lines().last().unwrap_or("")
                ),
            };
            report.reboot_now = false;
        }
        report.steps.push(step);
        ok
    }

    /// `apt-get install name=version…`: non-interactive, old configuration files kept, waiting for
    /// another manager's lock up to the job's timeout, downgrades only for a rollback.
    fn apt_command(&self, job: &PackageJob) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        let mut argv = s(&[
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "-o",
        ]);
        argv.push(format!("DPkg::Lock::Timeout={}", job.lock_timeout_secs));
        if job.operation == JobOperation::Rollback {
            argv.push("--allow-downgrades".into());
        }
        for p in &job.packages {
            argv.push(match &p.arch {
                Some(a) => format!("{}:{a}={}", p.name, p.version),
                None => format!("{}={}", p.name, p.version),
            });
        }
        argv
    }

    /// `dnf install name-E:V-R.arch…` (dnf installs exactly these, upgrading or, for a rollback,
    /// downgrading); on a root other than `/` dnf runs from the host with `--installroot`, reading
    /// the root's own repository configuration. dnf has no lock timeout: it waits for another
    /// dnf itself.
    fn dnf_command(&self, job: &PackageJob) -> Vec<String> {
        let mut argv: Vec<String> = vec!["dnf".into()];
        if !self.live() {
            argv.push(format!("--installroot={}", self.root.display()));
        }
        argv.extend([
            "-y".into(),
            "-q".into(),
            "--setopt=install_weak_deps=False".into(),
        ]);
        argv.extend(self.dnf_args.iter().cloned());
        argv.push("install".into());
        for p in &job.packages {
            argv.push(match &p.arch {
                Some(a) => format!("{}-{}.{a}", p.name, p.version),
                None => format!("{}-{}", p.name, p.version),
            });
        }
        argv
    }

    /// `zypper [--root ROOT] --non-interactive install --oldpackage name=E:V-R…` (exact versions;
    /// `--oldpackage` lets a rollback go down), no recommends; zypper waits for another's lock up to
    /// the job's timeout (`ZYPP_LOCK_TIMEOUT`, through `env`).
    fn zypper_command(&self, job: &PackageJob) -> Vec<String> {
        let mut argv: Vec<String> = vec![
            "env".into(),
            format!("ZYPP_LOCK_TIMEOUT={}", job.lock_timeout_secs),
            "zypper".into(),
        ];
        if !self.live() {
            argv.push(format!("--root={}", self.root.display()));
        }
        argv.extend(
            [
                "--non-interactive",
                "install",
                "--oldpackage",
                "--no-recommends",
            ]
            .map(String::from),
        );
        for p in &job.packages {
            argv.push(match &p.arch {
                Some(a) => format!("{}.{a}={}", p.name, p.version),
                None => format!("{}={}", p.name, p.version),
            });
        }
        argv
    }

    /// `apk [--root ROOT] add --no-interactive --wait N name=version…`: apk installs exactly these
    /// versions (up, or down for a rollback), waiting for another apk's lock up to the job's
    /// timeout; on a root apk runs from the host, reading the root's own repositories.
    fn apk_command(&self, job: &PackageJob) -> Vec<String> {
        let mut argv: Vec<String> = vec!["apk".into()];
        if !self.live() {
            argv.push("--root".into());
            argv.push(self.root.display().to_string());
        }
        argv.extend(["add".into(), "--no-interactive".into(), "--wait".into()]);
        argv.push(job.lock_timeout_secs.to_string());
        for p in &job.packages {
            argv.push(format!("{}={}", p.name, p.version));
        }
        argv
    }

    /// Runs a step; a non-zero exit fails the job with the step's last output lines.
    fn checked(
        &self,
        report: &mut JobReport,
        stage: JobStage,
        argv: Vec<String>,
    ) -> Result<(), (JobStage, String)> {
        self.checked_at(report, stage, argv, false)
    }

    fn checked_at(
        &self,
        report: &mut JobReport,
        stage: JobStage,
        argv: Vec<String>,
        on_host: bool,
    ) -> Result<(), (JobStage, String)> {
        let step = self.step_at(stage, argv, on_host);
        let ok = step.status == Some(0);
        let reason = (!ok).then(|| {
            let tail: Vec<&str> = step.output.lines().rev().take(3).collect();
            format!(
                "{} exited with {}: {}",
                step.command.join(" "),
                step.status.map_or("a signal".to_owned(), |c| c.to_string()),
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            )
        });
        report.steps.push(step);
        match reason {
            None => Ok(()),
            Some(r) => Err((stage, r)),
        }
    }

    fn health_check(
        &self,
        report: &mut JobReport,
        check: &HealthCheck,
    ) -> Result<(), (JobStage, String)> {
        match check {
            HealthCheck::Command { argv } => {
                self.checked(report, JobStage::HealthCheck, argv.clone())
            }
            HealthCheck::SystemdUnit { unit } => self.checked(
                report,
                JobStage::HealthCheck,
                vec![
                    "systemctl".into(),
                    "is-active".into(),
                    "--quiet".into(),
                    unit.clone(),
                ],
            ),
            HealthCheck::Http { url, status } => {
                let got = http_status(url);
                report.steps.push(JobStep {
                    stage: JobStage::HealthCheck,
                    command: vec!["GET".into(), url.clone()],
                    status: got.as_ref().ok().map(|s| i32::from(*s)),
                    output: got
                        .as_ref()
                        .err()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                });
                match got {
                    Ok(s) if s == *status => Ok(()),
                    Ok(s) => Err((
                        JobStage::HealthCheck,
                        format!("{url} answered {s}, not {status}"),
                    )),
                    Err(e) => Err((JobStage::HealthCheck, format!("{url}: {e}"))),
                }
            }
        }
    }
}

/// Why an HTTP health check got no status.
#[derive(Debug, thiserror::Error)]
pub enum HttpCheckError {
    #[error("only http:// URLs (use a command check for https)")]
    NotHttp,
    #[error("no address")]
    NoAddress,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not an HTTP answer: {0:?}")]
    NotHttpAnswer(String),
}

/// The status code of `GET url` (`http://host[:port]/path` only; 10 s limit).
fn http_status(url: &str) -> Result<u16, HttpCheckError> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").ok_or(HttpCheckError::NotHttp)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let timeout = std::time::Duration::from_secs(10);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&address)?
        .next()
        .ok_or(HttpCheckError::NoAddress)?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| HttpCheckError::NotHttpAnswer(line.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A NUL in a command's output (a hook printing binary data) never reaches the report, which
    /// the server would refuse whole: it is shown as U+FFFD, the rest kept.
    #[test]
    fn a_nul_in_a_commands_output_is_replaced() {
        let exec = Executor::new(Path::new("/"));
        let step = exec.step_at(
            JobStage::HealthCheck,
            vec!["printf".into(), "a\\0b".into()],
            true,
        );
        assert_eq!(step.status, Some(0));
        assert_eq!(step.output, "a\u{fffd}b");
    }
}
