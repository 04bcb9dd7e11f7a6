//! Claiming devices: claim codes (made, hashed, compared in constant time), what the service
//! holds of registered devices, and storing claimed devices. The claim, assignment and transfer
//! routes (`routes::devices`, `routes::ownership`) share these.

use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult, item};
use ferro_wire::{CLAIM_CODE_BYTES, ErrorCode, format_claim_code};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// A new claim code: its text (shown once) and the hex SHA-256 the service keeps.
pub(crate) struct NewClaimCode {
    pub text: String,
    pub sha256_hex: String,
}

/// 16 bytes from the operating system's CSPRNG.
pub(crate) fn new_claim_code() -> ApiResult<NewClaimCode> {
    let mut bytes = [0u8; CLAIM_CODE_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(format!("random: {e}")))?;
    Ok(NewClaimCode {
        text: format_claim_code(&bytes),
        sha256_hex: hex::encode(Sha256::digest(bytes)),
    })
}

/// Whether `presented` (the SHA-256 of the code a claimer sent) is the stored hash, compared in
/// constant time. A device without a stored hash (unknown, claimed, or registered before claim
/// codes) is compared against a fixed value, so every refusal costs the same.
pub(crate) fn code_matches(stored: Option<&[u8]>, presented: &[u8; 32]) -> bool {
    match stored {
        Some(stored) if stored.len() == 32 => bool::from(stored.ct_eq(presented)),
        _ => {
            let _ = [0u8; 32].ct_eq(presented);
            false
        }
    }
}

/// `invalid_device_id` for entry `index` of a request's list.
pub(crate) fn bad_device_id(index: usize) -> ferro_wire::ErrorItem {
    item(
        index,
        None,
        "invalid_device_id",
        "a device ID is 128 hexadecimal characters",
    )
}

/// What the service holds of each registered device among `ids` (unregistered ones are absent):
/// the hex SHA-256 of its claim code (`None`: used up or never made) and its tenant (`None`:
/// unclaimed).
pub(crate) type Registrations = HashMap<String, (Option<String>, Option<String>)>;

/// [`Registrations`] of `ids`, read in the caller's transaction.
pub(crate) async fn registrations(tx: &mut Tx, ids: &[&str]) -> ApiResult<Registrations> {
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

/// Insert claimed devices for `tid` and use up their claim codes (in the caller's transaction).
pub(crate) async fn insert_devices(
    tx: &mut Tx,
    tid: &str,
    ids: &[String],
    now: i64,
) -> ApiResult<()> {
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
    q.execute(&mut **tx).await.map_err(|e| {
        let e = ApiError::from(e);
        if e.is_unique_violation() {
            ApiError::new(
                ErrorCode::AlreadyClaimed,
                "a device in the request was claimed at the same moment by another request; \
                 retry to see which",
            )
        } else {
            e
        }
    })?;
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
