//! Tenants' developer keys (`developer_keys`).

use super::StoreResult;
use crate::authz::TenantScope;
use crate::db::{Arg, Db};

/// The key IDs of up to `limit` of `tenant`'s developer keys, in key ID order.
pub async fn key_ids(db: &Db, scope: &TenantScope, limit: i64) -> StoreResult<Vec<String>> {
    let tid = scope.tenant_str();
    let args = [Arg::from(tid), Arg::from(limit)];
    db.read_all(
        "SELECT key_id FROM developer_keys WHERE tenant_id = $1 ORDER BY key_id LIMIT $2",
        &args,
        |r| r.get::<String>("key_id").map_err(Into::into),
    )
    .await
}
