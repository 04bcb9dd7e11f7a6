//! `ferro-client` is the typed HTTP client of the Ferrosphere security service: it owns how a
//! client reaches the service (TLS anchored on the platform root the user accepted, or a CA file
//! they name; plain HTTP only for loopback development), how it authenticates (a bearer token it
//! never prints), and how the service's JSON errors become [`ClientError::Api`] with the stable
//! code and the service's advice.
//!
//! It depends on `ferro-wire` for the shapes of requests and responses and on nothing else of
//! ours but the foundation `ferro-files` (downloads): no service code, no database, no keys. It is blocking (`reqwest::blocking`), which suits
//! the CLI and scripts; a device's agent will use its own async client.

mod client;
mod error;
mod tls;

pub use client::{Client, Token};
pub use error::ClientError;
pub use reqwest::Method;
pub use tls::{PresentedChain, ServiceTrust, probe_presented_chain};
