//! Alpine version ordering, as apk-tools 3 defines it (`src/version.c`; written here from its documented
//! behaviour and its unit-test vectors, not copied).
//!
//! Grammar: `digit{.digit}...{letter}{_suffix{number}}...{~hash}{-rN}`. Tokens are compared pairwise while
//! both sides have a token of the same kind:
//! * numbers compare numerically — except a dotted component where either side has a leading zero,
//!   which compares as a string (the Gentoo rule);
//! * a letter by its character, a suffix by its rank `alpha < beta < pre < rc < (none) < cvs < svn <
//!   git < hg < p`, a commit hash as a string.
//!
//! When the kinds differ, a pre-release suffix (`_alpha`, `_beta`, `_pre`, `_rc`) makes its side older;
//! otherwise the side whose token comes later in the grammar (the end being last) is older.
//!
//! [`compare_lenient`] and [`fuzzy_match`] reproduce apk-tools exactly, including its answers for
//! invalid strings (apk compares what it is given); [`compare`] and [`write_key`] first reject invalid
//! versions, which is what patchwarden uses.

use std::cmp::Ordering;

use crate::key::push_number;
use crate::{Scheme, VersionError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit = 0,
    Digit = 1,
    Letter = 2,
    Suffix = 3,
    SuffixNo = 4,
    CommitHash = 5,
    RevisionNo = 6,
    End = 7,
    Invalid = 8,
}

/// Suffix ranks; everything below `NONE` marks a pre-release.
const SUFFIXES: [(&str, u8); 9] = [
    ("alpha", 0),
    ("beta", 1),
    ("pre", 2),
    ("rc", 3),
    ("cvs", 5),
    ("svn", 6),
    ("git", 7),
    ("hg", 8),
    ("p", 9),
];
const SUFFIX_NONE: u8 = 4;

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    kind: Kind,
    /// The token's text (digits, the letter, the suffix name, the hash).
    text: &'a [u8],
    /// The numeric value of digit tokens (apk wraps on overflow; `overflow` records it).
    number: u64,
    overflow: bool,
    suffix: u8,
}

struct Tokenizer<'a> {
    rest: &'a [u8],
    token: Token<'a>,
}

impl<'a> Tokenizer<'a> {
    fn new(s: &'a [u8]) -> Self {
        let mut t = Tokenizer {
            rest: s,
            token: Token {
                kind: Kind::InitialDigit,
                text: b"",
                number: 0,
                overflow: false,
                suffix: 0,
            },
        };
        t.parse_digits();
        t
    }

    fn parse_digits(&mut self) {
        let n = self.rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let (digits, rest) = self.rest.split_at(n);
        let mut number = 0u64;
        let mut overflow = false;
        for d in digits {
            let (m, o1) = number.overflowing_mul(10);
            let (s, o2) = m.overflowing_add(u64::from(d - b'0'));
            overflow |= o1 | o2;
            number = s;
        }
        self.token.text = digits;
        self.token.number = number;
        self.token.overflow = overflow;
        self.rest = rest;
        if digits.is_empty() {
            self.token.kind = Kind::Invalid;
        }
    }

    fn advance(&mut self) {
        let prev = self.token.kind;
        let Some(&c) = self.rest.first() else {
            self.token.kind = Kind::End;
            return;
        };
        match c {
            b'a'..=b'z' => {
                if prev > Kind::Digit {
                    return self.invalid();
                }
                self.token.kind = Kind::Letter;
                self.token.text = &self.rest[..1];
                self.rest = &self.rest[1..];
            }
            b'.' | b'0'..=b'9' => {
                if c == b'.' {
                    if prev > Kind::Digit {
                        return self.invalid();
                    }
                    self.rest = &self.rest[1..];
                }
                self.token.kind = match prev {
                    Kind::InitialDigit | Kind::Digit => Kind::Digit,
                    Kind::Suffix => Kind::SuffixNo,
                    _ => return self.invalid(),
                };
                self.parse_digits();
            }
            b'_' => {
                if prev > Kind::SuffixNo {
                    return self.invalid();
                }
                let n = self.rest[1..]
                    .iter()
                    .take_while(|c| c.is_ascii_lowercase())
                    .count();
                let name = &self.rest[1..1 + n];
                let Some(&(_, rank)) = SUFFIXES.iter().find(|(s, _)| s.as_bytes() == name) else {
                    return self.invalid();
                };
                self.token.kind = Kind::Suffix;
                self.token.text = name;
                self.token.suffix = rank;
                self.rest = &self.rest[1 + n..];
            }
            b'~' => {
                if prev >= Kind::CommitHash {
                    return self.invalid();
                }
                let n = self.rest[1..]
                    .iter()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
                if n == 0 {
                    return self.invalid();
                }
                self.token.kind = Kind::CommitHash;
                self.token.text = &self.rest[1..1 + n];
                self.rest = &self.rest[1 + n..];
            }
            b'-' => {
                if prev >= Kind::RevisionNo || !self.rest.starts_with(b"-r") {
                    return self.invalid();
                }
                self.rest = &self.rest[2..];
                self.token.kind = Kind::RevisionNo;
                self.parse_digits();
            }
            _ => self.invalid(),
        }
    }

    fn invalid(&mut self) {
        self.token.kind = Kind::Invalid;
    }
}

fn token_cmp(a: &Token, b: &Token) -> Ordering {
    match a.kind {
        Kind::Digit if a.text[0] == b'0' || b.text[0] == b'0' => a.text.cmp(b.text),
        Kind::Digit | Kind::InitialDigit | Kind::SuffixNo | Kind::RevisionNo => {
            a.number.cmp(&b.number)
        }
        Kind::Letter => a.text[0].cmp(&b.text[0]),
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        _ => a.text.cmp(b.text),
    }
}

fn compare_tokens(a: &str, b: &str, fuzzy: bool) -> Ordering {
    let (mut ta, mut tb) = (Tokenizer::new(a.as_bytes()), Tokenizer::new(b.as_bytes()));
    while ta.token.kind == tb.token.kind && ta.token.kind < Kind::End {
        let r = token_cmp(&ta.token, &tb.token);
        if r != Ordering::Equal {
            return r;
        }
        ta.advance();
        tb.advance();
    }
    let (ka, kb) = (ta.token.kind, tb.token.kind);
    if ka == kb || (kb == Kind::End && fuzzy) {
        return Ordering::Equal;
    }
    if ka == Kind::Suffix && ta.token.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if kb == Kind::Suffix && tb.token.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    kb.cmp(&ka)
}

/// Compares exactly as `apk version -t` does, without validating: apk-tools gives an answer for any
/// two strings, invalid ones included. Use [`compare`] unless reproducing apk on bad input.
pub fn compare_lenient(a: &str, b: &str) -> Ordering {
    compare_tokens(a, b, false)
}

/// apk's fuzzy operators: `~` (a matches the version prefix b), `<~`, `>~`, and `<`, `<=`, `=`, `>=`,
/// `>`, `><`. Returns `None` for an unknown operator.
pub fn fuzzy_match(a: &str, op: &str, b: &str) -> Option<bool> {
    let (mut less, mut equal, mut greater, mut fuzzy) = (false, false, false, false);
    for c in op.chars() {
        match c {
            '<' => less = true,
            '>' => greater = true,
            '=' => equal = true,
            '~' => {
                fuzzy = true;
                equal = true
            }
            _ => return None,
        }
    }
    if op.is_empty() {
        return None;
    }
    Some(match compare_tokens(a, b, fuzzy) {
        Ordering::Less => less,
        Ordering::Equal => equal,
        Ordering::Greater => greater,
    })
}

/// Checks a version against apk's grammar, naming the first thing that is wrong.
pub fn validate(version: &str) -> Result<(), VersionError> {
    let mut t = Tokenizer::new(version.as_bytes());
    loop {
        if t.token.overflow {
            return Err(VersionError::new(
                Scheme::Apk,
                version,
                "number does not fit in 64 bits",
            ));
        }
        match t.token.kind {
            Kind::End => return Ok(()),
            Kind::Invalid => {
                let at = version.len() - t.rest.len();
                let what = if version.is_empty() {
                    "version string is empty".to_owned()
                } else {
                    format!(
                        "unexpected text at byte {at} ('{}')",
                        &version[at.min(version.len())..]
                    )
                };
                return Err(VersionError::new(Scheme::Apk, version, what));
            }
            _ => t.advance(),
        }
    }
}

/// Compares two valid apk versions; an invalid one is an error.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    validate(a)?;
    validate(b)?;
    Ok(compare_lenient(a, b))
}

/// Tag bytes, ordered as apk orders two different token kinds met at the same position: pre-release
/// suffixes, then the end, revision, hash, suffix number, post-release suffixes, letter, dotted number.
fn tag(token: &Token) -> u8 {
    match token.kind {
        Kind::Suffix if token.suffix < SUFFIX_NONE => 1 + token.suffix, // 1..=4
        Kind::End => 5,
        Kind::RevisionNo => 6,
        Kind::CommitHash => 7,
        Kind::SuffixNo => 8,
        Kind::Suffix => 9 + (token.suffix - SUFFIX_NONE - 1), // 9..=13
        Kind::Letter => 14,
        Kind::Digit => 15,
        Kind::InitialDigit | Kind::Invalid => unreachable!("not encoded after the first token"),
    }
}

/// Appends the sort key of a valid apk version: the first number as a big-endian `u64`, then per token a
/// [`tag`] and its value — numbers as `u64`, a dotted number with a leading zero as `0, text, 0` and one
/// without as `1, length, digits` (so all leading-zero components sort first, by string, as apk does),
/// a letter as its byte, a hash as `text, 0` — and the end tag.
pub fn write_key(version: &str, out: &mut Vec<u8>) -> Result<(), VersionError> {
    validate(version)?;
    let mut t = Tokenizer::new(version.as_bytes());
    out.extend_from_slice(&t.token.number.to_be_bytes());
    loop {
        t.advance();
        let token = &t.token;
        out.push(tag(token));
        match token.kind {
            Kind::End => return Ok(()),
            Kind::RevisionNo | Kind::SuffixNo => out.extend_from_slice(&token.number.to_be_bytes()),
            Kind::CommitHash => {
                out.extend_from_slice(token.text);
                out.push(0);
            }
            Kind::Letter => out.push(token.text[0]),
            Kind::Digit if token.text[0] == b'0' => {
                out.push(0);
                out.extend_from_slice(token.text);
                out.push(0);
            }
            Kind::Digit => {
                out.push(1);
                push_number(out, token.text);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_suffix_and_hash() {
        assert_eq!(compare("1.0-r1", "1.0-r2"), Ok(Ordering::Less));
        assert_eq!(compare("1.0_rc1", "1.0"), Ok(Ordering::Less));
        assert_eq!(compare("1.0_p1", "1.0"), Ok(Ordering::Greater));
        assert_eq!(compare("1.0~abc", "1.0~abd"), Ok(Ordering::Less));
        assert_eq!(compare("1.05", "1.5"), Ok(Ordering::Less));
    }

    #[test]
    fn errors_point_at_the_bad_text() {
        let e = validate("0.1_foobar").unwrap_err();
        assert!(e.reason.contains("byte 3"), "{}", e.reason);
        assert!(validate("").unwrap_err().reason.contains("empty"));
        assert!(validate("1.99999999999999999999")
            .unwrap_err()
            .reason
            .contains("64 bits"));
    }
}
