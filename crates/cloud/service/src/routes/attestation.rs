//! `/v1/attestation/...`: challenges and evidence (docs/attestation.md). Unauthenticated at the
//! HTTP layer: the device proves itself by the evidence signature with its registered key. The
//! decisions are `crate::appraisal`'s; this module reads what they need, issues the certificate
//! and maps the verdict to the wire.

use crate::appraisal::{self, Admission, Facts, FirmwareFacts, Verdict};
use crate::authz::{self, TenantScope};
use crate::datastore::attestation::{self as store, ClaimedDevice, Recorded};
use crate::datastore::firmware_references;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::rate_limit::AttestationAllowance;
use crate::state::AppState;
use crate::tenant_ca::cas_rotated_by;
use axum::Json;
use axum::extract::State;
use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use ferro_trust::evidence::VerifiedEvidence;
use ferro_wire::{
    ATTESTATION_NONCE_LEN, AttestationChallenge, AttestationChallengeRequest,
    AttestationEvidenceRequest, AttestationReason, AttestationResult, AttestationVerdict, DeviceId,
    ErrorBody,
};
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

fn now_us() -> u64 {
    let t = OffsetDateTime::now_utc();
    u64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(0)
}

/// Ask for a challenge (no authentication). Every well-formed device ID gets a nonce, registered
/// or not, so this route tells nobody which devices exist. Nothing is stored: the nonce carries
/// its device and issue time under the service's nonce key (`crate::nonce`), so asking for
/// challenges costs the service no state however often anyone asks.
#[utoipa::path(post, path = "/v1/attestation/challenge", tag = "attestation",
    request_body = AttestationChallengeRequest,
    responses((status = 200, body = AttestationChallenge),
        (status = 422, description = "invalid_body: malformed device ID", body = ErrorBody),
        (status = 429, description = "rate_limited: too many attestation requests from this client address; `Retry-After` says when to try again", body = ErrorBody)))]
pub async fn challenge(
    State(state): State<AppState>,
    _: AttestationAllowance,
    JsonBody(req): JsonBody<AttestationChallengeRequest>,
) -> ApiResult<Json<AttestationChallenge>> {
    let did = req.device_id.to_string();
    let issued = now_us();
    let nonce = state
        .platform
        .nonce_key
        .issue(&did, issued)
        .map_err(|e| ApiError::Internal(format!("random: {e}")))?;
    let expires_us = issued.saturating_add(
        u64::try_from(state.config.attestation_nonce_ttl.as_micros()).unwrap_or(60_000_000),
    );
    let expires_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(expires_us) * 1_000)
        .map_err(|_| ApiError::Internal("expiry out of range".into()))?;
    Ok(Json(AttestationChallenge {
        nonce: Base64UrlUnpadded::encode_string(&nonce),
        expires_at,
    }))
}

fn untrusted(reasons: Vec<AttestationReason>) -> AttestationResult {
    AttestationResult {
        verdict: AttestationVerdict::Untrusted,
        reasons,
        certificate_pem: None,
        ca_chain_pem: None,
        service_time: OffsetDateTime::now_utc(),
        not_after: None,
        target_set: None,
    }
}

/// Device certificates issued by this process.
static ISSUED: AtomicU64 = AtomicU64::new(0);

/// Verify our own signature on the first device certificate and then on one in
/// [`FULL_SELF_CHECK_EVERY`]; the others get the structural check only (docs/attestation.md,
/// "Certificate self-check"): every relying party verifies the signature anyway, the CA key of
/// the signer is checked against the CA certificate before signing, and the random serial makes
/// every signed TBSCertificate unique. The sample still catches a systematically faulty signer.
const FULL_SELF_CHECK_EVERY: u64 = 64;

fn cert_self_check() -> ferro_pki::SelfCheck {
    if ISSUED
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(FULL_SELF_CHECK_EVERY)
    {
        ferro_pki::SelfCheck::Full
    } else {
        ferro_pki::SelfCheck::Structure
    }
}

/// Submit evidence for a challenge (no authentication). The answer is 200 with the verdict for
/// every well-formed request: `Trusted` with a 24-hour device certificate of the device's own
/// tenant, or `Untrusted` with the reasons. The nonce is consumed in the same transaction that
/// records the result; results are recorded on the device only for evidence its key signed over
/// a fresh nonce (so nobody else can overwrite a device's status).
#[utoipa::path(post, path = "/v1/attestation/evidence", tag = "attestation",
    request_body = AttestationEvidenceRequest,
    responses((status = 200, body = AttestationResult),
        (status = 422, description = "invalid_body: malformed device ID, nonce or evidence encoding", body = ErrorBody),
        (status = 429, description = "rate_limited: too many attestation requests from this client address; `Retry-After` says when to try again", body = ErrorBody)))]
pub async fn evidence(
    State(state): State<AppState>,
    _: AttestationAllowance,
    JsonBody(req): JsonBody<AttestationEvidenceRequest>,
) -> ApiResult<Json<AttestationResult>> {
    let device = req.device_id;
    let nonce = Base64UrlUnpadded::decode_vec(&req.nonce)
        .ok()
        .filter(|n| n.len() == ATTESTATION_NONCE_LEN)
        .ok_or_else(|| {
            ApiError::invalid_body("`nonce` must be the challenge's nonce, unchanged (base64url)")
        })?;
    let evidence = Base64::decode_vec(req.evidence.trim()).map_err(|_| {
        ApiError::invalid_body("`evidence` must be standard base64 (RFC 4648 with padding)")
    })?;
    // Ours, for this device, fresh: checked before any database read or cryptography.
    let issued = match state.platform.nonce_key.open(
        &nonce,
        &device.to_string(),
        now_us(),
        state.config.attestation_nonce_ttl,
    ) {
        Ok(issued) => issued,
        Err(e) => return Ok(Json(untrusted(vec![appraisal::nonce_reason(e)]))),
    };
    let row = store::evidence_row_of(&state.db, &device).await?;
    let (claimed, verified) = match appraisal::admit(row.as_ref(), issued, &nonce, &evidence) {
        Admission::Refuse(reasons) => return Ok(Json(untrusted(reasons))),
        Admission::Appraise { device, verified } => (device, verified),
    };
    let scope = authz::attested_scope(claimed.tenant, &device);
    let facts = match &verified {
        Ok(v) => Some(facts(&state, &scope, &device, claimed, v).await?),
        Err(_) => None,
    };
    // What stage 0's appraisal found, recorded with the verdict (`decide` turns its refusal
    // into a reason).
    let (firmware, firmware_pcrs) = match (&verified, &facts) {
        (Ok(v), Some(f)) => (
            Some(appraisal::appraise_firmware(v.firmware_pcrs(), &f.firmware).0),
            v.firmware_pcrs().map(firmware_references::pcrs_text),
        ),
        _ => (None, None),
    };
    let service_time = OffsetDateTime::now_utc();
    let mut serial = None;
    let mut result = match appraisal::decide(&verified, facts.as_ref(), claimed.blocked) {
        Verdict::Untrusted(reasons) => untrusted(reasons),
        Verdict::Trusted => {
            let cas =
                cas_rotated_by(&state, None, scope.tenant_str(), claimed.ca_generation).await?;
            match appraisal::issuing_ca(&cas, service_time) {
                Err(reason) => untrusted(vec![reason]),
                Ok(ca) => {
                    let key = row.as_ref().map(|r| &r.device_key).ok_or_else(|| {
                        ApiError::Internal("admitted evidence without a device row".into())
                    })?;
                    let now_s = service_time.replace_nanosecond(0).unwrap_or(service_time);
                    let cert = ferro_pki::issue_device_certificate_checked(
                        ca,
                        &*state.platform.keys,
                        &device,
                        scope.tenant().0,
                        key,
                        now_s,
                        ferro_pki::DEVICE_CERT_VALIDITY,
                        cert_self_check(),
                    )
                    .map_err(|e| {
                        ApiError::Internal(format!("issuing the device certificate: {e}"))
                    })?;
                    serial = Some(cert.serial_hex());
                    AttestationResult {
                        verdict: AttestationVerdict::Trusted,
                        reasons: Vec::new(),
                        certificate_pem: Some(cert.pem()),
                        ca_chain_pem: Some(ferro_pki::tenant_ca_chain_pem(&cas, service_time)),
                        service_time,
                        not_after: Some(cert.not_after()),
                        target_set: None,
                    }
                }
            }
        }
    };
    let recorded = store::record_verdict(
        &state.db,
        &scope,
        &device,
        &Recorded {
            nonce_issued_us: issued,
            at: service_time,
            verdict: result.verdict,
            reasons: &result.reasons,
            certificate_serial: serial.as_deref(),
            firmware,
            firmware_pcrs: firmware_pcrs.as_deref(),
        },
    )
    .await?;
    if !recorded {
        return Ok(Json(untrusted(vec![appraisal::replayed()])));
    }
    // The target set for every claimed device whose own key signed fresh evidence, trusted or
    // not (docs/design.md §3.4: an untrusted device gets no certificate, so no access to the device
    // routes, but must still learn what to run to heal). Never fails the attestation.
    let target = match row.and_then(|r| r.target) {
        Some(check) => {
            crate::targets::current_target_from(&state, &device.to_string(), check).await
        }
        None => Ok(None),
    };
    match target {
        Ok(Some(target)) => {
            result.target_set = Some(ferro_wire::DeviceTargetSet {
                version: target.version,
                target_set: Base64::encode_string(&target.signed),
                ownership: Base64::encode_string(&target.ownership),
            });
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "no target set for the attestation answer"),
    }
    Ok(Json(result))
}

/// What the appraisal of `verified` evidence needs to know besides the evidence: the measured
/// images the service knows, and whether the device holds AppDevelopment when that matters.
async fn facts(
    state: &AppState,
    scope: &TenantScope,
    device: &DeviceId,
    claimed: &ClaimedDevice,
    verified: &VerifiedEvidence,
) -> ApiResult<Facts> {
    let (os_ids, app_ids) = appraisal::measured_images(verified);
    let os_releases = store::os_releases(&state.db, &os_ids).await?;
    let tenant_images = store::tenant_images(&state.db, scope, &app_ids).await?;
    let app_development = appraisal::needs_app_development(verified, &tenant_images)
        && store::holds_app_development(&state.db, scope, device).await?;
    // Read only when the product has reference values (the device's row counted them).
    let references = match claimed.product {
        Some(product) if claimed.firmware_references > 0 => {
            firmware_references::pcrs_of(&state.db, scope, product).await?
        }
        _ => Vec::new(),
    };
    Ok(appraisal::facts(
        claimed,
        os_releases,
        tenant_images,
        app_development,
        FirmwareFacts {
            references,
            required: state.config.require_firmware_reference_values,
            in_product: claimed.product.is_some(),
        },
    ))
}
