//! patchwarden's store: one schema with two backends — an embedded SQLite file (the default) and
//! PostgreSQL for large installations and for several server processes sharing one database.
//!
//! It owns the schema and its migrations (`migrations/<backend>/NNNN_name.sql`, applied in order at
//! open, recorded in `schema_migrations`; on PostgreSQL under an advisory lock so concurrent starts
//! are safe) and the reads and writes of the knowledge base. Every query is written once with `$N`
//! placeholders and runs on both backends through sqlx's `Any` driver.
//!
//! Writes are atomic per call: a feed's new snapshot replaces the old one in one transaction, so a
//! reader sees the old data or the new, never a mix, and a failed write leaves the old data intact.
//! The store holds no business rules: it does not decide what a record means for a host.
//!
//! One file per concern: the knowledge base — `knowledge` (feed writes), `kb_journal` (what a
//! write changed, and the hosts it touches), `feed_state`, `kb_reads` (whole records), `reads`
//! (what scanning one host needs), `findings` (first sightings); the fleet — [`fleet`] (identity,
//! check-ins, findings per host, queries, assets), [`jobs`], [`change_requests`], `offers`; and
//! `migrate`, `batch` (multi-row statements), [`testing`] (fresh stores per backend).

pub mod audit;
mod batch;
pub mod change_requests;
mod feed_state;
mod findings;
pub mod fleet;
pub mod jobs;
mod kb_journal;
mod kb_reads;
mod knowledge;
mod leases;
mod migrate;
mod offers;
mod reads;
#[cfg(feature = "testing")]
pub mod testing;

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

pub use feed_state::FeedState;
pub use kb_journal::{CandidateGroup, KnowledgeChanges, KnowledgeChangesApplied};
pub use knowledge::WriteMode;
pub use leases::ScheduledLease;
pub use migrate::LATEST_VERSION;
pub use reads::HostKnowledge;

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store error: what was being done and why it failed.
#[derive(Debug)]
pub struct StoreError {
    pub context: String,
    pub source: Option<sqlx::Error>,
    /// A feed replacement the store's [`ReplacePolicy`] refused (nothing was written).
    pub refused: Option<Box<patchwarden_model::feed_guard::ReplaceRefused>>,
}

impl StoreError {
    pub(crate) fn new(context: impl Into<String>) -> Self {
        StoreError {
            context: context.into(),
            source: None,
            refused: None,
        }
    }
}

impl From<patchwarden_model::feed_guard::ReplaceRefused> for StoreError {
    fn from(refused: patchwarden_model::feed_guard::ReplaceRefused) -> Self {
        StoreError {
            context: refused.to_string(),
            source: None,
            refused: Some(Box::new(refused)),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.context),
            None => f.write_str(&self.context),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// Adds what was being done to a sqlx error.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|e| StoreError {
            context: what(),
            source: Some(e),
            refused: None,
        })
    }
}

/// A connection pool to the store.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    location: String,
    /// The SQLite file, for the read paths that go through rusqlite (no `Any` row conversions).
    sqlite_path: Option<std::path::PathBuf>,
    /// Idle read-only rusqlite connections to that file, reused across reads (opening one costs a
    /// schema parse and the WAL index set-up).
    readers: std::sync::Arc<reads::SqliteReaders>,
    /// This process's SQLite writers take turns here (see `Store::begin`).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Ids of interned package versions by key (see `Store::check_in`). A thousand lookups per
    /// inventory: hashed with foldhash (randomly seeded, so hosts cannot choose colliding keys;
    /// a quarter of SipHash's cost here).
    package_ids: std::sync::Arc<std::sync::Mutex<foldhash::HashMap<String, i64>>>,
    /// Finding keys and sets by id and digest (immutable once stored; see `fleet::finding_sets`).
    findings: std::sync::Arc<fleet::FindingCaches>,
    /// Package sets by id and digest (immutable once stored; see `fleet::package_sets`).
    package_sets: std::sync::Arc<fleet::IdLists>,
    /// How far a feed replacement may shrink a feed (see [`Store::with_replace_policy`]).
    replace_policy: patchwarden_model::feed_guard::ReplacePolicy,
}

/// The default SQLite file: `$XDG_DATA_HOME/patchwarden/patchwarden.db`, else
/// `~/.local/share/patchwarden/patchwarden.db`, else `./patchwarden.db`.
pub fn default_location() -> String {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")));
    match base {
        Some(b) => b
            .join("patchwarden")
            .join("patchwarden.db")
            .display()
            .to_string(),
        None => "patchwarden.db".into(),
    }
}

/// Connection settings, with defaults for a CLI run.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How long to wait for a connection before giving up (an unreachable server fails after this).
    pub connect_timeout: std::time::Duration,
    /// Pool size for PostgreSQL (SQLite uses a small fixed pool: one writer at a time anyway).
    pub max_connections: u32,
    /// SQLite page cache of each read connection, in KiB. Small suits a one-shot scan (the pages
    /// a host needs are read once; a larger cache only costs fresh memory, about 7 % of a scan's
    /// time at SQLite's 2 MiB default); a long-running server may want more.
    pub sqlite_reader_cache_kib: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            connect_timeout: std::time::Duration::from_secs(10),
            max_connections: 8,
            sqlite_reader_cache_kib: 512,
        }
    }
}

impl Store {
    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads first and writes later cannot wait for another writer
    /// and fails with "database is locked"; an immediate one waits (busy timeout) instead.
    ///
    /// SQLite has one writer at a time: writers of this process queue on an async lock first, so
    /// they wait their turn without SQLite's busy handler (whose growing sleeps, up to 100 ms,
    /// collapsed check-in throughput); the guard returned must live until the commit.
    pub(crate) async fn begin(
        &self,
    ) -> Result<
        (
            Option<tokio::sync::OwnedMutexGuard<()>>,
            sqlx::Transaction<'static, sqlx::Any>,
        ),
        StoreError,
    > {
        let (guard, tx) = match self.backend() {
            crate::Backend::Sqlite => {
                let guard = self.writer.clone().lock_owned().await;
                (Some(guard), self.pool().begin_with("BEGIN IMMEDIATE").await)
            }
            crate::Backend::Postgres => (None, self.pool().begin().await),
        };
        Ok((guard, tx.context(|| "starting a transaction".into())?))
    }

    /// Opens (creating if needed) the store at `location` — a `postgres://` or `postgresql://` URL, or
    /// a SQLite file path (optionally `sqlite://path`) — and applies pending migrations.
    pub async fn open(location: &str) -> Result<Store, StoreError> {
        Store::open_with(location, &StoreOptions::default()).await
    }

    /// [`Store::open`] with explicit connection settings.
    pub async fn open_with(location: &str, settings: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) =
            if location.starts_with("postgres://") || location.starts_with("postgresql://") {
                (Backend::Postgres, location.to_owned())
            } else {
                let path = location.strip_prefix("sqlite://").unwrap_or(location);
                if let Some(parent) = Path::new(path)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::new(format!("cannot create the directory of {path}: {e}"))
                    })?;
                }
                (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"))
            };
        let sqlite_path = (backend == Backend::Sqlite).then(|| {
            std::path::PathBuf::from(location.strip_prefix("sqlite://").unwrap_or(location))
        });
        let mut options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite {
                4
            } else {
                settings.max_connections
            })
            .acquire_timeout(settings.connect_timeout);
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    // The write-ahead log is checkpointed every 1,000 pages (SQLite's default) and
                    // cut back to 64 MiB when a checkpoint resets it: it cannot keep the size of
                    // a burst (it had reached 6.7 GB).
                    conn.execute("PRAGMA journal_size_limit = 67108864").await?;
                    Ok(())
                })
            });
        }
        // A SQLite store already at the latest schema needs no migration run: the pool then connects
        // on first use (a scan that only reads never starts it; its reads go through rusqlite).
        let readers =
            std::sync::Arc::new(reads::SqliteReaders::new(settings.sqlite_reader_cache_kib));
        let current = sqlite_path
            .as_deref()
            .is_some_and(|path| migrate::sqlite_is_current(path, &readers));
        let pool = if current {
            options
                .connect_lazy(&url)
                .context(|| format!("cannot open the store at {}", redact(location)))?
        } else {
            options
                .connect(&url)
                .await
                .context(|| format!("cannot open the store at {}", redact(location)))?
        };
        let store = Store {
            pool,
            backend,
            location: redact(location),
            sqlite_path,
            readers,
            writer: Default::default(),
            package_ids: Default::default(),
            findings: Default::default(),
            package_sets: std::sync::Arc::new(fleet::IdLists::new(
                "package_set",
                "package_ids",
                "package set",
            )),
            replace_policy: Default::default(),
        };
        if !current {
            migrate::apply(&store).await?;
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This store with another rule for feed replacements (default: a replacement may not empty
    /// a feed nor drop more than half its records; see `patchwarden_model::feed_guard`).
    pub fn with_replace_policy(
        mut self,
        policy: patchwarden_model::feed_guard::ReplacePolicy,
    ) -> Store {
        self.replace_policy = policy;
        self
    }

    /// Where the store is, with any password removed.
    pub fn location(&self) -> &str {
        &self.location
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The query text for this backend: `$N` placeholders become `?N` on SQLite.
    pub(crate) fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        match self.backend {
            Backend::Postgres => Cow::Borrowed(sql),
            Backend::Sqlite => Cow::Owned(sql.replace('$', "?")),
        }
    }

    /// Runs one statement as written (administration and tests: schemas, maintenance).
    pub async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .context(|| format!("running {sql}"))?;
        Ok(())
    }

    /// Closes the idle readers, then the pool: on SQLite the last connection to close checkpoints
    /// the write-ahead log into the database file, which only a writer (the pool) can do.
    pub async fn close(&self) {
        self.readers.close();
        self.pool.close().await;
    }
}

/// Removes a password from a URL for messages.
fn redact(location: &str) -> String {
    match (location.find("://"), location.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &location[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:***{}", &location[..scheme + 3], &location[at..])
                }
                None => location.to_owned(),
            }
        }
        _ => location.to_owned(),
    }
}

pub(crate) fn get<T>(row: &AnyRow, column: &str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(column)
        .context(|| format!("reading column {column}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://pw:secret@db:5432/kb"),
            "postgres://pw:***@db:5432/kb"
        );
        assert_eq!(
            super::redact("/var/lib/patchwarden.db"),
            "/var/lib/patchwarden.db"
        );
    }
}
