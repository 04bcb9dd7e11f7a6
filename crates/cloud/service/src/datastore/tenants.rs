//! Tenants (`tenants`).

use crate::db::Tx;
use crate::error::ApiResult;

/// Whether the tenant `tid` exists, read in the caller's write transaction.
pub async fn exists_in(tx: &mut Tx, tid: &str) -> ApiResult<bool> {
    Ok(sqlx::query("SELECT id FROM tenants WHERE id = $1")
        .bind(tid)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}
