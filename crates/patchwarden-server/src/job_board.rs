//! Which hosts have queued jobs, as this server last saw them: one task owns its store handle and
//! reads the list every `job_poll` (jobs queued through another server reach their host's long-poll
//! within that); a job queued through this server marks its host at once. Long-polls wait on it
//! instead of querying the store each.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use patchwarden_store::Store;

#[derive(Default)]
pub struct JobBoard {
    queued: std::sync::Mutex<HashSet<i64>>,
    changed: tokio::sync::Notify,
}

impl JobBoard {
    /// A board refreshed from the store every `every`.
    pub fn start(store: Store, every: Duration) -> Arc<JobBoard> {
        let board = Arc::new(JobBoard::default());
        let refreshed = board.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(hosts) = store.hosts_with_queued_jobs().await {
                    refreshed.replace(hosts);
                }
                tokio::time::sleep(every).await;
            }
        });
        board
    }

    /// Whether `host` may have a queued job (true when unsure).
    pub fn has(&self, host: i64) -> bool {
        self.queued
            .lock()
            .map(|q| q.contains(&host))
            .unwrap_or(true)
    }

    pub fn set(&self, host: i64, queued: bool) {
        if let Ok(mut q) = self.queued.lock() {
            if queued {
                q.insert(host);
            } else {
                q.remove(&host);
            }
        }
        if queued {
            self.changed.notify_waiters();
        }
    }

    fn replace(&self, hosts: Vec<i64>) {
        if let Ok(mut q) = self.queued.lock() {
            *q = hosts.into_iter().collect();
        }
        self.changed.notify_waiters();
    }

    /// Resolves when the board changes (create it before looking, so no change is missed).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}
