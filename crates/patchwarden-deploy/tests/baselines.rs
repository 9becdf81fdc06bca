//! Baselines over real advisories: the 405 AlmaLinux 9 OSV records of tests/data (their Red Hat
//! impact as severity, their publication date as release) and the real KEV catalog. Expected sets are
//! derived from the raw JSON independently of the feed parser and the baseline.

use std::collections::BTreeSet;

use jiff::civil::Date;
use patchwarden_deploy::baseline::{Baseline, BaselineSpec, UpdateCandidate};

fn data(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/data/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct Raw {
    id: String,
    impact: String,
    published: Date,
}

/// (candidates, the raw facts per advisory) — one candidate per affected package of each advisory.
fn corpus() -> (Vec<UpdateCandidate>, Vec<Raw>) {
    let kev =
        patchwarden_feeds::kev::parse(&data("kev/known_exploited_vulnerabilities.json"), "kev")
            .unwrap();
    let listed: BTreeSet<&str> = kev.entries.iter().map(|e| e.cve.as_str()).collect();
    let dir = format!(
        "{}/../../tests/data/osv/almalinux9",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (mut candidates, mut raws) = (Vec::new(), Vec::new());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        raws.push(Raw {
            id: json["id"].as_str().unwrap().to_owned(),
            impact: json["summary"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_owned(),
            published: json["published"].as_str().unwrap()[..10].parse().unwrap(),
        });
        let adv = patchwarden_feeds::osv::parse(&bytes, "test").unwrap();
        let kev = adv.cves.iter().any(|c| listed.contains(c.as_str()));
        for p in &adv.affected {
            candidates.push(UpdateCandidate {
                package: p.package.clone(),
                advisory_id: Some(adv.id.clone()),
                cves: adv.cves.clone(),
                severity: adv.severity.clone(),
                kev,
                classification: None,
                released: adv.published.clone(),
            });
        }
    }
    (candidates, raws)
}

fn approved_advisories(
    b: &Baseline,
    candidates: &[UpdateCandidate],
    today: Date,
) -> BTreeSet<String> {
    candidates
        .iter()
        .filter(|c| b.decide(c, today).is_approved())
        .map(|c| c.advisory_id.clone().unwrap())
        .collect()
}

fn today() -> Date {
    "2026-12-02".parse().unwrap()
}

#[test]
fn severity_filter_approves_important_and_critical_only() {
    let (candidates, raws) = corpus();
    let b = Baseline::parse(&BaselineSpec {
        name: "high-and-up".into(),
        min_severity: Some("high".into()),
        ..Default::default()
    })
    .unwrap();
    let want: BTreeSet<String> = raws
        .iter()
        .filter(|r| r.impact == "Important" || r.impact == "Critical")
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(want.len(), 154);
    assert_eq!(approved_advisories(&b, &candidates, today()), want);
    let low = candidates
        .iter()
        .find(|c| c.severity.as_deref() == Some("Low"))
        .unwrap();
    let decision = b.decide(low, today());
    assert!(
        format!("{decision:?}").contains("severity Low is below high"),
        "{decision:?}"
    );
}

#[test]
fn kev_listed_updates_pass_the_filters_but_not_a_deny() {
    let (candidates, raws) = corpus();
    let spec = BaselineSpec {
        name: "critical-or-kev".into(),
        min_severity: Some("critical".into()),
        always_approve_kev: true,
        ..Default::default()
    };
    let b = Baseline::parse(&spec).unwrap();
    let kev_advisories: BTreeSet<String> = candidates
        .iter()
        .filter(|c| c.kev)
        .map(|c| c.advisory_id.clone().unwrap())
        .collect();
    assert!(kev_advisories.len() >= 5, "{kev_advisories:?}");
    let critical: BTreeSet<String> = raws
        .iter()
        .filter(|r| r.impact == "Critical")
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(
        approved_advisories(&b, &candidates, today()),
        critical.union(&kev_advisories).cloned().collect()
    );
    // Denying one KEV-listed package by pattern holds it, KEV or not.
    let kev_one = candidates.iter().find(|c| c.kev).unwrap();
    let pattern = format!("{}*", &kev_one.package[..kev_one.package.len() - 1]);
    let denied = Baseline::parse(&BaselineSpec {
        deny: vec![pattern.clone()],
        ..spec
    })
    .unwrap();
    let d = denied.decide(kev_one, today());
    assert!(
        !d.is_approved() && format!("{d:?}").contains(&pattern),
        "{d:?}"
    );
}

#[test]
fn quarantine_days_and_cut_off_follow_the_release_date() {
    let (candidates, raws) = corpus();
    let newest = raws.iter().map(|r| r.published).max().unwrap();
    let quarantine = Baseline::parse(&BaselineSpec {
        name: "two-weeks".into(),
        approve_after_days: Some(14),
        ..Default::default()
    })
    .unwrap();
    // On the newest release day + 13 days the newest advisories wait; on + 14 every one passes.
    let day13 = newest.checked_add(jiff::Span::new().days(13)).unwrap();
    let day14 = newest.checked_add(jiff::Span::new().days(14)).unwrap();
    let waiting: BTreeSet<String> = raws
        .iter()
        .filter(|r| (day13 - r.published).get_days() < 14)
        .map(|r| r.id.clone())
        .collect();
    assert!(!waiting.is_empty());
    let all: BTreeSet<String> = raws.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        approved_advisories(&quarantine, &candidates, day13),
        all.difference(&waiting).cloned().collect()
    );
    assert_eq!(approved_advisories(&quarantine, &candidates, day14), all);

    let cutoff: Date = "2023-01-01".parse().unwrap();
    let before = Baseline::parse(&BaselineSpec {
        name: "frozen-2022".into(),
        released_before: Some("2023-01-01".into()),
        ..Default::default()
    })
    .unwrap();
    let want: BTreeSet<String> = raws
        .iter()
        .filter(|r| r.published <= cutoff)
        .map(|r| r.id.clone())
        .collect();
    assert!(!want.is_empty() && want.len() < raws.len());
    assert_eq!(approved_advisories(&before, &candidates, today()), want);
}

#[test]
fn allow_lists_override_filters_and_classifications_are_checked() {
    let (candidates, _) = corpus();
    let low = candidates
        .iter()
        .find(|c| c.severity.as_deref() == Some("Low"))
        .unwrap();
    let cve = low.cves[0].clone();
    let b = Baseline::parse(&BaselineSpec {
        name: "high-plus-one".into(),
        min_severity: Some("high".into()),
        allow: vec![cve.clone()],
        classifications: vec!["bugfix".into()],
        ..Default::default()
    })
    .unwrap();
    assert!(b.decide(low, today()).is_approved(), "allowed by {cve}");
    // CVE-closing candidates without a stated class count as security: not a bugfix baseline's.
    let important = candidates
        .iter()
        .find(|c| c.severity.as_deref() == Some("Important") && !c.cves.contains(&cve))
        .unwrap();
    let d = b.decide(important, today());
    assert!(
        format!("{d:?}").contains("classification security is not approved"),
        "{d:?}"
    );
    for bad in [
        BaselineSpec {
            min_severity: Some("urgent".into()),
            ..Default::default()
        },
        BaselineSpec {
            classifications: vec!["feature".into()],
            ..Default::default()
        },
        BaselineSpec {
            released_before: Some("last year".into()),
            ..Default::default()
        },
        BaselineSpec {
            approve_after_days: Some(-1),
            ..Default::default()
        },
    ] {
        assert!(Baseline::parse(&bad).is_err(), "{bad:?}");
    }
}
