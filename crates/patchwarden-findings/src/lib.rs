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

use std::collections::{BTreeMap, HashMap};

use patchwarden_match::eol::{EolTable, Lifecycle};
use patchwarden_match::{FindingState, KnowledgeIndex, MatchOptions, Outcome, Verdict};
use patchwarden_model::{CveRecord, EpssScore, Inventory, KevEntry};
use patchwarden_risk::policy::{Due, FindingDates, Policy};
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

#[derive(Clone, Debug, Serialize)]
pub struct Ssvc {
    pub decision: SsvcDecision,
    #[serde(flatten)]
    pub inputs: SsvcInputs,
}

/// Where a finding comes from and how fresh that is.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    /// The name the advisory keys (source or binary package) and the version compared with it.
    pub matched_name: String,
    pub key_kind: patchwarden_model::PackageKeyKind,
    pub compared_version: String,
    /// The version ordering used (`deb`, `rpm`, `apk`).
    pub scheme: String,
    pub source: String,
    pub feed: String,
    pub origin: String,
    pub fetched_at: String,
    pub data_age_days: Option<i64>,
    pub stale: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The installed binary package (for an end-of-life finding, the OS id).
    pub package: String,
    pub installed_version: String,
    pub arch: String,
    pub advisory_id: String,
    pub cves: Vec<String>,
    pub fixed_version: Option<String>,
    pub state: FindingState,
    pub severity: Severity,
    pub cvss: Option<Cvss>,
    /// In CISA KEV (any of the finding's CVEs).
    pub kev: bool,
    pub kev_entry: Option<Kev>,
    pub epss: Option<Epss>,
    pub ssvc: Option<Ssvc>,
    pub risk: f64,
    /// Per framework of the policy that covers the finding.
    pub due: BTreeMap<String, Due>,
    pub overdue: bool,
    pub published: Option<String>,
    pub first_seen: Option<String>,
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    pub evidence: Option<Evidence>,
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
    pub by_severity: BTreeMap<String, usize>,
    pub by_state: BTreeMap<String, usize>,
    pub kev: usize,
    pub overdue: usize,
    /// Advisories in the knowledge base for this host's release.
    pub advisories_considered: usize,
    /// The knowledge base had nothing for this release: findings cannot be trusted to be complete.
    pub no_knowledge_for_release: bool,
}

/// `{"host": …, "findings": […]}` and what a reader needs to trust it.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub generated_at: String,
    pub host: HostSummary,
    pub knowledge: Vec<FeedSummary>,
    /// Some feed is stale or failing: shown wherever findings are shown.
    pub knowledge_stale: bool,
    pub summary: Summary,
    pub findings: Vec<Finding>,
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

/// Loads what matching `inv` needs: the advisories of its release and the rejected CVEs.
pub async fn load_index(store: &Store, inv: &Inventory) -> Result<KnowledgeIndex, StoreError> {
    let Some(release) = &inv.os.release else {
        return Ok(KnowledgeIndex::default());
    };
    let distro = format!("{:?}", release.distro).to_ascii_lowercase();
    let advisories = store
        .advisories_for_release(&distro, &release.release)
        .await?;
    Ok(KnowledgeIndex::build(
        advisories,
        store.rejected_cves().await?,
    ))
}

/// NVD, KEV and EPSS facts of CVEs, read once each.
#[derive(Default)]
pub struct Enrichment {
    cves: HashMap<String, Option<CveRecord>>,
    kev: HashMap<String, Option<KevEntry>>,
    epss: HashMap<String, Option<EpssScore>>,
}

impl Enrichment {
    /// Reads the facts of `cves` not read yet.
    pub async fn load<'a>(
        &mut self,
        store: &Store,
        cves: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), StoreError> {
        for cve in cves {
            if self.cves.contains_key(cve) {
                continue;
            }
            self.cves.insert(cve.clone(), store.cve(cve).await?);
            self.kev.insert(cve.clone(), store.kev(cve).await?);
            self.epss.insert(cve.clone(), store.epss(cve).await?);
        }
        Ok(())
    }

    /// Everything known, for fleet-wide evaluation.
    pub fn from_parts(
        cves: impl IntoIterator<Item = CveRecord>,
        kev: impl IntoIterator<Item = KevEntry>,
        epss: impl IntoIterator<Item = EpssScore>,
    ) -> Enrichment {
        Enrichment {
            cves: cves.into_iter().map(|c| (c.id.clone(), Some(c))).collect(),
            kev: kev.into_iter().map(|k| (k.cve.clone(), Some(k))).collect(),
            epss: epss.into_iter().map(|e| (e.cve.clone(), Some(e))).collect(),
        }
    }

    pub fn cve(&self, id: &str) -> Option<&CveRecord> {
        self.cves.get(id).and_then(Option::as_ref)
    }
    pub fn kev(&self, id: &str) -> Option<&KevEntry> {
        self.kev.get(id).and_then(Option::as_ref)
    }
    pub fn epss(&self, id: &str) -> Option<&EpssScore> {
        self.epss.get(id).and_then(Option::as_ref)
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

/// Scans one inventory against the store: the report, and every verdict (for `explain`).
pub async fn scan(
    store: &Store,
    inv: &Inventory,
    options: &ScanOptions,
) -> Result<(Report, Vec<Verdict>, KnowledgeIndex), StoreError> {
    let index = load_index(store, inv).await?;
    let verdicts = patchwarden_match::evaluate(
        inv,
        &index,
        &MatchOptions {
            ubuntu_pro: options.ubuntu_pro,
        },
    );
    let mut enrichment = Enrichment::default();
    let finding_cves: Vec<String> = verdicts
        .iter()
        .filter(|v| matches!(v.outcome, Outcome::Finding(_)))
        .flat_map(|v| index.advisory(v.advisory).cves.iter().cloned())
        .collect();
    enrichment.load(store, &finding_cves).await?;
    let feeds = feed_summaries(
        &store.feeds().await?,
        &options.now,
        options.max_feed_age_days,
    );
    let key = history_key(inv);
    let first_seen = if options.record_history {
        let keys: Vec<(String, String)> = verdicts
            .iter()
            .filter(|v| matches!(v.outcome, Outcome::Finding(_)))
            .map(|v| (v.package.clone(), v.advisory_id.clone()))
            .collect();
        store
            .record_findings_seen(&key, &keys, &options.now)
            .await?
    } else {
        HashMap::new()
    };
    let eol = EolTable::load(&options.distro_info_dir);
    let report = assemble(
        inv,
        &index,
        &verdicts,
        &enrichment,
        feeds,
        &first_seen,
        &eol,
        options,
    );
    Ok((report, verdicts, index))
}

/// Builds the report from verdicts and facts (no I/O: the fleet path calls it directly).
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    inv: &Inventory,
    index: &KnowledgeIndex,
    verdicts: &[Verdict],
    enrichment: &Enrichment,
    knowledge: Vec<FeedSummary>,
    first_seen: &HashMap<(String, String), String>,
    eol: &EolTable,
    options: &ScanOptions,
) -> Report {
    let today: jiff::civil::Date = options
        .now
        .get(..10)
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| {
            jiff::Timestamp::now()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .date()
        });
    let stale_feeds: HashMap<&str, &FeedSummary> =
        knowledge.iter().map(|f| (f.feed.as_str(), f)).collect();
    let mut findings = Vec::new();
    for v in verdicts {
        let Outcome::Finding(state) = v.outcome else {
            continue;
        };
        let a = index.advisory(v.advisory);
        let best = a
            .cves
            .iter()
            .filter_map(|c| {
                let m = enrichment.cve(c)?.best_metric()?;
                Some(Cvss {
                    cve: c.clone(),
                    score: m.computed_score?,
                    version: m.version.clone(),
                    vector: m.vector.clone(),
                    source: m.source.clone(),
                })
            })
            .max_by(|x, y| x.score.total_cmp(&y.score));
        let kev = a
            .cves
            .iter()
            .filter_map(|c| enrichment.kev(c))
            .min_by(|x, y| x.due_date.cmp(&y.due_date))
            .map(|k| Kev {
                cve: k.cve.clone(),
                date_added: k.date_added.clone(),
                due_date: k.due_date.clone(),
                known_ransomware_use: k.known_ransomware_use,
            });
        let epss = a
            .cves
            .iter()
            .filter_map(|c| enrichment.epss(c))
            .max_by(|x, y| x.score.total_cmp(&y.score))
            .map(|e| Epss {
                cve: e.cve.clone(),
                score: e.score,
                percentile: e.percentile,
            });
        let ratings: Vec<&str> = v
            .package_severity
            .iter()
            .chain(a.severity.iter())
            .map(String::as_str)
            .collect();
        let severity = severity_band(best.as_ref().map(|b| b.score), &ratings);
        let inputs = SsvcInputs::derive(
            kev.is_some(),
            epss.as_ref().map(|e| e.percentile),
            best.as_ref()
                .map(|b| b.vector.as_str())
                .or(a.cvss_vectors.first().map(String::as_str)),
            options.asset,
        );
        let risk = risk_score(
            best.as_ref().map(|b| b.score),
            severity,
            kev.is_some(),
            epss.as_ref().map(|e| e.score),
            options.asset,
            state == FindingState::InstalledNotRunning,
        );
        let published = a.published.clone().or_else(|| {
            a.cves
                .iter()
                .filter_map(|c| enrichment.cve(c)?.published.clone())
                .min()
        });
        let seen = first_seen
            .get(&(v.package.clone(), v.advisory_id.clone()))
            .cloned()
            .or_else(|| Some(options.now.clone()));
        let dates = FindingDates {
            published: published.as_deref(),
            kev_date_added: kev.as_ref().map(|k| k.date_added.as_str()),
            kev_due_date: kev.as_ref().map(|k| k.due_date.as_str()),
            first_seen: seen.as_deref(),
        };
        let due: BTreeMap<String, Due> = options
            .policy
            .frameworks
            .iter()
            .filter_map(|f| f.due(severity, kev.is_some(), &dates, today))
            .map(|d| (d.framework.clone(), d))
            .collect();
        let feed = stale_feeds.get(a.feed.as_str());
        findings.push(Finding {
            package: v.package.clone(),
            installed_version: v.installed_version.clone(),
            arch: v.arch.clone(),
            advisory_id: a.id.clone(),
            cves: a.cves.clone(),
            fixed_version: v.fixed_version.clone(),
            state,
            severity,
            cvss: best,
            kev: kev.is_some(),
            kev_entry: kev,
            epss,
            ssvc: Some(Ssvc {
                decision: ssvc(inputs),
                inputs,
            }),
            risk,
            overdue: due.values().any(|d| d.overdue),
            due,
            published,
            first_seen: seen,
            summary: a.summary.clone(),
            lifecycle: None,
            evidence: Some(Evidence {
                matched_name: v.matched_name.clone(),
                key_kind: v.key_kind,
                compared_version: v.compared_version.clone(),
                scheme: v.scheme.to_owned(),
                source: a.source.as_str().to_owned(),
                feed: a.feed.clone(),
                origin: a.provenance.origin.clone(),
                fetched_at: a.provenance.fetched_at.clone(),
                data_age_days: feed.and_then(|f| f.age_days),
                stale: feed.is_some_and(|f| f.stale),
                note: v.note.clone(),
            }),
        });
    }
    if let Some(release) = &inv.os.release {
        if let Some(life) = eol.lifecycle(release) {
            if life.eol.as_str() < today.to_string().as_str() {
                let mut due = BTreeMap::new();
                due.insert(
                    "end-of-life".to_owned(),
                    Due {
                        framework: "end-of-life".into(),
                        date: life.eol.clone(),
                        overdue: true,
                        basis: format!("end of standard support ({})", life.source),
                    },
                );
                findings.push(Finding {
                    package: inv.os.id.clone(),
                    installed_version: inv.os.version_id.clone().unwrap_or_default(),
                    arch: String::new(),
                    advisory_id: format!(
                        "EOL:{}:{}",
                        format!("{:?}", release.distro).to_ascii_lowercase(),
                        release.release
                    ),
                    cves: Vec::new(),
                    fixed_version: None,
                    state: FindingState::Eol,
                    severity: Severity::High,
                    cvss: None,
                    kev: false,
                    kev_entry: None,
                    epss: None,
                    ssvc: None,
                    risk: risk_score(None, Severity::High, false, None, options.asset, false),
                    due,
                    overdue: true,
                    published: Some(life.eol.clone()),
                    first_seen: None,
                    summary: Some(format!(
                        "{} reached the end of standard support on {}{}",
                        release.display,
                        life.eol,
                        life.extended_until
                            .as_ref()
                            .map(|e| format!(" (extended support until {e})"))
                            .unwrap_or_default()
                    )),
                    lifecycle: Some(life),
                    evidence: None,
                });
            }
        }
    }
    findings.sort_by(|a, b| {
        b.risk
            .total_cmp(&a.risk)
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.advisory_id.cmp(&b.advisory_id))
    });
    let mut summary = Summary {
        findings: findings.len(),
        advisories_considered: index.advisory_count(),
        no_knowledge_for_release: index.advisory_count() == 0,
        ..Default::default()
    };
    for f in &findings {
        *summary
            .by_severity
            .entry(f.severity.as_str().to_owned())
            .or_default() += 1;
        *summary
            .by_state
            .entry(
                serde_json::to_value(f.state)
                    .unwrap()
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
            .or_default() += 1;
        summary.kev += usize::from(f.kev);
        summary.overdue += usize::from(f.overdue);
    }
    let release = inv.os.release.as_ref();
    Report {
        schema_version: REPORT_SCHEMA_VERSION,
        generated_at: options.now.clone(),
        host: HostSummary {
            hostname: inv.host.hostname.clone(),
            machine_id: inv.host.machine_id.clone(),
            root: inv.root.clone(),
            os: release
                .map(|r| r.display.clone())
                .or(inv.os.pretty_name.clone()),
            distro: release.map(|r| format!("{:?}", r.distro).to_ascii_lowercase()),
            release: release.map(|r| r.release.clone()),
            packages: inv.packages.len(),
            running_kernel: inv.kernel.running.clone(),
            reboot_required: inv.reboot.required,
            asset: options.asset,
            history_key: history_key(inv),
        },
        knowledge_stale: knowledge.iter().any(|f| f.stale || f.last_error.is_some()),
        knowledge,
        summary,
        findings,
    }
}
