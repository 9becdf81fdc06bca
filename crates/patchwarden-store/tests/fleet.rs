//! The fleet tables on both backends (SQLite file and PostgreSQL schema, as `backends.rs`):
//! enrollment refusals, check-in semantics (stored once per key, heartbeats, a stale heartbeat asks
//! for the inventory), package versions shared across hosts, the appeared/disappeared history,
//! findings versioned by inventory, and knowledge-base changes marking only the hosts they touch.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use patchwarden_model::fleet::{inventory_digest, CheckInResult};
use patchwarden_model::{Inventory, InventoryView};
use patchwarden_store::fleet::{
    EnrollRefusal, EvaluatedFindings, HeartbeatOutcome, HostFilter, NewFindingKey,
};

/// A real inventory: the Alpine apk sample in a root of its own (`name` keeps roots apart).
fn alpine_inventory(name: &str) -> Inventory {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fleet-root-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("lib/apk/db")).unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "ID=alpine\nVERSION_ID=3.19.1\n",
    )
    .unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/inventory/apk/installed"
        ),
        root.join("lib/apk/db/installed"),
    )
    .unwrap();
    patchwarden_inventory::collect(&root).unwrap()
}

/// A finding key of a test (its document is opaque to the store).
fn finding(package: &str, advisory: &str, cve: &str) -> NewFindingKey {
    finding_in(package, advisory, cve, "1.0")
}

fn finding_in(package: &str, advisory: &str, cve: &str, version: &str) -> NewFindingKey {
    let doc = format!(
        "{{\"package\":\"{package}\",\"advisory_id\":\"{advisory}\",\"version\":\"{version}\"}}"
    );
    NewFindingKey {
        digest: format!("test:{doc}"),
        package: package.into(),
        advisory_id: advisory.into(),
        state: patchwarden_model::FindingState::FixAvailable,
        cves: vec![cve.into()],
        doc,
    }
}

/// The ids of the keys, interned (ascending, no repeats).
async fn interned(store: &patchwarden_store::Store, keys: &[NewFindingKey]) -> Arc<[i64]> {
    let mut ids = store.intern_finding_keys(keys).await.unwrap();
    ids.sort_unstable();
    ids.dedup();
    ids.into()
}

/// Interns the keys and stores them as the host's findings from inventory `version`.
async fn store_findings(
    store: &patchwarden_store::Store,
    host: i64,
    version: i64,
    keys: &[NewFindingKey],
    now: &str,
) -> bool {
    let ids = interned(store, keys).await;
    store
        .store_host_findings(host, version, &ids, now)
        .await
        .unwrap()
        .stored
}

async fn cve_hosts(store: &patchwarden_store::Store, cve: &str) -> Vec<i64> {
    let keys = store.keys_citing(&[cve.to_owned()]).await.unwrap();
    store.hosts_holding_keys(&keys).await.unwrap()
}

#[tokio::test]
async fn check_ins_history_and_findings_on_both_backends() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for test_store in patchwarden_store::testing::stores("fleet", tmp).await {
        let store = &test_store.store;
        let backend = store.backend();
        let now = "2026-12-01T10:00:00Z";
        let labels = BTreeMap::from([("env".to_owned(), "staging".to_owned())]);
        store
            .create_enroll_token("t-two", "2026-12-02T00:00:00Z", 2, &labels, "test")
            .await
            .unwrap();
        store
            .create_enroll_token("t-old", "2026-11-30T00:00:00Z", 5, &labels, "test")
            .await
            .unwrap();
        let enroll = |token: &'static str, name: &'static str, secret: &'static str| async move {
            store
                .enroll_host(token, now, name, None, secret)
                .await
                .unwrap()
        };
        assert_eq!(enroll("nope", "x", "s0").await, Err(EnrollRefusal::Unknown));
        assert_eq!(
            enroll("t-old", "x", "s0").await,
            Err(EnrollRefusal::Expired)
        );
        let (a, a_labels) = enroll("t-two", "alpine-a", "sa").await.unwrap();
        assert_eq!(a_labels, labels);
        let (b, _) = enroll("t-two", "alpine-b", "sb").await.unwrap();
        assert_eq!(
            enroll("t-two", "x", "s0").await,
            Err(EnrollRefusal::UsedUp),
            "{backend:?}"
        );
        assert_eq!(store.host_by_secret("sa").await.unwrap().unwrap().id, a);

        let inv = alpine_inventory("a");
        let digest = inventory_digest(&inv);
        // A heartbeat before any inventory: the server asks for it, and stores nothing.
        let first = store.check_in(a, "k0", &digest, None, now).await.unwrap();
        assert_eq!(first.result, CheckInResult::NeedInventory);
        let stored = store
            .check_in(a, "k1", &digest, Some(&InventoryView::of(&inv)), now)
            .await
            .unwrap();
        assert_eq!(stored.result, CheckInResult::Stored);
        assert_eq!(stored.appeared, inv.packages.len());
        assert_eq!(stored.inventory_version, 1);
        // The same report again is a duplicate; an unchanged state a heartbeat.
        let again = store
            .check_in(a, "k1", &digest, Some(&InventoryView::of(&inv)), now)
            .await
            .unwrap();
        assert_eq!(again.result, CheckInResult::Duplicate);
        let beat = store.check_in(a, "k2", &digest, None, now).await.unwrap();
        assert_eq!(beat.result, CheckInResult::Heartbeat);
        // A batch (the server's group commit): a repeat, a fresh one, one with a stale digest.
        let beat = |host, key: &str, digest: &str| patchwarden_store::fleet::Heartbeat {
            host_id: host,
            idempotency_key: key.into(),
            digest: digest.into(),
        };
        let batch = store
            .heartbeats(
                &[
                    beat(a, "k2", &digest),
                    beat(a, "k2b", &digest),
                    beat(a, "k2c", "stale"),
                ],
                now,
            )
            .await
            .unwrap();
        assert_eq!(
            batch,
            [
                HeartbeatOutcome::Answered(CheckInResult::Duplicate),
                HeartbeatOutcome::Answered(CheckInResult::Heartbeat),
                HeartbeatOutcome::Answered(CheckInResult::NeedInventory)
            ],
            "{backend:?}"
        );
        // The stale one stored nothing: its key is free for the resend with the inventory.
        let resent = store
            .check_in(a, "k2c", &digest, Some(&InventoryView::of(&inv)), now)
            .await
            .unwrap();
        assert_eq!(resent.result, CheckInResult::Stored);
        // Host b holds the same versions: stored once for both.
        store
            .check_in(b, "kb", &digest, Some(&InventoryView::of(&inv)), now)
            .await
            .unwrap();
        let read_back = store.host_inventory(a).await.unwrap().unwrap();
        assert_eq!(read_back.1, 2);
        assert_eq!(read_back.0.packages.len(), inv.packages.len());

        // One package upgraded on a: one appeared, one disappeared, history closed.
        let mut changed = inv.clone();
        let p = changed
            .packages
            .iter_mut()
            .find(|p| p.name == "busybox")
            .unwrap();
        let old_version = p.version.clone();
        p.version = format!("{old_version}-test-upgrade");
        let later = "2026-12-01T11:00:00Z";
        let changed_digest = inventory_digest(&changed);
        let delta = store
            .check_in(
                a,
                "k3",
                &changed_digest,
                Some(&InventoryView::of(&changed)),
                later,
            )
            .await
            .unwrap();
        assert_eq!(
            (delta.appeared, delta.disappeared, delta.inventory_version),
            (1, 1, 3)
        );
        let history = store.package_history(a).await.unwrap();
        let busybox: Vec<_> = history.iter().filter(|h| h.0 == "busybox").collect();
        assert_eq!(busybox.len(), 2, "{busybox:?}");
        let old = busybox.iter().find(|h| h.1 == old_version).unwrap();
        assert_eq!(old.3.as_deref(), Some(later), "{backend:?}");
        // Every version of the first inventory appeared with it (its change row names the set).
        assert_eq!(history.len(), inv.packages.len() + 1, "{backend:?}");
        for p in &inv.packages {
            assert!(
                history
                    .iter()
                    .any(|h| h.0 == p.name && h.1 == p.version && h.2 == now),
                "{backend:?}: {} {}",
                p.name,
                p.version
            );
        }

        // A revoked host's heartbeats are refused by the batch itself (servers skip the
        // credential lookup for heartbeats of hosts they know); nothing is stored, and another
        // host's heartbeat in the same batch is answered as usual.
        let (c, _) = {
            store
                .create_enroll_token("t-c", "2026-12-02T00:00:00Z", 1, &labels, "test")
                .await
                .unwrap();
            enroll("t-c", "alpine-c", "sc").await.unwrap()
        };
        store
            .check_in(c, "kc1", &digest, Some(&InventoryView::of(&inv)), now)
            .await
            .unwrap();
        assert!(store.revoke_host(c).await.unwrap());
        let batch = store
            .heartbeats(
                &[beat(c, "kc2", &digest), beat(a, "k2d", &changed_digest)],
                later,
            )
            .await
            .unwrap();
        assert_eq!(
            batch,
            [
                HeartbeatOutcome::Refused,
                HeartbeatOutcome::Answered(CheckInResult::Heartbeat)
            ],
            "{backend:?}"
        );
        assert_eq!(
            store
                .heartbeats(&[beat(c, "kc2", &digest)], later)
                .await
                .unwrap(),
            [HeartbeatOutcome::Refused],
            "the refused key was not kept"
        );

        // Findings are versioned: older ones never replace newer ones.
        assert_eq!(store.hosts_needing_findings().await.unwrap(), vec![a, b, c]);
        assert!(
            store_findings(
                store,
                a,
                3,
                &[finding("busybox", "CVE-2999-1", "CVE-2999-1")],
                later
            )
            .await
        );
        assert!(
            !store_findings(
                store,
                a,
                2,
                &[finding("musl", "CVE-2999-2", "CVE-2999-2")],
                later
            )
            .await
        );
        assert_eq!(store.hosts_needing_findings().await.unwrap(), vec![b, c]);
        assert_eq!(cve_hosts(store, "CVE-2999-1").await, vec![a]);
        assert!(cve_hosts(store, "CVE-2999-2").await.is_empty());
        let set = store.host_finding_set(a).await.unwrap().unwrap();
        assert_eq!(set.keys.len(), 1);
        let hosts = store
            .hosts(&HostFilter::default(), 86400 * 365 * 100)
            .await
            .unwrap();
        let host_a = hosts.iter().find(|h| h.id == a).unwrap();
        assert!(!host_a.findings_pending);
        assert!(hosts.iter().find(|h| h.id == b).unwrap().findings_pending);

        test_store.finish().await;
    }
}

fn data(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/data/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn provenance(origin: &str, fetched_at: &str) -> patchwarden_model::Provenance {
    patchwarden_model::Provenance {
        source: patchwarden_model::Source::Osv,
        origin: origin.into(),
        sha256: "0".repeat(64),
        fetched_at: fetched_at.into(),
    }
}

/// A knowledge-base write journals what it changed, and applying the journal marks exactly the
/// hosts it can touch: for advisories the hosts holding a named package on that distribution, for
/// KEV / EPSS / NVD the hosts with findings citing a changed CVE. An unchanged re-download marks
/// nobody. Real records throughout (Alpine secdb v3.11 main, the KEV catalog, an EPSS subset, NVD
/// CVE-2023-0286, Ubuntu's OSV record of it); the finding rows are the test's own.
/// Report keys older than the retention are removed (in batches); newer ones still answer
/// `Duplicate`, a pruned one is taken as a new report.
fn beat(host: i64, key: &str, digest: &str) -> patchwarden_store::fleet::Heartbeat {
    patchwarden_store::fleet::Heartbeat {
        host_id: host,
        idempotency_key: key.into(),
        digest: digest.into(),
    }
}

/// Inventories stored in one batch (the server's group commit): each answered as alone, a host's
/// second inventory diffed against its first, a repeated key a duplicate, the batch's hosts'
/// package history complete.
#[tokio::test]
async fn inventories_stored_in_one_batch() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for test_store in patchwarden_store::testing::stores("inventory_batch", tmp).await {
        let store = &test_store.store;
        let backend = store.backend();
        let (t1, t2) = ("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z");
        store
            .create_enroll_token("t", "2027-01-01T00:00:00Z", 3, &Default::default(), "test")
            .await
            .unwrap();
        let mut hosts = Vec::new();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let (id, _) = store
                .enroll_host("t", t1, name, None, &format!("s{i}"))
                .await
                .unwrap()
                .unwrap();
            hosts.push(id);
        }
        let (a, b, c) = (hosts[0], hosts[1], hosts[2]);
        let inv = alpine_inventory("batch");
        let mut upgraded = inv.clone();
        let p = upgraded
            .packages
            .iter_mut()
            .find(|p| p.name == "musl")
            .unwrap();
        p.version = format!("{}-test-upgrade", p.version);
        async fn entry(
            store: &patchwarden_store::Store,
            host: i64,
            key: &str,
            inv: &Inventory,
        ) -> patchwarden_store::fleet::NewInventory {
            store
                .new_inventory(host, key, &inventory_digest(inv), &InventoryView::of(inv))
                .await
                .unwrap()
        }
        let batch = vec![
            entry(store, a, "a1", &inv).await,
            entry(store, b, "b1", &inv).await,
            entry(store, a, "a2", &upgraded).await,
            entry(store, b, "b1", &inv).await,
        ];
        let out = store.check_in_inventories(&batch, t1).await.unwrap();
        let summary: Vec<(CheckInResult, usize, usize, i64)> = out
            .iter()
            .map(|o| (o.result, o.appeared, o.disappeared, o.inventory_version))
            .collect();
        let n = inv.packages.len();
        assert_eq!(
            summary,
            [
                (CheckInResult::Stored, n, 0, 1),
                (CheckInResult::Stored, n, 0, 1),
                (CheckInResult::Stored, 1, 1, 2),
                (CheckInResult::Duplicate, 0, 0, 0),
            ],
            "{backend:?}"
        );
        // a holds the upgraded set, b the first; the same key again later is a duplicate, and an
        // unchanged inventory of c in a later batch shares b's set.
        let (a_inv, a_version) = store.host_inventory(a).await.unwrap().unwrap();
        assert_eq!(a_version, 2);
        assert!(a_inv
            .packages
            .iter()
            .any(|p| p.name == "musl" && p.version.ends_with("-test-upgrade")));
        let again = store
            .check_in_inventories(
                &[
                    entry(store, a, "a2", &upgraded).await,
                    entry(store, c, "c1", &inv).await,
                ],
                t2,
            )
            .await
            .unwrap();
        assert_eq!(again[0].result, CheckInResult::Duplicate);
        assert_eq!(
            (again[1].result, again[1].appeared),
            (CheckInResult::Stored, n)
        );
        let counts = store.counts().await.unwrap();
        assert!(
            counts.contains(&("package_set".to_owned(), 2)),
            "{backend:?}: {counts:?}"
        );
        // a's history: every first version appeared at t1, musl's old version closed at t1.
        let history = store.package_history(a).await.unwrap();
        assert_eq!(history.len(), n + 1, "{backend:?}");
        let musl: Vec<_> = history.iter().filter(|h| h.0 == "musl").collect();
        assert_eq!(musl.len(), 2, "{musl:?}");
        assert!(musl
            .iter()
            .any(|h| !h.1.ends_with("-test-upgrade") && h.3.as_deref() == Some(t1)));
        assert_eq!(store.package_history(c).await.unwrap().len(), n);
        test_store.finish().await;
    }
}

#[tokio::test]
async fn old_report_keys_are_pruned() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for test_store in patchwarden_store::testing::stores("report_retention", tmp).await {
        let store = &test_store.store;
        store
            .create_enroll_token("t", "2027-01-01T00:00:00Z", 1, &Default::default(), "test")
            .await
            .unwrap();
        let (host, _) = store
            .enroll_host("t", "2026-11-01T00:00:00Z", "h", None, "s")
            .await
            .unwrap()
            .unwrap();
        let inv = alpine_inventory("h");
        let digest = inventory_digest(&inv);
        store
            .check_in(
                host,
                "old-inv",
                &digest,
                Some(&InventoryView::of(&inv)),
                "2026-11-01T00:00:00Z",
            )
            .await
            .unwrap();
        let beats: Vec<_> = (0..25_000)
            .map(|i| patchwarden_store::fleet::Heartbeat {
                host_id: host,
                idempotency_key: format!("old-{i}"),
                digest: digest.clone(),
            })
            .collect();
        store
            .heartbeats(&beats, "2026-11-02T00:00:00Z")
            .await
            .unwrap();
        store
            .heartbeats(&[beat(host, "new", &digest)], "2026-12-02T00:00:00Z")
            .await
            .unwrap();
        let backend = store.backend();
        assert_eq!(
            store.prune_reports("2026-11-18T00:00:00Z").await.unwrap(),
            25_001,
            "{backend:?}"
        );
        assert_eq!(
            store.prune_reports("2026-11-18T00:00:00Z").await.unwrap(),
            0
        );
        let digest = &digest;
        let again = |key: &'static str| async move {
            store
                .heartbeats(&[beat(host, key, digest)], "2026-12-03T00:00:00Z")
                .await
                .unwrap()[0]
        };
        assert_eq!(
            again("new").await,
            HeartbeatOutcome::Answered(CheckInResult::Duplicate),
            "a kept key still answers Duplicate"
        );
        assert_eq!(
            again("old-7").await,
            HeartbeatOutcome::Answered(CheckInResult::Heartbeat),
            "a pruned key is a new report"
        );
        test_store.finish().await;
    }
}

/// Findings as facts: hosts holding the same findings share one set, an evaluation writes only
/// differences, and first sightings survive a key replaced for the same package and advisory.
#[tokio::test]
async fn finding_sets_are_shared_and_evaluations_write_differences() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for test_store in patchwarden_store::testing::stores("finding_sets", tmp).await {
        let store = &test_store.store;
        let backend = store.backend();
        let (t1, t2, t3) = (
            "2026-12-01T10:00:00Z",
            "2026-12-02T10:00:00Z",
            "2026-12-03T10:00:00Z",
        );
        store
            .create_enroll_token("t", "2027-01-01T00:00:00Z", 5, &Default::default(), "test")
            .await
            .unwrap();
        let mut hosts = Vec::new();
        for (i, name) in ["h1", "h2"].iter().enumerate() {
            let (id, _) = store
                .enroll_host("t", t1, name, None, &format!("s{i}"))
                .await
                .unwrap()
                .unwrap();
            let inv = alpine_inventory(name);
            store
                .check_in(
                    id,
                    "k1",
                    &inventory_digest(&inv),
                    Some(&InventoryView::of(&inv)),
                    t1,
                )
                .await
                .unwrap();
            hosts.push(id);
        }
        let (h1, h2) = (hosts[0], hosts[1]);
        // The two hosts hold the same package versions: one package set, shared.
        let counts = store.counts().await.unwrap();
        assert!(
            counts.contains(&("package_set".to_owned(), 1)),
            "{backend:?}: {counts:?}"
        );
        let both = [
            finding("busybox", "CVE-2999-1", "CVE-2999-1"),
            finding("musl", "CVE-2999-2", "CVE-2999-2"),
        ];
        assert!(store_findings(store, h1, 1, &both, t1).await);
        assert!(store_findings(store, h2, 1, &both, t1).await);
        let s1 = store.host_finding_set(h1).await.unwrap().unwrap();
        let s2 = store.host_finding_set(h2).await.unwrap().unwrap();
        assert_eq!(
            s1.set_id, s2.set_id,
            "one set for the same findings ({backend:?})"
        );
        // The same findings again: nothing but the stamp.
        assert!(store_findings(store, h1, 1, &both, t2).await);
        assert_eq!(store.finding_changes(h1).await.unwrap().len(), 1);
        // musl upgraded but still affected (a new key for the same package and advisory), busybox
        // fixed, a new advisory on musl.
        let next = [
            finding_in("musl", "CVE-2999-2", "CVE-2999-2", "1.1"),
            finding("musl", "CVE-2999-3", "CVE-2999-3"),
        ];
        assert!(store_findings(store, h1, 2, &next, t3).await);
        let set = store.host_finding_set(h1).await.unwrap().unwrap();
        let keys = store.finding_keys(&set.keys).await.unwrap();
        let seen = |advisory: &str| {
            let k = keys.iter().find(|k| k.advisory_id == advisory).unwrap();
            set.first_seen(k.id).to_owned()
        };
        assert_eq!(
            seen("CVE-2999-2"),
            t1,
            "kept across the upgrade ({backend:?})"
        );
        assert_eq!(seen("CVE-2999-3"), t3);
        let changes = store.finding_changes(h1).await.unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].from_set, None);
        assert_eq!(changes[1].from_set, Some(s1.set_id));
        assert_eq!((changes[1].opened.len(), changes[1].closed.len()), (2, 2));
        assert_eq!(changes[1].changed_at, t3);
        // The other host is untouched; the CVE of the fixed busybox finding is on h2 only.
        assert_eq!(store.host_finding_set(h2).await.unwrap().unwrap(), s2);
        assert_eq!(cve_hosts(store, "CVE-2999-1").await, vec![h2]);
        assert_eq!(cve_hosts(store, "CVE-2999-2").await, vec![h1, h2]);
        // Findings of an older inventory never replace newer ones.
        assert!(!store_findings(store, h1, 1, &both, t3).await);

        // Several hosts in one write: each host once (its newest entry), each with its own
        // differences and first sightings; an older entry and an unknown host store nothing.
        let t4 = "2026-12-04T10:00:00Z";
        let (both_ids, next_ids) = (interned(store, &both).await, interned(store, &next).await);
        let entry = |host_id: i64, version: i64, keys: &Arc<[i64]>| EvaluatedFindings {
            host_id,
            version,
            keys: keys.clone(),
        };
        let stored = store
            .store_findings(
                &[
                    entry(h2, 2, &next_ids),
                    entry(h1, 1, &next_ids),
                    entry(h1, 3, &both_ids),
                    entry(999_999, 1, &both_ids),
                ],
                None,
                t4,
            )
            .await
            .unwrap();
        let flags: Vec<bool> = stored.iter().map(|s| s.stored).collect();
        assert_eq!(flags, [true, false, true, false], "{backend:?}: {stored:?}");
        assert_eq!((stored[0].opened, stored[0].closed), (2, 2));
        let s1_again = store.host_finding_set(h1).await.unwrap().unwrap();
        let s2_now = store.host_finding_set(h2).await.unwrap().unwrap();
        assert_eq!(s1_again.set_id, s1.set_id, "{backend:?}");
        assert_eq!(s2_now.set_id, set.set_id, "{backend:?}");
        let keys = store.finding_keys(&s1_again.keys).await.unwrap();
        let seen = |advisory: &str| {
            let k = keys.iter().find(|k| k.advisory_id == advisory).unwrap();
            s1_again.first_seen(k.id).to_owned()
        };
        // busybox's finding closed at t3 and is new again; musl's carried across both upgrades.
        assert_eq!(seen("CVE-2999-1"), t4, "{backend:?}");
        assert_eq!(seen("CVE-2999-2"), t1, "{backend:?}");
        assert_eq!(store.finding_changes(h1).await.unwrap().len(), 3);
        let h2_changes = store.finding_changes(h2).await.unwrap();
        assert_eq!(h2_changes.len(), 2);
        assert_eq!(h2_changes[1].from_set, Some(s1.set_id));
        assert_eq!(h2_changes[1].changed_at, t4);
        test_store.finish().await;
    }
}

#[tokio::test]
async fn knowledge_changes_mark_only_the_hosts_they_touch() {
    use patchwarden_model::Source;
    use patchwarden_store::WriteMode;
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let secdb = patchwarden_feeds::alpine::parse_yaml(
        &data("alpine-secdb/alpine-secdb-repo-v3.11-main.yaml"),
        "main",
    )
    .unwrap();
    let kev =
        patchwarden_feeds::kev::parse(&data("kev/known_exploited_vulnerabilities.json"), "kev")
            .unwrap();
    let epss = patchwarden_feeds::epss::parse_csv(
        &data("epss/epss_scores-2026-09-29.rows-subset.csv")[..],
        "epss",
    )
    .unwrap();
    // b's finding cites a KEV CVE EPSS does not score, a's one EPSS scores and KEV does not list.
    let in_epss = |c: &str| epss.scores.iter().any(|s| s.cve == c);
    let in_kev = |c: &str| kev.entries.iter().any(|e| e.cve == c);
    let kev_cve = kev
        .entries
        .iter()
        .map(|e| e.cve.clone())
        .find(|c| !in_epss(c))
        .unwrap();
    let epss_cve = epss
        .scores
        .iter()
        .map(|s| s.cve.clone())
        .find(|c| !in_kev(c))
        .unwrap();
    let nvd = patchwarden_feeds::nvd::parse(
        &data("nvd/cve-objects/CVE-2023-0286.fkie-2025-03-20.json"),
        "nvd",
    )
    .unwrap()
    .records;
    let ubuntu_openssl = vec![patchwarden_feeds::osv::parse(
        &data("osv/ubuntu/canonical-usn-repo/CVE-2023-0286.json"),
        "osv",
    )
    .unwrap()];
    let openssl_advisories: Vec<_> = secdb
        .iter()
        .filter(|a| a.affected.iter().any(|p| p.package == "openssl"))
        .cloned()
        .collect();
    assert!(!openssl_advisories.is_empty());
    let without_openssl: Vec<_> = secdb
        .iter()
        .filter(|a| a.affected.iter().all(|p| p.package != "openssl"))
        .cloned()
        .collect();
    let items = |list: &[patchwarden_model::Advisory], at: &str| -> Vec<_> {
        list.iter()
            .map(|a| (a.clone(), provenance("secdb", at)))
            .collect()
    };

    for test_store in patchwarden_store::testing::stores("kb_changes", tmp).await {
        let store = &test_store.store;
        let backend = store.backend();
        // Writes `list` into a feed, as fetched at `at`.
        let write = |feed: &'static str,
                     source: Source,
                     mode: WriteMode,
                     list: &[patchwarden_model::Advisory],
                     at: &'static str| {
            let items = items(list, at);
            async move {
                store
                    .write_advisories(feed, source, mode, &items, None)
                    .await
                    .unwrap();
            }
        };
        const SECDB: &str = "alpine-secdb:v3.11/main";
        let now = "2026-12-01T10:00:00Z";
        // Before any host exists, writes journal nothing.
        write(
            SECDB,
            Source::AlpineSecdb,
            WriteMode::Replace,
            &without_openssl,
            "t0",
        )
        .await;
        assert_eq!(store.pending_knowledge_changes().await.unwrap(), 0);

        store
            .create_enroll_token("t", "2027-01-01T00:00:00Z", 2, &BTreeMap::new(), "test")
            .await
            .unwrap();
        let (a, _) = store
            .enroll_host("t", now, "with-openssl", None, "sa")
            .await
            .unwrap()
            .unwrap();
        let (b, _) = store
            .enroll_host("t", now, "without-openssl", None, "sb")
            .await
            .unwrap()
            .unwrap();
        let inv_a = alpine_inventory("kb-a");
        let mut inv_b = alpine_inventory("kb-b");
        inv_b.packages.retain(|p| p.source_name != "openssl");
        assert!(inv_b.packages.len() < inv_a.packages.len());
        for (host, inv) in [(a, &inv_a), (b, &inv_b)] {
            store
                .check_in(
                    host,
                    "k1",
                    &inventory_digest(inv),
                    Some(&InventoryView::of(inv)),
                    now,
                )
                .await
                .unwrap();
        }
        // Both hosts' findings are current; which hosts does each write send back?
        let settle = || async {
            for (host, cve) in [(a, &epss_cve), (b, &kev_cve)] {
                assert!(store_findings(store, host, 1, &[finding("musl", cve, cve)], now).await);
            }
            assert_eq!(
                store.hosts_needing_findings().await.unwrap(),
                Vec::<i64>::new()
            );
        };
        let marked_by = |what: &'static str| async move {
            let applied = store.apply_knowledge_changes().await.unwrap();
            assert_eq!(store.pending_knowledge_changes().await.unwrap(), 0);
            let marked = store.hosts_needing_findings().await.unwrap();
            assert_eq!(marked.len(), applied.hosts_marked, "{what} {backend:?}");
            (marked, applied)
        };
        settle().await;

        // New advisories for openssl: only the host holding openssl.
        let evaluated_at = store.knowledge_generation().await.unwrap();
        write(
            SECDB,
            Source::AlpineSecdb,
            WriteMode::Upsert,
            &openssl_advisories,
            "t1",
        )
        .await;
        assert_eq!(marked_by("openssl added").await.0, vec![a], "{backend:?}");
        // Findings evaluated against the knowledge base before the change was applied (a worker
        // that had not seen it) are not stored over its mark; evaluated after, they are.
        let keys = interned(store, &[finding("musl", &epss_cve, &epss_cve)]).await;
        let evaluated = [EvaluatedFindings {
            host_id: a,
            version: 1,
            keys,
        }];
        let stale = store
            .store_findings(&evaluated, Some(evaluated_at), now)
            .await
            .unwrap();
        assert!(
            stale[0].stale_knowledge && !stale[0].stored,
            "{backend:?}: {stale:?}"
        );
        assert_eq!(store.hosts_needing_findings().await.unwrap(), vec![a]);
        let current = store.knowledge_generation().await.unwrap();
        assert_eq!(current, evaluated_at + 1);
        let fresh = store
            .store_findings(&evaluated, Some(current), now)
            .await
            .unwrap();
        assert!(fresh[0].stored && !fresh[0].stale_knowledge, "{fresh:?}");
        settle().await;

        // The same feed downloaded again (new provenance, same records): nobody.
        write(SECDB, Source::AlpineSecdb, WriteMode::Replace, &secdb, "t2").await;
        assert_eq!(
            store.pending_knowledge_changes().await.unwrap(),
            0,
            "{backend:?}"
        );
        assert_eq!(marked_by("unchanged").await.0, Vec::<i64>::new());

        // One advisory changed (its fix moved: a change made by this test) — only openssl's host.
        let mut changed = secdb.clone();
        let one = changed
            .iter_mut()
            .find(|a| a.affected.iter().any(|p| p.package == "openssl"))
            .unwrap();
        one.modified = Some("2026-12-01T00:00:00Z".into());
        write(
            SECDB,
            Source::AlpineSecdb,
            WriteMode::Replace,
            &changed,
            "t3",
        )
        .await;
        assert_eq!(marked_by("openssl modified").await.0, vec![a]);
        settle().await;

        // Openssl's advisories gone (a replacement without them): only its host again.
        write(
            SECDB,
            Source::AlpineSecdb,
            WriteMode::Replace,
            &without_openssl,
            "t4",
        )
        .await;
        assert_eq!(marked_by("openssl removed").await.0, vec![a]);
        settle().await;

        // Musl advisories changed on another distribution: nobody here.
        let mut elsewhere: Vec<_> = secdb
            .iter()
            .filter(|a| a.affected.iter().any(|p| p.package == "musl"))
            .cloned()
            .collect();
        for adv in &mut elsewhere {
            adv.id = format!("{}-elsewhere", adv.id);
            for p in &mut adv.affected {
                if let Some(r) = p.release.as_mut() {
                    r.distro = Some(patchwarden_model::Distro::Debian);
                }
            }
        }
        write(
            "test-debian",
            Source::Osv,
            WriteMode::Upsert,
            &elsewhere,
            "t5",
        )
        .await;
        let (marked, applied) = marked_by("other distribution").await;
        assert_eq!((marked, applied.changes), (Vec::<i64>::new(), 1));

        // KEV: the host whose finding cites a listed CVE; the same catalog again: nobody; one entry
        // gone: that host again.
        store
            .replace_kev("kev", &kev, &provenance("kev", "t6"))
            .await
            .unwrap();
        assert_eq!(marked_by("kev").await.0, vec![b]);
        settle().await;
        store
            .replace_kev("kev", &kev, &provenance("kev", "t7"))
            .await
            .unwrap();
        assert_eq!(marked_by("kev unchanged").await.0, Vec::<i64>::new());
        let mut shorter = kev.clone();
        shorter.entries.retain(|e| e.cve != kev_cve);
        store
            .replace_kev("kev", &shorter, &provenance("kev", "t8"))
            .await
            .unwrap();
        assert_eq!(marked_by("kev entry removed").await.0, vec![b]);
        settle().await;

        // EPSS: the host whose finding cites a scored CVE.
        store
            .replace_epss("epss", &epss, &provenance("epss", "t9"))
            .await
            .unwrap();
        assert_eq!(marked_by("epss").await.0, vec![a]);
        settle().await;
        store
            .replace_epss("epss", &epss, &provenance("epss", "t10"))
            .await
            .unwrap();
        assert_eq!(marked_by("epss unchanged").await.0, Vec::<i64>::new());

        // NVD enrichment of a CVE no finding cites: nobody, and no package concerned. The same
        // record flipped to rejected (a variation made by this test, stored nowhere else): the
        // packages of the advisories citing it (Ubuntu's openssl) are concerned.
        write(
            "osv:Ubuntu",
            Source::Osv,
            WriteMode::Upsert,
            &ubuntu_openssl,
            "t11",
        )
        .await;
        store.apply_knowledge_changes().await.unwrap();
        let nvd_items: Vec<_> = nvd
            .iter()
            .map(|r| (r.clone(), provenance("nvd", "t12")))
            .collect();
        store
            .write_cves("nvd", WriteMode::Upsert, &nvd_items, None)
            .await
            .unwrap();
        let (marked, applied) = marked_by("nvd").await;
        assert_eq!(
            (marked, applied.cves, applied.packages),
            (Vec::<i64>::new(), 1, 0)
        );
        let mut rejected = nvd_items.clone();
        rejected[0].0.rejected = true;
        store
            .write_cves("nvd", WriteMode::Upsert, &rejected, None)
            .await
            .unwrap();
        let (_, applied) = marked_by("nvd rejected").await;
        assert!(applied.packages > 0, "{applied:?}");
        test_store.finish().await;
    }
}

/// Migration 0007 turns the per-package rows of 0006 (`host_package`, `package_history`) into one
/// package-set row per host and one change row per moment of change, losing nothing: the set, the
/// spans (including a version that went away) and their times read back the same.
#[tokio::test]
async fn package_rows_of_the_0006_schema_migrate_to_package_sets() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for mut test_store in patchwarden_store::testing::stores("fleet_0007", tmp).await {
        let backend = test_store.store.backend();
        let (t1, t2) = ("2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z");
        let store = &test_store.store;
        store
            .create_enroll_token("t", "2027-01-01T00:00:00Z", 1, &BTreeMap::new(), "test")
            .await
            .unwrap();
        let (a, _) = store
            .enroll_host("t", t1, "alpine-a", None, "sa")
            .await
            .unwrap()
            .unwrap();
        let inv = alpine_inventory("migrate");
        // Interns the sample's versions and stores the host's document.
        store
            .check_in(
                a,
                "k1",
                &inventory_digest(&inv),
                Some(&InventoryView::of(&inv)),
                t1,
            )
            .await
            .unwrap();
        // Back to the 0006 layout: busybox and musl installed at t1, zlib removed at t2.
        let version_of =
            |name: &str| format!("(SELECT id FROM package_version WHERE name = '{name}')");
        for sql in [
            "DROP TABLE package_change".to_owned(),
            "DROP TABLE host_package_set".to_owned(),
            "DROP TABLE package_set".to_owned(),
            // 7 (package sets per host), then 17 and 18 (shared package sets) and 19 (first
            // inventories by set) run again.
            "DELETE FROM schema_migrations WHERE version IN (7, 17, 18, 19)".to_owned(),
            "CREATE TABLE host_package (host_id BIGINT NOT NULL, package_version_id BIGINT NOT NULL, \
             PRIMARY KEY (host_id, package_version_id))"
                .to_owned(),
            "CREATE TABLE package_history (host_id BIGINT NOT NULL, package_version_id BIGINT NOT NULL, \
             appeared_at TEXT NOT NULL, disappeared_at TEXT)"
                .to_owned(),
            format!(
                "INSERT INTO host_package VALUES ({a}, {}), ({a}, {})",
                version_of("busybox"),
                version_of("musl")
            ),
            format!(
                "INSERT INTO package_history VALUES ({a}, {}, '{t1}', NULL), ({a}, {}, '{t1}', NULL), \
                 ({a}, {}, '{t1}', '{t2}')",
                version_of("busybox"),
                version_of("musl"),
                version_of("zlib")
            ),
        ] {
            store.execute_raw(&sql).await.unwrap();
        }
        let location = store.location().to_owned();
        test_store.store.close().await;
        test_store.store = patchwarden_store::Store::open(&location).await.unwrap();
        let store = &test_store.store;

        let (migrated, _) = store.host_inventory(a).await.unwrap().unwrap();
        let names: Vec<&str> = migrated.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["busybox", "musl"], "{backend:?}");
        let history = store.package_history(a).await.unwrap();
        let spans: Vec<(&str, &str, Option<&str>)> = history
            .iter()
            .map(|(name, _, appeared, gone)| (name.as_str(), appeared.as_str(), gone.as_deref()))
            .collect();
        assert_eq!(
            spans,
            [
                ("busybox", t1, None),
                ("musl", t1, None),
                ("zlib", t1, Some(t2))
            ],
            "{backend:?}"
        );
        // The next inventory diffs against the migrated set: everything but busybox and musl is new.
        let next = store
            .check_in(
                a,
                "k2",
                &inventory_digest(&inv),
                Some(&InventoryView::of(&inv)),
                t2,
            )
            .await
            .unwrap();
        assert_eq!(next.appeared, inv.packages.len() - 2, "{backend:?}");
        assert_eq!(next.disappeared, 0, "{backend:?}");
        test_store.finish().await;
    }
}

/// The digest is the hash of the stamp-less inventory: a re-collection keeps it, a package change
/// changes it.
#[test]
fn the_inventory_digest_is_the_hash_of_the_stampless_inventory() {
    let inv = alpine_inventory("digest");
    let mut plain = inv.clone();
    plain.collected_at.clear();
    plain.collector.clear();
    let expected = patchwarden_model::fleet::sha256_hex(&serde_json::to_vec(&plain).unwrap());
    assert_eq!(inventory_digest(&inv), expected);
    let mut recollected = inv.clone();
    recollected.collected_at = "2030-01-01T00:00:00Z".into();
    assert_eq!(inventory_digest(&recollected), expected);
    let mut upgraded = inv.clone();
    upgraded.packages[0].version.push_str("-r99");
    assert_ne!(inventory_digest(&upgraded), expected);
}

/// The server reads check-ins through the borrowed view: it must read every inventory as the owned
/// type does (escaped strings included) and refuse what that refuses.
#[test]
fn the_borrowed_inventory_view_reads_what_the_inventory_reads() {
    let inv = alpine_inventory("view");
    let json = serde_json::to_string(&inv).unwrap();
    let view: InventoryView = serde_json::from_str(&json).unwrap();
    assert_eq!(view.to_inventory(), inv);
    assert_eq!(view, InventoryView::of(&inv));
    assert!(matches!(
        view.packages[0].name,
        std::borrow::Cow::Borrowed(_)
    ));
    let escaped = json.replacen("\"busybox\"", "\"busy\\\"box\\u00e9\"", 1);
    assert_ne!(escaped, json);
    let owned: Inventory = serde_json::from_str(&escaped).unwrap();
    let view: InventoryView = serde_json::from_str(&escaped).unwrap();
    assert_eq!(view.to_inventory(), owned);
    for bad in [
        json.replacen("\"arch\":", "\"arc\":", 1),
        json.replacen("\"manager\":\"apk\"", "\"manager\":\"pip\"", 1),
        json.replacen("\"live\":false", "\"live\":\"no\"", 1),
        json.replacen("\"packages\":[", "\"packages\":[7,", 1),
    ] {
        assert_ne!(bad, json);
        assert!(serde_json::from_str::<Inventory>(&bad).is_err(), "{bad}");
        assert!(
            serde_json::from_str::<InventoryView>(&bad).is_err(),
            "{bad}"
        );
    }
}

/// The scheduled feed sync runs once per interval across three servers, and another takes over
/// when the holder dies without finishing (its lease expires). Simulated clock: a tick every 60 s,
/// every server tries each tick, the interval is 600 s, the lease 900 s.
#[tokio::test]
async fn scheduled_work_runs_once_per_interval_across_servers_and_fails_over() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for test_store in patchwarden_store::testing::stores("scheduled_leases", tmp).await {
        let store = &test_store.store;
        let backend = store.backend();
        let (every, ttl) = (600, 900);
        let servers = ["server-a", "server-b", "server-c"];
        let mut runs: Vec<(i64, &str)> = Vec::new();
        let mut dead: Option<&str> = None;
        let start = 1_800_000_000;
        for tick in 0..60 {
            let now = start + tick * 60;
            for s in servers {
                if Some(s) == dead {
                    continue;
                }
                if store
                    .take_scheduled("feed-sync", s, now, every, ttl)
                    .await
                    .unwrap()
                {
                    runs.push((now - start, s));
                    if runs.len() == 2 {
                        // The holder of the second run dies before finishing it.
                        dead = Some(s);
                    } else {
                        assert!(store
                            .finish_scheduled("feed-sync", s, now + 30)
                            .await
                            .unwrap());
                    }
                }
            }
        }
        // Once per interval (600 s after the last completion, on the next 60 s tick: 660 s
        // apart), never two at once; after the dead holder's run, the next waits for its lease
        // to expire (900 s) and another server takes over.
        assert_eq!(
            runs,
            vec![
                (0, "server-a"),
                (660, "server-a"),
                (1560, "server-b"),
                (2220, "server-b"),
                (2880, "server-b"),
                (3540, "server-b"),
            ],
            "{backend:?}"
        );
        let lease = store.scheduled_lease("feed-sync").await.unwrap().unwrap();
        assert_eq!(
            (lease.holder.as_str(), lease.last_run),
            ("server-b", start + 3570)
        );
        // A late finish by the dead holder changes nothing.
        assert!(!store
            .finish_scheduled("feed-sync", "server-a", start + 3600)
            .await
            .unwrap());
        test_store.finish().await;
    }
}

/// A holder that renews its lease keeps it through a run longer than the lease (nobody starts
/// the work twice); once it stops renewing (dead), another takes over after the lease runs out,
/// and the old holder's late renewal answers false.
#[tokio::test]
async fn a_renewed_lease_outlives_its_ttl_and_a_dead_holders_lapses() {
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    for test_store in patchwarden_store::testing::stores("renewed_leases", tmp).await {
        let store = &test_store.store;
        let backend = store.backend();
        let (every, ttl) = (600, 120);
        let start = 1_800_000_000;
        assert!(store
            .take_scheduled("feed-sync", "a", start, every, ttl)
            .await
            .unwrap());
        // A runs for 30 minutes, renewing every 40 s; B tries every 10 s.
        let mut last_renewal = start;
        for t in (10..1800).step_by(10) {
            let now = start + t;
            if t % 40 == 0 {
                assert!(
                    store
                        .renew_scheduled("feed-sync", "a", now, ttl)
                        .await
                        .unwrap(),
                    "{backend:?} at {t}"
                );
                last_renewal = now;
            }
            assert!(
                !store
                    .take_scheduled("feed-sync", "b", now, every, ttl)
                    .await
                    .unwrap(),
                "{backend:?}: b took a renewed lease at {t}"
            );
        }
        // A dies: B takes over on its first try at or after the lease's end.
        let mut taken_at = None;
        for t in (1800..2400).step_by(10) {
            let now = start + t;
            if store
                .take_scheduled("feed-sync", "b", now, every, ttl)
                .await
                .unwrap()
            {
                taken_at = Some(now);
                break;
            }
        }
        assert_eq!(taken_at, Some(last_renewal + ttl), "{backend:?}");
        assert!(!store
            .renew_scheduled("feed-sync", "a", last_renewal + ttl + 5, ttl)
            .await
            .unwrap());
        assert!(store
            .renew_scheduled("feed-sync", "b", last_renewal + ttl + 5, ttl)
            .await
            .unwrap());
        test_store.finish().await;
    }
}
