//! Shared helpers for the CLI integration tests: running the real binary, fixture paths, and the
//! rule for tests that need an outside tool (rpm, mmdebstrap): they say they are skipped when it is
//! missing, unless `PATCHWARDEN_REQUIRE_ORACLES=1` (set by `.ci/run`) makes that a failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_patchwarden"))
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run patchwarden")
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh scratch directory for the root filesystems of one test: in memory (`/dev/shm`) where
/// there is one, as copying a 200 MB root to this machine's disk takes 12 s and to memory 3 s;
/// the target directory otherwise. The caller removes it when it passes.
pub fn roots_scratch(name: &str) -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() && std::fs::create_dir_all(shm.join("patchwarden-tests")).is_ok() {
        shm.join("patchwarden-tests")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    };
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The system's python3, which has Debian's python3-apt and python3-rpm (a pyenv python3 on PATH
/// may not).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

pub fn tool_available(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        let msg = format!("{tool} is not installed (apt-get install it; .ci/run does)");
        if std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

/// Whether the system python3 can import `module` (Debian's python3-apt gives `apt_pkg`, python3-rpm
/// gives `rpm`); missing is SKIPPED, or a failure under `PATCHWARDEN_REQUIRE_ORACLES=1`.
pub fn python_module_available(module: &str) -> bool {
    let found = Command::new(SYSTEM_PYTHON)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        let msg = format!("{SYSTEM_PYTHON} cannot import {module} (apt-get install python3-apt python3-rpm; .ci/run does)");
        if std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

pub fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// The inventory JSON of `root`, asserting success.
pub fn inventory_json(root: &Path) -> serde_json::Value {
    let out = inventory_output(root);
    assert!(
        out.status.success(),
        "inventory failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inventory JSON")
}

/// `name version arch source_name source_version` lines of the report's packages, sorted.
pub fn package_lines(inv: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = inv["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["arch"].as_str().unwrap(),
                p["source_name"].as_str().unwrap(),
                p["source_version"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

/// Runs `inventory --format json` on a root that must be refused; asserts that nothing was printed on
/// stdout (no partial report) and returns the error message.
pub fn inventory_error(root: &Path) -> String {
    let out = inventory_output(root);
    assert!(
        !out.status.success(),
        "inventory of {} succeeded",
        root.display()
    );
    assert!(out.stdout.is_empty(), "a partial inventory was printed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs patchwarden with `input` on stdin.
pub fn run_with_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = bin()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run patchwarden");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn inventory_output(root: &Path) -> Output {
    run(&[
        "inventory",
        "--format",
        "json",
        "--root",
        root.to_str().unwrap(),
    ])
}

/// The minimal Debian 12 root shared by the tests (`patchwarden_inventory::testing`), cached in
/// `PATCHWARDEN_TEST_CACHE` (default: the test target directory). `None` when mmdebstrap is missing.
pub fn debian_root() -> Option<PathBuf> {
    patchwarden_inventory::testing::debian_root(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// Packages of the test AlmaLinux rpmdb: (source spec name, binary sub-package or "" for the main one).
pub const ALMA_PACKAGES: &[(&str, &str)] = &[
    ("openssl", "libs"),
    ("glibc", ""),
    ("curl", ""),
    ("sudo", ""),
    ("kernel", "core"),
    ("vim", "minimal"),
];

/// The fixed versions the fixtures give a binary package, oldest first (python3-rpm sorts them).
pub fn real_versions(binary: &str) -> Vec<String> {
    let script = r#"
import json, os, sys, functools, rpm
d, name = sys.argv[1], sys.argv[2]
vs = set()
for f in os.listdir(d):
    for a in json.load(open(os.path.join(d, f)))["affected"]:
        if a["package"]["name"] == name:
            vs |= {e["fixed"] for r in a.get("ranges", []) for e in r["events"] if "fixed" in e}
def evr(s):
    e, _, vr = s.rpartition(":") if ":" in s else ("0", "", s)
    v, _, r = vr.rpartition("-")
    return (e or "0", v, r)
for v in sorted(vs, key=functools.cmp_to_key(lambda a, b: rpm.labelCompare(evr(a), evr(b)))):
    if ".module" not in v: print(v)
"#;
    let out = Command::new(SYSTEM_PYTHON)
        .args(["-c", script])
        .arg(fixtures().join("osv/almalinux9"))
        .arg(binary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// One package of a test RPM root: its source name, a sub-package (`core` of `kernel-core`; empty
/// for none) and its full version (`[epoch:]version-release`).
pub struct RpmPackage<'a> {
    pub source: &'a str,
    pub sub: &'a str,
    pub full_version: String,
}

/// A root with a real rpmdb (rpmbuild + `rpm --justdb`) holding `packages`, and `os_release`.
pub fn build_rpm_root(work: &Path, packages: &[RpmPackage<'_>], os_release: &str) -> PathBuf {
    let mut rpms = Vec::new();
    for p in packages {
        let full = p.full_version.as_str();
        let (epoch, vr) = full.split_once(':').unwrap_or(("", full));
        let (version, release) = vr.rsplit_once('-').unwrap();
        let (source, sub) = (p.source, p.sub);
        let sub_section = if sub.is_empty() {
            String::new()
        } else {
            format!("%package {sub}\nSummary: {sub}\n%description {sub}\n{sub}\n%files {sub}\n")
        };
        let spec = format!(
            "Name: {source}\n{}Version: {version}\nRelease: {release}\nSummary: test package with a real version\nLicense: MIT\n%description\ntest\n%files\n{sub_section}",
            if epoch.is_empty() { String::new() } else { format!("Epoch: {epoch}\n") }
        );
        let spec_path = work.join(format!("{source}.spec"));
        std::fs::write(&spec_path, spec).unwrap();
        let status = Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", work.join("build").display()))
            .arg(&spec_path)
            .status()
            .unwrap();
        assert!(status.success(), "rpmbuild {source}");
    }
    for arch_dir in std::fs::read_dir(work.join("build/RPMS")).unwrap() {
        for f in std::fs::read_dir(arch_dir.unwrap().path()).unwrap() {
            rpms.push(f.unwrap().path());
        }
    }
    let root = work.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let rpm = |args: &[&str], extra: &[PathBuf]| {
        let st = Command::new("rpm")
            .arg("--root")
            .arg(&root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args)
            .args(extra)
            .status()
            .unwrap();
        assert!(st.success(), "rpm {args:?}");
    };
    rpm(&["--initdb"], &[]);
    rpm(
        &[
            "-i",
            "--justdb",
            "--nodeps",
            "--noscripts",
            "--nosignature",
            "--ignorearch",
        ],
        &rpms,
    );
    write(&root.join("etc/os-release"), os_release);
    root
}

/// An AlmaLinux 9 root with a real rpmdb (rpmbuild + `rpm --justdb`): each package at the oldest
/// real fixed version the AlmaLinux fixtures give it (several advisories behind).
pub fn build_alma_root(work: &Path) -> PathBuf {
    let packages: Vec<RpmPackage> = ALMA_PACKAGES
        .iter()
        .map(|(source, sub)| {
            let binary = if sub.is_empty() {
                source.to_string()
            } else {
                format!("{source}-{sub}")
            };
            let versions = real_versions(&binary);
            // The oldest real fixed version: behind every later advisory. The fixtures hold one
            // kernel advisory only: the kernel is AlmaLinux 9.3's release kernel,
            // 5.14.0-362.8.1.el9_3.
            let full_version = if binary == "kernel-core" {
                "5.14.0-362.8.1.el9_3".to_owned()
            } else {
                assert!(versions.len() >= 2, "{binary}: {versions:?}");
                versions[0].clone()
            };
            RpmPackage {
                source,
                sub,
                full_version,
            }
        })
        .collect();
    build_rpm_root(work, &packages, "NAME=\"AlmaLinux\"\nVERSION=\"9.0 (Emerald Puma)\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.0\"\nPRETTY_NAME=\"AlmaLinux 9.0 (Emerald Puma)\"\n")
}

/// A PostgreSQL URL for a schema of its own, or `None` (skipped, or a failure under
/// `PATCHWARDEN_REQUIRE_ORACLES=1`).
pub fn postgres_schema(name: &str) -> Option<String> {
    let Ok(url) = std::env::var("PATCHWARDEN_TEST_POSTGRES") else {
        if std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("PATCHWARDEN_TEST_POSTGRES is not set");
        }
        eprintln!("SKIPPED: PATCHWARDEN_TEST_POSTGRES is not set");
        return None;
    };
    let schema = format!("pw_{name}_{}", std::process::id());
    let st = Command::new("psql")
        .arg(&url)
        .args([
            "-qc",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        ])
        .status()
        .expect("psql");
    assert!(st.success(), "creating schema {schema}");
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}
