//! Applying the knowledge base's change journal: feed writes by any process (a scheduled sync,
//! `feeds import`, another server) journal what they changed; this service weighs them against
//! the knowledge base as written now — of the hosts holding a changed package, only those whose
//! findings for the named package versions change (`FleetKnowledge::hosts_changed_by`, group by
//! group of hosts sharing package set, release and findings) — marks those hosts
//! (`Store::claim_knowledge_changes`) and queues every host owing findings. When
//! any server applied changes (the store's knowledge generation moved), it empties this server's
//! cache of the knowledge base (`FleetKnowledge`) first. It runs at start, after this server's own
//! syncs, and every `knowledge_poll`.

use std::sync::Arc;
use std::time::Duration;

use patchwarden_findings::fleet::FleetKnowledge;
use patchwarden_store::{KnowledgeChangesApplied, Store, StoreError};

use crate::findings_queue::FindingsQueue;
use crate::Metrics;

/// The handle of the service (cheap to clone).
#[derive(Clone)]
pub struct KnowledgeWatcher {
    store: Store,
    findings: FindingsQueue,
    fleet: Arc<FleetKnowledge>,
    metrics: Arc<Metrics>,
}

impl KnowledgeWatcher {
    pub fn new(
        store: Store,
        findings: FindingsQueue,
        fleet: Arc<FleetKnowledge>,
        metrics: Arc<Metrics>,
    ) -> KnowledgeWatcher {
        KnowledgeWatcher {
            store,
            findings,
            fleet,
            metrics,
        }
    }

    /// Empties the fleet's knowledge when the store's generation moved since it was loaded.
    async fn follow_generation(&self) {
        if let Err(e) = self.fleet.follow(&self.store).await {
            tracing::error!(target: "patchwarden::knowledge", error = %e, "reading the knowledge-base generation");
        }
    }

    /// Applies the journal every `every` (zero: never on its own).
    pub fn start(&self, every: Duration) {
        if every.is_zero() {
            return;
        }
        let watcher = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                watcher.apply().await;
            }
        });
    }

    /// The store this service reads (a scheduled sync writes its feeds there, then calls
    /// [`KnowledgeWatcher::apply`]).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Applies the journal; when it marked hosts, queues every host owing findings.
    pub async fn apply(&self) {
        let started = std::time::Instant::now();
        let applied = self.apply_changes().await;
        self.follow_generation().await;
        match applied {
            Ok(Some(applied)) => {
                self.metrics.add(
                    "patchwarden_knowledge_changes_total",
                    "",
                    applied.changes as u64,
                );
                self.metrics.add(
                    "patchwarden_hosts_marked_by_knowledge_changes_total",
                    "",
                    applied.hosts_marked as u64,
                );
                tracing::info!(
                    target: "patchwarden::knowledge",
                    writes = applied.changes,
                    packages = applied.packages,
                    cves = applied.cves,
                    hosts_marked = applied.hosts_marked,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "knowledge base changed: findings of {} hosts to recompute",
                    applied.hosts_marked
                );
            }
            Ok(None) => return,
            Err(e) => {
                tracing::error!(target: "patchwarden::knowledge", error = %e, "applying knowledge-base changes")
            }
        }
        self.queue_pending().await;
    }

    /// Applies the journal weighed by version (`FleetKnowledge::apply_changes`); if weighing
    /// fails, by package name (every host holding a changed package is marked).
    async fn apply_changes(&self) -> Result<Option<KnowledgeChangesApplied>, StoreError> {
        match self.fleet.apply_changes(&self.store).await {
            Ok(applied) => Ok(applied),
            Err(e) => {
                tracing::warn!(target: "patchwarden::knowledge", error = %e, "weighing knowledge-base changes failed; marking by package name");
                let applied = self.store.apply_knowledge_changes().await?;
                Ok((applied.changes > 0).then_some(applied))
            }
        }
    }

    /// Queues the hosts whose findings lag their inventory.
    pub async fn queue_pending(&self) {
        if let Err(e) = self.findings.push_pending(&self.store).await {
            tracing::error!(target: "patchwarden::knowledge", error = %e, "reading the hosts owing findings");
        }
    }
}
