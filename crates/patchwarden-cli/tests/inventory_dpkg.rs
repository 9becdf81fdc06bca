//! `patchwarden inventory --root` on real Debian systems: a root built by mmdebstrap (fresh, or cached
//! outside the clone), compared line for line with `dpkg-query`; the distroless `status.d` sample.
mod support;

use std::path::Path;
use std::process::Command;

use support::*;

fn dpkg_query(root: &Path) -> Vec<String> {
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}/var/lib/dpkg", root.display()))
        .args(["-W", "-f", "${db:Status-Abbrev}\t${Package} ${Version} ${Architecture} ${source:Package} ${source:Version}\n"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut v: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(abbrev, _)| !matches!(abbrev.as_bytes().get(1), Some(b'n' | b'c')))
        .map(|(_, rest)| rest.to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn debootstrap_root_matches_dpkg_query() {
    let Some(root) = debian_root() else { return };
    let inv = inventory_json(&root);
    let ours = package_lines(&inv);
    let theirs = dpkg_query(&root);
    assert!(
        theirs.len() > 80,
        "only {} packages in the root",
        theirs.len()
    );
    assert_eq!(ours, theirs);
    assert_eq!(inv["schema_version"], 1);
    assert_eq!(inv["live"], false);
    assert_eq!(inv["os"]["id"], "debian");
    assert_eq!(inv["os"]["version_id"], "12");
    assert_eq!(inv["os"]["release"]["display"], "Debian 12 (bookworm)");
    assert_eq!(inv["package_databases"][0]["format"], "dpkg-status");
    // A root directory has no running kernel, processes or platform of its own.
    assert!(inv["kernel"]["running"].is_null());
    assert!(inv.get("platform").is_none());
}

/// Hold state and a pending reboot are read from the root's own files (a copy, so the cached root
/// stays pristine).
#[test]
fn hold_and_reboot_required_are_reported() {
    let Some(root) = debian_root() else { return };
    let copy = scratch("debian-hold");
    for dir in ["etc", "var/lib/dpkg", "run"] {
        std::fs::create_dir_all(copy.join(dir)).unwrap();
    }
    std::fs::copy(root.join("etc/os-release"), copy.join("etc/os-release")).unwrap();
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    let held = status.replacen(
        "Package: curl\nStatus: install ok installed",
        "Package: curl\nStatus: hold ok installed",
        1,
    );
    assert_ne!(held, status, "curl stanza not found");
    std::fs::write(copy.join("var/lib/dpkg/status"), held).unwrap();
    std::fs::write(
        copy.join("run/reboot-required"),
        "*** System restart required ***\n",
    )
    .unwrap();
    std::fs::write(
        copy.join("run/reboot-required.pkgs"),
        "libssl3\nlibc6\nlibssl3\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/run", copy.join("var/run")).unwrap();
    let inv = inventory_json(&copy);
    let curl = inv["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "curl")
        .unwrap();
    assert_eq!(curl["held"], true);
    assert_eq!(curl["status"], "hold ok installed");
    assert_eq!(inv["reboot"]["required"], true);
    assert_eq!(
        inv["reboot"]["packages"],
        serde_json::json!(["libc6", "libssl3"])
    );
}

/// The distroless layout: one file per package in status.d, no Status field; `*.md5sums` ignored and
/// a `config-files` entry left out.
#[test]
fn distroless_status_d() {
    let root = scratch("distroless");
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    let src = fixtures().join("inventory/dpkg-distroless/status.d");
    std::fs::create_dir_all(root.join("var/lib/dpkg/status.d")).unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(
            &f,
            root.join("var/lib/dpkg/status.d")
                .join(f.file_name().unwrap()),
        )
        .unwrap();
    }
    write(
        &root.join("etc/os-release"),
        "PRETTY_NAME=\"Distroless\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
    );
    let inv = inventory_json(&root);
    assert_eq!(package_lines(&inv), ["foo 1.2.3 amd64 foo 1.2.3"]);
    assert_eq!(inv["package_databases"][0]["format"], "dpkg-status.d");
}

#[test]
fn corrupt_status_names_file_and_record() {
    let root = scratch("corrupt-dpkg");
    write(&root.join("etc/os-release"), "ID=debian\nVERSION_ID=12\n");
    write(&root.join("var/lib/dpkg/status"), "Package: a\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n\nPackage: b\nStatus: install ok installed\nVersion: 1.0\n");
    let err = inventory_error(&root);
    assert!(
        err.contains("var/lib/dpkg/status: record at line 6 (b): missing Architecture field"),
        "{err}"
    );
}

#[test]
fn a_directory_that_is_not_a_system_root_is_refused() {
    let dir = scratch("not-a-root");
    std::fs::write(dir.join("hello.txt"), "hi").unwrap();
    let out = run(&["inventory", "--root", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a system root"));
    let out = run(&["inventory", "--root", "/nonexistent/patchwarden"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read root directory /nonexistent/patchwarden"));
}
