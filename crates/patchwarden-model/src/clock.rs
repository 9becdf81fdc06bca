//! The time as a reader of findings sees it: the system clock, or — for tests that need days to
//! pass with nothing else changing — a clock set by hand. Due dates and overdue flags are computed
//! against it when findings are read.

use std::sync::{Arc, Mutex};

/// A clock: [`Clock::system`] (the default) or [`Clock::manual`]. Cheap to clone; clones of a
/// manual clock share its time.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<Mutex<String>>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that reads `at` (RFC 3339 UTC) until [`Clock::set`] moves it.
    pub fn manual(at: &str) -> Clock {
        Clock(Some(Arc::new(Mutex::new(at.to_owned()))))
    }

    /// Moves a manual clock (a system clock cannot be moved: nothing happens).
    pub fn set(&self, at: &str) {
        if let Some(time) = &self.0 {
            *time.lock().unwrap_or_else(|e| e.into_inner()) = at.to_owned();
        }
    }

    /// Now, RFC 3339 UTC.
    pub fn now_rfc3339(&self) -> String {
        match &self.0 {
            None => crate::now_rfc3339(),
            Some(time) => time.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_reads_what_it_was_set_to_in_every_clone() {
        let clock = Clock::manual("2026-12-03T09:00:00Z");
        let other = clock.clone();
        clock.set("2027-01-10T00:00:00Z");
        assert_eq!(other.now_rfc3339(), "2027-01-10T00:00:00Z");
        let system = Clock::system();
        system.set("1999-01-01T00:00:00Z");
        assert!(system.now_rfc3339().as_str() > "2026");
    }
}
