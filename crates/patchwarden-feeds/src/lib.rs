//! Feed parsers: one module per source (OSV, NVD, KEV, EPSS, Debian tracker, Alpine secdb, Red Hat CSAF
//! VEX), each turning the source's real format into the normalized
//! records of `patchwarden-model` ([`Advisory`], [`CveRecord`], [`KevCatalog`], [`EpssSnapshot`]).
//!
//! Parsers decide nothing about hosts (that is matching) and do no network or database I/O (that is
//! sync and the store); they read bytes or a reader and either return records or a [`FeedError`]
//! naming the file and the record.
//!
//! What a bad record does, per source (the choice is the source's shape):
//! * **OSV** (one advisory per file) and **NVD** (independent CVE records in a page): a malformed record
//!   is an error for that record; bulk loaders skip it, count it and name it, and the rest loads.
//!   A file that is not JSON at all is an error for the whole file.
//! * **KEV**, **EPSS**, **Debian tracker**, **Alpine secdb**, **Red Hat VEX** (one coherent document
//!   per file): any malformed
//!   record rejects the whole file, so a damaged download never replaces a good snapshot in part.

pub mod alpine;
pub mod debian;
pub mod debsecan;
mod detect;
pub mod epss;
mod error;
pub mod kev;
pub mod nvd;
pub mod osv;
pub mod redhat;

pub use detect::{detect, FeedFormat};
pub use error::FeedError;
pub use patchwarden_model::{Advisory, CveRecord, EpssSnapshot, KevCatalog};

/// Collects the CVE ids among `ids` (sorted, without duplicates).
pub(crate) fn cve_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = ids
        .into_iter()
        .filter(|i| i.starts_with("CVE-"))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `YYYY-MM-DD` with a plausible month and day.
pub(crate) fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&s[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&s[8..10].parse::<u32>().unwrap_or(0))
}
