//! FIRST EPSS: the daily CSV (plain or gzip), read as a stream, and the API's JSON element.
//!
//! The CSV starts with a comment `#model_version:vYYYY.MM.DD,score_date:...` (the date may be missing
//! and its format varies), then the header `cve,epss,percentile`. Any other header, a row that is not
//! `CVE-…,<0..1>,<0..1>`, or a repeated CVE rejects the whole file (naming the line). Row order is not
//! relied upon.

use std::io::{BufRead, BufReader, Read};

use patchwarden_model::{EpssScore, EpssSnapshot};
use serde::Deserialize;

use crate::FeedError;

/// Parses a CSV stream; `.csv.gz` content (gzip magic) is decompressed on the fly.
pub fn parse_csv(reader: impl Read, origin: &str) -> Result<EpssSnapshot, FeedError> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let is_gzip = reader
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    if is_gzip {
        parse_lines(
            BufReader::with_capacity(1 << 16, flate2::read::GzDecoder::new(reader)),
            origin,
        )
    } else {
        parse_lines(reader, origin)
    }
}

fn parse_lines(reader: impl BufRead, origin: &str) -> Result<EpssSnapshot, FeedError> {
    let mut snapshot = EpssSnapshot {
        model_version: None,
        score_date: None,
        scores: Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    let mut header_seen = false;
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| {
            FeedError::record(origin, format!("line {n}"), format!("cannot read: {e}"))
        })?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            for part in comment.split(',') {
                match part.split_once(':') {
                    Some(("model_version", v)) => {
                        snapshot.model_version = Some(v.trim().to_owned())
                    }
                    Some(("score_date", v)) => snapshot.score_date = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
            continue;
        }
        if !header_seen {
            if line != "cve,epss,percentile" {
                return Err(FeedError::record(
                    origin,
                    format!("line {n}"),
                    format!("expected the header 'cve,epss,percentile', found '{line}'"),
                ));
            }
            header_seen = true;
            continue;
        }
        let bad = |reason: String| FeedError::record(origin, format!("line {n}"), reason);
        let mut fields = line.split(',');
        let (Some(cve), Some(score), Some(pct), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad(format!("expected 3 fields: '{line}'")));
        };
        if !cve.starts_with("CVE-") {
            return Err(bad(format!("'{cve}' is not a CVE id")));
        }
        let unit = |s: &str, what: &str| -> Result<f64, FeedError> {
            s.parse::<f64>()
                .ok()
                .filter(|v| (0.0..=1.0).contains(v))
                .ok_or_else(|| bad(format!("{what} '{s}' is not a number in [0, 1]")))
        };
        let (score, percentile) = (unit(score, "epss")?, unit(pct, "percentile")?);
        if !seen.insert(cve.to_owned()) {
            return Err(bad(format!("{cve} appears twice")));
        }
        snapshot.scores.push(EpssScore {
            cve: cve.to_owned(),
            score,
            percentile,
        });
    }
    if !header_seen {
        return Err(FeedError::file(
            origin,
            "no 'cve,epss,percentile' header: empty or truncated file",
        ));
    }
    Ok(snapshot)
}

#[derive(Deserialize)]
struct ApiElement {
    cve: String,
    epss: String,
    percentile: String,
    date: String,
}

/// Parses one element of the EPSS API's `data` list: `{"cve","epss","percentile","date"}`, all strings.
pub fn parse_api_element(bytes: &[u8], origin: &str) -> Result<(EpssScore, String), FeedError> {
    let e: ApiElement = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::file(origin, format!("not an EPSS API element: {e}")))?;
    let num = |s: &str| s.parse::<f64>().ok().filter(|v| (0.0..=1.0).contains(v));
    match (num(&e.epss), num(&e.percentile)) {
        (Some(score), Some(percentile)) => Ok((
            EpssScore {
                cve: e.cve,
                score,
                percentile,
            },
            e.date,
        )),
        _ => Err(FeedError::record(
            origin,
            e.cve,
            "epss or percentile is not a number in [0, 1]",
        )),
    }
}
