//! The server's TLS identity: its own certificate authority and a server certificate signed by it,
//! created on first start in the state directory (or certificates given by the operator), and the
//! CA fingerprint agents pin when they enroll.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Certificates the operator provides instead of the generated ones.
#[derive(Clone, Debug)]
pub struct ProvidedCertificates {
    /// The server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA that signed it (PEM): its fingerprint is what agents pin.
    pub ca: PathBuf,
}

/// The server's certificates, ready for rustls.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub ca_pem: String,
    /// `sha256:` and the hex SHA-256 of the CA certificate's DER encoding.
    pub ca_fingerprint: String,
    /// Set when this start created the CA.
    pub created: bool,
}

/// Why the TLS identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a PEM {what}: {source}", path.display())]
    Pem {
        path: std::path::PathBuf,
        what: &'static str,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what}: {source}")]
    Certificate { what: String, source: rcgen::Error },
    #[error("{what}: {source}")]
    Rustls {
        what: &'static str,
        source: rustls::Error,
    },
}

fn pem(path: &Path, what: &'static str) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError {
    let path = path.to_owned();
    move |source| TlsError::Pem { path, what, source }
}

fn cert(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> TlsError {
    let what = what.into();
    move |source| TlsError::Certificate { what, source }
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError {
    let path = path.to_owned();
    move |source| TlsError::Write { path, source }
}

/// The fingerprint agents pin: `sha256:` + hex of the DER certificate's SHA-256.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", patchwarden_model::fleet::sha256_hex(der))
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(write_error(&tmp))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(write_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(write_error(path))
}

fn ca_params() -> Result<rcgen::CertificateParams, TlsError> {
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(cert("CA parameters"))?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "patchwarden fleet CA");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Loads the identity from `state_dir` (`ca.pem`, `ca.key`, `server.pem`, `server.key`), creating
/// what is missing: a CA on first start, a server certificate for `names` (DNS names or IP
/// addresses) whenever there is none. Keys are written with mode 0600.
pub fn load_or_create(
    state_dir: &Path,
    names: &[String],
    provided: Option<&ProvidedCertificates>,
) -> Result<Identity, TlsError> {
    if let Some(p) = provided {
        let chain = CertificateDer::pem_slice_iter(read(&p.cert)?.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem(&p.cert, "certificate chain"))?;
        let key = PrivateKeyDer::from_pem_slice(read(&p.key)?.as_bytes())
            .map_err(pem(&p.key, "private key"))?;
        let ca_pem = read(&p.ca)?;
        let ca =
            CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(pem(&p.ca, "certificate"))?;
        return Ok(Identity {
            chain,
            key,
            ca_fingerprint: fingerprint(&ca),
            ca_pem,
            created: false,
        });
    }
    std::fs::create_dir_all(state_dir).map_err(write_error(state_dir))?;
    let (ca_cert_path, ca_key_path) = (state_dir.join("ca.pem"), state_dir.join("ca.key"));
    let (srv_cert_path, srv_key_path) =
        (state_dir.join("server.pem"), state_dir.join("server.key"));
    let mut created = false;
    if !ca_cert_path.is_file() || !ca_key_path.is_file() {
        let key = rcgen::KeyPair::generate().map_err(cert("CA key"))?;
        let cert = ca_params()?
            .self_signed(&key)
            .map_err(cert("CA certificate"))?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        write_private(&ca_cert_path, &cert.pem())?;
        // A new CA invalidates any server certificate signed by an old one.
        let _ = std::fs::remove_file(&srv_cert_path);
        created = true;
    }
    let ca_pem = read(&ca_cert_path)?;
    if !srv_cert_path.is_file() || !srv_key_path.is_file() {
        let ca_key = rcgen::KeyPair::from_pem(&read(&ca_key_path)?)
            .map_err(cert(ca_key_path.display().to_string()))?;
        // The issuer is rebuilt from the same parameters and key: same name, same key identifier.
        let issuer = ca_params()?
            .self_signed(&ca_key)
            .map_err(cert("CA certificate"))?;
        let key = rcgen::KeyPair::generate().map_err(cert("server key"))?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .map_err(cert(format!("server certificate names {names:?}")))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "patchwarden server");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &issuer, &ca_key)
            .map_err(cert("server certificate"))?;
        write_private(&srv_key_path, &key.serialize_pem())?;
        write_private(&srv_cert_path, &format!("{}{}", cert.pem(), ca_pem))?;
    }
    let chain = CertificateDer::pem_slice_iter(read(&srv_cert_path)?.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem(&srv_cert_path, "certificate chain"))?;
    let key = PrivateKeyDer::from_pem_slice(read(&srv_key_path)?.as_bytes())
        .map_err(pem(&srv_key_path, "private key"))?;
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(pem(&ca_cert_path, "certificate"))?;
    Ok(Identity {
        chain,
        key,
        ca_fingerprint: fingerprint(&ca),
        ca_pem,
        created,
    })
}

/// The rustls configuration serving `identity` (HTTP/1.1).
pub fn server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "TLS versions",
            source,
        })?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|source| TlsError::Rustls {
            what: "the server certificate and key do not fit",
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
