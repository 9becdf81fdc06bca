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

/// Builds (or reuses) a minimal Debian 12 root with a few extra packages (ones the Debian tracker
/// fixtures name), once per test process. `PATCHWARDEN_TEST_CACHE` (default: the test target
/// directory) keeps it between runs; delete it to build afresh. `None` when mmdebstrap is missing.
pub fn debian_root() -> Option<PathBuf> {
    static ROOT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ROOT.get_or_init(build_debian_root).clone()
}

/// The packages beyond minbase: TLS tools, and apparmor/atomicparsley (named by the tracker slices).
pub const DEBIAN_ROOT_INCLUDES: &str = "openssl,curl,ca-certificates,libapparmor1,atomicparsley";

fn build_debian_root() -> Option<PathBuf> {
    let cache = std::env::var_os("PATCHWARDEN_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let root = cache.join("bookworm-minbase-v2");
    if root.join("var/lib/dpkg/status").is_file() && root.join(".complete").is_file() {
        return Some(root);
    }
    if !tool_available("mmdebstrap") {
        return None;
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&cache).unwrap();
    let mirror = std::env::var("PATCHWARDEN_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    let status = Command::new("mmdebstrap")
        .args([
            "--variant=minbase",
            &format!("--include={DEBIAN_ROOT_INCLUDES}"),
            "bookworm",
        ])
        .arg(&root)
        .arg(&mirror)
        .status()
        .expect("run mmdebstrap");
    assert!(status.success(), "mmdebstrap failed (mirror {mirror})");
    std::fs::write(root.join(".complete"), "").unwrap();
    Some(root)
}
