//! The server's scheduled feed sync: once per interval across every server sharing the store.
//! Each server checks the store's `feed-sync` lease (`Store::take_scheduled`); the one that takes
//! it downloads every feed, renews the lease while it works (a short lease: a dead holder is
//! replaced within it, a long sync is never started twice), records the completion, then the
//! hosts the changes touch are marked for new findings. Downloads and feed choice are
//! `patchwarden-sync`'s; the rule of the lease is the store's.

use std::time::{Duration, Instant};

use patchwarden_server::knowledge::KnowledgeWatcher;

/// The lease's name in the store.
const SYNC_LEASE: &str = "feed-sync";

/// When and how the scheduled sync runs.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Seconds from one completed sync to the next start.
    pub every_secs: u64,
    /// Seconds a holder keeps the lease without renewing it (it renews every third of it).
    pub lease_secs: u64,
    /// Timeouts and progress of the downloads.
    pub settings: patchwarden_sync::SyncSettings,
}

/// Runs the schedule for ever (spawn it).
pub async fn run(knowledge: KnowledgeWatcher, schedule: Schedule) {
    let holder = holder_name();
    let every = schedule.every_secs.max(1) as i64;
    let lease = schedule.lease_secs.max(3) as i64;
    let check = Duration::from_secs(schedule.every_secs.clamp(1, 60));
    loop {
        tokio::time::sleep(check).await;
        let store = knowledge.store().clone();
        match store
            .take_scheduled(
                SYNC_LEASE,
                &holder,
                patchwarden_model::unix_now(),
                every,
                lease,
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(target: "patchwarden::sync", error = %e, "reading the schedule");
                continue;
            }
        }
        tracing::info!(target: "patchwarden::sync", holder = %holder, "sync started");
        let started = Instant::now();
        let renewal = tokio::spawn({
            let (store, holder) = (store.clone(), holder.clone());
            async move {
                let period = Duration::from_secs((lease / 3).max(1) as u64);
                loop {
                    tokio::time::sleep(period).await;
                    match store
                        .renew_scheduled(SYNC_LEASE, &holder, patchwarden_model::unix_now(), lease)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(target: "patchwarden::sync", "the lease passed to another server during this sync")
                        }
                        Err(e) => {
                            tracing::error!(target: "patchwarden::sync", error = %e, "renewing the lease")
                        }
                    }
                }
            }
        });
        sync_and_reevaluate(&knowledge, &schedule.settings).await;
        renewal.abort();
        let _ = renewal.await;
        match store
            .finish_scheduled(SYNC_LEASE, &holder, patchwarden_model::unix_now())
            .await
        {
            Ok(_) => {
                tracing::info!(target: "patchwarden::sync", elapsed_secs = started.elapsed().as_secs_f64(), "sync finished")
            }
            Err(e) => {
                tracing::error!(target: "patchwarden::sync", error = %e, "recording the completion")
            }
        }
    }
}

/// This process among the servers: host name, process id, start time (a restarted process is
/// another holder).
fn holder_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}:{}:{}",
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default(),
        std::process::id(),
        nanos
    )
}

/// Every feed synced; afterwards the hosts the changes touch are marked for new findings.
async fn sync_and_reevaluate(
    knowledge: &KnowledgeWatcher,
    settings: &patchwarden_sync::SyncSettings,
) {
    let syncer = match patchwarden_sync::Syncer::new(settings.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(target: "patchwarden::sync", error = %e, "setting up the HTTP client");
            return;
        }
    };
    for spec in patchwarden_sync::default_feeds(|k| std::env::var(k).ok()) {
        let started = Instant::now();
        let elapsed = || started.elapsed().as_secs_f64();
        match syncer.sync(knowledge.store(), &spec).await {
            patchwarden_sync::SyncOutcome::Updated {
                records,
                bytes,
                skipped,
            } => tracing::info!(
                target: "patchwarden::sync",
                feed = %spec.feed,
                records,
                bytes,
                skipped = skipped.len(),
                elapsed_secs = elapsed(),
                "feed updated"
            ),
            patchwarden_sync::SyncOutcome::NotModified => tracing::info!(
                target: "patchwarden::sync",
                feed = %spec.feed,
                elapsed_secs = elapsed(),
                "feed not modified"
            ),
            patchwarden_sync::SyncOutcome::Failed { reason } => tracing::error!(
                target: "patchwarden::sync",
                feed = %spec.feed,
                elapsed_secs = elapsed(),
                reason = %reason,
                "feed sync failed"
            ),
        }
    }
    // Each feed write journaled what it changed: only the hosts those changes touch are marked.
    knowledge.apply().await;
}
