//! Which update stream a RHEL host follows: the main stream, or an extended-support stream (EUS,
//! AUS, E4S, TUS) that keeps one minor release patched — decided by what dnf will fetch: the
//! enabled repositories in `/etc/yum.repos.d/*.repo` (subscription-manager writes `redhat.repo`;
//! extended streams are the `…-eus-rpms`, `…-aus-rpms`, `…-e4s-rpms`, `…-tus-rpms` repositories),
//! and the minor release from the release lock (`subscription-manager release --set=9.4` writes
//! `/etc/dnf/vars/releasever`; `/etc/yum/vars/releasever` on RHEL 7), else os-release's
//! `VERSION_ID`.
//!
//! Not read: the subscription's entitlements (`/etc/pki/entitlement`) — a host entitled to EUS but
//! not using its repositories gets main-stream updates. A root without repository files says
//! nothing (`None`: the main stream is assumed).

use patchwarden_model::{RhelPhase, RhelStream};

use crate::SystemRoot;

/// The enabled repository ids of a `.repo` file (INI sections; `enabled` defaults to on, as in
/// dnf).
fn enabled_repos(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<(String, bool)> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.extend(current.take().filter(|(_, on)| *on).map(|(id, _)| id));
            current = Some((section.trim().to_owned(), true));
        } else if let (Some((key, value)), Some((_, on))) = (line.split_once('='), current.as_mut())
        {
            if key.trim().eq_ignore_ascii_case("enabled") {
                *on = matches!(
                    value.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                );
            }
        }
    }
    out.extend(current.filter(|(_, on)| *on).map(|(id, _)| id));
    out
}

/// The extended phase a repository id names (`rhel-9-for-x86_64-baseos-eus-rpms` → EUS).
fn phase_of(repo: &str) -> Option<RhelPhase> {
    let lower = repo.to_ascii_lowercase();
    let stem = lower.strip_suffix("-rpms")?;
    let last = stem.rsplit('-').next()?;
    RhelPhase::from_name(last).filter(|p| *p != RhelPhase::Main)
}

/// What the root's repositories say about its update stream (`version_id`: os-release's).
pub fn detect(root: &SystemRoot, version_id: Option<&str>) -> Option<RhelStream> {
    let mut names: Vec<String> = std::fs::read_dir(root.path("/etc/yum.repos.d"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".repo"))
        .collect();
    names.sort();
    let mut read_any = false;
    let mut els = false;
    let mut extended: Option<(RhelPhase, String)> = None;
    for name in &names {
        let file = format!("/etc/yum.repos.d/{name}");
        let Ok(Some(text)) = root.read_optional(&file) else {
            continue;
        };
        read_any = true;
        let enabled = enabled_repos(&text);
        els |= enabled.iter().any(|id| is_els(id));
        if extended.is_none() {
            extended = enabled
                .into_iter()
                .find_map(|id| phase_of(&id).map(|p| (p, format!("{id} enabled in {file}"))));
        }
    }
    if !read_any {
        return None;
    }
    let Some((phase, repo)) = extended else {
        return Some(RhelStream {
            phase: RhelPhase::Main,
            minor: None,
            els,
            evidence: "no extended-support repository (…-eus/aus/e4s/tus-rpms) enabled in \
                       /etc/yum.repos.d"
                .into(),
        });
    };
    let lock = ["/etc/dnf/vars/releasever", "/etc/yum/vars/releasever"]
        .into_iter()
        .find_map(|f| {
            let text = root.read_optional(f).ok().flatten()?;
            let v = text.trim().to_owned();
            is_minor(&v).then(|| (v, format!("releasever {} in {f}", text.trim())))
        });
    let (minor, why) = match lock {
        Some((v, why)) => (Some(v), why),
        None => match version_id.filter(|v| is_minor(v)) {
            Some(v) => (
                Some(v.to_owned()),
                format!("VERSION_ID {v} (no release lock)"),
            ),
            None => (None, "no minor release found".to_owned()),
        },
    };
    Some(RhelStream {
        phase,
        minor,
        els,
        evidence: format!("{repo}, {why}"),
    })
}

/// An Extended Life Cycle Support repository (`rhel-7-server-els-rpms`).
fn is_els(repo: &str) -> bool {
    let lower = repo.to_ascii_lowercase();
    lower.ends_with("-rpms") && lower.contains("-els-")
}

/// `9.4`: a major and a minor release, digits only.
fn is_minor(v: &str) -> bool {
    v.split_once('.').is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn root_with(files: &[(&str, &str)]) -> (Dir, SystemRoot) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pw-rhel-stream-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (path, text) in files {
            let p = dir.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let root = SystemRoot::open(&dir).unwrap();
        (Dir(dir), root)
    }

    /// As subscription-manager writes `redhat.repo`: every repository of the subscription, the
    /// ones in use `enabled = 1`.
    const REDHAT_REPO: &str = "#\n# Certificate-Based Repositories\n# Managed by (rhsm) subscription-manager\n#\n\n[rhel-9-for-x86_64-baseos-rpms]\nname = Red Hat Enterprise Linux 9 for x86_64 - BaseOS (RPMs)\nbaseurl = https://cdn.redhat.com/content/dist/rhel9/$releasever/x86_64/baseos/os\nenabled = ENABLE_MAIN\ngpgcheck = 1\n\n[rhel-9-for-x86_64-baseos-eus-rpms]\nname = Red Hat Enterprise Linux 9 for x86_64 - BaseOS - Extended Update Support (RPMs)\nbaseurl = https://cdn.redhat.com/content/eus/rhel9/$releasever/x86_64/baseos/os\nenabled = ENABLE_EUS\ngpgcheck = 1\n";

    fn repo(main: &str, eus: &str) -> String {
        REDHAT_REPO
            .replace("ENABLE_MAIN", main)
            .replace("ENABLE_EUS", eus)
    }

    #[test]
    fn an_enabled_eus_repository_with_a_release_lock_is_that_stream() {
        let text = repo("0", "1");
        let (_d, root) = root_with(&[
            ("/etc/yum.repos.d/redhat.repo", &text),
            ("/etc/dnf/vars/releasever", "9.4\n"),
        ]);
        let s = detect(&root, Some("9.4")).unwrap();
        assert_eq!((s.phase, s.minor.as_deref()), (RhelPhase::Eus, Some("9.4")));
        assert_eq!(s.extended_key().as_deref(), Some("eus:9.4"));
        assert!(
            s.evidence.contains("rhel-9-for-x86_64-baseos-eus-rpms")
                && s.evidence.contains("/etc/dnf/vars/releasever"),
            "{s:?}"
        );
        // Without a lock, os-release's minor release.
        let (_d, root) = root_with(&[("/etc/yum.repos.d/redhat.repo", &text)]);
        let s = detect(&root, Some("9.2")).unwrap();
        assert_eq!(s.minor.as_deref(), Some("9.2"));
    }

    #[test]
    fn main_stream_when_no_extended_repository_is_enabled() {
        for (main, eus) in [("1", "0"), ("1", "false")] {
            let text = repo(main, eus);
            let (_d, root) = root_with(&[("/etc/yum.repos.d/redhat.repo", &text)]);
            let s = detect(&root, Some("9.4")).unwrap();
            assert_eq!(s.phase, RhelPhase::Main, "{main} {eus}");
            assert_eq!(s.extended_key(), None);
        }
        // No repository files at all: nothing to say.
        let (_d, root) = root_with(&[("/etc/os-release", "ID=rhel\n")]);
        assert_eq!(detect(&root, Some("9.4")), None);
    }

    #[test]
    fn repository_ids_name_their_phase() {
        assert_eq!(
            phase_of("rhel-8-for-x86_64-appstream-e4s-rpms"),
            Some(RhelPhase::E4s)
        );
        assert_eq!(
            phase_of("rhel-8-for-x86_64-baseos-aus-rpms"),
            Some(RhelPhase::Aus)
        );
        assert_eq!(phase_of("rhel-9-for-x86_64-baseos-rpms"), None);
        assert_eq!(phase_of("epel-eus"), None);
        assert!(is_els("rhel-7-server-els-rpms"));
        assert!(!is_els("rhel-7-server-rpms"));
        let (_d, root) = root_with(&[(
            "/etc/yum.repos.d/redhat.repo",
            "[rhel-7-server-rpms]\nenabled = 1\n[rhel-7-server-els-rpms]\nenabled = 1\n",
        )]);
        let s = detect(&root, Some("7.9")).unwrap();
        assert!(s.els && s.phase == RhelPhase::Main, "{s:?}");
        // `enabled` defaults to on (dnf's default).
        assert_eq!(
            enabled_repos("[a-eus-rpms]\nname=x\n[b]\nenabled=0\n"),
            ["a-eus-rpms"]
        );
    }
}
