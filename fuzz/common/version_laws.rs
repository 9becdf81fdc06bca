//! The laws every version scheme's parser must keep, shared by the three version targets:
//! parsing never panics, and for two valid versions ("left\nright") the comparison is
//! antisymmetric and agrees with the sort keys the store indexes.
use patchwarden_version::{compare, Scheme, SortKey};

pub fn check(scheme: Scheme, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, "1"));
    let _ = patchwarden_version::validate(scheme, a);
    let (Ok(ab), Ok(ba)) = (compare(scheme, a, b), compare(scheme, b, a)) else {
        return;
    };
    assert_eq!(ab, ba.reverse(), "{a:?} {b:?}");
    let (Ok(ka), Ok(kb)) = (SortKey::new(scheme, a), SortKey::new(scheme, b)) else {
        panic!("valid to compare but no sort key: {a:?} {b:?}");
    };
    assert_eq!(
        ka.cmp(&kb),
        ab,
        "sort keys disagree with compare: {a:?} {b:?}"
    );
}
