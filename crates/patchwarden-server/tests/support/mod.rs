//! An in-process server for the API suites: the real router (every extractor, handler and
//! middleware) over a real store — SQLite, and PostgreSQL in a schema of its own when
//! `PATCHWARDEN_TEST_POSTGRES` is set — driven with `tower::ServiceExt::oneshot`, no TLS, no
//! sockets. The fleet it holds: a user of every role, two enrolled hosts (A and B), a host whose
//! credential is revoked, a host to revoke, a job queued for A, an enrollment token with uses to
//! spare.

#![allow(dead_code)]

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use patchwarden_model::fleet::Role;
use patchwarden_server::secrets::{self, SecretKind};
use patchwarden_server::state::AppState;
use patchwarden_server::ServerConfig;
use patchwarden_store::testing::TestStore;
use patchwarden_store::Store;
use tower::ServiceExt;

/// The largest body the in-process server accepts (small, so 413 is cheap to reach).
pub const MAX_BODY: usize = 64 << 10;

pub struct Harness {
    pub router: Router,
    /// The router's state (background services, configuration, audit log).
    pub state: AppState,
    pub store: Store,
    /// Token per role.
    pub users: BTreeMap<Role, String>,
    pub host_a: (i64, String),
    pub host_b: (i64, String),
    pub revoked: (i64, String),
    /// A host the revoke route may revoke.
    pub victim: i64,
    /// A job queued for host A.
    pub job_a: String,
    /// An enrollment token with many uses.
    pub enroll_token: String,
    pub backend: &'static str,
    test_store: Option<TestStore>,
}

/// One harness per backend available.
pub async fn harnesses(name: &str) -> Vec<Harness> {
    let mut out = Vec::new();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for test_store in patchwarden_store::testing::stores(name, dir).await {
        out.push(Harness::new(test_store).await);
    }
    out
}

async fn enroll(store: &Store, token: &str, name: &str) -> (i64, String) {
    let secret = secrets::generate(SecretKind::Host);
    let (id, _) = store
        .enroll_host(
            &secrets::digest(token),
            &patchwarden_model::now_rfc3339(),
            name,
            Some(&format!("machine-{name}")),
            &secrets::digest(&secret),
        )
        .await
        .expect("the store answers")
        .expect("enrolled");
    (id, secret)
}

impl Harness {
    async fn new(test_store: TestStore) -> Harness {
        let store = test_store.store.clone();
        let backend = match store.backend() {
            patchwarden_store::Backend::Sqlite => "sqlite",
            patchwarden_store::Backend::Postgres => "postgres",
        };
        let mut users = BTreeMap::new();
        for role in [Role::Auditor, Role::Approver, Role::Operator, Role::Admin] {
            let user = patchwarden_server::admin::create_user(
                &store,
                &format!("{}-user", role.as_str()),
                role,
                None,
                None,
            )
            .await
            .expect("a user");
            users.insert(role, user.token);
        }
        let token = patchwarden_server::admin::create_enrollment_token(
            &store,
            3600,
            100_000,
            &BTreeMap::new(),
            "harness",
        )
        .await
        .expect("an enrollment token")
        .token;
        let host_a = enroll(&store, &token, "host-a").await;
        // host-a holds a SYNTHETIC Debian 12 inventory (job targets are checked against it).
        let inventory = patchwarden_model::testing::inventory(
            "debian",
            "12",
            Some("bookworm"),
            &[
                ("curl", "7.88.1-10+deb12u8", "curl", "7.88.1-10+deb12u8"),
                ("libcurl4", "7.88.1-10+deb12u8", "curl", "7.88.1-10+deb12u8"),
            ],
        );
        store
            .check_in(
                host_a.0,
                "harness-inventory",
                &patchwarden_model::fleet::inventory_digest(&inventory),
                Some(&patchwarden_model::InventoryView::of(&inventory)),
                &patchwarden_model::now_rfc3339(),
            )
            .await
            .expect("host-a's inventory");
        let host_b = enroll(&store, &token, "host-b").await;
        let revoked = enroll(&store, &token, "host-revoked").await;
        assert!(store.revoke_host(revoked.0).await.unwrap());
        let victim = enroll(&store, &token, "host-victim").await.0;
        let job_a = patchwarden_server::secrets::job_id();
        let job = patchwarden_model::job::PackageJob {
            id: job_a.clone(),
            operation: patchwarden_model::job::JobOperation::Install,
            packages: vec![patchwarden_model::job::PackageTarget {
                name: "curl".into(),
                arch: None,
                version: "7.88.1-10+deb12u8".into(),
            }],
            reboot: patchwarden_model::job::RebootPolicy::Never,
            pre_hooks: Vec::new(),
            post_hooks: Vec::new(),
            health_checks: Vec::new(),
            lock_timeout_secs: 60,
        };
        assert!(store
            .enqueue_job(
                &job_a,
                host_a.0,
                &serde_json::to_string(&job).unwrap(),
                "harness",
                &patchwarden_model::now_rfc3339(),
            )
            .await
            .unwrap());
        // Delivered, as the agent's long-poll would: a host reports only jobs it was given.
        store
            .deliver_next_job(host_a.0, &patchwarden_model::now_rfc3339())
            .await
            .unwrap()
            .expect("job_a delivered");
        let config = ServerConfig {
            max_body_bytes: MAX_BODY,
            findings_workers: 1,
            knowledge_poll: std::time::Duration::ZERO,
            ..Default::default()
        };
        let state = AppState::start(
            store.clone(),
            config,
            "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n".into(),
            patchwarden_risk::policy::Policy::default(),
        );
        Harness {
            router: patchwarden_server::routes::router(state.clone()),
            state,
            store,
            users,
            host_a,
            host_b,
            revoked,
            victim,
            job_a,
            enroll_token: token,
            backend,
            test_store: Some(test_store),
        }
    }

    pub fn user(&self, role: Role) -> &str {
        &self.users[&role]
    }

    /// Sends one request; answers the status and the body as text.
    pub async fn call(
        &self,
        method: &Method,
        uri: &str,
        authorization: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, String) {
        let mut request = Request::builder().method(method.clone()).uri(uri);
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let body = match body {
            Some(b) => {
                request = request
                    .header("content-type", "application/json")
                    .header("content-length", b.len());
                Body::from(b)
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .expect("the router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Sends a JSON body with a user's token; answers the status and the parsed answer.
    pub async fn json(
        &self,
        method: &Method,
        uri: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let (status, text) = self
            .call(
                method,
                uri,
                Some(&Harness::bearer(token)),
                body.map(|b| b.to_string().into_bytes()),
            )
            .await;
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {uri}: not JSON ({status}): {text}"));
        (status, value)
    }

    /// The rollout driver over this harness's state (the harness does not run its loop).
    pub fn driver(&self) -> patchwarden_server::rollouts::RolloutDriver {
        patchwarden_server::rollouts::RolloutDriver::of(&self.state)
    }

    /// `Bearer <secret>`.
    pub fn bearer(secret: &str) -> String {
        format!("Bearer {secret}")
    }

    pub async fn finish(mut self) {
        if let Some(s) = self.test_store.take() {
            s.finish().await;
        }
    }
}

/// The error message of a JSON error answer (panics naming the request when it is not one).
pub fn error_of(what: &str, text: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(text)
        .unwrap_or_else(|_| panic!("{what}: the answer is not JSON: {text}"));
    value["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no error field: {text}"))
        .to_owned()
}
