//! The API's one error type and its JSON answer (`{"error": "..."}`), and the errors of starting a
//! server. Every refusal a handler or an extractor gives is an [`ApiError`]; its variant decides the
//! status: 400 malformed, 401 no or bad credential, 403 beyond the role or another host's data, 404,
//! 409 a conflict with the current state, 413 too large, 503 the store is unavailable, 500 only for
//! a document the server itself stored that no longer parses — never for bad input.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use patchwarden_model::fleet::ApiError as ErrorBody;
use patchwarden_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Another status the request layer decided (a body that could not be read).
    #[error("{1}")]
    Other(StatusCode, String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unavailable(String),
    /// A document the server stored does not parse: the server's fault, never the client's.
    #[error("stored {what}: {source}")]
    StoredDocument {
        what: String,
        source: serde_json::Error,
    },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Other(status, _) => *status,
            ApiError::Store(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::StoredDocument { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The 404 of a host that does not exist.
    pub fn no_host(id: i64) -> ApiError {
        ApiError::NotFound(format!("no host {id}"))
    }
}

/// The message of an error answer, on its response (the request log reads it).
#[derive(Clone)]
pub struct ErrorNote(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = self.to_string();
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error: error.clone(),
            }),
        )
            .into_response();
        response.extensions_mut().insert(ErrorNote(error));
        response
    }
}

impl From<patchwarden_findings::fleet::FleetError> for ApiError {
    fn from(e: patchwarden_findings::fleet::FleetError) -> ApiError {
        match e {
            patchwarden_findings::fleet::FleetError::Store(e) => ApiError::Store(e),
            patchwarden_findings::fleet::FleetError::KeyDocument { key, source } => {
                ApiError::StoredDocument {
                    what: format!("finding key {key}"),
                    source,
                }
            }
        }
    }
}

/// What a handler answers.
pub type Answer<T> = Result<T, ApiError>;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the policy file {path}: {source}")]
    PolicyFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Policy(#[from] patchwarden_risk::policy::PolicyError),
    #[error("{0}")]
    SigningKey(#[from] crate::signing_keys::SigningKeyError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}
