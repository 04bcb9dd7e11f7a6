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
//! Feature `device` adds [`DeviceClient`], the device's async client of the device routes
//! (attestation, key list, target set, images, update signal and status, events): the device
//! hands it the HTTPS client it built (the device certificate's key stays in the root of trust,
//! so this crate never builds that TLS), and gets one typed [`DeviceClientError`] with the one
//! reading of `Retry-After` ([`retry_after()`]).
//!
//! It depends on `ferro-wire` for the shapes of requests and responses and on nothing else of
//! ours but the foundation `ferro-files` (downloads): no service code, no database, no keys.
//! [`Client`] is blocking (`reqwest::blocking`), which suits the CLI and scripts;
//! [`DeviceClient`] is async, as the device's agents are.

mod client;
mod device_api;
#[cfg(feature = "device")]
mod device_client;
mod error;
#[cfg(feature = "device")]
mod retry_after;
pub mod routes;
mod service;
mod tls;

pub use client::{Client, Raw, Token};
pub use device_api::LocalDevice;
#[cfg(feature = "device")]
pub use device_client::{
    DOWNLOAD_TIMEOUT, DeviceClient, DeviceClientError, ImageDownload, MAX_JSON_ANSWER,
    REQUEST_TIMEOUT, TargetSetAnswer,
};
pub use error::ClientError;
pub use reqwest::Method;
#[cfg(feature = "device")]
pub use retry_after::{DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER, retry_after};
pub use service::{all_pages, page};
pub use tls::{PresentedChain, ServiceTrust, probe_presented_chain};
