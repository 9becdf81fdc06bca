//! Deployment: the policy and the orchestration between a finding and an installed fix.
//!
//! It owns baselines (`baseline`: which updates are approved — severity, KEV, classification,
//! quarantine days, cut-off date, allow/deny lists), maintenance windows (`window`: recurring
//! schedules in an IANA time zone, blackouts, "may this host start now"), the change-request state
//! machine with its audit trail and separation of duties (`change`), the change document the server
//! stores and its clients read (`change_doc`, with the requests that create and steer a change),
//! the rollout state machine (`rollout`: waves, concurrency, error thresholds, soak, timeouts,
//! rollback, pause/resume/cancel), plans (`plan`: per host the exact versions its repositories
//! offer, the findings each update closes, what the baseline held, what no repository fixes yet,
//! reboot needed; the one assembly of a plan from findings and offers; the plan request and answer
//! of the API), the deployment configuration and the jobs it shapes (`config`), and verification
//! (`verify`). It decides; it does not run package managers (the agent does), read the store or
//! speak HTTP.

pub mod baseline;
pub mod change;
pub mod change_doc;
pub mod config;
pub mod plan;
pub mod rollout;
pub mod verify;
pub mod window;
