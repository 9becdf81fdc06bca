//! patchwarden's shared vocabulary: the types every other crate speaks, and the versioned JSON
//! schemas built from them.
//!
//! * The **inventory report** ([`Inventory`], schema version [`INVENTORY_SCHEMA_VERSION`]): what
//!   `patchwarden inventory` prints and what the agent sends to the server.
//! * The **knowledge base** records ([`Advisory`], [`CveRecord`], [`KevEntry`], [`EpssScore`], with
//!   their [`Provenance`]): what feeds produce and matching reads.
//!
//! * The **fleet wire format** ([`fleet`]): enrollment, check-in and the server's answers about
//!   its hosts; package jobs and their states ([`job`]); the finding document ([`finding`]) that
//!   `scan`, the server, plans and verification all read.
//!
//! The inventory report is documented for users in `docs/inventory-schema.md`; a change to a field's
//! meaning or a removal bumps its schema version, an added optional field does not.
//!
//! This crate holds data and the rules that belong to the data (how a distribution release is named);
//! it does no I/O (beyond reading the clock in [`now_rfc3339`]) and knows nothing of storage or HTTP.

pub mod audit;
pub mod clock;
pub mod feed_guard;
pub mod finding;
pub mod finding_set;
pub mod fleet;
mod inventory;
mod inventory_view;
pub mod job;
pub mod job_signature;
mod knowledge;
mod release;
#[cfg(feature = "testing")]
pub mod testing;
pub mod updates;

pub use finding::{FindingDoc, FindingState, Severity};
pub use inventory::*;
pub use inventory_view::{InventoryView, PackageRef};
pub use knowledge::*;
pub use release::*;

/// Whether `c` is a bidirectional formatting character (ALM, LRM, RLM, the embeddings and
/// overrides, the isolates): invisible, yet it reorders what a terminal or a browser shows.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Formats Unix seconds as RFC 3339 UTC (civil-from-days, proleptic Gregorian).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The current time as RFC 3339 UTC (the one clock reading the model offers, for stamping records).
pub fn now_rfc3339() -> String {
    rfc3339(unix_now())
}

/// An id made of `prefix` and 1 to 64 lowercase hex digits (job and change ids).
pub fn prefixed_hex_id(raw: &str, prefix: &str) -> bool {
    raw.strip_prefix(prefix).is_some_and(|hex| {
        (1..=64).contains(&hex.len()) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Now, in Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whole days from one RFC 3339 time to a later one (calendar dates, UTC); `None` if either does not
/// parse.
pub fn days_between(earlier: &str, later: &str) -> Option<i64> {
    fn days_from_civil(s: &str) -> Option<i64> {
        let (y, m, d) = (
            s.get(0..4)?.parse::<i64>().ok()?,
            s.get(5..7)?.parse::<i64>().ok()?,
            s.get(8..10)?.parse::<i64>().ok()?,
        );
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        Some(era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy)
    }
    Some(days_from_civil(later)? - days_from_civil(earlier)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_between_counts_calendar_days() {
        assert_eq!(
            super::days_between("2026-11-20T10:00:00Z", "2026-11-22T09:00:00Z"),
            Some(2)
        );
        assert_eq!(
            super::days_between("2024-02-28T00:00:00Z", "2024-03-01T00:00:00Z"),
            Some(2)
        );
        assert_eq!(super::days_between("garbage", "2024-03-01T00:00:00Z"), None);
        // Agrees with the formatter in the other direction.
        assert_eq!(
            super::days_between(&super::rfc3339(0), &super::rfc3339(1_700_000_000)),
            Some(1_700_000_000 / 86_400)
        );
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
