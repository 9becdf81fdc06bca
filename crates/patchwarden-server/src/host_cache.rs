//! Host credentials this process has checked, so that heartbeats skip the credential lookup (the
//! heartbeat batch still refuses a revoked host in its own transaction).

use std::collections::HashMap;

use patchwarden_store::fleet::HostCredential;
use patchwarden_store::Store;

use crate::error::{Answer, ApiError};

/// Most host credentials remembered (beyond it the map starts again: ~100 bytes each).
const MAX_KNOWN_HOSTS: usize = 200_000;

/// Host credentials this process has checked: secret digest → host id (a digest never changes
/// hands). Heartbeats of these hosts skip the credential lookup; the heartbeat batch checks
/// revocation in its own transaction instead (`HeartbeatOutcome::Refused`).
#[derive(Default)]
pub struct HostCache {
    known: std::sync::Mutex<HashMap<String, i64>>,
}

impl HostCache {
    /// The host holding the credential with this digest, looked up in the store (refused when
    /// unknown or revoked); remembered for its heartbeats.
    pub async fn authenticate(&self, store: &Store, secret_digest: &str) -> Answer<HostCredential> {
        let host = store
            .host_by_secret(secret_digest)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("unknown host credential".into()))?;
        if host.revoked {
            return Err(ApiError::Unauthorized(format!(
                "the credential of host {} was revoked",
                host.id
            )));
        }
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= MAX_KNOWN_HOSTS {
                known.clear();
            }
            known.insert(secret_digest.to_owned(), host.id);
        }
        Ok(host)
    }

    /// The host of a credential checked before, if any.
    pub fn known(&self, secret_digest: &str) -> Option<i64> {
        self.known.lock().ok()?.get(secret_digest).copied()
    }

    /// Forgets a host's credential (revoked).
    pub fn forget(&self, host_id: i64) {
        if let Ok(mut known) = self.known.lock() {
            known.retain(|_, id| *id != host_id);
        }
    }
}
