//! `patchwarden`, the command-line interface: a thin layer that parses arguments, calls the library
//! crates and prints their results. No logic lives here that another front end (the server, the agent)
//! would need.

mod admin;
mod audit;
mod change;
mod client;
mod explain;
mod feeds;
mod fleet;
mod plan;
mod scan;
mod scheduled_sync;
mod server;
mod table;
mod vercmp;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc instead of glibc's malloc: a check-in allocates and frees thousands of small values,
/// and glibc's allocator was a sixth of the server's CPU in an inventory burst
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's option setter (linked in with the allocator by libmimalloc-sys).
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_arena_eager_commit` in mimalloc v3's `mi_option_e` (include/mimalloc.h: after
/// show_errors, show_stats, verbose, deprecated_eager_commit).
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;

/// For every command but `server`, memory is committed as it is used instead of whole arenas at
/// once: a one-shot scan peaked at 34 MB with eager commits and 16.6 MB without, at the same
/// speed; the server keeps eager commits (measured without them its check-ins showed no
/// difference beyond the VM's drift; kept as the conservative choice) — docs/benchmarks.md.
/// mimalloc reads its options when the process is loaded (its constructor runs at priority 101), so this runs as a constructor just before it (priority 100
/// in `.init_array`), reading the arguments glibc passes to such constructors; it allocates
/// nothing. `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still wins.
extern "C" fn allocator_options(
    argc: std::ffi::c_int,
    argv: *const *const std::ffi::c_char,
    _envp: *const *const std::ffi::c_char,
) {
    // SAFETY: glibc passes the process's argc/argv (NUL-terminated strings) to `.init_array`
    // functions; getenv with a NUL-terminated name, before any thread exists; mi_option_set sets
    // an integer option.
    unsafe {
        if !libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() || argv.is_null() {
            return;
        }
        let arg = |i: std::ffi::c_int| std::ffi::CStr::from_ptr(*argv.offset(i as isize));
        let mut i = 1;
        while i < argc {
            let a = arg(i).to_bytes();
            if a == b"server" {
                // The subcommand (or, rarely, another option's value that reads `server`: that
                // costs only memory).
                return;
            }
            // Skip the value of the one global option that takes a separate value.
            i += if a == b"--db" { 2 } else { 1 };
        }
        mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

#[used]
#[link_section = ".init_array.00100"]
static ALLOCATOR_OPTIONS: extern "C" fn(
    std::ffi::c_int,
    *const *const std::ffi::c_char,
    *const *const std::ffi::c_char,
) = allocator_options;

#[derive(Parser)]
#[command(
    name = "patchwarden",
    version,
    about = "Server patch management: inventory, vulnerabilities, deadlines, rollout"
)]
struct Cli {
    /// The store: a SQLite file (default: ~/.local/share/patchwarden/patchwarden.db) or a
    /// postgres:// URL.
    #[arg(long, global = true, env = "PATCHWARDEN_DB")]
    db: Option<String>,
    #[command(flatten)]
    connection: client::ServerConnection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Table,
}

#[derive(Subcommand)]
enum Command {
    /// Inventory this host or a root filesystem: OS, packages, kernels, reboot state, platform.
    Inventory {
        /// Root directory of the system to inventory (a mounted image, a chroot); `/` is this host.
        #[arg(long, default_value = "/", env = "PATCHWARDEN_ROOT")]
        root: PathBuf,
        /// Output format: the versioned JSON report (docs/inventory-schema.md) or a table for people.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Compare package versions as dpkg, rpm or apk would; prints `<`, `=` or `>`.
    Vercmp(vercmp::Args),
    /// Scan this host, a root filesystem or an inventory file against the local knowledge base:
    /// findings with severity, KEV, EPSS, SSVC, risk and due dates. Exit 3 when --fail-on holds.
    Scan(scan::ScanArgs),
    /// Why a CVE or advisory is or is not a finding on this host (or a root, or an inventory).
    Explain(explain::ExplainArgs),
    /// The audit log: verify its hash chain and signed checkpoints, export it.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// The knowledge base's feeds: import files, show their state.
    Feeds {
        #[command(subcommand)]
        command: FeedsCommand,
    },
    /// Run the fleet server (REST API over TLS) on the store.
    Server(server::ServerArgs),
    /// Enrollment tokens for agents (on the server's store).
    EnrollToken {
        #[command(subcommand)]
        command: admin::EnrollTokenCommand,
    },
    /// API users and their tokens (with --server through the API, else on the local store).
    User {
        #[command(subcommand)]
        command: admin::UserCommand,
    },
    /// The hosts that should exist (CSV, or an Ansible inventory in INI or YAML form).
    Assets {
        #[command(subcommand)]
        command: AssetsCommand,
    },
    /// Maintenance windows: check a window file, list the next openings, judge a start.
    Window {
        #[command(subcommand)]
        command: WindowCommand,
    },
    /// The plan for this host or a root: the exact versions its repositories offer for its open
    /// findings, judged by a baseline; what is held back and what cannot be fixed yet.
    Plan(plan::PlanArgs),
    /// Change requests on the server: create, list, show, and lifecycle steps.
    Change {
        #[command(subcommand)]
        command: change::ChangeCommand,
    },
    /// Steer a change's rollout on the server: pause, resume, cancel.
    Rollout {
        #[command(subcommand)]
        command: change::RolloutCommand,
    },
    #[command(flatten)]
    Query(fleet::QueryCommand),
}

#[derive(Subcommand)]
enum WindowCommand {
    /// Read and check a window file; each window's next openings and, with --expected, whether
    /// work of that length may start at --at.
    Check(window::CheckArgs),
}

#[derive(Subcommand)]
enum AssetsCommand {
    /// Replace the list of expected hosts; the fleet summary shows those that never enrolled.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
enum FeedsCommand {
    /// Load feed files or directories (OSV, NVD, KEV, EPSS CSV/.csv.gz, Debian tracker, Alpine secdb).
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        shrink: feeds::ShrinkArgs,
    },
    /// Download feeds from their public URLs (or mirrors: PATCHWARDEN_FEED_URL_<FEED>), verify them
    /// completely and swap them in; a failed feed keeps its data and records the error.
    Sync {
        /// Feeds to sync (`kev`, `epss`, `nvd`, `debian-tracker`, `osv`, `osv:AlmaLinux`,
        /// `alpine-secdb`, `alpine-secdb:v3.20/main`); all when none is given. NVD is incremental
        /// (lastModified since the last sync; API key: PATCHWARDEN_NVD_API_KEY).
        feeds: Vec<String>,
        /// NVD: ignore the stored cursor and download every record again.
        #[arg(long)]
        full: bool,
        /// Largest download accepted, in MiB.
        #[arg(long, default_value_t = 2048, env = "PATCHWARDEN_SYNC_MAX_MIB")]
        max_mib: u64,
        #[command(flatten)]
        download: feeds::DownloadArgs,
        #[command(flatten)]
        shrink: feeds::ShrinkArgs,
    },
    /// Write the knowledge base as a bundle (files and a sha256 manifest) for an air-gapped site;
    /// `feeds import DIR` there verifies it before loading.
    Export { dir: PathBuf },
    /// Write the Debian advisories of one release as a debsecan feed (`DIR/<suite>`, zlib), to run
    /// `debsecan --suite <suite> --source file://DIR/` on the same data.
    ExportDebsecan {
        /// The Debian codename (`bookworm`).
        #[arg(long)]
        suite: String,
        dir: PathBuf,
    },
    /// Per feed: records, last success, data age, last error; STALE past --max-age.
    Status {
        /// Data older than this many days is flagged stale.
        #[arg(long, default_value_t = 2, env = "PATCHWARDEN_MAX_FEED_AGE_DAYS")]
        max_age_days: i64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Server(_)) {
        // A command whose reader went away (`| head`) stops quietly, as other command-line tools
        // do: the default SIGPIPE action instead of Rust's "ignore", which made every `print!`
        // after the reader left a panic. The server keeps ignoring it (its sockets and logs must
        // never end it); sockets are written with MSG_NOSIGNAL either way.
        // SAFETY: setting a signal's disposition to its default before any thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Server(args) => {
            let location = cli
                .db
                .clone()
                .unwrap_or_else(patchwarden_store::default_location);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(async {
                        let store = patchwarden_store::Store::open_with(
                            &location,
                            &patchwarden_store::StoreOptions {
                                max_connections: 16,
                                sqlite_reader_cache_kib: 8192,
                                ..Default::default()
                            },
                        )
                        .await?;
                        let result = server::server(store.clone(), &args).await;
                        store.close().await;
                        result
                    })
                })
        }
        Command::EnrollToken { command } => with_store(cli.db.as_deref(), |store| async move {
            admin::enroll_token(&store, &command).await
        }),
        Command::User { command } => {
            current_thread(admin::user(&cli.connection, cli.db.as_deref(), &command))
        }
        Command::Assets {
            command: AssetsCommand::Import { file },
        } => current_thread(admin::assets_import(
            &cli.connection,
            cli.db.as_deref(),
            &file,
        )),
        Command::Window {
            command: WindowCommand::Check(args),
        } => window::check(&args),
        Command::Query(command) => current_thread(fleet::query(&cli.connection, &command)),
        Command::Plan(args) if !args.hosts.is_empty() => {
            current_thread(plan::remote(&cli.connection, &args))
        }
        Command::Plan(args) => with_store(cli.db.as_deref(), |store| async move {
            plan::plan(&store, &args).await
        }),
        Command::Change { command } => current_thread(change::change(&cli.connection, &command)),
        Command::Rollout { command } => current_thread(change::rollout(&cli.connection, &command)),
        Command::Inventory { root, format } => inventory(&root, format),
        Command::Vercmp(args) => vercmp::run(&args),
        Command::Scan(args) => with_store(cli.db.as_deref(), |store| async move {
            scan::scan(&store, &args).await
        }),
        Command::Explain(args) => with_store(cli.db.as_deref(), |store| async move {
            explain::explain(&store, &args).await
        }),
        Command::Audit { command } => with_store(cli.db.as_deref(), |store| async move {
            audit::audit(&store, &command).await
        }),
        Command::Feeds { command } => with_store(cli.db.as_deref(), |store| async move {
            match command {
                FeedsCommand::Import { paths, shrink } => {
                    feeds::import(&store.with_replace_policy(shrink.policy()), &paths).await
                }
                FeedsCommand::Export { dir } => {
                    let summary = patchwarden_sync::bundle::export(&store, &dir)
                        .await
                        .map_err(anyhow::Error::msg)?;
                    print!("{summary}");
                    println!(
                        "bundle written to {} (manifest: {})",
                        dir.display(),
                        patchwarden_sync::bundle::MANIFEST
                    );
                    Ok(std::process::ExitCode::SUCCESS)
                }
                FeedsCommand::ExportDebsecan { suite, dir } => {
                    feeds::export_debsecan(&store, &suite, &dir).await
                }
                FeedsCommand::Sync {
                    feeds: names,
                    max_mib,
                    download,
                    full,
                    shrink,
                } => {
                    let store = store.with_replace_policy(shrink.policy());
                    let settings = patchwarden_sync::SyncSettings {
                        max_bytes: max_mib << 20,
                        ..download.settings()
                    };
                    feeds::sync(&store, &names, settings, full).await
                }
                FeedsCommand::Status {
                    max_age_days,
                    format,
                } => feeds::status(&store, max_age_days, matches!(format, Format::Json)).await,
            }
        }),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): stop quietly, as other command-line tools do.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || c.downcast_ref::<serde_json::Error>()
                        .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `f` on a single-threaded runtime.
fn current_thread(
    f: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Opens the store and runs `f` on a single-threaded runtime.
fn with_store<F, Fut>(db: Option<&str>, f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(patchwarden_store::Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let location = db
        .map(str::to_owned)
        .unwrap_or_else(patchwarden_store::default_location);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = patchwarden_store::Store::open(&location).await?;
        let result = f(store.clone()).await;
        store.close().await;
        result
    })
}

fn inventory(root: &std::path::Path, format: Format) -> anyhow::Result<ExitCode> {
    let inventory = patchwarden_inventory::collect(root)?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &inventory)?;
            use std::io::Write;
            writeln!(out)?;
        }
        Format::Table => table::write_inventory(&mut out, &inventory)?,
    }
    Ok(ExitCode::SUCCESS)
}
