//! `/v1/tenants/{tenantId}/ca-certificates`: the tenant's CA generations (list, download,
//! download-chain, proof of possession), rotated on access when `tenant_ca_rotation_due` says so.

use crate::auth::{self, Caller, TenantCaller};
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, StrictQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64ct::{Base64, Encoding};
use ferro_pki::TenantCa;
use ferro_wire::{
    CaCertificate, CaCertificateStatus, CertificateFormat, CertificateFormatQuery, ErrorBody,
    ErrorCode, ProofOfPossessionRequest, Role,
};
use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

const PEM: &str = "application/x-pem-file";
const DER: &str = "application/pkix-cert";

/// Store a CA generation of a tenant in `tx`, raising the tenant's `ca_generation` (which
/// [`CaCache`] entries are checked against) in the same transaction.
pub async fn insert_ca(tx: &mut Tx, tid: &str, ca: &TenantCa, now: i64) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO tenant_cas (tenant_id, serial, der, sha1_thumbprint, sha256_thumbprint, \
         not_before, not_after, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8)",
    )
    .bind(tid)
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
        .bind(tid)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if bumped != 1 {
        return Err(ApiError::not_found("tenant"));
    }
    Ok(())
}

/// The tenant's active CA generations.
pub async fn load_cas<'e, E>(ex: E, tid: &str) -> ApiResult<Vec<TenantCa>>
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
                .map_err(|_| ApiError::Internal("malformed CA certificate in database".into()))?;
            TenantCa::from_der(&der)
                .map_err(|e| ApiError::Internal(format!("stored tenant CA refused: {e}")))
        })
        .collect()
}

/// Most tenants whose parsed CAs [`CaCache`] keeps; when full it is emptied (refilling costs one
/// parse per tenant).
const CA_CACHE_CAPACITY: usize = 4096;

/// Parsed tenant CAs per tenant, with the tenant's `ca_generation` they were loaded at. Parsing a
/// CA checks its self-signature (an ECDSA verify), which the attestation route would otherwise
/// pay on every request. An entry is used only while the database's `tenants.ca_generation` is
/// the cached one (read on every use, by the attestation route with the device's row), and every
/// change to a tenant's CAs raises that number in its own transaction: a rotation, a status
/// change or another replica's new CA is seen at once, no TTL needed.
///
/// An entry's CAs are read after its generation, so they are never older than it says (at worst
/// newer, which the next generation's first request reloads).
#[derive(Debug, Default)]
pub struct CaCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (i64, Vec<TenantCa>)>>,
}

impl CaCache {
    fn get(&self, tid: &str, generation: i64) -> Option<Vec<TenantCa>> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(tid)
            .filter(|(cached, _)| *cached == generation)
            .map(|(_, cas)| cas.clone())
    }

    fn put(&self, tid: &str, generation: i64, cas: Vec<TenantCa>) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CA_CACHE_CAPACITY && !map.contains_key(tid) {
            map.clear();
        }
        match map.get(tid) {
            // A slower request that read an older generation does not replace a newer entry.
            Some((cached, _)) if *cached > generation => {}
            _ => {
                map.insert(tid.to_string(), (generation, cas));
            }
        }
    }
}

/// The tenant's CA generation number (`tenants.ca_generation`).
async fn ca_generation(state: &AppState, tid: &str) -> ApiResult<i64> {
    let args = [crate::db::Arg::Text(tid)];
    state
        .db
        .read_optional(
            "SELECT ca_generation FROM tenants WHERE id = $1",
            &args,
            |r| r.get::<i64>("ca_generation"),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

/// [`load_cas`] through [`CaCache`]: one point read of the tenant's CA generation; the DER is
/// loaded and parsed only when the cache does not hold that generation.
pub async fn load_cas_cached(state: &AppState, tid: &str) -> ApiResult<Vec<TenantCa>> {
    let generation = ca_generation(state, tid).await?;
    load_cas_at(state, tid, generation).await
}

/// [`load_cas_cached`] for a caller that read the tenant's `ca_generation` already (with the
/// device's row, in the attestation route).
pub async fn load_cas_at(state: &AppState, tid: &str, generation: i64) -> ApiResult<Vec<TenantCa>> {
    if let Some(cas) = state.ca_cache.get(tid, generation) {
        return Ok(cas);
    }
    // Read after the generation: these CAs are that generation's or newer.
    let cas = load_cas(state.db.pool(), tid).await?;
    state.ca_cache.put(tid, generation, cas.clone());
    Ok(cas)
}

/// The tenant's CAs, after creating the next generation if rotation is due. The new CA's key is
/// made outside the transaction; the transaction takes the tenant's lock and re-checks, so two
/// concurrent requests never store two new CAs (the loser's key stays an unreferenced orphan
/// under a random serial, harmless).
pub async fn cas_rotated(state: &AppState, caller: &Caller, tid: &str) -> ApiResult<Vec<TenantCa>> {
    let generation = ca_generation(state, tid).await?;
    cas_rotated_by(state, Some(&caller.uid()), tid, generation).await
}

/// [`cas_rotated`] with the audit actor given directly (`None`: the service itself, as when a
/// device attests) and the tenant's `ca_generation` read by the caller.
pub async fn cas_rotated_by(
    state: &AppState,
    actor: Option<&str>,
    tid: &str,
    generation: i64,
) -> ApiResult<Vec<TenantCa>> {
    let now = OffsetDateTime::now_utc();
    let cas = load_cas_at(state, tid, generation).await?;
    if !ferro_pki::tenant_ca_rotation_due(&cas, now) {
        return Ok(cas);
    }
    let name: String = sqlx::query("SELECT name FROM tenants WHERE id = $1")
        .bind(tid)
        .fetch_optional(state.db.pool())
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?
        .try_get("name")?;
    let keys = state.platform.keys.clone();
    let tenant = crate::auth::parse_id::<ferro_wire::TenantId>(tid)?.0;
    let ca = tokio::task::spawn_blocking(move || {
        ferro_pki::create_tenant_ca(&*keys, tenant, &name, now)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("CA task: {e}")))?
    .map_err(|e| ApiError::Internal(format!("creating the next tenant CA: {e}")))?;
    let mut tx = state.db.begin_write().await?;
    db::lock_tenant(&mut tx, tid).await?;
    let current = load_cas(&mut *tx, tid).await?;
    // Re-check with a fresh clock: a successor another request made while this one waited for
    // the lock may start after `now` (certificate times have whole seconds), and at the stale
    // time it would look not yet valid, making a second successor.
    if !ferro_pki::tenant_ca_rotation_due(&current, OffsetDateTime::now_utc()) {
        return Ok(current);
    }
    insert_ca(&mut tx, tid, &ca, db::now()).await?;
    db::audit(
        &mut tx,
        Some(tid),
        actor,
        "tenant_ca.rotate",
        "tenant_ca",
        &ca.serial_hex(),
        json!({ "notAfter": ca.not_after().unix_timestamp() }),
    )
    .await?;
    tx.commit().await?;
    let mut all = current;
    all.push(ca);
    Ok(all)
}

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
    who.require(Role::Reader)?;
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
    who.require(Role::Reader)?;
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
    who.require(Role::Reader)?;
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
    who.require(Role::Contributor)?;
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
    auth::require_role(&mut *tx, &who.caller, &who.tid, Role::Contributor).await?;
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
