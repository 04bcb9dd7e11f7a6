//! `ferro device ...` (update status, targeted images and update-now included), `ferro
//! device-group device list`, `ferro manufacturing register`, `ferro ca-certificate ...` and
//! `ferro tenant download-error-report`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::list_all;
use super::product::resolve_group;
use crate::cli::{
    CaCertificateCommand, CapabilityCommand, CloudDeviceCommand, DeviceCommand, GroupDeviceCommand,
    ManufacturingCommand, TenantArg,
};
use crate::output::{JsonView, OutputFormat, Render, emit, new_table, property_table, timestamp};
use crate::session::Session;
use ferro_client::Method;
use ferro_wire::{DeviceDeploymentStatus, RevokedCapabilities, TargetedImages, UpdateNowResult};

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
            ("Device ID", self.device_id.clone()),
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
            ("Device", self.device_id.clone()),
            ("Type", format!("{:?}", self.capability_type)),
            ("Revoked", self.revoked.to_string()),
        ])
    }
}

/// The service's name of a capability type given as `--type` (azsphere spells them in camel case).
fn capability_kind(given: &str) -> Result<&'static str> {
    match given.to_ascii_lowercase().as_str() {
        "appdevelopment" => Ok("AppDevelopment"),
        "fieldservicing" => Ok("FieldServicing"),
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
) -> Result<Vec<Value>> {
    if devices.len() != codes.len() {
        bail!(
            "give one --claim-code per --device, in the same order ({} devices, {} codes); the \
             seller or manufacturer gives each device's claim code with it",
            devices.len(),
            codes.len()
        );
    }
    let mut claims: Vec<Value> = devices
        .into_iter()
        .zip(codes)
        .map(|(d, c)| json!({ "deviceId": d, "claimCode": c }))
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
            claims.push(json!({ "deviceId": id, "claimCode": code }));
        }
    }
    if claims.is_empty() {
        bail!(
            "name the devices to claim with --device ID --claim-code CODE, or --device-file FILE"
        );
    }
    Ok(claims)
}

/// POSTs `items` in requests of up to 1000 (`body(batch)`), as the service takes them, each all
/// or nothing; a failed batch stops here and says how far the earlier ones got. Returns the
/// summed `{"claimed", "alreadyOwned"}` of the answers.
pub(super) fn post_in_batches<T>(
    client: &ferro_client::Client,
    path: &str,
    items: &[T],
    body: impl Fn(&[T]) -> Value,
    verb: &str,
) -> Result<Value> {
    let (mut done, mut already_owned) = (0u64, 0u64);
    for (index, batch) in items.chunks(1000).enumerate() {
        let answer: Value = client.post(path, &body(batch)).with_context(|| {
            format!(
                "{verb} batch {} of {} failed (earlier batches: {done} devices)",
                index + 1,
                items.len().div_ceil(1000)
            )
        })?;
        done += answer["claimed"].as_u64().unwrap_or(0);
        already_owned += answer["alreadyOwned"].as_u64().unwrap_or(0);
    }
    Ok(json!({ "claimed": done, "alreadyOwned": already_owned }))
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
            let ids = device_claims(device, claim_code, device_file.as_deref())?;
            let value = post_in_batches(
                &client,
                &format!("/v1/tenants/{tenant}/devices/claim"),
                &ids,
                |batch| json!({ "devices": batch }),
                "claim",
            )?;
            emit(
                output,
                &JsonView {
                    value,
                    fields: &[
                        ("Claimed now", "claimed"),
                        ("Already this tenant's", "alreadyOwned"),
                    ],
                },
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
            let path = match device_group {
                Some(group) => format!(
                    "/v1/tenants/{tenant}/devices?deviceGroup={}",
                    resolve_group(&client, tenant, &group)?
                ),
                None => format!("/v1/tenants/{tenant}/devices"),
            };
            let devices: Vec<Value> = list_all(&client, &path)?;
            emit(
                output,
                &JsonView {
                    value: Value::Array(devices),
                    fields: DEVICE_FIELDS,
                },
            )
        }
        CloudDeviceCommand::Show { device, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let shown: Value = client.get(&format!("/v1/tenants/{tenant}/devices/{device}"))?;
            emit(
                output,
                &JsonView {
                    value: shown,
                    fields: DEVICE_FIELDS,
                },
            )
        }
        CloudDeviceCommand::ShowCount { tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let count: Value = client.get(&format!("/v1/tenants/{tenant}/devices/count"))?;
            emit(
                output,
                &JsonView {
                    value: count,
                    fields: &[("Devices", "count")],
                },
            )
        }
        CloudDeviceCommand::Update {
            device,
            device_group,
            blocked,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let mut body = serde_json::Map::new();
            if let Some(group) = device_group {
                let group = resolve_group(&client, tenant, &group)?;
                body.insert("deviceGroupId".into(), json!(group));
            }
            if let Some(blocked) = blocked {
                body.insert("blocked".into(), json!(blocked));
            }
            let updated: Value = client.patch(
                &format!("/v1/tenants/{tenant}/devices/{device}"),
                &Value::Object(body),
            )?;
            emit(
                output,
                &JsonView {
                    value: updated,
                    fields: DEVICE_FIELDS,
                },
            )
        }
        CloudDeviceCommand::Capability(CapabilityCommand::Download {
            capability_type,
            device,
            destination,
            developer_key,
            tenant,
        }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let kind = capability_kind(&capability_type)?;
            let mut body = json!({ "type": kind });
            if !developer_key.is_empty() {
                body["developerKeyIds"] = json!(developer_key);
            }
            let answer: Value = client.post(
                &format!("/v1/tenants/{tenant}/devices/{device}/capabilities"),
                &body,
            )?;
            let encoded = answer["capabilityFile"]
                .as_str()
                .context("the service's answer holds no capability file")?;
            let bytes = base64_decode(encoded)?;
            write_file(&destination, &bytes)
        }
        CloudDeviceCommand::Capability(CapabilityCommand::Revoke {
            capability_type,
            device,
            tenant,
        }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let kind = capability_kind(&capability_type)?;
            let revoked: RevokedCapabilities = client.send_json(
                Method::DELETE,
                &format!("/v1/tenants/{tenant}/devices/{device}/capabilities/{kind}"),
                &json!({}),
            )?;
            emit(output, &revoked)
        }
        CloudDeviceCommand::ShowDeploymentStatus { device, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let status: DeviceDeploymentStatus = client.get(&format!(
                "/v1/tenants/{tenant}/devices/{device}/deployment-status"
            ))?;
            emit(output, &status)
        }
        CloudDeviceCommand::UpdateNow { device, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let result: UpdateNowResult = client.post(
                &format!("/v1/tenants/{tenant}/devices/{device}/update-now"),
                &json!({}),
            )?;
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
    let answer: Value = client.post(
        "/v1/manufacturing/registrations",
        &json!({ "records": records }),
    )?;
    let devices = answer.get("devices").cloned().unwrap_or(answer);
    if let Some(path) = claim_codes_file {
        let mut text = String::from("# deviceId,claimCode (give each buyer their lines)\n");
        let mut n = 0;
        for d in devices.as_array().into_iter().flatten() {
            if let (Some(id), Some(code)) = (d["deviceId"].as_str(), d["claimCode"].as_str()) {
                text.push_str(&format!("{id},{code}\n"));
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
        &JsonView {
            value: devices,
            fields: &[
                ("Device ID", "deviceId"),
                ("Root of trust", "rootOfTrust"),
                ("Registered", "registeredAt"),
                ("Claim code (shown once)", "claimCode"),
            ],
        },
    )
}

pub fn ca_certificate(command: CaCertificateCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        CaCertificateCommand::List { tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let cas: Value = client.get(&format!("/v1/tenants/{tenant}/ca-certificates"))?;
            emit(
                output,
                &JsonView {
                    value: cas,
                    fields: CA_FIELDS,
                },
            )
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
            let pem = client.get_bytes(&format!(
                "/v1/tenants/{tenant}/ca-certificates/{serial}?format=pem"
            ))?;
            write_file(&destination, &pem)
        }
        CaCertificateCommand::DownloadChain {
            destination,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let pem = client.get_bytes(&format!("/v1/tenants/{tenant}/ca-certificates/chain"))?;
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
            let pem = client.send_json_for_bytes(
                ferro_client::Method::POST,
                &format!("/v1/tenants/{tenant}/ca-certificates/{serial}/proof"),
                &json!({ "verificationCode": verification_code }),
            )?;
            write_file(&destination, &pem)
        }
    }
}

fn current_serial(client: &ferro_client::Client, tenant: ferro_wire::TenantId) -> Result<String> {
    let cas: Vec<Value> = client.get(&format!("/v1/tenants/{tenant}/ca-certificates"))?;
    cas.iter()
        .find(|ca| ca["status"] == "Current")
        .and_then(|ca| ca["serial"].as_str())
        .map(str::to_string)
        .context("the tenant has no current CA certificate: `ferro ca-certificate list` shows them")
}

pub fn download_error_report(destination: &Path, tenant: Option<&str>) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    let tenant = session.tenant(&client, tenant)?;
    let csv = client.get_bytes(&format!("/v1/tenants/{tenant}/error-report?format=csv"))?;
    write_file(destination, &csv)
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
pub fn list_targeted(device: String, tenant: TenantArg, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
    let targeted: TargetedImages = client.get(&format!(
        "/v1/tenants/{tenant}/devices/{device}/targeted-images"
    ))?;
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
