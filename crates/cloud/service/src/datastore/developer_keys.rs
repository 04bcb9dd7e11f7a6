//! Tenants' developer keys (`developer_keys`).

use super::StoreResult;
use crate::authz::TenantScope;
use crate::db::{Arg, Db, Tx};
use ferro_wire::RegisteredSigningKey;
use sqlx::Row;

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

/// How many developer keys the tenant has, read in the caller's write transaction.
pub async fn count_in(tx: &mut Tx, scope: &TenantScope) -> StoreResult<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM developer_keys WHERE tenant_id = $1")
            .bind(scope.tenant_str())
            .fetch_one(&mut **tx)
            .await?
            .try_get("n")?,
    )
}

/// Store a developer key of the tenant (a key ID the tenant has already is a unique violation).
pub async fn insert(
    tx: &mut Tx,
    scope: &TenantScope,
    key: &RegisteredSigningKey,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO developer_keys (id, tenant_id, key_id, name, public_key_pem, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(scope.tenant_str())
    .bind(&key.key_id)
    .bind(&key.name)
    .bind(&key.public_key_pem)
    .bind(key.created_by.to_string())
    .bind(key.created_at.unix_timestamp())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Up to `limit` of the tenant's developer keys with row IDs after `after`, in registration
/// order, each with its row ID (the page's continuation).
pub async fn list(
    db: &Db,
    scope: &TenantScope,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<(String, RegisteredSigningKey)>> {
    let rows = sqlx::query(
        "SELECT id, key_id, name, public_key_pem, created_by, created_at FROM developer_keys \
         WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(scope.tenant_str())
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>("id")?,
                super::signing_key_from_row(r, Some(scope.tenant()))?,
            ))
        })
        .collect()
}

/// Remove the tenant's developer key `key_id`; false when it has none with this ID.
pub async fn delete(tx: &mut Tx, scope: &TenantScope, key_id: &str) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM developer_keys WHERE tenant_id = $1 AND key_id = $2")
        .bind(scope.tenant_str())
        .bind(key_id)
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() != 0)
}

/// The PEM public keys of the tenant's developer keys (the keys its uploads may be signed by).
pub async fn public_keys(db: &Db, scope: &TenantScope) -> StoreResult<Vec<String>> {
    let rows = sqlx::query("SELECT public_key_pem FROM developer_keys WHERE tenant_id = $1")
        .bind(scope.tenant_str())
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("public_key_pem")?))
        .collect()
}
