//! The `vercmp` command's interface: single comparisons, batch mode, and errors.
mod support;

use support::*;

#[test]
fn single_comparisons() {
    for (scheme, a, b, want) in [
        ("deb", "1.0~rc1", "1.0", "<"),
        ("rpm", "1:1.0-1", "2.0-1", ">"),
        ("apk", "1.2.3-r1", "1.2.3-r1", "="),
    ] {
        let out = run(&["vercmp", "--scheme", scheme, a, b]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want,
            "{scheme} {a} {b}"
        );
    }
    let out = run(&["vercmp", "--scheme", "deb", "1.0", "1:"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("invalid deb version '1:': nothing after colon"));
}

#[test]
fn batch_answers_every_line_in_order_and_fails_at_the_end() {
    let out = run_with_stdin(
        &["vercmp", "--scheme", "apk", "--batch"],
        b"1.0\t1.0-r1\n1.0_foobar\t1.0\n2.0\t1.9\nno-tab-here\n",
    );
    assert!(!out.status.success());
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0], "<");
    assert!(
        lines[1].starts_with("error: invalid apk version '1.0_foobar'"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], ">");
    assert!(lines[3].starts_with("error: line 4"), "{}", lines[3]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 line(s) could not be compared"));
}

#[test]
fn batch_of_upstream_vectors_matches_expectations() {
    let text = std::fs::read_to_string(fixtures().join("versions/dpkg.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    let input: String = rows
        .iter()
        .map(|r| format!("{}\t{}\n", r[0], r[1]))
        .collect();
    let out = run_with_stdin(&["vercmp", "--scheme", "deb", "--batch"], input.as_bytes());
    assert!(out.status.success());
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let want: Vec<&str> = rows
        .iter()
        .map(|r| match r[2] {
            "-1" => "<",
            "0" => "=",
            _ => ">",
        })
        .collect();
    assert_eq!(got, want);
}
