//! `ferro-service`: Ferrosphere's security service, the system of record for tenants, users
//! and roles, products and device groups (and, as the platform grows, devices, images,
//! deployments, OS feeds, CAs and error reports). It serves REST/JSON under `/v1` with the
//! wire types of `ferro-wire`, stores everything in SQLite (WAL, the embedded default) or
//! PostgreSQL through one portable schema, and keeps no state in the process, so replicas on one
//! database behave as one.
//!
//! Dependency rules: this is the only crate that links sqlx; nothing that runs on a device may
//! depend on it (devices and clients use `ferro-wire`).
//!
//! Map: [`app`] builds the router and the OpenAPI document, completed by [`openapi`] (the
//! responses and formats every route shares); [`routes`] holds the handlers;
//! [`auth`] passwords, tokens, roles and login rate limits; [`rate_limit`] per-address limits on
//! the attestation routes; [`db`] the pool, transactions and audit
//! rows; [`extract`] the strict request extractors; [`setup`] the data directory; [`server`] the
//! listener and graceful shutdown.

pub mod app;
pub mod appraisal;
pub mod auth;
pub mod auth_cache;
pub mod authz;
pub mod claims;
pub mod client_addr;
pub mod clock;
pub mod datastore;
pub mod db;
pub mod deployments;
pub mod device_auth;
pub mod device_events;
pub mod device_groups;
pub mod error;
pub mod extract;
pub mod invitations;
pub mod login_guard;
pub mod nonce;
pub mod object_store;
pub mod openapi;
pub mod packages;
pub mod page;
pub mod platform;
pub mod proxy_protocol;
pub mod rate_limit;
pub mod rollouts;
pub mod routes;
pub mod server;
pub mod setup;
pub mod signing_keys;
pub mod state;
pub mod targets;
pub mod tenant_ca;
pub mod tenant_keys;
pub mod update_signals;
pub mod users;

pub use app::{build_app, openapi, openapi_json};
pub use error::{ApiError, ApiResult};
pub use state::{AppState, Config};

/// The heap allocator of the `ferro-service` binary and of the service's benchmarks (each sets it
/// as its `#[global_allocator]`; a library cannot). mimalloc: under many concurrent requests
/// glibc's malloc spent ~9% of an attestation's CPU, much of it on arena locks shared by the
/// runtime threads (docs/service/README.md, "Memory allocator").
pub type Allocator = mimalloc::MiMalloc;

/// The value of [`Allocator`] each `#[global_allocator]` static is set to, so that which
/// allocator it is is decided here alone.
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;
