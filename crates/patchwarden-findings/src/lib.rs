//! Findings: one host's inventory turned into prioritized findings with evidence and deadlines.
//!
//! The pipeline: load the knowledge of the host's release from the store → match
//! (`patchwarden-match`) → enrich each finding from NVD, KEV and EPSS → severity band, SSVC and risk
//! score (`patchwarden-risk`) → a due date per framework of the policy, counted from the advisory's
//! publication, the KEV date or the first sighting on the host (kept in the store) → end of life →
//! order by risk. Feed staleness travels with the report and each finding's evidence.
//!
//! This crate owns the assembly and the report's shape (`docs/findings-schema.md`); matching rules
//! live in `patchwarden-match`, prioritization rules in `patchwarden-risk`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::civil::Date;
use patchwarden_match::eol::{EolTable, Lifecycle};
use patchwarden_match::{FindingState, KnowledgeIndex, Outcome, Verdict};
use patchwarden_model::{CveRecord, EpssScore, Inventory, KevEntry};
use patchwarden_risk::policy::{self, Basis, Due, FindingDates, Policy};
use patchwarden_risk::{
    risk_score, severity_band, ssvc, Asset, Severity, SsvcDecision, SsvcInputs,
};
use patchwarden_store::{FeedState, Store, StoreError};
use serde::Serialize;

/// Schema version of the report (`docs/findings-schema.md`).
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// How to scan.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    pub asset: Asset,
    pub ubuntu_pro: Option<bool>,
    pub policy: Policy,
    /// Feeds whose last success is older than this are flagged stale.
    pub max_feed_age_days: i64,
    /// Keep first/last-seen times in the store (deadlines from first detection need it).
    pub record_history: bool,
    /// "Now" (RFC 3339): the reference for overdue flags and first sightings.
    pub now: String,
    /// Where `distro-info-data` lives (normally `/usr/share/distro-info`).
    pub distro_info_dir: std::path::PathBuf,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            asset: Asset::default(),
            ubuntu_pro: None,
            policy: Policy::default(),
            max_feed_age_days: 2,
            record_history: true,
            now: patchwarden_model::now_rfc3339(),
            distro_info_dir: "/usr/share/distro-info".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Cvss {
    pub cve: String,
    pub score: f64,
    pub version: String,
    pub vector: String,
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Kev {
    pub cve: String,
    pub date_added: String,
    pub due_date: String,
    pub known_ransomware_use: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Epss {
    pub cve: String,
    pub score: f64,
    pub percentile: f64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Ssvc {
    pub decision: SsvcDecision,
    #[serde(flatten)]
    pub inputs: SsvcInputs,
}

/// What the knowledge base says about an advisory's CVEs, worked out once per advisory and shared
/// by every finding of it (on every host).
#[derive(Clone, Debug, Default, Serialize)]
pub struct AdvisoryFacts {
    /// The best CVSS score among the advisory's CVEs.
    pub cvss: Option<Cvss>,
    /// In CISA KEV (any of the CVEs; the entry with the earliest due date).
    pub kev: bool,
    pub kev_entry: Option<Kev>,
    pub epss: Option<Epss>,
    /// The advisory's publication, else its CVEs' earliest.
    pub published: Option<String>,
}

/// Where a finding comes from and how fresh that is.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence<'a> {
    /// The name the advisory keys (source or binary package) and the version compared with it.
    pub matched_name: &'a str,
    pub key_kind: patchwarden_model::PackageKeyKind,
    pub compared_version: &'a str,
    /// The version ordering used (`deb`, `rpm`, `apk`).
    pub scheme: &'static str,
    pub source: &'static str,
    pub feed: &'a str,
    pub origin: &'a str,
    pub fetched_at: &'a str,
    pub data_age_days: Option<i64>,
    pub stale: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'a str>,
}

/// A finding's due dates, one per framework that covers it; serialized as a map keyed by framework.
#[derive(Clone, Debug, Default)]
pub struct DueDates<'a>(pub Vec<Due<'a>>);

impl<'a> DueDates<'a> {
    pub fn values(&self) -> impl Iterator<Item = &Due<'a>> {
        self.0.iter()
    }
    pub fn get(&self, framework: &str) -> Option<&Due<'a>> {
        self.0.iter().find(|d| d.framework == framework)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for DueDates<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for d in &self.0 {
            map.serialize_entry(d.framework, d)?;
        }
        map.end()
    }
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding<'a> {
    /// The installed binary package (for an end-of-life finding, the OS id).
    pub package: &'a str,
    pub installed_version: &'a str,
    pub arch: &'a str,
    pub advisory_id: Cow<'a, str>,
    pub cves: &'a [String],
    pub fixed_version: Option<&'a str>,
    pub state: FindingState,
    pub severity: Severity,
    #[serde(flatten)]
    pub facts: Arc<AdvisoryFacts>,
    pub ssvc: Option<Ssvc>,
    pub risk: f64,
    /// Per framework of the policy that covers the finding.
    pub due: DueDates<'a>,
    pub overdue: bool,
    pub first_seen: Option<&'a str>,
    pub summary: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    pub evidence: Option<Evidence<'a>>,
}

impl Finding<'_> {
    /// The owned document of this finding: exactly what `scan --format json` prints for it, as
    /// every reader of findings takes it (the scan tests hold the two equal field by field).
    pub fn to_doc(&self) -> patchwarden_model::FindingDoc {
        serde_json::to_value(self)
            .and_then(serde_json::from_value)
            .expect("a finding serializes as a FindingDoc")
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FeedSummary {
    pub feed: String,
    pub records: i64,
    pub last_success: Option<String>,
    pub age_days: Option<i64>,
    pub stale: bool,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostSummary {
    pub hostname: Option<String>,
    pub machine_id: Option<String>,
    pub root: String,
    pub os: Option<String>,
    pub distro: Option<String>,
    pub release: Option<String>,
    pub packages: usize,
    pub running_kernel: Option<String>,
    pub reboot_required: Option<bool>,
    pub asset: Asset,
    /// The key the finding history is kept under.
    pub history_key: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub findings: usize,
    pub by_severity: BTreeMap<&'static str, usize>,
    pub by_state: BTreeMap<&'static str, usize>,
    pub kev: usize,
    pub overdue: usize,
    /// Advisories naming this host's packages in its release.
    pub advisories_considered: usize,
    /// The knowledge base had nothing for this release: findings cannot be trusted to be complete.
    pub no_knowledge_for_release: bool,
}

/// `{"host": …, "findings": […]}` and what a reader needs to trust it.
#[derive(Clone, Debug, Serialize)]
pub struct Report<'a> {
    pub schema_version: u32,
    pub generated_at: &'a str,
    pub host: HostSummary,
    pub knowledge: &'a [FeedSummary],
    /// Some feed is stale or failing: shown wherever findings are shown.
    pub knowledge_stale: bool,
    pub summary: Summary,
    pub findings: Vec<Finding<'a>>,
}

/// The history key of a host: its machine id, else its hostname, else the inventoried root.
pub fn history_key(inv: &Inventory) -> String {
    inv.host
        .machine_id
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| inv.host.hostname.clone().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| format!("root:{}", inv.root))
}

/// What prioritization needs of a CVE.
#[derive(Clone, Debug)]
struct CveFacts {
    best: Option<Cvss>,
    published: Option<String>,
}

/// NVD, KEV and EPSS facts of CVEs (only what prioritization reads: 300,000 NVD records fit).
#[derive(Default)]
pub struct Enrichment {
    cves: HashMap<String, Option<CveFacts>>,
    kev: HashMap<String, Option<KevEntry>>,
    epss: HashMap<String, Option<EpssScore>>,
}

fn cve_facts(c: &CveRecord) -> CveFacts {
    CveFacts {
        best: c.best_metric().and_then(|m| {
            Some(Cvss {
                cve: c.id.clone(),
                score: m.computed_score?,
                version: m.version.clone(),
                vector: m.vector.clone(),
                source: m.source.clone(),
            })
        }),
        published: c.published.clone(),
    }
}

impl Enrichment {
    /// Everything known, for fleet-wide evaluation.
    pub fn from_parts(
        cves: impl IntoIterator<Item = CveRecord>,
        kev: impl IntoIterator<Item = KevEntry>,
        epss: impl IntoIterator<Item = EpssScore>,
    ) -> Enrichment {
        Enrichment {
            cves: cves
                .into_iter()
                .map(|c| (c.id.clone(), Some(cve_facts(&c))))
                .collect(),
            kev: kev.into_iter().map(|k| (k.cve.clone(), Some(k))).collect(),
            epss: epss.into_iter().map(|e| (e.cve.clone(), Some(e))).collect(),
        }
    }

    fn facts(&self, cves: &[String], published: Option<&String>) -> AdvisoryFacts {
        let cve = |id: &String| self.cves.get(id).and_then(Option::as_ref);
        let cvss = cves
            .iter()
            .filter_map(|c| cve(c)?.best.clone())
            .max_by(|x, y| x.score.total_cmp(&y.score));
        let kev_entry = cves
            .iter()
            .filter_map(|c| self.kev.get(c).and_then(Option::as_ref))
            .min_by(|x, y| x.due_date.cmp(&y.due_date))
            .map(|k| Kev {
                cve: k.cve.clone(),
                date_added: k.date_added.clone(),
                due_date: k.due_date.clone(),
                known_ransomware_use: k.known_ransomware_use,
            });
        let epss = cves
            .iter()
            .filter_map(|c| self.epss.get(c).and_then(Option::as_ref))
            .max_by(|x, y| x.score.total_cmp(&y.score))
            .map(|e| Epss {
                cve: e.cve.clone(),
                score: e.score,
                percentile: e.percentile,
            });
        let published = published
            .cloned()
            .or_else(|| cves.iter().filter_map(|c| cve(c)?.published.clone()).min());
        AdvisoryFacts {
            cvss,
            kev: kev_entry.is_some(),
            kev_entry,
            epss,
            published,
        }
    }
}

/// The feeds with their staleness as of `now`.
pub fn feed_summaries(feeds: &[FeedState], now: &str, max_age_days: i64) -> Vec<FeedSummary> {
    feeds
        .iter()
        .map(|f| FeedSummary {
            feed: f.feed.clone(),
            records: f.record_count,
            last_success: f.last_success.clone(),
            age_days: f.age_days(now),
            stale: f.is_stale(now, max_age_days),
            last_error: f.last_error.clone(),
        })
        .collect()
}

/// Everything a host's report is built from, loaded from the store.
pub struct Knowledge {
    pub index: KnowledgeIndex,
    pub enrichment: Enrichment,
    pub feeds: Vec<FeedSummary>,
    pub eol: EolTable,
    /// The knowledge base has advisories for the host's release (for a fleet: for every release).
    pub release_known: bool,
}

/// Loads the knowledge for one host: the advisories naming its installed packages in its release,
/// the NVD/KEV/EPSS records of their CVEs (NVD's rejections among them), the feeds' state and the
/// lifecycle table — a handful of indexed statements, whatever the size of the knowledge base.
pub async fn load_for_host(
    store: &Store,
    inv: &Inventory,
    options: &ScanOptions,
) -> Result<Knowledge, StoreError> {
    let feeds = feed_summaries(
        &store.feeds().await?,
        &options.now,
        options.max_feed_age_days,
    );
    let eol = EolTable::load(&options.distro_info_dir);
    let Some(release) = &inv.os.release else {
        return Ok(Knowledge {
            index: KnowledgeIndex::default(),
            enrichment: Enrichment::default(),
            feeds,
            eol,
            release_known: false,
        });
    };
    let distro = release.distro.id();
    let names = patchwarden_match::lookup_names(inv);
    let found = store
        .host_knowledge(distro, &release.release, &names)
        .await?;
    let rejected: Vec<String> = found
        .cves
        .iter()
        .filter(|c| c.rejected)
        .map(|c| c.id.clone())
        .collect();
    let release_known = found.release_known;
    // Only the host's release is ever looked up: entries for other releases (most tracker records
    // state several) are dropped before the index computes their version keys.
    let mut advisories = found.advisories;
    for (_, _, advisory) in &mut advisories {
        advisory.affected.retain(|p| {
            p.release
                .as_ref()
                .is_some_and(|r| r.distro == Some(release.distro) && r.release == release.release)
        });
    }
    let enrichment = Enrichment::from_parts(found.cves, found.kev, found.epss);
    Ok(Knowledge {
        index: KnowledgeIndex::build(advisories, rejected),
        enrichment,
        feeds,
        eol,
        release_known,
    })
}

/// One host's whole pipeline: loads its knowledge, matches, records first sightings (when the
/// options ask), prioritizes, and hands the report, the verdicts and the index to `f` (they borrow
/// from each other, so they live only inside it). `phase` is told when each phase ends (`load
/// knowledge`, `match`, `history`, `prioritize`) — the CLI times them, the server ignores them.
pub async fn with_report<R>(
    store: &Store,
    inv: &Inventory,
    options: &ScanOptions,
    phase: &mut (dyn FnMut(&str) + Send),
    f: impl FnOnce(&Report<'_>, &[Verdict<'_>], &KnowledgeIndex) -> R,
) -> Result<R, StoreError> {
    let knowledge = load_for_host(store, inv, options).await?;
    phase("load knowledge");
    let verdicts = patchwarden_match::evaluate(
        inv,
        &knowledge.index,
        &patchwarden_match::MatchOptions {
            ubuntu_pro: options.ubuntu_pro,
        },
    );
    phase("match");
    let first_seen = if options.record_history {
        record_history(store, inv, &verdicts, &options.now).await?
    } else {
        HashMap::new()
    };
    phase("history");
    let mut assembler = Assembler::new(&knowledge, options);
    let report = assembler.report(inv, &verdicts, &first_seen);
    phase("prioritize");
    Ok(f(&report, &verdicts, &knowledge.index))
}

/// Records the findings among `verdicts` as seen on the host now; returns their first sightings.
pub async fn record_history(
    store: &Store,
    inv: &Inventory,
    verdicts: &[Verdict<'_>],
    now: &str,
) -> Result<HashMap<(String, String), String>, StoreError> {
    let keys: Vec<(String, String)> = verdicts
        .iter()
        .filter(|v| matches!(v.outcome, Outcome::Finding(_)))
        .map(|v| (v.package.to_owned(), v.advisory_id.to_owned()))
        .collect();
    store
        .record_findings_seen(&history_key(inv), &keys, now)
        .await
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
    options: &'k ScanOptions,
    today: Date,
    derived: HashMap<u32, Derived>,
}

impl<'k> Assembler<'k> {
    pub fn new(knowledge: &'k Knowledge, options: &'k ScanOptions) -> Assembler<'k> {
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
            k.feeds.iter().map(|f| (f.feed.as_str(), f)).collect();
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
                    fetched_at: &a.provenance.fetched_at,
                    data_age_days: feed.and_then(|f| f.age_days),
                    stale: feed.is_some_and(|f| f.stale),
                    note: v.note,
                }),
                facts,
            });
        }
        if let Some(f) = self.eol_finding(inv) {
            findings.push(f);
        }
        findings.sort_by(|a, b| {
            b.risk
                .total_cmp(&a.risk)
                .then_with(|| a.package.cmp(b.package))
                .then_with(|| a.advisory_id.cmp(&b.advisory_id))
        });
        let mut summary = Summary {
            findings: findings.len(),
            advisories_considered: index.advisory_count(),
            no_knowledge_for_release: !k.release_known,
            ..Default::default()
        };
        for f in &findings {
            *summary.by_severity.entry(f.severity.as_str()).or_default() += 1;
            *summary.by_state.entry(f.state.as_str()).or_default() += 1;
            summary.kev += usize::from(f.facts.kev);
            summary.overdue += usize::from(f.overdue);
        }
        let release = inv.os.release.as_ref();
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            generated_at: &options.now,
            host: HostSummary {
                hostname: inv.host.hostname.clone(),
                machine_id: inv.host.machine_id.clone(),
                root: inv.root.clone(),
                os: release
                    .map(|r| r.display.clone())
                    .or(inv.os.pretty_name.clone()),
                distro: release.map(|r| r.distro.id().to_owned()),
                release: release.map(|r| r.release.clone()),
                packages: inv.packages.len(),
                running_kernel: inv.kernel.running.clone(),
                reboot_required: inv.reboot.required,
                asset: options.asset,
                history_key: history_key(inv),
            },
            knowledge_stale: k.feeds.iter().any(|f| f.stale || f.last_error.is_some()),
            knowledge: &k.feeds,
            summary,
            findings,
        }
    }

    /// The end-of-life finding of a release past its standard support.
    fn eol_finding<'a>(&self, inv: &'a Inventory) -> Option<Finding<'a>> {
        let release = inv.os.release.as_ref()?;
        let life = self.knowledge.eol.lifecycle(release)?;
        let eol: Date = life.eol.parse().ok()?;
        if eol >= self.today {
            return None;
        }
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
                published: Some(life.eol.clone()),
                ..Default::default()
            }),
            ssvc: None,
            risk: risk_score(None, Severity::High, false, None, self.options.asset, false),
            due,
            overdue: true,
            first_seen: None,
            summary: Some(Cow::Owned(format!(
                "{} reached the end of standard support on {}{}",
                release.display,
                life.eol,
                life.extended_until
                    .as_ref()
                    .map(|e| format!(" (extended support until {e})"))
                    .unwrap_or_default()
            ))),
            lifecycle: Some(life),
            evidence: None,
        })
    }
}
