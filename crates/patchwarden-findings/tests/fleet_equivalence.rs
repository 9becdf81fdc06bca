//! The fleet's compact findings path (each distinct package version evaluated once, findings stored
//! as keys and sets, documents assembled on read) holds exactly the findings a scan of the same
//! inventory prints (`scan --inventory`: `with_report` → `Finding::to_doc`), field by field, on
//! every backend — and, after a knowledge-base change, exactly those of a fresh scan.
//!
//! Knowledge: the shipped real-data snapshot (`data/snapshot`). Inventories: SYNTHETIC, generated
//! from its real records — per release, packages named by the snapshot's own affected entries at a
//! version below every fix, so every state the data knows appears (fix available, no fix yet, will
//! not fix, Debian's end-of-life entries), plus the real AlmaLinux kernel fix of ALSA-2024:2394 on
//! two live hosts (one running the old kernel: pending reboot; one the new: installed not running)
//! and releases past their end of life (Alpine 3.11, Debian 10).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use patchwarden_findings::fleet::FleetKnowledge;
use patchwarden_findings::{feed_summaries, with_report, ScanOptions};
use patchwarden_model::fleet::inventory_digest;
use patchwarden_model::*;
use patchwarden_risk::Asset;
use patchwarden_store::fleet::EvaluatedFindings;
use patchwarden_store::Store;

const NOW: &str = "2026-12-03T09:00:00Z";
const LATER: &str = "2026-12-03T10:00:00Z";

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[derive(serde::Deserialize)]
struct Line {
    advisory: Advisory,
}

/// Package names per (distro, release) in the snapshot.
fn snapshot_names() -> HashMap<(Distro, String), BTreeSet<String>> {
    let text = std::fs::read_to_string(repo("data/snapshot/advisories.ndjson")).unwrap();
    let mut out: HashMap<(Distro, String), BTreeSet<String>> = HashMap::new();
    for line in text.lines() {
        let l: Line = serde_json::from_str(line).unwrap();
        for p in l.advisory.affected {
            let Some(r) = p.release else { continue };
            let Some(d) = r.distro else { continue };
            out.entry((d, r.release)).or_default().insert(p.package);
        }
    }
    out
}

struct Host {
    name: &'static str,
    inventory: Inventory,
    asset: Asset,
}

fn inventory(
    name: &str,
    id: &str,
    version: &str,
    codename: Option<&str>,
    packages: Vec<(String, String, String)>,
) -> Inventory {
    let listed: Vec<(&str, &str, &str, &str)> = packages
        .iter()
        .map(|(n, v, src)| (n.as_str(), v.as_str(), src.as_str(), v.as_str()))
        .collect();
    let mut inv = patchwarden_model::testing::inventory(id, version, codename, &listed);
    inv.collected_at = NOW.into();
    inv.host.hostname = Some(name.into());
    inv.host.machine_id = Some(format!("{name:0>32}"));
    inv
}

/// The snapshot's package names of a release at a version below their fixes (at most `n`).
fn packages_of(
    names: &HashMap<(Distro, String), BTreeSet<String>>,
    distro: Distro,
    release: &str,
    version: &str,
    n: usize,
) -> Vec<(String, String, String)> {
    let mut seen = BTreeSet::new();
    names[&(distro, release.to_owned())]
        .iter()
        .filter(|name| seen.insert((*name).clone()))
        .take(n)
        .map(|name| (name.clone(), version.to_owned(), name.clone()))
        .collect()
}

fn hosts() -> Vec<Host> {
    let names = snapshot_names();
    let plain = Asset::default();
    let mut out = Vec::new();
    let deb12 = inventory(
        "deb12-a",
        "debian",
        "12",
        Some("bookworm"),
        packages_of(&names, Distro::Debian, "12", "0.1-1", 500),
    );
    let mut deb12_b = deb12.clone();
    deb12_b.host.hostname = Some("deb12-b".into());
    deb12_b.host.machine_id = Some(format!("{:0>32}", "deb12-b"));
    out.push(Host {
        name: "deb12-a",
        inventory: deb12,
        asset: plain,
    });
    // The same packages, an internet-facing critical asset: other risk and SSVC, the same set.
    out.push(Host {
        name: "deb12-b",
        inventory: deb12_b,
        asset: Asset {
            criticality: patchwarden_risk::Criticality::High,
            internet_facing: true,
        },
    });
    out.push(Host {
        name: "deb10",
        inventory: inventory(
            "deb10",
            "debian",
            "10",
            Some("buster"),
            packages_of(&names, Distro::Debian, "10", "0.1-1", 500),
        ),
        asset: plain,
    });
    out.push(Host {
        name: "alpine311",
        inventory: inventory(
            "alpine311",
            "alpine",
            "3.11.6",
            None,
            packages_of(&names, Distro::Alpine, "3.11", "0.1-r0", 400),
        ),
        asset: plain,
    });
    out.push(Host {
        name: "ubuntu2204",
        inventory: inventory(
            "ubuntu2204",
            "ubuntu",
            "22.04",
            Some("jammy"),
            packages_of(&names, Distro::Ubuntu, "22.04", "0.1-0ubuntu1", 100),
        ),
        asset: plain,
    });
    // ALSA-2024:2394 fixes kernel-core in 5.14.0-427.13.1.el9_4 (real record of the snapshot).
    let (old, new) = ("5.14.0-362.8.1.el9_3", "5.14.0-427.13.1.el9_4");
    for (name, running) in [("alma-old-kernel", old), ("alma-new-kernel", new)] {
        let mut packages = packages_of(&names, Distro::Almalinux, "9", "0.1-1.el9", 300);
        packages.retain(|(n, _, _)| !n.starts_with("kernel"));
        for v in [old, new] {
            for p in ["kernel", "kernel-core"] {
                packages.push((p.into(), v.into(), "kernel".into()));
            }
        }
        let mut inv = inventory(name, "almalinux", "9.4", None, packages);
        inv.live = true;
        inv.kernel.running = Some(format!("{running}.x86_64"));
        inv.kernel.installed = [new, old]
            .iter()
            .map(|v| InstalledKernel {
                release: format!("{v}.x86_64"),
                package: "kernel-core".into(),
                version: (*v).into(),
            })
            .collect();
        out.push(Host {
            name: if running == old {
                "alma-old-kernel"
            } else {
                "alma-new-kernel"
            },
            inventory: inv,
            asset: plain,
        });
    }
    out
}

fn options(asset: Asset, now: &str) -> ScanOptions {
    ScanOptions {
        asset,
        // The scan keeps its own first sightings in the store (by machine id): the compact path's
        // first sightings must agree with them.
        record_history: true,
        now: now.into(),
        ..Default::default()
    }
}

/// What `scan --inventory --db` prints for the host's findings now (recording first sightings).
async fn scanned(store: &Store, inv: &Inventory, asset: Asset, now: &str) -> Vec<FindingDoc> {
    with_report(
        store,
        inv,
        &options(asset, now),
        &mut |_| {},
        |report, _, _| report.findings.iter().map(|f| f.to_doc()).collect(),
    )
    .await
    .unwrap()
}

/// The compact path's documents of a host, read now.
async fn compact(
    store: &Store,
    fleet: &FleetKnowledge,
    host: i64,
    asset: Asset,
    now: &str,
) -> Vec<FindingDoc> {
    let (head, _) = store.host_inventory_head(host).await.unwrap().unwrap();
    let set = store.host_finding_set(host).await.unwrap().unwrap();
    let feeds = feed_summaries(
        &store.feeds().await.unwrap(),
        now,
        ScanOptions::default().max_feed_age_days,
    );
    fleet
        .host_findings(store, &head, &set, &feeds, &options(asset, now))
        .await
        .unwrap()
}

/// The server's path: the hosts read in one batch, each evaluated (hosts sharing a package set,
/// release and running kernel take the first one's answer), all stored in one transaction.
async fn evaluate(store: &Store, fleet: &FleetKnowledge, hosts: &[i64], now: &str) {
    let inputs = store.host_evaluation_inputs(hosts).await.unwrap();
    assert_eq!(inputs.len(), hosts.len());
    let mut evaluated = Vec::new();
    for (host_id, input) in inputs {
        let input = input.unwrap();
        let keys = fleet.evaluate(store, &input, None).await.unwrap();
        evaluated.push(EvaluatedFindings {
            host_id,
            version: input.version,
            keys,
        });
    }
    let stored = store.store_findings(&evaluated, None, now).await.unwrap();
    assert!(stored.iter().all(|s| s.stored), "{stored:?}");
}

/// Alpine v3.11 main replaced by `advisories`, the change applied as a server applies it
/// (weighed by version).
async fn replace_main(
    store: &Store,
    fleet: &FleetKnowledge,
    advisories: impl Iterator<Item = Advisory>,
    provenance: &Provenance,
) -> patchwarden_store::KnowledgeChangesApplied {
    let items: Vec<(Advisory, Provenance)> = advisories.map(|a| (a, provenance.clone())).collect();
    store
        .write_advisories(
            "alpine-secdb:v3.11/main",
            Source::AlpineSecdb,
            patchwarden_store::WriteMode::Replace,
            &items,
            None,
        )
        .await
        .unwrap();
    fleet.apply_changes(store).await.unwrap().unwrap()
}

fn assert_same(name: &str, backend: &str, got: &[FindingDoc], want: &[FindingDoc]) {
    if got.len() != want.len() {
        let key = |f: &FindingDoc| {
            format!(
                "{} {} {} {:?} {:?}",
                f.package, f.installed_version, f.advisory_id, f.fixed_version, f.state
            )
        };
        let g: BTreeSet<String> = got.iter().map(key).collect();
        let mut dups = Vec::new();
        let mut seen = BTreeSet::new();
        for f in want {
            if !seen.insert(key(f)) {
                dups.push(key(f));
            }
        }
        let w: BTreeSet<String> = want.iter().map(key).collect();
        eprintln!(
            "only scan: {:?}",
            w.difference(&g).take(5).collect::<Vec<_>>()
        );
        eprintln!(
            "only compact: {:?}",
            g.difference(&w).take(5).collect::<Vec<_>>()
        );
        eprintln!(
            "scan duplicates: {} e.g. {:?}",
            dups.len(),
            dups.iter().take(5).collect::<Vec<_>>()
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{name} on {backend}: {} findings on the compact path, {} in the scan",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{name} on {backend}: finding {i} differs");
    }
}

#[tokio::test]
async fn compact_findings_equal_a_scan_on_every_backend_and_after_a_knowledge_change() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let hosts = hosts();
    let secdb_main = patchwarden_feeds::alpine::parse_yaml(
        &std::fs::read(repo(
            "tests/data/alpine-secdb/alpine-secdb-repo-v3.11-main.yaml",
        ))
        .unwrap(),
        "alpine-secdb-repo-v3.11-main.yaml",
    )
    .unwrap();
    for test_store in patchwarden_store::testing::stores("fleet_equivalence", tmp).await {
        let store = &test_store.store;
        let backend = format!("{:?}", store.backend());
        patchwarden_sync::bundle::import(store, &repo("data/snapshot"))
            .await
            .unwrap();
        store
            .create_enroll_token(
                "t",
                "2027-01-01T00:00:00Z",
                hosts.len() as i64,
                &BTreeMap::new(),
                "test",
            )
            .await
            .unwrap();
        let mut ids = Vec::new();
        for (i, h) in hosts.iter().enumerate() {
            let (id, _) = store
                .enroll_host("t", NOW, h.name, None, &format!("secret-{i}"))
                .await
                .unwrap()
                .unwrap();
            store
                .check_in(
                    id,
                    "k1",
                    &inventory_digest(&h.inventory),
                    Some(&InventoryView::of(&h.inventory)),
                    NOW,
                )
                .await
                .unwrap();
            ids.push(id);
        }
        let fleet = FleetKnowledge::new("/usr/share/distro-info");
        evaluate(store, &fleet, &ids, NOW).await;
        let mut states = BTreeSet::new();
        let mut before = Vec::new();
        for (h, id) in hosts.iter().zip(&ids) {
            let want = scanned(store, &h.inventory, h.asset, NOW).await;
            let got = compact(store, &fleet, *id, h.asset, NOW).await;
            assert_same(h.name, &backend, &got, &want);
            assert!(!got.is_empty(), "{}: no findings", h.name);
            states.extend(got.iter().map(|f| f.state));
            before.push(got);
        }
        assert_eq!(
            states,
            FindingState::ALL.into_iter().collect(),
            "every state is covered"
        );
        // The two Debian 12 hosts share one set but read different risk (their assets differ).
        let set_of = |i: usize| store.host_finding_set(ids[i]);
        assert_eq!(
            set_of(0).await.unwrap().unwrap().set_id,
            set_of(1).await.unwrap().unwrap().set_id
        );
        assert_ne!(before[0], before[1]);
        // Read later (another day's "now" would move overdue flags): still equal to a scan then.
        for (h, id) in hosts.iter().zip(&ids) {
            let want = scanned(store, &h.inventory, h.asset, "2027-06-01T00:00:00Z").await;
            let got = compact(store, &fleet, *id, h.asset, "2027-06-01T00:00:00Z").await;
            assert_same(h.name, &backend, &got, &want);
        }

        // A knowledge-base change: Alpine's main repository without its openssl advisories.
        let provenance = Provenance {
            source: Source::AlpineSecdb,
            origin: "tests/data/alpine-secdb/alpine-secdb-repo-v3.11-main.yaml".into(),
            fetched_at: LATER.into(),
            sha256: String::new(),
        };
        let without = secdb_main
            .iter()
            .filter(|a| a.affected.iter().all(|p| p.package != "openssl"));
        assert!(without.clone().count() < secdb_main.len());
        // Weighed by version, as a server applies it: only the Alpine host held openssl findings.
        let applied = replace_main(store, &fleet, without.cloned(), &provenance).await;
        assert_eq!(applied.hosts_marked, 1, "{applied:?}");
        let marked = store.hosts_needing_findings().await.unwrap();
        let alpine = ids[3];
        assert_eq!(marked, [alpine]);
        evaluate(store, &fleet, &marked, LATER).await;
        for (i, (h, id)) in hosts.iter().zip(&ids).enumerate() {
            let want = scanned(store, &h.inventory, h.asset, LATER).await;
            let got = compact(store, &fleet, *id, h.asset, LATER).await;
            assert_same(h.name, &backend, &got, &want);
            if *id == alpine {
                assert!(
                    got.len() < before[i].len(),
                    "the openssl findings closed on {}",
                    h.name
                );
            }
        }
        let changes = store.finding_changes(alpine).await.unwrap();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(!changes[1].closed.is_empty() && changes[1].opened.is_empty());

        // The real records again: the host's openssl findings (and those of the advisories that
        // also name other packages) reopen.
        let applied = replace_main(store, &fleet, secdb_main.iter().cloned(), &provenance).await;
        assert_eq!(applied.hosts_marked, 1, "{backend}: {applied:?}");
        evaluate(store, &fleet, &[alpine], LATER).await;
        let h = &hosts[3];
        let mut want = scanned(store, &h.inventory, h.asset, LATER).await;
        let got = compact(store, &fleet, alpine, h.asset, LATER).await;
        // The one documented difference: a finding that closed and is found again is new to the
        // fleet (first seen now: MTTR counted it fixed), while a scan's history keeps the first
        // sighting ever. Everything else is equal.
        let mut reopened = 0;
        for (w, g) in want.iter_mut().zip(&got) {
            if w.first_seen != g.first_seen && w.advisory_id == g.advisory_id {
                assert_eq!(
                    (w.first_seen.as_deref(), g.first_seen.as_deref()),
                    (Some(NOW), Some(LATER))
                );
                (w.first_seen, w.due, w.overdue) = (g.first_seen.clone(), g.due.clone(), g.overdue);
                reopened += 1;
            }
        }
        assert!(reopened > 0, "{backend}");
        assert_same(h.name, &backend, &got, &want);
        assert_eq!(
            got.len(),
            before[3].len(),
            "{backend}: the findings are back"
        );

        // A change naming openssl that leaves the host's verdicts as they are: one more advisory,
        // SYNTHETIC (a real openssl record under another id, its fix lowered to 0.0.1-r0, below
        // the host's 0.1-r0). The host holds openssl — marking by name would recompute it — but
        // is not affected.
        let mut synthetic = secdb_main
            .iter()
            .find(|a| a.affected.iter().any(|p| p.package == "openssl"))
            .unwrap()
            .clone();
        synthetic.id = "SYNTHETIC-2026-0001".into();
        synthetic.affected.retain(|p| p.package == "openssl");
        for p in &mut synthetic.affected {
            p.fixed_version = Some("0.0.1-r0".into());
            for r in &mut p.ranges {
                r.fixed = Some("0.0.1-r0".into());
            }
        }
        let with_synthetic = secdb_main.iter().cloned().chain([synthetic]);
        let applied = replace_main(store, &fleet, with_synthetic, &provenance).await;
        assert_eq!(
            (applied.packages, applied.hosts_marked),
            (1, 0),
            "{backend}: {applied:?}"
        );
        assert!(store.hosts_needing_findings().await.unwrap().is_empty());
        assert_eq!(compact(store, &fleet, alpine, h.asset, LATER).await, got);
        test_store.finish().await;
    }
}
