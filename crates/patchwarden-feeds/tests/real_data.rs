//! Every parser on the real data in tests/data (copied from shared/data; provenance in
//! tests/data/SOURCES.md), asserting specific facts: fixed versions of named packages in named
//! advisories and releases, CVSS scores, KEV due dates, EPSS percentiles, Debian and Alpine states.
use std::path::PathBuf;

use patchwarden_feeds::{alpine, debian, epss, kev, nvd, osv};
use patchwarden_model::{Advisory, AffectedPackage, Distro, FixState, PackageKeyKind};

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(path)
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(data(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn affected<'a>(a: &'a Advisory, ecosystem_prefix: &str, package: &str) -> &'a AffectedPackage {
    a.affected
        .iter()
        .find(|p| p.ecosystem.starts_with(ecosystem_prefix) && p.package == package)
        .unwrap_or_else(|| panic!("{}: no {package} in {ecosystem_prefix}", a.id))
}

/// All 1,783 AlmaLinux 9 advisories of the tarball (unpacked with the real `tar`) parse.
#[test]
fn almalinux9_all_advisories() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("almalinux9-all");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xJf")
        .arg(data("osv/almalinux9-all-advisories.tar.xz"))
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let mut advisories = Vec::new();
    for entry in std::fs::read_dir(dir.join("almalinux9")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        advisories.push(osv::parse(&bytes, &path.display().to_string()).unwrap());
    }
    assert_eq!(advisories.len(), 1783);
    assert_eq!(
        advisories
            .iter()
            .filter(|a| a.id.starts_with("ALSA-"))
            .count(),
        1780
    );
    // One ALSA may cover AlmaLinux 8, 9 and 10 at once: the release comes from each ecosystem string.
    let releases: std::collections::BTreeSet<String> = advisories
        .iter()
        .flat_map(|a| &a.affected)
        .map(|p| {
            p.release
                .as_ref()
                .filter(|r| r.distro == Some(Distro::Almalinux))
                .map(|r| r.release.clone())
                .unwrap()
        })
        .collect();
    assert!(
        releases.contains("9")
            && releases
                .iter()
                .all(|r| ["8", "9", "10"].contains(&r.as_str())),
        "{releases:?}"
    );
    let glibc = advisories
        .iter()
        .find(|a| a.id == "ALSA-2023:5453")
        .unwrap();
    assert!(glibc.cves.contains(&"CVE-2023-4911".to_owned()));
    assert_eq!(glibc.severity.as_deref(), Some("Important"));
    let p = affected(glibc, "AlmaLinux:9", "glibc");
    assert_eq!(
        (p.state, p.fixed_version.as_deref(), p.key_kind),
        (
            FixState::Fixed,
            Some("2.34-60.el9_2.7"),
            PackageKeyKind::Binary
        )
    );
    let openssl = advisories
        .iter()
        .find(|a| a.id == "ALSA-2024:2447")
        .unwrap();
    assert_eq!(
        affected(openssl, "AlmaLinux:9", "openssl-libs")
            .fixed_version
            .as_deref(),
        Some("1:3.0.7-27.el9")
    );
    assert!(openssl.cves.contains(&"CVE-2024-0727".to_owned()));
}

#[test]
fn almalinux_openssl_epoch() {
    let a = osv::parse(
        &read("osv/almalinux9/ALSA-2023_0946.json"),
        "ALSA-2023_0946.json",
    )
    .unwrap();
    assert_eq!(
        affected(&a, "AlmaLinux:9", "openssl-libs")
            .fixed_version
            .as_deref(),
        Some("1:3.0.1-47.el9_1")
    );
    assert!(a.cves.contains(&"CVE-2023-0286".to_owned()));
    assert_eq!(a.severity.as_deref(), Some("Moderate"));
}

#[test]
fn rocky_module_stream_version() {
    let a = osv::parse(
        &read("osv/rocky/RLSA-2024_3671.json"),
        "RLSA-2024_3671.json",
    )
    .unwrap();
    let ruby = affected(&a, "Rocky Linux:9", "ruby");
    assert_eq!(
        ruby.fixed_version.as_deref(),
        Some("0:3.3.1-2.module+el9.4.0+20787+4c237fd3")
    );
    assert_eq!(ruby.release.as_ref().unwrap().release, "9");
    assert!(a.cves.contains(&"CVE-2024-27280".to_owned()));
    for f in ["RLSA-2021_3891.json", "RLSA-2023_3220.json"] {
        let a = osv::parse(&read(&format!("osv/rocky/{f}")), f).unwrap();
        assert!(
            a.affected
                .iter()
                .all(|p| p.release.as_ref().unwrap().release == "8"),
            "{f}"
        );
    }
}

#[test]
fn ubuntu_old_layout() {
    let a = osv::parse(
        &read("osv/ubuntu/canonical-usn-repo/CVE-2024-0727.json"),
        "CVE-2024-0727.json",
    )
    .unwrap();
    assert_eq!(a.cves, ["CVE-2024-0727"]);
    let openssl = affected(&a, "Ubuntu:22.04:LTS", "openssl");
    assert_eq!(
        (openssl.state, openssl.fixed_version.as_deref()),
        (FixState::Fixed, Some("3.0.2-0ubuntu1.14"))
    );
    assert_eq!(openssl.severity.as_deref(), Some("low"));
    assert!(
        openssl.binaries.contains(&"libssl3".to_owned()),
        "{:?}",
        openssl.binaries
    );
    // jammy's edk2 and nodejs carry the vulnerable code with no fix: open ranges with versions listed.
    for open in ["edk2", "nodejs"] {
        let p = affected(&a, "Ubuntu:22.04:LTS", open);
        assert_eq!(
            (p.state, p.fixed_version.as_deref()),
            (FixState::NotFixedYet, None),
            "{open}"
        );
        assert!(!p.versions.is_empty());
    }
    // The Pro (ESM) stream is a separate release stream.
    let pro = affected(&a, "Ubuntu:Pro:16.04:LTS", "openssl");
    assert_eq!(pro.release.as_ref().unwrap().stream.as_deref(), Some("pro"));
    assert_eq!(
        pro.fixed_version.as_deref(),
        Some("1.0.2g-1ubuntu4.20+esm11")
    );
}

#[test]
fn ubuntu_new_layout_and_every_ubuntu_record() {
    let a = osv::parse(
        &read("osv/ubuntu/UBUNTU-CVE-2016-20013.json"),
        "UBUNTU-CVE-2016-20013.json",
    )
    .unwrap();
    assert_eq!(a.cves, ["CVE-2016-20013"]);
    assert_eq!(a.severity.as_deref(), Some("negligible"));
    assert_eq!(
        a.cvss_vectors,
        ["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"]
    );
    let eglibc = affected(&a, "Ubuntu:Pro:14.04:LTS", "eglibc");
    assert_eq!(eglibc.state, FixState::NotFixedYet);
    let mut count = 0;
    for entry in std::fs::read_dir(data("osv/ubuntu"))
        .unwrap()
        .chain(std::fs::read_dir(data("osv/ubuntu/canonical-usn-repo")).unwrap())
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let a =
                osv::parse(&std::fs::read(&path).unwrap(), &path.display().to_string()).unwrap();
            assert!(
                !a.affected.is_empty() || a.id.starts_with("USN-"),
                "{}",
                a.id
            );
            count += 1;
        }
    }
    assert_eq!(count, 17);
}

#[test]
fn debian_dsa_osv_record() {
    let a = osv::parse(&read("osv/debian/DSA-3029-1.json"), "DSA-3029-1.json").unwrap();
    assert!(a.affected.iter().all(|p| p
        .release
        .as_ref()
        .is_some_and(|r| r.distro == Some(Distro::Debian) && r.release == "7")));
}

#[test]
fn malformed_osv_names_file_and_record() {
    let e = osv::parse(br#"{"id": "ALSA-2099:0001", "affected": []}"#, "bad.json").unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad.json: ALSA-2099:0001: missing 'modified'"
    );
    let e = osv::parse(b"{not json", "broken.json").unwrap_err();
    assert!(
        e.to_string().starts_with("broken.json: not an OSV record"),
        "{e}"
    );
    let e = osv::parse(br#"{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixd":"1"}]}]}]}"#, "typo.json").unwrap_err();
    assert_eq!(
        e.to_string(),
        "typo.json: X-1: affected[0] (a): unknown range event 'fixd'"
    );
}

#[test]
fn nvd_objects_and_pages() {
    let page = nvd::parse(
        &read("nvd/cve-objects/CVE-2023-4911.emba-2026-02-13.json"),
        "emba",
    )
    .unwrap();
    let cve = &page.records[0];
    assert_eq!(
        (cve.id.as_str(), cve.status.as_deref(), cve.rejected),
        ("CVE-2023-4911", Some("Modified"), false)
    );
    let best = cve.best_metric().unwrap();
    assert_eq!(
        (best.version.as_str(), best.source.as_str(), best.primary),
        ("3.1", "nvd@nist.gov", true)
    );
    assert_eq!(
        (
            best.stated_score,
            best.computed_score,
            best.severity.as_deref()
        ),
        (Some(7.8), Some(7.8), Some("HIGH"))
    );
    assert!(cve.metrics.iter().all(|m| m.problem.is_none()));
    assert_eq!(cve.cwes, ["CWE-122", "CWE-787"]);
    let kev = cve.kev.as_ref().unwrap();
    assert_eq!(
        (kev.date_added.as_str(), kev.due_date.as_deref()),
        ("2023-11-21", Some("2023-12-12"))
    );

    // The same CVE on its first day: awaiting analysis, only the CNA's metric, no KEV yet.
    let day1 = &nvd::parse(
        &read("nvd/cve-objects/CVE-2023-4911.fkie-2023-10-03.json"),
        "fkie",
    )
    .unwrap()
    .records[0];
    assert_eq!(day1.status.as_deref(), Some("Awaiting Analysis"));
    assert!(day1.metrics.iter().all(|m| !m.primary) && day1.kev.is_none());

    let empty = &nvd::parse(
        &read("nvd/cve-objects/CVE-2024-0727.fkie-2024-01-26.json"),
        "fkie",
    )
    .unwrap()
    .records[0];
    assert!(empty.metrics.is_empty() && empty.best_metric().is_none());

    let page = nvd::parse(&read("nvd/api2.0/page-38-results.response.json"), "page").unwrap();
    assert_eq!(
        (
            page.records.len(),
            page.total_results,
            page.rejected_records.len()
        ),
        (38, Some(38), 0)
    );

    let xz = &nvd::parse(&read("nvd/api2.0/CVE-2024-3094.response.json"), "xz")
        .unwrap()
        .records[0];
    assert_eq!(xz.best_metric().unwrap().computed_score, Some(10.0));

    // Every response in the folder parses, every metric's vector is valid and its score recomputes.
    for entry in std::fs::read_dir(data("nvd/api2.0"))
        .unwrap()
        .chain(std::fs::read_dir(data("nvd/cve-objects")).unwrap())
    {
        let path = entry.unwrap().path();
        let page = nvd::parse(&std::fs::read(&path).unwrap(), &path.display().to_string()).unwrap();
        for r in &page.records {
            for m in &r.metrics {
                assert!(
                    m.problem.is_none(),
                    "{} {}: {:?}",
                    r.id,
                    m.vector,
                    m.problem
                );
            }
        }
    }
}

#[test]
fn nvd_stated_score_that_disagrees_with_its_vector_is_flagged() {
    let doc = br#"{"id":"CVE-2099-0001","sourceIdentifier":"x","vulnStatus":"Rejected","metrics":{"cvssMetricV31":[{"source":"nvd@nist.gov","type":"Primary","cvssData":{"version":"3.1","vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H","baseScore":5.0}}],"cvssMetricV2":[{"source":"nvd@nist.gov","type":"Primary","cvssData":{"version":"2.0","vectorString":"AV:N/AC:L/Au:N/C:P/I:P/A:Q","baseScore":7.5}}]}}"#;
    let r = &nvd::parse(doc, "t").unwrap().records[0];
    assert!(r.rejected);
    assert_eq!(r.metrics[0].computed_score, Some(9.8));
    assert!(r.metrics[0].problem.as_deref().unwrap().contains("differs"));
    assert_eq!(r.metrics[1].computed_score, None);
    assert!(r.metrics[1]
        .problem
        .as_deref()
        .unwrap()
        .contains("'Q' is not a valid value of 'A'"));
}

#[test]
fn kev_full_catalog() {
    let c = kev::parse(&read("kev/known_exploited_vulnerabilities.json"), "kev").unwrap();
    assert_eq!(
        (c.entries.len(), c.catalog_version.as_str()),
        (1404, "2025.08.25")
    );
    // Real entries may be due before they were added (CVE-2021-34527 was due 2021-07-20 under an
    // emergency directive and added 2021-11-03): the parser keeps such entries as they are.
    let print_nightmare = c
        .entries
        .iter()
        .find(|e| e.cve == "CVE-2021-34527")
        .unwrap();
    assert!(print_nightmare.due_date < print_nightmare.date_added);
    let looney = c.entries.iter().find(|e| e.cve == "CVE-2023-4911").unwrap();
    assert_eq!(
        (
            looney.date_added.as_str(),
            looney.due_date.as_str(),
            looney.known_ransomware_use
        ),
        ("2023-11-21", "2023-12-12", false)
    );
    assert_eq!(
        c.entries.iter().filter(|e| e.known_ransomware_use).count(),
        293
    );
    for f in [
        "kev-fixtures/vunnel-valid-catalog-1.json",
        "kev-fixtures/claircore-known_exploited_vulnerabilities.json",
    ] {
        assert!(!kev::parse(&read(f), f).unwrap().entries.is_empty(), "{f}");
    }
    let mut broken = String::from_utf8(read("kev/known_exploited_vulnerabilities.json")).unwrap();
    broken = broken.replacen(
        "\"dueDate\": \"2023-12-12\"",
        "\"dueDate\": \"12/12/2023\"",
        1,
    );
    let e = kev::parse(broken.as_bytes(), "kev.json").unwrap_err();
    assert!(
        e.to_string()
            .contains("dueDate '12/12/2023' is not YYYY-MM-DD"),
        "{e}"
    );
}

#[test]
fn epss_csv_variants() {
    let s = epss::parse_csv(
        &read("epss/epss_scores-2026-09-29.rows-subset.csv")[..],
        "subset",
    )
    .unwrap();
    assert_eq!(
        (s.model_version.as_deref(), s.score_date.as_deref()),
        (Some("v2026.06.15"), Some("2026-09-29T12:00:22Z"))
    );
    assert_eq!(s.scores.len(), 49);
    let heartbleed = s.scores.iter().find(|x| x.cve == "CVE-2014-0160").unwrap();
    assert_eq!(
        (heartbleed.score, heartbleed.percentile),
        (0.99999, 0.99997)
    );

    let missing_date = epss::parse_csv(
        &read("epss/fixtures/vunnel-missing-date.csv")[..],
        "missing-date",
    )
    .unwrap();
    assert_eq!(
        (
            missing_date.model_version.as_deref(),
            missing_date.score_date
        ),
        (Some("v2023.03.01"), None)
    );

    let e = epss::parse_csv(
        &read("epss/fixtures/vunnel-invalid-header.csv")[..],
        "invalid-header.csv",
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "invalid-header.csv: line 2: expected the header 'cve,epss,percentile', found 'invalid,header,format'");

    // The same file gzipped (as FIRST publishes it) gives the same snapshot.
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&read("epss/epss_scores-2026-09-29.rows-subset.csv"))
        .unwrap();
    assert_eq!(epss::parse_csv(&gz.finish().unwrap()[..], "gz").unwrap(), s);

    for f in [
        "claircore-data.csv",
        "vulnerablecode-epss_scores-2025-x-x.csv",
        "vunnel-example-1.csv",
    ] {
        assert!(
            !epss::parse_csv(&read(&format!("epss/fixtures/{f}"))[..], f)
                .unwrap()
                .scores
                .is_empty(),
            "{f}"
        );
    }
    let (api, date) = epss::parse_api_element(
        &read("epss/emba-per-cve-json/CVE-2014-0160_EPSS.json"),
        "api",
    )
    .unwrap();
    assert_eq!((api.score, date.as_str()), (0.97507, "2024-03-26"));

    let e = epss::parse_csv(
        &b"#model_version:v1\ncve,epss,percentile\nCVE-1-1,0.5,1.5\n"[..],
        "x.csv",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "x.csv: line 3: percentile '1.5' is not a number in [0, 1]"
    );
    let e = epss::parse_csv(&b"#model_version:v1\n"[..], "cut.csv").unwrap_err();
    assert!(e.to_string().contains("empty or truncated"));
}

#[test]
fn debian_tracker_slices() {
    let all = debian::parse(
        &read("debian-tracker/osvdev-debian_security_tracker_mock.json"),
        "mock",
    )
    .unwrap();
    let apparmor = all.iter().find(|a| a.id == "CVE-2014-1424").unwrap();
    let bookworm = affected(apparmor, "debian:bookworm", "apparmor");
    assert_eq!(
        (
            bookworm.state,
            bookworm.release.as_ref().unwrap().release.as_str()
        ),
        (FixState::NotAffected, "12")
    );
    let states: std::collections::BTreeSet<String> = all
        .iter()
        .flat_map(|a| a.affected.iter().map(|p| format!("{:?}", p.state)))
        .collect();
    assert!(
        states.contains("Fixed") && states.contains("NotAffected"),
        "{states:?}"
    );

    // The "releases": [] quirk parses as no releases.
    let vunnel = debian::parse(&read("debian-tracker/vunnel-debian.json"), "vunnel").unwrap();
    let chromium = vunnel.iter().find(|a| a.id == "CVE-2022-0358").unwrap();
    assert!(chromium.affected.is_empty());

    let vc = debian::parse(&read("debian-tracker/vulnerablecode-debian.json"), "vc").unwrap();
    assert!(
        vc.iter()
            .flat_map(|a| &a.affected)
            .any(|p| p.note.is_some()),
        "nodsa notes are kept"
    );

    let e = debian::parse(
        br#"{"p": {"CVE-1": {"releases": {"bookworm": {"status": "resolved"}}}}}"#,
        "t.json",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.json: p/CVE-1: bookworm: resolved without fixed_version"
    );
}

#[test]
fn alpine_secdb_json_and_yaml() {
    let a = alpine::parse_json(
        &read("alpine-secdb/claircore-v3.15-main-truncated.json"),
        "3.15",
    )
    .unwrap();
    let busybox_na = a.iter().find(|x| x.id == "CVE-2021-42373").unwrap();
    let p = affected(busybox_na, "alpine:v3.15", "busybox");
    assert_eq!(
        (p.state, p.release.as_ref().unwrap().release.as_str()),
        (FixState::NotAffected, "3.15")
    );
    let fixed = a.iter().find(|x| x.id == "CVE-2017-16544").unwrap();
    assert_eq!(
        affected(fixed, "alpine:v3.15", "busybox")
            .fixed_version
            .as_deref(),
        Some("1.27.2-r4")
    );

    let yaml = alpine::parse_yaml(
        &read("alpine-secdb/alpine-secdb-repo-v3.11-main.yaml"),
        "3.11-main.yaml",
    )
    .unwrap();
    // "CVE-2016-6258 XSA-182" is two ids in one string.
    let xsa = yaml.iter().find(|x| x.id == "XSA-182").unwrap();
    let cve = yaml.iter().find(|x| x.id == "CVE-2016-6258").unwrap();
    assert_eq!(
        affected(xsa, "alpine:v3.11", "xen").fixed_version,
        affected(cve, "alpine:v3.11", "xen").fixed_version
    );
    assert!(yaml.len() > 1000, "{}", yaml.len());
    // The JSON and YAML forms read alike: where the (truncated, older) v3.11 main JSON and the full
    // YAML name the same id, they give the same package and fixed version. The JSON's apk-tools entries
    // CVE-2017-9669/9671 are absent from this YAML copy, which was taken at another time.
    let json = alpine::parse_json(
        &read("alpine-secdb/vulnerablecode-v3.11-main-truncated.json"),
        "3.11-main.json",
    )
    .unwrap();
    let mut compared = 0;
    for adv in &json {
        let Some(y) = yaml.iter().find(|x| x.id == adv.id) else {
            assert!(
                ["CVE-2017-9669", "CVE-2017-9671"].contains(&adv.id.as_str()),
                "{} missing in YAML",
                adv.id
            );
            continue;
        };
        // The JSON also lists XSA-252 under the dirty version "4.10-1-r1" (not a valid apk version);
        // it is kept as data (matching will refuse it), but the YAML copy does not carry it.
        for p in adv
            .affected
            .iter()
            .filter(|p| p.fixed_version.as_deref() != Some("4.10-1-r1"))
        {
            assert!(
                y.affected
                    .iter()
                    .any(|q| q.package == p.package && q.fixed_version == p.fixed_version),
                "{} {}",
                adv.id,
                p.package
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 3);
    let dirty = json.iter().find(|x| x.id == "XSA-252").unwrap();
    assert!(dirty
        .affected
        .iter()
        .any(|p| p.fixed_version.as_deref() == Some("4.10-1-r1")));
    for f in [
        "alpine-secdb-repo-v3.11-community.yaml",
        "vunnel-v3.15-main-truncated.yaml",
    ] {
        assert!(
            !alpine::parse_yaml(&read(&format!("alpine-secdb/{f}")), f)
                .unwrap()
                .is_empty(),
            "{f}"
        );
    }
    assert!(!alpine::parse_json(
        &read("alpine-secdb/claircore-v3.10-community-truncated.json"),
        "3.10"
    )
    .unwrap()
    .is_empty());
}

#[test]
fn every_fixture_format_is_recognized() {
    use patchwarden_feeds::{detect, FeedFormat};
    for (path, want) in [
        ("osv/almalinux9/ALSA-2023_0946.json", Some(FeedFormat::Osv)),
        ("osv/ubuntu/USN-5614-1.json", Some(FeedFormat::Osv)),
        (
            "nvd/api2.0/page-38-results.response.json",
            Some(FeedFormat::Nvd),
        ),
        (
            "nvd/cve-objects/CVE-2024-0727.fkie-2024-01-26.json",
            Some(FeedFormat::Nvd),
        ),
        (
            "kev/known_exploited_vulnerabilities.json",
            Some(FeedFormat::Kev),
        ),
        (
            "epss/epss_scores-2026-09-29.rows-subset.csv",
            Some(FeedFormat::EpssCsv),
        ),
        (
            "debian-tracker/vunnel-debian.json",
            Some(FeedFormat::DebianTracker),
        ),
        (
            "alpine-secdb/claircore-v3.15-main-truncated.json",
            Some(FeedFormat::AlpineJson),
        ),
        (
            "alpine-secdb/alpine-secdb-repo-v3.11-main.yaml",
            Some(FeedFormat::AlpineYaml),
        ),
        (
            "redhat/csaf-vex/cve-2024-10041.json",
            Some(FeedFormat::RedhatVex),
        ),
        ("redhat/csaf-advisories/rhsa-2024_9371.json", None),
        ("kev/known_exploited_vulnerabilities_schema.json", None),
    ] {
        assert_eq!(detect(path, &read(path)).unwrap(), want, "{path}");
    }
    // Never a feed by elimination: an empty object, a tracker-shaped map without issues or whose
    // issues carry no releases (each once read as the whole Debian tracker, and replaced it).
    for text in [
        "{}",
        " {\"curl\": {}}",
        "{\"curl\": {\"CVE-2023-38545\": {}}}",
    ] {
        assert_eq!(detect("x.json", text.as_bytes()).unwrap(), None, "{text}");
    }
    // A document cut short is an error naming the file, not a skip.
    let tracker = read("debian-tracker/vunnel-debian.json");
    let cut = &tracker[..tracker.len() / 2];
    let err = detect("tracker-cut.json", cut).unwrap_err();
    assert_eq!(err.origin, "tracker-cut.json");
    assert!(err.reason.contains("not a complete JSON document"), "{err}");
}

#[test]
fn redhat_csaf_vex() {
    use patchwarden_feeds::redhat;
    let curl = redhat::parse(
        &read("redhat/csaf-vex/cve-2023-38545.json"),
        "cve-2023-38545.json",
    )
    .unwrap();
    assert_eq!(curl.len(), 1);
    let a = &curl[0];
    assert_eq!(
        (a.id.as_str(), a.cves.as_slice(), a.severity.as_deref()),
        (
            "CVE-2023-38545",
            &["CVE-2023-38545".to_owned()][..],
            Some("Important")
        )
    );
    let rhel9 = |stream: &str| {
        a.affected
            .iter()
            .filter(|p| {
                p.package == "curl"
                    && p.release
                        .as_ref()
                        .is_some_and(|r| r.release == "9" && r.stream.as_deref() == Some(stream))
            })
            .map(|p| (p.state, p.fixed_version.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    // The RHEL 9.0 EUS stream and the main RHEL 9 stream get their own fixed builds.
    assert!(
        rhel9("appstream:eus:9.0").contains(&(FixState::Fixed, "0:7.76.1-14.el9_0.9".into())),
        "{:?}",
        rhel9("appstream:eus:9.0")
    );
    assert!(
        rhel9("baseos")
            .iter()
            .chain(rhel9("appstream").iter())
            .any(|(s, v)| *s == FixState::Fixed && v.starts_with("0:7.76.1-26.el9")),
        "{:?} {:?}",
        rhel9("baseos"),
        rhel9("appstream")
    );
    assert!(a.affected.iter().any(|p| p.state == FixState::NotAffected));
    // Satellite client builds are kept, without a RHEL release.
    assert!(a
        .affected
        .iter()
        .any(|p| p.release.is_none() && p.ecosystem.contains("satellite")));

    // Will not fix, from a document trimmed to its remediations.
    let pam = redhat::parse(
        &read("redhat/csaf-vex/cve-2024-10041.json"),
        "cve-2024-10041.json",
    )
    .unwrap();
    let rhel7 = pam[0]
        .affected
        .iter()
        .find(|p| p.package == "pam" && p.release.as_ref().is_some_and(|r| r.release == "7"))
        .unwrap();
    assert_eq!(rhel7.state, FixState::WillNotFix);
    assert_eq!(
        rhel7.note.as_deref(),
        Some("no_fix_planned: Out of support scope")
    );
    let rhel9 = pam[0]
        .affected
        .iter()
        .find(|p| p.package == "pam" && p.release.as_ref().is_some_and(|r| r.release == "9"))
        .unwrap();
    assert_eq!(
        (rhel9.state, rhel9.fixed_version.as_deref()),
        (FixState::Fixed, Some("0:1.5.1-21.el9_5"))
    );

    for f in ["cve-2023-4154.json", "cve-2024-24786-simple.json"] {
        let list = redhat::parse(&read(&format!("redhat/csaf-vex/{f}")), f).unwrap();
        assert!(!list[0].affected.is_empty(), "{f}");
    }
    let e = redhat::parse(
        &read("redhat/csaf-advisories/rhsa-2024_6163.json"),
        "rhsa.json",
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a CSAF VEX document"), "{e}");
}
