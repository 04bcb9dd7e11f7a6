//! A new tenant's keys: its image key, metadata key and first CA, made in the key store before
//! the transaction that creates the tenant (`prepare_tenant`), and recorded in it
//! (`tenant_created`).

use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use ferro_pki::{KeyName, TenantCa};
use ferro_wire::TenantId;

/// A tenant's keys and first CA, made before the transaction that creates the tenant.
#[derive(Debug)]
pub struct PreparedTenant {
    /// The tenant.
    pub tenant: TenantId,
    /// Its first CA.
    pub ca: TenantCa,
}

/// Create the tenant's image key, metadata key and first CA (docs/design.md §2) in the key store,
/// before the database transaction that creates the tenant.
///
/// Keys are named after the tenant's fresh UUIDv7 (`tenants/<uuid>/...`), which no other tenant
/// can ever have. So if the transaction then fails, what is left are orphan keys that no row
/// refers to and no code path can reach (nothing signs with a key of a tenant that does not
/// exist); they are harmless, and an operator may delete `keys/tenants/<uuid>` directories that
/// have no `tenants` row. Creating them outside the transaction keeps file I/O and key
/// generation off SQLite's write lock.
pub async fn prepare_tenant(
    state: &AppState,
    tenant: TenantId,
    name: &str,
) -> ApiResult<PreparedTenant> {
    let keys = state.platform.keys.clone();
    let name = name.to_string();
    let ca = tokio::task::spawn_blocking(move || -> Result<TenantCa, String> {
        let id = tenant.0;
        keys.create(&KeyName::tenant_image(id))
            .map_err(|e| e.to_string())?;
        keys.create(&KeyName::tenant_metadata(id))
            .map_err(|e| e.to_string())?;
        ferro_pki::create_tenant_ca(&*keys, id, &name, time::OffsetDateTime::now_utc())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("tenant key task: {e}")))?
    .map_err(|e| ApiError::Internal(format!("creating tenant keys: {e}")))?;
    Ok(PreparedTenant { tenant, ca })
}

/// Called inside the transaction that creates a tenant, after its row and its first
/// Administrator are written: stores the first CA certificate made by [`prepare_tenant`]. An
/// error rolls the whole creation back.
pub async fn tenant_created(tx: &mut Tx, prepared: &PreparedTenant) -> ApiResult<()> {
    crate::tenant_ca::insert_ca(tx, &prepared.tenant.to_string(), &prepared.ca, db::now()).await
}
