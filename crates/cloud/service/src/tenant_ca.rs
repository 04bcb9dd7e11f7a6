//! Tenant CA generations: storing a new one, loading them (through [`CaCache`], checked against
//! the tenant's `ca_generation`), and rotating when `ferro_pki::tenant_ca_rotation_due` says so.

use crate::auth::parse_id;
use crate::authz::TenantScope;
use crate::datastore::{tenant_cas, tenants};
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use ferro_pki::TenantCa;
use ferro_wire::TenantId;
use serde_json::json;
use time::OffsetDateTime;

/// Store a CA generation of the tenant `tid` in `tx`, raising the tenant's `ca_generation`
/// (which [`CaCache`] entries are checked against) in the same transaction.
pub async fn insert_ca(tx: &mut Tx, tid: &str, ca: &TenantCa, now: i64) -> ApiResult<()> {
    if !tenant_cas::insert(tx, parse_id(tid)?, ca, now).await? {
        return Err(ApiError::not_found("tenant"));
    }
    Ok(())
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
    tenant_cas::generation(&state.db, parse_id(tid)?)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

/// The tenant's active CAs through [`CaCache`]: one point read of the tenant's CA generation; the DER is
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
    let cas = tenant_cas::active(&state.db, parse_id(tid)?).await?;
    state.ca_cache.put(tid, generation, cas.clone());
    Ok(cas)
}

/// The tenant's CAs, after creating the next generation if rotation is due. The new CA's key is
/// made outside the transaction; the transaction takes the tenant's lock and re-checks, so two
/// concurrent requests never store two new CAs (the loser's key stays an unreferenced orphan
/// under a random serial, harmless).
pub async fn cas_rotated(state: &AppState, scope: &TenantScope) -> ApiResult<Vec<TenantCa>> {
    let tid = scope.tenant_str();
    let generation = ca_generation(state, tid).await?;
    cas_rotated_by(state, scope.audit_user(), tid, generation).await
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
    let name = tenants::name(&state.db, tid)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let keys = state.platform.keys.clone();
    let tenant_id: TenantId = parse_id(tid)?;
    let tenant = tenant_id.0;
    let ca = tokio::task::spawn_blocking(move || {
        ferro_pki::create_tenant_ca(&*keys, tenant, &name, now)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("CA task: {e}")))?
    .map_err(|e| ApiError::Internal(format!("creating the next tenant CA: {e}")))?;
    let mut tx = state.db.begin_write().await?;
    db::lock_tenant(&mut tx, tid).await?;
    let current = tenant_cas::active_in(&mut tx, tenant_id).await?;
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
