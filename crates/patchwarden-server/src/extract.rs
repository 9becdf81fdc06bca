//! Request extractors that turn bad input into the API's errors before a handler runs: a JSON body
//! ([`Body<T>`]: 413 beyond the size limit, 400 naming what the body is and what is wrong with it),
//! a query ([`Q<T>`]: 400), and typed path ids ([`HostId`], [`JobId`], [`ChangeId`]: a malformed id
//! is a 400; a well-formed one that names nothing is the handler's 404).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{Answer, ApiError};

/// A request body type, named in errors (`"change: missing field …"`).
pub trait RequestBody: DeserializeOwned {
    const NAME: &'static str;
}

/// A JSON body of type `T`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: RequestBody> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Answer<Self> {
        let bytes = raw_body(request, state).await?;
        let body = serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::BadRequest(format!("{}: {e}", T::NAME)))?;
        refuse_nul(&bytes, T::NAME)?;
        Ok(body)
    }
}

/// Refuses a JSON body holding a NUL character anywhere (only ever escaped, `\u0000`): no client
/// field needs one, a terminal or a C string would cut at it, and PostgreSQL cannot store it (it
/// was a 503 there). The 400 names where it is (`check-in.inventory.packages[0].version`); the
/// rare path alone parses the body again to find it.
pub fn refuse_nul(body: &[u8], name: &str) -> Answer<()> {
    // On every body, the check-in's included: memchr's SIMD search (a byte-window scan cost ~1 ms
    // per MiB; docs/benchmarks.md).
    if memchr::memmem::find(body, b"\\u0000").is_none() {
        return Ok(());
    }
    fn path(value: &serde_json::Value, at: &str) -> Option<String> {
        match value {
            serde_json::Value::String(s) => s.contains('\0').then(|| at.to_owned()),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| path(v, &format!("{at}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.contains('\0') {
                    Some(format!("{at} (a key)"))
                } else {
                    path(v, &format!("{at}.{k}"))
                }
            }),
            _ => None,
        }
    }
    match serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| path(&v, name))
    {
        Some(at) => Err(ApiError::BadRequest(format!(
            "{at}: holds a NUL character (U+0000), which no field accepts"
        ))),
        None => Ok(()),
    }
}

/// The body's bytes, or the refusal (413 beyond the limit) as the API's error.
pub async fn raw_body<S: Send + Sync>(request: Request, state: &S) -> Answer<Bytes> {
    Bytes::from_request(request, state).await.map_err(|e| {
        let status = e.status();
        if crate::body_guard::timed_out(&e) {
            ApiError::Other(StatusCode::REQUEST_TIMEOUT, e.body_text())
        } else if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(
                "the request body is larger than the server accepts (max_body_bytes)".into(),
            )
        } else {
            ApiError::Other(status, e.body_text())
        }
    })
}

/// A query string of type `T` (400 naming what is wrong).
pub struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Answer<Self> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Q(q))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// The single path parameter of a route, as text.
async fn path_text<S: Send + Sync>(parts: &mut Parts, state: &S) -> Answer<String> {
    Path::<String>::from_request_parts(parts, state)
        .await
        .map(|Path(p)| p)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// `{id}` of a host route: a positive number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for HostId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Answer<Self> {
        positive_id(parts, state, "host").await.map(HostId)
    }
}

/// `{id}` of `/v1/users/{id}…`: a positive number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for UserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Answer<Self> {
        positive_id(parts, state, "user").await.map(UserId)
    }
}

/// The path's id as a positive number; a 400 naming `what` otherwise.
async fn positive_id<S: Send + Sync>(parts: &mut Parts, state: &S, what: &str) -> Answer<i64> {
    let raw = path_text(parts, state).await?;
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::BadRequest(format!(
            "{what} id {raw:?} is not a number"
        ))),
    }
}

/// The path's id when it is `prefix` followed by 1 to 64 lowercase hex digits (the ids this server
/// makes); a 400 naming `what` otherwise.
async fn prefixed_id<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    prefix: &str,
    what: &str,
) -> Answer<String> {
    let raw = path_text(parts, state).await?;
    if !patchwarden_model::prefixed_hex_id(&raw, prefix) {
        return Err(ApiError::BadRequest(format!(
            "{what} id {raw:?} is not {prefix} and hex digits"
        )));
    }
    Ok(raw)
}

/// `{id}` of a job route: `job-` and hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Answer<Self> {
        prefixed_id(parts, state, "job-", "job").await.map(JobId)
    }
}

/// `{id}` of a change route: `chg-` and hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ChangeId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Answer<Self> {
        prefixed_id(parts, state, "chg-", "change")
            .await
            .map(ChangeId)
    }
}

/// `{cve}` of `/v1/cves/{cve}/hosts`: an identifier of printable ASCII without spaces, at most 64
/// characters (CVE ids, and the advisory-style ids some feeds use in their place).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CveId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CveId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Answer<Self> {
        let raw = path_text(parts, state).await?;
        let ok = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(ApiError::BadRequest(format!(
                "cve {raw:?} is not an identifier"
            )));
        }
        Ok(CveId(raw))
    }
}

/// The body types of the API and the names their errors carry.
macro_rules! request_bodies {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl RequestBody for $ty {
            const NAME: &'static str = $name;
        })*
    };
}

request_bodies! {
    patchwarden_model::fleet::EnrollRequest => "enrollment request",
    patchwarden_model::fleet::EnrollTokenRequest => "enrollment token request",
    patchwarden_model::fleet::UserRequest => "user request",
    patchwarden_model::fleet::UserUpdate => "user update",
    patchwarden_model::fleet::TokenRequest => "token request",
    patchwarden_model::fleet::AssetList => "asset list",
    patchwarden_model::updates::HostOffers => "offers",
    patchwarden_model::job::JobRequest => "job",
    patchwarden_model::job::JobReport => "job report",
    patchwarden_deploy::change_doc::NewChange => "change",
    patchwarden_deploy::change_doc::ActionRequest => "change action",
    patchwarden_deploy::change_doc::RolloutRequest => "rollout action",
    patchwarden_deploy::plan::PlanRequest => "plan request",
}

/// A page's `limit`: `default` when absent, refused (400 naming it) outside 1 to `max` — never
/// clamped silently (`limit=-1` once answered 200).
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Answer<i64> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit: {limit} is not between 1 and {max}"
        )));
    }
    Ok(limit)
}
