//! `ferro product ...` and `ferro device-group ...`.

use anyhow::{Result, anyhow, bail};
use ferro_client::Client;
use ferro_wire::{
    CreateDeviceGroupRequest, CreateProductRequest, DeviceGroup, DeviceGroupId, OsFeed, Product,
    ProductId, TenantId, UpdateDeviceGroupRequest, UpdateNowResult, UpdatePolicy,
    UpdateProductRequest,
};

use super::list_all;
use crate::cli::{
    DeviceGroupCommand, DeviceGroupSettings, ProductCommand, ProductDeviceGroupCommand,
};
use crate::output::{OutputFormat, Render, emit, new_table, property_table};
use crate::session::Session;

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

fn products_path(tenant: TenantId) -> String {
    format!("/v1/tenants/{tenant}/products")
}

fn groups_path(tenant: TenantId) -> String {
    format!("/v1/tenants/{tenant}/device-groups")
}

/// A product by ID or by name.
fn resolve_product(client: &Client, tenant: TenantId, wanted: &str) -> Result<ProductId> {
    if let Ok(id) = wanted.parse::<ProductId>() {
        return Ok(id);
    }
    list_all::<Product>(client, &products_path(tenant))?
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
    list_all::<DeviceGroup>(
        client,
        &format!("{}?product={product}", groups_path(tenant)),
    )?
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
            let product: Product = client.post(
                &products_path(tenant),
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
            emit(
                output,
                &list_all::<Product>(&client, &products_path(tenant))?,
            )
        }
        ProductCommand::Show { product, tenant } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            let found: Product = client.get(&format!("{}/{id}", products_path(tenant)))?;
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
            let updated: Product = client.patch(
                &format!("{}/{id}", products_path(tenant)),
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
            client.delete(&format!("{}/{id}", products_path(tenant)))?;
            eprintln!("Deleted product {id}.");
            Ok(())
        }
        ProductCommand::DeviceGroup(ProductDeviceGroupCommand::CreateDefaults {
            product,
            tenant,
        }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            let groups: Vec<DeviceGroup> = client.post(
                &format!(
                    "{}/{id}/device-groups/create-defaults",
                    products_path(tenant)
                ),
                &serde_json::json!({}),
            )?;
            emit(output, &groups)
        }
        ProductCommand::DeviceGroup(ProductDeviceGroupCommand::List { product, tenant }) => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_product(&client, tenant, &product)?;
            emit(
                output,
                &list_all::<DeviceGroup>(
                    &client,
                    &format!("{}?product={id}", groups_path(tenant)),
                )?,
            )
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
            let group: DeviceGroup = client.post(
                &groups_path(tenant),
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
            emit(
                output,
                &list_all::<DeviceGroup>(&client, &groups_path(tenant))?,
            )
        }
        DeviceGroupCommand::Show {
            device_group,
            tenant,
        } => {
            let tenant = session.tenant(&client, tenant.tenant.as_deref())?;
            let id = resolve_group(&client, tenant, &device_group)?;
            let group: DeviceGroup = client.get(&format!("{}/{id}", groups_path(tenant)))?;
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
            let group: DeviceGroup = client.patch(
                &format!("{}/{id}", groups_path(tenant)),
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
            client.delete(&format!("{}/{id}", groups_path(tenant)))?;
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
            let result: UpdateNowResult = client.post(
                &format!("{}/{id}/update-now", groups_path(tenant)),
                &serde_json::json!({}),
            )?;
            emit(output, &result)
        }
    }
}
