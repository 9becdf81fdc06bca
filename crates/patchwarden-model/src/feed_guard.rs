//! The rule a feed replacement must pass: a snapshot feed (the Debian tracker, an Alpine secdb
//! branch, KEV, EPSS, an OSV ecosystem archive) is replaced whole, so a mirror serving `{}` or a
//! truncated file that still parses would wipe it — and every host's findings with it. A
//! replacement that would empty a feed, or shrink it by more than [`ReplacePolicy::max_shrink`],
//! is refused (both counts named) unless the operator allows it. The store applies the rule inside
//! the replacing transaction; this module only decides.

use std::fmt;

/// How far a replacement may shrink a feed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplacePolicy {
    /// The largest fraction of a feed's records a replacement may drop (0.5: half).
    pub max_shrink: f64,
    /// The operator's explicit permission (`--allow-shrink`): any replacement passes.
    pub allow_shrink: bool,
}

impl Default for ReplacePolicy {
    fn default() -> Self {
        ReplacePolicy {
            max_shrink: 0.5,
            allow_shrink: false,
        }
    }
}

/// A refused replacement.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplaceRefused {
    /// The new data holds no record where the feed holds some.
    Emptied { feed: String, stored: i64 },
    /// The new data holds fewer records than the policy lets a feed lose.
    Shrunk {
        feed: String,
        stored: i64,
        new: i64,
        max_shrink: f64,
    },
}

impl fmt::Display for ReplaceRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplaceRefused::Emptied { feed, stored } => write!(
                f,
                "refusing to replace {feed}: the new data holds 0 records where {stored} are stored \
                 (it would empty the feed); nothing was changed — pass --allow-shrink if this is intended"
            ),
            ReplaceRefused::Shrunk {
                feed,
                stored,
                new,
                max_shrink,
            } => write!(
                f,
                "refusing to replace {feed}: the new data holds {new} records where {stored} are stored \
                 (a loss of {:.0} %, more than the {:.0} % allowed); nothing was changed — pass \
                 --allow-shrink if this is intended",
                100.0 * (stored - new) as f64 / *stored as f64,
                100.0 * max_shrink
            ),
        }
    }
}

impl std::error::Error for ReplaceRefused {}

impl ReplacePolicy {
    /// Whether replacing `stored` records of `feed` with `new` ones passes.
    pub fn check(&self, feed: &str, stored: i64, new: i64) -> Result<(), ReplaceRefused> {
        if self.allow_shrink || stored <= 0 || new >= stored {
            return Ok(());
        }
        if new <= 0 {
            return Err(ReplaceRefused::Emptied {
                feed: feed.to_owned(),
                stored,
            });
        }
        let lost = (stored - new) as f64 / stored as f64;
        if lost > self.max_shrink {
            return Err(ReplaceRefused::Shrunk {
                feed: feed.to_owned(),
                stored,
                new,
                max_shrink: self.max_shrink,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emptying_and_large_losses_are_refused_unless_allowed() {
        let policy = ReplacePolicy::default();
        assert_eq!(
            policy.check("debian-tracker", 16, 0),
            Err(ReplaceRefused::Emptied {
                feed: "debian-tracker".into(),
                stored: 16
            })
        );
        assert!(matches!(
            policy.check("kev", 1404, 701),
            Err(ReplaceRefused::Shrunk { new: 701, .. })
        ));
        // Half exactly is allowed; growth, a first load and an empty feed staying empty pass.
        assert_eq!(policy.check("kev", 1404, 702), Ok(()));
        assert_eq!(policy.check("kev", 1404, 2000), Ok(()));
        assert_eq!(policy.check("kev", 0, 0), Ok(()));
        let allowed = ReplacePolicy {
            allow_shrink: true,
            ..policy
        };
        assert_eq!(allowed.check("debian-tracker", 16, 0), Ok(()));
        let strict = ReplacePolicy {
            max_shrink: 0.0,
            ..policy
        };
        assert!(strict.check("kev", 1404, 1403).is_err());
        let text = policy.check("epss", 1000, 100).unwrap_err().to_string();
        assert!(
            text.contains("100 records where 1000") && text.contains("90 %"),
            "{text}"
        );
    }
}
