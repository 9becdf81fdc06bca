//! Writes the Debian advisories of one release in debsecan's feed format (`VERSION 1`, then
//! vulnerability lines, package lines and source-to-binary lines, each block ended by an empty line;
//! debsecan reads it zlib-compressed from `<source>/<suite>`). Used to run debsecan beside
//! patchwarden on exactly the data the knowledge base holds.
//!
//! Mapping: a `Fixed` entry becomes a package line with the fixed version and the `F` flag; `NotFixedYet`,
//! `WillNotFix` and `EndOfLife` entries a package line without a version (every version affected);
//! `NotAffected` and `Undetermined` entries are left out (nothing to report). Urgency becomes
//! debsecan's `L`/`M`/`H` flag (`unimportant` and unknown words: blank); remoteness is unknown (`?`).
//! The source-to-binary block is left empty (patchwarden keys Debian by source package).

use patchwarden_model::{Advisory, Distro, FixState};

/// The feed text (uncompressed) for Debian release `release` (`12`).
pub fn render(advisories: &[Advisory], release: &str) -> String {
    let mut names: Vec<(String, String)> = Vec::new();
    let mut packages: Vec<String> = Vec::new();
    for a in advisories {
        let entries: Vec<_> = a
            .affected
            .iter()
            .filter(|p| {
                p.release.as_ref().is_some_and(|r| {
                    r.distro == Some(Distro::Debian) && r.release == release && r.stream.is_none()
                })
            })
            .filter(|p| {
                matches!(
                    p.state,
                    FixState::Fixed
                        | FixState::NotFixedYet
                        | FixState::WillNotFix
                        | FixState::EndOfLife
                )
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        let index = names.len();
        let description = a
            .summary
            .as_deref()
            .unwrap_or("")
            .replace(['\n', '\r'], " ");
        names.push((a.id.clone(), description));
        for p in entries {
            let urgency = match p
                .severity
                .as_deref()
                .map(|s| s.trim_end_matches('*').to_ascii_lowercase())
                .as_deref()
            {
                Some("low") => 'L',
                Some("medium") => 'M',
                Some("high") => 'H',
                _ => ' ',
            };
            let (fixed, flag) = match (&p.state, &p.fixed_version) {
                (FixState::Fixed, Some(v)) => (v.as_str(), 'F'),
                _ => ("", ' '),
            };
            packages.push(format!("{},{index},S{urgency}?{flag},{fixed},", p.package));
        }
    }
    let mut out = String::from("VERSION 1\n");
    for (name, description) in &names {
        out.push_str(&format!("{name},,{description}\n"));
    }
    out.push('\n');
    for line in &packages {
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.push('\n');
    out
}

/// The feed, zlib-compressed as debsecan downloads it.
pub fn render_compressed(advisories: &[Advisory], release: &str) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(render(advisories, release).as_bytes())
        .expect("writing to memory");
    z.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    #[test]
    fn tracker_states_become_feed_lines() {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/data/debian-tracker/osvdev-debian_security_tracker_mock.json"),
        )
        .unwrap();
        let advisories = crate::debian::parse(&bytes, "mock").unwrap();
        let text = super::render(&advisories, "12");
        let blocks: Vec<&str> = text.split("\n\n").collect();
        assert!(blocks[0].starts_with("VERSION 1\n"));
        // CVE-2014-1424 is not affected in bookworm: left out. CVE-2016-1585 open, CVE-2017-6507
        // fixed in 2.11.0-3.
        assert!(!text.contains("CVE-2014-1424"));
        let lines: Vec<&str> = blocks[1].lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("apparmor,") && l.ends_with(",S ? ,,")));
        assert!(
            lines.iter().any(|l| l.ends_with("?F,2.11.0-3,")),
            "{lines:?}"
        );
    }
}
