//! `ferro product ...` and `ferro device-group ...`.

use crate::cli::{
    DeviceGroupCommand, DeviceGroupSettings, ProductCommand, ProductDeviceGroupCommand,
    ProductFirmwareReferenceCommand,
};
use crate::output::{OutputFormat, Render, emit, new_table, property_table};
use crate::session::Session;
use anyhow::{Result, anyhow, bail};
use ferro_client::{Client, all_pages, page};
use ferro_wire::{
    CreateDeviceGroupRequest, CreateFirmwareReferenceRequest, CreateProductRequest, DeviceGroup,
    DeviceGroupId, DeviceGroupQuery, FirmwareReference, OsFeed, Product, ProductId, TenantId,
    UpdateDeviceGroupRequest, UpdatePolicy, UpdateProductRequest,
};

impl Render for Product {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Product ID", self.id.to_string()),
            ("Name", self.name.clone()),
            ("Description", self.description.clone()),
            ("Tenant ID", self.tenant_id.to_string()),
            ("Created", crate::output::timestamp(self.created_at)),
        ])
    }
}

impl Render for Vec<Product> {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec!["ID", "Name", "Description"]);
        for product in self {
            table.add_row(vec![
                product.id.to_string(),
                product.name.clone(),
                product.description.clone(),
            ]);
        }
        table
    }
}

impl Render for FirmwareReference {
    fn table(&self) -> comfy_table::Table {
        let mut rows = vec![
            ("Reference ID", self.id.to_string()),
            ("Product ID", self.product_id.to_string()),
            ("Description", self.description.clone()),
            ("Created", crate::output::timestamp(self.created_at)),
        ];
        for (i, pcr) in self.pcrs.iter().enumerate() {
            rows.push((PCR_LABELS.get(i).copied().unwrap_or("PCR ?"), pcr.clone()));
        }
        property_table(rows)
    }
}

const PCR_LABELS: [&str; 8] = [
    "PCR 0", "PCR 1", "PCR 2", "PCR 3", "PCR 4", "PCR 5", "PCR 6", "PCR 7",
];

impl Render for Vec<FirmwareReference> {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec![
            "ID",
            "Description",
            "PCR 0-7 (first 12 hex digits each)",
        ]);
        for r in self {
            let short: Vec<&str> = r.pcrs.iter().map(|p| p.get(..12).unwrap_or(p)).collect();
            table.add_row(vec![
                r.id.to_string(),
                r.description.clone(),
                short.join(" "),
            ]);
        }
        table
    }
}

/// The PCR values of `--pcrs` (8 comma-separated hex values; the service checks each).
fn parse_pcrs(text: &str) -> Result<Vec<String>> {
    let pcrs: Vec<String> = text.split(',').map(|p| p.trim().to_string()).collect();
    if pcrs.len() != 8 {
        bail!(
            "--pcrs: give 8 SHA-256 values (PCRs 0 to 7 in order) separated by commas, not {}",
            pcrs.len()
        );
    }
    Ok(pcrs)
}

impl Render for DeviceGroup {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Device group ID", self.id.to_string()),
            ("Name", self.name.clone()),
            ("Description", self.description.clone()),
            ("Product ID", self.product_id.to_string()),
            ("OS feed", self.os_feed.as_str().to_string()),
            ("Update policy", self.update_policy.as_str().to_string()),
            (
                "Allow crash dumps collection",
                self.allow_crash_dumps_collection.to_string(),
            ),
        ])
    }
}

impl Render for Vec<DeviceGroup> {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec!["ID", "Name", "Product ID", "OS feed", "Update policy"]);
        for group in self {
            table.add_row(vec![
                group.id.to_string(),
                group.name.clone(),
                group.product_id.to_string(),
                group.os_feed.as_str().to_string(),
                group.update_policy.as_str().to_string(),
            ]);
        }
        table
    }
}

/// Every product of the tenant.
fn products(client: &Client, tenant: TenantId) -> Result<Vec<Product>> {
    Ok(all_pages(|c| client.list_products(tenant, &page(c)))?)
}

/// Every device group of the tenant, or of one of its products.
fn groups(
    client: &Client,
    tenant: TenantId,
    product: Option<ProductId>,
) -> Result<Vec<DeviceGroup>> {
    Ok(all_pages(|continuation| {
        client.list_groups(
            tenant,
            &DeviceGroupQuery {
                product,
                limit: None,
                continuation,
            },
        )
    })?)
}

/// A product by ID or by name.
fn resolve_product(client: &Client, tenant: TenantId, wanted: &str) -> Result<ProductId> {
    if let Ok(id) = wanted.parse::<ProductId>() {
        return Ok(id);
    }
    products(client, tenant)?
        .into_iter()
        .find(|p| p.name == wanted)
        .map(|p| p.id)
        .ok_or_else(|| anyhow!("no product named {wanted:?}: `ferro product list` shows them"))
}

/// A device group by ID or as `PRODUCT/GROUP` (names or IDs).
pub(crate) fn resolve_group(
    client: &Client,
    tenant: TenantId,
    wanted: &str,
) -> Result<DeviceGroupId> {
    if let Ok(id) = wanted.parse::<DeviceGroupId>() {
        return Ok(id);
    }
    let Some((product, group)) = wanted.split_once('/') else {
        bail!(
            "--device-group {wanted:?}: give a device group ID or PRODUCT/GROUP, e.g. \"Coffee Maker/Field Test\""
        );
    };
    let product = resolve_product(client, tenant, product)?;
    groups(client, tenant, Some(product))?
    .into_iter()
    .find(|g| g.name == group)
    .map(|g| g.id)
    .ok_or_else(|| {
        anyhow!("no device group {group:?} in that product: `ferro product device-group list --product ...` shows them")
    })
}

fn parse_feed(text: &str) -> Result<OsFeed> {
    text.parse()
        .map_err(|_| anyhow!("--os-feed {text:?}: use Retail or RetailEval"))
}

fn parse_policy(text: &str) -> Result<UpdatePolicy> {
    text.parse()
        .map_err(|_| anyhow!("--update-policy {text:?}: use UpdateAll or No3rdPartyAppUpdates"))
}

pub fn product(command: ProductCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        ProductCommand::Create {
            name,
            description,
            no_default_device_groups,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let product = client.create_product(
                tenant,
                &CreateProductRequest {
                    name,
                    description,
                    no_default_device_groups,
                },
            )?;
            emit(output, &product)
        }
        ProductCommand::List { tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            emit(output, &products(&client, tenant)?)
        }
        ProductCommand::Show { product, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            let found = client.get_product(tenant, id)?;
            emit(output, &found)
        }
        ProductCommand::Update {
            product,
            new_name,
            new_description,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            let updated = client.update_product(
                tenant,
                id,
                &UpdateProductRequest {
                    name: new_name,
                    description: new_description,
                },
            )?;
            emit(output, &updated)
        }
        ProductCommand::Delete { product, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            client.delete_product(tenant, id)?;
            eprintln!("Deleted product {id}.");
            Ok(())
        }
        ProductCommand::DeviceGroup(ProductDeviceGroupCommand::CreateDefaults {
            product,
            tenant,
        }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            let groups = client.create_default_groups(tenant, id)?;
            emit(output, &groups)
        }
        ProductCommand::DeviceGroup(ProductDeviceGroupCommand::List { product, tenant }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            emit(output, &groups(&client, tenant, Some(id))?)
        }
        ProductCommand::FirmwareReference(ProductFirmwareReferenceCommand::Add {
            product,
            pcrs,
            from_device,
            description,
            tenant,
        }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            let pcrs = match (pcrs, from_device) {
                (Some(text), _) => parse_pcrs(&text)?,
                (None, Some(device)) => client
                    .get_device(tenant, &device)?
                    .last_firmware_pcrs
                    .ok_or_else(|| {
                        anyhow!(
                            "device {device} has reported no firmware PCRs (it has not attested \
                             with a TPM yet, or has a software root of trust)"
                        )
                    })?,
                (None, None) => bail!("give --pcrs or --from-device"),
            };
            let created = client.create_firmware_reference(
                tenant,
                id,
                &CreateFirmwareReferenceRequest { pcrs, description },
            )?;
            emit(output, &created)
        }
        ProductCommand::FirmwareReference(ProductFirmwareReferenceCommand::List {
            product,
            tenant,
        }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            emit(output, &client.list_firmware_references(tenant, id)?)
        }
        ProductCommand::FirmwareReference(ProductFirmwareReferenceCommand::Delete {
            product,
            reference,
            tenant,
        }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            client.delete_firmware_reference(tenant, id, reference)?;
            eprintln!("Deleted firmware reference value {reference}.");
            Ok(())
        }
    }
}

fn settings(
    settings: &DeviceGroupSettings,
) -> Result<(Option<OsFeed>, Option<UpdatePolicy>, Option<bool>)> {
    Ok((
        settings.os_feed.as_deref().map(parse_feed).transpose()?,
        settings
            .update_policy
            .as_deref()
            .map(parse_policy)
            .transpose()?,
        settings.allow_crash_dumps_collection,
    ))
}

pub fn device_group(command: DeviceGroupCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        DeviceGroupCommand::Create {
            product,
            name,
            description,
            settings: group_settings,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let product_id = resolve_product(&client, tenant, &product)?;
            let (os_feed, update_policy, crash_dumps) = settings(&group_settings)?;
            let group = client.create_group(
                tenant,
                &CreateDeviceGroupRequest {
                    product_id,
                    name,
                    description,
                    os_feed,
                    update_policy,
                    allow_crash_dumps_collection: crash_dumps.unwrap_or(false),
                },
            )?;
            emit(output, &group)
        }
        DeviceGroupCommand::List { tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            emit(output, &groups(&client, tenant, None)?)
        }
        DeviceGroupCommand::Show {
            device_group,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_group(&client, tenant, &device_group)?;
            let group = client.get_group(tenant, id)?;
            emit(output, &group)
        }
        DeviceGroupCommand::Update {
            device_group,
            new_name,
            new_description,
            settings: group_settings,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_group(&client, tenant, &device_group)?;
            let (os_feed, update_policy, allow_crash_dumps_collection) = settings(&group_settings)?;
            let group = client.update_group(
                tenant,
                id,
                &UpdateDeviceGroupRequest {
                    name: new_name,
                    description: new_description,
                    os_feed,
                    update_policy,
                    allow_crash_dumps_collection,
                },
            )?;
            emit(output, &group)
        }
        DeviceGroupCommand::Delete {
            device_group,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_group(&client, tenant, &device_group)?;
            client.delete_group(tenant, id)?;
            eprintln!("Deleted device group {id}.");
            Ok(())
        }
        DeviceGroupCommand::Deployment(command) => super::images::deployment(command, output),
        DeviceGroupCommand::Device(command) => super::devices::group_devices(command, output),
        DeviceGroupCommand::UpdateNow {
            device_group,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_group(&client, tenant, &device_group)?;
            let result = client.group_update_now(tenant, id)?;
            emit(output, &result)
        }
    }
}
