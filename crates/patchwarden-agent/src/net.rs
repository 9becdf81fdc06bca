//! What the agent's other parts share: the TLS client that trusts only the pinned CA, the
//! server's error text, files written privately (mode 0600, atomically), random ids.

use super::*;

pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .expect("the system's random source works");
    patchwarden_model::fleet::hex(&bytes)
}

/// A client that trusts only `ca_pem`.
pub(crate) fn client(ca_pem: &[u8], timeout: Duration) -> Result<reqwest::Client, AgentError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(ca_pem)
        .map_err(|e| AgentError::Setup(format!("the server CA: {e}")))?;
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(15))
        .user_agent(concat!("patchwarden-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AgentError::Setup(format!("cannot set up the HTTP client: {e}")))
}

/// The DER of the first certificate in a PEM text.
pub(crate) fn pem_der(pem: &str) -> Result<Vec<u8>, AgentError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|e| AgentError::Setup(format!("not a PEM certificate: {e}")))
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| AgentError::Setup(format!("cannot write {}: {e}", tmp.display())))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| AgentError::Setup(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| AgentError::Setup(format!("cannot write {}: {e}", path.display())))
}

pub(crate) async fn error_text(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ApiError>(&body) {
        Ok(e) => format!("{status}: {}", e.error),
        Err(_) => format!("{status}: {}", String::from_utf8_lossy(&body)),
    }
}
