//! One owner per peripheral and server port.
//!
//! An app claims everything its manifest grants when it is installed; a claim that overlaps an
//! installed app's fails whole (nothing is claimed) and names the resource and its owner. Two
//! claims overlap when they name the same resource, or the same pin block (hardware definitions'
//! `PinBlock`: GPIO26 and `ISU0` share block `ISU0`), or the same peripheral identifier under two
//! functions (`ISU0` as UART and as I2C).

use std::collections::BTreeMap;
use std::fmt;

use ferro_manifest::{
    AppManifestValue, Capabilities, HardwareDefinition, PeripheralKind, PeripheralType, Resolved,
};
use thiserror::Error;

/// Something only one app may hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Gpio(u32),
    Uart(String),
    I2cMaster(String),
    I2cSubordinate(String),
    SpiMaster(String),
    Adc(String),
    Pwm(String),
    /// A private network interface (Ferrosphere's `PrivateNetwork`), by manifest value.
    PrivateNetwork(String),
    TcpServerPort(u16),
    UdpServerPort(u16),
    /// A real-time core of the chip (`IO0`), held by the real-time app the device assigned it.
    RealTimeCore(String),
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gpio(pin) => write!(f, "GPIO {pin}"),
            Self::Uart(id) => write!(f, "{id} (Uart)"),
            Self::I2cMaster(id) => write!(f, "{id} (I2cMaster)"),
            Self::I2cSubordinate(id) => write!(f, "{id} (I2cSubordinate)"),
            Self::SpiMaster(id) => write!(f, "{id} (SpiMaster)"),
            Self::Adc(id) => write!(f, "{id} (Adc)"),
            Self::Pwm(id) => write!(f, "{id} (Pwm)"),
            Self::PrivateNetwork(id) => write!(f, "{id} (PrivateNetwork)"),
            Self::TcpServerPort(port) => write!(f, "TCP server port {port}"),
            Self::UdpServerPort(port) => write!(f, "UDP server port {port}"),
            Self::RealTimeCore(core) => write!(f, "real-time core {core}"),
        }
    }
}

impl Resource {
    /// Everything a manifest's capabilities claim: peripherals and server ports.
    pub fn claimed_by(capabilities: &Capabilities<Resolved>) -> Vec<Resource> {
        let mut resources: Vec<Resource> = capabilities
            .gpio()
            .iter()
            .copied()
            .map(Self::Gpio)
            .collect();
        for kind in PeripheralKind::ALL {
            for value in capabilities.named_peripherals(kind) {
                let resource = match kind {
                    PeripheralKind::Gpio | PeripheralKind::ExternalInterrupt => continue,
                    PeripheralKind::Uart => Self::Uart(value.clone()),
                    PeripheralKind::I2cMaster => Self::I2cMaster(value.clone()),
                    PeripheralKind::I2cSubordinate => Self::I2cSubordinate(value.clone()),
                    PeripheralKind::SpiMaster => Self::SpiMaster(value.clone()),
                    PeripheralKind::Adc => Self::Adc(value.clone()),
                    PeripheralKind::Pwm => Self::Pwm(value.clone()),
                    PeripheralKind::PrivateNetwork => Self::PrivateNetwork(value.clone()),
                };
                resources.push(resource);
            }
        }
        resources.extend(
            capabilities
                .tcp_server_ports()
                .iter()
                .copied()
                .map(Self::TcpServerPort),
        );
        resources.extend(
            capabilities
                .udp_server_ports()
                .iter()
                .copied()
                .map(Self::UdpServerPort),
        );
        resources
    }

    /// Keys under which this resource is exclusive (its identity, its pin block).
    fn keys(&self, blocks: &PinBlocks) -> Vec<String> {
        let mut keys = match self {
            Self::Gpio(pin) => vec![format!("gpio:{pin}")],
            Self::Uart(id)
            | Self::I2cMaster(id)
            | Self::I2cSubordinate(id)
            | Self::SpiMaster(id)
            | Self::Adc(id)
            | Self::Pwm(id) => vec![format!("peripheral:{id}")],
            Self::PrivateNetwork(id) => vec![format!("private-network:{id}")],
            Self::TcpServerPort(port) => vec![format!("tcp:{port}")],
            Self::UdpServerPort(port) => vec![format!("udp:{port}")],
            Self::RealTimeCore(core) => vec![format!("core:{core}")],
        };
        if let Some(block) = blocks.block_of(self) {
            let key = format!("peripheral:{block}");
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }
}

/// Which pin block each peripheral occupies, from a hardware definition's `PinBlock` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinBlocks {
    blocks: BTreeMap<(PeripheralType, AppManifestValue), String>,
}

impl PinBlocks {
    /// No pin blocks: only identical resources conflict.
    pub fn none() -> Self {
        Self::default()
    }

    /// The pin blocks a hardware definition declares.
    pub fn from_hardware_definition(definition: &HardwareDefinition) -> Self {
        let mut blocks = BTreeMap::new();
        for peripheral in definition.peripherals() {
            if let (Some(value), Some(block)) =
                (&peripheral.app_manifest_value, &peripheral.pin_block)
            {
                blocks.insert((peripheral.peripheral_type, value.clone()), block.clone());
            }
        }
        Self { blocks }
    }

    fn block_of(&self, resource: &Resource) -> Option<&str> {
        let key = match resource {
            Resource::Gpio(pin) => (PeripheralType::Gpio, AppManifestValue::Number(*pin)),
            Resource::Uart(id) => (PeripheralType::Uart, AppManifestValue::Text(id.clone())),
            Resource::I2cMaster(id) => (
                PeripheralType::I2cMaster,
                AppManifestValue::Text(id.clone()),
            ),
            Resource::I2cSubordinate(id) => (
                PeripheralType::I2cSubordinate,
                AppManifestValue::Text(id.clone()),
            ),
            Resource::SpiMaster(id) => (
                PeripheralType::SpiMaster,
                AppManifestValue::Text(id.clone()),
            ),
            Resource::Adc(id) => (PeripheralType::Adc, AppManifestValue::Text(id.clone())),
            Resource::Pwm(id) => (PeripheralType::Pwm, AppManifestValue::Text(id.clone())),
            Resource::PrivateNetwork(_)
            | Resource::TcpServerPort(_)
            | Resource::UdpServerPort(_)
            | Resource::RealTimeCore(_) => return None,
        };
        self.blocks.get(&key).map(String::as_str)
    }
}

/// A claim refused because another app holds an overlapping resource.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OwnershipError {
    #[error("{wanted} is not available: {held} belongs to app {owner}{}", shared_block.as_ref().map(|block| format!(" (they share pin block {block})")).unwrap_or_default())]
    Conflict {
        /// The resource asked for.
        wanted: Resource,
        /// The resource that holds it.
        held: Resource,
        /// The app that holds `held`.
        owner: String,
        /// The pin block both occupy, when they are not the same resource.
        shared_block: Option<String>,
    },
    #[error("app {0} already holds resources; release them first")]
    AlreadyClaimed(String),
}

/// Who owns what. Not thread-safe by itself: the runtime holds it under its install lock.
#[derive(Debug, Clone, Default)]
pub struct OwnershipTable {
    blocks: PinBlocks,
    by_key: BTreeMap<String, (String, Resource)>,
    by_owner: BTreeMap<String, Vec<Resource>>,
}

impl OwnershipTable {
    pub fn new(blocks: PinBlocks) -> Self {
        Self {
            blocks,
            ..Self::default()
        }
    }

    /// Claims all of `resources` for `owner`, or nothing. An owner claims once; to change its
    /// resources, [`Self::release`] then claim again.
    pub fn claim(&mut self, owner: &str, resources: &[Resource]) -> Result<(), OwnershipError> {
        if self.by_owner.contains_key(owner) {
            return Err(OwnershipError::AlreadyClaimed(owner.to_owned()));
        }
        let mut pending: BTreeMap<String, Resource> = BTreeMap::new();
        for resource in resources {
            for key in resource.keys(&self.blocks) {
                if let Some((holder, held)) = self.by_key.get(&key) {
                    return Err(OwnershipError::Conflict {
                        wanted: resource.clone(),
                        held: held.clone(),
                        owner: holder.clone(),
                        shared_block: shared_block(&key, resource, held),
                    });
                }
                pending.entry(key).or_insert_with(|| resource.clone());
            }
        }
        for (key, resource) in pending {
            self.by_key.insert(key, (owner.to_owned(), resource));
        }
        self.by_owner.insert(owner.to_owned(), resources.to_vec());
        Ok(())
    }

    /// Releases everything `owner` holds.
    pub fn release(&mut self, owner: &str) {
        self.by_owner.remove(owner);
        self.by_key.retain(|_, (holder, _)| holder != owner);
    }

    /// The owner of `resource`, if any.
    pub fn owner_of(&self, resource: &Resource) -> Option<&str> {
        resource
            .keys(&self.blocks)
            .first()
            .and_then(|key| self.by_key.get(key))
            .map(|(owner, _)| owner.as_str())
    }

    /// What `owner` holds.
    pub fn held_by(&self, owner: &str) -> &[Resource] {
        self.by_owner.get(owner).map(Vec::as_slice).unwrap_or(&[])
    }
}

fn shared_block(key: &str, wanted: &Resource, held: &Resource) -> Option<String> {
    if wanted == held {
        return None;
    }
    key.strip_prefix("peripheral:").map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks() -> PinBlocks {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../hardware");
        let definition =
            HardwareDefinition::load(&root.join("ferro_vboard/ferro_vboard.json"), &[]).unwrap();
        PinBlocks::from_hardware_definition(&definition)
    }

    #[test]
    fn one_owner_per_gpio() {
        let mut table = OwnershipTable::new(PinBlocks::none());
        table.claim("a", &[Resource::Gpio(8)]).unwrap();
        let error = table
            .claim("b", &[Resource::Gpio(9), Resource::Gpio(8)])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "GPIO 8 is not available: GPIO 8 belongs to app a"
        );
        // All or nothing: GPIO 9 was not claimed by the failed attempt.
        assert_eq!(table.owner_of(&Resource::Gpio(9)), None);
        table.claim("c", &[Resource::Gpio(9)]).unwrap();
    }

    #[test]
    fn release_frees_everything() {
        let mut table = OwnershipTable::new(PinBlocks::none());
        table
            .claim("a", &[Resource::Gpio(8), Resource::TcpServerPort(80)])
            .unwrap();
        assert_eq!(table.held_by("a").len(), 2);
        table.release("a");
        table
            .claim("b", &[Resource::Gpio(8), Resource::TcpServerPort(80)])
            .unwrap();
        assert_eq!(table.owner_of(&Resource::TcpServerPort(80)), Some("b"));
    }

    #[test]
    fn a_real_time_core_has_one_app() {
        let mut table = OwnershipTable::new(blocks());
        table
            .claim(
                "rt-a",
                &[Resource::RealTimeCore("IO0".into()), Resource::Gpio(8)],
            )
            .unwrap();
        let error = table
            .claim("rt-b", &[Resource::RealTimeCore("IO0".into())])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "real-time core IO0 is not available: real-time core IO0 belongs to app rt-a"
        );
        // A core is not a peripheral identifier: another core, or a GPIO numbered like it, is free.
        table
            .claim(
                "rt-c",
                &[Resource::RealTimeCore("IO1".into()), Resource::Gpio(0)],
            )
            .unwrap();
        assert_eq!(
            table.owner_of(&Resource::RealTimeCore("IO1".into())),
            Some("rt-c")
        );
    }

    #[test]
    fn server_ports_are_exclusive_per_protocol() {
        let mut table = OwnershipTable::new(PinBlocks::none());
        table.claim("a", &[Resource::TcpServerPort(8080)]).unwrap();
        table.claim("b", &[Resource::UdpServerPort(8080)]).unwrap();
        let error = table
            .claim("c", &[Resource::TcpServerPort(8080)])
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("TCP server port 8080 belongs to app a")
        );
    }

    #[test]
    fn one_isu_one_function_across_apps() {
        let mut table = OwnershipTable::new(PinBlocks::none());
        table.claim("a", &[Resource::Uart("ISU0".into())]).unwrap();
        assert!(
            table
                .claim("b", &[Resource::I2cMaster("ISU0".into())])
                .is_err()
        );
    }

    #[test]
    fn pin_blocks_conflict_across_apps() {
        let mut table = OwnershipTable::new(blocks());
        table
            .claim("a", &[Resource::Pwm("PWM-CONTROLLER-2".into())])
            .unwrap();
        let error = table.claim("b", &[Resource::Gpio(8)]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "GPIO 8 is not available: PWM-CONTROLLER-2 (Pwm) belongs to app a (they share pin block PWM-CONTROLLER-2)"
        );
        table.claim("c", &[Resource::Gpio(26)]).unwrap();
        assert!(table.claim("d", &[Resource::Uart("ISU0".into())]).is_err());
        assert_eq!(table.owner_of(&Resource::Gpio(12)), None);
    }

    #[test]
    fn an_owner_claims_once() {
        let mut table = OwnershipTable::new(PinBlocks::none());
        table.claim("a", &[]).unwrap();
        assert_eq!(
            table.claim("a", &[Resource::Gpio(1)]),
            Err(OwnershipError::AlreadyClaimed("a".into()))
        );
    }
}
