//! `/v1/attestation/...`: challenges and evidence (docs/attestation.md). Unauthenticated at the
//! HTTP layer: the device proves itself by the evidence signature with its registered key.

use crate::appraisal::{self, Facts, KnownImage, KnownOsRelease, codes, reason};
use crate::db::{self, Arg, WriteStmt, Written};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::nonce::NonceError;
use crate::rate_limit::AttestationAllowance;
use crate::state::AppState;
use crate::tenant_ca::cas_rotated_by;
use axum::Json;
use axum::extract::State;
use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use ferro_signing::PublicKey;
use ferro_trust::MeasurementEvent;
use ferro_trust::evidence::DebugStatus;
use ferro_wire::{
    ATTESTATION_NONCE_LEN, AttestationChallenge, AttestationChallengeRequest,
    AttestationEvidenceRequest, AttestationReason, AttestationResult, AttestationVerdict,
    ErrorBody, OsFeed,
};
use serde_json::json;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;
use uuid::Uuid;

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

/// The reason for a nonce that is not ours, not this device's, or not fresh.
fn nonce_reason(e: NonceError) -> AttestationReason {
    match e {
        NonceError::Unknown => reason(
            codes::NONCE_UNKNOWN,
            "this nonce was not issued for this device; ask for a new challenge",
        ),
        NonceError::Expired => reason(
            codes::NONCE_EXPIRED,
            "this nonce expired; ask for a new challenge and answer it promptly",
        ),
        NonceError::FromTheFuture => reason(
            codes::NONCE_UNKNOWN,
            "this nonce was issued in the future (the service clocks are out of step); ask for \
             a new challenge",
        ),
    }
}

fn replayed() -> AttestationReason {
    reason(
        codes::NONCE_REPLAYED,
        "this nonce was already used, or a newer challenge was answered since; a nonce answers \
         one attestation: ask for a new challenge",
    )
}

/// What the evidence route reads about a device: its registration and, once claimed, its record
/// with what its update target set is computed from (`targets::CheckRow`) and its tenant's CA
/// generation (`tenant_ca::CaCache`), in one read.
const EVIDENCE_SQL: &str = concat!(
    "SELECT r.device_key, r.root_of_trust, r.attestation_key, d.blocked, \
     d.attestation_nonce_floor, t.ca_generation, \
     (SELECT f.minimum_security_version FROM os_feed_policies f \
      WHERE f.feed = COALESCE(g.os_feed, 'Retail')) AS feed_minimum_security_version, ",
    crate::targets::target_check_columns!(),
    " FROM device_registrations r LEFT JOIN devices d ON d.id = r.device_id \
     LEFT JOIN device_groups g ON g.id = d.device_group_id \
     LEFT JOIN tenants t ON t.id = d.tenant_id WHERE r.device_id = $1"
);

struct EvidenceRow {
    /// Base64 DER SubjectPublicKeyInfo.
    device_key: String,
    root_of_trust: String,
    /// Base64 DER SubjectPublicKeyInfo of the TPM attestation key.
    attestation_key: Option<String>,
    /// None while unclaimed.
    tenant_id: Option<String>,
    blocked: bool,
    /// Issue time (Unix microseconds) of the last nonce the device's key answered.
    nonce_floor: Option<i64>,
    /// The tenant's `ca_generation` (None while unclaimed).
    ca_generation: Option<i64>,
    /// The OS feed of the device's group (None: in no group, or unclaimed).
    os_feed: Option<String>,
    /// That feed's minimum security version (None: not set).
    feed_minimum_security_version: Option<i64>,
    /// The target check's columns (None while unclaimed).
    target: Option<crate::targets::CheckRow>,
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

/// What the service knows about measured image IDs: (OS releases, tenant images).
async fn known_images(
    state: &AppState,
    tid: &str,
    measurements: &[MeasurementEvent],
) -> ApiResult<(HashMap<Uuid, KnownOsRelease>, HashMap<Uuid, KnownImage>)> {
    let mut os = HashMap::new();
    let mut tenant = HashMap::new();
    let (os_ids, app_ids): (Vec<_>, Vec<_>) = measurements
        .iter()
        .partition(|m| m.component_id == ferro_image::OS_COMPONENT_ID);
    let uuid = |text: String| {
        Uuid::try_parse(&text).map_err(|_| ApiError::Internal("malformed image ID".into()))
    };
    if !os_ids.is_empty() {
        let sql = format!(
            "SELECT image_id, payload_sha256, security_version, retail_at, revoked_at \
             FROM os_releases WHERE image_id IN ({})",
            placeholders(1, os_ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in &os_ids {
            q = q.bind(m.image_id.to_string());
        }
        for r in q.fetch_all(state.db.pool()).await? {
            os.insert(
                uuid(r.try_get("image_id")?)?,
                KnownOsRelease {
                    payload_sha256: r.try_get("payload_sha256")?,
                    security_version: u32::try_from(r.try_get::<i64, _>("security_version")?)
                        .map_err(|_| ApiError::Internal("security version out of range".into()))?,
                    in_retail: r.try_get::<Option<i64>, _>("retail_at")?.is_some(),
                    revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
                },
            );
        }
    }
    if !app_ids.is_empty() {
        let sql = format!(
            "SELECT image_id, payload_sha256, component_id FROM images WHERE tenant_id = $1 AND \
             image_id IN ({})",
            placeholders(2, app_ids.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tid);
        for m in &app_ids {
            q = q.bind(m.image_id.to_string());
        }
        for r in q.fetch_all(state.db.pool()).await? {
            tenant.insert(
                uuid(r.try_get("image_id")?)?,
                KnownImage {
                    payload_sha256: r.try_get("payload_sha256")?,
                    component_id: uuid(r.try_get("component_id")?)?,
                },
            );
        }
    }
    Ok((os, tenant))
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

fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
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
    let did = req.device_id.to_string();
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
        &did,
        now_us(),
        state.config.attestation_nonce_ttl,
    ) {
        Ok(issued) => issued,
        Err(e) => return Ok(Json(untrusted(vec![nonce_reason(e)]))),
    };
    let issued_db = i64::try_from(issued)
        .map_err(|_| ApiError::Internal("nonce issue time out of range".into()))?;
    let args = [Arg::from(&did)];
    let Some(row) = state
        .db
        .read_optional(EVIDENCE_SQL, &args, |r| {
            Ok::<_, ApiError>(EvidenceRow {
                device_key: r.get("device_key")?,
                root_of_trust: r.get("root_of_trust")?,
                attestation_key: r.get("attestation_key")?,
                tenant_id: r.get("tenant_id")?,
                blocked: r.get::<Option<i64>>("blocked")?.unwrap_or(0) != 0,
                nonce_floor: r.get("attestation_nonce_floor")?,
                ca_generation: r.get("ca_generation")?,
                os_feed: r.get("os_feed")?,
                feed_minimum_security_version: r.get("feed_minimum_security_version")?,
                target: crate::targets::CheckRow::from_optional_row(r)?,
            })
        })
        .await?
    else {
        // Nothing to record a verdict on (and nothing to consume: an unregistered device's
        // nonce gets this same answer however often it is replayed).
        return Ok(Json(untrusted(vec![reason(
            codes::UNREGISTERED,
            "no registration record for this device ID",
        )])));
    };
    // Cheap refusal of an answered nonce (the final UPDATE re-checks atomically).
    if row.nonce_floor.is_some_and(|f| f >= issued_db) {
        return Ok(Json(untrusted(vec![replayed()])));
    }
    let key_b64 = &row.device_key;
    let key = Base64::decode_vec(key_b64)
        .ok()
        .and_then(|der| PublicKey::from_spki_der(&der).ok())
        .ok_or_else(|| ApiError::Internal("malformed device key in database".into()))?;
    // Stage 1: the device key signed these claims over this fresh nonce. A failure here proves
    // nothing about who sent the request, so it is answered but never recorded on the device.
    let authenticated = match ferro_trust::evidence::authenticate_evidence(&evidence, &key, &nonce)
    {
        Ok(a) => a,
        // Not consumed either: only the device key's answer spends its nonce, so a stranger
        // cannot burn a device's challenge by sending garbage for it.
        Err(e) => return Ok(Json(untrusted(vec![appraisal::evidence_reason(&e)]))),
    };
    // Stage 2 and everything after it: the holder of the device key answered this challenge,
    // so a failure is the device's own statement and is recorded on it like any verdict
    // (docs/attestation.md, "What is recorded").
    let registered_ak = row
        .attestation_key
        .as_deref()
        .map(|b64| {
            Base64::decode_vec(b64)
                .ok()
                .and_then(|der| PublicKey::from_spki_der(&der).ok())
                .ok_or_else(|| ApiError::Internal("malformed attestation key in database".into()))
        })
        .transpose()?;
    let verified = same_root_of_trust(authenticated.claims().root_of_trust, &row.root_of_trust)
        .and_then(|()| {
            authenticated
                .verify(registered_ak.as_ref())
                .map_err(|e| appraisal::evidence_reason(&e))
        });
    let Some(tid) = row.tenant_id.clone() else {
        // No device record to write to: answer only.
        let mut reasons: Vec<_> = verified.err().into_iter().collect();
        reasons.push(reason(
            codes::UNCLAIMED,
            "the device is registered but no tenant has claimed it",
        ));
        return Ok(Json(untrusted(reasons)));
    };
    let mut reasons = Vec::new();
    let verified = match verified {
        Ok(v) => Some(v),
        Err(r) => {
            reasons.push(r);
            None
        }
    };
    if row.blocked {
        reasons.push(reason(codes::BLOCKED, "the tenant blocked this device"));
    }
    if let Some(verified) = &verified {
        let measurements = verified.measurements();
        let debug = verified.debug_status();
        let (os_releases, tenant_images) = known_images(&state, &tid, measurements).await?;
        let needs_capability = debug == DebugStatus::Enabled
            || measurements.iter().any(|m| {
                m.component_id != ferro_image::OS_COMPONENT_ID
                    && !tenant_images.contains_key(&m.image_id)
            });
        let app_development = needs_capability
            && sqlx::query(
                "SELECT id FROM device_capabilities WHERE tenant_id = $1 AND device_id = $2 \
                 AND capability_type = 'AppDevelopment' AND revoked_at IS NULL LIMIT 1",
            )
            .bind(&tid)
            .bind(&did)
            .fetch_optional(state.db.pool())
            .await?
            .is_some();
        // A device in no group follows Retail, as its target sets do (`crate::targets`).
        let feed = match row.os_feed.as_deref() {
            Some("RetailEval") => OsFeed::RetailEval,
            _ => OsFeed::Retail,
        };
        let facts = Facts {
            feed,
            feed_minimum_security_version: row
                .feed_minimum_security_version
                .map_or(Ok(0), u32::try_from)
                .map_err(|_| ApiError::Internal("minimum security version out of range".into()))?,
            os_releases,
            tenant_images,
            app_development,
        };
        reasons.extend(appraisal::appraise(measurements, debug, &facts).into_reasons());
    }
    let service_time = OffsetDateTime::now_utc();
    let mut result = untrusted(Vec::new());
    let mut serial = None;
    if reasons.is_empty() {
        let generation = row
            .ca_generation
            .ok_or_else(|| ApiError::Internal("claimed device without a tenant row".into()))?;
        let cas = cas_rotated_by(&state, None, &tid, generation).await?;
        match ferro_pki::current_tenant_ca(&cas, service_time) {
            None => reasons.push(reason(
                codes::NO_TENANT_CA,
                "the tenant has no valid CA certificate",
            )),
            Some(ca) => {
                let tenant_uuid = crate::auth::parse_id::<ferro_wire::TenantId>(&tid)?.0;
                let now_s = service_time.replace_nanosecond(0).unwrap_or(service_time);
                let cert = ferro_pki::issue_device_certificate_checked(
                    ca,
                    &*state.platform.keys,
                    &req.device_id,
                    tenant_uuid,
                    &key,
                    now_s,
                    ferro_pki::DEVICE_CERT_VALIDITY,
                    cert_self_check(),
                )
                .map_err(|e| ApiError::Internal(format!("issuing the device certificate: {e}")))?;
                serial = Some(cert.serial_hex());
                result = AttestationResult {
                    verdict: AttestationVerdict::Trusted,
                    reasons: Vec::new(),
                    certificate_pem: Some(cert.pem()),
                    ca_chain_pem: Some(ferro_pki::tenant_ca_chain_pem(&cas, service_time)),
                    service_time,
                    not_after: Some(cert.not_after()),
                    target_set: None,
                };
            }
        }
    }
    if !reasons.is_empty() {
        result = untrusted(reasons);
    }
    // One write transaction: consume the nonce by raising the device's floor (atomically: of
    // two concurrent answers, or an older nonce answered after a newer one, only one passes
    // the condition) and record the result on the device and in the audit log.
    let at = service_time.unix_timestamp();
    let reasons_json = serde_json::to_string(&result.reasons)
        .map_err(|e| ApiError::Internal(format!("reasons: {e}")))?;
    let codes: Vec<&str> = result.reasons.iter().map(|r| r.code.as_str()).collect();
    let audit_id = uuid::Uuid::now_v7().to_string();
    let details =
        json!({ "verdict": result.verdict, "reasons": codes, "certificateSerial": serial })
            .to_string();
    let consume_and_record = [
        Arg::Int(issued_db),
        Arg::Int(at),
        Arg::Text(result.verdict.as_str()),
        Arg::Text(&reasons_json),
        Arg::Text(&did),
        Arg::Text(&tid),
    ];
    // The row `db::audit` writes; actor: the service itself.
    let audit = [
        Arg::Text(&audit_id),
        Arg::Text(&tid),
        Arg::Int(db::now()),
        Arg::NullText,
        Arg::Text("device.attest"),
        Arg::Text("device"),
        Arg::Text(&did),
        Arg::Text(&details),
    ];
    let written = state
        .db
        .write_atomic(&[
            WriteStmt {
                sql: "UPDATE devices SET attestation_nonce_floor = $1, last_attested_at = $2, \
                      last_attestation_result = $3, last_attestation_reasons = $4 \
                      WHERE id = $5 AND tenant_id = $6 \
                      AND (attestation_nonce_floor IS NULL OR attestation_nonce_floor < $1)",
                args: &consume_and_record,
                must_change_one_row: true,
            },
            WriteStmt {
                sql: db::AUDIT_INSERT,
                args: &audit,
                must_change_one_row: true,
            },
        ])
        .await?;
    if written == Written::Unchanged {
        return Ok(Json(untrusted(vec![replayed()])));
    }
    // The target set for every claimed device whose own key signed fresh evidence, trusted or
    // not (docs/design.md §3.4: an untrusted device gets no certificate, so no access to the device
    // routes, but must still learn what to run to heal). Never fails the attestation.
    let target = match row.target {
        Some(check) => crate::targets::current_target_from(&state, &did, check).await,
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

/// A device registered with a TPM must prove itself with a TPM quote: software-type evidence
/// (signed by a device key a compromised OS can use) would be a downgrade. And the other way
/// round: a software device has no TPM to quote with.
fn same_root_of_trust(
    evidence_rot: ferro_trust::RootOfTrustKind,
    registered_rot: &str,
) -> Result<(), AttestationReason> {
    let evidence_rot = match evidence_rot {
        ferro_trust::RootOfTrustKind::Software => "Software",
        ferro_trust::RootOfTrustKind::Tpm => "Tpm",
    };
    if registered_rot == evidence_rot {
        Ok(())
    } else {
        Err(reason(
            codes::QUOTE_MISMATCH,
            format!(
                "the device was registered with a {registered_rot} root of trust but sent \
                 {evidence_rot} evidence"
            ),
        ))
    }
}
