//! Shared helpers of the fleet end-to-end tests (real processes: `patchwarden server`, real
//! agents, real roots): starting servers and agents, enrolling, querying over TLS, waiting for
//! what the fleet converges to, and the test roots.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::*;

/// The agent binary: built by cargo beside the test binaries' target directory (another package's
/// binary has no `CARGO_BIN_EXE_`); built once per test process.
pub fn agent_bin() -> PathBuf {
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
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    pub port: u16,
    pub fingerprint: String,
    pub admin_token: Option<String>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server(db: &str, state: &Path, listen: &str, extra: &[&str]) -> ServerProcess {
    // Warnings and errors only (a line per request would drown the test output);
    // PATCHWARDEN_TEST_SERVER_LOG sets another RUST_LOG filter.
    let filter = std::env::var("PATCHWARDEN_TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into());
    start_server_logging(db, state, listen, extra, &filter, Stdio::inherit())
}

/// [`start_server`] with its log filter (`RUST_LOG`) and its standard error given.
pub fn start_server_logging(
    db: &str,
    state: &Path,
    listen: &str,
    extra: &[&str],
    filter: &str,
    stderr: Stdio,
) -> ServerProcess {
    let mut child = bin()
        .args(["--db", db, "server", "--listen", listen, "--state-dir"])
        .arg(state)
        .args(["--sync-interval-secs", "0", "--checkin-interval-secs", "1"])
        .args(["--knowledge-poll-secs", "1"])
        .args(extra)
        .env("RUST_LOG", filter)
        .stdout(Stdio::piped())
        .stderr(stderr)
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

pub fn agent(state: &Path, args: &[&str]) -> Output {
    Command::new(agent_bin())
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run patchwarden-agent")
}

pub fn enroll(
    state: &Path,
    server: &ServerProcess,
    token: &str,
    root: &Path,
    name: &str,
) -> Output {
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

pub fn ok(out: &Output, what: &str) -> String {
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
pub fn refused(out: &Output, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(says),
        "expected a refusal saying {says:?}: {out:?}"
    );
}

pub fn enroll_token(db: &str, args: &[&str]) -> String {
    let out = bin()
        .args(["--db", db, "enroll-token", "create"])
        .args(args)
        .output()
        .unwrap();
    ok(&out, "enroll-token create").trim().to_owned()
}

/// `patchwarden --server … <args> --format json` as the given user.
pub fn query(
    server: &ServerProcess,
    state: &Path,
    token: &str,
    args: &[&str],
) -> serde_json::Value {
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
pub fn wait_for_findings(server: &ServerProcess, state: &Path, token: &str) {
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
pub fn triples(findings: &serde_json::Value) -> BTreeSet<(String, String, String)> {
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

pub fn scan_triples(db: &str, root: &Path) -> BTreeSet<(String, String, String)> {
    triples(&scan_report(db, root)["findings"])
}

/// A findings list as documents with what depends on the moment read left out (first sighting,
/// due dates, overdue, the data's age), for comparing a server's findings with a scan's.
pub fn comparable(findings: &serde_json::Value) -> Vec<patchwarden_model::FindingDoc> {
    let mut docs: Vec<patchwarden_model::FindingDoc> =
        serde_json::from_value(findings.clone()).expect("findings parse as FindingDoc");
    for d in &mut docs {
        d.first_seen = None;
        d.due.clear();
        d.overdue = false;
        if let Some(e) = &mut d.evidence {
            e.data_age_days = None;
            e.stale = false;
        }
    }
    docs
}

/// `scan --no-history --format json --root ROOT` on the store.
pub fn scan_report(db: &str, root: &Path) -> serde_json::Value {
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
    serde_json::from_str(&ok(&out, "scan")).unwrap()
}

/// The Alpine apk sample as a root of its own.
pub fn alpine_root(work: &Path) -> PathBuf {
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
pub fn load_knowledge(db: &str) {
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
pub fn roots(work: &Path) -> Option<Vec<(&'static str, PathBuf)>> {
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

/// The value of an unlabelled counter in a Prometheus exposition (0 when absent).
pub fn metric(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn client(state: &Path) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(state.join("ca.pem")).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap()
}

pub fn http_get(
    server: &ServerProcess,
    state: &Path,
    token: &str,
    path: &str,
) -> serde_json::Value {
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

pub fn http_text(server: &ServerProcess, state: &Path, path: &str) -> String {
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

/// `apt-get install SPEC` inside a test root (non-interactive), which must succeed.
pub fn chroot_apt_install(root: &Path, spec: &str) {
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
pub fn debian_root_with(
    dest: &Path,
    name: &'static str,
    versions: &[&'static str],
) -> Option<PathBuf> {
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
pub fn http_post(
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

/// Polls `probe` every 200 ms until it answers, or panics after `secs` naming `what` and the last
/// value seen.
pub fn wait_until<T>(
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
pub fn dpkg_state(root: &Path, package: &str) -> (String, String) {
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
pub struct AgentProcess(pub Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_agent(state: &Path, root: &Path, log: &Path) -> AgentProcess {
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
