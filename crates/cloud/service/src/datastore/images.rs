//! Tenant images (`images`): the metadata of each stored production package.

use super::parse_id;
use super::{StoreError, StoreResult};
use super::{to_u32, to_u64, version_string};
use crate::authz::TenantScope;
use crate::db::{self, Db, Tx};
use ferro_image::ImageMetadata;
use ferro_wire::{DeployedImage, Image, ImageId};
use sqlx::Row;
use uuid::Uuid;

const IMAGE_COLUMNS: &str = "id, tenant_id, image_id, component_id, name, image_type, \
    version_major, version_minor, version_patch, security_version, target_runtime_version, debug, \
    payload_size, payload_sha256, package_sha256, package_size, signer_key_id, \
    uploaded_signer_key_id, uploaded_sha256, uploaded_by, uploaded_at";

pub(super) fn image_from_row(r: &sqlx::any::AnyRow) -> StoreResult<Image> {
    Ok(Image {
        id: parse_id(&r.try_get::<String, _>("image_id")?)?,
        tenant_id: parse_id(&r.try_get::<String, _>("tenant_id")?)?,
        component_id: parse_id(&r.try_get::<String, _>("component_id")?)?,
        name: r.try_get("name")?,
        image_type: r
            .try_get::<String, _>("image_type")?
            .parse()
            .map_err(|_| StoreError::Corrupt("unknown image type in database".into()))?,
        version: version_string(r)?,
        security_version: to_u32(r.try_get("security_version")?)?,
        target_runtime_version: to_u32(r.try_get("target_runtime_version")?)?,
        debug: r.try_get::<i64, _>("debug")? != 0,
        payload_size: to_u64(r.try_get("payload_size")?)?,
        payload_sha256: r.try_get("payload_sha256")?,
        package_sha256: r.try_get("package_sha256")?,
        package_size: to_u64(r.try_get("package_size")?)?,
        test_signed: false,
        signer_key_id: r.try_get("signer_key_id")?,
        uploaded_signer_key_id: r.try_get("uploaded_signer_key_id")?,
        uploaded_sha256: r.try_get("uploaded_sha256")?,
        uploaded_by: parse_id(&r.try_get::<String, _>("uploaded_by")?)?,
        uploaded_at: db::ts(r.try_get("uploaded_at")?),
    })
}

/// One image of `tenant`.
pub async fn get(db: &Db, scope: &TenantScope, image: &ImageId) -> StoreResult<Option<Image>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE tenant_id = $1 AND image_id = $2"
    )))
    .bind(scope.tenant_str())
    .bind(image.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(image_from_row).transpose()
}

/// One image of `tenant` with its row ID, read in the caller's write transaction.
pub async fn get_row_in(
    tx: &mut Tx,
    scope: &TenantScope,
    image: &ImageId,
) -> StoreResult<Option<(String, Image)>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE tenant_id = $1 AND image_id = $2"
    )))
    .bind(scope.tenant_str())
    .bind(image.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref()
        .map(|r| Ok((r.try_get::<String, _>("id")?, image_from_row(r)?)))
        .transpose()
}

/// One image of `tenant`, read in the caller's write transaction.
pub async fn get_in(
    tx: &mut Tx,
    scope: &TenantScope,
    image: &ImageId,
) -> StoreResult<Option<Image>> {
    Ok(get_row_in(tx, scope, image).await?.map(|(_, i)| i))
}

/// Up to `limit` images of `tenant` (of one component, if given) stored after the row `after`,
/// in upload order, each with its row ID (the page key).
pub async fn list(
    db: &Db,
    scope: &TenantScope,
    component: Option<Uuid>,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<(String, Image)>> {
    let component = component.map(|c| c.to_string()).unwrap_or_default();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE tenant_id = $1 AND id > $2 \
         AND ($3 = '' OR component_id = $3) ORDER BY id LIMIT $4"
    )))
    .bind(scope.tenant_str())
    .bind(after)
    .bind(&component)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get::<String, _>("id")?, image_from_row(r)?)))
        .collect()
}

/// Bytes of packages `tenant` stores, read in the caller's write transaction.
pub async fn used_bytes_in(tx: &mut Tx, scope: &TenantScope) -> StoreResult<u64> {
    let used: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(package_size), 0) AS BIGINT) AS n FROM images \
         WHERE tenant_id = $1",
    )
    .bind(scope.tenant_str())
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    Ok(u64::try_from(used).unwrap_or(0))
}

fn i64_of(v: u64) -> StoreResult<i64> {
    i64::try_from(v)
        .map_err(|_| StoreError::Unrepresentable("a size in the package is too large".into()))
}

/// Store `image` (its package's metadata `m`) for its tenant.
pub async fn insert(tx: &mut Tx, image: &Image, m: &ImageMetadata) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO images (id, tenant_id, image_id, component_id, name, image_type, \
         version_major, version_minor, version_patch, security_version, target_runtime_version, \
         debug, payload_size, payload_sha256, package_sha256, package_size, signer_key_id, \
         uploaded_signer_key_id, uploaded_sha256, uploaded_by, uploaded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
         $19, $20, $21)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(image.tenant_id.to_string())
    .bind(image.id.to_string())
    .bind(image.component_id.to_string())
    .bind(&image.name)
    .bind(image.image_type.as_str())
    .bind(i64::from(m.version.major))
    .bind(i64::from(m.version.minor))
    .bind(i64::from(m.version.patch))
    .bind(i64::from(m.security_version))
    .bind(i64::from(m.target_runtime_version))
    .bind(db::b2i(m.debug))
    .bind(i64_of(m.payload_size)?)
    .bind(&image.payload_sha256)
    .bind(&image.package_sha256)
    .bind(i64_of(image.package_size)?)
    .bind(&image.signer_key_id)
    .bind(&image.uploaded_signer_key_id)
    .bind(&image.uploaded_sha256)
    .bind(image.uploaded_by.to_string())
    .bind(image.uploaded_at.unix_timestamp())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What keeps an image from being deleted ([`blockers_in`]). Deployments are kept as history;
/// only those a device is or may still be given block, and the devices that run it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blockers {
    /// (deployment ID, device group ID) of each deployment listing it that is its group's
    /// current one (the newest).
    pub current: Vec<(String, String)>,
    /// (deployment ID, device group ID) of each deployment listing it that is the base of the
    /// rollout of its group's current deployment: devices outside the waves are given it.
    pub rollout_base: Vec<(String, String)>,
    /// (deployment ID, devices) of each deployment listing it from which devices hold a stored
    /// target set they may still fetch: unexpired, or kept because their group's current
    /// deployment rolls out in waves (a device outside them keeps what it was given).
    pub device_sets: Vec<(String, i64)>,
    /// Devices whose last update report lists the image as installed (at most
    /// [`MAX_NAMED_DEVICES`] + 1, by ID).
    pub installed_on: Vec<String>,
    /// Every deployment that lists it, blocking or not (superseded ones are history).
    pub listed_by: Vec<String>,
}

/// Devices named in an `image_in_use` answer.
pub const MAX_NAMED_DEVICES: usize = 10;

impl Blockers {
    /// Whether nothing blocks the deletion.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
            && self.rollout_base.is_empty()
            && self.device_sets.is_empty()
            && self.installed_on.is_empty()
    }
}

/// What keeps the image (row `row_id`, image ID `image`) of the scope's tenant from being
/// deleted at `now`, read in the caller's write transaction (after the tenant's lock, which new
/// deployments take too).
pub async fn blockers_in(
    tx: &mut Tx,
    scope: &TenantScope,
    row_id: &str,
    image: &ImageId,
    now: i64,
) -> StoreResult<Blockers> {
    let mut b = Blockers::default();
    // Each deployment listing it, with its group's current deployment and that one's base.
    let rows = sqlx::query(
        "SELECT d.id, d.device_group_id, c.id AS current_id, c.rollout_base_id \
         FROM deployment_images di JOIN deployments d ON d.id = di.deployment_id \
         LEFT JOIN deployments c ON c.id = (SELECT MAX(x.id) FROM deployments x \
           WHERE x.device_group_id = d.device_group_id) \
         WHERE di.image_row_id = $1 AND d.tenant_id = $2 ORDER BY d.id",
    )
    .bind(row_id)
    .bind(scope.tenant_str())
    .fetch_all(&mut **tx)
    .await?;
    for r in &rows {
        let id: String = r.try_get("id")?;
        let group: String = r.try_get("device_group_id")?;
        let current: Option<String> = r.try_get("current_id")?;
        let base: Option<String> = r.try_get("rollout_base_id")?;
        if current.as_deref() == Some(id.as_str()) {
            b.current.push((id.clone(), group));
        } else if base.as_deref() == Some(id.as_str()) {
            b.rollout_base.push((id.clone(), group));
        }
        b.listed_by.push(id);
    }
    let rows = sqlx::query(
        "SELECT dv.target_deployment_id AS deployment, COUNT(*) AS n FROM devices dv \
         WHERE dv.tenant_id = $1 AND dv.target_deployment_id IN \
           (SELECT di.deployment_id FROM deployment_images di WHERE di.image_row_id = $2) \
         AND (dv.target_expires_at > $3 OR (SELECT c.rollout_waves FROM deployments c \
           WHERE c.device_group_id = dv.device_group_id ORDER BY c.id DESC LIMIT 1) IS NOT NULL) \
         GROUP BY dv.target_deployment_id ORDER BY dv.target_deployment_id",
    )
    .bind(scope.tenant_str())
    .bind(row_id)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    for r in &rows {
        b.device_sets
            .push((r.try_get("deployment")?, r.try_get::<i64, _>("n")?));
    }
    // The report stores `installed` as compact JSON (`update_reports::store`); an image ID is
    // a UUID, which holds no LIKE wildcard.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM devices WHERE tenant_id = $1 AND update_installed LIKE $2 \
         ORDER BY id LIMIT {}",
        MAX_NAMED_DEVICES + 1
    )))
    .bind(scope.tenant_str())
    .bind(format!("%\"imageId\":\"{image}\"%"))
    .fetch_all(&mut **tx)
    .await?;
    for r in &rows {
        b.installed_on.push(r.try_get("id")?);
    }
    Ok(b)
}

/// Delete the image row `row_id` of the tenant and record the intent to delete its object
/// (`object_deletions`), in the caller's transaction: committed together, so the quota (the sum
/// of the rows) and the intent never disagree. The deployments that listed it keep their record
/// of it, marked deleted at `now`.
pub async fn delete_in(
    tx: &mut Tx,
    scope: &TenantScope,
    row_id: &str,
    object_key: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE deployment_images SET image_row_id = NULL, deleted_at = $1 \
         WHERE image_row_id = $2",
    )
    .bind(now)
    .bind(row_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM images WHERE id = $1 AND tenant_id = $2")
        .bind(row_id)
        .bind(scope.tenant_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO object_deletions (object_key, requested_at) VALUES ($1, $2) \
         ON CONFLICT (object_key) DO NOTHING",
    )
    .bind(object_key)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The objects whose deletion was committed but not finished (oldest first, at most `limit`).
pub async fn pending_object_deletions(db: &Db, limit: i64) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT object_key FROM object_deletions ORDER BY requested_at, object_key LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| Ok(r.try_get("object_key")?)).collect()
}

/// Whether a row (a tenant image or an OS release) still stores its package under
/// `images/<package_sha256>`.
pub async fn package_referenced(db: &Db, package_sha256: &str) -> StoreResult<bool> {
    Ok(sqlx::query(
        "SELECT 1 AS x FROM images WHERE package_sha256 = $1 \
         UNION ALL SELECT 1 AS x FROM os_releases WHERE package_sha256 = $1",
    )
    .bind(package_sha256)
    .fetch_optional(db.pool())
    .await?
    .is_some())
}

/// Forget a finished object deletion.
pub async fn finish_object_deletion(db: &Db, object_key: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM object_deletions WHERE object_key = $1")
        .bind(object_key)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The API's short view of an image in a deployment.
pub fn deployed_image(i: &Image) -> DeployedImage {
    DeployedImage {
        image_id: i.id,
        component_id: i.component_id,
        name: i.name.clone(),
        image_type: i.image_type,
        version: i.version.clone(),
        deleted_at: None,
    }
}
