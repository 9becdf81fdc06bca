//! A system root: `/` for the running host, or a directory holding another system's files.

use std::path::{Component, Path, PathBuf};

use crate::InventoryError;

/// The root directory of the system being inventoried. Paths inside it are resolved as that system
/// would resolve them: an absolute symlink (`/var/run -> /run`) points inside the root, not at the host.
pub struct SystemRoot {
    dir: PathBuf,
    live: bool,
}

const MAX_SYMLINKS: usize = 40;

impl SystemRoot {
    pub fn open(dir: &Path) -> Result<SystemRoot, InventoryError> {
        let canonical = dir.canonicalize().map_err(|source| InventoryError::Root {
            root: dir.to_path_buf(),
            source,
        })?;
        if !canonical.is_dir() {
            return Err(InventoryError::NotASystemRoot {
                root: dir.to_path_buf(),
            });
        }
        let live = canonical == Path::new("/");
        Ok(SystemRoot {
            dir: canonical,
            live,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when this root is the running system (`/`), so `/proc` and `/sys` describe it.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The host path of `path` (absolute, as seen inside the system), following symlinks inside the root.
    pub fn path(&self, path: &str) -> PathBuf {
        if self.live {
            return PathBuf::from(path);
        }
        let mut pending: Vec<PathBuf> = vec![PathBuf::from(path)];
        let mut resolved = PathBuf::new(); // relative to the root
        let mut links = 0;
        while let Some(next) = pending.pop() {
            let mut components: Vec<Component> = next.components().collect();
            components.reverse();
            while let Some(c) = components.pop() {
                match c {
                    Component::RootDir | Component::Prefix(_) => resolved.clear(),
                    Component::CurDir => {}
                    Component::ParentDir => {
                        resolved.pop();
                    }
                    Component::Normal(name) => {
                        let candidate = resolved.join(name);
                        let host = self.dir.join(&candidate);
                        match std::fs::symlink_metadata(&host) {
                            Ok(m) if m.file_type().is_symlink() && links < MAX_SYMLINKS => {
                                links += 1;
                                let Ok(target) = std::fs::read_link(&host) else {
                                    resolved = candidate;
                                    continue;
                                };
                                let rest: PathBuf = components.iter().rev().collect();
                                pending.push(rest);
                                if target.is_absolute() {
                                    resolved.clear();
                                }
                                pending.push(target);
                                components.clear();
                            }
                            _ => resolved = candidate,
                        }
                    }
                }
            }
        }
        self.dir.join(resolved)
    }

    /// Reads a file inside the root; `Ok(None)` when it does not exist.
    pub fn read_optional(&self, path: &str) -> Result<Option<String>, InventoryError> {
        let host = self.path(path);
        match std::fs::read(&host) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => Ok(None),
            Err(e) => Err(InventoryError::io(host, e)),
        }
    }

    /// Reads a small informational file, ignoring any error (DMI fields, hostname...).
    pub fn read_trimmed(&self, path: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.path(path)).ok()?;
        let t = text.trim();
        (!t.is_empty()).then(|| t.to_owned())
    }

    pub fn exists(&self, path: &str) -> bool {
        self.path(path).exists()
    }

    /// A root that has at least the skeleton of an installed system.
    pub fn looks_like_system(&self) -> bool {
        [
            "/etc/os-release",
            "/usr/lib/os-release",
            "/var/lib/dpkg",
            "/var/lib/rpm",
            "/usr/lib/sysimage/rpm",
            "/lib/apk/db",
        ]
        .iter()
        .any(|p| self.exists(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_symlinks_stay_inside_the_root() {
        let dir = std::env::temp_dir().join(format!("pw-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::create_dir_all(dir.join("var")).unwrap();
        std::fs::create_dir_all(dir.join("usr/lib")).unwrap();
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::os::unix::fs::symlink("/run", dir.join("var/run")).unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", dir.join("etc/os-release")).unwrap();
        std::fs::write(dir.join("run/reboot-required"), "").unwrap();
        std::fs::write(dir.join("usr/lib/os-release"), "ID=debian\n").unwrap();
        let root = SystemRoot::open(&dir).unwrap();
        let canonical = dir.canonicalize().unwrap();
        assert_eq!(
            root.path("/var/run/reboot-required"),
            canonical.join("run/reboot-required")
        );
        assert_eq!(
            root.read_optional("/etc/os-release").unwrap().as_deref(),
            Some("ID=debian\n")
        );
        assert!(root.looks_like_system());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
