//! End of standard support per distribution release.
//!
//! Debian and Ubuntu come from Debian's `distro-info-data` (`/usr/share/distro-info/{debian,ubuntu}.csv`
//! when the host has it, else the copy embedded at build time); the RHEL family, Amazon Linux and
//! Alpine from the project's own table (`data/eol-table.csv`, each row naming its source).

use patchwarden_model::{Distro, DistroRelease};
use serde::Serialize;

const DEBIAN_CSV: &str = include_str!("../data/debian.csv");
const UBUNTU_CSV: &str = include_str!("../data/ubuntu.csv");
const TABLE_CSV: &str = include_str!("../data/eol-table.csv");

/// A release's support dates (`YYYY-MM-DD`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lifecycle {
    /// End of standard (security) support.
    pub eol: String,
    /// Extended support that follows, where there is one (Debian LTS, Ubuntu ESM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_until: Option<String>,
    /// Where the dates come from.
    pub source: String,
    /// The phases after standard support, in order (Debian LTS then ELTS; Ubuntu ESM then
    /// Legacy).
    #[serde(skip)]
    pub phases: Vec<Phase>,
}

/// A support phase after standard support.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    /// `Debian LTS`, `Debian ELTS (Freexian)`, `Ubuntu ESM`, `Ubuntu Legacy support`, `Red Hat
    /// ELS`, `SUSE LTSS`.
    pub name: String,
    /// Last day of fixes (`YYYY-MM-DD`).
    pub until: String,
    /// The subscription a host needs to receive its fixes (`None`: every host does — Debian LTS
    /// publishes through the regular security archive).
    pub requires: Option<Subscription>,
}

/// A subscription a support phase needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    UbuntuPro,
    /// Ubuntu Pro's Legacy add-on (bought on top of Pro): never assumed.
    UbuntuLegacy,
    /// Freexian's Extended LTS for Debian (a separate archive, paid): never assumed.
    FreexianElts,
    /// Red Hat's Extended Life Cycle Support add-on: received by a host with an ELS repository
    /// enabled (`…-els-rpms`, see the inventory's `rhel_stream`).
    RedHatEls,
    /// Oracle Linux Extended Support (a paid support level): never assumed.
    OracleExtended,
    /// SUSE Long Term Service Pack Support (a paid add-on): never assumed (the inventory does not
    /// read SUSE's registered products yet).
    SuseLtss,
}

impl Subscription {
    pub fn name(self) -> &'static str {
        match self {
            Subscription::UbuntuPro => "Ubuntu Pro",
            Subscription::UbuntuLegacy => "Ubuntu Pro with the Legacy add-on",
            Subscription::FreexianElts => "a Freexian ELTS subscription",
            Subscription::RedHatEls => "Red Hat's ELS add-on",
            Subscription::OracleExtended => "Oracle Linux Extended Support",
            Subscription::SuseLtss => "a SUSE LTSS subscription",
        }
    }

    /// The table's name for it (`red-hat-els`); `none` is no subscription.
    fn from_table(name: &str) -> Option<Option<Subscription>> {
        Some(match name {
            "none" => None,
            "red-hat-els" => Some(Subscription::RedHatEls),
            "oracle-extended" => Some(Subscription::OracleExtended),
            "suse-ltss" => Some(Subscription::SuseLtss),
            _ => return None,
        })
    }
}

/// Where a release stands on a day, for a host with the subscriptions it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support<'a> {
    /// Standard support until the date.
    Standard { until: &'a str },
    /// An extended phase this host receives (`Debian LTS until 2028-06-30`).
    Extended { phase: &'a Phase },
    /// No phase this host receives publishes fixes any more: since `since` (the end of the last
    /// one it received); `available`: later phases it could receive by subscribing.
    EndOfLife {
        since: &'a str,
        available: Vec<&'a Phase>,
    },
}

impl Lifecycle {
    /// Where the release stands on `today` (`YYYY-MM-DD`) for a host that holds the
    /// subscriptions `has` says it does: end of life only when no phase it receives still
    /// publishes fixes.
    pub fn support(&self, today: &str, has: impl Fn(Subscription) -> bool) -> Support<'_> {
        if today <= self.eol.as_str() {
            return Support::Standard { until: &self.eol };
        }
        let mut since = self.eol.as_str();
        let mut available = Vec::new();
        for phase in &self.phases {
            let receives = phase.requires.is_none_or(&has);
            if today <= phase.until.as_str() {
                if receives {
                    return Support::Extended { phase };
                }
                available.push(phase);
            } else if receives {
                since = &phase.until;
            }
        }
        Support::EndOfLife { since, available }
    }
}

/// Lifecycle data, read once.
pub struct EolTable {
    debian: String,
    ubuntu: String,
    debian_origin: String,
    ubuntu_origin: String,
}

impl EolTable {
    /// Reads `distro-info-data` from `dir` (normally `/usr/share/distro-info`), falling back to the
    /// embedded copy per file.
    pub fn load(dir: &std::path::Path) -> EolTable {
        let read = |name: &str, embedded: &str| match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => (
                text,
                format!("distro-info-data ({})", dir.join(name).display()),
            ),
            Err(_) => (
                embedded.to_owned(),
                "distro-info-data (embedded copy, 0.58+deb12u6)".to_owned(),
            ),
        };
        let (debian, debian_origin) = read("debian.csv", DEBIAN_CSV);
        let (ubuntu, ubuntu_origin) = read("ubuntu.csv", UBUNTU_CSV);
        EolTable {
            debian,
            ubuntu,
            debian_origin,
            ubuntu_origin,
        }
    }

    /// Only the embedded copies (tests, hosts without the package).
    pub fn embedded() -> EolTable {
        EolTable::load(std::path::Path::new("/nonexistent"))
    }

    /// The lifecycle of a release, when known.
    pub fn lifecycle(&self, release: &DistroRelease) -> Option<Lifecycle> {
        match release.distro {
            Distro::Debian | Distro::Ubuntu => {
                let (csv, origin) = if release.distro == Distro::Debian {
                    (&self.debian, &self.debian_origin)
                } else {
                    (&self.ubuntu, &self.ubuntu_origin)
                };
                let mut lines = csv.lines();
                let header: Vec<&str> = lines.next()?.split(',').collect();
                let col = |name: &str| header.iter().position(|h| *h == name);
                let (version, series, eol) = (col("version")?, col("series")?, col("eol")?);
                let extended = col("eol-lts").or(col("eol-esm"));
                // distro-info-data's columns after standard support, and who receives them.
                let phase_columns: &[(&str, &'static str, Option<Subscription>)] =
                    if release.distro == Distro::Debian {
                        &[
                            ("eol-lts", "Debian LTS", None),
                            (
                                "eol-elts",
                                "Debian ELTS (Freexian)",
                                Some(Subscription::FreexianElts),
                            ),
                        ]
                    } else {
                        &[
                            ("eol-esm", "Ubuntu ESM", Some(Subscription::UbuntuPro)),
                            (
                                "eol-legacy",
                                "Ubuntu Legacy support",
                                Some(Subscription::UbuntuLegacy),
                            ),
                        ]
                    };
                for line in lines {
                    let fields: Vec<&str> = line.split(',').collect();
                    let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
                    // Debian: "12"; Ubuntu: "22.04 LTS". Codenames match too (testing by name).
                    let matches = field(version)
                        .map(|v| v.trim_end_matches(" LTS"))
                        .is_some_and(|v| v == release.release)
                        || field(series).is_some_and(|s| {
                            Some(s) == release.codename.as_deref() || s == release.release
                        });
                    if matches {
                        let phases = phase_columns
                            .iter()
                            .filter_map(|(column, name, requires)| {
                                Some(Phase {
                                    name: (*name).to_owned(),
                                    until: field(col(column)?)?.to_owned(),
                                    requires: *requires,
                                })
                            })
                            .collect();
                        return Some(Lifecycle {
                            eol: field(eol)?.to_owned(),
                            extended_until: extended.and_then(field).map(str::to_owned),
                            source: origin.clone(),
                            phases,
                        });
                    }
                }
                None
            }
            distro => table_lifecycle(TABLE_CSV, distro.id(), &release.release),
        }
    }
}

/// A release's row of the maintained table (`distro,release,eol,source[,name=until=requires…]`).
/// A row that does not read is passed over (the table's test reads every row).
fn table_lifecycle(table: &str, distro: &str, release: &str) -> Option<Lifecycle> {
    table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == distro && f[1] == release)
        .and_then(|f| {
            let phases = f[4..]
                .iter()
                .map(|p| {
                    let mut parts = p.split('=');
                    let (name, until, requires) = (parts.next()?, parts.next()?, parts.next()?);
                    Some(Phase {
                        name: name.to_owned(),
                        until: until.to_owned(),
                        requires: Subscription::from_table(requires)?,
                    })
                })
                .collect::<Option<Vec<Phase>>>()?;
            Some(Lifecycle {
                eol: f[2].to_owned(),
                extended_until: phases.last().map(|p| p.until.clone()),
                source: f[3].to_owned(),
                phases,
            })
        })
}

#[cfg(test)]
mod table_tests {
    use super::*;

    fn is_date(d: &str) -> bool {
        let b = d.as_bytes();
        b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && d.split('-').all(|p| p.bytes().all(|c| c.is_ascii_digit()))
            && (1..=12).contains(&d[5..7].parse::<u32>().unwrap_or(0))
            && (1..=31).contains(&d[8..10].parse::<u32>().unwrap_or(0))
    }

    /// Every row of the shipped table reads: dates as dates, phases in order, known subscriptions.
    #[test]
    fn every_row_of_the_table_reads() {
        let mut rows = 0;
        for line in TABLE_CSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let f: Vec<&str> = line.split(',').collect();
            let life = table_lifecycle(TABLE_CSV, f[0], f[1])
                .unwrap_or_else(|| panic!("row does not read: {line}"));
            assert!(is_date(&life.eol), "{line}");
            let mut last = life.eol.clone();
            for p in &life.phases {
                assert!(is_date(&p.until), "{line}");
                assert!(p.until > last, "phases in order: {line}");
                last = p.until.clone();
            }
            rows += 1;
        }
        assert!(rows >= 30, "{rows}");
    }

    #[test]
    fn rhel_sles_and_oracle_have_paid_phases_never_assumed() {
        let t = EolTable::embedded();
        let rel = |id: &str, v: &str| {
            DistroRelease::from_os_release(
                Distro::from_os_release_id(id).unwrap(),
                Some(v),
                None,
                None,
            )
            .unwrap()
        };
        let none = |_: Subscription| false;
        // SLES 15 SP5 past general support: end of life unless LTSS; with it, LTSS.
        let sp5 = t.lifecycle(&rel("sles", "15.5")).unwrap();
        match sp5.support("2026-12-04", none) {
            Support::EndOfLife { since, available } => {
                assert_eq!(since, "2024-12-31");
                assert_eq!(available[0].name, "SUSE LTSS");
                assert_eq!(available[0].requires, Some(Subscription::SuseLtss));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            sp5.support("2026-12-04", |s| s == Subscription::SuseLtss),
            Support::Extended { .. }
        ));
        // RHEL 9 in maintenance support; RHEL 7 after it, ELS for ELS hosts only.
        assert!(matches!(
            t.lifecycle(&rel("rhel", "9.4"))
                .unwrap()
                .support("2026-12-04", none),
            Support::Standard {
                until: "2032-05-31"
            }
        ));
        let rhel7 = t.lifecycle(&rel("rhel", "7.9")).unwrap();
        assert!(matches!(
            rhel7.support("2026-12-04", none),
            Support::EndOfLife { .. }
        ));
        match rhel7.support("2026-12-04", |s| s == Subscription::RedHatEls) {
            Support::Extended { phase } => assert_eq!(phase.until, "2029-05-31"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            t.lifecycle(&rel("ol", "8.10")).unwrap().phases[0].requires,
            Some(Subscription::OracleExtended)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: &str, version: &str, codename: Option<&str>) -> DistroRelease {
        DistroRelease::from_os_release(
            Distro::from_os_release_id(id).unwrap(),
            Some(version),
            codename,
            None,
        )
        .unwrap()
    }

    #[test]
    fn dates_come_from_distro_info_and_the_table() {
        let t = EolTable::embedded();
        let buster = t
            .lifecycle(&release("debian", "10", Some("buster")))
            .unwrap();
        assert_eq!(
            (buster.eol.as_str(), buster.extended_until.as_deref()),
            ("2022-09-10", Some("2024-06-30"))
        );
        let focal = t
            .lifecycle(&release("ubuntu", "20.04", Some("focal")))
            .unwrap();
        assert_eq!(focal.eol, "2025-05-29");
        assert_eq!(
            t.lifecycle(&release("almalinux", "9.4", None)).unwrap().eol,
            "2032-05-31"
        );
        assert_eq!(
            t.lifecycle(&release("alpine", "3.19.1", None)).unwrap().eol,
            "2025-11-01"
        );
        assert!(t.lifecycle(&release("fedora", "40", None)).is_none());
    }

    /// End of life only when no phase the host receives still publishes fixes: Debian 12 is in
    /// LTS (the regular archive, every host) after 2026-07-11, Debian 10 is past LTS (ELTS is
    /// Freexian's, paid); Ubuntu 18.04 past standard support is end of life without Pro and in
    /// ESM with it.
    #[test]
    fn support_phases_decide_end_of_life() {
        let t = EolTable::embedded();
        let none = |_: Subscription| false;
        let pro = |s: Subscription| s == Subscription::UbuntuPro;
        let bookworm = t
            .lifecycle(&release("debian", "12", Some("bookworm")))
            .unwrap();
        assert_eq!(
            bookworm.support("2026-07-11", none),
            Support::Standard {
                until: "2026-07-11"
            }
        );
        match bookworm.support("2026-12-04", none) {
            Support::Extended { phase } => {
                assert_eq!(
                    (phase.name.as_str(), phase.until.as_str()),
                    ("Debian LTS", "2028-06-30")
                )
            }
            other => panic!("{other:?}"),
        }
        let buster = t
            .lifecycle(&release("debian", "10", Some("buster")))
            .unwrap();
        match buster.support("2026-12-04", none) {
            Support::EndOfLife { since, available } => {
                assert_eq!(since, "2024-06-30");
                assert_eq!(available[0].name, "Debian ELTS (Freexian)");
            }
            other => panic!("{other:?}"),
        }
        let bionic = t
            .lifecycle(&release("ubuntu", "18.04", Some("bionic")))
            .unwrap();
        match bionic.support("2026-12-04", none) {
            Support::EndOfLife { since, available } => {
                assert_eq!(since, "2023-05-31");
                assert_eq!(
                    (available[0].name.as_str(), available[0].until.as_str()),
                    ("Ubuntu ESM", "2028-04-26")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            bionic.support("2026-12-04", pro),
            Support::Extended { phase } if phase.name == "Ubuntu ESM"
        ));
        // Past ESM, only the Legacy add-on (bought on top of Pro) carries a host on.
        match bionic.support("2029-01-01", pro) {
            Support::EndOfLife { since, available } => {
                assert_eq!(since, "2028-04-26");
                assert_eq!(available[0].name, "Ubuntu Legacy support");
            }
            other => panic!("{other:?}"),
        }
    }
}
