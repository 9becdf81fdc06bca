//! Building blocks shared by the per-scheme sort-key encoders.

/// Appends a run of decimal digits so that byte order equals numeric order: leading zeros are dropped,
/// then a length prefix (one byte below 255, else `0xff` and a big-endian `u32`) and the digits.
pub(crate) fn push_number(out: &mut Vec<u8>, digits: &[u8]) {
    let start = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    let significant = &digits[start..];
    push_len(out, significant.len());
    out.extend_from_slice(significant);
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0xff {
        out.push(len as u8);
    } else {
        out.push(0xff);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// Compares two runs of decimal digits numerically, of any length, ignoring leading zeros.
pub(crate) fn cmp_digits(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let a = &a[a.iter().position(|&d| d != b'0').unwrap_or(a.len())..];
    let b = &b[b.iter().position(|&d| d != b'0').unwrap_or(b.len())..];
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}
