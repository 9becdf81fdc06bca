//! `patchwarden inventory --root` on RPM and Alpine systems: a real rpmdb made with rpmbuild and
//! `rpm --justdb`, the real CBL-Mariner 2.0 rpmdb, and the real Alpine installed database; each
//! compared with what the package manager itself reports.
mod support;

use std::path::Path;
use std::process::Command;

use support::*;

/// `rpm -qa` as `name version arch source_name source_version` lines, with rpm's own tags.
fn rpm_qa(args: &[&str]) -> Vec<String> {
    let qf = "%{NAME} %|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE} %{ARCH} %{SOURCERPM}\\n";
    let out = Command::new("rpm")
        .args(args)
        .args(["-qa", "--qf", qf])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpm -qa: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("gpg-pubkey "))
        .map(|l| {
            // Turn the SOURCERPM file name into "name version-release" as rpm's NEVRA rules split it.
            let (head, srpm) = l.rsplit_once(' ').unwrap();
            let stem = srpm.strip_suffix(".src.rpm").unwrap();
            let (nv, release) = stem.rsplit_once('-').unwrap();
            let (name, version) = nv.rsplit_once('-').unwrap();
            format!("{head} {name} {version}-{release}")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn cbl_mariner_rpmdb_matches_rpm() {
    if !tool_available("rpm") {
        return;
    }
    let root = scratch("mariner");
    std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
    let db = fixtures().join("inventory/rpmdb/cbl-mariner-2.0/rpmdb.sqlite");
    std::fs::copy(&db, root.join("var/lib/rpm/rpmdb.sqlite")).unwrap();
    write(&root.join("etc/os-release"), "NAME=\"Common Base Linux Mariner\"\nVERSION=\"2.0.20220527\"\nID=mariner\nVERSION_ID=\"2.0\"\nPRETTY_NAME=\"CBL-Mariner/Linux\"\n");
    let inv = inventory_json(&root);
    let ours = package_lines(&inv);
    assert_eq!(ours.len(), 129);
    // rpm opens the database read-write (it leaves -shm/-wal files): give it its own copy, never the
    // fixture and never the root under test.
    let oracle_dir = scratch("mariner-oracle");
    std::fs::copy(&db, oracle_dir.join("rpmdb.sqlite")).unwrap();
    let theirs = rpm_qa(&["--dbpath", oracle_dir.to_str().unwrap()]);
    assert_eq!(ours, theirs);
    assert_eq!(inv["os"]["release"]["display"], "CBL-Mariner 2");
    assert_eq!(inv["package_databases"][0]["format"], "rpm-sqlite");
    // Nothing was written into the inventoried root (no -shm or -wal beside the database).
    let files: Vec<_> = std::fs::read_dir(root.join("var/lib/rpm"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["rpmdb.sqlite"]);
}

/// One spec per source package, with binary sub-packages carrying epochs, tildes and carets.
const SPECS: &[(&str, &str)] = &[
    ("openssl", "Epoch: 1\nVersion: 3.0.7\nRelease: 24.el9\n%package libs\nSummary: libs\n%description libs\nlibs\n%files libs\n"),
    ("kernel", "Version: 5.14.0\nRelease: 362.8.1.el9_3\n%package core\nSummary: core\n%description core\ncore\n%files core\n"),
    ("tzdata", "Version: 2024a~rc1\nRelease: 1.el9\nBuildArch: noarch\n"),
    ("curl", "Version: 7.76.1^20240101git\nRelease: 26.el9_3.2\n%package -n libcurl\nSummary: lib\n%description -n libcurl\nlib\n%files -n libcurl\n"),
];

fn build_rpms(work: &Path) -> Vec<std::path::PathBuf> {
    for (name, body) in SPECS {
        let spec = format!(
            "Name: {name}\n{body}\nSummary: test package made by patchwarden's tests\nLicense: MIT\n%description\ntest\n%files\n"
        );
        // The sub-package sections must come after the main preamble: move them below %files.
        let (preamble, subpackages) = match spec.find("%package") {
            Some(i) => {
                let sub_end = spec.find("\nSummary: test package").unwrap();
                (
                    format!("{}{}", &spec[..i], &spec[sub_end + 1..]),
                    spec[i..sub_end].to_owned(),
                )
            }
            None => (spec.clone(), String::new()),
        };
        let full = format!("{preamble}\n{subpackages}\n");
        let spec_path = work.join(format!("{name}.spec"));
        std::fs::write(&spec_path, full).unwrap();
        let status = Command::new("rpmbuild")
            .args([
                "-bb",
                "--quiet",
                "--define",
                &format!("_topdir {}", work.join("build").display()),
            ])
            .arg(&spec_path)
            .status()
            .unwrap();
        assert!(status.success(), "rpmbuild {name}");
    }
    let mut rpms = Vec::new();
    for arch_dir in std::fs::read_dir(work.join("build/RPMS")).unwrap() {
        for f in std::fs::read_dir(arch_dir.unwrap().path()).unwrap() {
            rpms.push(f.unwrap().path());
        }
    }
    rpms
}

#[test]
fn rpmbuild_justdb_root_matches_rpm() {
    if !tool_available("rpmbuild") {
        return;
    }
    let work = scratch("rpmbuild");
    let rpms = build_rpms(&work);
    assert!(rpms.len() >= 7, "{rpms:?}");
    let root = work.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let rpm_root = |args: &[&str]| {
        let st = Command::new("rpm")
            .arg("--root")
            .arg(&root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "rpm {args:?}");
    };
    rpm_root(&["--initdb"]);
    let mut install = vec![
        "-i",
        "--justdb",
        "--nodeps",
        "--noscripts",
        "--nosignature",
        "--ignorearch",
    ];
    let paths: Vec<String> = rpms.iter().map(|p| p.display().to_string()).collect();
    install.extend(paths.iter().map(String::as_str));
    rpm_root(&install);
    write(&root.join("etc/os-release"), "NAME=\"AlmaLinux\"\nVERSION=\"9.3 (Shamrock Pampas Cat)\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPRETTY_NAME=\"AlmaLinux 9.3 (Shamrock Pampas Cat)\"\n");
    let inv = inventory_json(&root);
    let theirs = rpm_qa(&["--root", root.to_str().unwrap(), "--dbpath", "/var/lib/rpm"]);
    assert_eq!(package_lines(&inv), theirs);
    assert!(
        theirs
            .iter()
            .any(|l| l.starts_with("openssl-libs 1:3.0.7-24.el9 ")),
        "{theirs:?}"
    );
    assert_eq!(inv["os"]["release"]["display"], "AlmaLinux 9");
    assert_eq!(
        inv["kernel"]["installed"][0]["release"],
        format!("5.14.0-362.8.1.el9_3.{}", std::env::consts::ARCH)
    );
    // An rpmdb whose header blob is cut short is refused with the file and the record named.
    let db = root.join("var/lib/rpm/rpmdb.sqlite");
    let conn_ok = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('UPDATE Packages SET blob=substr(blob,1,40) WHERE hnum=(SELECT max(hnum) FROM Packages)'); c.commit()"])
        .arg(&db)
        .status()
        .unwrap();
    assert!(conn_ok.success());
    let err = inventory_error(&root);
    assert!(
        err.contains("rpmdb.sqlite: Packages record hnum=") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn garbage_rpmdb_is_an_error_naming_the_file() {
    let root = scratch("garbage-rpmdb");
    write(
        &root.join("var/lib/rpm/rpmdb.sqlite"),
        "this is not an sqlite database at all, just text",
    );
    let out = run(&["inventory", "--root", root.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("var/lib/rpm/rpmdb.sqlite"), "{err}");
}

/// The real Alpine installed database: every `P:` record, with its origin as the source package.
#[test]
fn alpine_installed_db() {
    let root = scratch("alpine");
    let text = std::fs::read_to_string(fixtures().join("inventory/apk/installed")).unwrap();
    write(&root.join("lib/apk/db/installed"), &text);
    write(
        &root.join("etc/os-release"),
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.18.0\nPRETTY_NAME=\"Alpine Linux v3.18\"\n",
    );
    let inv = inventory_json(&root);
    // Expected from the database text itself, record by record.
    let mut expected = Vec::new();
    for record in text.split("\n\n").filter(|r| !r.trim().is_empty()) {
        let field = |k: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}:")))
                .unwrap()
                .to_owned()
        };
        let v = field("V");
        expected.push(format!(
            "{} {v} {} {} {v}",
            field("P"),
            field("A"),
            field("o")
        ));
    }
    expected.sort();
    assert_eq!(expected.len(), 15);
    assert_eq!(package_lines(&inv), expected);
    assert_eq!(inv["os"]["release"]["release"], "3.18");
    assert_eq!(inv["os"]["release"]["version_scheme"], "apk");
}

/// Writes a Berkeley DB `Packages` file holding the real CBL-Mariner header blobs, keyed by record
/// number as rpm keys them, with Berkeley DB's own `db5.3_load`.
fn make_bdb_packages(dir: &Path, page_size: u32) -> std::path::PathBuf {
    let db = fixtures().join("inventory/rpmdb/cbl-mariner-2.0/rpmdb.sqlite");
    let dump = dir.join("dump.txt");
    let script = "import sqlite3,struct,sys\nc=sqlite3.connect('file:'+sys.argv[1]+'?immutable=1',uri=True)\nesc=lambda b:''.join('\\\\%02x'%x for x in b)\nwith open(sys.argv[2],'w') as o:\n  for h,b in c.execute('select hnum,blob from Packages order by hnum'):\n    o.write(esc(struct.pack('<I',h))+'\\n'+esc(b)+'\\n')\n";
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(&db)
        .arg(&dump)
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.join("var/lib/rpm/Packages");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let st = Command::new("db5.3_load")
        .args([
            "-T",
            "-t",
            "hash",
            "-c",
            &format!("db_pagesize={page_size}"),
            "-f",
        ])
        .arg(&dump)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "db5.3_load");
    out
}

/// Older RPM systems (RHEL 7/8) keep a Berkeley DB `Packages`; it is read natively and must agree with
/// rpm's own bdb_ro reader — with 4 KiB pages (headers in overflow chains) and 64 KiB pages (most
/// headers inline on the hash page).
#[test]
fn berkeley_db_rpmdb_matches_rpm() {
    if !tool_available("rpm") || !tool_available("db5.3_load") {
        return;
    }
    for page_size in [4096, 65536] {
        let root = scratch(&format!("bdb-{page_size}"));
        let packages = make_bdb_packages(&root, page_size);
        write(
            &root.join("etc/os-release"),
            "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"8.9\"\n",
        );
        let inv = inventory_json(&root);
        assert_eq!(inv["package_databases"][0]["format"], "rpm-bdb");
        let theirs = rpm_qa(&[
            "--dbpath",
            packages.parent().unwrap().to_str().unwrap(),
            "--define",
            "_db_backend bdb_ro",
        ]);
        assert_eq!(theirs.len(), 129);
        assert_eq!(package_lines(&inv), theirs, "page size {page_size}");
        assert_eq!(
            inv["os"]["release"]["display"],
            "Red Hat Enterprise Linux 8"
        );
    }
    // A file cut short in the middle is refused, naming the file and the page.
    let root = scratch("bdb-truncated");
    let packages = make_bdb_packages(&root, 4096);
    let len = std::fs::metadata(&packages).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&packages)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = inventory_error(&root);
    assert!(err.contains("var/lib/rpm/Packages: page "), "{err}");
}
