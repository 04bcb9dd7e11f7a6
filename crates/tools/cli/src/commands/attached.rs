//! `ferro device` commands for the attached device, through its local device API
//! (`ferro_wire::device_api`, a Unix socket in the device's data directory): show-attached,
//! restart, enable-/disable-development, sideload, app, board, image list-installed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64ct::{Base64, Encoding};
use ferro_client::{ClientError, LocalDevice};
use ferro_signing::PublicKey;
use ferro_wire::CapabilityType;
use ferro_wire::device_api as api;

use super::keys;
use crate::cli::{
    AppCommand, AttachedArg, AttachedDeviceCommand, BoardCommand, DeviceImageCommand,
    SideloadCommand,
};
use crate::output::{OutputFormat, Render, emit, new_table, print_line, property_table};
use crate::progress;
use crate::session::Session;

/// The socket of the device whose data directory (or socket) `--device-dir` names.
fn socket(arg: &AttachedArg) -> PathBuf {
    if arg.device_dir.extension().is_some_and(|e| e == "sock") {
        arg.device_dir.clone()
    } else {
        arg.device_dir.join(api::SOCKET_PATH)
    }
}

/// A client of the attached device, with an error that says what to check when it is not there.
fn device(arg: &AttachedArg) -> Result<LocalDevice> {
    let socket = socket(arg);
    if std::fs::symlink_metadata(&socket).is_err() {
        bail!(
            "no device is attached at {}: is `ferro-device run` (or ferro-boot) running with that \
             data directory? (looked for {})",
            arg.device_dir.display(),
            socket.display()
        );
    }
    LocalDevice::connect(&socket).context("cannot reach the attached device")
}

/// A device API error, with what to do for the common ones.
fn explain(error: ClientError) -> anyhow::Error {
    match &error {
        ClientError::Transport { .. } => anyhow::Error::new(error).context(
            "the attached device did not answer: check that it is running (its log shows \
             \"local device API listening\")",
        ),
        _ => anyhow::Error::new(error),
    }
}

fn component(id: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(id.trim())
        .with_context(|| format!("--component-id {id:?} is not a GUID (the app's ComponentId)"))
}

pub fn run(command: AttachedDeviceCommand, output: OutputFormat) -> Result<()> {
    match command {
        AttachedDeviceCommand::ShowAttached { attached } => {
            let shown = device(&attached)?.show().map_err(explain)?;
            emit(output, &shown)
        }
        AttachedDeviceCommand::Restart { attached } => {
            device(&attached)?.restart().map_err(explain)?;
            eprintln!("The device is restarting.");
            Ok(())
        }
        AttachedDeviceCommand::EnableDevelopment {
            attached,
            developer_key,
            tenant,
        } => {
            let dev = device(&attached)?;
            let shown = dev.show().map_err(explain)?;
            let session = Session::require()?;
            let client = session.client()?;
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let answer = client
                .create_capability(
                    tenant,
                    &shown.device_id,
                    &super::devices::capability_request(
                        CapabilityType::AppDevelopment,
                        developer_key,
                    ),
                )
                .context("the service did not issue an appDevelopment capability for the device")?;
            let file = Base64::decode_vec(answer.capability_file.trim())
                .context("the service sent invalid base64")?;
            let mode = dev.apply_capability(file).map_err(explain)?;
            if output == OutputFormat::Table {
                eprintln!(
                    "Device {} is in development mode: it accepts apps signed by the developer keys below.",
                    shown.device_id
                );
            }
            emit(output, &mode)
        }
        AttachedDeviceCommand::DisableDevelopment { attached } => {
            let mode = device(&attached)?.remove_capability().map_err(explain)?;
            emit(output, &mode)
        }
        AttachedDeviceCommand::Sideload(command) => sideload(command, output),
        AttachedDeviceCommand::App(command) => app(command, output),
        AttachedDeviceCommand::Board(command) => board(command, output),
        AttachedDeviceCommand::Image(DeviceImageCommand::ListInstalled { attached }) => {
            let images = device(&attached)?.list_images().map_err(explain)?;
            emit(output, &images)
        }
        AttachedDeviceCommand::Image(DeviceImageCommand::ListTargeted { device, tenant }) => {
            super::devices::list_targeted(device, tenant, output)
        }
    }
}

/// The public key a package must have been signed with: `--public-key`, or the developer's own
/// test-signing key.
fn developer_key(explicit: Option<&Path>) -> Result<PublicKey> {
    match explicit {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the public key {}", path.display()))?;
            PublicKey::from_pem(&pem).with_context(|| {
                format!("{} is not a P-256 public key in SPKI PEM", path.display())
            })
        }
        None => Ok(keys::signing_key(None)?.public_key().clone()),
    }
}

fn sideload(command: SideloadCommand, output: OutputFormat) -> Result<()> {
    match command {
        SideloadCommand::Deploy {
            attached,
            image_package,
            manual_start,
            public_key,
        } => {
            let dev = device(&attached)?;
            let key = developer_key(public_key.as_deref())?;
            let bytes = std::fs::read(&image_package)
                .with_context(|| format!("cannot read {}", image_package.display()))?;
            if bytes.len() > api::MAX_SIDELOAD_BYTES {
                bail!(
                    "{} is larger than the {} bytes a device takes by sideloading",
                    image_package.display(),
                    api::MAX_SIDELOAD_BYTES
                );
            }
            let bar = progress::bytes_bar(bytes.len() as u64, "Sideloading");
            let der_b64 = Base64::encode_string(&key.to_spki_der());
            let result = dev.sideload(bytes, &der_b64, manual_start);
            bar.finish_and_clear();
            let result = result
                .map_err(explain)
                .with_context(|| format!("the device refused {}", image_package.display()))?;
            emit(output, &result)
        }
        SideloadCommand::Delete {
            attached,
            component_id,
        } => {
            let id = component(&component_id)?;
            device(&attached)?.delete_sideloaded(id).map_err(explain)?;
            eprintln!("Removed sideloaded app {id}.");
            Ok(())
        }
    }
}

fn app(command: AppCommand, output: OutputFormat) -> Result<()> {
    match command {
        AppCommand::Start(arg) => {
            let id = component(&arg.component_id)?;
            let status = device(&arg.attached)?.start_app(id).map_err(explain)?;
            emit(output, &status)
        }
        AppCommand::Stop(arg) => {
            let id = component(&arg.component_id)?;
            let status = device(&arg.attached)?.stop_app(id).map_err(explain)?;
            emit(output, &status)
        }
        AppCommand::ShowStatus {
            attached,
            component_id: Some(id),
        } => {
            let id = component(&id)?;
            let status = device(&attached)?.app_status(id).map_err(explain)?;
            emit(output, &status)
        }
        AppCommand::ShowStatus {
            attached,
            component_id: None,
        } => {
            let list = device(&attached)?.list_apps().map_err(explain)?;
            emit(output, &list)
        }
        AppCommand::ShowQuota(arg) => {
            let id = component(&arg.component_id)?;
            let quota = device(&arg.attached)?.app_quota(id).map_err(explain)?;
            emit(output, &quota)
        }
        AppCommand::ShowMemoryStats(arg) => {
            let id = component(&arg.component_id)?;
            let stats = device(&arg.attached)?.app_memory(id).map_err(explain)?;
            emit(output, &stats)
        }
        AppCommand::Logs { app, follow } => {
            let id = component(&app.component_id)?;
            let dev = device(&app.attached)?;
            dev.app_logs(id, follow, |line| {
                match output {
                    OutputFormat::Json => print_line(serde_json::to_string(&line)?),
                    OutputFormat::Table => print_line(format_args!(
                        "{} {:<7} {}",
                        line.at,
                        line.level,
                        line.text.trim_end()
                    )),
                }
                .map(|()| true)
            })
            .map_err(|e| match e.downcast::<ClientError>() {
                Ok(client) => explain(client),
                Err(other) => other,
            })
        }
    }
}

fn board(command: BoardCommand, output: OutputFormat) -> Result<()> {
    match command {
        BoardCommand::Show { attached } => {
            let state = device(&attached)?.board().map_err(explain)?;
            emit(output, &state)
        }
        BoardCommand::PressButton {
            attached,
            button,
            hold_ms,
        } => {
            let dev = device(&attached)?;
            let mut state = dev
                .press_button(&button, &api::ButtonPress { pressed: true })
                .map_err(explain)?;
            if hold_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(hold_ms));
                state = dev
                    .press_button(&button, &api::ButtonPress { pressed: false })
                    .map_err(explain)?;
            }
            emit(output, &state)
        }
        BoardCommand::ReleaseButton { attached, button } => {
            let state = device(&attached)?
                .press_button(&button, &api::ButtonPress { pressed: false })
                .map_err(explain)?;
            emit(output, &state)
        }
        BoardCommand::UartPeer {
            attached,
            uart,
            send,
            wait_ms,
        } => {
            if send.len() > api::MAX_UART_PEER_SEND {
                bail!(
                    "--send holds {} bytes; one exchange sends at most {}",
                    send.len(),
                    api::MAX_UART_PEER_SEND
                );
            }
            if wait_ms > 60_000 {
                bail!("--wait-ms {wait_ms} is longer than a minute");
            }
            let dev = device(&attached)?;
            let mut exchange = dev
                .uart_peer(
                    &uart,
                    &api::UartPeerSend {
                        data: send.into_bytes(),
                    },
                )
                .map_err(explain)?;
            if wait_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(wait_ms));
                let later = dev
                    .uart_peer(&uart, &api::UartPeerSend { data: Vec::new() })
                    .map_err(explain)?;
                exchange.received.extend(later.received);
            }
            emit(output, &exchange)
        }
        BoardCommand::SetTemperature { attached, celsius } => {
            if !celsius.is_finite() || !(-273.0..=1000.0).contains(&celsius) {
                bail!("--celsius {celsius} is not a temperature a sensor reports");
            }
            let state = device(&attached)?
                .set_temperature(&api::TemperatureSetting {
                    millicelsius: (celsius * 1000.0).round() as i32,
                })
                .map_err(explain)?;
            emit(output, &state)
        }
    }
}

impl Render for api::AttachedDevice {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Device ID", self.device_id.to_string()),
            ("Manufacturing state", self.manufacturing_state.clone()),
            ("Root of trust", self.root_of_trust.clone()),
            ("OS version", self.os_version.clone().unwrap_or_default()),
            ("Booted slot", self.booted_slot.clone().unwrap_or_default()),
            (
                "Attestation",
                self.attestation
                    .clone()
                    .unwrap_or_else(|| "(not yet)".into()),
            ),
            ("Reasons", self.attestation_reasons.join(", ")),
            (
                "Certificate expires",
                self.certificate_not_after.clone().unwrap_or_default(),
            ),
            ("Board", self.board.clone().unwrap_or_default()),
            (
                "Development mode",
                if self.development.enabled {
                    "enabled".into()
                } else {
                    "disabled".into()
                },
            ),
            ("Service", self.service_url.clone()),
        ])
    }
}

impl Render for api::DevelopmentMode {
    fn table(&self) -> comfy_table::Table {
        property_table([
            (
                "Development mode",
                if self.enabled { "enabled" } else { "disabled" }.to_string(),
            ),
            ("Developer keys", self.developer_keys.join("\n")),
        ])
    }
}

impl Render for api::InstalledImages {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec![
            "Component ID",
            "Name",
            "Type",
            "Version",
            "Image ID",
            "Source",
            "Verified",
        ]);
        for i in &self.images {
            table.add_row(vec![
                i.component_id.to_string(),
                i.name.clone(),
                i.kind.clone(),
                i.version.clone(),
                i.image_id.to_string(),
                format!("{:?}", i.source),
                if i.verified { "yes" } else { "NO" }.to_string(),
            ]);
        }
        table
    }
}

impl Render for api::SideloadResult {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Component ID", self.component_id.to_string()),
            ("Name", self.name.clone()),
            ("Version", self.version.clone()),
            ("Image ID", self.image_id.to_string()),
            (
                "Started",
                if self.manual_start {
                    "no (manual start)"
                } else {
                    "yes"
                }
                .to_string(),
            ),
            (
                "Replaced",
                self.replaced_image_id
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
            ),
        ])
    }
}

fn status_row(s: &api::AppStatus) -> Vec<String> {
    vec![
        s.component_id.to_string(),
        s.name.clone(),
        format!("{:?}", s.state),
        // A real-time app's core; a high-level app runs on the high-level core.
        s.core.clone().unwrap_or_else(|| "high-level".into()),
        s.restarts.to_string(),
        s.last_exit.clone().unwrap_or_default(),
    ]
}

const STATUS_HEADER: [&str; 6] = [
    "Component ID",
    "Name",
    "State",
    "Core",
    "Restarts",
    "Last exit",
];

impl Render for api::AppStatus {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(STATUS_HEADER.to_vec());
        table.add_row(status_row(self));
        table
    }
}

impl Render for api::AppStatusList {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(STATUS_HEADER.to_vec());
        for s in &self.apps {
            table.add_row(status_row(s));
        }
        table
    }
}

impl Render for api::AppQuota {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Component ID", self.component_id.to_string()),
            ("Used (bytes)", self.used_bytes.to_string()),
            ("Quota (bytes)", self.quota_bytes.to_string()),
        ])
    }
}

impl Render for api::AppMemoryStats {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Component ID", self.component_id.to_string()),
            ("Image (bytes)", self.image_bytes.to_string()),
            ("Current (bytes)", self.current_bytes.to_string()),
            ("Peak (bytes)", self.peak_bytes.to_string()),
            ("Limit (bytes)", self.limit_bytes.to_string()),
        ])
    }
}

impl Render for api::UartPeerExchange {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec!["UART", "Sent", "Received"]);
        table.add_row(vec![
            self.uart.clone(),
            format!("{} bytes", self.accepted),
            String::from_utf8_lossy(&self.received).into_owned(),
        ]);
        table
    }
}

impl Render for api::BoardState {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec!["Part", "GPIO", "Names", "State"]);
        for led in &self.leds {
            table.add_row(vec![
                "LED".to_string(),
                led.pin.to_string(),
                led.names.join(", "),
                if led.active { "on" } else { "off" }.to_string(),
            ]);
        }
        for button in &self.buttons {
            table.add_row(vec![
                "Button".to_string(),
                button.pin.to_string(),
                button.names.join(", "),
                if button.active { "pressed" } else { "released" }.to_string(),
            ]);
        }
        table
    }
}
