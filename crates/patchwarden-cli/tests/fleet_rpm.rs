//! RPM plans and changes end to end: a local repository (createrepo_c) with a SYNTHETIC
//! `updateinfo.xml`, real dnf (an AlmaLinux root) and real zypper (an openSUSE root).
mod fleet;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use fleet::*;
use support::*;

/// Builds noarch RPMs `name-version` (empty, synthetic) into `dir/build`; their paths.
fn synthetic_rpms(dir: &Path, packages: &[(&str, &str)]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (name, full) in packages {
        let (version, release) = full.rsplit_once('-').unwrap();
        let spec = dir.join(format!("{name}-{full}.spec"));
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: synthetic test package (not a real package)\nLicense: MIT\nBuildArch: noarch\n%description\nsynthetic\n%files\n"
            ),
        )
        .unwrap();
        let st = Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", dir.join("build").display()))
            .arg(&spec)
            .output()
            .unwrap();
        assert!(st.status.success(), "rpmbuild {name}: {st:?}");
        out.push(dir.join(format!("build/RPMS/noarch/{name}-{full}.noarch.rpm")));
    }
    out
}

/// One SYNTHETIC updateinfo entry (ids PW-SYNTHETIC-*, CVE-2999-*; the text says so).
fn synthetic_update(
    id: &str,
    kind: &str,
    severity: &str,
    cve: Option<&str>,
    package: &str,
    full: &str,
) -> String {
    let (version, release) = full.rsplit_once('-').unwrap();
    let reference = cve.map(|c| format!(r#"<references><reference href="https://patchwarden.invalid/{c}" id="{c}" type="cve" title="{c}"/></references>"#)).unwrap_or_default();
    format!(
        r#"<update from="tests@patchwarden.invalid" status="final" type="{kind}" version="1"><id>{id}</id><title>SYNTHETIC {kind} update of {package}</title><severity>{severity}</severity><issued date="2026-11-01 00:00:00"/>{reference}<description>SYNTHETIC test advisory of patchwarden's tests, not a real advisory</description><pkglist><collection short="pw"><name>pw</name><package name="{package}" version="{version}" release="{release}" epoch="0" arch="noarch"><filename>{package}-{full}.noarch.rpm</filename></package></collection></pkglist></update>"#
    )
}

/// The RPM package manager an end-to-end test drives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RpmManager {
    Dnf,
    Zypper,
}

/// RPM end to end: a root with a real rpmdb (rpmbuild + `rpm --justdb`), a local repository
/// (createrepo_c) with a SYNTHETIC `updateinfo.xml` added by modifyrepo_c, real dnf (an AlmaLinux
/// root) or real zypper (an openSUSE root) on it. The plan under a security-only baseline agrees
/// with `dnf updateinfo list --security` / `zypper list-patches --category security` on the same
/// root and repository; a standard change from that plan is applied by the agent with the same
/// manager (dnf with `tsflags=justdb`; zypper installs the empty packages for real), verified, then
/// the whole change is rolled back to the recorded versions.
#[test]
fn an_rpm_plan_agrees_with_dnf_and_dnf_applies_and_rolls_back_the_change() {
    rpm_change_end_to_end(RpmManager::Dnf);
}

#[test]
fn an_rpm_plan_agrees_with_zypper_and_zypper_applies_and_rolls_back_the_change() {
    rpm_change_end_to_end(RpmManager::Zypper);
}

fn rpm_change_end_to_end(manager: RpmManager) {
    let tool = match manager {
        RpmManager::Dnf => "dnf",
        RpmManager::Zypper => "zypper",
    };
    let tools = ["rpmbuild", "createrepo_c", "modifyrepo_c", "rpm", tool];
    if !tools.iter().all(|t| tool_available(t)) {
        assert!(
            std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() != Ok("1"),
            "{tools:?} are required"
        );
        eprintln!("SKIPPED: {tools:?} needed");
        return;
    }
    let work = scratch(&format!("fleet-rpm-{tool}"));
    let v1 = [
        ("pw-synthetic-rpmapp", "1.0-1"),
        ("pw-synthetic-rpmlib", "1.0-1"),
        ("pw-synthetic-rpmtool", "1.0-1"),
    ];
    let installed = synthetic_rpms(&work, &v1);
    synthetic_rpms(
        &work,
        &[
            ("pw-synthetic-rpmapp", "1.0-2"),
            ("pw-synthetic-rpmlib", "1.0-2"),
            ("pw-synthetic-rpmtool", "1.0-2"),
            ("pw-synthetic-rpmtool", "1.0-3"),
        ],
    );
    let repo = work.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for f in std::fs::read_dir(work.join("build/RPMS/noarch")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, repo.join(f.file_name().unwrap())).unwrap();
    }
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(Command::new("createrepo_c").arg("-q").arg(&repo));
    let updateinfo = work.join("updateinfo.xml");
    std::fs::write(
        &updateinfo,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>{}{}{}</updates>\n",
            synthetic_update(
                "PW-SYNTHETIC-2026:0001",
                "security",
                "Important",
                Some("CVE-2999-0701"),
                "pw-synthetic-rpmapp",
                "1.0-2"
            ),
            synthetic_update(
                "PW-SYNTHETIC-2026:0002",
                "bugfix",
                "None",
                None,
                "pw-synthetic-rpmlib",
                "1.0-2"
            ),
            synthetic_update(
                "PW-SYNTHETIC-2026:0003",
                "security",
                "Low",
                Some("CVE-2999-0702"),
                "pw-synthetic-rpmtool",
                "1.0-2"
            ),
        ),
    )
    .unwrap();
    run(Command::new("modifyrepo_c")
        .arg("--mdtype=updateinfo")
        .arg(&updateinfo)
        .arg(repo.join("repodata")));
    // The root: a real rpmdb at /var/lib/rpm (Debian's rpm defaults elsewhere: a HOME with
    // .rpmmacros tells dnf's librpm), the repository configured inside it.
    let root = work.join("root");
    let rpm = |args: &[&str]| -> String {
        run(Command::new("rpm")
            .arg("--root")
            .arg(&root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args))
    };
    std::fs::create_dir_all(&root).unwrap();
    rpm(&["--initdb"]);
    let mut install = Command::new("rpm");
    install
        .arg("--root")
        .arg(&root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            "--justdb",
            "--nodeps",
            "--noscripts",
            "--nosignature",
        ])
        .args(&installed);
    run(&mut install);
    let home = work.join("home");
    write(&home.join(".rpmmacros"), "%_dbpath /var/lib/rpm\n");
    let manage = |args: &[&str]| -> String {
        let mut cmd = Command::new(tool);
        match manager {
            RpmManager::Dnf => cmd
                .arg(format!("--installroot={}", root.display()))
                .args(["--releasever=9", "-q"]),
            RpmManager::Zypper => cmd
                .arg(format!("--root={}", root.display()))
                .arg("--non-interactive"),
        };
        run(cmd.args(args).env("HOME", &home))
    };
    match manager {
        RpmManager::Dnf => {
            write(&root.join("etc/os-release"), "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"AlmaLinux 9.4 (synthetic test root)\"\n");
            write(
                &root.join("etc/yum.repos.d/local.repo"),
                &format!(
                    "[local]\nname=local synthetic repository\nbaseurl=file://{}\ngpgcheck=0\n",
                    repo.display()
                ),
            );
        }
        RpmManager::Zypper => {
            write(&root.join("etc/os-release"), "NAME=\"openSUSE Leap\"\nID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\nVERSION_ID=\"15.5\"\nPRETTY_NAME=\"openSUSE Leap 15.5 (synthetic test root)\"\n");
            manage(&[
                "addrepo",
                "-G",
                &format!("file://{}", repo.display()),
                "local",
            ]);
            manage(&["refresh"]);
        }
    }
    let versions = || -> Vec<String> {
        let mut v: Vec<String> = rpm(&["-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\\n"])
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    // The oracle: the manager's own list of applicable security advisories (dnf also fills its
    // cache here, which the plan reads as apt's lists are read; zypper's `refresh` did).
    let (listed, theirs): (String, BTreeSet<String>) = match manager {
        RpmManager::Dnf => {
            let listed = manage(&["updateinfo", "list", "--security"]);
            let ids = listed
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() == 3).then(|| f[0].to_owned())
                })
                .collect();
            (listed, ids)
        }
        RpmManager::Zypper => {
            let listed = manage(&["list-patches", "--category", "security"]);
            // `repository | name | category | severity | interactive | status | summary`
            let ids = listed
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split('|').map(str::trim).collect();
                    (f.len() >= 6 && f[5] == "needed").then(|| f[1].to_owned())
                })
                .collect();
            (listed, ids)
        }
    };
    assert_eq!(theirs.len(), 2, "{listed}");
    let db = work.join("kb.db").display().to_string();
    let baseline = work.join("security.toml");
    write(
        &baseline,
        "name = \"security only\"\nclassifications = [\"security\"]\n",
    );
    let plan_cmd = |format: &str| -> String {
        ok(
            &bin()
                .args(["--db", &db, "plan", "--root"])
                .arg(&root)
                .arg("--baseline")
                .arg(&baseline)
                .args(["--today", "2026-12-02", "--format", format])
                .output()
                .unwrap(),
            "plan",
        )
    };
    let plan: serde_json::Value = serde_json::from_str(&plan_cmd("json")).unwrap();
    let ours: BTreeSet<(String, String)> = plan["updates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| {
            let nevra = format!(
                "{}-{}.{}",
                u["name"].as_str().unwrap(),
                u["to"].as_str().unwrap(),
                u["arch"].as_str().unwrap()
            );
            u["closes"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |a| (a.as_str().unwrap().to_owned(), nevra.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    // The same advisories; the plan installs the repository's newest (1.0-3 of the tool, beyond
    // its advisory's 1.0-2).
    let advisories: BTreeSet<String> = ours.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(advisories, theirs, "ours {ours:?}, {tool}: {listed}");
    assert!(
        ours.contains(&(
            "PW-SYNTHETIC-2026:0003".into(),
            "pw-synthetic-rpmtool-1.0-3.noarch".into()
        )),
        "{ours:?}"
    );
    assert_eq!(plan["held"][0][0], "PW-SYNTHETIC-2026:0002", "{plan:#}");

    // The change, by an agent running the same manager on the root.
    let state = work.join("server-state");
    let server = start_server(&db, &state, "127.0.0.1:0", &["--rollout-tick-secs", "1"]);
    let admin = server.admin_token.clone().unwrap();
    let agent_dir = work.join("agent");
    ok(
        &enroll(
            &agent_dir,
            &server,
            &enroll_token(&db, &["--uses", "1"]),
            &root,
            &format!("{tool}-synthetic"),
        ),
        "enroll",
    );
    let log = std::fs::File::create(work.join("agent.log")).unwrap();
    let mut agent = Command::new(agent_bin());
    agent
        .arg("--state-dir")
        .arg(&agent_dir)
        .args(["run", "--root"])
        .arg(&root)
        .env("HOME", &home)
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if manager == RpmManager::Dnf {
        agent.args([
            "--dnf-arg=--releasever=9",
            "--dnf-arg=--setopt=tsflags=justdb,noscripts",
        ]);
    }
    let _agent = AgentProcess(agent.spawn().unwrap());
    let host: i64 = wait_until("the RPM host's inventory", 60, || {
        let hosts = query(&server, &state, &admin, &["hosts"]);
        let id = hosts[0]["id"]
            .as_i64()
            .filter(|_| hosts[0]["packages"].as_i64() == Some(3));
        (id, hosts)
    });
    let mut create = vec!["--host".to_owned(), host.to_string()];
    create.extend(plan_cmd("args").split_whitespace().map(str::to_owned));
    let url = server.url.clone();
    let cli = |args: &[&str]| -> String {
        ok(
            &bin()
                .args(["--server", &url, "--token", &admin, "--ca"])
                .arg(state.join("ca.pem"))
                .args(args)
                .output()
                .unwrap(),
            &format!("{args:?}"),
        )
    };
    // The server plans the host from what its agent reported (the dnf or zypper cache): the same
    // advisories as the manager's own list.
    let today = ["--today", "2026-12-02", "--format", "json"];
    let remote: serde_json::Value = wait_until("the server's plan", 60, || {
        let mut args = vec!["plan", "--host"];
        let id = host.to_string();
        args.push(&id);
        args.extend(["--baseline", baseline.to_str().unwrap()]);
        args.extend(today);
        let plans: serde_json::Value = serde_json::from_str(&cli(&args)).unwrap();
        let ready = plans[0]["offers_reported_at"].is_string();
        (ready.then(|| plans.clone()), plans)
    });
    let planned: BTreeSet<String> = remote[0]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["closes"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(planned, theirs, "{remote:#}");
    let mut args = vec![
        "change",
        "create",
        "--title",
        "synthetic RPM security updates",
        "--kind",
        "standard",
    ];
    args.extend(create.iter().map(String::as_str));
    let id = cli(&args).trim().to_owned();
    assert!(cli(&["change", "act", "submit", &id]).contains("approved"));
    let done = wait_until("the RPM change completed", 120, || {
        let doc = http_get(&server, &state, &admin, &format!("/v1/changes/{id}"));
        (
            (doc["lifecycle"]["state"] == "completed").then(|| doc.clone()),
            doc,
        )
    });
    assert_eq!(
        versions(),
        [
            "pw-synthetic-rpmapp-1.0-2",
            "pw-synthetic-rpmlib-1.0-1",
            "pw-synthetic-rpmtool-1.0-3"
        ],
        "{done:#}"
    );
    let job = done["runs"][host.to_string()]["jobs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = http_get(&server, &state, &admin, &format!("/v1/jobs/{job}"));
    let packages_step = job["report"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "packages")
        .unwrap()
        .clone();
    let command: Vec<&str> = packages_step["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(command.contains(&tool), "{job:#}");
    // The whole change rolled back: the manager returns the host to the recorded versions.
    assert!(cli(&["change", "act", "roll-back", &id, "--comment", "test"]).contains("rolled_back"));
    let back = wait_until("the RPM host rolled back", 120, || {
        let doc = http_get(&server, &state, &admin, &format!("/v1/changes/{id}"));
        let state = doc["rollout"]["hosts"][host.to_string()]["state"].clone();
        ((state == "rolled_back").then(|| doc.clone()), doc)
    });
    assert_eq!(
        versions(),
        [
            "pw-synthetic-rpmapp-1.0-1",
            "pw-synthetic-rpmlib-1.0-1",
            "pw-synthetic-rpmtool-1.0-1"
        ],
        "{back:#}"
    );
    assert_eq!(back["result"][0]["jobs"][1]["operation"], "rollback");
}
