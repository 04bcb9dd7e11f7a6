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

/// The deployments of the tenant that list the image (row `row_id`), oldest first: (deployment
/// ID, its device group ID), and how many devices' stored target sets came from one of them.
pub async fn references_in(
    tx: &mut Tx,
    scope: &TenantScope,
    row_id: &str,
) -> StoreResult<(Vec<(String, String)>, i64)> {
    let rows = sqlx::query(
        "SELECT d.id, d.device_group_id FROM deployment_images di \
         JOIN deployments d ON d.id = di.deployment_id \
         WHERE di.image_row_id = $1 AND d.tenant_id = $2 ORDER BY d.id",
    )
    .bind(row_id)
    .bind(scope.tenant_str())
    .fetch_all(&mut **tx)
    .await?;
    let deployments = rows
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("device_group_id")?)))
        .collect::<StoreResult<Vec<(String, String)>>>()?;
    let devices: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM devices dv WHERE dv.tenant_id = $1 AND dv.target_deployment_id \
         IN (SELECT di.deployment_id FROM deployment_images di WHERE di.image_row_id = $2)",
    )
    .bind(scope.tenant_str())
    .bind(row_id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    Ok((deployments, devices))
}

/// Delete the image row `row_id` of the tenant and record the intent to delete its object
/// (`object_deletions`), in the caller's transaction: committed together, so the quota (the sum
/// of the rows) and the intent never disagree.
pub async fn delete_in(
    tx: &mut Tx,
    scope: &TenantScope,
    row_id: &str,
    object_key: &str,
) -> StoreResult<()> {
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
    .bind(db::now())
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

/// The columns of an image row, each prefixed with `table.` (for joins).
pub(super) fn columns_of(table: &str) -> String {
    IMAGE_COLUMNS
        .split(", ")
        .map(|c| format!("{table}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The API's short view of an image in a deployment.
pub fn deployed_image(i: &Image) -> DeployedImage {
    DeployedImage {
        image_id: i.id,
        component_id: i.component_id,
        name: i.name.clone(),
        image_type: i.image_type,
        version: i.version.clone(),
    }
}
