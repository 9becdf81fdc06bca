//! Matching against the real advisory records of `tests/data` (parsed by `patchwarden-feeds`), per
//! distribution family: installed versions just below, equal to and above the fixed version,
//! epochs, tildes, source vs binary keys, backports, module streams, kernels, rejected, withdrawn,
//! unfixed and not-affected entries. The installed versions are chosen around the real fixed
//! versions; the advisories are unchanged except where a test says it simulates a state (withdrawn,
//! rejected) that no fixture carries.

use std::path::PathBuf;

use patchwarden_match::{
    evaluate, FindingState as F, KnowledgeIndex, MatchOptions, NotAFinding as N, Outcome, Verdict,
};
use patchwarden_model::*;

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(path)
}

fn provenance(source: Source) -> Provenance {
    Provenance {
        source,
        origin: "tests/data".into(),
        fetched_at: "2026-11-22T00:00:00Z".into(),
        sha256: String::new(),
    }
}

fn osv(paths: &[&str]) -> Vec<(String, Provenance, Advisory)> {
    paths
        .iter()
        .map(|p| {
            let a = patchwarden_feeds::osv::parse(&std::fs::read(data(p)).unwrap(), p).unwrap();
            ("osv".to_owned(), provenance(Source::Osv), a)
        })
        .collect()
}

/// (name, version, source name, source version)
type Pkg<'a> = patchwarden_model::testing::TestPackage<'a>;

fn inventory(id: &str, version: &str, codename: Option<&str>, packages: &[Pkg]) -> Inventory {
    patchwarden_model::testing::inventory(id, version, codename, packages)
}

fn outcome(verdicts: &[Verdict<'_>], package: &str, advisory: &str) -> Vec<Outcome> {
    verdicts
        .iter()
        .filter(|v| v.package == package && v.advisory_id == advisory)
        .map(|v| v.outcome)
        .collect()
}

fn run<'a>(inv: &'a Inventory, index: &'a KnowledgeIndex) -> Vec<Verdict<'a>> {
    evaluate(inv, index, &MatchOptions::default())
}

#[test]
fn almalinux_binary_keys_and_epochs() {
    let index = KnowledgeIndex::build(osv(&["osv/almalinux9/ALSA-2023_0946.json"]), []);
    // ALSA-2023:0946 fixes openssl-libs in 1:3.0.1-47.el9_1 (note the epoch).
    for (installed, expected) in [
        ("1:3.0.1-46.el9_0", Outcome::Finding(F::FixAvailable)),
        (
            "1:3.0.1-47.el9_1",
            Outcome::NotAFinding(N::FixedVersionInstalled),
        ),
        (
            "1:3.0.7-16.el9_2",
            Outcome::NotAFinding(N::FixedVersionInstalled),
        ),
        // Without the epoch the version is epoch 0: older than any 1: version.
        ("3.0.9-99.el9", Outcome::Finding(F::FixAvailable)),
    ] {
        let inv = inventory(
            "almalinux",
            "9.1",
            None,
            &[("openssl-libs", installed, "openssl", "3.0.1-46.el9_0")],
        );
        let v = run(&inv, &index);
        assert_eq!(
            outcome(&v, "openssl-libs", "ALSA-2023:0946"),
            [expected],
            "{installed}"
        );
        let hit = v.iter().find(|v| v.package == "openssl-libs").unwrap();
        assert_eq!(
            (hit.matched_name, hit.key_kind, hit.scheme),
            ("openssl-libs", PackageKeyKind::Binary, "rpm")
        );
        assert_eq!(hit.fixed_version, Some("1:3.0.1-47.el9_1"));
    }
    // AlmaLinux 8 is another release: nothing matches there.
    let el8 = inventory(
        "almalinux",
        "8.9",
        None,
        &[("openssl-libs", "1:1.1.1k-1.el8", "openssl", "1.1.1k-1.el8")],
    );
    assert!(run(&el8, &index).is_empty());
}

#[test]
fn ubuntu_source_keys_tildes_backports_and_unfixed() {
    let index = KnowledgeIndex::build(
        osv(&[
            "osv/ubuntu/canonical-usn-repo/CVE-2023-0286.json",
            "osv/ubuntu/canonical-usn-repo/CVE-2024-0727.json",
        ]),
        [],
    );
    let jammy = |pkgs: &[Pkg]| inventory("ubuntu", "22.04", Some("jammy"), pkgs);
    // libssl3 (binary) is built from openssl (source): the source version is compared.
    let host = jammy(&[("libssl3", "3.0.2-0ubuntu1.7", "openssl", "3.0.2-0ubuntu1.7")]);
    let v = run(&host, &index);
    assert_eq!(
        outcome(&v, "libssl3", "CVE-2023-0286"),
        [Outcome::Finding(F::FixAvailable)]
    );
    assert_eq!(v[0].matched_name, "openssl");
    assert_eq!(v[0].key_kind, PackageKeyKind::Source);
    // The backported fix 3.0.2-0ubuntu1.8 is below upstream's 3.0.8 (NVD's CPE range): fixed.
    let host = jammy(&[("libssl3", "3.0.2-0ubuntu1.8", "openssl", "3.0.2-0ubuntu1.8")]);
    let v = run(&host, &index);
    assert_eq!(
        outcome(&v, "libssl3", "CVE-2023-0286"),
        [Outcome::NotAFinding(N::FixedVersionInstalled)]
    );
    // ... but CVE-2024-0727 needs 3.0.2-0ubuntu1.14.
    assert_eq!(
        outcome(&v, "libssl3", "CVE-2024-0727"),
        [Outcome::Finding(F::FixAvailable)]
    );
    // Tildes: 12.22.9~dfsg-1ubuntu3.3 is the fix; ~ sorts before anything.
    for (installed, expected) in [
        ("12.22.9~dfsg-1ubuntu3.2", Outcome::Finding(F::FixAvailable)),
        (
            "12.22.9~dfsg-1ubuntu3.3",
            Outcome::NotAFinding(N::FixedVersionInstalled),
        ),
        ("12.22.9~", Outcome::Finding(F::FixAvailable)),
        ("12.22.9-1", Outcome::NotAFinding(N::FixedVersionInstalled)),
    ] {
        let host = jammy(&[("libnode72", installed, "nodejs", installed)]);
        let v = run(&host, &index);
        assert_eq!(
            outcome(&v, "libnode72", "CVE-2023-0286"),
            [expected],
            "{installed}"
        );
    }
    // edk2 has no fix for CVE-2024-0727 in jammy.
    let host = jammy(&[(
        "ovmf",
        "2022.02-3ubuntu0.22.04.1",
        "edk2",
        "2022.02-3ubuntu0.22.04.1",
    )]);
    let v = run(&host, &index);
    assert_eq!(
        outcome(&v, "ovmf", "CVE-2024-0727"),
        [Outcome::Finding(F::NoFixYet)]
    );
    // Noble is judged by noble's entry (3.0.10-1ubuntu4), not jammy's; CVE-2023-0286 has none.
    let noble = inventory(
        "ubuntu",
        "24.04",
        Some("noble"),
        &[("libssl3", "3.0.13-0ubuntu3", "openssl", "3.0.13-0ubuntu3")],
    );
    let v = run(&noble, &index);
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].advisory_id, v[0].fixed_version, v[0].outcome),
        (
            "CVE-2024-0727",
            Some("3.0.10-1ubuntu4"),
            Outcome::NotAFinding(N::FixedVersionInstalled)
        )
    );
    // Bionic's only CVE-2024-0727 entry is Ubuntu Pro's (…+esm4): a host without Pro is affected
    // but cannot receive the fix without a subscription; a Pro host (told, or seen from +esm
    // versions) can.
    let bionic = inventory(
        "ubuntu",
        "18.04",
        Some("bionic"),
        &[(
            "libssl1.1",
            "1.1.1-1ubuntu2.1~18.04.23",
            "openssl",
            "1.1.1-1ubuntu2.1~18.04.23",
        )],
    );
    assert_eq!(
        outcome(&run(&bionic, &index), "libssl1.1", "CVE-2024-0727"),
        [Outcome::Finding(F::FixRequiresSubscription)]
    );
    let pro = evaluate(
        &bionic,
        &index,
        &MatchOptions {
            ubuntu_pro: Some(true),
        },
    );
    assert_eq!(
        outcome(&pro, "libssl1.1", "CVE-2024-0727"),
        [Outcome::Finding(F::FixAvailable)]
    );
}

/// Ubuntu Pro streams on the releases Canonical now tracks only under Pro (14.04, 16.04, 18.04,
/// 20.04), with real records: a host without Pro is still affected by a CVE whose only entries
/// are Pro entries — `no_fix_yet` when no stream has a fix, `fix_requires_subscription` (never
/// `fix_available`) when the fix is published under Pro only; a Pro host sees `fix_available`; an
/// entry of the host's own stream supersedes the Pro entry for a host without Pro.
#[test]
fn ubuntu_pro_streams_with_and_without_pro() {
    let index = KnowledgeIndex::build(
        osv(&[
            "osv/ubuntu/UBUNTU-CVE-2022-24823.json",
            "osv/ubuntu/UBUNTU-CVE-2016-20013.json",
            "osv/ubuntu/UBUNTU-CVE-2014-9913.json",
        ]),
        [],
    );
    let host = |release: &str, codename: &str, packages: &[Pkg]| {
        inventory("ubuntu", release, Some(codename), packages)
    };
    let pro = MatchOptions {
        ubuntu_pro: Some(true),
    };
    let without = MatchOptions {
        ubuntu_pro: Some(false),
    };
    let verdict = |inv: &Inventory, options: &MatchOptions, package: &str, id: &str| {
        let v = evaluate(inv, &index, options);
        outcome(&v, package, id)
    };
    // netty, CVE-2022-24823: Pro-only entries; 14.04 unfixed, 16.04/18.04/20.04 fixed under Pro.
    let trusty = host(
        "14.04",
        "trusty",
        &[(
            "libnetty-java",
            "1:3.2.6.Final-2",
            "netty",
            "1:3.2.6.Final-2",
        )],
    );
    for options in [&without, &pro] {
        assert_eq!(
            verdict(&trusty, options, "libnetty-java", "UBUNTU-CVE-2022-24823"),
            [Outcome::Finding(F::NoFixYet)]
        );
    }
    for (release, codename, installed, fixed) in [
        ("16.04", "xenial", "1:4.0.34-1", "1:4.0.34-1ubuntu0.1~esm2"),
        ("18.04", "bionic", "1:4.1.7-4", "1:4.1.7-4ubuntu0.1+esm3"),
        ("20.04", "focal", "1:4.1.45-1", "1:4.1.45-1ubuntu0.1~esm2"),
    ] {
        let behind = host(
            release,
            codename,
            &[("libnetty-java", installed, "netty", installed)],
        );
        assert_eq!(
            verdict(&behind, &without, "libnetty-java", "UBUNTU-CVE-2022-24823"),
            [Outcome::Finding(F::FixRequiresSubscription)],
            "{release} without Pro"
        );
        let v = evaluate(&behind, &index, &without);
        let hit = v.iter().find(|v| v.package == "libnetty-java").unwrap();
        assert_eq!((hit.fixed_version, hit.stream), (Some(fixed), Some("pro")));
        assert_eq!(
            verdict(&behind, &pro, "libnetty-java", "UBUNTU-CVE-2022-24823"),
            [Outcome::Finding(F::FixAvailable)],
            "{release} with Pro"
        );
        // A host that once had Pro and installed the fix is fixed, with or without Pro now.
        let patched = host(
            release,
            codename,
            &[("libnetty-java", fixed, "netty", fixed)],
        );
        for options in [&without, &pro] {
            assert_eq!(
                verdict(&patched, options, "libnetty-java", "UBUNTU-CVE-2022-24823"),
                [Outcome::NotAFinding(N::FixedVersionInstalled)],
                "{release}"
            );
        }
    }
    // glibc/eglibc, CVE-2016-20013: unfixed, Pro entries only on 14.04-20.04 — affected without Pro.
    for (release, codename, source, installed) in [
        ("14.04", "trusty", "eglibc", "2.19-0ubuntu6.15"),
        ("16.04", "xenial", "glibc", "2.23-0ubuntu11.3"),
        ("18.04", "bionic", "glibc", "2.27-3ubuntu1.6"),
        ("20.04", "focal", "glibc", "2.31-0ubuntu9.18"),
    ] {
        let inv = host(
            release,
            codename,
            &[("libc6", installed, source, installed)],
        );
        for options in [&without, &pro] {
            assert_eq!(
                verdict(&inv, options, "libc6", "UBUNTU-CVE-2016-20013"),
                [Outcome::Finding(F::NoFixYet)],
                "{release}"
            );
        }
    }
    // unzip, CVE-2014-9913: 14.04 fixed under Pro only; 16.04 fixed in its own stream.
    let unzip = |release, codename| {
        host(
            release,
            codename,
            &[("unzip", "6.0-9ubuntu1", "unzip", "6.0-9ubuntu1")],
        )
    };
    assert_eq!(
        verdict(
            &unzip("14.04", "trusty"),
            &without,
            "unzip",
            "UBUNTU-CVE-2014-9913"
        ),
        [Outcome::Finding(F::FixRequiresSubscription)]
    );
    assert_eq!(
        verdict(
            &unzip("16.04", "xenial"),
            &without,
            "unzip",
            "UBUNTU-CVE-2014-9913"
        ),
        [Outcome::Finding(F::FixAvailable)]
    );
    // Synthetic, derived from the real UBUNTU-CVE-2014-9913 (no fixture has both kinds of entry
    // for one release): a Pro entry for 16.04 beside the real 16.04 entry, with a later fix. A
    // host without Pro is judged by its own stream's entry alone; a Pro host by both.
    let mut derived = patchwarden_feeds::osv::parse(
        &std::fs::read(data("osv/ubuntu/UBUNTU-CVE-2014-9913.json")).unwrap(),
        "derived",
    )
    .unwrap();
    let mut extra = derived
        .affected
        .iter()
        .find(|p| p.release.as_ref().is_some_and(|r| r.release == "16.04"))
        .unwrap()
        .clone();
    extra.release.as_mut().unwrap().stream = Some("pro".into());
    extra.ecosystem = "Ubuntu:Pro:16.04:LTS".into();
    extra.fixed_version = Some("6.0-20ubuntu1.1+esm1".into());
    derived.affected.push(extra);
    let index = KnowledgeIndex::build([("osv".to_owned(), provenance(Source::Osv), derived)], []);
    let fixed_main = host(
        "16.04",
        "xenial",
        &[("unzip", "6.0-20ubuntu1.1", "unzip", "6.0-20ubuntu1.1")],
    );
    let v = evaluate(&fixed_main, &index, &without);
    assert_eq!(
        outcome(&v, "unzip", "UBUNTU-CVE-2014-9913"),
        [
            Outcome::NotAFinding(N::FixedVersionInstalled),
            Outcome::NotAFinding(N::OtherStream)
        ]
    );
    let v = evaluate(&fixed_main, &index, &pro);
    assert_eq!(
        outcome(&v, "unzip", "UBUNTU-CVE-2014-9913"),
        [
            Outcome::NotAFinding(N::FixedVersionInstalled),
            Outcome::Finding(F::FixAvailable)
        ]
    );
}

/// A RHEL rebuild reads Red Hat's unfixed statements for the RHEL release it follows, by source RPM:
/// the real VEX for CVE-2024-10041 says RHEL 7's pam is out of support scope (`no_fix_planned`), so
/// an Oracle Linux 7 host's pam and pam-devel (source pam) are `will_not_fix`, marked as derived
/// from Red Hat; RHEL 9's pam is fixed, and a fixed version never comes from Red Hat for a rebuild
/// (its own errata give those): an AlmaLinux 9 host gets nothing from this record.
#[test]
fn rebuilds_take_red_hats_unfixed_statements_by_source_rpm() {
    let bytes = std::fs::read(data("redhat/csaf-vex/cve-2024-10041.json")).unwrap();
    let advisories = patchwarden_feeds::redhat::parse(&bytes, "vex").unwrap();
    let index = KnowledgeIndex::build(
        advisories
            .into_iter()
            .map(|a| ("redhat-vex".to_owned(), provenance(Source::RedhatVex), a)),
        [],
    );
    let ol7 = inventory(
        "ol",
        "7.9",
        None,
        &[
            ("pam", "1.1.8-23.el7", "pam", "1.1.8-23.el7"),
            ("pam-devel", "1.1.8-23.el7", "pam", "1.1.8-23.el7"),
            ("bash", "4.2.46-34.el7", "bash", "4.2.46-34.el7"),
        ],
    );
    let v = run(&ol7, &index);
    for package in ["pam", "pam-devel"] {
        assert_eq!(
            outcome(&v, package, "CVE-2024-10041"),
            [Outcome::Finding(F::WillNotFix)],
            "{package}"
        );
        let hit = v.iter().find(|v| v.package == package).unwrap();
        assert_eq!(hit.note, Some(patchwarden_match::DERIVED_FROM_RED_HAT));
        assert_eq!(
            (hit.matched_name, hit.key_kind),
            ("pam", PackageKeyKind::Source)
        );
        assert_eq!(hit.fixed_version, None);
    }
    assert!(outcome(&v, "bash", "CVE-2024-10041").is_empty());
    let alma9 = inventory(
        "almalinux",
        "9.4",
        None,
        &[("pam", "1.5.1-19.el9", "pam", "1.5.1-19.el9")],
    );
    assert!(run(&alma9, &index).is_empty());
    // RHEL itself is matched by binary as before (no derived note).
    let rhel7 = inventory(
        "rhel",
        "7.9",
        None,
        &[("pam", "1.1.8-23.el7", "pam", "1.1.8-23.el7")],
    );
    let v = run(&rhel7, &index);
    assert_eq!(
        outcome(&v, "pam", "CVE-2024-10041"),
        [Outcome::Finding(F::WillNotFix)]
    );
    assert_ne!(v[0].note, Some(patchwarden_match::DERIVED_FROM_RED_HAT));
}

/// A RHEL host on the main stream against one on an extended-support stream, on the real VEX for
/// CVE-2023-38545 (curl): 9.0 EUS has its own fix (`7.76.1-14.el9_0.9`), 9.2's main-stream fix
/// (`BaseOS-9.2.0.Z.MAIN.EUS`, `23.el9_2.4`) carries on into 9.2 EUS, 9.3's main fix is `26.el9_3.2`.
/// Each host is judged by its own stream's entry; a 9.0 EUS host is never told to take a
/// main-stream build, and a main-stream host never reads an EUS-only entry.
#[test]
fn rhel_hosts_are_judged_by_the_stream_they_follow() {
    let bytes = std::fs::read(data("redhat/csaf-vex/cve-2023-38545.json")).unwrap();
    let advisories = patchwarden_feeds::redhat::parse(&bytes, "vex").unwrap();
    let index = KnowledgeIndex::build(
        advisories
            .into_iter()
            .map(|a| ("redhat-vex".to_owned(), provenance(Source::RedhatVex), a)),
        [],
    );
    let host = |version: &str, installed: &str, stream: Option<(RhelPhase, &str)>| {
        let mut inv = inventory(
            "rhel",
            version,
            None,
            &[("curl", installed, "curl", installed)],
        );
        inv.os.rhel_stream = stream.map(|(phase, minor)| RhelStream {
            phase,
            minor: Some(minor.to_owned()),
            els: false,
            evidence: "test".into(),
        });
        inv
    };
    let findings = |inv: &Inventory| -> Vec<(Outcome, Option<String>, Option<String>)> {
        let mut v: Vec<_> = run(inv, &index)
            .into_iter()
            .filter(|v| v.package == "curl" && matches!(v.outcome, Outcome::Finding(_)))
            .map(|v| {
                (
                    v.outcome,
                    v.fixed_version.map(str::to_owned),
                    v.stream.map(str::to_owned),
                )
            })
            .collect();
        v.sort_by_key(|f| format!("{f:?}"));
        v.dedup();
        v
    };
    // 9.0 EUS, one build before its fix: its own stream's fix, nothing from the main stream.
    let eus90 = host("9.0", "7.76.1-14.el9_0.8", Some((RhelPhase::Eus, "9.0")));
    let f = findings(&eus90);
    assert!(!f.is_empty());
    for (outcome, fixed, stream) in &f {
        assert_eq!(*outcome, Outcome::Finding(F::FixAvailable), "{f:?}");
        assert_eq!(fixed.as_deref(), Some("0:7.76.1-14.el9_0.9"), "{f:?}");
        assert!(stream.as_deref().unwrap().ends_with(":eus:9.0"), "{f:?}");
    }
    // The same build on the main stream: the main stream's fixes, never the EUS build.
    let main = host("9.0", "7.76.1-14.el9_0.8", None);
    let f = findings(&main);
    assert!(
        f.iter()
            .all(|(o, fixed, _)| *o == Outcome::Finding(F::FixAvailable)
                && fixed.as_deref() != Some("0:7.76.1-14.el9_0.9")),
        "{f:?}"
    );
    assert!(f
        .iter()
        .any(|(_, fixed, _)| fixed.as_deref() == Some("0:7.76.1-26.el9_3.2")));
    // At the 9.0 EUS fix: done on 9.0 EUS, still affected on the main stream.
    let fixed90 = host("9.0", "7.76.1-14.el9_0.9", Some((RhelPhase::Eus, "9.0")));
    assert!(findings(&fixed90).is_empty(), "{:?}", findings(&fixed90));
    assert!(!findings(&host("9.0", "7.76.1-14.el9_0.9", None)).is_empty());
    // 9.2 EUS: the fix published while 9.2 was the main stream is its own.
    let eus92 = host("9.2", "7.76.1-23.el9_2.3", Some((RhelPhase::Eus, "9.2")));
    let f = findings(&eus92);
    assert!(!f.is_empty());
    for (outcome, fixed, _) in &f {
        assert_eq!(*outcome, Outcome::Finding(F::FixAvailable), "{f:?}");
        assert_eq!(fixed.as_deref(), Some("0:7.76.1-23.el9_2.4"), "{f:?}");
    }
    assert!(findings(&host(
        "9.2",
        "7.76.1-23.el9_2.4",
        Some((RhelPhase::Eus, "9.2"))
    ))
    .is_empty());
    // 9.4 EUS has no entry of its own here: the main stream says it is affected, but the main
    // stream's fix is not its stream's — no fix yet, said why.
    let eus94 = host("9.4", "7.76.1-14.el9_0.8", Some((RhelPhase::Eus, "9.4")));
    let v = run(&eus94, &index);
    let hits: Vec<_> = v
        .iter()
        .filter(|v| matches!(v.outcome, Outcome::Finding(_)))
        .collect();
    assert!(!hits.is_empty());
    for h in &hits {
        assert_eq!(h.outcome, Outcome::Finding(F::NoFixYet), "{h:?}");
        assert_eq!(h.note, Some(patchwarden_match::FIX_IN_MAIN_STREAM_ONLY));
        assert_eq!(h.fixed_version, None);
    }
}

#[test]
fn debian_tracker_states() {
    let bytes = std::fs::read(data(
        "debian-tracker/osvdev-debian_security_tracker_mock.json",
    ))
    .unwrap();
    let advisories = patchwarden_feeds::debian::parse(&bytes, "tracker").unwrap();
    let index = KnowledgeIndex::build(
        advisories.into_iter().map(|a| {
            (
                "debian-tracker".into(),
                provenance(Source::DebianTracker),
                a,
            )
        }),
        [],
    );
    // bookworm apparmor: CVE-2014-1424 fixed_version "0" (not affected), CVE-2016-1585 open and
    // unimportant, CVE-2017-6507 fixed in 2.11.0-3. libapparmor1 is a binary of source apparmor.
    let inv = inventory(
        "debian",
        "12",
        Some("bookworm"),
        &[("libapparmor1", "3.0.8-3", "apparmor", "3.0.8-3")],
    );
    let v = run(&inv, &index);
    assert_eq!(
        outcome(&v, "libapparmor1", "CVE-2014-1424"),
        [Outcome::NotAFinding(N::DistributionSaysNotAffected)]
    );
    assert_eq!(
        outcome(&v, "libapparmor1", "CVE-2016-1585"),
        [Outcome::Finding(F::WillNotFix)]
    );
    assert_eq!(
        outcome(&v, "libapparmor1", "CVE-2017-6507"),
        [Outcome::NotAFinding(N::FixedVersionInstalled)]
    );
    // Just below the fix.
    let old = inventory(
        "debian",
        "12",
        Some("bookworm"),
        &[("libapparmor1", "2.11.0-2", "apparmor", "2.11.0-2")],
    );
    assert_eq!(
        outcome(&run(&old, &index), "libapparmor1", "CVE-2017-6507"),
        [Outcome::Finding(F::FixAvailable)]
    );
    // A rejected CVE never makes a finding (no fixture carries a rejected NVD record for these ids:
    // the test marks CVE-2016-1585 rejected in the index, as NVD's rejection list would).
    let advisories = patchwarden_feeds::debian::parse(&bytes, "tracker").unwrap();
    let rejected = KnowledgeIndex::build(
        advisories.into_iter().map(|a| {
            (
                "debian-tracker".into(),
                provenance(Source::DebianTracker),
                a,
            )
        }),
        ["CVE-2016-1585".to_owned()],
    );
    assert_eq!(
        outcome(&run(&inv, &rejected), "libapparmor1", "CVE-2016-1585"),
        [Outcome::NotAFinding(N::Rejected)]
    );
}

#[test]
fn withdrawn_advisories_never_match() {
    // No fixture is withdrawn: the test withdraws a real AlmaLinux advisory as its source would.
    let mut list = osv(&["osv/almalinux9/ALSA-2023_0946.json"]);
    list[0].2.withdrawn = Some("2026-01-01T00:00:00Z".into());
    let index = KnowledgeIndex::build(list, []);
    let inv = inventory(
        "almalinux",
        "9.1",
        None,
        &[(
            "openssl-libs",
            "1:3.0.1-46.el9_0",
            "openssl",
            "3.0.1-46.el9_0",
        )],
    );
    assert_eq!(
        outcome(&run(&inv, &index), "openssl-libs", "ALSA-2023:0946"),
        [Outcome::NotAFinding(N::Withdrawn)]
    );
}

#[test]
fn rocky_module_streams_do_not_cross_match() {
    let index = KnowledgeIndex::build(osv(&["osv/rocky/RLSA-2024_3671.json"]), []);
    // RLSA-2024:3671 fixes the ruby:3.3 module stream (0:3.3.1-2.module+el9.4.0+...).
    let default_stream = inventory(
        "rocky",
        "9.4",
        None,
        &[("ruby", "3.0.4-160.el9_0", "ruby", "3.0.4-160.el9_0")],
    );
    assert_eq!(
        outcome(&run(&default_stream, &index), "ruby", "RLSA-2024:3671"),
        [Outcome::NotAFinding(N::OtherModuleStream)]
    );
    let module = inventory(
        "rocky",
        "9.4",
        None,
        &[(
            "ruby",
            "3.3.0-1.module+el9.4.0+17000+aaaaaaaa",
            "ruby",
            "3.3.0-1.module+el9.4.0+17000+aaaaaaaa",
        )],
    );
    assert_eq!(
        outcome(&run(&module, &index), "ruby", "RLSA-2024:3671"),
        [Outcome::Finding(F::FixAvailable)]
    );
}

#[test]
fn alpine_secdb_by_origin() {
    let bytes = std::fs::read(data("alpine-secdb/alpine-secdb-repo-v3.11-main.yaml")).unwrap();
    let advisories = patchwarden_feeds::alpine::parse_yaml(&bytes, "secdb").unwrap();
    let index = KnowledgeIndex::build(
        advisories
            .into_iter()
            .map(|a| ("alpine-secdb".into(), provenance(Source::AlpineSecdb), a)),
        [],
    );
    // openssl 1.1.1d-r3 fixes CVE-2019-1551 in v3.11; libssl1.1 comes from origin openssl.
    for (installed, expected) in [
        ("1.1.1d-r2", Outcome::Finding(F::FixAvailable)),
        ("1.1.1d-r3", Outcome::NotAFinding(N::FixedVersionInstalled)),
        ("1.1.1g-r0", Outcome::NotAFinding(N::FixedVersionInstalled)),
    ] {
        let inv = inventory(
            "alpine",
            "3.11.6",
            None,
            &[("libssl1.1", installed, "openssl", installed)],
        );
        let v = run(&inv, &index);
        let hits: Vec<&Verdict> = v
            .iter()
            .filter(|v| v.package == "libssl1.1" && v.fixed_version == Some("1.1.1d-r3"))
            .collect();
        assert!(!hits.is_empty(), "{installed}");
        assert!(hits.iter().all(|h| h.outcome == expected), "{installed}");
    }
}

#[test]
fn running_kernel_decides() {
    let index = KnowledgeIndex::build(osv(&["osv/almalinux9/ALSA-2024_2394.json"]), []);
    // ALSA-2024:2394 fixes kernel-core in 5.14.0-427.13.1.el9_4.
    let (old, new) = ("5.14.0-362.8.1.el9_3", "5.14.0-427.13.1.el9_4");
    let mut inv = inventory(
        "almalinux",
        "9.4",
        None,
        &[
            ("kernel-core", old, "kernel", old),
            ("kernel-core", new, "kernel", new),
            // The `kernel` package of each build is judged like its `kernel-core`.
            ("kernel", old, "kernel", old),
            ("kernel", new, "kernel", new),
        ],
    );
    inv.kernel.installed = vec![
        InstalledKernel {
            release: format!("{new}.x86_64"),
            package: "kernel-core".into(),
            version: new.into(),
        },
        InstalledKernel {
            release: format!("{old}.x86_64"),
            package: "kernel-core".into(),
            version: old.into(),
        },
    ];
    let kernel_outcomes = |inv: &Inventory| -> Vec<(String, Outcome)> {
        let verdicts = run(inv, &index);
        let of = |name: &str| -> Vec<(String, Outcome)> {
            verdicts
                .iter()
                .filter(|v| v.package == name)
                .map(|v| (v.installed_version.to_owned(), v.outcome))
                .collect()
        };
        let core = of("kernel-core");
        if inv.packages.iter().any(|p| p.name == "kernel") {
            assert_eq!(of("kernel"), core, "kernel and kernel-core agree");
        }
        core
    };
    // Running the old one, the fixed one installed: pending reboot (not fixed).
    inv.kernel.running = Some(format!("{old}.x86_64"));
    assert_eq!(
        kernel_outcomes(&inv),
        [
            (old.to_owned(), Outcome::Finding(F::PendingReboot)),
            (
                new.to_owned(),
                Outcome::NotAFinding(N::KernelNotRunningFixed)
            ),
        ]
    );
    // Running the fixed one: the old one is reported separately as installed, not running.
    inv.kernel.running = Some(format!("{new}.x86_64"));
    assert_eq!(
        kernel_outcomes(&inv),
        [
            (old.to_owned(), Outcome::Finding(F::InstalledNotRunning)),
            (
                new.to_owned(),
                Outcome::NotAFinding(N::FixedVersionInstalled)
            ),
        ]
    );
    // Only the old kernel installed and running: an ordinary finding.
    inv.packages.truncate(1);
    inv.kernel.installed.truncate(0);
    inv.kernel.installed.push(InstalledKernel {
        release: format!("{old}.x86_64"),
        package: "kernel-core".into(),
        version: old.into(),
    });
    inv.kernel.running = Some(format!("{old}.x86_64"));
    assert_eq!(
        kernel_outcomes(&inv),
        [(old.to_owned(), Outcome::Finding(F::FixAvailable))]
    );
}
