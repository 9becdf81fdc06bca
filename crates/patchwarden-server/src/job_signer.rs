//! Signs jobs as they are queued (operators' direct jobs and rollouts' jobs alike) with the
//! state directory's job signing key: the job, its host and its expiry
//! (`model::job_signature::JobClaims`). The key never enters the store, so a job row written by
//! anything but a server is refused by the agent; the agent pinned the public half at enrollment
//! (`EnrollResponse::job_signing_key`).

use std::sync::Arc;
use std::time::Duration;

use patchwarden_model::fleet::hex;
use patchwarden_model::job::PackageJob;
use patchwarden_model::job_signature::{JobClaims, SignedJob, JOB_CLAIMS_VERSION};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// The key files in the state directory.
pub const KEY_FILE: &str = "job-signing.key";
pub const PUBLIC_KEY_FILE: &str = "job-signing.pub";

#[derive(Clone)]
pub struct JobSigner {
    key: Arc<Ed25519KeyPair>,
    /// How long a queued job may wait for its agent.
    ttl: Duration,
}

impl JobSigner {
    pub fn new(key: Ed25519KeyPair, ttl: Duration) -> JobSigner {
        JobSigner {
            key: Arc::new(key),
            ttl,
        }
    }

    /// The state directory's job signing key.
    pub fn load(
        state_dir: &std::path::Path,
        ttl: Duration,
    ) -> Result<JobSigner, crate::signing_keys::SigningKeyError> {
        let key = crate::signing_keys::load_or_create(state_dir, KEY_FILE, PUBLIC_KEY_FILE)?;
        Ok(JobSigner::new(key, ttl))
    }

    /// The public half (hex), as agents pin it.
    pub fn public_key(&self) -> String {
        hex(self.key.public_key().as_ref())
    }

    /// `job` for `host_id`, issued `now` (Unix seconds), signed.
    pub fn sign(&self, host_id: i64, job: &PackageJob, now: i64) -> SignedJob {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = JobClaims {
            v: JOB_CLAIMS_VERSION,
            host_id,
            issued_at: now,
            expires_at: now.saturating_add(ttl),
            job: job.clone(),
        }
        .to_text();
        SignedJob {
            id: job.id.clone(),
            signature: hex(self.key.sign(claims.as_bytes()).as_ref()),
            key: self.public_key(),
            claims,
        }
    }
}
