//! `Syncer` against a local HTTP server (a real TCP server on 127.0.0.1 serving the real feed files
//! with scripted answers): 200 with an ETag, 304 for a matching If-None-Match, 500, a body cut short,
//! a corrupt gzip and an oversized download. Each ends with the right data in the store and the right
//! error in the feed's state. Runs on SQLite and, when `PATCHWARDEN_TEST_POSTGRES` is set, PostgreSQL.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use patchwarden_feeds::FeedFormat;
use patchwarden_model::Source;
use patchwarden_store::testing::TestStore;
use patchwarden_sync::{FeedSpec, SyncOutcome, SyncSettings, Syncer};

/// One scripted answer: status, extra headers, body, and where to cut the body off (the declared
/// Content-Length stays the full length, as when a connection drops).
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    cut_at: Option<usize>,
}

/// Serves the replies in order, one connection each; returns the base URL and the request heads seen.
fn serve(replies: Vec<Reply>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for reply in replies {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).to_lowercase());
            let mut out = format!(
                "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                reply.status,
                reply.body.len()
            );
            for (k, v) in &reply.headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let _ = conn.write_all(out.as_bytes());
            let body = &reply.body[..reply.cut_at.unwrap_or(reply.body.len())];
            let _ = conn.write_all(body);
            let _ = conn.flush();
        }
    });
    (url, seen)
}

fn data(path: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data")
            .join(path),
    )
    .unwrap()
}

fn ok(body: Vec<u8>, etag: &str) -> Reply {
    Reply {
        status: 200,
        headers: vec![("ETag", etag.to_owned())],
        body,
        cut_at: None,
    }
}

async fn stores(test: &str) -> Vec<TestStore> {
    patchwarden_store::testing::stores(
        &format!("sync_{test}"),
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    )
    .await
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn kev_sync_lifecycle() {
    for (i, test_store) in stores("kev").await.into_iter().enumerate() {
        let store = &test_store.store;
        let catalog = data("kev/known_exploited_vulnerabilities.json");
        let half = catalog.len() / 2;
        let (base, seen) = serve(vec![
            ok(catalog.clone(), "\"v1\""),
            Reply { status: 304, headers: vec![("ETag", "\"v1\"".into())], body: Vec::new(), cut_at: None },
            Reply { status: 500, headers: vec![], body: b"upstream exploded".to_vec(), cut_at: None },
            Reply { status: 200, headers: vec![("ETag", "\"v2\"".into())], body: catalog.clone(), cut_at: Some(half) },
            ok(br#"{"catalogVersion": "x", "dateReleased": "y", "vulnerabilities": [{"cveID": "oops", "dateAdded": "2024-01-01", "dueDate": "2024-01-22"}]}"#.to_vec(), "\"v3\""),
        ]);
        let spec = FeedSpec {
            feed: "kev".into(),
            source: Source::Kev,
            format: FeedFormat::Kev,
            url: format!("{base}/kev.json"),
        };
        let work_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sync-work-{i}"));
        let syncer = Syncer::new(SyncSettings {
            work_dir: work_dir.clone(),
            ..Default::default()
        })
        .unwrap();

        assert_eq!(
            syncer.sync(store, &spec).await,
            SyncOutcome::Updated {
                records: 1404,
                bytes: catalog.len() as u64
            }
        );
        let state = store.feed("kev").await.unwrap().unwrap();
        assert_eq!(
            (state.record_count, state.etag.as_deref()),
            (1404, Some("\"v1\""))
        );

        assert_eq!(syncer.sync(store, &spec).await, SyncOutcome::NotModified);
        assert!(
            seen.lock().unwrap()[1].contains("if-none-match: \"v1\""),
            "{:?}",
            seen.lock().unwrap()[1]
        );

        let SyncOutcome::Failed { reason } = syncer.sync(store, &spec).await else {
            panic!("500 must fail")
        };
        assert!(reason.contains("HTTP 500"), "{reason}");
        let state = store.feed("kev").await.unwrap().unwrap();
        assert_eq!(
            (
                state.record_count,
                state
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("HTTP 500"))
            ),
            (1404, true)
        );

        let SyncOutcome::Failed { reason } = syncer.sync(store, &spec).await else {
            panic!("a cut body must fail")
        };
        assert!(
            reason.contains("broke off") || reason.contains("not a KEV catalog"),
            "{reason}"
        );
        assert!(
            store.kev("CVE-2023-4911").await.unwrap().is_some(),
            "the old catalog stays"
        );

        let SyncOutcome::Failed { reason } = syncer.sync(store, &spec).await else {
            panic!("a bad record must fail")
        };
        assert!(reason.contains("'oops' is not a CVE id"), "{reason}");
        let state = store.feed("kev").await.unwrap().unwrap();
        assert_eq!(
            (state.record_count, state.etag.as_deref()),
            (1404, Some("\"v1\"")),
            "validators of the stored data are kept"
        );
        // Nothing is left in the staging directory.
        assert_eq!(
            std::fs::read_dir(&work_dir).map(|d| d.count()).unwrap_or(0),
            0
        );
        test_store.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn epss_gzip_and_limits() {
    for (i, test_store) in stores("epss").await.into_iter().enumerate() {
        let store = &test_store.store;
        let csv = data("epss/epss_scores-2026-09-29.rows-subset.csv");
        let good = gzip(&csv);
        let mut corrupt = good.clone();
        let mid = corrupt.len() / 2;
        for b in &mut corrupt[mid..mid + 20] {
            *b ^= 0x5a;
        }
        // Intact text, damaged gzip trailer: only gzip's own CRC-32 check can tell.
        let mut bad_crc = good.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 0xff;
        let (base, _) = serve(vec![
            ok(good.clone(), "\"e1\""),
            ok(corrupt, "\"e2\""),
            ok(bad_crc, "\"e2b\""),
            ok(good.clone(), "\"e3\""),
        ]);
        let spec = FeedSpec {
            feed: "epss".into(),
            source: Source::Epss,
            format: FeedFormat::EpssCsv,
            url: format!("{base}/epss.csv.gz"),
        };
        let work_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sync-epss-{i}"));
        let syncer = Syncer::new(SyncSettings {
            work_dir: work_dir.clone(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            syncer.sync(store, &spec).await,
            SyncOutcome::Updated {
                records: 49,
                bytes: good.len() as u64
            }
        );

        let SyncOutcome::Failed { reason } = syncer.sync(store, &spec).await else {
            panic!("corrupt gzip must fail")
        };
        assert!(
            reason.contains("epss.csv.gz") && reason.contains("line "),
            "{reason}"
        );
        let SyncOutcome::Failed { reason } = syncer.sync(store, &spec).await else {
            panic!("a bad gzip checksum must fail")
        };
        assert!(reason.contains("cannot read"), "{reason}");
        assert_eq!(
            store.epss("CVE-2014-0160").await.unwrap().unwrap().score,
            0.99999
        );
        assert!(store
            .feed("epss")
            .await
            .unwrap()
            .unwrap()
            .last_error
            .is_some());

        let tiny = Syncer::new(SyncSettings {
            work_dir,
            max_bytes: 100,
            ..Default::default()
        })
        .unwrap();
        let SyncOutcome::Failed { reason } = tiny.sync(store, &spec).await else {
            panic!("over the limit must fail")
        };
        assert!(reason.contains("over the limit of 100"), "{reason}");
        assert_eq!(store.feed("epss").await.unwrap().unwrap().record_count, 49);
        test_store.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_mirror_is_a_recorded_failure() {
    let mut all = stores("down").await;
    let test_store = all.remove(0);
    let store = &test_store.store;
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = FeedSpec {
        feed: "debian-tracker".into(),
        source: Source::DebianTracker,
        format: FeedFormat::DebianTracker,
        url: format!("http://127.0.0.1:{port}/json"),
    };
    let syncer = Syncer::new(SyncSettings {
        work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sync-down"),
        ..Default::default()
    })
    .unwrap();
    let SyncOutcome::Failed { reason } = syncer.sync(store, &spec).await else {
        panic!()
    };
    assert!(reason.contains("request failed"), "{reason}");
    let state = store.feed("debian-tracker").await.unwrap().unwrap();
    assert_eq!((state.record_count, state.last_success), (0, None));
    test_store.finish().await;
    for other in all {
        other.finish().await;
    }
}

#[test]
fn feed_urls_are_configurable() {
    let env = |k: &str| match k {
        "PATCHWARDEN_FEED_URL_KEV" => Some("http://mirror.internal/kev.json".to_owned()),
        "PATCHWARDEN_ALPINE_RELEASES" => Some("v3.20".to_owned()),
        "PATCHWARDEN_FEED_URL_ALPINE_SECDB_V3_20_MAIN" => {
            Some("http://mirror.internal/alpine/main.json".to_owned())
        }
        _ => None,
    };
    let feeds = patchwarden_sync::default_feeds(env);
    let url = |f: &str| feeds.iter().find(|s| s.feed == f).map(|s| s.url.clone());
    assert_eq!(
        url("kev").as_deref(),
        Some("http://mirror.internal/kev.json")
    );
    assert_eq!(
        url("alpine-secdb:v3.20/main").as_deref(),
        Some("http://mirror.internal/alpine/main.json")
    );
    assert_eq!(
        url("alpine-secdb:v3.20/community").as_deref(),
        Some("https://secdb.alpinelinux.org/v3.20/community.json")
    );
    assert!(url("alpine-secdb:v3.19/main").is_none());
    assert_eq!(
        url("debian-tracker").as_deref(),
        Some("https://security-tracker.debian.org/tracker/data/json")
    );
}
