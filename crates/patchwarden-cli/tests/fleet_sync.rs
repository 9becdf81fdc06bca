//! The scheduled feed sync across three real `patchwarden server` processes on one PostgreSQL,
//! against a local feed mirror (`PATCHWARDEN_FEED_URL_*`) that counts downloads: one sync per
//! interval between them, a sync longer than the lease is never started twice (its holder renews),
//! and when the holder is killed with SIGKILL in the middle of a sync another server takes over.
mod fleet;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet::*;
use support::*;

/// Seconds between syncs and of the lease, as given to the servers.
const EVERY: u64 = 2;
const LEASE: u64 = 6;

/// One download of the KEV catalog seen by the mirror.
#[derive(Clone, Debug)]
struct Download {
    started: Instant,
    /// When the answer was written (none: the request was held and never answered).
    answered: Option<Instant>,
}

/// A feed mirror over plain HTTP: `/kev.json` serves the real KEV fixture (ETag, 304 on a match),
/// the other feeds are 404 (their syncs fail at once, which the servers log and carry on). The
/// `hold`-th KEV request is held open until the test drops the sender it receives.
struct Mirror {
    url: String,
    downloads: Arc<Mutex<Vec<Download>>>,
    held: mpsc::Receiver<mpsc::Sender<()>>,
}

fn mirror(hold: usize) -> Mirror {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let kev = std::fs::read(fixtures().join("kev/known_exploited_vulnerabilities.json")).unwrap();
    let downloads: Arc<Mutex<Vec<Download>>> = Arc::default();
    let (held_tx, held) = mpsc::channel();
    let shared = downloads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (kev, downloads, held_tx) = (kev.clone(), shared.clone(), held_tx.clone());
            std::thread::spawn(move || serve(stream, &kev, &downloads, hold, &held_tx));
        }
    });
    Mirror {
        url,
        downloads,
        held,
    }
}

fn serve(
    mut stream: TcpStream,
    kev: &[u8],
    downloads: &Mutex<Vec<Download>>,
    hold: usize,
    held: &mpsc::Sender<mpsc::Sender<()>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(value.trim().to_owned());
            }
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    if path != "/kev.json" {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
    }
    let index = {
        let mut d = downloads.lock().unwrap();
        d.push(Download {
            started: Instant::now(),
            answered: None,
        });
        d.len()
    };
    if index == hold {
        let (release, wait) = mpsc::channel::<()>();
        held.send(release).unwrap();
        // Until the test drops the sender (after killing the client): never answered.
        let _ = wait.recv();
        return;
    }
    let etag = "\"kev-fixture-1\"";
    let head = if if_none_match.as_deref() == Some(etag) {
        format!("HTTP/1.1 304 Not Modified\r\netag: {etag}\r\nconnection: close\r\n\r\n")
    } else {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\netag: {etag}\r\nconnection: close\r\n\r\n",
            kev.len()
        )
    };
    let _ = stream.write_all(head.as_bytes());
    if head.starts_with("HTTP/1.1 200") {
        let _ = stream.write_all(kev);
    }
    let _ = stream.flush();
    downloads.lock().unwrap()[index - 1].answered = Some(Instant::now());
}

fn start_syncing_server(db: &str, work: &Path, i: usize, mirror: &str) -> Child {
    let stderr = std::fs::File::create(work.join(format!("server-{i}.err"))).unwrap();
    let mut child = bin()
        .args([
            "--db",
            db,
            "server",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(work.join(format!("state-{i}")))
        .args(["--sync-interval-secs", &EVERY.to_string()])
        .args(["--sync-lease-secs", &LEASE.to_string()])
        .args(["--knowledge-poll-secs", "1"])
        .env("PATCHWARDEN_FEED_URL_KEV", format!("{mirror}/kev.json"))
        .env("PATCHWARDEN_FEED_URL_EPSS", format!("{mirror}/epss.csv.gz"))
        .env(
            "PATCHWARDEN_FEED_URL_DEBIAN_TRACKER",
            format!("{mirror}/tracker.json"),
        )
        .env("PATCHWARDEN_ALPINE_RELEASES", "")
        .env("PATCHWARDEN_OSV_ECOSYSTEMS", "")
        // Each sync's start is counted from the server's log: JSON lines, the sync target at info
        // whatever RUST_LOG the test runs under.
        .args(["--log-format", "json"])
        .env("RUST_LOG", "warn,patchwarden::sync=info")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start patchwarden server");
    // Started once it prints where it listens.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if line.starts_with("listening on ") {
            break;
        }
    }
    child
}

fn lease_holder(url: &str) -> Option<(u32, i64)> {
    let out = Command::new("psql")
        .arg(url)
        .args([
            "-Atc",
            "SELECT holder, last_run FROM scheduled_lease WHERE name = 'feed-sync'",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (holder, last_run) = text.trim().split_once('|')?;
    // hostname:pid:nanos
    let pid = holder.split(':').nth(1)?.parse().ok()?;
    Some((pid, last_run.parse().ok()?))
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn one_sync_per_interval_across_three_servers_and_failover_on_kill_9() {
    let Some(url) = postgres_schema("sync") else {
        return;
    };
    let work = scratch("fleet-sync");
    // The third KEV download is held: its holder is killed in the middle of that sync.
    let mirror = mirror(3);
    let mut servers: Vec<Child> = (0..3)
        .map(|i| start_syncing_server(&url, &work, i, &mirror.url))
        .collect();
    let downloads = || mirror.downloads.lock().unwrap().clone();

    let release = mirror
        .held
        .recv_timeout(Duration::from_secs(120))
        .expect("a third sync within two minutes");
    // The holder keeps renewing its lease: for twice the lease nobody starts another sync.
    std::thread::sleep(Duration::from_secs(2 * LEASE));
    assert_eq!(
        downloads().len(),
        3,
        "a sync started while the holder's (renewed) lease was current"
    );
    let (pid, last_run_before) = lease_holder(&url).expect("the lease is held");
    let victim = servers
        .iter()
        .position(|c| c.id() == pid)
        .unwrap_or_else(|| panic!("the lease holder {pid} is none of the servers"));
    servers[victim].kill().unwrap();
    servers[victim].wait().unwrap();
    let killed_at = Instant::now();
    drop(release);

    // Another server takes over once the dead holder's lease has run out, and syncs go on.
    wait_until("two syncs after the kill", Duration::from_secs(120), || {
        downloads().iter().filter(|d| d.answered.is_some()).count() >= 4
            && lease_holder(&url)
                .is_some_and(|(p, last_run)| p != pid && last_run > last_run_before)
    });
    for (i, server) in servers.iter_mut().enumerate() {
        if i != victim {
            server.kill().unwrap();
            server.wait().unwrap();
        }
    }

    let downloads = downloads();
    // Never two syncs at once: each download starts after the one before was answered, at
    // least the interval after its lease was let go (the completion is recorded in whole
    // seconds: one second of slack); the held one's successor only after the kill.
    for pair in downloads.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        match before.answered {
            Some(answered) => assert!(
                after.started > answered
                    && after.started.duration_since(before.started)
                        >= Duration::from_secs(EVERY - 1),
                "two syncs too close: {downloads:?}"
            ),
            None => assert!(after.started > killed_at, "{downloads:?}"),
        }
    }
    // Each sync the servers started downloaded the catalog once (the last one may have been
    // stopped before its download).
    let started: usize = (0..3)
        .map(|i| {
            std::fs::read_to_string(work.join(format!("server-{i}.err")))
                .unwrap()
                .matches(r#""message":"sync started""#)
                .count()
        })
        .sum();
    assert!(
        (downloads.len()..=downloads.len() + 1).contains(&started),
        "{started} syncs started, {} downloads",
        downloads.len()
    );
    // The catalog reached the store.
    let status: serde_json::Value = serde_json::from_str(&ok(
        &run(&["--db", &url, "feeds", "status", "--format", "json"]),
        "feeds status",
    ))
    .unwrap();
    let kev = status["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feed"] == "kev")
        .unwrap_or_else(|| panic!("no kev feed: {status}"));
    assert!(
        kev["records"].as_u64().unwrap() > 1000 && kev["last_success"].is_string(),
        "{kev}"
    );
}
