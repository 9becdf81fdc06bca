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

/// A synthetic package for tests (`pw-synthetic-*` by convention; never a real package's name).
#[derive(Clone, Debug)]
pub struct SyntheticDeb<'a> {
    pub name: &'a str,
    /// `Source:` when it differs from the name.
    pub source: Option<&'a str>,
    pub version: &'a str,
    /// A `postinst` script (a failing one makes a package whose configuration breaks).
    pub postinst: Option<&'a str>,
}

/// Runs a test tool; panics with its output when it fails. Returns its standard output.
pub fn run_checked(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a test tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds `NAME_VERSION_all.deb` into `dir` with `dpkg-deb` (one documentation file, no
/// dependencies) and returns its path.
pub fn build_synthetic_deb(dir: &Path, deb: &SyntheticDeb) -> PathBuf {
    let SyntheticDeb {
        name,
        source,
        version,
        postinst,
    } = deb;
    let tree = dir.join(format!("build-{name}-{version}"));
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(tree.join("usr/share/doc").join(name)).unwrap();
    std::fs::write(
        tree.join("usr/share/doc").join(name).join("VERSION"),
        format!("{name} {version}: a synthetic package of patchwarden's tests\n"),
    )
    .unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {name}\n{}Version: {version}\nArchitecture: all\n\
             Maintainer: patchwarden tests <tests@patchwarden.invalid>\n\
             Description: synthetic test package (not a real Debian package)\n",
            source.map(|s| format!("Source: {s}\n")).unwrap_or_default()
        ),
    )
    .unwrap();
    if let Some(script) = postinst {
        use std::os::unix::fs::PermissionsExt;
        let path = tree.join("DEBIAN/postinst");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = dir.join(format!("{name}_{version}_all.deb"));
    run_checked(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&tree)
            .arg(&out),
    );
    let _ = std::fs::remove_dir_all(&tree);
    out
}

/// Writes the `Packages` index of the repository directory `repo` (`dpkg-scanpackages`).
pub fn index_repository(repo: &Path) {
    let index = run_checked(
        Command::new("dpkg-scanpackages")
            .args(["--multiversion", "."])
            .current_dir(repo),
    );
    std::fs::write(repo.join("Packages"), index).unwrap();
}

/// Whether the tools for synthetic repositories are here (`dpkg-deb`, `dpkg-scanpackages`,
/// `chroot`) and the tests run as root (chroot needs it); with `PATCHWARDEN_REQUIRE_ORACLES=1`
/// their absence panics instead.
pub fn repository_tools_available() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let ok = root
        && ["dpkg-deb", "dpkg-scanpackages", "chroot"].iter().all(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if !ok && std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() == Ok("1") {
        panic!("root, dpkg-deb, dpkg-scanpackages (dpkg-dev) and chroot are required");
    }
    ok
}

/// A fresh copy of the Debian test root at `dest` whose only apt source is a local repository at
/// `/srv/repo` holding `debs`, indexed and `apt-get update`d. `None` (after a SKIPPED line) when
/// the root or the tools are missing.
pub fn debian_root_with_repository(
    fallback_cache: &Path,
    dest: &Path,
    debs: &[SyntheticDeb],
) -> Option<PathBuf> {
    let tools = repository_tools_available();
    let Some(cached) = debian_root(fallback_cache).filter(|_| tools) else {
        if std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("the Debian test root (mmdebstrap) is required");
        }
        eprintln!("SKIPPED: no Debian test root, dpkg-dev tools or root privileges");
        return None;
    };
    let _ = std::fs::remove_dir_all(dest);
    run_checked(Command::new("cp").arg("-a").arg(&cached).arg(dest));
    let repo = dest.join("srv/repo");
    std::fs::create_dir_all(&repo).unwrap();
    for deb in debs {
        build_synthetic_deb(&repo, deb);
    }
    index_repository(&repo);
    // Only the local repository: jobs must not depend on the network.
    std::fs::write(
        dest.join("etc/apt/sources.list"),
        "deb [trusted=yes] file:/srv/repo ./\n",
    )
    .unwrap();
    run_checked(
        Command::new("chroot")
            .arg(dest)
            .args(["apt-get", "-q", "update"]),
    );
    Some(dest.to_path_buf())
}
