//! The assembler: verdicts turned into findings — facts per advisory shared across hosts, severity
//! band, SSVC, risk score, due dates per framework, end of life, evidence — and the report.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use jiff::civil::Date;
use patchwarden_match::{FindingState, Outcome, Verdict};
use patchwarden_model::{Inventory, PackageKeyKind};
use patchwarden_risk::policy::{self, Basis, Due, FindingDates};
use patchwarden_risk::{risk_score, severity_band, ssvc, Severity, SsvcInputs};

use crate::report::*;
use crate::{history_key, Knowledge, ScanOptions};

/// The last tie-breakers of the findings' order: feed, matched name, key kind.
fn tie<'f>(f: &'f Finding<'_>) -> Option<(&'f str, &'f str, bool)> {
    f.evidence
        .as_ref()
        .map(|e| (e.feed, e.matched_name, e.key_kind == PackageKeyKind::Binary))
}

/// What an advisory means for prioritization on any host of one assembler (same asset, same day).
#[derive(Clone)]
struct Derived {
    facts: Arc<AdvisoryFacts>,
    ssvc: Ssvc,
    dates: FindingDates,
}

/// Builds reports: one per host, sharing the per-advisory facts between them.
pub struct Assembler<'k> {
    knowledge: &'k Knowledge,
    feeds: &'k [FeedSummary],
    options: &'k ScanOptions,
    today: Date,
    derived: HashMap<u32, Derived>,
}

impl<'k> Assembler<'k> {
    pub fn new(knowledge: &'k Knowledge, options: &'k ScanOptions) -> Assembler<'k> {
        Assembler::with_feeds(knowledge, &knowledge.feeds, options)
    }

    /// An assembler whose feeds' state comes from elsewhere (a fleet's knowledge outlives the
    /// moment its feeds' staleness is judged).
    pub fn with_feeds(
        knowledge: &'k Knowledge,
        feeds: &'k [FeedSummary],
        options: &'k ScanOptions,
    ) -> Assembler<'k> {
        let today = options
            .now
            .get(..10)
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| {
                jiff::Timestamp::now()
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .date()
            });
        Assembler {
            knowledge,
            feeds,
            options,
            today,
            derived: HashMap::new(),
        }
    }

    /// The report of one host from its verdicts; `first_seen` maps (package, advisory id) to the
    /// first sighting (missing: now).
    pub fn report<'a>(
        &mut self,
        inv: &'a Inventory,
        verdicts: &[Verdict<'a>],
        first_seen: &'a HashMap<(String, String), String>,
    ) -> Report<'a>
    where
        'k: 'a,
    {
        let k = self.knowledge;
        let options = self.options;
        let index = &k.index;
        let feeds: HashMap<&str, &FeedSummary> =
            self.feeds.iter().map(|f| (f.feed.as_str(), f)).collect();
        let mut findings = Vec::new();
        let mut key = (String::new(), String::new());
        for v in verdicts {
            let Outcome::Finding(state) = v.outcome else {
                continue;
            };
            let a = index.advisory(v.advisory);
            let derived = self.derived.entry(v.advisory).or_insert_with(|| {
                let facts = k.enrichment.facts(&a.cves, a.published.as_ref());
                let inputs = SsvcInputs::derive(
                    facts.kev,
                    facts.epss.as_ref().map(|e| e.percentile),
                    facts
                        .cvss
                        .as_ref()
                        .map(|c| c.vector.as_str())
                        .or(a.cvss_vectors.first().map(String::as_str)),
                    options.asset,
                );
                let dates = FindingDates {
                    published: facts.published.as_deref().and_then(policy::date),
                    kev_date_added: facts
                        .kev_entry
                        .as_ref()
                        .and_then(|k| policy::date(&k.date_added)),
                    kev_due_date: facts
                        .kev_entry
                        .as_ref()
                        .and_then(|k| policy::date(&k.due_date)),
                    first_seen: None,
                };
                Derived {
                    facts: Arc::new(facts),
                    ssvc: Ssvc {
                        decision: ssvc(inputs),
                        inputs,
                    },
                    dates,
                }
            });
            let facts = derived.facts.clone();
            let mut ratings: [&str; 2] = [""; 2];
            let mut n = 0;
            for r in v.package_severity.into_iter().chain(a.severity.as_deref()) {
                ratings[n] = r;
                n += 1;
            }
            let best = facts.cvss.as_ref().map(|c| c.score);
            let severity = severity_band(best, &ratings[..n]);
            let risk = risk_score(
                best,
                severity,
                facts.kev,
                facts.epss.as_ref().map(|e| e.score),
                options.asset,
                state == FindingState::InstalledNotRunning,
            );
            let seen: &'a str = if first_seen.is_empty() {
                options.now.as_str()
            } else {
                key.0.clear();
                key.0.push_str(v.package);
                key.1.clear();
                key.1.push_str(v.advisory_id);
                first_seen
                    .get(&key)
                    .map(String::as_str)
                    .unwrap_or(options.now.as_str())
            };
            let dates = FindingDates {
                first_seen: if std::ptr::eq(seen, options.now.as_str()) {
                    Some(self.today)
                } else {
                    policy::date(seen)
                },
                ..derived.dates
            };
            let due = DueDates(
                options
                    .policy
                    .frameworks
                    .iter()
                    .filter_map(|f| f.due(severity, facts.kev, &dates, self.today))
                    .collect(),
            );
            let feed = feeds.get(a.feed.as_str());
            findings.push(Finding {
                package: v.package,
                installed_version: v.installed_version,
                arch: v.arch,
                advisory_id: Cow::Borrowed(&a.id),
                cves: &a.cves,
                fixed_version: v.fixed_version,
                state,
                severity,
                ssvc: Some(derived.ssvc),
                risk,
                overdue: due.0.iter().any(|d| d.overdue),
                due,
                first_seen: Some(seen),
                summary: a.summary.as_deref().map(Cow::Borrowed),
                lifecycle: None,
                evidence: Some(Evidence {
                    matched_name: v.matched_name,
                    key_kind: v.key_kind,
                    compared_version: v.compared_version,
                    scheme: v.scheme,
                    source: a.source.as_str(),
                    feed: &a.feed,
                    origin: &a.provenance.origin,
                    sha256: &a.provenance.sha256,
                    fetched_at: &a.provenance.fetched_at,
                    data_age_days: feed.and_then(|f| f.age_days),
                    stale: feed.is_some_and(|f| f.stale),
                    note: v.note,
                }),
                facts,
            });
        }
        let (support, eol) = self.lifecycle(inv);
        findings.extend(eol);
        findings.sort_by(|a, b| {
            b.risk
                .total_cmp(&a.risk)
                .then_with(|| a.package.cmp(b.package))
                .then_with(|| a.advisory_id.cmp(&b.advisory_id))
                // A total order: the same findings in any input order read the same (a fleet
                // assembles them from stored keys, a scan from the matcher's order).
                .then_with(|| a.installed_version.cmp(b.installed_version))
                .then_with(|| a.arch.cmp(b.arch))
                .then_with(|| a.fixed_version.cmp(&b.fixed_version))
                .then_with(|| tie(a).cmp(&tie(b)))
        });
        let unparsable_versions = patchwarden_match::unparsable_versions(inv);
        let mut summary = Summary {
            unparsable_versions: unparsable_versions.len(),
            advisories_considered: index.advisory_count(),
            no_knowledge_for_release: !k.release_known,
            ..Default::default()
        };
        summary.count(&findings);
        let release = inv.os.release.as_ref();
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            generated_at: &options.now,
            host: HostSummary {
                hostname: inv.host.hostname.clone(),
                machine_id: inv.host.machine_id.clone(),
                root: inv.root.clone(),
                os: inv.os.display_name(),
                distro: release.map(|r| r.distro.id().to_owned()),
                release: release.map(|r| r.release.clone()),
                packages: inv.packages.len(),
                running_kernel: inv.kernel.running.clone(),
                reboot_required: inv.reboot.required,
                support,
                asset: options.asset,
                history_key: history_key(inv),
            },
            knowledge_stale: self.feeds.iter().any(|f| f.stale || f.last_error.is_some()),
            knowledge_bundles: {
                let mut b: Vec<String> =
                    self.feeds.iter().filter_map(|f| f.bundle.clone()).collect();
                b.sort();
                b.dedup();
                b
            },
            knowledge: self.feeds,
            summary,
            filter: None,
            filtered_out: None,
            findings,
            unparsable_versions,
        }
    }

    /// Where the host's release stands today, for the subscriptions it has (Ubuntu Pro as the
    /// options say, else as its inventory shows): the phase in words (`Debian LTS until
    /// 2028-06-30`) and, when no phase the host receives publishes fixes any more, the
    /// end-of-life finding (Debian in LTS is supported; Ubuntu past standard support without Pro
    /// is not). One lifecycle lookup and one decision for both.
    fn lifecycle<'a>(&self, inv: &'a Inventory) -> (Option<String>, Option<Finding<'a>>) {
        use patchwarden_match::eol::{Subscription, Support};
        let Some(release) = inv.os.release.as_ref() else {
            return (None, None);
        };
        let Some(life) = self.knowledge.eol.lifecycle(release) else {
            return (None, None);
        };
        let pro = self.options.ubuntu_pro.unwrap_or_else(|| {
            patchwarden_match::receives_ubuntu_pro(
                &inv.os,
                inv.packages.iter().map(|p| p.version.as_str()),
            )
        });
        let els = inv
            .os
            .rhel_stream
            .as_ref()
            .is_some_and(|s| s.els && release.distro == patchwarden_model::Distro::Rhel);
        let (since, available) = match life.support(&self.today.to_string(), |s| match s {
            Subscription::UbuntuPro => pro,
            Subscription::RedHatEls => els,
            _ => false,
        }) {
            Support::Standard { until } => {
                return (Some(format!("standard support until {until}")), None)
            }
            Support::Extended { phase } => {
                return (Some(format!("{} until {}", phase.name, phase.until)), None)
            }
            Support::EndOfLife { since, available } => (since.to_owned(), available),
        };
        let phase = Some(format!("end of life since {since}"));
        (
            phase,
            self.eol_finding(inv, release, &life, &since, &available),
        )
    }

    /// The end-of-life finding: no phase the host receives has published fixes since `since`;
    /// `available` are the phases it could still receive by subscribing.
    fn eol_finding<'a>(
        &self,
        inv: &'a Inventory,
        release: &patchwarden_model::DistroRelease,
        life: &patchwarden_match::eol::Lifecycle,
        since: &str,
        available: &[&patchwarden_match::eol::Phase],
    ) -> Option<Finding<'a>> {
        let eol: Date = since.parse().ok()?;
        let offers: Vec<String> = available
            .iter()
            .map(|p| {
                format!(
                    "{} until {}{}",
                    p.name,
                    p.until,
                    p.requires
                        .map(|s| format!(" requires {}", s.name()))
                        .unwrap_or_default()
                )
            })
            .collect();
        let summary = format!(
            "{} has no security support this host receives since {since}{}",
            release.display,
            if offers.is_empty() {
                String::new()
            } else {
                format!(" ({})", offers.join("; "))
            }
        );
        let due = DueDates(vec![Due {
            framework: "end-of-life",
            date: eol,
            overdue: true,
            basis: Basis::EndOfSupport,
        }]);
        Some(Finding {
            package: &inv.os.id,
            installed_version: inv.os.version_id.as_deref().unwrap_or(""),
            arch: "",
            advisory_id: Cow::Owned(format!(
                "EOL:{}:{}",
                release.distro.id().to_owned(),
                release.release
            )),
            cves: &[],
            fixed_version: None,
            state: FindingState::Eol,
            severity: Severity::High,
            facts: Arc::new(AdvisoryFacts {
                published: Some(since.to_owned()),
                ..Default::default()
            }),
            ssvc: None,
            risk: risk_score(None, Severity::High, false, None, self.options.asset, false),
            due,
            overdue: true,
            first_seen: None,
            summary: Some(Cow::Owned(summary)),
            lifecycle: Some(life.clone()),
            evidence: None,
        })
    }
}
