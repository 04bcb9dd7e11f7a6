//! Authorization: the one way to act on a tenant's data.
//!
//! A [`TenantScope`] is the proof that a check ran: its fields are private and it is made only
//! here, by
//! - [`authorize`] (a user's token: the role held in the tenant, narrowed by the token's scope,
//!   at least the role needed; inside the caller's transaction when the caller writes),
//! - [`crate::auth::TenantCaller::authorize`] (the same check on the read path, from the row the
//!   token check already read),
//! - [`device_scope`] (a device authenticated by its certificate acts in its own tenant only),
//! - [`service_scope`] (the service's own background work, such as the rollout ticker; every use
//!   is a line a reviewer can find with `grep service_scope`),
//! - [`attested_scope`] (a device whose key signed fresh attestation evidence, in the tenant
//!   that claimed it).
//!
//! Functions that read or write a tenant's rows (the datastore's tenant-scoped functions, the
//! domain's decisions) take a `&TenantScope`, never a bare tenant ID, so no route can reach them
//! without the check. The role-by-route matrix (`tests/contract.rs`) pins which role each route
//! needs.
//!
//! Must not depend on: `crate::routes` (checked by `tests/layering.rs`).

use crate::auth::Caller;
use crate::device_auth::DeviceIdentity;
use crate::error::{ApiError, ApiResult};
use ferro_wire::{Role, TenantId};

/// Who acts in a [`TenantScope`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A user, by ID (stored form), through a session or an API token.
    User(String),
    /// A device, by ID (128 lowercase hex), through its certificate.
    Device(String),
    /// The service itself (background work started by an earlier authorized request).
    Service,
}

/// Authorized access to one tenant (see the module's documentation: only an authorization check
/// makes one).
#[derive(Clone, Debug)]
pub struct TenantScope {
    tenant: TenantId,
    stored: String,
    role: Option<Role>,
    actor: Actor,
}

impl TenantScope {
    fn new(tenant: TenantId, role: Option<Role>, actor: Actor) -> TenantScope {
        TenantScope {
            stored: tenant.to_string(),
            tenant,
            role,
            actor,
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The tenant ID as stored (hyphenated UUID), for binding in SQL.
    pub fn tenant_str(&self) -> &str {
        &self.stored
    }

    /// The role the check granted (`None` for a device or the service itself).
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// Who acts.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The user to record in the audit log, if a user acts.
    pub fn audit_user(&self) -> Option<&str> {
        match &self.actor {
            Actor::User(u) => Some(u),
            Actor::Device(_) | Actor::Service => None,
        }
    }

    /// A user's scope after their role was checked elsewhere in this module's sense (the
    /// read-path check of [`crate::auth::TenantCaller`]).
    pub(crate) fn checked_user(tenant: TenantId, role: Role, caller: &Caller) -> TenantScope {
        TenantScope::new(tenant, Some(role), Actor::User(caller.uid()))
    }
}

/// The caller's role in `tenant` if it is at least `needed`: 404 without a role (no different
/// from a missing tenant), 403 with a weaker one. Run it inside the write transaction when the
/// caller writes, so that a role revoked concurrently is seen.
pub async fn authorize<'e, E>(
    executor: E,
    caller: &Caller,
    tenant: TenantId,
    needed: Role,
) -> ApiResult<TenantScope>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let stored = tenant.to_string();
    let held = crate::datastore::roles::held_on(executor, &stored, &caller.uid()).await?;
    let role = check(caller.scope.effective_role(&stored, held), needed)?;
    Ok(TenantScope::checked_user(tenant, role, caller))
}

/// The decision of every user check: the effective role (after the token's narrowing) against
/// the role needed.
pub(crate) fn check(effective: Option<Role>, needed: Role) -> ApiResult<Role> {
    let role = effective.ok_or_else(|| ApiError::not_found("tenant"))?;
    if role < needed {
        return Err(ApiError::forbidden(needed.as_str()));
    }
    Ok(role)
}

/// The scope of a device authenticated by its certificate ([`crate::device_auth`]): its own
/// tenant, no role.
pub fn device_scope(device: &DeviceIdentity) -> ApiResult<TenantScope> {
    let tenant: TenantId = device
        .tenant_id
        .parse()
        .map_err(|_| ApiError::Internal("malformed tenant ID of an authenticated device".into()))?;
    Ok(TenantScope::new(
        tenant,
        None,
        Actor::Device(device.device_id.clone()),
    ))
}

/// The scope of the service's own background work on `tenant` (work that an authorized request
/// started earlier, such as a rollout's next wave). Never call it on a request's behalf.
pub fn service_scope(tenant: TenantId) -> TenantScope {
    TenantScope::new(tenant, None, Actor::Service)
}

/// The scope of a device whose own key signed fresh attestation evidence (admitted by
/// `appraisal::admit`): the tenant that claimed it, no role. Only the evidence route makes one
/// (every use is a line a reviewer can find with `grep attested_scope`).
pub fn attested_scope(tenant: TenantId, device: &ferro_wire::DeviceId) -> TenantScope {
    TenantScope::new(tenant, None, Actor::Device(device.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_is_the_role_order() {
        use Role::*;
        // (effective role, needed, Ok(role) or the error code)
        let cases = [
            (None, Reader, Err("not_found")),
            (Some(Reader), Reader, Ok(Reader)),
            (Some(Reader), Contributor, Err("forbidden")),
            (Some(Contributor), Contributor, Ok(Contributor)),
            (Some(Contributor), Administrator, Err("forbidden")),
            (Some(Administrator), Reader, Ok(Administrator)),
            (Some(Administrator), Administrator, Ok(Administrator)),
        ];
        for (effective, needed, want) in cases {
            let got = check(effective, needed).map_err(|e| e.code().as_str().to_string());
            assert_eq!(
                got,
                want.map_err(str::to_string),
                "{effective:?} vs {needed:?}"
            );
        }
    }

    #[test]
    fn a_device_acts_in_its_own_tenant_without_a_role() {
        let tenant = TenantId::new();
        let id = DeviceIdentity {
            device_id: "ab".repeat(64),
            tenant_id: tenant.to_string(),
            not_after: time::OffsetDateTime::UNIX_EPOCH,
        };
        let s = device_scope(&id).unwrap();
        assert_eq!(s.tenant(), tenant);
        assert_eq!(s.tenant_str(), tenant.to_string());
        assert_eq!(s.role(), None);
        assert_eq!(s.audit_user(), None);
        assert_eq!(s.actor(), &Actor::Device("ab".repeat(64)));
        let bad = DeviceIdentity {
            tenant_id: "not-a-uuid".into(),
            ..id
        };
        assert!(device_scope(&bad).is_err());
    }
}
