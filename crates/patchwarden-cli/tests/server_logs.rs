//! The server's logs: with `--log-format json` every line on standard error is a JSON object; a
//! request is one line (method, route, status, latency, the caller), a refused credential is a
//! warning carrying the reason, audited events (an enrollment) are lines too; an unreadable
//! `RUST_LOG` stops the start with an error naming it.
mod fleet;
mod support;

use std::process::Stdio;

use fleet::*;
use support::*;

#[test]
fn requests_credentials_and_audited_events_are_logged_as_json() {
    let work = scratch("server-logs");
    let db = work.join("kb.db").display().to_string();
    let state = work.join("server-state");
    let log_path = work.join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = start_server_logging(
        &db,
        &state,
        "127.0.0.1:0",
        &["--log-format", "json"],
        "info",
        Stdio::from(log),
    );
    let admin = server.admin_token.clone().unwrap();
    let token = enroll_token(&db, &["--uses", "1"]);
    let root = alpine_root(&work);
    let agent_dir = work.join("agent");
    ok(
        &enroll(&agent_dir, &server, &token, &root, "logged-host"),
        "enroll",
    );
    let root_arg = root.to_str().unwrap();
    ok(
        &agent(&agent_dir, &["run", "--once", "--root", root_arg]),
        "check-in",
    );
    let host_id = query(&server, &state, &admin, &["hosts"])[0]["id"]
        .as_i64()
        .unwrap();
    let (status, _) = http_post(
        &server,
        &state,
        "pwu_0000",
        "/v1/changes",
        &serde_json::json!({}),
    );
    assert_eq!(status, 401);
    // A known user whose role is too low: refused, and the line names who it was.
    let reader = {
        let out = bin()
            .args(["--db", &db, "user", "create", "reader", "--role", "auditor"])
            .output()
            .unwrap();
        ok(&out, "user create").trim().to_owned()
    };
    let (status, _) = http_post(
        &server,
        &state,
        &reader,
        "/v1/changes",
        &serde_json::json!({}),
    );
    assert_eq!(status, 403);

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |what: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        lines
            .iter()
            .find(|l| pred(l))
            .unwrap_or_else(|| panic!("no log line for {what} in:\n{text}"))
            .clone()
    };
    let listed = find("GET /v1/hosts", &|l| {
        l["target"] == "patchwarden::http" && l["route"] == "/v1/hosts"
    });
    assert_eq!(listed["method"], "GET", "{listed}");
    assert_eq!(listed["status"], 200, "{listed}");
    assert_eq!(listed["caller"], "user:admin", "{listed}");
    assert_eq!(listed["level"], "INFO", "{listed}");
    assert!(listed["latency_ms"].as_f64().unwrap() >= 0.0, "{listed}");
    let checkin = find("the check-in", &|l| l["route"] == "/v1/checkin");
    assert_eq!(checkin["caller"], format!("host:{host_id}"), "{checkin}");
    let refused = find("the refused token", &|l| {
        l["route"] == "/v1/changes" && l["status"] == 401
    });
    assert_eq!(refused["level"], "WARN", "{refused}");
    assert_eq!(refused["caller"], "-", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("unknown, expired or revoked"),
        "{refused}"
    );
    let low_role = find("the refused role", &|l| {
        l["route"] == "/v1/changes" && l["status"] == 403
    });
    assert_eq!(low_role["caller"], "user:reader", "{low_role}");
    assert!(
        low_role["error"]
            .as_str()
            .unwrap()
            .contains("has role auditor"),
        "{low_role}"
    );
    let enrolled = find("the enrollment", &|l| {
        l["target"] == "patchwarden::audit" && l["action"] == "host_enrolled"
    });
    assert_eq!(enrolled["subject"], format!("host:{host_id}"), "{enrolled}");
    assert!(
        enrolled["detail"].as_str().unwrap().contains("logged-host"),
        "{enrolled}"
    );
}

#[test]
fn an_unreadable_log_filter_stops_the_start() {
    let work = scratch("server-logs-filter");
    let out = bin()
        .args(["--db", &work.join("kb.db").display().to_string(), "server"])
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(work.join("state"))
        .env("RUST_LOG", "patchwarden=[[[")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RUST_LOG"), "{stderr}");
}
