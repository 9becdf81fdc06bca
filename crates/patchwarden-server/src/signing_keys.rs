//! The server's ed25519 signing keys in its state directory: the audit log's checkpoints
//! (`audit-signing.key`) and agents' jobs (`job-signing.key`). Each is created on first start
//! (PKCS#8, mode 0600) with its public half beside it (`.pub`, hex); servers sharing a store share
//! the state directory, so they sign with the same keys. What each key signs is its user's
//! business ([`crate::audit`], [`crate::job_signer`]).

use std::path::{Path, PathBuf};

use patchwarden_model::fleet::hex;
use ring::signature::{Ed25519KeyPair, KeyPair};

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("signing key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing key {path}: not an ed25519 PKCS#8 key")]
    Malformed { path: PathBuf },
    #[error("signing key: the random source failed")]
    Random,
}

/// The key in `state_dir/key_file`, created (0600) when missing; its public half is (re)written
/// to `state_dir/public_file` when it differs.
pub fn load_or_create(
    state_dir: &Path,
    key_file: &str,
    public_file: &str,
) -> Result<Ed25519KeyPair, SigningKeyError> {
    let path = state_dir.join(key_file);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SigningKeyError::Io { path, source }
    };
    let pkcs8 = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .map_err(|_| SigningKeyError::Random)?;
            write_private(&path, doc.as_ref()).map_err(io(&path))?;
            doc.as_ref().to_vec()
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let key = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|_| SigningKeyError::Malformed { path: path.clone() })?;
    let public = state_dir.join(public_file);
    let text = format!("{}\n", hex(key.public_key().as_ref()));
    if std::fs::read_to_string(&public).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&public, text).map_err(io(&public))?;
    }
    Ok(key)
}

/// A key of this process only (until the state directory's is loaded; tests).
pub fn ephemeral() -> Ed25519KeyPair {
    Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .ok()
        .and_then(|doc| Ed25519KeyPair::from_pkcs8(doc.as_ref()).ok())
        .expect("an ed25519 key")
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
