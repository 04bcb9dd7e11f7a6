//! `/v1/tenants/{tenantId}/ca-certificates`: the tenant's CA generations (list, download,
//! download-chain, proof of possession), rotated on access when `tenant_ca_rotation_due` says so.

use crate::auth::TenantCaller;
use crate::authz;
use crate::db::{self};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery};
use crate::state::AppState;
use crate::tenant_ca::cas_rotated;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ferro_pki::TenantCa;
use ferro_wire::{
    CaCertificate, CaCertificateStatus, CertificateFormat, CertificateFormatQuery, ErrorBody,
    ErrorCode, ProofOfPossessionRequest, Role,
};
use serde_json::json;
use time::OffsetDateTime;

const PEM: &str = "application/x-pem-file";
const DER: &str = "application/pkix-cert";

fn status_of(
    ca: &TenantCa,
    current: Option<&TenantCa>,
    now: OffsetDateTime,
) -> CaCertificateStatus {
    match current {
        Some(c) if c.serial_hex() == ca.serial_hex() => CaCertificateStatus::Current,
        Some(c) if ca.certificate().is_valid_at(now) && ca.not_after() > c.not_after() => {
            CaCertificateStatus::Next
        }
        _ => CaCertificateStatus::Previous,
    }
}

fn to_wire(ca: &TenantCa, current: Option<&TenantCa>, now: OffsetDateTime) -> CaCertificate {
    CaCertificate {
        serial: ca.serial_hex(),
        sha1_thumbprint: ca.sha1_thumbprint(),
        sha256_thumbprint: ca.sha256_thumbprint(),
        not_before: ca.not_before(),
        not_after: ca.not_after(),
        status: status_of(ca, current, now),
    }
}

fn serial_param(raw: &str) -> ApiResult<String> {
    if raw.is_empty() || raw.len() > 40 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            ErrorCode::InvalidId,
            "`serial` must be a certificate serial in hex, as `ca-certificates` lists it",
        ));
    }
    Ok(raw.to_ascii_lowercase())
}

fn find<'a>(cas: &'a [TenantCa], serial: &str) -> ApiResult<&'a TenantCa> {
    cas.iter()
        .find(|c| c.serial_hex() == serial)
        .ok_or_else(|| ApiError::not_found("CA certificate"))
}

fn download(body: Vec<u8>, content_type: &'static str, filename: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// The tenant's CA certificates with their status (any role).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/ca-certificates", tag = "ca-certificates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 200, body = Vec<CaCertificate>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_cas(
    State(state): State<AppState>,
    who: TenantCaller,
) -> ApiResult<Json<Vec<CaCertificate>>> {
    who.authorize(Role::Reader)?;
    let cas = cas_rotated(&state, &who.caller, &who.tid).await?;
    let now = OffsetDateTime::now_utc();
    let current = ferro_pki::current_tenant_ca(&cas, now);
    let mut out: Vec<CaCertificate> = cas.iter().map(|c| to_wire(c, current, now)).collect();
    out.sort_by_key(|c| std::cmp::Reverse((c.not_after, c.serial.clone())));
    Ok(Json(out))
}

/// Download one CA certificate (any role): PEM by default, `?format=der` for DER.
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/ca-certificates/{serial}", tag = "ca-certificates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("serial" = String, Path, description = "Serial number (hex)"), CertificateFormatQuery),
    responses((status = 200, description = "The certificate: PEM, or DER with `?format=der`",
            content((String = "application/x-pem-file"), (Vec<u8> = "application/pkix-cert"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_ca(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, serial)): Path<(String, String)>,
    StrictQuery(q): StrictQuery<CertificateFormatQuery>,
) -> ApiResult<Response> {
    who.authorize(Role::Reader)?;
    let serial = serial_param(&serial)?;
    let cas = cas_rotated(&state, &who.caller, &who.tid).await?;
    let ca = find(&cas, &serial)?;
    Ok(match q.format.unwrap_or_default() {
        CertificateFormat::Pem => {
            download(ca.pem().as_bytes().to_vec(), PEM, format!("{serial}.pem"))
        }
        CertificateFormat::Der => download(ca.der().to_vec(), DER, format!("{serial}.cer")),
    })
}

/// The CA chain brokers should trust (any role): the current CA, then every other unexpired
/// CA, as one PEM bundle (`download-chain`).
#[utoipa::path(get, path = "/v1/tenants/{tenantId}/ca-certificates/chain", tag = "ca-certificates",
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID")),
    responses((status = 200, description = "PEM bundle", content_type = "application/x-pem-file", body = String),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_chain(State(state): State<AppState>, who: TenantCaller) -> ApiResult<Response> {
    who.authorize(Role::Reader)?;
    let cas = cas_rotated(&state, &who.caller, &who.tid).await?;
    let pem = ferro_pki::tenant_ca_chain_pem(&cas, OffsetDateTime::now_utc());
    Ok(download(
        pem.into_bytes(),
        PEM,
        format!("tenant-{}-ca-chain.pem", who.tid),
    ))
}

/// A proof-of-possession certificate for registering the CA with a broker (Contributor):
/// subject CN = the broker's verification code, signed by this CA, valid one day.
#[utoipa::path(post, path = "/v1/tenants/{tenantId}/ca-certificates/{serial}/proof", tag = "ca-certificates",
    request_body = ProofOfPossessionRequest,
    params(("tenantId" = String, Path, format = Uuid, description = "Tenant ID"),
        ("serial" = String, Path, description = "Serial number (hex)")),
    responses((status = 200, description = "The proof certificate (PEM)", content_type = "application/x-pem-file", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, description = "Bad verification code, or the CA has expired", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_proof(
    State(state): State<AppState>,
    who: TenantCaller,
    Path((_, serial)): Path<(String, String)>,
    JsonBody(req): JsonBody<ProofOfPossessionRequest>,
) -> ApiResult<Response> {
    who.authorize(Role::Contributor)?;
    let serial = serial_param(&serial)?;
    ferro_pki::validate_verification_code(&req.verification_code).map_err(|_| {
        ApiError::invalid_body(
            "`verificationCode` must be 1 to 64 characters of A-Z, a-z, 0-9, `-`, `_` and `.`; \
             copy it from the broker",
        )
    })?;
    let cas = cas_rotated(&state, &who.caller, &who.tid).await?;
    let ca = find(&cas, &serial)?.clone();
    let now = OffsetDateTime::now_utc();
    if !ca.certificate().is_valid_at(now) {
        return Err(ApiError::invalid_body(
            "this CA certificate is not valid now; prove possession of the current one (see \
             `ca-certificates`)",
        ));
    }
    let keys = state.platform.keys.clone();
    let code = req.verification_code.clone();
    let cert = tokio::task::spawn_blocking(move || {
        ferro_pki::issue_proof_of_possession_certificate(&ca, &*keys, &code, now)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("proof task: {e}")))?
    .map_err(|e| ApiError::Internal(format!("issuing the proof certificate: {e}")))?;
    let mut tx = state.db.begin_write().await?;
    authz::authorize(&mut *tx, &who.caller, who.tenant, Role::Contributor).await?;
    db::audit(
        &mut tx,
        Some(&who.tid),
        Some(&who.caller.uid()),
        "tenant_ca.proof",
        "tenant_ca",
        &serial,
        json!({ "verificationCode": req.verification_code, "proofSerial": cert.serial_hex() }),
    )
    .await?;
    tx.commit().await?;
    Ok(download(
        cert.pem().into_bytes(),
        PEM,
        format!("{serial}-proof.pem"),
    ))
}
