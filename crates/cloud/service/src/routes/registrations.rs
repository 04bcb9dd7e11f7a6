//! Manufacturing registrations (`POST /v1/manufacturing/registrations`): the platform
//! operator uploads the devices' signed registration records; each new device gets its claim
//! code.

use crate::auth::Caller;
use crate::claims;
use crate::datastore::devices;
use crate::db;
use crate::error::item;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use base64ct::{Base64, Encoding};
use ferro_pki::VerifiedRegistration;
use ferro_wire::{
    DeviceId, ErrorBody, ErrorCode, ErrorItem, MAX_REGISTRATIONS_PER_REQUEST, ManufacturingState,
    RegisterDevicesRequest, RegisterDevicesResponse, RegisteredDevice, RootOfTrustKind,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Largest body of a registration upload: 1000 records of up to 16 KiB, base64 in JSON.
pub const MAX_REGISTRATION_BODY: usize = 24 * 1024 * 1024;

/// A JSON body of up to [`MAX_REGISTRATION_BODY`] bytes (bulk uploads), otherwise as
/// [`JsonBody`]. Handlers read it only after authentication and authorization (taking the
/// `Request` and calling `from_request` after their role check), so a caller without the role
/// cannot make the service read and parse a large body.
#[derive(Debug)]
pub struct BulkJsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for BulkJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.body_limit.max(MAX_REGISTRATION_BODY);
        crate::extract::read_json_body(req, limit, "; split the upload")
            .await
            .map(BulkJsonBody)
    }
}

fn snake(code: &str) -> String {
    code.replace('-', "_")
}

fn rot_kind(r: ferro_pki::RootOfTrust) -> RootOfTrustKind {
    match r {
        ferro_pki::RootOfTrust::Software => RootOfTrustKind::Software,
        ferro_pki::RootOfTrust::Tpm => RootOfTrustKind::Tpm,
    }
}

fn mfg_state(s: ferro_pki::ManufacturingState) -> ManufacturingState {
    match s {
        ferro_pki::ManufacturingState::Blank => ManufacturingState::Blank,
        ferro_pki::ManufacturingState::Module1Complete => ManufacturingState::Module1Complete,
        ferro_pki::ManufacturingState::DeviceComplete => ManufacturingState::DeviceComplete,
    }
}

struct Checked {
    index: usize,
    device_id: DeviceId,
    record_b64: String,
    sha256: String,
    verified: VerifiedRegistration,
}

/// Decode and verify every record; all failures are collected.
fn verify_all(records: Vec<String>) -> (Vec<Checked>, Vec<ErrorItem>) {
    let mut ok = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (index, b64) in records.into_iter().enumerate() {
        let Ok(bytes) = Base64::decode_vec(b64.trim()) else {
            errors.push(item(
                index,
                None,
                "invalid_base64",
                "not standard base64 (RFC 4648 with padding)",
            ));
            continue;
        };
        match ferro_pki::verify_registration_record(&bytes) {
            // A TPM record without the attestation key (format version 1) verifies, but such a
            // device could never attest (its quotes cannot be told from anyone's): refused here
            // so that the manufacturer learns it now.
            Ok(verified)
                if verified.record().root_of_trust == ferro_pki::RootOfTrust::Tpm
                    && verified.record().tpm_attestation_key.is_none() =>
            {
                errors.push(item(
                    index,
                    Some(verified.device_id().to_string()),
                    "missing_attestation_key",
                    "a TPM registration record must carry the TPM's attestation key (record \
                     format version 2); provision the device with a current ferro-device",
                ));
            }
            Ok(verified) => ok.push(Checked {
                index,
                device_id: verified.device_id(),
                sha256: hex::encode(Sha256::digest(&bytes)),
                record_b64: Base64::encode_string(&bytes),
                verified,
            }),
            Err(e) => errors.push(item(index, None, &snake(e.code()), e.to_string())),
        }
    }
    (ok, errors)
}

/// Upload signed registration records (platform operator): 1 to 1000 per request, all or
/// nothing. Each record must verify (signed by the device key it contains, device ID = SHA-512
/// of that key); repeating a stored record is idempotent; a different record for a stored device
/// ID is refused.
#[utoipa::path(post, path = "/v1/manufacturing/registrations", tag = "manufacturing",
    request_body = RegisterDevicesRequest,
    responses((status = 200, body = RegisterDevicesResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "registration_conflict: another record is stored for a device ID (details list them)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "invalid_registration_record (details list each refused record by index), or invalid_body", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    request: Request<Body>,
) -> ApiResult<Json<RegisterDevicesResponse>> {
    // Authorization before the body: up to 24 MiB of JSON is read and parsed only for a
    // platform operator, never for any other caller.
    caller.require_operator()?;
    let BulkJsonBody(req) =
        BulkJsonBody::<RegisterDevicesRequest>::from_request(request, &state).await?;
    if req.records.is_empty() || req.records.len() > MAX_REGISTRATIONS_PER_REQUEST {
        return Err(ApiError::invalid_body(format!(
            "`records` must hold 1 to {MAX_REGISTRATIONS_PER_REQUEST} registration records; split \
             larger uploads"
        )));
    }
    let (checked, errors) = tokio::task::spawn_blocking(move || verify_all(req.records))
        .await
        .map_err(|e| ApiError::Internal(format!("verify task: {e}")))?;
    if !errors.is_empty() {
        return Err(ApiError::Items {
            code: ErrorCode::InvalidRegistrationRecord,
            message: format!(
                "{} registration records were refused and nothing was stored; fix or remove them \
                 (see `details`) and upload again",
                errors.len()
            ),
            items: errors,
        });
    }
    // The same device twice in one request: identical records collapse, different ones conflict.
    let mut seen: HashMap<&DeviceId, &str> = HashMap::new();
    let mut conflicts = Vec::new();
    for c in &checked {
        match seen.get(&c.device_id) {
            Some(sha) if *sha != c.sha256 => conflicts.push(item(
                c.index,
                Some(c.device_id.to_string()),
                "registration_conflict",
                "another record for this device ID is earlier in the request",
            )),
            _ => {
                seen.insert(&c.device_id, &c.sha256);
            }
        }
    }
    let now = db::now();
    let mut tx = state.db.begin_write().await?;
    let mut registered = 0u32;
    let mut unchanged = 0u32;
    let mut devices = Vec::with_capacity(checked.len());
    let mut new_ids = Vec::new();
    for c in &checked {
        let rec = c.verified.record();
        // Shown once (in this answer, if this request stores the record); only its hash is kept.
        let code = claims::new_claim_code()?;
        let inserted = devices::insert_registration(
            &mut tx,
            &devices::NewRegistration {
                device_id: &c.device_id,
                device_key: Base64::encode_string(&rec.device_key.to_spki_der()),
                root_of_trust: rot_kind(rec.root_of_trust).as_str(),
                ek_certificate: rec.tpm_ek_certificate.as_deref().map(Base64::encode_string),
                manufacturing_state: mfg_state(rec.manufacturing_state).as_str(),
                record: &c.record_b64,
                record_sha256: &c.sha256,
                record_created_at: rec.created_at.unix_timestamp(),
                registered_at: now,
                registered_by: &caller.uid(),
                attestation_key: rec
                    .tpm_attestation_key
                    .as_ref()
                    .map(|k| Base64::encode_string(&k.to_spki_der())),
                claim_code_sha256: &code.sha256_hex,
            },
        )
        .await?;
        let (stored_sha, registered_at) = devices::registration_of(&mut tx, &c.device_id).await?;
        if stored_sha != c.sha256 {
            conflicts.push(item(
                c.index,
                Some(c.device_id.to_string()),
                "registration_conflict",
                "a different registration record is stored for this device ID",
            ));
            continue;
        }
        let mut claim_code = None;
        if inserted {
            registered += 1;
            new_ids.push(c.device_id);
            claim_code = Some(code.text);
        } else if !new_ids.contains(&c.device_id) {
            unchanged += 1;
        }
        devices.push(RegisteredDevice {
            device_id: c.device_id,
            root_of_trust: rot_kind(rec.root_of_trust),
            manufacturing_state: mfg_state(rec.manufacturing_state),
            registered_at: db::ts(registered_at),
            claim_code,
        });
    }
    if !conflicts.is_empty() {
        conflicts.sort_by_key(|i| i.index);
        return Err(ApiError::Items {
            code: ErrorCode::RegistrationConflict,
            message: format!(
                "{} device IDs already have a different registration record and nothing was \
                 stored; a device has exactly one record (see `details`)",
                conflicts.len()
            ),
            items: conflicts,
        });
    }
    db::audit(
        &mut tx,
        None,
        Some(&caller.uid()),
        "manufacturing.register",
        "device_registration",
        &uuid::Uuid::now_v7().to_string(),
        json!({ "registered": registered, "unchanged": unchanged, "deviceIds": new_ids }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(RegisterDevicesResponse {
        registered,
        unchanged,
        devices,
    }))
}
