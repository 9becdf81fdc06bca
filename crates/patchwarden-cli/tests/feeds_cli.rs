//! `patchwarden feeds import` and `feeds status` through the real binary, on a SQLite file and on
//! PostgreSQL (a schema of its own): real files load, a bad file is refused with its name and reason,
//! leaves the feed's previous data intact and shows up in `feeds status`.
mod support;

use support::*;

fn feed<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feed"] == name)
        .unwrap_or_else(|| panic!("no feed {name}: {status}"))
}

fn check(db: &str, scratch_dir: &std::path::Path) {
    let data = fixtures();
    let path = |p: &str| data.join(p).display().to_string();
    let import = |paths: &[String]| {
        let mut args = vec![
            "--db".to_owned(),
            db.to_owned(),
            "feeds".into(),
            "import".into(),
        ];
        args.extend(paths.iter().cloned());
        bin().args(&args).output().unwrap()
    };
    let out = import(&[
        path("osv/almalinux9"),
        path("kev/known_exploited_vulnerabilities.json"),
        path("epss/epss_scores-2026-09-29.rows-subset.csv"),
        path("alpine-secdb/claircore-v3.15-main-truncated.json"),
        path("nvd/cve-objects"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("record(s) imported, 0 failed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A bad EPSS file: refused, named, recorded; the 49 scores loaded before stay.
    let out = import(&[path("epss/fixtures/vunnel-invalid-header.csv")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("vunnel-invalid-header.csv: line 2: expected the header"),
        "{stderr}"
    );

    // The Debian tracker cannot be wiped by a file: `{}` is no feed at all (it was once read as
    // an empty tracker), a tracker cut short is an error, and a real but far smaller one is refused
    // with both counts unless --allow-shrink; a directory's stray files are skipped and listed.
    let tracker_path = path("debian-tracker/vunnel-debian.json");
    let out = import(std::slice::from_ref(&tracker_path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tracker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tracker_path).unwrap()).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = scratch_dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let empty = write("empty.json", b"{}");
    let bytes = std::fs::read(&tracker_path).unwrap();
    let cut = write("tracker-cut.json", &bytes[..bytes.len() / 2]);
    let first = tracker.as_object().unwrap().iter().next().unwrap();
    let small = write(
        "tracker-small.json",
        serde_json::to_string(&serde_json::json!({ first.0: first.1 }))
            .unwrap()
            .as_bytes(),
    );
    for (file, why) in [
        (&empty, "empty.json: not a feed file patchwarden reads"),
        (&cut, "tracker-cut.json: not a complete JSON document"),
        (
            &small,
            "refusing to replace debian-tracker: the new data holds",
        ),
    ] {
        let out = import(std::slice::from_ref(file));
        assert_eq!(out.status.code(), Some(1), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
    }
    let stray = scratch_dir.join("bundle-with-readme");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("README"), "not a feed").unwrap();
    std::fs::copy(
        path("kev/known_exploited_vulnerabilities.json"),
        stray.join("kev.json"),
    )
    .unwrap();
    let out = import(&[stray.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("skipped 1 file(s) of no feed format"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = bin()
        .args(["--db", db, "feeds", "status", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let debian = feed(&status, "debian-tracker");
    assert!(debian["records"].as_i64().unwrap() > 1, "{debian}");
    assert_eq!(debian["failing"], true, "{debian}");
    let out = bin()
        .args(["--db", db, "feeds", "import", "--allow-shrink", &small])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = bin()
        .args(["--db", db, "feeds", "status", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(feed(&status, "debian-tracker")["failing"], false);
    assert_eq!(feed(&status, "osv:AlmaLinux")["records"], 405);
    assert_eq!(feed(&status, "kev")["records"], 1404);
    assert_eq!(feed(&status, "kev")["data_version"], "2025.08.25");
    // Age from the data's own date (KEV's dateReleased), the import beside it: loaded today, the
    // catalog of 2025-08-25 is stale; Alpine's secdb carries no date: its age is its import's.
    let kev = feed(&status, "kev");
    assert_eq!(kev["data_date"], "2025-08-25T17:04:19.9796Z", "{kev}");
    assert_eq!(kev["imported_days"], 0, "{kev}");
    assert!(kev["age_days"].as_i64().unwrap() > 400, "{kev}");
    assert_eq!(kev["stale"], true, "{kev}");
    let alpine = feed(&status, "alpine-secdb:v3.15/main");
    assert_eq!(alpine["data_date"], serde_json::Value::Null);
    assert_eq!(
        (alpine["age_days"].clone(), alpine["stale"].clone()),
        (0.into(), false.into())
    );
    // OSV: the newest `modified` of the feed's records.
    let alma = feed(&status, "osv:AlmaLinux");
    assert!(
        alma["data_date"].as_str().unwrap().starts_with("20"),
        "{alma}"
    );
    let epss = feed(&status, "epss");
    assert_eq!(epss["records"], 49);
    assert!(epss["last_error"]
        .as_str()
        .unwrap()
        .contains("expected the header"));
    assert_eq!(epss["sha256"].as_str().unwrap().len(), 64);
    // A zero-day limit flags everything loaded before today as stale; today's data is not.
    let out = bin()
        .args(["--db", db, "feeds", "status", "--max-age-days", "0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(" ok "));
}

#[test]
fn import_and_status_on_sqlite() {
    let dir = scratch("feeds-sqlite");
    check(dir.join("kb.db").to_str().unwrap(), &dir);
}

#[test]
fn import_and_status_on_postgres() {
    let Some(url) = postgres_schema("cli") else {
        return;
    };
    check(&url, &scratch("feeds-postgres"));
}

/// An osv.dev-style `all.zip` imports like the files it holds.
#[test]
fn osv_zip_archive() {
    let dir = scratch("feeds-zip");
    let zip = dir.join("all.zip");
    let rocky = fixtures().join("osv/rocky");
    let script = "import sys,zipfile,os\nz=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED)\nfor f in sorted(os.listdir(sys.argv[2])): z.write(os.path.join(sys.argv[2],f),f)\nz.close()";
    let st = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&zip)
        .arg(&rocky)
        .status()
        .unwrap();
    assert!(st.success());
    let db = dir.join("kb.db");
    let out = bin()
        .args([
            "--db",
            db.to_str().unwrap(),
            "feeds",
            "import",
            zip.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 input(s): 3 record(s) imported"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = bin()
        .args([
            "--db",
            db.to_str().unwrap(),
            "feeds",
            "status",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = feed(&status, "osv:Rocky Linux");
    assert_eq!(f["records"], 3);
    assert!(
        f["origin"].as_str().unwrap().contains("all.zip!RLSA-"),
        "{f}"
    );
}

/// `feeds export` writes a bundle that `feeds import` loads into an empty store with the same content;
/// a damaged bundle is refused before anything is written.
#[test]
fn bundle_round_trip_and_tampering() {
    let dir = scratch("feeds-bundle");
    let (src, dst, bundle) = (dir.join("src.db"), dir.join("dst.db"), dir.join("bundle"));
    let data = fixtures();
    let db = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let run_ok = |args: &[&str]| {
        let out = bin().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    run_ok(&[
        "--db",
        &db(&src),
        "feeds",
        "import",
        data.join("osv/rocky").to_str().unwrap(),
        data.join("kev/known_exploited_vulnerabilities.json")
            .to_str()
            .unwrap(),
        data.join("epss/epss_scores-2026-09-29.rows-subset.csv")
            .to_str()
            .unwrap(),
        data.join("nvd/api2.0/page-38-results.response.json")
            .to_str()
            .unwrap(),
    ]);
    run_ok(&[
        "--db",
        &db(&src),
        "feeds",
        "export",
        bundle.to_str().unwrap(),
    ]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "patchwarden-bundle");

    // A damaged file: refused, named, nothing imported.
    let advisories = bundle.join("advisories.ndjson");
    let good = std::fs::read(&advisories).unwrap();
    std::fs::write(
        &advisories,
        String::from_utf8(good.clone())
            .unwrap()
            .replacen("Rocky Linux", "Rocky Linus", 1),
    )
    .unwrap();
    let out = bin()
        .args([
            "--db",
            &db(&dst),
            "feeds",
            "import",
            bundle.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("advisories.ndjson: does not match the manifest"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(
            &run_ok(&["--db", &db(p), "feeds", "status", "--format", "json"]).stdout,
        )
        .unwrap()
    };
    assert!(status(&dst)["feeds"].as_array().unwrap().is_empty());

    // Intact: the destination ends up with the same feeds and counts as the source.
    std::fs::write(&advisories, good).unwrap();
    run_ok(&[
        "--db",
        &db(&dst),
        "feeds",
        "import",
        bundle.to_str().unwrap(),
    ]);
    let summary = |v: serde_json::Value| -> Vec<(String, i64)> {
        v["feeds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["feed"].as_str().unwrap().to_owned(),
                    f["records"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let (from, to) = (summary(status(&src)), summary(status(&dst)));
    assert_eq!(from, to);
    assert!(
        from.contains(&("kev".to_owned(), 1404)) && from.contains(&("nvd".to_owned(), 38)),
        "{from:?}"
    );
}

/// A reader that went away (`patchwarden feeds status | head -0`) ends the command quietly — killed
/// by SIGPIPE as `cat` or `grep` would be, or a clean exit — never a panic (it was exit 101 with
/// "failed printing to stdout"). The pipe's read end is closed before the command starts, so its
/// first write meets a reader that is gone.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch("feeds-pipe");
    let db = dir.join("kb.db");
    let out = bin()
        .args(["--db", db.to_str().unwrap(), "feeds", "import"])
        .arg(fixtures().join("kev/known_exploited_vulnerabilities.json"))
        .output()
        .unwrap();
    assert!(out.status.success());
    for args in [
        vec!["feeds", "status"],
        vec!["feeds", "status", "--format", "json"],
        vec!["scan", "--root", "/"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = bin()
            .args(["--db", db.to_str().unwrap()])
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
            .wait_with_output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}
