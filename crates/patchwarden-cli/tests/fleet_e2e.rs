//! The fleet end to end, with real processes: `patchwarden server` on a fresh store, real agents
//! (`patchwarden-agent`) reporting real roots — a Debian 12 root built by mmdebstrap, an AlmaLinux 9
//! rpmdb built with rpmbuild + `rpm --justdb`, the Alpine apk sample — over TLS with the server's
//! own CA.
//!
//! * enrollment: a wrong CA fingerprint, an expired token and a used-up token are refused;
//! * the fleet queries return the hosts, and each host's findings are exactly what
//!   `patchwarden scan --root` computes for the same root (itself checked against python3-apt and
//!   python3-rpm in `scan_e2e.rs`);
//! * a package removed from a root (`rpm -e --justdb`) shows up as a delta in the package history
//!   and an updated finding set; an unchanged root sends a heartbeat;
//! * the same on PostgreSQL with two server processes sharing the database, agents split across
//!   them;
//! * `kill -9` of the server while agents report: afterwards every report is stored exactly once;
//! * bad input for every endpoint family: 400 / 401 / 403 / 404 / 413, never a 500.
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use support::*;

/// The agent binary: built by cargo beside the test binaries' target directory (another package's
/// binary has no `CARGO_BIN_EXE_`); built once per test process.
fn agent_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let release = profile_dir.ends_with("release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "patchwarden-agent"]);
        if release {
            cmd.arg("--release");
        }
        // The same target directory as this test binary.
        cmd.env("CARGO_TARGET_DIR", profile_dir.parent().unwrap());
        let status = cmd.status().expect("run cargo build -p patchwarden-agent");
        assert!(status.success(), "building patchwarden-agent failed");
        profile_dir.join("patchwarden-agent")
    })
    .clone()
}

/// A running `patchwarden server`; killed when dropped.
struct ServerProcess {
    child: Child,
    url: String,
    port: u16,
    fingerprint: String,
    admin_token: Option<String>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(db: &str, state: &Path, listen: &str, extra: &[&str]) -> ServerProcess {
    let mut child = bin()
        .args(["--db", db, "server", "--listen", listen, "--state-dir"])
        .arg(state)
        .args(["--sync-interval-secs", "0", "--checkin-interval-secs", "1"])
        .args(["--knowledge-poll-secs", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start patchwarden server");
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut fingerprint, mut admin_token) = (String::new(), None);
    let url = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if let Some(t) = line.strip_prefix("admin token (shown once): ") {
            admin_token = Some(t.to_owned());
        } else if let Some(f) = line.strip_prefix("CA fingerprint: ") {
            fingerprint = f.to_owned();
        } else if let Some(u) = line.strip_prefix("listening on ") {
            break u.to_owned();
        }
    };
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    ServerProcess {
        child,
        url,
        port,
        fingerprint,
        admin_token,
    }
}

fn agent(state: &Path, args: &[&str]) -> Output {
    Command::new(agent_bin())
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run patchwarden-agent")
}

fn enroll(state: &Path, server: &ServerProcess, token: &str, root: &Path, name: &str) -> Output {
    agent(
        state,
        &[
            "enroll",
            "--server",
            &server.url,
            "--token",
            token,
            "--ca-fingerprint",
            &server.fingerprint,
            "--hostname",
            name,
            "--root",
            root.to_str().unwrap(),
        ],
    )
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that a command failed and said `says` on stderr.
fn refused(out: &Output, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(says),
        "expected a refusal saying {says:?}: {out:?}"
    );
}

fn enroll_token(db: &str, args: &[&str]) -> String {
    let out = bin()
        .args(["--db", db, "enroll-token", "create"])
        .args(args)
        .output()
        .unwrap();
    ok(&out, "enroll-token create").trim().to_owned()
}

/// `patchwarden --server … <args> --format json` as the given user.
fn query(server: &ServerProcess, state: &Path, token: &str, args: &[&str]) -> serde_json::Value {
    let out = bin()
        .args(["--server", &server.url, "--token", token, "--ca"])
        .arg(state.join("ca.pem"))
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    serde_json::from_str(&ok(&out, &format!("query {args:?}"))).unwrap()
}

/// Waits until the server has computed the findings of every stored inventory (they follow the
/// check-in's acknowledgement in the background).
fn wait_for_findings(server: &ServerProcess, state: &Path, token: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let hosts = query(server, state, token, &["hosts"]);
        if hosts
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["findings_pending"] == false)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "findings still pending: {hosts}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// (package, advisory, state) of findings as the scan report or the server's host view lists them.
fn triples(findings: &serde_json::Value) -> BTreeSet<(String, String, String)> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["package"].as_str().unwrap().to_owned(),
                f["advisory_id"].as_str().unwrap().to_owned(),
                f["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn scan_triples(db: &str, root: &Path) -> BTreeSet<(String, String, String)> {
    let out = bin()
        .args([
            "--db",
            db,
            "scan",
            "--no-history",
            "--format",
            "json",
            "--root",
        ])
        .arg(root)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&out, "scan")).unwrap();
    triples(&report["findings"])
}

/// The Alpine apk sample as a root of its own.
fn alpine_root(work: &Path) -> PathBuf {
    let root = work.join("alpine-root");
    write(
        &root.join("etc/os-release"),
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.11.6\nPRETTY_NAME=\"Alpine Linux v3.11\"\n",
    );
    write(&root.join("etc/hostname"), "alpine-sample\n");
    std::fs::create_dir_all(root.join("lib/apk/db")).unwrap();
    std::fs::copy(
        fixtures().join("inventory/apk/installed"),
        root.join("lib/apk/db/installed"),
    )
    .unwrap();
    root
}

/// The knowledge the fleet is judged against: Debian tracker, AlmaLinux OSV, Alpine secdb, KEV,
/// NVD, EPSS (all real records from tests/data).
fn load_knowledge(db: &str) {
    let out = bin()
        .args(["--db", db, "feeds", "import"])
        .arg(fixtures().join("debian-tracker/vunnel-debian.json"))
        .arg(fixtures().join("osv/almalinux9"))
        .arg(fixtures().join("alpine-secdb/alpine-secdb-repo-v3.11-main.yaml"))
        .arg(fixtures().join("kev/known_exploited_vulnerabilities.json"))
        .arg(fixtures().join("nvd/cve-objects"))
        .arg(fixtures().join("epss/epss_scores-2026-09-29.rows-subset.csv"))
        .output()
        .unwrap();
    ok(&out, "feeds import");
}

/// The roots this machine can build: (name, root). The RPM and Debian roots need their tools.
fn roots(work: &Path) -> Option<Vec<(&'static str, PathBuf)>> {
    let debian = debian_root()?;
    if !tool_available("rpmbuild") || !python_module_available("rpm") {
        return None;
    }
    std::fs::create_dir_all(work.join("alma")).unwrap();
    let alma = build_alma_root(&work.join("alma"));
    Some(vec![
        ("debian-host", debian),
        ("alma-host", alma),
        ("alpine-host", alpine_root(work)),
    ])
}

/// The whole lifecycle against `servers` (one or several processes on one store): agents split
/// across them round-robin.
fn lifecycle(db: &str, work: &Path, servers: &[&ServerProcess], state: &Path) {
    let Some(roots) = roots(work) else { return };
    let first = servers[0];
    let admin = first
        .admin_token
        .clone()
        .expect("a fresh store creates the admin");

    // Enrollment refusals.
    let one_use = enroll_token(db, &["--uses", "1", "--label", "env=staging"]);
    let wrong = agent(
        &work.join("agent-wrong-ca"),
        &[
            "enroll",
            "--server",
            &first.url,
            "--token",
            &one_use,
            "--ca-fingerprint",
            &format!("sha256:{}", "ab".repeat(32)),
            "--hostname",
            "x",
        ],
    );
    refused(&wrong, "CA fingerprint");
    refused(&wrong, &first.fingerprint);
    let expired = enroll_token(db, &["--expires", "0s"]);
    let out = enroll(
        &work.join("agent-expired"),
        first,
        &expired,
        &roots[2].1,
        "x",
    );
    refused(&out, "expired");

    // Three agents, split across the servers; the one-use token enrolls the first, then is spent.
    let many = enroll_token(db, &["--uses", "5", "--label", "env=production"]);
    let mut agents = Vec::new();
    for (i, (name, root)) in roots.iter().enumerate() {
        let server = servers[i % servers.len()];
        let dir = work.join(format!("agent-{name}"));
        let token = if i == 0 { &one_use } else { &many };
        ok(&enroll(&dir, server, token, root, name), "enroll");
        agents.push((name.to_string(), root.clone(), dir));
    }
    let used_up = enroll(
        &work.join("agent-used-up"),
        first,
        &one_use,
        &roots[0].1,
        "y",
    );
    refused(&used_up, "no uses left");

    for (_, root, dir) in &agents {
        ok(
            &agent(dir, &["run", "--once", "--root", root.to_str().unwrap()]),
            "agent run --once",
        );
    }
    wait_for_findings(first, state, &admin);

    // The fleet: three hosts with their OS and labels; each host's findings are the scan's.
    let hosts = query(first, state, &admin, &["hosts"]);
    let hosts = hosts.as_array().unwrap();
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    let by_name = |n: &str| hosts.iter().find(|h| h["hostname"] == n).unwrap().clone();
    assert_eq!(by_name("debian-host")["os"], "Debian 12 (bookworm)");
    assert_eq!(by_name("alma-host")["os"], "AlmaLinux 9");
    assert_eq!(by_name("debian-host")["labels"]["env"], "staging");
    assert_eq!(by_name("alpine-host")["labels"]["env"], "production");
    let staging = query(first, state, &admin, &["hosts", "--label", "env=staging"]);
    assert_eq!(staging.as_array().unwrap().len(), 1);
    let alma_only = query(first, state, &admin, &["hosts", "--os", "almalinux"]);
    assert_eq!(alma_only[0]["hostname"], "alma-host");
    for (name, root, _) in &agents {
        let host = by_name(name);
        let id = host["id"].as_i64().unwrap();
        let view = query(
            servers[servers.len() - 1],
            state,
            &admin,
            &["host", &id.to_string()],
        );
        let served = triples(&view["findings"]);
        assert_eq!(served, scan_triples(db, root), "{name}");
        assert_eq!(
            host["packages"].as_i64().unwrap() as usize,
            inventory_json(root)["packages"].as_array().unwrap().len(),
            "{name}"
        );
    }
    let alma = by_name("alma-host");
    let alma_id = alma["id"].as_i64().unwrap();
    let before = triples(&query(first, state, &admin, &["host", &alma_id.to_string()])["findings"]);
    assert!(before.iter().any(|(p, _, _)| p == "sudo"), "{before:?}");

    // Which hosts a CVE affects: one of the AlmaLinux findings.
    let cve = query(first, state, &admin, &["findings", "--limit", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["hostname"] == "alma-host" && f["finding"]["package"] == "sudo")
        .map(|f| f["finding"]["cves"][0].as_str().unwrap().to_owned())
        .unwrap();
    let affected = query(first, state, &admin, &["affected", &cve]);
    assert!(
        affected
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["hostname"] == "alma-host" && a["package"] == "sudo"),
        "{affected:?}"
    );

    // A package change: sudo removed from the AlmaLinux root with rpm itself.
    let (_, alma_root, alma_dir) = &agents[1];
    let st = Command::new("rpm")
        .arg("--root")
        .arg(alma_root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-e",
            "--justdb",
            "--nodeps",
            "--noscripts",
            "sudo",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    ok(
        &agent(
            alma_dir,
            &["run", "--once", "--root", alma_root.to_str().unwrap()],
        ),
        "agent after change",
    );
    wait_for_findings(first, state, &admin);
    let after = triples(&query(first, state, &admin, &["host", &alma_id.to_string()])["findings"]);
    assert!(!after.iter().any(|(p, _, _)| p == "sudo"), "{after:?}");
    assert_eq!(after, scan_triples(db, alma_root));
    assert!(
        before.difference(&after).all(|(p, _, _)| p == "sudo") && after.is_subset(&before),
        "only sudo's findings went away: {before:?} -> {after:?}"
    );
    let history = http_get(
        first,
        state,
        &admin,
        &format!("/v1/hosts/{alma_id}/history"),
    );
    let sudo: Vec<&serde_json::Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["package"] == "sudo")
        .collect();
    assert_eq!(sudo.len(), 1, "{history:?}");
    assert!(sudo[0]["disappeared_at"].is_string(), "{sudo:?}");
    let cve_after = query(first, state, &admin, &["affected", &cve]);
    assert!(!cve_after
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["package"] == "sudo"));

    // Unchanged: a heartbeat, not a new inventory.
    let (_, debian_root, debian_dir) = &agents[0];
    ok(
        &agent(
            debian_dir,
            &["run", "--once", "--root", debian_root.to_str().unwrap()],
        ),
        "heartbeat",
    );
    let metrics: String = servers
        .iter()
        .map(|s| http_text(s, state, "/metrics"))
        .collect();
    assert!(
        metrics.contains("patchwarden_checkins_total{result=\"heartbeat\"}"),
        "{metrics}"
    );

    // A knowledge-base change re-evaluates only the hosts it touches: Alpine v3.15 advisories
    // (real, imported by another process while the servers run) name zlib, which the Alpine host
    // holds — and so does the Debian root (source zlib), but on another distribution.
    let findings_at = || -> BTreeMap<String, String> {
        query(first, state, &admin, &["hosts"])
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let at = h["findings_at"].as_str().expect("findings computed");
                (h["hostname"].as_str().unwrap().to_owned(), at.to_owned())
            })
            .collect()
    };
    let before_change = findings_at();
    // Times have a resolution of one second: a recomputation from now on shows a later one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = bin()
        .args(["--db", db, "feeds", "import"])
        .arg(fixtures().join("alpine-secdb/vunnel-v3.15-main-truncated.yaml"))
        .output()
        .unwrap();
    ok(&out, "feeds import while the servers run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while findings_at()["alpine-host"] == before_change["alpine-host"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the Alpine host was not re-evaluated"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    wait_for_findings(first, state, &admin);
    let after_change = findings_at();
    for other in ["debian-host", "alma-host"] {
        assert_eq!(
            after_change[other], before_change[other],
            "{other} was re-evaluated"
        );
    }
    let marked: u64 = servers
        .iter()
        .map(|s| {
            metric(
                &http_text(s, state, "/metrics"),
                "patchwarden_hosts_marked_by_knowledge_changes_total",
            )
        })
        .sum();
    assert_eq!(marked, 1, "hosts marked across the servers");
    let (_, alpine_root, _) = &agents[2];
    let alpine_id = by_name("alpine-host")["id"].as_i64().unwrap();
    assert_eq!(
        triples(&query(first, state, &admin, &["host", &alpine_id.to_string()])["findings"]),
        scan_triples(db, alpine_root)
    );

    // Expected assets: one that never enrolled.
    let assets = work.join("assets.csv");
    std::fs::write(
        &assets,
        "hostname,groups\ndebian-host,web\nalma-host,db\nforgotten-host,db\n",
    )
    .unwrap();
    let out = bin()
        .args(["--server", &first.url, "--token", &admin, "--ca"])
        .arg(state.join("ca.pem"))
        .arg("assets")
        .arg("import")
        .arg(&assets)
        .output()
        .unwrap();
    ok(&out, "assets import");
    let summary = query(first, state, &admin, &["summary"]);
    assert_eq!(summary["hosts"], 3);
    assert_eq!(
        summary["never_enrolled"],
        serde_json::json!(["forgotten-host"])
    );

    // Revocation holds at once on every server: revoked through the last server (on PostgreSQL
    // not the one the Debian agent reports to, which knows its credential and skips the lookup for
    // heartbeats), the agent's next heartbeat is refused by the heartbeat batch itself.
    let hosts = query(first, state, &admin, &["hosts"]);
    let debian_id = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hostname"] == "debian-host")
        .expect("the Debian host")["id"]
        .as_i64()
        .unwrap();
    let revoker = servers[servers.len() - 1];
    let status = runtime().block_on(async {
        client(state)
            .post(format!("{}/v1/hosts/{debian_id}/revoke", revoker.url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success(), "revoke: {status}");
    let out = agent(
        debian_dir,
        &["run", "--once", "--root", debian_root.to_str().unwrap()],
    );
    refused(&out, "revoked");
}

/// The value of an unlabelled counter in a Prometheus exposition (0 when absent).
fn metric(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(state: &Path) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(state.join("ca.pem")).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap()
}

fn http_get(server: &ServerProcess, state: &Path, token: &str, path: &str) -> serde_json::Value {
    runtime().block_on(async {
        let r = client(state)
            .get(format!("{}{path}", server.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
    })
}

fn http_text(server: &ServerProcess, state: &Path, path: &str) -> String {
    runtime().block_on(async {
        client(state)
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
}

#[test]
fn fleet_end_to_end_on_sqlite() {
    let work = scratch("fleet-sqlite");
    let db = work.join("kb.db").display().to_string();
    load_knowledge(&db);
    let state = work.join("server-state");
    let server = start_server(&db, &state, "127.0.0.1:0", &[]);
    lifecycle(&db, &work, &[&server], &state);
}

/// A PostgreSQL URL for a schema of its own, or `None` (skipped, or a failure under
/// `PATCHWARDEN_REQUIRE_ORACLES=1`).
fn postgres_schema(name: &str) -> Option<String> {
    let Ok(url) = std::env::var("PATCHWARDEN_TEST_POSTGRES") else {
        if std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("PATCHWARDEN_TEST_POSTGRES is not set");
        }
        eprintln!("SKIPPED: PATCHWARDEN_TEST_POSTGRES is not set");
        return None;
    };
    let schema = format!("pw_fleet_{name}_{}", std::process::id());
    let st = Command::new("psql")
        .arg(&url)
        .args([
            "-qc",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        ])
        .status()
        .expect("psql");
    assert!(st.success(), "creating schema {schema}");
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}

#[test]
fn fleet_end_to_end_on_postgres_with_two_servers() {
    let Some(db) = postgres_schema("e2e") else {
        return;
    };
    let work = scratch("fleet-postgres");
    load_knowledge(&db);
    let state = work.join("server-state");
    let a = start_server(&db, &state, "127.0.0.1:0", &[]);
    // The second process shares the database and the state directory (the same CA).
    let b = start_server(&db, &state, "127.0.0.1:0", &[]);
    assert_eq!(a.fingerprint, b.fingerprint);
    assert!(b.admin_token.is_none(), "the admin exists once");
    lifecycle(&db, &work, &[&a, &b], &state);
}

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
    let server = start_server(&db, &state, "127.0.0.1:0", &["--max-body-mib", "1"]);
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
    // Revoked hosts are refused; the good data is still there.
    check("POST", "/v1/hosts/1/revoke", Some(&admin), None, 200, "");
    let out = agent(&dir, &["run", "--once", "--root", root.to_str().unwrap()]);
    refused(&out, "revoked");
    let hosts = query(&server, &state, &admin, &["hosts"]);
    assert_eq!(hosts[0]["revoked"], true);
    assert_eq!(hosts[0]["packages"], 15);
}

/// `apt-get install SPEC` inside a test root (non-interactive), which must succeed.
fn chroot_apt_install(root: &Path, spec: &str) {
    let st = Command::new("chroot")
        .arg(root)
        .args(["apt-get", "install", "-y", "-q", spec])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    assert!(st.status.success(), "apt-get install {spec}: {st:?}");
}

/// A copy of the Debian test root at `dest` with a local repository of `name` at each of
/// `versions` (synthetic packages), the first installed; none (skipped) without the root's tools.
fn debian_root_with(dest: &Path, name: &'static str, versions: &[&'static str]) -> Option<PathBuf> {
    use patchwarden_inventory::testing::{debian_root_with_repository, SyntheticDeb};
    let debs: Vec<SyntheticDeb> = versions
        .iter()
        .map(|version| SyntheticDeb {
            name,
            source: None,
            version,
            postinst: None,
        })
        .collect();
    let root = debian_root_with_repository(Path::new(env!("CARGO_TARGET_TMPDIR")), dest, &debs)?;
    chroot_apt_install(&root, &format!("{name}={}", versions[0]));
    Some(root)
}

/// POST `body` as JSON with `token`; (status, answer).
fn http_post(
    server: &ServerProcess,
    state: &Path,
    token: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    runtime().block_on(async {
        let r = client(state)
            .post(format!("{}{path}", server.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    })
}

/// An operator's job reaches the agent by its long-poll: the agent upgrades its Debian root with
/// real apt to exactly the version asked (from a local repository of synthetic packages), reports,
/// and its next inventory shows the change. Bad jobs and reports are refused.
#[test]
fn an_operator_job_upgrades_a_host_and_its_inventory_follows() {
    let work = scratch("fleet-job");
    let Some(root) = debian_root_with(
        &work.join("root"),
        "pw-synthetic-hello",
        &["1.0-1", "1.0-2"],
    ) else {
        return;
    };
    let db = work.join("kb.db").display().to_string();
    let state = work.join("server-state");
    let server = start_server(&db, &state, "127.0.0.1:0", &[]);
    let admin = server.admin_token.clone().unwrap();
    let token = enroll_token(&db, &["--uses", "1"]);
    let agent_dir = work.join("agent");
    ok(
        &enroll(&agent_dir, &server, &token, &root, "job-host"),
        "enroll",
    );
    let root_arg = root.to_str().unwrap();
    ok(
        &agent(&agent_dir, &["run", "--once", "--root", root_arg]),
        "first check-in",
    );
    let host_id = query(&server, &state, &admin, &["hosts"])[0]["id"]
        .as_i64()
        .unwrap();

    // Jobs take package names and versions only.
    let path = format!("/v1/hosts/{host_id}/jobs");
    for bad in [
        serde_json::json!({"operation": "install", "packages": []}),
        serde_json::json!({"operation": "install", "packages": [{"name": "-oAPT::Get::x=1", "version": "1"}]}),
        serde_json::json!({"operation": "install", "packages": [{"name": "a", "version": "1 b"}]}),
        serde_json::json!({"operation": "install", "packages": [{"name": "a", "version": "1"}], "pre_hooks": [["rm", "-rf", "/"]]}),
        serde_json::json!({"operation": "reinstall", "packages": [{"name": "a", "version": "1"}]}),
    ] {
        let (status, answer) = http_post(&server, &state, &admin, &path, &bad);
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    assert_eq!(
        http_post(&server, &state, &admin, "/v1/hosts/999/jobs", &serde_json::json!({"operation": "install", "packages": [{"name": "a", "version": "1"}]})).0,
        404
    );
    let (status, job) = http_post(
        &server,
        &state,
        &admin,
        &path,
        &serde_json::json!({"operation": "install", "packages": [{"name": "pw-synthetic-hello", "version": "1.0-2"}]}),
    );
    assert_eq!(status, 201, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(
        http_get(&server, &state, &admin, &format!("/v1/jobs/{job_id}"))["state"],
        "queued"
    );

    // The agent's next cycle takes the job, runs apt in its root, reports, re-inventories.
    let out = agent(&agent_dir, &["run", "--once", "--root", root_arg]);
    let log = ok(&out, "run with a job");
    let stored = http_get(&server, &state, &admin, &format!("/v1/jobs/{job_id}"));
    assert_eq!(stored["state"], "succeeded", "{stored} {log}");
    assert_eq!(stored["report"]["outcome"]["outcome"], "succeeded");
    let history = http_get(
        &server,
        &state,
        &admin,
        &format!("/v1/hosts/{host_id}/history"),
    );
    let hello: Vec<(String, bool)> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["package"] == "pw-synthetic-hello")
        .map(|h| {
            (
                h["version"].as_str().unwrap().to_owned(),
                h["disappeared_at"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        hello,
        [("1.0-1".to_owned(), true), ("1.0-2".to_owned(), false)],
        "{history}"
    );

    // The report is the host's own and taken once; a user cannot report.
    let report = stored["report"].clone();
    let host_secret = std::fs::read_to_string(agent_dir.join("credential")).unwrap();
    let (status, _) = http_post(
        &server,
        &state,
        host_secret.trim(),
        &format!("/v1/jobs/{job_id}/report"),
        &report,
    );
    assert_eq!(status, 404, "a second report");
    let (status, _) = http_post(
        &server,
        &state,
        &admin,
        &format!("/v1/jobs/{job_id}/report"),
        &report,
    );
    assert_eq!(status, 401, "a user token on the host API");
}

/// A normal change through the API: the requester cannot approve it (whatever their role), an
/// approver can, an auditor acts on nothing, a transition the state does not allow is a 409, and
/// the audit trail names every actor. A standard change touching a database host is refused.
#[test]
fn a_change_needs_an_approver_who_did_not_request_it() {
    let work = scratch("fleet-change");
    let db = work.join("kb.db").display().to_string();
    let state = work.join("server-state");
    let server = start_server(&db, &state, "127.0.0.1:0", &["--rollout-tick-secs", "1"]);
    let admin = server.admin_token.clone().unwrap();
    let token = enroll_token(&db, &["--uses", "1", "--label", "role=database"]);
    let root = alpine_root(&work);
    ok(
        &enroll(&work.join("agent"), &server, &token, &root, "db-host"),
        "enroll",
    );
    let root_arg = root.to_str().unwrap();
    ok(
        &agent(&work.join("agent"), &["run", "--once", "--root", root_arg]),
        "check-in",
    );
    let host_id = query(&server, &state, &admin, &["hosts"])[0]["id"]
        .as_i64()
        .unwrap();
    let user = |name: &str, role: &str| -> String {
        let (status, created) = http_post(
            &server,
            &state,
            &admin,
            "/v1/users",
            &serde_json::json!({"name": name, "role": role}),
        );
        assert_eq!(status, 200, "{created}");
        created["token"].as_str().unwrap().to_owned()
    };
    let (approver, auditor) = (user("abe", "approver"), user("audrey", "auditor"));
    // Not before 2999: once scheduled it waits (the rollout driver starts it only then).
    let change = |kind: &str| {
        serde_json::json!({"title": "zlib fix", "kind": kind, "hosts": [host_id],
            "packages": [{"name": "zlib", "version": "1.3.1-r0"}],
            "not_before": "2999-01-01T00:00:00Z"})
    };
    let (status, refused) = http_post(&server, &state, &admin, "/v1/changes", &change("standard"));
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("role=database"),
        "{refused}"
    );
    let (status, created) = http_post(&server, &state, &admin, "/v1/changes", &change("normal"));
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // The rollback plan: the version the host's inventory holds (the apk sample's zlib).
    assert_eq!(
        created["rollback"],
        serde_json::json!([{"host_id": host_id, "packages": [{"name": "zlib", "version": "1.2.13-r1"}], "not_installed": []}])
    );
    let act = |token: &str, action: &str| {
        http_post(
            &server,
            &state,
            token,
            &format!("/v1/changes/{id}/actions"),
            &serde_json::json!({"action": action, "comment": format!("{action} by test")}),
        )
    };
    assert_eq!(act(&admin, "approve").0, 409, "not submitted yet");
    assert_eq!(act(&admin, "submit").0, 200);
    let (status, own) = act(&admin, "approve");
    assert_eq!(status, 403, "{own}");
    assert!(
        own["error"].as_str().unwrap().contains("cannot approve"),
        "{own}"
    );
    assert_eq!(act(&auditor, "approve").0, 403);
    let (status, approved) = act(&approver, "approve");
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["lifecycle"]["state"], "approved");
    assert_eq!(
        act(&approver, "schedule").0,
        403,
        "approvers do not schedule"
    );
    assert_eq!(act(&admin, "schedule").0, 200);
    // The driver passes over it (every second here) and leaves it scheduled.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let stored = http_get(&server, &state, &auditor, &format!("/v1/changes/{id}"));
    assert_eq!(stored["lifecycle"]["state"], "scheduled", "{stored:#}");
    assert!(stored["rollout"].is_null(), "{stored:#}");
    let trail: Vec<(String, String)> = stored["lifecycle"]["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"]["User"]["name"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
                e["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            ("admin".to_owned(), "submitted".to_owned()),
            ("abe".to_owned(), "approved".to_owned()),
            ("admin".to_owned(), "scheduled".to_owned()),
        ],
        "{stored}"
    );
    assert_eq!(
        http_post(
            &server,
            &state,
            &admin,
            "/v1/changes",
            &serde_json::json!({"title": "x"})
        )
        .0,
        400
    );
}

/// Polls `probe` every 200 ms until it answers, or panics after `secs` naming `what` and the last
/// value seen.
fn wait_until<T>(
    what: &str,
    secs: u64,
    mut probe: impl FnMut() -> (Option<T>, serde_json::Value),
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let (answer, seen) = probe();
        if let Some(v) = answer {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs} s; last seen: {seen:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `dpkg-query` in a root: (version, status) of a package.
fn dpkg_state(root: &Path, package: &str) -> (String, String) {
    let out = Command::new("chroot")
        .arg(root)
        .args(["dpkg-query", "-W", "-f", "${Version}|${Status}", package])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (v, s) = text.split_once('|').unwrap_or(("", ""));
    (v.to_owned(), s.to_owned())
}

/// A running agent (`patchwarden-agent run` on its root); killed when dropped.
struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(state: &Path, root: &Path, log: &Path) -> AgentProcess {
    let log = std::fs::File::create(log).unwrap();
    AgentProcess(
        Command::new(agent_bin())
            .arg("--state-dir")
            .arg(state)
            .args(["run", "--root"])
            .arg(root)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start patchwarden-agent"),
    )
}

/// Patch deployment end to end on real apt, six Debian roots each with its own agent, a local
/// repository holding versions 1.0-1 and 1.0-2 of a synthetic package, and a SYNTHETIC tracker
/// record (CVE-2999-0601, marked so) saying 1.0-2 fixes it:
/// 1. a normal change (the requester's own approval refused, an approver's accepted) rolls out in
///    the hosts' maintenance window, staging wave then production wave after a soak; the server is
///    killed and restarted mid-rollout and resumes; the staging host's interrupted dpkg run is
///    recovered first; verification closes the finding on every host; the change completes;
/// 2. a standard change (scheduled by policy) over a host whose maintainer script fails and a host
///    whose health check fails: the wave halts at its threshold, both hosts are rolled back to
///    1.0-1, the next wave's host is skipped, and the change fails with both reasons;
/// 3. an agent killed while its job runs: the host fails after the rollout's host timeout, its
///    rollback job (never delivered) is withdrawn, and the change fails.
#[test]
fn a_change_rolls_out_in_waves_verifies_and_rolls_back_failures() {
    use patchwarden_inventory::testing::{debian_root_with_repository, SyntheticDeb};
    let work = scratch("fleet-rollout");
    let fail_postinst = "#!/bin/sh\nif [ -e /etc/pw-fail-postinst ]; then echo 'synthetic postinst failure' >&2; exit 1; fi\nexit 0\n";
    let debs = [
        SyntheticDeb {
            name: "pw-synthetic-app",
            source: None,
            version: "1.0-1",
            postinst: None,
        },
        SyntheticDeb {
            name: "pw-synthetic-app",
            source: None,
            version: "1.0-2",
            postinst: Some(fail_postinst),
        },
        SyntheticDeb {
            name: "pw-synthetic-extra",
            source: None,
            version: "1.0-1",
            postinst: None,
        },
    ];
    // name, labels
    let hosts: [(&str, &[&str]); 6] = [
        ("stage1", &["group=staging"]),
        ("prod1", &["group=production"]),
        ("prod2", &["group=production"]),
        ("risky-postinst", &["group=risky"]),
        ("risky-health", &["group=risky", "role=fragile"]),
        ("slow", &["group=production", "role=slow"]),
    ];
    let roots_dir = roots_scratch("fleet-rollout");
    let mut roots = BTreeMap::new();
    for (name, _) in hosts {
        let Some(root) = debian_root_with_repository(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            &roots_dir.join(name),
            &debs,
        ) else {
            return;
        };
        chroot_apt_install(&root, "pw-synthetic-app=1.0-1");
        roots.insert(name, root);
    }
    // An interrupted dpkg run on the staging host: unpacked, never configured.
    let st = Command::new("chroot")
        .arg(&roots["stage1"])
        .args([
            "dpkg",
            "--unpack",
            "/srv/repo/pw-synthetic-extra_1.0-1_all.deb",
        ])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    assert_eq!(
        dpkg_state(&roots["stage1"], "pw-synthetic-extra").1,
        "install ok unpacked"
    );
    std::fs::write(roots["risky-postinst"].join("etc/pw-fail-postinst"), "").unwrap();

    let db = work.join("kb.db").display().to_string();
    let tracker = work.join("synthetic-tracker.json");
    std::fs::write(
        &tracker,
        serde_json::to_vec(&serde_json::json!({"pw-synthetic-app": {"CVE-2999-0601": {
            "description": "SYNTHETIC test record of patchwarden's rollout test: version 1.0-2 of the synthetic package fixes it",
            "scope": "local",
            "releases": {"bookworm": {"status": "resolved", "fixed_version": "1.0-2", "urgency": "high"}}
        }}}))
        .unwrap(),
    )
    .unwrap();
    ok(
        &bin()
            .args(["--db", &db, "feeds", "import"])
            .arg(&tracker)
            .output()
            .unwrap(),
        "feeds import",
    );
    // The window opened an hour ago and stays open six hours; the fragile profile's health check
    // fails (no /etc/pw-healthy); the slow profile's pre-hook outlasts the host timeout.
    let hour = (jiff::Timestamp::now().as_second().div_euclid(3600) + 23) % 24;
    let config = work.join("deploy.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[rollout]
expected_host_duration = "10m"
hosts_without_window = "never"

[[window]]
name = "daily-test-window"
timezone = "UTC"
schedule = {{ cron = "0 {hour} * * *" }}
duration = "6h"
groups = ["staging", "production", "risky"]

[[profile]]
name = "fragile"
classes = ["role=fragile"]
health_checks = [{{ command = {{ argv = ["test", "-e", "/etc/pw-healthy"] }} }}]

[[profile]]
name = "slow"
classes = ["role=slow"]
pre_hooks = [["sleep", "40"]]
"#
        ),
    )
    .unwrap();
    let state = work.join("server-state");
    let extra = [
        "--deploy-config",
        config.to_str().unwrap(),
        "--rollout-tick-secs",
        "1",
    ];
    let mut server = start_server(&db, &state, "127.0.0.1:0", &extra);
    let admin = server.admin_token.clone().unwrap();
    let mut agents = BTreeMap::new();
    for (name, labels) in hosts {
        let mut args = vec!["--uses", "1"];
        for l in labels {
            args.extend(["--label", l]);
        }
        let token = enroll_token(&db, &args);
        let dir = work.join(format!("agent-{name}"));
        ok(&enroll(&dir, &server, &token, &roots[name], name), "enroll");
        agents.insert(
            name,
            start_agent(&dir, &roots[name], &work.join(format!("agent-{name}.log"))),
        );
    }
    let ids: BTreeMap<String, i64> = wait_until("six hosts with findings", 120, || {
        let listed = query(&server, &state, &admin, &["hosts"]);
        let ready = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["findings_pending"] == false && h["packages"].as_i64() > Some(0))
            .map(|h| {
                (
                    h["hostname"].as_str().unwrap().to_owned(),
                    h["id"].as_i64().unwrap(),
                )
            })
            .collect::<BTreeMap<_, _>>();
        ((ready.len() == 6).then_some(ready), listed)
    });
    let cve_open = |server: &ServerProcess, host: i64| -> bool {
        http_get(
            server,
            &state,
            &admin,
            &format!("/v1/hosts/{host}/findings"),
        )
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["finding"]["advisory_id"] == "CVE-2999-0601")
    };
    for (name, id) in &ids {
        assert!(
            cve_open(&server, *id),
            "{name}: the synthetic finding is open on 1.0-1"
        );
    }
    let (status, created) = http_post(
        &server,
        &state,
        &admin,
        "/v1/users",
        &serde_json::json!({"name": "abe", "role": "approver"}),
    );
    assert_eq!(status, 200, "{created}");
    let approver = created["token"].as_str().unwrap().to_owned();
    let act = |server: &ServerProcess, token: &str, id: &str, action: &str| {
        http_post(
            server,
            &state,
            token,
            &format!("/v1/changes/{id}/actions"),
            &serde_json::json!({"action": action, "comment": format!("{action} by the test")}),
        )
    };
    let change_state = |server: &ServerProcess, id: &str, want: &str| {
        let doc = http_get(server, &state, &admin, &format!("/v1/changes/{id}"));
        (
            (doc["lifecycle"]["state"] == want).then(|| doc.clone()),
            doc,
        )
    };
    let package = serde_json::json!([{"name": "pw-synthetic-app", "version": "1.0-2"}]);

    // The plan of a host, from its own apt indexes: 1.0-2 closes the finding.
    let plan_of_prod1 = |format: &str| -> String {
        ok(
            &bin()
                .args(["--db", &db, "plan", "--root"])
                .arg(&roots["prod1"])
                .args(["--format", format])
                .output()
                .unwrap(),
            &format!("plan --format {format}"),
        )
    };
    let local_plan: serde_json::Value = serde_json::from_str(&plan_of_prod1("json")).unwrap();
    assert_eq!(
        local_plan["updates"],
        serde_json::json!([{"name": "pw-synthetic-app", "arch": "all", "from": "1.0-1",
            "to": "1.0-2", "closes": ["CVE-2999-0601"]}]),
        "{local_plan:#}"
    );
    let plan_args = plan_of_prod1("args");
    assert_eq!(plan_args.trim(), "--package pw-synthetic-app=1.0-2");
    // The CLI against the server (the same address after the restart below).
    let url = server.url.clone();
    let cli = |token: &str, args: &[&str]| -> Output {
        bin()
            .args(["--server", &url, "--token", token, "--ca"])
            .arg(state.join("ca.pem"))
            .args(args)
            .output()
            .unwrap()
    };

    // The same plan on the server, for a set of hosts, from what their agents reported their
    // repositories offer.
    let remote = wait_until("the server's plans from the agents' offers", 60, || {
        let out = cli(
            &admin,
            &[
                "plan",
                "--host",
                &ids["prod1"].to_string(),
                "--host",
                &ids["stage1"].to_string(),
                "--format",
                "json",
            ],
        );
        let plans: serde_json::Value = serde_json::from_str(&ok(&out, "plan --host")).unwrap();
        let ready = plans
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["offers_reported_at"].is_string());
        (ready.then(|| plans.clone()), plans)
    });
    for (plan, host) in remote.as_array().unwrap().iter().zip(["prod1", "stage1"]) {
        assert_eq!(plan["host_id"], ids[host]);
        assert_eq!(plan["updates"], local_plan["updates"], "{host}: {remote:#}");
    }

    // 1. A normal change: approval, window, staging then production, a server restart.
    let rollout_file = work.join("rollout.json");
    std::fs::write(
        &rollout_file,
        serde_json::to_vec(&serde_json::json!({
            "waves": [
                {"name": "staging", "hosts": {"group": "staging"}, "concurrency": 1},
                {"name": "production", "hosts": "rest", "concurrency": 2}
            ],
            "error_threshold": {"count": 1}, "soak_secs": 8, "host_timeout_secs": 180,
            "roll_back_failed_hosts": true
        }))
        .unwrap(),
    )
    .unwrap();
    let mut create = vec![
        "change",
        "create",
        "--title",
        "synthetic app fix",
        "--kind",
        "normal",
    ];
    let host_args: Vec<String> = ["stage1", "prod1", "prod2"]
        .iter()
        .map(|n| ids[*n].to_string())
        .collect();
    for h in &host_args {
        create.extend(["--host", h.as_str()]);
    }
    create.extend(plan_args.split_whitespace());
    create.extend(["--rollout", rollout_file.to_str().unwrap()]);
    let first = ok(&cli(&admin, &create), "change create").trim().to_owned();
    let change = http_get(&server, &state, &admin, &format!("/v1/changes/{first}"));
    assert_eq!(change["lifecycle"]["state"], "draft", "{change:#}");
    // Scope, window and the risk removed, from the hosts' findings and the configuration.
    assert!(change["risk_removed"].as_f64().unwrap() > 0.0, "{change:#}");
    for t in change["targets"].as_array().unwrap() {
        assert_eq!(t["window"], "daily-test-window", "{change:#}");
    }
    for t in change["targets"].as_array().unwrap() {
        assert_eq!(t["findings"][0]["advisory_id"], "CVE-2999-0601", "{change}");
    }
    assert_eq!(act(&server, &admin, &first, "submit").0, 200);
    let (status, own) = act(&server, &admin, &first, "approve");
    assert_eq!(status, 403, "the requester approves: {own}");
    assert_eq!(act(&server, &approver, &first, "approve").0, 200);
    assert_eq!(act(&server, &admin, &first, "schedule").0, 200);
    // The staging host finishes and the production wave soaks: the server goes down then.
    wait_until("the staging wave", 180, || {
        let doc = http_get(&server, &state, &admin, &format!("/v1/changes/{first}"));
        let staged = doc["rollout"]["hosts"][ids["stage1"].to_string()]["state"] == "succeeded";
        (staged.then_some(()), doc)
    });
    // Paused during the soak, then resumed (the CLI; an approver may not).
    refused(&cli(&approver, &["rollout", "pause", &first]), "403");
    let paused = ok(&cli(&admin, &["rollout", "pause", &first]), "rollout pause");
    assert!(paused.contains("rollout paused"), "{paused}");
    let during = http_get(&server, &state, &admin, &format!("/v1/changes/{first}"));
    assert_eq!(
        during["rollout"]["status"]["status"], "paused",
        "{during:#}"
    );
    assert_eq!(
        during["rollout"]["hosts"][ids["prod1"].to_string()]["state"],
        "pending",
        "production waits for the soak: {during:#}"
    );
    refused(&cli(&admin, &["rollout", "pause", &first]), "409");
    let resumed = ok(
        &cli(&admin, &["rollout", "resume", &first]),
        "rollout resume",
    );
    assert!(resumed.contains("rollout soaking"), "{resumed}");
    let port = server.port;
    drop(server);
    server = start_server(&db, &state, &format!("127.0.0.1:{port}"), &extra);
    let done = wait_until("the first change completed", 240, || {
        change_state(&server, &first, "completed")
    });
    for name in ["stage1", "prod1", "prod2"] {
        let id = ids[name];
        let result = done["result"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["host_id"] == id)
            .unwrap();
        assert_eq!(result["state"], "succeeded", "{name}: {done:#}");
        let v = &result["verification"];
        assert_eq!(
            v["closed"],
            serde_json::json!(["CVE-2999-0601 on pw-synthetic-app"]),
            "{name}: {done:#}"
        );
        assert_eq!(v["remaining"], serde_json::json!([]), "{name}");
        assert_eq!(v["installed"][0]["version"], "1.0-2", "{name}");
        assert_eq!(dpkg_state(&roots[name], "pw-synthetic-app").0, "1.0-2");
        assert!(!cve_open(&server, id), "{name}: the finding is closed");
    }
    // Staging finished before production started; the interrupted run was recovered first.
    let job_of = |server: &ServerProcess, doc: &serde_json::Value, host: i64, n: usize| {
        let job = doc["runs"][host.to_string()]["jobs"][n]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        http_get(server, &state, &admin, &format!("/v1/jobs/{job}"))
    };
    let staged = job_of(&server, &done, ids["stage1"], 0);
    assert_eq!(staged["report"]["recovered"], true, "{staged:#}");
    assert_eq!(
        dpkg_state(&roots["stage1"], "pw-synthetic-extra").1,
        "install ok installed"
    );
    for name in ["prod1", "prod2"] {
        let job = job_of(&server, &done, ids[name], 0);
        assert!(
            job["created_at"].as_str() >= staged["finished_at"].as_str(),
            "{name} started before staging finished: {job:#} {staged:#}"
        );
    }
    let trail: Vec<(String, String)> = done["lifecycle"]["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let actor = e["actor"]["User"]["name"]
                .as_str()
                .or(e["actor"]["System"]["component"].as_str())
                .unwrap()
                .to_owned();
            (actor, e["to"].as_str().unwrap().to_owned())
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("admin", "submitted"),
        ("abe", "approved"),
        ("admin", "scheduled"),
        ("rollout", "running"),
        ("rollout", "completed"),
    ]
    .iter()
    .map(|(a, s)| (a.to_string(), s.to_string()))
    .collect();
    assert_eq!(trail, expected, "{done:#}");

    // 2. A standard change over two failing hosts: halt at the threshold, roll back, fail.
    let (status, change) = http_post(
        &server,
        &state,
        &admin,
        "/v1/changes",
        &serde_json::json!({
            "title": "synthetic app fix, risky hosts", "kind": "standard", "packages": package,
            "hosts": [ids["risky-postinst"], ids["risky-health"], ids["prod1"]],
            "rollout": {
                "waves": [
                    {"name": "risky", "hosts": {"group": "risky"}, "concurrency": 2},
                    {"name": "the rest", "hosts": "rest", "concurrency": 1}
                ],
                "error_threshold": {"count": 2}, "soak_secs": 0, "host_timeout_secs": 180,
                "roll_back_failed_hosts": true
            }
        }),
    );
    assert_eq!(status, 201, "{change}");
    let second = change["id"].as_str().unwrap().to_owned();
    let (status, submitted) = act(&server, &admin, &second, "submit");
    assert_eq!(status, 200, "{submitted}");
    assert_eq!(submitted["lifecycle"]["state"], "approved", "by policy");
    let failed = wait_until("the second change failed", 240, || {
        change_state(&server, &second, "failed")
    });
    assert_eq!(
        failed["rollout"]["status"]["status"], "halted",
        "{failed:#}"
    );
    let host_state = |doc: &serde_json::Value, name: &str| {
        doc["rollout"]["hosts"][ids[name].to_string()].clone()
    };
    let postinst = host_state(&failed, "risky-postinst");
    assert_eq!(postinst["state"], "rolled_back", "{failed:#}");
    assert!(
        postinst["reason"]
            .as_str()
            .unwrap()
            .contains("packages failed"),
        "{postinst}"
    );
    let health = host_state(&failed, "risky-health");
    assert_eq!(health["state"], "rolled_back", "{failed:#}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("health_check failed"),
        "{health}"
    );
    assert_eq!(host_state(&failed, "prod1")["state"], "skipped");
    for name in ["risky-postinst", "risky-health"] {
        assert_eq!(
            dpkg_state(&roots[name], "pw-synthetic-app"),
            ("1.0-1".to_owned(), "install ok installed".to_owned()),
            "{name} is back on 1.0-1"
        );
        // The agent re-inventories after its rollback job and the server recomputes the host's
        // findings in the background: the finding comes back once that inventory is evaluated
        // (the change can end first).
        wait_until(&format!("{name}: the finding is open again"), 60, || {
            let open = cve_open(&server, ids[name]);
            (open.then_some(()), serde_json::json!({ "open": open }))
        });
    }
    let last = failed["lifecycle"]["audit"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let comment = last["comment"].as_str().unwrap();
    assert!(
        comment.contains("halted in wave risky")
            && comment.contains("packages failed")
            && comment.contains("health_check failed"),
        "{last}"
    );

    // 3. An agent killed while its job runs fails its host after the timeout.
    let (status, change) = http_post(
        &server,
        &state,
        &admin,
        "/v1/changes",
        &serde_json::json!({
            "title": "synthetic app fix, slow host", "kind": "standard", "packages": package,
            "hosts": [ids["slow"]],
            "rollout": {
                "waves": [{"name": "all", "hosts": "rest", "concurrency": 1}],
                "error_threshold": {"count": 1}, "soak_secs": 0, "host_timeout_secs": 8,
                "roll_back_failed_hosts": true
            }
        }),
    );
    assert_eq!(status, 201, "{change}");
    let third = change["id"].as_str().unwrap().to_owned();
    assert_eq!(act(&server, &admin, &third, "submit").0, 200);
    let running = wait_until("the slow host's job delivered", 60, || {
        let doc = http_get(&server, &state, &admin, &format!("/v1/changes/{third}"));
        let job = doc["runs"][ids["slow"].to_string()]["jobs"][0]["id"]
            .as_str()
            .map(str::to_owned);
        let delivered = job.and_then(|j| {
            let row = http_get(&server, &state, &admin, &format!("/v1/jobs/{j}"));
            (row["state"] == "delivered").then_some(j)
        });
        (delivered, doc)
    });
    drop(agents.remove("slow"));
    let gone = wait_until("the third change failed", 90, || {
        change_state(&server, &third, "failed")
    });
    let slow = host_state(&gone, "slow");
    assert_eq!(slow["state"], "rollback_failed", "{gone:#}");
    let reason = slow["reason"].as_str().unwrap();
    assert!(
        reason.contains("no report within 8 s") && reason.contains("rollback not confirmed"),
        "{slow}"
    );
    let rollback = job_of(&server, &gone, ids["slow"], 1);
    assert_eq!(rollback["job"]["operation"], "rollback");
    assert_eq!(rollback["state"], "cancelled", "withdrawn: {rollback:#}");
    assert_eq!(
        http_get(&server, &state, &admin, &format!("/v1/jobs/{running}"))["state"],
        "delivered",
        "the killed agent never reported"
    );
    // Every change is listed, newest first.
    let listed = http_get(&server, &state, &admin, "/v1/changes");
    let states: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["failed", "failed", "completed"], "{listed:#}");
    let shown = ok(&cli(&admin, &["change", "show", &first]), "change show");
    assert!(
        shown.contains("normal change, completed")
            && shown.contains("pw-synthetic-app=1.0-2\tCVE-2999-0601 on pw-synthetic-app"),
        "{shown}"
    );
    drop(agents);
    let _ = std::fs::remove_dir_all(&roots_dir);
}

/// Builds noarch RPMs `name-version` (empty, synthetic) into `dir/build`; their paths.
fn synthetic_rpms(dir: &Path, packages: &[(&str, &str)]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (name, full) in packages {
        let (version, release) = full.rsplit_once('-').unwrap();
        let spec = dir.join(format!("{name}-{full}.spec"));
        std::fs::write(
            &spec,
            format!(
                "Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: synthetic test package (not a real package)\nLicense: MIT\nBuildArch: noarch\n%description\nsynthetic\n%files\n"
            ),
        )
        .unwrap();
        let st = Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", dir.join("build").display()))
            .arg(&spec)
            .output()
            .unwrap();
        assert!(st.status.success(), "rpmbuild {name}: {st:?}");
        out.push(dir.join(format!("build/RPMS/noarch/{name}-{full}.noarch.rpm")));
    }
    out
}

/// One SYNTHETIC updateinfo entry (ids PW-SYNTHETIC-*, CVE-2999-*; the text says so).
fn synthetic_update(
    id: &str,
    kind: &str,
    severity: &str,
    cve: Option<&str>,
    package: &str,
    full: &str,
) -> String {
    let (version, release) = full.rsplit_once('-').unwrap();
    let reference = cve.map(|c| format!(r#"<references><reference href="https://patchwarden.invalid/{c}" id="{c}" type="cve" title="{c}"/></references>"#)).unwrap_or_default();
    format!(
        r#"<update from="tests@patchwarden.invalid" status="final" type="{kind}" version="1"><id>{id}</id><title>SYNTHETIC {kind} update of {package}</title><severity>{severity}</severity><issued date="2026-11-01 00:00:00"/>{reference}<description>SYNTHETIC test advisory of patchwarden's tests, not a real advisory</description><pkglist><collection short="pw"><name>pw</name><package name="{package}" version="{version}" release="{release}" epoch="0" arch="noarch"><filename>{package}-{full}.noarch.rpm</filename></package></collection></pkglist></update>"#
    )
}

/// The RPM package manager an end-to-end test drives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RpmManager {
    Dnf,
    Zypper,
}

/// RPM end to end: a root with a real rpmdb (rpmbuild + `rpm --justdb`), a local repository
/// (createrepo_c) with a SYNTHETIC `updateinfo.xml` added by modifyrepo_c, real dnf (an AlmaLinux
/// root) or real zypper (an openSUSE root) on it. The plan under a security-only baseline agrees
/// with `dnf updateinfo list --security` / `zypper list-patches --category security` on the same
/// root and repository; a standard change from that plan is applied by the agent with the same
/// manager (dnf with `tsflags=justdb`; zypper installs the empty packages for real), verified, then
/// the whole change is rolled back to the recorded versions.
#[test]
fn an_rpm_plan_agrees_with_dnf_and_dnf_applies_and_rolls_back_the_change() {
    rpm_change_end_to_end(RpmManager::Dnf);
}

#[test]
fn an_rpm_plan_agrees_with_zypper_and_zypper_applies_and_rolls_back_the_change() {
    rpm_change_end_to_end(RpmManager::Zypper);
}

fn rpm_change_end_to_end(manager: RpmManager) {
    let tool = match manager {
        RpmManager::Dnf => "dnf",
        RpmManager::Zypper => "zypper",
    };
    let tools = ["rpmbuild", "createrepo_c", "modifyrepo_c", "rpm", tool];
    if !tools.iter().all(|t| tool_available(t)) {
        assert!(
            std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() != Ok("1"),
            "{tools:?} are required"
        );
        eprintln!("SKIPPED: {tools:?} needed");
        return;
    }
    let work = scratch(&format!("fleet-rpm-{tool}"));
    let v1 = [
        ("pw-synthetic-rpmapp", "1.0-1"),
        ("pw-synthetic-rpmlib", "1.0-1"),
        ("pw-synthetic-rpmtool", "1.0-1"),
    ];
    let installed = synthetic_rpms(&work, &v1);
    synthetic_rpms(
        &work,
        &[
            ("pw-synthetic-rpmapp", "1.0-2"),
            ("pw-synthetic-rpmlib", "1.0-2"),
            ("pw-synthetic-rpmtool", "1.0-2"),
            ("pw-synthetic-rpmtool", "1.0-3"),
        ],
    );
    let repo = work.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for f in std::fs::read_dir(work.join("build/RPMS/noarch")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, repo.join(f.file_name().unwrap())).unwrap();
    }
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(Command::new("createrepo_c").arg("-q").arg(&repo));
    let updateinfo = work.join("updateinfo.xml");
    std::fs::write(
        &updateinfo,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>{}{}{}</updates>\n",
            synthetic_update(
                "PW-SYNTHETIC-2026:0001",
                "security",
                "Important",
                Some("CVE-2999-0701"),
                "pw-synthetic-rpmapp",
                "1.0-2"
            ),
            synthetic_update(
                "PW-SYNTHETIC-2026:0002",
                "bugfix",
                "None",
                None,
                "pw-synthetic-rpmlib",
                "1.0-2"
            ),
            synthetic_update(
                "PW-SYNTHETIC-2026:0003",
                "security",
                "Low",
                Some("CVE-2999-0702"),
                "pw-synthetic-rpmtool",
                "1.0-2"
            ),
        ),
    )
    .unwrap();
    run(Command::new("modifyrepo_c")
        .arg("--mdtype=updateinfo")
        .arg(&updateinfo)
        .arg(repo.join("repodata")));
    // The root: a real rpmdb at /var/lib/rpm (Debian's rpm defaults elsewhere: a HOME with
    // .rpmmacros tells dnf's librpm), the repository configured inside it.
    let root = work.join("root");
    let rpm = |args: &[&str]| -> String {
        run(Command::new("rpm")
            .arg("--root")
            .arg(&root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args))
    };
    std::fs::create_dir_all(&root).unwrap();
    rpm(&["--initdb"]);
    let mut install = Command::new("rpm");
    install
        .arg("--root")
        .arg(&root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-i",
            "--justdb",
            "--nodeps",
            "--noscripts",
            "--nosignature",
        ])
        .args(&installed);
    run(&mut install);
    let home = work.join("home");
    write(&home.join(".rpmmacros"), "%_dbpath /var/lib/rpm\n");
    let manage = |args: &[&str]| -> String {
        let mut cmd = Command::new(tool);
        match manager {
            RpmManager::Dnf => cmd
                .arg(format!("--installroot={}", root.display()))
                .args(["--releasever=9", "-q"]),
            RpmManager::Zypper => cmd
                .arg(format!("--root={}", root.display()))
                .arg("--non-interactive"),
        };
        run(cmd.args(args).env("HOME", &home))
    };
    match manager {
        RpmManager::Dnf => {
            write(&root.join("etc/os-release"), "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME=\"AlmaLinux 9.4 (synthetic test root)\"\n");
            write(
                &root.join("etc/yum.repos.d/local.repo"),
                &format!(
                    "[local]\nname=local synthetic repository\nbaseurl=file://{}\ngpgcheck=0\n",
                    repo.display()
                ),
            );
        }
        RpmManager::Zypper => {
            write(&root.join("etc/os-release"), "NAME=\"openSUSE Leap\"\nID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\nVERSION_ID=\"15.5\"\nPRETTY_NAME=\"openSUSE Leap 15.5 (synthetic test root)\"\n");
            manage(&[
                "addrepo",
                "-G",
                &format!("file://{}", repo.display()),
                "local",
            ]);
            manage(&["refresh"]);
        }
    }
    let versions = || -> Vec<String> {
        let mut v: Vec<String> = rpm(&["-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\\n"])
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    // The oracle: the manager's own list of applicable security advisories (dnf also fills its
    // cache here, which the plan reads as apt's lists are read; zypper's `refresh` did).
    let (listed, theirs): (String, BTreeSet<String>) = match manager {
        RpmManager::Dnf => {
            let listed = manage(&["updateinfo", "list", "--security"]);
            let ids = listed
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() == 3).then(|| f[0].to_owned())
                })
                .collect();
            (listed, ids)
        }
        RpmManager::Zypper => {
            let listed = manage(&["list-patches", "--category", "security"]);
            // `repository | name | category | severity | interactive | status | summary`
            let ids = listed
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split('|').map(str::trim).collect();
                    (f.len() >= 6 && f[5] == "needed").then(|| f[1].to_owned())
                })
                .collect();
            (listed, ids)
        }
    };
    assert_eq!(theirs.len(), 2, "{listed}");
    let db = work.join("kb.db").display().to_string();
    let baseline = work.join("security.toml");
    write(
        &baseline,
        "name = \"security only\"\nclassifications = [\"security\"]\n",
    );
    let plan_cmd = |format: &str| -> String {
        ok(
            &bin()
                .args(["--db", &db, "plan", "--root"])
                .arg(&root)
                .arg("--baseline")
                .arg(&baseline)
                .args(["--today", "2026-12-02", "--format", format])
                .output()
                .unwrap(),
            "plan",
        )
    };
    let plan: serde_json::Value = serde_json::from_str(&plan_cmd("json")).unwrap();
    let ours: BTreeSet<(String, String)> = plan["updates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| {
            let nevra = format!(
                "{}-{}.{}",
                u["name"].as_str().unwrap(),
                u["to"].as_str().unwrap(),
                u["arch"].as_str().unwrap()
            );
            u["closes"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |a| (a.as_str().unwrap().to_owned(), nevra.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    // The same advisories; the plan installs the repository's newest (1.0-3 of the tool, beyond
    // its advisory's 1.0-2).
    let advisories: BTreeSet<String> = ours.iter().map(|(a, _)| a.clone()).collect();
    assert_eq!(advisories, theirs, "ours {ours:?}, {tool}: {listed}");
    assert!(
        ours.contains(&(
            "PW-SYNTHETIC-2026:0003".into(),
            "pw-synthetic-rpmtool-1.0-3.noarch".into()
        )),
        "{ours:?}"
    );
    assert_eq!(plan["held"][0][0], "PW-SYNTHETIC-2026:0002", "{plan:#}");

    // The change, by an agent running the same manager on the root.
    let state = work.join("server-state");
    let server = start_server(&db, &state, "127.0.0.1:0", &["--rollout-tick-secs", "1"]);
    let admin = server.admin_token.clone().unwrap();
    let agent_dir = work.join("agent");
    ok(
        &enroll(
            &agent_dir,
            &server,
            &enroll_token(&db, &["--uses", "1"]),
            &root,
            &format!("{tool}-synthetic"),
        ),
        "enroll",
    );
    let log = std::fs::File::create(work.join("agent.log")).unwrap();
    let mut agent = Command::new(agent_bin());
    agent
        .arg("--state-dir")
        .arg(&agent_dir)
        .args(["run", "--root"])
        .arg(&root)
        .env("HOME", &home)
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if manager == RpmManager::Dnf {
        agent.args([
            "--dnf-arg=--releasever=9",
            "--dnf-arg=--setopt=tsflags=justdb,noscripts",
        ]);
    }
    let _agent = AgentProcess(agent.spawn().unwrap());
    let host: i64 = wait_until("the RPM host's inventory", 60, || {
        let hosts = query(&server, &state, &admin, &["hosts"]);
        let id = hosts[0]["id"]
            .as_i64()
            .filter(|_| hosts[0]["packages"].as_i64() == Some(3));
        (id, hosts)
    });
    let mut create = vec!["--host".to_owned(), host.to_string()];
    create.extend(plan_cmd("args").split_whitespace().map(str::to_owned));
    let url = server.url.clone();
    let cli = |args: &[&str]| -> String {
        ok(
            &bin()
                .args(["--server", &url, "--token", &admin, "--ca"])
                .arg(state.join("ca.pem"))
                .args(args)
                .output()
                .unwrap(),
            &format!("{args:?}"),
        )
    };
    // The server plans the host from what its agent reported (the dnf or zypper cache): the same
    // advisories as the manager's own list.
    let today = ["--today", "2026-12-02", "--format", "json"];
    let remote: serde_json::Value = wait_until("the server's plan", 60, || {
        let mut args = vec!["plan", "--host"];
        let id = host.to_string();
        args.push(&id);
        args.extend(["--baseline", baseline.to_str().unwrap()]);
        args.extend(today);
        let plans: serde_json::Value = serde_json::from_str(&cli(&args)).unwrap();
        let ready = plans[0]["offers_reported_at"].is_string();
        (ready.then(|| plans.clone()), plans)
    });
    let planned: BTreeSet<String> = remote[0]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["closes"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(planned, theirs, "{remote:#}");
    let mut args = vec![
        "change",
        "create",
        "--title",
        "synthetic RPM security updates",
        "--kind",
        "standard",
    ];
    args.extend(create.iter().map(String::as_str));
    let id = cli(&args).trim().to_owned();
    assert!(cli(&["change", "act", "submit", &id]).contains("approved"));
    let done = wait_until("the RPM change completed", 120, || {
        let doc = http_get(&server, &state, &admin, &format!("/v1/changes/{id}"));
        (
            (doc["lifecycle"]["state"] == "completed").then(|| doc.clone()),
            doc,
        )
    });
    assert_eq!(
        versions(),
        [
            "pw-synthetic-rpmapp-1.0-2",
            "pw-synthetic-rpmlib-1.0-1",
            "pw-synthetic-rpmtool-1.0-3"
        ],
        "{done:#}"
    );
    let job = done["runs"][host.to_string()]["jobs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = http_get(&server, &state, &admin, &format!("/v1/jobs/{job}"));
    let packages_step = job["report"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "packages")
        .unwrap()
        .clone();
    let command: Vec<&str> = packages_step["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(command.contains(&tool), "{job:#}");
    // The whole change rolled back: the manager returns the host to the recorded versions.
    assert!(cli(&["change", "act", "roll-back", &id, "--comment", "test"]).contains("rolled_back"));
    let back = wait_until("the RPM host rolled back", 120, || {
        let doc = http_get(&server, &state, &admin, &format!("/v1/changes/{id}"));
        let state = doc["rollout"]["hosts"][host.to_string()]["state"].clone();
        ((state == "rolled_back").then(|| doc.clone()), doc)
    });
    assert_eq!(
        versions(),
        [
            "pw-synthetic-rpmapp-1.0-1",
            "pw-synthetic-rpmlib-1.0-1",
            "pw-synthetic-rpmtool-1.0-1"
        ],
        "{back:#}"
    );
    assert_eq!(back["result"][0]["jobs"][1]["operation"], "rollback");
}

/// A job whose profile says `reboot = "always"`: the agent runs the packages, starts the reboot
/// (here the test host's reboot command, which marks the root and returns) and stops; started
/// again after the "reboot", it runs the health checks — which pass only after it — and reports;
/// the change completes. The job stays delivered, and the change running, across the reboot.
#[test]
fn health_checks_run_after_the_reboot_a_job_asks_for() {
    let work = scratch("fleet-reboot");
    let roots_dir = roots_scratch("fleet-reboot");
    let Some(root) = debian_root_with(
        &roots_dir.join("host"),
        "pw-synthetic-kernelish",
        &["1.0-1", "1.0-2"],
    ) else {
        return;
    };
    let config = work.join("deploy.toml");
    write(
        &config,
        "[[profile]]\nname = \"rebooting\"\nclasses = [\"role=rebooting\"]\nreboot = \"always\"\nhealth_checks = [{ command = { argv = [\"test\", \"-e\", \"/run/pw-rebooted\"] } }]\n",
    );
    let reboot = work.join("reboot.sh");
    write(
        &reboot,
        &format!("#!/bin/sh\ntouch {}/run/pw-rebooted\n", root.display()),
    );
    std::fs::set_permissions(&reboot, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let db = work.join("kb.db").display().to_string();
    let state = work.join("server-state");
    let server = start_server(
        &db,
        &state,
        "127.0.0.1:0",
        &[
            "--deploy-config",
            config.to_str().unwrap(),
            "--rollout-tick-secs",
            "1",
        ],
    );
    let admin = server.admin_token.clone().unwrap();
    let token = enroll_token(&db, &["--uses", "1", "--label", "role=rebooting"]);
    let agent_dir = work.join("agent");
    ok(
        &enroll(&agent_dir, &server, &token, &root, "rebooting-host"),
        "enroll",
    );
    let start = |n: usize| {
        let log = std::fs::File::create(work.join(format!("agent-{n}.log"))).unwrap();
        Command::new(agent_bin())
            .arg("--state-dir")
            .arg(&agent_dir)
            .args(["run", "--root"])
            .arg(&root)
            .arg("--reboot-command")
            .arg(&reboot)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut agent = AgentProcess(start(1));
    let host: i64 = wait_until("the host's inventory", 60, || {
        let hosts = query(&server, &state, &admin, &["hosts"]);
        (
            hosts[0]["id"]
                .as_i64()
                .filter(|_| hosts[0]["packages"].as_i64() > Some(0)),
            hosts,
        )
    });
    let (status, change) = http_post(
        &server,
        &state,
        &admin,
        "/v1/changes",
        &serde_json::json!({"title": "needs a reboot", "kind": "standard", "hosts": [host],
            "packages": [{"name": "pw-synthetic-kernelish", "version": "1.0-2"}]}),
    );
    assert_eq!(status, 201, "{change}");
    let id = change["id"].as_str().unwrap().to_owned();
    let (status, _) = http_post(
        &server,
        &state,
        &admin,
        &format!("/v1/changes/{id}/actions"),
        &serde_json::json!({"action": "submit"}),
    );
    assert_eq!(status, 200);
    // The agent stops once it has started the reboot.
    let exit = wait_until("the agent stopping for the reboot", 120, || {
        let done = agent.0.try_wait().unwrap();
        (done, serde_json::Value::Null)
    });
    assert!(exit.success(), "{exit:?}");
    assert!(root.join("run/pw-rebooted").exists());
    let during = http_get(&server, &state, &admin, &format!("/v1/changes/{id}"));
    assert_eq!(during["lifecycle"]["state"], "running", "{during:#}");
    let job = during["runs"][host.to_string()]["jobs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        http_get(&server, &state, &admin, &format!("/v1/jobs/{job}"))["state"],
        "delivered"
    );
    // "After the reboot": the agent starts again, checks health, reports.
    agent = AgentProcess(start(2));
    let done = wait_until("the change completed", 120, || {
        let doc = http_get(&server, &state, &admin, &format!("/v1/changes/{id}"));
        (
            (doc["lifecycle"]["state"] == "completed").then(|| doc.clone()),
            doc,
        )
    });
    let report = http_get(&server, &state, &admin, &format!("/v1/jobs/{job}"));
    let stages: Vec<&str> = report["report"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages[stages.len() - 2..],
        ["reboot", "health_check"],
        "{report:#}"
    );
    assert_eq!(
        report["report"]["outcome"]["outcome"], "succeeded",
        "{done:#}"
    );
    assert_eq!(dpkg_state(&root, "pw-synthetic-kernelish").0, "1.0-2");
    drop(agent);
    let _ = std::fs::remove_dir_all(&roots_dir);
}
