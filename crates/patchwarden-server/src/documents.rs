//! Reading the documents the server stored back into their types (`patchwarden-model`,
//! `patchwarden-deploy`): one place that names a document that no longer parses.

use patchwarden_model::FindingDoc;
use patchwarden_store::fleet::FindingFilter;
use patchwarden_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
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

/// A host's stored findings, riskiest first.
pub async fn host_findings(store: &Store, host: i64) -> Result<Vec<FindingDoc>, DocumentError> {
    let rows = store
        .fleet_findings(&FindingFilter {
            host_id: Some(host),
            ..Default::default()
        })
        .await?;
    rows.iter()
        .map(|(_, _, doc)| parse(doc, || format!("finding of host {host}")))
        .collect()
}

impl From<DocumentError> for crate::error::ApiError {
    fn from(e: DocumentError) -> crate::error::ApiError {
        match e {
            DocumentError::Store(e) => crate::error::ApiError::Store(e),
            DocumentError::Parse { what, source } => {
                crate::error::ApiError::StoredDocument { what, source }
            }
        }
    }
}
