//! `patchwarden scan` end to end on real systems, each checked against an independent computation
//! over the same advisory files:
//! * a Debian 12 root built by mmdebstrap, against the Debian tracker slices — expected findings
//!   computed with python3-apt's `apt_pkg.version_compare`;
//! * an AlmaLinux 9 rpmdb built with rpmbuild + `rpm --justdb` from real AlmaLinux 9 package versions
//!   (each package at the fixed version of its oldest advisory in the fixtures, so several advisories
//!   behind), against the 405 real AlmaLinux 9 OSV advisories — expected findings computed with
//!   python3-rpm's `rpm.labelCompare`.
//!
//! Plus exit codes (`--fail-on`), inventory files, policies and bad input.
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

fn scan(db: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--db")
        .arg(db)
        .arg("scan")
        .args(args)
        .output()
        .expect("run patchwarden scan")
}

/// Runs `patchwarden --db DB ARGS…` and asserts it succeeded.
fn pw_ok(db: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let out = bin().arg("--db").arg(db).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "patchwarden {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn import(db: &Path, paths: &[&Path]) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["feeds".as_ref(), "import".as_ref()];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    pw_ok(db, &args);
}

/// Writes the inventory report of `root` to `path` (an inventory file for `scan --inventory`).
fn inventory_file(root: &Path, path: &Path) {
    std::fs::write(path, serde_json::to_vec(&inventory_json(root)).unwrap()).unwrap();
}

fn findings(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("scan JSON");
    // The owned finding document every reader uses (the server, plans, verification) holds each
    // finding field by field: nothing unknown, nothing lost on the way back.
    for f in report["findings"].as_array().expect("findings") {
        let doc: patchwarden_model::FindingDoc = serde_json::from_value(f.clone())
            .unwrap_or_else(|e| panic!("a finding is not a FindingDoc: {e}: {f}"));
        assert_eq!(&serde_json::to_value(&doc).unwrap(), f);
    }
    report
}

/// (package, advisory, state) of a report's package findings.
fn triples(report: &serde_json::Value) -> BTreeSet<(String, String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["state"] != "eol")
        .map(|f| {
            (
                f["package"].as_str().unwrap().to_owned(),
                f["advisory_id"].as_str().unwrap().to_owned(),
                f["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn python_triples(script: &str, args: &[&Path]) -> BTreeSet<(String, String, String)> {
    let out = Command::new(SYSTEM_PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut p = l.split('\t').map(str::to_owned);
            (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
        })
        .collect()
}

/// The Debian tracker slices merged into one tracker document (the feed is one file; their
/// package keys do not overlap).
fn merged_tracker(dir: &Path) -> PathBuf {
    let mut all = serde_json::Map::new();
    for name in [
        "osvdev-debian_security_tracker_mock.json",
        "vunnel-debian.json",
        "vulnerablecode-debian.json",
    ] {
        let doc: serde_json::Value = serde_json::from_slice(
            &std::fs::read(fixtures().join("debian-tracker").join(name)).unwrap(),
        )
        .unwrap();
        for (k, v) in doc.as_object().unwrap() {
            assert!(all.insert(k.clone(), v.clone()).is_none(), "{k} twice");
        }
    }
    let path = dir.join("tracker.json");
    std::fs::write(&path, serde_json::to_vec(&all).unwrap()).unwrap();
    path
}

/// Independent: python3-apt over the tracker document and the root's dpkg status.
const DEBIAN_ORACLE: &str = r#"
import json, sys, apt_pkg
apt_pkg.init_system()
tracker = json.load(open(sys.argv[1]))
installed = []
for para in open(sys.argv[2] + "/var/lib/dpkg/status").read().split("\n\n"):
    f = {}
    for line in para.splitlines():
        if line[:1] not in (" ", "\t") and ":" in line:
            k, v = line.split(":", 1); f[k] = v.strip()
    if not f.get("Status", "").endswith(" installed"):
        continue
    src, srcver = f["Package"], f["Version"]
    if "Source" in f:
        parts = f["Source"].split()
        src = parts[0]
        if len(parts) > 1: srcver = parts[1].strip("()")
    installed.append((f["Package"], src, srcver))
for pkg, src, srcver in installed:
    for cve, entry in (tracker.get(src) or {}).items():
        rel = entry.get("releases") or {}
        if not isinstance(rel, dict) or "bookworm" not in rel: continue
        r = rel["bookworm"]
        st, fixed, urg = r.get("status"), r.get("fixed_version"), r.get("urgency", "")
        if st == "resolved":
            if fixed and fixed != "0" and apt_pkg.version_compare(srcver, fixed) < 0:
                print(f"{pkg}\t{cve}\tfix_available")
        elif st == "open":
            # Debian: unimportant and end-of-life issues will not be fixed in the release.
            state = "will_not_fix" if urg in ("unimportant", "end-of-life") or r.get("nodsa") else "no_fix_yet"
            print(f"{pkg}\t{cve}\t{state}")
"#;

#[test]
fn debian_root_scan_matches_python_apt() {
    let Some(root) = debian_root() else { return };
    if !python_module_available("apt_pkg") {
        return;
    }
    let work = scratch("scan-debian");
    let db = work.join("kb.db");
    let tracker = merged_tracker(&work);
    import(
        &db,
        &[
            &tracker,
            &fixtures().join("kev/known_exploited_vulnerabilities.json"),
            &fixtures().join("nvd/api2.0"),
        ],
    );
    let report = findings(&scan(
        &db,
        &["--root", root.to_str().unwrap(), "--format", "json"],
    ));
    let ours = triples(&report);
    let theirs = python_triples(DEBIAN_ORACLE, &[&tracker, &root]);
    assert_eq!(ours, theirs);
    // The root has apparmor's library: CVE-2016-1585 is open (unimportant) in bookworm.
    assert!(
        ours.contains(&(
            "libapparmor1".into(),
            "CVE-2016-1585".into(),
            "will_not_fix".into()
        )),
        "{ours:?}"
    );
    assert_eq!(report["host"]["os"], "Debian 12 (bookworm)");
    // The evidence names the source package the tracker keys, and NVD enriches the CVE.
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["advisory_id"] == "CVE-2016-1585")
        .unwrap();
    assert_eq!(f["evidence"]["matched_name"], "apparmor");
    assert_eq!(f["evidence"]["key_kind"], "source");
    assert_eq!(f["cvss"]["score"], 9.8);
    assert_eq!(f["severity"], "critical");
    // Debian 12's standard support ended 2026-07-11 per distro-info-data, Debian LTS (the
    // regular archive) runs to 2028-06-30: as of a day in LTS, no end-of-life finding; after it,
    // one (the support phases: `support_phases_decide_end_of_life`).
    let as_of = |day: &str| {
        findings(&scan(
            &db,
            &[
                "--root",
                root.to_str().unwrap(),
                "--format",
                "json",
                "--as-of",
                day,
            ],
        ))
    };
    let lts = as_of("2026-12-04");
    assert_eq!(lts["host"]["support"], "Debian LTS until 2028-06-30");
    assert!(lts["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["state"] != "eol"));
    let after = as_of("2028-07-01");
    let eol = after["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["state"] == "eol")
        .expect("an end-of-life finding after LTS");
    assert_eq!(eol["advisory_id"], "EOL:debian:12");
}

/// Independent: python3-rpm over the AlmaLinux advisories and `rpm -qa` of the root.
const RPM_ORACLE: &str = r#"
import json, os, subprocess, sys, rpm
adv_dir, root = sys.argv[1], sys.argv[2]
out = subprocess.run(["rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-qa", "--qf",
                      "%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\n"], capture_output=True, text=True, check=True).stdout
installed = [l.split("\t") for l in out.splitlines()]
def evr(s):
    e, _, vr = s.rpartition(":") if ":" in s else ("0", "", s)
    v, _, r = vr.rpartition("-")
    return (e or "0", v, r)
def module(r): return ".module+" in r or ".module_" in r
for name in sorted(os.listdir(adv_dir)):
    doc = json.load(open(os.path.join(adv_dir, name)))
    if doc.get("withdrawn"): continue
    for a in doc["affected"]:
        if a["package"]["ecosystem"] != "AlmaLinux:9": continue
        fixed = [e["fixed"] for r in a.get("ranges", []) for e in r["events"] if "fixed" in e]
        if not fixed: continue
        for n, e, v, r in installed:
            if n != a["package"]["name"] or module(r) != module(fixed[0]): continue
            if rpm.labelCompare((e, v, r), evr(fixed[0])) < 0:
                print(f"{n}\t{doc['id']}\tfix_available")
"#;

#[test]
fn almalinux_rpmdb_scan_matches_python_rpm() {
    if !tool_available("rpmbuild") || !python_module_available("rpm") {
        return;
    }
    let work = scratch("scan-alma");
    let root = build_alma_root(&work);
    let db = work.join("kb.db");
    let advisories = fixtures().join("osv/almalinux9");
    import(
        &db,
        &[
            &advisories,
            &fixtures().join("kev/known_exploited_vulnerabilities.json"),
            &fixtures().join("nvd/cve-objects"),
            &fixtures().join("epss/epss_scores-2026-09-29.rows-subset.csv"),
        ],
    );
    let out = scan(&db, &["--root", root.to_str().unwrap(), "--format", "json"]);
    let report = findings(&out);
    let ours = triples(&report);
    let theirs = python_triples(RPM_ORACLE, &[&advisories, &root]);
    assert_eq!(ours, theirs);
    // Several advisories behind for every package.
    for (source, sub) in ALMA_PACKAGES {
        let binary = if sub.is_empty() {
            source.to_string()
        } else {
            format!("{source}-{sub}")
        };
        let n = ours.iter().filter(|(p, _, _)| *p == binary).count();
        assert!(n >= 1, "{binary} has no finding: {ours:?}");
    }
    assert!(ours.len() >= 10, "{}", ours.len());
    // ALSA-2024:2394 (kernel) fixes a CVE in CISA KEV: BOD 22-01 gives CISA's due date — the
    // earliest due date among its CVEs in the catalog, looked up here independently.
    let kernel = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["package"] == "kernel-core" && f["advisory_id"] == "ALSA-2024:2394")
        .expect("the 9.3 kernel is behind ALSA-2024:2394");
    let catalog: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("kev/known_exploited_vulnerabilities.json")).unwrap(),
    )
    .unwrap();
    let cves: Vec<&str> = kernel["cves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let kev_due = catalog["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| cves.contains(&v["cveID"].as_str().unwrap()))
        .map(|v| v["dueDate"].as_str().unwrap())
        .min()
        .expect("a KEV CVE");
    assert_eq!(kernel["kev"], true);
    assert_eq!(kernel["due"]["bod-22-01"]["date"], kev_due);
    assert_eq!(kernel["due"]["bod-22-01"]["overdue"], true);
    assert_eq!(kernel["ssvc"]["exploitation"], "active");
    // Ordered by risk, highest first.
    let risks: Vec<f64> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["risk"].as_f64().unwrap())
        .collect();
    assert!(risks.windows(2).all(|w| w[0] >= w[1]), "{risks:?}");

    // Exit codes: --fail-on kev trips (3), --fail-on critical depends on the data, none: 0.
    let gate = scan(&db, &["--root", root.to_str().unwrap(), "--fail-on", "kev"]);
    assert_eq!(gate.status.code(), Some(3));
    let plain = scan(&db, &["--root", root.to_str().unwrap()]);
    assert_eq!(plain.status.code(), Some(0));
    let table = String::from_utf8_lossy(&plain.stdout);
    assert!(
        table.contains("ALSA-2024:2394") && table.contains("OVERDUE"),
        "{table}"
    );

    // The same result from an inventory file; CSV has one line per finding plus the header.
    let inv_path = work.join("inventory.json");
    inventory_file(&root, &inv_path);
    let from_file = findings(&scan(
        &db,
        &[
            "--inventory",
            inv_path.to_str().unwrap(),
            "--format",
            "json",
        ],
    ));
    assert_eq!(triples(&from_file), ours);
    let csv = scan(
        &db,
        &["--inventory", inv_path.to_str().unwrap(), "--format", "csv"],
    );
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(
        csv.lines().count(),
        report["findings"].as_array().unwrap().len() + 1
    );
    assert!(csv.starts_with("host,package,installed_version,advisory_id,"));

    // First sightings are kept: a later scan keeps the first one.
    let first = from_file["findings"][0]["first_seen"].clone();
    let again = findings(&scan(
        &db,
        &[
            "--inventory",
            inv_path.to_str().unwrap(),
            "--format",
            "json",
        ],
    ));
    assert_eq!(again["findings"][0]["first_seen"], first);

    // A policy with only PCI DSS: only critical findings get a due date, one month from release.
    let policy = work.join("policy.toml");
    std::fs::write(&policy, "presets = [\"pci-dss-4.0\"]\n").unwrap();
    let pci = findings(&scan(
        &db,
        &[
            "--inventory",
            inv_path.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--format",
            "json",
        ],
    ));
    for f in pci["findings"].as_array().unwrap() {
        let has = f["due"].get("pci-dss-4.0").is_some();
        assert_eq!(has, f["severity"] == "critical", "{f}");
        assert!(f["due"].get("fedramp").is_none());
    }
}

/// Every finding cites the file its advisory came from, with that file's digest — in the JSON
/// evidence and in `explain`'s "data:" line — after one import of a directory of 405 real
/// AlmaLinux 9 OSV files (the SQLite read path once cached provenance per feed and import time,
/// and named the batch's first file for most findings), on SQLite and on PostgreSQL.
#[test]
fn every_finding_cites_its_own_file() {
    if !tool_available("rpmbuild") {
        return;
    }
    let work = scratch("scan-provenance");
    let root = build_alma_root(&work);
    let inventory = work.join("inventory.json");
    inventory_file(&root, &inventory);
    let advisories = fixtures().join("osv/almalinux9");
    let mut stores = vec![work.join("kb.db").to_str().unwrap().to_owned()];
    stores.extend(postgres_schema("provenance"));
    for db in stores {
        let db = Path::new(&db);
        import(db, &[&advisories]);
        let report = findings(&scan(
            db,
            &[
                "--inventory",
                inventory.to_str().unwrap(),
                "--format",
                "json",
            ],
        ));
        let all = report["findings"].as_array().unwrap();
        assert!(all.len() >= 10, "{}", all.len());
        let mut files = BTreeSet::new();
        for f in all {
            let id = f["advisory_id"].as_str().unwrap();
            let file = advisories.join(format!("{}.json", id.replace(':', "_")));
            let evidence = &f["evidence"];
            let origin = evidence["origin"].as_str().unwrap();
            assert_eq!(
                Path::new(origin).file_name(),
                file.file_name(),
                "{id} cites {origin}"
            );
            let digest = sha256_hex(&std::fs::read(&file).unwrap());
            assert_eq!(evidence["sha256"], digest.as_str(), "{id}");
            files.insert(origin.to_owned());
            // explain names the same file and digest.
            let package = f["package"].as_str().unwrap();
            let out = bin()
                .arg("--db")
                .arg(db)
                .args(["explain", id, "--inventory", inventory.to_str().unwrap()])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.lines().any(|l| l.contains("data: ")
                    && l.contains(origin)
                    && l.ends_with(&format!("sha256 {digest}"))),
                "explain {id} ({package}):\n{text}"
            );
        }
        // Many files, not one: the findings come from different advisories.
        assert!(files.len() >= 10, "{files:?}");
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// dpkg status of a bionic host with netty 1:4.1.7-4 (behind UBUNTU-CVE-2022-24823's Pro fix).
const NETTY_STATUS: &str = "Package: libnetty-java\nStatus: install ok installed\nArchitecture: all\nSource: netty\nVersion: 1:4.1.7-4\n\n";

/// A scratch directory `name` with a store holding the real Ubuntu OSV `records` and a bionic root
/// made of files (os-release, the dpkg `status`); answers (work dir, store, root).
fn bionic_with(name: &str, records: &[&str], status: &str) -> (PathBuf, PathBuf, PathBuf) {
    let work = scratch(name);
    let db = work.join("kb.db");
    let paths: Vec<PathBuf> = records
        .iter()
        .map(|r| fixtures().join("osv/ubuntu").join(r))
        .collect();
    import(&db, &paths.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    let root = work.join("root");
    write(
        &root.join("etc/os-release"),
        "NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"18.04\"\nVERSION_CODENAME=bionic\n",
    );
    write(&root.join("var/lib/dpkg/status"), status);
    (work, db, root)
}

/// Ubuntu Pro end to end, on a bionic root whose dpkg status holds netty 1:4.1.7-4 and the real
/// UBUNTU-CVE-2022-24823 (fixed under `Ubuntu:Pro:18.04:LTS` only, in 1:4.1.7-4ubuntu0.1+esm3):
/// without an ESM apt source the finding is `fix_requires_subscription` (explain says Ubuntu Pro),
/// with `pro enable esm-apps`'s source it is `fix_available`; `--ubuntu-pro` overrides both.
#[test]
fn ubuntu_pro_is_read_from_apt_sources() {
    let (_, db, root) = bionic_with(
        "scan-ubuntu-pro",
        &["UBUNTU-CVE-2022-24823.json"],
        NETTY_STATUS,
    );
    write(
        &root.join("etc/apt/sources.list"),
        "deb http://archive.ubuntu.com/ubuntu bionic main universe\n",
    );
    let state = |extra: &[&str]| {
        let mut args = vec!["--root", root.to_str().unwrap(), "--format", "json"];
        args.extend(extra);
        let report = findings(&scan(&db, &args));
        let f = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["advisory_id"] == "UBUNTU-CVE-2022-24823")
            .expect("a finding for UBUNTU-CVE-2022-24823")
            .clone();
        assert_eq!(f["fixed_version"], "1:4.1.7-4ubuntu0.1+esm3");
        (
            f["state"].as_str().unwrap().to_owned(),
            report["summary"]["by_state"].clone(),
        )
    };
    let (without, by_state) = state(&[]);
    assert_eq!(without, "fix_requires_subscription");
    assert_eq!(by_state["fix_requires_subscription"], 1, "{by_state}");
    assert!(by_state.get("fix_available").is_none(), "{by_state}");
    let explain = bin()
        .arg("--db")
        .arg(&db)
        .args([
            "explain",
            "UBUNTU-CVE-2022-24823",
            "--root",
            root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(text.contains("requires Ubuntu Pro"), "{text}");
    let table = scan(&db, &["--root", root.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("fix_requires_subscription 1 (Ubuntu Pro)"),
        "{table}"
    );
    assert_eq!(state(&["--ubuntu-pro", "true"]).0, "fix_available");
    write(
        &root.join("etc/apt/sources.list.d/ubuntu-esm-apps.list"),
        "deb https://esm.ubuntu.com/apps/ubuntu bionic-apps-security main\n",
    );
    assert_eq!(state(&[]).0, "fix_available");
    assert_eq!(
        state(&["--ubuntu-pro", "false"]).0,
        "fix_requires_subscription"
    );
    // The inventory says what it saw.
    let inv = inventory_json(&root);
    assert_eq!(inv["os"]["ubuntu_pro"]["receives"], true, "{}", inv["os"]);
    assert!(inv["os"]["ubuntu_pro"]["evidence"]
        .as_str()
        .unwrap()
        .contains("ubuntu-esm-apps.list"));
}

/// Installed versions that do not parse (`""`, `"a b"`, `"-"`, a NUL) are never passed over in
/// silence: the report lists each (package, field, version, reason), the summary counts them,
/// the table and stderr warn, and `--fail-on any` fails on them even with no finding.
#[test]
fn unparsable_installed_versions_are_named() {
    let (work, db, root) = bionic_with(
        "scan-unparsable",
        &["UBUNTU-CVE-2022-24823.json"],
        NETTY_STATUS,
    );
    let base = inventory_json(&root);
    for bad in ["", "a b", "-", "1.0\u{0}"] {
        let mut inv = base.clone();
        inv["packages"][0]["version"] = bad.into();
        inv["packages"][0]["source_version"] = bad.into();
        let path = work.join("inv.json");
        std::fs::write(&path, serde_json::to_vec(&inv).unwrap()).unwrap();
        let json = scan(
            &db,
            &["--inventory", path.to_str().unwrap(), "--format", "json"],
        );
        let report = findings(&json);
        assert_eq!(report["summary"]["unparsable_versions"], 1, "{bad:?}");
        let listed = report["unparsable_versions"].as_array().unwrap();
        assert_eq!(listed[0]["package"], "libnetty-java");
        assert_eq!(listed[0]["version"], bad);
        assert!(!listed[0]["reason"].as_str().unwrap().is_empty());
        assert!(
            report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["advisory_id"] != "UBUNTU-CVE-2022-24823"),
            "{bad:?}"
        );
        let err = String::from_utf8_lossy(&json.stderr);
        assert!(
            err.contains("do not parse") && err.contains("libnetty-java"),
            "{err}"
        );
        let table = scan(&db, &["--inventory", path.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(
            text.contains("WARNING: 1 installed package version(s) do not parse"),
            "{text}"
        );
        assert!(!text.contains('\u{0}'), "a NUL reached the terminal");
        let gate = scan(
            &db,
            &["--inventory", path.to_str().unwrap(), "--fail-on", "any"],
        );
        assert_eq!(gate.status.code(), Some(3), "{bad:?}");
    }
}

/// The reader's filters and outputs, on a bionic root (netty behind a Pro-only fix, glibc with no
/// fix, the release past its standard support) and real Ubuntu records: `--ignore-unfixed`,
/// `--state`, `--severity` applied before the output and before `--fail-on`; a bad value named;
/// `explain` answers for the end-of-life id `scan` prints; CSV has one column per framework's due
/// date.
#[test]
fn filters_apply_before_the_gate_and_every_printed_id_explains() {
    let status = format!(
        "{NETTY_STATUS}Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.27-3ubuntu1.6\n\n"
    );
    let (_, db, root) = bionic_with(
        "scan-filters",
        &["UBUNTU-CVE-2022-24823.json", "UBUNTU-CVE-2016-20013.json"],
        &status,
    );
    let root_arg = root.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["--root", root_arg, "--format", "json"];
        args.extend(extra);
        findings(&scan(&db, &args))
    };
    let states = |report: &serde_json::Value| -> BTreeSet<String> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["state"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = run(&[]);
    let total = all["findings"].as_array().unwrap().len();
    assert_eq!(
        states(&all),
        ["eol", "fix_requires_subscription", "no_fix_yet"]
            .map(String::from)
            .into()
    );
    let fixed_only = run(&["--ignore-unfixed"]);
    assert_eq!(
        states(&fixed_only),
        ["eol", "fix_requires_subscription"]
            .map(String::from)
            .into()
    );
    let n = fixed_only["findings"].as_array().unwrap().len();
    assert_eq!(fixed_only["summary"]["findings"], n);
    assert_eq!(fixed_only["filtered_out"], total - n);
    assert!(fixed_only["summary"]["by_state"]
        .get("no_fix_yet")
        .is_none());
    let eol = run(&["--state", "eol,no_fix_yet"]);
    assert_eq!(states(&eol), ["eol", "no_fix_yet"].map(String::from).into());
    let severity = all["findings"][0]["severity"].as_str().unwrap().to_owned();
    let by_severity = run(&["--severity", &severity]);
    assert!(by_severity["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["severity"] == severity.as_str()));
    assert!(!by_severity["findings"].as_array().unwrap().is_empty());
    // The gate sees what the filters keep: nothing is fix_available here.
    let gate = |extra: &[&str]| {
        let mut args = vec!["--root", root_arg, "--fail-on", "any"];
        args.extend(extra);
        scan(&db, &args).status.code()
    };
    assert_eq!(gate(&[]), Some(3));
    assert_eq!(gate(&["--state", "fix_available"]), Some(0));
    // A bad value is named.
    let bad = scan(&db, &["--root", root_arg, "--state", "fixed"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--state") && err.contains("fixed"), "{err}");
    let bad = scan(&db, &["--root", root_arg, "--severity", "severe"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--severity"));
    // Every id the scan prints explains.
    for f in all["findings"].as_array().unwrap() {
        let id = f["advisory_id"].as_str().unwrap();
        let out = bin()
            .arg("--db")
            .arg(&db)
            .args(["explain", id, "--root", root_arg])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "explain {id}: {text}");
        assert!(text.contains("FINDING"), "explain {id}:\n{text}");
        if id.starts_with("EOL:") {
            assert!(text.contains("end of its standard support"), "{text}");
        }
    }
    // CSV: a due-date column per framework in force.
    let csv = scan(&db, &["--root", root_arg, "--format", "csv"]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for framework in ["bod-22-01", "pci-dss-4.0", "fedramp", "internal-sla"] {
        assert!(
            header.contains(&format!("due_{framework}").as_str()),
            "{header:?}"
        );
    }
    let overdue_at = header.iter().position(|h| *h == "overdue").unwrap();
    assert_eq!(overdue_at, header.len() - 1);
    for line in lines {
        assert_eq!(line.split(',').count(), header.len(), "{line}");
    }
}

/// Support phases from distro-info-data decide end of life, as of fixed days (`--as-of`): Debian 10
/// after LTS is end of life (ELTS is Freexian's, paid), Debian 12 in LTS is not; Ubuntu 18.04
/// past standard support is end of life without Pro, naming ESM and what it requires, and in ESM
/// with Pro. The phase is in the report and the table; `explain` answers for the EOL id.
#[test]
fn support_phases_decide_end_of_life() {
    let work = scratch("scan-support");
    let db = work.join("kb.db");
    let host = |name: &str, os_release: &str| {
        let root = work.join(name);
        write(&root.join("etc/os-release"), os_release);
        write(&root.join("var/lib/dpkg/status"), "");
        root
    };
    let buster = host(
        "buster",
        "ID=debian\nVERSION_ID=\"10\"\nVERSION_CODENAME=buster\n",
    );
    let bookworm = host(
        "bookworm",
        "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
    );
    let bionic = host(
        "bionic",
        "ID=ubuntu\nVERSION_ID=\"18.04\"\nVERSION_CODENAME=bionic\n",
    );
    let report = |root: &Path, extra: &[&str]| {
        let mut args = vec![
            "--root",
            root.to_str().unwrap(),
            "--format",
            "json",
            "--as-of",
            "2026-12-04",
        ];
        args.extend(extra);
        findings(&scan(&db, &args))
    };
    let eol_of = |r: &serde_json::Value| {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["state"] == "eol")
            .cloned()
    };
    let r = report(&buster, &[]);
    assert_eq!(r["host"]["support"], "end of life since 2024-06-30");
    let eol = eol_of(&r).expect("Debian 10 is end of life");
    assert_eq!(eol["advisory_id"], "EOL:debian:10");
    assert_eq!(eol["due"]["end-of-life"]["date"], "2024-06-30");
    assert!(
        eol["summary"].as_str().unwrap().contains(
            "Debian ELTS (Freexian) until 2029-06-30 requires a Freexian ELTS subscription"
        ),
        "{eol}"
    );
    let r = report(&bookworm, &[]);
    assert_eq!(r["host"]["support"], "Debian LTS until 2028-06-30");
    assert!(eol_of(&r).is_none());
    let r = report(&bionic, &[]);
    let eol = eol_of(&r).expect("Ubuntu 18.04 without Pro is end of life");
    assert_eq!(eol["due"]["end-of-life"]["date"], "2023-05-31");
    assert!(
        eol["summary"]
            .as_str()
            .unwrap()
            .contains("Ubuntu ESM until 2028-04-26 requires Ubuntu Pro"),
        "{eol}"
    );
    let r = report(&bionic, &["--ubuntu-pro", "true"]);
    assert_eq!(r["host"]["support"], "Ubuntu ESM until 2028-04-26");
    assert!(eol_of(&r).is_none());
    // The maintained table's phases (endoflife.date): RHEL 7 past maintenance support is end of
    // life unless an ELS repository is enabled; SLES 15 SP5 past general support unless LTSS
    // (never assumed); RHEL 9 is in maintenance support.
    let rhel7 = host(
        "rhel7",
        "ID=\"rhel\"\nVERSION_ID=\"7.9\"\nPRETTY_NAME=\"Red Hat Enterprise Linux Server 7.9 (Maipo)\"\n",
    );
    write(
        &rhel7.join("etc/yum.repos.d/redhat.repo"),
        "[rhel-7-server-rpms]\nenabled = 1\n[rhel-7-server-els-rpms]\nenabled = 0\n",
    );
    let r = report(&rhel7, &[]);
    assert_eq!(r["host"]["support"], "end of life since 2024-06-30");
    let eol = eol_of(&r).expect("RHEL 7 without ELS is end of life");
    assert!(
        eol["summary"]
            .as_str()
            .unwrap()
            .contains("Red Hat ELS until 2029-05-31 requires Red Hat's ELS add-on"),
        "{eol}"
    );
    write(
        &rhel7.join("etc/yum.repos.d/redhat.repo"),
        "[rhel-7-server-rpms]\nenabled = 1\n[rhel-7-server-els-rpms]\nenabled = 1\n",
    );
    let r = report(&rhel7, &[]);
    assert_eq!(r["host"]["support"], "Red Hat ELS until 2029-05-31");
    assert!(eol_of(&r).is_none());
    let sles = host(
        "sles155",
        "NAME=\"SLES\"\nVERSION=\"15-SP5\"\nVERSION_ID=\"15.5\"\nID=\"sles\"\n",
    );
    let r = report(&sles, &[]);
    assert_eq!(r["host"]["support"], "end of life since 2024-12-31");
    assert!(eol_of(&r).unwrap()["summary"]
        .as_str()
        .unwrap()
        .contains("SUSE LTSS until 2027-12-31 requires a SUSE LTSS subscription"));
    let rhel9 = host("rhel9", "ID=\"rhel\"\nVERSION_ID=\"9.4\"\n");
    assert_eq!(
        report(&rhel9, &[])["host"]["support"],
        "standard support until 2032-05-31"
    );
    // The table names the phase; explain answers for the EOL id.
    let table = scan(
        &db,
        &["--root", buster.to_str().unwrap(), "--as-of", "2026-12-04"],
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("; end of life since 2024-06-30"), "{text}");
    let out = bin()
        .arg("--db")
        .arg(&db)
        .args([
            "explain",
            "EOL:debian:10",
            "--root",
            buster.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FINDING (eol)"), "{text}");
    // A bad day is named.
    let bad = scan(
        &db,
        &["--root", buster.to_str().unwrap(), "--as-of", "2026-13-01"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--as-of"));
}

/// Independent: Red Hat's unfixed statements for one RHEL major (argv 3: its platform,
/// `red_hat_enterprise_linux_7`) in the VEX files of a directory tree, applied by source RPM name
/// to an inventory (`known_affected` or a `no_fix_planned`/`none_available` remediation;
/// `no_fix_planned` is will-not-fix).
const VEX_ORACLE: &str = r#"
import json, os, sys
vex_dir, inv, wanted = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(vex_dir) for f in fs if f.endswith(".json"))
for path in files:
    doc = json.load(open(path))
    for v in doc["vulnerabilities"]:
        states = {}
        for pid in v.get("product_status", {}).get("known_affected", []):
            states[pid] = "no_fix_yet"
        for r in v.get("remediations", []):
            for pid in r.get("product_ids", []):
                if r["category"] == "no_fix_planned":
                    states[pid] = "will_not_fix"
                elif r["category"] == "none_available":
                    states.setdefault(pid, "no_fix_yet")
        for pid, state in states.items():
            platform, _, component = pid.partition(":")
            if platform != wanted:
                continue
            for p in inv["packages"]:
                if p["source_name"] == component:
                    print(f"{p['name']}\t{v['cve']}\t{state}")
"#;

/// A report's findings derived from Red Hat's statements, and their (package, CVE, state).
fn derived_from_red_hat(
    report: &serde_json::Value,
) -> (Vec<&serde_json::Value>, BTreeSet<(String, String, String)>) {
    let derived: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["evidence"]["note"]
                .as_str()
                .is_some_and(|n| n.contains("derived from Red Hat"))
        })
        .collect();
    let triples = derived
        .iter()
        .map(|f| {
            (
                f["package"].as_str().unwrap().to_owned(),
                f["cves"][0].as_str().unwrap().to_owned(),
                f["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (derived, triples)
}

/// A RHEL rebuild's findings from Red Hat's unfixed statements (the real VEX files of
/// `tests/data/redhat/csaf-vex`) on a SYNTHETIC Oracle Linux 7 inventory of real RHEL 7 package
/// versions, against an independent reading of the same files in Python; each such finding says it
/// is derived from Red Hat's data.
#[test]
fn rebuild_findings_from_red_hat_match_an_independent_reading() {
    if !tool_available("python3") {
        return;
    }
    let work = scratch("scan-rebuild-vex");
    let db = work.join("kb.db");
    let vex = fixtures().join("redhat/csaf-vex");
    import(&db, &[&vex]);
    let inventory = patchwarden_model::testing::inventory(
        "ol",
        "7.9",
        None,
        &[
            ("pam", "1.1.8-23.el7", "pam", "1.1.8-23.el7"),
            ("pam-devel", "1.1.8-23.el7", "pam", "1.1.8-23.el7"),
            ("curl", "7.29.0-59.el7", "curl", "7.29.0-59.el7"),
            ("libcurl", "7.29.0-59.el7", "curl", "7.29.0-59.el7"),
            ("samba-client", "4.10.16-25.el7", "samba", "4.10.16-25.el7"),
            ("bash", "4.2.46-35.el7", "bash", "4.2.46-35.el7"),
        ],
    );
    let path = work.join("ol7.json");
    std::fs::write(&path, serde_json::to_vec(&inventory).unwrap()).unwrap();
    let report = findings(&scan(
        &db,
        &["--inventory", path.to_str().unwrap(), "--format", "json"],
    ));
    let (derived, ours) = derived_from_red_hat(&report);
    let theirs = python_triples(
        VEX_ORACLE,
        &[&vex, &path, Path::new("red_hat_enterprise_linux_7")],
    );
    assert_eq!(ours, theirs);
    assert!(
        ours.contains(&(
            "pam-devel".into(),
            "CVE-2024-10041".into(),
            "will_not_fix".into()
        )),
        "{ours:?}"
    );
    for f in derived {
        assert_eq!(f["fixed_version"], serde_json::Value::Null, "{f}");
        assert_eq!(f["evidence"]["matched_name"], "pam");
    }
}

/// An AlmaLinux 9 root (real rpmdb) against its own errata (the real ALSA files) and Red Hat's VEX
/// archive as Red Hat publishes it (`csaf_vex_2023-10-31.tar.zst`, imported as it is): Red Hat's
/// RHEL 9 will-not-fix statements (vim: CVE-2023-0049, CVE-2023-0051; kernel: CVE-2023-0045)
/// appear as findings derived from Red Hat, keyed by source RPM, exactly those an independent
/// Python reading of the unpacked archive (GNU tar with zstd) finds; fixed versions still come
/// from AlmaLinux's errata only.
#[test]
fn almalinux_root_takes_red_hats_unfixed_statements_from_the_vex_archive() {
    if !tool_available("rpmbuild") || !tool_available("zstd") || !tool_available("python3") {
        return;
    }
    let work = scratch("scan-alma-vex");
    let root = build_alma_root(&work);
    let db = work.join("kb.db");
    let archive = fixtures().join("redhat/csaf-vex-archive/csaf_vex_2023-10-31.tar.zst");
    import(&db, &[&fixtures().join("osv/almalinux9"), &archive]);
    let inventory = work.join("inventory.json");
    inventory_file(&root, &inventory);
    let report = findings(&scan(
        &db,
        &["--root", root.to_str().unwrap(), "--format", "json"],
    ));
    let all = report["findings"].as_array().unwrap();
    let (derived, ours) = derived_from_red_hat(&report);
    let unpacked = work.join("vex");
    std::fs::create_dir_all(&unpacked).unwrap();
    let st = Command::new("tar")
        .args(["--zstd", "-xf"])
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(st.success(), "tar --zstd");
    let theirs = python_triples(
        VEX_ORACLE,
        &[
            &unpacked,
            &inventory,
            Path::new("red_hat_enterprise_linux_9"),
        ],
    );
    assert_eq!(ours, theirs);
    for expected in [
        ("vim-minimal", "CVE-2023-0049"),
        ("vim-minimal", "CVE-2023-0051"),
        ("kernel-core", "CVE-2023-0045"),
    ] {
        assert!(
            ours.contains(&(expected.0.into(), expected.1.into(), "will_not_fix".into())),
            "{expected:?} in {ours:?}"
        );
    }
    for f in &derived {
        assert_eq!(f["fixed_version"], serde_json::Value::Null, "{f}");
        assert_eq!(f["evidence"]["key_kind"], "source", "{f}");
        // Each cites its own document inside the archive.
        let origin = f["evidence"]["origin"].as_str().unwrap();
        let cve = f["cves"][0].as_str().unwrap().to_lowercase();
        assert!(
            origin.ends_with(&format!("csaf_vex_2023-10-31.tar.zst!2023/{cve}.json")),
            "{origin}"
        );
    }
    // Fixed versions only ever from AlmaLinux's own errata: every fixable vim-minimal finding is
    // an ALSA, at a version an ALSA file gives.
    let alsa_versions = real_versions("vim-minimal");
    let fixable: Vec<_> = all
        .iter()
        .filter(|f| f["package"] == "vim-minimal" && f["state"] == "fix_available")
        .collect();
    assert!(!fixable.is_empty());
    for f in fixable {
        assert!(
            f["advisory_id"].as_str().unwrap().starts_with("ALSA-"),
            "{f}"
        );
        assert!(
            alsa_versions.contains(&f["fixed_version"].as_str().unwrap().to_owned()),
            "{f}"
        );
    }
}

/// A RHEL 9.0 root (real rpmdb, curl 7.76.1-14.el9 — RHEL 9.0's) scanned against Red Hat's real VEX
/// for CVE-2023-38545: with subscription-manager's `redhat.repo` on the 9.0 EUS repositories and
/// the release locked to 9.0, the inventory names the stream and the fix offered is 9.0 EUS's own
/// build (`7.76.1-14.el9_0.9`); the same root on the main-stream repositories is offered the main
/// stream's fixes and never the EUS build.
#[test]
fn rhel_root_is_judged_by_its_update_stream() {
    if !tool_available("rpmbuild") {
        return;
    }
    let work = scratch("scan-rhel-eus");
    let root = build_rpm_root(
        &work,
        &[RpmPackage {
            source: "curl",
            sub: "",
            full_version: "7.76.1-14.el9".into(),
        }],
        "NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"9.0 (Plow)\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.0\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.0 (Plow)\"\n",
    );
    let repo = |eus: bool| {
        let (main, ext) = if eus { ("0", "1") } else { ("1", "0") };
        format!(
            "[rhel-9-for-x86_64-baseos-rpms]\nname = BaseOS\nbaseurl = https://cdn.redhat.com/content/dist/rhel9/$releasever/x86_64/baseos/os\nenabled = {main}\n\n[rhel-9-for-x86_64-baseos-eus-rpms]\nname = BaseOS EUS\nbaseurl = https://cdn.redhat.com/content/eus/rhel9/$releasever/x86_64/baseos/os\nenabled = {ext}\n"
        )
    };
    write(&root.join("etc/yum.repos.d/redhat.repo"), &repo(true));
    write(&root.join("etc/dnf/vars/releasever"), "9.0\n");
    let db = work.join("kb.db");
    import(
        &db,
        &[&fixtures().join("redhat/csaf-vex/cve-2023-38545.json")],
    );
    let inv = inventory_json(&root);
    assert_eq!(inv["os"]["rhel_stream"]["phase"], "eus", "{}", inv["os"]);
    assert_eq!(inv["os"]["rhel_stream"]["minor"], "9.0");
    let fixes = |report: &serde_json::Value| -> BTreeSet<String> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["package"] == "curl" && f["state"] == "fix_available")
            .map(|f| f["fixed_version"].as_str().unwrap().to_owned())
            .collect()
    };
    let eus = findings(&scan(
        &db,
        &["--root", root.to_str().unwrap(), "--format", "json"],
    ));
    assert_eq!(
        fixes(&eus),
        BTreeSet::from(["0:7.76.1-14.el9_0.9".to_owned()]),
        "{eus}"
    );
    write(&root.join("etc/yum.repos.d/redhat.repo"), &repo(false));
    let main = findings(&scan(
        &db,
        &["--root", root.to_str().unwrap(), "--format", "json"],
    ));
    let main_fixes = fixes(&main);
    assert!(main_fixes.contains("0:7.76.1-26.el9_3.2"), "{main_fixes:?}");
    assert!(
        !main_fixes.contains("0:7.76.1-14.el9_0.9"),
        "{main_fixes:?}"
    );
}

#[test]
fn bad_inputs_are_named() {
    let work = scratch("scan-bad");
    let db = work.join("kb.db");
    let bad_inv = work.join("inv.json");
    std::fs::write(&bad_inv, "{\"schema_version\": 1, \"oops\": true}").unwrap();
    let out = scan(&db, &["--inventory", bad_inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("inv.json") && err.contains("not a patchwarden inventory report"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let policy = work.join("policy.toml");
    std::fs::write(&policy, "presets = [\"sox\"]\n").unwrap();
    let inv = work.join("good.json");
    let root = work.join("root");
    write(
        &root.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
    );
    write(
        &root.join("var/lib/dpkg/status.d/foo"),
        &std::fs::read_to_string(fixtures().join("inventory/dpkg-distroless/status.d/foo"))
            .unwrap(),
    );
    inventory_file(&root, &inv);
    let out = scan(
        &db,
        &[
            "--inventory",
            inv.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("policy.toml") && err.contains("unknown preset 'sox'"),
        "{err}"
    );
    let out = scan(
        &db,
        &[
            "--inventory",
            inv.to_str().unwrap(),
            "--criticality",
            "extreme",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--criticality"));
}

/// A tracker document for every source package of `inv`, SYNTHETIC (ids CVE-2999-*, descriptions
/// say so), built from the real installed versions: fixed at, just above, below and tilde-below the
/// installed version, open (low / unimportant) and not affected — the cases a matcher can get wrong.
fn synthetic_tracker(inv: &serde_json::Value) -> serde_json::Value {
    let mut sources: Vec<(String, String)> = inv["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["source_name"].as_str().unwrap().to_owned(),
                p["source_version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    sources.sort();
    sources.dedup();
    let mut doc = serde_json::Map::new();
    for (i, (source, version)) in sources.iter().enumerate() {
        let bookworm = match i % 7 {
            0 => {
                serde_json::json!({"status": "resolved", "fixed_version": version, "urgency": "medium"})
            }
            1 => {
                serde_json::json!({"status": "resolved", "fixed_version": format!("{version}+pw1"), "urgency": "high"})
            }
            2 => {
                serde_json::json!({"status": "resolved", "fixed_version": "0.0.1-1", "urgency": "low"})
            }
            3 => serde_json::json!({"status": "open", "urgency": "low"}),
            4 => serde_json::json!({"status": "open", "urgency": "unimportant"}),
            5 => {
                serde_json::json!({"status": "resolved", "fixed_version": "0", "urgency": "unimportant"})
            }
            _ => {
                serde_json::json!({"status": "resolved", "fixed_version": format!("{version}~pw1"), "urgency": "medium"})
            }
        };
        let cve = format!("CVE-2999-{:04}", 1000 + i);
        doc.insert(
            source.clone(),
            serde_json::json!({ cve: {
                "description": "SYNTHETIC test record generated by patchwarden's tests from installed versions",
                "scope": "local",
                "releases": {"bookworm": bookworm}
            }}),
        );
    }
    serde_json::Value::Object(doc)
}

#[test]
fn debsecan_agrees_on_the_same_data() {
    let Some(root) = debian_root() else { return };
    if !tool_available("debsecan") {
        return;
    }
    let work = scratch("scan-debsecan");
    let db = work.join("kb.db");
    let inv = inventory_json(&root);
    let tracker = work.join("synthetic-tracker.json");
    std::fs::write(
        &tracker,
        serde_json::to_vec(&synthetic_tracker(&inv)).unwrap(),
    )
    .unwrap();
    import(&db, &[&tracker]);
    let report = findings(&scan(
        &db,
        &[
            "--root",
            root.to_str().unwrap(),
            "--format",
            "json",
            "--no-history",
        ],
    ));
    let ours: BTreeSet<(String, String)> = triples(&report)
        .into_iter()
        .map(|(p, a, _)| (a, p))
        .collect();
    let feed = work.join("feed");
    pw_ok(
        &db,
        &[
            "feeds".as_ref(),
            "export-debsecan".as_ref(),
            "--suite".as_ref(),
            "bookworm".as_ref(),
            feed.as_os_str(),
        ],
    );
    let out = Command::new("debsecan")
        .args(["--suite", "bookworm", "--format", "simple", "--source"])
        .arg(format!("file://{}/", feed.display()))
        .arg("--status")
        .arg(root.join("var/lib/dpkg/status"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: BTreeSet<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (cve, package) = l.split_once(' ').unwrap();
            (cve.to_owned(), package.to_owned())
        })
        .collect();
    // Every case is present on both sides, and they agree pair for pair.
    assert!(ours.len() >= 20, "{}", ours.len());
    assert_eq!(ours, theirs);
}

/// `scan --refresh` with every feed unreachable: the store knows nothing, so the shipped real-data
/// snapshot is loaded, and the output says so; the next run scans with what the store holds.
#[test]
fn refresh_falls_back_to_the_shipped_snapshot() {
    let Some(root) = debian_root() else { return };
    let work = scratch("scan-refresh");
    let db = work.join("kb.db");
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}/feed");
    let run_refresh = || {
        bin()
            .arg("--db")
            .arg(&db)
            .args(["scan", "--refresh", "--format", "json", "--root"])
            .arg(&root)
            .env("PATCHWARDEN_FEED_URL_KEV", &dead)
            .env("PATCHWARDEN_FEED_URL_EPSS", &dead)
            .env("PATCHWARDEN_FEED_URL_DEBIAN_TRACKER", &dead)
            .output()
            .unwrap()
    };
    let first = run_refresh();
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(
        err.contains("debian-tracker: FAILED") && err.contains("loaded the real-data snapshot"),
        "{err}"
    );
    let report = findings(&first);
    assert!(
        triples(&report).contains(&(
            "libapparmor1".into(),
            "CVE-2016-1585".into(),
            "will_not_fix".into()
        )),
        "{report}"
    );
    // The JSON says the knowledge is the snapshot's, and how old its data is: the KEV catalog of
    // 2025-08-25 is stale however recently it was loaded.
    let bundles = report["knowledge_bundles"].as_array().unwrap();
    assert!(
        bundles
            .iter()
            .any(|b| b.as_str().unwrap().contains("data/snapshot")),
        "{bundles:?}"
    );
    assert_eq!(report["knowledge_stale"], true);
    let kev = report["knowledge"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feed"] == "kev")
        .unwrap();
    assert!(
        kev["data_date"].as_str().unwrap().starts_with("2025-08-25"),
        "{kev}"
    );
    assert!(kev["age_days"].as_i64().unwrap() > 400, "{kev}");
    assert_eq!(kev["stale"], true, "{kev}");
    let second = run_refresh();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("scanning with the knowledge already in the store")
            && !err.contains("loaded the real-data snapshot"),
        "{err}"
    );
    assert_eq!(triples(&findings(&second)), triples(&report));
}
