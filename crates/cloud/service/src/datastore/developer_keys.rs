//! Tenants' developer keys (`developer_keys`).

use crate::db::{Arg, Db};
use crate::error::ApiResult;
use ferro_wire::TenantId;

/// The key IDs of up to `limit` of `tenant`'s developer keys, in key ID order.
pub async fn key_ids(db: &Db, tenant: &TenantId, limit: i64) -> ApiResult<Vec<String>> {
    let tid = tenant.to_string();
    let args = [Arg::from(&tid), Arg::from(limit)];
    db.read_all(
        "SELECT key_id FROM developer_keys WHERE tenant_id = $1 ORDER BY key_id LIMIT $2",
        &args,
        |r| r.get::<String>("key_id").map_err(Into::into),
    )
    .await
}
