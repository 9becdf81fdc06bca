//! `patchwarden feeds import|status`: loading feed files into the store (air-gapped sites, bundles)
//! and showing each feed's state.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use patchwarden_feeds::detect;
use patchwarden_model::audit::{Actor, AuditAction, AuditEvent};
use patchwarden_model::{Advisory, Provenance, Source};
use patchwarden_store::{FeedState, Store, WriteMode};
use patchwarden_sync::load::{self, Parsed};
use sha2::{Digest, Sha256};

/// How far a snapshot feed's replacement may shrink it (`patchwarden_model::feed_guard`).
#[derive(clap::Args, Clone, Debug)]
pub struct ShrinkArgs {
    /// Replace snapshot feeds even when the new data would empty them or drop more than
    /// --max-shrink of their records (a mirror or file known to be right).
    #[arg(long)]
    pub allow_shrink: bool,
    /// The largest share of a snapshot feed's records (percent) a replacement may drop.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100), env = "PATCHWARDEN_MAX_FEED_SHRINK_PERCENT")]
    pub max_shrink: u8,
}

impl ShrinkArgs {
    pub fn policy(&self) -> patchwarden_model::feed_guard::ReplacePolicy {
        patchwarden_model::feed_guard::ReplacePolicy {
            max_shrink: f64::from(self.max_shrink) / 100.0,
            allow_shrink: self.allow_shrink,
        }
    }
}

/// How long a feed download may wait: for a connection, for any data, in all.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Feed downloads")]
pub struct DownloadArgs {
    /// Seconds to establish a connection to a feed's server, TLS included.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600), env = "PATCHWARDEN_SYNC_CONNECT_TIMEOUT_SECS")]
    pub connect_timeout_secs: u64,
    /// Seconds a feed's server may send nothing (no answer yet, or a pause in a download)
    /// before the download is given up.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600), env = "PATCHWARDEN_SYNC_STALL_TIMEOUT_SECS")]
    pub stall_timeout_secs: u64,
    /// Seconds one download may take in all, however steadily it moves.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86400), env = "PATCHWARDEN_SYNC_TIMEOUT_SECS")]
    pub timeout_secs: u64,
}

impl DownloadArgs {
    /// The sync settings with these limits, progress told on standard error (`… `).
    pub fn settings(&self) -> patchwarden_sync::SyncSettings {
        patchwarden_sync::SyncSettings {
            connect_timeout: std::time::Duration::from_secs(self.connect_timeout_secs),
            stall_timeout: std::time::Duration::from_secs(self.stall_timeout_secs),
            timeout: std::time::Duration::from_secs(self.timeout_secs),
            progress: Some(|m| eprintln!("… {m}")),
            ..Default::default()
        }
    }
}

/// Every regular file under `paths` (directories walked recursively), in a stable order, each
/// with whether it was met walking a directory (a stray file there is skipped; a file named on
/// the command line must be a feed).
fn files(paths: &[PathBuf], walked: bool) -> anyhow::Result<Vec<(PathBuf, bool)>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            entries.sort();
            out.extend(files(&entries, true)?);
        } else {
            out.push((p.clone(), walked));
        }
    }
    Ok(out)
}

/// Record-by-record advisories (OSV, Red Hat VEX) are written in transactions of this many, so memory
/// stays bounded on large imports.
const CHUNK: usize = 2000;

/// How often a long import says how far it is.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Running totals of one import.
#[derive(Default)]
struct Tally {
    imported: usize,
    failed: usize,
    skipped: usize,
    /// Files of no kind patchwarden reads met walking a directory (listed at the end).
    skipped_files: Vec<String>,
    inputs: usize,
    /// Advisories waiting to be written: (feed, source, advisory, provenance).
    pending: Vec<(String, Source, Advisory, Provenance)>,
    last_progress: Option<std::time::Instant>,
}

impl Tally {
    async fn flush(&mut self, store: &Store) -> anyhow::Result<()> {
        let mut batch = std::mem::take(&mut self.pending);
        batch.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        for chunk in batch.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
            let items: Vec<_> = chunk
                .iter()
                .map(|(_, _, a, p)| (a.clone(), p.clone()))
                .collect();
            let n = store
                .write_advisories(&chunk[0].0, chunk[0].1, WriteMode::Upsert, &items, None)
                .await?;
            self.imported += n;
            let origins: std::collections::BTreeSet<&str> =
                chunk.iter().map(|(_, _, _, p)| p.origin.as_str()).collect();
            audit_import(
                store,
                AuditAction::FeedImported,
                &chunk[0].0,
                &[
                    ("records", &n.to_string()),
                    ("files", &origins.len().to_string()),
                ],
            )
            .await?;
            println!("imported {n} advisories into {}", chunk[0].0);
        }
        Ok(())
    }
}

/// The largest entry of a `.tar.zst` archive imported (Red Hat's largest VEX documents are under
/// 100 MB).
const MAX_ENTRY: u64 = 256 << 20;

/// Imports files, directories, `.zip` archives (as osv.dev publishes them) and `.tar.zst` archives
/// (as Red Hat publishes its VEX documents). Snapshot formats (KEV,
/// EPSS, Debian tracker, Alpine secdb) replace their feed; OSV advisories and NVD records are added or
/// updated one by one (in chunks). A file that fails is reported with its reason, recorded in the
/// feed's state and changes nothing; the command then exits non-zero.
pub async fn import(store: &Store, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    // A bundle (a directory with a manifest) is verified as a whole, then loaded.
    let (bundles, paths): (Vec<PathBuf>, Vec<PathBuf>) = paths
        .iter()
        .cloned()
        .partition(|p| patchwarden_sync::bundle::is_bundle(p));
    for dir in &bundles {
        let n = patchwarden_sync::bundle::import(store, dir)
            .await
            .map_err(anyhow::Error::msg)?;
        println!("imported the bundle {}: {n} records", dir.display());
    }
    if paths.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let files = files(&paths, false)?;
    if files.is_empty() {
        bail!("no files to import");
    }
    let mut tally = Tally::default();
    let started = std::time::Instant::now();
    for (path, walked) in &files {
        let origin = path.display().to_string();
        if load::is_tar_zst(path) {
            // Red Hat's VEX archive (`csaf_vex_YYYY-MM-DD.tar.zst`): read entry by entry.
            let mut entries = load::tar_zst_entries(path.clone(), origin.clone(), MAX_ENTRY);
            while let Some(entry) = entries.recv().await {
                let (name, content) = entry.map_err(anyhow::Error::msg)?;
                let origin = format!("{origin}!{name}");
                match content {
                    Ok(content) => import_one(store, &origin, true, &content, &mut tally).await?,
                    Err(too_large) => {
                        eprintln!("error: {too_large}");
                        tally.inputs += 1;
                        tally.failed += 1;
                    }
                }
            }
            continue;
        }
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {origin}"))?;
        if path.extension().is_some_and(|e| e == "zip") {
            for entry in load::ZipEntries::new(&bytes, &origin).map_err(anyhow::Error::msg)? {
                let (name, content) = entry.map_err(anyhow::Error::msg)?;
                // An archive's stray entries (a README) are skipped as a directory's are.
                import_one(
                    store,
                    &format!("{origin}!{name}"),
                    true,
                    &content,
                    &mut tally,
                )
                .await?;
            }
        } else {
            import_one(store, &origin, *walked, &bytes, &mut tally).await?;
        }
    }
    tally.flush(store).await?;
    if !tally.skipped_files.is_empty() {
        eprintln!(
            "skipped {} file(s) of no feed format patchwarden reads: {}",
            tally.skipped_files.len(),
            tally.skipped_files.join(", ")
        );
    }
    println!(
        "{} input(s): {} record(s) imported, {} failed, {} skipped in {:.1} s (store: {})",
        tally.inputs,
        tally.imported,
        tally.failed,
        tally.skipped,
        started.elapsed().as_secs_f64(),
        store.location()
    );
    Ok(if tally.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Imports one file (`walked`: met walking a directory or an archive, where a file of no feed
/// format is skipped; named on the command line it is an error). A file that fails to parse, and
/// a replacement the store's policy refuses, fail that file (recorded in its feed's state where
/// the feed is known) and change nothing.
async fn import_one(
    store: &Store,
    origin: &str,
    walked: bool,
    bytes: &[u8],
    tally: &mut Tally,
) -> anyhow::Result<()> {
    tally.inputs += 1;
    // Long imports report progress on stderr every PROGRESS_EVERY.
    if tally
        .last_progress
        .get_or_insert_with(std::time::Instant::now)
        .elapsed()
        >= PROGRESS_EVERY
    {
        eprintln!(
            "… {} inputs read, {} records imported so far (now at {origin})",
            tally.inputs,
            tally.imported + tally.pending.len()
        );
        tally.last_progress = Some(std::time::Instant::now());
    }
    let format = match detect(origin, bytes) {
        Ok(Some(format)) => format,
        Ok(None) if walked => {
            eprintln!("skipped {origin}: not a feed file patchwarden reads");
            tally.skipped += 1;
            tally.skipped_files.push(origin.to_owned());
            return Ok(());
        }
        Ok(None) => {
            eprintln!(
                "error: {origin}: not a feed file patchwarden reads (OSV, NVD, KEV, EPSS CSV, \
                 Debian tracker, Alpine secdb, Red Hat CSAF VEX)"
            );
            tally.failed += 1;
            return Ok(());
        }
        Err(e) => {
            eprintln!("error: {e}");
            tally.failed += 1;
            return Ok(());
        }
    };
    let provenance = Provenance {
        source: load::failure_feed(format).1,
        origin: origin.to_owned(),
        fetched_at: patchwarden_model::now_rfc3339(),
        sha256: format!("{:x}", Sha256::digest(bytes)),
    };
    let parsed = match load::parse(format, bytes, origin) {
        Ok(p) => p,
        Err(e) => {
            let (feed, source) = load::failure_feed(format);
            tally.failed += 1;
            eprintln!("error: {e}");
            store.record_failure(feed, source, &e.to_string()).await?;
            return Ok(());
        }
    };
    match parsed {
        // Record-by-record feeds (OSV, Red Hat VEX) are gathered and written in chunks.
        Parsed::Advisories {
            feed,
            source,
            mode: WriteMode::Upsert,
            advisories,
        } => {
            let p = Provenance {
                source,
                ..provenance
            };
            tally.pending.extend(
                advisories
                    .into_iter()
                    .map(|a| (feed.clone(), source, a, p.clone())),
            );
            if tally.pending.len() >= CHUNK {
                tally.flush(store).await?;
            }
        }
        parsed => {
            if let Parsed::Cves { rejected, .. } = &parsed {
                for bad in rejected {
                    eprintln!("skipped record: {bad}");
                    tally.failed += 1;
                }
            }
            let feed = load::feed_of(&parsed);
            match load::store(store, parsed, &provenance).await {
                Ok(n) => {
                    tally.imported += n;
                    println!("imported {n} records from {origin}");
                    audit_import(
                        store,
                        AuditAction::FeedImported,
                        &feed,
                        &[
                            ("origin", origin),
                            ("sha256", &provenance.sha256),
                            ("records", &n.to_string()),
                        ],
                    )
                    .await?;
                }
                Err(e) if e.refused.is_some() => {
                    tally.failed += 1;
                    eprintln!("error: {origin}: {e}");
                    store
                        .record_failure(&feed, provenance.source, &e.to_string())
                        .await?;
                    audit_import(
                        store,
                        AuditAction::FeedRefused,
                        &feed,
                        &[
                            ("origin", origin),
                            ("sha256", &provenance.sha256),
                            ("reason", &e.to_string()),
                        ],
                    )
                    .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Records an import in the audit log (a store that cannot record it fails the import: the
/// data is written, the command says so and exits non-zero).
async fn audit_import(
    store: &Store,
    action: AuditAction,
    feed: &str,
    detail: &[(&str, &str)],
) -> anyhow::Result<()> {
    let mut event = AuditEvent::new(
        Actor::System {
            name: "feeds import".into(),
        },
        action,
        format!("feed:{feed}"),
    );
    for (k, v) in detail {
        event = event.with(k, *v);
    }
    store
        .append_audit(&event, &patchwarden_model::now_rfc3339())
        .await
        .context("recording the import in the audit log")?;
    Ok(())
}

/// Syncs the named feeds (a name matches a feed exactly or as its prefix before ':'), all if none.
pub async fn sync(
    store: &Store,
    names: &[String],
    settings: patchwarden_sync::SyncSettings,
    full: bool,
) -> anyhow::Result<ExitCode> {
    let env = |k: &str| std::env::var(k).ok();
    let known = patchwarden_sync::default_feeds(env);
    let wanted = |feed: &str| {
        names.is_empty()
            || names
                .iter()
                .any(|n| n == feed || feed.split(':').next() == Some(n.as_str()))
    };
    let chosen: Vec<_> = known.iter().filter(|f| wanted(&f.feed)).collect();
    let nvd = wanted(patchwarden_sync::nvd::FEED);
    if chosen.is_empty() && !nvd {
        let mut list: Vec<&str> = known.iter().map(|f| f.feed.as_str()).collect();
        list.push(patchwarden_sync::nvd::FEED);
        bail!(
            "no feed matches {names:?}; known feeds: {}",
            list.join(", ")
        );
    }
    let syncer = patchwarden_sync::Syncer::new(settings).map_err(anyhow::Error::msg)?;
    let mut failed = 0;
    for spec in chosen {
        let outcome = syncer.sync(store, spec).await;
        report(&spec.feed, outcome, &mut failed);
    }
    if nvd {
        let mut nvd_settings =
            patchwarden_sync::nvd::NvdSettings::from_env(env).map_err(anyhow::Error::msg)?;
        nvd_settings.full = full;
        let outcome = syncer.sync_nvd(store, &nvd_settings).await;
        report(patchwarden_sync::nvd::FEED, outcome, &mut failed);
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints what one feed's sync did; counts failures.
fn report(feed: &str, outcome: patchwarden_sync::SyncOutcome, failed: &mut usize) {
    match outcome {
        patchwarden_sync::SyncOutcome::Updated {
            records,
            bytes,
            skipped,
        } => {
            println!("{feed}: updated, {records} records ({bytes} bytes)");
            for bad in &skipped {
                eprintln!("{feed}: skipped record: {bad}");
            }
        }
        patchwarden_sync::SyncOutcome::NotModified => println!("{feed}: not modified"),
        patchwarden_sync::SyncOutcome::Failed { reason } => {
            *failed += 1;
            eprintln!("{feed}: FAILED: {reason} (the stored data is unchanged)");
        }
    }
}

/// Prints each feed's state: its age from the date its data gives (KEV's release, EPSS's score
/// date, the newest record), the import time beside it; STALE when not imported within
/// `max_age_days` or its data is older than that plus the source's publication allowance
/// (`FeedState::is_stale`); FAILING when its last attempt failed.
pub async fn status(store: &Store, max_age_days: i64, json: bool) -> anyhow::Result<ExitCode> {
    let feeds: Vec<FeedState> = store.feeds().await?;
    let now = patchwarden_model::now_rfc3339();
    let stale = |f: &FeedState| f.is_stale(&now, max_age_days);
    if json {
        let list: Vec<serde_json::Value> = feeds
            .iter()
            .map(|f| {
                serde_json::json!({
                    "feed": f.feed, "source": f.source, "records": f.record_count,
                    "last_attempt": f.last_attempt, "last_success": f.last_success, "last_error": f.last_error,
                    "origin": f.origin, "sha256": f.sha256, "fetched_at": f.fetched_at, "data_version": f.data_version,
                    "data_date": f.data_date, "age_days": f.age_days(&now), "imported_days": f.imported_days(&now),
                    "stale": stale(f), "failing": f.is_failing(), "bundle": f.bundle,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"store": store.location(), "max_age_days": max_age_days, "feeds": list})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("Store: {} ({:?})", store.location(), store.backend());
    if feeds.is_empty() {
        println!("No feed loaded yet: run `patchwarden feeds import PATH`.");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:>9}  {:<10}  {:>5}  {:<20}  {:<7}  LAST ERROR",
        "FEED", "RECORDS", "DATA DATE", "AGE", "IMPORTED", "STATE"
    );
    for f in &feeds {
        let age = f
            .age_days(&now)
            .map(|d| format!("{d}d"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<28} {:>9}  {:<10}  {:>5}  {:<20}  {:<7}  {}",
            f.feed,
            f.record_count,
            f.data_date
                .as_deref()
                .and_then(|d| d.get(..10))
                .unwrap_or("-"),
            age,
            f.last_success.as_deref().unwrap_or("never"),
            match (f.is_failing(), stale(f)) {
                (true, true) => "FAILING, STALE",
                (true, false) => "FAILING",
                (false, true) => "STALE",
                (false, false) => "ok",
            },
            f.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the Debian advisories of `suite` as a debsecan feed file `dir/<suite>`.
pub async fn export_debsecan(
    store: &Store,
    suite: &str,
    dir: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let release = patchwarden_feeds::debian::release_for_codename(suite);
    let advisories: Vec<Advisory> = store
        .advisories_for_release("debian", &release)
        .await?
        .into_iter()
        .map(|(_, _, a)| a)
        .collect();
    if advisories.is_empty() {
        bail!("the knowledge base holds no Debian advisories for {suite} (release {release})");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(suite);
    let bytes = patchwarden_feeds::debsecan::render_compressed(&advisories, &release);
    // Written beside, then renamed: a reader never sees half a feed.
    let partial = dir.join(format!(".{suite}.partial"));
    std::fs::write(&partial, &bytes)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {} ({} advisories of Debian {release}, {} bytes compressed)",
        path.display(),
        advisories.len(),
        bytes.len()
    );
    Ok(ExitCode::SUCCESS)
}
