//! What every request shares: the store, the configuration, metrics, and the handles of the
//! background services (each service owns its own store handle and never reaches back into this).
//! No fleet state lives here: everything is in the store, so several servers can share one
//! PostgreSQL database.

use std::sync::Arc;

use patchwarden_store::Store;

use crate::findings_queue::{FindingsQueue, FindingsWorker};
use crate::findings_view::FindingsView;
use crate::group_commit::{HeartbeatBatcher, InventoryBatcher};
use crate::host_cache::HostCache;
use crate::job_board::JobBoard;
use crate::knowledge::KnowledgeWatcher;
use crate::{Metrics, ServerConfig};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    pub ca_pem: Arc<String>,
    /// Host credentials this process has checked.
    pub hosts: Arc<HostCache>,
    pub heartbeats: HeartbeatBatcher,
    pub inventories: InventoryBatcher,
    pub findings: FindingsQueue,
    /// Reads the fleet's findings (assembled on read).
    pub view: FindingsView,
    pub knowledge: KnowledgeWatcher,
    /// Which hosts have queued jobs (long-polls wait on it).
    pub job_board: Arc<JobBoard>,
    /// Wakes the rollout driver (a job report, new findings, a change acted on).
    pub rollout_wake: Arc<tokio::sync::Notify>,
    /// Records security-relevant events in the audit log.
    pub audit: crate::audit::AuditLog,
    /// Signs jobs as they are queued.
    pub job_signer: crate::job_signer::JobSigner,
}

impl AppState {
    /// Starts the background services that answer requests (heartbeat batcher, findings workers,
    /// job board) on the current runtime and gathers their handles. The knowledge watcher's and
    /// the rollout driver's loops are started by [`crate::Server::bind`].
    pub fn start(
        store: Store,
        config: ServerConfig,
        ca_pem: String,
        policy: patchwarden_risk::policy::Policy,
    ) -> AppState {
        let metrics = Arc::new(Metrics::default());
        let rollout_wake = Arc::new(tokio::sync::Notify::new());
        let fleet = Arc::new(patchwarden_findings::fleet::FleetKnowledge::new(
            config.distro_info_dir.clone(),
        ));
        let view = FindingsView::new(
            store.clone(),
            fleet.clone(),
            Arc::new(policy),
            config.distro_info_dir.clone(),
            config.clock.clone(),
        );
        let findings = FindingsQueue::start(
            FindingsWorker {
                store: store.clone(),
                fleet: fleet.clone(),
                metrics: metrics.clone(),
                stored: rollout_wake.clone(),
                timings: Arc::new(crate::findings_queue::PhaseTimings::from_env(1000)),
            },
            config.findings_workers,
        );
        // Keys of this process only until `with_keys` gives the state directory's.
        let key = crate::signing_keys::ephemeral();
        AppState {
            audit: crate::audit::AuditLog::new(store.clone(), Arc::new(key), metrics.clone()),
            job_signer: crate::job_signer::JobSigner::new(
                crate::signing_keys::ephemeral(),
                config.job_ttl,
            ),
            heartbeats: HeartbeatBatcher::heartbeats(store.clone()),
            inventories: InventoryBatcher::inventories(store.clone()),
            job_board: JobBoard::start(store.clone(), config.job_poll),
            knowledge: KnowledgeWatcher::new(
                store.clone(),
                findings.clone(),
                fleet,
                metrics.clone(),
            ),
            findings,
            view,
            store,
            config: Arc::new(config),
            metrics,
            ca_pem: Arc::new(ca_pem),
            hosts: Arc::new(HostCache::default()),
            rollout_wake,
        }
    }

    /// The state with the audit log and jobs signed with the state directory's keys.
    pub fn with_keys(
        mut self,
        audit_key: ring::signature::Ed25519KeyPair,
        job_signer: crate::job_signer::JobSigner,
    ) -> AppState {
        self.audit = crate::audit::AuditLog::new(
            self.store.clone(),
            Arc::new(audit_key),
            self.metrics.clone(),
        );
        self.job_signer = job_signer;
        self
    }

    /// The staleness limit in seconds.
    pub fn stale_secs(&self) -> i64 {
        self.config.stale_after.as_secs() as i64
    }
}
