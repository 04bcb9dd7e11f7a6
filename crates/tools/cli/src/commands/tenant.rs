//! `ferro tenant ...` and `ferro role ...`.

use crate::cli::{RoleCommand, TenantCommand};
use crate::output::{OutputFormat, Render, emit, new_table, property_table};
use crate::session::{Session, resolve_tenant};
use anyhow::{Context, Result, anyhow, bail};
use ferro_client::{Client, ClientError, all_pages, page};
use ferro_wire::{
    AcceptInvitationRequest, CreateInvitationRequest, CreateTenantRequest, CreatedInvitation,
    Invitation, Role, RoleAssignment, Tenant, TenantId, TenantRole, UpdateRoleRequest,
    UpdateTenantRequest,
};

impl Render for Tenant {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("Tenant ID", self.id.to_string()),
            ("Name", self.name.clone()),
            ("Your role", self.role.to_string()),
            ("Created", crate::output::timestamp(self.created_at)),
        ])
    }
}

impl Render for Vec<Tenant> {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec!["ID", "Name", "Your role"]);
        for tenant in self {
            table.add_row(vec![
                tenant.id.to_string(),
                tenant.name.clone(),
                tenant.role.to_string(),
            ]);
        }
        table
    }
}

impl Render for RoleAssignment {
    fn table(&self) -> comfy_table::Table {
        property_table([
            ("User ID", self.user_id.to_string()),
            ("Login", self.login.clone()),
            ("Display name", self.display_name.clone()),
            ("Role", self.role.to_string()),
        ])
    }
}

impl Render for Vec<RoleAssignment> {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec!["Login", "Display name", "Role"]);
        for role in self {
            table.add_row(vec![
                role.login.clone(),
                role.display_name.clone(),
                role.role.to_string(),
            ]);
        }
        table
    }
}

pub fn tenant(command: TenantCommand, output: OutputFormat) -> Result<()> {
    let mut session = Session::require()?;
    let client = session.client()?;
    match command {
        TenantCommand::Create { name } => {
            let tenant = client.create_tenant(&CreateTenantRequest { name })?;
            if session.selected_tenant.is_none() && !session.from_env {
                session.selected_tenant = Some(tenant.id);
                session.save()?;
                eprintln!("Selected tenant {} ({}).", tenant.name, tenant.id);
            }
            emit(output, &tenant)
        }
        TenantCommand::List => emit(output, &all_pages(|c| client.list_tenants(&page(c)))?),
        TenantCommand::Select { tenant } => {
            let id = resolve_tenant(&client, &tenant)?;
            let found = client
                .get_tenant(id)
                .with_context(|| format!("cannot select the tenant {tenant:?}"))?;
            session.selected_tenant = Some(found.id);
            session.save()?;
            emit(output, &found)
        }
        TenantCommand::ShowSelected => {
            let id = session
                .selected_tenant
                .context("no tenant selected: run `ferro tenant select --tenant NAME`")?;
            let found = client.get_tenant(id)?;
            emit(output, &found)
        }
        TenantCommand::DownloadErrorReport {
            destination,
            tenant,
        } => super::devices::download_error_report(&destination, tenant.tenant.as_deref()),
        TenantCommand::Update { tenant, new_name } => {
            let id = session.tenant(&client, tenant.tenant.as_deref())?;
            let updated = client.update_tenant(
                id,
                &UpdateTenantRequest {
                    name: Some(new_name),
                },
            )?;
            emit(output, &updated)
        }
    }
}

fn parse_role(text: &str) -> Result<Role> {
    text.parse()
        .map_err(|_| anyhow!("--role {text:?}: use Administrator, Contributor or Reader"))
}

/// Every role assignment of the tenant.
fn roles(client: &Client, tenant: TenantId) -> Result<Vec<RoleAssignment>> {
    Ok(all_pages(|c| client.list_roles(tenant, &page(c)))?)
}

fn find_role(roles: &[RoleAssignment], login: &str) -> Result<RoleAssignment> {
    roles
        .iter()
        .find(|r| r.login == login)
        .cloned()
        .ok_or_else(|| {
            anyhow!("{login} holds no role in this tenant: `ferro role list` shows who does")
        })
}

pub fn role(command: RoleCommand, output: OutputFormat) -> Result<()> {
    let session = Session::require()?;
    let client = session.client()?;
    match command {
        RoleCommand::Add {
            user,
            role,
            expires_in_days,
            tenant,
        } => {
            let id = session.tenant(&client, tenant.tenant.as_deref())?;
            let created = client.create_invitation(
                id,
                &CreateInvitationRequest {
                    role: parse_role(&role)?,
                    login: Some(user),
                    expires_in_days,
                },
            )?;
            emit(output, &InvitationReport(created))
        }
        RoleCommand::Accept { code } => {
            let joined = client
                .accept_invitation(&AcceptInvitationRequest { code })
                .map_err(|e| match &e {
                    ClientError::Api { code, .. } if code == "not_found" => anyhow!(
                        "no open invitation has this code for your account (wrong, used, revoked \
                         or expired, or for another login): ask the tenant's Administrator for a \
                         new one"
                    ),
                    _ => anyhow::Error::from(e),
                })?;
            let mut session = session;
            if !session.from_env {
                session.selected_tenant = Some(joined.tenant_id);
                session.save()?;
            }
            emit(output, &joined)
        }
        RoleCommand::Update { user, role, tenant } => {
            let id = session.tenant(&client, tenant.tenant.as_deref())?;
            let found = find_role(&roles(&client, id)?, &user)?;
            let updated = client.update_role(
                id,
                found.user_id,
                &UpdateRoleRequest {
                    role: parse_role(&role)?,
                },
            )?;
            emit(output, &updated)
        }
        RoleCommand::ListInvitations { tenant } => {
            let id = session.tenant(&client, tenant.tenant.as_deref())?;
            emit(
                output,
                &all_pages(|c| client.list_invitations(id, &page(c)))?,
            )
        }
        RoleCommand::DeleteInvitation { invitation, tenant } => {
            let id = session.tenant(&client, tenant.tenant.as_deref())?;
            let inv: ferro_wire::InvitationId = invitation.parse().map_err(|_| {
                anyhow!(
                    "--invitation {invitation:?} is not an invitation ID \
                     (`ferro role list-invitations`)"
                )
            })?;
            client.revoke_invitation(id, inv)?;
            eprintln!("Revoked invitation {inv}.");
            Ok(())
        }
        RoleCommand::Delete { user, tenant } => {
            let id = session.tenant(&client, tenant.tenant.as_deref())?;
            let found = find_role(&roles(&client, id)?, &user)?;
            client.delete_role(id, found.user_id)?;
            eprintln!("Removed {user}'s role {} in the tenant.", found.role);
            Ok(())
        }
        RoleCommand::List { tenant } => {
            let id = session.tenant(&client, tenant.tenant.as_deref())?;
            emit(output, &roles(&client, id)?)
        }
        RoleCommand::Show { user, tenant } => {
            let id = session.tenant(&client, tenant.tenant.as_deref())?;
            let roles = roles(&client, id)?;
            if roles.is_empty() {
                bail!("the tenant has no roles visible to you");
            }
            emit(output, &find_role(&roles, &user)?)
        }
    }
}

/// A new invitation with its code, which the service shows only once.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct InvitationReport(CreatedInvitation);

impl Render for InvitationReport {
    fn table(&self) -> comfy_table::Table {
        let i = &self.0.invitation;
        property_table([
            ("Invitation ID", i.id.to_string()),
            ("Role", i.role.to_string()),
            (
                "For",
                i.login
                    .clone()
                    .unwrap_or_else(|| "anyone with the code".into()),
            ),
            ("Expires", crate::output::timestamp(i.expires_at)),
            (
                "Code",
                format!(
                    "{} (shown once: give it to the user by a channel you trust; they run \
                     `ferro role accept --code CODE`)",
                    self.0.code
                ),
            ),
        ])
    }
}

impl Render for Vec<Invitation> {
    fn table(&self) -> comfy_table::Table {
        let mut table = new_table();
        table.set_header(vec!["ID", "Role", "For", "Created", "Expires"]);
        for i in self {
            table.add_row(vec![
                i.id.to_string(),
                i.role.to_string(),
                i.login
                    .clone()
                    .unwrap_or_else(|| "anyone with the code".into()),
                crate::output::timestamp(i.created_at),
                crate::output::timestamp(i.expires_at),
            ]);
        }
        table
    }
}

impl Render for TenantRole {
    fn table(&self) -> comfy_table::Table {
        property_table([
            (
                "Tenant",
                format!("{} ({})", self.tenant_name, self.tenant_id),
            ),
            ("Role", self.role.to_string()),
        ])
    }
}
