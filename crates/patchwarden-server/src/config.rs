//! Everything the server is told ([`ServerConfig`]), with its defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::tls;

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
    /// Longest a request body may take to arrive, from the request's start (408 and the
    /// connection closed beyond).
    pub body_timeout: Duration,
    /// Connections served at once; more wait in the listen queue until one ends.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers, and the longest a kept-alive
    /// connection may sit idle before its next request.
    pub header_timeout: Duration,
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
    /// How long a queued job stays valid: its signature expires then, and an agent that comes
    /// back later refuses it.
    pub job_ttl: Duration,
    /// The deployment configuration: change policy, maintenance windows, host profiles (hooks,
    /// health checks, reboot policy), rollout defaults.
    pub deploy: patchwarden_deploy::config::DeployConfig,
    /// How long the report keys of check-ins and heartbeats (idempotency) are kept; zero: forever.
    pub report_retention: Duration,
    /// How often the rollout driver looks at active changes (it also wakes on job reports and
    /// new findings).
    pub rollout_tick: Duration,
    /// The time findings are read at (due dates, overdue flags, feed ages): the system clock,
    /// or one a test moves by hand.
    pub clock: patchwarden_model::clock::Clock,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:8443".parse().expect("a valid address"),
            state_dir: default_state_dir(),
            tls_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            provided_certificates: None,
            max_body_bytes: 32 << 20,
            body_timeout: Duration::from_secs(60),
            max_connections: 4096,
            header_timeout: Duration::from_secs(30),
            checkin_interval: Duration::from_secs(3600),
            stale_after: Duration::from_secs(3 * 86400),
            long_poll_max: Duration::from_secs(60),
            findings_workers: 2,
            policy: None,
            distro_info_dir: "/usr/share/distro-info".into(),
            knowledge_poll: Duration::from_secs(60),
            job_poll: Duration::from_secs(2),
            report_retention: Duration::from_secs(14 * 86_400),
            job_lock_timeout: Duration::from_secs(300),
            job_ttl: Duration::from_secs(7 * 86_400),
            deploy: patchwarden_deploy::config::DeployConfig::default(),
            rollout_tick: Duration::from_secs(2),
            clock: patchwarden_model::clock::Clock::system(),
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
