//! Exact version ordering for the three package families patchwarden supports.
//!
//! This crate owns one question: given two version strings of a distribution, which is newer, as that
//! distribution's own package manager decides it. A wrong answer here is a false positive or a missed
//! vulnerability later, so each scheme mirrors its upstream algorithm rule for rule:
//!
//! * [`Scheme::Deb`]: dpkg's `verrevcmp` over `[epoch:]upstream[-revision]` (Debian, Ubuntu).
//! * [`Scheme::Rpm`]: rpm's `rpmvercmp` over `[epoch:]version[-release]`, a missing epoch being 0
//!   (RHEL, AlmaLinux, Rocky, Fedora, SUSE, CBL-Mariner).
//! * [`Scheme::Apk`]: apk-tools 3's tokenizer (`digit{.digit}{letter}{_suffix{N}}{~hash}{-rN}`) (Alpine).
//!
//! Invalid versions are parse errors naming what is wrong ([`VersionError`]); nothing is guessed.
//!
//! Two ways to compare:
//! * [`compare`] walks both strings directly: no allocation, the right tool for one-off comparisons.
//! * [`SortKey`] is a precomputed byte string whose plain byte order (`memcmp`) equals the scheme's
//!   ordering. Matching compares a fleet's installed versions with advisory ranges hundreds of millions of
//!   times; with keys each comparison is a `memcmp`, and keys can be stored and range-scanned in SQL.
//!
//! Tests check the two against each other and against upstream vectors and the real tools (dpkg/apt_pkg,
//! librpm). The crate does no I/O.

pub mod apk;
pub mod deb;
mod key;
pub mod rpm;

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A package family's version ordering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// dpkg: Debian, Ubuntu and derivatives.
    Deb,
    /// rpm: RHEL and its rebuilds, Fedora, SUSE, CBL-Mariner/Azure Linux.
    Rpm,
    /// apk-tools: Alpine Linux.
    Apk,
}

impl Scheme {
    /// All schemes, in a stable order.
    pub const ALL: [Scheme; 3] = [Scheme::Deb, Scheme::Rpm, Scheme::Apk];

    /// The short name used on the command line and in JSON (`deb`, `rpm`, `apk`).
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Deb => "deb",
            Scheme::Rpm => "rpm",
            Scheme::Apk => "apk",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deb" | "dpkg" => Ok(Scheme::Deb),
            "rpm" => Ok(Scheme::Rpm),
            "apk" => Ok(Scheme::Apk),
            other => Err(format!(
                "unknown version scheme '{other}' (expected deb, rpm or apk)"
            )),
        }
    }
}

/// A version string that its scheme rejects, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionError {
    pub scheme: Scheme,
    pub version: String,
    pub reason: String,
}

impl VersionError {
    pub(crate) fn new(scheme: Scheme, version: &str, reason: impl Into<String>) -> Self {
        VersionError {
            scheme,
            version: version.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} version '{}': {}",
            self.scheme,
            self.version.escape_debug(),
            self.reason
        )
    }
}

impl std::error::Error for VersionError {}

/// Compares two versions under `scheme`, as that scheme's package manager would.
///
/// Both versions are validated first; an invalid one is an error, never a guess.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    match scheme {
        Scheme::Deb => Ok(deb::DebVersion::parse(a)?.cmp(&deb::DebVersion::parse(b)?)),
        Scheme::Rpm => Ok(rpm::Evr::parse(a)?.cmp(&rpm::Evr::parse(b)?)),
        Scheme::Apk => apk::compare(a, b),
    }
}

/// Checks that `version` is valid under `scheme`.
pub fn validate(scheme: Scheme, version: &str) -> Result<(), VersionError> {
    match scheme {
        Scheme::Deb => deb::DebVersion::parse(version).map(|_| ()),
        Scheme::Rpm => rpm::Evr::parse(version).map(|_| ()),
        Scheme::Apk => apk::validate(version),
    }
}

/// A byte string whose lexicographic order equals the version order of its scheme.
///
/// Keys of different schemes must not be compared with each other. Equal versions that are spelled
/// differently (`1.0` and `0:1.0`, `1.01` and `1.1` in rpm) get equal keys.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey(Box<[u8]>);

impl SortKey {
    /// Builds the key of `version` under `scheme`.
    pub fn new(scheme: Scheme, version: &str) -> Result<SortKey, VersionError> {
        let mut out = Vec::with_capacity(version.len() + 8);
        match scheme {
            Scheme::Deb => deb::DebVersion::parse(version)?.write_key(&mut out),
            Scheme::Rpm => rpm::Evr::parse(version)?.write_key(&mut out),
            Scheme::Apk => apk::write_key(version, &mut out)?,
        }
        Ok(SortKey(out.into_boxed_slice()))
    }

    /// The raw bytes, for storage (e.g. a `BLOB` column that SQL can range-scan).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Rebuilds a key from bytes produced by [`SortKey::as_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> SortKey {
        SortKey(bytes.into())
    }
}

impl fmt::Debug for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SortKey(")?;
        for b in self.0.iter() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}
