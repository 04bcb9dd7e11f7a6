//! Devices' target sets as stored on their rows (`devices.target_*`, `ownership_*`), the inputs
//! a set is computed from, and the images it names. The decisions (when to recompute, what a
//! set holds) are `crate::targets`'.

use crate::datastore::rollouts::parse_waves;
use crate::datastore::{StoreError, StoreResult};
use crate::db::{Arg, Db, DbRow, WriteStmt, Written};
use crate::rollouts::Schedule;
use ferro_pki::{TargetImage, TargetKind};
use sqlx::Row;
use uuid::Uuid;

/// The columns of [`CHECK_SQL`], for queries that read them along with others (the evidence
/// route reads them with the registration: one read per attestation instead of two). They need
/// `devices d` and `device_groups g` joined as in [`CHECK_SQL`].
///
/// `deployment` is the group's current deployment's ID, then, with a rollout,
/// ` <waves> <wait> <wave> <wave_at> <frozen 0|1> <base ID or ->` (one column, so that the check
/// stays one query; [`parse_current`] reads it).
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
const CHECK_SQL: &str = concat!(
    "SELECT ",
    target_check_columns!(),
    " FROM devices d LEFT JOIN device_groups g ON g.id = d.device_group_id WHERE d.id = $1"
);

/// [`CHECK_SQL`]'s row.
#[derive(Clone, Debug)]
pub struct CheckRow {
    /// The device's tenant.
    pub tenant_id: String,
    /// Its group.
    pub device_group_id: Option<String>,
    /// The stored set's version (0: none yet).
    pub target_version: i64,
    /// What the stored set was computed from.
    pub target_inputs: Option<String>,
    /// Base64 of the signed set.
    pub target_set: Option<String>,
    /// When the stored set expires.
    pub target_expires_at: Option<i64>,
    /// Base64 of the signed ownership document.
    pub ownership_doc: Option<String>,
    /// What the ownership document was made from.
    pub ownership_inputs: Option<String>,
    /// The deployment whose images the stored set names.
    pub target_deployment_id: Option<String>,
    /// The first set version that named that deployment's images.
    pub target_deployment_version: Option<i64>,
    /// The group's update policy.
    pub update_policy: Option<String>,
    /// The group's OS feed.
    pub os_feed: Option<String>,
    /// The group's current deployment with its rollout's course ([`parse_current`]).
    pub deployment: Option<String>,
    /// The release the group's feed offers now.
    pub os_release_id: Option<String>,
    /// Times the device changed tenant (migration 0012); in its ownership document.
    pub ownership_epoch: i64,
}

impl CheckRow {
    /// The check columns of a row that may have no device (`d.tenant_id` NULL: an unclaimed
    /// device's registration): `None` then.
    pub(crate) fn from_optional_row(r: &DbRow<'_>) -> StoreResult<Option<CheckRow>> {
        match r.get::<Option<String>>("tenant_id")? {
            None => Ok(None),
            Some(_) => Self::from_row(r).map(Some),
        }
    }

    fn from_row(r: &DbRow<'_>) -> StoreResult<CheckRow> {
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

/// The `deployment` column of [`CHECK_SQL`]: the group's current deployment's ID, with its
/// rollout's course when it has one.
pub fn parse_current(text: &str) -> StoreResult<(String, Option<Schedule>)> {
    let bad = || StoreError::Corrupt("malformed current deployment".into());
    let mut parts = text.split(' ');
    let id = parts.next().ok_or_else(bad)?.to_string();
    let Some(waves) = parts.next() else {
        return Ok((id, None));
    };
    let mut int = || -> StoreResult<i64> {
        parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let wait = int()?;
    let wave = usize::try_from(int()?).map_err(|_| bad())?;
    let wave_at = int()?;
    let frozen = int()? != 0;
    let base = match parts.next() {
        Some("-") => None,
        Some(b) if !b.is_empty() => Some(b.to_string()),
        _ => return Err(bad()),
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((
        id,
        Some(Schedule {
            waves: parse_waves(waves)?,
            wait,
            wave,
            wave_at,
            frozen,
            base,
        }),
    ))
}

/// The device's check row (`None`: no such claimed device). On every attestation and update
/// check: a point lookup on the hot read path (`Db::read_optional`).
pub async fn check_row(db: &Db, device_id: &str) -> StoreResult<Option<CheckRow>> {
    let args = [Arg::Text(device_id)];
    db.read_optional(CHECK_SQL, &args, CheckRow::from_row).await
}

fn digest(hex_text: &str) -> StoreResult<[u8; 32]> {
    let mut d = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut d)
        .map_err(|_| StoreError::Corrupt("malformed digest".into()))?;
    Ok(d)
}

fn target_image(
    r: &sqlx::any::AnyRow,
    component_id: Uuid,
    kind: TargetKind,
) -> StoreResult<TargetImage> {
    let int = |name: &str| -> StoreResult<i64> { Ok(r.try_get::<i64, _>(name)?) };
    Ok(TargetImage {
        component_id,
        image_id: Uuid::try_parse(&r.try_get::<String, _>("image_id")?)
            .map_err(|_| StoreError::Corrupt("malformed image ID".into()))?,
        kind,
        version: format!(
            "{}.{}.{}",
            int("version_major")?,
            int("version_minor")?,
            int("version_patch")?
        ),
        security_version: u32::try_from(int("security_version")?)
            .map_err(|_| StoreError::Corrupt("security version out of range".into()))?,
        package_sha256: digest(&r.try_get::<String, _>("package_sha256")?)?,
        package_size: u64::try_from(int("package_size")?)
            .map_err(|_| StoreError::Corrupt("package size out of range".into()))?,
        payload_sha256: digest(&r.try_get::<String, _>("payload_sha256")?)?,
    })
}

/// The target entry of the OS release whose row ID is `os_release`.
pub async fn os_release_image(db: &Db, os_release: &str) -> StoreResult<TargetImage> {
    let r = sqlx::query(
        "SELECT image_id, version_major, version_minor, version_patch, security_version, \
         payload_sha256, package_sha256, package_size FROM os_releases WHERE id = $1",
    )
    .bind(os_release)
    .fetch_one(db.pool())
    .await?;
    target_image(&r, ferro_image::OS_COMPONENT_ID, TargetKind::Os)
}

/// The target entries of a deployment's images. A deployment one of whose images was deleted
/// is never given to a device (the deletion refuses while one may be: `super::images::
/// blockers_in`); should it be, this fails rather than sign a set without that image, which
/// would make the device remove the app.
pub async fn deployment_images(db: &Db, deployment: &str) -> StoreResult<Vec<TargetImage>> {
    let rows = sqlx::query(
        "SELECT di.image_row_id, di.image_id AS deployed_image_id, i.image_id, i.component_id, \
         i.image_type, i.version_major, i.version_minor, i.version_patch, i.security_version, \
         i.payload_sha256, i.package_sha256, i.package_size FROM deployment_images di \
         LEFT JOIN images i ON i.id = di.image_row_id WHERE di.deployment_id = $1",
    )
    .bind(deployment)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            if r.try_get::<Option<String>, _>("image_row_id")?.is_none() {
                return Err(StoreError::Corrupt(format!(
                    "deployment {deployment} lists image {}, which was deleted",
                    r.try_get::<String, _>("deployed_image_id")?
                )));
            }
            let component = Uuid::try_parse(&r.try_get::<String, _>("component_id")?)
                .map_err(|_| StoreError::Corrupt("malformed component ID".into()))?;
            let kind = match r.try_get::<String, _>("image_type")?.as_str() {
                "App" => TargetKind::App,
                "RtApp" => TargetKind::RtApp,
                "BoardConfig" => TargetKind::BoardConfig,
                _ => return Err(StoreError::Corrupt("unknown image type".into())),
            };
            target_image(r, component, kind)
        })
        .collect()
}

/// A newly signed set for a device, with what it was computed from.
#[derive(Debug)]
pub struct NewSet<'a> {
    /// The device.
    pub device_id: &'a str,
    /// The version the stored set must still have (a compare-and-set).
    pub stored_version: i64,
    /// The new set's version.
    pub version: i64,
    /// What it was computed from.
    pub inputs: &'a str,
    /// Base64 of the signed set.
    pub signed_b64: &'a str,
    /// When it expires.
    pub expires_at: i64,
    /// Base64 of the signed ownership document.
    pub ownership_b64: &'a str,
    /// What the ownership document was made from.
    pub ownership_inputs: &'a str,
    /// The deployment whose images it names.
    pub deployment: Option<&'a str>,
    /// The first set version that named that deployment's images.
    pub deployment_since: i64,
}

/// Store a device's new set if nobody stored another since its row was read (its version is
/// still `stored_version`); `Written::Unchanged` otherwise. Through the hot-path writer
/// (`Db::write_atomic`): every attestation may store a set, and sharing SQLite's write lock with
/// the verdict writes through a second connection made both wait on each other.
pub async fn store(db: &Db, s: &NewSet<'_>) -> StoreResult<Written> {
    let args = [
        Arg::Int(s.version),
        Arg::Text(s.inputs),
        Arg::Text(s.signed_b64),
        Arg::Int(s.expires_at),
        Arg::Text(s.ownership_b64),
        Arg::Text(s.ownership_inputs),
        Arg::Text(s.device_id),
        Arg::Int(s.stored_version),
        Arg::from(s.deployment),
        Arg::Int(s.deployment_since),
    ];
    Ok(db
        .write_atomic(&[WriteStmt {
            sql: "UPDATE devices SET target_version = $1, target_inputs = $2, target_set = $3, \
                  target_expires_at = $4, ownership_doc = $5, ownership_inputs = $6, \
                  target_deployment_id = $9, target_deployment_version = $10 \
                  WHERE id = $7 AND target_version = $8",
            args: &args,
            must_change_one_row: true,
        }])
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_deployment_column_round_trips() {
        let (id, s) = parse_current("0190-x").unwrap();
        assert_eq!((id.as_str(), s), ("0190-x", None));
        let (id, s) = parse_current("0190-y 1000,5000,10000 3600 1 1700000000 0 -").unwrap();
        assert_eq!(id, "0190-y");
        assert_eq!(
            s,
            Some(Schedule {
                waves: vec![1000, 5000, 10000],
                wait: 3600,
                wave: 1,
                wave_at: 1_700_000_000,
                frozen: false,
                base: None,
            })
        );
        let (_, s) = parse_current("0190-y 10000 0 0 1 1 0190-b").unwrap();
        assert_eq!(s.unwrap().base.as_deref(), Some("0190-b"));
        for bad in [
            "0190-y 1000,5000 3600 1 1700000000 0 -",
            "0190-y 1000,10000 3600",
            "0190-y 1000,10000 3600 1 1700000000 0",
            "0190-y 1000,10000 3600 1 1700000000 0 - x",
        ] {
            assert!(parse_current(bad).is_err(), "{bad}");
        }
    }
}
