//! The fleet wire format, version 1: what an agent and the server say to each other (enrollment,
//! check-in) and what the server answers about its hosts. Documented in `docs/fleet-api.md`; the
//! server also serves it as an OpenAPI document (`/v1/openapi.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Inventory;

/// Roles of API users. `auditor` only reads; `approver` reads and (later) approves changes;
/// `operator` also manages hosts and enrollment tokens; `admin` also manages users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Auditor,
    Approver,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Approver => "approver",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "auditor" => Ok(Role::Auditor),
            "approver" => Ok(Role::Approver),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?} (admin, operator, approver, auditor)"
            )),
        }
    }
}

/// `POST /v1/enroll`: an agent asks for its own credential with an enrollment token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    pub hostname: String,
    #[serde(default)]
    pub machine_id: Option<String>,
}

/// The answer to a successful enrollment: the host's id and its secret (shown once; the server
/// keeps only its digest).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub host_id: i64,
    pub host_secret: String,
    /// Labels the enrollment token gave the host.
    pub labels: BTreeMap<String, String>,
    /// The server's job signing key (ed25519, hex): the agent pins it and runs only jobs it
    /// signed (`model::job_signature`). Absent from servers before job signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_signing_key: Option<String>,
}

/// `POST /v1/checkin`: a full inventory when it changed, otherwise only its digest (a heartbeat).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// Unique per report: a retried report carries the same key and is stored once.
    pub idempotency_key: String,
    /// [`inventory_digest`] of the host's current inventory.
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    pub agent_version: String,
}

/// [`CheckIn`] as the server reads it: the inventory's packages borrowed from the request body
/// ([`InventoryView`]). Accepts what [`CheckIn`] accepts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInView<'a> {
    pub idempotency_key: String,
    pub digest: String,
    #[serde(default, borrow)]
    pub inventory: Option<crate::InventoryView<'a>>,
    pub agent_version: String,
}

/// What the server did with a check-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckInResult {
    /// The inventory was stored (committed before this answer).
    Stored,
    /// The digest matches the stored inventory: last-seen updated.
    Heartbeat,
    /// This idempotency key was stored before: nothing changed.
    Duplicate,
    /// The digest is not the stored one and no inventory came with it: send the full inventory.
    NeedInventory,
}

impl CheckInResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckInResult::Stored => "stored",
            CheckInResult::Heartbeat => "heartbeat",
            CheckInResult::Duplicate => "duplicate",
            CheckInResult::NeedInventory => "need_inventory",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckInAck {
    pub result: CheckInResult,
    /// Seconds until the next check-in (before jitter).
    pub interval_secs: u64,
    /// Packages that appeared and disappeared with this report (for `stored`).
    #[serde(default)]
    pub appeared: usize,
    #[serde(default)]
    pub disappeared: usize,
    /// The server's job signing key (hex): an agent enrolled before job signing pins it from here
    /// once (first use); one that pinned a key keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_signing_key: Option<String>,
}

/// An error answer: what was wrong, and where when it is known.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// One host as the fleet queries show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostSummary {
    pub id: i64,
    pub hostname: String,
    pub machine_id: Option<String>,
    /// `Debian 12`, `AlmaLinux 9`, or the os-release name for an unknown distribution.
    pub os: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub enrolled_at: String,
    pub last_seen: String,
    /// Not seen within the server's staleness limit.
    pub stale: bool,
    pub revoked: bool,
    pub packages: i64,
    /// The last inventory's findings are still being computed.
    #[serde(default)]
    pub findings_pending: bool,
    /// When the findings were last computed (none yet: never).
    #[serde(default)]
    pub findings_at: Option<String>,
    /// Open findings by severity name, and `kev`, `overdue`, `total`.
    pub findings: BTreeMap<String, i64>,
    /// Installed packages whose versions do not parse in the release's scheme, so that no advisory
    /// could be judged against them (filled in for one host, `GET /v1/hosts/{id}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unparsable_versions: Vec<UnparsableVersionDoc>,
}

/// An installed package version matching could not judge (it does not parse).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnparsableVersionDoc {
    pub package: String,
    pub arch: String,
    /// `version` or `source_version`.
    pub field: String,
    pub version: String,
    pub reason: String,
}

/// One finding of a host, as stored by the server (the finding itself is the scan report's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostFinding {
    pub host_id: i64,
    pub hostname: String,
    pub finding: crate::FindingDoc,
}

/// A host affected by a CVE, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedHost {
    pub host_id: i64,
    pub hostname: String,
    pub package: String,
    pub advisory_id: String,
    pub state: crate::FindingState,
}

/// The fleet at a glance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetSummary {
    pub hosts: i64,
    pub stale_hosts: i64,
    pub revoked_hosts: i64,
    /// Hosts the asset list expects that never enrolled.
    pub never_enrolled: Vec<String>,
    /// Open findings by severity, and `kev`, `overdue`, `total`.
    pub findings: BTreeMap<String, i64>,
    /// Hosts by OS.
    pub by_os: BTreeMap<String, i64>,
}

/// The digest of what a host's repositories offer (SHA-256 of its JSON): the agent reports its
/// offers again only when this changes.
pub fn offers_digest(offers: &crate::updates::HostOffers) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    serde_json::to_writer(&mut hasher, offers).expect("offers serialize");
    hex(&hasher.finalize())
}

/// The digest an agent and the server compute over an inventory to tell a changed host from an
/// unchanged one: SHA-256 of its JSON with the collection time and collector left out (a
/// re-collection of the same state has the same digest).
pub fn inventory_digest(inventory: &Inventory) -> String {
    use sha2::Digest;
    // Off the server's hot path (the server stores the agent's digest): an agent computes it once
    // per check-in interval, so the plain copy is fine.
    let mut copy = inventory.clone();
    copy.collected_at.clear();
    copy.collector.clear();
    let mut hasher = sha2::Sha256::new();
    serde_json::to_writer(&mut hasher, &copy).expect("an inventory serializes");
    hex(&hasher.finalize())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The bytes of a lowercase or uppercase hex text (none: odd length or not hex).
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lowercase hex of the SHA-256 of `bytes`: the digests of secrets, inventories and certificates.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// `POST /v1/enroll-tokens`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollTokenRequest {
    /// Lifetime in seconds (default one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_secs: Option<u64>,
    /// How many hosts may enroll with it (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<i64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A new enrollment token: shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollTokenResponse {
    pub token: String,
    pub expires_at: String,
    pub uses: i64,
}

/// `POST /v1/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    pub name: String,
    pub role: Role,
    /// The token's lifetime in seconds (none: until rotated or revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_secs: Option<u64>,
}

/// A new user (or a rotated token) and its token: shown once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserResponse {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<String>,
}

/// A user as `GET /v1/users` lists it (never its token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Stable: names may be reused after a user is disabled, ids never.
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    /// The admin who created it (none: the first admin, or a local `patchwarden user create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_revoked_at: Option<String>,
}

/// `PATCH /v1/users/{id}`: a new role, disabled or enabled again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// `POST /v1/users/{id}/token`: a new token replacing the current one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_secs: Option<u64>,
}

/// `PUT /v1/assets`: the hosts that should exist (name, aliases), and where the list came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetList {
    pub source: String,
    pub assets: Vec<(String, Vec<String>)>,
}

/// The answer to `PUT /v1/assets`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetsAck {
    pub assets: usize,
}

/// The answer to `POST /v1/hosts/{id}/revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeAck {
    pub revoked: i64,
}

/// The answer to `POST /v1/offers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffersAck {
    pub host_id: i64,
    pub packages: usize,
    pub advisories: usize,
}

/// One package version a host had, and when it appeared and went (`GET /v1/hosts/{id}/history`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageHistoryEntry {
    pub package: String,
    pub version: String,
    pub appeared_at: String,
    pub disappeared_at: Option<String>,
}
