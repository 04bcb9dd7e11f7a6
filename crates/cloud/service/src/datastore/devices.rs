//! Devices: claimed devices (`devices`), their manufacturing registrations
//! (`device_registrations`) and the capability files issued for them (`device_capabilities`).
//!
//! Reads outside a transaction take the [`Db`] (the point lookup and the page are the hot-path
//! rusqlite reads on SQLite); everything inside a write transaction takes its [`Tx`].

use super::parse_id;
use super::{StoreError, StoreResult};
use crate::authz::TenantScope;
use crate::db::{self, Arg, Db, DbRow, Tx};
use ferro_wire::{CapabilityType, Device, DeviceGroupId, DeviceId, ProductId};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::LazyLock;

const DEVICE_COLUMNS: &str = "d.id, d.tenant_id, d.device_group_id, g.product_id, d.claimed_at, \
    d.last_attested_at, d.last_attestation_result, d.last_attestation_reasons, \
    d.last_attestation_firmware, d.last_firmware_pcrs, d.blocked, \
    r.manufacturing_state, r.root_of_trust";
const DEVICE_FROM: &str = "FROM devices d JOIN device_registrations r ON r.device_id = d.id \
    LEFT JOIN device_groups g ON g.id = d.device_group_id";

/// `SELECT` of one device of a tenant: `$1` tenant ID, `$2` device ID.
static GET_DEVICE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {DEVICE_COLUMNS} {DEVICE_FROM} WHERE d.tenant_id = $1 AND d.id = $2")
});

/// A device from a row of [`DEVICE_COLUMNS`] (either engine).
fn device_from_row(r: &DbRow<'_>) -> StoreResult<Device> {
    let bad = |what: &str| StoreError::Corrupt(format!("unknown {what} in database"));
    Ok(Device {
        device_id: super::parse_device_id(&r.get::<String>("id")?)?,
        tenant_id: parse_id(&r.get::<String>("tenant_id")?)?,
        device_group_id: r
            .get::<Option<String>>("device_group_id")?
            .map(|s| parse_id(&s))
            .transpose()?,
        product_id: r
            .get::<Option<String>>("product_id")?
            .map(|s| parse_id(&s))
            .transpose()?,
        manufacturing_state: r
            .get::<String>("manufacturing_state")?
            .parse()
            .map_err(|_| bad("manufacturing state"))?,
        root_of_trust: r
            .get::<String>("root_of_trust")?
            .parse()
            .map_err(|_| bad("root of trust"))?,
        claimed_at: db::ts(r.get("claimed_at")?),
        last_attested_at: r.get::<Option<i64>>("last_attested_at")?.map(db::ts),
        last_attestation_result: r.get("last_attestation_result")?,
        last_attestation_reasons: r
            .get::<Option<String>>("last_attestation_reasons")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|_| bad("attestation reasons"))?,
        last_attestation_firmware: r
            .get::<Option<String>>("last_attestation_firmware")?
            .map(|s| s.parse())
            .transpose()
            .map_err(|_| bad("firmware appraisal"))?,
        last_firmware_pcrs: r
            .get::<Option<String>>("last_firmware_pcrs")?
            .map(|s| s.split(',').map(str::to_string).collect()),
        blocked: r.get("blocked")?,
    })
}

/// Which of a tenant's devices a list or count covers.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeviceFilter {
    /// Only devices in this device group.
    pub device_group: Option<DeviceGroupId>,
    /// Only devices in a device group of this product.
    pub product: Option<ProductId>,
}

impl DeviceFilter {
    /// The filter as SQL conditions binding from `$first`, and their values in order.
    fn sql(&self, first: usize) -> (String, Vec<String>) {
        let mut sql = String::new();
        let mut binds = Vec::new();
        let mut n = first;
        if let Some(g) = self.device_group {
            sql.push_str(&format!(" AND d.device_group_id = ${n}"));
            binds.push(g.to_string());
            n += 1;
        }
        if let Some(p) = self.product {
            sql.push_str(&format!(" AND g.product_id = ${n}"));
            binds.push(p.to_string());
        }
        (sql, binds)
    }
}

/// One device of `tenant` (a point lookup: the hottest read of the management API).
pub async fn get(db: &Db, scope: &TenantScope, device: &DeviceId) -> StoreResult<Option<Device>> {
    let tid = scope.tenant_str();
    let device = device.to_string();
    let args = [Arg::from(tid), Arg::from(&device)];
    db.read_optional(&GET_DEVICE_SQL, &args, device_from_row)
        .await
}

/// One device of `tenant`, read in the caller's write transaction.
pub async fn get_in(
    tx: &mut Tx,
    scope: &TenantScope,
    device: &DeviceId,
) -> StoreResult<Option<Device>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(GET_DEVICE_SQL.as_str()))
        .bind(scope.tenant_str())
        .bind(device.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| device_from_row(&DbRow::from(&r))).transpose()
}

/// Whether the scope's device `device` is blocked (`None`: the tenant has no such device): the
/// check of every request a device makes with its certificate, one indexed read.
pub async fn blocked(db: &Db, scope: &TenantScope, device: &str) -> StoreResult<Option<bool>> {
    let args = [Arg::from(device), Arg::from(scope.tenant_str())];
    db.read_optional(
        "SELECT blocked FROM devices WHERE id = $1 AND tenant_id = $2",
        &args,
        |r| r.get::<bool>("blocked").map_err(StoreError::from),
    )
    .await
}

/// The tenant (stored ID) that claimed `device`, if one did: what a device certificate's
/// tenant is checked against before the device is known (so not tenant-scoped).
pub async fn claimed_by(db: &Db, device: &str) -> StoreResult<Option<String>> {
    Ok(sqlx::query("SELECT tenant_id FROM devices WHERE id = $1")
        .bind(device)
        .fetch_optional(db.pool())
        .await?
        .map(|r| r.try_get::<String, _>("tenant_id"))
        .transpose()?)
}

/// Up to `limit` devices of `tenant` matching `filter` with IDs after `after`, by device ID (one
/// page: a bounded indexed read).
pub async fn list(
    db: &Db,
    scope: &TenantScope,
    filter: &DeviceFilter,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<Device>> {
    let (extra, binds) = filter.sql(4);
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} {DEVICE_FROM} WHERE d.tenant_id = $1 AND d.id > $2{extra} \
         ORDER BY d.id LIMIT $3"
    );
    let tid = scope.tenant_str();
    let mut args = vec![Arg::from(tid), Arg::from(after), Arg::from(limit)];
    args.extend(binds.iter().map(Arg::from));
    db.read_all(&sql, &args, device_from_row).await
}

/// How many devices of `tenant` match `filter` (not bounded: on sqlx's pool).
pub async fn count(db: &Db, scope: &TenantScope, filter: &DeviceFilter) -> StoreResult<u64> {
    let (extra, binds) = filter.sql(2);
    let sql = format!(
        "SELECT COUNT(*) AS n FROM devices d LEFT JOIN device_groups g ON g.id = d.device_group_id \
         WHERE d.tenant_id = $1{extra}"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(scope.tenant_str());
    for b in &binds {
        query = query.bind(b);
    }
    let n: i64 = query.fetch_one(db.pool()).await?.try_get("n")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Put the device into `group` (`None`: out of any group).
pub async fn set_group(
    tx: &mut Tx,
    scope: &TenantScope,
    device: &DeviceId,
    group: Option<DeviceGroupId>,
) -> StoreResult<()> {
    sqlx::query("UPDATE devices SET device_group_id = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(group.map(|g| g.to_string()))
        .bind(scope.tenant_str())
        .bind(device.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Block or unblock the device.
pub async fn set_blocked(
    tx: &mut Tx,
    scope: &TenantScope,
    device: &DeviceId,
    blocked: bool,
) -> StoreResult<()> {
    sqlx::query("UPDATE devices SET blocked = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(db::b2i(blocked))
        .bind(scope.tenant_str())
        .bind(device.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Record a change to one of the tenant's devices in the tenant's audit log, by the scope's
/// actor (in the transaction that makes the change).
pub async fn audit(
    tx: &mut Tx,
    scope: &TenantScope,
    device: &DeviceId,
    action: &str,
    details: serde_json::Value,
) -> StoreResult<()> {
    db::audit(
        tx,
        Some(scope.tenant_str()),
        scope.audit_user(),
        action,
        "device",
        &device.to_string(),
        details,
    )
    .await?;
    Ok(())
}

/// Mark the device's unrevoked capabilities of `kind` revoked at `now`; how many were.
pub async fn revoke_capabilities(
    tx: &mut Tx,
    scope: &TenantScope,
    device: &DeviceId,
    kind: CapabilityType,
    now: i64,
) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE device_capabilities SET revoked_at = $1 WHERE tenant_id = $2 AND device_id = $3 \
         AND capability_type = $4 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(scope.tenant_str())
    .bind(device.to_string())
    .bind(kind.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// A capability file issued for a device, as recorded (attestation reads which devices hold
/// AppDevelopment; docs/attestation.md).
#[derive(Debug)]
pub struct NewCapability<'a> {
    /// The device.
    pub device: &'a DeviceId,
    /// Its kind.
    pub kind: CapabilityType,
    /// The developer keys it names (AppDevelopment; empty otherwise).
    pub developer_key_ids: &'a [String],
    /// When it was issued (Unix seconds).
    pub issued_at: i64,
    /// Who issued it (user ID).
    pub issued_by: &'a str,
}

/// Record a capability file issued for a device of `tenant`.
pub async fn insert_capability(
    tx: &mut Tx,
    scope: &TenantScope,
    c: &NewCapability<'_>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO device_capabilities (id, tenant_id, device_id, capability_type, \
         developer_key_ids, issued_at, issued_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(scope.tenant_str())
    .bind(c.device.to_string())
    .bind(c.kind.as_str())
    .bind(serde_json::to_string(c.developer_key_ids).unwrap_or_else(|_| "[]".into()))
    .bind(c.issued_at)
    .bind(c.issued_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A manufacturing registration record to store (`device_registrations`), its columns as
/// stored.
#[derive(Debug)]
pub struct NewRegistration<'a> {
    /// Device ID.
    pub device_id: &'a DeviceId,
    /// The device key, base64 DER SubjectPublicKeyInfo.
    pub device_key: String,
    /// Root of trust (wire name).
    pub root_of_trust: &'a str,
    /// TPM endorsement key certificate, base64 DER.
    pub ek_certificate: Option<String>,
    /// Manufacturing state (wire name).
    pub manufacturing_state: &'a str,
    /// The signed record, base64.
    pub record: &'a str,
    /// Hex SHA-256 of the record.
    pub record_sha256: &'a str,
    /// When the record was made (Unix seconds).
    pub record_created_at: i64,
    /// When it is stored (Unix seconds).
    pub registered_at: i64,
    /// Who stored it (user ID).
    pub registered_by: &'a str,
    /// TPM attestation key, base64 DER SubjectPublicKeyInfo.
    pub attestation_key: Option<String>,
    /// Hex SHA-256 of the device's claim code.
    pub claim_code_sha256: &'a str,
}

/// Store a registration unless one is stored for the device already; whether it was stored.
pub async fn insert_registration(tx: &mut Tx, r: &NewRegistration<'_>) -> StoreResult<bool> {
    Ok(sqlx::query(
        "INSERT INTO device_registrations (device_id, device_key, root_of_trust, ek_certificate, \
         manufacturing_state, record, record_sha256, record_created_at, registered_at, registered_by, \
         attestation_key, claim_code_sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (device_id) DO NOTHING",
    )
    .bind(r.device_id.to_string())
    .bind(&r.device_key)
    .bind(r.root_of_trust)
    .bind(r.ek_certificate.as_deref())
    .bind(r.manufacturing_state)
    .bind(r.record)
    .bind(r.record_sha256)
    .bind(r.record_created_at)
    .bind(r.registered_at)
    .bind(r.registered_by)
    .bind(r.attestation_key.as_deref())
    .bind(r.claim_code_sha256)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1)
}

/// The stored registration record of a device: its hex SHA-256 and when it was stored.
pub async fn registration_of(tx: &mut Tx, device: &DeviceId) -> StoreResult<(String, i64)> {
    let row = sqlx::query(
        "SELECT record_sha256, registered_at FROM device_registrations WHERE device_id = $1",
    )
    .bind(device.to_string())
    .fetch_one(&mut **tx)
    .await?;
    Ok((row.try_get("record_sha256")?, row.try_get("registered_at")?))
}

/// What the service holds of each registered device among `ids` (unregistered ones are absent):
/// the hex SHA-256 of its claim code (`None`: used up or never made) and its tenant (`None`:
/// unclaimed).
pub type Registrations = HashMap<String, (Option<String>, Option<String>)>;

/// [`Registrations`] of `ids`, read in the caller's transaction.
pub async fn registrations(tx: &mut Tx, ids: &[&str]) -> StoreResult<Registrations> {
    let sql = format!(
        "SELECT r.device_id, r.claim_code_sha256, d.tenant_id FROM device_registrations r \
         LEFT JOIN devices d ON d.id = r.device_id WHERE r.device_id IN ({})",
        db::placeholders(1, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    let mut known = HashMap::new();
    for r in q.fetch_all(&mut **tx).await? {
        known.insert(
            r.try_get("device_id")?,
            (r.try_get("claim_code_sha256")?, r.try_get("tenant_id")?),
        );
    }
    Ok(known)
}

/// Insert claimed devices of `tid` and use up their claim codes. A device another request
/// claimed meanwhile is a unique violation (the caller's error).
pub async fn insert_claimed(
    tx: &mut Tx,
    tid: &str,
    ids: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    let values = (0..ids.len())
        .map(|i| format!("(${}, $1, NULL, $2)", i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    let sql =
        format!("INSERT INTO devices (id, tenant_id, device_group_id, claimed_at) VALUES {values}");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tid).bind(now);
    for id in ids {
        q = q.bind(id);
    }
    q.execute(&mut **tx).await?;
    let sql = format!(
        "UPDATE device_registrations SET claim_code_sha256 = NULL WHERE device_id IN ({})",
        db::placeholders(1, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}
