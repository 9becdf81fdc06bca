//! The routes and their handlers.
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
//! | `GET /v1/cves/{cve}/hosts` | auditor | hosts affected by a CVE, and how |
//! | `GET /v1/summary` | auditor | the fleet at a glance, hosts that never enrolled |
//! | `POST /v1/enroll-tokens` | operator | a new enrollment token |
//! | `POST /v1/users` | admin | a new user and its token |
//! | `PUT /v1/assets` | operator | the list of hosts that should exist |
//!
//! Errors are JSON `{"error": "..."}`: 400 malformed, 401 no or bad credential, 403 beyond the
//! role or another host's data, 404, 413 too large; never a 500 for bad input.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use patchwarden_model::fleet::{
    ApiError, CheckInAck, CheckInResult, CheckInView, EnrollRequest, EnrollResponse, HostFinding,
    Role,
};
use patchwarden_store::fleet::{
    FindingFilter, FindingRow, HeartbeatOutcome, HostCredential, HostFilter,
};
use patchwarden_store::Store;
use serde::Deserialize;

use crate::secrets::{self, SecretKind};
use crate::{Metrics, ServerConfig};

/// Shared by every request: the store, the configuration, metrics. No fleet state lives here.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    ca_pem: Arc<String>,
    policy: Arc<patchwarden_risk::policy::Policy>,
    findings: Arc<FindingsQueue>,
    heartbeats: Arc<HeartbeatBatcher>,
    /// Host credentials this process has checked: secret digest → host id (a digest never changes
    /// hands). Heartbeats of these hosts skip the credential lookup; the heartbeat batch checks
    /// revocation in its own transaction instead (`HeartbeatOutcome::Refused`).
    known_hosts: Arc<std::sync::Mutex<HashMap<String, i64>>>,
    /// Which hosts have queued jobs (refreshed from the store; long-polls wait on it).
    pub(crate) job_board: Arc<crate::jobs::JobBoard>,
    /// Wakes the rollout driver (a job report, new findings, a change acted on).
    pub(crate) rollout_wake: Arc<tokio::sync::Notify>,
}

/// Most host credentials remembered (beyond it the map starts again: ~100 bytes each).
const MAX_KNOWN_HOSTS: usize = 200_000;

type HeartbeatReply = tokio::sync::oneshot::Sender<Result<HeartbeatOutcome, String>>;

/// Group commit for heartbeats: one task takes every heartbeat waiting and stores them in one
/// transaction (`Store::heartbeats`); batches form by themselves while the previous one commits.
struct HeartbeatBatcher {
    sender: tokio::sync::mpsc::Sender<(patchwarden_store::fleet::Heartbeat, HeartbeatReply)>,
    receiver: std::sync::Mutex<
        Option<tokio::sync::mpsc::Receiver<(patchwarden_store::fleet::Heartbeat, HeartbeatReply)>>,
    >,
}

/// Most heartbeats stored in one transaction.
const MAX_HEARTBEAT_BATCH: usize = 512;

/// Hosts whose findings are to be recomputed, each queued once however often it is asked for;
/// workers drain it. The queue is only a speed-up: what is owed is in the store (a host's
/// `findings_version` behind its `inventory_version`), and a starting server queues those hosts
/// again. Inventories handed over are kept only while the queue is short (memory stays bounded
/// under a burst: beyond that the worker reads the inventory back).
const MAX_QUEUED_INVENTORIES: usize = 256;

struct FindingsQueue {
    sender: tokio::sync::mpsc::UnboundedSender<i64>,
    receiver: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<i64>>,
    /// Queued hosts, with the inventory just stored when the check-in handed it over (saves
    /// reading it back).
    #[allow(clippy::type_complexity)]
    queued: std::sync::Mutex<
        std::collections::HashMap<i64, Option<(Arc<patchwarden_model::Inventory>, i64)>>,
    >,
}

impl AppState {
    pub fn new(
        store: Store,
        config: ServerConfig,
        ca_pem: String,
        policy: patchwarden_risk::policy::Policy,
    ) -> AppState {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let (beat_sender, beat_receiver) = tokio::sync::mpsc::channel(16 * MAX_HEARTBEAT_BATCH);
        AppState {
            heartbeats: Arc::new(HeartbeatBatcher {
                sender: beat_sender,
                receiver: std::sync::Mutex::new(Some(beat_receiver)),
            }),
            store,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            ca_pem: Arc::new(ca_pem),
            policy: Arc::new(policy),
            findings: Arc::new(FindingsQueue {
                sender,
                receiver: tokio::sync::Mutex::new(receiver),
                queued: std::sync::Mutex::new(Default::default()),
            }),
            known_hosts: Arc::new(std::sync::Mutex::new(HashMap::new())),
            job_board: Arc::new(crate::jobs::JobBoard::default()),
            rollout_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Starts the heartbeat batcher (once; later calls do nothing).
    pub fn start_heartbeat_batcher(&self) {
        let Some(mut receiver) = self
            .heartbeats
            .receiver
            .lock()
            .ok()
            .and_then(|mut r| r.take())
        else {
            return;
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_HEARTBEAT_BATCH {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let beats: Vec<_> = batch.iter().map(|(b, _)| b.clone()).collect();
                let now = patchwarden_model::now_rfc3339();
                match store.heartbeats(&beats, &now).await {
                    Ok(results) => {
                        for ((_, reply), result) in batch.into_iter().zip(results) {
                            let _ = reply.send(Ok(result));
                        }
                    }
                    Err(e) => {
                        for (_, reply) in batch {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
    }

    /// Stores a heartbeat through the batcher; a revoked host's is refused (401).
    async fn heartbeat(&self, beat: patchwarden_store::fleet::Heartbeat) -> Answer<CheckInResult> {
        let host_id = beat.host_id;
        match self.heartbeat_outcome(beat).await? {
            HeartbeatOutcome::Answered(result) => Ok(result),
            HeartbeatOutcome::Refused => {
                self.forget_host(host_id);
                Err(Failure::new(
                    StatusCode::UNAUTHORIZED,
                    format!("the credential of host {host_id} was revoked"),
                ))
            }
        }
    }

    async fn heartbeat_outcome(
        &self,
        beat: patchwarden_store::fleet::Heartbeat,
    ) -> Answer<HeartbeatOutcome> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let unavailable =
            |e: String| Failure::new(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"));
        self.heartbeats
            .sender
            .send((beat, reply))
            .await
            .map_err(|_| unavailable("the heartbeat batcher stopped".into()))?;
        answer
            .await
            .map_err(|_| unavailable("the heartbeat batcher stopped".into()))?
            .map_err(unavailable)
    }

    /// Starts `n` workers that recompute the findings of queued hosts.
    pub fn start_findings_workers(&self, n: usize) {
        for _ in 0..n.max(1) {
            let state = self.clone();
            tokio::spawn(async move {
                loop {
                    let next = state.findings.receiver.lock().await.recv().await;
                    let Some(host) = next else { break };
                    let inventory = state
                        .findings
                        .queued
                        .lock()
                        .ok()
                        .and_then(|mut q| q.remove(&host))
                        .flatten();
                    let started = Instant::now();
                    match state.recompute_findings(host, inventory).await {
                        Ok(_) => {
                            state
                                .metrics
                                .observe("findings", started.elapsed().as_secs_f64());
                            // A host's verification may wait for these findings.
                            state.rollout_wake.notify_one();
                        }
                        Err(e) => {
                            state
                                .metrics
                                .count("patchwarden_findings_failures_total", "");
                            eprintln!("findings for host {host}: {e}");
                        }
                    }
                }
            });
        }
    }

    /// Queues a host for findings (once, however often asked), with its inventory when the caller
    /// has it in hand.
    pub fn queue_findings(
        &self,
        host: i64,
        inventory: Option<(Arc<patchwarden_model::Inventory>, i64)>,
    ) {
        let fresh = self
            .findings
            .queued
            .lock()
            .map(|mut q| {
                let keep = q.len() < MAX_QUEUED_INVENTORIES;
                let inventory = inventory.filter(|_| keep);
                match q.entry(host) {
                    std::collections::hash_map::Entry::Occupied(mut e) => {
                        // A newer inventory replaces the older one; none keeps what is there.
                        if inventory.is_some() {
                            e.insert(inventory);
                        }
                        false
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(inventory);
                        true
                    }
                }
            })
            .unwrap_or(true);
        if fresh {
            let _ = self.findings.sender.send(host);
        }
    }

    /// Whether an inventory handed to [`AppState::queue_findings`] now would be kept.
    pub fn findings_queue_keeps_inventories(&self) -> bool {
        self.findings
            .queued
            .lock()
            .map(|q| q.len() < MAX_QUEUED_INVENTORIES)
            .unwrap_or(false)
    }

    /// Applies the knowledge base's change journal (feed writes by any process: a scheduled sync,
    /// `feeds import`, another server): the hosts those changes can touch are marked, then (when
    /// any were) every host owing findings is queued.
    pub async fn apply_knowledge_changes(&self) {
        let started = std::time::Instant::now();
        match self.store.apply_knowledge_changes().await {
            Ok(applied) if applied.changes > 0 => {
                self.metrics.add(
                    "patchwarden_knowledge_changes_total",
                    "",
                    applied.changes as u64,
                );
                self.metrics.add(
                    "patchwarden_hosts_marked_by_knowledge_changes_total",
                    "",
                    applied.hosts_marked as u64,
                );
                eprintln!(
                    "knowledge base changed ({} writes: {} packages, {} CVEs): findings of {} hosts to recompute (found in {} ms)",
                    applied.changes, applied.packages, applied.cves, applied.hosts_marked,
                    started.elapsed().as_millis()
                );
            }
            Ok(_) => return,
            Err(e) => eprintln!("applying knowledge-base changes: {e}"),
        }
        self.refresh_pending_findings().await;
    }

    /// Applies knowledge-base changes every `every` (changes written by other processes).
    pub fn start_knowledge_watcher(&self, every: std::time::Duration) {
        if every.is_zero() {
            return;
        }
        let state = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                state.apply_knowledge_changes().await;
            }
        });
    }

    /// Queues the hosts whose stored inventory is newer than their findings (after a crash between
    /// the two, or a knowledge-base change that marked them).
    pub async fn refresh_pending_findings(&self) {
        let Ok(hosts) = self.store.hosts_needing_findings().await else {
            return;
        };
        for host in hosts {
            self.queue_findings(host, None);
        }
    }

    /// Runs the host pipeline on its inventory (the one given, else the stored one) and replaces
    /// the host's findings.
    pub async fn recompute_findings(
        &self,
        host_id: i64,
        inventory: Option<(Arc<patchwarden_model::Inventory>, i64)>,
    ) -> Result<usize, String> {
        let (inventory, version) = match inventory {
            Some(given) => given,
            None => match self
                .store
                .host_inventory(host_id)
                .await
                .map_err(|e| e.to_string())?
            {
                Some((inv, version)) => (Arc::new(inv), version),
                None => return Ok(0),
            },
        };
        let labels = self
            .store
            .host_labels(host_id)
            .await
            .map_err(|e| e.to_string())?;
        let now = patchwarden_model::now_rfc3339();
        let options = patchwarden_findings::ScanOptions {
            asset: patchwarden_risk::Asset {
                criticality: labels
                    .get("criticality")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_default(),
                internet_facing: labels
                    .get("internet_facing")
                    .is_some_and(|v| v == "true" || v == "yes"),
            },
            policy: (*self.policy).clone(),
            record_history: true,
            now: now.clone(),
            distro_info_dir: self.config.distro_info_dir.clone(),
            ..Default::default()
        };
        let rows = patchwarden_findings::with_report(
            &self.store,
            &inventory,
            &options,
            &mut |_| {},
            |report, _, _| {
                report
                    .findings
                    .iter()
                    .map(|f| FindingRow {
                        package: f.package.to_owned(),
                        advisory_id: f.advisory_id.to_string(),
                        cves: f.cves.to_vec(),
                        state: patchwarden_findings::state_name(f.state).to_owned(),
                        severity: f.severity.as_str().to_owned(),
                        kev: f.facts.kev,
                        overdue: f.overdue,
                        risk: f.risk,
                        doc: serde_json::to_string(f).expect("a finding serializes"),
                    })
                    .collect::<Vec<_>>()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        self.store
            .replace_host_findings(host_id, version, &rows, &now)
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows.len())
    }

    pub(crate) fn stale_secs(&self) -> i64 {
        self.config.stale_after.as_secs() as i64
    }
}

/// An error answer.
pub struct Failure(StatusCode, String);

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure(status, message.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<patchwarden_store::StoreError> for Failure {
    fn from(e: patchwarden_store::StoreError) -> Failure {
        Failure::new(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"))
    }
}

pub(crate) type Answer<T> = Result<T, Failure>;

pub(crate) fn json<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

/// The bearer secret of a request.
fn bearer(headers: &HeaderMap) -> Answer<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| Failure::new(StatusCode::UNAUTHORIZED, "no Authorization header"))?
        .to_str()
        .map_err(|_| {
            Failure::new(
                StatusCode::UNAUTHORIZED,
                "the Authorization header is not text",
            )
        })?;
    value.strip_prefix("Bearer ").map(str::trim).ok_or_else(|| {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            "the Authorization header is not `Bearer <token>`",
        )
    })
}

impl AppState {
    /// The user presenting a token, if its role reaches `needed`.
    pub(crate) async fn user(
        &self,
        headers: &HeaderMap,
        needed: Role,
    ) -> Answer<patchwarden_store::fleet::ApiUser> {
        let secret = bearer(headers)?;
        match SecretKind::of(secret) {
            Some(SecretKind::User) => {}
            Some(SecretKind::Host) => {
                return Err(Failure::new(
                    StatusCode::FORBIDDEN,
                    "a host credential cannot use the user API",
                ))
            }
            _ => return Err(Failure::new(StatusCode::UNAUTHORIZED, "not a user token")),
        }
        let user = self
            .store
            .user_by_token(&secrets::digest(secret))
            .await?
            .ok_or_else(|| {
                Failure::new(StatusCode::UNAUTHORIZED, "unknown or revoked user token")
            })?;
        if user.role < needed {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                format!(
                    "user {} has role {}; this needs {}",
                    user.name,
                    user.role.as_str(),
                    needed.as_str()
                ),
            ));
        }
        Ok(user)
    }

    /// The host presenting its credential.
    pub(crate) async fn host(&self, headers: &HeaderMap) -> Answer<HostCredential> {
        self.authenticate_host(&host_secret_digest(headers)?).await
    }

    /// The host holding the credential with this digest, looked up in the store (refused when
    /// unknown or revoked); remembered for its heartbeats.
    async fn authenticate_host(&self, secret_digest: &str) -> Answer<HostCredential> {
        let host = self
            .store
            .host_by_secret(secret_digest)
            .await?
            .ok_or_else(|| Failure::new(StatusCode::UNAUTHORIZED, "unknown host credential"))?;
        if host.revoked {
            return Err(Failure::new(
                StatusCode::UNAUTHORIZED,
                format!("the credential of host {} was revoked", host.id),
            ));
        }
        if let Ok(mut known) = self.known_hosts.lock() {
            if known.len() >= MAX_KNOWN_HOSTS {
                known.clear();
            }
            known.insert(secret_digest.to_owned(), host.id);
        }
        Ok(host)
    }

    fn known_host(&self, secret_digest: &str) -> Option<i64> {
        self.known_hosts.lock().ok()?.get(secret_digest).copied()
    }

    fn forget_host(&self, host_id: i64) {
        if let Ok(mut known) = self.known_hosts.lock() {
            known.retain(|_, id| *id != host_id);
        }
    }
}

/// The digest of the request's host credential (401 without one, or with another kind).
fn host_secret_digest(headers: &HeaderMap) -> Answer<String> {
    let secret = bearer(headers)?;
    if SecretKind::of(secret) != Some(SecretKind::Host) {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "not a host credential",
        ));
    }
    Ok(secrets::digest(secret))
}

/// A document the store holds, parsed; a 500 naming it when it does not parse (the server wrote
/// it: that is the server's fault, never the client's).
pub(crate) fn stored<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Answer<T> {
    serde_json::from_str(text).map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored {what}: {e}"),
        )
    })
}

/// Parses a JSON body, naming what was wrong (with line and column).
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> Answer<T> {
    serde_json::from_slice(body)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("{what}: {e}")))
}

/// The body, or the extractor's refusal (413 beyond the limit) as a JSON error.
pub(crate) fn body(
    result: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Bytes> {
    result.map_err(|e| {
        let status = e.status();
        Failure::new(
            status,
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                "the request body is larger than the server accepts (max_body_bytes)".to_owned()
            } else {
                e.body_text()
            },
        )
    })
}

pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/ca.pem", get(ca_pem))
        .route("/v1/enroll", post(enroll))
        .route("/v1/checkin", post(checkin))
        .route("/v1/jobs/next", get(crate::jobs::next_job))
        .route("/v1/offers", post(crate::plans::put_offers))
        .route("/v1/plans", post(crate::plans::plan_hosts))
        .route("/v1/jobs/{id}", get(crate::jobs::job))
        .route("/v1/jobs/{id}/report", post(crate::jobs::report))
        .route("/v1/hosts/{id}/jobs", post(crate::jobs::create))
        .route(
            "/v1/changes",
            post(crate::changes::create).get(crate::changes::list),
        )
        .route(
            "/v1/changes/{id}/rollout",
            post(crate::changes::steer_rollout),
        )
        .route("/v1/changes/{id}", get(crate::changes::get_change))
        .route("/v1/changes/{id}/actions", post(crate::changes::act))
        .route("/v1/hosts", get(hosts))
        .route("/v1/hosts/{id}", get(host))
        .route("/v1/hosts/{id}/findings", get(host_findings))
        .route("/v1/hosts/{id}/history", get(host_history))
        .route("/v1/hosts/{id}/labels", put(host_labels))
        .route("/v1/hosts/{id}/revoke", post(revoke_host))
        .route("/v1/findings", get(findings))
        .route("/v1/cves/{cve}/hosts", get(cve_hosts))
        .route("/v1/summary", get(summary))
        .route("/v1/enroll-tokens", post(create_enroll_token))
        .route("/v1/users", post(create_user))
        .route("/v1/assets", put(replace_assets))
        .fallback(|| async { Failure::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refuse_oversized,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// A body announced larger than the limit gets its 413 at once — after the body is read and
/// dropped (up to a cap), so that the client, still sending, reads the answer instead of a reset
/// connection.
async fn refuse_oversized(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = state.config.max_body_bytes;
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(n) if n > limit as u64 => {
            let cap = (limit.saturating_mul(4)).max(64 << 20);
            let _ = axum::body::to_bytes(request.into_body(), cap).await;
            Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body ({n} bytes) is larger than the server accepts ({limit} bytes, max_body_bytes)"),
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

/// Counts every request by route and status, and times it.
async fn observe(
    State(state): State<AppState>,
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = matched
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .observe(&route, started.elapsed().as_secs_f64());
    state.metrics.count(
        "patchwarden_http_requests_total",
        &format!(
            "route=\"{route}\",status=\"{}\"",
            response.status().as_u16()
        ),
    );
    response
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.user_count().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            Failure::new(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}")).into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn ca_pem(State(state): State<AppState>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        state.ca_pem.as_str().to_owned(),
    )
        .into_response()
}

async fn enroll(
    State(state): State<AppState>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    let request: EnrollRequest = parse_body(&body(raw)?, "enrollment request")?;
    if request.hostname.trim().is_empty() || request.hostname.len() > 253 {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "hostname: must be 1 to 253 characters",
        ));
    }
    if SecretKind::of(&request.token) != Some(SecretKind::Enrollment) {
        state
            .metrics
            .count("patchwarden_enrollments_total", "result=\"refused\"");
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "token: not an enrollment token",
        ));
    }
    let secret = secrets::generate(SecretKind::Host);
    let now = patchwarden_model::now_rfc3339();
    match state
        .store
        .enroll_host(
            &secrets::digest(&request.token),
            &now,
            request.hostname.trim(),
            request.machine_id.as_deref(),
            &secrets::digest(&secret),
        )
        .await?
    {
        Ok((host_id, labels)) => {
            state
                .metrics
                .count("patchwarden_enrollments_total", "result=\"enrolled\"");
            Ok(json(&EnrollResponse {
                host_id,
                host_secret: secret,
                labels,
            }))
        }
        Err(refusal) => {
            state
                .metrics
                .count("patchwarden_enrollments_total", "result=\"refused\"");
            Err(Failure::new(StatusCode::UNAUTHORIZED, refusal.to_string()))
        }
    }
}

async fn checkin(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    // A heartbeat of a host this process knows skips the credential lookup: the heartbeat batch
    // refuses a revoked host itself. Anything else is authenticated against the store first.
    let secret_digest = host_secret_digest(&headers)?;
    let known = state.known_host(&secret_digest);
    let mut host_id = match known {
        Some(id) => id,
        None => state.authenticate_host(&secret_digest).await?.id,
    };
    let raw = body(raw)?;
    // The packages stay borrowed from the body: copying them was most of a check-in's CPU.
    let report: CheckInView<'_> = serde_json::from_slice(&raw)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("check-in: {e}")))?;
    if known.is_some() && report.inventory.is_some() {
        host_id = state.authenticate_host(&secret_digest).await?.id;
    }
    if report.idempotency_key.is_empty() || report.idempotency_key.len() > 128 {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key: must be 1 to 128 characters",
        ));
    }
    let digest = match &report.inventory {
        Some(inventory) => {
            if inventory.head.schema_version != patchwarden_model::INVENTORY_SCHEMA_VERSION {
                return Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "inventory.schema_version: {} is not supported (this server reads {})",
                        inventory.head.schema_version,
                        patchwarden_model::INVENTORY_SCHEMA_VERSION
                    ),
                ));
            }
            // The agent's digest is stored as sent: its heartbeats are compared with it, digest
            // against digest of the agent's own making, so an agent whose serialization differs
            // from this server's (a newer field) is not asked for its inventory at every
            // heartbeat. (Re-serializing and hashing the inventory here was a tenth of the
            // check-in.) A host can only misstate its own state, which it reports anyway.
            if report.digest.is_empty() {
                patchwarden_model::fleet::inventory_digest(&inventory.to_inventory())
            } else {
                report.digest.clone()
            }
        }
        None => report.digest.clone(),
    };
    if !is_sha256_hex(&digest) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "digest: must be a SHA-256 in lowercase hex (64 characters)",
        ));
    }
    let now = patchwarden_model::now_rfc3339();
    let outcome = match &report.inventory {
        None => patchwarden_store::fleet::CheckInOutcome {
            result: state
                .heartbeat(patchwarden_store::fleet::Heartbeat {
                    host_id,
                    idempotency_key: report.idempotency_key.clone(),
                    digest: digest.clone(),
                })
                .await?,
            appeared: 0,
            disappeared: 0,
            inventory_version: 0,
        },
        Some(inventory) => {
            state
                .store
                .check_in(
                    host_id,
                    &report.idempotency_key,
                    &digest,
                    Some(inventory),
                    &now,
                )
                .await?
        }
    };
    let result_name = serde_json::to_value(outcome.result)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    state.metrics.count(
        "patchwarden_checkins_total",
        &format!("result=\"{result_name}\""),
    );
    if outcome.result == patchwarden_model::fleet::CheckInResult::Stored {
        // The report is committed; its findings follow in the background (and are queued again
        // at start if this process dies before they are stored).
        let version = outcome.inventory_version;
        // The owned inventory is built only when the queue keeps it (not under a burst: the
        // worker then reads it back from the store).
        let inventory = report
            .inventory
            .as_ref()
            .filter(|_| state.findings_queue_keeps_inventories())
            .map(|view| (Arc::new(view.to_inventory()), version));
        state.queue_findings(host_id, inventory);
    }
    Ok(json(&CheckInAck {
        result: outcome.result,
        interval_secs: state.config.checkin_interval.as_secs(),
        appeared: outcome.appeared,
        disappeared: outcome.disappeared,
    }))
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    pub(crate) wait_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsQuery {
    os: Option<String>,
    /// `key=value`, repeatable as a comma-separated list.
    label: Option<String>,
    group: Option<String>,
    stale: Option<bool>,
}

pub(crate) fn query<T: serde::de::DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Answer<T> {
    q.map(|Query(q)| q)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.body_text()))
}

async fn hosts(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<HostsQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    let q = query(q)?;
    let mut labels = Vec::new();
    for pair in q.label.iter().flat_map(|l| l.split(',')) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("label: {pair:?} is not key=value"),
            )
        })?;
        labels.push((k.to_owned(), v.to_owned()));
    }
    if let Some(g) = q.group {
        labels.push(("group".into(), g));
    }
    let filter = HostFilter {
        os: q.os,
        labels,
        stale: q.stale,
    };
    Ok(json(&state.store.hosts(&filter, state.stale_secs()).await?))
}

pub(crate) fn host_id(raw: &str) -> Answer<i64> {
    raw.parse().map_err(|_| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            format!("host id {raw:?} is not a number"),
        )
    })
}

async fn host(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    let id = host_id(&id)?;
    let host = state
        .store
        .host(id, state.stale_secs())
        .await?
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("no host {id}")))?;
    Ok(json(&host))
}

async fn host_findings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    let id = host_id(&id)?;
    if state.store.host(id, 0).await?.is_none() {
        return Err(Failure::new(StatusCode::NOT_FOUND, format!("no host {id}")));
    }
    let rows = state
        .store
        .fleet_findings(&FindingFilter {
            host_id: Some(id),
            ..Default::default()
        })
        .await?;
    Ok(json(&finding_list(rows)))
}

fn finding_list(rows: Vec<(i64, String, String)>) -> Vec<HostFinding> {
    rows.into_iter()
        .map(|(host_id, hostname, doc)| HostFinding {
            host_id,
            hostname,
            finding: serde_json::from_str(&doc).unwrap_or(serde_json::Value::Null),
        })
        .collect()
}

async fn host_history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    let id = host_id(&id)?;
    let rows = state.store.package_history(id).await?;
    let list: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(package, version, appeared, disappeared)| {
            serde_json::json!({"package": package, "version": version, "appeared_at": appeared, "disappeared_at": disappeared})
        })
        .collect();
    Ok(json(&list))
}

async fn host_labels(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    state.user(&headers, Role::Operator).await?;
    let id = host_id(&id)?;
    let labels: BTreeMap<String, String> = parse_body(&body(raw)?, "labels")?;
    if labels.keys().any(|k| k.is_empty() || k.len() > 64) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "labels: keys must be 1 to 64 characters",
        ));
    }
    if !state.store.set_host_labels(id, &labels).await? {
        return Err(Failure::new(StatusCode::NOT_FOUND, format!("no host {id}")));
    }
    // Criticality and exposure feed the risk score.
    state.queue_findings(id, None);
    Ok(json(&state.store.host(id, state.stale_secs()).await?))
}

async fn revoke_host(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<Response> {
    state.user(&headers, Role::Operator).await?;
    let id = host_id(&id)?;
    if !state.store.revoke_host(id).await? {
        return Err(Failure::new(StatusCode::NOT_FOUND, format!("no host {id}")));
    }
    state.forget_host(id);
    Ok(json(&serde_json::json!({"revoked": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingsQuery {
    severity: Option<String>,
    #[serde(default)]
    kev: bool,
    #[serde(default)]
    overdue: bool,
    limit: Option<i64>,
}

async fn findings(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    let q = query(q)?;
    if let Some(s) = &q.severity {
        if !["low", "medium", "high", "critical"].contains(&s.as_str()) {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("severity: {s:?} is not low, medium, high or critical"),
            ));
        }
    }
    let rows = state
        .store
        .fleet_findings(&FindingFilter {
            min_severity: q.severity,
            kev: q.kev,
            overdue: q.overdue,
            host_id: None,
            limit: q.limit,
        })
        .await?;
    Ok(json(&finding_list(rows)))
}

async fn cve_hosts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(cve): Path<String>,
) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    Ok(json(&state.store.hosts_affected_by(&cve).await?))
}

async fn summary(State(state): State<AppState>, headers: HeaderMap) -> Answer<Response> {
    state.user(&headers, Role::Auditor).await?;
    Ok(json(&state.store.fleet_summary(state.stale_secs()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEnrollToken {
    /// Lifetime in seconds (default one day).
    expires_secs: Option<u64>,
    /// How many hosts may enroll with it (default 1).
    uses: Option<i64>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

async fn create_enroll_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    let user = state.user(&headers, Role::Operator).await?;
    let request: NewEnrollToken = parse_body(&body(raw)?, "enrollment token request")?;
    let uses = request.uses.unwrap_or(1);
    if uses < 1 {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "uses: must be at least 1",
        ));
    }
    let (token, expires_at) = create_enrollment_token(
        &state.store,
        request.expires_secs.unwrap_or(86400),
        uses,
        &request.labels,
        &user.name,
    )
    .await?;
    Ok(json(
        &serde_json::json!({"token": token, "expires_at": expires_at, "uses": uses}),
    ))
}

/// Creates an enrollment token valid for `expires_secs` and `uses` enrollments; returns the token
/// (shown once) and its expiry. Used by the API and by `patchwarden enroll-token create`.
pub async fn create_enrollment_token(
    store: &Store,
    expires_secs: u64,
    uses: i64,
    labels: &BTreeMap<String, String>,
    created_by: &str,
) -> Result<(String, String), patchwarden_store::StoreError> {
    let token = secrets::generate(SecretKind::Enrollment);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let expires_at = patchwarden_model::rfc3339(
        now.saturating_add(expires_secs.min(i64::MAX as u64 / 2) as i64),
    );
    store
        .create_enroll_token(
            &secrets::digest(&token),
            &expires_at,
            uses,
            labels,
            created_by,
        )
        .await?;
    Ok((token, expires_at))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: Role,
}

async fn create_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    state.user(&headers, Role::Admin).await?;
    let request: NewUser = parse_body(&body(raw)?, "user request")?;
    if request.name.is_empty() || request.name.len() > 64 {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "name: must be 1 to 64 characters",
        ));
    }
    let token = secrets::generate(SecretKind::User);
    state
        .store
        .create_user(&request.name, request.role, &secrets::digest(&token))
        .await
        .map_err(|e| Failure::new(StatusCode::CONFLICT, format!("user {}: {e}", request.name)))?;
    Ok(json(
        &serde_json::json!({"name": request.name, "role": request.role, "token": token}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetList {
    source: String,
    assets: Vec<(String, Vec<String>)>,
}

async fn replace_assets(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer<Response> {
    state.user(&headers, Role::Operator).await?;
    let list: AssetList = parse_body(&body(raw)?, "asset list")?;
    if list.assets.iter().any(|(n, _)| n.is_empty()) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "assets: a host name is empty",
        ));
    }
    state
        .store
        .replace_expected_assets(&list.assets, &list.source)
        .await?;
    Ok(json(&serde_json::json!({"assets": list.assets.len()})))
}

#[cfg(test)]
mod openapi_tests {
    /// Every route the router serves is described in the OpenAPI document, and nothing else is.
    #[test]
    fn the_openapi_document_describes_exactly_the_routes_served() {
        let source = include_str!("api.rs");
        let served: std::collections::BTreeSet<&str> = source
            .split(".route(")
            .skip(1)
            .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
            .filter(|path| path.starts_with('/'))
            .collect();
        let doc: serde_json::Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        let described: std::collections::BTreeSet<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(served.len() > 20, "{served:?}");
        assert_eq!(served, described);
    }
}
