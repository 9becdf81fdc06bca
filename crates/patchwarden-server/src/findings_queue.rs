//! Hosts whose findings are to be recomputed, each queued once however often it is asked for and
//! never evaluated by two workers at once, and the workers that drain the queue (each owns its
//! store handle and shares the fleet's knowledge: a host's evaluation is mostly lookups of package
//! versions evaluated before, and its write only the differences; `patchwarden_findings::fleet`).
//!
//! The queue is only a speed-up: what is owed is in the store (a host's `findings_version` behind
//! its `inventory_version`), and a starting server queues those hosts again. It holds host ids
//! only (memory stays small under any burst): a worker reads what it needs back in one row — the
//! inventory without packages and the ids of the package versions — and the package versions it
//! has not seen before.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use patchwarden_findings::fleet::FleetKnowledge;
use patchwarden_store::{Store, StoreError};

use crate::Metrics;

struct Queue {
    sender: tokio::sync::mpsc::UnboundedSender<i64>,
    receiver: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<i64>>,
    queued: std::sync::Mutex<HashSet<i64>>,
    /// Hosts a worker is evaluating, and whether they were asked for again meanwhile (run once
    /// it is done: an evaluation started before a knowledge-base change must not be the last one
    /// stored).
    running: std::sync::Mutex<HashMap<i64, bool>>,
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
                queued: std::sync::Mutex::new(HashSet::new()),
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
                    if let Ok(mut q) = queue.queued.lock() {
                        q.remove(&host);
                    }
                    {
                        let Ok(mut running) = queue.running.lock() else {
                            continue;
                        };
                        if let Some(again) = running.get_mut(&host) {
                            // Another worker has it: it runs the host again when done.
                            *again = true;
                            continue;
                        }
                        running.insert(host, false);
                    }
                    worker.run(host).await;
                    let again = queue
                        .running
                        .lock()
                        .ok()
                        .and_then(|mut r| r.remove(&host))
                        .unwrap_or(false);
                    if again {
                        FindingsQueue {
                            queue: queue.clone(),
                        }
                        .push(host);
                    }
                }
            });
        }
        queue
    }

    /// Queues a host (once, however often asked).
    pub fn push(&self, host: i64) {
        let fresh = self
            .queue
            .queued
            .lock()
            .map(|mut q| q.insert(host))
            .unwrap_or(true);
        if fresh {
            let _ = self.queue.sender.send(host);
        }
    }

    /// Queues the hosts whose stored inventory is newer than their findings (after a crash between
    /// the two, or a knowledge-base change that marked them).
    pub async fn push_pending(&self, store: &Store) -> Result<(), StoreError> {
        for host in store.hosts_needing_findings().await? {
            self.push(host);
        }
        Ok(())
    }
}

impl FindingsWorker {
    async fn run(&self, host: i64) {
        let started = Instant::now();
        match self.recompute(host).await {
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

    /// Evaluates the host's stored inventory and stores the differences to its findings;
    /// answers how many findings it holds.
    pub async fn recompute(&self, host_id: i64) -> Result<usize, FindingsError> {
        let mut phases: Vec<(&'static str, f64)> = Vec::with_capacity(3);
        let mut last = Instant::now();
        let Some((head, package_ids, version)) = self.store.host_evaluation_input(host_id).await?
        else {
            return Ok(0);
        };
        phases.push(("read inventory", last.elapsed().as_secs_f64()));
        last = Instant::now();
        let keys = self
            .fleet
            .evaluate(&self.store, &head, &package_ids, None)
            .await?;
        phases.push(("evaluate", last.elapsed().as_secs_f64()));
        last = Instant::now();
        let now = patchwarden_model::now_rfc3339();
        self.store
            .store_host_findings(host_id, version, &keys, &now)
            .await?;
        phases.push(("write", last.elapsed().as_secs_f64()));
        self.timings.add(&self.metrics, &phases);
        Ok(keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_queued_once_however_often_asked() {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let queue = FindingsQueue {
            queue: Arc::new(Queue {
                sender,
                receiver: tokio::sync::Mutex::new(tokio::sync::mpsc::unbounded_channel().1),
                queued: std::sync::Mutex::new(HashSet::new()),
                running: std::sync::Mutex::new(HashMap::new()),
            }),
        };
        for _ in 0..3 {
            queue.push(7);
        }
        queue.push(8);
        assert_eq!(receiver.try_recv().ok(), Some(7));
        assert_eq!(receiver.try_recv().ok(), Some(8));
        assert!(receiver.try_recv().is_err(), "7 was sent once");
    }

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
