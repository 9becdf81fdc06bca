//! Package jobs: the long-poll, running a job with `patchwarden-exec` on the root, keeping its
//! report on disk until delivered, and a job that reboots kept across the reboot.

use super::*;

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
                Err(e) => eprintln!("job report {id}: {url}: {e}"),
            }
        }
    }
}
