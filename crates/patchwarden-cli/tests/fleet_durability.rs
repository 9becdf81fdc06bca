//! The fleet under failure, with real processes: `kill -9` of the server while agents report
//! (afterwards every report is stored exactly once), bodies over the limit answered over TLS
//! instead of a reset connection, a revoked host refused while its data stays. (The authorization
//! and bad-input matrices over every route run in process: `patchwarden-server/tests/`.)
mod fleet;
mod support;

use std::path::PathBuf;
use std::process::Command;

use fleet::*;
use support::*;

/// Agents keep reporting while the server is killed with SIGKILL and restarted on the same port;
/// afterwards each report the agents made is stored exactly once and no spool holds anything.
#[test]
fn kill_9_loses_no_acknowledged_report() {
    let work = scratch("fleet-kill9");
    let db = work.join("kb.db").display().to_string();
    load_knowledge(&db);
    let state = work.join("server-state");
    let mut server = start_server(&db, &state, "127.0.0.1:0", &[]);
    let port = server.port;
    let token = enroll_token(&db, &["--uses", "3"]);
    let root = alpine_root(&work);
    let dirs: Vec<PathBuf> = (0..3).map(|i| work.join(format!("agent-{i}"))).collect();
    for (i, dir) in dirs.iter().enumerate() {
        ok(
            &enroll(dir, &server, &token, &root, &format!("host-{i}")),
            "enroll",
        );
    }
    const ROUNDS: usize = 12;
    let reporters: Vec<_> = dirs
        .iter()
        .cloned()
        .map(|dir| {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut undelivered = 0;
                for _ in 0..ROUNDS {
                    let out = agent(&dir, &["run", "--once", "--root", root.to_str().unwrap()]);
                    match out.status.code() {
                        Some(0) => {}
                        Some(75) => undelivered += 1,
                        other => panic!(
                            "agent exited {other:?}: {}",
                            String::from_utf8_lossy(&out.stderr)
                        ),
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                undelivered
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(600));
    for _ in 0..2 {
        // SIGKILL: no shutdown handler runs.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        server = start_server(&db, &state, &format!("127.0.0.1:{port}"), &[]);
        std::thread::sleep(std::time::Duration::from_millis(400));
    }
    let undelivered: usize = reporters.into_iter().map(|t| t.join().unwrap()).sum();
    // Flush whatever is still spooled: one more report each.
    for dir in &dirs {
        ok(
            &agent(dir, &["run", "--once", "--root", root.to_str().unwrap()]),
            "final flush",
        );
        let left = std::fs::read_dir(dir.join("spool")).unwrap().count();
        assert_eq!(left, 0, "{} still holds reports", dir.display());
    }
    let counts = Command::new(SYSTEM_PYTHON)
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*), count(distinct host_id || idempotency_key) from report').fetchone())",
            &db,
        ])
        .output()
        .unwrap();
    let text = ok(&counts, "count reports");
    let expected = dirs.len() * (ROUNDS + 1);
    assert_eq!(
        text.trim(),
        format!("({expected}, {expected})"),
        "reports stored (undelivered at first: {undelivered})"
    );
    drop(server);
}

/// Every endpoint family refuses bad input with the right 4xx and a JSON error naming the problem.
#[test]
fn oversized_bodies_and_revoked_hosts_over_tls() {
    let work = scratch("fleet-bad-input");
    let db = work.join("kb.db").display().to_string();
    let state = work.join("server-state");
    let server = start_server(
        &db,
        &state,
        "127.0.0.1:0",
        &["--max-body-mib", "1", "--body-timeout-secs", "2"],
    );
    let admin = server.admin_token.clone().unwrap();
    let token = enroll_token(&db, &["--uses", "2"]);
    let root = alpine_root(&work);
    let dir = work.join("agent");
    ok(&enroll(&dir, &server, &token, &root, "good-host"), "enroll");
    ok(
        &agent(&dir, &["run", "--once", "--root", root.to_str().unwrap()]),
        "run",
    );
    let host_secret = std::fs::read_to_string(dir.join("credential")).unwrap();
    let auditor = {
        let out = bin()
            .args(["--db", &db, "user", "create", "reader", "--role", "auditor"])
            .output()
            .unwrap();
        ok(&out, "user create").trim().to_owned()
    };
    let http = client(&state);
    let base = server.url.clone();
    let check = |method: &str,
                 path: &str,
                 auth: Option<&str>,
                 body: Option<Vec<u8>>,
                 want: u16,
                 says: &str| {
        runtime().block_on(async {
            let url = format!("{base}{path}");
            let mut r = match method {
                "GET" => http.get(&url),
                "POST" => http.post(&url),
                "PUT" => http.put(&url),
                _ => unreachable!(),
            };
            if let Some(a) = auth {
                r = r.bearer_auth(a);
            }
            if let Some(b) = body {
                r = r.header("content-type", "application/json").body(b);
            }
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert_eq!(status, want, "{method} {path}: {text}");
            if want < 400 {
                return;
            }
            let err: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
            let msg = err["error"].as_str().unwrap();
            assert!(
                msg.contains(says),
                "{method} {path}: {msg:?} should say {says:?}"
            );
        })
    };
    // The authorization and bad-input matrices run in process over every route
    // (crates/patchwarden-server/tests/authorization.rs, bad_input.rs); here, over TLS and a real
    // socket: a host credential on the user API, and bodies over the limit answered, not reset.
    check(
        "GET",
        "/v1/hosts",
        Some(&host_secret),
        None,
        403,
        "host credential",
    );
    check(
        "POST",
        "/v1/users",
        Some(&auditor),
        Some(br#"{"name":"x","role":"admin"}"#.to_vec()),
        403,
        "needs admin",
    );
    // Oversized (the server was started with a 1 MiB limit).
    let big = format!(
        "{{\"token\":\"pwe_x\",\"hostname\":\"{}\"}}",
        "a".repeat(2 << 20)
    );
    check(
        "POST",
        "/v1/enroll",
        None,
        Some(big.into_bytes()),
        413,
        "larger than",
    );
    let big_checkin = format!(
        "{{\"idempotency_key\":\"k\",\"digest\":\"{}\",\"agent_version\":\"x\"}}",
        "d".repeat(2 << 20)
    );
    check(
        "POST",
        "/v1/checkin",
        Some(&host_secret),
        Some(big_checkin.into_bytes()),
        413,
        "larger than",
    );
    // Without a credential, a body announced at 200 MB is answered 413 before it is sent (never
    // buffered) and the connection closed; a body that trickles in is cut off by the body timeout
    // (408) and its connection closed.
    let answer = raw_tls(
        &server,
        &state,
        "POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 209715200\r\n\r\n",
        b"",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    // A client that sends its whole body before it reads (96 MiB of a declared 200 MB: more than
    // any drain before the answer would read, and far more than the sockets buffer) still reads
    // its 413, not a reset: the closing connection drops what it still sends (lingering close).
    let answer = raw_tls(
        &server,
        &state,
        "POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 209715200\r\n\r\n",
        &vec![b'a'; 96 << 20],
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let answer = raw_tls(
        &server,
        &state,
        "POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        b"{",
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within"), "{answer}");
    // Revoked hosts are refused; the good data is still there.
    check("POST", "/v1/hosts/1/revoke", Some(&admin), None, 200, "");
    let out = agent(&dir, &["run", "--once", "--root", root.to_str().unwrap()]);
    refused(&out, "revoked");
    let hosts = query(&server, &state, &admin, &["hosts"]);
    assert_eq!(hosts[0]["revoked"], true);
    assert_eq!(hosts[0]["packages"], 15);
}

/// Sends `head` and `body` over TLS and reads until the server closes the connection (what a
/// hand-written client sees: status line, headers, body). A server that never closes fails the
/// test after 30 s (the read timeout) instead of hanging it.
fn raw_tls(server: &ServerProcess, state: &std::path::Path, head: &str, body: &[u8]) -> String {
    use rustls::pki_types::pem::PemObject;
    use std::io::{Read, Write};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(state.join("ca.pem")).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(body).unwrap();
    tls.flush().unwrap();
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // A close without TLS close_notify still ends the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!(
            "reading the answer: {e} (so far: {})",
            String::from_utf8_lossy(&out)
        ),
    }
    String::from_utf8_lossy(&out).into_owned()
}
