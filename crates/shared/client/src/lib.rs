//! `ferro-client` is the typed HTTP client of the Ferrosphere security service and of an
//! attached device's local API. It owns every path of both APIs ([`routes`]: one table, checked
//! against the service's OpenAPI document by `tests/routes.rs`), one method per route with
//! `ferro-wire` types in and out ([`Client`] for the service, [`LocalDevice`] for the device's
//! Unix socket), how a client reaches the service (TLS anchored on the platform root the user
//! accepted, or a CA file they name; plain HTTP only for loopback development), how it
//! authenticates (a bearer token it never prints), and how the APIs' JSON errors become
//! [`ClientError::Api`] with the stable code and the service's advice. Renaming a route or a
//! wire field therefore fails to compile in its callers, not at run time.
//!
//! It depends on `ferro-wire` for the shapes of requests and responses and on nothing else of
//! ours: no service code, no database, no keys. It is blocking (`reqwest::blocking`), which suits
//! the CLI and scripts; the device's agents keep their own async HTTP code for now.

mod client;
mod device_api;
mod error;
pub mod routes;
mod service;
mod tls;

pub use client::{Client, Raw, Token};
pub use device_api::LocalDevice;
pub use error::ClientError;
pub use reqwest::Method;
pub use service::{all_pages, page};
pub use tls::{PresentedChain, ServiceTrust, probe_presented_chain};
