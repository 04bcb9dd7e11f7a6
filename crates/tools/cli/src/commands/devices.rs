//! `ferro device ...` (update status, targeted images and update-now included), `ferro
//! device-group device list`, `ferro manufacturing register`, `ferro ca-certificate ...` and
//! `ferro tenant download-error-report`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ferro_client::{ClientError, all_pages};

use super::product::resolve_group;
use crate::cli::{
    CaCertificateCommand, CapabilityCommand, CloudDeviceCommand, DeviceCommand, GroupDeviceCommand,
    ManufacturingCommand, TenantArg,
};
use crate::output::{JsonView, OutputFormat, Render, emit, new_table, property_table, timestamp};
use crate::session::Session;
use ferro_wire::{
    CaCertificateStatus, CapabilityType, CertificateFormat, CertificateFormatQuery,
    ClaimDevicesRequest, ClaimDevicesResponse, CreateCapabilityRequest, DeviceClaim,
    DeviceCountQuery, DeviceDeploymentStatus, DeviceId, DeviceQuery, ErrorReportQuery,
    ProofOfPossessionRequest, RegisterDevicesRequest, ReportFormat, RevokedCapabilities,
    TargetedImages, UpdateDeviceRequest, UpdateNowResult,
};

const DEVICE_FIELDS: &[(&str, &str)] = &[
    ("Device ID", "deviceId"),
    ("Device group ID", "deviceGroupId"),
    ("Product ID", "productId"),
    ("Manufacturing state", "manufacturingState"),
    ("Root of trust", "rootOfTrust"),
    ("Claimed", "claimedAt"),
    ("Last attestation", "lastAttestationResult"),
    ("Attested", "lastAttestedAt"),
    ("Reasons", "lastAttestationReasons"),
    ("Firmware (stage 0)", "lastAttestationFirmware"),
    ("Firmware PCRs 0-7", "lastFirmwarePcrs"),
    ("Blocked", "blocked"),
];

const CA_FIELDS: &[(&str, &str)] = &[
    ("Serial", "serial"),
    ("Status", "status"),
    ("Thumbprint (SHA-1)", "sha1Thumbprint"),
    ("Not before", "notBefore"),
    ("Not after", "notAfter"),
];

impl Render for DeviceDeploymentStatus {
    fn table(&self) -> comfy_table::Table {
        let optional = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        property_table([
            ("Device ID", self.device_id.to_string()),
            ("Target set version", optional(self.target_version)),
            (
                "Reported state",
                self.state
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "(never reported)".into()),
            ),
            (
                "Reported for version",
                optional(self.reported_target_version),
            ),
            ("Detail", self.detail.clone().unwrap_or_default()),
            (
                "Deferred until",
                self.deferred_until.map(timestamp).unwrap_or_default(),
            ),
            (
                "Reported",
                self.reported_at.map(timestamp).unwrap_or_default(),
            ),
            (
                "Installed",
                self.installed
                    .iter()
                    .map(|i| format!("{} {} ({})", i.kind, i.version, i.image_id))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ])
    }
}

/// `--output json` gives the whole answer (version, expiry, policy); the table lists the images.
impl Render for TargetedImages {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec![
            "Image ID",
            "Component ID",
            "Type",
            "Version",
            "Security version",
            "Package SHA-256",
            "Size",
        ]);
        for image in &self.images {
            table.add_row(vec![
                image.image_id.to_string(),
                image.component_id.to_string(),
                image.kind.clone(),
                image.version.clone(),
                image.security_version.to_string(),
                image.package_sha256.clone(),
                image.package_size.to_string(),
            ]);
        }
        table
    }
}

impl Render for RevokedCapabilities {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Device", self.device_id.to_string()),
            ("Type", format!("{:?}", self.capability_type)),
            ("Revoked", self.revoked.to_string()),
        ])
    }
}

/// The capability type given as `--type` (azsphere spells them in camel case).
fn capability_kind(given: &str) -> Result<CapabilityType> {
    match given.to_ascii_lowercase().as_str() {
        "appdevelopment" => Ok(CapabilityType::AppDevelopment),
        "fieldservicing" => Ok(CapabilityType::FieldServicing),
        _ => bail!("--type {given:?}: use appDevelopment or fieldServicing"),
    }
}

impl Render for UpdateNowResult {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Signal", self.signal.clone()),
            ("Devices told to check now", self.device_count.to_string()),
        ])
    }
}

/// Writes a downloaded file and says where.
fn write_file(destination: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(destination, bytes)
        .with_context(|| format!("cannot write {}", destination.display()))?;
    eprintln!("Wrote {} ({} bytes).", destination.display(), bytes.len());
    Ok(())
}

/// The non-comment lines of a device file, split at commas or white space.
fn device_file_lines(file: &Path) -> Result<Vec<Vec<String>>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect())
}

/// Device IDs from `--device` and the first field of each line of `--device-file`.
fn device_ids(devices: Vec<String>, file: Option<&Path>) -> Result<Vec<String>> {
    let mut ids = devices;
    if let Some(file) = file {
        ids.extend(
            device_file_lines(file)?
                .into_iter()
                .filter_map(|f| f.into_iter().next()),
        );
    }
    if ids.is_empty() {
        bail!("name the devices with --device ID or --device-file FILE");
    }
    Ok(ids)
}

/// (device ID, claim code) pairs from `--device`/`--claim-code` (in order) and `--device-file`
/// (`DEVICE_ID,CLAIM_CODE` lines).
fn device_claims(
    devices: Vec<String>,
    codes: Vec<String>,
    file: Option<&Path>,
) -> Result<Vec<DeviceClaim>> {
    if devices.len() != codes.len() {
        bail!(
            "give one --claim-code per --device, in the same order ({} devices, {} codes); the \
             seller or manufacturer gives each device's claim code with it",
            devices.len(),
            codes.len()
        );
    }
    let mut claims: Vec<DeviceClaim> = devices
        .into_iter()
        .zip(codes)
        .map(|(device_id, claim_code)| DeviceClaim {
            device_id,
            claim_code,
        })
        .collect();
    if let Some(file) = file {
        for (n, fields) in device_file_lines(file)?.into_iter().enumerate() {
            let [id, code] = fields.as_slice() else {
                bail!(
                    "{} line {}: expected `DEVICE_ID,CLAIM_CODE` (as `ferro manufacturing register \
                     --claim-codes-file` writes it)",
                    file.display(),
                    n + 1
                );
            };
            claims.push(DeviceClaim {
                device_id: id.clone(),
                claim_code: code.clone(),
            });
        }
    }
    if claims.is_empty() {
        bail!(
            "name the devices to claim with --device ID --claim-code CODE, or --device-file FILE"
        );
    }
    Ok(claims)
}

/// Sends `items` in requests of up to 1000 (`send(batch)`), as the service takes them, each all
/// or nothing; a failed batch stops here and says how far the earlier ones got. Returns the
/// summed answers.
pub(super) fn in_batches<T>(
    items: &[T],
    send: impl Fn(&[T]) -> Result<ClaimDevicesResponse, ClientError>,
    verb: &str,
) -> Result<ClaimDevicesResponse> {
    let mut total = ClaimDevicesResponse {
        claimed: 0,
        already_owned: 0,
    };
    for (index, batch) in items.chunks(1000).enumerate() {
        let answer = send(batch).with_context(|| {
            format!(
                "{verb} batch {} of {} failed (earlier batches: {} devices)",
                index + 1,
                items.len().div_ceil(1000),
                total.claimed
            )
        })?;
        total.claimed += answer.claimed;
        total.already_owned += answer.already_owned;
    }
    Ok(total)
}

pub fn device(command: DeviceCommand, output: OutputFormat) -> Result<()> {
    let command = match command {
        // The attached device's commands talk to the device, not (only) the service.
        DeviceCommand::Attached(command) => return super::attached::run(command, output),
        DeviceCommand::Cloud(command) => command,
    };
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        CloudDeviceCommand::Claim {
            device,
            claim_code,
            device_file,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let claims = device_claims(device, claim_code, device_file.as_deref())?;
            let done = in_batches(
                &claims,
                |batch| {
                    client.claim_devices(
                        tenant,
                        &ClaimDevicesRequest {
                            devices: batch.to_vec(),
                        },
                    )
                },
                "claim",
            )?;
            emit(
                output,
                &JsonView::new(
                    &done,
                    &[
                        ("Claimed now", "claimed"),
                        ("Already this tenant's", "alreadyOwned"),
                    ],
                )?,
            )
        }
        CloudDeviceCommand::Transfer(command) => {
            super::ownership::transfer(&session, &client, command, output)
        }
        CloudDeviceCommand::Reassign {
            device,
            to_tenant,
            reason,
        } => super::ownership::reassign(&client, &device, Some(&to_tenant), &reason, output),
        CloudDeviceCommand::Unclaim { device, reason } => {
            super::ownership::reassign(&client, &device, None, &reason, output)
        }
        CloudDeviceCommand::List {
            device_group,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let device_group = device_group
                .map(|group| resolve_group(&client, tenant, &group))
                .transpose()?;
            let devices = all_pages(|continuation| {
                client.list_devices(
                    tenant,
                    &DeviceQuery {
                        device_group,
                        product: None,
                        limit: None,
                        continuation,
                    },
                )
            })?;
            emit(output, &JsonView::new(&devices, DEVICE_FIELDS)?)
        }
        CloudDeviceCommand::Show { device, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let shown = client.get_device(tenant, &device)?;
            emit(output, &JsonView::new(&shown, DEVICE_FIELDS)?)
        }
        CloudDeviceCommand::ShowCount { tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let count = client.count_devices(tenant, &DeviceCountQuery::default())?;
            emit(output, &JsonView::new(&count, &[("Devices", "count")])?)
        }
        CloudDeviceCommand::Update {
            device,
            device_group,
            blocked,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let device_group_id = device_group
                .map(|group| resolve_group(&client, tenant, &group).map(Some))
                .transpose()?;
            let updated = client.update_device(
                tenant,
                &device,
                &UpdateDeviceRequest {
                    device_group_id,
                    blocked,
                },
            )?;
            emit(output, &JsonView::new(&updated, DEVICE_FIELDS)?)
        }
        CloudDeviceCommand::Capability(CapabilityCommand::Download {
            capability_type,
            device,
            destination,
            developer_key,
            tenant,
        }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let answer = client.create_capability(
                tenant,
                &device,
                &capability_request(capability_kind(&capability_type)?, developer_key),
            )?;
            let bytes = base64_decode(&answer.capability_file)?;
            write_file(&destination, &bytes)
        }
        CloudDeviceCommand::Capability(CapabilityCommand::Revoke {
            capability_type,
            device,
            tenant,
        }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let revoked =
                client.revoke_capabilities(tenant, &device, capability_kind(&capability_type)?)?;
            emit(output, &revoked)
        }
        CloudDeviceCommand::ShowDeploymentStatus { device, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let status = client.deployment_status(tenant, &device)?;
            emit(output, &status)
        }
        CloudDeviceCommand::UpdateNow { device, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let result = client.device_update_now(tenant, &device)?;
            emit(output, &result)
        }
    }
}

pub fn group_devices(command: GroupDeviceCommand, output: OutputFormat) -> Result<()> {
    let GroupDeviceCommand::List {
        device_group,
        tenant,
    } = command;
    device(
        DeviceCommand::Cloud(CloudDeviceCommand::List {
            device_group: Some(device_group),
            tenant,
        }),
        output,
    )
}

pub fn manufacturing(command: ManufacturingCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    let (file, claim_codes_file) = match command {
        ManufacturingCommand::Register {
            file,
            claim_codes_file,
        } => (file, claim_codes_file),
        ManufacturingCommand::Assign {
            to_tenant,
            device,
            device_file,
        } => {
            let ids = device_ids(device, device_file.as_deref())?;
            return super::ownership::assign(&client, &to_tenant, ids, output);
        }
    };
    let mut records = Vec::new();
    for path in &file {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        records.push(base64_encode(&bytes));
    }
    let answer = client.register_devices(&RegisterDevicesRequest { records })?;
    let devices = answer.devices;
    if let Some(path) = claim_codes_file {
        let mut text = String::from("# deviceId,claimCode (give each buyer their lines)\n");
        let mut n = 0;
        for d in &devices {
            if let Some(code) = &d.claim_code {
                text.push_str(&format!("{},{code}\n", d.device_id));
                n += 1;
            }
        }
        crate::session::write_private(&path, text.as_bytes())?;
        eprintln!(
            "Wrote {n} claim codes to {} (devices registered earlier keep the code shown then).",
            path.display()
        );
    }
    emit(
        output,
        &JsonView::new(
            &devices,
            &[
                ("Device ID", "deviceId"),
                ("Root of trust", "rootOfTrust"),
                ("Registered", "registeredAt"),
                ("Claim code (shown once)", "claimCode"),
            ],
        )?,
    )
}

pub fn ca_certificate(command: CaCertificateCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        CaCertificateCommand::List { tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let cas = client.list_ca_certificates(tenant)?;
            emit(output, &JsonView::new(&cas, CA_FIELDS)?)
        }
        CaCertificateCommand::Download {
            serial,
            destination,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let serial = match serial {
                Some(serial) => serial,
                None => current_serial(&client, tenant)?,
            };
            let pem = client.ca_certificate(
                tenant,
                &serial,
                &CertificateFormatQuery {
                    format: Some(CertificateFormat::Pem),
                },
            )?;
            write_file(&destination, &pem)
        }
        CaCertificateCommand::DownloadChain {
            destination,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let pem = client.ca_certificate_chain(tenant)?;
            write_file(&destination, &pem)
        }
        CaCertificateCommand::DownloadProof {
            verification_code,
            serial,
            destination,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let serial = match serial {
                Some(serial) => serial,
                None => current_serial(&client, tenant)?,
            };
            let pem = client.ca_certificate_proof(
                tenant,
                &serial,
                &ProofOfPossessionRequest { verification_code },
            )?;
            write_file(&destination, &pem)
        }
    }
}

fn current_serial(client: &ferro_client::Client, tenant: ferro_wire::TenantId) -> Result<String> {
    client
        .list_ca_certificates(tenant)?
        .into_iter()
        .find(|ca| ca.status == CaCertificateStatus::Current)
        .map(|ca| ca.serial)
        .context("the tenant has no current CA certificate: `ferro ca-certificate list` shows them")
}

pub fn download_error_report(destination: &Path, tenant: Option<&str>) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    let tenant = session.tenant(&client, tenant)?;
    let csv = client.error_report(
        tenant,
        &ErrorReportQuery {
            format: Some(ReportFormat::Csv),
        },
    )?;
    write_file(destination, &csv)
}

/// A capability request: of `kind`, for the developer keys given (none: the tenant's).
pub(super) fn capability_request(
    kind: CapabilityType,
    developer_keys: Vec<String>,
) -> CreateCapabilityRequest {
    CreateCapabilityRequest {
        capability_type: kind,
        developer_key_ids: (!developer_keys.is_empty()).then_some(developer_keys),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64ct::{Base64, Encoding};
    Base64::encode_string(bytes)
}

fn base64_decode(text: &str) -> Result<Vec<u8>> {
    use base64ct::{Base64, Encoding};
    Base64::decode_vec(text.trim()).context("the service sent invalid base64")
}

/// `ferro device image list-targeted`.
pub fn list_targeted(device: DeviceId, tenant: TenantArg, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
    let targeted = client.targeted_images(tenant, &device)?;
    if output == OutputFormat::Table {
        eprintln!(
            "Target set version {}, expires {}{}.",
            targeted.target_version,
            timestamp(targeted.expires_at),
            if targeted.manage_apps {
                ""
            } else {
                "; apps are not updated (No3rdPartyAppUpdates or no device group)"
            }
        );
    }
    emit(output, &targeted)
}
