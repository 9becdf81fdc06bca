use std::fmt;

/// A feed file or record that cannot be used, naming the file (`origin`) and, where there is one, the
/// record (an advisory id, a CVE, a line number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedError {
    pub origin: String,
    pub record: Option<String>,
    pub reason: String,
}

impl FeedError {
    pub fn file(origin: &str, reason: impl Into<String>) -> Self {
        FeedError {
            origin: origin.to_owned(),
            record: None,
            reason: reason.into(),
        }
    }
    pub fn record(origin: &str, record: impl Into<String>, reason: impl Into<String>) -> Self {
        FeedError {
            origin: origin.to_owned(),
            record: Some(record.into()),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.record {
            Some(r) => write!(f, "{}: {r}: {}", self.origin, self.reason),
            None => write!(f, "{}: {}", self.origin, self.reason),
        }
    }
}

impl std::error::Error for FeedError {}
