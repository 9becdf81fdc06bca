//! A rollout end to end on six Debian roots with real apt: plan, approve, waves inside windows,
//! soak (paused, resumed, the server restarted), verification; failing hosts halted at the
//! threshold and rolled back; a killed agent timed out and its job withdrawn.
mod fleet;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use fleet::*;
use support::*;

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
    // The approver is made on the server's machine (`patchwarden user create` on the store), not
    // by the admin who requests the changes below: an approver the requester created could not
    // approve them.
    let approver = ok(
        &bin()
            .args(["--db", &db, "user", "create", "abe", "--role", "approver"])
            .output()
            .unwrap(),
        "user create",
    )
    .trim()
    .to_owned();
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

    // The audit log holds the whole lifecycle of the first change, in order: created by the
    // operator, submitted and approved by people, its jobs queued by the rollout and reported by
    // the hosts, completed by the rollout; the enrollments and the imported feeds before.
    let mut entries: Vec<serde_json::Value> = Vec::new();
    let mut after = 0;
    loop {
        let page = http_get(
            &server,
            &state,
            &admin,
            &format!("/v1/audit?after={after}&limit=50"),
        );
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=entries.len() as i64).collect::<Vec<_>>());
    let enrolled = entries
        .iter()
        .filter(|e| e["action"] == "host_enrolled")
        .count();
    assert_eq!(enrolled, hosts.len());
    assert!(entries.iter().any(|e| e["action"] == "feed_imported"));
    let first_subject = format!("change:{first}");
    let lifecycle: Vec<String> = entries
        .iter()
        .filter(|e| {
            e["subject"] == first_subject.as_str()
                || (e["action"] == "job_queued" && e["detail"]["change"] == first.as_str())
        })
        .map(|e| {
            let detail = &e["detail"];
            let what = detail["action"]
                .as_str()
                .or(detail["state"].as_str())
                .unwrap_or("");
            format!(
                "{} {} {}",
                e["actor"]["kind"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                what
            )
        })
        .collect();
    assert_eq!(
        lifecycle.first().map(String::as_str),
        Some("user change_created draft"),
        "{lifecycle:#?}"
    );
    assert!(
        lifecycle.contains(&"user change_transition submit".to_owned()),
        "{lifecycle:#?}"
    );
    assert!(
        lifecycle.contains(&"user change_transition approve".to_owned()),
        "{lifecycle:#?}"
    );
    assert!(
        lifecycle.iter().any(|l| l.starts_with("system job_queued")),
        "{lifecycle:#?}"
    );
    assert_eq!(
        lifecycle.last().map(String::as_str),
        Some("system change_transition completed"),
        "{lifecycle:#?}"
    );
    assert!(entries
        .iter()
        .any(|e| e["action"] == "job_reported" && e["actor"]["kind"] == "host"));
    drop(server);

    // `audit verify` with the server's key: intact, and signed checkpoints exist.
    let verify = || {
        bin()
            .args(["--db", &db, "audit", "verify", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap()
    };
    let out = verify();
    let text = ok(&out, "audit verify");
    assert!(
        text.contains("audit log intact") && text.contains("signed through entry"),
        "{text}"
    );
    // Altered directly in the SQLite file (its guard dropped first): named at its entry.
    let tamper = |sql: &str| {
        let st = Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
                &db,
                sql,
            ])
            .status()
            .unwrap();
        assert!(st.success(), "{sql}");
    };
    tamper("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; UPDATE audit_log SET actor = '{\"kind\":\"user\",\"name\":\"someone-else\"}' WHERE seq = 3");
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("audit log BROKEN: entry 3 was altered"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&roots_dir);
}
