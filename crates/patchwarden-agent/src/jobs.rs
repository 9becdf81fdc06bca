//! Package jobs: the long-poll, admitting a job (signed with the server's pinned job signing key,
//! for this host, not expired, never run here before — `model::job_signature`), running it with
//! `patchwarden-exec` on the root, keeping its report on disk until delivered, and a job that
//! reboots kept across the reboot. A job that is not admitted is reported as refused; nothing of
//! it runs.

use super::*;
use patchwarden_model::fleet::unhex;
use patchwarden_model::job_signature::{check_claims, valid_job_id, JobRefusal, SignedJob};

impl Agent {
    /// One long-poll for a job: a job that arrives is run on `root` and its report delivered
    /// (kept on disk until the server has it). Returns whether a job ran (then the caller reports
    /// the new inventory at once).
    pub(crate) async fn poll_job(&self, wait: Duration, root: &Path) -> Polled {
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
                eprintln!(
                    "jobs: {}",
                    connect_error(&e, &url, Some(&self.state.ca_fingerprint))
                );
                tokio::time::sleep(wait).await;
                return Polled::Nothing;
            }
        };
        let envelope: SignedJob = match response.bytes().await.map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(job)) => job,
            Ok(Err(e)) => {
                eprintln!("jobs: not a signed job: {e}");
                return Polled::Nothing;
            }
            Err(e) => {
                eprintln!("jobs: {url}: {e}");
                return Polled::Nothing;
            }
        };
        if !valid_job_id(&envelope.id) {
            // Not even reportable (the id goes into a path and a file name).
            eprintln!(
                "jobs: refused a job with the id {:?}: not a job id",
                envelope.id.escape_debug().to_string()
            );
            return Polled::Nothing;
        }
        let job = match self.admit(&envelope) {
            Ok(job) => job,
            Err(refusal) => {
                eprintln!("job {}: refused: {refusal}", envelope.id);
                self.refuse(&envelope.id, refusal);
                self.deliver_job_reports().await;
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

    /// The job in `envelope` if this agent may run it: signed with the pinned key, for this host,
    /// not expired, not run before. Admitting it records it (before it runs: a job interrupted by
    /// a crash is not started again by a replay).
    fn admit(&self, envelope: &SignedJob) -> Result<PackageJob, JobRefusal> {
        if envelope.signature.is_empty() {
            return Err(JobRefusal::Unsigned);
        }
        let pinned = self.pinned_job_key().ok_or(JobRefusal::NoPinnedKey)?;
        if !envelope.key.eq_ignore_ascii_case(&pinned) {
            return Err(JobRefusal::UnknownKey {
                key: envelope.key.chars().take(64).collect(),
            });
        }
        let (Some(key), Some(signature)) = (unhex(&pinned), unhex(&envelope.signature)) else {
            return Err(JobRefusal::BadSignature);
        };
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(envelope.claims.as_bytes(), &signature)
            .map_err(|_| JobRefusal::BadSignature)?;
        let claims = envelope.open()?;
        let now = patchwarden_model::unix_now();
        let ledger = std::fs::read_to_string(&self.jobs_run_file).unwrap_or_default();
        check_claims(&envelope.id, &claims, self.state.host_id, now, |id| {
            ledger.lines().any(|l| l.split(' ').next() == Some(id))
        })?;
        // The ledger keeps what could still be replayed (unexpired jobs) and this one.
        let mut kept: String = ledger
            .lines()
            .filter(|l| {
                l.split(' ')
                    .nth(1)
                    .and_then(|e| e.parse::<i64>().ok())
                    .is_some_and(|expires| expires >= now)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        kept.push_str(&format!("{} {}\n", claims.job.id, claims.expires_at));
        if let Err(e) = write_private(&self.jobs_run_file, kept.as_bytes()) {
            // Not recorded: not run (a replay could not be told apart).
            return Err(JobRefusal::Malformed {
                detail: format!(
                    "cannot record the job in {}: {e}",
                    self.jobs_run_file.display()
                ),
            });
        }
        Ok(claims.job)
    }

    /// Keeps the report of a refused job (unless a report of that id waits already: a replay of a
    /// job that ran must not replace its report).
    fn refuse(&self, id: &str, refusal: JobRefusal) {
        if self.job_reports.join(format!("{id}.json")).exists() {
            return;
        }
        self.keep_report(&patchwarden_model::job::JobReport {
            id: id.to_owned(),
            outcome: patchwarden_model::job::JobOutcome::Refused {
                reason: refusal.to_string(),
                refusal,
            },
            steps: vec![],
            recovered: false,
            reboot_required: false,
            reboot_now: false,
        });
    }

    /// The server's job signing key as pinned (hex).
    fn pinned_job_key(&self) -> Option<String> {
        std::fs::read_to_string(&self.job_key_file)
            .ok()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
    }

    /// Pins the server's job signing key from a check-in answer when none is pinned yet (an agent
    /// enrolled before job signing); a pinned key is never replaced this way.
    pub(crate) fn pin_job_key(&self, key: &str) {
        if self.pinned_job_key().is_some() {
            return;
        }
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            eprintln!(
                "jobs: the server's job signing key is not an ed25519 key in hex; not pinned"
            );
            return;
        }
        match write_private(&self.job_key_file, key.as_bytes()) {
            Ok(()) => eprintln!("jobs: pinned the server's job signing key {key} (first use)"),
            Err(e) => eprintln!("jobs: pinning the job signing key: {e}"),
        }
    }

    pub(crate) fn executor(&self, root: &Path) -> patchwarden_exec::Executor {
        let mut executor = patchwarden_exec::Executor::new(root);
        executor.dnf_args = self.dnf_args.clone();
        executor.reboots = self.reboot_command.is_some();
        executor
    }

    /// Keeps a finished job's report until the server has it.
    pub(crate) fn keep_report(&self, report: &patchwarden_model::job::JobReport) {
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
    pub(crate) async fn finish_after_reboot(&self, root: &Path) {
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
    pub(crate) async fn deliver_job_reports(&self) {
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
                Err(e) => eprintln!(
                    "job report {id}: {}",
                    connect_error(&e, &url, Some(&self.state.ca_fingerprint))
                ),
            }
        }
    }
}
