//! Errors of the runtime's API.

use ferro_peripherals::OwnershipError;
use thiserror::Error;

use crate::AppId;

/// Why an app could not be installed. Nothing is left behind when install fails.
#[derive(Debug, Error)]
pub enum InstallError {
    #[error("app {0} is a real-time app; this runtime runs high-level apps only")]
    NotHighLevel(AppId),
    #[error("app {0} is already installed; uninstall it first")]
    AlreadyInstalled(AppId),
    #[error("the component is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    #[error("the component imports {import}, which {reason}{}", if others.is_empty() { String::new() } else { format!(" (also not linked: {})", others.join(", ")) })]
    ImportNotGranted {
        /// The first import refused.
        import: String,
        reason: String,
        /// Every other import refused.
        others: Vec<String>,
    },
    #[error("the component cannot be linked: {0}")]
    Link(String),
    #[error(
        "the component is not a command (it must export wasi:cli/run: build a `fn main` binary for wasm32-wasip2): {0}"
    )]
    NotACommand(String),
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    #[error(
        "the app manifest grants PrivateNetwork {network:?}, which this board does not have (its private networks: {})",
        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
    )]
    NoSuchPrivateNetwork { network: String, known: Vec<String> },
    #[error(
        "the app manifest's AllowedConnections lists {address}, which is on the private network {network} ({interface}, {subnet}); only an app granted PrivateNetwork {network} may list it"
    )]
    PrivateAddressNotGranted {
        address: std::net::IpAddr,
        network: String,
        interface: String,
        subnet: String,
    },
    #[error("refusing an app granted a private network: {0}")]
    Forwarding(String),
    #[error("cannot read the app payload {path}: {message}")]
    Payload { path: String, message: String },
    #[error("cannot prepare the app's storage: {0}")]
    Storage(String),
    #[error("cannot start the app: {0}")]
    Start(#[from] ControlError),
}

/// Why a control request (start, stop, status...) failed.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error("no app {0} is installed")]
    NotInstalled(AppId),
    #[error("cannot start a thread for app {app}: {message}")]
    Spawn { app: AppId, message: String },
}

/// Why the runtime could not be created.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot start the epoch ticker: {0}")]
    Ticker(String),
}
