//! Deployment: the policy and the orchestration between a finding and an installed fix.
//!
//! It owns baselines (`baseline`: which updates are approved — severity, KEV, classification,
//! quarantine days, cut-off date, allow/deny lists), maintenance windows (`window`: recurring schedules in an IANA time zone, blackouts,
//! "may this host start now"), the change-request state machine with its audit trail and
//! separation of duties (`change`), the rollout state machine (`rollout`: waves, concurrency, error
//! thresholds, soak, timeouts, rollback, pause/resume/cancel), and — as the deployment issue goes
//! on — plans (`plan`: per host the exact versions its repositories offer, the findings each
//! update closes, what the baseline held, what no repository fixes yet, reboot needed). It decides; it does not run package managers (the agent does), read the store or
//! speak HTTP.

pub mod baseline;
pub mod change;
pub mod config;
pub mod plan;
pub mod rollout;
pub mod verify;
pub mod window;
