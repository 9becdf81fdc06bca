//! `patchwarden server`: the fleet's control plane. A JSON REST API over TLS (its own CA unless given
//! certificates), enrollment of agents with hashed, expiring, use-limited tokens, per-host
//! credentials, check-ins that are durable before they are acknowledged and stored once per
//! idempotency key, findings recomputed for a host when its inventory changes, fleet queries, user
//! tokens with roles, Prometheus metrics, health and readiness.
//!
//! It holds no state of its own: everything is in the store, so several server processes can share
//! one PostgreSQL database.
//!
//! The map: [`routes`] (every route, who may call it, its handler; the router), [`handlers`] (one
//! file per resource, functions named by verb), [`auth`] and [`extract`] (the extractors that check
//! the caller, ids, bodies and queries before a handler runs), [`error`] (the one error type and
//! its JSON), [`state`] (what requests share: the store, the configuration and the handles of the
//! background services), the background services — [`group_commit`] (heartbeats and inventories stored in batches),
//! [`findings_queue`] (findings workers), [`knowledge`] (the knowledge-base journal),
//! [`job_board`] (hosts with queued jobs), [`rollouts`] (the rollout driver) — each owning its
//! store handle; [`admin`] (users and tokens, shared with the CLI), [`documents`] (stored
//! documents read back into their types), [`host_cache`], [`tls`], [`secrets`], [`assets`],
//! metrics, `config` ([`ServerConfig`]), `server` ([`Server`]: bind and serve) and `lingering` (how
//! a connection ends: what a client still sends is dropped below TLS so that it reads its answer). The modules
//! import one another without a loop (`tests/module_graph.rs` holds that).

pub mod admin;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod body_guard;
mod config;
pub mod documents;
pub mod error;
pub mod extract;
pub mod findings_queue;
pub mod findings_view;
pub mod group_commit;
pub mod handlers;
pub mod host_cache;
pub mod job_board;
pub mod job_signer;
pub mod knowledge;
mod lingering;
mod metrics;
pub mod request_log;
pub mod retention;
pub mod rollouts;
pub mod routes;
pub mod secrets;
mod server;
pub mod signing_keys;
pub mod state;
pub mod tls;

pub use config::{default_state_dir, ServerConfig};
pub use error::StartError;
pub use metrics::Metrics;
pub use server::{shutdown_signal, Server, Started};
