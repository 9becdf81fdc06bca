//! Feed bundles for air-gapped sites: `export` writes the knowledge base of one store as files plus a
//! `manifest.json` of their sha256 digests and sizes; `import` verifies every file against the manifest
//! *before* anything is written, then replaces each feed it carries (one transaction per feed).
//!
//! Layout (format `patchwarden-bundle`, version 1): `advisories.ndjson` (`{feed, provenance,
//! advisory}` per line), `cves.ndjson` (`{provenance, cve}`), `kev.json` and `epss.json` (the
//! snapshot with its provenance, when the store has one). Records keep the provenance they had.

use crate::SyncError;
use std::collections::BTreeMap;
use std::path::Path;

use patchwarden_model::{Advisory, CveRecord, EpssSnapshot, KevCatalog, Provenance, Source};
use patchwarden_store::{Store, WriteMode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "patchwarden-bundle";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    created_at: String,
    files: Vec<FileEntry>,
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    path: String,
    sha256: String,
    bytes: u64,
    records: usize,
}

#[derive(Serialize, Deserialize)]
struct AdvisoryLine {
    feed: String,
    provenance: Provenance,
    advisory: Advisory,
}

#[derive(Serialize, Deserialize)]
struct CveLine {
    provenance: Provenance,
    cve: CveRecord,
}

#[derive(Serialize, Deserialize)]
struct KevFile {
    provenance: Provenance,
    catalog: KevCatalog,
}

#[derive(Serialize, Deserialize)]
struct EpssFile {
    provenance: Provenance,
    snapshot: EpssSnapshot,
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn ndjson<T: Serialize>(items: &[T]) -> Result<Vec<u8>, SyncError> {
    let mut out = Vec::new();
    for item in items {
        serde_json::to_writer(&mut out, item)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// A feed's provenance as the store keeps it (for the snapshot sources).
async fn feed_provenance(
    store: &Store,
    feed: &str,
    source: Source,
) -> Result<Option<(Provenance, Option<String>, Option<String>)>, SyncError> {
    let state = store.feed(feed).await?;
    Ok(state.filter(|s| s.record_count > 0).map(|s| {
        let p = Provenance {
            source,
            origin: s.origin.unwrap_or_default(),
            fetched_at: s.fetched_at.unwrap_or_default(),
            sha256: s.sha256.unwrap_or_default(),
        };
        (p, s.data_version, s.data_date)
    }))
}

/// Writes the bundle into `dir` (created if needed); returns the manifest's file list as text.
pub async fn export(store: &Store, dir: &Path) -> Result<String, SyncError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| SyncError::Data(format!("cannot create {}: {e}", dir.display())))?;
    let mut files: Vec<(String, Vec<u8>, usize)> = Vec::new();
    let advisories: Vec<AdvisoryLine> = store
        .all_advisories()
        .await?
        .into_iter()
        .map(|(feed, provenance, advisory)| AdvisoryLine {
            feed,
            provenance,
            advisory,
        })
        .collect();
    files.push((
        "advisories.ndjson".into(),
        ndjson(&advisories)?,
        advisories.len(),
    ));
    let cves: Vec<CveLine> = store
        .all_cves()
        .await?
        .into_iter()
        .map(|(provenance, cve)| CveLine { provenance, cve })
        .collect();
    files.push(("cves.ndjson".into(), ndjson(&cves)?, cves.len()));
    if let Some((provenance, version, date)) = feed_provenance(store, "kev", Source::Kev).await? {
        let entries = store.all_kev().await?;
        let n = entries.len();
        let catalog = KevCatalog {
            catalog_version: version.unwrap_or_default(),
            date_released: date.unwrap_or_default(),
            entries,
        };
        files.push((
            "kev.json".into(),
            serde_json::to_vec(&KevFile {
                provenance,
                catalog,
            })?,
            n,
        ));
    }
    if let Some((provenance, version, _)) = feed_provenance(store, "epss", Source::Epss).await? {
        let scores = store.all_epss().await?;
        let n = scores.len();
        let (model, date) = version
            .as_deref()
            .and_then(|v| v.split_once(' '))
            .map(|(m, d)| (Some(m.to_owned()), Some(d.to_owned())))
            .unwrap_or((None, None));
        let snapshot = EpssSnapshot {
            model_version: model,
            score_date: date,
            scores,
        };
        files.push((
            "epss.json".into(),
            serde_json::to_vec(&EpssFile {
                provenance,
                snapshot,
            })?,
            n,
        ));
    }
    let mut manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        created_at: patchwarden_model::now_rfc3339(),
        files: Vec::new(),
    };
    let mut summary = String::new();
    for (name, bytes, records) in files {
        std::fs::write(dir.join(&name), &bytes)
            .map_err(|e| SyncError::Data(format!("cannot write {name}: {e}")))?;
        summary.push_str(&format!(
            "{name}: {records} records, {} bytes\n",
            bytes.len()
        ));
        manifest.files.push(FileEntry {
            path: name,
            sha256: sha256_hex(&bytes),
            bytes: bytes.len() as u64,
            records,
        });
    }
    // The manifest last: a bundle without one is visibly incomplete.
    let text = serde_json::to_vec_pretty(&manifest)?;
    std::fs::write(dir.join(MANIFEST), text)
        .map_err(|e| SyncError::Data(format!("cannot write the manifest: {e}")))?;
    Ok(summary)
}

/// True when `dir` holds a bundle manifest.
pub fn is_bundle(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}

/// Verifies the bundle in `dir` completely, then replaces every feed it carries. Returns the number
/// of records loaded.
pub async fn import(store: &Store, dir: &Path) -> Result<usize, SyncError> {
    let manifest_path = dir.join(MANIFEST);
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .map_err(|e| SyncError::Data(format!("{}: {e}", manifest_path.display())))?,
    )
    .map_err(|e| {
        SyncError::Data(format!(
            "{}: not a bundle manifest: {e}",
            manifest_path.display()
        ))
    })?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(SyncError::Data(format!(
            "{}: format {} version {} is not {FORMAT} version {VERSION}",
            manifest_path.display(),
            manifest.format,
            manifest.version
        )));
    }
    // 1. Verify every file before reading any record.
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for f in &manifest.files {
        if f.path.contains('/') || f.path.contains("..") {
            return Err(SyncError::Data(format!(
                "{}: file name {:?} is not allowed",
                manifest_path.display(),
                f.path
            )));
        }
        let path = dir.join(&f.path);
        let bytes = std::fs::read(&path).map_err(|e| {
            SyncError::Data(format!(
                "{}: listed in the manifest but unreadable: {e}",
                path.display()
            ))
        })?;
        if bytes.len() as u64 != f.bytes || sha256_hex(&bytes) != f.sha256 {
            return Err(SyncError::Data(format!("{}: does not match the manifest (sha256 or size differs): the bundle is damaged, nothing was imported", path.display())));
        }
        contents.insert(f.path.clone(), bytes);
    }
    // 2. Parse everything.
    let parse_lines = |name: &str| -> Result<Vec<serde_json::Value>, SyncError> {
        contents
            .get(name)
            .map(|b| {
                b.split(|c| *c == b'\n')
                    .filter(|l| !l.is_empty())
                    .enumerate()
                    .map(|(i, l)| {
                        serde_json::from_slice(l)
                            .map_err(|e| SyncError::Data(format!("{name} line {}: {e}", i + 1)))
                    })
                    .collect()
            })
            .unwrap_or(Ok(Vec::new()))
    };
    let mut by_feed: BTreeMap<(String, Source), Vec<(Advisory, Provenance)>> = BTreeMap::new();
    for (i, v) in parse_lines("advisories.ndjson")?.into_iter().enumerate() {
        let line: AdvisoryLine = serde_json::from_value(v)
            .map_err(|e| SyncError::Data(format!("advisories.ndjson line {}: {e}", i + 1)))?;
        by_feed
            .entry((line.feed, line.advisory.source))
            .or_default()
            .push((line.advisory, line.provenance));
    }
    let mut cves = Vec::new();
    for (i, v) in parse_lines("cves.ndjson")?.into_iter().enumerate() {
        let line: CveLine = serde_json::from_value(v)
            .map_err(|e| SyncError::Data(format!("cves.ndjson line {}: {e}", i + 1)))?;
        cves.push((line.cve, line.provenance));
    }
    let kev: Option<KevFile> = contents
        .get("kev.json")
        .map(|b| serde_json::from_slice(b).map_err(|e| SyncError::Data(format!("kev.json: {e}"))))
        .transpose()?;
    let epss: Option<EpssFile> = contents
        .get("epss.json")
        .map(|b| serde_json::from_slice(b).map_err(|e| SyncError::Data(format!("epss.json: {e}"))))
        .transpose()?;
    let (has_cves, has_kev, has_epss) = (!cves.is_empty(), kev.is_some(), epss.is_some());
    // 3. Swap in, one feed at a time.
    let mut loaded = 0;
    for ((feed, source), items) in &by_feed {
        loaded += store
            .write_advisories(feed, *source, WriteMode::Replace, items, None)
            .await?;
    }
    if !cves.is_empty() {
        loaded += store
            .write_cves("nvd", WriteMode::Replace, &cves, None)
            .await?;
    }
    if let Some(k) = kev {
        loaded += store.replace_kev("kev", &k.catalog, &k.provenance).await?;
    }
    if let Some(e) = epss {
        loaded += store
            .replace_epss("epss", &e.snapshot, &e.provenance)
            .await?;
    }
    // Each feed says it came from this bundle; those whose records carry no date (the Debian
    // tracker, Alpine secdb) are as new as the bundle at most: dated by its creation, so that an
    // old bundle does not look fresh.
    let label = format!("{} (created {})", dir.display(), manifest.created_at);
    let mut feeds: Vec<&str> = by_feed.keys().map(|(feed, _)| feed.as_str()).collect();
    for (present, feed) in [(has_cves, "nvd"), (has_kev, "kev"), (has_epss, "epss")] {
        if present {
            feeds.push(feed);
        }
    }
    for feed in feeds {
        store
            .note_bundle(feed, &label, &manifest.created_at)
            .await?;
    }
    Ok(loaded)
}
