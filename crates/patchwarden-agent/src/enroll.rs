//! Enrollment: fetch the server's CA, check it against the pinned fingerprint, trade the
//! enrollment token for a host credential, keep both in the state directory.

use super::*;

pub(crate) async fn enroll(
    state_dir: &Path,
    server: &str,
    token: &str,
    expected: &str,
    hostname: Option<String>,
    root: &Path,
) -> Result<ExitCode, AgentError> {
    let server = server.trim_end_matches('/');
    let expected = expected.trim().to_lowercase();
    if !expected.starts_with("sha256:") || expected.len() != 7 + 64 {
        return Err(AgentError::Setup(format!(
            "--ca-fingerprint {expected:?}: expected sha256: and 64 hex digits, as the server printed it"
        )));
    }
    // The CA is fetched over a connection that verifies nothing yet, and trusted only if its
    // fingerprint is the one given: the token travels only over the verified connection below.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let probe = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| AgentError::Server(format!("cannot set up the HTTP client: {e}")))?;
    let response = probe
        .get(format!("{server}/v1/ca.pem"))
        .send()
        .await
        .map_err(|e| AgentError::Server(connect_error(&e, &format!("{server}/v1/ca.pem"), None)))?;
    if !response.status().is_success() {
        return Err(AgentError::Server(format!(
            "{server}/v1/ca.pem: {}",
            error_text(response).await
        )));
    }
    let ca_pem = response
        .text()
        .await
        .map_err(|e| AgentError::Server(format!("{server}/v1/ca.pem: {e}")))?;
    let actual = format!(
        "sha256:{}",
        patchwarden_model::fleet::sha256_hex(&pem_der(&ca_pem)?)
    );
    if actual != expected {
        return Err(AgentError::Setup(format!(
            "refusing {server}: its CA fingerprint is {actual}, not the expected {expected}"
        )));
    }
    let client = client(ca_pem.as_bytes(), Duration::from_secs(60))?;
    let identity = patchwarden_inventory::collect(root)
        .map(|inv| inv.host)
        .unwrap_or_default();
    let hostname = hostname
        .or(identity.hostname)
        .ok_or_else(|| AgentError::Setup("no hostname: pass --hostname".into()))?;
    let request = EnrollRequest {
        token: token.to_owned(),
        hostname: hostname.clone(),
        machine_id: identity.machine_id,
    };
    let response = client
        .post(format!("{server}/v1/enroll"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&request).expect("a request serializes"))
        .send()
        .await
        .map_err(|e| {
            AgentError::Server(connect_error(
                &e,
                &format!("{server}/v1/enroll"),
                Some(&expected),
            ))
        })?;
    if !response.status().is_success() {
        return Err(AgentError::Setup(format!(
            "enrollment refused: {}",
            error_text(response).await
        )));
    }
    let enrolled: EnrollResponse = serde_json::from_slice(
        &response
            .bytes()
            .await
            .map_err(|e| AgentError::Server(format!("the enrollment answer: {e}")))?,
    )
    .map_err(|e| AgentError::Server(format!("the enrollment answer: {e}")))?;
    std::fs::create_dir_all(state_dir)
        .map_err(|e| AgentError::Setup(format!("cannot create {}: {e}", state_dir.display())))?;
    write_private(&state_dir.join("ca.pem"), ca_pem.as_bytes())?;
    write_private(
        &state_dir.join("credential"),
        enrolled.host_secret.as_bytes(),
    )?;
    let state = AgentState {
        server: server.to_owned(),
        host_id: enrolled.host_id,
        ca_fingerprint: expected,
    };
    write_private(
        &state_dir.join("agent.json"),
        &serde_json::to_vec_pretty(&state).expect("state serializes"),
    )?;
    // The server's job signing key, pinned: only jobs it signed run here.
    let key_file = state_dir.join(JOB_KEY_FILE);
    match &enrolled.job_signing_key {
        Some(key) => write_private(&key_file, key.as_bytes())?,
        None => {
            let _ = std::fs::remove_file(&key_file);
        }
    }
    // A new enrollment starts a new history: nothing spooled for an old identity is sent.
    let _ = std::fs::remove_dir_all(state_dir.join("spool"));
    let _ = std::fs::remove_file(state_dir.join(JOBS_RUN_FILE));
    let _ = std::fs::remove_file(state_dir.join("last-digest"));
    println!(
        "enrolled as host {} ({hostname}) with {server}",
        enrolled.host_id
    );
    Ok(ExitCode::SUCCESS)
}
