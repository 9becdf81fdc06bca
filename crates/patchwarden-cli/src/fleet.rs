//! The fleet from the command line: `patchwarden server`, the local administration commands
//! (`enroll-token create`, `user create`, `assets import` without `--server`), and the queries as a
//! client of a server (`hosts`, `host`, `findings`, `affected`, `summary` with `--server`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use patchwarden_deploy::config::DeployConfig;
use patchwarden_model::fleet::{AffectedHost, FleetSummary, HostFinding, HostSummary, Role};
use patchwarden_server::{Server, ServerConfig};
use patchwarden_store::Store;

#[derive(ClapArgs)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443", env = "PATCHWARDEN_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// Where the CA, the server certificate and their keys are kept (created on first start).
    #[arg(long, env = "PATCHWARDEN_SERVER_STATE")]
    pub state_dir: Option<PathBuf>,
    /// A name (DNS or IP) the generated server certificate is valid for (repeatable; default
    /// localhost, 127.0.0.1, ::1 and this host's name).
    #[arg(long = "tls-name")]
    pub tls_names: Vec<String>,
    /// Serve this certificate chain (PEM) instead of the generated one (with --tls-key, --tls-ca).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// The CA that signed --tls-cert: agents pin its fingerprint.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Largest request body accepted, in MiB (413 beyond).
    #[arg(long, default_value_t = 32, env = "PATCHWARDEN_MAX_BODY_MIB")]
    pub max_body_mib: usize,
    /// Seconds between agent check-ins (agents add jitter).
    #[arg(
        long,
        default_value_t = 3600,
        env = "PATCHWARDEN_CHECKIN_INTERVAL_SECS"
    )]
    pub checkin_interval_secs: u64,
    /// Hosts not seen for this many seconds are stale.
    #[arg(long, default_value_t = 259200, env = "PATCHWARDEN_STALE_AFTER_SECS")]
    pub stale_after_secs: u64,
    /// Seconds between feed syncs (0: never; `feeds sync` by hand or cron instead).
    #[arg(long, default_value_t = 21600, env = "PATCHWARDEN_SYNC_INTERVAL_SECS")]
    pub sync_interval_secs: u64,
    /// Seconds between applications of the knowledge base's change journal (feeds written by
    /// other processes: `feeds import`, another server); 0: only at start and after own syncs.
    #[arg(long, default_value_t = 60, env = "PATCHWARDEN_KNOWLEDGE_POLL_SECS")]
    pub knowledge_poll_secs: u64,
    /// Policy file (TOML) for due dates.
    #[arg(long, env = "PATCHWARDEN_POLICY")]
    pub policy: Option<PathBuf>,
    /// Deployment configuration (TOML): change policy, maintenance windows per host class, host
    /// profiles (hooks, health checks, reboot policy), rollout defaults. docs/deployment.md.
    #[arg(long, env = "PATCHWARDEN_DEPLOY_CONFIG")]
    pub deploy_config: Option<PathBuf>,
    /// Seconds between passes of the rollout driver over active changes (it also wakes on job
    /// reports and new findings).
    #[arg(long, default_value_t = 2, env = "PATCHWARDEN_ROLLOUT_TICK_SECS")]
    pub rollout_tick_secs: u64,
}

pub async fn server(store: Store, args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let mut tls_names = args.tls_names.clone();
    if tls_names.is_empty() {
        tls_names = ServerConfig::default().tls_names;
        if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
            let h = h.trim();
            if !h.is_empty() {
                tls_names.push(h.to_owned());
            }
        }
    }
    let deploy = match &args.deploy_config {
        Some(path) => DeployConfig::load(path).map_err(anyhow::Error::msg)?,
        None => DeployConfig::default(),
    };
    let config = ServerConfig {
        listen: args.listen,
        deploy,
        rollout_tick: Duration::from_secs(args.rollout_tick_secs.max(1)),
        state_dir: args
            .state_dir
            .clone()
            .unwrap_or_else(patchwarden_server::default_state_dir),
        tls_names,
        provided_certificates: args.tls_cert.as_ref().map(|cert| {
            patchwarden_server::tls::ProvidedCertificates {
                cert: cert.clone(),
                key: args.tls_key.clone().expect("clap requires it"),
                ca: args.tls_ca.clone().expect("clap requires it"),
            }
        }),
        max_body_bytes: args.max_body_mib.max(1) << 20,
        checkin_interval: Duration::from_secs(args.checkin_interval_secs.max(1)),
        stale_after: Duration::from_secs(args.stale_after_secs),
        policy: args.policy.clone(),
        knowledge_poll: Duration::from_secs(args.knowledge_poll_secs),
        ..Default::default()
    };
    let server = Server::bind(store.clone(), config)
        .await
        .map_err(anyhow::Error::msg)?;
    let started = server.started.clone();
    // Printed for the operator (and read by tests): one fact per line.
    let mut out = std::io::stdout().lock();
    // The listening line comes last: once it is out, the server accepts connections.
    if let Some(token) = &started.admin_token {
        writeln!(out, "admin token (shown once): {token}")?;
    }
    writeln!(out, "CA fingerprint: {}", started.ca_fingerprint)?;
    writeln!(out, "listening on https://{}", started.address)?;
    out.flush()?;
    drop(out);
    if args.sync_interval_secs > 0 {
        let state = server.knowledge();
        let every = Duration::from_secs(args.sync_interval_secs);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                sync_and_reevaluate(&state).await;
            }
        });
    }
    server.serve(patchwarden_server::shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

/// A scheduled sync of every feed; afterwards the hosts' findings are recomputed.
async fn sync_and_reevaluate(knowledge: &patchwarden_server::knowledge::KnowledgeWatcher) {
    let syncer = match patchwarden_sync::Syncer::new(patchwarden_sync::SyncSettings::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sync: {e}");
            return;
        }
    };
    for spec in patchwarden_sync::default_feeds(|k| std::env::var(k).ok()) {
        if let patchwarden_sync::SyncOutcome::Failed { reason } =
            syncer.sync(knowledge.store(), &spec).await
        {
            eprintln!("sync: {}: {reason}", spec.feed)
        }
    }
    // Each feed write journaled what it changed: only the hosts those changes touch are marked.
    knowledge.apply().await;
}

/// `--expires 24h`: seconds from `s`, `m`, `h`, `d` suffixes (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with s, m, h or d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (s, m, h, d)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?}: too long"))
}

fn parse_labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--label {pair:?}: expected key=value");
        };
        if k.is_empty() {
            bail!("--label {pair:?}: empty key");
        }
        labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(labels)
}

#[derive(Subcommand)]
pub enum EnrollTokenCommand {
    /// Create an enrollment token (printed once; the store keeps its digest).
    Create {
        /// Lifetime: `30m`, `24h`, `7d`.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// How many hosts may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: i64,
        /// A label every host enrolled with it gets (`key=value`, repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
}

pub async fn enroll_token(store: &Store, command: &EnrollTokenCommand) -> anyhow::Result<ExitCode> {
    let EnrollTokenCommand::Create {
        expires,
        uses,
        labels,
    } = command;
    let secs = parse_duration(expires).map_err(|e| anyhow::anyhow!("--expires {e}"))?;
    let labels = parse_labels(labels)?;
    let created =
        patchwarden_server::admin::create_enrollment_token(store, secs, *uses, &labels, "cli")
            .await
            .map_err(|e| anyhow::anyhow!("--{e}"))?;
    println!("{}", created.token);
    eprintln!("expires {}, {} use(s)", created.expires_at, created.uses);
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an API user; prints its token once.
    Create {
        name: String,
        #[arg(long)]
        role: String,
    },
}

pub async fn user(store: &Store, command: &UserCommand) -> anyhow::Result<ExitCode> {
    let UserCommand::Create { name, role } = command;
    let role: Role = role
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
    let user = patchwarden_server::admin::create_user(store, name, role).await?;
    println!("{}", user.token);
    Ok(ExitCode::SUCCESS)
}

/// How to reach a server as a user.
#[derive(ClapArgs, Clone)]
pub struct ServerConnection {
    /// The server (`https://host:8443`); without it the commands read the local store.
    #[arg(long, global = true, env = "PATCHWARDEN_SERVER")]
    pub server: Option<String>,
    /// A user API token.
    #[arg(long, global = true, env = "PATCHWARDEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The server's CA certificate (PEM; the server keeps it as `ca.pem` in its state directory
    /// and serves it at /v1/ca.pem).
    #[arg(long, global = true, env = "PATCHWARDEN_CA")]
    pub ca: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand)]
pub enum QueryCommand {
    /// Hosts, with their OS, labels, last check-in and open findings.
    Hosts {
        #[arg(long)]
        os: Option<String>,
        /// `key=value` (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long)]
        group: Option<String>,
        /// Only stale hosts.
        #[arg(long)]
        stale: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// One host and its findings.
    Host {
        id: i64,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Findings across the fleet, riskiest first.
    Findings {
        /// This severity and above.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        kev: bool,
        #[arg(long)]
        overdue: bool,
        #[arg(long)]
        limit: Option<i64>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Which hosts a CVE affects, and in which state.
    Affected {
        cve: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// The fleet at a glance, with the expected hosts that never enrolled.
    Summary {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

pub(crate) struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub(crate) fn new(c: &ServerConnection) -> anyhow::Result<Client> {
        let base = c.server.clone().context("--server is required")?;
        let token = c
            .token
            .clone()
            .context("--token (or PATCHWARDEN_TOKEN) is required with --server")?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(120));
        if let Some(ca) = &c.ca {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{}: not a PEM certificate", ca.display()))?;
            builder = builder.tls_certs_only([cert]);
        }
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: builder.build()?,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Vec<u8>> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status();
        let body = response.bytes().await?.to_vec();
        if !status.is_success() {
            let message = serde_json::from_slice::<patchwarden_model::fleet::ApiError>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            bail!("{}: {status}: {message}", self.base);
        }
        Ok(body)
    }

    pub(crate) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> anyhow::Result<T> {
        let body = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        serde_json::from_slice(&body).with_context(|| format!("{}{path}: the answer", self.base))
    }

    /// POSTs `value` as JSON; the answer parsed.
    pub(crate) async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        value: &impl serde::Serialize,
    ) -> anyhow::Result<T> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(value)?);
        let body = self.send(request).await?;
        serde_json::from_slice(&body).with_context(|| format!("{}{path}: the answer", self.base))
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn query(c: &ServerConnection, command: &QueryCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(c)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match command {
        QueryCommand::Hosts {
            os,
            labels,
            group,
            stale,
            format,
        } => {
            let mut params = Vec::new();
            if let Some(os) = os {
                params.push(format!("os={}", encode(os)));
            }
            if !labels.is_empty() {
                params.push(format!("label={}", encode(&labels.join(","))));
            }
            if let Some(g) = group {
                params.push(format!("group={}", encode(g)));
            }
            if *stale {
                params.push("stale=true".into());
            }
            let hosts: Vec<HostSummary> = client
                .get(&format!("/v1/hosts?{}", params.join("&")))
                .await?;
            write_hosts(&mut out, &hosts, *format)?;
        }
        QueryCommand::Host { id, format } => {
            let host: HostSummary = client.get(&format!("/v1/hosts/{id}")).await?;
            let findings: Vec<HostFinding> =
                client.get(&format!("/v1/hosts/{id}/findings")).await?;
            if *format == OutputFormat::Json {
                serde_json::to_writer_pretty(
                    &mut out,
                    &serde_json::json!({"host": host, "findings": findings.iter().map(|f| &f.finding).collect::<Vec<_>>()}),
                )?;
                writeln!(out)?;
            } else {
                write_hosts(&mut out, std::slice::from_ref(&host), *format)?;
                writeln!(out)?;
                write_findings(&mut out, &findings, *format)?;
            }
        }
        QueryCommand::Findings {
            severity,
            kev,
            overdue,
            limit,
            format,
        } => {
            let mut params = Vec::new();
            if let Some(s) = severity {
                params.push(format!("severity={}", encode(s)));
            }
            if *kev {
                params.push("kev=true".into());
            }
            if *overdue {
                params.push("overdue=true".into());
            }
            if let Some(l) = limit {
                params.push(format!("limit={l}"));
            }
            let findings: Vec<HostFinding> = client
                .get(&format!("/v1/findings?{}", params.join("&")))
                .await?;
            write_findings(&mut out, &findings, *format)?;
        }
        QueryCommand::Affected { cve, format } => {
            let hosts: Vec<AffectedHost> = client
                .get(&format!("/v1/cves/{}/hosts", encode(cve)))
                .await?;
            let header = ["host_id", "hostname", "package", "advisory_id", "state"];
            write_listing(&mut out, *format, &hosts, &header, |h| {
                vec![
                    h.host_id.to_string(),
                    h.hostname.clone(),
                    h.package.clone(),
                    h.advisory_id.clone(),
                    h.state.as_str().to_owned(),
                ]
            })?;
        }
        QueryCommand::Summary { format } => {
            let summary: FleetSummary = client.get("/v1/summary").await?;
            if *format == OutputFormat::Json {
                serde_json::to_writer_pretty(&mut out, &summary)?;
                writeln!(out)?;
            } else {
                writeln!(out, "hosts\t{}", summary.hosts)?;
                writeln!(out, "stale\t{}", summary.stale_hosts)?;
                writeln!(out, "revoked\t{}", summary.revoked_hosts)?;
                for (os, n) in &summary.by_os {
                    writeln!(out, "os {os}\t{n}")?;
                }
                for (k, n) in &summary.findings {
                    writeln!(out, "findings {k}\t{n}")?;
                }
                writeln!(out, "never enrolled\t{}", summary.never_enrolled.join(" "))?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Quotes a CSV field when it needs it.
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A listing as JSON (the items themselves), CSV (quoted where needed) or a tab-separated table.
pub(crate) fn write_listing<T: serde::Serialize>(
    out: &mut impl Write,
    format: OutputFormat,
    items: &[T],
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if format == OutputFormat::Json {
        serde_json::to_writer_pretty(&mut *out, items)?;
        writeln!(out)?;
        return Ok(());
    }
    let (sep, quote): (&str, fn(&str) -> String) = match format {
        OutputFormat::Csv => (",", csv),
        _ => ("\t", str::to_owned),
    };
    writeln!(out, "{}", header.join(sep))?;
    for item in items {
        let fields: Vec<String> = row(item).iter().map(|f| quote(f)).collect();
        writeln!(out, "{}", fields.join(sep))?;
    }
    Ok(())
}

fn write_hosts(
    out: &mut impl Write,
    hosts: &[HostSummary],
    format: OutputFormat,
) -> anyhow::Result<()> {
    let header = [
        "id",
        "hostname",
        "os",
        "packages",
        "findings",
        "critical",
        "high",
        "kev",
        "last_seen",
        "stale",
        "labels",
    ];
    write_listing(out, format, hosts, &header, |h| {
        let n = |k: &str| h.findings.get(k).copied().unwrap_or(0).to_string();
        let labels: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        vec![
            h.id.to_string(),
            h.hostname.clone(),
            h.os.clone().unwrap_or_default(),
            h.packages.to_string(),
            n("total"),
            n("critical"),
            n("high"),
            n("kev"),
            h.last_seen.clone(),
            if h.stale {
                "STALE".into()
            } else {
                String::new()
            },
            labels.join(";"),
        ]
    })
}

fn write_findings(
    out: &mut impl Write,
    findings: &[HostFinding],
    format: OutputFormat,
) -> anyhow::Result<()> {
    let header = [
        "hostname",
        "package",
        "installed_version",
        "advisory_id",
        "state",
        "severity",
        "kev",
        "risk",
        "fixed_version",
    ];
    write_listing(out, format, findings, &header, |f| {
        let d = &f.finding;
        vec![
            f.hostname.clone(),
            d.package.clone(),
            d.installed_version.clone(),
            d.advisory_id.clone(),
            d.state.as_str().to_owned(),
            d.severity.as_str().to_owned(),
            d.kev.to_string(),
            serde_json::to_string(&d.risk).unwrap_or_default(),
            d.fixed_version.clone().unwrap_or_default(),
        ]
    })
}

/// `patchwarden assets import FILE`: to the server (with --server) or the local store.
pub async fn assets_import(
    c: &ServerConnection,
    db: Option<&str>,
    file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let assets = patchwarden_server::assets::parse(&file.display().to_string(), &text)
        .map_err(anyhow::Error::msg)?;
    let source = file.display().to_string();
    if c.server.is_some() {
        let client = Client::new(c)?;
        client
            .send(
                client
                    .http
                    .put(format!("{}/v1/assets", client.base))
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&patchwarden_model::fleet::AssetList {
                        source: source.clone(),
                        assets: assets.clone(),
                    })?),
            )
            .await?;
    } else {
        let location = db
            .map(str::to_owned)
            .unwrap_or_else(patchwarden_store::default_location);
        let store = Store::open(&location).await?;
        store.replace_expected_assets(&assets, &source).await?;
        store.close().await;
    }
    println!(
        "{} expected hosts imported from {}",
        assets.len(),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("24h"), Ok(86400));
        assert_eq!(super::parse_duration("90"), Ok(90));
        assert_eq!(super::parse_duration("7d"), Ok(604800));
        assert!(super::parse_duration("1w")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(super::parse_duration("h").is_err());
    }
}
