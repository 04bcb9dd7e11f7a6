//! Runtime and per-app configuration.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferro_manifest::PrivateNetworkLink;
use ferro_peripherals::PinBlocks;

use crate::partners::{NoPartners, PartnerConnector};
use crate::services::{DeviceServices, NoDeviceServices};

/// Limits applied to each app instance. Defaults follow docs/design.md §5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory an app may grow beyond its image's initial memory (default 256 KiB).
    pub extra_memory_bytes: u64,
    /// Largest initial linear memory (all memories of the component) an image may declare.
    pub max_image_memory_bytes: u64,
    /// Longest an app may compute without a blocking host call (sleep, waiting reads); past it
    /// the instance is stopped as hung (`ErrorKind::CpuLimit`).
    pub cpu_slice: Duration,
    /// Computation (time outside blocking host calls) an app may use in each `cpu_window`;
    /// past it the instance is stopped (`ErrorKind::CpuBudget`). Catches apps that yield just
    /// often enough to dodge the slice. A budget at least as long as the window disables it.
    pub cpu_budget: Duration,
    pub cpu_window: Duration,
    /// Sustained log lines per second; bursts up to `log_burst_lines`. Excess lines are dropped
    /// and counted.
    pub log_lines_per_second: u32,
    pub log_burst_lines: u32,
    /// Longest log line kept; longer lines are cut.
    pub max_log_line_bytes: usize,
    /// Most table elements per table.
    pub max_table_elements: usize,
    /// Most open sockets and listeners per instance.
    pub max_sockets: usize,
    /// Most WASI host resources (streams, pollables) an instance may hold at once; bounds the
    /// host memory a guest can make the runtime allocate outside its linear memory.
    pub max_host_resources: usize,
    /// Sustained signed telemetry batches (`deviceauth.sign-batch`) per second; bursts up to
    /// `batch_signature_burst`. Beyond it the call is refused: an app cannot keep the root of
    /// trust (a TPM signs a few dozen times a second) busy for the device's own TLS and
    /// attestation.
    pub batch_signatures_per_second: u32,
    pub batch_signature_burst: u32,
    /// Largest payload of one signed batch (ferro-provenance's `MAX_BATCH_PAYLOAD`).
    pub max_batch_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            extra_memory_bytes: 256 * 1024,
            max_image_memory_bytes: 16 * 1024 * 1024,
            cpu_slice: Duration::from_millis(500),
            cpu_budget: Duration::from_secs(5),
            cpu_window: Duration::from_secs(10),
            log_lines_per_second: 50,
            log_burst_lines: 200,
            max_log_line_bytes: 1024,
            max_table_elements: 20_000,
            max_sockets: 16,
            max_host_resources: 1024,
            batch_signatures_per_second: 5,
            batch_signature_burst: 20,
            max_batch_bytes: 256 * 1024,
        }
    }
}

/// Restart policy after an exit or trap: exponential backoff (the one policy, shared with the
/// real-time cores).
pub use ferro_backoff::Backoff;

/// How a runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Root of the apps' mutable storage: `<storage_dir>/<component id>/mutable.bin`.
    pub storage_dir: PathBuf,
    /// Default limits; an install may override them (e.g. per board).
    pub limits: Limits,
    pub backoff: Backoff,
    /// Address app servers (`AllowedTcpServerPorts`, `AllowedUdpServerPorts`) bind to.
    pub server_bind_address: IpAddr,
    /// Epoch tick: the granularity of CPU limits and stop requests (default 10 ms).
    pub epoch_tick: Duration,
    /// Log lines kept per app.
    pub log_capacity_lines: usize,
    /// Error events kept for subscribers.
    pub event_capacity: usize,
    /// Largest component accepted at install.
    pub max_component_bytes: usize,
    /// Pin blocks for peripheral ownership (from the board's hardware definition).
    pub pin_blocks: PinBlocks,
    /// Device services (certificate, updates, power) the integration provides.
    pub services: Arc<dyn DeviceServices>,
    /// Real-time partner apps (the `application` interface) the integration provides; by
    /// default none.
    pub partners: Arc<dyn PartnerConnector>,
    /// The DNS resolver apps' service discoveries query (`None`, the default: the first
    /// `nameserver` of `/etc/resolv.conf`, read at each discovery). A device sets it from
    /// `ferro-device run --dns-resolver` / `FERRO_DNS_RESOLVER`, checked by
    /// [`crate::parse_dns_resolver`].
    pub dns_resolver: Option<SocketAddr>,
    /// Whether a discovery may return loopback and unspecified addresses (the device itself).
    /// Off by default: a LAN resolver must not lead an app into the device's own services.
    /// For devices whose discoverable services run on the device itself, and for tests.
    pub discovery_allows_loopback: bool,
    /// The board's private networks by manifest value (`PRIVATE-NETWORK-0`), from its hardware
    /// definition ([`ferro_manifest::HardwareDefinition::private_networks`]): only the app
    /// granted one reaches its subnet, through its interface (docs/guardian.md).
    pub private_networks: BTreeMap<String, PrivateNetworkLink>,
    /// Where the forwarding settings are read before an app reaches a private network
    /// (default [`crate::SYS_NET`], `/proc/sys/net`; tests point it at a tree of their own).
    pub sys_net_dir: PathBuf,
}

impl RuntimeConfig {
    /// Defaults with storage under `storage_dir`.
    pub fn new(storage_dir: PathBuf) -> Self {
        Self {
            storage_dir,
            limits: Limits::default(),
            backoff: Backoff::default(),
            server_bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            epoch_tick: Duration::from_millis(10),
            log_capacity_lines: 1000,
            event_capacity: 1000,
            max_component_bytes: 32 * 1024 * 1024,
            pin_blocks: PinBlocks::none(),
            services: Arc::new(NoDeviceServices),
            partners: Arc::new(NoPartners),
            dns_resolver: None,
            discovery_allows_loopback: false,
            private_networks: BTreeMap::new(),
            sys_net_dir: PathBuf::from(crate::SYS_NET),
        }
    }
}

/// Options of one install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallOptions {
    /// Do not start at install (or at boot); wait for `Runtime::start`.
    pub manual_start: bool,
    /// Limits for this app instead of the runtime's defaults.
    pub limits: Option<Limits>,
    /// Whose mutable storage the app gets: production images and sideloaded (test-signed)
    /// images of the same component never share it.
    pub storage_area: StorageArea,
    /// The regular files of the app's verified image package, which it may read
    /// (`imagefiles`); empty when the device passes none.
    pub package_files: crate::PackageFiles,
    /// The image ID of the verified image the app runs from (what its signed telemetry batches
    /// name). `None` for a component installed without an image (tests, benchmarks): such an
    /// app gets no signed batches.
    pub image_id: Option<uuid::Uuid>,
}

/// Which of the two storage areas an app's mutable storage lives in. A sideloaded image
/// signed by a developer key may claim any component ID, including a production app's, so it
/// must not see that app's data: it gets `<storage_dir>/development/<component>/` instead of
/// `<storage_dir>/<component>/` (docs/runtime.md, "Mutable storage").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StorageArea {
    /// Images signed for production (deployed from the cloud).
    #[default]
    Production,
    /// Images sideloaded in development mode (signed by a developer's test key).
    Development,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            reset_after: Duration::from_secs(10),
        };
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(200));
        assert_eq!(backoff.delay(4), Duration::from_millis(800));
        assert_eq!(backoff.delay(5), Duration::from_secs(1));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1));
    }
}
