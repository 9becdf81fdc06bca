//! Red Hat CSAF VEX sync: the whole published set from its archive the first time, then the
//! documents Red Hat lists as changed or deleted since.
//!
//! Red Hat publishes one VEX document per CVE under `…/csaf/v2/vex/YYYY/cve-YYYY-NNNN.json` and,
//! beside them, `archive_latest.txt` (the name of the newest full archive,
//! `csaf_vex_YYYY-MM-DD.tar.zst`: zstd-compressed tar of every document), `changes.csv` and
//! `deletions.csv` (one `"YYYY/cve-….json","<RFC 3339 time>"` row per document changed or
//! withdrawn, newest first).
//!
//! * **First sync** (no cursor, or more changes since the cursor than [`VexSettings::max_delta`]):
//!   the archive named by `archive_latest.txt` is streamed to a staging file, decompressed and read
//!   entry by entry (never whole in memory), then the documents changed or deleted on or after the
//!   archive's date are applied on top; the result replaces the feed.
//! * **Incremental**: `changes.csv` rows on or after the cursor (the newest row time applied, kept
//!   in the feed's `data_version`) are fetched one by one, `deletions.csv` rows remove theirs; one
//!   transaction writes both and moves the cursor. No row newer than the cursor: not modified.
//! * **Kept**: the RHEL entries of each document (entries whose platform maps to a RHEL release;
//!   Satellite, OpenShift and other products are dropped: nothing here matches them). A document
//!   left with none is removed if stored.
//! * **Checked**: the archive name and every row's path must have Red Hat's exact shape (a row
//!   becomes a URL: `../`, absolute URLs or other hosts are refused, naming the row); each document
//!   carries its own provenance (its URL, or the archive and entry, and its own SHA-256).
//!
//! The base URL is `https://security.access.redhat.com/data/csaf/v2/vex/`, or a mirror's
//! (`PATCHWARDEN_FEED_URL_REDHAT_VEX`).

use std::path::Path;

use jiff::Timestamp;
use patchwarden_feeds::redhat;
use patchwarden_model::{Advisory, Provenance, Source};
use patchwarden_store::{Store, WriteMode};
use sha2::{Digest, Sha256};

use crate::{FeedSpec, SyncError, SyncOutcome, Syncer};

/// The feed Red Hat VEX documents are kept under (also by `feeds import`).
pub const FEED: &str = "redhat-vex";

/// Red Hat's public location of the VEX documents.
pub const DEFAULT_BASE_URL: &str = "https://security.access.redhat.com/data/csaf/v2/vex/";

/// Above this many changed documents since the cursor, the archive is read again instead (one
/// download instead of thousands of requests).
pub const DEFAULT_MAX_DELTA: usize = 20_000;

/// The largest single document accepted (the largest Red Hat VEX documents are under 100 MB).
const MAX_DOCUMENT_BYTES: u64 = 256 << 20;

/// One row of `changes.csv` or `deletions.csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexRow {
    /// `YYYY/cve-YYYY-NNNN.json`, checked.
    pub path: String,
    pub changed: Timestamp,
}

impl IndexRow {
    /// The advisory id the document is stored under (`CVE-YYYY-NNNN`).
    pub fn advisory_id(&self) -> String {
        document_id(&self.path)
    }
}

/// `CVE-YYYY-NNNN` of a checked document path.
fn document_id(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.trim_end_matches(".json").to_ascii_uppercase()
}

/// Whether `path` has the exact shape of a VEX document's path: `YYYY/cve-YYYY-N….json` (digits
/// only, the year twice the same). Anything else is refused before it becomes a URL.
pub fn is_document_path(path: &str) -> bool {
    let Some((year, file)) = path.split_once('/') else {
        return false;
    };
    let Some(rest) = file
        .strip_prefix("cve-")
        .and_then(|f| f.strip_suffix(".json"))
    else {
        return false;
    };
    let Some((file_year, number)) = rest.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    year.len() == 4
        && digits(year)
        && file_year == year
        && (4..=12).contains(&number.len())
        && digits(number)
}

/// Whether `name` is an archive name as `archive_latest.txt` gives it:
/// `csaf_vex_YYYY-MM-DD.tar.zst`. Returns its date.
pub fn archive_date(name: &str) -> Option<jiff::civil::Date> {
    let date = name.strip_prefix("csaf_vex_")?.strip_suffix(".tar.zst")?;
    (date.len() == 10 && date.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
        .then(|| date.parse().ok())
        .flatten()
}

/// Reads `changes.csv` / `deletions.csv`: every row must be `"path","time"` with a document path
/// ([`is_document_path`]) and an RFC 3339 time; a row that is not is an error naming its line.
pub fn parse_index(text: &str, origin: &str) -> Result<Vec<IndexRow>, SyncError> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| SyncError::Data(format!("{origin} line {}: {why}: {line:?}", n + 1));
        let Some((path, time)) = line.split_once(',') else {
            return Err(bad("not a \"path\",\"time\" row"));
        };
        let unquote = |s: &str| {
            s.trim()
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .map(str::to_owned)
        };
        let (Some(path), Some(time)) = (unquote(path), unquote(time)) else {
            return Err(bad("not a \"path\",\"time\" row"));
        };
        if !is_document_path(&path) {
            return Err(bad("not a VEX document path (YYYY/cve-YYYY-NNNN.json)"));
        }
        let changed: Timestamp = time
            .parse()
            .map_err(|_| bad("the time is not an RFC 3339 timestamp"))?;
        rows.push(IndexRow { path, changed });
    }
    Ok(rows)
}

/// Red Hat's two index files as read by one sync.
struct Index {
    changes: Vec<IndexRow>,
    deletions: Vec<IndexRow>,
}

/// Where and how to sync Red Hat's VEX documents.
#[derive(Clone, Debug)]
pub struct VexSettings {
    /// The directory holding `archive_latest.txt`, `changes.csv`, `deletions.csv` and the
    /// documents (ends with `/`).
    pub base_url: String,
    /// More changed documents than this since the cursor: read the archive again.
    pub max_delta: usize,
}

impl VexSettings {
    /// From a feed spec's URL (the base directory).
    pub fn for_spec(spec: &FeedSpec) -> VexSettings {
        let mut base_url = spec.url.clone();
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        VexSettings {
            base_url,
            max_delta: DEFAULT_MAX_DELTA,
        }
    }
}

/// A document's RHEL entries only (see the module head); `None` when none is left.
fn rhel_entries(mut a: Advisory) -> Option<Advisory> {
    a.affected.retain(|p| p.release.is_some());
    (!a.affected.is_empty()).then_some(a)
}

/// What one sync gathered before writing.
#[derive(Default)]
struct Gathered {
    /// When this sync fetched what it gathers (every record's provenance).
    fetched_at: String,
    items: Vec<(Advisory, Provenance)>,
    removed: Vec<String>,
    skipped: Vec<String>,
    bytes: u64,
}

impl Gathered {
    /// One document's bytes: parsed, RHEL entries kept, with its own provenance; a document that
    /// does not parse is skipped and named, one without RHEL entries is removed.
    fn add_document(&mut self, id: &str, bytes: &[u8], origin: &str) {
        let provenance = Provenance {
            source: Source::RedhatVex,
            origin: origin.to_owned(),
            fetched_at: self.fetched_at.clone(),
            sha256: format!("{:x}", Sha256::digest(bytes)),
        };
        match redhat::parse(bytes, origin) {
            Ok(list) => {
                let mut kept = false;
                for a in list.into_iter().filter_map(rhel_entries) {
                    kept = true;
                    self.items.push((a, provenance.clone()));
                }
                if !kept {
                    self.removed.push(id.to_owned());
                }
            }
            Err(e) => self.skipped.push(e.to_string()),
        }
    }
}

/// Reads every VEX document of a staged `.tar.zst` archive into `out` (entry by entry; entries
/// that are not documents — directories, index files — are passed over).
fn read_archive(path: &Path, url: &str, out: &mut Gathered) -> Result<usize, SyncError> {
    let mut documents = 0;
    crate::load::read_tar_zst(path, url, MAX_DOCUMENT_BYTES, |name, content| {
        if !is_document_path(name) {
            return;
        }
        match content {
            Ok(bytes) => {
                out.add_document(&document_id(name), &bytes, &format!("{url}!{name}"));
                documents += 1;
            }
            Err(too_large) => out.skipped.push(too_large),
        }
    })?;
    Ok(documents)
}

impl Syncer {
    /// Syncs Red Hat's VEX documents (see the module head); the outcome says what was written.
    pub(crate) async fn try_sync_vex(
        &self,
        store: &Store,
        spec: &FeedSpec,
    ) -> Result<SyncOutcome, SyncError> {
        let settings = VexSettings::for_spec(spec);
        let state = store.feed(&spec.feed).await?;
        let cursor: Option<Timestamp> = match state
            .as_ref()
            .filter(|s| s.record_count > 0)
            .and_then(|s| s.data_version.as_deref())
        {
            Some(v) => Some(v.parse().map_err(|e| {
                SyncError::Data(format!(
                    "the stored Red Hat VEX cursor {v:?} is not a timestamp ({e})"
                ))
            })?),
            None => None,
        };
        let changes_url = format!("{}changes.csv", settings.base_url);
        let deletions_url = format!("{}deletions.csv", settings.base_url);
        let index = Index {
            changes: parse_index(&self.get_text(&changes_url).await?, &changes_url)?,
            deletions: parse_index(&self.get_text(&deletions_url).await?, &deletions_url)?,
        };
        let gathered = || Gathered {
            fetched_at: patchwarden_model::now_rfc3339(),
            ..Default::default()
        };

        if let Some(cursor) = cursor {
            let newer = index
                .changes
                .iter()
                .chain(&index.deletions)
                .filter(|r| r.changed > cursor)
                .count();
            if newer == 0 {
                store.record_not_modified(&spec.feed, spec.source).await?;
                return Ok(SyncOutcome::NotModified);
            }
            if newer <= settings.max_delta {
                let mut gathered = gathered();
                let newest = self
                    .apply_index(&settings, &index, cursor, &mut gathered)
                    .await?;
                return self
                    .write_vex(store, spec, WriteMode::Upsert, gathered, newest.max(cursor))
                    .await;
            }
        }

        // The whole set: the newest archive, then what changed since its date.
        let latest_url = format!("{}archive_latest.txt", settings.base_url);
        let name = self.get_text(&latest_url).await?.trim().to_owned();
        let Some(date) = archive_date(&name) else {
            return Err(SyncError::Data(format!(
                "{latest_url}: {name:?} is not an archive name (csaf_vex_YYYY-MM-DD.tar.zst)"
            )));
        };
        let archive_url = format!("{}{name}", settings.base_url);
        let staging = self.staging_path(&spec.feed)?;
        let began = std::time::Instant::now();
        let mut response = self.get_ok(&archive_url).await?;
        let result = async {
            let (bytes, _) = self
                .stream_to(&mut response, &staging, &spec.feed, began)
                .await?;
            let (staged, url, mut g) = (staging.clone(), archive_url.clone(), gathered());
            let (mut gathered, documents) = tokio::task::spawn_blocking(move || {
                read_archive(&staged, &url, &mut g).map(|n| (g, n))
            })
            .await
            .map_err(|e| SyncError::Data(format!("reading {archive_url}: {e}")))??;
            if documents == 0 {
                return Err(SyncError::Data(format!(
                    "{archive_url}: the archive holds no VEX documents"
                )));
            }
            gathered.bytes = bytes;
            Ok::<_, SyncError>(gathered)
        }
        .await;
        let _ = tokio::fs::remove_file(&staging).await;
        let mut gathered = result?;
        let since = date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| SyncError::Data(format!("{archive_url}: {e}")))?
            .timestamp();
        let newest = self
            .apply_index(&settings, &index, since, &mut gathered)
            .await?;
        // Deleted documents are simply not part of the new set.
        let removed: std::collections::HashSet<String> = gathered.removed.drain(..).collect();
        gathered.items.retain(|(a, _)| !removed.contains(&a.id));
        self.write_vex(store, spec, WriteMode::Replace, gathered, newest.max(since))
            .await
    }

    /// Applies the index rows on or after `since` into `out`: changed documents fetched (each
    /// once, the newest row deciding), deleted ones removed. Returns the newest row time seen.
    async fn apply_index(
        &self,
        settings: &VexSettings,
        index: &Index,
        since: Timestamp,
        out: &mut Gathered,
    ) -> Result<Timestamp, SyncError> {
        // Per document, its newest row: a deletion after a change removes it, a change after a
        // deletion brings it back.
        let mut latest: std::collections::BTreeMap<&str, (Timestamp, bool)> = Default::default();
        for (rows, deleted) in [(&index.changes, false), (&index.deletions, true)] {
            for r in rows.iter().filter(|r| r.changed >= since) {
                let slot = latest
                    .entry(r.path.as_str())
                    .or_insert((r.changed, deleted));
                if r.changed > slot.0 {
                    *slot = (r.changed, deleted);
                }
            }
        }
        let mut newest = since;
        for (path, (changed, deleted)) in latest {
            newest = newest.max(changed);
            let id = document_id(path);
            if deleted {
                out.items.retain(|(a, _)| a.id != id);
                out.removed.push(id);
                continue;
            }
            let url = format!("{}{path}", settings.base_url);
            let response = self.get_ok(&url).await;
            let bytes = match response {
                Ok(r) => self.read_limited_body(r, &url, MAX_DOCUMENT_BYTES).await?,
                // Listed but gone (withdrawn between the index and the fetch): named, skipped.
                Err(SyncError::Http(e)) if e.contains("HTTP 404") => {
                    out.skipped.push(format!("{url}: {e}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            out.bytes += bytes.len() as u64;
            out.items.retain(|(a, _)| a.id != id);
            out.add_document(&id, &bytes, &url);
        }
        Ok(newest)
    }

    /// Writes what a sync gathered and moves the cursor, in one transaction.
    async fn write_vex(
        &self,
        store: &Store,
        spec: &FeedSpec,
        mode: WriteMode,
        gathered: Gathered,
        cursor: Timestamp,
    ) -> Result<SyncOutcome, SyncError> {
        let written = store
            .write_advisory_changes(
                &spec.feed,
                Source::RedhatVex,
                mode,
                &gathered.items,
                &gathered.removed,
                Some(&cursor.to_string()),
            )
            .await?;
        Ok(SyncOutcome::Updated {
            records: written,
            bytes: gathered.bytes,
            skipped: gathered.skipped,
        })
    }

    /// A GET that must answer 2xx (else an error naming the status).
    async fn get_ok(&self, url: &str) -> Result<reqwest::Response, SyncError> {
        let began = std::time::Instant::now();
        let response = self.client.get(url).send().await.map_err(|e| {
            SyncError::Http(format!("{url}: {}", self.request_failure(&e, 0, began)))
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(SyncError::Http(format!("{url}: HTTP {status}")));
        }
        Ok(response)
    }

    /// A small text file (an index), read whole under the size limit.
    async fn get_text(&self, url: &str) -> Result<String, SyncError> {
        let response = self.get_ok(url).await?;
        let bytes = self
            .read_limited_body(response, url, self.settings.max_bytes)
            .await?;
        String::from_utf8(bytes).map_err(|_| SyncError::Data(format!("{url}: not UTF-8 text")))
    }

    /// An answer's body read whole, refused past `limit` bytes.
    async fn read_limited_body(
        &self,
        mut response: reqwest::Response,
        url: &str,
        limit: u64,
    ) -> Result<Vec<u8>, SyncError> {
        let began = std::time::Instant::now();
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            SyncError::Http(format!(
                "{url}: {}",
                self.request_failure(&e, out.len() as u64, began)
            ))
        })? {
            if (out.len() + chunk.len()) as u64 > limit {
                return Err(SyncError::Http(format!(
                    "{url}: over the limit of {limit} bytes"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_red_hat_document_paths_pass() {
        for good in ["2023/cve-2023-0049.json", "2024/cve-2024-123456.json"] {
            assert!(is_document_path(good), "{good}");
        }
        for bad in [
            "../2023/cve-2023-0049.json",
            "2023/../../etc/passwd",
            "/2023/cve-2023-0049.json",
            "https://evil.example/2023/cve-2023-0049.json",
            "2023/cve-2024-0049.json",
            "2023/cve-2023-0049.json?x=1",
            "2023/cve-2023-.json",
            "2023/CVE-2023-0049.json",
            "2023/cve-2023-00a9.json",
            "2023//cve-2023-0049.json",
            "",
        ] {
            assert!(!is_document_path(bad), "{bad}");
        }
        assert_eq!(document_id("2023/cve-2023-0049.json"), "CVE-2023-0049");
    }

    #[test]
    fn index_rows_are_checked_and_named_by_line() {
        let rows = parse_index(
            "\"2023/cve-2023-0049.json\",\"2023-12-12T00:00:00+00:00\"\n\n\"2024/cve-2024-10041.json\",\"2025-01-02T03:04:05Z\"\n",
            "changes.csv",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].advisory_id(), "CVE-2024-10041");
        let e = parse_index(
            "\"2023/cve-2023-0049.json\",\"2023-12-12T00:00:00+00:00\"\n\"../x/cve-2023-1.json\",\"2023-12-12T00:00:00+00:00\"\n",
            "changes.csv",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("changes.csv line 2") && e.contains("not a VEX document path"),
            "{e}"
        );
        let e = parse_index("\"2023/cve-2023-0049.json\",\"yesterday\"", "d.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.csv line 1") && e.contains("RFC 3339"), "{e}");
        assert!(parse_index("2023/cve-2023-0049.json", "d.csv").is_err());
    }

    #[test]
    fn archive_names_have_one_shape() {
        assert_eq!(
            archive_date("csaf_vex_2023-10-31.tar.zst").map(|d| d.to_string()),
            Some("2023-10-31".into())
        );
        for bad in [
            "csaf_vex_2023-10-31.tar.gz",
            "../csaf_vex_2023-10-31.tar.zst",
            "csaf_vex_2023-13-31.tar.zst",
            "csaf_vex_latest.tar.zst",
            "http://x/csaf_vex_2023-10-31.tar.zst",
        ] {
            assert_eq!(archive_date(bad), None, "{bad}");
        }
    }
}
