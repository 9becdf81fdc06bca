//! Rollouts: hosts in waves (staging → canary → … → the rest), a concurrency limit per wave, an
//! error threshold that halts the rollout, a soak time between waves, per-host timeouts, and
//! operator pause / resume / cancel.
//!
//! The [`Rollout`] is a state machine and nothing else: it is told what happened
//! ([`Rollout::report`], the operator's actions) and asked what to do next ([`Rollout::tick`]),
//! which answers with [`Command`]s (start this host, roll that one back). It holds no clock, no
//! I/O and no threads, and it serializes: the server stores it after every step and a restarted
//! server resumes where it was.
//!
//! Rules:
//! - a wave starts when the previous one finished without reaching its threshold and its soak time
//!   has passed;
//! - inside a wave at most `concurrency` hosts run at once, and a host starts only if its window
//!   lets it (the caller's `may_start` answer);
//! - a host that fails (the job failed, its verification or health check failed, or it did not report
//!   within `host_timeout`) counts against the wave's threshold and is rolled back when the policy says
//!   so; reaching the threshold halts the rollout: no further host starts, those running finish;
//! - paused: nothing new starts; cancelled: nothing new starts, ever.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// A limit on failures: a count, or a percentage of the wave's hosts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// Halt when this many hosts have failed.
    Count(usize),
    /// Halt when this percentage of the wave's hosts has failed (rounded up, at least one host).
    Percent(f64),
}

impl Threshold {
    /// Failures that halt a wave of `hosts` hosts.
    pub fn failures_allowed_before_halt(self, hosts: usize) -> usize {
        match self {
            Threshold::Count(n) => n.max(1),
            Threshold::Percent(p) => ((p / 100.0 * hosts as f64).ceil() as usize).max(1),
        }
    }
}

/// Which hosts a wave takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveSelector {
    /// Every host (not yet in an earlier wave) in this group or with this `key=value` label.
    Group(String),
    /// This percentage of the hosts not in any group wave (chosen by a stable hash of the host id,
    /// so the same hosts are canaries every time).
    Percent(f64),
    /// Every host left.
    Rest,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaveSpec {
    pub name: String,
    pub hosts: WaveSelector,
    pub concurrency: usize,
    /// The wave's own threshold, else the rollout's.
    #[serde(default)]
    pub error_threshold: Option<Threshold>,
    /// Waiting time after this wave before the next starts, in seconds, else the rollout's.
    #[serde(default)]
    pub soak_secs: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutSpec {
    pub waves: Vec<WaveSpec>,
    pub error_threshold: Threshold,
    pub soak_secs: i64,
    /// A host that started and has not reported after this long has failed.
    pub host_timeout_secs: i64,
    /// Roll a failed host back to its recorded versions.
    pub roll_back_failed_hosts: bool,
}

/// A host as the rollout sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutHost {
    pub id: i64,
    /// Group names and `key=value` labels.
    pub classes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum HostState {
    Pending,
    Running {
        since: Timestamp,
    },
    Succeeded {
        at: Timestamp,
    },
    Failed {
        at: Timestamp,
        reason: String,
    },
    RollingBack {
        since: Timestamp,
        reason: String,
    },
    RolledBack {
        at: Timestamp,
        reason: String,
    },
    /// The rollback failed or was never confirmed (the host needs a person).
    RollbackFailed {
        at: Timestamp,
        reason: String,
    },
    /// The rollout ended (halted or cancelled) before the host started.
    Skipped,
}

impl HostState {
    /// The state's name (`pending`, `running`, `rolled_back`, …), as its `state` tag.
    pub fn name(&self) -> &'static str {
        match self {
            HostState::Pending => "pending",
            HostState::Running { .. } => "running",
            HostState::Succeeded { .. } => "succeeded",
            HostState::Failed { .. } => "failed",
            HostState::RollingBack { .. } => "rolling_back",
            HostState::RolledBack { .. } => "rolled_back",
            HostState::RollbackFailed { .. } => "rollback_failed",
            HostState::Skipped => "skipped",
        }
    }

    /// Why the host failed or was rolled back, where it was.
    pub fn reason(&self) -> Option<&str> {
        match self {
            HostState::Failed { reason, .. }
            | HostState::RollingBack { reason, .. }
            | HostState::RolledBack { reason, .. }
            | HostState::RollbackFailed { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// What a host's job came back with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostOutcome {
    Succeeded,
    Failed {
        reason: String,
    },
    /// The rollback the rollout asked for finished (successfully or not: the reason says).
    RolledBack {
        reason: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum RolloutStatus {
    Running,
    Soaking { until: Timestamp },
    Paused,
    Halted { wave: String, reason: String },
    Completed,
    Cancelled,
}

impl RolloutStatus {
    /// The status's name (`running`, `soaking`, `halted`, …), as its `status` tag.
    pub fn name(&self) -> &'static str {
        match self {
            RolloutStatus::Running => "running",
            RolloutStatus::Soaking { .. } => "soaking",
            RolloutStatus::Paused => "paused",
            RolloutStatus::Halted { .. } => "halted",
            RolloutStatus::Completed => "completed",
            RolloutStatus::Cancelled => "cancelled",
        }
    }
}

/// What the caller should do now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    StartHost(i64),
    RollBackHost(i64),
}

/// Whether a host's window lets it start now (the caller asks its window).
pub type MayStart<'a> = dyn Fn(i64) -> bool + 'a;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    pub name: String,
    pub hosts: Vec<i64>,
    pub concurrency: usize,
    pub failures_allowed: usize,
    pub soak: SignedDuration,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub waves: Vec<Wave>,
    pub hosts: BTreeMap<i64, HostState>,
    pub status: RolloutStatus,
    /// The wave in progress (or the last one).
    pub current: usize,
    host_timeout: SignedDuration,
    roll_back_failed_hosts: bool,
    /// Status before a pause.
    paused_from: Option<Box<RolloutStatus>>,
    /// The whole change is being rolled back: every host that ran returns to its recorded versions.
    #[serde(default)]
    rolling_back_all: bool,
}

/// A rollout specification that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutError(pub String);

impl std::fmt::Display for RolloutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RolloutError {}

/// A stable spread of host ids over 0..10,000 (SplitMix64), so percentage waves pick the same hosts.
fn spread(id: i64) -> u64 {
    let mut z = (id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 10_000
}

impl Rollout {
    /// Assigns the hosts to waves: group waves take their hosts first (in the order given), then
    /// percentage waves take their share of the hosts no group wave took, then `Rest` the others.
    /// Empty waves are dropped.
    pub fn plan(spec: &RolloutSpec, hosts: &[RolloutHost]) -> Result<Rollout, RolloutError> {
        Rollout::check(spec)?;
        Rollout::assign(spec, hosts)
    }

    /// Whether a specification can work at all (waves, concurrency, percentages, timeout).
    pub fn check(spec: &RolloutSpec) -> Result<(), RolloutError> {
        if spec.host_timeout_secs <= 0 {
            return Err(RolloutError("host_timeout_secs must be positive".into()));
        }
        if spec.waves.is_empty() {
            return Err(RolloutError("a rollout needs at least one wave".into()));
        }
        for w in &spec.waves {
            if w.concurrency == 0 {
                return Err(RolloutError(format!("wave {:?}: concurrency 0", w.name)));
            }
            if let WaveSelector::Percent(p) = w.hosts {
                if !(p > 0.0 && p <= 100.0) {
                    return Err(RolloutError(format!(
                        "wave {:?}: {p}% is not between 0 and 100",
                        w.name
                    )));
                }
            }
        }
        Ok(())
    }

    fn assign(spec: &RolloutSpec, hosts: &[RolloutHost]) -> Result<Rollout, RolloutError> {
        let mut taken: BTreeMap<i64, usize> = BTreeMap::new();
        let mut assigned: Vec<Vec<i64>> = vec![Vec::new(); spec.waves.len()];
        for (i, w) in spec.waves.iter().enumerate() {
            if let WaveSelector::Group(g) = &w.hosts {
                for h in hosts {
                    if !taken.contains_key(&h.id) && h.classes.contains(g) {
                        taken.insert(h.id, i);
                        assigned[i].push(h.id);
                    }
                }
            }
        }
        // The hosts left, in a stable shuffled order: percentage waves take consecutive slices.
        let mut left: Vec<i64> = hosts
            .iter()
            .map(|h| h.id)
            .filter(|id| !taken.contains_key(id))
            .collect();
        left.sort_by_key(|id| (spread(*id), *id));
        left.dedup();
        let pool = left.len();
        let mut cursor: usize = 0;
        for (i, w) in spec.waves.iter().enumerate() {
            let n = match w.hosts {
                WaveSelector::Percent(p) => ((p / 100.0 * pool as f64).ceil() as usize).max(1),
                WaveSelector::Rest => usize::MAX,
                WaveSelector::Group(_) => continue,
            };
            let end = cursor.saturating_add(n).min(left.len());
            assigned[i].extend_from_slice(&left[cursor..end]);
            cursor = end;
        }
        let mut waves = Vec::new();
        for (w, ids) in spec.waves.iter().zip(assigned) {
            if ids.is_empty() {
                continue;
            }
            let threshold = w.error_threshold.unwrap_or(spec.error_threshold);
            waves.push(Wave {
                name: w.name.clone(),
                failures_allowed: threshold.failures_allowed_before_halt(ids.len()),
                concurrency: w.concurrency,
                soak: SignedDuration::from_secs(w.soak_secs.unwrap_or(spec.soak_secs).max(0)),
                hosts: ids,
            });
        }
        let unassigned = hosts.len() - waves.iter().map(|w| w.hosts.len()).sum::<usize>();
        if unassigned > 0 {
            return Err(RolloutError(format!(
                "{unassigned} hosts are in no wave (add a `rest` wave)"
            )));
        }
        let states = waves
            .iter()
            .flat_map(|w| w.hosts.iter().map(|id| (*id, HostState::Pending)))
            .collect();
        Ok(Rollout {
            waves,
            hosts: states,
            status: RolloutStatus::Running,
            current: 0,
            host_timeout: SignedDuration::from_secs(spec.host_timeout_secs.max(1)),
            roll_back_failed_hosts: spec.roll_back_failed_hosts,
            paused_from: None,
            rolling_back_all: false,
        })
    }

    /// Records what a host's job came back with. A report for a host that is not running (a late
    /// report after a timeout, a duplicate) changes nothing and answers false.
    pub fn report(&mut self, host: i64, outcome: HostOutcome, now: Timestamp) -> bool {
        let Some(state) = self.hosts.get_mut(&host) else {
            return false;
        };
        let next = match (&*state, outcome) {
            (HostState::Running { .. }, HostOutcome::Succeeded) => HostState::Succeeded { at: now },
            (HostState::Running { .. }, HostOutcome::Failed { reason }) => {
                HostState::Failed { at: now, reason }
            }
            (HostState::RollingBack { reason, .. }, HostOutcome::RolledBack { reason: r }) => {
                match r {
                    Some(r) => HostState::RollbackFailed {
                        at: now,
                        reason: format!("{reason}; rollback failed: {r}"),
                    },
                    None => HostState::RolledBack {
                        at: now,
                        reason: reason.clone(),
                    },
                }
            }
            _ => return false,
        };
        *state = next;
        true
    }

    pub fn pause(&mut self) -> bool {
        match self.status {
            RolloutStatus::Running | RolloutStatus::Soaking { .. } => {
                self.paused_from = Some(Box::new(self.status.clone()));
                self.status = RolloutStatus::Paused;
                true
            }
            _ => false,
        }
    }

    pub fn resume(&mut self) -> bool {
        if self.status != RolloutStatus::Paused {
            return false;
        }
        self.status = self
            .paused_from
            .take()
            .map(|b| *b)
            .unwrap_or(RolloutStatus::Running);
        true
    }

    /// Stops the rollout for good: hosts not started are skipped; running ones finish.
    pub fn cancel(&mut self) -> bool {
        if matches!(
            self.status,
            RolloutStatus::Completed | RolloutStatus::Cancelled
        ) {
            return false;
        }
        self.status = RolloutStatus::Cancelled;
        self.skip_pending();
        true
    }

    /// Rolls the whole change back: nothing new starts, and every host that ran (succeeded or
    /// failed, and those still running once they finish) returns to its recorded versions. The
    /// commands come from the next [`Rollout::tick`].
    pub fn roll_back_all(&mut self) -> bool {
        if self.rolling_back_all {
            return false;
        }
        self.rolling_back_all = true;
        if !matches!(self.status, RolloutStatus::Completed) {
            self.status = RolloutStatus::Cancelled;
        }
        self.skip_pending();
        true
    }

    /// Whether the whole change is being rolled back.
    pub fn rolling_back_all(&self) -> bool {
        self.rolling_back_all
    }

    /// Some host is running or rolling back (the rollout still has results to wait for).
    pub fn busy(&self) -> bool {
        self.hosts
            .values()
            .any(|s| matches!(s, HostState::Running { .. } | HostState::RollingBack { .. }))
    }

    /// Nothing more will happen: the rollout ended (completed, halted or cancelled) and no host
    /// is running or rolling back.
    pub fn finished(&self) -> bool {
        matches!(
            self.status,
            RolloutStatus::Completed | RolloutStatus::Halted { .. } | RolloutStatus::Cancelled
        ) && !self.busy()
    }

    fn skip_pending(&mut self) {
        for s in self.hosts.values_mut() {
            if *s == HostState::Pending {
                *s = HostState::Skipped;
            }
        }
    }

    /// Failures in a wave so far (failed, rolling back or rolled back).
    pub fn failures(&self, wave: usize) -> usize {
        self.waves[wave]
            .hosts
            .iter()
            .filter(|id| {
                matches!(
                    self.hosts[id],
                    HostState::Failed { .. }
                        | HostState::RollingBack { .. }
                        | HostState::RolledBack { .. }
                        | HostState::RollbackFailed { .. }
                )
            })
            .count()
    }

    /// Advances the rollout at `now`: times out silent hosts, starts rollbacks of failed ones,
    /// decides halts, soaks and the next wave, and starts hosts up to the wave's concurrency where
    /// `may_start` allows. Returns what to do.
    pub fn tick(&mut self, now: Timestamp, may_start: &MayStart<'_>) -> Vec<Command> {
        let mut commands = Vec::new();
        // Silent hosts fail; failed hosts are rolled back (also while paused or halted).
        for (id, state) in self.hosts.iter_mut() {
            if let HostState::Running { since } = state {
                if now.duration_since(*since) >= self.host_timeout {
                    *state = HostState::Failed {
                        at: now,
                        reason: format!(
                            "no report within {} s (agent gone?)",
                            self.host_timeout.as_secs()
                        ),
                    };
                }
            }
            if let HostState::RollingBack { since, reason } = state {
                if now.duration_since(*since) >= self.host_timeout {
                    *state = HostState::RollbackFailed {
                        at: now,
                        reason: format!(
                            "{reason}; rollback not confirmed within {} s",
                            self.host_timeout.as_secs()
                        ),
                    };
                }
            }
            let back = match state {
                HostState::Failed { reason, .. }
                    if self.roll_back_failed_hosts || self.rolling_back_all =>
                {
                    Some(reason.clone())
                }
                HostState::Succeeded { .. } if self.rolling_back_all => {
                    Some("the whole change is rolled back".to_owned())
                }
                _ => None,
            };
            if let Some(reason) = back {
                *state = HostState::RollingBack { since: now, reason };
                commands.push(Command::RollBackHost(*id));
            }
        }
        loop {
            match self.status.clone() {
                RolloutStatus::Paused
                | RolloutStatus::Halted { .. }
                | RolloutStatus::Completed
                | RolloutStatus::Cancelled => return commands,
                RolloutStatus::Soaking { until } => {
                    if now < until {
                        return commands;
                    }
                    self.current += 1;
                    self.status = RolloutStatus::Running;
                }
                RolloutStatus::Running => {}
            }
            let wave = &self.waves[self.current];
            let failures = self.failures(self.current);
            if failures >= wave.failures_allowed {
                self.status = RolloutStatus::Halted {
                    wave: wave.name.clone(),
                    reason: format!(
                        "{failures} of {} hosts failed (threshold {})",
                        wave.hosts.len(),
                        wave.failures_allowed
                    ),
                };
                self.skip_pending();
                return commands;
            }
            let running = wave
                .hosts
                .iter()
                .filter(|id| matches!(self.hosts[id], HostState::Running { .. }))
                .count();
            let mut free = wave.concurrency.saturating_sub(running);
            let mut pending = false;
            let ids = wave.hosts.clone();
            for id in ids {
                if self.hosts[&id] != HostState::Pending {
                    continue;
                }
                pending = true;
                if free == 0 {
                    break;
                }
                if may_start(id) {
                    self.hosts.insert(id, HostState::Running { since: now });
                    commands.push(Command::StartHost(id));
                    free -= 1;
                }
            }
            let wave = &self.waves[self.current];
            let busy = wave.hosts.iter().any(|id| {
                matches!(
                    self.hosts[id],
                    HostState::Running { .. } | HostState::RollingBack { .. }
                )
            });
            if pending || busy {
                return commands;
            }
            // The wave is done and under its threshold.
            if self.current + 1 == self.waves.len() {
                self.status = RolloutStatus::Completed;
                return commands;
            }
            let until = now.checked_add(wave.soak).unwrap_or(now);
            self.status = RolloutStatus::Soaking { until };
        }
    }
}
