#![no_main]
//! Apk versions: parsing never panics, and for two valid versions the comparison is
//! antisymmetric and agrees with the sort keys the store indexes.
use libfuzzer_sys::fuzz_target;
use patchwarden_version::{compare, Scheme, SortKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, "1"));
    let _ = patchwarden_version::validate(Scheme::Apk, a);
    let (Ok(ab), Ok(ba)) = (compare(Scheme::Apk, a, b), compare(Scheme::Apk, b, a)) else {
        return;
    };
    assert_eq!(ab, ba.reverse(), "{a:?} {b:?}");
    let (Ok(ka), Ok(kb)) = (SortKey::new(Scheme::Apk, a), SortKey::new(Scheme::Apk, b)) else {
        panic!("valid to compare but no sort key: {a:?} {b:?}");
    };
    assert_eq!(ka.cmp(&kb), ab, "sort keys disagree with compare: {a:?} {b:?}");
});
