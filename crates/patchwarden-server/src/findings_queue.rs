//! Hosts whose findings are to be recomputed, each queued once however often it is asked for and
//! never evaluated by two workers at once, and the workers that drain the queue (each owns its
//! store handle and shares the fleet's knowledge: a host's evaluation is mostly lookups of package
//! versions evaluated before, and its write only the differences; `patchwarden_findings::fleet`).
//!
//! The queue is only a speed-up: what is owed is in the store (a host's `findings_version` behind
//! its `inventory_version`), and a starting server queues those hosts again. Inventories handed
//! over with a host are kept only while the queue is short (memory stays bounded under a burst:
//! beyond that the worker reads the inventory back).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use patchwarden_findings::fleet::FleetKnowledge;
use patchwarden_model::Inventory;
use patchwarden_store::{Store, StoreError};

use crate::Metrics;

/// Most inventories kept in the queue.
const MAX_QUEUED_INVENTORIES: usize = 256;

/// An inventory with the version it was stored as.
pub type VersionedInventory = (Arc<Inventory>, i64);

struct Queue {
    sender: tokio::sync::mpsc::UnboundedSender<i64>,
    receiver: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<i64>>,
    queued: std::sync::Mutex<HashMap<i64, Option<VersionedInventory>>>,
    /// Hosts a worker is evaluating, and those asked for again meanwhile (run once it is done:
    /// an evaluation started before a knowledge-base change must not be the last one stored).
    running: std::sync::Mutex<HashMap<i64, Option<Option<VersionedInventory>>>>,
}

/// The handle of the queue (cheap to clone).
#[derive(Clone)]
pub struct FindingsQueue {
    queue: Arc<Queue>,
}

/// What a findings worker needs: its own store handle, the fleet's knowledge, metrics, and whom to
/// wake when findings are stored (the rollout driver verifies from them).
#[derive(Clone)]
pub struct FindingsWorker {
    pub store: Store,
    pub fleet: Arc<FleetKnowledge>,
    pub metrics: Arc<Metrics>,
    pub stored: Arc<tokio::sync::Notify>,
    pub timings: Arc<PhaseTimings>,
}

/// Where the findings workers spend their time, per phase of a host's evaluation (read the
/// inventory, evaluate, write): each phase is a latency histogram
/// in the metrics (`findings:<phase>`), and with `PATCHWARDEN_TIMINGS=1` the server prints the
/// totals every `every` hosts.
pub struct PhaseTimings {
    every: u64,
    log: bool,
    totals: std::sync::Mutex<(u64, Vec<(&'static str, f64)>)>,
}

impl PhaseTimings {
    /// Printing every `every` hosts when `PATCHWARDEN_TIMINGS=1`.
    pub fn from_env(every: u64) -> PhaseTimings {
        PhaseTimings {
            every: every.max(1),
            log: std::env::var_os("PATCHWARDEN_TIMINGS").is_some_and(|v| v == "1"),
            totals: std::sync::Mutex::new((0, Vec::new())),
        }
    }

    fn add(&self, metrics: &Metrics, phases: &[(&'static str, f64)]) {
        for (phase, secs) in phases {
            metrics.observe(&format!("findings:{phase}"), *secs);
        }
        let Ok(mut totals) = self.totals.lock() else {
            return;
        };
        totals.0 += 1;
        for (phase, secs) in phases {
            match totals.1.iter_mut().find(|(p, _)| p == phase) {
                Some((_, sum)) => *sum += secs,
                None => totals.1.push((phase, *secs)),
            }
        }
        if self.log && totals.0 % self.every == 0 {
            let hosts = totals.0;
            let line: Vec<String> = totals
                .1
                .iter()
                .map(|(p, s)| format!("{p} {:.1} ms/host", s * 1000.0 / hosts as f64))
                .collect();
            eprintln!("timing: findings over {hosts} hosts: {}", line.join(", "));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FindingsError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl FindingsQueue {
    /// The queue with `workers` tasks draining it (at least one).
    pub fn start(worker: FindingsWorker, workers: usize) -> FindingsQueue {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let queue = FindingsQueue {
            queue: Arc::new(Queue {
                sender,
                receiver: tokio::sync::Mutex::new(receiver),
                queued: std::sync::Mutex::new(HashMap::new()),
                running: std::sync::Mutex::new(HashMap::new()),
            }),
        };
        for _ in 0..workers.max(1) {
            let queue = queue.queue.clone();
            let worker = worker.clone();
            tokio::spawn(async move {
                loop {
                    let next = queue.receiver.lock().await.recv().await;
                    let Some(host) = next else { break };
                    let inventory = queue
                        .queued
                        .lock()
                        .ok()
                        .and_then(|mut q| q.remove(&host))
                        .flatten();
                    {
                        let Ok(mut running) = queue.running.lock() else {
                            continue;
                        };
                        if let Some(again) = running.get_mut(&host) {
                            // Another worker has it: it runs the host again when done.
                            *again = Some(inventory);
                            continue;
                        }
                        running.insert(host, None);
                    }
                    worker.run(host, inventory).await;
                    let again = queue
                        .running
                        .lock()
                        .ok()
                        .and_then(|mut r| r.remove(&host))
                        .flatten();
                    if let Some(inventory) = again {
                        FindingsQueue {
                            queue: queue.clone(),
                        }
                        .push(host, inventory);
                    }
                }
            });
        }
        queue
    }

    /// Queues a host (once, however often asked), with its inventory when the caller has it.
    pub fn push(&self, host: i64, inventory: Option<VersionedInventory>) {
        let fresh = self
            .queue
            .queued
            .lock()
            .map(|mut q| {
                let keep = q.len() < MAX_QUEUED_INVENTORIES;
                let inventory = inventory.filter(|_| keep);
                match q.entry(host) {
                    Entry::Occupied(mut e) => {
                        // A newer inventory replaces the older one; none keeps what is there.
                        if inventory.is_some() {
                            e.insert(inventory);
                        }
                        false
                    }
                    Entry::Vacant(e) => {
                        e.insert(inventory);
                        true
                    }
                }
            })
            .unwrap_or(true);
        if fresh {
            let _ = self.queue.sender.send(host);
        }
    }

    /// Whether an inventory handed to [`FindingsQueue::push`] now would be kept.
    pub fn keeps_inventories(&self) -> bool {
        self.queue
            .queued
            .lock()
            .map(|q| q.len() < MAX_QUEUED_INVENTORIES)
            .unwrap_or(false)
    }

    /// Queues the hosts whose stored inventory is newer than their findings (after a crash between
    /// the two, or a knowledge-base change that marked them).
    pub async fn push_pending(&self, store: &Store) -> Result<(), StoreError> {
        for host in store.hosts_needing_findings().await? {
            self.push(host, None);
        }
        Ok(())
    }
}

impl FindingsWorker {
    async fn run(&self, host: i64, inventory: Option<VersionedInventory>) {
        let started = Instant::now();
        match self.recompute(host, inventory).await {
            Ok(_) => {
                self.metrics
                    .observe("findings", started.elapsed().as_secs_f64());
                self.stored.notify_one();
            }
            Err(e) => {
                self.metrics
                    .count("patchwarden_findings_failures_total", "");
                eprintln!("findings for host {host}: {e}");
            }
        }
    }

    /// Evaluates the host's inventory (the one given, else the stored one) and stores the
    /// differences to its findings; answers how many findings it holds.
    pub async fn recompute(
        &self,
        host_id: i64,
        inventory: Option<VersionedInventory>,
    ) -> Result<usize, FindingsError> {
        let mut phases: Vec<(&'static str, f64)> = Vec::with_capacity(6);
        let mut last = Instant::now();
        let (inventory, version) = match inventory {
            Some(given) => given,
            None => match self.store.host_inventory(host_id).await? {
                Some((inv, version)) => (Arc::new(inv), version),
                None => return Ok(0),
            },
        };
        phases.push(("read inventory", last.elapsed().as_secs_f64()));
        last = Instant::now();
        let evaluation = self.fleet.evaluate(&self.store, &inventory, None).await?;
        phases.push(("evaluate", last.elapsed().as_secs_f64()));
        last = Instant::now();
        let now = patchwarden_model::now_rfc3339();
        self.store
            .store_host_findings(host_id, version, &evaluation.keys, &now)
            .await?;
        phases.push(("write", last.elapsed().as_secs_f64()));
        self.timings.add(&self.metrics, &phases);
        Ok(evaluation.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_timings_add_up_per_phase_and_reach_the_metrics() {
        let metrics = Metrics::default();
        let timings = PhaseTimings {
            every: 2,
            log: false,
            totals: std::sync::Mutex::new((0, Vec::new())),
        };
        timings.add(&metrics, &[("match", 0.002), ("write", 0.010)]);
        timings.add(&metrics, &[("match", 0.004), ("write", 0.020)]);
        let (hosts, totals) = timings.totals.lock().unwrap().clone();
        assert_eq!(hosts, 2);
        assert_eq!(totals.len(), 2);
        assert!((totals[0].1 - 0.006).abs() < 1e-9, "{totals:?}");
        assert!((totals[1].1 - 0.030).abs() < 1e-9, "{totals:?}");
        let text = metrics.render();
        assert!(
            text.contains(r#"route="findings:match""#)
                && text.contains(r#"route="findings:write""#),
            "{text}"
        );
    }
}
