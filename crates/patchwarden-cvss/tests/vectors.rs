//! The CVSS vector lists in tests/data/cvss-vectors (claircore's test data; provenance in
//! tests/data/SOURCES.md): every score list matches, every round-trip vector parses, and every
//! vector of the error lists not marked `#OK` is rejected.
use patchwarden_cvss::{Cvss, CvssVersion, Severity};

fn lines(file: &str) -> Vec<(String, String)> {
    let path = format!(
        "{}/../../tests/data/cvss-vectors/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once('#') {
            Some((v, c)) => (v.trim().to_owned(), c.trim().to_owned()),
            None => (l.trim().to_owned(), String::new()),
        })
        .collect()
}

#[test]
fn score_lists_match() {
    let mut checked = 0;
    for (file, version) in [
        ("claircore-v2_score.list", CvssVersion::V2),
        ("claircore-v30_score.list", CvssVersion::V3_0),
        ("claircore-v31_score.list", CvssVersion::V3_1),
        ("claircore-v4_score.list", CvssVersion::V4_0),
    ] {
        for (line, _) in lines(file) {
            let (vector, expected) = line.rsplit_once(char::is_whitespace).unwrap();
            let (vector, expected) = (vector.trim(), expected.parse::<f64>().unwrap());
            let cvss = Cvss::parse(vector).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(cvss.version, version, "{vector}");
            assert_eq!(cvss.overall_score, expected, "{file}: {vector}");
            checked += 1;
        }
    }
    assert_eq!(checked, 119, "every scored vector was checked");
}

#[test]
fn round_trip_lists_parse() {
    for file in [
        "claircore-v2_roundtrip.list",
        "claircore-v3_roundtrip.list",
        "claircore-v4_roundtrip.list",
    ] {
        let vectors = lines(file);
        assert!(vectors.len() >= 5, "{file}");
        for (vector, _) in vectors {
            Cvss::parse(&vector).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}

#[test]
fn error_lists_are_rejected() {
    let mut rejected = 0;
    for (file, version) in [
        ("claircore-v2_error.list", CvssVersion::V2),
        ("claircore-v3_error.list", CvssVersion::V3_1),
        ("claircore-v4_error.list", CvssVersion::V4_0),
    ] {
        for (vector, comment) in lines(file) {
            let result = Cvss::parse_as(&vector, version);
            if comment == "OK" {
                assert!(
                    result.is_ok(),
                    "{file}: {vector} should be valid: {result:?}"
                );
            } else {
                let err = result.expect_err(&format!("{file}: {vector} should be rejected"));
                assert_eq!(err.vector, vector);
                rejected += 1;
            }
        }
    }
    assert!(rejected >= 30, "{rejected}");
}

#[test]
fn base_score_and_severity() {
    // CVE-2023-4911 (glibc "Looney Tunables"), NVD's v3.1 vector: 7.8 High.
    let c = Cvss::parse("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H").unwrap();
    assert_eq!((c.base_score, c.severity()), (7.8, Severity::High));
    let critical = Cvss::parse("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap();
    assert_eq!(
        (critical.base_score, critical.severity()),
        (9.8, Severity::Critical)
    );
    let v2 = Cvss::parse("AV:N/AC:L/Au:N/C:C/I:C/A:C").unwrap();
    assert_eq!((v2.base_score, v2.severity()), (10.0, Severity::High));
    // A v4 vector with threat metrics: the base score ignores E:U, the overall score does not.
    let v4 =
        Cvss::parse("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U").unwrap();
    assert_eq!((v4.base_score, v4.overall_score), (7.7, 5.2));
}
