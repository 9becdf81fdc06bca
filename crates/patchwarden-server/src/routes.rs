//! The router: every route, who may call it, and its handler — one table ([`routes`]) from which
//! the router is built, the OpenAPI test checks `openapi.json`, and the in-process authorization
//! suite (`tests/authorization.rs`) generates its cases. A route is added here and nowhere else.
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /healthz`, `GET /readyz` | anyone | liveness; readiness (the store answers) |
//! | `GET /metrics` | anyone | Prometheus metrics |
//! | `GET /v1/openapi.json` | anyone | this API, described |
//! | `GET /v1/ca.pem` | anyone | the CA certificate (agents check its fingerprint) |
//! | `POST /v1/enroll` | enrollment token | a host credential |
//! | `POST /v1/checkin` | host | inventory or heartbeat |
//! | `GET /v1/jobs/next?wait_secs=N` | host | long-poll for a package job (204: none within the wait) |
//! | `POST /v1/jobs/{id}/report` | host | the job's report (only the host's own job) |
//! | `POST /v1/offers` | host | what its repositories offer (candidates, update advisories) |
//! | `POST /v1/plans` | auditor | plans for hosts under a baseline (exact versions from their offers) |
//! | `POST /v1/hosts/{id}/jobs` | operator | queue a package job: operation and exact versions |
//! | `GET /v1/jobs/{id}` | auditor | a job, its state and report |
//! | `POST /v1/changes` | operator | a change request: title, kind, hosts, exact versions |
//! | `POST /v1/changes/{id}/actions` | by the lifecycle | submit, approve, reject, schedule, … (403 / 409 / 400 when refused) |
//! | `GET /v1/changes?limit=N` | auditor | change requests, newest first |
//! | `GET /v1/changes/{id}` | auditor | a change: audit trail, rollout, events, per-host result |
//! | `POST /v1/changes/{id}/rollout` | operator | pause, resume or cancel its rollout |
//! | `GET /v1/hosts?os=&label=k=v&group=&stale=` | auditor | hosts |
//! | `GET /v1/hosts/{id}`, `/findings`, `/history` | auditor | one host |
//! | `PUT /v1/hosts/{id}/labels` | operator | set labels (`""` removes) |
//! | `POST /v1/hosts/{id}/revoke` | operator | revoke the host's credential |
//! | `GET /v1/findings?severity=&kev=&overdue=&limit=` | auditor | findings across the fleet |
//! | `GET /v1/cves/{cve}/hosts` | auditor | hosts affected by a CVE, and how (`offset`, `limit`) |
//! | `GET /v1/summary` | auditor | the fleet at a glance, hosts that never enrolled |
//! | `GET /v1/audit?after=&limit=&action=&subject=&since=` | auditor | the audit log's entries (hash chain; docs/security.md) |
//! | `POST /v1/enroll-tokens` | operator | a new enrollment token |
//! | `POST /v1/users` | admin | a new user and its token |
//! | `GET /v1/users` | admin | every user (id, name, role, who created it, disabled, token expiry) |
//! | `PATCH /v1/users/{id}` | admin | a new role, disabled or enabled (never the last admin) |
//! | `POST /v1/users/{id}/token` | admin | a new token; the old one stops working |
//! | `DELETE /v1/users/{id}/token` | admin | the token revoked |
//! | `PUT /v1/assets` | operator | the list of hosts that should exist |

use axum::http::Method;
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use axum::Router;
use patchwarden_model::fleet::Role;

use crate::error::ApiError;
use crate::handlers::{admin, agents, audit, changes, findings, hosts, jobs, plans, system, users};
use crate::state::AppState;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a credential.
    Public,
    /// Anyone holding an enrollment token (in the body).
    Enrollment,
    /// An enrolled, unrevoked host with its own credential.
    Host,
    /// A user whose role reaches this one (`POST /v1/changes/{id}/actions` lets the lifecycle
    /// decide beyond it).
    User(Role),
}

/// One route: method, path, who may call it, whether it reads a JSON body, and its handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub takes_body: bool,
    pub handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        takes_body: method == Method::POST || method == Method::PUT || method == Method::PATCH,
        method,
        path,
        access,
        handler,
    }
}

impl Route {
    /// A POST that reads no body.
    fn without_body(mut self) -> Route {
        self.takes_body = false;
        self
    }
}

/// Every route the server serves.
pub fn routes() -> Vec<Route> {
    use Access::{Enrollment, Host, Public, User};
    use Method as M;
    use Role::{Admin, Auditor, Operator};
    vec![
        route(M::GET, "/healthz", Public, get(system::get_health)),
        route(M::GET, "/readyz", Public, get(system::get_ready)),
        route(M::GET, "/metrics", Public, get(system::get_metrics)),
        route(M::GET, "/v1/openapi.json", Public, get(system::get_openapi)),
        route(M::GET, "/v1/ca.pem", Public, get(system::get_ca_pem)),
        route(M::POST, "/v1/enroll", Enrollment, post(agents::enroll)),
        route(M::POST, "/v1/checkin", Host, post(agents::check_in)),
        route(M::POST, "/v1/offers", Host, post(agents::put_offers)),
        route(M::GET, "/v1/jobs/next", Host, get(jobs::next_job)),
        route(
            M::POST,
            "/v1/jobs/{id}/report",
            Host,
            post(jobs::report_job),
        ),
        route(M::GET, "/v1/jobs/{id}", User(Auditor), get(jobs::get_job)),
        route(
            M::POST,
            "/v1/hosts/{id}/jobs",
            User(Operator),
            post(jobs::create_job),
        ),
        route(
            M::POST,
            "/v1/plans",
            User(Auditor),
            post(plans::create_plans),
        ),
        route(
            M::POST,
            "/v1/changes",
            User(Operator),
            post(changes::create_change),
        ),
        route(
            M::GET,
            "/v1/changes",
            User(Auditor),
            get(changes::list_changes),
        ),
        route(
            M::GET,
            "/v1/changes/{id}",
            User(Auditor),
            get(changes::get_change),
        ),
        route(
            M::POST,
            "/v1/changes/{id}/actions",
            User(Auditor),
            post(changes::act_on_change),
        ),
        route(
            M::POST,
            "/v1/changes/{id}/rollout",
            User(Operator),
            post(changes::steer_rollout),
        ),
        route(M::GET, "/v1/audit", User(Auditor), get(audit::list_audit)),
        route(M::GET, "/v1/hosts", User(Auditor), get(hosts::list_hosts)),
        route(
            M::GET,
            "/v1/hosts/{id}",
            User(Auditor),
            get(hosts::get_host),
        ),
        route(
            M::GET,
            "/v1/hosts/{id}/findings",
            User(Auditor),
            get(hosts::get_host_findings),
        ),
        route(
            M::GET,
            "/v1/hosts/{id}/history",
            User(Auditor),
            get(hosts::get_host_history),
        ),
        route(
            M::PUT,
            "/v1/hosts/{id}/labels",
            User(Operator),
            put(hosts::set_host_labels),
        ),
        route(
            M::POST,
            "/v1/hosts/{id}/revoke",
            User(Operator),
            post(hosts::revoke_host),
        )
        .without_body(),
        route(
            M::GET,
            "/v1/findings",
            User(Auditor),
            get(findings::list_findings),
        ),
        route(
            M::GET,
            "/v1/cves/{cve}/hosts",
            User(Auditor),
            get(findings::list_cve_hosts),
        ),
        route(
            M::GET,
            "/v1/summary",
            User(Auditor),
            get(findings::get_summary),
        ),
        route(
            M::POST,
            "/v1/enroll-tokens",
            User(Operator),
            post(admin::create_enroll_token),
        ),
        route(M::POST, "/v1/users", User(Admin), post(users::create_user)),
        route(M::GET, "/v1/users", User(Admin), get(users::list_users)),
        route(
            M::PATCH,
            "/v1/users/{id}",
            User(Admin),
            patch(users::update_user),
        ),
        route(
            M::POST,
            "/v1/users/{id}/token",
            User(Admin),
            post(users::rotate_user_token),
        ),
        route(
            M::DELETE,
            "/v1/users/{id}/token",
            User(Admin),
            delete(users::revoke_user_token),
        ),
        route(
            M::PUT,
            "/v1/assets",
            User(Operator),
            put(admin::replace_assets),
        ),
    ]
}

/// The router over [`routes`], with the body limit, the early 413 and the request metrics.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let mut router = Router::new();
    for r in routes() {
        router = router.route(r.path, r.handler);
    }
    router
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::body_guard::guard_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::request_log::observe,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every route served is described in the OpenAPI document with its method, and nothing else
    /// is.
    #[test]
    fn the_openapi_document_describes_exactly_the_routes_served() {
        let served: BTreeSet<(String, String)> = super::routes()
            .iter()
            .map(|r| (r.method.as_str().to_lowercase(), r.path.to_owned()))
            .collect();
        let doc: serde_json::Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        let mut described = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    described.insert((method.clone(), path.clone()));
                }
            }
        }
        assert!(served.len() > 25, "{served:?}");
        assert_eq!(served, described);
    }
}
