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
//!   them.
mod fleet;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use fleet::*;
use support::*;

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
        // Field by field, in the same order (what depends on the moment read aside).
        assert_eq!(
            comparable(&view["findings"]),
            comparable(&scan_report(db, root)["findings"]),
            "{name}"
        );
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
    // Paged: the same rows, a page at a time.
    let all = affected.as_array().unwrap();
    let mut paged = Vec::new();
    for page in 0..=all.len() {
        let offset = page.to_string();
        let rows = query(
            first,
            state,
            &admin,
            &["affected", &cve, "--offset", &offset, "--limit", "1"],
        );
        paged.extend(rows.as_array().unwrap().iter().cloned());
    }
    assert_eq!(&paged, all);

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

    // A knowledge-base change re-evaluates only the hosts whose verdicts it changes.
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
    let summed = |name: &str| -> u64 {
        servers
            .iter()
            .map(|s| metric(&http_text(s, state, "/metrics"), name))
            .sum()
    };
    let before_change = findings_at();
    // Times have a resolution of one second: a recomputation from now on shows a later one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // First, Alpine v3.15 advisories (real, imported by another process while the servers run):
    // they name zlib, which the Alpine host holds — but it runs 3.11, so none of its verdicts
    // change (marking by package name would have recomputed it).
    let out = bin()
        .args(["--db", db, "feeds", "import"])
        .arg(fixtures().join("alpine-secdb/vunnel-v3.15-main-truncated.yaml"))
        .output()
        .unwrap();
    ok(&out, "feeds import while the servers run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while summed("patchwarden_knowledge_changes_total") < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the change was not applied"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(
        summed("patchwarden_hosts_marked_by_knowledge_changes_total"),
        0
    );
    assert_eq!(findings_at(), before_change);
    // Then one AlmaLinux advisory the AlmaLinux host has findings of, its fixes moved below
    // every installed version (DERIVED from the real OSV record by this test): only that host's
    // verdicts change.
    let alma_id = by_name("alma-host")["id"].as_i64().unwrap();
    let view = query(first, state, &admin, &["host", &alma_id.to_string()]);
    let advisory = view["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["advisory_id"].as_str())
        .find(|id| id.starts_with("ALSA-"))
        .unwrap_or_else(|| panic!("an AlmaLinux advisory among {view}"))
        .to_owned();
    let file_name = format!("{}.json", advisory.replace(':', "_"));
    let mut record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("osv/almalinux9").join(&file_name)).unwrap(),
    )
    .unwrap();
    for affected in record["affected"].as_array_mut().unwrap() {
        for range in affected["ranges"].as_array_mut().unwrap() {
            for event in range["events"].as_array_mut().unwrap() {
                if event.get("fixed").is_some() {
                    event["fixed"] = "0.1-1.el9".into();
                }
            }
        }
    }
    let derived_dir = work.join("osv-derived");
    std::fs::create_dir_all(&derived_dir).unwrap();
    std::fs::write(derived_dir.join(&file_name), record.to_string()).unwrap();
    let out = bin()
        .args(["--db", db, "feeds", "import"])
        .arg(derived_dir.join(&file_name))
        .output()
        .unwrap();
    ok(&out, "feeds import while the servers run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while findings_at()["alma-host"] == before_change["alma-host"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the AlmaLinux host was not re-evaluated"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    wait_for_findings(first, state, &admin);
    let after_change = findings_at();
    for other in ["alpine-host", "debian-host"] {
        assert_eq!(
            after_change[other], before_change[other],
            "{other} was re-evaluated"
        );
    }
    assert_eq!(
        summed("patchwarden_hosts_marked_by_knowledge_changes_total"),
        1,
        "hosts marked across the servers"
    );
    let after = query(first, state, &admin, &["host", &alma_id.to_string()]);
    assert!(
        after["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["advisory_id"] != advisory.as_str()),
        "{advisory}'s findings closed"
    );
    assert_eq!(triples(&after["findings"]), scan_triples(db, alma_root));

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

#[test]
fn fleet_end_to_end_on_sqlite() {
    let work = scratch("fleet-sqlite");
    let db = work.join("kb.db").display().to_string();
    load_knowledge(&db);
    let state = work.join("server-state");
    let server = start_server(&db, &state, "127.0.0.1:0", &[]);
    lifecycle(&db, &work, &[&server], &state);
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
