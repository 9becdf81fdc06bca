//! RPM version ordering, as rpm defines it (`rpmio/rpmvercmp.c` and `rpmVersionCompare`).
//!
//! [`rpmvercmp`] compares one version or release string: separators (anything but ASCII letters,
//! digits, `~` and `^`) only split segments; `~` sorts before everything, even the end of the string;
//! `^` sorts after the end but before any segment; digit segments beat letter segments; digit segments
//! compare numerically, letter segments as strings. An [`Evr`] is `[epoch:]version[-release]`, compared
//! by epoch (missing = 0), then version, then release, a missing release being older than any present
//! one, even an empty one — the order of librpm's `labelCompare` (python3-rpm). (rpm's dependency
//! matching instead lets a missing release match any; that is a range rule, not an ordering, and
//! real packages and advisories always carry a release.) [`Nevra`] splits
//! `name-[epoch:]version-release.arch` strings such as `rpm -qa` prints them.

use std::cmp::Ordering;

use crate::key::{cmp_digits, push_number};
use crate::{Scheme, VersionError};

/// rpm's `rpmvercmp` on one version or release string.
pub fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let is_sep = |c: u8| !(c.is_ascii_alphanumeric() || c == b'~' || c == b'^');
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() || j < b.len() {
        while i < a.len() && is_sep(a[i]) {
            i += 1;
        }
        while j < b.len() && is_sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else { break };
        let numeric = ca.is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let seg_a = &a[i..i + a[i..].iter().take_while(|c| class(c)).count()];
        let seg_b = &b[j..j + b[j..].iter().take_while(|c| class(c)).count()];
        if seg_b.is_empty() {
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let ord = if numeric {
            cmp_digits(seg_a, seg_b)
        } else {
            seg_a.cmp(seg_b)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        i += seg_a.len();
        j += seg_b.len();
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

const TILDE: u8 = 1;
const END: u8 = 2;
const CARET: u8 = 3;
const ALPHA: u8 = 4;
const NUMBER: u8 = 5;

/// Appends the sort key of one version or release string: one token per segment — `~`, `^`, a letter
/// segment (tag, letters, 0) or a digit segment (tag, [`push_number`]) — closed by an end token. The tags
/// are ordered as rpmvercmp orders what can meet at one position: `~` < end < `^` < letters < digits.
fn write_vercmp_key(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'~' {
            out.push(TILDE);
            i += 1;
        } else if c == b'^' {
            out.push(CARET);
            i += 1;
        } else if c.is_ascii_digit() {
            let n = s[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            out.push(NUMBER);
            push_number(out, &s[i..i + n]);
            i += n;
        } else if c.is_ascii_alphabetic() {
            let n = s[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            out.push(ALPHA);
            out.extend_from_slice(&s[i..i + n]);
            out.push(0);
            i += n;
        } else {
            i += 1;
        }
    }
    out.push(END);
}

/// Checks one version or release string: not empty, no white space or control characters. Other
/// bytes, non-ASCII included, are accepted as rpm accepts them (they act as separators).
fn check_chars(input: &str, part: &str, what: &str) -> Result<(), VersionError> {
    if part.is_empty() {
        return Err(VersionError::new(
            Scheme::Rpm,
            input,
            format!("{what} is empty"),
        ));
    }
    if let Some(c) = part.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(VersionError::new(
            Scheme::Rpm,
            input,
            format!("invalid character '{}' in {what}", c.escape_debug()),
        ));
    }
    Ok(())
}

/// An RPM `[epoch:]version[-release]`, borrowing from its string.
///
/// Like librpm's `rpmverCmp`, the epoch is compared with [`rpmvercmp`] (so numerically for the digit
/// epochs real packages carry) and a missing epoch counts as `0`.
#[derive(Clone, Copy, Debug)]
pub struct Evr<'a> {
    /// `None` when the string has no epoch; it compares as `0`.
    pub epoch: Option<&'a str>,
    pub version: &'a str,
    /// `None` when the string has no `-release`; it is older than any present release.
    pub release: Option<&'a str>,
}

impl<'a> Evr<'a> {
    /// Splits `[epoch:]version[-release]`: the epoch ends at the first `:`, the release starts after the
    /// last `-`. An empty epoch or version, a second `:` and white space or control characters are
    /// errors; an empty release (`1.0-`) is kept as librpm keeps it.
    pub fn parse(input: &'a str) -> Result<Evr<'a>, VersionError> {
        let err = |reason: String| VersionError::new(Scheme::Rpm, input, reason);
        let (epoch, rest) = match input.split_once(':') {
            Some((e, rest)) => {
                check_chars(input, e, "epoch")?;
                (Some(e), rest)
            }
            None => (None, input),
        };
        let (version, release) = match rest.rfind('-') {
            Some(h) => (&rest[..h], Some(&rest[h + 1..])),
            None => (rest, None),
        };
        check_chars(input, version, "version")?;
        if version.contains(':') {
            return Err(err("':' in version".into()));
        }
        if let Some(r) = release.filter(|r| !r.is_empty()) {
            check_chars(input, r, "release")?;
            if r.contains(':') {
                return Err(err("':' in release".into()));
            }
        }
        Ok(Evr {
            epoch,
            version,
            release,
        })
    }

    /// The epoch as a number, when it is one (as in every real package).
    pub fn epoch_number(&self) -> Option<u64> {
        self.epoch.and_then(|e| e.parse().ok())
    }

    pub(crate) fn write_key(&self, out: &mut Vec<u8>) {
        write_vercmp_key(self.epoch.unwrap_or("0").as_bytes(), out);
        write_vercmp_key(self.version.as_bytes(), out);
        match self.release {
            None => out.push(0),
            Some(r) => {
                out.push(1);
                write_vercmp_key(r.as_bytes(), out);
            }
        }
    }
}

impl std::fmt::Display for Evr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = self.epoch {
            write!(f, "{e}:")?;
        }
        f.write_str(self.version)?;
        if let Some(r) = self.release {
            write!(f, "-{r}")?;
        }
        Ok(())
    }
}

impl PartialEq for Evr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Evr<'_> {}
impl PartialOrd for Evr<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Evr<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        rpmvercmp(
            self.epoch.unwrap_or("0").as_bytes(),
            other.epoch.unwrap_or("0").as_bytes(),
        )
        .then_with(|| rpmvercmp(self.version.as_bytes(), other.version.as_bytes()))
        .then_with(|| match (self.release, other.release) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => rpmvercmp(a.as_bytes(), b.as_bytes()),
        })
    }
}

/// A package label `name-[epoch:]version-release[.arch]` as `rpm -qa` or a file name carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nevra<'a> {
    pub name: &'a str,
    pub evr: Evr<'a>,
    pub arch: Option<&'a str>,
}

/// Architectures recognised at the end of a NEVRA (`.src` included for source packages).
const KNOWN_ARCHES: &[&str] = &[
    "noarch",
    "x86_64",
    "i386",
    "i486",
    "i586",
    "i686",
    "aarch64",
    "armv7hl",
    "armv7l",
    "armv6hl",
    "ppc64le",
    "ppc64",
    "ppc",
    "s390x",
    "s390",
    "riscv64",
    "loongarch64",
    "src",
    "nosrc",
    "athlon",
    "ia32e",
    "amd64",
];

impl<'a> Nevra<'a> {
    /// Splits a NEVRA (or a source RPM file name with `.rpm` removed). The arch is taken only when the
    /// last dot-separated part is a known architecture, so `1.el9` is not mistaken for one.
    pub fn parse(input: &'a str) -> Result<Nevra<'a>, VersionError> {
        let err = |reason: &str| VersionError::new(Scheme::Rpm, input, reason);
        let mut rest = input.strip_suffix(".rpm").unwrap_or(input);
        let mut arch = None;
        if let Some(dot) = rest.rfind('.') {
            if KNOWN_ARCHES.contains(&&rest[dot + 1..]) {
                arch = Some(&rest[dot + 1..]);
                rest = &rest[..dot];
            }
        }
        let release_dash = rest
            .rfind('-')
            .ok_or_else(|| err("no '-' before the release"))?;
        let version_dash = rest[..release_dash]
            .rfind('-')
            .ok_or_else(|| err("no '-' before the version"))?;
        let name = &rest[..version_dash];
        if name.is_empty() {
            return Err(err("package name is empty"));
        }
        let evr = Evr::parse(&rest[version_dash + 1..])?;
        Ok(Nevra { name, evr, arch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_caret_and_segments() {
        assert_eq!(rpmvercmp(b"1.0~rc1", b"1.0"), Ordering::Less);
        assert_eq!(rpmvercmp(b"1.0^git1", b"1.0"), Ordering::Greater);
        assert_eq!(rpmvercmp(b"1.0^git1", b"1.0.1"), Ordering::Less);
        assert_eq!(rpmvercmp(b"1a", b"1.1"), Ordering::Less);
        assert_eq!(rpmvercmp(b"1_0", b"1.0"), Ordering::Equal);
        assert_eq!(rpmvercmp(b"010", b"10"), Ordering::Equal);
    }

    #[test]
    fn missing_epoch_is_zero_and_errors_are_named() {
        let a = Evr::parse("1.0-1").unwrap();
        let b = Evr::parse("0:1.0-1").unwrap();
        assert_eq!(a.cmp(&b), Ordering::Equal);
        assert!(Evr::parse("1:3.0.1-47.el9_1").unwrap() > Evr::parse("3.0.7-1.el9").unwrap());
        assert_eq!(Evr::parse("1-").unwrap().release, Some(""));
        assert!(Evr::parse("+2-:")
            .unwrap_err()
            .reason
            .contains("version is empty"));
        assert!(Evr::parse(":1")
            .unwrap_err()
            .reason
            .contains("epoch is empty"));
        assert!(Evr::parse("1:2:3")
            .unwrap_err()
            .reason
            .contains("':' in version"));
        assert_eq!(
            Evr::parse("10:1").unwrap().cmp(&Evr::parse("9:1").unwrap()),
            Ordering::Greater
        );
        assert!(Evr::parse("1.0 -1")
            .unwrap_err()
            .reason
            .contains("invalid character"));
    }

    #[test]
    fn nevra_split() {
        let n = Nevra::parse("openssl-libs-1:3.0.7-24.el9.x86_64").unwrap();
        assert_eq!(
            (n.name, n.evr.epoch, n.evr.version, n.evr.release, n.arch),
            (
                "openssl-libs",
                Some("1"),
                "3.0.7",
                Some("24.el9"),
                Some("x86_64")
            )
        );
        let s = Nevra::parse("glibc-2.35-7.cm2.src.rpm").unwrap();
        assert_eq!(
            (s.name, s.evr.version, s.evr.release, s.arch),
            ("glibc", "2.35", Some("7.cm2"), Some("src"))
        );
        assert!(Nevra::parse("nodash").is_err());
    }
}
