//! Debian version ordering, as dpkg defines it (`lib/dpkg/version.c`, `parseversion` and `verrevcmp`).
//!
//! A version is `[epoch:]upstream[-revision]`. The epoch is a decimal number (missing = 0); the revision
//! starts after the *last* hyphen. Upstream and revision are compared with `verrevcmp`: alternating runs
//! of non-digits and digits; in non-digit runs `~` sorts before everything (even the end), then the end
//! of the run, then letters, then all other characters (by ASCII); digit runs compare numerically.
//!
//! Validation follows `parseversion`; where dpkg only warns (bad characters, an upstream version not
//! starting with a digit) this module rejects, because such a string cannot come from a real package.

use std::cmp::Ordering;

use crate::key::{cmp_digits, push_number};
use crate::{Scheme, VersionError};

const UPSTREAM: u8 = 1;
const REVISION: u8 = 2;
const COLON: u8 = 4;
const HYPHEN: u8 = 8;
const DIGIT: u8 = 16;

/// Which bytes dpkg allows where: alphanumerics and `.+~` anywhere, `-` and `:` only in the upstream
/// version (a hyphen there means a revision follows; a colon needs an epoch).
static CHARS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_digit() {
            t[c] = UPSTREAM | REVISION | DIGIT;
        } else if b.is_ascii_alphanumeric() || b == b'.' || b == b'+' || b == b'~' {
            t[c] = UPSTREAM | REVISION;
        } else if b == b'-' {
            t[c] = UPSTREAM | HYPHEN;
        } else if b == b':' {
            t[c] = UPSTREAM | COLON;
        }
        c += 1;
    }
    t
};

/// A parsed Debian version borrowing from its string.
#[derive(Clone, Copy, Debug)]
pub struct DebVersion<'a> {
    pub epoch: u32,
    pub upstream: &'a str,
    /// Empty when the version has no revision (native packages).
    pub revision: &'a str,
}

impl<'a> DebVersion<'a> {
    /// Parses and validates a version as dpkg does, trimming surrounding white space.
    pub fn parse(input: &'a str) -> Result<DebVersion<'a>, VersionError> {
        // Fast path: a single pass of select-style updates (no data-dependent branches) finds the
        // first ':', the last '-', the length of the leading digits, and whether every byte is allowed
        // in an upstream version and every byte after the last '-' in a revision. Anything unusual takes
        // the careful path, which also words the error.
        let bytes = input.as_bytes();
        let (mut all, mut rev, mut colon, mut hyphen, mut lead) =
            (UPSTREAM, REVISION, usize::MAX, usize::MAX, 0usize);
        for (i, &b) in bytes.iter().enumerate() {
            let class = CHARS[b as usize];
            all &= class;
            let is_hyphen = class & HYPHEN != 0;
            hyphen = if is_hyphen { i } else { hyphen };
            rev = if is_hyphen { REVISION } else { rev & class };
            colon = if class & COLON != 0 && colon == usize::MAX {
                i
            } else {
                colon
            };
            lead = if lead == i && class & DIGIT != 0 {
                i + 1
            } else {
                lead
            };
        }
        let has_colon = colon != usize::MAX;
        let rest_start = if has_colon { colon + 1 } else { 0 };
        // A digits-only epoch of at most 9 digits (so it fits dpkg's int), and with it the last '-'
        // necessarily lies after the colon.
        let epoch_ok = !has_colon || (lead == colon && (1..=9).contains(&colon));
        let has_hyphen = hyphen != usize::MAX;
        let up_end = if has_hyphen { hyphen } else { bytes.len() };
        if all != 0
            && epoch_ok
            && rest_start < up_end
            && bytes[rest_start].is_ascii_digit()
            && (!has_hyphen || (hyphen + 1 < bytes.len() && rev != 0))
        {
            let epoch = bytes[..if has_colon { colon } else { 0 }]
                .iter()
                .fold(0u32, |e, d| e * 10 + u32::from(d - b'0'));
            let rev_start = if has_hyphen { hyphen + 1 } else { bytes.len() };
            return Ok(DebVersion {
                epoch,
                upstream: &input[rest_start..up_end],
                revision: &input[rev_start..],
            });
        }
        Self::parse_careful(input)
    }

    /// The complete `parseversion` rules, one check at a time, each with dpkg's wording.
    fn parse_careful(input: &'a str) -> Result<DebVersion<'a>, VersionError> {
        let err = |reason: &str| VersionError::new(Scheme::Deb, input, reason);
        let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.is_empty() {
            return Err(err("version string is empty"));
        }
        if s.bytes()
            .any(|c| CHARS[c as usize] == 0 && c.is_ascii_whitespace())
        {
            return Err(err("version string has embedded spaces"));
        }
        let (epoch, rest) = match s.find(':') {
            Some(colon) => {
                let digits = &s[..colon];
                if digits.is_empty() {
                    return Err(err("epoch in version is empty"));
                }
                if !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(err("epoch in version is not number"));
                }
                let epoch: u32 = match digits.parse::<u32>() {
                    Ok(e) if e <= i32::MAX as u32 => e,
                    _ => return Err(err("epoch in version is too big")),
                };
                let rest = &s[colon + 1..];
                if rest.is_empty() {
                    return Err(err("nothing after colon in version number"));
                }
                (epoch, rest)
            }
            None => (0, s),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(hyphen) => {
                let revision = &rest[hyphen + 1..];
                if revision.is_empty() {
                    return Err(err("revision number is empty"));
                }
                (&rest[..hyphen], revision)
            }
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(err("version number is empty"));
        }
        if !upstream.as_bytes()[0].is_ascii_digit() {
            return Err(err("version number does not start with digit"));
        }
        if let Some(c) = upstream
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || ".-+~:".contains(c)))
        {
            return Err(err(&format!(
                "invalid character '{}' in version number",
                c.escape_debug()
            )));
        }
        if let Some(c) = revision
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || ".+~".contains(c)))
        {
            return Err(err(&format!(
                "invalid character '{}' in revision number",
                c.escape_debug()
            )));
        }
        Ok(DebVersion {
            epoch,
            upstream,
            revision,
        })
    }

    /// Appends the sort key: the epoch as a big-endian `u32`, then upstream and revision encoded by
    /// [`write_part_key`].
    pub(crate) fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epoch.to_be_bytes());
        write_part_key(self.upstream.as_bytes(), out);
        write_part_key(self.revision.as_bytes(), out);
    }
}

impl PartialEq for DebVersion<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for DebVersion<'_> {}
impl PartialOrd for DebVersion<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DebVersion<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), other.revision.as_bytes()))
    }
}

/// dpkg's character weight inside a non-digit run; the end of the run (or a digit) weighs 0.
fn order(c: Option<&u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => *c as i32,
        Some(b'~') => -1,
        Some(c) => *c as i32 + 256,
    }
}

/// dpkg's `verrevcmp` on an upstream version or a revision.
pub fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (ac, bc) = (order(a.get(i)), order(b.get(j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        let a_start = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let b_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        match cmp_digits(&a[a_start..i], &b[b_start..j]) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    Ordering::Equal
}

/// Byte weights for the key of a non-digit run: `~` < end of run < letters < other characters.
const TILDE: u8 = 1;
const END_OF_RUN: u8 = 2;

fn weight(c: u8) -> u8 {
    match c {
        b'~' => TILDE,
        c if c.is_ascii_alphabetic() => c,
        c => c + 128, // validated ASCII punctuation: above every letter, ordered by ASCII
    }
}

/// Encodes an upstream version or revision as alternating (non-digit run, digit run) pairs: each
/// non-digit run as character weights closed by [`END_OF_RUN`], each digit run by [`push_number`].
///
/// dpkg treats the end of a string as an endless series of empty pairs (an empty run and the number
/// 0). Only the first pair of a string can be empty (every later non-digit run holds at least one
/// character), so a string made of one empty pair ("", "0", "00") is written as nothing, and every
/// string is closed by two empty pairs — enough to stand for the endless series in any comparison.
fn write_part_key(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    let mut first = true;
    while i < s.len() {
        let run_start = i;
        while i < s.len() && !s[i].is_ascii_digit() {
            i += 1;
        }
        let digits_start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        let empty_pair = run_start == digits_start && s[digits_start..i].iter().all(|&d| d == b'0');
        if first && empty_pair && i == s.len() {
            break;
        }
        first = false;
        out.extend(s[run_start..digits_start].iter().map(|&c| weight(c)));
        out.push(END_OF_RUN);
        push_number(out, &s[digits_start..i]);
    }
    out.extend_from_slice(&[END_OF_RUN, 0, END_OF_RUN, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        DebVersion::parse(a)
            .unwrap()
            .cmp(&DebVersion::parse(b).unwrap())
    }

    #[test]
    fn tilde_sorts_before_end_and_letters_before_punctuation() {
        assert_eq!(cmp("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(cmp("1.0", "1.0a"), Ordering::Less);
        assert_eq!(cmp("1.0a", "1.0+"), Ordering::Less);
        assert_eq!(cmp("1:0.1", "2.0"), Ordering::Greater);
        assert_eq!(cmp("1.0-0", "1.0"), Ordering::Equal);
        assert_eq!(cmp("1.001", "1.1"), Ordering::Equal);
    }

    #[test]
    fn rejects_what_dpkg_rejects() {
        for (bad, why) in [
            ("", "empty"),
            ("1:", "nothing after colon"),
            (":1", "epoch in version is empty"),
            ("a:1", "not number"),
            ("1.0-", "revision number is empty"),
            ("1 0", "embedded spaces"),
            ("-1", "version number is empty"),
            ("abc", "does not start with digit"),
            ("1.0_1", "invalid character '_' in version"),
            ("1.0-a=b", "invalid character '=' in revision"),
            ("99999999999:1", "too big"),
        ] {
            let e = DebVersion::parse(bad).expect_err(bad);
            assert!(e.reason.contains(why), "{bad}: {}", e.reason);
        }
    }

    fn fields(r: Result<DebVersion<'_>, VersionError>) -> Result<(u32, String, String), String> {
        r.map(|v| (v.epoch, v.upstream.to_owned(), v.revision.to_owned()))
            .map_err(|e| e.reason)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20000))]
        /// The single-pass parser and the rule-by-rule one accept, split and reject exactly alike.
        #[test]
        fn fast_and_careful_parsers_agree(s in "[0-9a:~.+ _-]{0,10}|[0-9]{9,11}:[0-9]") {
            proptest::prop_assert_eq!(fields(DebVersion::parse(&s)), fields(DebVersion::parse_careful(&s)), "{:?}", s);
        }
    }
}
