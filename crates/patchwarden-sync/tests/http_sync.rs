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
    let mut replies = std::collections::VecDeque::from(replies);
    serve_with(move |_| replies.pop_front())
}

/// Answers each request (its head, lower-cased) with what `answer` gives, until it gives `None`.
fn serve_with(
    mut answer: impl FnMut(&str) -> Option<Reply> + Send + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || loop {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        log.lock().unwrap().push(head.clone());
        let Some(reply) = answer(&head) else {
            return;
        };
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
                bytes: catalog.len() as u64,
                skipped: vec![]
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
                bytes: good.len() as u64,
                skipped: vec![]
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
        url("osv:Rocky Linux").as_deref(),
        Some("https://osv-vulnerabilities.storage.googleapis.com/Rocky%20Linux/all.zip")
    );
    assert_eq!(
        url("debian-tracker").as_deref(),
        Some("https://security-tracker.debian.org/tracker/data/json")
    );
}

/// A local stand-in for the NVD CVE API 2.0 serving the real records of `tests/data/nvd`: it pages by
/// `startIndex`/`resultsPerPage`, filters by `lastModStartDate`/`lastModEndDate`, and can be told to
/// answer one `startIndex` with a 500.
struct NvdStandIn {
    records: Vec<serde_json::Value>,
    fail_at_index: Option<u64>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

impl NvdStandIn {
    fn load() -> NvdStandIn {
        let mut records = Vec::new();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/nvd/api2.0");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let page: serde_json::Value =
                serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            for v in page["vulnerabilities"].as_array().unwrap() {
                if !records
                    .iter()
                    .any(|r: &serde_json::Value| r["cve"]["id"] == v["cve"]["id"])
                {
                    records.push(v.clone());
                }
            }
        }
        NvdStandIn {
            records,
            fail_at_index: None,
        }
    }

    fn answer(&self, head: &str) -> Reply {
        let target = head.split_whitespace().nth(1).unwrap_or("");
        let query: std::collections::HashMap<String, String> = target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v).to_uppercase()))
            .collect();
        let number = |k: &str| query.get(k).and_then(|v| v.parse::<u64>().ok());
        let (start, per_page) = (
            number("startindex").unwrap_or(0),
            number("resultsperpage").unwrap_or(2000),
        );
        if self.fail_at_index == Some(start) {
            return Reply {
                status: 500,
                headers: vec![],
                body: b"stand-in failure".to_vec(),
                cut_at: None,
            };
        }
        // Second resolution is enough here: compare "YYYY-MM-DDTHH:MM:SS".
        let second = |s: &str| s.get(..19).unwrap_or(s).to_owned();
        let from = query.get("lastmodstartdate").map(|s| second(s));
        let to = query.get("lastmodenddate").map(|s| second(s));
        let matching: Vec<&serde_json::Value> = self
            .records
            .iter()
            .filter(|r| {
                let modified = second(r["cve"]["lastModified"].as_str().unwrap());
                from.as_ref().is_none_or(|f| &modified >= f)
                    && to.as_ref().is_none_or(|t| &modified <= t)
            })
            .collect();
        let page: Vec<_> = matching
            .iter()
            .skip(start as usize)
            .take(per_page as usize)
            .collect();
        let body = serde_json::json!({
            "resultsPerPage": page.len(), "startIndex": start, "totalResults": matching.len(),
            "format": "NVD_CVE", "version": "2.0", "timestamp": "2026-11-22T00:00:00.000",
            "vulnerabilities": page,
        });
        ok(serde_json::to_vec(&body).unwrap(), "\"nvd\"")
    }
}

fn nvd_settings(base: &str) -> patchwarden_sync::nvd::NvdSettings {
    let url = format!("{base}/rest/json/cves/2.0");
    patchwarden_sync::nvd::NvdSettings::from_env(|k| match k {
        "PATCHWARDEN_FEED_URL_NVD" => Some(url.clone()),
        "PATCHWARDEN_NVD_API_KEY" => Some("test-key".into()),
        "PATCHWARDEN_NVD_PAGE_SIZE" => Some("10".into()),
        "PATCHWARDEN_NVD_DELAY_MS" => Some("0".into()),
        "PATCHWARDEN_NVD_RETRIES" => Some("1".into()),
        _ => None,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn nvd_full_then_incremental_by_last_modified_window() {
    for (i, test_store) in stores("nvd").await.into_iter().enumerate() {
        let store = &test_store.store;
        let stand_in = Arc::new(Mutex::new(NvdStandIn::load()));
        let total = stand_in.lock().unwrap().records.len();
        let server_side = stand_in.clone();
        let (base, seen) = serve_with(move |head| Some(server_side.lock().unwrap().answer(head)));
        let settings = nvd_settings(&base);
        let syncer = Syncer::new(SyncSettings {
            work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sync-nvd-{i}")),
            ..Default::default()
        })
        .unwrap();

        // Full: no cursor yet, every page of 10, the key in the apiKey header.
        let SyncOutcome::Updated { records, .. } = syncer.sync_nvd(store, &settings).await else {
            panic!("the full sync must succeed")
        };
        assert_eq!(records, total);
        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), total.div_ceil(10));
        assert!(requests.iter().all(|r| r.contains("apikey: test-key")
            && r.contains("resultsperpage=10")
            && !r.contains("lastmodstartdate")));
        assert!(requests[1].contains("startindex=10"), "{}", requests[1]);
        let state = store.feed("nvd").await.unwrap().unwrap();
        assert_eq!(state.record_count as usize, total);
        let cursor = state.data_version.clone().expect("a cursor after a sync");
        let xz = store.cve("CVE-2024-3094").await.unwrap().unwrap();
        assert_eq!(xz.best_metric().unwrap().computed_score, Some(10.0));

        // Upstream changes one record (the stand-in moves its lastModified to now); the next sync
        // asks only for the window since the cursor and gets just that record.
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.3f")
            .to_string();
        for r in &mut stand_in.lock().unwrap().records {
            if r["cve"]["id"] == "CVE-2024-3094" {
                r["cve"]["lastModified"] = now.clone().into();
            }
        }
        seen.lock().unwrap().clear();
        let SyncOutcome::Updated { records, .. } = syncer.sync_nvd(store, &settings).await else {
            panic!("the incremental sync must succeed")
        };
        assert_eq!(records, 1);
        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), 1);
        let expected_start = cursor
            .parse::<jiff::Timestamp>()
            .unwrap()
            .strftime("lastmodstartdate=%Y-%m-%dt%H%%3a%M%%3a%S.%3f%%2b00%%3a00")
            .to_string();
        assert!(
            requests[0].contains(&expected_start),
            "{} vs {expected_start}",
            requests[0]
        );
        assert_eq!(
            store
                .cve("CVE-2024-3094")
                .await
                .unwrap()
                .unwrap()
                .last_modified,
            Some(now)
        );
        assert_eq!(
            store.feed("nvd").await.unwrap().unwrap().record_count as usize,
            total
        );

        // A cursor 300 days old: three windows of at most 120 days, back to back.
        store
            .execute_raw("UPDATE feed SET data_version = '2026-01-01T00:00:00Z' WHERE feed = 'nvd'")
            .await
            .unwrap();
        seen.lock().unwrap().clear();
        assert!(matches!(
            syncer.sync_nvd(store, &settings).await,
            SyncOutcome::Updated { .. }
        ));
        let starts: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.split("lastmodstartdate=").nth(1).unwrap()[..10].to_owned())
            .collect();
        assert_eq!(starts[..2], ["2026-01-01", "2026-05-01"]);
        assert!(starts.len() >= 3, "{starts:?}");

        // A page that keeps failing: nothing written, the cursor stays, the error is recorded.
        let before = store.feed("nvd").await.unwrap().unwrap();
        {
            let mut s = stand_in.lock().unwrap();
            s.fail_at_index = Some(10);
        }
        let full = patchwarden_sync::nvd::NvdSettings {
            full: true,
            ..settings.clone()
        };
        let SyncOutcome::Failed { reason } = syncer.sync_nvd(store, &full).await else {
            panic!("a failing page must fail the sync")
        };
        assert!(
            reason.contains("HTTP 500")
                && reason.contains("startIndex=10")
                && reason.contains("2 attempt"),
            "{reason}"
        );
        let after = store.feed("nvd").await.unwrap().unwrap();
        assert_eq!(
            (after.record_count, after.data_version),
            (before.record_count, before.data_version)
        );
        assert!(after.last_error.unwrap().contains("HTTP 500"));
        test_store.finish().await;
    }
}

/// Builds a zip the way osv.dev publishes `all.zip`: one JSON file per advisory.
fn osv_zip(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in files {
        zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn osv_all_zip_replaces_the_ecosystem() {
    for (i, test_store) in stores("osv").await.into_iter().enumerate() {
        let store = &test_store.store;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/osv/almalinux9");
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        let real = files.len();
        let first_release = osv_zip(&files);
        // The next release drops one advisory and carries one malformed entry.
        let mut next = files[1..].to_vec();
        next.push((
            "ALSA-BROKEN.json".into(),
            br#"{"id": "ALSA-BROKEN", "affected": 7}"#.to_vec(),
        ));
        let next_release = osv_zip(&next);
        let mut corrupt = next_release.clone();
        let mid = corrupt.len() / 2;
        for b in &mut corrupt[mid..mid + 64] {
            *b ^= 0x33;
        }
        let (base, seen) = serve(vec![
            ok(first_release, "\"o1\""),
            Reply {
                status: 304,
                headers: vec![],
                body: Vec::new(),
                cut_at: None,
            },
            ok(corrupt, "\"o2\""),
            ok(next_release, "\"o3\""),
        ]);
        let spec = FeedSpec {
            feed: "osv:AlmaLinux".into(),
            source: Source::Osv,
            format: FeedFormat::Osv,
            url: format!("{base}/AlmaLinux/all.zip"),
        };
        let syncer = Syncer::new(SyncSettings {
            work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sync-osv-{i}")),
            ..Default::default()
        })
        .unwrap();
        let SyncOutcome::Updated {
            records, skipped, ..
        } = syncer.sync(store, &spec).await
        else {
            panic!("the archive must load")
        };
        assert_eq!((records, skipped.len()), (real, 0));
        let dropped_id = {
            let doc: serde_json::Value = serde_json::from_slice(&files[0].1).unwrap();
            doc["id"].as_str().unwrap().to_owned()
        };
        assert_eq!(
            store
                .feed("osv:AlmaLinux")
                .await
                .unwrap()
                .unwrap()
                .record_count as usize,
            real
        );

        assert_eq!(syncer.sync(store, &spec).await, SyncOutcome::NotModified);
        assert!(seen.lock().unwrap()[1].contains("if-none-match: \"o1\""));

        let SyncOutcome::Failed { reason } = syncer.sync(store, &spec).await else {
            panic!("a corrupt archive must fail")
        };
        assert!(reason.contains("all.zip"), "{reason}");
        assert_eq!(
            store
                .feed("osv:AlmaLinux")
                .await
                .unwrap()
                .unwrap()
                .record_count as usize,
            real
        );

        let SyncOutcome::Updated {
            records, skipped, ..
        } = syncer.sync(store, &spec).await
        else {
            panic!("the next release must load")
        };
        assert_eq!(records, real - 1);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("ALSA-BROKEN"), "{skipped:?}");
        let state = store.feed("osv:AlmaLinux").await.unwrap().unwrap();
        assert_eq!(state.record_count as usize, real - 1);
        let all = store.all_advisories().await.unwrap();
        assert!(
            !all.iter().any(|(_, _, a)| a.id == dropped_id),
            "{dropped_id} was withdrawn upstream"
        );
        test_store.finish().await;
    }
}

/// A mirror serving `{}` for the Debian tracker, or an Alpine secdb whose `packages` is empty,
/// once replaced the whole feed with nothing (and every host's findings vanished at the next
/// knowledge poll). Now the replacement is refused, named with both counts, recorded as the feed's
/// error, and the stored data stays — unless the operator allows the shrink.
#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_serving_empty_data_cannot_wipe_a_feed() {
    for (i, test_store) in stores("wipe").await.into_iter().enumerate() {
        let store = &test_store.store;
        let tracker = data("debian-tracker/vunnel-debian.json");
        let alpine = data("alpine-secdb/claircore-v3.15-main-truncated.json");
        let mut alpine_empty: serde_json::Value = serde_json::from_slice(&alpine).unwrap();
        alpine_empty["packages"] = serde_json::json!([]);
        let alpine_empty = serde_json::to_vec(&alpine_empty).unwrap();
        let (base, _) = serve(vec![
            ok(tracker.clone(), "\"t1\""),
            ok(b"{}".to_vec(), "\"t2\""),
            ok(alpine.clone(), "\"a1\""),
            ok(alpine_empty.clone(), "\"a2\""),
            ok(b"{}".to_vec(), "\"t3\""),
        ]);
        let work_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sync-wipe-{i}"));
        let syncer = Syncer::new(SyncSettings {
            work_dir,
            ..Default::default()
        })
        .unwrap();
        let debian = FeedSpec {
            feed: "debian-tracker".into(),
            source: Source::DebianTracker,
            format: FeedFormat::DebianTracker,
            url: format!("{base}/debian.json"),
        };
        let SyncOutcome::Updated { records, .. } = syncer.sync(store, &debian).await else {
            panic!("the real tracker loads")
        };
        assert!(records > 1, "{records}");
        let SyncOutcome::Failed { reason } = syncer.sync(store, &debian).await else {
            panic!("an empty tracker must not replace the feed")
        };
        assert!(
            reason.contains(&format!(
                "refusing to replace debian-tracker: the new data holds 0 records where {records} are stored"
            )),
            "{reason}"
        );
        let state = store.feed("debian-tracker").await.unwrap().unwrap();
        assert_eq!(state.record_count, records as i64);
        assert!(state.is_failing(), "{state:?}");

        let alpine_spec = FeedSpec {
            feed: "alpine-secdb:v3.15/main".into(),
            source: Source::AlpineSecdb,
            format: FeedFormat::AlpineJson,
            url: format!("{base}/v3.15/main.json"),
        };
        let SyncOutcome::Updated {
            records: alpine_records,
            ..
        } = syncer.sync(store, &alpine_spec).await
        else {
            panic!("the real secdb loads")
        };
        let SyncOutcome::Failed { reason } = syncer.sync(store, &alpine_spec).await else {
            panic!("an empty secdb must not replace the feed")
        };
        assert!(reason.contains("where"), "{reason}");
        let state = store
            .feed("alpine-secdb:v3.15/main")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.record_count, alpine_records as i64);

        // The operator's explicit permission lets the empty tracker through.
        let allowing =
            store
                .clone()
                .with_replace_policy(patchwarden_model::feed_guard::ReplacePolicy {
                    allow_shrink: true,
                    ..Default::default()
                });
        assert!(matches!(
            syncer.sync(&allowing, &debian).await,
            SyncOutcome::Updated { records: 0, .. }
        ));
        assert_eq!(
            store
                .feed("debian-tracker")
                .await
                .unwrap()
                .unwrap()
                .record_count,
            0
        );
        test_store.finish().await;
    }
}

/// Accepts connections and reads each request's head, then sends `head_and_part` (when given)
/// and nothing more, holding the connection open: a mirror that stalls.
fn stalling_server(head_and_part: Option<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((mut conn, _)) = listener.accept() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            if let Some(bytes) = &head_and_part {
                let _ = conn.write_all(bytes);
                let _ = conn.flush();
            }
            held.push(conn);
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_that_stops_sending_fails_after_the_stall_timeout_not_the_whole_timeout() {
    let catalog = data("kev/known_exploited_vulnerabilities.json");
    let mut part = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        catalog.len()
    )
    .into_bytes();
    part.extend_from_slice(&catalog[..1000]);
    let silent = stalling_server(None);
    let stalled = stalling_server(Some(part));
    for test_store in stores("stall").await {
        let store = &test_store.store;
        let syncer = Syncer::new(SyncSettings {
            stall_timeout: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(3600),
            work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sync-work-stall"),
            ..Default::default()
        })
        .unwrap();
        for (base, says) in [
            (&silent, "the mirror sent nothing for 1 s (stall timeout"),
            (
                &stalled,
                "the mirror sent nothing for 1 s after 1000 bytes (stall timeout",
            ),
        ] {
            let spec = FeedSpec {
                feed: "kev".into(),
                source: Source::Kev,
                format: FeedFormat::Kev,
                url: format!("{base}/kev.json"),
            };
            let SyncOutcome::Failed { reason } = syncer.sync(store, &spec).await else {
                panic!("a stalled download succeeded");
            };
            assert!(reason.contains(says), "{reason}");
            let state = store
                .feed("kev")
                .await
                .unwrap()
                .expect("the failure is recorded");
            assert!(
                state
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains(says)),
                "{state:?}"
            );
            assert_eq!(state.record_count, 0, "nothing written");
        }
    }
}

/// The documents of a `.tar.zst` archive by path (read here with the same crates, independently of
/// the sync's reader: entry names and bytes).
fn archive_documents(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let decoder = ruzstd::decoding::StreamingDecoder::new(bytes).unwrap();
    let mut archive = tar::Archive::new(decoder);
    let mut out = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            out.insert(name, content);
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Red Hat's VEX directory as a mirror serves it: `archive_latest.txt`, the real archive (Red
/// Hat's documents of 2023, `tests/data/SOURCES.md`), `changes.csv` and `deletions.csv` (rows
/// written here, in Red Hat's format) and the changed documents (real ones from tests/data).
/// First sync: the archive, then the rows after its date (a deletion removes a document the
/// archive holds, a change adds one); each record cites its own file and digest. Then: nothing
/// newer is not modified; newer rows are fetched one by one (older ones never), a deletion
/// removes; a row that is not a document path fails the sync naming the line, nothing lost.
#[tokio::test(flavor = "multi_thread")]
async fn redhat_vex_archive_then_changes_and_deletions() {
    for (i, test_store) in stores("vex").await.into_iter().enumerate() {
        let store = &test_store.store;
        let archive = data("redhat/csaf-vex-archive/csaf_vex_2023-10-31.tar.zst");
        let pam = data("redhat/csaf-vex/cve-2024-10041.json");
        let curl = data("redhat/csaf-vex/cve-2023-38545.json");
        let index = Arc::new(Mutex::new((
            // changes.csv: one document after the archive's date, one before (already in it).
            "\"2024/cve-2024-10041.json\",\"2025-01-10T00:00:00+00:00\"\n\
             \"2023/cve-2023-0049.json\",\"2023-10-01T00:00:00+00:00\"\n"
                .to_owned(),
            // deletions.csv: a document the archive holds, withdrawn after it was built.
            "\"2023/cve-2023-0045.json\",\"2024-02-01T00:00:00+00:00\"\n".to_owned(),
        )));
        let served = index.clone();
        let (archive_bytes, pam_bytes, curl_bytes) = (archive.clone(), pam.clone(), curl.clone());
        let (base, seen) = serve_with(move |head| {
            let path = head.split_whitespace().nth(1)?.to_owned();
            let (changes, deletions) = served.lock().unwrap().clone();
            let body = match path.as_str() {
                "/vex/archive_latest.txt" => b"csaf_vex_2023-10-31.tar.zst\n".to_vec(),
                "/vex/csaf_vex_2023-10-31.tar.zst" => archive_bytes.clone(),
                "/vex/changes.csv" => changes.into_bytes(),
                "/vex/deletions.csv" => deletions.into_bytes(),
                "/vex/2024/cve-2024-10041.json" => pam_bytes.clone(),
                "/vex/2023/cve-2023-38545.json" => curl_bytes.clone(),
                _ => {
                    return Some(Reply {
                        status: 404,
                        headers: vec![],
                        body: b"no such file".to_vec(),
                        cut_at: None,
                    })
                }
            };
            Some(ok(body, "\"x\""))
        });
        let spec = FeedSpec {
            feed: "redhat-vex".into(),
            source: Source::RedhatVex,
            format: FeedFormat::RedhatVex,
            url: format!("{base}/vex/"),
        };
        let syncer = Syncer::new(SyncSettings {
            work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sync-vex-{i}")),
            ..Default::default()
        })
        .unwrap();
        let requested = |from: usize| -> Vec<String> {
            seen.lock().unwrap()[from..]
                .iter()
                .filter_map(|h| h.split_whitespace().nth(1).map(str::to_owned))
                .collect()
        };
        let ids = || async {
            let mut ids: Vec<(String, String, String)> = store
                .all_advisories()
                .await
                .unwrap()
                .into_iter()
                .filter(|(feed, _, _)| feed == "redhat-vex")
                .map(|(_, p, a)| (a.id, p.origin, p.sha256))
                .collect();
            ids.sort();
            ids
        };

        let outcome = syncer.sync(store, &spec).await;
        let SyncOutcome::Updated { skipped, .. } = &outcome else {
            panic!("the first sync must load the archive: {outcome:?}")
        };
        assert!(skipped.is_empty(), "{skipped:?}");
        let first = requested(0);
        assert!(
            first.contains(&"/vex/csaf_vex_2023-10-31.tar.zst".to_owned()),
            "{first:?}"
        );
        assert!(
            first.contains(&"/vex/2024/cve-2024-10041.json".to_owned()),
            "{first:?}"
        );
        assert!(
            !first.contains(&"/vex/2023/cve-2023-0049.json".to_owned()),
            "a change older than the archive is in it already: {first:?}"
        );
        let documents = archive_documents(&archive);
        let stored = ids().await;
        let names: Vec<&str> = stored.iter().map(|(id, _, _)| id.as_str()).collect();
        // 0044 has no RHEL entry (kept out), 0045 was deleted after the archive.
        assert_eq!(
            names,
            [
                "CVE-2023-0030",
                "CVE-2023-0049",
                "CVE-2023-0051",
                "CVE-2024-10041"
            ]
        );
        for (id, origin, sha) in &stored {
            if id == "CVE-2024-10041" {
                assert_eq!(origin, &format!("{base}/vex/2024/cve-2024-10041.json"));
                assert_eq!(sha, &sha256_hex(&pam));
            } else {
                let entry = format!("2023/{}.json", id.to_lowercase());
                assert_eq!(
                    origin,
                    &format!("{base}/vex/csaf_vex_2023-10-31.tar.zst!{entry}")
                );
                assert_eq!(sha, &sha256_hex(&documents[&entry]), "{id}");
            }
        }
        let state = store.feed("redhat-vex").await.unwrap().unwrap();
        assert_eq!(state.record_count, 4);
        assert_eq!(state.data_version.as_deref(), Some("2025-01-10T00:00:00Z"));

        // Nothing newer than the cursor: not modified, no document fetched.
        let before = seen.lock().unwrap().len();
        assert_eq!(syncer.sync(store, &spec).await, SyncOutcome::NotModified);
        assert!(
            requested(before).iter().all(|p| p.ends_with(".csv")),
            "{:?}",
            requested(before)
        );

        // Newer rows: one changed document fetched, one deletion applied; older rows not fetched.
        {
            let mut idx = index.lock().unwrap();
            idx.0.insert_str(
                0,
                "\"2023/cve-2023-38545.json\",\"2025-02-01T00:00:00+00:00\"\n",
            );
            idx.1.insert_str(
                0,
                "\"2023/cve-2023-0051.json\",\"2025-02-02T00:00:00+00:00\"\n",
            );
        }
        let before = seen.lock().unwrap().len();
        let outcome = syncer.sync(store, &spec).await;
        assert!(
            matches!(&outcome, SyncOutcome::Updated { skipped, .. } if skipped.is_empty()),
            "{outcome:?}"
        );
        let fetched: Vec<String> = requested(before)
            .into_iter()
            .filter(|p| p.ends_with(".json") || p.ends_with(".zst"))
            .collect();
        assert!(
            fetched.contains(&"/vex/2023/cve-2023-38545.json".to_owned()),
            "{fetched:?}"
        );
        assert!(
            !fetched
                .iter()
                .any(|p| p.contains("0049") || p.ends_with(".zst")),
            "{fetched:?}"
        );
        let names: Vec<String> = ids().await.into_iter().map(|(id, _, _)| id).collect();
        assert_eq!(
            names,
            [
                "CVE-2023-0030",
                "CVE-2023-0049",
                "CVE-2023-38545",
                "CVE-2024-10041"
            ]
        );
        let state = store.feed("redhat-vex").await.unwrap().unwrap();
        assert_eq!(state.data_version.as_deref(), Some("2025-02-02T00:00:00Z"));

        // A row that is not a document path (it would become a URL elsewhere): refused, named,
        // nothing changed.
        index.lock().unwrap().0.insert_str(
            0,
            "\"2025/cve-2025-0001.json\",\"2025-03-01T00:00:00+00:00\"\n\"../../etc/cve-2025-2.json\",\"2025-03-01T00:00:00+00:00\"\n",
        );
        let SyncOutcome::Failed { reason } = syncer.sync(store, &spec).await else {
            panic!("a bad index row must fail the sync")
        };
        assert!(
            reason.contains("changes.csv line 2") && reason.contains("not a VEX document path"),
            "{reason}"
        );
        assert_eq!(ids().await.len(), 4);
        let state = store.feed("redhat-vex").await.unwrap().unwrap();
        assert_eq!(state.data_version.as_deref(), Some("2025-02-02T00:00:00Z"));
        assert!(state.last_error.is_some());
        test_store.finish().await;
    }
}
