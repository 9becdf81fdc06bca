//! Reading the documents the server stored back into their types (`patchwarden-model`,
//! `patchwarden-deploy`): one place that names a document that no longer parses.

use patchwarden_findings::fleet::FleetError;
use patchwarden_model::FindingDoc;
use patchwarden_store::StoreError;

use crate::findings_view::FindingsView;

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("findings: {0}")]
    Findings(#[from] FleetError),
    #[error("stored {what}: {source}")]
    Parse {
        what: String,
        source: serde_json::Error,
    },
}

/// Parses a stored document, naming it when it does not parse.
pub fn parse<T: serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T, DocumentError> {
    serde_json::from_str(text).map_err(|source| DocumentError::Parse {
        what: what(),
        source,
    })
}

/// A host's findings, riskiest first (assembled from its finding set now).
pub async fn host_findings(
    view: &FindingsView,
    host: i64,
) -> Result<Vec<FindingDoc>, DocumentError> {
    Ok(view.host(host).await?)
}

impl From<DocumentError> for crate::error::ApiError {
    fn from(e: DocumentError) -> crate::error::ApiError {
        match e {
            DocumentError::Store(e) => crate::error::ApiError::Store(e),
            DocumentError::Findings(e) => e.into(),
            DocumentError::Parse { what, source } => {
                crate::error::ApiError::StoredDocument { what, source }
            }
        }
    }
}
