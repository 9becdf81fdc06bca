//! Hosts whose findings are to be recomputed, each queued once however often it is asked for and
//! never evaluated by two workers at once, and the workers that drain the queue (each owns its
//! store handle and shares the fleet's knowledge: a host's evaluation is mostly a lookup of its
//! package set or of package versions evaluated before, and its write only the differences;
//! `patchwarden_findings::fleet`).
//!
//! A worker takes what is queued, up to [`BATCH`] hosts, and handles them together: one read of
//! what they are evaluated from (per host one row — the inventory without packages, the package
//! set — and the package versions it has not seen before), one transaction writing their
//! differences. A host that cannot be evaluated is logged and counted; the others are stored.
//!
//! The queue is only a speed-up: what is owed is in the store (a host's `findings_version` behind
//! its `inventory_version`), and a starting server queues those hosts again. It holds host ids
//! only (memory stays small under any burst). It does not spread work across servers: each
//! server evaluates the hosts it was asked for (a host queued on two servers is evaluated twice,
//! and the older evaluation is not stored over the newer).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use patchwarden_findings::fleet::FleetKnowledge;
use patchwarden_store::fleet::EvaluatedFindings;
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

/// Most hosts a worker evaluates and stores together (one read, one write transaction).
const BATCH: usize = 256;

/// How long a worker waits for more hosts after the first before it starts a batch.
const GATHER: std::time::Duration = std::time::Duration::from_millis(100);

impl Queue {
    /// The next hosts to evaluate: what is queued, up to [`BATCH`], waiting for one when none is
    /// (None: the queue is closed). Hosts another worker is evaluating are left to it (it runs
    /// them again when done).
    async fn next_batch(&self) -> Option<Vec<i64>> {
        loop {
            let mut taken = Vec::new();
            {
                let mut receiver = self.receiver.lock().await;
                taken.push(receiver.recv().await?);
                // A moment for more to arrive (a burst of check-ins): fewer, larger write
                // transactions, which leave the store to the check-ins in between.
                if receiver.len() + 1 < BATCH {
                    tokio::time::sleep(GATHER).await;
                }
                while taken.len() < BATCH {
                    match receiver.try_recv() {
                        Ok(host) => taken.push(host),
                        Err(_) => break,
                    }
                }
            }
            if let Ok(mut q) = self.queued.lock() {
                for host in &taken {
                    q.remove(host);
                }
            }
            let Ok(mut running) = self.running.lock() else {
                continue;
            };
            let mut batch = Vec::with_capacity(taken.len());
            for host in taken {
                match running.get_mut(&host) {
                    // Another worker has it: it runs the host again when done.
                    Some(again) => *again = true,
                    None => {
                        running.insert(host, false);
                        batch.push(host);
                    }
                }
            }
            if !batch.is_empty() {
                return Some(batch);
            }
        }
    }
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
/// inventory, evaluate, write; a batch's time spread over its hosts): each phase is a latency
/// histogram in the metrics (`findings:<phase>`), and with `PATCHWARDEN_TIMINGS=1` the server
/// prints the totals each time another `every` hosts are done.
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

    /// Adds one batch of `hosts` hosts: each phase's time is spread evenly over them.
    fn add(&self, metrics: &Metrics, hosts: usize, phases: &[(&'static str, f64)]) {
        let hosts = hosts.max(1) as u64;
        for (phase, secs) in phases {
            metrics.observe_n(&format!("findings:{phase}"), secs / hosts as f64, hosts);
        }
        let Ok(mut totals) = self.totals.lock() else {
            return;
        };
        let before = totals.0;
        totals.0 += hosts;
        for (phase, secs) in phases {
            match totals.1.iter_mut().find(|(p, _)| p == phase) {
                Some((_, sum)) => *sum += secs,
                None => totals.1.push((phase, *secs)),
            }
        }
        if self.log && totals.0 / self.every != before / self.every {
            let hosts = totals.0;
            let line: Vec<String> = totals
                .1
                .iter()
                .map(|(p, s)| format!("{p} {:.1} ms/host", s * 1000.0 / hosts as f64))
                .collect();
            tracing::info!(target: "patchwarden::findings", hosts, phases = %line.join(", "), "timing");
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
                while let Some(batch) = queue.next_batch().await {
                    let mut again = worker.run(&batch).await;
                    if let Ok(mut running) = queue.running.lock() {
                        again.extend(
                            batch
                                .iter()
                                .filter(|h| running.remove(h).unwrap_or(false))
                                .copied(),
                        );
                    }
                    let handle = FindingsQueue {
                        queue: queue.clone(),
                    };
                    for host in again {
                        handle.push(host);
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
    /// Recomputes the hosts; answers those to queue again.
    async fn run(&self, hosts: &[i64]) -> Vec<i64> {
        let started = Instant::now();
        match self.recompute(hosts).await {
            Ok(outcome) => {
                let each = started.elapsed().as_secs_f64() / hosts.len().max(1) as f64;
                self.metrics
                    .observe_n("findings", each, outcome.stored as u64);
                for (host, e) in &outcome.failed {
                    self.metrics
                        .count("patchwarden_findings_failures_total", "");
                    tracing::error!(target: "patchwarden::findings", host, error = %e, "computing findings");
                }
                self.stored.notify_one();
                outcome.again
            }
            Err(e) => {
                self.metrics
                    .count("patchwarden_findings_failures_total", "");
                tracing::error!(target: "patchwarden::findings", hosts = %host_list(hosts), error = %e, "computing findings");
                Vec::new()
            }
        }
    }

    /// Evaluates the hosts' stored inventories and stores the differences to their findings,
    /// all in one read and one write transaction.
    pub async fn recompute(&self, hosts: &[i64]) -> Result<Recomputed, FindingsError> {
        let mut phases: Vec<(&'static str, f64)> = Vec::with_capacity(3);
        let mut last = Instant::now();
        // The knowledge base as of now (emptied if changes were applied since it was loaded).
        let generation = self.fleet.follow(&self.store).await?;
        let inputs = self.store.host_evaluation_inputs(hosts).await?;
        phases.push(("read inventory", last.elapsed().as_secs_f64()));
        last = Instant::now();
        let mut outcome = Recomputed::default();
        let mut evaluated = Vec::with_capacity(inputs.len());
        for (host_id, input) in inputs {
            let input = match input {
                Ok(input) => input,
                Err(e) => {
                    outcome.failed.push((host_id, e.into()));
                    continue;
                }
            };
            match self.fleet.evaluate(&self.store, &input, None).await {
                Ok(keys) => evaluated.push(EvaluatedFindings {
                    host_id,
                    version: input.version,
                    keys,
                }),
                Err(e) => outcome.failed.push((host_id, e.into())),
            }
        }
        phases.push(("evaluate", last.elapsed().as_secs_f64()));
        last = Instant::now();
        let now = patchwarden_model::now_rfc3339();
        let stored = self
            .store
            .store_findings(&evaluated, Some(generation), &now)
            .await?;
        outcome.stored = stored.iter().filter(|s| s.stored).count();
        if stored.iter().any(|s| s.stale_knowledge) {
            // Evaluated against a knowledge base replaced meanwhile: again, from the new one.
            outcome.again = evaluated.iter().map(|e| e.host_id).collect();
        }
        phases.push(("write", last.elapsed().as_secs_f64()));
        self.timings.add(&self.metrics, hosts.len(), &phases);
        Ok(outcome)
    }
}

/// What one batch's recomputation did.
#[derive(Debug, Default)]
pub struct Recomputed {
    /// Hosts whose findings were stored (the others had newer findings stored meanwhile, or no
    /// inventory).
    pub stored: usize,
    /// Hosts that could not be evaluated, and why (the batch's other hosts were).
    pub failed: Vec<(i64, FindingsError)>,
    /// Hosts to evaluate again: the knowledge base changed while they were evaluated.
    pub again: Vec<i64>,
}

/// Host ids for a log line (the first few).
fn host_list(hosts: &[i64]) -> String {
    let shown: Vec<String> = hosts.iter().take(5).map(i64::to_string).collect();
    if hosts.len() > shown.len() {
        format!(
            "{} and {} more",
            shown.join(", "),
            hosts.len() - shown.len()
        )
    } else {
        shown.join(", ")
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
        timings.add(&metrics, 1, &[("match", 0.002), ("write", 0.010)]);
        timings.add(&metrics, 1, &[("match", 0.004), ("write", 0.020)]);
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
