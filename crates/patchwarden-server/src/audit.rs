//! The server's audit log service: records events as the chain's next entries (the store keeps
//! the rows, `patchwarden_model::audit` the rules) and signs checkpoints of the chain with the
//! server's ed25519 key — created on first start in the state directory (`audit-signing.key`,
//! PKCS#8, mode 0600; its public half beside it in `audit-signing.pub`, hex), every
//! [`CHECKPOINT_EVERY`] entries this process appends and once at start.
//!
//! An event is recorded after the action it describes is committed; a failure to record is
//! logged and counted (`patchwarden_audit_failures_total`), not turned into a failed request
//! (the action already happened). Servers sharing a store share one chain; each signs with its
//! own key unless they share a state directory — `audit verify` accepts the keys it is given.

use std::path::Path;
use std::sync::Arc;

use patchwarden_model::audit::{AuditCheckpoint, AuditEntry, AuditEvent};
use patchwarden_model::fleet::{hex, unhex};
use patchwarden_store::Store;
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::Metrics;

/// Entries between signed checkpoints.
pub const CHECKPOINT_EVERY: i64 = 16;

/// The key files in the state directory.
pub const KEY_FILE: &str = "audit-signing.key";
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";

/// The state directory's audit signing key, created (0600) with its public half when missing.
pub fn load_or_create_key(
    state_dir: &Path,
) -> Result<Ed25519KeyPair, crate::signing_keys::SigningKeyError> {
    crate::signing_keys::load_or_create(state_dir, KEY_FILE, PUBLIC_KEY_FILE)
}

/// Records events and signs checkpoints.
#[derive(Clone)]
pub struct AuditLog {
    store: Store,
    key: Arc<Ed25519KeyPair>,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    pub fn new(store: Store, key: Arc<Ed25519KeyPair>, metrics: Arc<Metrics>) -> AuditLog {
        AuditLog {
            store,
            key,
            metrics,
        }
    }

    /// Records `event` now; a checkpoint follows every [`CHECKPOINT_EVERY`] entries.
    pub async fn record(&self, event: AuditEvent) {
        let now = patchwarden_model::now_rfc3339();
        match self.store.append_audit(&event, &now).await {
            Ok(entry) => {
                // Every audited event is also a log line (enrollments, refused and revoked
                // credentials, jobs, change transitions, labels, users, feeds).
                tracing::info!(
                    target: "patchwarden::audit",
                    seq = entry.seq,
                    action = event.action.as_str(),
                    actor = %event.actor,
                    subject = %event.subject,
                    detail = ?event.detail,
                    "{}",
                    event.action.as_str()
                );
                if entry.seq.rem_euclid(CHECKPOINT_EVERY) == 0 {
                    self.checkpoint(&entry).await;
                }
            }
            Err(e) => {
                tracing::error!(
                    target: "patchwarden::audit",
                    action = event.action.as_str(),
                    subject = %event.subject,
                    error = %e,
                    "could not record an audit event"
                );
                self.metrics.count("patchwarden_audit_failures_total", "");
            }
        }
    }

    /// Signs a checkpoint of the chain's head (at start: whatever others appended is pinned).
    pub async fn checkpoint_head(&self) {
        match self.store.audit_head().await {
            Ok(Some(head)) => self.checkpoint(&head).await,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target: "patchwarden::audit", error = %e, "could not read the chain's head")
            }
        }
    }

    async fn checkpoint(&self, entry: &AuditEntry) {
        let c = sign(&self.key, entry);
        if let Err(e) = self.store.add_audit_checkpoint(&c).await {
            tracing::error!(
                target: "patchwarden::audit",
                seq = entry.seq,
                error = %e,
                "could not store the checkpoint"
            );
            self.metrics.count("patchwarden_audit_failures_total", "");
        }
    }
}

/// The signed checkpoint of `entry`.
pub fn sign(key: &Ed25519KeyPair, entry: &AuditEntry) -> AuditCheckpoint {
    let message = AuditCheckpoint::message(entry.seq, &entry.hash);
    AuditCheckpoint {
        seq: entry.seq,
        hash: entry.hash.clone(),
        at: patchwarden_model::now_rfc3339(),
        public_key: hex(key.public_key().as_ref()),
        signature: hex(key.sign(&message).as_ref()),
    }
}

/// Whether `c` is signed by one of `public_keys` (hex) and names the key it was signed with.
pub fn verify_signature(c: &AuditCheckpoint, public_keys: &[String]) -> bool {
    if !public_keys.contains(&c.public_key) {
        return false;
    }
    let (Some(key), Some(signature)) = (unhex(&c.public_key), unhex(&c.signature)) else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(&AuditCheckpoint::message(c.seq, &c.hash), &signature)
        .is_ok()
}
