//! The typed, default-deny capability set of an app manifest.
//!
//! Nothing is granted unless listed: an absent key, an empty array and `false` all mean "not
//! granted", and all three render the same way (absent) in canonical JSON.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::IssueCode;
use crate::hardware::PeripheralType;
use crate::json::{show, type_name};
use crate::manifest::IssueSink;

/// Azure Sphere's limit on `MutableStorage.SizeKB`.
pub const MAX_MUTABLE_STORAGE_KIB: u32 = 64;
/// Most entries any one capability array may hold (bounds work on hostile input).
pub const MAX_CAPABILITY_ENTRIES: usize = 256;
/// Longest literal peripheral identifier (`ISU0`, `PWM-CONTROLLER-0`, ...).
pub const MAX_PERIPHERAL_ID_CHARS: usize = 64;
/// Longest `$NAME` reference, without the `$`.
pub const MAX_REFERENCE_NAME_CHARS: usize = 128;
/// Longest DNS name (RFC 1035).
const MAX_HOSTNAME_CHARS: usize = 253;
const MAX_LABEL_CHARS: usize = 63;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Unresolved {}
    impl Sealed for super::Resolved {}
}

/// Whether peripheral entries may still be `$NAME` references. Sealed: only [`Unresolved`] and
/// [`Resolved`] exist, so a `Capabilities<Resolved>` provably holds no references.
pub trait PeripheralForm: sealed::Sealed + Clone + fmt::Debug + PartialEq + Eq {
    /// One `Gpio` entry.
    type Gpio: Clone + fmt::Debug + PartialEq + Eq;
    /// One entry of a string-valued peripheral capability (`Uart`, `Pwm`, ...).
    type Named: Clone + fmt::Debug + PartialEq + Eq;
}

/// Marker: as parsed; peripheral entries may be `$NAME` references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {}

/// Marker: after resolution; peripheral entries are concrete values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {}

impl PeripheralForm for Unresolved {
    type Gpio = PeripheralRef<u32>;
    type Named = PeripheralRef<String>;
}

impl PeripheralForm for Resolved {
    type Gpio = u32;
    type Named = String;
}

/// A peripheral entry before resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeripheralRef<T> {
    /// A concrete value (`8`, `"ISU0"`).
    Value(T),
    /// A `$NAME` reference into a hardware definition; stored without the `$`.
    Name(String),
}

/// The peripheral capabilities, in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeripheralKind {
    Gpio,
    Uart,
    I2cMaster,
    I2cSubordinate,
    SpiMaster,
    Adc,
    Pwm,
    /// Real-time apps only.
    ExternalInterrupt,
    /// High-level apps only; Ferrosphere extension: the device's private network interface
    /// (docs/guardian.md), owned by one app.
    PrivateNetwork,
}

impl PeripheralKind {
    /// All kinds, in canonical JSON order.
    pub const ALL: [Self; 9] = [
        Self::Gpio,
        Self::Uart,
        Self::I2cMaster,
        Self::I2cSubordinate,
        Self::SpiMaster,
        Self::Adc,
        Self::Pwm,
        Self::ExternalInterrupt,
        Self::PrivateNetwork,
    ];

    /// The manifest key.
    pub fn json_key(self) -> &'static str {
        self.hardware_type().as_str()
    }

    /// The hardware definition `Type` a `$NAME` for this capability must have.
    pub fn hardware_type(self) -> PeripheralType {
        match self {
            Self::Gpio => PeripheralType::Gpio,
            Self::Uart => PeripheralType::Uart,
            Self::I2cMaster => PeripheralType::I2cMaster,
            Self::I2cSubordinate => PeripheralType::I2cSubordinate,
            Self::SpiMaster => PeripheralType::SpiMaster,
            Self::Adc => PeripheralType::Adc,
            Self::Pwm => PeripheralType::Pwm,
            Self::ExternalInterrupt => PeripheralType::ExternalInterrupt,
            Self::PrivateNetwork => PeripheralType::PrivateNetwork,
        }
    }

    fn from_json_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.json_key() == key)
    }
}

/// Boolean capabilities (high-level apps only), in canonical JSON order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CapabilityFlag {
    SystemEventNotifications,
    SoftwareUpdateDeferral,
    NetworkConfig,
    WifiConfig,
    EnterpriseWifiConfig,
    CertStore,
    DhcpService,
    SntpService,
    SystemTime,
    TimeSyncConfig,
    HardwareAddressConfig,
    ReadNetworkProxyConfig,
    HeapMemStats,
}

impl CapabilityFlag {
    /// All flags, in canonical JSON order.
    pub const ALL: [Self; 13] = [
        Self::SystemEventNotifications,
        Self::SoftwareUpdateDeferral,
        Self::NetworkConfig,
        Self::WifiConfig,
        Self::EnterpriseWifiConfig,
        Self::CertStore,
        Self::DhcpService,
        Self::SntpService,
        Self::SystemTime,
        Self::TimeSyncConfig,
        Self::HardwareAddressConfig,
        Self::ReadNetworkProxyConfig,
        Self::HeapMemStats,
    ];

    /// The manifest key.
    pub fn json_key(self) -> &'static str {
        match self {
            Self::SystemEventNotifications => "SystemEventNotifications",
            Self::SoftwareUpdateDeferral => "SoftwareUpdateDeferral",
            Self::NetworkConfig => "NetworkConfig",
            Self::WifiConfig => "WifiConfig",
            Self::EnterpriseWifiConfig => "EnterpriseWifiConfig",
            Self::CertStore => "CertStore",
            Self::DhcpService => "DhcpService",
            Self::SntpService => "SntpService",
            Self::SystemTime => "SystemTime",
            Self::TimeSyncConfig => "TimeSyncConfig",
            Self::HardwareAddressConfig => "HardwareAddressConfig",
            Self::ReadNetworkProxyConfig => "ReadNetworkProxyConfig",
            Self::HeapMemStats => "HeapMemStats",
        }
    }

    fn from_json_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|flag| flag.json_key() == key)
    }
}

/// One `PowerControls` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PowerControl {
    ForcePowerDown,
    ForceReboot,
    SetPowerProfile,
}

impl PowerControl {
    /// All values.
    pub const ALL: [Self; 3] = [
        Self::ForcePowerDown,
        Self::ForceReboot,
        Self::SetPowerProfile,
    ];

    /// The manifest string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ForcePowerDown => "ForcePowerDown",
            Self::ForceReboot => "ForceReboot",
            Self::SetPowerProfile => "SetPowerProfile",
        }
    }
}

/// One `AllowedConnections` entry. Host names are stored lowercase (DNS is case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AllowedConnection {
    /// An exact host name, e.g. `example.com`.
    Host(String),
    /// `*.example.com`: any subdomain of `example.com` (stored without `*.`), not the domain itself.
    AnySubdomainOf(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// A DNS service discovery (RFC 6763) service type, e.g. `_sample-service._tcp.local` (as
    /// Azure Sphere's DNSServiceDiscovery sample lists it): stored lowercase. It names the
    /// service instances an app may discover; it grants no connection to the name itself
    /// ([`AllowedConnection::allows_host`] is false for it).
    ServiceDiscovery(ServiceType),
}

/// A DNS-SD service type `_<service>._tcp|_udp.<domain>` (RFC 6763 section 7; the service
/// name as RFC 6335 section 5.1 allows: 1-15 letters, digits and hyphens, at least one letter,
/// no hyphen at either end or twice in a row).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceType {
    service: String,
    tcp: bool,
    domain: String,
}

impl ServiceType {
    /// The service name without its underscore, e.g. `sample-service`.
    pub fn service(&self) -> &str {
        &self.service
    }
    /// Whether the protocol is `_tcp` (else `_udp`).
    pub fn is_tcp(&self) -> bool {
        self.tcp
    }
    /// The domain the service is browsed in, e.g. `local`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    fn parse(text: &str) -> Result<Self, ConnectionError> {
        const ALLOWED: ConnectionError = ConnectionError::NotAServiceType;
        let mut parts = text.splitn(3, '.');
        let (Some(service), Some(protocol), Some(domain)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(ALLOWED);
        };
        let service = service.strip_prefix('_').ok_or(ALLOWED)?;
        let valid_service = (1..=15).contains(&service.len())
            && service
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            && service.bytes().any(|byte| byte.is_ascii_alphabetic())
            && !service.starts_with('-')
            && !service.ends_with('-')
            && !service.contains("--");
        let tcp = match protocol.to_ascii_lowercase().as_str() {
            "_tcp" => true,
            "_udp" => false,
            _ => return Err(ALLOWED),
        };
        if !valid_service || validate_hostname(domain).is_err() {
            return Err(ALLOWED);
        }
        Ok(Self {
            service: service.to_ascii_lowercase(),
            tcp,
            domain: domain.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = if self.tcp { "tcp" } else { "udp" };
        write!(f, "_{}._{protocol}.{}", self.service, self.domain)
    }
}

impl AllowedConnection {
    /// Parses one entry; the error says what is allowed.
    pub fn parse(text: &str) -> Result<Self, ConnectionError> {
        if let Ok(address) = text.parse::<Ipv4Addr>() {
            return Ok(Self::Ipv4(address));
        }
        if let Ok(address) = text.parse::<Ipv6Addr>() {
            return Ok(Self::Ipv6(address));
        }
        if text.starts_with('_') {
            return ServiceType::parse(text).map(Self::ServiceDiscovery);
        }
        if let Some(domain) = text.strip_prefix("*.") {
            validate_hostname(domain)?;
            // `*.com` would grant a whole top-level domain.
            if !domain.contains('.') {
                return Err(ConnectionError::WildcardTooWide);
            }
            return Ok(Self::AnySubdomainOf(domain.to_ascii_lowercase()));
        }
        validate_hostname(text)?;
        Ok(Self::Host(text.to_ascii_lowercase()))
    }

    /// Whether a connection to `host` (a DNS name) is allowed by this entry.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self {
            Self::Host(allowed) => *allowed == host,
            Self::AnySubdomainOf(domain) => {
                host.len() > domain.len() + 1
                    && host.ends_with(domain.as_str())
                    && host.as_bytes().get(host.len() - domain.len() - 1) == Some(&b'.')
            }
            Self::Ipv4(address) => host
                .parse::<Ipv4Addr>()
                .is_ok_and(|parsed| parsed == *address),
            Self::Ipv6(address) => host
                .parse::<Ipv6Addr>()
                .is_ok_and(|parsed| parsed == *address),
            // Discovery names what may be discovered, not a host to connect to.
            Self::ServiceDiscovery(_) => false,
        }
    }
}

impl fmt::Display for AllowedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host(host) => f.write_str(host),
            Self::AnySubdomainOf(domain) => write!(f, "*.{domain}"),
            Self::Ipv4(address) => write!(f, "{address}"),
            Self::Ipv6(address) => write!(f, "{address}"),
            Self::ServiceDiscovery(service) => write!(f, "{service}"),
        }
    }
}

/// What an `AllowedConnections` entry may be, as the errors say it.
const HOST_ALLOWED: &str = "a host name (letters, digits, `-`; dot-separated labels of 1-63 characters; at most 253 characters), an IPv4/IPv6 address, `*.domain`, or a DNS service discovery type `_service._tcp.domain`";

/// Why an `AllowedConnections` entry is refused; the message says what is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Not a host name, address, wildcard or service type.
    #[error("{HOST_ALLOWED}")]
    NotAHost,
    /// Dotted digits that are no IPv4 address (e.g. `1.2.3.999`).
    #[error("not a valid IP address; expected {HOST_ALLOWED}")]
    NotAnAddress,
    /// A wildcard over a top-level domain (`*.com`).
    #[error("a wildcard needs at least two labels after `*.` (e.g. `*.example.com`)")]
    WildcardTooWide,
    /// Starts with `_` but is no DNS service discovery type.
    #[error(
        "a DNS service discovery type `_service._tcp.domain` or `_service._udp.domain` (service: 1-15 letters, digits and `-`, at least one letter)"
    )]
    NotAServiceType,
}

fn validate_hostname(name: &str) -> Result<(), ConnectionError> {
    const ALLOWED: ConnectionError = ConnectionError::NotAHost;
    if name.is_empty() || name.len() > MAX_HOSTNAME_CHARS {
        return Err(ALLOWED);
    }
    let mut last_label = "";
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= MAX_LABEL_CHARS
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(ALLOWED);
        }
        last_label = label;
    }
    // An all-numeric last label (e.g. `1.2.3.999`) is a malformed address, not a name.
    if last_label.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ConnectionError::NotAnAddress);
    }
    Ok(())
}

/// The capabilities of an app. Default deny: every accessor returns "nothing" unless granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities<F: PeripheralForm = Unresolved> {
    pub(crate) allowed_connections: Vec<AllowedConnection>,
    pub(crate) tcp_server_ports: Vec<u16>,
    pub(crate) udp_server_ports: Vec<u16>,
    pub(crate) application_connections: Vec<Uuid>,
    pub(crate) device_authentication: Option<Uuid>,
    pub(crate) gpio: Vec<F::Gpio>,
    pub(crate) uart: Vec<F::Named>,
    pub(crate) i2c_master: Vec<F::Named>,
    pub(crate) i2c_subordinate: Vec<F::Named>,
    pub(crate) spi_master: Vec<F::Named>,
    pub(crate) adc: Vec<F::Named>,
    pub(crate) pwm: Vec<F::Named>,
    pub(crate) external_interrupt: Vec<F::Named>,
    pub(crate) private_network: Vec<F::Named>,
    pub(crate) mutable_storage_kib: Option<u32>,
    pub(crate) power_controls: Vec<PowerControl>,
    pub(crate) flags: BTreeSet<CapabilityFlag>,
}

impl<F: PeripheralForm> Default for Capabilities<F> {
    fn default() -> Self {
        Self {
            allowed_connections: Vec::new(),
            tcp_server_ports: Vec::new(),
            udp_server_ports: Vec::new(),
            application_connections: Vec::new(),
            device_authentication: None,
            gpio: Vec::new(),
            uart: Vec::new(),
            i2c_master: Vec::new(),
            i2c_subordinate: Vec::new(),
            spi_master: Vec::new(),
            adc: Vec::new(),
            pwm: Vec::new(),
            external_interrupt: Vec::new(),
            private_network: Vec::new(),
            mutable_storage_kib: None,
            power_controls: Vec::new(),
            flags: BTreeSet::new(),
        }
    }
}

impl<F: PeripheralForm> Capabilities<F> {
    /// Hosts and addresses the app may connect to.
    pub fn allowed_connections(&self) -> &[AllowedConnection] {
        &self.allowed_connections
    }
    /// TCP ports the app may listen on.
    pub fn tcp_server_ports(&self) -> &[u16] {
        &self.tcp_server_ports
    }
    /// UDP ports the app may listen on.
    pub fn udp_server_ports(&self) -> &[u16] {
        &self.udp_server_ports
    }
    /// Component IDs of apps this app may exchange messages with.
    pub fn application_connections(&self) -> &[Uuid] {
        &self.application_connections
    }
    /// Tenant whose device certificate the app may use, if granted.
    pub fn device_authentication(&self) -> Option<Uuid> {
        self.device_authentication
    }
    /// `Gpio` entries.
    pub fn gpio(&self) -> &[F::Gpio] {
        &self.gpio
    }
    /// Entries of a string-valued peripheral capability; `Gpio` has [`Self::gpio`] and returns
    /// an empty slice here.
    pub fn named_peripherals(&self, kind: PeripheralKind) -> &[F::Named] {
        match kind {
            PeripheralKind::Gpio => &[],
            PeripheralKind::Uart => &self.uart,
            PeripheralKind::I2cMaster => &self.i2c_master,
            PeripheralKind::I2cSubordinate => &self.i2c_subordinate,
            PeripheralKind::SpiMaster => &self.spi_master,
            PeripheralKind::Adc => &self.adc,
            PeripheralKind::Pwm => &self.pwm,
            PeripheralKind::ExternalInterrupt => &self.external_interrupt,
            PeripheralKind::PrivateNetwork => &self.private_network,
        }
    }
    pub(crate) fn named_peripherals_mut(
        &mut self,
        kind: PeripheralKind,
    ) -> Option<&mut Vec<F::Named>> {
        match kind {
            PeripheralKind::Gpio => None,
            PeripheralKind::Uart => Some(&mut self.uart),
            PeripheralKind::I2cMaster => Some(&mut self.i2c_master),
            PeripheralKind::I2cSubordinate => Some(&mut self.i2c_subordinate),
            PeripheralKind::SpiMaster => Some(&mut self.spi_master),
            PeripheralKind::Adc => Some(&mut self.adc),
            PeripheralKind::Pwm => Some(&mut self.pwm),
            PeripheralKind::ExternalInterrupt => Some(&mut self.external_interrupt),
            PeripheralKind::PrivateNetwork => Some(&mut self.private_network),
        }
    }
    /// `Uart` entries.
    pub fn uart(&self) -> &[F::Named] {
        &self.uart
    }
    /// `I2cMaster` entries.
    pub fn i2c_master(&self) -> &[F::Named] {
        &self.i2c_master
    }
    /// `SpiMaster` entries.
    pub fn spi_master(&self) -> &[F::Named] {
        &self.spi_master
    }
    /// `Adc` entries.
    pub fn adc(&self) -> &[F::Named] {
        &self.adc
    }
    /// `Pwm` entries.
    pub fn pwm(&self) -> &[F::Named] {
        &self.pwm
    }
    /// `PrivateNetwork` entries (Ferrosphere extension).
    pub fn private_network(&self) -> &[F::Named] {
        &self.private_network
    }
    /// Mutable storage quota in KiB, if granted.
    pub fn mutable_storage_kib(&self) -> Option<u32> {
        self.mutable_storage_kib
    }
    /// Granted power controls.
    pub fn power_controls(&self) -> &[PowerControl] {
        &self.power_controls
    }
    /// Whether a boolean capability is granted.
    pub fn has(&self, flag: CapabilityFlag) -> bool {
        self.flags.contains(&flag)
    }
    /// Granted boolean capabilities.
    pub fn flags(&self) -> impl Iterator<Item = CapabilityFlag> + '_ {
        self.flags.iter().copied()
    }

    /// Manifest keys of granted capabilities, in canonical order.
    pub fn granted_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut push_if = |granted: bool, key: &'static str| {
            if granted {
                keys.push(key);
            }
        };
        push_if(!self.allowed_connections.is_empty(), "AllowedConnections");
        push_if(!self.tcp_server_ports.is_empty(), "AllowedTcpServerPorts");
        push_if(!self.udp_server_ports.is_empty(), "AllowedUdpServerPorts");
        push_if(
            !self.application_connections.is_empty(),
            "AllowedApplicationConnections",
        );
        push_if(self.device_authentication.is_some(), "DeviceAuthentication");
        push_if(!self.gpio.is_empty(), "Gpio");
        for kind in PeripheralKind::ALL {
            if kind != PeripheralKind::Gpio {
                push_if(!self.named_peripherals(kind).is_empty(), kind.json_key());
            }
        }
        push_if(self.mutable_storage_kib.is_some(), "MutableStorage");
        push_if(!self.power_controls.is_empty(), "PowerControls");
        for flag in &self.flags {
            keys.push(flag.json_key());
        }
        keys
    }
}

/// Capabilities a real-time app may hold; everything else is for high-level apps only.
pub(crate) fn allowed_for_real_time(key: &str) -> bool {
    matches!(
        key,
        "AllowedApplicationConnections"
            | "Gpio"
            | "Uart"
            | "I2cMaster"
            | "I2cSubordinate"
            | "SpiMaster"
            | "Adc"
            | "Pwm"
            | "ExternalInterrupt"
    )
}

/// Capabilities only a real-time app may hold.
pub(crate) fn real_time_only(key: &str) -> bool {
    key == "ExternalInterrupt"
}

/// Parses a GUID in canonical 8-4-4-4-12 form (either case). `uuid` alone would also accept
/// braces, URNs and hyphen-less forms, which Azure Sphere does not.
pub fn parse_guid(text: &str) -> Option<Uuid> {
    let canonical_shape = text.len() == 36
        && text.char_indices().all(|(index, character)| match index {
            8 | 13 | 18 | 23 => character == '-',
            _ => character.is_ascii_hexdigit(),
        });
    if canonical_shape {
        Uuid::parse_str(text).ok()
    } else {
        None
    }
}

fn is_c_identifier(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// Whether `name` may follow `$` in a manifest (a C identifier, as hardware definition names are).
pub fn is_reference_name(name: &str) -> bool {
    name.len() <= MAX_REFERENCE_NAME_CHARS && is_c_identifier(name)
}

/// Whether `text` is a plausible literal peripheral identifier such as `ISU0` or `PWM-CONTROLLER-0`.
pub fn is_peripheral_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_PERIPHERAL_ID_CHARS
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Walks the `Capabilities` object, reporting every problem.
pub(crate) fn parse_capabilities(
    object: &Map<String, Value>,
    sink: &mut IssueSink,
) -> Capabilities<Unresolved> {
    let mut capabilities = Capabilities::<Unresolved>::default();
    for (key, value) in object {
        let path = format!("Capabilities.{key}");
        match key.as_str() {
            "AllowedConnections" => {
                capabilities.allowed_connections =
                    parse_unique_list(value, &path, sink, |item, item_path, sink| {
                        let text = expect_string(
                            item,
                            item_path,
                            sink,
                            "a host name, IP address, `*.domain` or `_service._tcp.domain`",
                        )?;
                        AllowedConnection::parse(text)
                            .map_err(|allowed| {
                                sink.push(
                                    item_path,
                                    IssueCode::InvalidValue,
                                    format!("{} is not allowed: expected {allowed}", show(item)),
                                )
                            })
                            .ok()
                    });
            }
            "AllowedTcpServerPorts" | "AllowedUdpServerPorts" => {
                let ports = parse_unique_list(value, &path, sink, |item, item_path, sink| {
                    let number = expect_integer(item, item_path, sink, "a port number 1..=65535")?;
                    match u16::try_from(number) {
                        Ok(port) if port != 0 => Some(port),
                        _ => {
                            sink.push(
                                item_path,
                                IssueCode::OutOfRange,
                                format!("{} is not a valid port: allowed 1..=65535", show(item)),
                            );
                            None
                        }
                    }
                });
                if key == "AllowedTcpServerPorts" {
                    capabilities.tcp_server_ports = ports;
                } else {
                    capabilities.udp_server_ports = ports;
                }
            }
            "AllowedApplicationConnections" => {
                capabilities.application_connections =
                    parse_unique_list(value, &path, sink, expect_guid);
            }
            "DeviceAuthentication" => {
                capabilities.device_authentication = expect_guid(value, &path, sink);
            }
            "MutableStorage" => {
                capabilities.mutable_storage_kib = parse_mutable_storage(value, &path, sink)
            }
            "PowerControls" => {
                capabilities.power_controls = parse_unique_list(
                    value,
                    &path,
                    sink,
                    |item, item_path, sink| {
                        let text = expect_string(
                            item,
                            item_path,
                            sink,
                            "ForcePowerDown, ForceReboot or SetPowerProfile",
                        )?;
                        let control = PowerControl::ALL
                            .into_iter()
                            .find(|control| control.as_str() == text);
                        if control.is_none() {
                            sink.push(item_path, IssueCode::InvalidValue, format!("{} is not a power control: allowed ForcePowerDown, ForceReboot, SetPowerProfile", show(item)));
                        }
                        control
                    },
                );
                if value.as_array().is_some_and(Vec::is_empty) {
                    sink.push(&path, IssueCode::EmptyArray, "PowerControls must list at least one of ForcePowerDown, ForceReboot, SetPowerProfile (omit the key to grant none)");
                }
            }
            "Gpio" => {
                capabilities.gpio = parse_unique_list(value, &path, sink, parse_gpio_entry);
            }
            other => {
                if let Some(kind) = PeripheralKind::from_json_key(other) {
                    let entries = parse_unique_list(value, &path, sink, parse_named_entry);
                    if let Some(list) = capabilities.named_peripherals_mut(kind) {
                        *list = entries;
                    }
                } else if let Some(flag) = CapabilityFlag::from_json_key(other) {
                    match value {
                        Value::Bool(true) => {
                            capabilities.flags.insert(flag);
                        }
                        Value::Bool(false) => {}
                        _ => sink.push(
                            &path,
                            IssueCode::WrongType,
                            format!(
                                "{} is {}: expected true or false",
                                show(value),
                                type_name(value)
                            ),
                        ),
                    }
                } else {
                    sink.push(
                        &path,
                        IssueCode::UnknownField,
                        format!(
                            "`{other}` is not an Azure Sphere capability (names are case-sensitive)"
                        ),
                    );
                }
            }
        }
    }
    capabilities
}

fn parse_mutable_storage(value: &Value, path: &str, sink: &mut IssueSink) -> Option<u32> {
    let Some(object) = value.as_object() else {
        sink.push(
            path,
            IssueCode::WrongType,
            format!(
                "{} is {}: expected an object {{\"SizeKB\": 1..={MAX_MUTABLE_STORAGE_KIB}}}",
                show(value),
                type_name(value)
            ),
        );
        return None;
    };
    let mut size = None;
    for (key, item) in object {
        let item_path = format!("{path}.{key}");
        if key != "SizeKB" {
            sink.push(
                &item_path,
                IssueCode::UnknownField,
                format!("`{key}` is not a MutableStorage field: allowed SizeKB"),
            );
            continue;
        }
        let number = expect_integer(item, &item_path, sink, "an integer 1..=64")?;
        match u32::try_from(number) {
            Ok(kib) if (1..=MAX_MUTABLE_STORAGE_KIB).contains(&kib) => size = Some(kib),
            _ => sink.push(
                &item_path,
                IssueCode::OutOfRange,
                format!("{number} KiB is not allowed: allowed 1..={MAX_MUTABLE_STORAGE_KIB}"),
            ),
        }
    }
    if size.is_none() && !object.contains_key("SizeKB") {
        sink.push(
            &format!("{path}.SizeKB"),
            IssueCode::MissingField,
            format!("SizeKB is required: an integer 1..={MAX_MUTABLE_STORAGE_KIB}"),
        );
    }
    size
}

fn parse_gpio_entry(item: &Value, path: &str, sink: &mut IssueSink) -> Option<PeripheralRef<u32>> {
    match item {
        Value::String(text) => parse_reference(text, item, path, sink, "a GPIO number or `$NAME`"),
        Value::Number(_) => {
            let number = expect_integer(item, path, sink, "a GPIO number or `$NAME`")?;
            match u32::try_from(number) {
                Ok(gpio) => Some(PeripheralRef::Value(gpio)),
                Err(_) => {
                    sink.push(
                        path,
                        IssueCode::OutOfRange,
                        format!(
                            "{} is not a GPIO number: allowed 0..={}",
                            show(item),
                            u32::MAX
                        ),
                    );
                    None
                }
            }
        }
        _ => {
            sink.push(
                path,
                IssueCode::WrongType,
                format!(
                    "{} is {}: expected a GPIO number or `$NAME`",
                    show(item),
                    type_name(item)
                ),
            );
            None
        }
    }
}

fn parse_named_entry(
    item: &Value,
    path: &str,
    sink: &mut IssueSink,
) -> Option<PeripheralRef<String>> {
    let text = expect_string(
        item,
        path,
        sink,
        "a peripheral name such as \"ISU0\" or `$NAME`",
    )?;
    if text.starts_with('$') {
        return parse_reference(text, item, path, sink, "a peripheral name or `$NAME`");
    }
    if is_peripheral_id(text) {
        Some(PeripheralRef::Value(text.to_owned()))
    } else {
        sink.push(path, IssueCode::InvalidValue, format!("{} is not a peripheral name: expected letters, digits, `-` or `_` (at most {MAX_PERIPHERAL_ID_CHARS}), e.g. \"ISU0\", or `$NAME`", show(item)));
        None
    }
}

fn parse_reference<T>(
    text: &str,
    item: &Value,
    path: &str,
    sink: &mut IssueSink,
    expected: &str,
) -> Option<PeripheralRef<T>> {
    match text.strip_prefix('$') {
        Some(name) if is_reference_name(name) => Some(PeripheralRef::Name(name.to_owned())),
        _ => {
            sink.push(
                path,
                IssueCode::InvalidValue,
                format!(
                    "{} is not allowed: expected {expected} (`$` followed by a C identifier)",
                    show(item)
                ),
            );
            None
        }
    }
}

/// Parses an array whose entries must be unique, reporting wrong types, bad entries and
/// duplicates (by parsed value, so `Example.com` duplicates `example.com`).
fn parse_unique_list<T: Eq + std::hash::Hash + Clone>(
    value: &Value,
    path: &str,
    sink: &mut IssueSink,
    mut parse_item: impl FnMut(&Value, &str, &mut IssueSink) -> Option<T>,
) -> Vec<T> {
    let Some(items) = value.as_array() else {
        sink.push(
            path,
            IssueCode::WrongType,
            format!("{} is {}: expected an array", show(value), type_name(value)),
        );
        return Vec::new();
    };
    if items.len() > MAX_CAPABILITY_ENTRIES {
        sink.push(
            path,
            IssueCode::OutOfRange,
            format!(
                "{} entries: at most {MAX_CAPABILITY_ENTRIES} allowed",
                items.len()
            ),
        );
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut parsed = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        if let Some(entry) = parse_item(item, &item_path, sink) {
            if seen.insert(entry.clone()) {
                parsed.push(entry);
            } else {
                sink.push(
                    &item_path,
                    IssueCode::Duplicate,
                    format!("{} is listed more than once", show(item)),
                );
            }
        }
    }
    parsed
}

pub(crate) fn expect_string<'v>(
    value: &'v Value,
    path: &str,
    sink: &mut IssueSink,
    expected: &str,
) -> Option<&'v str> {
    match value {
        Value::String(text) => Some(text),
        _ => {
            sink.push(
                path,
                IssueCode::WrongType,
                format!(
                    "{} is {}: expected {expected} (a string)",
                    show(value),
                    type_name(value)
                ),
            );
            None
        }
    }
}

/// An integer (no fraction, no exponent form that yields a float); returns it widened to i128 so
/// callers range-check without overflow.
pub(crate) fn expect_integer(
    value: &Value,
    path: &str,
    sink: &mut IssueSink,
    expected: &str,
) -> Option<i128> {
    let integer = value
        .as_u64()
        .map(i128::from)
        .or_else(|| value.as_i64().map(i128::from));
    if integer.is_none() {
        sink.push(
            path,
            IssueCode::WrongType,
            format!(
                "{} is {}: expected {expected} (an integer)",
                show(value),
                type_name(value)
            ),
        );
    }
    integer
}

pub(crate) fn expect_guid(value: &Value, path: &str, sink: &mut IssueSink) -> Option<Uuid> {
    let text = expect_string(value, path, sink, "a GUID")?;
    let guid = parse_guid(text);
    if guid.is_none() {
        sink.push(path, IssueCode::MalformedGuid, format!("{} is not a GUID: expected 8-4-4-4-12 hex digits, e.g. \"274f308f-ef6d-4686-ba77-a56c3a9d93f3\"", show(value)));
    }
    guid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_connection_forms() {
        assert_eq!(
            AllowedConnection::parse("Example.COM"),
            Ok(AllowedConnection::Host("example.com".into()))
        );
        assert_eq!(
            AllowedConnection::parse("*.example.com"),
            Ok(AllowedConnection::AnySubdomainOf("example.com".into()))
        );
        assert!(matches!(
            AllowedConnection::parse("10.0.0.1"),
            Ok(AllowedConnection::Ipv4(_))
        ));
        assert!(matches!(
            AllowedConnection::parse("fe80::1"),
            Ok(AllowedConnection::Ipv6(_))
        ));
        for bad in [
            "",
            "*.com",
            "*",
            "a..b",
            "-a.com",
            "a-.com",
            "1.2.3.999",
            "exa mple.com",
            "a.com.",
            "x/y",
            "*.*.a.com",
        ] {
            assert!(AllowedConnection::parse(bad).is_err(), "{bad} accepted");
        }
        let long_label = "a".repeat(64);
        assert!(AllowedConnection::parse(&format!("{long_label}.com")).is_err());
    }

    /// Azure Sphere's DNSServiceDiscovery sample lists `_sample-service._tcp.local`.
    #[test]
    fn dns_service_discovery_types_are_accepted() {
        let Ok(AllowedConnection::ServiceDiscovery(service)) =
            AllowedConnection::parse("_Sample-Service._TCP.local")
        else {
            panic!("a DNS-SD service type is accepted");
        };
        assert_eq!(service.service(), "sample-service");
        assert!(service.is_tcp());
        assert_eq!(service.domain(), "local");
        assert_eq!(service.to_string(), "_sample-service._tcp.local");
        assert!(matches!(
            AllowedConnection::parse("_printer._udp.example.com"),
            Ok(AllowedConnection::ServiceDiscovery(s)) if !s.is_tcp()
        ));
        // It grants discovery, not a connection to the name.
        let entry = AllowedConnection::parse("_sample-service._tcp.local").expect("parse");
        assert!(!entry.allows_host("_sample-service._tcp.local"));
        assert!(!entry.allows_host("local"));
        for bad in [
            "_sample-service",
            "_sample-service._tcp",
            "_sample-service._sctp.local",
            "_._tcp.local",
            "_sixteen-chars-xx._tcp.local",
            "_-svc._tcp.local",
            "_svc-._tcp.local",
            "_s--v._tcp.local",
            "_123._tcp.local",
            "_svc._tcp.",
            "_svc._tcp.a..b",
            "_svc._tcp.local.",
            "_s_v._tcp.local",
            "sample._tcp.local",
            "_svc._tcp.*.local",
        ] {
            assert!(AllowedConnection::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let Ok(rule) = AllowedConnection::parse("*.example.com") else {
            panic!("rejected")
        };
        assert!(rule.allows_host("a.example.com"));
        assert!(rule.allows_host("A.B.Example.com."));
        assert!(!rule.allows_host("example.com"));
        assert!(!rule.allows_host("badexample.com"));
    }

    #[test]
    fn guid_must_be_canonical() {
        assert!(parse_guid("274f308f-ef6d-4686-ba77-a56c3a9d93f3").is_some());
        assert!(parse_guid("CD359CC1-4AAC-414E-8D26-8ACB71DDBA6D").is_some());
        for bad in [
            "274f308fef6d4686ba77a56c3a9d93f3",
            "{274f308f-ef6d-4686-ba77-a56c3a9d93f3}",
            "274f308f-ef6d-4686-ba77-a56c3a9d93fg",
            "274f308f-ef6d4-686-ba77-a56c3a9d93f3",
        ] {
            assert!(parse_guid(bad).is_none(), "{bad} accepted");
        }
    }
}
