//! Routes anyone may call: liveness, readiness, metrics, the API description, the CA certificate.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

pub async fn get_health() -> &'static str {
    "ok\n"
}

/// Ready when the store answers.
pub async fn get_ready(State(state): State<AppState>) -> Response {
    match state.store.user_count().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => ApiError::Store(e).into_response(),
    }
}

pub async fn get_metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

pub async fn get_openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}

pub async fn get_ca_pem(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.ca_pem.as_str().to_owned(),
    )
        .into_response()
}
