//! CVSS v2.0 (FIRST, "A Complete Guide to the Common Vulnerability Scoring System Version 2.0").

use crate::{metrics, weight, CvssError, CvssVersion};

const ORDER: [&str; 14] = [
    "AV", "AC", "Au", "C", "I", "A", "E", "RL", "RC", "CDP", "TD", "CR", "IR", "AR",
];
const CIA: [(&str, f64); 3] = [("N", 0.0), ("P", 0.275), ("C", 0.660)];
const REQ: [(&str, f64); 4] = [("L", 0.5), ("M", 1.0), ("H", 1.51), ("ND", 1.0)];

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(crate) fn score(vector: &str) -> Result<(CvssVersion, f64, f64), CvssError> {
    let m = metrics(vector, vector, &ORDER, true)?;
    let present = |names: &[&str]| {
        names
            .iter()
            .filter(|n| m.iter().any(|(k, _)| k == *n))
            .count()
    };
    for (group, names) in [
        ("base", &ORDER[..6]),
        ("temporal", &ORDER[6..9]),
        ("environmental", &ORDER[9..]),
    ] {
        let n = present(names);
        if (group == "base" && n != names.len()) || (n != 0 && n != names.len()) {
            return Err(CvssError::new(
                vector,
                format!("the {group} metrics are incomplete"),
            ));
        }
    }
    let w = |name: &str, allowed: &[(&str, f64)], default: Option<&str>| {
        weight(vector, &m, name, allowed, default)
    };
    let av = w("AV", &[("L", 0.395), ("A", 0.646), ("N", 1.0)], None)?;
    let ac = w("AC", &[("H", 0.35), ("M", 0.61), ("L", 0.71)], None)?;
    let au = w("Au", &[("M", 0.45), ("S", 0.56), ("N", 0.704)], None)?;
    let (c, i, a) = (
        w("C", &CIA, None)?,
        w("I", &CIA, None)?,
        w("A", &CIA, None)?,
    );
    let e = w(
        "E",
        &[
            ("U", 0.85),
            ("POC", 0.9),
            ("F", 0.95),
            ("H", 1.0),
            ("ND", 1.0),
        ],
        Some("ND"),
    )?;
    let rl = w(
        "RL",
        &[
            ("OF", 0.87),
            ("TF", 0.90),
            ("W", 0.95),
            ("U", 1.0),
            ("ND", 1.0),
        ],
        Some("ND"),
    )?;
    let rc = w(
        "RC",
        &[("UC", 0.90), ("UR", 0.95), ("C", 1.0), ("ND", 1.0)],
        Some("ND"),
    )?;
    let cdp = w(
        "CDP",
        &[
            ("N", 0.0),
            ("L", 0.1),
            ("LM", 0.3),
            ("MH", 0.4),
            ("H", 0.5),
            ("ND", 0.0),
        ],
        Some("ND"),
    )?;
    let td = w(
        "TD",
        &[
            ("N", 0.0),
            ("L", 0.25),
            ("M", 0.75),
            ("H", 1.0),
            ("ND", 1.0),
        ],
        Some("ND"),
    )?;
    let (cr, ir, ar) = (
        w("CR", &REQ, Some("ND"))?,
        w("IR", &REQ, Some("ND"))?,
        w("AR", &REQ, Some("ND"))?,
    );

    let base_with = |impact: f64| {
        let exploitability = 20.0 * av * ac * au;
        let f = if impact == 0.0 { 0.0 } else { 1.176 };
        round1((0.6 * impact + 0.4 * exploitability - 1.5) * f)
    };
    let impact = 10.41 * (1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a));
    let base = base_with(impact);
    let temporal = round1(base * e * rl * rc);
    let overall = if present(&ORDER[9..]) > 0 {
        let adjusted_impact = f64::min(
            10.0,
            10.41 * (1.0 - (1.0 - c * cr) * (1.0 - i * ir) * (1.0 - a * ar)),
        );
        let adjusted_temporal = round1(base_with(adjusted_impact) * e * rl * rc);
        round1((adjusted_temporal + (10.0 - adjusted_temporal) * cdp) * td)
    } else if present(&ORDER[6..9]) > 0 {
        temporal
    } else {
        base
    };
    Ok((CvssVersion::V2, base, overall))
}
