//! `patchwarden server`: the fleet's control plane. A JSON REST API over TLS (its own CA unless given
//! certificates), enrollment of agents with hashed, expiring, use-limited tokens, per-host
//! credentials, check-ins that are durable before they are acknowledged and stored once per
//! idempotency key, findings recomputed for a host when its inventory changes, fleet queries, user
//! tokens with roles, Prometheus metrics, health and readiness.
//!
//! It holds no state of its own: everything is in the store, so several server processes can share
//! one PostgreSQL database.
//!
//! The map: [`routes`] (every route, who may call it, its handler; the router), [`handlers`] (one
//! file per resource, functions named by verb), [`auth`] and [`extract`] (the extractors that check
//! the caller, ids, bodies and queries before a handler runs), [`error`] (the one error type and
//! its JSON), [`state`] (what requests share: the store, the configuration and the handles of the
//! background services), the background services — [`heartbeats`] (group commit),
//! [`findings_queue`] (findings workers), [`knowledge`] (the knowledge-base journal),
//! [`job_board`] (hosts with queued jobs), [`rollouts`] (the rollout driver) — each owning its
//! store handle; [`admin`] (users and tokens, shared with the CLI), [`documents`] (stored
//! documents read back into their types), [`tls`], [`secrets`], [`assets`], metrics.

pub mod admin;
pub mod assets;
pub mod auth;
pub mod documents;
pub mod error;
pub mod extract;
pub mod findings_queue;
pub mod handlers;
pub mod heartbeats;
pub mod job_board;
pub mod knowledge;
mod metrics;
pub mod rollouts;
pub mod routes;
pub mod secrets;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use patchwarden_store::Store;

pub use error::StartError;

pub use metrics::Metrics;

/// Everything the server is told; every field has a default (see [`ServerConfig::default`]).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (`0.0.0.0:8443` by default; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Where the CA, the server certificate and their keys live.
    pub state_dir: PathBuf,
    /// Names (DNS or IP) the generated server certificate is valid for.
    pub tls_names: Vec<String>,
    /// Operator-provided certificates instead of the generated ones.
    pub provided_certificates: Option<tls::ProvidedCertificates>,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// How often agents should check in (they add jitter).
    pub checkin_interval: Duration,
    /// Hosts not seen for this long are stale.
    pub stale_after: Duration,
    /// Longest a job long-poll is held open.
    pub long_poll_max: Duration,
    /// Tasks recomputing findings after check-ins.
    pub findings_workers: usize,
    /// Policy file (TOML) for due dates; the built-in presets otherwise.
    pub policy: Option<PathBuf>,
    /// Where distro-info-data lives (end-of-life dates).
    pub distro_info_dir: PathBuf,
    /// How often the knowledge base's change journal is applied (feeds written by other
    /// processes: `feeds import`, another server's sync); zero: only at start and after this
    /// server's own syncs.
    pub knowledge_poll: Duration,
    /// How often each server reads which hosts have queued jobs (jobs queued through another
    /// server reach their long-poll within this).
    pub job_poll: Duration,
    /// How long an agent's package manager waits for another's lock.
    pub job_lock_timeout: Duration,
    /// The deployment configuration: change policy, maintenance windows, host profiles (hooks,
    /// health checks, reboot policy), rollout defaults.
    pub deploy: patchwarden_deploy::config::DeployConfig,
    /// How often the rollout driver looks at active changes (it also wakes on job reports and
    /// new findings).
    pub rollout_tick: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:8443".parse().expect("a valid address"),
            state_dir: default_state_dir(),
            tls_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            provided_certificates: None,
            max_body_bytes: 32 << 20,
            checkin_interval: Duration::from_secs(3600),
            stale_after: Duration::from_secs(3 * 86400),
            long_poll_max: Duration::from_secs(60),
            findings_workers: 2,
            policy: None,
            distro_info_dir: "/usr/share/distro-info".into(),
            knowledge_poll: Duration::from_secs(60),
            job_poll: Duration::from_secs(2),
            job_lock_timeout: Duration::from_secs(300),
            deploy: patchwarden_deploy::config::DeployConfig::default(),
            rollout_tick: Duration::from_secs(2),
        }
    }
}

/// `$XDG_STATE_HOME/patchwarden/server`, else `~/.local/state/patchwarden/server`.
pub fn default_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("patchwarden/server")
}

/// What the server tells its operator on start (printed by the CLI, read by tests).
#[derive(Clone, Debug)]
pub struct Started {
    pub address: SocketAddr,
    pub ca_fingerprint: String,
    /// The first admin's token, when this start created it (shown once, stored as a digest).
    pub admin_token: Option<String>,
}

/// Prepares the server: TLS identity, the first admin, findings left behind by a crash; then
/// binds. Serve with [`Server::serve`].
pub struct Server {
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: state::AppState,
    pub started: Started,
}

impl Server {
    pub async fn bind(store: Store, config: ServerConfig) -> Result<Server, StartError> {
        let identity = tls::load_or_create(
            &config.state_dir,
            &config.tls_names,
            config.provided_certificates.as_ref(),
        )?;
        let tls = tls::server_config(&identity)?;
        let admin_token = if store.user_count().await? == 0 {
            Some(
                admin::create_user(&store, "admin", patchwarden_model::fleet::Role::Admin)
                    .await
                    .map_err(|e| match e {
                        admin::AdminError::Store(e)
                        | admin::AdminError::UserExists { source: e, .. } => e,
                        other => unreachable!("the first admin's name is valid: {other}"),
                    })?
                    .token,
            )
        } else {
            None
        };
        let policy = patchwarden_risk::policy::Policy::load(config.policy.as_deref())?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen {
                address: config.listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| StartError::Listen {
            address: config.listen,
            source,
        })?;
        let knowledge_poll = config.knowledge_poll;
        let rollout_tick = config.rollout_tick;
        let state = state::AppState::start(store, config, identity.ca_pem.clone(), policy);
        // Knowledge-base changes written while no server ran, and inventories stored before a
        // crash whose findings were not computed yet.
        state.knowledge.apply().await;
        state.knowledge.queue_pending().await;
        state.knowledge.start(knowledge_poll);
        rollouts::RolloutDriver {
            store: state.store.clone(),
            config: state.config.clone(),
            metrics: state.metrics.clone(),
            job_board: state.job_board.clone(),
            wake: state.rollout_wake.clone(),
        }
        .start(rollout_tick);
        Ok(Server {
            listener,
            tls,
            state,
            started: Started {
                address,
                ca_fingerprint: identity.ca_fingerprint,
                admin_token,
            },
        })
    }

    /// The knowledge-base service (for background work beside the server: scheduled syncs write
    /// feeds into its store, then apply the journal).
    pub fn knowledge(&self) -> knowledge::KnowledgeWatcher {
        self.state.knowledge.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight finish
    /// (up to 30 s) and returns.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        use hyper_util::rt::TokioIo;
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls);
        let router = routes::router(self.state.clone());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (tcp, _peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(_) => {
                        // Out of file descriptors or similar: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let router = router.clone();
            let watcher = graceful.watcher();
            let metrics = self.state.metrics.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(tls)) => tls,
                    _ => {
                        metrics.count("patchwarden_tls_handshake_failures_total", "");
                        return;
                    }
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(tls), service);
                let _ = watcher.watch(conn).await;
            });
        }
        drop(self.listener);
        let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
