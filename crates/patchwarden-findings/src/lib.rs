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
//!
//! Files: this one (options, loading a host's knowledge, the pipeline entry [`with_report`], first
//! sightings), `report` (the report's types), `enrichment` (NVD, KEV, EPSS per CVE), `assemble`
//! ([`Assembler`]: verdicts to findings), `fleet` (a fleet's findings: each distinct package version
//! evaluated once, findings kept as keys and assembled when read).

mod assemble;
mod enrichment;
pub mod fleet;
mod report;

use std::collections::HashMap;

use patchwarden_match::eol::EolTable;
use patchwarden_match::{KnowledgeIndex, Outcome, Verdict};
use patchwarden_model::{Distro, Inventory};
use patchwarden_risk::policy::Policy;
use patchwarden_risk::Asset;
use patchwarden_store::{FeedState, Store, StoreError};

pub use assemble::Assembler;
pub use enrichment::Enrichment;
pub use report::*;

/// The installed packages of `inv` no advisory could be judged against (their versions do not
/// parse), as owned documents (what the server shows for a host).
pub fn unparsable_versions(
    inv: &patchwarden_model::Inventory,
) -> Vec<patchwarden_model::fleet::UnparsableVersionDoc> {
    patchwarden_match::unparsable_versions(inv)
        .into_iter()
        .map(|u| patchwarden_model::fleet::UnparsableVersionDoc {
            package: u.package.to_owned(),
            arch: u.arch.to_owned(),
            field: u.field.to_owned(),
            version: u.version.to_owned(),
            reason: u.reason,
        })
        .collect()
}

/// What a host of `distro` `release` reads for `names`: its own release's statements, and for a
/// RHEL rebuild ([`Distro::follows_rhel`]) Red Hat's for the same major release (their unfixed ones
/// apply to it). One place for a scan and the fleet.
pub(crate) async fn read_release(
    store: &Store,
    distro: Distro,
    release: &str,
    names: &[String],
) -> Result<patchwarden_store::HostKnowledge, StoreError> {
    let mut found = store.host_knowledge(distro.id(), release, names).await?;
    if distro.follows_rhel() {
        let rhel = store
            .host_knowledge(Distro::Rhel.id(), release, names)
            .await?;
        let known = found.release_known;
        found.absorb(rhel);
        // Whether the rebuild's own data knows the release (Red Hat's does not say so).
        found.release_known = known;
    }
    Ok(found)
}

/// Whether an advisory entry concerns a host of `distro` `release` (the entries [`read_release`]
/// reads for it; the rest are dropped before the index computes their version keys).
pub(crate) fn reads_entry(
    distro: Distro,
    release: &str,
    entry: &patchwarden_model::AffectedPackage,
) -> bool {
    entry.release.as_ref().is_some_and(|r| {
        r.release == release
            && (r.distro == Some(distro)
                || (distro.follows_rhel() && r.distro == Some(Distro::Rhel)))
    })
}

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

/// The history key of a host: its machine id, else its hostname, else the inventoried root.
pub fn history_key(inv: &Inventory) -> String {
    inv.host
        .machine_id
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| inv.host.hostname.clone().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| format!("root:{}", inv.root))
}

/// The feeds with their staleness as of `now`.
pub fn feed_summaries(feeds: &[FeedState], now: &str, max_age_days: i64) -> Vec<FeedSummary> {
    feeds
        .iter()
        .map(|f| FeedSummary {
            feed: f.feed.clone(),
            records: f.record_count,
            last_success: f.last_success.clone(),
            data_date: f.data_date.clone(),
            bundle: f.bundle.clone(),
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
    let names = patchwarden_match::lookup_names(inv);
    let found = read_release(store, release.distro, &release.release, &names).await?;
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
        advisory
            .affected
            .retain(|p| reads_entry(release.distro, &release.release, p));
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
    phase: &mut (dyn FnMut(&'static str) + Send),
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
