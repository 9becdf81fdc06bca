//! The audit log's contract: the events patchwarden records (who did what to which subject, when),
//! how each entry commits to the one before it (a hash chain), how signed checkpoints pin the
//! chain's head, and the one verification both the server and `patchwarden audit verify` run.
//!
//! An entry's hash is SHA-256 over the previous entry's hash and the entry's canonical JSON
//! ([`AuditEntry::canonical`]: fixed field order, sorted detail keys). Changing any field of a
//! stored entry, removing one, or reordering them breaks the chain at that entry, and
//! [`verify_chain`] names it. A checkpoint is an ed25519 signature of (seq, hash) by the server's
//! key: an attacker able to rewrite the whole chain from some entry on (recomputing every hash)
//! still cannot produce the signatures, so the rewrite shows at the first checkpoint after it.
//! Signing and key handling live with the server (it owns the key); the store only keeps rows.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened (the events the issue of trust lists; new ones are added here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    HostEnrolled,
    HostRevoked,
    HostLabelsChanged,
    UserCreated,
    UserUpdated,
    UserTokenRotated,
    UserTokenRevoked,
    EnrollTokenCreated,
    ChangeCreated,
    ChangeTransition,
    JobQueued,
    JobReported,
    FeedImported,
    FeedSynced,
    FeedRefused,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::HostEnrolled => "host_enrolled",
            AuditAction::HostRevoked => "host_revoked",
            AuditAction::HostLabelsChanged => "host_labels_changed",
            AuditAction::UserCreated => "user_created",
            AuditAction::UserUpdated => "user_updated",
            AuditAction::UserTokenRotated => "user_token_rotated",
            AuditAction::UserTokenRevoked => "user_token_revoked",
            AuditAction::EnrollTokenCreated => "enroll_token_created",
            AuditAction::ChangeCreated => "change_created",
            AuditAction::ChangeTransition => "change_transition",
            AuditAction::JobQueued => "job_queued",
            AuditAction::JobReported => "job_reported",
            AuditAction::FeedImported => "feed_imported",
            AuditAction::FeedSynced => "feed_synced",
            AuditAction::FeedRefused => "feed_refused",
        }
    }
}

impl std::str::FromStr for AuditAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| format!("unknown audit action {s:?}"))
    }
}

/// Who did it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A user of the API, by name (names are unique and normalized).
    User { name: String },
    /// An enrolled host, by id.
    Host { id: i64 },
    /// The server itself or a command-line tool run on the store (`feeds import`).
    System { name: String },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User { name } => write!(f, "user:{name}"),
            Actor::Host { id } => write!(f, "host:{id}"),
            Actor::System { name } => write!(f, "system:{name}"),
        }
    }
}

/// An event to record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub actor: Actor,
    pub action: AuditAction,
    /// What it was done to (`host:12`, `change:chg-…`, `job:job-…`, `feed:kev`, `user:alice`).
    pub subject: String,
    /// Facts of the event (the labels before and after, a transition's states, a feed's digest).
    #[serde(default)]
    pub detail: BTreeMap<String, String>,
}

impl AuditEvent {
    pub fn new(actor: Actor, action: AuditAction, subject: impl Into<String>) -> AuditEvent {
        AuditEvent {
            actor,
            action,
            subject: subject.into(),
            detail: BTreeMap::new(),
        }
    }

    /// The event with one more detail.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> AuditEvent {
        self.detail.insert(key.to_owned(), value.into());
        self
    }

    /// A package job queued for `host` by `actor`: its operation, reboot policy and targets.
    pub fn job_queued(actor: Actor, host: i64, job: &crate::job::PackageJob) -> AuditEvent {
        AuditEvent::new(actor, AuditAction::JobQueued, format!("job:{}", job.id))
            .with("host", host.to_string())
            .with("operation", format!("{:?}", job.operation).to_lowercase())
            .with("reboot", format!("{:?}", job.reboot).to_lowercase())
            .with("packages", targets_text(&job.packages))
    }

    /// A change's transition by `actor` (`key`: `action` or `rollout`), with its comment.
    pub fn change_transition(
        actor: Actor,
        change: &str,
        key: &str,
        action: &str,
        state: &str,
        comment: Option<&str>,
    ) -> AuditEvent {
        let event = AuditEvent::new(
            actor,
            AuditAction::ChangeTransition,
            format!("change:{change}"),
        )
        .with(key, action)
        .with("state", state);
        match comment {
            Some(c) => event.with("comment", c),
            None => event,
        }
    }
}

/// Package targets as `name=version,…` (audit details).
pub fn targets_text(targets: &[crate::job::PackageTarget]) -> String {
    targets
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect::<Vec<_>>()
        .join(",")
}

/// A stored entry: the event, its place in the chain and its hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The hashed form of an entry (everything but its own hash, in a fixed order).
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    at: &'a str,
    actor: &'a Actor,
    action: AuditAction,
    subject: &'a str,
    detail: &'a BTreeMap<String, String>,
    prev_hash: &'a str,
}

impl AuditEntry {
    /// The entry that follows `prev_hash` at `seq`, its hash computed.
    pub fn chained(seq: i64, at: &str, event: AuditEvent, prev_hash: &str) -> AuditEntry {
        let mut entry = AuditEntry {
            seq,
            at: at.to_owned(),
            event,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        entry.hash = entry.computed_hash();
        entry
    }

    /// The canonical bytes the hash covers.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(&Canonical {
            seq: self.seq,
            at: &self.at,
            actor: &self.event.actor,
            action: self.event.action,
            subject: &self.event.subject,
            detail: &self.event.detail,
            prev_hash: &self.prev_hash,
        })
        .expect("an audit entry serializes")
    }

    /// SHA-256 (hex) of the canonical bytes.
    pub fn computed_hash(&self) -> String {
        crate::fleet::sha256_hex(&self.canonical())
    }
}

/// A signed statement that the chain's entry `seq` has `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    pub seq: i64,
    pub hash: String,
    pub at: String,
    /// The signing key's public half (hex, 32 bytes).
    pub public_key: String,
    /// ed25519 over [`AuditCheckpoint::message`] (hex, 64 bytes).
    pub signature: String,
}

impl AuditCheckpoint {
    /// What is signed: `patchwarden-audit-checkpoint\n<seq>\n<hash>`.
    pub fn message(seq: i64, hash: &str) -> Vec<u8> {
        format!("patchwarden-audit-checkpoint\n{seq}\n{hash}").into_bytes()
    }
}

/// `GET /v1/audit`: a page of entries in chain order; `next_after` continues it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_after: Option<i64>,
}

/// Where and how the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainBreak {
    /// The entry's fields no longer give its hash: it was altered.
    Altered { seq: i64 },
    /// Entries are missing before this one (its sequence number skips).
    Removed { seq: i64, expected: i64 },
    /// The entry does not follow the one before it: entries were reordered or replaced.
    Unlinked { seq: i64 },
    /// A checkpoint's hash is not the chain's hash at its entry (the chain was rewritten from
    /// some entry on, hashes recomputed), or its entry is gone.
    CheckpointMismatch { seq: i64 },
    /// A checkpoint's signature does not verify with the pinned key, or was made by another key.
    BadSignature { seq: i64 },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainBreak::Altered { seq } => write!(f, "entry {seq} was altered (its hash no longer matches its contents)"),
            ChainBreak::Removed { seq, expected } => write!(f, "entries {expected}..{} were removed (the entry after them is {seq})", seq - 1),
            ChainBreak::Unlinked { seq } => write!(f, "entry {seq} does not follow the entry before it (entries were reordered or replaced)"),
            ChainBreak::CheckpointMismatch { seq } => write!(f, "the checkpoint at entry {seq} does not match the chain (rewritten from there or before)"),
            ChainBreak::BadSignature { seq } => write!(f, "the checkpoint at entry {seq} is not signed by the server's key"),
        }
    }
}

impl std::error::Error for ChainBreak {}

/// What a verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    pub entries: usize,
    pub checkpoints: usize,
    /// The last entry a valid checkpoint covers (entries after it are held only by the chain).
    pub signed_through: Option<i64>,
}

/// Verifies entries in order from the first (seq 1): each one's hash, its link to the one before,
/// no gaps; then every checkpoint against the chain and `verify_signature` (the caller's ed25519
/// check with the pinned key: `(checkpoint) -> bool`). Names the first break.
pub fn verify_chain(
    entries: &[AuditEntry],
    checkpoints: &[AuditCheckpoint],
    verify_signature: impl Fn(&AuditCheckpoint) -> bool,
) -> Result<ChainReport, ChainBreak> {
    let mut prev = GENESIS;
    let numbers: std::collections::HashSet<i64> = entries.iter().map(|e| e.seq).collect();
    for (expected, e) in (1..).zip(entries) {
        if e.seq != expected {
            // The missing number further on: out of order, not removed.
            if e.seq > expected && !numbers.contains(&expected) {
                return Err(ChainBreak::Removed {
                    seq: e.seq,
                    expected,
                });
            }
            return Err(ChainBreak::Unlinked { seq: e.seq });
        }
        // The link first: an entry moved to another place (its number changed with it) is
        // named as out of place rather than as altered.
        if e.prev_hash != prev {
            return Err(ChainBreak::Unlinked { seq: e.seq });
        }
        if e.computed_hash() != e.hash {
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        prev = &e.hash;
    }
    let mut signed_through = None;
    for c in checkpoints {
        let at = usize::try_from(c.seq - 1).ok().and_then(|i| entries.get(i));
        if at.is_none_or(|e| e.hash != c.hash) {
            return Err(ChainBreak::CheckpointMismatch { seq: c.seq });
        }
        if !verify_signature(c) {
            return Err(ChainBreak::BadSignature { seq: c.seq });
        }
        signed_through = signed_through.max(Some(c.seq));
    }
    Ok(ChainReport {
        entries: entries.len(),
        checkpoints: checkpoints.len(),
        signed_through,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
            let event = AuditEvent::new(
                Actor::User {
                    name: "alice".into(),
                },
                AuditAction::HostLabelsChanged,
                format!("host:{seq}"),
            )
            .with("role", "database");
            out.push(AuditEntry::chained(
                seq,
                "2026-12-03T00:00:00Z",
                event,
                &prev,
            ));
        }
        out
    }

    #[test]
    fn every_tampering_is_named_at_its_entry() {
        let good = chain(5);
        let ok = |_: &AuditCheckpoint| true;
        assert_eq!(verify_chain(&good, &[], ok).unwrap().entries, 5);
        let mut altered = good.clone();
        altered[2].event.detail.insert("role".into(), "".into());
        assert_eq!(
            verify_chain(&altered, &[], ok),
            Err(ChainBreak::Altered { seq: 3 })
        );
        let mut removed = good.clone();
        removed.remove(1);
        assert_eq!(
            verify_chain(&removed, &[], ok),
            Err(ChainBreak::Removed {
                seq: 3,
                expected: 2
            })
        );
        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert_eq!(
            verify_chain(&reordered, &[], ok),
            Err(ChainBreak::Unlinked { seq: 3 })
        );
        // Renumbered after a swap (seq fixed, hashes recomputed for the fields): still unlinked.
        let mut renumbered = reordered.clone();
        renumbered[1].seq = 2;
        renumbered[1].hash = renumbered[1].computed_hash();
        renumbered[2].seq = 3;
        renumbered[2].hash = renumbered[2].computed_hash();
        assert_eq!(
            verify_chain(&renumbered, &[], ok),
            Err(ChainBreak::Unlinked { seq: 2 })
        );
        // A rewrite from entry 4 on with every hash recomputed passes the chain, not a checkpoint.
        let checkpoint = AuditCheckpoint {
            seq: 4,
            hash: good[3].hash.clone(),
            at: "2026-12-03T00:00:00Z".into(),
            public_key: "k".into(),
            signature: "s".into(),
        };
        let mut rewritten = good[..3].to_vec();
        let forged = AuditEvent::new(
            Actor::System { name: "x".into() },
            AuditAction::JobQueued,
            "job:forged",
        );
        rewritten.push(AuditEntry::chained(
            4,
            "2026-12-03T00:00:00Z",
            forged,
            &good[2].hash,
        ));
        assert!(verify_chain(&rewritten, &[], ok).is_ok());
        assert_eq!(
            verify_chain(&rewritten, std::slice::from_ref(&checkpoint), ok),
            Err(ChainBreak::CheckpointMismatch { seq: 4 })
        );
        assert_eq!(
            verify_chain(&good, std::slice::from_ref(&checkpoint), |_| false),
            Err(ChainBreak::BadSignature { seq: 4 })
        );
        assert_eq!(
            verify_chain(&good, std::slice::from_ref(&checkpoint), ok)
                .unwrap()
                .signed_through,
            Some(4)
        );
    }
}
