//! NVD CVE API 2.0 sync: a full download the first time, then incremental updates by lastModified
//! window.
//!
//! * **Paging**: `resultsPerPage` (at most 2,000, the API's limit) and `startIndex`, until
//!   `totalResults` is reached.
//! * **Incremental**: the feed's `data_version` holds the time the last successful sync *started*;
//!   the next one asks for records with `lastModStartDate` from then to now, split into windows of at
//!   most 120 days (the API refuses longer ones). Records changed while a sync runs are fetched again
//!   next time; upserting them twice is harmless.
//! * **Rate limits**: the public API allows 5 requests in 30 s without a key and 50 with one
//!   (`apiKey` header). The delay between requests is configurable; 403/429/5xx answers are retried a
//!   configurable number of times with a growing pause.
//! * **All or nothing**: every page of a run is downloaded and parsed before anything is written; the
//!   records are then upserted and the cursor advanced in one transaction. A failing page leaves the
//!   store and the cursor as they were.

use crate::SyncError;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use patchwarden_feeds::nvd;
use patchwarden_model::{CveRecord, Provenance, Source};
use patchwarden_store::{Store, WriteMode};
use sha2::{Digest, Sha256};

use crate::{error_chain, SyncOutcome, Syncer};

/// The feed name NVD records are kept under.
pub const FEED: &str = "nvd";

/// Where and how to ask the NVD API.
#[derive(Clone, Debug)]
pub struct NvdSettings {
    /// The CVE API endpoint (`https://services.nvd.nist.gov/rest/json/cves/2.0`, or a mirror).
    pub url: String,
    /// Sent as the `apiKey` header when set.
    pub api_key: Option<String>,
    /// `resultsPerPage` (the API allows at most 2,000).
    pub page_size: u32,
    /// Pause between two requests.
    pub request_delay: Duration,
    /// Longest lastModified window of one request series (the API allows at most 120 days).
    pub max_window_days: i64,
    /// How often a refused (403/429) or failed (5xx) request is tried again.
    pub retries: u32,
    /// Ignore the stored cursor and download everything again.
    pub full: bool,
}

impl NvdSettings {
    /// The public API, configured from the environment: `PATCHWARDEN_FEED_URL_NVD`,
    /// `PATCHWARDEN_NVD_API_KEY`, `PATCHWARDEN_NVD_PAGE_SIZE` (default 2000),
    /// `PATCHWARDEN_NVD_DELAY_MS` (default 6000 without a key, 700 with one, as NVD asks),
    /// `PATCHWARDEN_NVD_RETRIES` (default 3).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<NvdSettings, SyncError> {
        let number = |name: &str, default: u64| -> Result<u64, SyncError> {
            match env(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| {
                    SyncError::Settings(format!("{name}={v:?} is not a whole number"))
                }),
            }
        };
        let api_key = env("PATCHWARDEN_NVD_API_KEY").filter(|k| !k.is_empty());
        let delay_default = if api_key.is_some() { 700 } else { 6000 };
        let page_size = number("PATCHWARDEN_NVD_PAGE_SIZE", 2000)?;
        if !(1..=2000).contains(&page_size) {
            return Err(SyncError::Settings(format!(
                "PATCHWARDEN_NVD_PAGE_SIZE={page_size} is outside 1..=2000 (the API's limit)"
            )));
        }
        Ok(NvdSettings {
            url: env("PATCHWARDEN_FEED_URL_NVD")
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "https://services.nvd.nist.gov/rest/json/cves/2.0".into()),
            api_key,
            page_size: page_size as u32,
            request_delay: Duration::from_millis(number(
                "PATCHWARDEN_NVD_DELAY_MS",
                delay_default,
            )?),
            max_window_days: 120,
            retries: number("PATCHWARDEN_NVD_RETRIES", 3)? as u32,
            full: false,
        })
    }
}

/// One lastModified window (`None`: everything, the first sync).
type Window = Option<(Timestamp, Timestamp)>;

/// The windows from the last sync's start to `now`, each at most `max_days` long.
pub fn windows(since: Option<Timestamp>, now: Timestamp, max_days: i64) -> Vec<Window> {
    let Some(mut start) = since else {
        return vec![None];
    };
    let step = SignedDuration::from_hours(24 * max_days.max(1));
    let mut out = Vec::new();
    while start < now {
        let end = start
            .checked_add(step)
            .map_or(now, |e| if e < now { e } else { now });
        out.push(Some((start, end)));
        start = end;
    }
    if out.is_empty() {
        out.push(Some((now, now)));
    }
    out
}

/// The API's date form: extended ISO 8601 with milliseconds and an explicit offset.
fn api_date(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

impl Syncer {
    /// Syncs NVD: incremental when a previous sync left a cursor, full otherwise. Failures are
    /// recorded in the feed's state; nothing is written unless every page arrived and parsed.
    pub async fn sync_nvd(&self, store: &Store, settings: &NvdSettings) -> SyncOutcome {
        match self.try_sync_nvd(store, settings).await {
            Ok(outcome) => outcome,
            Err(reason) => {
                let reason = format!("{}: {reason}", settings.url);
                if let Err(e) = store.record_failure(FEED, Source::Nvd, &reason).await {
                    return SyncOutcome::Failed {
                        reason: format!("{reason} (and recording it failed: {e})"),
                    };
                }
                SyncOutcome::Failed { reason }
            }
        }
    }

    async fn try_sync_nvd(
        &self,
        store: &Store,
        settings: &NvdSettings,
    ) -> Result<SyncOutcome, SyncError> {
        let started = Timestamp::now();
        let state = store.feed(FEED).await?;
        let since = match state
            .as_ref()
            .filter(|s| s.record_count > 0 && !settings.full)
            .and_then(|s| s.data_version.as_deref())
        {
            None => None,
            Some(v) => Some(v.parse::<Timestamp>().map_err(|e| {
                SyncError::Data(format!("the stored NVD cursor {v:?} is not a timestamp ({e}); run a full sync with `feeds sync nvd --full`"))
            })?),
        };
        let mut records: Vec<CveRecord> = Vec::new();
        let mut skipped = Vec::new();
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut first_request = true;
        let mut last_report = std::time::Instant::now();
        for window in windows(since, started, settings.max_window_days) {
            let mut start_index: u64 = 0;
            loop {
                if !first_request {
                    tokio::time::sleep(settings.request_delay).await;
                }
                first_request = false;
                let mut url = reqwest::Url::parse(&settings.url)
                    .map_err(|e| SyncError::Http(format!("not a URL: {e}")))?;
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("resultsPerPage", &settings.page_size.to_string());
                    q.append_pair("startIndex", &start_index.to_string());
                    if let Some((from, to)) = window {
                        q.append_pair("lastModStartDate", &api_date(from));
                        q.append_pair("lastModEndDate", &api_date(to));
                    }
                }
                let body = self.get_page(&url, settings).await?;
                bytes += body.len() as u64;
                hasher.update(&body);
                let page = nvd::parse(&body, url.as_str())?;
                let total = page.total_results.ok_or_else(|| {
                    SyncError::Data(format!(
                        "{url}: the page has no totalResults: not an API 2.0 answer"
                    ))
                })?;
                let got = (page.records.len() + page.rejected_records.len()) as u64;
                records.extend(page.records);
                skipped.extend(page.rejected_records.iter().map(|e| e.to_string()));
                start_index += got;
                if let Some(progress) = self.settings.progress {
                    if last_report.elapsed() >= Duration::from_secs(5) {
                        last_report = std::time::Instant::now();
                        progress(&format!(
                            "nvd: {start_index} of {total} records of this window fetched, {} in all",
                            records.len()
                        ));
                    }
                }
                if start_index >= total {
                    break;
                }
                if got == 0 {
                    return Err(SyncError::Data(format!(
                        "{url}: an empty page at startIndex {start_index} of {total} results"
                    )));
                }
            }
        }
        let provenance = Provenance {
            source: Source::Nvd,
            origin: match since {
                Some(s) => format!("{} (lastModified since {s})", settings.url),
                None => format!("{} (full)", settings.url),
            },
            fetched_at: patchwarden_model::now_rfc3339(),
            sha256: format!("{:x}", hasher.finalize()),
        };
        let items: Vec<_> = records
            .into_iter()
            .map(|r| (r, provenance.clone()))
            .collect();
        let cursor = started.to_string();
        let written = store
            .write_cves(FEED, WriteMode::Upsert, &items, Some(&cursor))
            .await?;
        Ok(SyncOutcome::Updated {
            records: written,
            bytes,
            skipped,
        })
    }

    /// One page, retried on 403/429/5xx and on transport errors with a growing pause.
    async fn get_page(
        &self,
        url: &reqwest::Url,
        settings: &NvdSettings,
    ) -> Result<Vec<u8>, SyncError> {
        let mut attempt = 0;
        loop {
            let mut request = self.client.get(url.clone());
            if let Some(key) = &settings.api_key {
                request = request.header("apiKey", key);
            }
            let failure = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    return self
                        .read_limited(response)
                        .await
                        .map_err(|e| SyncError::Http(format!("{url}: {e}")));
                }
                Ok(response) => {
                    let status = response.status();
                    let retryable = status.is_server_error()
                        || status == reqwest::StatusCode::FORBIDDEN
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                    let message = response
                        .headers()
                        .get("message")
                        .and_then(|v| v.to_str().ok())
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default();
                    let reason = format!("{url}: HTTP {status}{message}");
                    if !retryable {
                        return Err(SyncError::Http(reason));
                    }
                    reason
                }
                Err(e) => format!("{url}: request failed: {}", error_chain(&e)),
            };
            if attempt >= settings.retries {
                let tries = attempt + 1;
                return Err(SyncError::Http(format!(
                    "{failure} (after {tries} attempt(s))"
                )));
            }
            attempt += 1;
            tokio::time::sleep(settings.request_delay * (1 << attempt.min(5))).await;
        }
    }

    /// Reads a response body whole, up to the size limit (NVD pages are a few MB).
    async fn read_limited(&self, mut response: reqwest::Response) -> Result<Vec<u8>, SyncError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            SyncError::Http(format!(
                "the download broke off after {} bytes: {}",
                body.len(),
                error_chain(&e)
            ))
        })? {
            if (body.len() + chunk.len()) as u64 > self.settings.max_bytes {
                return Err(SyncError::Http(format!(
                    "the page exceeds the limit of {} bytes",
                    self.settings.max_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_at_most_the_limit_and_cover_the_span() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(windows(None, t("2026-11-22T00:00:00Z"), 120), vec![None]);
        let w = windows(
            Some(t("2026-01-01T00:00:00Z")),
            t("2026-11-22T06:00:00Z"),
            120,
        );
        assert_eq!(w.len(), 3);
        assert_eq!(
            w[0],
            Some((t("2026-01-01T00:00:00Z"), t("2026-05-01T00:00:00Z")))
        );
        assert_eq!(w[2].unwrap().1, t("2026-11-22T06:00:00Z"));
        for pair in w.windows(2) {
            assert_eq!(pair[0].unwrap().1, pair[1].unwrap().0);
        }
        // A sync right after the last one still asks (an empty window at `now`).
        let now = t("2026-11-22T06:00:00Z");
        assert_eq!(windows(Some(now), now, 120), vec![Some((now, now))]);
        assert_eq!(
            api_date(t("2026-01-01T00:00:00Z")),
            "2026-01-01T00:00:00.000+00:00"
        );
    }
}
