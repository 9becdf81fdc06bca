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

/// A stored job: signed (as queued since job signing), or a plain job queued before it (agents
/// refuse those as unsigned).
pub enum StoredJob {
    Signed {
        envelope: patchwarden_model::job_signature::SignedJob,
        claims: patchwarden_model::job_signature::JobClaims,
    },
    Unsigned(patchwarden_model::job::PackageJob),
}

impl StoredJob {
    /// Reads a job row's document.
    pub fn parse(text: &str, id: &str) -> Result<StoredJob, DocumentError> {
        use patchwarden_model::job_signature::SignedJob;
        if let Ok(envelope) = serde_json::from_str::<SignedJob>(text) {
            let claims: patchwarden_model::job_signature::JobClaims =
                parse(&envelope.claims, || format!("claims of job {id}"))?;
            return Ok(StoredJob::Signed { envelope, claims });
        }
        Ok(StoredJob::Unsigned(parse(text, || format!("job {id}"))?))
    }

    pub fn job(&self) -> &patchwarden_model::job::PackageJob {
        match self {
            StoredJob::Signed { claims, .. } => &claims.job,
            StoredJob::Unsigned(job) => job,
        }
    }

    /// What the agent is given: the envelope; an unsigned job travels as an envelope with no
    /// signature (the agent refuses it and says why).
    pub fn delivery(self, id: &str) -> patchwarden_model::job_signature::SignedJob {
        match self {
            StoredJob::Signed { envelope, .. } => envelope,
            StoredJob::Unsigned(job) => patchwarden_model::job_signature::SignedJob {
                id: id.to_owned(),
                claims: serde_json::to_string(&job).expect("a job serializes"),
                key: String::new(),
                signature: String::new(),
            },
        }
    }
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
