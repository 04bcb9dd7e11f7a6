//! Target sets (docs/updates.md): for each claimed device, what it should run, computed from its
//! group's current deployment, the group's OS feed (newest release that is not revoked and is at
//! or above the feed's minimum security version) and update policy, signed by
//! the tenant metadata key, with a version that only grows and an expiry.
//!
//! Cost model: one read (the device row with its inputs) answers an unchanged set, which is by
//! far the common case: the signed set is kept on the device row with the inputs it was computed
//! from (group, deployment, OS release, policy, feed). Only when an input changed, or the stored
//! set is past half its life, is it recomputed; its version grows only when its content changed.
//!
//! Rollouts in waves (`crate::rollouts`): the deployment in the inputs is the one whose images
//! the device is given, the group's current one only once its rollout includes the device, so a
//! wave that starts changes the inputs of the devices it adds and of no others.

use std::sync::Arc;

use base64ct::{Base64, Encoding};
use ferro_pki::{DeviceOwnership, KeyName, TargetImage, TargetKind, TargetSet};
use ferro_signing::DeviceId;
use sqlx::Row;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::db::{self, Arg, DbRow, WriteStmt, Written};
use crate::error::{ApiError, ApiResult};
use crate::rollouts;
use crate::state::AppState;

/// How long a signed target set is valid. A device that cannot reach the service for longer
/// keeps running what it has, but accepts no set older than this (freeze protection).
pub const TARGET_SET_VALIDITY: Duration = Duration::days(7);

/// A device's current target set, as stored.
#[derive(Clone, Debug)]
pub struct CurrentTarget {
    /// Its version.
    pub version: u64,
    /// The signed target set (COSE_Sign1 bytes).
    pub signed: Arc<Vec<u8>>,
    /// The ownership document (COSE_Sign1 bytes).
    pub ownership: Arc<Vec<u8>>,
    /// When the signed set expires.
    pub expires_at: OffsetDateTime,
}

/// The columns of [`CHECK_SQL`], for queries that read them along with others (the evidence
/// route reads them with the registration: one read per attestation instead of two). They need
/// `devices d` and `device_groups g` joined as in [`CHECK_SQL`].
macro_rules! target_check_columns {
    () => {
        "d.tenant_id, d.device_group_id, d.target_version, \
     d.target_inputs, d.target_set, d.target_expires_at, d.ownership_doc, d.ownership_inputs, \
     d.target_deployment_id, d.target_deployment_version, g.update_policy, g.os_feed, \
     (SELECT dep.id || COALESCE(' ' || dep.rollout_waves || ' ' || \
      CAST(dep.rollout_wait AS TEXT) || ' ' || CAST(dep.rollout_wave AS TEXT) || ' ' || \
      CAST(dep.rollout_wave_at AS TEXT) || ' ' || CASE WHEN dep.rollout_paused_at IS NULL AND \
      dep.rollout_superseded_at IS NULL THEN '0' ELSE '1' END || ' ' || \
      COALESCE(dep.rollout_base_id, '-'), '') \
      FROM deployments dep WHERE dep.device_group_id = d.device_group_id \
      ORDER BY dep.id DESC LIMIT 1) AS deployment, \
     (SELECT o.id FROM os_releases o WHERE (g.os_feed = 'RetailEval' OR o.retail_at IS NOT NULL) \
      AND o.revoked_at IS NULL AND o.security_version >= COALESCE((SELECT f.minimum_security_version \
      FROM os_feed_policies f WHERE f.feed = COALESCE(g.os_feed, 'Retail')), 0) \
      ORDER BY o.id DESC LIMIT 1) AS os_release_id, \
     (SELECT reg.ownership_epoch FROM device_registrations reg WHERE reg.device_id = d.id) \
      AS ownership_epoch"
    };
}

pub(crate) use target_check_columns;

/// The row read on every check: the device, what its set was computed from, and the inputs now.
/// `deployment` is the group's current deployment, followed by its rollout's course when it has
/// one (`rollouts::parse_current`: one column, so that the check stays one query).
const CHECK_SQL: &str = concat!(
    "SELECT ",
    target_check_columns!(),
    " FROM devices d LEFT JOIN device_groups g ON g.id = d.device_group_id WHERE d.id = $1"
);

/// The deployment the device's stored set came from, if that set was computed for the group the
/// device is in now (so the deployment is one of the group's).
fn kept(row: &CheckRow, stored_inputs: Option<&str>) -> Option<String> {
    let stored_group = stored_inputs
        .and_then(|i| i.strip_prefix("g="))
        .and_then(|i| i.split(';').next());
    match (&row.device_group_id, stored_group) {
        (Some(g), Some(s)) if g == s => row.target_deployment_id.clone(),
        _ => None,
    }
}

/// [`CHECK_SQL`]'s row.
pub(crate) struct CheckRow {
    tenant_id: String,
    device_group_id: Option<String>,
    target_version: i64,
    target_inputs: Option<String>,
    /// Base64 of the signed set.
    target_set: Option<String>,
    target_expires_at: Option<i64>,
    /// Base64 of the signed ownership document.
    ownership_doc: Option<String>,
    ownership_inputs: Option<String>,
    target_deployment_id: Option<String>,
    target_deployment_version: Option<i64>,
    update_policy: Option<String>,
    os_feed: Option<String>,
    deployment: Option<String>,
    os_release_id: Option<String>,
    /// Times the device changed tenant (migration 0012); in its ownership document.
    ownership_epoch: i64,
}

impl CheckRow {
    /// The check columns of a row that may have no device (`d.tenant_id` NULL: an unclaimed
    /// device's registration): `None` then.
    pub(crate) fn from_optional_row(r: &DbRow<'_>) -> ApiResult<Option<CheckRow>> {
        match r.get::<Option<String>>("tenant_id")? {
            None => Ok(None),
            Some(_) => Self::from_row(r).map(Some),
        }
    }

    fn from_row(r: &DbRow<'_>) -> ApiResult<CheckRow> {
        Ok(CheckRow {
            tenant_id: r.get("tenant_id")?,
            device_group_id: r.get("device_group_id")?,
            target_version: r.get("target_version")?,
            target_inputs: r.get("target_inputs")?,
            target_set: r.get("target_set")?,
            target_expires_at: r.get("target_expires_at")?,
            ownership_doc: r.get("ownership_doc")?,
            ownership_inputs: r.get("ownership_inputs")?,
            target_deployment_id: r.get("target_deployment_id")?,
            target_deployment_version: r.get("target_deployment_version")?,
            update_policy: r.get("update_policy")?,
            os_feed: r.get("os_feed")?,
            deployment: r.get("deployment")?,
            os_release_id: r.get("os_release_id")?,
            ownership_epoch: r.get::<Option<i64>>("ownership_epoch")?.unwrap_or(0),
        })
    }
}

/// What a target set is computed from; equal inputs give an equal set. `deployment` is the
/// deployment whose images the device is given: the group's current one, unless its rollout
/// does not include the device yet (`rollouts::effective_deployment`).
fn inputs(row: &CheckRow, deployment: Option<&str>) -> String {
    let part = |v: &Option<String>| v.clone().unwrap_or_default();
    format!(
        "g={};d={};o={};p={};f={}",
        part(&row.device_group_id),
        deployment.unwrap_or_default(),
        part(&row.os_release_id),
        part(&row.update_policy),
        part(&row.os_feed)
    )
}

fn decode(b64: Option<String>) -> ApiResult<Option<Vec<u8>>> {
    b64.map(|s| {
        Base64::decode_vec(&s).map_err(|_| ApiError::Internal("malformed stored document".into()))
    })
    .transpose()
}

/// The device's current target set, recomputed and re-signed only when needed. `None`: the
/// device is not claimed.
pub async fn current_target(state: &AppState, device_id: &str) -> ApiResult<Option<CurrentTarget>> {
    // On every attestation and update check: a point lookup (`Db::read_optional`).
    let args = [Arg::Text(device_id)];
    let Some(row) = state
        .db
        .read_optional(CHECK_SQL, &args, CheckRow::from_row)
        .await?
    else {
        return Ok(None);
    };
    current_target_from(state, device_id, row).await
}

/// [`current_target`] from its row, read already (with [`target_check_columns`]).
pub(crate) async fn current_target_from(
    state: &AppState,
    device_id: &str,
    row: CheckRow,
) -> ApiResult<Option<CurrentTarget>> {
    let now = state.clock.now();
    let stored_inputs = row.target_inputs.clone();
    let current = row
        .deployment
        .as_deref()
        .map(rollouts::parse_current)
        .transpose()?;
    let deployment = match current {
        // No rollout (the common case): the current deployment, nothing more to read.
        Some((id, None)) => Some(id),
        current => rollouts::effective_deployment(
            device_id,
            current,
            kept(&row, stored_inputs.as_deref()),
            now.unix_timestamp(),
        ),
    };
    let inputs_now = inputs(&row, deployment.as_deref());
    let stored_version = u64::try_from(row.target_version).unwrap_or(0);
    let stored_set = decode(row.target_set.clone())?;
    let stored_expiry = row.target_expires_at;
    let ownership = decode(row.ownership_doc.clone())?;
    let ownership_inputs = row.ownership_inputs.clone();
    let tid = row.tenant_id.clone();
    let owner_inputs_now = ownership_key(&tid, row.ownership_epoch);
    if let (Some(set), Some(expiry), Some(own)) = (&stored_set, stored_expiry, &ownership) {
        let expires_at = db::ts(expiry);
        let fresh = expires_at - now > TARGET_SET_VALIDITY / 2;
        if fresh
            && stored_inputs.as_deref() == Some(inputs_now.as_str())
            && ownership_inputs.as_deref() == Some(owner_inputs_now.as_str())
        {
            return Ok(Some(CurrentTarget {
                version: stored_version,
                signed: Arc::new(set.clone()),
                ownership: Arc::new(own.clone()),
                expires_at,
            }));
        }
    }
    recompute(
        state,
        device_id,
        &row,
        &tid,
        stored_version,
        stored_set,
        deployment,
        inputs_now,
        now,
    )
    .await
}

/// Which tenant keys an ownership document names (a rotation of either makes a new one).
fn ownership_key(tid: &str, epoch: i64) -> String {
    if epoch == 0 {
        format!("t={tid};k=1")
    } else {
        format!("t={tid};k=1;e={epoch}")
    }
}

#[allow(clippy::too_many_arguments)]
async fn recompute(
    state: &AppState,
    device_id: &str,
    row: &CheckRow,
    tid: &str,
    stored_version: u64,
    stored_set: Option<Vec<u8>>,
    deployment: Option<String>,
    inputs_now: String,
    now: OffsetDateTime,
) -> ApiResult<Option<CurrentTarget>> {
    let tenant = crate::auth::parse_id::<ferro_wire::TenantId>(tid)?.0;
    let device: DeviceId = device_id
        .parse()
        .map_err(|_| ApiError::Internal("malformed device ID in database".into()))?;
    let group = row.device_group_id.clone();
    let policy = row.update_policy.clone();
    let os_release = row.os_release_id.clone();
    // Without a group a device gets Retail OS updates and keeps its apps (as Azure Sphere's
    // unassigned devices do); No3rdPartyAppUpdates keeps apps as they are.
    let manage_apps = group.is_some() && policy.as_deref() == Some("UpdateAll");
    let mut images = Vec::new();
    if let Some(os) = &os_release {
        let r = sqlx::query(
            "SELECT image_id, version_major, version_minor, version_patch, security_version, \
             payload_sha256, package_sha256, package_size FROM os_releases WHERE id = $1",
        )
        .bind(os)
        .fetch_one(state.db.pool())
        .await?;
        images.push(target_image(
            &r,
            ferro_image::OS_COMPONENT_ID,
            TargetKind::Os,
        )?);
    }
    if let (true, Some(dep)) = (manage_apps, &deployment) {
        let rows = sqlx::query(
            "SELECT i.image_id, i.component_id, i.image_type, i.version_major, i.version_minor, \
             i.version_patch, i.security_version, i.payload_sha256, i.package_sha256, \
             i.package_size FROM deployment_images di JOIN images i ON i.id = di.image_row_id \
             WHERE di.deployment_id = $1",
        )
        .bind(dep)
        .fetch_all(state.db.pool())
        .await?;
        for r in &rows {
            let component = Uuid::try_parse(&r.try_get::<String, _>("component_id")?)
                .map_err(|_| ApiError::Internal("malformed component ID".into()))?;
            let kind = match r.try_get::<String, _>("image_type")?.as_str() {
                "App" => TargetKind::App,
                "RtApp" => TargetKind::RtApp,
                "BoardConfig" => TargetKind::BoardConfig,
                _ => return Err(ApiError::Internal("unknown image type".into())),
            };
            images.push(target_image(r, component, kind)?);
        }
    }
    images.sort_by_key(|i| i.component_id);
    let group_id = group
        .as_deref()
        .map(Uuid::try_parse)
        .transpose()
        .map_err(|_| ApiError::Internal("malformed group ID".into()))?;
    let issued_at = now.replace_nanosecond(0).unwrap_or(now);
    let mut set = TargetSet {
        device_id: device,
        tenant_id: tenant,
        device_group_id: group_id,
        version: stored_version.max(1),
        issued_at,
        expires_at: issued_at + TARGET_SET_VALIDITY,
        manage_apps,
        images,
    };
    // The version grows only when the content (beyond times and version) changed.
    let unchanged = stored_set
        .as_deref()
        .and_then(|bytes| ferro_signing::parse_unverified(bytes).ok())
        .and_then(|env| TargetSet::from_cbor(&env.unverified_payload).ok())
        .is_some_and(|old| {
            old.device_group_id == set.device_group_id
                && old.manage_apps == set.manage_apps
                && old.images == set.images
        });
    if !unchanged || stored_version == 0 {
        set.version = stored_version + 1;
    }
    let keys = state.platform.keys.0.clone();
    let key_err = |e: ferro_pki::KeyStoreError| ApiError::Internal(format!("tenant key: {e}"));
    let set_for_signing = set.clone();
    let owner = DeviceOwnership {
        device_id: device,
        tenant_id: tenant,
        issued_at,
        image_keys: vec![
            keys.public_key(&KeyName::tenant_image(tenant))
                .map_err(key_err)?,
        ],
        metadata_keys: vec![
            keys.public_key(&KeyName::tenant_metadata(tenant))
                .map_err(key_err)?,
        ],
        ownership_epoch: u64::try_from(row.ownership_epoch).unwrap_or(0),
    };
    let (signed, ownership) = tokio::task::spawn_blocking(move || -> ApiResult<_> {
        let metadata = keys
            .signer(&KeyName::tenant_metadata(tenant))
            .map_err(key_err)?;
        let endorsement = keys
            .signer(&KeyName::platform_tenant_endorsement())
            .map_err(key_err)?;
        let signed = set_for_signing
            .sign(metadata.as_ref())
            .map_err(|e| ApiError::Internal(format!("signing the target set: {e}")))?;
        let ownership = owner
            .sign(endorsement.as_ref())
            .map_err(|e| ApiError::Internal(format!("signing the ownership document: {e}")))?;
        Ok((signed, ownership))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("signing task: {e}")))??;
    // The first version that named this deployment's images: a Failed report for it or a later
    // version counts against the deployment's rollout (`rollouts::counts`).
    let stored_deployment = &row.target_deployment_id;
    let deployment_since = match row.target_deployment_version {
        Some(v) if *stored_deployment == deployment => v,
        _ => i64::try_from(set.version).unwrap_or(i64::MAX),
    };
    // Optimistic: store only if nobody stored another set since we read the row; otherwise
    // answer with what is stored now (a concurrent check computed the same inputs).
    // Through the hot-path writer (`Db::write_atomic`): every attestation may store a set, and
    // sharing SQLite's write lock with the verdict writes through a second connection made
    // both wait on each other.
    let version_db = i64::try_from(set.version).unwrap_or(i64::MAX);
    let signed_b64 = Base64::encode_string(&signed);
    let ownership_b64 = Base64::encode_string(&ownership);
    let owner_inputs = ownership_key(tid, row.ownership_epoch);
    let stored_version_db = i64::try_from(stored_version).unwrap_or(i64::MAX);
    let args = [
        Arg::Int(version_db),
        Arg::Text(&inputs_now),
        Arg::Text(&signed_b64),
        Arg::Int(set.expires_at.unix_timestamp()),
        Arg::Text(&ownership_b64),
        Arg::Text(&owner_inputs),
        Arg::Text(device_id),
        Arg::Int(stored_version_db),
        Arg::from(deployment.as_ref()),
        Arg::Int(deployment_since),
    ];
    let stored = state
        .db
        .write_atomic(&[WriteStmt {
            sql: "UPDATE devices SET target_version = $1, target_inputs = $2, target_set = $3, \
                  target_expires_at = $4, ownership_doc = $5, ownership_inputs = $6, \
                  target_deployment_id = $9, target_deployment_version = $10 \
                  WHERE id = $7 AND target_version = $8",
            args: &args,
            must_change_one_row: true,
        }])
        .await?;
    if stored == Written::Unchanged {
        return Box::pin(current_target(state, device_id)).await;
    }
    Ok(Some(CurrentTarget {
        version: set.version,
        signed: Arc::new(signed),
        ownership: Arc::new(ownership),
        expires_at: set.expires_at,
    }))
}

fn digest(hex_text: &str) -> ApiResult<[u8; 32]> {
    let mut d = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut d)
        .map_err(|_| ApiError::Internal("malformed digest in database".into()))?;
    Ok(d)
}

fn target_image(
    r: &sqlx::any::AnyRow,
    component_id: Uuid,
    kind: TargetKind,
) -> ApiResult<TargetImage> {
    let int = |name: &str| -> ApiResult<i64> { Ok(r.try_get::<i64, _>(name)?) };
    Ok(TargetImage {
        component_id,
        image_id: Uuid::try_parse(&r.try_get::<String, _>("image_id")?)
            .map_err(|_| ApiError::Internal("malformed image ID".into()))?,
        kind,
        version: format!(
            "{}.{}.{}",
            int("version_major")?,
            int("version_minor")?,
            int("version_patch")?
        ),
        security_version: u32::try_from(int("security_version")?)
            .map_err(|_| ApiError::Internal("security version out of range".into()))?,
        package_sha256: digest(&r.try_get::<String, _>("package_sha256")?)?,
        package_size: u64::try_from(int("package_size")?)
            .map_err(|_| ApiError::Internal("package size out of range".into()))?,
        payload_sha256: digest(&r.try_get::<String, _>("payload_sha256")?)?,
    })
}

/// Decode a stored signed target set's content (the service's own, already trusted).
pub fn content(signed: &[u8]) -> ApiResult<TargetSet> {
    let env = ferro_signing::parse_unverified(signed)
        .map_err(|_| ApiError::Internal("malformed stored target set".into()))?;
    TargetSet::from_cbor(&env.unverified_payload)
        .map_err(|_| ApiError::Internal("malformed stored target set".into()))
}
