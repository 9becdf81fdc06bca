//! Collectors that only run on the live host (`/`): stale processes and the whole live inventory.
use std::path::{Path, PathBuf};

use patchwarden_inventory::{collect, stale, SystemRoot};

/// A real process running a deleted copy of a real executable is found, with its path and command.
#[test]
fn finds_a_process_running_a_deleted_executable() {
    // Scratch directories (where CARGO_TARGET_TMPDIR may well be) are ignored by default, as
    // checkrestart does; this test asks for nothing to be ignored but /proc.
    let bin_dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("stale-{}", std::process::id()));
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("sleep-copy");
    std::fs::copy("/bin/sleep", &bin).unwrap();
    let mut child = std::process::Command::new(&bin).arg("30").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::remove_file(&bin).unwrap();
    let root = SystemRoot::open(Path::new("/")).unwrap();
    let found = stale::collect_ignoring(&root, &[], &["/proc/"]);
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&bin_dir);
    let mine: Vec<_> = found.iter().filter(|s| s.pid == child.id()).collect();
    assert_eq!(mine.len(), 1, "{found:?}");
    assert_eq!(mine[0].path, bin.display().to_string());
    assert_eq!(mine[0].command, "sleep-copy");
}

/// The live host (this Debian machine) is inventoried with its running kernel and packages; the
/// package count equals what dpkg-query lists as installed.
#[test]
fn live_host_inventory() {
    let inv = collect(Path::new("/")).unwrap();
    assert!(inv.live);
    assert!(inv.kernel.running.is_some());
    assert!(inv.platform.is_some());
    assert_eq!(
        inv.os.release.as_ref().map(|r| r.version_scheme.as_str()),
        Some("deb")
    );
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev}\n"])
        .output()
        .unwrap();
    let installed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !matches!(l.as_bytes().get(1), Some(b'n' | b'c')))
        .count();
    assert_eq!(inv.packages.len(), installed);
}
