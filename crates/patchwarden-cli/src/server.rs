//! `patchwarden server`: the fleet server's settings from the command line and the environment,
//! what it prints on start; its scheduled feed sync is `scheduled_sync`'s.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args as ClapArgs;
use patchwarden_deploy::config::DeployConfig;
use patchwarden_server::{Server, ServerConfig};
use patchwarden_store::Store;

#[derive(ClapArgs)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443", env = "PATCHWARDEN_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// Where the CA, the server certificate and their keys are kept (created on first start).
    #[arg(long, env = "PATCHWARDEN_SERVER_STATE")]
    pub state_dir: Option<PathBuf>,
    /// A name (DNS or IP) the generated server certificate is valid for (repeatable; default
    /// localhost, 127.0.0.1, ::1 and this host's name).
    #[arg(long = "tls-name")]
    pub tls_names: Vec<String>,
    /// Serve this certificate chain (PEM) instead of the generated one (with --tls-key, --tls-ca).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// The CA that signed --tls-cert: agents pin its fingerprint.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Largest request body accepted, in MiB (413 beyond).
    #[arg(long, default_value_t = 32, env = "PATCHWARDEN_MAX_BODY_MIB")]
    pub max_body_mib: usize,
    /// Seconds a request body may take to arrive (408 and the connection closed beyond).
    #[arg(long, default_value_t = 60, env = "PATCHWARDEN_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: u64,
    /// Seconds a client may take to send a request's headers, and a kept-alive connection may
    /// sit idle.
    #[arg(long, default_value_t = 30, env = "PATCHWARDEN_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: u64,
    /// Connections served at once (more wait in the listen queue).
    #[arg(long, default_value_t = 4096, env = "PATCHWARDEN_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// Seconds between agent check-ins (agents add jitter).
    #[arg(
        long,
        default_value_t = 3600,
        env = "PATCHWARDEN_CHECKIN_INTERVAL_SECS"
    )]
    pub checkin_interval_secs: u64,
    /// Hosts not seen for this many seconds are stale.
    #[arg(long, default_value_t = 259200, env = "PATCHWARDEN_STALE_AFTER_SECS")]
    pub stale_after_secs: u64,
    /// Seconds between feed syncs (0: never; `feeds sync` by hand or cron instead). Servers sharing
    /// one store sync once per interval between them (a lease in the store; another server takes
    /// over when the holder dies).
    #[arg(long, default_value_t = 21600, env = "PATCHWARDEN_SYNC_INTERVAL_SECS")]
    pub sync_interval_secs: u64,
    /// Seconds a server keeps the sync's lease without renewing it (it renews every third of
    /// this while syncing): when it dies, another server takes over this long after.
    #[arg(long, default_value_t = 120, env = "PATCHWARDEN_SYNC_LEASE_SECS")]
    pub sync_lease_secs: u64,
    #[command(flatten)]
    pub download: crate::feeds::DownloadArgs,
    /// Seconds between applications of the knowledge base's change journal (feeds written by
    /// other processes: `feeds import`, another server); 0: only at start and after own syncs.
    #[arg(long, default_value_t = 60, env = "PATCHWARDEN_KNOWLEDGE_POLL_SECS")]
    pub knowledge_poll_secs: u64,
    /// Tasks computing findings after check-ins and knowledge-base changes (on PostgreSQL more
    /// than the cores can help: a worker waits on the database part of the time; SQLite has one
    /// writer).
    #[arg(long, default_value_t = 2, env = "PATCHWARDEN_FINDINGS_WORKERS")]
    pub findings_workers: usize,
    /// Days the report keys of check-ins and heartbeats (idempotency) are kept; 0: forever.
    #[arg(long, default_value_t = 14, env = "PATCHWARDEN_REPORT_RETENTION_DAYS")]
    pub report_retention_days: u64,
    /// Policy file (TOML) for due dates.
    #[arg(long, env = "PATCHWARDEN_POLICY")]
    pub policy: Option<PathBuf>,
    /// Deployment configuration (TOML): change policy, maintenance windows per host class, host
    /// profiles (hooks, health checks, reboot policy), rollout defaults. docs/deployment.md.
    #[arg(long, env = "PATCHWARDEN_DEPLOY_CONFIG")]
    pub deploy_config: Option<PathBuf>,
    /// Seconds between passes of the rollout driver over active changes (it also wakes on job
    /// reports and new findings).
    #[arg(long, default_value_t = 2, env = "PATCHWARDEN_ROLLOUT_TICK_SECS")]
    pub rollout_tick_secs: u64,
    /// Hours a queued job stays valid: its signature expires then, and an agent that comes back
    /// later refuses it (1 hour to 90 days).
    #[arg(long, default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..=2160), env = "PATCHWARDEN_JOB_TTL_HOURS")]
    pub job_ttl_hours: u64,
    /// The largest share of a snapshot feed's records (percent) a scheduled sync may drop;
    /// a larger loss (or an empty download) is refused and recorded as the feed's error.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100), env = "PATCHWARDEN_MAX_FEED_SHRINK_PERCENT")]
    pub max_feed_shrink: u8,
    /// Log lines as text or as JSON objects (one per line), on standard error; `RUST_LOG` filters
    /// them (default `info`: a line per request, audited events, rollout steps, syncs,
    /// knowledge-base changes).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "PATCHWARDEN_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Sends the server's `tracing` events to standard error, filtered by `RUST_LOG` (default
/// `info`; an unreadable filter is an error naming it).
fn init_logs(format: LogFormat) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::try_new(&spec).map_err(|e| anyhow::anyhow!("RUST_LOG={spec:?}: {e}"))?
        }
        _ => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("setting up the logs: {e}"))
}

pub async fn server(store: Store, args: &ServerArgs) -> anyhow::Result<ExitCode> {
    init_logs(args.log_format)?;
    let mut tls_names = args.tls_names.clone();
    if tls_names.is_empty() {
        tls_names = ServerConfig::default().tls_names;
        if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
            let h = h.trim();
            if !h.is_empty() {
                tls_names.push(h.to_owned());
            }
        }
    }
    let deploy = match &args.deploy_config {
        Some(path) => DeployConfig::load(path).map_err(anyhow::Error::msg)?,
        None => DeployConfig::default(),
    };
    let config = ServerConfig {
        listen: args.listen,
        deploy,
        rollout_tick: Duration::from_secs(args.rollout_tick_secs.max(1)),
        job_ttl: Duration::from_secs(args.job_ttl_hours * 3600),
        state_dir: args
            .state_dir
            .clone()
            .unwrap_or_else(patchwarden_server::default_state_dir),
        tls_names,
        provided_certificates: args.tls_cert.as_ref().map(|cert| {
            patchwarden_server::tls::ProvidedCertificates {
                cert: cert.clone(),
                key: args.tls_key.clone().expect("clap requires it"),
                ca: args.tls_ca.clone().expect("clap requires it"),
            }
        }),
        max_body_bytes: args.max_body_mib.max(1) << 20,
        body_timeout: Duration::from_secs(args.body_timeout_secs.max(1)),
        header_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
        max_connections: args.max_connections.max(1),
        checkin_interval: Duration::from_secs(args.checkin_interval_secs.max(1)),
        stale_after: Duration::from_secs(args.stale_after_secs),
        policy: args.policy.clone(),
        knowledge_poll: Duration::from_secs(args.knowledge_poll_secs),
        report_retention: Duration::from_secs(args.report_retention_days.saturating_mul(86_400)),
        findings_workers: args.findings_workers.clamp(1, 64),
        ..Default::default()
    };
    let store = store.with_replace_policy(patchwarden_model::feed_guard::ReplacePolicy {
        max_shrink: f64::from(args.max_feed_shrink) / 100.0,
        allow_shrink: false,
    });
    let server = Server::bind(store.clone(), config)
        .await
        .map_err(anyhow::Error::msg)?;
    let started = server.started.clone();
    // Printed for the operator (and read by tests): one fact per line.
    let mut out = std::io::stdout().lock();
    // The listening line comes last: once it is out, the server accepts connections.
    if let Some(token) = &started.admin_token {
        writeln!(out, "admin token (shown once): {token}")?;
    }
    writeln!(out, "CA fingerprint: {}", started.ca_fingerprint)?;
    writeln!(out, "listening on https://{}", started.address)?;
    out.flush()?;
    drop(out);
    if args.sync_interval_secs > 0 {
        tokio::spawn(crate::scheduled_sync::run(
            server.knowledge(),
            crate::scheduled_sync::Schedule {
                every_secs: args.sync_interval_secs,
                lease_secs: args.sync_lease_secs,
                settings: patchwarden_sync::SyncSettings {
                    progress: Some(|m| tracing::info!(target: "patchwarden::sync", "{m}")),
                    ..args.download.settings()
                },
            },
        ));
    }
    server.serve(patchwarden_server::shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}
