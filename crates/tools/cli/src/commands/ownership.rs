//! `ferro device transfer create|list|accept|cancel`, `ferro device reassign|unclaim` and
//! `ferro manufacturing assign`: who owns a device after the claim
//! (docs/service/README.md, "Claiming and ownership").

use anyhow::{Context, Result};
use ferro_client::Client;
use ferro_wire::{
    AssignDevicesRequest, CreateTransferRequest, DeviceId, DeviceTransferId, ReassignDeviceRequest,
};

use crate::cli::TransferCommand;
use crate::output::{JsonView, OutputFormat, emit};
use crate::session::{Session, resolve_tenant};

const TRANSFER_FIELDS: &[(&str, &str)] = &[
    ("Transfer ID", "id"),
    ("Device ID", "deviceId"),
    ("From tenant", "fromTenantId"),
    ("To tenant", "toTenantId"),
    ("State", "state"),
    ("Created", "createdAt"),
    ("Expires", "expiresAt"),
    ("Closed", "closedAt"),
];

pub fn transfer(
    session: &Session,
    client: &Client,
    command: TransferCommand,
    output: OutputFormat,
) -> Result<()> {
    let (view, next) = match command {
        TransferCommand::Create {
            device,
            target_tenant,
            expires_in_days,
            tenant,
        } => {
            let tenant = session.tenant(client, tenant.tenant.as_deref())?;
            let target = target_tenant.parse::<ferro_wire::TenantId>().context(
                "--target-tenant must be the receiving tenant's ID (its Administrator sees it \
                 with `ferro tenant show`)",
            )?;
            let created = client.create_transfer(
                tenant,
                &device,
                &CreateTransferRequest {
                    target_tenant_id: target,
                    expires_in_days,
                },
            )?;
            (
                JsonView::new(&created, TRANSFER_FIELDS)?,
                Some(
                    "Offered. An Administrator of the target tenant accepts it with `ferro device \
                     transfer accept --transfer ID` before it expires; until then the device stays yours.",
                ),
            )
        }
        TransferCommand::List { tenant } => {
            let tenant = session.tenant(client, tenant.tenant.as_deref())?;
            (
                JsonView::new(&client.list_transfers(tenant)?, TRANSFER_FIELDS)?,
                None,
            )
        }
        TransferCommand::Accept { transfer, tenant } => {
            let tenant = session.tenant(client, tenant.tenant.as_deref())?;
            let done = client.accept_transfer(tenant, transfer_id(&transfer)?)?;
            (
                JsonView::new(&done, TRANSFER_FIELDS)?,
                Some(
                    "Accepted: the device is yours, in no device group. It takes your tenant's \
                     certificate and updates at its next attestation; move it into a group with \
                     `ferro device update --device ID --device-group GROUP`.",
                ),
            )
        }
        TransferCommand::Cancel { transfer, tenant } => {
            let tenant = session.tenant(client, tenant.tenant.as_deref())?;
            let cancelled = client.cancel_transfer(tenant, transfer_id(&transfer)?)?;
            (JsonView::new(&cancelled, TRANSFER_FIELDS)?, None)
        }
    };
    if let (Some(next), OutputFormat::Table) = (next, output) {
        eprintln!("{next}");
    }
    emit(output, &view)
}

/// A transfer ID given with `--transfer`.
fn transfer_id(given: &str) -> Result<DeviceTransferId> {
    given.trim().parse().with_context(|| {
        format!(
            "--transfer {given:?} is not a transfer ID (`ferro device transfer list` shows them)"
        )
    })
}

/// `ferro device reassign` (`to` = a tenant) and `ferro device unclaim` (`to` = `None`).
pub fn reassign(
    client: &Client,
    device: &DeviceId,
    to: Option<&str>,
    reason: &str,
    output: OutputFormat,
) -> Result<()> {
    let to = to.map(|t| resolve_tenant(client, t)).transpose()?;
    let answer = client.reassign_device(
        device,
        &ReassignDeviceRequest {
            tenant_id: to,
            reason: reason.to_string(),
        },
    )?;
    if answer.claim_code.is_some() && output == OutputFormat::Table {
        eprintln!(
            "The device is unclaimed; its old claim code no longer works. Give the new one (shown \
             once) to whoever may claim it."
        );
    }
    emit(
        output,
        &JsonView::new(
            &answer,
            &[
                ("Device ID", "deviceId"),
                ("From tenant", "fromTenantId"),
                ("To tenant", "toTenantId"),
                ("New claim code (shown once)", "claimCode"),
            ],
        )?,
    )
}

/// `ferro manufacturing assign`, in requests of up to 1000 devices.
pub fn assign(client: &Client, to: &str, ids: Vec<String>, output: OutputFormat) -> Result<()> {
    let to = resolve_tenant(client, to)?;
    let done = super::devices::in_batches(
        &ids,
        |batch| {
            client.assign_devices(&AssignDevicesRequest {
                tenant_id: to,
                device_ids: batch.to_vec(),
            })
        },
        "assignment",
    )?;
    emit(
        output,
        &JsonView::new(
            &done,
            &[
                ("Assigned now", "claimed"),
                ("Already the tenant's", "alreadyOwned"),
            ],
        )?,
    )
}
