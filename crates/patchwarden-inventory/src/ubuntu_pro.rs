//! Whether an Ubuntu host receives Ubuntu Pro (ESM) updates: decided by what apt will fetch — an
//! enabled apt source on `esm.ubuntu.com` (`/etc/apt/sources.list`, `sources.list.d/*.list` one-line
//! entries, `sources.list.d/*.sources` deb822 stanzas without `Enabled: no`), which is what
//! `pro attach` / `pro enable esm-infra|esm-apps` write and `pro detach` removes.
//!
//! Not read: the Pro client's own state (`/var/lib/ubuntu-advantage`; its `apt-esm` directory
//! holds sources apt does not use, for "updates available with Pro" messages only), and mirrors of
//! ESM under other names (Landscape, aptly): those hosts are declared with `--ubuntu-pro`.
//! A root with no apt sources at all says nothing (`None`): matching then falls back to installed
//! `+esm` versions.

use patchwarden_model::UbuntuPro;

use crate::SystemRoot;

const ESM_HOST: &str = "esm.ubuntu.com";

/// What the root's apt sources say about Ubuntu Pro.
pub fn detect(root: &SystemRoot) -> Option<UbuntuPro> {
    let mut files: Vec<String> = vec!["/etc/apt/sources.list".into()];
    if let Ok(dir) = std::fs::read_dir(root.path("/etc/apt/sources.list.d")) {
        let mut names: Vec<String> = dir
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".list") || n.ends_with(".sources"))
            .collect();
        names.sort();
        files.extend(
            names
                .into_iter()
                .map(|n| format!("/etc/apt/sources.list.d/{n}")),
        );
    }
    let mut read_any = false;
    for file in &files {
        let Ok(Some(text)) = root.read_optional(file) else {
            continue;
        };
        read_any = true;
        let uri = if file.ends_with(".sources") {
            deb822_esm_uri(&text)
        } else {
            one_line_esm_uri(&text)
        };
        if let Some(uri) = uri {
            return Some(UbuntuPro {
                receives: true,
                evidence: format!("apt source {uri} in {file}"),
            });
        }
    }
    read_any.then(|| UbuntuPro {
        receives: false,
        evidence: format!("no enabled apt source on {ESM_HOST} in /etc/apt/sources.list(.d)"),
    })
}

fn is_esm(uri: &str) -> bool {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', ':']).next().unwrap_or("");
        host.eq_ignore_ascii_case(ESM_HOST)
    })
}

/// The first enabled `deb` line on the ESM host (`deb [options] URI suite components`).
fn one_line_esm_uri(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("").trim();
        let rest = line.strip_prefix("deb ")?.trim_start();
        // Options in brackets come before the URI.
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']')?.1.trim_start(),
            None => rest,
        };
        let uri = rest.split_whitespace().next()?;
        is_esm(uri).then(|| uri.to_owned())
    })
}

/// The first deb822 stanza of `Types: deb` on the ESM host that is not `Enabled: no`.
fn deb822_esm_uri(text: &str) -> Option<String> {
    let mut stanzas: Vec<Vec<&str>> = vec![Vec::new()];
    for line in text.lines() {
        if line.trim().is_empty() {
            stanzas.push(Vec::new());
        } else if !line.trim_start().starts_with('#') {
            stanzas.last_mut().expect("never empty").push(line);
        }
    }
    stanzas.iter().find_map(|lines| {
        let field = |name: &str| {
            lines.iter().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        };
        let enabled = field("Enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
        let deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        if !enabled || !deb {
            return None;
        }
        field("URIs")?
            .split_whitespace()
            .find(|u| is_esm(u))
            .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(files: &[(&str, &str)]) -> (tempdir::Dir, SystemRoot) {
        let dir = tempdir::Dir::new();
        for (path, text) in files {
            let p = dir.0.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let root = SystemRoot::open(&dir.0).unwrap();
        (dir, root)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "pw-ubuntu-pro-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const MAIN: &str = "deb http://archive.ubuntu.com/ubuntu jammy main restricted\n";

    #[test]
    fn esm_sources_in_both_formats() {
        // As `pro enable esm-infra` writes them: one-line (up to 22.04) and deb822 (24.04).
        let (_d, root) = root_with(&[
            ("/etc/apt/sources.list", MAIN),
            (
                "/etc/apt/sources.list.d/ubuntu-esm-infra.list",
                "# Written by ubuntu-pro-client\ndeb https://esm.ubuntu.com/infra/ubuntu jammy-infra-security main\n# deb-src https://esm.ubuntu.com/infra/ubuntu jammy-infra-security main\n",
            ),
        ]);
        let pro = detect(&root).unwrap();
        assert!(pro.receives);
        assert!(pro.evidence.contains("ubuntu-esm-infra.list"), "{pro:?}");
        let (_d, root) = root_with(&[(
            "/etc/apt/sources.list.d/ubuntu-esm-apps.sources",
            "Types: deb\nURIs: https://esm.ubuntu.com/apps/ubuntu\nSuites: noble-apps-security noble-apps-updates\nComponents: main\nSigned-By: /usr/share/keyrings/ubuntu-pro-esm-apps.gpg\n",
        )]);
        assert!(detect(&root).unwrap().receives);
    }

    #[test]
    fn disabled_commented_and_foreign_sources_do_not_count() {
        let (_d, root) = root_with(&[
            ("/etc/apt/sources.list", MAIN),
            (
                "/etc/apt/sources.list.d/ubuntu-esm-infra.list",
                "# deb https://esm.ubuntu.com/infra/ubuntu jammy-infra-security main\n",
            ),
            (
                "/etc/apt/sources.list.d/ubuntu-esm-apps.sources",
                "Types: deb\nURIs: https://esm.ubuntu.com/apps/ubuntu\nSuites: jammy-apps-security\nComponents: main\nEnabled: no\n",
            ),
            (
                "/etc/apt/sources.list.d/mirror.list",
                "deb [arch=amd64] https://esm.ubuntu.com.example.org/infra jammy main\n",
            ),
        ]);
        let pro = detect(&root).unwrap();
        assert!(!pro.receives, "{pro:?}");
        // No apt sources at all: nothing can be told.
        let (_d, root) = root_with(&[("/etc/os-release", "ID=ubuntu\n")]);
        assert_eq!(detect(&root), None);
    }

    #[test]
    fn options_in_brackets_come_before_the_uri() {
        let (_d, root) = root_with(&[(
            "/etc/apt/sources.list",
            "deb [signed-by=/usr/share/keyrings/ubuntu-pro-esm-infra.gpg arch=amd64] https://esm.ubuntu.com/infra/ubuntu focal-infra-security main\n",
        )]);
        assert!(detect(&root).unwrap().receives);
    }
}
