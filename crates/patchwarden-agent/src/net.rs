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
        .connect_timeout(Duration::from_secs(10))
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

/// Why a request to the server failed, in words an operator can act on: a certificate that does
/// not name the address used (which names it holds, and the fix), a certificate not issued by the
/// pinned CA (which fingerprint was expected), an expired certificate, or the connection error
/// with its causes (refused, timed out, no route).
pub(crate) fn connect_error(e: &reqwest::Error, url: &str, pinned: Option<&str>) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(tls) = rustls_error(s) {
            return format!("{url}: {}", explain_tls(tls, pinned));
        }
        let text = s.to_string();
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        source = s.source();
    }
    format!("cannot reach {url}: {}", causes.join(": "))
}

/// The rustls error in `e`, looking through io::Errors: the TLS connector wraps rustls' error in
/// an io::Error and that again in another, and an io::Error's source() skips what it wraps.
fn rustls_error<'a>(mut e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    for _ in 0..8 {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
        e = inner;
    }
    None
}

fn explain_tls(e: &rustls::Error, pinned: Option<&str>) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = e else {
        return format!("TLS failed: {e}");
    };
    let pinned = pinned.unwrap_or("the one given at enrollment");
    match cert {
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            format!(
            "the server's certificate is not valid for {}: it names {}. Use one of those names in \
             the server address, or restart the server with --tls-name {} (its certificate is \
             made again; the CA, and so this agent's pin, stays)",
            server_name(expected),
            if presented.is_empty() {
                "no names".to_owned()
            } else {
                presented.iter().map(|p| presented_name(p)).collect::<Vec<_>>().join(", ")
            },
            server_name(expected)
        )
        }
        C::NotValidForName => "the server's certificate is not valid for the name in the server \
             address: use a name the certificate holds, or restart the server with --tls-name"
            .to_owned(),
        C::UnknownIssuer | C::BadSignature => format!(
            "the server's certificate is not issued by the CA this agent pinned ({pinned}): the \
             server has another CA now (another state directory?) or this is not the server. \
             Enroll again with the fingerprint the server prints"
        ),
        C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired: the \
             server makes a new one when it starts (check the server's clock and restart it)"
            .to_owned(),
        C::NotValidYet | C::NotValidYetContext { .. } => "the server's certificate is not valid \
             yet: this host's clock or the server's is wrong"
            .to_owned(),
        other => format!("the server's certificate was refused: {other:?}"),
    }
}

/// A name rustls says the certificate holds, as it formats them (`DnsName("a.example")`,
/// `IpAddress(…)`), as the name alone.
fn presented_name(p: &str) -> &str {
    p.split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|inner| inner.trim_matches('"'))
        .unwrap_or(p)
}

fn server_name(name: &rustls::pki_types::ServerName<'_>) -> String {
    match name {
        rustls::pki_types::ServerName::DnsName(d) => d.as_ref().to_owned(),
        rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

pub(crate) async fn error_text(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ApiError>(&body) {
        Ok(e) => format!("{status}: {}", e.error),
        Err(_) => format!("{status}: {}", String::from_utf8_lossy(&body)),
    }
}
