//! The store on both backends: every test runs on a fresh SQLite file and on PostgreSQL (in a schema
//! of its own, dropped afterwards). PostgreSQL's URL comes from `PATCHWARDEN_TEST_POSTGRES`
//! (`.ci/run` sets it); without it the PostgreSQL half says it is skipped, unless
//! `PATCHWARDEN_REQUIRE_ORACLES=1` makes that a failure.
use std::path::PathBuf;

use patchwarden_feeds::{debian, epss, kev, nvd, osv};
use patchwarden_model::{FixState, Provenance, Source};
use patchwarden_store::testing::TestStore;
use patchwarden_store::{Backend, Store, WriteMode, LATEST_VERSION};

fn data(path: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data")
            .join(path),
    )
    .unwrap()
}

fn provenance(source: Source, origin: &str) -> Provenance {
    Provenance {
        source,
        origin: origin.into(),
        fetched_at: "2026-11-22T00:00:00Z".into(),
        sha256: "0".repeat(64),
    }
}

async fn stores(test: &str) -> Vec<TestStore> {
    patchwarden_store::testing::stores(test, std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
        .await
}

#[tokio::test]
async fn migrations_apply_once_and_reopen_cleanly() {
    for test_store in stores("migrate").await {
        let store = &test_store.store;
        assert_eq!(
            store.schema_versions().await.unwrap(),
            (1..=LATEST_VERSION).collect::<Vec<_>>()
        );
        assert!(store.feeds().await.unwrap().is_empty());
        test_store.finish().await;
    }
}

#[tokio::test]
async fn knowledge_base_round_trip() {
    for test_store in stores("roundtrip").await {
        let store = &test_store.store;
        let backend = store.backend();
        // OSV: AlmaLinux and Ubuntu advisories, upserted file by file.
        let alma = osv::parse(
            &data("osv/almalinux9/ALSA-2023_0946.json"),
            "ALSA-2023_0946.json",
        )
        .unwrap();
        let ubuntu = osv::parse(
            &data("osv/ubuntu/canonical-usn-repo/CVE-2024-0727.json"),
            "CVE-2024-0727.json",
        )
        .unwrap();
        store
            .write_advisories(
                "osv:AlmaLinux",
                Source::Osv,
                WriteMode::Upsert,
                &[(alma, provenance(Source::Osv, "ALSA-2023_0946.json"))],
                None,
            )
            .await
            .unwrap();
        store
            .write_advisories(
                "osv:Ubuntu",
                Source::Osv,
                WriteMode::Upsert,
                &[(ubuntu, provenance(Source::Osv, "CVE-2024-0727.json"))],
                None,
            )
            .await
            .unwrap();
        let found = store
            .advisories_for_package("almalinux", "9", "openssl-libs")
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{backend:?}");
        let p = found[0]
            .affected
            .iter()
            .find(|p| p.package == "openssl-libs")
            .unwrap();
        assert_eq!(p.fixed_version.as_deref(), Some("1:3.0.1-47.el9_1"));
        let jammy = store
            .advisories_for_package("ubuntu", "22.04", "edk2")
            .await
            .unwrap();
        assert_eq!(
            jammy[0]
                .affected
                .iter()
                .find(|p| p.package == "edk2" && p.ecosystem == "Ubuntu:22.04:LTS")
                .unwrap()
                .state,
            FixState::NotFixedYet
        );
        assert_eq!(
            store
                .advisories_for_cve("CVE-2023-0286")
                .await
                .unwrap()
                .len(),
            1
        );

        // The Debian tracker is a snapshot: a second import replaces the first.
        let tracker = debian::parse(
            &data("debian-tracker/osvdev-debian_security_tracker_mock.json"),
            "mock",
        )
        .unwrap();
        let items: Vec<_> = tracker
            .into_iter()
            .map(|a| (a, provenance(Source::DebianTracker, "mock")))
            .collect();
        store
            .write_advisories(
                "debian-tracker",
                Source::DebianTracker,
                WriteMode::Replace,
                &items,
                None,
            )
            .await
            .unwrap();
        // Replacing 3 records with 1 is refused by default (both counts named), allowed when
        // the operator says so.
        let refused = store
            .write_advisories(
                "debian-tracker",
                Source::DebianTracker,
                WriteMode::Replace,
                &items[..1],
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused.refused.as_deref(),
                Some(patchwarden_model::feed_guard::ReplaceRefused::Shrunk {
                    stored: 3,
                    new: 1,
                    ..
                })
            ),
            "{refused}"
        );
        store
            .clone()
            .with_replace_policy(patchwarden_model::feed_guard::ReplacePolicy {
                allow_shrink: true,
                ..Default::default()
            })
            .write_advisories(
                "debian-tracker",
                Source::DebianTracker,
                WriteMode::Replace,
                &items[..1],
                None,
            )
            .await
            .unwrap();
        let feeds = store.feeds().await.unwrap();
        let deb = feeds.iter().find(|f| f.feed == "debian-tracker").unwrap();
        assert_eq!(deb.record_count, 1, "{backend:?}");
        assert!(deb.last_success.is_some() && deb.last_error.is_none());

        // NVD, KEV, EPSS.
        let page = nvd::parse(
            &data("nvd/cve-objects/CVE-2023-4911.emba-2026-02-13.json"),
            "emba",
        )
        .unwrap();
        store
            .write_cves(
                "nvd",
                WriteMode::Upsert,
                &[(page.records[0].clone(), provenance(Source::Nvd, "emba"))],
                None,
            )
            .await
            .unwrap();
        // Every real NVD record in one batch: scored and unscored ones mixed (this once failed on
        // PostgreSQL through sqlx's NULL-float encoding; see batch.rs).
        let mut all = Vec::new();
        for dir in ["nvd/api2.0", "nvd/cve-objects"] {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/data")
                .join(dir);
            let mut files: Vec<_> = std::fs::read_dir(root)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            for f in files {
                let page =
                    nvd::parse(&std::fs::read(&f).unwrap(), &f.display().to_string()).unwrap();
                all.extend(
                    page.records
                        .into_iter()
                        .map(|r| (r, provenance(Source::Nvd, "all"))),
                );
            }
        }
        assert!(
            all.iter().any(|(r, _)| r.best_metric().is_none())
                && all.iter().any(|(r, _)| r.best_metric().is_some())
        );
        store
            .write_cves("nvd", WriteMode::Upsert, &all, None)
            .await
            .unwrap();
        // Enough copies (synthetic ids, CVE-2999-*) that one statement carries ~8,000 parameters.
        let copies: Vec<_> = (0..700)
            .map(|i| {
                let (mut r, p) = all[i % all.len()].clone();
                r.id = format!("CVE-2999-{i:07}");
                (r, p)
            })
            .collect();
        store
            .write_cves("nvd-synthetic", WriteMode::Upsert, &copies, None)
            .await
            .unwrap();
        assert!(store
            .cve("CVE-2024-0727")
            .await
            .unwrap()
            .unwrap()
            .metrics
            .is_empty());
        let cve = store.cve("CVE-2023-4911").await.unwrap().unwrap();
        assert_eq!(cve.best_metric().unwrap().computed_score, Some(7.8));
        let catalog = kev::parse(&data("kev/known_exploited_vulnerabilities.json"), "kev").unwrap();
        store
            .replace_kev("kev", &catalog, &provenance(Source::Kev, "kev"))
            .await
            .unwrap();
        assert_eq!(
            store.kev("CVE-2023-4911").await.unwrap().unwrap().due_date,
            "2023-12-12"
        );
        let snapshot = epss::parse_csv(
            &data("epss/epss_scores-2026-09-29.rows-subset.csv")[..],
            "epss",
        )
        .unwrap();
        store
            .replace_epss("epss", &snapshot, &provenance(Source::Epss, "epss"))
            .await
            .unwrap();
        assert_eq!(
            store
                .epss("CVE-2014-0160")
                .await
                .unwrap()
                .unwrap()
                .percentile,
            0.99997
        );
        let feeds = store.feeds().await.unwrap();
        let kev_state = feeds.iter().find(|f| f.feed == "kev").unwrap();
        assert_eq!(
            (kev_state.record_count, kev_state.data_version.as_deref()),
            (1404, Some("2025.08.25"))
        );

        // A failure is recorded without touching the data.
        store
            .record_failure("kev", Source::Kev, "HTTP 500 from the mirror")
            .await
            .unwrap();
        let kev_state = store
            .feeds()
            .await
            .unwrap()
            .into_iter()
            .find(|f| f.feed == "kev")
            .unwrap();
        assert_eq!(
            kev_state.last_error.as_deref(),
            Some("HTTP 500 from the mirror")
        );
        assert_eq!(kev_state.record_count, 1404);
        assert!(store.kev("CVE-2023-4911").await.unwrap().is_some());
        assert_eq!(store.backend(), backend);
        test_store.finish().await;
    }
}

#[tokio::test]
async fn sqlite_is_the_default_and_postgres_is_chosen_by_url() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-default");
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(dir.join("nested/dir/kb.db").to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert!(dir.join("nested/dir/kb.db").is_file());
    store.close().await;
    let quick = patchwarden_store::StoreOptions {
        connect_timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let err = Store::open_with("postgres://nobody:secret@127.0.0.1:1/none", &quick)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("postgres://nobody:***@127.0.0.1:1/none") && !err.contains("secret"),
        "{err}"
    );
}

/// Per-CVE feeds share ids across feeds: Alpine's v3.11 main and community both carry statements for
/// some CVEs (and every release repeats them). Both feeds keep their own statement; replacing one
/// leaves the other alone.
#[tokio::test]
async fn per_cve_feeds_share_ids_across_feeds() {
    use patchwarden_feeds::alpine;
    let main = alpine::parse_yaml(
        &data("alpine-secdb/alpine-secdb-repo-v3.11-main.yaml"),
        "main",
    )
    .unwrap();
    let community = alpine::parse_yaml(
        &data("alpine-secdb/alpine-secdb-repo-v3.11-community.yaml"),
        "community",
    )
    .unwrap();
    let shared: Vec<&str> = main
        .iter()
        .filter(|a| community.iter().any(|c| c.id == a.id))
        .map(|a| a.id.as_str())
        .collect();
    assert!(
        !shared.is_empty(),
        "the fixtures share CVE ids between main and community"
    );
    for test_store in stores("per_feed").await {
        let store = &test_store.store;
        let items = |list: &[patchwarden_model::Advisory]| -> Vec<_> {
            list.iter()
                .map(|a| (a.clone(), provenance(Source::AlpineSecdb, "secdb")))
                .collect()
        };
        for (feed, list) in [
            ("alpine-secdb:v3.11/main", &main),
            ("alpine-secdb:v3.11/community", &community),
        ] {
            store
                .write_advisories(
                    feed,
                    Source::AlpineSecdb,
                    WriteMode::Replace,
                    &items(list),
                    None,
                )
                .await
                .unwrap();
        }
        let both = store.advisories_for_cve(shared[0]).await.unwrap();
        assert_eq!(both.len(), 2, "{}: one statement per feed", shared[0]);
        // Replacing main again (and upserting into it) leaves community's statements alone.
        store
            .write_advisories(
                "alpine-secdb:v3.11/main",
                Source::AlpineSecdb,
                WriteMode::Replace,
                &items(&main),
                None,
            )
            .await
            .unwrap();
        store
            .write_advisories(
                "alpine-secdb:v3.11/main",
                Source::AlpineSecdb,
                WriteMode::Upsert,
                &items(&main[..1]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(store.advisories_for_cve(shared[0]).await.unwrap().len(), 2);
        assert_eq!(
            store
                .feed("alpine-secdb:v3.11/community")
                .await
                .unwrap()
                .unwrap()
                .record_count as usize,
            community.len()
        );
        test_store.finish().await;
    }
}

/// A SQLite store written by schema version 3 (before advisory ids became per feed) upgrades in
/// place: the rebuilt advisory table keeps every row and key, and the affected rows still point at
/// them. The version-3 database is made with the system's sqlite3 module from the migration files.
#[tokio::test]
async fn sqlite_store_from_schema_3_upgrades_with_its_data() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("upgrade-v3");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("v3.db");
    let migrations = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let script = r#"
import sqlite3, sys
db, m = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db)
c.execute("PRAGMA foreign_keys = ON")
c.execute("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
for v, name in [(1, "knowledge_base"), (2, "advisory_by_id"), (3, "finding_seen")]:
    c.executescript(open(f"{m}/000{v}_{name}.sql").read())
    c.execute("INSERT INTO schema_migrations VALUES (?, ?, 'test')", (v, name))
c.execute("INSERT INTO advisory (pk, feed, source, id, origin, sha256, fetched_at, doc) VALUES (7, 'osv:AlmaLinux', 'osv', 'ALSA-2023:0946', 'o', 's', 'f', '{}')")
c.execute("INSERT INTO affected (advisory_pk, distro, release, package, key_kind, state) VALUES (7, 'almalinux', '9', 'openssl-libs', 'binary', 'fixed')")
c.commit()
"#;
    let ok = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&db)
        .arg(&migrations)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("/usr/bin/python3 could not build the version-3 database");
        }
        eprintln!("SKIPPED: /usr/bin/python3 with sqlite3 is needed to build a version-3 database");
        return;
    }
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    assert_eq!(
        store.schema_versions().await.unwrap(),
        (1..=LATEST_VERSION).collect::<Vec<_>>()
    );
    let counts = store.counts().await.unwrap();
    assert!(counts.contains(&("advisory".to_owned(), 1)), "{counts:?}");
    assert!(counts.contains(&("affected".to_owned(), 1)), "{counts:?}");
    // The same id in another feed is now allowed.
    store
        .execute_raw("INSERT INTO advisory (feed, source, id, origin, sha256, fetched_at, doc) VALUES ('osv:other', 'osv', 'ALSA-2023:0946', 'o', 's', 'f', '{}')")
        .await
        .unwrap();
    // And foreign keys are enforced again after the migration.
    let err = store
        .execute_raw("INSERT INTO affected (advisory_pk, package, key_kind, state) VALUES (999, 'x', 'binary', 'fixed')")
        .await;
    assert!(err.is_err(), "a dangling reference must be refused");
    store.close().await;
}

/// What a host scan reads (`host_knowledge`: rusqlite on SQLite, the pool on PostgreSQL): only the
/// advisories naming the given packages in the release, the NVD/KEV/EPSS records of their CVEs, and
/// whether the release is known at all.
#[tokio::test]
async fn host_knowledge_reads_only_what_a_host_needs() {
    for test_store in stores("host_knowledge").await {
        let store = &test_store.store;
        let backend = store.backend();
        let mut items = Vec::new();
        for f in [
            "ALSA-2023_0946.json",
            "ALSA-2023_5453.json",
            "ALSA-2024_2394.json",
        ] {
            let a = osv::parse(&data(&format!("osv/almalinux9/{f}")), f).unwrap();
            items.push((a, provenance(Source::Osv, f)));
        }
        store
            .write_advisories(
                "osv:AlmaLinux",
                Source::Osv,
                WriteMode::Upsert,
                &items,
                None,
            )
            .await
            .unwrap();
        let page = nvd::parse(
            &data("nvd/cve-objects/CVE-2023-4911.emba-2026-02-13.json"),
            "nvd",
        )
        .unwrap();
        let cves: Vec<_> = page
            .records
            .into_iter()
            .map(|r| (r, provenance(Source::Nvd, "nvd")))
            .collect();
        store
            .write_cves("nvd", WriteMode::Upsert, &cves, None)
            .await
            .unwrap();
        let catalog = kev::parse(&data("kev/known_exploited_vulnerabilities.json"), "kev").unwrap();
        store
            .replace_kev("kev", &catalog, &provenance(Source::Kev, "kev"))
            .await
            .unwrap();

        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let glibc = store
            .host_knowledge("almalinux", "9", &names(&["glibc", "bash"]))
            .await
            .unwrap();
        let ids: Vec<&str> = glibc
            .advisories
            .iter()
            .map(|(_, _, a)| a.id.as_str())
            .collect();
        assert_eq!(ids, ["ALSA-2023:5453"], "{backend:?}");
        assert_eq!(glibc.advisories[0].0, "osv:AlmaLinux");
        assert!(glibc.release_known);
        assert!(
            glibc.cves.iter().any(|c| c.id == "CVE-2023-4911"),
            "{backend:?}"
        );
        assert!(
            glibc.kev.iter().any(|k| k.cve == "CVE-2023-4911"),
            "{backend:?}"
        );
        // An advisory naming two of the packages comes back once.
        let both = store
            .host_knowledge("almalinux", "9", &names(&["openssl", "openssl-libs"]))
            .await
            .unwrap();
        assert_eq!(both.advisories.len(), 1, "{backend:?}");
        // Nothing installed is named: no advisories, but the release is known.
        let none = store
            .host_knowledge("almalinux", "9", &names(&["zsh"]))
            .await
            .unwrap();
        assert!(
            none.advisories.is_empty() && none.release_known,
            "{backend:?}"
        );
        // Another release: unknown.
        let el8 = store
            .host_knowledge("almalinux", "8", &names(&["glibc"]))
            .await
            .unwrap();
        assert!(
            el8.advisories.is_empty() && !el8.release_known,
            "{backend:?}"
        );
        test_store.finish().await;
    }
}

/// Reads on SQLite go through idle rusqlite connections the store keeps open. They must close
/// before the pool, so that a writer is the last connection and checkpoints its log into the
/// database file: a reader left last keeps every write in the `-wal`, and every later read goes
/// through it (found by the debsecan benchmark: 1,209 page reads instead of 339).
#[tokio::test]
async fn closing_the_store_checkpoints_writes_made_beside_open_readers() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kb.db");
    let location = path.to_str().unwrap();
    Store::open(location).await.unwrap().close().await;
    // At the latest schema: the open itself reads the schema through a kept reader.
    let store = Store::open(location).await.unwrap();
    assert!(store.feeds().await.unwrap().is_empty());
    let catalog = kev::parse(&data("kev/known_exploited_vulnerabilities.json"), "kev").unwrap();
    store
        .replace_kev("kev", &catalog, &provenance(Source::Kev, "kev"))
        .await
        .unwrap();
    assert_eq!(
        store.feeds().await.unwrap().len(),
        1,
        "the reader sees the write"
    );
    store.close().await;
    let wal = dir.join("kb.db-wal");
    let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(left, 0, "{} still holds {left} bytes", wal.display());
    let reopened = Store::open(location).await.unwrap();
    assert_eq!(reopened.feeds().await.unwrap()[0].feed, "kev");
    reopened.close().await;
}
