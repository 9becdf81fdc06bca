//! Package jobs on an Alpine root: the real apk database format (the sample `lib/apk/db/installed`
//! of `tests/data`), read back by the inventory's apk reader to verify each job. apk-tools itself
//! is not installable on the Debian machines these tests run on, so `apk` here is a STAND-IN
//! (`tests/standin/apk`: it offers the versions its root lists and rewrites the database's
//! versions, nothing more): what is tested is the executor's apk path — the exact command, the
//! verification against the database, failures named — not apk.

use std::path::{Path, PathBuf};

use patchwarden_exec::Executor;
use patchwarden_model::job::{
    JobOperation, JobOutcome, JobStage, PackageJob, PackageTarget, RebootPolicy,
};

fn job(id: &str, operation: JobOperation, name: &str, version: &str) -> PackageJob {
    PackageJob {
        id: id.into(),
        operation,
        packages: vec![PackageTarget {
            name: name.into(),
            arch: None,
            version: version.into(),
        }],
        reboot: RebootPolicy::Never,
        pre_hooks: Vec::new(),
        post_hooks: Vec::new(),
        health_checks: Vec::new(),
        lock_timeout_secs: 30,
    }
}

fn version_of(root: &Path, name: &str) -> Option<String> {
    let sys = patchwarden_inventory::SystemRoot::open(root).unwrap();
    patchwarden_inventory::apk::read(&sys)
        .unwrap()
        .unwrap()
        .packages
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.version)
}

#[test]
fn apk_jobs_install_and_roll_back_exact_versions_and_name_what_cannot_be_had() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("apk-jobs-root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("lib/apk/db")).unwrap();
    std::fs::create_dir_all(root.join("etc/apk")).unwrap();
    std::fs::copy(
        manifest.join("../../tests/data/inventory/apk/installed"),
        root.join("lib/apk/db/installed"),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.18.2\n",
    )
    .unwrap();
    let before = version_of(&root, "zlib").expect("the sample has zlib");
    std::fs::write(
        root.join("etc/apk/pw-standin-offers"),
        format!(
            "# what the stand-in's repository offers (test data)\nzlib {before}\nzlib 1.3.1-r0\n"
        ),
    )
    .unwrap();
    // The stand-in comes first on PATH (this test binary runs this one test).
    let path = format!(
        "{}:{}",
        manifest.join("tests/standin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", path);
    let executor = Executor::new(&root);

    let up = executor.run(&job("a1", JobOperation::Install, "zlib", "1.3.1-r0"));
    assert_eq!(up.outcome, JobOutcome::Succeeded, "{up:#?}");
    let step = up
        .steps
        .iter()
        .find(|s| s.stage == JobStage::Packages)
        .unwrap();
    assert_eq!(
        step.command,
        [
            "apk",
            "--root",
            root.to_str().unwrap(),
            "add",
            "--no-interactive",
            "--wait",
            "30",
            "zlib=1.3.1-r0"
        ]
    );
    assert_eq!(version_of(&root, "zlib").as_deref(), Some("1.3.1-r0"));

    let missing = executor.run(&job("a2", JobOperation::Install, "zlib", "9.9-r0"));
    match &missing.outcome {
        JobOutcome::Failed { stage, reason } => {
            assert_eq!(*stage, JobStage::Packages);
            assert!(reason.contains("unable to select packages"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        version_of(&root, "zlib").as_deref(),
        Some("1.3.1-r0"),
        "nothing changed"
    );

    let back = executor.run(&job("a3", JobOperation::Rollback, "zlib", &before));
    assert_eq!(back.outcome, JobOutcome::Succeeded, "{back:#?}");
    assert_eq!(version_of(&root, "zlib"), Some(before));
    let _ = std::fs::remove_dir_all(&root);
}
