//! Device groups (`device_groups`).

use crate::db::Tx;
use crate::error::ApiResult;
use ferro_wire::{DeviceGroupId, TenantId};

/// Whether `group` is a device group of `tenant`, read in the caller's write transaction.
pub async fn exists_in(tx: &mut Tx, tenant: &TenantId, group: DeviceGroupId) -> ApiResult<bool> {
    Ok(
        sqlx::query("SELECT id FROM device_groups WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(group.to_string())
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}
