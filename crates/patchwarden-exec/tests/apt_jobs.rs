//! Package jobs on a real Debian 12 root (a copy of the mmdebstrap test root) with a local apt
//! repository inside it, built from synthetic packages (`pw-synthetic-*`, made by `dpkg-deb` here):
//! an upgrade to an exact version, a package whose maintainer script fails (reported, then rolled
//! back to version 1 with a downgrade), a failing health check, an interrupted dpkg run recovered
//! before the next job, and a job waiting for another manager's lock — or giving up after its
//! timeout.

use std::path::{Path, PathBuf};
use std::process::Command;

use patchwarden_exec::Executor;
use patchwarden_inventory::testing::SyntheticDeb;
use patchwarden_model::job::{
    HealthCheck, JobOperation, JobOutcome, JobStage, PackageJob, PackageTarget, RebootPolicy,
};

use patchwarden_inventory::testing::run_checked as run;

fn job(id: &str, operation: JobOperation, packages: &[(&str, &str)]) -> PackageJob {
    PackageJob {
        id: id.into(),
        operation,
        packages: packages
            .iter()
            .map(|(n, v)| PackageTarget {
                name: (*n).into(),
                arch: None,
                version: (*v).into(),
            })
            .collect(),
        reboot: RebootPolicy::IfRequired,
        pre_hooks: Vec::new(),
        post_hooks: Vec::new(),
        health_checks: Vec::new(),
        lock_timeout_secs: 30,
    }
}

fn installed(root: &Path, name: &str) -> Option<(String, String)> {
    let sys = patchwarden_inventory::SystemRoot::open(root).unwrap();
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    let state = status
        .split("\n\n")
        .find(|s| s.lines().any(|l| l == format!("Package: {name}")))
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Status: ")))
        .map(str::to_owned)?;
    let version = patchwarden_inventory::dpkg::read(&sys)
        .unwrap()
        .unwrap()
        .packages
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.version)
        .unwrap_or_default();
    Some((state, version))
}

/// A fresh copy of the test root with the local repository of synthetic packages.
fn prepared_root() -> Option<PathBuf> {
    let deb = |name, version, postinst| SyntheticDeb {
        name,
        source: None,
        version,
        postinst,
    };
    patchwarden_inventory::testing::debian_root_with_repository(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("exec-root"),
        &[
            deb("pw-synthetic-hello", "1.0-1", None),
            deb("pw-synthetic-hello", "1.0-2", None),
            deb("pw-synthetic-broken", "1.0-1", None),
            deb(
                "pw-synthetic-broken",
                "1.0-2",
                Some("#!/bin/sh\necho 'synthetic failure' >&2\nexit 1\n"),
            ),
            deb("pw-synthetic-other", "1.0-1", None),
        ],
    )
}

#[test]
fn jobs_install_exact_versions_fail_clearly_roll_back_and_recover() {
    let Some(root) = prepared_root() else { return };
    let exec = Executor::new(&root);

    // Version 1 of both, then the upgrade of hello to exactly 1.0-2.
    let first = exec.run(&job(
        "j1",
        JobOperation::Install,
        &[
            ("pw-synthetic-hello", "1.0-1"),
            ("pw-synthetic-broken", "1.0-1"),
        ],
    ));
    assert_eq!(first.outcome, JobOutcome::Succeeded, "{first:#?}");
    let up = exec.run(&job(
        "j2",
        JobOperation::Install,
        &[("pw-synthetic-hello", "1.0-2")],
    ));
    assert_eq!(up.outcome, JobOutcome::Succeeded, "{up:#?}");
    assert_eq!(installed(&root, "pw-synthetic-hello").unwrap().1, "1.0-2");
    assert!(!up.recovered && !up.reboot_now, "a root is never rebooted");

    // Targets apt would read as something else are refused before anything runs, whatever the
    // server let through: a trailing '-' (apt: remove) or '+', a name that is a pattern to apt.
    for (name, version, why) in [
        ("pw-synthetic-hello", "1.0-2-", "invalid deb version"),
        ("pw-synthetic-hello", "1.0+", "remove or install modifier"),
        (
            "pw-synthetic-hell.",
            "1.0-2",
            "apt would read the name as a pattern",
        ),
        ("pw-synthetic-*", "1.0-2", "not a deb package name"),
    ] {
        let refused = exec.run(&job("j-bad", JobOperation::Install, &[(name, version)]));
        match &refused.outcome {
            JobOutcome::Failed {
                stage: JobStage::Packages,
                reason,
            } => assert!(
                reason.contains("refused before running") && reason.contains(why),
                "{reason}"
            ),
            other => panic!("{name} {version}: {other:?}"),
        }
        assert!(refused.steps.is_empty(), "nothing ran: {:?}", refused.steps);
        assert_eq!(
            installed(&root, "pw-synthetic-hello").unwrap(),
            ("install ok installed".into(), "1.0-2".into())
        );
    }
    let apt_step = up
        .steps
        .iter()
        .find(|s| s.stage == JobStage::Packages)
        .unwrap();
    assert!(
        apt_step
            .command
            .contains(&"pw-synthetic-hello=1.0-2".to_owned()),
        "{apt_step:?}"
    );

    // A failing postinst: the job fails at the package stage, naming the script's complaint.
    let broken = exec.run(&job(
        "j3",
        JobOperation::Install,
        &[("pw-synthetic-broken", "1.0-2")],
    ));
    match &broken.outcome {
        JobOutcome::Failed {
            stage: JobStage::Packages,
            reason,
        } => {
            assert!(reason.contains("apt-get install"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(broken
        .steps
        .iter()
        .any(|s| s.output.contains("synthetic failure")));
    assert_eq!(
        installed(&root, "pw-synthetic-broken").unwrap().0,
        "install ok half-configured"
    );
    // The rollback to 1.0-1: downgrade allowed, the half-configured package replaced.
    let back = exec.run(&job(
        "j4",
        JobOperation::Rollback,
        &[("pw-synthetic-broken", "1.0-1")],
    ));
    assert_eq!(back.outcome, JobOutcome::Succeeded, "{back:#?}");
    assert_eq!(
        installed(&root, "pw-synthetic-broken").unwrap(),
        ("install ok installed".to_owned(), "1.0-1".to_owned())
    );
    assert!(back
        .steps
        .iter()
        .any(|s| s.command.contains(&"--allow-downgrades".to_owned())));

    // A failing health check fails the job after the packages went in.
    let mut checked = job(
        "j5",
        JobOperation::Install,
        &[("pw-synthetic-hello", "1.0-2")],
    );
    checked.health_checks = vec![HealthCheck::Command {
        argv: vec![
            "test".into(),
            "-e".into(),
            "/etc/pw-synthetic-service-ready".into(),
        ],
    }];
    let unhealthy = exec.run(&checked);
    assert!(
        matches!(
            &unhealthy.outcome,
            JobOutcome::Failed {
                stage: JobStage::HealthCheck,
                ..
            }
        ),
        "{unhealthy:#?}"
    );
    std::fs::write(root.join("etc/pw-synthetic-service-ready"), "").unwrap();
    assert_eq!(exec.run(&checked).outcome, JobOutcome::Succeeded);

    // An interrupted run (unpacked, never configured) is completed before the next job.
    run(Command::new("chroot").arg(&root).args([
        "dpkg",
        "--unpack",
        "/srv/repo/pw-synthetic-other_1.0-1_all.deb",
    ]));
    assert_eq!(
        installed(&root, "pw-synthetic-other").unwrap().0,
        "install ok unpacked"
    );
    assert_eq!(exec.interrupted_packages().unwrap(), ["pw-synthetic-other"]);
    let next = exec.run(&job(
        "j6",
        JobOperation::Install,
        &[("pw-synthetic-hello", "1.0-2")],
    ));
    assert_eq!(next.outcome, JobOutcome::Succeeded, "{next:#?}");
    assert!(next.recovered);
    assert_eq!(next.steps[0].command, ["dpkg", "--configure", "-a"]);
    assert_eq!(
        installed(&root, "pw-synthetic-other").unwrap().0,
        "install ok installed"
    );

    // Another manager holds the lock: a job waits for it, or gives up after its timeout.
    let lock = root.join("var/lib/dpkg/lock-frontend");
    let hold = |secs: u32| {
        Command::new("python3")
            .args([
                "-c",
                "import fcntl,sys,time; f=open(sys.argv[1],'w'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(float(sys.argv[2]))",
            ])
            .arg(&lock)
            .arg(secs.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_until_held = |child: &mut std::process::Child| {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "held");
    };
    let mut holder = hold(4);
    wait_until_held(&mut holder);
    let waited = exec.run(&job(
        "j7",
        JobOperation::Rollback,
        &[("pw-synthetic-hello", "1.0-1")],
    ));
    assert_eq!(waited.outcome, JobOutcome::Succeeded, "{waited:#?}");
    holder.wait().unwrap();
    let mut holder = hold(20);
    wait_until_held(&mut holder);
    let mut impatient = job(
        "j8",
        JobOperation::Install,
        &[("pw-synthetic-hello", "1.0-2")],
    );
    impatient.lock_timeout_secs = 1;
    let gave_up = exec.run(&impatient);
    holder.kill().unwrap();
    holder.wait().unwrap();
    match &gave_up.outcome {
        JobOutcome::Failed {
            stage: JobStage::Packages,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert!(
        gave_up
            .steps
            .iter()
            .any(|s| s.output.to_lowercase().contains("lock")),
        "{gave_up:#?}"
    );
    assert_eq!(
        installed(&root, "pw-synthetic-hello").unwrap().1,
        "1.0-1",
        "nothing changed"
    );
}
