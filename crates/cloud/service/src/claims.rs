//! Claiming devices: claim codes (made, hashed, compared in constant time) and storing claimed
//! devices. The claim, assignment and transfer routes (`routes::devices`, `routes::ownership`)
//! share these.

use crate::datastore;
use crate::db::Tx;
use crate::error::{ApiError, ApiResult, item};
use ferro_wire::{CLAIM_CODE_BYTES, ErrorCode, format_claim_code};
use sha2::{Digest, Sha256};
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

/// Insert claimed devices for `tid` and use up their claim codes (in the caller's transaction).
/// A device claimed at the same moment by another request is `already_claimed`.
pub(crate) async fn insert_devices(
    tx: &mut Tx,
    tid: &str,
    ids: &[String],
    now: i64,
) -> ApiResult<()> {
    datastore::devices::insert_claimed(tx, tid, ids, now)
        .await
        .map_err(|e| {
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
        })
}
