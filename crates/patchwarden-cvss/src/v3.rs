//! CVSS v3.0 and v3.1 (FIRST specification documents, section 7 "Formulas").

use crate::{metrics, weight, CvssError, CvssVersion};

const ORDER: [&str; 22] = [
    "AV", "AC", "PR", "UI", "S", "C", "I", "A", "E", "RL", "RC", "CR", "IR", "AR", "MAV", "MAC",
    "MPR", "MUI", "MS", "MC", "MI", "MA",
];
const AV: [(&str, f64); 4] = [("N", 0.85), ("A", 0.62), ("L", 0.55), ("P", 0.2)];
const AC: [(&str, f64); 2] = [("L", 0.77), ("H", 0.44)];
const UI: [(&str, f64); 2] = [("N", 0.85), ("R", 0.62)];
const CIA: [(&str, f64); 3] = [("H", 0.56), ("L", 0.22), ("N", 0.0)];
const REQ: [(&str, f64); 4] = [("X", 1.0), ("H", 1.5), ("M", 1.0), ("L", 0.5)];

/// v3.1's Roundup: the smallest one-decimal number >= x, computed on integers to avoid float error.
fn roundup_31(x: f64) -> f64 {
    let int_input = (x * 100_000.0).round() as i64;
    if int_input % 10_000 == 0 {
        int_input as f64 / 100_000.0
    } else {
        ((int_input / 10_000) + 1) as f64 / 10.0
    }
}

/// v3.0's Roundup.
fn roundup_30(x: f64) -> f64 {
    (x * 10.0).ceil() / 10.0
}

fn pr_weight(value: &str, scope_changed: bool) -> Option<f64> {
    Some(match (value, scope_changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    })
}

pub(crate) fn score(
    vector: &str,
    version: CvssVersion,
) -> Result<(CvssVersion, f64, f64), CvssError> {
    let body = &vector["CVSS:3.x/".len().min(vector.len())..];
    if body.is_empty() {
        return Err(CvssError::new(vector, "no metrics"));
    }
    let m = metrics(vector, body, &ORDER, false)?;
    let roundup = if version == CvssVersion::V3_1 {
        roundup_31
    } else {
        roundup_30
    };
    let get = |name: &str| m.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let w = |name: &str, allowed: &[(&str, f64)], default: Option<&str>| {
        weight(vector, &m, name, allowed, default)
    };

    // Base metrics: all mandatory, no X.
    let scope =
        get("S").ok_or_else(|| CvssError::new(vector, "mandatory metric 'S' is missing"))?;
    let changed = match scope {
        "U" => false,
        "C" => true,
        other => {
            return Err(CvssError::new(
                vector,
                format!("'{other}' is not a valid value of 'S'"),
            ))
        }
    };
    let (av, ac, ui) = (
        w("AV", &AV, None)?,
        w("AC", &AC, None)?,
        w("UI", &UI, None)?,
    );
    let pr_value =
        get("PR").ok_or_else(|| CvssError::new(vector, "mandatory metric 'PR' is missing"))?;
    let pr = pr_weight(pr_value, changed).ok_or_else(|| {
        CvssError::new(vector, format!("'{pr_value}' is not a valid value of 'PR'"))
    })?;
    let (c, i, a) = (
        w("C", &CIA, None)?,
        w("I", &CIA, None)?,
        w("A", &CIA, None)?,
    );

    let iss = 1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    let base = if impact <= 0.0 {
        0.0
    } else if changed {
        roundup(f64::min(1.08 * (impact + exploitability), 10.0))
    } else {
        roundup(f64::min(impact + exploitability, 10.0))
    };

    // Temporal.
    let e = w(
        "E",
        &[
            ("X", 1.0),
            ("H", 1.0),
            ("F", 0.97),
            ("P", 0.94),
            ("U", 0.91),
        ],
        Some("X"),
    )?;
    let rl = w(
        "RL",
        &[
            ("X", 1.0),
            ("U", 1.0),
            ("W", 0.97),
            ("T", 0.96),
            ("O", 0.95),
        ],
        Some("X"),
    )?;
    let rc = w(
        "RC",
        &[("X", 1.0), ("C", 1.0), ("R", 0.96), ("U", 0.92)],
        Some("X"),
    )?;
    let temporal = roundup(base * e * rl * rc);

    // Environmental: each modified metric defaults (X) to its base value.
    let env_names = &ORDER[11..];
    let env_set = env_names.iter().any(|n| get(n).is_some_and(|v| v != "X"));
    let overall = if env_set {
        let modified = |name: &str, base_name: &str| -> &str {
            match get(name) {
                Some("X") | None => get(base_name).unwrap_or("X"),
                Some(v) => v,
            }
        };
        let with_x = |table: &[(&'static str, f64)]| -> Vec<(&'static str, f64)> {
            let mut t = table.to_vec();
            t.push(("X", f64::NAN));
            t
        };
        let pick = |name: &str,
                    base_name: &str,
                    table: &[(&'static str, f64)]|
         -> Result<f64, CvssError> {
            // Validate the modified metric's own value (X allowed), then weigh the effective value.
            weight(vector, &m, name, &with_x(table), Some("X"))?;
            let v = modified(name, base_name);
            Ok(table
                .iter()
                .find(|(k, _)| *k == v)
                .map(|(_, w)| *w)
                .unwrap_or(0.0))
        };
        let ms_value = modified("MS", "S");
        if !["U", "C"].contains(&ms_value) {
            return Err(CvssError::new(
                vector,
                format!("'{ms_value}' is not a valid value of 'MS'"),
            ));
        }
        let ms_changed = ms_value == "C";
        let (mav, mac, mui) = (
            pick("MAV", "AV", &AV)?,
            pick("MAC", "AC", &AC)?,
            pick("MUI", "UI", &UI)?,
        );
        let mpr_value = modified("MPR", "PR");
        let mpr = pr_weight(mpr_value, ms_changed).ok_or_else(|| {
            CvssError::new(
                vector,
                format!("'{mpr_value}' is not a valid value of 'MPR'"),
            )
        })?;
        let (mc, mi, ma) = (
            pick("MC", "C", &CIA)?,
            pick("MI", "I", &CIA)?,
            pick("MA", "A", &CIA)?,
        );
        let (cr, ir, ar) = (
            w("CR", &REQ, Some("X"))?,
            w("IR", &REQ, Some("X"))?,
            w("AR", &REQ, Some("X"))?,
        );
        let miss = f64::min(
            1.0 - (1.0 - cr * mc) * (1.0 - ir * mi) * (1.0 - ar * ma),
            0.915,
        );
        let modified_impact = if !ms_changed {
            6.42 * miss
        } else if version == CvssVersion::V3_1 {
            7.52 * (miss - 0.029) - 3.25 * (miss * 0.9731 - 0.02).powi(13)
        } else {
            7.52 * (miss - 0.029) - 3.25 * (miss - 0.02).powi(15)
        };
        let modified_exploitability = 8.22 * mav * mac * mpr * mui;
        if modified_impact <= 0.0 {
            0.0
        } else if ms_changed {
            roundup(
                roundup(f64::min(
                    1.08 * (modified_impact + modified_exploitability),
                    10.0,
                )) * e
                    * rl
                    * rc,
            )
        } else {
            roundup(
                roundup(f64::min(modified_impact + modified_exploitability, 10.0)) * e * rl * rc,
            )
        }
    } else if ["E", "RL", "RC"]
        .iter()
        .any(|n| get(n).is_some_and(|v| v != "X"))
    {
        temporal
    } else {
        base
    };
    Ok((version, base, overall))
}
