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
use patchwarden_model::fleet::hex;
use patchwarden_store::Store;
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::Metrics;

/// Entries between signed checkpoints.
pub const CHECKPOINT_EVERY: i64 = 16;

/// The key files in the state directory.
pub const KEY_FILE: &str = "audit-signing.key";
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";

#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error("audit signing key {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("audit signing key {path}: not an ed25519 PKCS#8 key")]
    Malformed { path: std::path::PathBuf },
    #[error("audit signing key: the random source failed")]
    Random,
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
                if entry.seq.rem_euclid(CHECKPOINT_EVERY) == 0 {
                    self.checkpoint(&entry).await;
                }
            }
            Err(e) => {
                eprintln!(
                    "audit: could not record {} on {}: {e}",
                    event.action.as_str(),
                    event.subject
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
            Err(e) => eprintln!("audit: could not read the chain's head: {e}"),
        }
    }

    async fn checkpoint(&self, entry: &AuditEntry) {
        let c = sign(&self.key, entry);
        if let Err(e) = self.store.add_audit_checkpoint(&c).await {
            eprintln!(
                "audit: could not store the checkpoint at {}: {e}",
                entry.seq
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

/// The state directory's signing key, created (0600) with its public half when missing.
pub fn load_or_create_key(state_dir: &Path) -> Result<Ed25519KeyPair, AuditKeyError> {
    let path = state_dir.join(KEY_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AuditKeyError::Io { path, source }
    };
    let pkcs8 = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let rng = ring::rand::SystemRandom::new();
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| AuditKeyError::Random)?;
            write_private(&path, doc.as_ref()).map_err(io(&path))?;
            doc.as_ref().to_vec()
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let key = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|_| AuditKeyError::Malformed { path: path.clone() })?;
    let public = state_dir.join(PUBLIC_KEY_FILE);
    let text = format!("{}\n", hex(key.public_key().as_ref()));
    if std::fs::read_to_string(&public).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&public, text).map_err(io(&public))?;
    }
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
