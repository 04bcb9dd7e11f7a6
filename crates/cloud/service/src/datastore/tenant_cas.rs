//! Tenants' CA generations (`tenant_cas`) and the number that changes with them
//! (`tenants.ca_generation`, which `crate::tenant_ca::CaCache` entries are checked against).
//!
//! These functions take the tenant's ID, not a `TenantScope`: a tenant's CAs are what
//! authentication itself rests on, read before anyone is authorized in the tenant (a device's
//! certificate is verified against the CAs of the tenant it names, to learn who the device is;
//! an attestation reads them for the tenant of the device's row; a new tenant's first CA is
//! stored before any role in it exists). They hold only public certificates.

use crate::datastore::{StoreError, StoreResult};
use crate::db::{Arg, Db, Tx};
use base64ct::{Base64, Encoding};
use ferro_pki::TenantCa;
use ferro_wire::TenantId;
use sqlx::Row;

/// Store a CA generation of `tenant`, raising the tenant's `ca_generation` in the same
/// transaction; false when the tenant does not exist (nothing to raise).
pub async fn insert(tx: &mut Tx, tenant: TenantId, ca: &TenantCa, now: i64) -> StoreResult<bool> {
    let tid = tenant.to_string();
    sqlx::query(
        "INSERT INTO tenant_cas (tenant_id, serial, der, sha1_thumbprint, sha256_thumbprint, \
         not_before, not_after, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8)",
    )
    .bind(&tid)
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
        .bind(&tid)
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

/// `tenant`'s active CA generations, oldest first.
pub async fn active(db: &Db, tenant: TenantId) -> StoreResult<Vec<TenantCa>> {
    active_on(db.pool(), &tenant.to_string()).await
}

/// [`active`], read in the caller's write transaction.
pub async fn active_in(tx: &mut Tx, tenant: TenantId) -> StoreResult<Vec<TenantCa>> {
    active_on(&mut **tx, &tenant.to_string()).await
}

/// `tenant`'s CA generation number; `None` without such a tenant.
pub async fn generation(db: &Db, tenant: TenantId) -> StoreResult<Option<i64>> {
    let tid = tenant.to_string();
    db.read_optional(
        "SELECT ca_generation FROM tenants WHERE id = $1",
        &[Arg::Text(&tid)],
        |r| r.get::<i64>("ca_generation").map_err(StoreError::from),
    )
    .await
}
