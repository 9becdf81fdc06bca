//! Feed sync: download each feed from its real public URL (or a configured mirror), verify the download
//! completely, and only then swap it into the store.
//!
//! * **Conditional requests**: the ETag and Last-Modified of the last stored download are sent back
//!   (`If-None-Match`, `If-Modified-Since`); `304 Not Modified` marks the data current without a transfer.
//! * **Streaming**: the body goes to a temporary file chunk by chunk, hashed (sha256) on the way, never
//!   buffered whole in memory by the downloader, and cut off past a size limit.
//! * **Verify, then swap**: a non-2xx status, a body shorter than its `Content-Length` (a dropped
//!   connection), a corrupt gzip stream or a malformed file fails the sync of that feed: the failure
//!   is recorded with its reason in the feed's state (`feeds status`) and the stored data stays as it was.
//!   Only a completely parsed file is written, in one transaction.
//!
//! This crate owns moving feeds: downloads (here), the one path from a file to the store ([`load`],
//! also used by `feeds import`) and air-gapped bundles ([`bundle`]). Formats are `patchwarden-feeds`',
//! storage is `patchwarden-store`'s. (The staged file is read whole for parsing — 70 MB for the Debian
//! tracker — only the download itself is streamed.)

pub mod bundle;
mod error;
pub mod load;
pub mod nvd;
pub mod redhat_vex;

use std::path::PathBuf;
use std::time::Duration;

use patchwarden_feeds::FeedFormat;
use patchwarden_model::audit::{Actor, AuditAction, AuditEvent};
use patchwarden_model::{Provenance, Source};
use patchwarden_store::{Store, WriteMode};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub use error::SyncError;

/// One downloadable feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedSpec {
    /// The feed's name in the store (`kev`, `epss`, `debian-tracker`, `alpine-secdb:v3.19/main`).
    pub feed: String,
    pub source: Source,
    pub format: FeedFormat,
    pub url: String,
}

/// The file feeds `feeds sync` knows, at their public URLs (NVD, an API, is [`nvd`]'s). Each URL can
/// be replaced (an internal mirror) with `PATCHWARDEN_FEED_URL_<FEED>` (the feed name upper-cased,
/// other characters as `_`, e.g. `PATCHWARDEN_FEED_URL_KEV`,
/// `PATCHWARDEN_FEED_URL_ALPINE_SECDB_V3_19_MAIN`, `PATCHWARDEN_FEED_URL_OSV_ROCKY_LINUX`). The Alpine
/// releases come from `PATCHWARDEN_ALPINE_RELEASES` (default `v3.19 v3.20 v3.21 v3.22`), the OSV
/// ecosystems (osv.dev's per-ecosystem `all.zip`) from `PATCHWARDEN_OSV_ECOSYSTEMS`, comma-separated
/// (default `AlmaLinux,Rocky Linux,Ubuntu,Debian`). Red Hat's VEX documents (`redhat-vex`, see
/// [`redhat_vex`]) come from the directory `PATCHWARDEN_FEED_URL_REDHAT_VEX` names.
pub fn default_feeds(env: impl Fn(&str) -> Option<String>) -> Vec<FeedSpec> {
    let mut feeds = vec![
        (
            "kev",
            Source::Kev,
            FeedFormat::Kev,
            "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
                .to_owned(),
        ),
        (
            "epss",
            Source::Epss,
            FeedFormat::EpssCsv,
            "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz".to_owned(),
        ),
        (
            "debian-tracker",
            Source::DebianTracker,
            FeedFormat::DebianTracker,
            "https://security-tracker.debian.org/tracker/data/json".to_owned(),
        ),
    ]
    .into_iter()
    .chain([(
        redhat_vex::FEED,
        Source::RedhatVex,
        FeedFormat::RedhatVex,
        redhat_vex::DEFAULT_BASE_URL.to_owned(),
    )])
    .map(|(feed, source, format, url)| FeedSpec {
        feed: feed.to_owned(),
        source,
        format,
        url,
    })
    .collect::<Vec<_>>();
    let releases =
        env("PATCHWARDEN_ALPINE_RELEASES").unwrap_or_else(|| "v3.19 v3.20 v3.21 v3.22".into());
    for release in releases.split_whitespace() {
        for repo in ["main", "community"] {
            feeds.push(FeedSpec {
                feed: format!("alpine-secdb:{release}/{repo}"),
                source: Source::AlpineSecdb,
                format: FeedFormat::AlpineJson,
                url: format!("https://secdb.alpinelinux.org/{release}/{repo}.json"),
            });
        }
    }
    let ecosystems = env("PATCHWARDEN_OSV_ECOSYSTEMS")
        .unwrap_or_else(|| "AlmaLinux,Rocky Linux,Ubuntu,Debian".into());
    for ecosystem in ecosystems
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        feeds.push(FeedSpec {
            feed: format!("osv:{ecosystem}"),
            source: Source::Osv,
            format: FeedFormat::Osv,
            url: format!(
                "https://osv-vulnerabilities.storage.googleapis.com/{}/all.zip",
                ecosystem.replace(' ', "%20")
            ),
        });
    }
    for f in &mut feeds {
        let var = format!(
            "PATCHWARDEN_FEED_URL_{}",
            f.feed
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                })
                .collect::<String>()
        );
        if let Some(url) = env(&var).filter(|u| !u.is_empty()) {
            f.url = url;
        }
    }
    feeds
}

/// The feeds that matter for a host of `release`: KEV, EPSS and its distribution's advisories (of
/// [`default_feeds`], with the same environment).
pub fn feeds_for(
    release: &patchwarden_model::DistroRelease,
    env: impl Fn(&str) -> Option<String>,
) -> Vec<FeedSpec> {
    use patchwarden_model::Distro;
    let wanted = |feed: &str| -> bool {
        match feed {
            "kev" | "epss" => true,
            "debian-tracker" => release.distro == Distro::Debian,
            "osv:Ubuntu" => release.distro == Distro::Ubuntu,
            "osv:AlmaLinux" => release.distro == Distro::Almalinux,
            "osv:Rocky Linux" => release.distro == Distro::Rocky,
            // RHEL itself, and the rebuilds (Red Hat's unfixed statements apply to them).
            redhat_vex::FEED => release.distro == Distro::Rhel || release.distro.follows_rhel(),
            f => {
                release.distro == Distro::Alpine
                    && f.starts_with(&format!("alpine-secdb:v{}/", release.release))
            }
        }
    };
    default_feeds(env)
        .into_iter()
        .filter(|f| wanted(&f.feed))
        .collect()
}

/// Limits and places, with defaults.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// Whole-request timeout: the longest one download may take, however steadily it moves.
    pub timeout: Duration,
    /// Time allowed to establish a connection, TLS included (an unreachable mirror fails after
    /// this).
    pub connect_timeout: Duration,
    /// Longest wait for any data: for the answer's headers, and between two pieces of the body.
    /// A mirror that accepts the connection and then says nothing fails after this, not after
    /// `timeout`.
    pub stall_timeout: Duration,
    /// A download larger than this is abandoned (the full EPSS CSV is ~12 MB gzipped, the Debian
    /// tracker ~70 MB).
    pub max_bytes: u64,
    /// Where downloads are staged before they are verified.
    pub work_dir: PathBuf,
    /// Told how a long sync (NVD's many pages) is going, at most every few seconds.
    pub progress: Option<fn(&str)>,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            timeout: Duration::from_secs(3600),
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(60),
            max_bytes: 2 << 30,
            work_dir: std::env::temp_dir(),
            progress: None,
        }
    }
}

/// How often a long download says how far it is.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

fn download_progress(feed: &str, bytes: u64, total: Option<u64>) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    match total.filter(|t| *t > 0) {
        Some(t) => format!(
            "{feed}: {:.1} of {:.1} MiB ({} %)",
            mib(bytes),
            mib(t),
            bytes.saturating_mul(100) / t
        ),
        None => format!("{feed}: {:.1} MiB", mib(bytes)),
    }
}

/// What happened to one feed.
#[derive(Clone, Debug, PartialEq)]
pub enum SyncOutcome {
    /// Written; `skipped` names the records that did not parse and were left out (NVD).
    Updated {
        records: usize,
        bytes: u64,
        skipped: Vec<String>,
    },
    NotModified,
    Failed {
        reason: String,
    },
}

/// An HTTP client with the settings; one per run.
pub struct Syncer {
    client: reqwest::Client,
    settings: SyncSettings,
}

impl Syncer {
    pub fn new(settings: SyncSettings) -> Result<Syncer, SyncError> {
        // One TLS provider for the process (ring: no C toolchain needed to build it).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.stall_timeout)
            .user_agent(concat!("patchwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SyncError::Settings(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Syncer { client, settings })
    }

    /// Syncs one feed; every failure is recorded in the store and returned, never half-applied.
    /// Each sync that changed data or failed is recorded in the audit log (with the stored
    /// file's digest, or the reason).
    pub async fn sync(&self, store: &Store, spec: &FeedSpec) -> SyncOutcome {
        let attempt = if spec.format == FeedFormat::RedhatVex {
            self.try_sync_vex(store, spec).await
        } else {
            self.try_sync(store, spec).await
        };
        let outcome = match attempt {
            Ok(outcome) => outcome,
            Err(reason) => {
                let refused = matches!(&reason, SyncError::Store(e) if e.refused.is_some());
                let reason = format!("{}: {reason}", spec.url);
                let recorded = store.record_failure(&spec.feed, spec.source, &reason).await;
                let action = if refused {
                    AuditAction::FeedRefused
                } else {
                    AuditAction::FeedSynced
                };
                audit(
                    store,
                    action,
                    spec,
                    &[("outcome", "failed"), ("reason", &reason)],
                )
                .await;
                if let Err(e) = recorded {
                    return SyncOutcome::Failed {
                        reason: format!("{reason} (and recording it failed: {e})"),
                    };
                }
                return SyncOutcome::Failed { reason };
            }
        };
        if let SyncOutcome::Updated { records, bytes, .. } = &outcome {
            let sha256 = store
                .feed(&spec.feed)
                .await
                .ok()
                .flatten()
                .and_then(|f| f.sha256)
                .unwrap_or_default();
            audit(
                store,
                AuditAction::FeedSynced,
                spec,
                &[
                    ("outcome", "updated"),
                    ("records", &records.to_string()),
                    ("bytes", &bytes.to_string()),
                    ("sha256", &sha256),
                ],
            )
            .await;
        }
        outcome
    }

    async fn try_sync(&self, store: &Store, spec: &FeedSpec) -> Result<SyncOutcome, SyncError> {
        let state = store.feed(&spec.feed).await?;
        let mut request = self.client.get(&spec.url);
        // Validators only make sense while the stored data they describe is there.
        if let Some(s) = state.as_ref().filter(|s| s.record_count > 0) {
            if let Some(etag) = &s.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &s.http_last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
        }
        let began = std::time::Instant::now();
        let mut response = request
            .send()
            .await
            .map_err(|e| SyncError::Http(self.request_failure(&e, 0, began)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            store.record_not_modified(&spec.feed, spec.source).await?;
            return Ok(SyncOutcome::NotModified);
        }
        if !status.is_success() {
            return Err(SyncError::Http(format!("HTTP {status}")));
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (etag, last_modified) = (
            header(reqwest::header::ETAG),
            header(reqwest::header::LAST_MODIFIED),
        );
        if let Some(len) = response
            .content_length()
            .filter(|l| *l > self.settings.max_bytes)
        {
            return Err(SyncError::Http(format!(
                "the download is {len} bytes, over the limit of {}",
                self.settings.max_bytes
            )));
        }

        // Stream to a staging file, hashing on the way.
        let staging = self.staging_path(&spec.feed)?;
        let result = async {
            let (bytes, sha256) = self
                .stream_to(&mut response, &staging, &spec.feed, began)
                .await?;
            let provenance = Provenance {
                source: spec.source,
                origin: spec.url.clone(),
                fetched_at: patchwarden_model::now_rfc3339(),
                sha256,
            };
            let (records, skipped) = self.store_file(store, spec, &staging, &provenance).await?;
            Ok::<_, SyncError>(SyncOutcome::Updated {
                records,
                bytes,
                skipped,
            })
        }
        .await;
        let _ = tokio::fs::remove_file(&staging).await;
        let outcome = result?;
        store
            .set_http_validators(&spec.feed, etag.as_deref(), last_modified.as_deref())
            .await?;
        Ok(outcome)
    }

    /// A staging file for `label`'s download in the work directory (created if missing).
    pub(crate) fn staging_path(&self, label: &str) -> Result<PathBuf, SyncError> {
        std::fs::create_dir_all(&self.settings.work_dir).map_err(|e| {
            SyncError::Data(format!(
                "cannot create {}: {e}",
                self.settings.work_dir.display()
            ))
        })?;
        Ok(self.settings.work_dir.join(format!(
            "patchwarden-{}-{}.download",
            label.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id()
        )))
    }

    /// Streams an answer's body into `staging`, hashing on the way, cut off past the size limit
    /// and telling progress on long downloads. Returns the bytes written and their SHA-256.
    pub(crate) async fn stream_to(
        &self,
        response: &mut reqwest::Response,
        staging: &std::path::Path,
        label: &str,
        began: std::time::Instant,
    ) -> Result<(u64, String), SyncError> {
        let mut file = tokio::fs::File::create(staging)
            .await
            .map_err(|e| SyncError::Data(format!("cannot create {}: {e}", staging.display())))?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let total = response.content_length();
        let mut told = std::time::Instant::now();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| SyncError::Http(self.request_failure(&e, bytes, began)))?
        {
            bytes += chunk.len() as u64;
            if told.elapsed() >= PROGRESS_EVERY {
                told = std::time::Instant::now();
                if let Some(progress) = self.settings.progress {
                    progress(&download_progress(label, bytes, total));
                }
            }
            if bytes > self.settings.max_bytes {
                return Err(SyncError::Http(format!(
                    "the download exceeds the limit of {} bytes",
                    self.settings.max_bytes
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| SyncError::Data(format!("cannot write {}: {e}", staging.display())))?;
        }
        file.flush()
            .await
            .map_err(|e| SyncError::Data(format!("cannot write {}: {e}", staging.display())))?;
        Ok((bytes, format!("{:x}", hasher.finalize())))
    }

    /// Why a request or a download failed, naming the limit that ended it.
    /// reqwest marks the whole-request and the stall timeouts alike: the time since the request
    /// began tells them apart.
    fn request_failure(&self, e: &reqwest::Error, bytes: u64, began: std::time::Instant) -> String {
        let s = &self.settings;
        let when = if bytes == 0 {
            String::new()
        } else {
            format!(" after {bytes} bytes")
        };
        if e.is_timeout() && e.is_connect() {
            format!(
                "no connection within {} s (connect timeout): {}",
                s.connect_timeout.as_secs(),
                error_chain(e)
            )
        } else if e.is_timeout() && began.elapsed() < s.timeout {
            format!(
                "the mirror sent nothing for {} s{when} (stall timeout; raise it with \
                 --stall-timeout-secs)",
                s.stall_timeout.as_secs()
            )
        } else if e.is_timeout() {
            format!(
                "the download took longer than {} s{when} (timeout; raise it with --timeout-secs)",
                s.timeout.as_secs()
            )
        } else if bytes > 0 {
            format!("the download broke off{when}: {}", error_chain(e))
        } else {
            format!("request failed: {}", error_chain(e))
        }
    }

    /// Parses the staged file completely, then writes it in one transaction. Returns the records
    /// written and the bad records skipped (OSV archives: a bad advisory is skipped and named).
    async fn store_file(
        &self,
        store: &Store,
        spec: &FeedSpec,
        path: &std::path::Path,
        p: &Provenance,
    ) -> Result<(usize, Vec<String>), SyncError> {
        if spec.format == FeedFormat::Nvd {
            return Err(SyncError::Settings(
                "NVD is synced through its API (`feeds sync nvd`)".into(),
            ));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| SyncError::Data(format!("cannot read the staged download: {e}")))?;
        if spec.format == FeedFormat::Osv && load::is_zip(&bytes) {
            // osv.dev's all.zip is the whole ecosystem: it replaces the feed.
            let mut advisories = Vec::new();
            let mut skipped = Vec::new();
            load::unzip(&bytes, &spec.url, |name, content| {
                match patchwarden_feeds::osv::parse(content, &format!("{}!{name}", spec.url)) {
                    Ok(a) => advisories.push((a, p.clone())),
                    Err(e) => skipped.push(e.to_string()),
                }
                Ok(())
            })?;
            if advisories.is_empty() {
                return Err(SyncError::Data(match skipped.first() {
                    Some(first) => format!(
                        "no advisory in the archive parsed ({} bad, first: {first})",
                        skipped.len()
                    ),
                    None => "the archive holds no advisories".into(),
                }));
            }
            let written = store
                .write_advisories(
                    &spec.feed,
                    Source::Osv,
                    WriteMode::Replace,
                    &advisories,
                    None,
                )
                .await?;
            return Ok((written, skipped));
        }
        // The URL leads every sync error already: keep only the record and the reason.
        let mut parsed = load::parse(spec.format, &bytes, &spec.url).map_err(|e| {
            SyncError::Data(match e.record {
                Some(record) => format!("{record}: {}", e.reason),
                None => e.reason,
            })
        })?;
        if let load::Parsed::Advisories { feed, .. } = &mut parsed {
            feed.clone_from(&spec.feed); // the configured name, whatever the file says
        }
        let skipped = match &parsed {
            load::Parsed::Cves { rejected, .. } => rejected.iter().map(|e| e.to_string()).collect(),
            _ => Vec::new(),
        };
        let written = load::store(store, parsed, p).await?;
        Ok((written, skipped))
    }
}

/// Records a sync in the audit log (a failure to record is said on stderr: the sync itself is
/// done either way).
async fn audit(store: &Store, action: AuditAction, spec: &FeedSpec, detail: &[(&str, &str)]) {
    let mut event = AuditEvent::new(
        Actor::System {
            name: "feed sync".into(),
        },
        action,
        format!("feed:{}", spec.feed),
    )
    .with("url", spec.url.as_str());
    for (k, v) in detail {
        event = event.with(k, *v);
    }
    if let Err(e) = store
        .append_audit(&event, &patchwarden_model::now_rfc3339())
        .await
    {
        eprintln!("audit: could not record the sync of {}: {e}", spec.feed);
    }
}

/// An error with its causes ("error sending request: connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod feed_choice_tests {
    use patchwarden_model::{Distro, DistroRelease};

    fn names(distro: Distro, version: &str) -> Vec<String> {
        let release =
            DistroRelease::from_os_release(distro, Some(version), None, None).expect("a release");
        super::feeds_for(&release, |_| None)
            .into_iter()
            .map(|f| f.feed)
            .collect()
    }

    #[test]
    fn a_host_syncs_its_own_distribution_and_the_enrichment_feeds() {
        assert_eq!(
            names(Distro::Debian, "12"),
            ["kev", "epss", "debian-tracker"]
        );
        assert_eq!(
            names(Distro::Rocky, "9.4"),
            ["kev", "epss", "redhat-vex", "osv:Rocky Linux"]
        );
        // RHEL reads Red Hat's VEX documents only.
        assert_eq!(names(Distro::Rhel, "9.4"), ["kev", "epss", "redhat-vex"]);
        assert_eq!(
            names(Distro::Alpine, "3.19.1"),
            [
                "kev",
                "epss",
                "alpine-secdb:v3.19/main",
                "alpine-secdb:v3.19/community"
            ]
        );
        // A distribution no feed covers gets the enrichment feeds only.
        assert_eq!(names(Distro::Alpine, "3.9.0"), ["kev", "epss"]);
    }
}
