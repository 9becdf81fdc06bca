//! Bad input, in process: every route that takes a body refuses malformed JSON, the wrong shape,
//! unknown fields and an oversized body with a 4xx and a JSON error naming what was wrong; every
//! route with an id refuses a malformed one with a 400 before its handler runs; bad queries are
//! 400s; nothing bad is ever a 5xx. The route list comes from the router's own table.

mod support;

use axum::http::{Method, StatusCode};
use patchwarden_model::fleet::Role;
use patchwarden_server::routes::{routes, Access};
use support::{error_of, Harness, MAX_BODY};

/// The credential that reaches a route (admin for the user API, host A for the host API).
fn credential(h: &Harness, access: Access) -> Option<String> {
    match access {
        Access::Public | Access::Enrollment => None,
        Access::Host => Some(Harness::bearer(&h.host_a.1)),
        Access::User(_) => Some(Harness::bearer(h.user(Role::Admin))),
    }
}

/// The route's path with its id filled in.
fn concrete(h: &Harness, path: &str) -> String {
    path.replace(
        "{id}",
        &match path {
            p if p.ends_with("/revoke") => h.victim.to_string(),
            p if p.starts_with("/v1/hosts/") => h.host_a.0.to_string(),
            p if p.starts_with("/v1/jobs/") => h.job_a.clone(),
            _ => "chg-00000000000000aa".into(),
        },
    )
    .replace("{cve}", "CVE-2024-6387")
}

async fn refused(
    h: &Harness,
    method: &Method,
    uri: &str,
    auth: Option<&str>,
    body: Option<Vec<u8>>,
    want: StatusCode,
    says: &str,
) {
    let (status, text) = h.call(method, uri, auth, body).await;
    let what = format!("{method} {uri} ({})", h.backend);
    assert_eq!(status, want, "{what}: {text}");
    let message = error_of(&what, &text);
    assert!(
        message.contains(says),
        "{what}: {message:?} should say {says:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_route_refuses_malformed_wrong_and_oversized_bodies() {
    for h in support::harnesses("bad_bodies").await {
        let mut checked = 0;
        for route in routes() {
            if route.method == Method::GET {
                continue;
            }
            let uri = concrete(&h, route.path);
            let auth = credential(&h, route.access);
            let auth = auth.as_deref();
            if !route.takes_body {
                // A route that reads no body ignores one.
                let (status, text) = h
                    .call(&route.method, &uri, auth, Some(b"{\"x\": ".to_vec()))
                    .await;
                assert!(
                    !status.is_client_error() && !status.is_server_error(),
                    "{} {uri}: {status} {text}",
                    route.method
                );
                continue;
            }
            // Malformed JSON (cut short): 400 with line and column.
            refused(
                &h,
                &route.method,
                &uri,
                auth,
                Some(b"{\"x\": ".to_vec()),
                StatusCode::BAD_REQUEST,
                "line 1",
            )
            .await;
            // The wrong shape.
            refused(
                &h,
                &route.method,
                &uri,
                auth,
                Some(b"[1,2,\"three\"]".to_vec()),
                StatusCode::BAD_REQUEST,
                "",
            )
            .await;
            // A string where a number or an object belongs.
            refused(
                &h,
                &route.method,
                &uri,
                auth,
                Some(b"\"text\"".to_vec()),
                StatusCode::BAD_REQUEST,
                "",
            )
            .await;
            // Oversized, announced: 413 before anything is parsed.
            let big = format!("{{\"pad\":\"{}\"}}", "a".repeat(MAX_BODY + 1));
            refused(
                &h,
                &route.method,
                &uri,
                auth,
                Some(big.into_bytes()),
                StatusCode::PAYLOAD_TOO_LARGE,
                "larger than",
            )
            .await;
            // Not UTF-8.
            refused(
                &h,
                &route.method,
                &uri,
                auth,
                Some(vec![0xff, 0xfe, 0x00]),
                StatusCode::BAD_REQUEST,
                "",
            )
            .await;
            checked += 1;
        }
        assert!(checked >= 13, "{checked} body routes");
        h.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_queries_and_fields_are_checked_and_named() {
    for h in support::harnesses("bad_fields").await {
        let admin = Harness::bearer(h.user(Role::Admin));
        let admin = Some(admin.as_str());
        let host = Harness::bearer(&h.host_a.1);
        let host = Some(host.as_str());
        let get = Method::GET;
        let post = Method::POST;
        let put = Method::PUT;
        let bad = StatusCode::BAD_REQUEST;
        // Every route with an id refuses a malformed one.
        for route in routes() {
            if !route.path.contains("{id}") {
                continue;
            }
            for id in [
                "abc",
                "0",
                "-1",
                "job-XYZ",
                "chg-",
                "9999999999999999999999",
            ] {
                let uri = route.path.replace("{id}", id);
                let auth = credential(&h, route.access);
                let body = (route.method != Method::GET).then(|| b"{}".to_vec());
                let (status, text) = h.call(&route.method, &uri, auth.as_deref(), body).await;
                assert_eq!(status, bad, "{} {uri}: {text}", route.method);
                assert!(error_of(&uri, &text).contains("id"), "{uri}: {text}");
            }
        }
        refused(&h, &get, "/v1/hosts/abc", admin, None, bad, "not a number").await;
        refused(
            &h,
            &get,
            "/v1/hosts/999",
            admin,
            None,
            StatusCode::NOT_FOUND,
            "no host 999",
        )
        .await;
        refused(
            &h,
            &get,
            "/v1/hosts/999/findings",
            admin,
            None,
            StatusCode::NOT_FOUND,
            "no host 999",
        )
        .await;
        refused(
            &h,
            &get,
            "/v1/jobs/job-0000",
            admin,
            None,
            StatusCode::NOT_FOUND,
            "no job",
        )
        .await;
        refused(
            &h,
            &get,
            "/v1/changes/chg-0000",
            admin,
            None,
            StatusCode::NOT_FOUND,
            "no change",
        )
        .await;
        // Queries.
        refused(&h, &get, "/v1/hosts?stale=maybe", admin, None, bad, "stale").await;
        refused(
            &h,
            &get,
            "/v1/hosts?label=novalue",
            admin,
            None,
            bad,
            "key=value",
        )
        .await;
        refused(
            &h,
            &get,
            "/v1/hosts?colour=red",
            admin,
            None,
            bad,
            "unknown field",
        )
        .await;
        refused(
            &h,
            &get,
            "/v1/findings?severity=urgent",
            admin,
            None,
            bad,
            "severity",
        )
        .await;
        refused(
            &h,
            &get,
            "/v1/findings?limit=many",
            admin,
            None,
            bad,
            "limit",
        )
        .await;
        refused(&h, &get, "/v1/changes?limit=x", admin, None, bad, "limit").await;
        refused(
            &h,
            &get,
            "/v1/jobs/next?wait_secs=-1",
            host,
            None,
            bad,
            "wait_secs",
        )
        .await;
        refused(&h, &get, "/v1/cves/a%20b/hosts", admin, None, bad, "cve").await;
        // Fields.
        refused(
            &h,
            &post,
            "/v1/enroll",
            None,
            Some(br#"{"token":"pwe_x","hostname":"h","extra":1}"#.to_vec()),
            bad,
            "unknown field",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/enroll",
            None,
            Some(br#"{"token":"nope","hostname":"h"}"#.to_vec()),
            StatusCode::UNAUTHORIZED,
            "not an enrollment token",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/enroll",
            None,
            Some(br#"{"token":"pwe_x","hostname":" "}"#.to_vec()),
            bad,
            "hostname",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/enroll",
            None,
            Some(b"{\"token\": ".to_vec()),
            bad,
            "enrollment request",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/checkin",
            host,
            Some(b"[1,2]".to_vec()),
            bad,
            "check-in",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/checkin",
            host,
            Some(br#"{"idempotency_key":"","digest":"d","agent_version":"x"}"#.to_vec()),
            bad,
            "idempotency_key",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/checkin",
            host,
            Some(
                br#"{"idempotency_key":"k-bad-digest","digest":"d","agent_version":"x"}"#.to_vec(),
            ),
            bad,
            "digest: must be a SHA-256",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/enroll-tokens",
            admin,
            Some(br#"{"uses":0}"#.to_vec()),
            bad,
            "uses",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/enroll-tokens",
            admin,
            Some(br#"{"labels":{"":"x"}}"#.to_vec()),
            bad,
            "labels",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/users",
            admin,
            Some(br#"{"name":"x","role":"king"}"#.to_vec()),
            bad,
            "unknown variant",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/users",
            admin,
            Some(br#"{"name":"admin ","role":"approver"}"#.to_vec()),
            bad,
            "white space",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/users",
            admin,
            Some(br#"{"name":"","role":"approver"}"#.to_vec()),
            bad,
            "name",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/users",
            admin,
            Some(br#"{"name":"a\u001b[31m","role":"approver"}"#.to_vec()),
            bad,
            "control",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/users",
            admin,
            Some(br#"{"name":"auditor-user","role":"approver"}"#.to_vec()),
            StatusCode::CONFLICT,
            "auditor-user",
        )
        .await;
        refused(
            &h,
            &put,
            "/v1/assets",
            admin,
            Some(b"{\"source\":1}".to_vec()),
            bad,
            "asset list",
        )
        .await;
        refused(
            &h,
            &put,
            "/v1/assets",
            admin,
            Some(br#"{"source":"s","assets":[["",[]]]}"#.to_vec()),
            bad,
            "empty",
        )
        .await;
        refused(
            &h,
            &put,
            &format!("/v1/hosts/{}/labels", h.host_a.0),
            admin,
            Some(br#"{"":"x"}"#.to_vec()),
            bad,
            "labels",
        )
        .await;
        refused(
            &h,
            &put,
            "/v1/hosts/999/labels",
            admin,
            Some(br#"{"a":"x"}"#.to_vec()),
            StatusCode::NOT_FOUND,
            "no host 999",
        )
        .await;
        let job_uri = format!("/v1/hosts/{}/jobs", h.host_a.0);
        refused(
            &h,
            &post,
            &job_uri,
            admin,
            Some(br#"{"operation":"install","packages":[]}"#.to_vec()),
            bad,
            "no packages",
        )
        .await;
        refused(
            &h,
            &post,
            &job_uri,
            admin,
            Some(
                br#"{"operation":"install","packages":[{"name":"-oDebug=1","version":"1"}]}"#
                    .to_vec(),
            ),
            bad,
            "not a package name",
        )
        .await;
        refused(
            &h,
            &post,
            &job_uri,
            admin,
            Some(br#"{"operation":"erase","packages":[{"name":"a","version":"1"}]}"#.to_vec()),
            bad,
            "unknown variant",
        )
        .await;
        let report_uri = format!("/v1/jobs/{}/report", h.job_a);
        refused(&h, &post, &report_uri, host, Some(br#"{"id":"job-1","outcome":{"outcome":"succeeded"},"steps":[],"recovered":false,"reboot_required":false,"reboot_now":false}"#.to_vec()), bad, "sent to").await;
        refused(
            &h,
            &post,
            "/v1/plans",
            admin,
            Some(br#"{"hosts":[]}"#.to_vec()),
            bad,
            "no hosts",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/plans",
            admin,
            Some(br#"{"hosts":[1],"today":"tomorrow"}"#.to_vec()),
            bad,
            "today",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/plans",
            admin,
            Some(br#"{"hosts":[999]}"#.to_vec()),
            bad,
            "no host 999",
        )
        .await;
        refused(&h, &post, "/v1/changes", admin, Some(br#"{"title":" ","kind":"normal","hosts":[1],"packages":[{"name":"a","version":"1"}]}"#.to_vec()), bad, "title").await;
        refused(
            &h,
            &post,
            "/v1/changes",
            admin,
            Some(br#"{"title":"t","kind":"sudden","hosts":[1],"packages":[]}"#.to_vec()),
            bad,
            "unknown variant",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/changes/chg-00000000000000aa/actions",
            admin,
            Some(br#"{"action":"explode"}"#.to_vec()),
            bad,
            "unknown variant",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/changes/chg-00000000000000aa/actions",
            admin,
            Some(br#"{"action":"submit"}"#.to_vec()),
            StatusCode::NOT_FOUND,
            "no change",
        )
        .await;
        refused(
            &h,
            &post,
            "/v1/offers",
            host,
            Some(br#"{"packages":{}}"#.to_vec()),
            bad,
            "offers",
        )
        .await;
        // The authorization header's scheme is case-insensitive; another scheme is refused.
        let lower = format!("bearer {}", h.user(Role::Auditor));
        let (status, text) = h.call(&get, "/v1/summary", Some(&lower), None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        refused(
            &h,
            &get,
            "/v1/summary",
            Some("Token abc"),
            None,
            StatusCode::UNAUTHORIZED,
            "Bearer",
        )
        .await;
        refused(
            &h,
            &get,
            "/v1/nothing-here",
            None,
            None,
            StatusCode::NOT_FOUND,
            "no such route",
        )
        .await;
        h.finish().await;
    }
}
