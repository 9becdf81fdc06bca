//! One log line per request (`tracing`, target `patchwarden::http`): method, route, status,
//! latency, the caller the credential extractors identified (`user:<name>`, `host:<id>`) and, for
//! an error answer, its message — plus the request metrics (count by route and status, latency).
//! Refused credentials (401, 403) log at `warn`, server errors at `error`, probes (`/healthz`,
//! `/readyz`, `/metrics`) at `debug`, the rest at `info`. What the subscriber prints and where is
//! the binary's choice (`patchwarden server --log-format`).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;

use crate::error::ErrorNote;
use crate::state::AppState;

/// Who made the request, once an extractor has authenticated it (request extension).
#[derive(Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<String>>);

impl CallerSlot {
    /// Records the caller in the request's slot (the first identification wins).
    pub fn record(extensions: &axum::http::Extensions, caller: impl FnOnce() -> String) {
        if let Some(slot) = extensions.get::<CallerSlot>() {
            let _ = slot.0.get_or_init(caller);
        }
    }
}

/// Counts, times and logs every request.
pub async fn observe(
    State(state): State<AppState>,
    matched: Option<axum::extract::MatchedPath>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = matched
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().clone();
    let caller = CallerSlot::default();
    request.extensions_mut().insert(caller.clone());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.observe(&route, elapsed.as_secs_f64());
    state.metrics.count(
        "patchwarden_http_requests_total",
        &format!("route=\"{route}\",status=\"{status}\""),
    );
    let caller = caller.0.get().map(String::as_str).unwrap_or("-");
    let error = response
        .extensions()
        .get::<ErrorNote>()
        .map(|n| n.0.as_str())
        .unwrap_or("");
    let latency_ms = (elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let probe = matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics");
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(target: "patchwarden::http", %method, %route, status, latency_ms, caller, error, "request")
        };
    }
    match status {
        500.. => line!(error),
        401 | 403 => line!(warn),
        _ if probe => line!(debug),
        _ => line!(info),
    }
    response
}
