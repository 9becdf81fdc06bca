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
