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
//!
//! Memory stays small at 100,000 hosts: hosts fall into 20 package-list variants, each serialized
//! once with placeholders for the host's own strings (hostname, machine id, idempotency key,
//! digest) that are spliced in per request; only hosts with an upgrade carry their own list. The
//! digest a host sends is SHA-256 over its variant's inventory digest and its hostname — the
//! server stores an agent's digest as sent and compares heartbeats against it, so any digest that
//! is the same for the same state serves (hashing 100,000 full inventories would cost the load
//! generator a core-minute on the machine it shares with the server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use patchwarden_model::fleet::{
    inventory_digest, CheckIn, CheckInAck, CheckInResult, EnrollRequest, EnrollResponse,
};
use patchwarden_model::{InstalledPackage, Inventory};

#[derive(Parser)]
struct Args {
    /// The server, e.g. https://127.0.0.1:8443; repeated for several servers sharing one store
    /// (host N talks to server N modulo their number).
    #[arg(long, required = true)]
    server: Vec<String>,
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
    index: usize,
    /// Packages upgraded so far (steady rounds): position and suffix. Empty: the variant's list.
    upgrades: Vec<(usize, String)>,
    digest: String,
}

/// Hosts share one of this many package lists.
const VARIANTS: usize = 20;

/// The `VARIANTS` package-list variants: the base inventory's packages padded with real names
/// (none of them a name or source name of the base's packages);
/// every 20th package differs between variants (hosts share most versions, not all).
fn variants(base: &Inventory, names: &[String], packages: usize) -> Vec<Inventory> {
    let mut template = base.clone();
    // Padding names are neither a package nor the source of a package of the base: an advisory
    // on a padding name concerns only the hosts holding it (`tenth` below).
    let existing: std::collections::HashSet<String> = template
        .packages
        .iter()
        .flat_map(|p| [p.name.clone(), p.source_name.clone()])
        .collect();
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
    (0..VARIANTS)
        .map(|v| {
            let mut inv = template.clone();
            for (j, p) in inv.packages.iter_mut().enumerate() {
                if j % VARIANTS == v {
                    let variant = format!("+lg{}", v % 5);
                    p.version.push_str(&variant);
                    p.source_version.push_str(&variant);
                }
            }
            inv
        })
        .collect()
}

/// Host `i`'s inventory: its variant, its names, its upgrades.
fn inventory_of(variants: &[Inventory], i: usize, upgrades: &[(usize, String)]) -> Inventory {
    let mut inv = variants[i % VARIANTS].clone();
    inv.host.hostname = Some(hostname(i));
    inv.host.machine_id = Some(machine_id(i));
    for (at, suffix) in upgrades {
        inv.packages[*at].version.push_str(suffix);
    }
    inv
}

fn hostname(i: usize) -> String {
    format!("loadgen-{i}")
}

fn machine_id(i: usize) -> String {
    format!("{i:032x}")
}

/// The digest host `i` sends for `inventory_digest` of its variant (see the head of this file).
fn host_digest(variant_digest: &str, i: usize) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(variant_digest.as_bytes());
    h.update(hostname(i).as_bytes());
    patchwarden_model::fleet::hex(&h.finalize())
}

/// A check-in body serialized once with placeholders, and the order they appear in.
struct Splice {
    parts: Vec<Vec<u8>>,
    slots: Vec<Slot>,
}

#[derive(Clone, Copy)]
enum Slot {
    Key,
    Digest,
    Hostname,
    MachineId,
}

const PLACEHOLDERS: [(&str, Slot); 4] = [
    ("@@pw-loadgen-key@@", Slot::Key),
    ("@@pw-loadgen-digest@@", Slot::Digest),
    ("@@pw-loadgen-hostname@@", Slot::Hostname),
    ("@@pw-loadgen-machine-id@@", Slot::MachineId),
];

impl Splice {
    /// `inventory` with its host's strings replaced by placeholders (none: a heartbeat).
    fn new(inventory: Option<&Inventory>) -> Splice {
        let inventory = inventory.map(|inv| {
            let mut inv = inv.clone();
            inv.host.hostname = Some(PLACEHOLDERS[2].0.into());
            inv.host.machine_id = Some(PLACEHOLDERS[3].0.into());
            inv
        });
        let body = serde_json::to_vec(&CheckIn {
            idempotency_key: PLACEHOLDERS[0].0.into(),
            digest: PLACEHOLDERS[1].0.into(),
            inventory,
            agent_version: "loadgen".into(),
        })
        .unwrap();
        let mut found: Vec<(usize, usize, Slot)> = Vec::new();
        for (text, slot) in PLACEHOLDERS {
            let needle = text.as_bytes();
            let mut from = 0;
            while let Some(at) = body[from..].windows(needle.len()).position(|w| w == needle) {
                found.push((from + at, needle.len(), slot));
                from += at + needle.len();
            }
        }
        found.sort_by_key(|f| f.0);
        let (mut parts, mut slots, mut from) = (Vec::new(), Vec::new(), 0);
        for (at, len, slot) in found {
            parts.push(body[from..at].to_vec());
            slots.push(slot);
            from = at + len;
        }
        parts.push(body[from..].to_vec());
        Splice { parts, slots }
    }

    fn body(&self, i: usize, key: &str, digest: &str) -> Vec<u8> {
        let (name, mid) = (hostname(i), machine_id(i));
        let mut out = Vec::with_capacity(self.parts.iter().map(Vec::len).sum::<usize>() + 128);
        for (n, part) in self.parts.iter().enumerate() {
            out.extend_from_slice(part);
            if let Some(slot) = self.slots.get(n) {
                out.extend_from_slice(match slot {
                    Slot::Key => key.as_bytes(),
                    Slot::Digest => digest.as_bytes(),
                    Slot::Hostname => name.as_bytes(),
                    Slot::MachineId => mid.as_bytes(),
                });
            }
        }
        out
    }
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

/// One check-in to send: the host's credential, its body, and the result it must get.
struct Request {
    host: usize,
    secret: String,
    body: BodyOf,
    expected: CheckInResult,
}

/// A body: spliced from a shared serialization when sent, or made already.
enum BodyOf {
    Spliced {
        splice: Arc<Splice>,
        host: usize,
        key: String,
        digest: String,
    },
    Made(Vec<u8>),
}

impl BodyOf {
    fn bytes(self) -> Vec<u8> {
        match self {
            BodyOf::Spliced {
                splice,
                host,
                key,
                digest,
            } => splice.body(host, &key, &digest),
            BodyOf::Made(body) => body,
        }
    }
}

/// Sends `requests` with `concurrency` in flight; an answer other than the expected result counts
/// as a failure. Returns each request's latency.
async fn check_ins(
    client: &reqwest::Client,
    servers: &[String],
    requests: Vec<Request>,
    concurrency: usize,
) -> Vec<Duration> {
    let urls: Arc<Vec<String>> =
        Arc::new(servers.iter().map(|s| format!("{s}/v1/checkin")).collect());
    let c = client.clone();
    drive(requests, concurrency, move |r: Request| {
        let (c, urls) = (c.clone(), urls.clone());
        async move {
            let url = &urls[r.host % urls.len()];
            let ack: CheckInAck = post(&c, url, Some(&r.secret), r.body.bytes()).await?;
            if ack.result != r.expected {
                return Err(format!("expected {:?}, got {:?}", r.expected, ack.result));
            }
            Ok(())
        }
    })
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
    let variants = Arc::new(variants(&base, &names, args.packages));
    let variant_digests: Vec<String> = variants.iter().map(inventory_digest).collect();
    let splices: Vec<Arc<Splice>> = variants
        .iter()
        .map(|v| Arc::new(Splice::new(Some(v))))
        .collect();
    let heartbeat = Arc::new(Splice::new(None));
    // The packages only a tenth of the hosts hold at their variant version (variants 0 and 10:
    // `+lg0`), for a knowledge-base change that touches 10 % of the fleet.
    let tenth: Vec<&str> = [0, 10]
        .iter()
        .filter_map(|v| {
            variants[*v]
                .packages
                .iter()
                .enumerate()
                .find(|(j, p)| j % VARIANTS == *v && p.version == "1.0-1+lg0")
                .map(|(_, p)| p.source_name.as_str())
        })
        .collect();
    println!(
        "a tenth of the hosts hold {} at 1.0-1+lg0 or above",
        tenth.join(",")
    );
    println!(
        "{} synthetic hosts (from {}), {} packages each, {VARIANTS} package-list variants",
        args.hosts,
        args.inventory.display(),
        variants[0].packages.len()
    );
    let servers: Vec<String> = args
        .server
        .iter()
        .map(|s| s.trim_end_matches('/').to_owned())
        .collect();

    // Enrollment.
    let secrets: Arc<std::sync::Mutex<Vec<String>>> =
        Arc::new(std::sync::Mutex::new(vec![String::new(); args.hosts]));
    let started = Instant::now();
    let (c, s, t, sec) = (
        client.clone(),
        Arc::new(servers.clone()),
        args.token.clone(),
        secrets.clone(),
    );
    let lat = drive(
        (0..args.hosts).collect(),
        args.concurrency,
        move |i: usize| {
            let (c, s, t, sec) = (c.clone(), s.clone(), t.clone(), sec.clone());
            async move {
                let body = serde_json::to_vec(&EnrollRequest {
                    token: t,
                    hostname: hostname(i),
                    machine_id: Some(machine_id(i)),
                })
                .unwrap();
                let url = format!("{}/v1/enroll", s[i % s.len()]);
                let e: EnrollResponse = post(&c, &url, None, body).await?;
                sec.lock().unwrap()[i] = e.host_secret;
                Ok(())
            }
        },
    )
    .await;
    report("enrollment", lat.len(), started.elapsed(), lat);
    let secrets = std::mem::take(&mut *secrets.lock().unwrap());
    let mut hosts: Vec<Host> = secrets
        .into_iter()
        .enumerate()
        .map(|(i, secret)| Host {
            secret,
            index: i,
            upgrades: Vec::new(),
            digest: host_digest(&variant_digests[i % VARIANTS], i),
        })
        .collect();

    // First inventories.
    let bodies: Vec<Request> = hosts
        .iter()
        .map(|h| Request {
            host: h.index,
            secret: h.secret.clone(),
            body: BodyOf::Spliced {
                splice: splices[h.index % VARIANTS].clone(),
                host: h.index,
                key: format!("burst-{}", h.index),
                digest: h.digest.clone(),
            },
            expected: CheckInResult::Stored,
        })
        .collect();
    let bytes: usize = splices[0].parts.iter().map(Vec::len).sum::<usize>() * hosts.len();
    println!("burst: {:.1} MB of inventories", bytes as f64 / 1e6);
    let started = Instant::now();
    let lat = check_ins(&client, &servers, bodies, args.concurrency).await;
    report("first-inventory burst", lat.len(), started.elapsed(), lat);

    if args.pause_secs > 0 {
        println!("pause: {} s", args.pause_secs);
        tokio::time::sleep(Duration::from_secs(args.pause_secs)).await;
    }
    // Steady state: every host once per round, change_percent of them changed.
    let every = (100.0 / args.change_percent.max(0.0001)).round().max(1.0) as usize;
    for round in 0..args.rounds {
        let mut bodies: Vec<Request> = Vec::with_capacity(hosts.len());
        for h in hosts.iter_mut() {
            let i = h.index;
            let key = format!("r{round}-{i}");
            let changed = (i + round) % every == 0;
            let body = if changed {
                // One package upgraded: the host's new state, kept for its next heartbeats.
                let n = variants[0].packages.len();
                h.upgrades.push(((i + round) % n, format!("+u{round}")));
                let inv = inventory_of(&variants, i, &h.upgrades);
                h.digest = inventory_digest(&inv);
                BodyOf::Made(
                    serde_json::to_vec(&CheckIn {
                        idempotency_key: key,
                        digest: h.digest.clone(),
                        inventory: Some(inv),
                        agent_version: "loadgen".into(),
                    })
                    .unwrap(),
                )
            } else {
                BodyOf::Spliced {
                    splice: heartbeat.clone(),
                    host: i,
                    key,
                    digest: h.digest.clone(),
                }
            };
            let expected = if changed {
                CheckInResult::Stored
            } else {
                CheckInResult::Heartbeat
            };
            bodies.push(Request {
                host: i,
                secret: h.secret.clone(),
                body,
                expected,
            });
        }
        let started = Instant::now();
        let lat = check_ins(&client, &servers, bodies, args.concurrency).await;
        report(
            &format!("steady round {round}"),
            lat.len(),
            started.elapsed(),
            lat,
        );
    }
    Ok(())
}
