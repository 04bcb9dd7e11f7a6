//! `ferro device transfer create|list|accept|cancel`, `ferro device reassign|unclaim` and
//! `ferro manufacturing assign`: who owns a device after the claim
//! (docs/service/README.md, "Claiming and ownership").

use anyhow::{Context, Result};
use ferro_client::Client;
use serde_json::{Value, json};

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
    ("Closed", "closedAt"),
];

pub fn transfer(
    session: &Session,
    client: &Client,
    command: TransferCommand,
    output: OutputFormat,
) -> Result<()> {
    let (value, next): (Value, Option<&str>) = match command {
        TransferCommand::Create {
            device,
            target_tenant,
            tenant,
        } => {
            let tenant = session.tenant(client, tenant.tenant.as_deref())?;
            let target = target_tenant.parse::<ferro_wire::TenantId>().context(
                "--target-tenant must be the receiving tenant's ID (its Administrator sees it \
                 with `ferro tenant show`)",
            )?;
            let created: Value = client.post(
                &format!("/v1/tenants/{tenant}/devices/{device}/transfers"),
                &json!({ "targetTenantId": target }),
            )?;
            (
                created,
                Some(
                    "Offered. An Administrator of the target tenant accepts it with `ferro device \
                     transfer accept --transfer ID`; until then the device stays yours.",
                ),
            )
        }
        TransferCommand::List { tenant } => {
            let tenant = session.tenant(client, tenant.tenant.as_deref())?;
            (
                client.get(&format!("/v1/tenants/{tenant}/device-transfers"))?,
                None,
            )
        }
        TransferCommand::Accept { transfer, tenant } => {
            let tenant = session.tenant(client, tenant.tenant.as_deref())?;
            let done: Value = client.post(
                &format!("/v1/tenants/{tenant}/device-transfers/{transfer}/accept"),
                &json!({}),
            )?;
            (
                done,
                Some(
                    "Accepted: the device is yours, in no device group. It takes your tenant's \
                     certificate and updates at its next attestation; move it into a group with \
                     `ferro device update --device ID --device-group GROUP`.",
                ),
            )
        }
        TransferCommand::Cancel { transfer, tenant } => {
            let tenant = session.tenant(client, tenant.tenant.as_deref())?;
            (
                client.post(
                    &format!("/v1/tenants/{tenant}/device-transfers/{transfer}/cancel"),
                    &json!({}),
                )?,
                None,
            )
        }
    };
    if let (Some(next), OutputFormat::Table) = (next, output) {
        eprintln!("{next}");
    }
    emit(
        output,
        &JsonView {
            value,
            fields: TRANSFER_FIELDS,
        },
    )
}

/// `ferro device reassign` (`to` = a tenant) and `ferro device unclaim` (`to` = `None`).
pub fn reassign(
    client: &Client,
    device: &str,
    to: Option<&str>,
    reason: &str,
    output: OutputFormat,
) -> Result<()> {
    let to = to.map(|t| resolve_tenant(client, t)).transpose()?;
    let answer: Value = client.post(
        &format!("/v1/manufacturing/devices/{device}/reassign"),
        &json!({ "tenantId": to, "reason": reason }),
    )?;
    if answer["claimCode"].is_string() && output == OutputFormat::Table {
        eprintln!(
            "The device is unclaimed; its old claim code no longer works. Give the new one (shown \
             once) to whoever may claim it."
        );
    }
    emit(
        output,
        &JsonView {
            value: answer,
            fields: &[
                ("Device ID", "deviceId"),
                ("From tenant", "fromTenantId"),
                ("To tenant", "toTenantId"),
                ("New claim code (shown once)", "claimCode"),
            ],
        },
    )
}

/// `ferro manufacturing assign`, in requests of up to 1000 devices.
pub fn assign(client: &Client, to: &str, ids: Vec<String>, output: OutputFormat) -> Result<()> {
    let to = resolve_tenant(client, to)?;
    let value = super::devices::post_in_batches(
        client,
        "/v1/manufacturing/assignments",
        &ids,
        |batch| json!({ "tenantId": to, "deviceIds": batch }),
        "assignment",
    )?;
    emit(
        output,
        &JsonView {
            value,
            fields: &[
                ("Assigned now", "claimed"),
                ("Already the tenant's", "alreadyOwned"),
            ],
        },
    )
}
