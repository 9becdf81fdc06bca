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

mod spool;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use patchwarden_model::fleet::{
    inventory_digest, ApiError, CheckIn, CheckInAck, CheckInResult, EnrollRequest, EnrollResponse,
};
use patchwarden_model::job::PackageJob;
use serde::{Deserialize, Serialize};

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
                enroll(
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
                run(&cli.state_dir, &settings, once).await
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

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .expect("the system's random source works");
    patchwarden_model::fleet::hex(&bytes)
}

/// A client that trusts only `ca_pem`.
fn client(ca_pem: &[u8], timeout: Duration) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(ca_pem).map_err(|e| format!("the server CA: {e}"))?;
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("patchwarden-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// The DER of the first certificate in a PEM text.
fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|e| format!("not a PEM certificate: {e}"))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn error_text(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ApiError>(&body) {
        Ok(e) => format!("{status}: {}", e.error),
        Err(_) => format!("{status}: {}", String::from_utf8_lossy(&body)),
    }
}

async fn enroll(
    state_dir: &Path,
    server: &str,
    token: &str,
    expected: &str,
    hostname: Option<String>,
    root: &Path,
) -> Result<ExitCode, String> {
    let server = server.trim_end_matches('/');
    let expected = expected.trim().to_lowercase();
    if !expected.starts_with("sha256:") || expected.len() != 7 + 64 {
        return Err(format!(
            "--ca-fingerprint {expected:?}: expected sha256: and 64 hex digits, as the server printed it"
        ));
    }
    // The CA is fetched over a connection that verifies nothing yet, and trusted only if its
    // fingerprint is the one given: the token travels only over the verified connection below.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let probe = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
    let response = probe
        .get(format!("{server}/v1/ca.pem"))
        .send()
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "{server}/v1/ca.pem: {}",
            error_text(response).await
        ));
    }
    let ca_pem = response
        .text()
        .await
        .map_err(|e| format!("{server}/v1/ca.pem: {e}"))?;
    let actual = format!(
        "sha256:{}",
        patchwarden_model::fleet::sha256_hex(&pem_der(&ca_pem)?)
    );
    if actual != expected {
        return Err(format!(
            "refusing {server}: its CA fingerprint is {actual}, not the expected {expected}"
        ));
    }
    let client = client(ca_pem.as_bytes(), Duration::from_secs(60))?;
    let identity = patchwarden_inventory::collect(root)
        .map(|inv| inv.host)
        .unwrap_or_default();
    let hostname = hostname
        .or(identity.hostname)
        .ok_or("no hostname: pass --hostname")?;
    let request = EnrollRequest {
        token: token.to_owned(),
        hostname: hostname.clone(),
        machine_id: identity.machine_id,
    };
    let response = client
        .post(format!("{server}/v1/enroll"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&request).expect("a request serializes"))
        .send()
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "enrollment refused: {}",
            error_text(response).await
        ));
    }
    let enrolled: EnrollResponse = serde_json::from_slice(
        &response
            .bytes()
            .await
            .map_err(|e| format!("the enrollment answer: {e}"))?,
    )
    .map_err(|e| format!("the enrollment answer: {e}"))?;
    std::fs::create_dir_all(state_dir)
        .map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    write_private(&state_dir.join("ca.pem"), ca_pem.as_bytes())?;
    write_private(
        &state_dir.join("credential"),
        enrolled.host_secret.as_bytes(),
    )?;
    let state = AgentState {
        server: server.to_owned(),
        host_id: enrolled.host_id,
        ca_fingerprint: expected,
    };
    write_private(
        &state_dir.join("agent.json"),
        &serde_json::to_vec_pretty(&state).expect("state serializes"),
    )?;
    // A new enrollment starts a new history: nothing spooled for an old identity is sent.
    let _ = std::fs::remove_dir_all(state_dir.join("spool"));
    let _ = std::fs::remove_file(state_dir.join("last-digest"));
    println!(
        "enrolled as host {} ({hostname}) with {server}",
        enrolled.host_id
    );
    Ok(ExitCode::SUCCESS)
}

struct RunSettings {
    root: PathBuf,
    dnf_args: Vec<String>,
    reboot_command: Option<Vec<String>>,
    interval: Option<Duration>,
    jitter: f64,
    spool_limit: usize,
    timeout: Duration,
}

struct Agent {
    state: AgentState,
    credential: String,
    client: reqwest::Client,
    spool: spool::Spool,
    digest_file: PathBuf,
    /// Job reports not yet delivered (one file per job).
    job_reports: PathBuf,
    /// Jobs that rebooted the host: the job and its report so far, until the health checks after
    /// the reboot have run.
    after_reboot: PathBuf,
    /// The repositories' offers not yet delivered, and the digest of the last ones delivered.
    offers_file: PathBuf,
    offers_digest_file: PathBuf,
    dnf_args: Vec<String>,
    /// None: jobs do not reboot this system.
    reboot_command: Option<Vec<String>>,
}

/// What one look for a job came to.
#[derive(PartialEq, Eq)]
enum Polled {
    Nothing,
    /// A job ran and was reported.
    Ran,
    /// A job ran and the reboot it asked for was started: the agent stops.
    Rebooting,
}

/// Why delivery stopped.
enum Undelivered {
    /// The server could not be reached or failed: retry later.
    Retry(String),
    /// The server refused the credential: enrollment is needed again.
    Refused(String),
}

impl Agent {
    fn load(state_dir: &Path, settings: &RunSettings) -> Result<Agent, String> {
        let read = |name: &str| {
            std::fs::read(state_dir.join(name)).map_err(|e| {
                format!(
                    "{}: {e} (enroll first: patchwarden-agent enroll …)",
                    state_dir.join(name).display()
                )
            })
        };
        let state: AgentState = serde_json::from_slice(&read("agent.json")?)
            .map_err(|e| format!("{}: {e}", state_dir.join("agent.json").display()))?;
        let credential = String::from_utf8_lossy(&read("credential")?)
            .trim()
            .to_owned();
        let client = client(&read("ca.pem")?, settings.timeout)?;
        Ok(Agent {
            state,
            credential,
            client,
            spool: spool::Spool::open(&state_dir.join("spool"), settings.spool_limit)?,
            digest_file: state_dir.join("last-digest"),
            job_reports: state_dir.join("job-reports"),
            after_reboot: state_dir.join("after-reboot"),
            offers_file: state_dir.join("offers.json"),
            offers_digest_file: state_dir.join("offers-digest"),
            dnf_args: settings.dnf_args.clone(),
            reboot_command: settings.reboot_command.clone().or_else(|| {
                (settings.root == Path::new("/"))
                    .then(|| vec!["systemctl".to_owned(), "reboot".to_owned()])
            }),
        })
    }

    fn last_digest(&self) -> Option<String> {
        std::fs::read_to_string(&self.digest_file)
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Collects the inventory and queues a report: full when the digest changed since the last
    /// acknowledged inventory, a heartbeat otherwise.
    fn queue_report(&self, root: &Path) -> Result<(), String> {
        let inventory = patchwarden_inventory::collect(root).map_err(|e| e.to_string())?;
        // What the repositories offer goes beside the inventory, when it changed (apt-get update,
        // dnf makecache): the server plans from it. A root that cannot be read for it still
        // reports its inventory.
        match patchwarden_inventory::offers(root, &inventory.packages) {
            Ok(offers) => {
                let digest = patchwarden_model::fleet::offers_digest(&offers);
                let sent = std::fs::read_to_string(&self.offers_digest_file).ok();
                if sent.as_deref().map(str::trim) != Some(digest.as_str()) {
                    let doc = serde_json::to_vec(&offers).expect("offers serialize");
                    if let Err(e) = write_private(&self.offers_file, &doc) {
                        eprintln!("offers: {e}");
                    }
                }
            }
            Err(e) => eprintln!("offers: {e}"),
        }
        let digest = inventory_digest(&inventory);
        let unchanged = self.last_digest().as_deref() == Some(digest.as_str());
        let report = CheckIn {
            idempotency_key: random_hex(16),
            digest,
            inventory: (!unchanged).then_some(inventory),
            agent_version: env!("CARGO_PKG_VERSION").into(),
        };
        self.spool.push(&report)?;
        Ok(())
    }

    /// Sends the repositories' offers kept by `queue_report`, if any; they are dropped once the
    /// server has them (their digest kept, so unchanged offers are not sent again).
    async fn deliver_offers(&self) {
        let Ok(doc) = std::fs::read(&self.offers_file) else {
            return;
        };
        let url = format!("{}/v1/offers", self.state.server);
        let sent = self
            .client
            .post(&url)
            .bearer_auth(&self.credential)
            .header("content-type", "application/json")
            .body(doc.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                if let Ok(offers) =
                    serde_json::from_slice::<patchwarden_model::updates::HostOffers>(&doc)
                {
                    let digest = patchwarden_model::fleet::offers_digest(&offers);
                    let _ = write_private(&self.offers_digest_file, digest.as_bytes());
                }
                let _ = std::fs::remove_file(&self.offers_file);
            }
            Ok(r) => eprintln!("offers: {}", error_text(r).await),
            Err(e) => eprintln!("offers: {url}: {e}"),
        }
    }

    /// Sends what the spool holds, oldest first; stops at the first failure. Returns the interval
    /// the server asked for.
    async fn deliver(&self, root: &Path) -> Result<Option<u64>, Undelivered> {
        let mut interval = None;
        let pending = self.spool.pending().map_err(Undelivered::Retry)?;
        for mut queued in pending {
            loop {
                let ack = self.send(&queued.report).await?;
                interval = Some(ack.interval_secs);
                match ack.result {
                    CheckInResult::Stored => {
                        let _ = write_private(&self.digest_file, queued.report.digest.as_bytes());
                    }
                    CheckInResult::NeedInventory => {
                        // The server does not hold what this heartbeat assumed: the same report,
                        // same key, with the current inventory.
                        let inventory = patchwarden_inventory::collect(root)
                            .map_err(|e| Undelivered::Retry(e.to_string()))?;
                        queued.report.digest = inventory_digest(&inventory);
                        queued.report.inventory = Some(inventory);
                        self.spool
                            .write(&queued.path, &queued.report)
                            .map_err(Undelivered::Retry)?;
                        continue;
                    }
                    CheckInResult::Heartbeat | CheckInResult::Duplicate => {}
                }
                break;
            }
            self.spool
                .remove(&queued.path)
                .map_err(Undelivered::Retry)?;
        }
        Ok(interval)
    }

    async fn send(&self, report: &CheckIn) -> Result<CheckInAck, Undelivered> {
        let url = format!("{}/v1/checkin", self.state.server);
        let response = self
            .client
            .post(&url)
            .bearer_auth(&self.credential)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(report).expect("a report serializes"))
            .send()
            .await
            .map_err(|e| Undelivered::Retry(format!("{url}: {e}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(Undelivered::Refused(error_text(response).await));
        }
        if !status.is_success() {
            return Err(Undelivered::Retry(format!(
                "{url}: {}",
                error_text(response).await
            )));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| Undelivered::Retry(format!("{url}: {e}")))?;
        serde_json::from_slice(&body)
            .map_err(|e| Undelivered::Retry(format!("{url}: the answer: {e}")))
    }

    /// One long-poll for a job: a job that arrives is run on `root` and its report delivered
    /// (kept on disk until the server has it). Returns whether a job ran (then the caller reports
    /// the new inventory at once).
    async fn poll_job(&self, wait: Duration, root: &Path) -> Polled {
        self.deliver_job_reports().await;
        let url = format!(
            "{}/v1/jobs/next?wait_secs={}",
            self.state.server,
            wait.as_secs()
        );
        let response = match self
            .client
            .get(&url)
            .bearer_auth(&self.credential)
            .timeout(wait + Duration::from_secs(30))
            .send()
            .await
        {
            Ok(r) if r.status() == reqwest::StatusCode::NO_CONTENT => return Polled::Nothing,
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                eprintln!("jobs: {}", error_text(r).await);
                tokio::time::sleep(wait).await;
                return Polled::Nothing;
            }
            Err(e) => {
                eprintln!("jobs: {url}: {e}");
                tokio::time::sleep(wait).await;
                return Polled::Nothing;
            }
        };
        let job: PackageJob = match response.bytes().await.map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(job)) => job,
            Ok(Err(e)) => {
                eprintln!("jobs: not a package job: {e}");
                return Polled::Nothing;
            }
            Err(e) => {
                eprintln!("jobs: {url}: {e}");
                return Polled::Nothing;
            }
        };
        eprintln!(
            "job {}: {:?} of {} package(s)",
            job.id,
            job.operation,
            job.packages.len()
        );
        let executor = self.executor(root);
        let kept = job.clone();
        let (mut report, executor) =
            match tokio::task::spawn_blocking(move || (executor.run(&job), executor)).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("jobs: the job's task failed: {e}");
                    return Polled::Nothing;
                }
            };
        eprintln!("job {}: {:?}", report.id, report.outcome);
        if report.reboot_now {
            if let Some(argv) = &self.reboot_command {
                // The job and its report wait on disk for the health checks after the reboot.
                let _ = std::fs::create_dir_all(&self.after_reboot);
                let kept_job = self.after_reboot.join(format!("{}.job.json", report.id));
                let kept_report = self.after_reboot.join(format!("{}.report.json", report.id));
                let saved = write_private(&kept_job, &serde_json::to_vec(&kept).expect("a job"))
                    .and_then(|()| {
                        write_private(
                            &kept_report,
                            &serde_json::to_vec(&report).expect("a report"),
                        )
                    });
                match saved {
                    Err(e) => eprintln!("jobs: keeping the job across the reboot: {e}"),
                    Ok(()) => {
                        if executor.record_reboot(&mut report, argv) {
                            eprintln!("job {}: rebooting ({})", report.id, argv.join(" "));
                            let _ = write_private(
                                &kept_report,
                                &serde_json::to_vec(&report).expect("a report"),
                            );
                            return Polled::Rebooting;
                        }
                        let _ = std::fs::remove_file(&kept_job);
                        let _ = std::fs::remove_file(&kept_report);
                    }
                }
            }
        }
        self.keep_report(&report);
        self.deliver_job_reports().await;
        Polled::Ran
    }

    fn executor(&self, root: &Path) -> patchwarden_exec::Executor {
        let mut executor = patchwarden_exec::Executor::new(root);
        executor.dnf_args = self.dnf_args.clone();
        executor.reboots = self.reboot_command.is_some();
        executor
    }

    /// Keeps a finished job's report until the server has it.
    fn keep_report(&self, report: &patchwarden_model::job::JobReport) {
        let _ = std::fs::create_dir_all(&self.job_reports);
        let path = self.job_reports.join(format!("{}.json", report.id));
        if let Err(e) = write_private(
            &path,
            &serde_json::to_vec(report).expect("a report serializes"),
        ) {
            eprintln!("jobs: keeping the report: {e}");
        }
    }

    /// Jobs whose reboot happened: their health checks now, then their reports are kept for
    /// delivery.
    async fn finish_after_reboot(&self, root: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.after_reboot) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".job.json"))
                .map(str::to_owned)
            else {
                continue;
            };
            let report_path = self.after_reboot.join(format!("{id}.report.json"));
            let job: Option<PackageJob> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let report: Option<patchwarden_model::job::JobReport> = std::fs::read(&report_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let (Some(job), Some(mut report)) = (job, report) else {
                eprintln!("jobs: {}: unreadable, dropped", path.display());
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(&report_path);
                continue;
            };
            let executor = self.executor(root);
            report = match tokio::task::spawn_blocking(move || {
                executor.after_reboot(&job, &mut report);
                report
            })
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("jobs: the health checks after the reboot failed to run: {e}");
                    continue;
                }
            };
            eprintln!("job {id} after the reboot: {:?}", report.outcome);
            self.keep_report(&report);
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(&report_path);
        }
    }

    /// Sends the kept job reports; a report the server has (or refuses as not open) is removed.
    async fn deliver_job_reports(&self) {
        let Ok(entries) = std::fs::read_dir(&self.job_reports) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(id) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let url = format!("{}/v1/jobs/{id}/report", self.state.server);
            match self
                .client
                .post(&url)
                .bearer_auth(&self.credential)
                .header("content-type", "application/json")
                .body(bytes)
                .send()
                .await
            {
                Ok(r)
                    if r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND =>
                {
                    let _ = std::fs::remove_file(&path);
                }
                Ok(r) => eprintln!("job report {id}: {}", error_text(r).await),
                Err(e) => eprintln!("job report {id}: {url}: {e}"),
            }
        }
    }
}

fn jittered(base: Duration, jitter: f64) -> Duration {
    let mut b = [0u8; 8];
    let _ = rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut b);
    let unit = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    base + base.mul_f64(jitter * unit)
}

async fn run(state_dir: &Path, settings: &RunSettings, once: bool) -> Result<ExitCode, String> {
    let agent = Agent::load(state_dir, settings)?;
    agent.finish_after_reboot(&settings.root).await;
    let mut interval = settings.interval.unwrap_or(Duration::from_secs(3600));
    loop {
        if let Err(e) = agent.queue_report(&settings.root) {
            eprintln!("inventory: {e}");
        }
        let mut due = tokio::time::Instant::now() + jittered(interval, settings.jitter);
        // Deliver, retrying with growing pauses until delivered or the next check-in is due.
        let mut backoff = Duration::from_secs(1);
        loop {
            match agent.deliver(&settings.root).await {
                Ok(asked) => {
                    agent.deliver_offers().await;
                    if let (None, Some(secs)) = (settings.interval, asked) {
                        let asked = Duration::from_secs(secs.max(1));
                        if asked != interval {
                            interval = asked;
                            due = tokio::time::Instant::now() + jittered(interval, settings.jitter);
                        }
                    }
                    break;
                }
                Err(Undelivered::Refused(e)) => {
                    return Err(format!("the server refused this host's credential: {e}"));
                }
                Err(Undelivered::Retry(e)) => {
                    eprintln!("check-in: {e} ({} report(s) spooled)", agent.spool.len());
                    if once {
                        return Ok(ExitCode::from(UNDELIVERED_EXIT));
                    }
                    let now = tokio::time::Instant::now();
                    if now >= due {
                        break;
                    }
                    tokio::time::sleep(jittered(backoff, 0.5).min(due - now)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                }
            }
        }
        if once {
            // One look for a job; after one ran, the new inventory goes out at once.
            let polled = agent.poll_job(Duration::ZERO, &settings.root).await;
            if polled == Polled::Rebooting {
                return Ok(ExitCode::SUCCESS);
            }
            if polled == Polled::Ran {
                agent.queue_report(&settings.root)?;
                if let Err(Undelivered::Retry(e) | Undelivered::Refused(e)) =
                    agent.deliver(&settings.root).await
                {
                    eprintln!("check-in after the job: {e}");
                    return Ok(ExitCode::from(UNDELIVERED_EXIT));
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        // Between check-ins: long-poll for jobs until the next one is due (or a job ran).
        while tokio::time::Instant::now() < due {
            let left = due - tokio::time::Instant::now();
            if left < Duration::from_secs(1) {
                tokio::time::sleep(left).await;
            } else {
                match agent
                    .poll_job(left.min(Duration::from_secs(60)), &settings.root)
                    .await
                {
                    Polled::Nothing => {}
                    Polled::Ran => break,
                    Polled::Rebooting => return Ok(ExitCode::SUCCESS),
                }
            }
        }
    }
}
