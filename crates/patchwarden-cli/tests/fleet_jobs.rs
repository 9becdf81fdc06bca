//! Package jobs end to end: an operator's job upgrades a real Debian root through its agent and the
//! inventory follows; a change needs an approver who did not request it; a job that reboots runs
//! its health checks when the agent starts again.
mod fleet;
mod support;

use std::process::Command;

use fleet::*;
use support::*;

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
    assert_eq!(status, 403, "a user token on the host API");

    // Jobs written into the database by anything but a server (here the job table edited as an
    // attacker with the database would) are refused by the agent: nothing runs, the refusal is
    // reported and audited, the host keeps its version.
    let signed: serde_json::Value = serde_json::from_str(&sql_query(
        &db,
        "SELECT doc FROM host_job WHERE id = ?",
        &[&job_id],
    ))
    .unwrap();
    assert_eq!(stored["signed_by"], signed["key"], "{stored}");
    let downgrade = |claims: &str, id: &str| {
        claims
            .replace("\"version\":\"1.0-2\"", "\"version\":\"1.0-1\"")
            .replace(&job_id, id)
    };
    let unsigned = serde_json::json!({"id": "job-f0000000000000000000001", "operation": "rollback",
        "packages": [{"name": "pw-synthetic-hello", "version": "1.0-1"}], "reboot": "never",
        "lock_timeout_secs": 60});
    let mut tampered = signed.clone();
    tampered["id"] = "job-f0000000000000000000002".into();
    tampered["claims"] = downgrade(
        signed["claims"].as_str().unwrap(),
        "job-f0000000000000000000002",
    )
    .into();
    let mut other_key = signed.clone();
    other_key["id"] = "job-f0000000000000000000003".into();
    other_key["key"] = "11".repeat(32).into();
    let forged = [
        (
            "job-f0000000000000000000001",
            unsigned.to_string(),
            "unsigned",
        ),
        (
            "job-f0000000000000000000002",
            tampered.to_string(),
            "bad_signature",
        ),
        (
            "job-f0000000000000000000003",
            other_key.to_string(),
            "unknown_key",
        ),
    ];
    for (id, doc, _) in &forged {
        sql_query(
            &db,
            "INSERT INTO host_job (id, host_id, created_at, created_by, doc, state) \
             VALUES (?, ?, '2026-01-01T00:00:00Z', 'admin', ?, 'queued')",
            &[id, &host_id.to_string(), doc],
        );
    }
    // A replay: the job that ran, queued again.
    sql_query(
        &db,
        "UPDATE host_job SET state = 'queued', report = NULL, finished_at = NULL WHERE id = ?",
        &[&job_id],
    );
    let expected = forged
        .iter()
        .map(|(id, _, refusal)| (id.to_string(), refusal.to_string()))
        .chain([(job_id.clone(), "already_run".to_owned())]);
    for (id, refusal) in expected {
        // The server's job board notices rows it did not queue within its poll (2 s): the agent
        // looks again until the job is no longer queued (bounded).
        let mut record = serde_json::Value::Null;
        for _ in 0..60 {
            let out = agent(&agent_dir, &["run", "--once", "--root", root_arg]);
            record = http_get(&server, &state, &admin, &format!("/v1/jobs/{id}"));
            if record["state"] != "queued" {
                assert!(
                    String::from_utf8_lossy(&out.stderr).contains("refused"),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        assert_eq!(record["state"], "refused", "{id}: {record}");
        assert_eq!(
            record["report"]["outcome"]["refusal"]["refusal"], refusal,
            "{id}: {record}"
        );
        assert_eq!(record["report"]["steps"], serde_json::json!([]), "{record}");
        let audit = http_get(
            &server,
            &state,
            &admin,
            &format!("/v1/audit?subject=job:{id}&action=job_reported"),
        );
        let entry = audit["entries"].as_array().unwrap().last().unwrap();
        assert_eq!(entry["detail"]["state"], "refused", "{audit}");
        assert_eq!(entry["detail"]["refusal"], refusal, "{audit}");
    }
    // The root was not touched: dpkg still has the version the real job installed.
    let installed = Command::new("dpkg-query")
        .args([
            "--admindir",
            &format!("{root_arg}/var/lib/dpkg"),
            "-W",
            "-f",
            "${Version}",
            "pw-synthetic-hello",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&installed.stdout), "1.0-2");
}

/// Runs one SQL statement on the SQLite database at `db` with Python's sqlite3 module (outside
/// patchwarden: how someone with the database file would change it) and returns the first column
/// of the first row, if any.
fn sql_query(db: &str, sql: &str, params: &[&str]) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], timeout=30)\n\
             rows = c.execute(sys.argv[2], sys.argv[3:]).fetchall()\n\
             c.commit()\n\
             print(rows[0][0] if rows else '', end='')",
            db,
            sql,
        ])
        .args(params)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    // The requester: an operator the admin created (so abe, also the admin's, may approve).
    let operator = user("olga", "operator");
    // Not before 2999: once scheduled it waits (the rollout driver starts it only then).
    let change = |kind: &str| {
        serde_json::json!({"title": "zlib fix", "kind": kind, "hosts": [host_id],
            "packages": [{"name": "zlib", "version": "1.3.1-r0"}],
            "not_before": "2999-01-01T00:00:00Z"})
    };
    let (status, refused) = http_post(
        &server,
        &state,
        &operator,
        "/v1/changes",
        &change("standard"),
    );
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("role=database"),
        "{refused}"
    );
    // An approver the requester created is the requester's puppet: the admin's own change cannot be
    // approved by abe.
    let (status, by_admin) = http_post(&server, &state, &admin, "/v1/changes", &change("normal"));
    assert_eq!(status, 201, "{by_admin}");
    let admins = by_admin["id"].as_str().unwrap().to_owned();
    let submit = http_post(
        &server,
        &state,
        &admin,
        &format!("/v1/changes/{admins}/actions"),
        &serde_json::json!({"action": "submit"}),
    );
    assert_eq!(submit.0, 200, "{}", submit.1);
    let (status, own) = http_post(
        &server,
        &state,
        &admin,
        &format!("/v1/changes/{admins}/actions"),
        &serde_json::json!({"action": "approve"}),
    );
    assert_eq!(status, 403, "{own}");
    assert!(
        own["error"]
            .as_str()
            .unwrap()
            .contains("requested this change and cannot approve it"),
        "{own}"
    );
    let (status, puppet) = http_post(
        &server,
        &state,
        &approver,
        &format!("/v1/changes/{admins}/actions"),
        &serde_json::json!({"action": "approve"}),
    );
    assert_eq!(status, 403, "{puppet}");
    assert!(
        puppet["error"]
            .as_str()
            .unwrap()
            .contains("created by admin"),
        "{puppet}"
    );
    let (status, created) = http_post(&server, &state, &operator, "/v1/changes", &change("normal"));
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
    assert_eq!(act(&approver, "approve").0, 409, "not submitted yet");
    assert_eq!(act(&operator, "submit").0, 200);
    let (status, own) = act(&operator, "approve");
    assert_eq!(status, 403, "{own}");
    assert!(
        own["error"].as_str().unwrap().contains("approver role"),
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
            ("olga".to_owned(), "submitted".to_owned()),
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
