//! The fleet's findings as the server reads them (`FindingsView`), on SQLite and PostgreSQL.
//!
//! The findings list: riskiest first across hosts, pages that add up, filters, and every listed
//! finding equal to the same finding of its host's own list.
//!
//! Two servers on one store: a knowledge-base change applied by one empties the other's copy of
//! the knowledge base too (the store's knowledge generation), so the other reads the changed
//! findings instead of its stale copy. Knowledge: the real Alpine secdb v3.11 `main` records of
//! `tests/data`; the change gives one openssl advisory a SYNTHETIC summary (the record otherwise
//! unchanged); the host: a SYNTHETIC Alpine 3.11 inventory holding openssl's libssl1.1 below the
//! fixes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use patchwarden_model::fleet::inventory_digest;
use patchwarden_model::*;
use patchwarden_server::findings_view::FleetFindingFilter;
use patchwarden_server::state::AppState;
use patchwarden_server::ServerConfig;
use patchwarden_store::{Store, WriteMode};

const NOW: &str = "2026-12-03T09:00:00Z";

fn secdb_main() -> Vec<Advisory> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/alpine-secdb/alpine-secdb-repo-v3.11-main.yaml");
    patchwarden_feeds::alpine::parse_yaml(&std::fs::read(path).unwrap(), "secdb").unwrap()
}

async fn write_secdb(store: &Store, list: &[Advisory], at: &str) {
    let provenance = Provenance {
        source: Source::AlpineSecdb,
        origin: "tests/data/alpine-secdb/alpine-secdb-repo-v3.11-main.yaml".into(),
        fetched_at: at.into(),
        sha256: String::new(),
    };
    let items: Vec<(Advisory, Provenance)> = list
        .iter()
        .map(|a| (a.clone(), provenance.clone()))
        .collect();
    store
        .write_advisories(
            "alpine-secdb:v3.11/main",
            Source::AlpineSecdb,
            WriteMode::Replace,
            &items,
            None,
        )
        .await
        .unwrap();
}

fn alpine_host() -> Inventory {
    let mut inv = patchwarden_model::testing::inventory(
        "alpine",
        "3.11.6",
        None,
        &[
            ("libssl1.1", "1.1.1a-r0", "openssl", "1.1.1a-r0"),
            ("musl", "1.1.20-r0", "musl", "1.1.20-r0"),
        ],
    );
    inv.collected_at = NOW.into();
    inv.host.hostname = Some("alpine-a".into());
    inv
}

async fn enroll(store: &Store, name: &str, labels: &[(&str, &str)]) -> i64 {
    enroll_with(store, name, labels, alpine_host()).await
}

/// Enrolls `name` with `labels` and checks in `inv` (its hostname set to `name`) at NOW.
async fn enroll_with(
    store: &Store,
    name: &str,
    labels: &[(&str, &str)],
    mut inv: Inventory,
) -> i64 {
    let (host, _) = store
        .enroll_host("t", NOW, name, None, &format!("secret-{name}"))
        .await
        .unwrap()
        .unwrap();
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    store.set_host_labels(host, &labels).await.unwrap();
    inv.host.hostname = Some(name.into());
    store
        .check_in(
            host,
            "k1",
            &inventory_digest(&inv),
            Some(&InventoryView::of(&inv)),
            NOW,
        )
        .await
        .unwrap();
    host
}

fn server(store: &Store) -> AppState {
    AppState::start(
        store.clone(),
        ServerConfig {
            findings_workers: 1,
            knowledge_poll: Duration::ZERO,
            ..Default::default()
        },
        String::new(),
        patchwarden_risk::policy::Policy::default(),
    )
}

/// Waits (up to a minute) until the host's findings are those of its last inventory.
async fn findings_current(store: &Store, host: i64) {
    for _ in 0..600 {
        if !store
            .hosts_needing_findings()
            .await
            .unwrap()
            .contains(&host)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the findings of host {host} were not computed within a minute");
}

fn openssl_findings(docs: &[FindingDoc]) -> usize {
    docs.iter().filter(|d| d.package == "libssl1.1").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_applied_by_one_server_reaches_the_other_servers_findings() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let all = secdb_main();
    for test_store in patchwarden_store::testing::stores("fleet_findings_two_servers", tmp).await {
        let store = &test_store.store;
        write_secdb(store, &all, "2026-12-01T00:00:00Z").await;
        store
            .create_enroll_token("t", "2027-01-01T00:00:00Z", 1, &BTreeMap::new(), "test")
            .await
            .unwrap();
        let host = enroll(store, "alpine-a", &[]).await;
        let (a, b) = (server(store), server(store));
        a.findings.push(host);
        findings_current(store, host).await;
        // Both servers read the findings: each loads its copy of the knowledge base now.
        let before = b.view.host(host).await.unwrap();
        assert_eq!(before, a.view.host(host).await.unwrap());
        // One of the host's openssl advisories changes its summary.
        let target_id = before
            .iter()
            .find(|d| d.package == "libssl1.1")
            .map(|d| d.advisory_id.clone())
            .expect("an openssl finding");
        let mut changed = all.clone();
        for a in changed.iter_mut().filter(|a| a.id == target_id) {
            a.summary = Some("SYNTHETIC: summary changed in place by a test".into());
        }
        let summary = |docs: &[FindingDoc]| -> Option<String> {
            docs.iter()
                .find(|d| d.advisory_id == target_id)
                .and_then(|d| d.summary.clone())
        };
        assert!(openssl_findings(&before) > 0);
        assert!(!summary(&before)
            .unwrap_or_default()
            .starts_with("SYNTHETIC"));

        // The advisory changes in place; server A applies the change and re-evaluates the host.
        write_secdb(store, &changed, "2026-12-02T00:00:00Z").await;
        a.knowledge.apply().await;
        findings_current(store, host).await;
        let after = a.view.host(host).await.unwrap();
        assert!(
            summary(&after).unwrap().starts_with("SYNTHETIC"),
            "A reads the change"
        );
        // B has not looked at the store's generation yet: its copy holds the old record.
        assert_eq!(summary(&b.view.host(host).await.unwrap()), summary(&before));
        // Its next poll sees the generation move (it claims no journal entry: A did).
        b.knowledge.apply().await;
        assert_eq!(b.view.host(host).await.unwrap(), after);
        test_store.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_findings_list_merges_hosts_riskiest_first_in_pages_that_add_up() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for test_store in patchwarden_store::testing::stores("fleet_findings_list", tmp).await {
        let store = &test_store.store;
        write_secdb(store, &secdb_main(), "2026-12-01T00:00:00Z").await;
        store
            .create_enroll_token("t", "2027-01-01T00:00:00Z", 4, &BTreeMap::new(), "test")
            .await
            .unwrap();
        // Three hosts, one set: a critical internet-facing one (higher risk) in group "dmz".
        let exposed = enroll(
            store,
            "c-exposed",
            &[
                ("criticality", "critical"),
                ("internet_facing", "true"),
                ("group", "dmz"),
            ],
        )
        .await;
        let plain_a = enroll(store, "a-plain", &[]).await;
        let plain_b = enroll(store, "b-plain", &[]).await;
        let state = server(store);
        for h in [exposed, plain_a, plain_b] {
            state.findings.push(h);
            findings_current(store, h).await;
        }
        let own: std::collections::HashMap<i64, Vec<FindingDoc>> = {
            let mut m = std::collections::HashMap::new();
            for h in [exposed, plain_a, plain_b] {
                m.insert(h, state.view.host(h).await.unwrap());
            }
            m
        };
        let per_host = own[&plain_a].len();
        assert!(per_host > 3, "{per_host}");
        let list = |filter: FleetFindingFilter| {
            let state = state.clone();
            async move { state.view.fleet(&filter).await.unwrap() }
        };
        let all = list(FleetFindingFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await;
        assert_eq!(all.len(), 3 * per_host);
        // Riskiest first; among equal risk, by hostname.
        for w in all.windows(2) {
            let (x, y) = (&w[0], &w[1]);
            assert!(
                x.finding.risk > y.finding.risk
                    || (x.finding.risk == y.finding.risk && x.hostname <= y.hostname),
                "{} {} before {} {}",
                x.hostname,
                x.finding.risk,
                y.hostname,
                y.finding.risk
            );
        }
        assert_eq!(
            all[0].host_id, exposed,
            "the exposed host's findings weigh more"
        );
        // Every listed finding is its host's own, in its host's order.
        for h in [exposed, plain_a, plain_b] {
            let listed: Vec<&FindingDoc> = all
                .iter()
                .filter(|f| f.host_id == h)
                .map(|f| &f.finding)
                .collect();
            assert_eq!(listed, own[&h].iter().collect::<Vec<_>>(), "host {h}");
        }
        // Pages add up to the whole.
        let mut paged = Vec::new();
        for page in 0.. {
            let got = list(FleetFindingFilter {
                offset: page * 4,
                limit: 4,
                ..Default::default()
            })
            .await;
            if got.is_empty() {
                break;
            }
            paged.extend(got);
        }
        assert_eq!(paged, all);
        // Filters: a group, a state, a severity.
        let dmz = list(FleetFindingFilter {
            labels: vec![("group".into(), "dmz".into())],
            limit: 10_000,
            ..Default::default()
        })
        .await;
        assert!(dmz.iter().all(|f| f.host_id == exposed) && dmz.len() == per_host);
        let state_of = all[0].finding.state;
        let same_state = list(FleetFindingFilter {
            state: Some(state_of),
            limit: 10_000,
            ..Default::default()
        })
        .await;
        assert_eq!(
            same_state.len(),
            all.iter().filter(|f| f.finding.state == state_of).count()
        );
        let high = list(FleetFindingFilter {
            min_severity: Some(Severity::High),
            limit: 10_000,
            ..Default::default()
        })
        .await;
        assert_eq!(
            high.len(),
            all.iter()
                .filter(|f| f.finding.severity >= Severity::High)
                .count()
        );
        // The summary adds up the hosts' counts.
        let summary = state.view.summary(i64::MAX / 4).await.unwrap();
        assert_eq!(summary.hosts, 3);
        assert_eq!(summary.findings["total"], 3 * per_host as i64);
        // The view keeps the fleet's grouping between requests and follows the store: a label
        // written behind its back (another server) moves the host into the group at the next
        // request; a host enrolled meanwhile is listed once its findings are stored.
        store
            .set_host_labels(
                plain_a,
                &BTreeMap::from([("group".to_owned(), "dmz".to_owned())]),
            )
            .await
            .unwrap();
        let late = enroll(store, "d-late", &[("group", "dmz")]).await;
        let in_dmz = || async {
            let dmz = list(FleetFindingFilter {
                labels: vec![("group".into(), "dmz".into())],
                limit: 10_000,
                ..Default::default()
            })
            .await;
            let hosts: std::collections::BTreeSet<i64> = dmz.iter().map(|f| f.host_id).collect();
            (hosts, dmz.len())
        };
        assert_eq!(in_dmz().await.0, [exposed, plain_a].into());
        state.findings.push(late);
        findings_current(store, late).await;
        let (hosts, listed) = in_dmz().await;
        assert_eq!(hosts, [exposed, plain_a, late].into());
        assert_eq!(listed, 3 * per_host);
        let summary = state.view.summary(i64::MAX / 4).await.unwrap();
        assert_eq!(summary.hosts, 4);
        assert_eq!(summary.findings["total"], 4 * per_host as i64);
        // A CVE's hosts: every host holding a finding citing it, by hostname, then package and
        // advisory — one row per (host, finding).
        let cve = own[&plain_a][0].cves[0].clone();
        let citing: Vec<(String, String)> = {
            let mut v: Vec<(String, String)> = own[&plain_a]
                .iter()
                .filter(|f| f.cves.contains(&cve))
                .map(|f| (f.package.clone(), f.advisory_id.clone()))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let affected = state.view.cve_hosts(&cve, 0, usize::MAX).await.unwrap();
        // Pages of it add up to it.
        let mut paged = Vec::new();
        for page in 0..=affected.len() / 3 {
            paged.extend(state.view.cve_hosts(&cve, page * 3, 3).await.unwrap());
        }
        assert_eq!(paged, affected);
        let mut expected = Vec::new();
        for (name, id) in [
            ("a-plain", plain_a),
            ("b-plain", plain_b),
            ("c-exposed", exposed),
            ("d-late", late),
        ] {
            for (package, advisory) in &citing {
                expected.push((name.to_owned(), id, package.clone(), advisory.clone()));
            }
        }
        let got: Vec<(String, i64, String, String)> = affected
            .iter()
            .map(|a| {
                (
                    a.hostname.clone(),
                    a.host_id,
                    a.package.clone(),
                    a.advisory_id.clone(),
                )
            })
            .collect();
        assert_eq!(got, expected);
        test_store.finish().await;
    }
}

/// Time moves the findings with nothing else changing: a host's finding is not overdue the day
/// before its due date and is the day after it — in the host's findings, the fleet's overdue
/// list and the host's counts — read from one server whose clock a test moves (the inventory,
/// the knowledge base and the findings sets untouched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_follows_the_clock() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for test_store in patchwarden_store::testing::stores("fleet_findings_clock", tmp).await {
        let store = &test_store.store;
        write_secdb(store, &secdb_main(), "2026-12-01T00:00:00Z").await;
        store
            .create_enroll_token("t", "2027-01-01T00:00:00Z", 1, &BTreeMap::new(), "test")
            .await
            .unwrap();
        let host = enroll(store, "alpine-a", &[]).await;
        let clock = patchwarden_model::clock::Clock::manual(NOW);
        let state = AppState::start(
            store.clone(),
            ServerConfig {
                findings_workers: 1,
                knowledge_poll: Duration::ZERO,
                clock: clock.clone(),
                ..Default::default()
            },
            String::new(),
            // The secdb records carry no severity: a framework over every severity, 30 days
            // from the first sighting (the check-in at NOW).
            patchwarden_risk::policy::Policy::parse(
                "[[framework]]\nid = \"test-sla\"\nname = \"Test SLA\"\nstart = \"first-seen\"\nseverities = [\"critical\", \"high\", \"medium\", \"low\", \"unknown\"]\n[framework.days]\ncritical = 30\nhigh = 30\nmedium = 30\nlow = 30\nunknown = 30\n",
                "test policy",
            )
            .unwrap(),
        );
        state.findings.push(host);
        findings_current(store, host).await;
        // The latest due date among the host's findings: the clock goes around it.
        let docs = state.view.host(host).await.unwrap();
        let (advisory, framework, date) = docs
            .iter()
            .flat_map(|d| {
                d.due
                    .iter()
                    .map(move |(f, due)| (d.advisory_id.clone(), f.clone(), due.date.clone()))
            })
            .max_by(|a, b| a.2.cmp(&b.2))
            .expect("a finding with a due date");
        let day = |date: &str, offset: i64| {
            let d: jiff::civil::Date = date.parse().unwrap();
            format!(
                "{}T12:00:00Z",
                d.checked_add(jiff::Span::new().days(offset)).unwrap()
            )
        };
        let overdue_now = |docs: &[FindingDoc]| {
            let d = docs.iter().find(|d| d.advisory_id == advisory).unwrap();
            (d.due[&framework].overdue, d.overdue)
        };
        let overdue_list = || async {
            state
                .view
                .fleet(&FleetFindingFilter {
                    overdue: true,
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .any(|f| f.finding.advisory_id == advisory)
        };
        clock.set(&day(&date, -1));
        let before = state.view.host(host).await.unwrap();
        assert!(!overdue_now(&before).0, "the day before {date}");
        assert!(
            !overdue_list().await,
            "listed overdue the day before {date}"
        );
        clock.set(&day(&date, 1));
        let after = state.view.host(host).await.unwrap();
        assert_eq!(overdue_now(&after), (true, true), "the day after {date}");
        // The fleet's overdue list and the host's counts see the same.
        assert!(
            overdue_list().await,
            "not listed overdue the day after {date}"
        );
        let counted = after.iter().filter(|d| d.overdue).count() as i64;
        let mut hosts = [store.host(host, 0).await.unwrap().unwrap()];
        state.view.count(&mut hosts).await.unwrap();
        assert_eq!(hosts[0].findings["overdue"], counted);
        // Nothing but the clock moved: the same findings, the same due dates.
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(
                b.due.iter().map(|(f, d)| (f, &d.date)).collect::<Vec<_>>(),
                a.due.iter().map(|(f, d)| (f, &d.date)).collect::<Vec<_>>()
            );
        }
        test_store.finish().await;
    }
}

/// A change to Red Hat's data reaches the rebuilds: an Oracle Linux 7 host (SYNTHETIC inventory of
/// real RHEL 7 versions) holding only pam-devel (source pam) has no finding; then the real VEX for
/// CVE-2024-10041 (RHEL 7 pam: out of support scope) is written and applied — the knowledge-base
/// journal names `pam` on `rhel`, and the rebuild's host is re-evaluated to a `will_not_fix`
/// finding derived from Red Hat's statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_hat_changes_reach_the_rebuilds() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for test_store in patchwarden_store::testing::stores("fleet_findings_rebuild", tmp).await {
        let store = &test_store.store;
        store
            .create_enroll_token("t", "2027-01-01T00:00:00Z", 1, &BTreeMap::new(), "test")
            .await
            .unwrap();
        let mut inv = patchwarden_model::testing::inventory(
            "ol",
            "7.9",
            None,
            &[("pam-devel", "1.1.8-23.el7", "pam", "1.1.8-23.el7")],
        );
        inv.collected_at = NOW.into();
        let host = enroll_with(store, "ol7", &[], inv).await;
        let state = server(store);
        state.findings.push(host);
        findings_current(store, host).await;
        // Nothing but its release's end of life (Oracle Linux 7's Premier Support ended
        // 2024-12-31; Extended Support is never assumed).
        let before = state.view.host(host).await.unwrap();
        assert!(
            before.iter().all(|d| d.advisory_id.starts_with("EOL:")),
            "{before:?}"
        );
        assert!(!before.iter().any(|d| d.package == "pam-devel"));
        // Red Hat's VEX arrives (as `feeds import` in another process would write it).
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/redhat/csaf-vex/cve-2024-10041.json");
        let advisories =
            patchwarden_feeds::redhat::parse(&std::fs::read(&path).unwrap(), "vex").unwrap();
        let provenance = Provenance {
            source: Source::RedhatVex,
            origin: path.display().to_string(),
            fetched_at: NOW.into(),
            sha256: String::new(),
        };
        let items: Vec<(Advisory, Provenance)> = advisories
            .into_iter()
            .map(|a| (a, provenance.clone()))
            .collect();
        store
            .write_advisories(
                "redhat-vex",
                Source::RedhatVex,
                WriteMode::Replace,
                &items,
                None,
            )
            .await
            .unwrap();
        state.knowledge.apply().await;
        findings_current(store, host).await;
        let docs = state.view.host(host).await.unwrap();
        let f = docs
            .iter()
            .find(|d| d.advisory_id == "CVE-2024-10041")
            .unwrap_or_else(|| panic!("no finding from Red Hat's statement: {docs:?}"));
        assert_eq!(f.state, FindingState::WillNotFix);
        assert!(f
            .evidence
            .as_ref()
            .and_then(|e| e.note.as_deref())
            .is_some_and(|n| n.contains("derived from Red Hat")));
        test_store.finish().await;
    }
}

/// An Ubuntu 18.04 host whose inventory carries no apt sources (`os.ubuntu_pro` absent) but
/// installed versions from ESM (`+esm`): the server decides Ubuntu Pro from its packages at the
/// check-in, so its findings view — assembled from the stored inventory head, without packages —
/// sees a host in Ubuntu ESM (its netty finding fixable, no end of life), while the same host
/// without `+esm` versions is at end of life since standard support ended (distro-info-data:
/// 2023-05-31) and its netty fix requires a subscription. Knowledge: the real
/// UBUNTU-CVE-2022-24823 (fixed for 18.04 under Ubuntu Pro only, 1:4.1.7-4ubuntu0.1+esm3); the
/// inventories are SYNTHETIC, at versions around that fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ubuntu_pro_from_installed_versions_reaches_the_servers_end_of_life_decision() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let record = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/osv/ubuntu/UBUNTU-CVE-2022-24823.json");
    let advisory =
        patchwarden_feeds::osv::parse(&std::fs::read(&record).unwrap(), "netty").unwrap();
    for test_store in patchwarden_store::testing::stores("fleet_findings_pro", tmp).await {
        let store = &test_store.store;
        let provenance = Provenance {
            source: Source::Osv,
            origin: record.display().to_string(),
            fetched_at: "2026-12-01T00:00:00Z".into(),
            sha256: String::new(),
        };
        store
            .write_advisories(
                "osv:Ubuntu",
                Source::Osv,
                WriteMode::Upsert,
                &[(advisory.clone(), provenance)],
                None,
            )
            .await
            .unwrap();
        store
            .create_enroll_token("t", "2027-01-01T00:00:00Z", 2, &BTreeMap::new(), "test")
            .await
            .unwrap();
        let bionic = |netty: &str| {
            let mut inv = patchwarden_model::testing::inventory(
                "ubuntu",
                "18.04",
                Some("bionic"),
                &[("libnetty-java", netty, "netty", netty)],
            );
            inv.collected_at = NOW.into();
            assert!(inv.os.ubuntu_pro.is_none());
            inv
        };
        let esm = enroll_with(store, "bionic-esm", &[], bionic("1:4.1.7-4ubuntu0.1+esm1")).await;
        let plain = enroll_with(store, "bionic-plain", &[], bionic("1:4.1.7-4")).await;
        let state = AppState::start(
            store.clone(),
            ServerConfig {
                findings_workers: 1,
                knowledge_poll: Duration::ZERO,
                clock: patchwarden_model::clock::Clock::manual("2026-12-04T12:00:00Z"),
                ..Default::default()
            },
            String::new(),
            patchwarden_risk::policy::Policy::default(),
        );
        for host in [esm, plain] {
            state.findings.push(host);
            findings_current(store, host).await;
        }
        let eol = |docs: &[FindingDoc]| docs.iter().any(|d| d.advisory_id == "EOL:ubuntu:18.04");
        let netty = |docs: &[FindingDoc]| {
            docs.iter()
                .find(|d| d.package == "libnetty-java")
                .map(|d| d.state)
        };
        let esm_docs = state.view.host(esm).await.unwrap();
        assert!(!eol(&esm_docs), "{esm_docs:?}");
        assert_eq!(netty(&esm_docs), Some(FindingState::FixAvailable));
        let plain_docs = state.view.host(plain).await.unwrap();
        assert!(eol(&plain_docs), "{plain_docs:?}");
        assert_eq!(
            netty(&plain_docs),
            Some(FindingState::FixRequiresSubscription)
        );
        test_store.finish().await;
    }
}
