//! Tenants' CA generations (`tenant_cas`) and the number that changes with them
//! (`tenants.ca_generation`, which `crate::tenant_ca::CaCache` entries are checked against).

use crate::authz::TenantScope;
use crate::datastore::{StoreError, StoreResult};
use crate::db::{Arg, Db, Tx};
use base64ct::{Base64, Encoding};
use ferro_pki::TenantCa;
use sqlx::Row;

/// Store a CA generation of the scope's tenant, raising the tenant's `ca_generation` in the
/// same transaction; false when the tenant does not exist (nothing to raise).
pub async fn insert(
    tx: &mut Tx,
    scope: &TenantScope,
    ca: &TenantCa,
    now: i64,
) -> StoreResult<bool> {
    sqlx::query(
        "INSERT INTO tenant_cas (tenant_id, serial, der, sha1_thumbprint, sha256_thumbprint, \
         not_before, not_after, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8)",
    )
    .bind(scope.tenant_str())
    .bind(ca.serial_hex())
    .bind(Base64::encode_string(ca.der()))
    .bind(ca.sha1_thumbprint())
    .bind(ca.sha256_thumbprint())
    .bind(ca.not_before().unix_timestamp())
    .bind(ca.not_after().unix_timestamp())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let bumped = sqlx::query("UPDATE tenants SET ca_generation = ca_generation + 1 WHERE id = $1")
        .bind(scope.tenant_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(bumped == 1)
}

async fn active_on<'e, E>(ex: E, tid: &str) -> StoreResult<Vec<TenantCa>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT der FROM tenant_cas WHERE tenant_id = $1 AND status = 'active' ORDER BY not_before, serial",
    )
    .bind(tid)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            let b64: String = r.try_get("der")?;
            let der = Base64::decode_vec(&b64)
                .map_err(|_| StoreError::Corrupt("malformed CA certificate in database".into()))?;
            TenantCa::from_der(&der)
                .map_err(|e| StoreError::Corrupt(format!("stored tenant CA refused: {e}")))
        })
        .collect()
}

/// The scope's tenant's active CA generations, oldest first.
pub async fn active(db: &Db, scope: &TenantScope) -> StoreResult<Vec<TenantCa>> {
    active_on(db.pool(), scope.tenant_str()).await
}

/// [`active`], read in the caller's write transaction.
pub async fn active_in(tx: &mut Tx, scope: &TenantScope) -> StoreResult<Vec<TenantCa>> {
    active_on(&mut **tx, scope.tenant_str()).await
}

/// The tenant's CA generation number; `None` without such a tenant.
pub async fn generation(db: &Db, scope: &TenantScope) -> StoreResult<Option<i64>> {
    db.read_optional(
        "SELECT ca_generation FROM tenants WHERE id = $1",
        &[Arg::Text(scope.tenant_str())],
        |r| r.get::<i64>("ca_generation").map_err(StoreError::from),
    )
    .await
}
