//! What can go wrong moving a feed: the store, the file system, the network, the data itself, or
//! the settings. Every failure names the file, URL or record it concerns.

use patchwarden_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A feed file that does not parse (the parser names the file and record).
    #[error("{0}")]
    Feed(#[from] patchwarden_feeds::FeedError),
    /// Writing a bundle file's JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The network: a request that failed, an HTTP status, a download over its limit.
    #[error("{0}")]
    Http(String),
    /// The data is not what it must be: a file that does not parse, a damaged bundle, an
    /// archive with no advisories.
    #[error("{0}")]
    Data(String),
    /// The settings (environment variables, the HTTP client) are not usable.
    #[error("{0}")]
    Settings(String),
}
