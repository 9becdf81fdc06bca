//! Applying the knowledge base's change journal: feed writes by any process (a scheduled sync,
//! `feeds import`, another server) journal what they changed; this service marks the hosts those
//! changes can touch (`Store::apply_knowledge_changes`) and queues every host owing findings. When
//! any server applied changes (the store's knowledge generation moved), it empties this server's
//! cache of the knowledge base (`FleetKnowledge`) first. It runs at start, after this server's own
//! syncs, and every `knowledge_poll`.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicI64, Ordering};

use patchwarden_findings::fleet::FleetKnowledge;
use patchwarden_store::Store;

use crate::findings_queue::FindingsQueue;
use crate::Metrics;

/// The handle of the service (cheap to clone).
#[derive(Clone)]
pub struct KnowledgeWatcher {
    store: Store,
    findings: FindingsQueue,
    fleet: Arc<FleetKnowledge>,
    /// The knowledge generation the fleet's knowledge was loaded at (-1: unknown).
    generation: Arc<AtomicI64>,
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
            generation: Arc::new(AtomicI64::new(-1)),
            metrics,
        }
    }

    /// Empties the fleet's knowledge when the store's generation moved since it was loaded.
    async fn follow_generation(&self) {
        match self.store.knowledge_generation().await {
            Ok(now) => {
                if self.generation.swap(now, Ordering::SeqCst) != now {
                    self.fleet.clear();
                }
            }
            Err(e) => {
                // Unknown: forget, to be safe.
                eprintln!("reading the knowledge-base generation: {e}");
                self.generation.store(-1, Ordering::SeqCst);
                self.fleet.clear();
            }
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
        let applied = self.store.apply_knowledge_changes().await;
        self.follow_generation().await;
        match applied {
            Ok(applied) if applied.changes > 0 => {
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
                eprintln!(
                    "knowledge base changed ({} writes: {} packages, {} CVEs): findings of {} hosts to recompute (found in {} ms)",
                    applied.changes, applied.packages, applied.cves, applied.hosts_marked,
                    started.elapsed().as_millis()
                );
            }
            Ok(_) => return,
            Err(e) => eprintln!("applying knowledge-base changes: {e}"),
        }
        self.queue_pending().await;
    }

    /// Queues the hosts whose findings lag their inventory.
    pub async fn queue_pending(&self) {
        if let Err(e) = self.findings.push_pending(&self.store).await {
            eprintln!("hosts owing findings: {e}");
        }
    }
}
