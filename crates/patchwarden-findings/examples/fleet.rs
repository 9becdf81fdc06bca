//! Fleet benchmark (`docs/benchmarks.md`): a SYNTHETIC fleet of inventories matched against a store.
//!
//! The fleet is generated from the store's real AlmaLinux 9 advisories: each host gets a sample of
//! the binary packages those advisories name, each at one of the package's real fixed versions —
//! 70 % at the newest (patched), the rest at any earlier one — so versions spread around real fixes.
//! Host names say `synthetic-host-N`. The new advisory is a copy of the newest real one under the id
//! `ALSA-SYNTH-NEW`, its fixed versions one build later (`….1`), as a new advisory would be.
//!
//! Measured: loading the whole knowledge base into the matching index; matching and assembling
//! (severity, SSVC, risk, due dates) every host; and re-evaluating the fleet when one new advisory
//! arrives (added to the index, only the hosts holding its packages evaluated for it).
//!
//! usage: cargo run --release -p patchwarden-findings --example fleet -- DB [HOSTS] [PACKAGES_PER_HOST]

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use patchwarden_findings::{feed_summaries, Assembler, Enrichment, Knowledge, ScanOptions};
use patchwarden_match::{
    evaluate_advisory_on, evaluate_findings, KnowledgeIndex, MatchOptions, Outcome,
};
use patchwarden_model::*;

/// A small deterministic generator (xorshift): the same fleet every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let db = args
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("usage: fleet DB [HOSTS] [PACKAGES_PER_HOST]"))?;
    let hosts: usize = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let per_host: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(400);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = patchwarden_store::Store::open(&db).await?;
        let t = Instant::now();
        let advisories = store.all_advisories().await?;
        let rejected = store.rejected_cves().await?;
        let loaded = t.elapsed();
        let n_advisories = advisories.len();
        // The real AlmaLinux 9 slice: package → its real fixed versions.
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (_, _, a) in &advisories {
            for p in &a.affected {
                let alma9 = p.release.as_ref().is_some_and(|r| {
                    r.distro == Some(Distro::Almalinux) && r.release == "9"
                });
                if let (true, Some(v)) = (alma9, &p.fixed_version) {
                    if !v.contains(".module") {
                        versions.entry(p.package.clone()).or_default().push(v.clone());
                    }
                }
            }
        }
        for list in versions.values_mut() {
            list.sort_by(|a, b| {
                patchwarden_version::compare(patchwarden_version::Scheme::Rpm, a, b)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            list.dedup();
        }
        let t = Instant::now();
        let index = KnowledgeIndex::build(advisories, rejected);
        let built = t.elapsed();
        let t = Instant::now();
        let enrichment = Enrichment::from_parts(
            store.all_cves().await?.into_iter().map(|(_, c)| c),
            store.all_kev().await?,
            store.all_epss().await?,
        );
        let enriched = t.elapsed();
        let feeds = store.feeds().await?;
        println!(
            "knowledge: {n_advisories} advisories read in {:.2} s, index built in {:.2} s ({} indexed); NVD/KEV/EPSS read in {:.2} s",
            loaded.as_secs_f64(),
            built.as_secs_f64(),
            index.advisory_count(),
            enriched.as_secs_f64()
        );
        let names: Vec<&String> = versions.keys().collect();
        anyhow::ensure!(!names.is_empty(), "the store holds no AlmaLinux 9 advisories: import tests/data/osv/almalinux9-all-advisories.tar.xz (unpacked) first");
        let release = DistroRelease::from_os_release(Distro::Almalinux, Some("9.4"), None, None);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let t = Instant::now();
        let fleet: Vec<Inventory> = (0..hosts)
            .map(|h| {
                let mut packages = Vec::with_capacity(per_host);
                let mut seen = std::collections::HashSet::new();
                while packages.len() < per_host.min(names.len()) {
                    let name = names[rng.below(names.len())];
                    if !seen.insert(name) {
                        continue;
                    }
                    let list = &versions[name];
                    // Most packages are current (the newest real fix), the rest anywhere behind.
                    let version = if rng.below(10) < 7 {
                        list[list.len() - 1].clone()
                    } else {
                        list[rng.below(list.len())].clone()
                    };
                    packages.push(InstalledPackage {
                        name: name.clone(),
                        version: version.clone(),
                        arch: "x86_64".into(),
                        source_name: name.clone(),
                        source_version: version,
                        manager: PackageManager::Rpm,
                        status: None,
                        held: false,
                        install_time: None,
                    });
                }
                Inventory {
                    schema_version: INVENTORY_SCHEMA_VERSION,
                    collected_at: "2026-11-22T00:00:00Z".into(),
                    collector: "patchwarden fleet bench (synthetic)".into(),
                    root: "/".into(),
                    live: false,
                    host: HostIdentity {
                        hostname: Some(format!("synthetic-host-{h}")),
                        machine_id: None,
                        ip_addresses: vec![],
                    },
                    os: OsInfo {
                        id: "almalinux".into(),
                        version_id: Some("9.4".into()),
                        release: release.clone(),
                        ..Default::default()
                    },
                    package_databases: vec![],
                    packages,
                    kernel: KernelInfo::default(),
                    reboot: RebootInfo::default(),
                    stale_processes: vec![],
                    platform: None,
                }
            })
            .collect();
        println!(
            "fleet: {hosts} synthetic hosts x {per_host} packages generated in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        let options = ScanOptions {
            record_history: false,
            ..Default::default()
        };
        let mut knowledge = Knowledge {
            index,
            enrichment,
            feeds: feed_summaries(&feeds, &options.now, options.max_feed_age_days),
            eol: patchwarden_match::eol::EolTable::load(&options.distro_info_dir),
            release_known: true,
        };
        let match_options = MatchOptions::default();
        let no_history = HashMap::new();
        let t = Instant::now();
        let matched: usize = fleet
            .iter()
            .map(|inv| evaluate_findings(inv, &knowledge.index, &match_options).len())
            .sum();
        println!(
            "match only: {hosts} hosts in {:.2} s, {matched} findings",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let mut verdicts = 0usize;
        let mut findings = 0usize;
        {
            let mut assembler = Assembler::new(&knowledge, &options);
            for inv in &fleet {
                let v = evaluate_findings(inv, &knowledge.index, &match_options);
                verdicts += v.len();
                let report = assembler.report(inv, &v, &no_history);
                findings += report.findings.len();
            }
        }
        let fleet_time = t.elapsed();
        println!(
            "match + prioritize: {hosts} hosts in {:.2} s ({:.0} hosts/s); {verdicts} finding verdicts, {findings} findings in reports",
            fleet_time.as_secs_f64(),
            hosts as f64 / fleet_time.as_secs_f64()
        );

        // One new advisory arrives (a copy of a real one under a synthetic id).
        let template = store
            .advisories_for_release("almalinux", "9")
            .await?
            .into_iter()
            .filter(|(_, _, a)| {
                a.affected.len() >= 3
                    && a.affected.iter().all(|p| {
                        p.fixed_version
                            .as_deref()
                            .is_some_and(|v| !v.contains(".module"))
                    })
            })
            .max_by(|x, y| x.2.published.cmp(&y.2.published))
            .ok_or_else(|| anyhow::anyhow!("no template advisory"))?;
        let (feed, provenance, mut advisory) = template;
        advisory.id = "ALSA-SYNTH-NEW".into();
        // A new advisory fixes in a build newer than any installed one: the real fixed release + ".1".
        for p in &mut advisory.affected {
            if let Some(v) = &mut p.fixed_version {
                v.push_str(".1");
            }
        }
        // Inverted index of the fleet, built once: package name → hosts holding it.
        let t = Instant::now();
        let mut holders: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
        for (h, inv) in fleet.iter().enumerate() {
            for (i, p) in inv.packages.iter().enumerate() {
                holders.entry(p.name.as_str()).or_default().push((h, i));
            }
        }
        let inverted = t.elapsed();
        let t = Instant::now();
        let number = knowledge
            .index
            .add(feed, provenance, advisory)
            .ok_or_else(|| anyhow::anyhow!("the new advisory names no known release"))?;
        let index = &knowledge.index;
        let mut touched: Vec<(usize, usize)> = index
            .packages_of(number)
            .iter()
            .flat_map(|package| holders.get(package.as_str()).into_iter().flatten().copied())
            .collect();
        touched.sort_unstable();
        let mut new_findings = 0;
        let mut hosts_touched = 0;
        for group in touched.chunk_by(|a, b| a.0 == b.0) {
            hosts_touched += 1;
            let positions: Vec<usize> = group.iter().map(|(_, i)| *i).collect();
            new_findings += evaluate_advisory_on(
                &fleet[group[0].0],
                index,
                &match_options,
                number,
                &positions,
            )
            .iter()
            .filter(|v| matches!(v.outcome, Outcome::Finding(_)))
            .count();
        }
        let reeval = t.elapsed();
        println!(
            "new advisory: {} hosts hold its packages, {new_findings} new findings, re-evaluated in {:.1} ms (inverted index built once in {:.0} ms)",
            hosts_touched,
            reeval.as_secs_f64() * 1000.0,
            inverted.as_secs_f64() * 1000.0
        );
        store.close().await;
        Ok(())
    })
}
