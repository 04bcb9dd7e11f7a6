//! The MQTT uplink (`guardian-uplink`, `docs/guardian.md`, "Uplink"): readings published as
//! JSON or Sparkplug B over the device's TLS connection, stored and forwarded through the app's
//! mutable storage, write requests taken from the command topic and acknowledged. Every batch
//! is signed by the device key through the root of trust (`deviceauth.sign-batch`).
//!
//! Arguments (after the app's own): `--broker HOST:PORT` (a host in `AllowedConnections`; the
//! app needs `DeviceAuthentication` and `MutableStorage`), `--format json|sparkplug` (JSON by
//! default), `--device ID` (the MQTT client ID and Sparkplug edge node; `guardian` by default),
//! `--group ID` (the Sparkplug group; `ferrosphere` by default).

use std::time::Duration;

use ferro_registermap::map::{DataType, ObjectType};
use ferro_registermap::{Reading, RegisterMap, ValueKind, WriteAck, WriteRequest};
use guardian_uplink::device::{DeviceClock, DeviceSeal, DeviceStorage, TlsConnector, log_events};
use guardian_uplink::{Format, PointInfo, Uplink, UplinkConfig};

use crate::seams::{CommandSource, ReadingSink};

/// Where the uplink connects, from the app's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkArgs {
    pub host: String,
    pub port: u16,
    pub format: Format,
    pub device: String,
    pub group: String,
}

impl UplinkArgs {
    /// The uplink's arguments, or `None` when they name no broker (or a malformed one).
    pub fn parse(args: &[String]) -> Option<UplinkArgs> {
        let value = |flag: &str| {
            args.iter()
                .position(|arg| arg == flag)
                .and_then(|at| args.get(at + 1))
                .cloned()
        };
        let (host, port) = value("--broker")?
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))?;
        Some(UplinkArgs {
            host,
            port,
            format: if value("--format").as_deref() == Some("sparkplug") {
                Format::SparkplugB
            } else {
                Format::Json
            },
            device: value("--device").unwrap_or_else(|| "guardian".to_owned()),
            group: value("--group").unwrap_or_else(|| "ferrosphere".to_owned()),
        })
    }
}

/// The points as the uplink needs them: name, unit, and whether the value is a boolean.
fn points(map: &RegisterMap) -> Vec<PointInfo> {
    map.points
        .iter()
        .map(|point| PointInfo {
            name: point.name.clone(),
            unit: point.unit.clone(),
            kind: if point.data_type == DataType::Bool
                || matches!(point.object, ObjectType::Coil | ObjectType::DiscreteInput)
            {
                ValueKind::Bool
            } else {
                ValueKind::Number
            },
        })
        .collect()
}

/// The uplink on the device, as the guardian's [`ReadingSink`] and [`CommandSource`].
/// Every batch is signed by the device (`DeviceSeal`, docs/provenance.md).
pub struct MqttUplink(Uplink<DeviceStorage, TlsConnector, DeviceClock, DeviceSeal>);

impl MqttUplink {
    pub fn new(
        args: UplinkArgs,
        map: &RegisterMap,
    ) -> Result<Self, guardian_uplink::spool::SpoolError> {
        let mut config = UplinkConfig::new(&args.device, args.format);
        config.group = args.group;
        let connector = TlsConnector {
            host: args.host,
            port: args.port,
            timeout: Duration::from_secs(10),
        };
        let uplink = Uplink::new(
            config,
            points(map),
            DeviceStorage,
            connector,
            DeviceClock,
            DeviceSeal,
        )?;
        Ok(MqttUplink(uplink))
    }
}

impl ReadingSink for MqttUplink {
    fn accept(&mut self, readings: Vec<Reading>) {
        self.0.accept(&readings, applibs::time::unix_ms());
        log_events(self.0.take_events());
    }

    fn service(&mut self, now_ms: u64, budget: Duration) {
        self.0.service(now_ms, budget);
        log_events(self.0.take_events());
    }
}

impl CommandSource for MqttUplink {
    fn next_request(&mut self) -> Option<WriteRequest> {
        self.0.next_request()
    }

    fn acknowledge(&mut self, ack: WriteAck) {
        self.0.acknowledge(&ack);
        log_events(self.0.take_events());
    }
}
