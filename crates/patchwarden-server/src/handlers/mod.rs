//! The handlers, one file per resource, each function named by its verb. A handler receives what
//! the extractors checked (the caller, typed ids, a parsed body or query), calls the store or a
//! domain crate, and answers JSON; refusals are [`crate::error::ApiError`]s.

pub mod admin;
pub mod agents;
pub mod audit;
pub mod changes;
pub mod findings;
pub mod hosts;
pub mod jobs;
pub mod plans;
pub mod system;
pub mod users;

use axum::response::{IntoResponse, Response};

/// A JSON answer.
pub fn json<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}
