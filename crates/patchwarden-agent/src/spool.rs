//! The on-disk spool: every report is written here (atomically, synced) before it is sent, and
//! removed only once the server acknowledged it. Reports are delivered in the order they were
//! made; each keeps its idempotency key across retries, so the server stores it once.

use std::path::{Path, PathBuf};

use patchwarden_model::fleet::CheckIn;

pub struct Spool {
    dir: PathBuf,
    /// Most reports kept; beyond it the oldest heartbeats go first, then the oldest reports.
    limit: usize,
}

/// A spool file or directory that could not be read or written (the message names it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpoolError(String);

/// One queued report.
pub struct Queued {
    pub path: PathBuf,
    pub report: CheckIn,
}

impl Spool {
    pub fn open(dir: &Path, limit: usize) -> Result<Spool, SpoolError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SpoolError(format!("cannot create the spool {}: {e}", dir.display())))?;
        Ok(Spool {
            dir: dir.to_owned(),
            limit: limit.max(1),
        })
    }

    /// Queues a report; its file name orders it after everything queued before.
    pub fn push(&self, report: &CheckIn) -> Result<PathBuf, SpoolError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let kind = if report.inventory.is_some() {
            "inv"
        } else {
            "hb"
        };
        let path = self
            .dir
            .join(format!("{now:024}-{kind}-{}.json", report.idempotency_key));
        self.write(&path, report)?;
        self.trim()?;
        Ok(path)
    }

    /// Replaces a queued report (same file, same place in the order).
    pub fn write(&self, path: &Path, report: &CheckIn) -> Result<(), SpoolError> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(report).expect("a report serializes");
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| SpoolError(format!("cannot write {}: {e}", tmp.display())))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| SpoolError(format!("cannot write {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| SpoolError(format!("cannot write {}: {e}", path.display())))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn names(&self) -> Result<Vec<PathBuf>, SpoolError> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|e| SpoolError(format!("cannot read the spool {}: {e}", self.dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Queued reports, oldest first. A file that does not parse (a torn write from before the
    /// atomic rename cannot happen; a foreign file can) is moved aside, not sent.
    pub fn pending(&self) -> Result<Vec<Queued>, SpoolError> {
        let mut out = Vec::new();
        for path in self.names()? {
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<CheckIn>(&b).ok())
            {
                Some(report) => out.push(Queued { path, report }),
                None => {
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        Ok(out)
    }

    pub fn remove(&self, path: &Path) -> Result<(), SpoolError> {
        std::fs::remove_file(path)
            .map_err(|e| SpoolError(format!("cannot remove {}: {e}", path.display())))
    }

    pub fn len(&self) -> usize {
        self.names().map(|n| n.len()).unwrap_or(0)
    }

    fn trim(&self) -> Result<(), SpoolError> {
        let names = self.names()?;
        let mut excess = names.len().saturating_sub(self.limit);
        if excess == 0 {
            return Ok(());
        }
        let is_heartbeat = |p: &PathBuf| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("-hb-"))
        };
        // Never the newest report: it is the host's current state.
        let candidates = &names[..names.len() - 1];
        for p in candidates.iter().filter(|p| is_heartbeat(p)) {
            if excess == 0 {
                break;
            }
            let _ = std::fs::remove_file(p);
            excess -= 1;
        }
        for p in candidates.iter().filter(|p| !is_heartbeat(p)) {
            if excess == 0 {
                break;
            }
            let _ = std::fs::remove_file(p);
            excess -= 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real inventory: the Alpine package database sample in a root of its own.
    fn alpine_inventory() -> patchwarden_model::Inventory {
        let root = std::env::temp_dir().join(format!("pw-spool-root-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("lib/apk/db")).unwrap();
        std::fs::write(
            root.join("etc/os-release"),
            "ID=alpine\nVERSION_ID=3.19.1\nNAME=\"Alpine Linux\"\n",
        )
        .unwrap();
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/data/inventory/apk/installed"
            ),
            root.join("lib/apk/db/installed"),
        )
        .unwrap();
        patchwarden_inventory::collect(&root).unwrap()
    }

    fn report(key: &str, inventory: bool) -> CheckIn {
        let inv = inventory.then(alpine_inventory);
        CheckIn {
            idempotency_key: key.into(),
            digest: "d".into(),
            inventory: inv,
            agent_version: "test".into(),
        }
    }

    #[test]
    fn reports_stay_in_order_until_removed_and_the_limit_drops_heartbeats_first() {
        let dir = std::env::temp_dir().join(format!("pw-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spool = Spool::open(&dir, 3).unwrap();
        spool.push(&report("a", true)).unwrap();
        spool.push(&report("b", false)).unwrap();
        spool.push(&report("c", true)).unwrap();
        let keys = |s: &Spool| -> Vec<String> {
            s.pending()
                .unwrap()
                .into_iter()
                .map(|q| q.report.idempotency_key)
                .collect()
        };
        assert_eq!(keys(&spool), ["a", "b", "c"]);
        spool.push(&report("d", false)).unwrap();
        assert_eq!(
            keys(&spool),
            ["a", "c", "d"],
            "the oldest heartbeat went first"
        );
        let first = spool.pending().unwrap().remove(0);
        assert!(first.report.inventory.is_some());
        spool.remove(&first.path).unwrap();
        assert_eq!(keys(&spool), ["c", "d"]);
        std::fs::write(dir.join("zzz.json"), "not json").unwrap();
        assert_eq!(keys(&spool), ["c", "d"], "a foreign file is moved aside");
        assert!(dir.join("zzz.bad").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
