//! Property tests: for every scheme, the comparison is a total order (reflexive, antisymmetric,
//! transitive) and the sort keys order exactly as the direct comparison. Small alphabets make ties and
//! near-ties — where orderings go wrong — common.
use std::cmp::Ordering;

use patchwarden_version::{compare, Scheme, SortKey};
use proptest::prelude::*;

fn deb() -> impl Strategy<Value = String> {
    "([0-2]:)?[0-2][0-2a~.+B]{0,5}(-[0-2a~.+]{1,4})?"
}
fn rpm() -> impl Strategy<Value = String> {
    "([0-2]:)?[0-2a~^._][0-2a~^._B]{0,5}(-[0-2a~^._]{0,4})?"
}
fn apk() -> impl Strategy<Value = String> {
    "[0-2](\\.0?[0-2]){0,3}[ab]?(_(alpha|rc|p|git)[0-2]?){0,2}(~[0-9a]{1,2})?(-r[0-2])?"
}

fn check_laws(scheme: Scheme, a: &str, b: &str, c: &str) -> Result<(), TestCaseError> {
    let ab = compare(scheme, a, b).unwrap();
    let bc = compare(scheme, b, c).unwrap();
    let ac = compare(scheme, a, c).unwrap();
    prop_assert_eq!(
        compare(scheme, a, a).unwrap(),
        Ordering::Equal,
        "reflexive {}",
        a
    );
    prop_assert_eq!(
        compare(scheme, b, a).unwrap(),
        ab.reverse(),
        "antisymmetric {} {}",
        a,
        b
    );
    if ab != Ordering::Greater && bc != Ordering::Greater {
        prop_assert_ne!(ac, Ordering::Greater, "transitive {} <= {} <= {}", a, b, c);
    }
    if ab == bc {
        prop_assert_eq!(ac, ab, "transitive {} {} {}", a, b, c);
    }
    let (ka, kb, kc) = (
        SortKey::new(scheme, a).unwrap(),
        SortKey::new(scheme, b).unwrap(),
        SortKey::new(scheme, c).unwrap(),
    );
    prop_assert_eq!(ka.cmp(&kb), ab, "key {} vs {}: {:?} {:?}", a, b, ka, kb);
    prop_assert_eq!(kb.cmp(&kc), bc, "key {} vs {}", b, c);
    prop_assert_eq!(ka.cmp(&kc), ac, "key {} vs {}", a, c);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn deb_total_order(a in deb(), b in deb(), c in deb()) {
        check_laws(Scheme::Deb, &a, &b, &c)?;
    }

    #[test]
    fn rpm_total_order(a in rpm(), b in rpm(), c in rpm()) {
        check_laws(Scheme::Rpm, &a, &b, &c)?;
    }

    #[test]
    fn apk_total_order(a in apk(), b in apk(), c in apk()) {
        check_laws(Scheme::Apk, &a, &b, &c)?;
    }
}
