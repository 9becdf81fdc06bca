//! Plans against real apt: a root whose dpkg database real `dpkg` filled with version 1 of three
//! test packages, a local apt repository (built with `dpkg-deb` and `dpkg-scanpackages`) holding
//! versions 1 and 2, and `apt-get update` run on the root. The packages and the fixes are synthetic
//! and named so (`pw-synthetic-*`, advisory `PW-SYNTHETIC-*`). The upgrades we compute must be the
//! ones `apt-get -s upgrade` simulates on the same root; the plan picks the versions the
//! repository offers, closes the findings they fix, and says what it cannot fix and what the
//! baseline held.

use std::path::{Path, PathBuf};
use std::process::Command;

use patchwarden_deploy::baseline::{Baseline, BaselineSpec, UpdateCandidate};
use patchwarden_deploy::plan::{all_upgrades, plan_host, WantedFix};
use patchwarden_inventory::SystemRoot;
use patchwarden_version::Scheme;

fn tools_available() -> bool {
    let ok = ["dpkg-deb", "dpkg-scanpackages", "apt-get", "dpkg"]
        .iter()
        .all(|t| {
            Command::new(t)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if !ok {
        if std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("dpkg-deb, dpkg-scanpackages (dpkg-dev) and apt-get are required");
        }
        eprintln!("SKIPPED: dpkg-deb, dpkg-scanpackages or apt-get missing");
    }
    ok
}

use patchwarden_inventory::testing::run_checked as run;

fn build_deb(dir: &Path, name: &str, source: &str, version: &str) -> PathBuf {
    patchwarden_inventory::testing::build_synthetic_deb(
        dir,
        &patchwarden_inventory::testing::SyntheticDeb {
            name,
            source: Some(source),
            version,
            postinst: None,
        },
    )
}

fn apt(root: &Path) -> Command {
    let mut c = Command::new("apt-get");
    c.arg(format!("-oDir={}", root.display()))
        .arg(format!(
            "-oDir::State::status={}/var/lib/dpkg/status",
            root.display()
        ))
        .args(["-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", "-q"]);
    c
}

#[test]
fn plans_agree_with_apt_and_take_the_repository_versions() {
    if !tools_available() {
        return;
    }
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plan-apt");
    let _ = std::fs::remove_dir_all(&work);
    let (repo, root) = (work.join("repo"), work.join("root"));
    std::fs::create_dir_all(&repo).unwrap();
    // (binary, source, installed version, versions in the repository)
    let packages = [
        (
            "pw-synthetic-hello",
            "pw-synthetic-hello",
            "1.0-1",
            vec!["1.0-1", "1.0-2"],
        ),
        (
            "pw-synthetic-libfoo1",
            "pw-synthetic-foo",
            "2.0-1",
            vec!["2.0-1", "2.0-3"],
        ),
        (
            "pw-synthetic-foo-tools",
            "pw-synthetic-foo",
            "2.0-1",
            vec!["2.0-1", "2.0-3"],
        ),
        (
            "pw-synthetic-keep",
            "pw-synthetic-keep",
            "1:0.9-1",
            vec!["1:0.9-1"],
        ),
    ];
    for dir in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    for (name, source, installed, offered) in &packages {
        for v in offered {
            let deb = build_deb(&work, name, source, v);
            std::fs::copy(&deb, repo.join(deb.file_name().unwrap())).unwrap();
        }
        let deb = work.join(format!("{name}_{installed}_all.deb"));
        let deb = if deb.exists() {
            deb
        } else {
            build_deb(&work, name, source, installed)
        };
        run(Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args([
                "--force-not-root",
                "--force-script-chrootless",
                "--force-unsafe-io",
                "-i",
            ])
            .arg(&deb));
    }
    patchwarden_inventory::testing::index_repository(&repo);
    std::fs::write(
        root.join("etc/apt/sources.list"),
        format!("deb [trusted=yes] file:{} ./\n", repo.display()),
    )
    .unwrap();
    run(apt(&root).arg("update"));

    let sys = SystemRoot::open(&root).unwrap();
    let installed = patchwarden_inventory::dpkg::read(&sys)
        .unwrap()
        .unwrap()
        .packages;
    assert_eq!(installed.len(), 4);
    let lists = patchwarden_inventory::apt_lists::read(&sys).unwrap();
    assert_eq!(lists.files.len(), 1, "{:?}", lists.files);
    assert!(!lists.pinned);

    // Our upgrades = apt's simulated ones.
    let simulated = run(apt(&root).args(["-s", "upgrade"]));
    let mut theirs: Vec<(String, String)> = simulated
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Inst ")?;
            let name = rest.split_whitespace().next()?;
            let to = rest.split_once('(')?.1.split_whitespace().next()?;
            Some((name.to_owned(), to.to_owned()))
        })
        .collect();
    theirs.sort();
    let ours: Vec<(String, String)> = all_upgrades(Scheme::Deb, &installed, &lists.packages)
        .into_iter()
        .map(|u| (u.name, u.to))
        .collect();
    assert_eq!(ours, theirs, "apt-get -s upgrade:\n{simulated}");
    assert_eq!(ours.len(), 3);

    // A plan for three synthetic findings under a baseline that denies one.
    let candidate = |id: &str, cve: &str| UpdateCandidate {
        package: String::new(),
        advisory_id: Some(id.into()),
        cves: vec![cve.into()],
        severity: Some("high".into()),
        kev: false,
        classification: None,
        released: Some("2026-11-01".into()),
    };
    let fixes = vec![
        WantedFix {
            package: "pw-synthetic-foo".into(),
            fixed_version: "2.0-2".into(),
            candidate: candidate("PW-SYNTHETIC-1", "CVE-0000-0001"),
        },
        WantedFix {
            package: "pw-synthetic-keep".into(),
            fixed_version: "1:0.9-2".into(),
            candidate: candidate("PW-SYNTHETIC-2", "CVE-0000-0002"),
        },
        WantedFix {
            package: "pw-synthetic-hello".into(),
            fixed_version: "1.0-2".into(),
            candidate: candidate("PW-SYNTHETIC-3", "CVE-0000-0003"),
        },
    ];
    let baseline = Baseline::parse(&BaselineSpec {
        name: "test".into(),
        deny: vec!["PW-SYNTHETIC-3".into()],
        ..Default::default()
    })
    .unwrap();
    let today = "2026-12-02".parse().unwrap();
    let plan = plan_host(
        Scheme::Deb,
        &installed,
        &lists.packages,
        &fixes,
        &baseline,
        today,
    );
    let updates: Vec<(&str, &str, &str)> = plan
        .updates
        .iter()
        .map(|u| (u.name.as_str(), u.from.as_str(), u.to.as_str()))
        .collect();
    // Both binaries of the fixed source move to the repository's 2.0-3 (above the fixed 2.0-2).
    assert_eq!(
        updates,
        [
            ("pw-synthetic-foo-tools", "2.0-1", "2.0-3"),
            ("pw-synthetic-libfoo1", "2.0-1", "2.0-3")
        ]
    );
    assert!(plan
        .updates
        .iter()
        .all(|u| u.closes.contains("PW-SYNTHETIC-1")));
    assert_eq!(plan.unavailable.len(), 1);
    assert_eq!(plan.unavailable[0].advisory, "PW-SYNTHETIC-2");
    assert_eq!(
        plan.unavailable[0].best_available.as_deref(),
        Some("1:0.9-1")
    );
    assert_eq!(plan.held.len(), 1);
    assert!(plan.held[0].1.contains("denied"), "{:?}", plan.held);
    assert!(!plan.reboot_required);

    // The repository moves on: a new plan takes the newer version (the stored plan keeps its own).
    let deb = build_deb(&work, "pw-synthetic-libfoo1", "pw-synthetic-foo", "2.0-4");
    std::fs::copy(&deb, repo.join(deb.file_name().unwrap())).unwrap();
    patchwarden_inventory::testing::index_repository(&repo);
    run(apt(&root).arg("update"));
    let moved = patchwarden_inventory::apt_lists::read(&sys).unwrap();
    let replanned = plan_host(
        Scheme::Deb,
        &installed,
        &moved.packages,
        &fixes,
        &baseline,
        today,
    );
    let libfoo = replanned
        .updates
        .iter()
        .find(|u| u.name == "pw-synthetic-libfoo1")
        .unwrap();
    assert_eq!(libfoo.to, "2.0-4");
    let tools = replanned
        .updates
        .iter()
        .find(|u| u.name == "pw-synthetic-foo-tools")
        .unwrap();
    assert_eq!(tools.to, "2.0-3", "each binary its own candidate");
}
