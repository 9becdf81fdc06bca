//! The authorization matrix, in process: every route the router serves (from
//! `patchwarden_server::routes::routes`, the table the router is built from) × every kind of
//! caller — no credential, a malformed or unknown one, a revoked host, the host itself, another
//! host, and a user of each role. A route without an example request below fails the suite, so a
//! new route cannot ship unchecked.

mod support;

use axum::http::{Method, StatusCode};
use patchwarden_model::fleet::Role;
use patchwarden_server::routes::{routes, Access};
use support::{error_of, Harness};

#[derive(Clone, Copy, Debug)]
enum Caller {
    Nobody,
    NotBearer,
    UnknownUser,
    UnknownSecret,
    RevokedHost,
    HostA,
    HostB,
    User(Role),
}

const CALLERS: [Caller; 11] = [
    Caller::Nobody,
    Caller::NotBearer,
    Caller::UnknownUser,
    Caller::UnknownSecret,
    Caller::RevokedHost,
    Caller::HostA,
    Caller::HostB,
    Caller::User(Role::Auditor),
    Caller::User(Role::Approver),
    Caller::User(Role::Operator),
    Caller::User(Role::Admin),
];

/// What a caller must get.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Past authentication and authorization: neither 401 nor 403 (nor a 5xx).
    Allowed,
    Refused(StatusCode),
}

fn authorization(h: &Harness, caller: Caller) -> Option<String> {
    Some(match caller {
        Caller::Nobody => return None,
        Caller::NotBearer => "Basic dXNlcjpwYXNz".into(),
        Caller::UnknownUser => Harness::bearer("pwu_00000000000000000000000000000000"),
        Caller::UnknownSecret => Harness::bearer("not-a-patchwarden-secret"),
        Caller::RevokedHost => Harness::bearer(&h.revoked.1),
        Caller::HostA => Harness::bearer(&h.host_a.1),
        Caller::HostB => Harness::bearer(&h.host_b.1),
        Caller::User(role) => Harness::bearer(h.user(role)),
    })
}

/// The rule: who may call what. `own_resource`: the route names a resource of host A (another
/// host is refused as if it did not exist: 404, so it learns nothing).
fn expect(access: Access, caller: Caller, own_resource: bool) -> Expect {
    use Caller as C;
    use Expect::{Allowed, Refused};
    match access {
        Access::Public | Access::Enrollment => Allowed,
        Access::Host => match caller {
            C::HostA => Allowed,
            C::HostB if own_resource => Refused(StatusCode::NOT_FOUND),
            C::HostB => Allowed,
            // The wrong kind of credential (as a host credential on the user API).
            C::UnknownUser | C::User(_) => Refused(StatusCode::FORBIDDEN),
            _ => Refused(StatusCode::UNAUTHORIZED),
        },
        Access::User(needed) => match caller {
            C::Nobody | C::NotBearer | C::UnknownUser | C::UnknownSecret => {
                Refused(StatusCode::UNAUTHORIZED)
            }
            C::RevokedHost | C::HostA | C::HostB => Refused(StatusCode::FORBIDDEN),
            C::User(role) if role >= needed => Allowed,
            C::User(_) => Refused(StatusCode::FORBIDDEN),
        },
    }
}

/// A request for each route: its URI and body, valid enough to pass the extractors (`n` makes
/// names unique). Routes of host A's resources say so.
fn example(
    h: &Harness,
    method: &Method,
    path: &str,
    n: usize,
) -> Option<(String, Option<String>, bool)> {
    let a = h.host_a.0;
    let job = &h.job_a;
    let chg = "chg-00000000000000aa";
    let digest = "a".repeat(64);
    Some(match (method.as_str(), path) {
        ("GET", "/healthz" | "/readyz" | "/metrics" | "/v1/openapi.json" | "/v1/ca.pem") => {
            (path.to_owned(), None, false)
        }
        ("POST", "/v1/enroll") => (
            path.to_owned(),
            Some(format!(
                r#"{{"token":"{}","hostname":"enrolled-{n}"}}"#,
                h.enroll_token
            )),
            false,
        ),
        ("POST", "/v1/checkin") => (
            path.to_owned(),
            Some(format!(
                r#"{{"idempotency_key":"k-{n}","digest":"{digest}","agent_version":"test"}}"#
            )),
            false,
        ),
        ("POST", "/v1/offers") => (
            path.to_owned(),
            Some(r#"{"packages":[],"advisories":[]}"#.into()),
            false,
        ),
        ("GET", "/v1/jobs/next") => ("/v1/jobs/next?wait_secs=0".into(), None, false),
        ("POST", "/v1/jobs/{id}/report") => (
            format!("/v1/jobs/{job}/report"),
            Some(format!(
                r#"{{"id":"{job}","outcome":{{"outcome":"failed","stage":"packages","reason":"test"}},"steps":[],"recovered":false,"reboot_required":false,"reboot_now":false}}"#
            )),
            true,
        ),
        ("GET", "/v1/jobs/{id}") => (format!("/v1/jobs/{job}"), None, false),
        ("POST", "/v1/hosts/{id}/jobs") => (
            format!("/v1/hosts/{a}/jobs"),
            Some(r#"{"operation":"install","packages":[{"name":"curl","version":"7.88.1-10+deb12u8"}]}"#.into()),
            false,
        ),
        ("POST", "/v1/plans") => (path.to_owned(), Some(format!(r#"{{"hosts":[{a}]}}"#)), false),
        ("POST", "/v1/changes") => (
            path.to_owned(),
            Some(format!(
                r#"{{"title":"t","kind":"normal","hosts":[{a}],"packages":[{{"name":"curl","version":"1"}}]}}"#
            )),
            false,
        ),
        ("GET", "/v1/changes") => ("/v1/changes?limit=5".into(), None, false),
        ("GET", "/v1/changes/{id}") => (format!("/v1/changes/{chg}"), None, false),
        ("POST", "/v1/changes/{id}/actions") => (
            format!("/v1/changes/{chg}/actions"),
            Some(r#"{"action":"submit"}"#.into()),
            false,
        ),
        ("POST", "/v1/changes/{id}/rollout") => (
            format!("/v1/changes/{chg}/rollout"),
            Some(r#"{"action":"pause"}"#.into()),
            false,
        ),
        ("GET", "/v1/hosts") => ("/v1/hosts?group=web".into(), None, false),
        ("GET", "/v1/hosts/{id}") => (format!("/v1/hosts/{a}"), None, false),
        ("GET", "/v1/hosts/{id}/findings") => (format!("/v1/hosts/{a}/findings"), None, false),
        ("GET", "/v1/hosts/{id}/history") => (format!("/v1/hosts/{a}/history"), None, false),
        ("PUT", "/v1/hosts/{id}/labels") => (
            format!("/v1/hosts/{a}/labels"),
            Some(r#"{"env":"test"}"#.into()),
            false,
        ),
        ("POST", "/v1/hosts/{id}/revoke") => (format!("/v1/hosts/{}/revoke", h.victim), None, false),
        ("GET", "/v1/findings") => ("/v1/findings?severity=high&limit=10".into(), None, false),
        ("GET", "/v1/cves/{cve}/hosts") => ("/v1/cves/CVE-2024-6387/hosts".into(), None, false),
        ("GET", "/v1/summary") => (path.to_owned(), None, false),
        ("GET", "/v1/audit") => ("/v1/audit?limit=10".into(), None, false),
        ("POST", "/v1/enroll-tokens") => (path.to_owned(), Some("{}".into()), false),
        ("POST", "/v1/users") => (
            path.to_owned(),
            Some(format!(r#"{{"name":"made-{n}","role":"auditor"}}"#)),
            false,
        ),
        // A user that does not exist (404 once allowed): the harness's own users keep their
        // tokens and roles for the rest of the table.
        ("GET", "/v1/users") => (path.to_owned(), None, false),
        ("PATCH", "/v1/users/{id}") => (
            "/v1/users/99999".into(),
            Some(r#"{"role":"auditor"}"#.into()),
            false,
        ),
        ("POST", "/v1/users/{id}/token") => ("/v1/users/99999/token".into(), Some("{}".into()), false),
        ("DELETE", "/v1/users/{id}/token") => ("/v1/users/99999/token".into(), None, false),
        ("PUT", "/v1/assets") => (
            path.to_owned(),
            Some(r#"{"source":"test","assets":[["web-1",["web-1.example"]]]}"#.into()),
            false,
        ),
        _ => return None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_every_caller_it_should_and_no_other() {
    for h in support::harnesses("authz").await {
        let mut cases = 0;
        let mut n = 0;
        for route in routes() {
            for caller in CALLERS {
                n += 1;
                let (uri, body, own) = example(&h, &route.method, route.path, n).unwrap_or_else(|| {
                    panic!(
                        "{} {} has no example in tests/authorization.rs: add one (and its row in openapi.json)",
                        route.method, route.path
                    )
                });
                let auth = authorization(&h, caller);
                let (status, text) = h
                    .call(
                        &route.method,
                        &uri,
                        auth.as_deref(),
                        body.map(String::into_bytes),
                    )
                    .await;
                let what = format!("{} {} as {caller:?} ({})", route.method, uri, h.backend);
                assert!(!status.is_server_error(), "{what}: {status} {text}");
                match expect(route.access, caller, own) {
                    Expect::Allowed => assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{what}: refused with {status}: {text}"
                    ),
                    Expect::Refused(want) => {
                        assert_eq!(status, want, "{what}: {text}");
                        error_of(&what, &text);
                    }
                }
                cases += 1;
            }
        }
        assert!(cases >= 30 * CALLERS.len(), "{cases} cases");
        // What the allowed calls did is real: the enrollment example enrolled hosts, the operator's
        // job landed, the admin made users.
        let hosts = h.store.hosts(&Default::default(), 3600).await.unwrap();
        assert!(hosts.iter().any(|x| x.hostname.starts_with("enrolled-")));
        h.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_credential_is_refused_once_revoked() {
    for h in support::harnesses("authz_revoke").await {
        let admin = Harness::bearer(h.user(Role::Admin));
        let host_b = Harness::bearer(&h.host_b.1);
        let beat = format!(
            r#"{{"idempotency_key":"k-1","digest":"{}","agent_version":"t"}}"#,
            "b".repeat(64)
        );
        let (status, _) = h
            .call(
                &Method::POST,
                "/v1/checkin",
                Some(&host_b),
                Some(beat.clone().into_bytes()),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = h
            .call(
                &Method::POST,
                &format!("/v1/hosts/{}/revoke", h.host_b.0),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        // The heartbeat fast path (the credential was seen before) still refuses it.
        let (status, text) = h
            .call(
                &Method::POST,
                "/v1/checkin",
                Some(&host_b),
                Some(beat.into_bytes()),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
        assert!(error_of("revoked", &text).contains("revoked"), "{text}");
        h.finish().await;
    }
}
