//! Signed jobs: what a job's signature covers ([`JobClaims`]: the job, the one host that may run
//! it, when it was issued and until when it may start), the envelope that travels from the server
//! to the agent ([`SignedJob`]: the claims as the exact bytes that were signed, the signer's
//! public key, the signature), and the agent's rules for running one ([`check_claims`]).
//!
//! The server signs a job when it queues it, with its own key (never kept in the store), so a job
//! written into the database by anyone else — or replayed, sent to another host, or kept back
//! past its expiry — is refused by the agent before anything runs. The signature itself (ed25519)
//! is made and checked by the server and the agent; this module holds no cryptography and does
//! no I/O.

use serde::{Deserialize, Serialize};

use crate::job::PackageJob;

/// The version of [`JobClaims`] this build writes and reads.
pub const JOB_CLAIMS_VERSION: u32 = 1;

/// What the signature of a job covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobClaims {
    pub v: u32,
    /// The only host whose agent may run it.
    pub host_id: i64,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds: an agent does not start it after this.
    pub expires_at: i64,
    pub job: PackageJob,
}

impl JobClaims {
    /// The claims as the bytes to sign (a JSON text; the agent checks these very bytes, so no
    /// canonical form is needed).
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("job claims serialize")
    }
}

/// A job as queued and delivered (`GET /v1/jobs/next`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedJob {
    /// The job's id (also inside the claims; the agent reports under it even when it refuses).
    pub id: String,
    /// [`JobClaims`] as the JSON text that was signed.
    pub claims: String,
    /// The signer's ed25519 public key (hex).
    pub key: String,
    /// The ed25519 signature of `claims`' bytes (hex).
    pub signature: String,
}

impl SignedJob {
    /// The claims, read from the signed text.
    pub fn open(&self) -> Result<JobClaims, JobRefusal> {
        let claims: JobClaims =
            serde_json::from_str(&self.claims).map_err(|e| JobRefusal::Malformed {
                detail: e.to_string(),
            })?;
        if claims.v != JOB_CLAIMS_VERSION {
            return Err(JobRefusal::Malformed {
                detail: format!(
                    "claims version {} (this agent reads {JOB_CLAIMS_VERSION})",
                    claims.v
                ),
            });
        }
        Ok(claims)
    }
}

/// Why an agent would not run a job it was given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "refusal")]
pub enum JobRefusal {
    /// Not a signed job (a job queued before signing existed, or written by something else).
    #[error("the job is not signed")]
    Unsigned,
    /// Signed, but not with the key this agent pinned at enrollment.
    #[error("signed with key {key}, not the server's job signing key this agent pinned")]
    UnknownKey { key: String },
    /// The signature does not verify: the claims were changed after signing.
    #[error("the signature does not match the job")]
    BadSignature,
    /// The claims cannot be read.
    #[error("the job cannot be read: {detail}")]
    Malformed { detail: String },
    /// The envelope's id is not the signed job's.
    #[error("delivered as job {delivered}, signed as job {signed}")]
    IdMismatch { delivered: String, signed: String },
    /// Signed for another host.
    #[error("signed for host {host_id}, not this host")]
    OtherHost { host_id: i64 },
    /// Past its expiry.
    #[error("expired at {}", crate::rfc3339(*expires_at))]
    Expired { expires_at: i64 },
    /// This agent ran (or refused) this job before: a replay.
    #[error("this host has run job {id} already")]
    AlreadyRun { id: String },
    /// The agent has no pinned key to check the signature with.
    #[error("this agent has no job signing key pinned (enroll it again)")]
    NoPinnedKey,
}

/// A job id as the job routes take it (`job-` and 1 to 64 lowercase hex digits): nothing that
/// could leave a file name or a URL path.
pub fn valid_job_id(id: &str) -> bool {
    crate::prefixed_hex_id(id, "job-")
}

/// The rules an agent applies to claims whose signature verified: the delivered id is the signed
/// one, the job is for this host, it has not expired (`now`: Unix seconds), and this agent has not
/// run it before (`already_run`).
pub fn check_claims(
    delivered_id: &str,
    claims: &JobClaims,
    host_id: i64,
    now: i64,
    already_run: impl FnOnce(&str) -> bool,
) -> Result<(), JobRefusal> {
    if claims.job.id != delivered_id {
        return Err(JobRefusal::IdMismatch {
            delivered: delivered_id.to_owned(),
            signed: claims.job.id.clone(),
        });
    }
    if claims.host_id != host_id {
        return Err(JobRefusal::OtherHost {
            host_id: claims.host_id,
        });
    }
    if now > claims.expires_at {
        return Err(JobRefusal::Expired {
            expires_at: claims.expires_at,
        });
    }
    if already_run(&claims.job.id) {
        return Err(JobRefusal::AlreadyRun {
            id: claims.job.id.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobOperation, PackageTarget, RebootPolicy};

    fn claims(id: &str, host_id: i64, expires_at: i64) -> JobClaims {
        JobClaims {
            v: JOB_CLAIMS_VERSION,
            host_id,
            issued_at: expires_at - 100,
            expires_at,
            job: PackageJob {
                id: id.into(),
                operation: JobOperation::Install,
                packages: vec![PackageTarget {
                    name: "curl".into(),
                    arch: None,
                    version: "7.88.1-10+deb12u15".into(),
                }],
                reboot: RebootPolicy::Never,
                pre_hooks: vec![],
                post_hooks: vec![],
                health_checks: vec![],
                lock_timeout_secs: 60,
            },
        }
    }

    #[test]
    fn each_rule_refuses_on_its_own() {
        let c = claims("j1", 7, 1000);
        let never = |_: &str| false;
        assert_eq!(check_claims("j1", &c, 7, 1000, never), Ok(()));
        assert_eq!(
            check_claims("j2", &c, 7, 1000, never),
            Err(JobRefusal::IdMismatch {
                delivered: "j2".into(),
                signed: "j1".into()
            })
        );
        assert_eq!(
            check_claims("j1", &c, 8, 1000, never),
            Err(JobRefusal::OtherHost { host_id: 7 })
        );
        assert_eq!(
            check_claims("j1", &c, 7, 1001, never),
            Err(JobRefusal::Expired { expires_at: 1000 })
        );
        assert_eq!(
            check_claims("j1", &c, 7, 10, |id| id == "j1"),
            Err(JobRefusal::AlreadyRun { id: "j1".into() })
        );
    }

    #[test]
    fn job_ids_stay_names() {
        assert!(valid_job_id("job-0123456789abcdef01234567"));
        let long = format!("job-{}", "a".repeat(65));
        for bad in [
            "",
            "job-",
            "job-../x",
            "job-a/b",
            "job-A",
            "job-a\u{1b}[2J",
            &long,
        ] {
            assert!(!valid_job_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn claims_are_read_from_the_signed_text_only() {
        let c = claims("j1", 7, 1000);
        let signed = SignedJob {
            id: "j1".into(),
            claims: c.to_text(),
            key: "00".into(),
            signature: "00".into(),
        };
        assert_eq!(signed.open(), Ok(c.clone()));
        // A field the signer did not write is not quietly ignored.
        let mut extra: serde_json::Value = serde_json::from_str(&c.to_text()).unwrap();
        extra["run_as"] = "root".into();
        let tampered = SignedJob {
            claims: extra.to_string(),
            ..signed.clone()
        };
        assert!(matches!(tampered.open(), Err(JobRefusal::Malformed { .. })));
        let future = SignedJob {
            claims: c.to_text().replace("\"v\":1", "\"v\":2"),
            ..signed
        };
        assert!(
            matches!(future.open(), Err(JobRefusal::Malformed { detail }) if detail.contains("version 2"))
        );
        // Refusals say what they are when reported.
        let text = serde_json::to_value(JobRefusal::Expired { expires_at: 0 }).unwrap();
        assert_eq!(text["refusal"], "expired");
        assert_eq!(
            JobRefusal::Expired { expires_at: 0 }.to_string(),
            "expired at 1970-01-01T00:00:00Z"
        );
    }
}
