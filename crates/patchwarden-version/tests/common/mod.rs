//! Helpers shared by the integration tests: the vector files and a small seeded generator of version
//! strings (random and near-miss), so runs are reproducible without a dependency.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/versions")
}

/// Reads a TSV vector file (header skipped) as rows of fields.
pub fn rows(file: &str) -> Vec<Vec<String>> {
    let path = data_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

pub fn expected(s: &str) -> std::cmp::Ordering {
    match s {
        "-1" => std::cmp::Ordering::Less,
        "0" => std::cmp::Ordering::Equal,
        "1" => std::cmp::Ordering::Greater,
        other => panic!("bad expectation {other}"),
    }
}

/// xorshift64*: deterministic, good enough to spread test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chars(&mut self, alphabet: &[u8], min: usize, max: usize) -> String {
        let n = min + self.below(max - min + 1);
        (0..n).map(|_| *self.pick(alphabet) as char).collect()
    }
}

const DEB_UPSTREAM: &[u8] =
    b"0123456789012345678901234567890123456789abcdefghijklmnopqrstuvwxyzABCZ.........++~~~~";
const DEB_REVISION: &[u8] =
    b"0123456789012345678901234567890123456789abcdefghijklmnopqrstuvwxyzABCZ......++~~~";
const RPM_CHARS: &[u8] =
    b"0123456789012345678901234567890123456789abcdefghijklmnopqrstuvwxyzABCZ........__++~~~^^";

/// A random valid Debian version.
pub fn random_deb(rng: &mut Rng) -> String {
    let mut s = String::new();
    if rng.below(5) == 0 {
        s.push_str(&format!("{}:", rng.below(4)));
    }
    s.push((b'0' + rng.below(10) as u8) as char);
    s.push_str(&rng.chars(DEB_UPSTREAM, 0, 10));
    if rng.below(4) != 0 {
        s.push('-');
        s.push_str(&rng.chars(DEB_REVISION, 1, 7));
    }
    s
}

/// A random RPM EVR that always has a release (as installed packages and advisories do).
pub fn random_rpm(rng: &mut Rng) -> String {
    let mut s = String::new();
    if rng.below(4) == 0 {
        s.push_str(&format!("{}:", rng.below(3)));
    }
    let mut version = rng.chars(RPM_CHARS, 1, 10);
    while version.contains(':') {
        version = rng.chars(RPM_CHARS, 1, 10);
    }
    s.push_str(&version);
    s.push('-');
    s.push_str(&rng.chars(RPM_CHARS, 1, 8));
    s
}

/// A variant of `v` that differs in one small way: the pairs where orderings go wrong.
pub fn near_miss(rng: &mut Rng, v: &str, alphabet: &[u8]) -> String {
    let mut b: Vec<u8> = v.as_bytes().to_vec();
    match rng.below(7) {
        0 => {
            let tails: [&[u8]; 8] = [b"~", b"~rc1", b".0", b"+b1", b"a", b"0", b"^1", b"~~"];
            let tail = rng.pick(&tails);
            b.extend_from_slice(tail)
        }
        1 if !b.is_empty() => {
            let i = rng.below(b.len());
            b[i] = *rng.pick(alphabet);
        }
        2 if !b.is_empty() => {
            let i = rng.below(b.len());
            b.insert(i, *rng.pick(alphabet));
        }
        3 if b.len() > 1 => {
            let i = 1 + rng.below(b.len() - 1);
            b.remove(i);
        }
        4 => {
            let i = rng.below(b.len() + 1);
            b.insert(i, b'0');
        }
        5 => b.extend_from_slice(b"1"),
        _ => {
            if let Some(i) = b.iter().rposition(|c| c.is_ascii_digit()) {
                b[i] = if b[i] == b'9' { b'0' } else { b[i] + 1 };
            }
        }
    }
    String::from_utf8(b).unwrap()
}

pub fn deb_alphabet() -> &'static [u8] {
    DEB_REVISION
}
pub fn rpm_alphabet() -> &'static [u8] {
    RPM_CHARS
}
