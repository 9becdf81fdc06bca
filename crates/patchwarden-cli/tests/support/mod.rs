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
