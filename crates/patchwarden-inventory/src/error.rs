use std::fmt;
use std::path::PathBuf;

/// Why an inventory could not be collected. Every variant names the file, and the record where there
/// is one, so that a broken database can be found and repaired.
#[derive(Debug)]
pub enum InventoryError {
    /// The root directory does not exist or cannot be read.
    Root {
        root: PathBuf,
        source: std::io::Error,
    },
    /// The directory exists but holds neither an os-release file nor a package database.
    NotASystemRoot { root: PathBuf },
    /// A file could not be read.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file was read but its content is not what its format requires.
    Corrupt {
        path: PathBuf,
        record: Option<String>,
        reason: String,
    },
}

impl InventoryError {
    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        record: Option<String>,
        reason: impl Into<String>,
    ) -> Self {
        InventoryError::Corrupt {
            path: path.into(),
            record,
            reason: reason.into(),
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        InventoryError::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InventoryError::Root { root, source } => write!(f, "cannot read root directory {}: {source}", root.display()),
            InventoryError::NotASystemRoot { root } => write!(
                f,
                "{} is not a system root: it has no etc/os-release or usr/lib/os-release and no dpkg, rpm or apk database",
                root.display()
            ),
            InventoryError::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            InventoryError::Corrupt { path, record: Some(record), reason } => {
                write!(f, "{}: {record}: {reason}", path.display())
            }
            InventoryError::Corrupt { path, record: None, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for InventoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InventoryError::Root { source, .. } | InventoryError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
