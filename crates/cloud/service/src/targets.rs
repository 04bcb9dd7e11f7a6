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
use ferro_pki::{DeviceOwnership, KeyName, TargetSet};
use ferro_signing::DeviceId;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::datastore::target_sets::{self, NewSet};
use crate::db::{self, Written};
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

pub(crate) use crate::datastore::target_sets::{CheckRow, target_check_columns};

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
    // On every attestation and update check: a point lookup.
    let Some(row) = target_sets::check_row(&state.db, device_id).await? else {
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
        .map(target_sets::parse_current)
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
        if serves_as_is(
            expires_at,
            now,
            (stored_inputs.as_deref(), &inputs_now),
            (ownership_inputs.as_deref(), &owner_inputs_now),
        ) {
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

/// Whether a stored set (and ownership document) is served as it is: more than half its life
/// left at `now`, and computed from the inputs of now (`(stored, now)` pairs for the set and the
/// ownership document).
fn serves_as_is(
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
    set_inputs: (Option<&str>, &str),
    ownership_inputs: (Option<&str>, &str),
) -> bool {
    expires_at - now > TARGET_SET_VALIDITY / 2
        && set_inputs.0 == Some(set_inputs.1)
        && ownership_inputs.0 == Some(ownership_inputs.1)
}

/// Whether a set manages the device's apps: only in a group whose policy is `UpdateAll`.
/// Without a group a device gets Retail OS updates and keeps its apps (as Azure Sphere's
/// unassigned devices do); `No3rdPartyAppUpdates` keeps apps as they are.
fn manages_apps(group: Option<&str>, policy: Option<&str>) -> bool {
    group.is_some() && policy == Some("UpdateAll")
}

/// The version of a newly computed set `new`: the stored set's when only its times changed
/// (the version grows only when the content, beyond times and version, changed), else one more.
fn next_version(stored_version: u64, stored: Option<&TargetSet>, new: &TargetSet) -> u64 {
    let unchanged = stored.is_some_and(|old| {
        old.device_group_id == new.device_group_id
            && old.manage_apps == new.manage_apps
            && old.images == new.images
    });
    if unchanged && stored_version != 0 {
        stored_version
    } else {
        stored_version + 1
    }
}

/// The first set version that named `deployment`'s images: the stored one while the deployment
/// stays the same, else `version` (the new set's). A Failed report for it or a later version
/// counts against the deployment's rollout (`crate::rollouts`).
fn deployment_since(
    stored: (Option<&str>, Option<i64>),
    deployment: Option<&str>,
    version: u64,
) -> i64 {
    match stored {
        (stored_deployment, Some(v)) if stored_deployment == deployment => v,
        _ => i64::try_from(version).unwrap_or(i64::MAX),
    }
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
    let manage_apps = manages_apps(group.as_deref(), policy.as_deref());
    let mut images = Vec::new();
    if let Some(os) = &os_release {
        images.push(target_sets::os_release_image(&state.db, os).await?);
    }
    if let (true, Some(dep)) = (manage_apps, &deployment) {
        images.extend(target_sets::deployment_images(&state.db, dep).await?);
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
    let stored = stored_set
        .as_deref()
        .and_then(|bytes| ferro_signing::parse_unverified(bytes).ok())
        .and_then(|env| TargetSet::from_cbor(&env.unverified_payload).ok());
    set.version = next_version(stored_version, stored.as_ref(), &set);
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
    let deployment_since = deployment_since(
        (
            row.target_deployment_id.as_deref(),
            row.target_deployment_version,
        ),
        deployment.as_deref(),
        set.version,
    );
    // Optimistic: store only if nobody stored another set since we read the row; otherwise
    // answer with what is stored now (a concurrent check computed the same inputs).
    // Through the hot-path writer (`Db::write_atomic`): every attestation may store a set, and
    // sharing SQLite's write lock with the verdict writes through a second connection made
    // both wait on each other.
    let signed_b64 = Base64::encode_string(&signed);
    let ownership_b64 = Base64::encode_string(&ownership);
    let owner_inputs = ownership_key(tid, row.ownership_epoch);
    let stored = target_sets::store(
        &state.db,
        &NewSet {
            device_id,
            stored_version: i64::try_from(stored_version).unwrap_or(i64::MAX),
            version: i64::try_from(set.version).unwrap_or(i64::MAX),
            inputs: &inputs_now,
            signed_b64: &signed_b64,
            expires_at: set.expires_at.unix_timestamp(),
            ownership_b64: &ownership_b64,
            ownership_inputs: &owner_inputs,
            deployment: deployment.as_deref(),
            deployment_since,
        },
    )
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

/// Decode a stored signed target set's content (the service's own, already trusted).
pub fn content(signed: &[u8]) -> ApiResult<TargetSet> {
    let env = ferro_signing::parse_unverified(signed)
        .map_err(|_| ApiError::Internal("malformed stored target set".into()))?;
    TargetSet::from_cbor(&env.unverified_payload)
        .map_err(|_| ApiError::Internal("malformed stored target set".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: Option<&str>, deployment: Option<&str>) -> CheckRow {
        CheckRow {
            tenant_id: "t".into(),
            device_group_id: group.map(str::to_string),
            target_version: 3,
            target_inputs: None,
            target_set: None,
            target_expires_at: None,
            ownership_doc: None,
            ownership_inputs: None,
            target_deployment_id: deployment.map(str::to_string),
            target_deployment_version: Some(2),
            update_policy: Some("UpdateAll".into()),
            os_feed: Some("Retail".into()),
            deployment: None,
            os_release_id: Some("os1".into()),
            ownership_epoch: 0,
        }
    }

    #[test]
    fn inputs_name_everything_a_set_is_computed_from() {
        assert_eq!(
            inputs(&row(Some("g1"), None), Some("d1")),
            "g=g1;d=d1;o=os1;p=UpdateAll;f=Retail"
        );
        assert_eq!(
            inputs(&row(None, None), None),
            "g=;d=;o=os1;p=UpdateAll;f=Retail"
        );
        assert_eq!(ownership_key("t", 0), "t=t;k=1");
        assert_eq!(ownership_key("t", 2), "t=t;k=1;e=2");
    }

    #[test]
    fn a_device_keeps_its_deployment_only_in_the_group_it_was_computed_for() {
        // (device's group, its stored deployment, stored inputs, kept, why)
        let cases = [
            (
                Some("g1"),
                Some("d1"),
                Some("g=g1;d=d1;o=;p=;f="),
                Some("d1"),
                "same group",
            ),
            (
                Some("g2"),
                Some("d1"),
                Some("g=g1;d=d1;o=;p=;f="),
                None,
                "moved to another group",
            ),
            (
                None,
                Some("d1"),
                Some("g=g1;d=d1;o=;p=;f="),
                None,
                "left its group",
            ),
            (Some("g1"), Some("d1"), None, None, "no stored set"),
            (
                Some("g1"),
                None,
                Some("g=g1;d=;o=;p=;f="),
                None,
                "nothing deployed yet",
            ),
        ];
        for (group, deployment, stored, want, why) in cases {
            assert_eq!(
                kept(&row(group, deployment), stored).as_deref(),
                want,
                "{why}"
            );
        }
    }

    #[test]
    fn a_stored_set_is_served_while_fresh_and_current() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let half = TARGET_SET_VALIDITY / 2;
        let fresh = now + half + Duration::seconds(1);
        // (expires at, stored set inputs, stored ownership inputs, served, why)
        let cases = [
            (fresh, Some("a"), Some("o"), true, "fresh and current"),
            (
                now + half,
                Some("a"),
                Some("o"),
                false,
                "half its life over",
            ),
            (fresh, Some("b"), Some("o"), false, "an input changed"),
            (fresh, None, Some("o"), false, "no stored inputs"),
            (fresh, Some("a"), Some("o2"), false, "the ownership changed"),
        ];
        for (expires, set, own, want, why) in cases {
            assert_eq!(
                serves_as_is(expires, now, (set, "a"), (own, "o")),
                want,
                "{why}"
            );
        }
    }

    #[test]
    fn versions_grow_only_with_the_content() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let set = |manage_apps: bool, at: OffsetDateTime| TargetSet {
            device_id: DeviceId::from_bytes([7; 64]),
            tenant_id: Uuid::from_u128(1),
            device_group_id: Some(Uuid::from_u128(2)),
            version: 1,
            issued_at: at,
            expires_at: at + TARGET_SET_VALIDITY,
            manage_apps,
            images: Vec::new(),
        };
        let old = set(true, t);
        // (stored version, stored set, new set, version, why)
        let cases = [
            (0, None, set(true, t), 1, "the first set"),
            (
                4,
                Some(&old),
                set(true, t + Duration::days(4)),
                4,
                "only the times changed",
            ),
            (4, Some(&old), set(false, t), 5, "the content changed"),
            (4, None, set(true, t), 5, "the stored set is unreadable"),
        ];
        for (stored_version, stored, new, want, why) in cases {
            assert_eq!(next_version(stored_version, stored, &new), want, "{why}");
        }
        assert!(manages_apps(Some("g"), Some("UpdateAll")));
        assert!(!manages_apps(Some("g"), Some("No3rdPartyAppUpdates")));
        assert!(!manages_apps(None, Some("UpdateAll")));
    }

    #[test]
    fn a_deployment_is_counted_from_the_first_version_that_named_it() {
        // (stored deployment and since, new deployment, new version, since, why)
        let cases = [
            (
                (Some("d1"), Some(3)),
                Some("d1"),
                5,
                3,
                "the same deployment",
            ),
            ((Some("d1"), Some(3)), Some("d2"), 5, 5, "a new deployment"),
            ((None, None), Some("d1"), 1, 1, "the first"),
            ((None, Some(2)), None, 4, 2, "still none"),
        ];
        for (stored, deployment, version, want, why) in cases {
            assert_eq!(deployment_since(stored, deployment, version), want, "{why}");
        }
    }
}
