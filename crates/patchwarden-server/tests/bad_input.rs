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
            // The auditor (user 1): this table calls as the admin, whose token must keep working
            // (the bodyless DELETE …/token does revoke the auditor's).
            p if p.starts_with("/v1/users/") => "1".into(),
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
            let big = format!("{{\"pad\":\"{}\"}}", "a".repeat(MAX_BODY + 1)).into_bytes();
            let cases: [(&str, Vec<u8>, StatusCode, &str); 5] = [
                // Cut short: 400 with line and column.
                (
                    "malformed",
                    b"{\"x\": ".to_vec(),
                    StatusCode::BAD_REQUEST,
                    "line 1",
                ),
                (
                    "wrong shape",
                    b"[1,2,\"three\"]".to_vec(),
                    StatusCode::BAD_REQUEST,
                    ": ",
                ),
                (
                    "a string",
                    b"\"text\"".to_vec(),
                    StatusCode::BAD_REQUEST,
                    ": ",
                ),
                // Announced over the limit: 413 before anything is parsed.
                (
                    "oversized",
                    big,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "larger than",
                ),
                (
                    "not UTF-8",
                    vec![0xff, 0xfe, 0x00],
                    StatusCode::BAD_REQUEST,
                    ": ",
                ),
            ];
            for (what, body, want, says) in cases {
                let (status, text) = h.call(&route.method, &uri, auth, Some(body)).await;
                let call = format!("{} {uri}, {what} ({})", route.method, h.backend);
                assert_eq!(status, want, "{call}: {text}");
                let message = error_of(&call, &text);
                assert!(
                    message.contains(says),
                    "{call}: {message:?} should say {says:?}"
                );
            }
            checked += 1;
        }
        assert!(checked >= 13, "{checked} body routes");
        h.finish().await;
    }
}

/// (method, URI, caller, body, status, what the error must say)
type Case<'a> = (
    &'a Method,
    String,
    Option<&'a str>,
    Option<&'a [u8]>,
    u16,
    &'a str,
);

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
        let a = h.host_a.0;
        let big = "x".repeat(300);
        let big_machine_id = format!(r#"{{"token":"pwe_x","hostname":"h","machine_id":"{big}"}}"#);
        let big_agent_version = format!(
            r#"{{"idempotency_key":"k-v","digest":"{}","agent_version":"{big}"}}"#,
            "a".repeat(64)
        );
        let big_label = format!(r#"{{"role":"{big}"}}"#);
        let big_title = format!(
            r#"{{"title":"{big}","kind":"standard","hosts":[{a}],"packages":[{{"name":"curl","version":"7.88.1-10+deb12u15"}}]}}"#
        );
        let change_remove = format!(
            r#"{{"title":"t","kind":"standard","hosts":[{a}],"packages":[{{"name":"curl","version":"7.88.1-10+deb12u15-"}}]}}"#
        );
        let change_revoked = format!(
            r#"{{"title":"t","kind":"normal","hosts":[{a},{}],"packages":[{{"name":"curl","version":"7.88.1-10+deb12u15"}}]}}"#,
            h.revoked.0
        );
        let job_report = format!("/v1/jobs/{}/report", h.job_a);
        let auditor = Harness::bearer(h.user(Role::Auditor));
        let auditor = Some(auditor.as_str());
        let cases: Vec<Case> = vec![
            // Credentials, with what the refusal says.
            (&get, "/v1/hosts".into(), None, None, 401, "no Authorization"),
            (&get, "/v1/hosts".into(), Some("Bearer pwu_0000"), None, 401, "unknown, expired or revoked"),
            (&post, "/v1/checkin".into(), admin, Some(b"{}"), 403, "a user token cannot use the agent API"),
            (&post, "/v1/checkin".into(), Some("Bearer pwx_other"), Some(b"{}"), 401, "not a host credential"),
            (&post, "/v1/checkin".into(), Some("Bearer pwh_nope"), Some(b"{}"), 401, "unknown host credential"),
            (&get, "/v1/hosts".into(), host, None, 403, "host credential"),
            (&post, "/v1/enroll-tokens".into(), auditor, Some(b"{}"), 403, "needs operator"),
            (&post, "/v1/users".into(), auditor, Some(br#"{"name":"x","role":"admin"}"#), 403, "needs admin"),
            (&put, format!("/v1/hosts/{a}/labels"), auditor, Some(b"{}"), 403, "needs operator"),
            (&put, "/v1/assets".into(), auditor, Some(b"{}"), 403, "needs operator"),
            (&get, "/v1/hosts/abc".into(), admin, None, 400, "not a number"),
            (&get, "/v1/hosts/999".into(), admin, None, 404, "no host 999"),
            (&get, "/v1/hosts/999/findings".into(), admin, None, 404, "no host 999"),
            (&get, "/v1/jobs/job-0000".into(), admin, None, 404, "no job"),
            (&get, "/v1/changes/chg-0000".into(), admin, None, 404, "no change"),
            // Queries.
            (&get, "/v1/hosts?stale=maybe".into(), admin, None, 400, "stale"),
            (&get, "/v1/hosts?label=novalue".into(), admin, None, 400, "key=value"),
            (&get, "/v1/hosts?colour=red".into(), admin, None, 400, "unknown field"),
            (&get, "/v1/findings?severity=urgent".into(), admin, None, 400, "severity"),
            (&get, "/v1/findings?limit=many".into(), admin, None, 400, "limit"),
            (&get, "/v1/changes?limit=x".into(), admin, None, 400, "limit"),
            (&get, "/v1/jobs/next?wait_secs=-1".into(), host, None, 400, "wait_secs"),
            (&get, "/v1/cves/a%20b/hosts".into(), admin, None, 400, "cve"),
            (&get, "/v1/cves/CVE-2024-6387/hosts?limit=0".into(), admin, None, 400, "limit"),
            (&get, "/v1/cves/CVE-2024-6387/hosts?page=2".into(), admin, None, 400, "unknown field"),
            // Fields.
            (&post, "/v1/enroll".into(), None, Some(br#"{"token":"pwe_x","hostname":"h","extra":1}"#), 400, "unknown field"),
            (&post, "/v1/enroll".into(), None, Some(br#"{"token":"nope","hostname":"h"}"#), 401, "not an enrollment token"),
            (&post, "/v1/enroll".into(), None, Some(br#"{"token":"pwe_x","hostname":" "}"#), 400, "hostname"),
            (&post, "/v1/enroll".into(), None, Some(b"{\"token\": "), 400, "enrollment request"),
            (&post, "/v1/checkin".into(), host, Some(b"[1,2]"), 400, "check-in"),
            (&post, "/v1/checkin".into(), host, Some(b"{\"idempotency_key\":\"k\xff\"}"), 400, "check-in: the body is not UTF-8"),
            (&post, "/v1/checkin".into(), host, Some(br#"{"idempotency_key":"","digest":"d","agent_version":"x"}"#), 400, "idempotency_key"),
            (&post, "/v1/checkin".into(), host, Some(br#"{"idempotency_key":"k-bad-digest","digest":"d","agent_version":"x"}"#), 400, "digest: must be a SHA-256"),
            (&post, "/v1/enroll-tokens".into(), admin, Some(br#"{"uses":0}"#), 400, "uses"),
            (&post, "/v1/enroll-tokens".into(), admin, Some(br#"{"labels":{"":"x"}}"#), 400, "labels"),
            (&post, "/v1/users".into(), admin, Some(br#"{"name":"x","role":"king"}"#), 400, "unknown variant"),
            (&post, "/v1/users".into(), admin, Some(br#"{"name":"admin ","role":"approver"}"#), 400, "white space"),
            (&post, "/v1/users".into(), admin, Some(br#"{"name":"","role":"approver"}"#), 400, "name"),
            (&post, "/v1/users".into(), admin, Some(br#"{"name":"a\u001b[31m","role":"approver"}"#), 400, "control"),
            (&post, "/v1/users".into(), admin, Some(br#"{"name":"auditor-user","role":"approver"}"#), 409, "auditor-user"),
            (&put, "/v1/assets".into(), admin, Some(b"{\"source\":1}"), 400, "asset list"),
            (&put, "/v1/assets".into(), admin, Some(br#"{"source":"s","assets":[["",[]]]}"#), 400, "empty"),
            (&put, format!("/v1/hosts/{a}/labels"), admin, Some(br#"{"":"x"}"#), 400, "labels"),
            (&put, "/v1/hosts/999/labels".into(), admin, Some(br#"{"a":"x"}"#), 404, "no host 999"),
            (&get, "/v1/hosts/999/history".into(), admin, None, 404, "no host 999"),
            // Fields are bounded: 10 MB strings were accepted.
            (&post, "/v1/enroll".into(), None, Some(big_machine_id.as_bytes()), 400, "machine_id: at most 256"),
            (&post, "/v1/checkin".into(), host, Some(big_agent_version.as_bytes()), 400, "agent_version: at most 64"),
            (&put, format!("/v1/hosts/{a}/labels"), admin, Some(big_label.as_bytes()), 400, "values at most 256"),
            (&put, format!("/v1/hosts/{a}/labels"), admin, Some(br#"{"role":"db\u001b[2K"}"#), 400, "no control characters"),
            (&post, "/v1/changes".into(), admin, Some(big_title.as_bytes()), 400, "title: at most 200"),
            (&post, "/v1/plans".into(), admin, Some(br#"{"hosts":[1,1]}"#), 400, "listed twice"),
            (&get, "/v1/audit?limit=-1".into(), admin, None, 400, "limit"),
            (&get, "/v1/changes?limit=-1".into(), admin, None, 400, "limit: -1 is not between 1 and 1000"),
            (&get, "/v1/changes?limit=5000".into(), admin, None, 400, "limit: 5000"),
            (&get, "/v1/audit?action=explode".into(), admin, None, 400, "action"),
            (&post, format!("/v1/hosts/{a}/jobs"), admin, Some(br#"{"operation":"install","packages":[]}"#), 400, "no packages"),
            (&post, format!("/v1/hosts/{a}/jobs"), admin, Some(br#"{"operation":"install","packages":[{"name":"-oDebug=1","version":"1"}]}"#), 400, "not a deb package name"),
            // apt reads a trailing '-' as "remove", '+' as "install"; `libcurl.` is a pattern to apt.
            (&post, format!("/v1/hosts/{a}/jobs"), admin, Some(br#"{"operation":"install","packages":[{"name":"curl","version":"7.88.1-10+deb12u15-"}]}"#), 400, "invalid deb version"),
            (&post, format!("/v1/hosts/{a}/jobs"), admin, Some(br#"{"operation":"install","packages":[{"name":"curl","version":"7.88.1+"}]}"#), 400, "remove or install modifier"),
            (&post, format!("/v1/hosts/{a}/jobs"), admin, Some(br#"{"operation":"install","packages":[{"name":"libcurl.","version":"7.88.1-10+deb12u15"}]}"#), 400, "read the name as a pattern"),
            (&post, format!("/v1/hosts/{a}/jobs"), admin, Some(br#"{"operation":"install","packages":[{"name":"curl","version":"7.88.1-10+deb12u15","arch":"amd64 all"}]}"#), 400, "not an architecture name"),
            (&post, "/v1/changes".into(), admin, Some(change_remove.as_bytes()), 400, "invalid deb version"),
            (&post, "/v1/changes".into(), admin, Some(change_revoked.as_bytes()), 400, "is revoked"),
            (&post, format!("/v1/hosts/{a}/jobs"), admin, Some(br#"{"operation":"erase","packages":[{"name":"a","version":"1"}]}"#), 400, "unknown variant"),
            (&post, job_report.clone(), host, Some(br#"{"id":"job-1","outcome":{"outcome":"succeeded"},"steps":[],"recovered":false,"reboot_required":false,"reboot_now":false}"#), 400, "sent to"),
            // A NUL anywhere in a body (PostgreSQL cannot store one: it was a 503) is a 400 naming where.
            (&post, job_report, host, Some(br#"{"id":"job-1\u0000","outcome":{"outcome":"succeeded"},"steps":[],"recovered":false,"reboot_required":false,"reboot_now":false}"#), 400, ".id: holds a NUL"),
            (&post, "/v1/changes".into(), admin, Some(br#"{"title":"t\u0000","kind":"normal","hosts":[1],"packages":[{"name":"a","version":"1"}]}"#), 400, ".title: holds a NUL"),
            (&post, "/v1/plans".into(), admin, Some(br#"{"hosts":[]}"#), 400, "no hosts"),
            (&post, "/v1/plans".into(), admin, Some(br#"{"hosts":[1],"today":"tomorrow"}"#), 400, "today"),
            (&post, "/v1/plans".into(), admin, Some(br#"{"hosts":[999]}"#), 400, "no host 999"),
            (&post, "/v1/changes".into(), admin, Some(br#"{"title":" ","kind":"normal","hosts":[1],"packages":[{"name":"a","version":"1"}]}"#), 400, "title"),
            (&post, "/v1/changes".into(), admin, Some(br#"{"title":"t","kind":"sudden","hosts":[1],"packages":[]}"#), 400, "unknown variant"),
            (&post, "/v1/changes/chg-00000000000000aa/actions".into(), admin, Some(br#"{"action":"explode"}"#), 400, "unknown variant"),
            (&post, "/v1/changes/chg-00000000000000aa/actions".into(), admin, Some(br#"{"action":"submit"}"#), 404, "no change"),
            (&post, "/v1/offers".into(), host, Some(br#"{"packages":{}}"#), 400, "offers"),
            (&get, "/v1/summary".into(), Some("Token abc"), None, 401, "Bearer"),
            (&get, "/v1/nothing-here".into(), None, None, 404, "no such route"),
        ];
        for (method, uri, auth, body, status, says) in cases {
            let want = StatusCode::from_u16(status).unwrap();
            refused(&h, method, &uri, auth, body.map(<[u8]>::to_vec), want, says).await;
        }
        // A job that was queued but never delivered cannot be reported (404, as for another
        // host's job).
        let undelivered = patchwarden_server::secrets::job_id();
        assert!(h
            .store
            .enqueue_job(
                &undelivered,
                h.host_a.0,
                r#"{"id":"x"}"#,
                "test",
                &patchwarden_model::now_rfc3339()
            )
            .await
            .unwrap());
        let report = format!(
            r#"{{"id":"{undelivered}","outcome":{{"outcome":"succeeded"}},"steps":[],"recovered":false,"reboot_required":false,"reboot_now":false}}"#
        );
        refused(
            &h,
            &post,
            &format!("/v1/jobs/{undelivered}/report"),
            host,
            Some(report.into_bytes()),
            StatusCode::NOT_FOUND,
            "no open job",
        )
        .await;
        // The authorization header's scheme is case-insensitive; another scheme is refused.
        let lower = format!("bearer {}", h.user(Role::Auditor));
        let (status, text) = h.call(&get, "/v1/summary", Some(&lower), None).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        h.finish().await;
    }
}
/// A body that never arrives: what a client that declared a large body and sends nothing (or
/// sends slowly) looks like to the server.
struct NeverArrives;

impl http_body::Body for NeverArrives {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

/// An announced over-limit body is answered 413 at once, before any of it arrives (what keeps a
/// client still sending from a reset is the lingering close below TLS, `lingering.rs`). The clock
/// is paused: had the server waited for the body, tokio would have advanced it to the body timeout.
#[tokio::test]
async fn an_announced_oversized_body_is_answered_before_it_arrives() {
    use tower::ServiceExt;
    for h in support::harnesses("bad_input_early_413").await {
        tokio::time::pause();
        let start = tokio::time::Instant::now();
        let request = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/v1/enroll")
            .header("content-type", "application/json")
            .header("content-length", 200u64 << 20)
            .body(axum::body::Body::new(NeverArrives))
            .unwrap();
        let response = h.router.clone().oneshot(request).await.unwrap();
        let waited = start.elapsed();
        tokio::time::resume();
        assert_eq!(
            response.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            h.backend
        );
        assert_eq!(
            waited,
            std::time::Duration::ZERO,
            "{}: the answer waited for the body",
            h.backend
        );
        assert_eq!(response.headers()["connection"], "close", "{}", h.backend);
        h.finish().await;
    }
}

/// A host whose check-in carries installed versions that do not parse (`""`, `"a b"`, `"-"`) is
/// stored whole — nothing refused, nothing lost — and the host's page names each package no
/// advisory could be judged against (a SYNTHETIC Debian 12 inventory). A NUL, which no package
/// manager writes and PostgreSQL cannot store (it was a 503 there), is refused with a 400 naming
/// where it is, on both backends.
#[tokio::test]
async fn unparsable_installed_versions_are_named_for_the_host() {
    for h in support::harnesses("bad_input_unparsable").await {
        let host = Harness::bearer(&h.host_b.1);
        let with_nul = patchwarden_model::testing::inventory(
            "debian",
            "12",
            Some("bookworm"),
            &[("curl", "7.88.1\u{0}", "curl", "7.88.1")],
        );
        // A full check-in of `inventory` by host B under `key`.
        let check_in = |key: &'static str, inventory: patchwarden_model::Inventory| {
            let body = serde_json::json!({
                "idempotency_key": key,
                "digest": patchwarden_model::fleet::inventory_digest(&inventory),
                "inventory": inventory,
                "agent_version": "test",
            });
            let (h, host) = (&h, &host);
            async move {
                h.call(
                    &Method::POST,
                    "/v1/checkin",
                    Some(host),
                    Some(body.to_string().into_bytes()),
                )
                .await
            }
        };
        let (status, text) = check_in("nul-1", with_nul).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {text}", h.backend);
        assert!(
            text.contains("check-in.inventory.packages[0].version: holds a NUL"),
            "{}: {text}",
            h.backend
        );
        let bad = ["", "a b", "-"];
        let packages: Vec<(String, String)> = bad
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("pkg{i}"), v.to_string()))
            .collect();
        let list: Vec<(&str, &str, &str, &str)> = packages
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str(), n.as_str(), v.as_str()))
            .chain([("curl", "7.88.1-10+deb12u8", "curl", "7.88.1-10+deb12u8")])
            .collect();
        let inventory =
            patchwarden_model::testing::inventory("debian", "12", Some("bookworm"), &list);
        let (status, text) = check_in("unparsable-1", inventory).await;
        assert_eq!(status, StatusCode::OK, "{}: {text}", h.backend);
        let (status, page) = h
            .json(
                &Method::GET,
                &format!("/v1/hosts/{}", h.host_b.0),
                h.user(Role::Auditor),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{}", h.backend);
        let named: Vec<(&str, &str)> = page["unparsable_versions"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: {page}", h.backend))
            .iter()
            .map(|u| {
                assert!(!u["reason"].as_str().unwrap().is_empty());
                (
                    u["package"].as_str().unwrap(),
                    u["version"].as_str().unwrap(),
                )
            })
            .collect();
        let want: Vec<(&str, &str)> = packages
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(named, want, "{}", h.backend);
        assert_eq!(page["packages"], 4, "{}: every package stored", h.backend);
        h.finish().await;
    }
}
