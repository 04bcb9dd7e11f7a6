//! `$NAME` resolution and board checks: turns an [`AppManifest`] into a [`ResolvedManifest`].

use std::collections::{BTreeMap, BTreeSet};

use crate::capabilities::{Capabilities, PeripheralKind, PeripheralRef, Resolved, Unresolved};
use crate::error::{IssueCode, ManifestErrors};
use crate::hardware::{AppManifestValue, HardwareDefinition};
use crate::manifest::{AppManifest, IssueSink, ResolvedManifest};

/// One peripheral the app asks for, after resolution.
struct Claim {
    kind: PeripheralKind,
    value: AppManifestValue,
    path: String,
    /// `$NAME` as written, or the literal value.
    label: String,
    pin_block: Option<String>,
}

impl Claim {
    fn describe(&self) -> String {
        format!(
            "{} ({} {}) at {}",
            self.label,
            self.kind.json_key(),
            self.value,
            self.path
        )
    }

    /// Resources this claim occupies besides its own identity: its pin block, and for string
    /// values the value itself (so `ISU0` as Uart and as I2cMaster collide without any
    /// `PinBlock` data).
    fn shared_resources(&self) -> Vec<String> {
        let mut resources: Vec<String> = self.pin_block.iter().cloned().collect();
        if let AppManifestValue::Text(text) = &self.value
            && !resources.contains(text)
        {
            resources.push(text.clone());
        }
        resources
    }
}

impl AppManifest<Unresolved> {
    /// Resolves every `$NAME` through `hardware` and checks peripherals against it (existence on
    /// the board, duplicates, pin-block conflicts), reporting all problems at once. Without a
    /// hardware definition only reference-free manifests resolve, and only schema-level and
    /// same-identifier (`ISU0` twice) checks apply.
    pub fn resolve(
        &self,
        hardware: Option<&HardwareDefinition>,
    ) -> Result<ResolvedManifest, ManifestErrors> {
        let mut sink = IssueSink::default();
        let mut claims: Vec<Claim> = Vec::new();
        let source = &self.capabilities;

        for (index, entry) in source.gpio.iter().enumerate() {
            let entry = match entry {
                PeripheralRef::Value(number) => {
                    PeripheralRef::Value(AppManifestValue::Number(*number))
                }
                PeripheralRef::Name(name) => PeripheralRef::Name(name.clone()),
            };
            resolve_entry(
                PeripheralKind::Gpio,
                &entry,
                index,
                hardware,
                &mut sink,
                &mut claims,
            );
        }
        for kind in PeripheralKind::ALL {
            for (index, entry) in source.named_peripherals(kind).iter().enumerate() {
                let entry = match entry {
                    PeripheralRef::Value(text) => {
                        PeripheralRef::Value(AppManifestValue::Text(text.clone()))
                    }
                    PeripheralRef::Name(name) => PeripheralRef::Name(name.clone()),
                };
                resolve_entry(kind, &entry, index, hardware, &mut sink, &mut claims);
            }
        }
        check_conflicts(&claims, hardware, &mut sink);

        let mut capabilities = Capabilities::<Resolved> {
            allowed_connections: source.allowed_connections.clone(),
            tcp_server_ports: source.tcp_server_ports.clone(),
            udp_server_ports: source.udp_server_ports.clone(),
            application_connections: source.application_connections.clone(),
            device_authentication: source.device_authentication,
            mutable_storage_kib: source.mutable_storage_kib,
            power_controls: source.power_controls.clone(),
            flags: source.flags.clone(),
            ..Capabilities::default()
        };
        for claim in claims {
            match (claim.kind, claim.value) {
                (PeripheralKind::Gpio, AppManifestValue::Number(number)) => {
                    capabilities.gpio.push(number)
                }
                (kind, AppManifestValue::Text(text)) => {
                    if let Some(list) = capabilities.named_peripherals_mut(kind) {
                        list.push(text);
                    }
                }
                // resolve_entry only records values whose form matches the kind.
                (_, AppManifestValue::Number(_)) => {}
            }
        }
        let manifest = AppManifest {
            name: self.name.clone(),
            component_id: self.component_id,
            entry_point: self.entry_point.clone(),
            cmd_args: self.cmd_args.clone(),
            application_type: self.application_type,
            malloc_version: self.malloc_version,
            watchdog_period_ms: self.watchdog_period_ms,
            capabilities,
        };
        sink.into_result(ResolvedManifest { manifest })
    }
}

fn board_label(hardware: &HardwareDefinition) -> String {
    if hardware.name().is_empty() {
        format!("`{}`", hardware.source_key())
    } else {
        format!("`{}` ({})", hardware.name(), hardware.source_key())
    }
}

fn resolve_entry(
    kind: PeripheralKind,
    entry: &PeripheralRef<AppManifestValue>,
    index: usize,
    hardware: Option<&HardwareDefinition>,
    sink: &mut IssueSink,
    claims: &mut Vec<Claim>,
) {
    let path = format!("Capabilities.{}[{index}]", kind.json_key());
    let wanted_type = kind.hardware_type();
    let (value, pin_block, label) = match (entry, hardware) {
        (PeripheralRef::Name(name), None) => {
            sink.push(&path, IssueCode::NeedsHardwareDefinition, format!("`${name}` needs a hardware definition to resolve: pass --hardware-definitions and --target-definition-filename"));
            return;
        }
        (PeripheralRef::Name(name), Some(hardware)) => {
            let Some(peripheral) = hardware.peripheral(name) else {
                sink.push(
                    &path,
                    IssueCode::UnresolvedReference,
                    format!(
                        "`${name}` is not defined in hardware definition {}",
                        board_label(hardware)
                    ),
                );
                return;
            };
            let value = match &peripheral.app_manifest_value {
                Some(value) if peripheral.peripheral_type == wanted_type => value.clone(),
                _ => {
                    sink.push(
                        &path,
                        IssueCode::WrongPeripheralType,
                        format!(
                            "`${name}` is of Type {} in {}, but {} needs Type {wanted_type}",
                            peripheral.peripheral_type,
                            board_label(hardware),
                            kind.json_key()
                        ),
                    );
                    return;
                }
            };
            (value, peripheral.pin_block.clone(), format!("`${name}`"))
        }
        (PeripheralRef::Value(value), Some(hardware)) => {
            let Some(peripheral) = hardware.find_value(wanted_type, value) else {
                sink.push(
                    &path,
                    IssueCode::NotOnBoard,
                    format!(
                        "{} {value} does not exist on {}",
                        kind.json_key(),
                        board_label(hardware)
                    ),
                );
                return;
            };
            (
                value.clone(),
                peripheral.pin_block.clone(),
                value.to_string(),
            )
        }
        (PeripheralRef::Value(value), None) => (value.clone(), None, value.to_string()),
    };
    let form_matches = matches!(
        (kind, &value),
        (PeripheralKind::Gpio, AppManifestValue::Number(_))
    ) || (kind != PeripheralKind::Gpio
        && matches!(value, AppManifestValue::Text(_)));
    if !form_matches {
        sink.push(
            &path,
            IssueCode::WrongPeripheralType,
            format!(
                "{label} resolves to {value}, which is not a {} value",
                kind.json_key()
            ),
        );
        return;
    }
    if let Some(first) = claims
        .iter()
        .find(|claim| claim.kind == kind && claim.value == value)
    {
        sink.push(
            &path,
            IssueCode::Duplicate,
            format!(
                "{label} resolves to {} {value}, which {} already requests",
                kind.json_key(),
                first.describe()
            ),
        );
        return;
    }
    claims.push(Claim {
        kind,
        value,
        path,
        label,
        pin_block,
    });
}

/// Two claims of different capabilities that share a resource (pin block or identifier) cannot
/// both be granted: the hardware block serves one function at a time.
fn check_conflicts(claims: &[Claim], hardware: Option<&HardwareDefinition>, sink: &mut IssueSink) {
    let mut holders: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut reported: BTreeSet<(usize, usize)> = BTreeSet::new();
    let board = hardware
        .map(|hardware| format!(" on {}", board_label(hardware)))
        .unwrap_or_default();
    for (index, claim) in claims.iter().enumerate() {
        for resource in claim.shared_resources() {
            let earlier = holders.entry(resource.clone()).or_default();
            for &other_index in earlier.iter() {
                let Some(other) = claims.get(other_index) else {
                    continue;
                };
                if other.kind != claim.kind && reported.insert((other_index, index)) {
                    sink.push(
                        &claim.path,
                        IssueCode::PinBlockConflict,
                        format!("{} and {} both need pin block {resource}{board}; a pin block serves one function at a time", claim.describe(), other.describe()),
                    );
                }
            }
            earlier.push(index);
        }
    }
}
