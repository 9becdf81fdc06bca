//! `patchwarden-agent`: enrolls this host with a patchwarden server (pinning the server's CA by its
//! fingerprint), then checks in on an interval with jitter — the full inventory when its digest
//! changed, a heartbeat otherwise. Every report goes through an on-disk spool first and leaves it
//! only when the server acknowledged it; a server that cannot be reached is retried with backoff,
//! and a retried report carries its idempotency key, so it is stored once. Between check-ins it
//! long-polls the server for package jobs, runs them with `patchwarden-exec` on its root, keeps the
//! report on disk until the server has it, and reports the new inventory at once.
//!
//! It depends on the inventory collectors, the job executor and the shared wire format only, never
//! on the server.

mod checkin;
mod enroll;
mod jobs;
mod net;
mod run;
mod spool;

use checkin::{Agent, Polled, RunSettings, Undelivered};
use net::{client, connect_error, error_text, pem_der, random_hex, write_private};

/// Why the agent could not do what it was asked.
#[derive(Debug, thiserror::Error)]
enum AgentError {
    /// Setting up: arguments, the state directory, the TLS client.
    #[error("{0}")]
    Setup(String),
    /// The server: unreachable, refusing, or answering what the agent cannot read.
    #[error("{0}")]
    Server(String),
    #[error("{0}")]
    Inventory(#[from] patchwarden_inventory::InventoryError),
    #[error("{0}")]
    Spool(#[from] spool::SpoolError),
}
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use patchwarden_model::fleet::{
    inventory_digest, ApiError, CheckIn, CheckInAck, CheckInResult, EnrollRequest, EnrollResponse,
};
use patchwarden_model::job::PackageJob;
use serde::{Deserialize, Serialize};

/// The pinned public key of the server's job signing key (hex), in the state directory.
const JOB_KEY_FILE: &str = "job-signing.pub";
/// The jobs this agent has admitted (id and expiry a line): a job is never run twice.
const JOBS_RUN_FILE: &str = "jobs-run";

/// Exit status of `--once` when reports stay spooled (the server could not take them): EX_TEMPFAIL.
const UNDELIVERED_EXIT: u8 = 75;

#[derive(Parser)]
#[command(
    name = "patchwarden-agent",
    version,
    about = "Reports this host to a patchwarden server"
)]
struct Cli {
    /// Where the agent keeps its credential, the server's CA and its spool.
    #[arg(
        long,
        global = true,
        env = "PATCHWARDEN_AGENT_STATE",
        default_value = "/var/lib/patchwarden-agent"
    )]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll with a server: check its CA against the fingerprint, trade the token for this host's
    /// own credential.
    Enroll {
        /// The server, e.g. `https://patchwarden.example.org:8443`.
        #[arg(long)]
        server: String,
        /// An enrollment token (`patchwarden enroll-token create`).
        #[arg(long, env = "PATCHWARDEN_ENROLL_TOKEN")]
        token: String,
        /// The CA fingerprint the server printed (`sha256:…`).
        #[arg(long)]
        ca_fingerprint: String,
        /// The name to enroll as (default: the root's hostname).
        #[arg(long)]
        hostname: Option<String>,
        /// Root filesystem this agent reports (its hostname and machine-id are used).
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Check in on an interval (or once).
    Run {
        /// One cycle: collect, deliver what the spool holds, exit (75 when something stays spooled).
        #[arg(long)]
        once: bool,
        /// Report this root filesystem instead of `/` (images, tests).
        #[arg(long, env = "PATCHWARDEN_AGENT_ROOT", default_value = "/")]
        root: PathBuf,
        /// Seconds between check-ins (default: what the server says).
        #[arg(long)]
        interval_secs: Option<u64>,
        /// Largest random delay added to each interval, as a fraction of it.
        #[arg(long, default_value_t = 0.1)]
        jitter: f64,
        /// Reports kept in the spool at most.
        #[arg(long, default_value_t = 1000)]
        spool_limit: usize,
        /// Seconds before a request to the server gives up.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// An argument added to every dnf command of a job (repeatable; this host's own settings,
        /// e.g. `--dnf-arg=--releasever=9`).
        #[arg(long = "dnf-arg", allow_hyphen_values = true)]
        dnf_args: Vec<String>,
        /// How this host reboots when a job's reboot policy asks (program and arguments, split on
        /// spaces; default `systemctl reboot` on `/`). With --root, jobs reboot only when this is
        /// given. The agent exits after starting the reboot; started again, it runs the job's
        /// health checks and then reports the job.
        #[arg(long, env = "PATCHWARDEN_AGENT_REBOOT_COMMAND")]
        reboot_command: Option<String>,
    },
}

/// What enrollment leaves in the state directory (`agent.json`; the credential sits beside it in
/// `credential`, mode 0600, and the CA in `ca.pem`).
#[derive(Serialize, Deserialize)]
struct AgentState {
    server: String,
    host_id: i64,
    ca_fingerprint: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Enroll {
                server,
                token,
                ca_fingerprint,
                hostname,
                root,
            } => {
                enroll::enroll(
                    &cli.state_dir,
                    &server,
                    &token,
                    &ca_fingerprint,
                    hostname,
                    &root,
                )
                .await
            }
            Command::Run {
                once,
                root,
                interval_secs,
                jitter,
                spool_limit,
                timeout_secs,
                dnf_args,
                reboot_command,
            } => {
                let settings = RunSettings {
                    dnf_args,
                    reboot_command: reboot_command
                        .map(|c| c.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                        .filter(|argv| !argv.is_empty()),
                    root,
                    interval: interval_secs.map(Duration::from_secs),
                    jitter: jitter.clamp(0.0, 1.0),
                    spool_limit,
                    timeout: Duration::from_secs(timeout_secs.max(1)),
                };
                run::run(&cli.state_dir, &settings, once).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
