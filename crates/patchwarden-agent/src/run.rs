//! The run loop: check in on an interval with jitter, poll for jobs between check-ins, back off
//! while the server cannot be reached; `--once` for one round.

use super::*;

fn jittered(base: Duration, jitter: f64) -> Duration {
    let mut b = [0u8; 8];
    let _ = rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut b);
    let unit = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    base + base.mul_f64(jitter * unit)
}

pub(crate) async fn run(
    state_dir: &Path,
    settings: &RunSettings,
    once: bool,
) -> Result<ExitCode, AgentError> {
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
                    return Err(AgentError::Server(format!(
                        "the server refused this host's credential: {e}"
                    )));
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
