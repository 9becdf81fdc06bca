//! The agent's state and its check-ins: the inventory queued through the spool (full when its
//! digest changed, a heartbeat otherwise), delivered in order with backoff, and what its
//! repositories offer when that changed.

use super::*;

pub(crate) struct RunSettings {
    pub(crate) root: PathBuf,
    pub(crate) dnf_args: Vec<String>,
    pub(crate) reboot_command: Option<Vec<String>>,
    pub(crate) interval: Option<Duration>,
    pub(crate) jitter: f64,
    pub(crate) spool_limit: usize,
    pub(crate) timeout: Duration,
}

pub(crate) struct Agent {
    pub(crate) state: AgentState,
    pub(crate) credential: String,
    pub(crate) client: reqwest::Client,
    pub(crate) spool: spool::Spool,
    pub(crate) digest_file: PathBuf,
    /// Job reports not yet delivered (one file per job).
    pub(crate) job_reports: PathBuf,
    /// Jobs that rebooted the host: the job and its report so far, until the health checks after
    /// the reboot have run.
    pub(crate) after_reboot: PathBuf,
    /// The repositories' offers not yet delivered, and the digest of the last ones delivered.
    pub(crate) offers_file: PathBuf,
    pub(crate) offers_digest_file: PathBuf,
    /// The server's job signing key as pinned (hex).
    pub(crate) job_key_file: PathBuf,
    /// The jobs admitted so far (replays are refused).
    pub(crate) jobs_run_file: PathBuf,
    pub(crate) dnf_args: Vec<String>,
    /// None: jobs do not reboot this system.
    pub(crate) reboot_command: Option<Vec<String>>,
}

/// What one look for a job came to.
#[derive(PartialEq, Eq)]
pub(crate) enum Polled {
    Nothing,
    /// A job ran and was reported.
    Ran,
    /// A job ran and the reboot it asked for was started: the agent stops.
    Rebooting,
}

/// Why delivery stopped.
pub(crate) enum Undelivered {
    /// The server could not be reached or failed: retry later.
    Retry(String),
    /// The server refused the credential: enrollment is needed again.
    Refused(String),
}

impl Agent {
    pub(crate) fn load(state_dir: &Path, settings: &RunSettings) -> Result<Agent, AgentError> {
        let read = |name: &str| {
            std::fs::read(state_dir.join(name)).map_err(|e| {
                AgentError::Setup(format!(
                    "{}: {e} (enroll first: patchwarden-agent enroll …)",
                    state_dir.join(name).display()
                ))
            })
        };
        let state: AgentState = serde_json::from_slice(&read("agent.json")?).map_err(|e| {
            AgentError::Setup(format!("{}: {e}", state_dir.join("agent.json").display()))
        })?;
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
            job_key_file: state_dir.join(JOB_KEY_FILE),
            jobs_run_file: state_dir.join(JOBS_RUN_FILE),
            dnf_args: settings.dnf_args.clone(),
            reboot_command: settings.reboot_command.clone().or_else(|| {
                (settings.root == Path::new("/"))
                    .then(|| vec!["systemctl".to_owned(), "reboot".to_owned()])
            }),
        })
    }

    pub(crate) fn last_digest(&self) -> Option<String> {
        std::fs::read_to_string(&self.digest_file)
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Collects the inventory and queues a report: full when the digest changed since the last
    /// acknowledged inventory, a heartbeat otherwise.
    pub(crate) fn queue_report(&self, root: &Path) -> Result<(), AgentError> {
        let inventory = patchwarden_inventory::collect(root)?;
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
    pub(crate) async fn deliver_offers(&self) {
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
            Err(e) => eprintln!(
                "offers: {}",
                connect_error(&e, &url, Some(&self.state.ca_fingerprint))
            ),
        }
    }

    /// Sends what the spool holds, oldest first; stops at the first failure. Returns the interval
    /// the server asked for.
    pub(crate) async fn deliver(&self, root: &Path) -> Result<Option<u64>, Undelivered> {
        let mut interval = None;
        let pending = self
            .spool
            .pending()
            .map_err(|e| Undelivered::Retry(e.to_string()))?;
        for mut queued in pending {
            loop {
                let ack = self.send(&queued.report).await?;
                interval = Some(ack.interval_secs);
                if let Some(key) = &ack.job_signing_key {
                    self.pin_job_key(key);
                }
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
                            .map_err(|e| Undelivered::Retry(e.to_string()))?;
                        continue;
                    }
                    CheckInResult::Heartbeat | CheckInResult::Duplicate => {}
                }
                break;
            }
            self.spool
                .remove(&queued.path)
                .map_err(|e| Undelivered::Retry(e.to_string()))?;
        }
        Ok(interval)
    }

    pub(crate) async fn send(&self, report: &CheckIn) -> Result<CheckInAck, Undelivered> {
        let url = format!("{}/v1/checkin", self.state.server);
        let response = self
            .client
            .post(&url)
            .bearer_auth(&self.credential)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(report).expect("a report serializes"))
            .send()
            .await
            .map_err(|e| {
                Undelivered::Retry(connect_error(&e, &url, Some(&self.state.ca_fingerprint)))
            })?;
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
}
