//! Loading one feed file into the store: parse it by format, name the feed it belongs to, and write
//! it the way its source is written — snapshots (KEV, EPSS, Debian tracker, Alpine secdb) replace
//! their feed, per-record sources (OSV, NVD, Red Hat VEX) are added or updated. The one path from a
//! file to the store, shared by `feeds import` (files, archives) and `feeds sync` (downloads).

use crate::SyncError;
use patchwarden_feeds::{alpine, debian, epss, kev, nvd, osv, redhat, FeedError, FeedFormat};
use patchwarden_model::{Advisory, CveRecord, EpssSnapshot, KevCatalog, Provenance, Source};
use patchwarden_store::{Store, StoreError, WriteMode};

/// A completely parsed file, ready to be written.
pub enum Parsed {
    Advisories {
        feed: String,
        source: Source,
        mode: WriteMode,
        advisories: Vec<Advisory>,
    },
    /// NVD records, and the records of the page that did not parse (skipped, named).
    Cves {
        records: Vec<CveRecord>,
        rejected: Vec<FeedError>,
    },
    Kev(KevCatalog),
    Epss(EpssSnapshot),
}

/// The feed and source a file of `format` belongs to when it cannot be parsed (where its failure is
/// recorded).
pub fn failure_feed(format: FeedFormat) -> (&'static str, Source) {
    match format {
        FeedFormat::Osv => ("osv", Source::Osv),
        FeedFormat::Nvd => ("nvd", Source::Nvd),
        FeedFormat::Kev => ("kev", Source::Kev),
        FeedFormat::EpssCsv => ("epss", Source::Epss),
        FeedFormat::DebianTracker => ("debian-tracker", Source::DebianTracker),
        FeedFormat::AlpineJson | FeedFormat::AlpineYaml => ("alpine-secdb", Source::AlpineSecdb),
        FeedFormat::RedhatVex => ("redhat-vex", Source::RedhatVex),
    }
}

/// The feed a parsed file is written to (where its failure is recorded).
pub fn feed_of(parsed: &Parsed) -> String {
    match parsed {
        Parsed::Advisories { feed, .. } => feed.clone(),
        Parsed::Cves { .. } => "nvd".into(),
        Parsed::Kev(_) => "kev".into(),
        Parsed::Epss(_) => "epss".into(),
    }
}

/// The OSV feed an advisory belongs to: `osv:<ecosystem family>` (`osv:AlmaLinux`, `osv:Ubuntu`).
fn osv_feed(a: &Advisory) -> String {
    let family = a
        .affected
        .first()
        .and_then(|p| p.ecosystem.split(':').next())
        .unwrap_or("unknown");
    format!("osv:{family}")
}

/// Parses a whole file; nothing is written.
pub fn parse(format: FeedFormat, bytes: &[u8], origin: &str) -> Result<Parsed, FeedError> {
    let advisories = |feed: String, source: Source, mode: WriteMode, advisories: Vec<Advisory>| {
        Parsed::Advisories {
            feed,
            source,
            mode,
            advisories,
        }
    };
    Ok(match format {
        FeedFormat::Osv => {
            let a = osv::parse(bytes, origin)?;
            advisories(osv_feed(&a), Source::Osv, WriteMode::Upsert, vec![a])
        }
        FeedFormat::Nvd => {
            let page = nvd::parse(bytes, origin)?;
            Parsed::Cves {
                records: page.records,
                rejected: page.rejected_records,
            }
        }
        FeedFormat::Kev => Parsed::Kev(kev::parse(bytes, origin)?),
        FeedFormat::EpssCsv => Parsed::Epss(epss::parse_csv(bytes, origin)?),
        FeedFormat::DebianTracker => advisories(
            "debian-tracker".into(),
            Source::DebianTracker,
            WriteMode::Replace,
            debian::parse(bytes, origin)?,
        ),
        FeedFormat::AlpineJson | FeedFormat::AlpineYaml => {
            let list = if format == FeedFormat::AlpineJson {
                alpine::parse_json(bytes, origin)?
            } else {
                alpine::parse_yaml(bytes, origin)?
            };
            // alpine:v3.19/main → alpine-secdb:v3.19/main
            let feed = list
                .first()
                .and_then(|a| a.affected.first())
                .map(|p| format!("alpine-secdb:{}", p.ecosystem.trim_start_matches("alpine:")))
                .unwrap_or_else(|| "alpine-secdb".into());
            advisories(feed, Source::AlpineSecdb, WriteMode::Replace, list)
        }
        FeedFormat::RedhatVex => advisories(
            "redhat-vex".into(),
            Source::RedhatVex,
            WriteMode::Upsert,
            redhat::parse(bytes, origin)?,
        ),
    })
}

/// Writes a parsed file (one transaction per feed); `provenance` describes the file (its `source`
/// is set from what was parsed). Returns the records written.
pub async fn store(
    store: &Store,
    parsed: Parsed,
    provenance: &Provenance,
) -> Result<usize, StoreError> {
    let with_source = |source: Source| Provenance {
        source,
        ..provenance.clone()
    };
    match parsed {
        Parsed::Advisories {
            feed,
            source,
            mode,
            advisories,
        } => {
            let p = with_source(source);
            let items: Vec<_> = advisories.into_iter().map(|a| (a, p.clone())).collect();
            store
                .write_advisories(&feed, source, mode, &items, None)
                .await
        }
        Parsed::Cves { records, .. } => {
            let p = with_source(Source::Nvd);
            let items: Vec<_> = records.into_iter().map(|r| (r, p.clone())).collect();
            store
                .write_cves("nvd", WriteMode::Upsert, &items, None)
                .await
        }
        Parsed::Kev(catalog) => {
            store
                .replace_kev("kev", &catalog, &with_source(Source::Kev))
                .await
        }
        Parsed::Epss(snapshot) => {
            store
                .replace_epss("epss", &snapshot, &with_source(Source::Epss))
                .await
        }
    }
}

/// Whether `bytes` start like a zip archive (osv.dev's `all.zip`).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// The files of a zip archive in order, each as (name, content); directories are left out. A
/// damaged archive or entry is an error naming the archive and the entry.
pub struct ZipEntries<'a> {
    archive: zip::ZipArchive<std::io::Cursor<&'a [u8]>>,
    next: usize,
    origin: String,
}

impl<'a> ZipEntries<'a> {
    pub fn new(bytes: &'a [u8], origin: &str) -> Result<ZipEntries<'a>, SyncError> {
        let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| SyncError::Data(format!("{origin}: not a readable zip archive: {e}")))?;
        Ok(ZipEntries {
            archive,
            next: 0,
            origin: origin.to_owned(),
        })
    }
}

impl Iterator for ZipEntries<'_> {
    type Item = Result<(String, Vec<u8>), SyncError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.archive.len() {
            let i = self.next;
            self.next += 1;
            let origin = &self.origin;
            let mut entry = match self.archive.by_index(i) {
                Ok(e) => e,
                Err(e) => return Some(Err(SyncError::Data(format!("{origin}: entry {i}: {e}")))),
            };
            if entry.is_dir() {
                continue;
            }
            let name = match entry.name() {
                Ok(n) => n.into_owned(),
                Err(e) => {
                    return Some(Err(SyncError::Data(format!(
                        "{origin}: entry {i} has no readable name: {e}"
                    ))))
                }
            };
            let mut content = Vec::with_capacity(entry.size().min(64 << 20) as usize);
            if let Err(e) = std::io::Read::read_to_end(&mut entry, &mut content) {
                return Some(Err(SyncError::Data(format!(
                    "{origin}: cannot unpack {name}: {e}"
                ))));
            }
            return Some(Ok((name, content)));
        }
        None
    }
}

/// Calls `each` with every file of a zip archive (see [`ZipEntries`]).
pub fn unzip(
    bytes: &[u8],
    origin: &str,
    mut each: impl FnMut(&str, &[u8]) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    for entry in ZipEntries::new(bytes, origin)? {
        let (name, content) = entry?;
        each(&name, &content)?;
    }
    Ok(())
}

/// The zstd frames of a file one after another (an archive may hold several).
struct Frames<R: std::io::BufRead> {
    current: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
    source: Option<R>,
}

impl<R: std::io::BufRead> std::io::Read for Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(frame) = self.current.as_mut() {
                let n = frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.source = self.current.take().map(|f| f.into_inner());
            }
            let Some(mut source) = self.source.take() else {
                return Ok(0);
            };
            if source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.current = Some(
                ruzstd::decoding::StreamingDecoder::new(source)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            );
        }
    }
}

/// Whether `name` is a zstd-compressed tar archive by its name (`csaf_vex_2025-01-01.tar.zst`).
pub fn is_tar_zst(name: &std::path::Path) -> bool {
    name.to_string_lossy().ends_with(".tar.zst")
}

/// Reads the regular files of a `.tar.zst` archive one by one, never the whole archive in memory,
/// calling `each` with the entry's name (without `./`) and its content — or, for an entry over
/// `max_entry` bytes, why it was left out. A damaged archive is an error naming it.
pub fn read_tar_zst(
    path: &std::path::Path,
    origin: &str,
    max_entry: u64,
    mut each: impl FnMut(&str, Result<Vec<u8>, String>),
) -> Result<(), SyncError> {
    use std::io::Read;
    let bad = |what: String| SyncError::Data(format!("{origin}: {what}"));
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let frames = Frames {
        current: None,
        source: Some(std::io::BufReader::with_capacity(1 << 20, file)),
    };
    let mut archive = tar::Archive::new(frames);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a readable tar.zst archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a readable tar.zst archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| bad(format!("an entry has no readable name: {e}")))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        if entry.size() > max_entry {
            each(
                &name,
                Err(format!(
                    "{origin}!{name}: {} bytes, over the limit of {max_entry} for one entry",
                    entry.size()
                )),
            );
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("cannot unpack {name}: {e}")))?;
        each(&name, Ok(bytes));
    }
    Ok(())
}

/// One entry of a `.tar.zst` archive as [`tar_zst_entries`] hands it over: its name and content
/// (or why it was left out), or the error that ended the archive.
pub type TarZstEntry = Result<(String, Result<Vec<u8>, String>), SyncError>;

/// [`read_tar_zst`] on a blocking thread, its entries handed over as they are read (a few at a
/// time: the archive is never held whole), for an async caller (`feeds import`).
pub fn tar_zst_entries(
    path: std::path::PathBuf,
    origin: String,
    max_entry: u64,
) -> tokio::sync::mpsc::Receiver<TarZstEntry> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let result = read_tar_zst(&path, &origin, max_entry, |name, content| {
            let _ = tx.blocking_send(Ok((name.to_owned(), content)));
        });
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}
