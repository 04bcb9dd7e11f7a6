//! Ownership of devices: the registration row's ownership epoch and claim code as tenants
//! change, moving a device between tenants, and transfer offers (`device_transfers`).

use super::parse_id;
use super::{StoreError, StoreResult};
use crate::authz::TenantScope;
use crate::db::{self, Db, Tx};
use ferro_wire::{DeviceTransfer, DeviceTransferId, TransferState};
use sqlx::Row;

/// Move a claimed device from its tenant to `to` (`None`: unclaimed), in the caller's
/// transaction. What was the old tenant's goes: its device group (so its deployments), its
/// capabilities, its block, its update signals, its cached ownership document and target set
/// inputs (the next answer is signed for the new tenant), and any pending transfer offer
/// (cancelled). The
/// device's target set version is kept (it only grows, also across tenants) and its ownership
/// epoch grows by one, so the device can tell the new owner's documents from replays of the
/// old one's. The device certificate it holds names the old tenant, so the device routes refuse
/// it at once (`device_auth`); it gets the new tenant's certificate at its next attestation.
/// `now` (Unix seconds) is the time of the change (an offer expired by then stays Expired).
pub async fn change_owner(
    tx: &mut Tx,
    device_id: &str,
    to: Option<&str>,
    closed_by: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE device_registrations SET ownership_epoch = ownership_epoch + 1 WHERE device_id = $1",
    )
    .bind(device_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE device_transfers SET state = 'Cancelled', closed_at = $1, closed_by = $2 \
         WHERE device_id = $3 AND state = 'Pending' AND expires_at > $1",
    )
    .bind(now)
    .bind(closed_by)
    .bind(device_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM update_signals WHERE device_id = $1")
        .bind(device_id)
        .execute(&mut **tx)
        .await?;
    // Wakes the device's open update-now long poll, which then refuses the old tenant's
    // certificate (`routes::device_updates::device_update_signal`).
    sqlx::query("DELETE FROM ownership_changes WHERE changed_at < $1")
        .bind(now - 3600)
        .execute(&mut **tx)
        .await?;
    let change = uuid::Uuid::now_v7().to_string();
    sqlx::query("INSERT INTO ownership_changes (id, device_id, changed_at) VALUES ($1, $2, $3)")
        .bind(&change)
        .bind(device_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    // Every replica's long polls hear of it at commit (PostgreSQL), not at their next re-read.
    crate::datastore::update_signals::announce(tx, &change).await?;
    match to {
        Some(to) => {
            sqlx::query(
                "UPDATE device_capabilities SET revoked_at = $1 WHERE device_id = $2 \
                 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(device_id)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE devices SET tenant_id = $1, device_group_id = NULL, claimed_at = $2, \
                 blocked = 0, last_attested_at = NULL, last_attestation_result = NULL, \
                 last_attestation_reasons = NULL, last_attestation_firmware = NULL, \
                 last_firmware_pcrs = NULL, target_inputs = NULL, ownership_doc = NULL, \
                 ownership_inputs = NULL, target_deployment_id = NULL, \
                 target_deployment_version = NULL WHERE id = $3",
            )
            .bind(to)
            .bind(now)
            .bind(device_id)
            .execute(&mut **tx)
            .await?;
        }
        None => {
            // Unclaimed: the device row and what hangs off it go (the old tenant's error report
            // rows for this device too: they reference the row).
            for table in [
                "device_capabilities",
                "device_event_batches",
                "device_events",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE device_id = $1"
                )))
                .bind(device_id)
                .execute(&mut **tx)
                .await?;
            }
            sqlx::query("DELETE FROM devices WHERE id = $1")
                .bind(device_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// The device's tenant (`Some(None)`: registered, unclaimed; `None`: not registered), after
/// taking the registration row's write lock, so that concurrent ownership changes of one device
/// serialise.
pub async fn lock_device(tx: &mut Tx, device_id: &str) -> StoreResult<Option<Option<String>>> {
    let locked = sqlx::query(
        "UPDATE device_registrations SET ownership_epoch = ownership_epoch WHERE device_id = $1",
    )
    .bind(device_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if locked != 1 {
        return Ok(None);
    }
    let row = sqlx::query("SELECT tenant_id FROM devices WHERE id = $1")
        .bind(device_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(Some(match row {
        Some(r) => Some(r.try_get("tenant_id")?),
        None => None,
    }))
}

/// Raise the device's ownership epoch by one.
pub async fn raise_epoch(tx: &mut Tx, device_id: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE device_registrations SET ownership_epoch = ownership_epoch + 1 \
         WHERE device_id = $1",
    )
    .bind(device_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Give the device a new claim code (its hex SHA-256).
pub async fn set_claim_code(tx: &mut Tx, device_id: &str, sha256_hex: &str) -> StoreResult<()> {
    sqlx::query("UPDATE device_registrations SET claim_code_sha256 = $1 WHERE device_id = $2")
        .bind(sha256_hex)
        .bind(device_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A transfer in which `tid` takes part (as sender or receiver), its state as of `now` (Unix
/// seconds: [`transfer_state`]).
pub async fn get_transfer(
    tx: &mut Tx,
    tid: &str,
    id: DeviceTransferId,
    now: i64,
) -> StoreResult<Option<DeviceTransfer>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {TRANSFER_COLUMNS} FROM device_transfers WHERE id = $1 \
         AND (from_tenant_id = $2 OR to_tenant_id = $2)"
    )))
    .bind(id.to_string())
    .bind(tid)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(|r| transfer_from_row(r, now)).transpose()
}

/// Close the transfer `id` as `to_state` at `now` if it is pending and not expired; whether it
/// was.
pub async fn close_transfer(
    tx: &mut Tx,
    id: DeviceTransferId,
    to_state: TransferState,
    actor: &str,
    now: i64,
) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE device_transfers SET state = $1, closed_at = $2, closed_by = $3 \
         WHERE id = $4 AND state = 'Pending' AND expires_at > $2",
    )
    .bind(to_state.as_str())
    .bind(now)
    .bind(actor)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// How many pending transfers the device has at `now` (expired offers do not count).
pub async fn pending_transfers(tx: &mut Tx, device_id: &str, now: i64) -> StoreResult<i64> {
    Ok(sqlx::query(
        "SELECT COUNT(*) AS n FROM device_transfers WHERE device_id = $1 AND state = 'Pending' \
         AND expires_at > $2",
    )
    .bind(device_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?)
}

/// A new transfer offer, pending.
#[derive(Debug)]
pub struct NewTransfer<'a> {
    /// Its ID.
    pub id: DeviceTransferId,
    /// The device offered.
    pub device_id: &'a str,
    /// The sending tenant.
    pub from: &'a str,
    /// The receiving tenant.
    pub to: &'a str,
    /// Who offered it (user ID).
    pub created_by: &'a str,
    /// When (Unix seconds).
    pub created_at: i64,
    /// When it expires unless accepted or cancelled before (Unix seconds).
    pub expires_at: i64,
}

/// Store a pending transfer offer.
pub async fn insert_transfer(tx: &mut Tx, t: &NewTransfer<'_>) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO device_transfers (id, device_id, from_tenant_id, to_tenant_id, state, \
         created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, 'Pending', $5, $6, $7)",
    )
    .bind(t.id.to_string())
    .bind(t.device_id)
    .bind(t.from)
    .bind(t.to)
    .bind(t.created_by)
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The newest 500 transfers `tid` sends or receives, newest first, their states as of `now`.
pub async fn list_transfers(
    db: &Db,
    scope: &TenantScope,
    now: i64,
) -> StoreResult<Vec<DeviceTransfer>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {TRANSFER_COLUMNS} FROM device_transfers WHERE from_tenant_id = $1 \
         UNION SELECT {TRANSFER_COLUMNS} FROM device_transfers WHERE to_tenant_id = $1 \
         ORDER BY id DESC LIMIT 500"
    )))
    .bind(scope.tenant_str())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| transfer_from_row(r, now)).collect()
}

const TRANSFER_COLUMNS: &str = "id, device_id, from_tenant_id, to_tenant_id, state, created_by, created_at, expires_at, \
     closed_at";

/// A transfer's state at `now` (Unix seconds): a stored Pending offer whose expiry has come is
/// Expired (nothing stores that state: it follows from the time).
pub fn transfer_state(stored: TransferState, expires_at: i64, now: i64) -> TransferState {
    if stored == TransferState::Pending && expires_at <= now {
        TransferState::Expired
    } else {
        stored
    }
}

fn transfer_from_row(r: &sqlx::any::AnyRow, now: i64) -> StoreResult<DeviceTransfer> {
    let stored: TransferState = r
        .try_get::<String, _>("state")?
        .parse()
        .map_err(|_| StoreError::Corrupt("unknown transfer state in database".into()))?;
    let expires_at: i64 = r.try_get("expires_at")?;
    Ok(DeviceTransfer {
        id: parse_id(&r.try_get::<String, _>("id")?)?,
        device_id: super::parse_device_id(&r.try_get::<String, _>("device_id")?)?,
        from_tenant_id: parse_id(&r.try_get::<String, _>("from_tenant_id")?)?,
        to_tenant_id: parse_id(&r.try_get::<String, _>("to_tenant_id")?)?,
        state: transfer_state(stored, expires_at, now),
        created_by: parse_id(&r.try_get::<String, _>("created_by")?)?,
        created_at: db::ts(r.try_get("created_at")?),
        expires_at: db::ts(expires_at),
        closed_at: r.try_get::<Option<i64>, _>("closed_at")?.map(db::ts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransferState::{Accepted, Cancelled, Expired, Pending};

    #[test]
    fn a_pending_offer_expires_at_its_expiry_and_a_closed_one_keeps_its_state() {
        for (stored, expires_at, now, want) in [
            (Pending, 100, 99, Pending),
            (Pending, 100, 100, Expired),
            (Pending, 100, 101, Expired),
            (Accepted, 100, 101, Accepted),
            (Cancelled, 100, 101, Cancelled),
            (Accepted, 100, 99, Accepted),
        ] {
            assert_eq!(
                transfer_state(stored, expires_at, now),
                want,
                "{stored:?} {expires_at} {now}"
            );
        }
    }
}
