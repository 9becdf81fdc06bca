//! `patchwarden window check`: the shipped example file read and judged, and a bad file refused
//! with the file, window and field named.
mod support;

use support::*;

fn example() -> String {
    format!(
        "{}/../../dist/windows.example.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn the_example_windows_list_their_openings_and_judge_a_start() {
    let out = run(&[
        "window",
        "check",
        &example(),
        "--at",
        "2026-12-14T21:30:00Z",
        "--expected",
        "2h",
        "--count",
        "2",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let prod = report
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "production-after-patch-tuesday")
        .unwrap();
    // 2026-12-14 is the Monday after Patch Tuesday (12-08): open since 21:00Z, 3.5 h left.
    assert_eq!(prod["may_start"], "may start (closes 2026-12-15T01:00:00Z)");
    // The next opening: January's (Patch Tuesday 2027-01-12, + 6 days).
    assert_eq!(prod["next_openings"][0]["start"], "2027-01-18T21:00:00Z");
    let staging = report
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "staging-nightly")
        .unwrap();
    assert_eq!(staging["may_start"], "closed");
    assert_eq!(staging["next_openings"][0]["start"], "2026-12-15T00:00:00Z");
}

#[test]
fn a_bad_window_file_names_the_file_window_and_field() {
    let dir = std::env::temp_dir().join(format!("pw-window-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        std::fs::read_to_string(example())
            .unwrap()
            .replace("offset_days = 6", "offset_days = 6\nnth_day = 1"),
    )
    .unwrap();
    let out = run(&["window", "check", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("nth_day"), "{err}");
    std::fs::write(
        &file,
        std::fs::read_to_string(example())
            .unwrap()
            .replace("Europe/Berlin", "Europe/Atlantis"),
    )
    .unwrap();
    let out = run(&["window", "check", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"staging-nightly\": timezone"), "{err}");
}
