//! Remediation deadlines: frameworks, their windows, and the due date of a finding under each.
//!
//! A policy is a TOML file:
//!
//! ```toml
//! # Built-in frameworks to apply (all four when the file names none and defines none).
//! presets = ["bod-22-01", "pci-dss-4.0", "fedramp", "internal-sla"]
//!
//! # Custom frameworks (or a preset's id, to replace it).
//! [[framework]]
//! id = "internal-sla"
//! name = "Our SLA"
//! start = "first-seen"            # published | kev-date-added | first-seen
//! severities = ["critical", "high", "medium", "low"]   # which findings it covers (default: all)
//! kev_only = false                # only findings whose CVE is in KEV
//! [framework.days]                # days from the start, per severity
//! critical = 7
//! high = 30
//! ```
//!
//! A framework has either `days` (per severity), `months` (calendar months for every covered
//! severity) or `due = "kev-due-date"` (CISA's own date per KEV entry).

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::Severity;

/// Where a framework's clock starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// The advisory's publication (the fix's release), else the CVE's.
    Published,
    /// The date CISA added the CVE to KEV.
    KevDateAdded,
    /// The first time patchwarden saw the finding on the host.
    FirstSeen,
}

/// One framework.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Framework {
    pub id: String,
    pub name: String,
    #[serde(default = "default_start")]
    pub start: Start,
    /// The severities it covers; empty = all.
    #[serde(default)]
    pub severities: Vec<Severity>,
    #[serde(default)]
    pub kev_only: bool,
    /// Days from the start, per severity (`critical`, `high`, `medium`, `low`, `unknown`).
    #[serde(default)]
    pub days: BTreeMap<Severity, u32>,
    /// Calendar months from the start, for every covered severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months: Option<u32>,
    /// `kev-due-date`: CISA's due date of the KEV entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
}

fn default_start() -> Start {
    Start::FirstSeen
}

/// The built-in frameworks.
pub fn presets() -> Vec<Framework> {
    let days = |pairs: &[(Severity, u32)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
    vec![
        Framework {
            id: "bod-22-01".into(),
            name: "CISA BOD 22-01 (KEV due date)".into(),
            start: Start::KevDateAdded,
            severities: vec![],
            kev_only: true,
            days: BTreeMap::new(),
            months: None,
            due: Some("kev-due-date".into()),
        },
        Framework {
            id: "pci-dss-4.0".into(),
            name: "PCI DSS v4.0 req. 6.3.3 (critical: within one month of release)".into(),
            start: Start::Published,
            severities: vec![Severity::Critical],
            kev_only: false,
            days: BTreeMap::new(),
            months: Some(1),
            due: None,
        },
        Framework {
            id: "fedramp".into(),
            name: "FedRAMP ConMon (high/critical 30 days, moderate 90, low 180)".into(),
            start: Start::FirstSeen,
            severities: vec![],
            kev_only: false,
            days: days(&[
                (Severity::Critical, 30),
                (Severity::High, 30),
                (Severity::Medium, 90),
                (Severity::Low, 180),
            ]),
            months: None,
            due: None,
        },
        Framework {
            id: "internal-sla".into(),
            name: "Internal SLA (critical 15 days, high 30, medium 90, low 180)".into(),
            start: Start::FirstSeen,
            severities: vec![],
            kev_only: false,
            days: days(&[
                (Severity::Critical, 15),
                (Severity::High, 30),
                (Severity::Medium, 90),
                (Severity::Low, 180),
            ]),
            months: None,
            due: None,
        },
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    presets: Option<Vec<String>>,
    #[serde(default)]
    framework: Vec<Framework>,
}

/// The frameworks in force.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Policy {
    pub frameworks: Vec<Framework>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            frameworks: presets(),
        }
    }
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The file's text is not a valid policy (the message names the file and what is wrong).
    #[error("{0}")]
    Invalid(String),
}

impl Policy {
    /// The policy of a file (TOML), or the built-in presets without one: the one loader of the
    /// CLI's `--policy` and the server's.
    pub fn load(path: Option<&std::path::Path>) -> Result<Policy, PolicyError> {
        let Some(path) = path else {
            return Ok(Policy::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Policy::parse(&text, &path.display().to_string()).map_err(PolicyError::Invalid)
    }

    /// Parses a policy file's text; errors name the file (`origin`) and what is wrong.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, String> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| format!("{origin}: not a valid policy: {e}"))?;
        let all = presets();
        let mut frameworks = Vec::new();
        let chosen = match &file.presets {
            Some(list) => list.clone(),
            None if file.framework.is_empty() => all.iter().map(|f| f.id.clone()).collect(),
            None => Vec::new(),
        };
        for id in chosen {
            let f = all.iter().find(|f| f.id == id).ok_or_else(|| {
                let known: Vec<&str> = all.iter().map(|f| f.id.as_str()).collect();
                format!(
                    "{origin}: unknown preset '{id}' (known: {})",
                    known.join(", ")
                )
            })?;
            frameworks.push(f.clone());
        }
        for f in file.framework {
            let rules = usize::from(!f.days.is_empty())
                + usize::from(f.months.is_some())
                + usize::from(f.due.is_some());
            if rules != 1 {
                return Err(format!(
                    "{origin}: framework '{}' needs exactly one of `days`, `months` or `due`",
                    f.id
                ));
            }
            if let Some(due) = &f.due {
                if due != "kev-due-date" {
                    return Err(format!(
                        "{origin}: framework '{}': `due` can only be \"kev-due-date\", not {due:?}",
                        f.id
                    ));
                }
            }
            frameworks.retain(|g| g.id != f.id);
            frameworks.push(f);
        }
        Ok(Policy { frameworks })
    }
}

/// The dates a due date can be counted from.
#[derive(Clone, Copy, Debug, Default)]
pub struct FindingDates {
    pub published: Option<Date>,
    pub kev_date_added: Option<Date>,
    pub kev_due_date: Option<Date>,
    pub first_seen: Option<Date>,
}

/// The date of `YYYY-MM-DD` or an RFC 3339 time (its date part).
pub fn date(text: &str) -> Option<Date> {
    text.get(..10)?.parse().ok()
}

/// A finding's deadline under one framework (no allocation: fleets compute millions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due<'a> {
    pub framework: &'a str,
    pub date: Date,
    pub overdue: bool,
    pub basis: Basis,
}

/// What a due date is counted from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// CISA's own due date of the KEV entry.
    KevDueDate,
    /// A window from a start date.
    From(Start, Date),
    /// The end of the release's standard support.
    EndOfSupport,
}

impl std::fmt::Display for Basis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Basis::KevDueDate => f.write_str("KEV due date"),
            Basis::From(start, date) => {
                let name = match start {
                    Start::Published => "published",
                    Start::KevDateAdded => "kev-date-added",
                    Start::FirstSeen => "first-seen",
                };
                write!(f, "{name} {date}")
            }
            Basis::EndOfSupport => f.write_str("end of standard support"),
        }
    }
}

/// `{"framework", "date": "YYYY-MM-DD", "overdue", "basis": "first-seen 2026-11-01"}`.
impl Serialize for Due<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Due", 4)?;
        st.serialize_field("framework", self.framework)?;
        st.serialize_field("date", &self.date.to_string())?;
        st.serialize_field("overdue", &self.overdue)?;
        st.serialize_field("basis", &self.basis.to_string())?;
        st.end()
    }
}

impl Framework {
    /// The due date of a finding of `severity` (and KEV status), or `None` when the framework does
    /// not cover it or the start date is unknown.
    pub fn due(
        &self,
        severity: Severity,
        kev: bool,
        dates: &FindingDates,
        today: Date,
    ) -> Option<Due<'_>> {
        if self.kev_only && !kev {
            return None;
        }
        if !self.severities.is_empty() && !self.severities.contains(&severity) {
            return None;
        }
        let finish = |d: Date, basis: Basis| Due {
            framework: &self.id,
            date: d,
            overdue: d < today,
            basis,
        };
        if self.due.as_deref() == Some("kev-due-date") {
            return Some(finish(dates.kev_due_date?, Basis::KevDueDate));
        }
        let start = match self.start {
            Start::Published => dates.published?,
            Start::KevDateAdded => dates.kev_date_added?,
            Start::FirstSeen => dates.first_seen?,
        };
        let d = if let Some(m) = self.months {
            start.checked_add(jiff::Span::new().months(m as i64)).ok()?
        } else {
            let days = *self.days.get(&severity)?;
            start
                .checked_add(jiff::Span::new().days(days as i64))
                .ok()?
        };
        Some(finish(d, Basis::From(self.start, start)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        "2026-11-22".parse().unwrap()
    }

    #[test]
    fn presets_give_their_deadlines() {
        let p = Policy::default();
        let f = |id: &str| p.frameworks.iter().find(|f| f.id == id).unwrap();
        let dates = FindingDates {
            published: date("2026-10-31T12:00:00Z"),
            kev_date_added: date("2024-03-29"),
            kev_due_date: date("2024-04-19"),
            first_seen: date("2026-11-01T08:00:00Z"),
        };
        let bod = f("bod-22-01")
            .due(Severity::High, true, &dates, today())
            .unwrap();
        assert_eq!(
            (bod.date.to_string().as_str(), bod.overdue),
            ("2024-04-19", true)
        );
        assert!(f("bod-22-01")
            .due(Severity::Critical, false, &dates, today())
            .is_none());
        // One calendar month from Oct 31 is Nov 30 (clamped), not Dec 1.
        let pci = f("pci-dss-4.0")
            .due(Severity::Critical, false, &dates, today())
            .unwrap();
        assert_eq!(
            (pci.date.to_string().as_str(), pci.overdue),
            ("2026-11-30", false)
        );
        assert!(f("pci-dss-4.0")
            .due(Severity::High, false, &dates, today())
            .is_none());
        let fed = f("fedramp")
            .due(Severity::Medium, false, &dates, today())
            .unwrap();
        assert_eq!(fed.date.to_string(), "2027-01-30");
        assert_eq!(fed.basis.to_string(), "first-seen 2026-11-01");
        let sla = f("internal-sla")
            .due(Severity::Critical, false, &dates, today())
            .unwrap();
        assert_eq!(
            (sla.date.to_string().as_str(), sla.overdue),
            ("2026-11-16", true)
        );
        assert!(f("fedramp")
            .due(Severity::Unknown, false, &dates, today())
            .is_none());
    }

    #[test]
    fn policy_files_choose_and_define_frameworks() {
        let p = Policy::parse(
            r#"
presets = ["bod-22-01"]
[[framework]]
id = "internal-sla"
name = "Tight SLA"
start = "published"
[framework.days]
critical = 2
"#,
            "policy.toml",
        )
        .unwrap();
        let ids: Vec<&str> = p.frameworks.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["bod-22-01", "internal-sla"]);
        let due = p.frameworks[1]
            .due(
                Severity::Critical,
                false,
                &FindingDates {
                    published: date("2026-11-20"),
                    ..Default::default()
                },
                today(),
            )
            .unwrap();
        assert_eq!(
            (due.date.to_string().as_str(), due.overdue),
            ("2026-11-22", false)
        );
        let e = Policy::parse("presets = [\"sox\"]", "p.toml").unwrap_err();
        assert!(
            e.contains("p.toml") && e.contains("unknown preset 'sox'"),
            "{e}"
        );
        let e = Policy::parse("[[framework]]\nid = \"x\"\nname = \"x\"\n", "p.toml").unwrap_err();
        assert!(e.contains("exactly one of"), "{e}");
        let e = Policy::parse(
            "[[framework]]\nid = \"x\"\nname = \"x\"\nmonths = 1\nstart = \"yesterday\"\n",
            "p.toml",
        )
        .unwrap_err();
        assert!(e.contains("p.toml") && e.contains("yesterday"), "{e}");
    }
}
