//! Starting and serving: the TLS identity, the first admin, the background services and the work
//! a crash left ([`Server::bind`]); the accept loop — a permit per connection, TLS handshakes under
//! a timeout, lingering closes (`lingering.rs`) — and a graceful stop ([`Server::serve`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use patchwarden_store::Store;

use crate::error::StartError;
use crate::{admin, knowledge, rollouts, routes, state, tls, ServerConfig};

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
                admin::create_user(
                    &store,
                    "admin",
                    patchwarden_model::fleet::Role::Admin,
                    None,
                    None,
                )
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
        let report_retention = config.report_retention;
        let audit_key = crate::audit::load_or_create_key(&config.state_dir)?;
        let job_signer = crate::job_signer::JobSigner::load(&config.state_dir, config.job_ttl)?;
        let state = state::AppState::start(store, config, identity.ca_pem.clone(), policy)
            .with_keys(audit_key, job_signer);
        state.audit.checkpoint_head().await;
        // Knowledge-base changes written while no server ran, and inventories stored before a
        // crash whose findings were not computed yet.
        state.knowledge.apply().await;
        state.knowledge.queue_pending().await;
        state.knowledge.start(knowledge_poll);
        crate::retention::Retention {
            store: state.store.clone(),
            metrics: state.metrics.clone(),
            reports: report_retention,
        }
        .start(Duration::from_secs(3600));
        rollouts::RolloutDriver::of(&state).start(rollout_tick);
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
        // At most max_connections served at once: the accept waits for a permit, so further
        // clients wait in the kernel's listen queue instead of costing memory here.
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(
            self.state.config.max_connections.max(1),
        ));
        let header_timeout = self.state.config.header_timeout;
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = &mut shutdown => break,
            };
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
            // The stream holds the permit, and lingers when dropped (`lingering.rs`): a client
            // still sending when its connection ends reads its answer, not a reset.
            let tcp = crate::lingering::LingeringStream::new(tcp, permit);
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
                    .header_read_timeout(header_timeout)
                    // The read buffer holds a request's head and what arrived of its body; hyper
                    // grows it up to ~400 KiB by default, per connection. 64 KiB keeps the cost of
                    // max_connections bounded (heads are far smaller; bodies stream through).
                    .max_buf_size(64 << 10)
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
