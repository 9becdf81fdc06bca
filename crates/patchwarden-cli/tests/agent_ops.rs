//! The agent in operation: it names what is wrong with the server's certificate and how to fix it
//! (a certificate that does not hold the address's name: which names it holds; a certificate from
//! another CA than the pinned one: which fingerprint was expected), and the systemd unit it ships
//! passes `systemd-analyze verify` without sandboxing that would stop a package manager.
mod fleet;
mod support;

use fleet::*;
use support::*;

#[test]
fn a_certificate_for_other_names_is_explained() {
    let work = scratch("agent-tls-name");
    let db = work.join("kb.db").display().to_string();
    let state = work.join("server-state");
    let server = start_server(
        &db,
        &state,
        "127.0.0.1:0",
        &["--tls-name", "patchwarden.example.test"],
    );
    let token = enroll_token(&db, &["--uses", "1"]);
    let root = alpine_root(&work);
    let out = enroll(&work.join("agent"), &server, &token, &root, "tls-host");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not valid for 127.0.0.1: it names patchwarden.example.test"),
        "{stderr}"
    );
    assert!(stderr.contains("--tls-name 127.0.0.1"), "{stderr}");
}

#[test]
fn a_server_with_another_ca_is_explained() {
    let work = scratch("agent-tls-ca");
    let db = work.join("kb.db").display().to_string();
    let first = start_server(&db, &work.join("state-a"), "127.0.0.1:0", &[]);
    let token = enroll_token(&db, &["--uses", "1"]);
    let root = alpine_root(&work);
    let agent_dir = work.join("agent");
    ok(
        &enroll(&agent_dir, &first, &token, &root, "tls-host"),
        "enroll",
    );
    // Another server with its own state directory (another CA) at the address the agent uses.
    let other = start_server(&db, &work.join("state-b"), "127.0.0.1:0", &[]);
    let state_file = agent_dir.join("agent.json");
    let text = std::fs::read_to_string(&state_file)
        .unwrap()
        .replace(&first.url, &other.url);
    std::fs::write(&state_file, text).unwrap();
    let out = agent(
        &agent_dir,
        &["run", "--once", "--root", root.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(75), "kept in the spool");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "not issued by the CA this agent pinned ({})",
            first.fingerprint
        )),
        "{stderr}"
    );
}

/// Directives that would make the package manager's work impossible under the unit (read-only
/// /usr, /etc, /boot or /lib/modules; no devices for the boot loader; no setuid bits), each with
/// the values that are harmless.
const FORBIDDING: &[(&str, &[&str])] = &[
    ("ProtectSystem", &["no", "false"]),
    ("ProtectHome", &["no", "false"]),
    ("ReadOnlyPaths", &[]),
    ("InaccessiblePaths", &[]),
    ("ProtectKernelModules", &["no", "false"]),
    ("ProtectKernelTunables", &["no", "false"]),
    ("PrivateDevices", &["no", "false"]),
    ("RestrictSUIDSGID", &["no", "false"]),
    ("DynamicUser", &["no", "false"]),
    ("User", &["root"]),
];

#[test]
fn the_shipped_unit_verifies_and_lets_the_agent_patch() {
    let work = scratch("agent-unit");
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../dist/patchwarden-agent.service"),
    )
    .unwrap();
    // The unit as installed, its program at the path of this build's agent.
    let installed = unit.replace(
        "/usr/local/bin/patchwarden-agent",
        agent_bin().to_str().unwrap(),
    );
    let path = work.join("patchwarden-agent.service");
    std::fs::write(&path, &installed).unwrap();
    match std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
    {
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "systemd-analyze verify: {stderr}");
            // verify exits 0 on some warnings; the unit must have none of its own.
            assert!(
                !stderr.contains("patchwarden-agent.service"),
                "systemd-analyze verify: {stderr}"
            );
        }
        Err(e) => {
            assert!(
                std::env::var_os("PATCHWARDEN_REQUIRE_ORACLES").is_none(),
                "systemd-analyze: {e}"
            );
            eprintln!("SKIPPED the systemd-analyze check: {e} (install systemd)");
        }
    }
    let mut in_service = false;
    let mut seen = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        let Some((key, value)) = line.split_once('=').filter(|_| in_service) else {
            continue;
        };
        seen.push(key.trim().to_owned());
        if let Some((_, harmless)) = FORBIDDING.iter().find(|(k, _)| *k == key.trim()) {
            assert!(
                harmless.contains(&value.trim()),
                "{key}={value} stops the package manager from patching the host"
            );
        }
    }
    // A restart of the agent leaves a running package manager alone; the state directory is
    // the agent's own.
    for needed in ["KillMode", "StateDirectory", "ExecStart"] {
        assert!(seen.iter().any(|k| k == needed), "{needed} missing");
    }
    assert!(unit.contains("KillMode=process"));
}
