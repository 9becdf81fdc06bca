//! `patchwarden-loadgen` (dev tool): simulates many agents against a patchwarden server over
//! loopback and reports throughput and latency (docs/benchmarks.md, "Fleet server").
//!
//! Inventories are **synthetic, generated from a real one**: the packages of a real inventory report
//! (`patchwarden inventory --format json`), padded to `--packages` with names from a real package
//! name list (one per line, e.g. a Debian `status` file's names), each host's versions varied so that
//! hosts share most (package, version) pairs but not all — as a real fleet does. Hostnames are
//! `loadgen-N`.
//!
//! Phases: enroll `--hosts` agents, a first-inventory burst (every host sends its full inventory
//! once), then `--rounds` steady-state intervals in which every host checks in once and
//! `--change-percent` of them with a changed inventory (one package upgraded), the rest heartbeats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use patchwarden_model::fleet::{
    inventory_digest, CheckIn, CheckInAck, CheckInResult, EnrollRequest, EnrollResponse,
};
use patchwarden_model::{InstalledPackage, Inventory};

#[derive(Parser)]
struct Args {
    /// The server, e.g. https://127.0.0.1:8443.
    #[arg(long)]
    server: String,
    /// The server's CA certificate (PEM).
    #[arg(long)]
    ca: std::path::PathBuf,
    /// An enrollment token with at least --hosts uses.
    #[arg(long)]
    token: String,
    /// A real inventory report to start from.
    #[arg(long)]
    inventory: std::path::PathBuf,
    /// Real package names to pad inventories with (one per line).
    #[arg(long)]
    names: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 1000)]
    hosts: usize,
    /// Packages per inventory.
    #[arg(long, default_value_t = 1000)]
    packages: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Steady-state intervals after the burst.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 1.0)]
    change_percent: f64,
    /// Seconds to wait between the burst and the steady state (lets the server finish computing
    /// the burst's findings, as a fleet past its first evaluation has).
    #[arg(long, default_value_t = 0)]
    pause_secs: u64,
}

struct Host {
    secret: String,
    inventory: Inventory,
    digest: String,
}

fn inventories(
    base: &Inventory,
    names: &[String],
    hosts: usize,
    packages: usize,
) -> Vec<Inventory> {
    let mut template = base.clone();
    let existing: std::collections::HashSet<String> =
        template.packages.iter().map(|p| p.name.clone()).collect();
    let model = template
        .packages
        .first()
        .cloned()
        .expect("the base inventory has packages");
    for name in names.iter().filter(|n| !existing.contains(*n)) {
        if template.packages.len() >= packages {
            break;
        }
        template.packages.push(InstalledPackage {
            name: name.clone(),
            source_name: name.clone(),
            version: "1.0-1".into(),
            source_version: "1.0-1".into(),
            ..model.clone()
        });
    }
    template.packages.truncate(packages);
    (0..hosts)
        .map(|i| {
            let mut inv = template.clone();
            inv.host.hostname = Some(format!("loadgen-{i}"));
            inv.host.machine_id = Some(format!("{i:032x}"));
            // Every 20th package differs between hosts in one of five variants: hosts share most
            // versions, not all.
            for (j, p) in inv.packages.iter_mut().enumerate() {
                if j % 20 == i % 20 {
                    let variant = format!("+lg{}", i % 5);
                    p.version.push_str(&variant);
                    p.source_version.push_str(&variant);
                }
            }
            inv
        })
        .collect()
}

/// Failed requests so far (the first few are printed).
static FAILURES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(phase: &str, n: usize, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let failed = FAILURES.swap(0, std::sync::atomic::Ordering::Relaxed);
    println!(
        "{phase}: {n} requests ({failed} failed) in {:.2} s = {:.0}/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
}

async fn post<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    body: Vec<u8>,
) -> Result<T, String> {
    let mut r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        r = r.bearer_auth(a);
    }
    let resp = r.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
    }
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// Runs `f` over `items` with `concurrency` in flight; returns each call's latency.
async fn drive<I, F, Fut>(items: Vec<I>, concurrency: usize, f: F) -> Vec<Duration>
where
    I: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let f = Arc::new(f);
    let queue = Arc::new(tokio::sync::Mutex::new(items.into_iter()));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (queue, f) = (queue.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some(item) = queue.lock().await.next() else {
                    break;
                };
                let started = Instant::now();
                if let Err(e) = f(item).await {
                    let n = FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n < 5 {
                        eprintln!("request failed: {e}");
                    }
                }
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("a worker"));
    }
    all
}

/// One check-in to send: the host's credential, the body, and the result it must get.
type Request = (String, Vec<u8>, CheckInResult);

/// Sends `requests` with `concurrency` in flight; an answer other than the expected result counts
/// as a failure. Returns each request's latency.
async fn check_ins(
    client: &reqwest::Client,
    server: &str,
    requests: Vec<Request>,
    concurrency: usize,
) -> Vec<Duration> {
    let (c, url) = (client.clone(), format!("{server}/v1/checkin"));
    drive(
        requests,
        concurrency,
        move |(secret, body, expected): Request| {
            let (c, url) = (c.clone(), url.clone());
            async move {
                let ack: CheckInAck = post(&c, &url, Some(&secret), body).await?;
                if ack.result != expected {
                    return Err(format!("expected {expected:?}, got {:?}", ack.result));
                }
                Ok(())
            }
        },
    )
    .await
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(&args.ca).map_err(|e| format!("{}: {e}", args.ca.display()))?;
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).map_err(|e| e.to_string())?])
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let base: Inventory = serde_json::from_slice(
        &std::fs::read(&args.inventory)
            .map_err(|e| format!("{}: {e}", args.inventory.display()))?,
    )
    .map_err(|e| format!("{}: {e}", args.inventory.display()))?;
    let names: Vec<String> = match &args.names {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("{}: {e}", p.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    let invs = inventories(&base, &names, args.hosts, args.packages);
    println!(
        "{} synthetic hosts (from {}), {} packages each",
        invs.len(),
        args.inventory.display(),
        invs[0].packages.len()
    );
    let server = args.server.trim_end_matches('/').to_owned();

    // Enrollment.
    let hosts: Arc<tokio::sync::Mutex<Vec<Option<Host>>>> = Arc::new(tokio::sync::Mutex::new(
        (0..invs.len()).map(|_| None).collect(),
    ));
    let started = Instant::now();
    let (c, s, t, h) = (
        client.clone(),
        server.clone(),
        args.token.clone(),
        hosts.clone(),
    );
    let lat = drive(
        invs.into_iter().enumerate().collect(),
        args.concurrency,
        move |(i, inv): (usize, Inventory)| {
            let (c, s, t, h) = (c.clone(), s.clone(), t.clone(), h.clone());
            async move {
                let body = serde_json::to_vec(&EnrollRequest {
                    token: t,
                    hostname: inv.host.hostname.clone().unwrap_or_default(),
                    machine_id: inv.host.machine_id.clone(),
                })
                .unwrap();
                let e: EnrollResponse = post(&c, &format!("{s}/v1/enroll"), None, body).await?;
                let digest = inventory_digest(&inv);
                h.lock().await[i] = Some(Host {
                    secret: e.host_secret,
                    inventory: inv,
                    digest,
                });
                Ok(())
            }
        },
    )
    .await;
    report("enrollment", lat.len(), started.elapsed(), lat);
    let mut hosts: Vec<Host> = hosts
        .lock()
        .await
        .drain(..)
        .map(|h| h.expect("every host enrolled"))
        .collect();

    // First inventories.
    let body_of = |host: &Host, inventory: bool, key: String| -> Vec<u8> {
        serde_json::to_vec(&CheckIn {
            idempotency_key: key,
            digest: host.digest.clone(),
            inventory: inventory.then(|| host.inventory.clone()),
            agent_version: "loadgen".into(),
        })
        .unwrap()
    };
    let bodies: Vec<Request> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            (
                h.secret.clone(),
                body_of(h, true, format!("burst-{i}")),
                CheckInResult::Stored,
            )
        })
        .collect();
    let bytes: usize = bodies.iter().map(|(_, b, _)| b.len()).sum();
    println!("burst: {:.1} MB of inventories", bytes as f64 / 1e6);
    let started = Instant::now();
    let lat = check_ins(&client, &server, bodies, args.concurrency).await;
    report("first-inventory burst", lat.len(), started.elapsed(), lat);

    if args.pause_secs > 0 {
        println!("pause: {} s", args.pause_secs);
        tokio::time::sleep(Duration::from_secs(args.pause_secs)).await;
    }
    // Steady state: every host once per round, change_percent of them changed.
    let every = (100.0 / args.change_percent.max(0.0001)).round().max(1.0) as usize;
    for round in 0..args.rounds {
        let mut bodies: Vec<Request> = Vec::with_capacity(hosts.len());
        for (i, h) in hosts.iter_mut().enumerate() {
            let key = format!("r{round}-{i}");
            let changed = (i + round) % every == 0;
            if changed {
                // One package upgraded: the host's new state, kept for its next heartbeats.
                let n = h.inventory.packages.len();
                let p = &mut h.inventory.packages[(i + round) % n];
                p.version.push_str(&format!("+u{round}"));
                h.digest = inventory_digest(&h.inventory);
            }
            let expected = if changed {
                CheckInResult::Stored
            } else {
                CheckInResult::Heartbeat
            };
            bodies.push((h.secret.clone(), body_of(h, changed, key), expected));
        }
        let started = Instant::now();
        let lat = check_ins(&client, &server, bodies, args.concurrency).await;
        report(
            &format!("steady round {round}"),
            lat.len(),
            started.elapsed(),
            lat,
        );
    }
    Ok(())
}
