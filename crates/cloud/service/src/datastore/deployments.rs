//! Deployments (`deployments`, `deployment_images`): immutable sets of a tenant's images for a
//! device group. Their rollouts' columns are `super::rollouts`'.

use crate::authz::TenantScope;
use crate::datastore::{StoreError, StoreResult};
use crate::db::{self, Db, Tx};
use ferro_wire::{DeployedImage, Deployment, DeploymentId, DeviceGroupId};
use sqlx::Row;
use std::collections::HashMap;

const DEPLOYMENT_COLUMNS: &str = "id, device_group_id, deployed_by, deployed_at, rollout_waves, rollout_wait, \
     rollout_max_failure";

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> StoreResult<T> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("malformed {what}")))
}

/// Deployments' rows plus their images (one query for all images).
async fn with_images(
    db: &Db,
    scope: &TenantScope,
    rows: &[sqlx::any::AnyRow],
) -> StoreResult<Vec<(String, Deployment)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // The deployment's own record of each image: it outlives the image's row.
    let sql = format!(
        "SELECT deployment_id, image_id, component_id, name, image_type, version, deleted_at \
         FROM deployment_images WHERE deployment_id IN ({}) ORDER BY component_id",
        db::placeholders(1, rows.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in rows {
        q = q.bind(r.try_get::<String, _>("id")?);
    }
    let mut by_deployment: HashMap<String, Vec<DeployedImage>> = HashMap::new();
    for r in q.fetch_all(db.pool()).await? {
        by_deployment
            .entry(r.try_get("deployment_id")?)
            .or_default()
            .push(DeployedImage {
                image_id: parse(&r.try_get::<String, _>("image_id")?, "image ID")?,
                component_id: parse(&r.try_get::<String, _>("component_id")?, "component ID")?,
                name: r.try_get("name")?,
                image_type: parse(&r.try_get::<String, _>("image_type")?, "image type")?,
                version: r.try_get("version")?,
                deleted_at: r.try_get::<Option<i64>, _>("deleted_at")?.map(db::ts),
            });
    }
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            let rollout = super::rollouts::config_of(r)?
                .map(|(waves, wait, max_failure)| crate::rollouts::wire(&waves, wait, max_failure));
            let d = Deployment {
                id: parse(&id, "deployment ID")?,
                tenant_id: scope.tenant(),
                device_group_id: parse(&r.try_get::<String, _>("device_group_id")?, "group ID")?,
                images: by_deployment.remove(&id).unwrap_or_default(),
                deployed_by: parse(&r.try_get::<String, _>("deployed_by")?, "user ID")?,
                deployed_at: db::ts(r.try_get("deployed_at")?),
                rollout,
            };
            Ok((id, d))
        })
        .collect()
}

/// Up to `limit` deployments of the scope's group `group` created before the row `after`
/// (`""`: from the newest), newest first, each with its ID (the page key).
pub async fn list(
    db: &Db,
    scope: &TenantScope,
    group: DeviceGroupId,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<(String, Deployment)>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM deployments \
         WHERE tenant_id = $1 AND device_group_id = $2 AND ($3 = '' OR id < $3) \
         ORDER BY id DESC LIMIT $4"
    )))
    .bind(scope.tenant_str())
    .bind(group.to_string())
    .bind(after)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    with_images(db, scope, &rows).await
}

/// One deployment of the scope's group `group`.
pub async fn get(
    db: &Db,
    scope: &TenantScope,
    group: DeviceGroupId,
    deployment: DeploymentId,
) -> StoreResult<Option<Deployment>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM deployments \
         WHERE tenant_id = $1 AND device_group_id = $2 AND id = $3"
    )))
    .bind(scope.tenant_str())
    .bind(group.to_string())
    .bind(deployment.to_string())
    .fetch_all(db.pool())
    .await?;
    Ok(with_images(db, scope, &rows).await?.pop().map(|(_, d)| d))
}

/// Store a new deployment of the scope's tenant, its images given as (image row ID, image)
/// pairs: each row keeps the image's ID, name, type and version for the history, which outlives
/// the image (`super::images::delete_in`). Its rollout, if it has one, is stored after it
/// (`super::rollouts::insert`).
pub async fn insert(
    tx: &mut Tx,
    scope: &TenantScope,
    d: &Deployment,
    image_rows: &[(String, DeployedImage)],
) -> StoreResult<()> {
    let did = d.id.to_string();
    sqlx::query(
        "INSERT INTO deployments (id, tenant_id, device_group_id, deployed_by, deployed_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&did)
    .bind(scope.tenant_str())
    .bind(d.device_group_id.to_string())
    .bind(d.deployed_by.to_string())
    .bind(d.deployed_at.unix_timestamp())
    .execute(&mut **tx)
    .await?;
    for (row_id, image) in image_rows {
        sqlx::query(
            "INSERT INTO deployment_images (deployment_id, image_row_id, component_id, image_id, \
             name, image_type, version) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&did)
        .bind(row_id)
        .bind(image.component_id.hyphenated().to_string())
        .bind(image.image_id.to_string())
        .bind(&image.name)
        .bind(image.image_type.as_str())
        .bind(&image.version)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
