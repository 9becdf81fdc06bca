//! Test helpers (feature `testing`): a real, minimal Debian 12 root built once with mmdebstrap and
//! kept in `PATCHWARDEN_TEST_CACHE` (or the given fallback directory) between runs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The packages beyond minbase: TLS tools, and apparmor/atomicparsley (named by the tracker slices).
pub const DEBIAN_ROOT_INCLUDES: &str = "openssl,curl,ca-certificates,libapparmor1,atomicparsley";

/// The root (built on first use, once per process); `None` when mmdebstrap is missing. Delete the
/// cache directory to build afresh; `PATCHWARDEN_DEBIAN_MIRROR` picks the mirror.
pub fn debian_root(fallback_cache: &Path) -> Option<PathBuf> {
    static ROOT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| build(fallback_cache)).clone()
}

fn build(fallback_cache: &Path) -> Option<PathBuf> {
    let cache = std::env::var_os("PATCHWARDEN_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| fallback_cache.to_path_buf());
    let root = cache.join("bookworm-minbase-v2");
    if root.join("var/lib/dpkg/status").is_file() && root.join(".complete").is_file() {
        return Some(root);
    }
    let available = Command::new("mmdebstrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
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
