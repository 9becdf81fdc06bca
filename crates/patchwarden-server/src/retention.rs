//! Retention: what the store need not keep forever is removed on a schedule — today the report
//! keys of check-ins and heartbeats (idempotency), older than the configured retention. Runs once
//! an hour on every server (each removal is idempotent; several servers at once only repeat an
//! empty delete). Does not touch history (package changes, findings changes): that is evidence.

use std::sync::Arc;
use std::time::Duration;

use patchwarden_store::Store;

use crate::Metrics;

/// The service (owns its store handle).
pub struct Retention {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// How long report keys are kept (zero: forever).
    pub reports: Duration,
}

impl Retention {
    /// Prunes now and then every `every` (nothing when the retention is zero).
    pub fn start(self, every: Duration) {
        if self.reports.is_zero() {
            return;
        }
        tokio::spawn(async move {
            loop {
                self.prune().await;
                tokio::time::sleep(every).await;
            }
        });
    }

    /// Removes the report keys older than the retention; answers how many.
    pub async fn prune(&self) -> u64 {
        let cutoff = patchwarden_model::rfc3339(
            patchwarden_model::unix_now() - self.reports.as_secs() as i64,
        );
        match self.store.prune_reports(&cutoff).await {
            Ok(n) => {
                self.metrics
                    .add("patchwarden_report_keys_pruned_total", "", n);
                n
            }
            Err(e) => {
                tracing::error!(target: "patchwarden::retention", error = %e, "removing old report keys");
                0
            }
        }
    }
}
